//! Bad input never panics and never hurts other connections: each case below must close
//! the offending connection (or answer it with the right code), while a well-behaved
//! client on the same server keeps being served. Plus a few thousand random byte streams.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use dt_net::*;

const T: Duration = Duration::from_secs(5);
const UUID: (u64, u64) = (0x0102030405060708, 0x1112131415161718);

/// Decodes a body that must start with a valid message: wire type 3 is fatal.
struct Strict;
impl ReqProcessor for Strict {
    type Body = ();
    fn decode(&self, p: &ReadPacket) -> Result<(), dt_codec::PbError> {
        p.decode_body::<dt_codec::PbMessageCallback>().map(|_| ())
    }
    fn process(&self, _p: ReadPacket, _b: (), _c: ReqContext) -> Option<WritePacket> {
        Some(WritePacket::response(WriteBody::Empty))
    }
}

struct Env {
    server: NioServer,
    addr: SocketAddr,
    good: NioClient,
}

impl Env {
    fn new() -> Env {
        let mut server = NioServer::new(NioServerConfig {
            io_threads: 1, // everything on one worker: the worst case for isolation
            max_packet_size: 64 * 1024,
            max_body_size: 60 * 1024,
            handshake_timeout: Duration::from_millis(500),
            write_high_water: 256 * 1024,
            ..Default::default()
        });
        server.register(100, Strict);
        server.start().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
        let mut good = NioClient::new(NioClientConfig {
            peers: vec![addr],
            ..Default::default()
        });
        good.start().unwrap();
        assert!(good.wait_connected(T));
        Env { server, addr, good }
    }

    fn assert_served(&self) {
        let r = self
            .good
            .send_request_sync(
                None,
                WritePacket::request_bytes(1, Bytes::from_static(b"ok")),
                T,
            )
            .expect("the good client must keep being served");
        assert_eq!(&r.body[..], b"ok");
    }

    /// Sends handshake + `bad` and expects the server to close without answering `bad`.
    fn expect_close(&self, name: &str, handshake: bool, bad: Vec<u8>) {
        let mut writes = Vec::new();
        if handshake {
            writes.push(handshake_frame(UUID.0, UUID.1));
        }
        writes.push(bad);
        let obs = raw_exchange(self.addr, &writes, Duration::from_millis(1500));
        assert!(obs.closed, "{name}: connection not closed");
        let n = obs.frames.len();
        let expect = usize::from(handshake);
        assert_eq!(n, expect, "{name}: unexpected frames {:?}", obs.frames);
        self.assert_served();
    }
}

fn frame_of(packet: &[u8]) -> Vec<u8> {
    let mut v = (packet.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(packet);
    v
}

#[test]
fn each_bad_input_closes_only_its_connection() {
    let env = Env::new();
    // malformed frame: a varint that never ends
    env.expect_close(
        "malformed",
        true,
        frame_of(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]),
    );
    // wrong magic
    let mut hs = handshake_frame(UUID.0, UUID.1);
    let pos = hs.windows(2).position(|w| w == [0x09, 0x13]).unwrap();
    hs[pos + 1] ^= 0xff;
    env.expect_close("wrong magic", false, hs);
    // missing process info
    let body = dt_codec::encode::to_bytes(&HandshakeBody::new(None, None));
    env.expect_close(
        "no process info",
        false,
        req_frame(1, 2, 1, 1_000_000_000, &body),
    );
    // zero uuid
    env.expect_close("zero uuid", false, handshake_frame(0, 0));
    // first packet not a handshake
    env.expect_close(
        "not handshake first",
        false,
        req_frame(1, 1, 1, 1_000_000_000, b"x"),
    );
    // oversize length: closed on the prefix alone
    env.expect_close("oversize", true, (1_000_000u32).to_be_bytes().to_vec());
    // negative length
    env.expect_close("negative", true, vec![0xff, 0xff, 0xff, 0xfe, 0x08, 0x01]);
    // zero length
    env.expect_close("zero length", true, vec![0, 0, 0, 0]);
    // field after body
    let mut p = req_frame(1, 1, 2, 1_000_000_000, b"x")[4..].to_vec();
    p.extend_from_slice(&[0x28, 0x01]);
    env.expect_close("field after body", true, frame_of(&p));
    // unknown wire type (3) in the header
    env.expect_close(
        "wire type 3",
        true,
        frame_of(&[0x08, 0x01, 0x10, 0x01, 0x1b]),
    );
    // body before the command
    env.expect_close(
        "body before command",
        true,
        frame_of(&[0x7a, 0x01, 0x00, 0x08, 0x01, 0x10, 0x01]),
    );
    // a body that fails to decode
    env.expect_close(
        "bad body",
        true,
        req_frame(1, 100, 2, 1_000_000_000, &[0x0b]),
    );
    // a frame whose protobuf runs past its end
    env.expect_close(
        "length overrun",
        true,
        frame_of(&[0x08, 0x01, 0x10, 0x01, 0x7a, 0x05, 0x00]),
    );
}

#[test]
fn answered_not_closed_cases() {
    let env = Env::new();
    let writes = vec![
        handshake_frame(UUID.0, UUID.1),
        req_frame(1, 77, 2, 1_000_000_000, b""), // unknown command
        req_frame(1, 1, 3, 0, b"z"),             // no timeout: dropped
        req_frame(1, 1, 4, -5, b"z"),            // negative timeout: dropped
        req_frame(3, 1, 5, 1_000_000_000, b"z"), // one-way ping: no answer
        req_frame(1, 1, 6, 1_000_000_000, b"y"),
    ];
    let obs = raw_exchange(env.addr, &writes, Duration::from_millis(400));
    assert!(!obs.closed);
    let got: Vec<_> = obs
        .frames
        .iter()
        .map(|(p, _)| (p.command, p.seq, p.resp_code, p.msg.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 1, 0, String::new()),
            (77, 2, 3, "command 77 not support".to_string()),
            (1, 6, 0, String::new())
        ]
    );
}

#[test]
fn slow_trickling_peer_is_cut_at_the_handshake_deadline() {
    let env = Env::new();
    let hs = handshake_frame(UUID.0, UUID.1);
    let mut s = TcpStream::connect(env.addr).unwrap();
    let t0 = Instant::now();
    let mut closed = false;
    for b in hs.iter() {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        env.assert_served();
        std::thread::sleep(Duration::from_millis(40));
        if t0.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !closed {
        closed = read_for(&mut s, Duration::from_millis(500)).closed;
    }
    assert!(
        closed,
        "a trickling peer must be closed at the handshake deadline"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    env.assert_served();
}

#[test]
fn peer_that_never_reads_is_bounded() {
    let env = Env::new();
    let mut s = TcpStream::connect(env.addr).unwrap();
    s.write_all(&handshake_frame(UUID.0, UUID.1)).unwrap();
    s.set_nonblocking(true).unwrap();
    let ping = req_frame(1, 1, 2, 60_000_000_000, &vec![7u8; 32 * 1024]);
    let mut written = 0usize;
    let t0 = Instant::now();
    let mut stalled_since = None;
    while t0.elapsed() < Duration::from_secs(5) {
        // keep the stream well-formed across partial writes
        let off = written % ping.len();
        match s.write(&ping[off..]) {
            Ok(n) => {
                written += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let st = *stalled_since.get_or_insert_with(Instant::now);
                if st.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("server closed a slow reader instead of pausing it: {e}"),
        }
    }
    // The server stopped reading: what it accepted is bounded by its write high-water
    // mark plus kernel socket buffers, far below what a blind reader would take in 5 s.
    println!(
        "peer wrote {written} bytes in {:?} before the server stopped reading",
        t0.elapsed()
    );
    assert!(
        written < 64 * 1024 * 1024,
        "server kept reading: {written} bytes"
    );
    env.assert_served();
    drop(s);
    env.assert_served();
}

/// xorshift, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn thousands_of_random_byte_streams() {
    let env = Env::new();
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let hs = handshake_frame(UUID.0, UUID.1);
    let n = 2000;
    for i in 0..n {
        let mut data = Vec::new();
        if i % 2 == 0 {
            data.extend_from_slice(&hs);
        }
        let len = (rng.next() % 200) as usize;
        match i % 4 {
            // pure noise
            0 | 1 => data.extend((0..len).map(|_| rng.next() as u8)),
            // a plausible frame with a noisy packet
            _ => {
                let pkt: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                data.extend_from_slice(&frame_of(&pkt));
            }
        }
        let mut s = TcpStream::connect(env.addr).unwrap();
        let _ = s.write_all(&data);
        drop(s);
        if i % 250 == 0 {
            env.assert_served();
        }
    }
    env.assert_served();
    env.server.stop(Duration::from_secs(1));
}

#[test]
fn frame_decoder_random_splits_never_panic() {
    let mut rng = Rng(12345);
    for _ in 0..3000 {
        let len = (rng.next() % 300) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut d = FrameDecoder::new(1 << 16);
        let mut buf = bytes::BytesMut::new();
        let mut i = 0;
        while i < data.len() {
            let step = 1 + (rng.next() % 17) as usize;
            let end = (i + step).min(data.len());
            buf.extend_from_slice(&data[i..end]);
            i = end;
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        i = data.len();
                        break;
                    }
                }
            }
        }
    }
}
