//! The service port's per-connection cap on unanswered requests
//! (`RaftServerConfig::max_conn_in_requests`, key `maxConnInRequests`): a client that
//! pipelines writes past it gets FLOW_CONTROL for the excess at once, the writes within
//! the cap succeed, another connection is served meanwhile, and once its answers have
//! left the connection is served again.

mod net_support;

use std::io::Write;
use std::time::Duration;

use dt_client::kv::{KvCommands, KvReq};
use dt_codec::encode;
use dt_net::{CmdCodes, ProcessInfo};
use dt_raft::server::RaftServerConfig;
use dt_server::kv_server::{DtKvServer, DtKvServerConfig, KvGroupConfig};
use net_support::*;

const CAP: u32 = 3;
const N: i32 = 40;

#[test]
fn pipelined_writes_past_the_service_port_cap_get_flow_control() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let scfg = RaftServerConfig {
        servers: format!("1,127.0.0.1:{};", p[0]),
        node_id: 1,
        replicate_port: p[0],
        service_port: p[1],
        bind_host: "127.0.0.1".parse().unwrap(),
        elect_timeout: Duration::from_millis(300),
        heartbeat_interval: Duration::from_millis(100),
        io_threads: 1,
        block_io_threads: 1,
        max_conn_in_requests: CAP,
        ..Default::default()
    };
    let mut cfg = DtKvServerConfig::new(
        scfg,
        vec![KvGroupConfig::new(GROUP, vec![1])],
        dir.path().to_path_buf(),
    );
    cfg.log_file_size = 1 << 20;
    let server = DtKvServer::new(cfg).unwrap();
    server.start().unwrap();
    server.wait_group_ready(Duration::from_secs(20)).unwrap();
    let service = format!("127.0.0.1:{}", p[1]).parse().unwrap();

    let pi = ProcessInfo { uuid1: 1, uuid2: 2 };
    let mut a = Raw::handshaken(service, pi);
    let put = |k: &str| encode::to_bytes(&KvReq::put(GROUP, k.to_string(), "v".to_string()));
    // N writes in one TCP write: the IO thread reads them together, and no answer can
    // leave (the same thread writes answers) before all have been dispatched.
    let mut burst = Vec::new();
    for i in 0..N {
        burst.extend(frame(KvCommands::DTKV_PUT, 2 + i, put(&format!("k{i}"))));
    }
    a.s.write_all(&burst).unwrap();
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..N {
        let r = a
            .next_frame(Duration::from_secs(10))
            .expect("an answer each");
        if r.resp_code == CmdCodes::FLOW_CONTROL {
            assert_eq!(
                r.msg,
                format!("max incoming requests per connection: {CAP}")
            );
            refused.push(r.seq);
        } else {
            assert_eq!((r.resp_code, r.biz_code), (0, 0), "{r:?}");
            ok.push(r.seq);
        }
    }
    ok.sort();
    assert!(ok.starts_with(&[2, 3, 4]), "{ok:?}");
    assert!(refused.len() >= (N - 2 * CAP as i32) as usize, "{ok:?}");

    // Another connection is served; so is this one once its answers have left.
    let mut b = Raw::handshaken(service, ProcessInfo { uuid1: 3, uuid2: 4 });
    let r = b.call(KvCommands::DTKV_PUT, put("b")).unwrap();
    assert_eq!((r.resp_code, r.biz_code), (0, 0));
    for i in 0..2 * CAP {
        let r = a
            .call(KvCommands::DTKV_PUT, put(&format!("again{i}")))
            .unwrap();
        assert_eq!((r.resp_code, r.biz_code), (0, 0), "{r:?}");
    }
    server.stop(Duration::from_secs(5));
}
