//! The connection-closed hook of NioServer: fired exactly once per accepted connection,
//! whoever closes it (a client that stops, a peer's end of stream, the server on a bad
//! frame, the handshake deadline, the server's stop), with the ConnRef the processors
//! saw, and a panicking listener does not take the IO thread down.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use dt_net::*;

const ECHO_CONN: i32 = 100;

#[derive(Debug, Clone)]
struct Event {
    conn: ConnRef,
    local_port: u16,
    process_info: Option<ProcessInfo>,
    reason: String,
}

struct Env {
    server: NioServer,
    addr: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
    /// The ConnRef each client uuid's requests came on (from the processor).
    seen: Arc<Mutex<HashMap<ProcessInfo, ConnRef>>>,
}

impl Env {
    /// `panicky`: a listener that panics runs before the recording one.
    fn new(panicky: bool) -> Env {
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let seen: Arc<Mutex<HashMap<ProcessInfo, ConnRef>>> = Arc::default();
        let mut server = NioServer::new(NioServerConfig {
            io_threads: 2,
            bind_host: "127.0.0.1".parse().unwrap(),
            handshake_timeout: Duration::from_millis(300),
            ..Default::default()
        });
        // A listener that panics first: the next one must still run, and the IO
        // thread must go on.
        if panicky {
            server.add_conn_closed_listener(|_| panic!("listener panic (expected by the test)"));
        }
        let ev = events.clone();
        server.add_conn_closed_listener(move |c| {
            ev.lock().unwrap().push(Event {
                conn: c.conn,
                local_port: c.local_port,
                process_info: c.process_info,
                reason: c.reason.to_string(),
            })
        });
        let s2 = seen.clone();
        server.register(
            ECHO_CONN,
            FnProcessor(move |_p: &ReadPacket, ctx: &ReqContext| {
                s2.lock()
                    .unwrap()
                    .insert(ctx.process_info().unwrap(), ctx.conn());
                Some(WritePacket::response(WriteBody::Empty))
            }),
        );
        server.start().unwrap();
        let addr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
        Env {
            server,
            addr,
            events,
            seen,
        }
    }

    /// Waits for `n` events in total, then checks that no more come for a while.
    fn wait_events(&self, n: usize) -> Vec<Event> {
        let end = Instant::now() + Duration::from_secs(5);
        while self.events.lock().unwrap().len() < n {
            assert!(
                Instant::now() < end,
                "expected {n} close events, have {:?}",
                self.events.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        let ev = self.events.lock().unwrap().clone();
        assert_eq!(ev.len(), n, "more events than connections closed: {ev:?}");
        ev
    }

    fn conn_of(&self, pi: ProcessInfo) -> ConnRef {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(c) = self.seen.lock().unwrap().get(&pi) {
                return *c;
            }
            assert!(Instant::now() < end, "no request seen from {pi:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A request to the processor that records its connection.
fn echo_conn(seq: i32) -> Vec<u8> {
    req_frame(1, ECHO_CONN, seq, 3_000_000_000, b"")
}

#[test]
fn fires_once_for_each_way_a_connection_closes() {
    let env = Env::new(true);
    let port = env.addr.port();

    // 1. A NioClient that handshakes, sends a request, then stops.
    let pi_client;
    {
        let mut c = NioClient::new(NioClientConfig {
            peers: vec![env.addr],
            ..Default::default()
        });
        c.start().unwrap();
        assert!(c.wait_connected(Duration::from_secs(5)));
        let r = c.send_request_sync(
            None,
            WritePacket::request_bytes(ECHO_CONN, Bytes::new()),
            Duration::from_secs(3),
        );
        assert!(r.is_ok(), "{r:?}");
        pi_client = *env.seen.lock().unwrap().keys().next().unwrap();
        c.stop(Duration::from_secs(1));
    }
    let ev = env.wait_events(1);
    assert_eq!(ev[0].conn, env.conn_of(pi_client));
    assert_eq!(ev[0].process_info, Some(pi_client));
    assert_eq!(ev[0].local_port, port);

    // 2. End of stream: handshake, a request and the FIN in one go.
    let pi_eof = ProcessInfo {
        uuid1: 0x5151,
        uuid2: 2,
    };
    {
        let mut s = TcpStream::connect(env.addr).unwrap();
        let mut w = handshake_frame(pi_eof.uuid1, pi_eof.uuid2);
        w.extend_from_slice(&echo_conn(2));
        s.write_all(&w).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let seen = read_for(&mut s, Duration::from_secs(2));
        assert!(seen.closed, "server did not close after EOF");
    }
    let ev = env.wait_events(2);
    assert_eq!(ev[1].conn, env.conn_of(pi_eof));
    assert_eq!(ev[1].process_info, Some(pi_eof));
    assert_eq!(ev[1].reason, "closed by peer");

    // 3. The server closes on a bad frame (negative length) after a good handshake.
    let pi_bad = ProcessInfo {
        uuid1: 0x5151,
        uuid2: 3,
    };
    {
        let mut s = TcpStream::connect(env.addr).unwrap();
        let mut w = handshake_frame(pi_bad.uuid1, pi_bad.uuid2);
        w.extend_from_slice(&echo_conn(2));
        s.write_all(&w).unwrap();
        let conn = env.conn_of(pi_bad);
        s.write_all(&[0xff, 0xff, 0xff, 0xfe, 0x08, 0x01]).unwrap();
        let seen = read_for(&mut s, Duration::from_secs(2));
        assert!(seen.closed, "server did not close on a bad frame");
        let ev = env.wait_events(3);
        assert_eq!(ev[2].conn, conn);
        assert_eq!(ev[2].process_info, Some(pi_bad));
        assert_ne!(ev[2].reason, "closed by peer");
    }

    // 4. Never handshook: closed at the handshake deadline, no identity.
    let idle = TcpStream::connect(env.addr).unwrap();
    let ev = env.wait_events(4);
    assert_eq!(ev[3].process_info, None);
    drop(idle);
    // (the server already closed it: dropping our end fires nothing more)
    let _ = env.wait_events(4);

    // Every event named a different connection.
    let conns: std::collections::HashSet<ConnRef> = ev.iter().map(|e| e.conn).collect();
    assert_eq!(conns.len(), 4);

    // 5. The server's stop closes the rest, and tells about each.
    let pi_live = ProcessInfo {
        uuid1: 0x5151,
        uuid2: 5,
    };
    let mut s = TcpStream::connect(env.addr).unwrap();
    let mut w = handshake_frame(pi_live.uuid1, pi_live.uuid2);
    w.extend_from_slice(&echo_conn(2));
    s.write_all(&w).unwrap();
    let conn = env.conn_of(pi_live);
    env.server.stop(Duration::from_secs(1));
    let ev = env.wait_events(5);
    assert_eq!(ev[4].conn, conn);
    assert_eq!(ev[4].reason, "stopped");
}

#[test]
fn many_connections_each_fire_once() {
    let env = Env::new(false);
    let n = 200;
    let mut socks = Vec::new();
    for i in 0..n {
        let mut s = TcpStream::connect(env.addr).unwrap();
        let mut w = handshake_frame(0x7777, i + 1);
        w.extend_from_slice(&echo_conn(2));
        s.write_all(&w).unwrap();
        socks.push(s);
    }
    for i in 0..n {
        env.conn_of(ProcessInfo {
            uuid1: 0x7777,
            uuid2: i + 1,
        });
    }
    assert!(env.events.lock().unwrap().is_empty());
    drop(socks);
    let ev = env.wait_events(n as usize);
    let seen = env.seen.lock().unwrap().clone();
    for e in &ev {
        let pi = e.process_info.expect("handshaken");
        assert_eq!(seen[&pi], e.conn);
    }
    let mut pis: Vec<u64> = ev.iter().map(|e| e.process_info.unwrap().uuid2).collect();
    pis.sort_unstable();
    assert_eq!(pis, (1..=n).collect::<Vec<_>>());
    // The server still serves.
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![env.addr],
        ..Default::default()
    });
    c.start().unwrap();
    let r = c.send_request_sync(
        None,
        WritePacket::request_bytes(Commands::CMD_PING, Bytes::from_static(b"x")),
        Duration::from_secs(3),
    );
    assert_eq!(&r.unwrap().body[..], b"x");
    c.stop(Duration::from_secs(1));
}
