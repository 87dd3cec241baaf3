//! DtKV apply cost: puts of `--value-size`-byte values to `--keys` keys under one
//! directory, applied to one [`KvTree`] in a loop (no log, no network), as each replica
//! applies them: each put decoded from its own encoded request (a buffer of its own, as
//! a log entry's body), so keys and values are slices of many buffers as in a server.
//! Prints `RESULT puts_per_s=<x> ns_per_put=<y>`.
//!
//! ```text
//! cargo run --release -p dt-server --example dtkv_apply_bench -- [--keys 100000] [--puts 2000000] [--value-size 256]
//! ```

use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use dt_client::kv::{KvBody, KvReq};
use dt_server::dtkv::{BizType, KvTree};

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
}

fn main() {
    let args = Args::parse();
    let mut tree = KvTree::new();
    let mut index = 1i64;
    let mkdir = KvReq::put(0, "benchmark", Bytes::new());
    tree.apply(index, 0, BizType::Mkdir, &mkdir);
    let value = Bytes::from(vec![7u8; args.value_size as usize]);
    // two encoded bodies per key: the first creates it, the others overwrite it
    let body = |i: u32| -> Bytes {
        dt_codec::encode::to_bytes(&KvReq::put(0, format!("benchmark.key{i}"), value.clone()))
    };
    let bodies: Vec<Bytes> = (0..args.keys * 2).map(|i| body(i % args.keys)).collect();
    for b in &bodies[..args.keys as usize] {
        index += 1;
        let r = KvReq::decode(b).expect("a request we encoded");
        tree.apply(index, index, BizType::Put, &r);
    }
    // a fixed pseudo-random key order (xorshift), like the benchmark's random keys
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let t = Instant::now();
    for _ in 0..args.puts {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = &bodies[(x % (2 * u64::from(args.keys))) as usize];
        let r = KvReq::decode(b).expect("a request we encoded");
        index += 1;
        let out = tree.apply(index, index, BizType::Put, &r);
        assert_eq!(
            out.result.biz_code(),
            dt_client::kv::KvCode::SuccessOverwrite,
            "put failed"
        );
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "RESULT puts_per_s={:.0} ns_per_put={:.0}",
        args.puts as f64 / secs,
        secs * 1e9 / args.puts as f64
    );
}
