//! DtKV apply cost: puts of `--value-size`-byte values to `--keys` keys under one
//! directory, applied to one [`KvTree`] in a loop (no log, no network), as each replica
//! applies them: each put decoded from its own encoded request (a buffer of its own, as
//! a log entry's body), so keys and values are slices of many buffers as in a server.
//! With `--state-machine`, every put goes through the group's state machine instead
//! (`DtKvStateMachine::exec`: decode, group lock, apply, TTL and watch upkeep, the
//! output every replica produces); add `--prepare` to hint each put to the state
//! machine four puts before its execution, as a group's apply loop does
//! (`StateMachine::prepare`). With `--open-snapshot`, a snapshot stays open
//! during the measured puts (each keeps the version it sees beside the latest).
//! Prints `RESULT puts_per_s=<x> ns_per_put=<y>`.
//!
//! ```text
//! cargo run --release -p dt-server --example dtkv_apply_bench -- [--keys 100000] [--puts 2000000] [--value-size 256] [--state-machine [--prepare] | --open-snapshot]
//! ```

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use dt_client::kv::{KvBody, KvCode, KvReq};
use dt_raft::sm::{Exec, ExecEntry, StateMachine};
use dt_raft::store::log_item::TYPE_NORMAL;
use dt_server::dtkv::{BizType, KvTree, WatchConfig};
use dt_server::kv_server::{DtKvStateMachine, KvGroup};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "dtkv_apply_bench",
    about = "Puts per second applied to a DtKV tree"
)]
struct Args {
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    keys: u32,
    /// Puts to apply (after one put of every key).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    puts: u64,
    /// Bytes of each value.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    value_size: u32,
    /// Apply every put through the state machine (`DtKvStateMachine::exec`).
    #[arg(long)]
    state_machine: bool,
    /// With `--state-machine`: hint every put four puts ahead
    /// (`StateMachine::prepare`), as a group's apply loop does.
    #[arg(long, requires = "state_machine")]
    prepare: bool,
    /// Keep a snapshot open (at the index before the measured puts) while they are
    /// applied, so each put keeps the version the snapshot sees (MVCC).
    #[arg(long, conflicts_with = "state_machine")]
    open_snapshot: bool,
}

/// Where the puts are applied (one of each per run: the tree stays inline, as the
/// state machine keeps it, rather than behind a box).
#[allow(clippy::large_enum_variant)]
enum Target {
    Tree(KvTree),
    StateMachine(DtKvStateMachine),
}

impl Target {
    /// Applies the encoded request `body` of `biz` as entry `index`.
    fn apply(&mut self, index: i64, biz: BizType, body: &Bytes) -> KvCode {
        match self {
            Target::Tree(tree) => {
                let r = KvReq::decode(body).expect("a request we encoded");
                tree.apply(index, index, biz, &r).result.biz_code()
            }
            Target::StateMachine(sm) => match sm.exec(&entry(index, biz, body)) {
                Exec::Done(Ok(out)) => out.biz_code(),
                _ => panic!("the state machine refused entry {index}"),
            },
        }
    }

    /// Hints the put of `body` as entry `index` (state machine only).
    fn prepare(&mut self, index: i64, body: &Bytes) {
        if let Target::StateMachine(sm) = self {
            sm.prepare(&entry(index, BizType::Put, body));
        }
    }
}

static NO_HEADER: Bytes = Bytes::new();

/// Entry `index` of `biz` with `body`, as the state machine sees it.
fn entry(index: i64, biz: BizType, body: &Bytes) -> ExecEntry<'_> {
    ExecEntry {
        index: index as u64,
        term: 1,
        item_type: TYPE_NORMAL,
        biz_type: biz.code(),
        leader_create_millis: index,
        local_create_nanos: 0,
        header: &NO_HEADER,
        body,
        body_shared: false,
    }
}

/// How many puts ahead `--prepare` hints (as the apply loop).
const AHEAD: usize = 4;

fn main() {
    let args = Args::parse();
    let mut target = if args.state_machine {
        let group = Arc::new(KvGroup::new(0, WatchConfig::default()));
        Target::StateMachine(DtKvStateMachine::new(group))
    } else {
        Target::Tree(KvTree::new())
    };
    let mut index = 1i64;
    let mkdir = dt_codec::encode::to_bytes(&KvReq::put(0, "benchmark", Bytes::new()));
    target.apply(index, BizType::Mkdir, &mkdir);
    let value = Bytes::from(vec![7u8; args.value_size as usize]);
    // two encoded bodies per key: the first creates it, the others overwrite it
    let body = |i: u32| -> Bytes {
        dt_codec::encode::to_bytes(&KvReq::put(0, format!("benchmark.key{i}"), value.clone()))
    };
    let bodies: Vec<Bytes> = (0..args.keys * 2).map(|i| body(i % args.keys)).collect();
    for b in &bodies[..args.keys as usize] {
        index += 1;
        target.apply(index, BizType::Put, b);
    }
    let snapshot = match &mut target {
        Target::Tree(tree) if args.open_snapshot => Some(tree.open_snapshot(index)),
        _ => None,
    };
    // a fixed pseudo-random key order (xorshift), like the benchmark's random keys
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let order: Vec<u32> = (0..args.puts)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (2 * u64::from(args.keys))) as u32
        })
        .collect();
    let first = index + 1;
    if args.prepare {
        for (k, &o) in order.iter().enumerate().take(AHEAD) {
            target.prepare(first + k as i64, &bodies[o as usize]);
        }
    }
    let t = Instant::now();
    for (k, &o) in order.iter().enumerate() {
        if args.prepare {
            if let Some(&ahead) = order.get(k + AHEAD) {
                target.prepare(first + (k + AHEAD) as i64, &bodies[ahead as usize]);
            }
        }
        index += 1;
        let code = target.apply(index, BizType::Put, &bodies[o as usize]);
        assert_eq!(code, KvCode::SuccessOverwrite, "put failed");
    }
    let secs = t.elapsed().as_secs_f64();
    if let (Some(s), Target::Tree(tree)) = (snapshot, &mut target) {
        tree.close_snapshot(s);
        while tree.gc_step(500) {}
    }
    println!(
        "RESULT puts_per_s={:.0} ns_per_put={:.0}",
        args.puts as f64 / secs,
        secs * 1e9 / args.puts as f64
    );
}
