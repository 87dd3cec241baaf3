//! The client side of a request, measured: RaftClient routing (cached leader, connection
//! check, permit) plus dt-net, against an in-process NioServer that answers at once on
//! its IO thread (RAFT_QUERY_STATUS names node 1 the leader; DTKV_GET gets an empty
//! answer), so the server does as little as possible and the client's cost shows.
//!
//! ```text
//! cargo run --release -p dt-client --example raft_client_bench -- --threads 2 --window 256 --secs 5
//! ```
//! Prints pipelined throughput (requests/s), the mean round trip of one request at a
//! time, and the cost of the per-request connection check two ways: scanning the peer
//! table (`NioClient::peers`, what routing did before: lock, copy, sort, search) and
//! reading a `PeerStatusView` (what it does now: one atomic load).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::raft::{RaftClient, RaftClientConfig, RaftNode};
use dt_codec::encode;
use dt_net::{
    Commands, FnProcessor, NioServer, NioServerConfig, ReadPacket, ReqContext, WriteBody,
    WritePacket,
};
use dt_raft::rpc::QueryStatusResp;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = arg(&args, "--threads", "2").parse().expect("--threads");
    let window: usize = arg(&args, "--window", "256").parse().expect("--window");
    let secs: u64 = arg(&args, "--secs", "5").parse().expect("--secs");

    let mut server = NioServer::new(NioServerConfig {
        ports: vec![0],
        io_threads: 1,
        bind_host: "127.0.0.1".parse().unwrap(),
        ..Default::default()
    });
    server.register(
        Commands::RAFT_QUERY_STATUS,
        FnProcessor(|_p: &ReadPacket, _c: &ReqContext| {
            let body = QueryStatusResp {
                group_id: 0,
                node_id: 1,
                leader_id: 1,
                members: vec![1],
                ..Default::default()
            };
            Some(WritePacket::response(WriteBody::Bytes(encode::to_bytes(
                &body,
            ))))
        }),
    );
    server.register(
        Commands::DTKV_GET,
        FnProcessor(|_p: &ReadPacket, _c: &ReqContext| {
            Some(WritePacket::response(WriteBody::Empty))
        }),
    );
    server.start().expect("server");
    let addr = format!("127.0.0.1:{}", server.port()).parse().unwrap();

    let client = Arc::new(RaftClient::new(RaftClientConfig::default()).expect("client"));
    client
        .add_or_update_nodes(&[RaftNode { node_id: 1, addr }])
        .expect("node");
    client.add_or_update_group(0, &[1]).expect("group");
    let leader = client
        .fetch_leader(0, Duration::from_secs(5))
        .wait()
        .expect("leader");
    assert_eq!(leader, 1);
    let timeout = Duration::from_secs(5);

    // The connection check alone.
    let nio = client.nio();
    let peer = nio.peers()[0].0.id;
    let view = nio.peer_status_view(peer).expect("view");
    let m = 1_000_000u32;
    let t0 = Instant::now();
    let mut up = 0u32;
    for _ in 0..m {
        up += nio
            .peers()
            .iter()
            .any(|(p, s)| p.id == peer && *s == dt_net::PeerStatus::Connected) as u32;
    }
    let scan = t0.elapsed() / m;
    let t0 = Instant::now();
    for _ in 0..m {
        up += std::hint::black_box(&view).is_connected() as u32;
    }
    let load = t0.elapsed() / m;
    assert_eq!(up, 2 * m);

    // One request at a time: the round trip.
    let n = 20_000;
    let t0 = Instant::now();
    for _ in 0..n {
        let (tx, rx) = mpsc::sync_channel(1);
        client.send_request(0, Commands::DTKV_GET, Bytes::new(), timeout, move |r| {
            let _ = tx.send(r.is_ok());
        });
        assert!(rx.recv().unwrap(), "request failed");
    }
    let rtt = t0.elapsed() / n;

    // Pipelined: each thread keeps `window` requests in flight.
    let total = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let (client, total, failed) = (client.clone(), total.clone(), failed.clone());
            std::thread::spawn(move || {
                let (tx, rx) = mpsc::channel::<bool>();
                let send = |tx: mpsc::Sender<bool>| {
                    client.send_request(0, Commands::DTKV_GET, Bytes::new(), timeout, move |r| {
                        let _ = tx.send(r.is_ok());
                    })
                };
                for _ in 0..window {
                    send(tx.clone());
                }
                let mut inflight = window;
                while inflight > 0 {
                    let ok = rx.recv().unwrap();
                    inflight -= 1;
                    if ok {
                        total.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if Instant::now() < end {
                        send(tx.clone());
                        inflight += 1;
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let el = t0.elapsed().as_secs_f64();
    let done = total.load(Ordering::Relaxed);
    println!(
        "raft_client_bench: {threads} threads x {window} in flight: {:.0} requests/s \
         ({done} in {el:.2} s, {} failed); one at a time: {:.1} us per round trip; \
         connection check: peer table scan {} ns, status view {} ns",
        done as f64 / el,
        failed.load(Ordering::Relaxed),
        rtt.as_secs_f64() * 1e6,
        scan.as_nanos(),
        load.as_nanos()
    );
    client.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
}
