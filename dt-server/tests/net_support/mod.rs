//! Shared helpers of dt-server's networked tests: a one-node DtKV server on loopback and
//! a raw TCP client that speaks the framing by hand (so a test controls every byte).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dt_net::{
    Commands, FrameDecoder, HandshakeBody, ProcessInfo, ReadPacket, WriteBody, WritePacket,
};
use dt_raft::server::RaftServerConfig;
use dt_server::kv_server::{DtKvServer, DtKvServerConfig, KvGroupConfig};

/// The group of the one-node server.
pub const GROUP: i32 = 0;

/// `n` free loopback ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

/// A started one-node DtKV server (group 0) with its replicate and service addresses.
pub struct OneNode {
    pub server: DtKvServer,
    pub replicate: SocketAddr,
    pub service: SocketAddr,
}

/// Starts a one-node DtKV server in `dir` and waits until its group is ready.
pub fn one_node(dir: &std::path::Path) -> OneNode {
    one_node_with(dir, |_| {})
}

/// [`one_node`], running `before_start` on the server before it starts (e.g. to add a
/// connection-closed listener).
pub fn one_node_with(dir: &std::path::Path, before_start: impl FnOnce(&DtKvServer)) -> OneNode {
    let p = free_ports(2);
    let scfg = RaftServerConfig {
        servers: format!("1,127.0.0.1:{};", p[0]),
        node_id: 1,
        replicate_port: p[0],
        service_port: p[1],
        bind_host: "127.0.0.1".parse().unwrap(),
        elect_timeout: Duration::from_millis(300),
        heartbeat_interval: Duration::from_millis(100),
        rpc_timeout: Duration::from_millis(1000),
        io_threads: 1,
        block_io_threads: 1,
        ..Default::default()
    };
    let g = KvGroupConfig::new(GROUP, vec![1]);
    let mut cfg = DtKvServerConfig::new(scfg, vec![g], dir.to_path_buf());
    cfg.log_file_size = 1 << 20;
    let server = DtKvServer::new(cfg).unwrap();
    before_start(&server);
    server.start().unwrap();
    server.wait_group_ready(Duration::from_secs(20)).unwrap();
    OneNode {
        server,
        replicate: format!("127.0.0.1:{}", p[0]).parse().unwrap(),
        service: format!("127.0.0.1:{}", p[1]).parse().unwrap(),
    }
}

/// A request frame (length prefix included).
pub fn frame(cmd: i32, seq: i32, body: Bytes) -> Vec<u8> {
    let w = WritePacket {
        packet_type: 1,
        command: cmd,
        seq,
        timeout_nanos: 5_000_000_000,
        body: WriteBody::Bytes(body),
        ..Default::default()
    };
    let mut out = BytesMut::new();
    w.encode_frame(&mut out);
    out.to_vec()
}

/// A handshake request frame (seq 1) of client `pi`.
pub fn handshake_frame(pi: ProcessInfo) -> Vec<u8> {
    let body = dt_codec::encode::to_bytes(&HandshakeBody::new(Some(pi), None));
    frame(Commands::CMD_HANDSHAKE, 1, body)
}

/// What [`Raw::next_frame_or_close`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOrClose {
    /// A frame (well-formed: anything else fails the test).
    Frame,
    /// The server closed (end of stream or reset).
    Closed,
    /// Nothing within the wait.
    Timeout,
}

enum Got {
    Frame(ReadPacket),
    Closed,
    Timeout,
}

/// A raw client connection.
pub struct Raw {
    pub s: TcpStream,
    buf: BytesMut,
    dec: FrameDecoder,
    pub next_seq: i32,
}

impl Raw {
    /// Connects (no handshake).
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Raw {
            s,
            buf: BytesMut::new(),
            dec: FrameDecoder::new(64 << 20),
            next_seq: 2,
        }
    }

    /// Connects and handshakes as `pi`.
    pub fn handshaken(addr: SocketAddr, pi: ProcessInfo) -> Raw {
        let mut r = Raw::connect(addr);
        r.s.write_all(&handshake_frame(pi)).unwrap();
        let p = r
            .next_frame(Duration::from_secs(5))
            .expect("handshake answered");
        assert_eq!(p.command, Commands::CMD_HANDSHAKE);
        r
    }

    /// Sends a request and waits for its answer (frames for other seqs, e.g. pushes,
    /// are skipped).
    pub fn call(&mut self, cmd: i32, body: Bytes) -> Option<ReadPacket> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.s.write_all(&frame(cmd, seq, body)).ok()?;
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let p = self.next_frame(end - Instant::now())?;
            if p.seq == seq && p.packet_type == 2 {
                return Some(p);
            }
        }
        None
    }

    /// The next frame within `wait`; `None` on timeout or close.
    pub fn next_frame(&mut self, wait: Duration) -> Option<ReadPacket> {
        match self.read_frame(wait) {
            Got::Frame(p) => Some(p),
            _ => None,
        }
    }

    /// Reads the next frame within `wait` and says whether one came, the server
    /// closed, or the time ran out.
    pub fn next_frame_or_close(&mut self, wait: Duration) -> FrameOrClose {
        match self.read_frame(wait) {
            Got::Frame(_) => FrameOrClose::Frame,
            Got::Closed => FrameOrClose::Closed,
            Got::Timeout => FrameOrClose::Timeout,
        }
    }

    fn read_frame(&mut self, wait: Duration) -> Got {
        let end = Instant::now() + wait;
        let mut tmp = [0u8; 8192];
        loop {
            if let Some(p) = self
                .dec
                .decode(&mut self.buf)
                .expect("server frames decode")
            {
                return Got::Frame(p);
            }
            let now = Instant::now();
            if now >= end {
                return Got::Timeout;
            }
            self.s.set_read_timeout(Some(end - now)).unwrap();
            match self.s.read(&mut tmp) {
                Ok(0) => return Got::Closed,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Got::Timeout
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Got::Closed,
            }
        }
    }

    /// Whether the server closes the connection within `wait` (reading and dropping
    /// whatever it still sends).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let end = Instant::now() + wait;
        let mut tmp = [0u8; 8192];
        loop {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            self.s.set_read_timeout(Some(end - now)).unwrap();
            match self.s.read(&mut tmp) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

/// Polls `f` every 5 ms until it holds or `wait` passes; whether it held.
pub fn eventually(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + wait;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
