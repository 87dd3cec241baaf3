//! One Raft node: a RaftServer with one group, for running clusters by hand (several
//! processes, or mixed with reference servers).
//!
//! ```text
//! cargo run --release -p dt-raft --example raft_node -- --servers "1,127.0.0.1:4001;2,127.0.0.1:4002;3,127.0.0.1:4003"
//!     --node-id 2 --dir /tmp/n2 [--group 0] [--members 1,2,3] [--service-port 0]
//!     [--elect-timeout-ms 3000] [--heartbeat-ms 1000] [--write-every-ms 500]
//!     [--dtkv-put-bodies] [--seconds 0]
//! ```
//!
//! While this node leads, it submits one write every `--write-every-ms` (0 = none);
//! every second it prints `node=<id> role=<r> term=<t> leader=<l> commit=<c>
//! applied=<a> writes_ok=<n> writes_failed=<m>`. The state machine counts entries.
//! With `--dtkv-put-bodies` each write is a DtKV PUT (`biz_type` 0, a KvReq body with key
//! `dt.<n>` and value `<n>`), so that reference DtKV servers in the same group can apply
//! the entries. Runs for `--seconds` (0 = until killed). Exit status 2 on bad flags, 1
//! with `raft_node: <cause>` if the node cannot start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use dt_raft::core::Role;
use dt_raft::driver::RaftGroupConfig;
use dt_raft::server::{GroupsOptions, RaftGroups, RaftServer, RaftServerConfig};
use dt_raft::sm::{DefaultRaftFactory, Exec, ExecEntry, RaftInput, StateMachine};

#[derive(Parser)]
#[command(name = "raft_node", about = "one Raft node with one group")]
pub struct Args {
    /// All servers: `id,host:port;…` (replicate ports).
    #[arg(long)]
    servers: String,
    /// This node's id.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    node_id: i32,
    /// Data directory of the group.
    #[arg(long)]
    dir: PathBuf,
    /// Group id.
    #[arg(long, default_value_t = 0)]
    group: i32,
    /// Members of the group (default: every server).
    #[arg(long, value_delimiter = ',')]
    members: Vec<u32>,
    /// Client port (0 = none).
    #[arg(long, default_value_t = 0)]
    service_port: u16,
    /// Election timeout.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..))]
    elect_timeout_ms: u64,
    /// Heartbeat interval.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    heartbeat_ms: u64,
    /// Write period while leading (0 = no writes).
    #[arg(long, default_value_t = 500)]
    write_every_ms: u64,
    /// Write DtKV PUT entries (for groups with reference DtKV servers).
    #[arg(long)]
    dtkv_put_bodies: bool,
    /// Run time (0 = until killed).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
}

/// Counts the entries it executes.
#[derive(Default)]
struct CountSm {
    n: u64,
}

impl StateMachine for CountSm {
    type Output = u64;
    fn exec(&mut self, _e: &ExecEntry<'_>) -> Exec<u64> {
        self.n += 1;
        Exec::Done(Ok(self.n))
    }
}

fn kv_put(n: u64) -> Bytes {
    let key = format!("dt.{n}");
    let value = n.to_string();
    let mut b = BytesMut::new();
    b.put_u8(0x12); // field 2, key
    b.put_u8(key.len() as u8);
    b.put_slice(key.as_bytes());
    b.put_u8(0x1a); // field 3, value
    b.put_u8(value.len() as u8);
    b.put_slice(value.as_bytes());
    b.freeze()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft_node: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    let nodes = dt_raft::server::parse_servers(&args.servers).map_err(|e| e.to_string())?;
    let me = nodes
        .iter()
        .find(|n| n.node_id == args.node_id)
        .ok_or_else(|| format!("node {} is not in --servers", args.node_id))?;
    let server = RaftServer::new(RaftServerConfig {
        servers: args.servers.clone(),
        node_id: args.node_id,
        replicate_port: me.port as u16,
        service_port: args.service_port,
        elect_timeout: Duration::from_millis(args.elect_timeout_ms),
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let members = if args.members.is_empty() {
        nodes.iter().map(|n| n.node_id as u32).collect()
    } else {
        args.members.clone()
    };
    let mut cfg = RaftGroupConfig::new(args.group, args.node_id as u32, members);
    cfg.data_dir = args.dir.clone();
    let factory = Arc::new(DefaultRaftFactory::new(server.block_io(), |_| {
        Ok(CountSm::default())
    }));
    let groups = RaftGroups::install(&server, factory, vec![cfg], GroupsOptions::default())
        .map_err(|e| e.to_string())?;
    server.start().map_err(|e| e.to_string())?;
    let g = groups.group(args.group).ok_or("group not created")?;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut next_print = start + Duration::from_secs(1);
    let mut next_write = start;
    let mut n = 0u64;
    loop {
        if args.seconds > 0 && start.elapsed() >= Duration::from_secs(args.seconds) {
            break;
        }
        let now = Instant::now();
        let st = g.status();
        if args.write_every_ms > 0 && now >= next_write && st.role == Role::Leader && st.group_ready
        {
            n += 1;
            let input = if args.dtkv_put_bodies {
                RaftInput::new(0, kv_put(n))
            } else {
                RaftInput::new(0, n.to_string().into_bytes())
            };
            let (o, f) = (ok.clone(), failed.clone());
            g.submit(input, move |r| {
                if r.is_ok() {
                    o.fetch_add(1, Ordering::Relaxed);
                } else {
                    f.fetch_add(1, Ordering::Relaxed);
                }
            });
            next_write = now + Duration::from_millis(args.write_every_ms);
        }
        if now >= next_print {
            next_print += Duration::from_secs(1);
            match g.query_status().wait(Duration::from_secs(1)) {
                Ok(s) => println!(
                    "node={} role={:?} term={} leader={} commit={} applied={} writes_ok={} writes_failed={}",
                    args.node_id,
                    s.role,
                    s.term,
                    s.leader.map_or(0, |l| l as i64),
                    s.commit_index,
                    s.last_applied,
                    ok.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed)
                ),
                Err(e) => println!("node={} status error: {e}", args.node_id),
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop(Duration::from_secs(5));
    Ok(())
}
