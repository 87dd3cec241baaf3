//! `max_conn_unsent_bytes`: a peer that pipelines requests answered later (on an
//! executor) with large bodies and never reads is closed once its unsent output passes
//! the cap, instead of the server buffering every answer; other peers are served.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use dt_codec::PbError;
use dt_net::*;

struct Spawn;
impl Executor for Spawn {
    fn execute(&self, t: Box<dyn FnOnce() + Send>) -> Result<(), Box<dyn FnOnce() + Send>> {
        std::thread::spawn(t);
        Ok(())
    }
}

/// Answers every request with 256 KiB, from another thread.
struct Big;
impl ReqProcessor for Big {
    type Body = ();
    fn run_on(&self) -> RunOn {
        RunOn::Executor(Arc::new(Spawn))
    }
    fn decode(&self, _pkt: &ReadPacket) -> Result<(), PbError> {
        Ok(())
    }
    fn process(&self, _p: ReadPacket, _b: (), _c: ReqContext) -> Option<WritePacket> {
        Some(WritePacket::response(WriteBody::Bytes(Bytes::from(vec![
            7u8;
            256 * 1024
        ]))))
    }
}

#[test]
fn a_peer_whose_unsent_output_passes_the_cap_is_closed() {
    let closed: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let c2 = closed.clone();
    let mut server = NioServer::new(NioServerConfig {
        io_threads: 1,
        bind_host: "127.0.0.1".parse().unwrap(),
        write_high_water: 1024 * 1024,
        max_conn_unsent_bytes: 4 * 1024 * 1024,
        ..Default::default()
    });
    server.add_conn_closed_listener(move |e| c2.lock().unwrap().push(e.reason.to_string()));
    server.register(100, Big);
    server.start().unwrap();
    let addr = format!("127.0.0.1:{}", server.port()).parse().unwrap();

    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&handshake_frame(0x1, 0x2)).unwrap();
    // 400 requests (100 MiB of answers) in one go; never read.
    let mut batch = Vec::new();
    for seq in 2..402 {
        batch.extend(req_frame(1, 100, seq, 10_000_000_000, b""));
    }
    s.write_all(&batch).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while closed.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < end,
            "not closed; stats {:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let reason = closed.lock().unwrap()[0].clone();
    assert!(reason.contains("does not read"), "{reason}");
    // What it held is freed.
    let freed = AtomicUsize::new(usize::MAX);
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        freed.store(server.stats().write_buffered_bytes, Ordering::Relaxed);
        if freed.load(Ordering::Relaxed) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(freed.load(Ordering::Relaxed), 0);
    // Others are served.
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![addr],
        ..Default::default()
    });
    c.start().unwrap();
    let r = c
        .send_request_sync(
            None,
            WritePacket::request_bytes(100, Bytes::new()),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.body.len(), 256 * 1024);
    c.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
}

#[test]
fn the_cap_cannot_be_below_the_high_water_mark() {
    let cfg = NioServerConfig {
        write_high_water: 2 * 1024 * 1024,
        max_conn_unsent_bytes: 1024 * 1024,
        ..Default::default()
    };
    let e = cfg.validate().unwrap_err();
    assert!(e.to_string().contains("max_conn_unsent_bytes"), "{e}");
}
