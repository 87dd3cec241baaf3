//! A peer whose last packet needs no answer and whose FIN arrives in the same read must
//! still be closed (no connection left in CLOSE-WAIT), on the server and on the client.
//!
//! To make "data and FIN in one read" deterministic, the IO thread is kept busy by an
//! inline processor that sleeps while the peer sends its last bytes and shuts down its
//! write side; when the IO thread comes back, both are waiting in the socket together.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dt_net::*;

mod common;
use common::*;

const BLOCK_CMD: i32 = 200;
const BLOCK: Duration = Duration::from_millis(300);
/// How soon after the IO thread is free again the socket must be closed.
const CLOSE_WITHIN: Duration = Duration::from_millis(100);

type Stamp = Arc<Mutex<Option<Instant>>>;

/// An inline processor that blocks the IO thread for [`BLOCK`] and records when it ends.
fn blocker(done: Stamp) -> impl ReqProcessor {
    FnProcessor(move |_p: &ReadPacket, _c: &ReqContext| {
        std::thread::sleep(BLOCK);
        *done.lock().unwrap() = Some(Instant::now());
        None
    })
}

/// Reads until EOF or reset; returns when that happened, or `None` if the peer kept the
/// connection open for `wait`.
fn wait_eof(s: &mut TcpStream, wait: Duration) -> Option<Instant> {
    let end = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            return None;
        }
        s.set_read_timeout(Some(end - now)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(Instant::now()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return None
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(Instant::now()),
        }
    }
}

fn read_frame(s: &mut TcpStream) -> ReadPacket {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let n = i32::from_be_bytes(len) as usize;
    let mut buf = BytesMut::from(&len[..]);
    buf.resize(4 + n, 0);
    s.read_exact(&mut buf[4..]).unwrap();
    FrameDecoder::new(1 << 20)
        .decode(&mut buf)
        .unwrap()
        .unwrap()
}

fn server_case(name: &str, last: Vec<u8>) {
    let done: Stamp = Arc::default();
    let mut server = NioServer::new(NioServerConfig {
        io_threads: 1,
        ..Default::default()
    });
    server.register(BLOCK_CMD, blocker(done.clone()));
    server.start().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();

    let mut b = TcpStream::connect(addr).unwrap();
    b.set_nodelay(true).unwrap();
    b.write_all(&handshake_frame(7, 8)).unwrap();
    assert_eq!(read_frame(&mut b).command, Commands::CMD_HANDSHAKE);

    let mut a = TcpStream::connect(addr).unwrap();
    a.write_all(&handshake_frame(5, 6)).unwrap();
    a.write_all(&req_frame(1, BLOCK_CMD, 2, 5_000_000_000, b""))
        .unwrap();
    std::thread::sleep(BLOCK / 3);
    // The IO thread is asleep: the last packet and the FIN arrive together.
    b.write_all(&last).unwrap();
    b.shutdown(Shutdown::Write).unwrap();

    let eof = wait_eof(&mut b, Duration::from_secs(3));
    let free = done.lock().unwrap().expect("the blocking processor ran");
    let eof = eof.unwrap_or_else(|| panic!("{name}: server never closed the connection"));
    let late = eof.saturating_duration_since(free);
    println!("{name}: closed {late:?} after the IO thread was free");
    assert!(
        late < CLOSE_WITHIN,
        "{name}: closed only {late:?} after the IO thread was free"
    );
    drop(a);
    server.stop(Duration::from_secs(1));
}

#[test]
fn server_closes_after_one_way_and_fin() {
    server_case(
        "one-way",
        req_frame(3, Commands::CMD_PING, 2, 5_000_000_000, b"x"),
    );
}

#[test]
fn server_closes_after_timeout_0_request_and_fin() {
    server_case("timeout 0", req_frame(1, Commands::CMD_PING, 2, 0, b"x"));
}

#[test]
fn server_closes_after_partial_frame_and_fin() {
    let f = req_frame(1, Commands::CMD_PING, 2, 5_000_000_000, &[1u8; 100]);
    server_case("partial frame", f[..50].to_vec());
}

/// Many connections sending a one-way and closing at once, without any blocking: every
/// one of them is closed by the server.
#[test]
fn server_closes_every_one_of_many_one_way_then_close() {
    let server = {
        let mut s = NioServer::new(NioServerConfig {
            io_threads: 1,
            ..Default::default()
        });
        s.start().unwrap();
        s
    };
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let mut socks = Vec::new();
    for i in 0..100u64 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut data = handshake_frame(1, 100 + i);
        data.extend(req_frame(3, Commands::CMD_PING, 2, 5_000_000_000, b"x"));
        s.write_all(&data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        socks.push(s);
    }
    let leaked = socks
        .iter_mut()
        .map(|s| wait_eof(s, Duration::from_secs(2)))
        .filter(Option::is_none)
        .count();
    assert_eq!(leaked, 0, "{leaked} of 100 connections left open");
}

fn client_case(name: &str, last: Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let done: Stamp = Arc::default();
    let mut client = NioClient::new(NioClientConfig {
        peers: vec![addr],
        ..Default::default()
    });
    client.register(BLOCK_CMD, blocker(done.clone()));
    client.start().unwrap();

    let (mut s, _) = listener.accept().unwrap();
    s.set_nodelay(true).unwrap();
    let hs = read_frame(&mut s);
    assert_eq!(hs.command, Commands::CMD_HANDSHAKE);
    let body = HandshakeBody::new(
        None,
        Some(ConfigBody {
            max_packet_size: 1 << 20,
            max_body_size: 1 << 20,
            ..Default::default()
        }),
    );
    let mut resp = WritePacket::response(WriteBody::Encodable(Box::new(body)));
    resp.command = Commands::CMD_HANDSHAKE;
    resp.seq = hs.seq;
    let mut out = BytesMut::new();
    resp.encode_frame(&mut out);
    // A pushed one-way that blocks the client's IO thread.
    out.extend_from_slice(&req_frame(3, BLOCK_CMD, 1, 5_000_000_000, b""));
    s.write_all(&out).unwrap();
    assert!(client.wait_connected(Duration::from_secs(5)));
    std::thread::sleep(BLOCK / 3);
    s.write_all(&last).unwrap();
    s.shutdown(Shutdown::Write).unwrap();

    let eof = wait_eof(&mut s, Duration::from_secs(3));
    let free = done.lock().unwrap().expect("the blocking processor ran");
    let eof = eof.unwrap_or_else(|| panic!("{name}: client never closed the connection"));
    let late = eof.saturating_duration_since(free);
    println!("{name}: client closed {late:?} after its IO thread was free");
    assert!(
        late < CLOSE_WITHIN,
        "{name}: client closed only {late:?} after its IO thread was free"
    );
    client.stop(Duration::from_secs(1));
}

#[test]
fn client_closes_after_pushed_one_way_and_fin() {
    client_case(
        "client one-way",
        req_frame(3, Commands::CMD_PING, 2, 5_000_000_000, b"x"),
    );
}

#[test]
fn client_closes_after_partial_frame_and_fin() {
    let f = req_frame(3, Commands::CMD_PING, 2, 5_000_000_000, &[1u8; 100]);
    client_case("client partial frame", f[..50].to_vec());
}

/// A connection waiting for read budget (its frame does not fit next to another one's)
/// is still closed when its peer resets it.
#[test]
fn server_closes_a_connection_waiting_for_budget_when_its_peer_goes() {
    let mut server = NioServer::new(NioServerConfig {
        io_threads: 1,
        max_packet_size: 1 << 20,
        max_body_size: 1 << 20,
        max_read_buffer_bytes: (1 << 20) + 64 * 1024,
        ..Default::default()
    });
    server.start().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let big = req_frame(
        1,
        Commands::CMD_PING,
        2,
        5_000_000_000,
        &vec![1u8; (1 << 20) - 64],
    );
    let start = |uuid| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&handshake_frame(9, uuid)).unwrap();
        s.write_all(&big[..100 * 1024]).unwrap();
        s
    };
    let _hog = start(1);
    std::thread::sleep(Duration::from_millis(200));
    let waiting = start(2);
    let t0 = Instant::now();
    while server.stats().connections < 2 && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.stats().connections, 2);
    // Closed with its handshake response unread: the peer resets the connection.
    drop(waiting);
    let t1 = Instant::now();
    while server.stats().connections > 1 && t1.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        server.stats().connections,
        1,
        "the waiting connection outlived its peer"
    );
    server.stop(Duration::from_secs(1));
}
