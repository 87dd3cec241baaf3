//! The RaftServer configuration the loopback cluster tests share: nodes 1..=n on
//! 127.0.0.1 at `ports`, with short timeouts so elections and pings settle in well
//! under a second, and one IO thread each.

use std::time::Duration;

use dt_net::{NioClient, NioClientConfig, PeerId};
use dt_raft::server::RaftServerConfig;

/// A started NioClient with one peer per port (node id i+1 at `ports[i]`), and the
/// peers in port order.
#[allow(dead_code)]
pub fn client_to(ports: &[u16]) -> (NioClient, Vec<PeerId>) {
    let mut c = NioClient::new(NioClientConfig::default());
    c.start().unwrap();
    let peers = ports
        .iter()
        .map(|p| {
            c.add_peer(format!("127.0.0.1:{p}").parse().unwrap())
                .unwrap()
                .id
        })
        .collect();
    (c, peers)
}

/// The configuration of node `id` (1-based) of the cluster on `ports`.
pub fn server_config(ports: &[u16], id: i32) -> RaftServerConfig {
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{},127.0.0.1:{p};", i + 1))
        .collect();
    RaftServerConfig {
        servers,
        node_id: id,
        replicate_port: ports[id as usize - 1],
        bind_host: "127.0.0.1".parse().unwrap(),
        elect_timeout: Duration::from_millis(1500),
        heartbeat_interval: Duration::from_millis(300),
        rpc_timeout: Duration::from_millis(1000),
        ping_interval: Duration::from_millis(200),
        raft_ping_interval: Duration::from_millis(100),
        io_threads: 1,
        block_io_threads: 1,
        ..Default::default()
    }
}
