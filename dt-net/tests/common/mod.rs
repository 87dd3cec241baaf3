//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dt_net::{FrameDecoder, ReadPacket};

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn jsonl(path: PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A handshake request frame (seq 1) with the given uuid.
pub fn handshake_frame(uuid1: u64, uuid2: u64) -> Vec<u8> {
    use dt_net::*;
    let body = HandshakeBody::new(Some(ProcessInfo { uuid1, uuid2 }), None);
    let w = WritePacket {
        packet_type: 1,
        command: Commands::CMD_HANDSHAKE,
        seq: 1,
        timeout_nanos: 3_000_000_000,
        body: WriteBody::Encodable(Box::new(body)),
        ..Default::default()
    };
    let mut out = BytesMut::new();
    w.encode_frame(&mut out);
    out.to_vec()
}

pub fn req_frame(kind: i32, cmd: i32, seq: i32, timeout: i64, body: &[u8]) -> Vec<u8> {
    use dt_net::*;
    let w = WritePacket {
        packet_type: kind,
        command: cmd,
        seq,
        timeout_nanos: timeout,
        body: WriteBody::Bytes(bytes::Bytes::copy_from_slice(body)),
        ..Default::default()
    };
    let mut out = BytesMut::new();
    w.encode_frame(&mut out);
    out.to_vec()
}

/// What a raw TCP peer saw: the frames received and whether the server closed.
pub struct Observed {
    pub frames: Vec<(ReadPacket, Vec<u8>)>,
    pub closed: bool,
}

/// Sends `writes` (with a short pause between) on a raw connection, then reads for `window`.
pub fn raw_exchange(addr: SocketAddr, writes: &[Vec<u8>], window: Duration) -> Observed {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    for w in writes {
        if s.write_all(w).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    read_for(&mut s, window)
}

pub fn read_for(s: &mut TcpStream, window: Duration) -> Observed {
    let end = Instant::now() + window;
    let mut buf = BytesMut::new();
    let mut raw = Vec::new();
    let mut closed = false;
    let mut tmp = vec![0u8; 1 << 16];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        s.set_read_timeout(Some((end - now).max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut tmp) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                raw.extend_from_slice(&tmp[..n]);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break
            }
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let mut d = FrameDecoder::new(i32::MAX as usize);
    let mut frames = Vec::new();
    let mut off = 0;
    while let Some(p) = d.decode(&mut buf).unwrap() {
        let len = 4 + i32::from_be_bytes(raw[off..off + 4].try_into().unwrap()) as usize;
        frames.push((p, raw[off..off + len].to_vec()));
        off += len;
    }
    Observed { frames, closed }
}

/// The resident set size of this process (VmRSS), in bytes.
pub fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// A handshaken raw connection, non-blocking afterwards.
pub fn raw_handshaken(addr: SocketAddr, uuid2: u64) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&handshake_frame(0x5151, uuid2)).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Writes `data` cyclically (from `*off`) until the socket would block; false once the
/// server closed the connection.
pub fn write_until_blocked(s: &mut TcpStream, data: &[u8], off: &mut usize) -> bool {
    loop {
        let start = *off % data.len();
        match s.write(&data[start..]) {
            Ok(0) => return false,
            Ok(n) => *off += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Checks that `server` (on `addr`) still answers a new client's ping while others hold
/// it busy, then drops `peers` and checks that the server closes every connection
/// within 3 s (closing with unread data resets them, so even paused connections go).
pub fn still_serves_then_closes_dropped_peers<T>(
    server: &dt_net::NioServer,
    addr: SocketAddr,
    peers: T,
) {
    use bytes::Bytes;
    use dt_net::*;
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![addr],
        ..Default::default()
    });
    c.start().unwrap();
    assert!(c.wait_connected(Duration::from_secs(5)));
    let r = c
        .send_request_sync(
            None,
            WritePacket::request_bytes(Commands::CMD_PING, Bytes::from_static(b"hi")),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(&r.body[..], b"hi");
    c.stop(Duration::from_secs(1));
    drop(peers);
    // A worker may be closing tens of MiB of unsent output per connection; on a loaded
    // machine (the whole test suite in parallel on 2 cores) 3 s was seen not to be enough.
    let t1 = Instant::now();
    while server.stats().connections > 0 && t1.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        server.stats().connections,
        0,
        "connections outlived their peers by {:?}",
        t1.elapsed()
    );
}

/// Tracks one server figure and this process's RSS growth against their bounds, sample
/// by sample, failing the test at the first sample over either bound.
pub struct BoundWatch {
    what: &'static str,
    bound: usize,
    rss0: usize,
    rss_bound: usize,
    /// The largest figure seen.
    pub max: usize,
    /// The largest RSS growth seen.
    pub max_rss: usize,
    t0: Instant,
}

impl BoundWatch {
    /// Starts watching `what` (bounded by `bound` bytes) and RSS growth over `rss0` (by
    /// `rss_bound`).
    pub fn new(what: &'static str, bound: usize, rss0: usize, rss_bound: usize) -> Self {
        BoundWatch {
            what,
            bound,
            rss0,
            rss_bound,
            max: 0,
            max_rss: 0,
            t0: Instant::now(),
        }
    }

    /// Time since the watch started.
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Checks one sample of the figure, and the RSS now.
    pub fn sample(&mut self, value: usize) {
        const MIB: usize = 1024 * 1024;
        let rss = rss_bytes().saturating_sub(self.rss0);
        self.max = self.max.max(value);
        self.max_rss = self.max_rss.max(rss);
        assert!(
            value <= self.bound,
            "{} {} MiB > bound {} MiB after {:?}",
            self.what,
            value / MIB,
            self.bound / MIB,
            self.elapsed()
        );
        assert!(
            rss <= self.rss_bound,
            "RSS grew by {} MiB > {} MiB after {:?}",
            rss / MIB,
            self.rss_bound / MIB,
            self.elapsed()
        );
    }
}
