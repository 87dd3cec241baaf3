//! Starts DtKV server nodes (until the `dt-server` binary exists): one node, or all
//! nodes of a cluster in this process. Ports follow the reference's demos by default:
//! node N replicates on 4000+N and serves clients on 5000+N.
//!
//! ```text
//! cargo run -p dt-server --example dtkv_server -- --nodes 1,2,3 --members 1,2,3 --groups 0
//! ```
//! Runs until killed (or for `--secs`).

use std::time::Duration;

use dt_raft::server::RaftServerConfig;
use dt_server::kv_server::{DtKvServer, DtKvServerConfig, KvGroupConfig};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn ids(s: &str) -> Vec<i32> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse().expect("a node id"))
        .collect()
}

fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().collect();
    let nodes = ids(&arg(&args, "--nodes", "1"));
    let members = ids(&arg(&args, "--members", "1"));
    let groups = ids(&arg(&args, "--groups", "0"));
    let dir = std::path::PathBuf::from(arg(&args, "--dir", "target/dtkv_server_data"));
    let repl_base: u16 = arg(&args, "--replicate-base", "4000").parse().unwrap();
    let svc_base: u16 = arg(&args, "--service-base", "5000").parse().unwrap();
    let secs: u64 = arg(&args, "--secs", "0").parse().unwrap();
    let servers: String = members
        .iter()
        .map(|m| format!("{m},127.0.0.1:{};", repl_base + *m as u16))
        .collect();
    let mut running = Vec::new();
    for &id in &nodes {
        let scfg = RaftServerConfig {
            servers: servers.clone(),
            node_id: id,
            replicate_port: repl_base + id as u16,
            service_port: svc_base + id as u16,
            bind_host: "127.0.0.1".parse().unwrap(),
            elect_timeout: Duration::from_millis(3000),
            heartbeat_interval: Duration::from_millis(1000),
            ..Default::default()
        };
        let gs = groups
            .iter()
            .map(|&g| KvGroupConfig::new(g, members.iter().map(|&m| m as u32).collect()))
            .collect();
        let cfg = DtKvServerConfig::new(scfg, gs, dir.join(format!("node{id}")));
        let s = DtKvServer::new(cfg).expect("server");
        s.start().expect("start");
        println!(
            "node {id}: replicate 127.0.0.1:{}, service 127.0.0.1:{}",
            repl_base + id as u16,
            svc_base + id as u16
        );
        running.push(s);
    }
    for s in &running {
        s.wait_group_ready(Duration::from_secs(60))
            .expect("group ready");
    }
    println!("ready");
    if secs > 0 {
        std::thread::sleep(Duration::from_secs(secs));
        for s in &running {
            s.stop(Duration::from_secs(5));
        }
    } else {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
