//! Embeds the Raft engine with a state machine of your own: a replicated counter.
//! `Counter` implements `dt_raft::sm::StateMachine` (execute committed entries in log
//! order, take and install snapshots), `CounterFactory` implements `RaftFactory`
//! (build each group's state machine and file log). Three `RaftServer`s in one process
//! run group 1 on loopback; the program submits additions on the leader, shows a
//! follower refusing a write with the leader's id, does a linearizable lease read,
//! and checks that every replica reaches the same total. The reference's
//! "custom state machine" use of `RaftServer` + `DefaultRaftFactory`.
//!
//! ```text
//! cargo run --example embedded_raft -- [--adds 100] [--dir DIR] [--replicate-base 4000 --service-base 5000]
//! ```
//!
//! Ends by itself; any failure is printed as `embedded_raft: <cause>` with exit
//! status 1.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use dt_examples::common::{
    ensure, main_with, node_config, pick_ports, server_list, wait_until, ClusterArgs, DemoResult,
    READY_TIMEOUT,
};
use dt_raft::driver::RaftGroupConfig;
use dt_raft::raft_log::{DefaultRaftLog, RaftLog, ThreadPoolIo};
use dt_raft::server::{GroupsOptions, RaftGroups, RaftServer};
use dt_raft::sm::{
    store_config, BytesSnapshot, Exec, ExecEntry, RaftError, RaftFactory, RaftInput, SmError,
    SmFuture, Snapshot, SnapshotChunk, SnapshotInfo, StateMachine,
};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "embedded_raft",
    about = "Raft with your own state machine: a replicated counter"
)]
pub struct Args {
    /// Additions to submit (1, 2, 3, ...).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub adds: u32,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

const GROUP: i32 = 1;
const NODES: [i32; 3] = [1, 2, 3];
/// The counter's one operation: add the 8-byte big-endian number in the body.
const BIZ_ADD: u8 = 1;

/// The state machine: a number. It runs on the group's dispatcher thread, so it needs
/// no locks; it publishes its value for readers on other threads.
pub struct Counter {
    total: i64,
    published: Arc<AtomicI64>,
    installing: Vec<u8>,
}

impl StateMachine for Counter {
    /// What the caller of a submit gets back: the total after its addition.
    type Output = i64;

    fn exec(&mut self, entry: &ExecEntry<'_>) -> Exec<i64> {
        if entry.is_read_only() {
            return Exec::Done(Ok(self.total));
        }
        // Deterministic: the same entries give the same total on every replica and
        // on every replay after a restart. A body that does not decode is refused.
        let Ok(n) = <[u8; 8]>::try_from(&entry.body[..]) else {
            return Exec::Done(Err(SmError::Rejected(format!(
                "bizType {} with a {}-byte body",
                entry.biz_type,
                entry.body.len()
            ))));
        };
        self.total += i64::from_be_bytes(n);
        self.published.store(self.total, Ordering::Release);
        Exec::Done(Ok(self.total))
    }

    fn take_snapshot(&mut self, info: &SnapshotInfo) -> SmFuture<'static, Box<dyn Snapshot>> {
        let snap: Box<dyn Snapshot> = Box::new(BytesSnapshot::new(
            info.clone(),
            Bytes::copy_from_slice(&self.total.to_be_bytes()),
        ));
        Box::pin(async move { Ok(snap) })
    }

    fn install_snapshot(&mut self, chunk: SnapshotChunk<'_>) -> SmFuture<'static, ()> {
        if chunk.offset == 0 {
            self.installing.clear();
        }
        self.installing.extend_from_slice(chunk.data);
        let mut result = Ok(());
        if chunk.done {
            match <[u8; 8]>::try_from(&self.installing[..]) {
                Ok(b) => {
                    self.total = i64::from_be_bytes(b);
                    self.published.store(self.total, Ordering::Release);
                }
                Err(_) => result = Err(SmError::Rejected("a counter snapshot is 8 bytes".into())),
            }
            self.installing.clear();
        }
        Box::pin(async move { result })
    }
}

/// Builds each group's counter and its file log (whose file work runs on the server's
/// blocking-IO pool), and keeps each counter's published value.
pub struct CounterFactory {
    io: Arc<ThreadPoolIo>,
    values: Mutex<HashMap<i32, Arc<AtomicI64>>>,
}

impl CounterFactory {
    /// The published total of group `group_id` on this node.
    pub fn value(&self, group_id: i32) -> Option<i64> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.get(&group_id).map(|v| v.load(Ordering::Acquire))
    }
}

impl RaftFactory for CounterFactory {
    type Sm = Counter;

    fn create_state_machine(&self, cfg: &RaftGroupConfig) -> Result<Counter, RaftError> {
        let published = Arc::new(AtomicI64::new(0));
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.insert(cfg.group_id, published.clone());
        Ok(Counter {
            total: 0,
            published,
            installing: Vec::new(),
        })
    }

    fn create_raft_log(&self, cfg: &RaftGroupConfig) -> Result<Box<dyn RaftLog>, RaftError> {
        Ok(Box::new(DefaultRaftLog::new(
            &cfg.data_dir,
            store_config(cfg),
            self.io.clone(),
        )))
    }
}

/// One node: its server, its groups and its factory.
struct Node {
    server: Arc<RaftServer>,
    groups: Arc<RaftGroups<CounterFactory>>,
    factory: Arc<CounterFactory>,
}

fn main() -> ExitCode {
    main_with("embedded_raft", run)
}

/// Starts the three nodes, submits the additions, checks the replicas.
pub fn run(args: &Args) -> DemoResult {
    let t = Duration::from_secs(10);
    let mut tmp = None;
    let dir = match &args.cluster.dir {
        Some(d) => d.clone(),
        None => tmp
            .insert(tempfile::Builder::new().prefix("dt-example-").tempdir()?)
            .path()
            .to_path_buf(),
    };
    let (repl, _) = pick_ports(&args.cluster, &NODES)?;
    let servers = server_list(&repl);

    let mut nodes = Vec::new();
    for id in NODES {
        // Only the replicate port: this program talks to its groups directly.
        let server = RaftServer::new(node_config(&servers, id, repl[&id], 0))?;
        let factory = Arc::new(CounterFactory {
            io: server.block_io(),
            values: Mutex::default(),
        });
        let mut cfg = RaftGroupConfig::new(GROUP, id as u32, vec![1, 2, 3]);
        cfg.data_dir = dir.join(format!("node{id}")).join(format!("group{GROUP}"));
        let groups = RaftGroups::install(
            &server,
            factory.clone(),
            vec![cfg],
            GroupsOptions::default(),
        )?;
        server
            .start()
            .map_err(|e| format!("node {id} cannot start on port {}: {e}", repl[&id]))?;
        nodes.push(Node {
            server,
            groups,
            factory,
        });
    }
    let result = scenario(args, &nodes, t);
    for n in &nodes {
        n.server.stop(Duration::from_secs(5));
    }
    result
}

fn scenario(args: &Args, nodes: &[Node], t: Duration) -> DemoResult {
    for n in nodes {
        n.server.wait_group_ready(READY_TIMEOUT)?;
    }
    let handle = |n: &Node| n.groups.group(GROUP).ok_or("group 1 is missing");
    let leader = nodes
        .iter()
        .position(|n| n.groups.group(GROUP).is_some_and(|g| g.is_leader()))
        .ok_or("no leader")?;
    println!("group {GROUP} is ready; node {} leads", NODES[leader]);

    // A follower refuses writes and names the leader.
    let follower = (leader + 1) % nodes.len();
    match handle(&nodes[follower])?
        .submit_async(RaftInput::new(BIZ_ADD, 1i64.to_be_bytes().to_vec()))
        .wait(t)
    {
        Err(RaftError::NotLeader { leader: hint }) => {
            println!(
                "node {} refuses a write: not the leader (hint: {hint:?})",
                NODES[follower]
            )
        }
        other => return Err(format!("a follower accepted a write: {other:?}").into()),
    }

    // Submit on the leader: each answer is (raft index, total after the addition).
    let g = handle(&nodes[leader])?;
    let mut expected = 0i64;
    let mut last = (0, 0);
    for i in 1..=i64::from(args.adds) {
        expected += i;
        last = g
            .submit_async(RaftInput::new(BIZ_ADD, i.to_be_bytes().to_vec()))
            .wait(t)?;
        ensure(last.1 == expected, "the leader answers the running total")?;
    }
    println!(
        "{} additions committed; the last at raft index {} -> total {}",
        args.adds, last.0, last.1
    );

    // A lease read: once it answers, this node's state includes every committed write.
    g.lease_read(t).wait(t)?;
    let read = nodes[leader].factory.value(GROUP);
    println!("lease read on the leader: total {read:?}");
    ensure(read == Some(expected), "the lease read sees every write")?;

    // Every replica applies the same log.
    for (n, id) in nodes.iter().zip(NODES) {
        let same = wait_until(t, || n.factory.value(GROUP) == Some(expected));
        println!("node {id}: total {:?}", n.factory.value(GROUP));
        ensure(same, "every replica reaches the same total")?;
    }
    Ok(())
}
