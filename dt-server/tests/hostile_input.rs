//! Hostile input on a DtKV server's service and replicate ports, from many connections
//! at once: random byte streams, truncated frames, huge and negative length prefixes,
//! and well-framed requests of every DtKV, Raft and admin command code (and codes
//! nobody registered) whose bodies are random bytes, random protobuf-shaped messages or
//! KvReqs with out-of-range fields. Throughout, a well-behaved client on its own
//! connection keeps writing and reading back its keys; no thread of the process may
//! panic; every frame the server sends must decode; every hostile connection must be
//! closed by the server (on bad input, at the handshake deadline, or on our FIN), and
//! the connection-closed hook must have fired once for each.
//!
//! The replicate port is trusted by design (any node may append entries, an admin may
//! remove a group), so there the group-addressed and admin commands carry group 999
//! (and node id -5) in field 1, in both encodings the decoders know: the test checks
//! the decoders and the error paths, not what a valid admin request is allowed to do.
//! Seeds: `HOSTILE_SEED` (default fixed), printed on failure.

mod net_support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dt_client::kv::{KvBody, KvCommands, KvReq, KvResp};
use dt_codec::encode;
use dt_net::ProcessInfo;
use net_support::*;

/// xorshift64*: a small deterministic generator (no extra crates).
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Up to `max - 1` random bytes.
    fn some_bytes(&mut self, max: u64) -> Bytes {
        let n = self.below(max) as usize;
        Bytes::from(self.bytes(n))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// Field 1 = `v` as varint and as fixed32 (decoders read one or the other).
fn safe_field1(v: i32) -> Vec<u8> {
    let mut out = Vec::new();
    put_tag(&mut out, 1, 0);
    put_varint(&mut out, v as i64 as u64);
    put_tag(&mut out, 1, 5);
    out.extend_from_slice(&v.to_le_bytes());
    out
}

const EXTREMES: [u64; 12] = [
    0,
    1,
    2,
    127,
    128,
    50_001,
    i32::MAX as u64,
    0x8000_0000,
    u32::MAX as u64,
    i64::MAX as u64,
    u64::MAX,
    (-1i64) as u64,
];

/// A random protobuf-shaped message: fields numbered from `min_field`, every wire type
/// (invalid ones now and then), extreme integers, nested messages, short reads.
fn pb_message(rng: &mut Rng, depth: u32, min_field: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(9) {
        let field = if rng.chance(3) {
            rng.pick(&[(1u32 << 29) - 1, 1000, 15, 16])
        } else {
            min_field + rng.below(16) as u32
        };
        let wire = if rng.chance(5) {
            rng.pick(&[3u8, 4, 6, 7])
        } else {
            rng.pick(&[0u8, 0, 1, 2, 2, 5])
        };
        put_tag(&mut out, field, wire);
        match wire {
            0 => {
                let v = if rng.chance(50) {
                    rng.pick(&EXTREMES)
                } else {
                    rng.below(300)
                };
                put_varint(&mut out, v);
            }
            1 => out.extend_from_slice(&rng.pick(&EXTREMES).to_le_bytes()),
            5 => out.extend_from_slice(&(rng.pick(&EXTREMES) as u32).to_le_bytes()),
            2 => {
                let content = match rng.below(10) {
                    0..=3 if depth < 3 => pb_message(rng, depth + 1, 1),
                    4 => {
                        let n = rng.pick(&[8192usize, 8193, 70_000]);
                        vec![b'a'; n]
                    }
                    5 => {
                        // A declared length past the end of the message.
                        put_varint(&mut out, rng.pick(&[10u64, 1 << 20, u32::MAX as u64]));
                        continue;
                    }
                    _ => {
                        let alphabet = b"ab.._/\0\xff";
                        (0..rng.below(20))
                            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                            .collect()
                    }
                };
                put_varint(&mut out, content.len() as u64);
                out.extend_from_slice(&content);
            }
            _ => {}
        }
    }
    out
}

/// A KvReq with out-of-range fields.
fn kv_req(rng: &mut Rng) -> Bytes {
    let keys: [&[u8]; 10] = [
        b"",
        b"h",
        b"h.x",
        b".",
        b"h..x",
        b".h",
        b"h.",
        b"h x",
        b"\xff\xfe",
        b"h/y",
    ];
    let mut key = rng.pick(&keys).to_vec();
    if rng.chance(5) {
        key = vec![b'k'; 8193];
    }
    let value_len = if rng.chance(2) {
        1024 * 1024 + 1
    } else {
        rng.pick(&[0usize, 1, 10, 100])
    };
    let mut r = KvReq::put(
        if rng.chance(80) {
            GROUP
        } else {
            rng.pick(&[-1, 1, i32::MAX])
        },
        key,
        vec![b'v'; value_len],
    );
    r.ttl_millis = rng.pick(&[0i64, -1, 1, i64::MAX, i64::MIN, 1 << 40]);
    if rng.chance(40) {
        r.expect_value = rng.some_bytes(5);
    }
    for _ in 0..rng.below(4) {
        r.keys.push(Bytes::from(rng.pick(&keys).to_vec()));
    }
    for _ in 0..rng.below(4) {
        r.values.push(rng.some_bytes(4));
    }
    if rng.chance(30) {
        r.owner_uuid1 = rng.next();
        r.owner_uuid2 = rng.next();
    }
    encode::to_bytes(&r)
}

/// Every command code tried: 0..=100 (DtKV 5, 6, 65–86, Raft 4, 40–46, admin 47–56,
/// ping, handshake, heartbeat, and the unregistered) plus a few odd ones.
fn all_codes() -> Vec<i32> {
    let mut v: Vec<i32> = (0..=100).collect();
    v.extend([-1, 1000, i32::MAX, i32::MIN]);
    v
}

/// Commands whose valid bodies act on a group or on the node table: on the replicate
/// port they get field 1 forced (group 999, node -5) and no unconstrained body.
fn replicate_guarded(cmd: i32) -> bool {
    matches!(cmd, 4 | 41..=45 | 47..=53 | 56)
}

/// A request body for `cmd` on a port.
fn body_for(rng: &mut Rng, cmd: i32, replicate: bool) -> Bytes {
    if replicate && replicate_guarded(cmd) {
        let mut b = safe_field1(if cmd == 50 { -5 } else { 999 });
        b.extend(pb_message(rng, 0, 2));
        return Bytes::from(b);
    }
    match rng.below(10) {
        0..=2 => {
            let n = rng.pick(&[0usize, 1, 2, 3, 7, 30, 500]);
            Bytes::from(rng.bytes(n))
        }
        3..=6 => Bytes::from(pb_message(rng, 0, 1)),
        _ if KvCommands::is_client_command(cmd) || cmd == 5 || cmd == 6 => kv_req(rng),
        _ => Bytes::from(pb_message(rng, 0, 1)),
    }
}

/// A well-framed packet with a random header: type, seq, timeout.
fn hostile_frame(rng: &mut Rng, cmd: i32, seq: i32, body: Bytes) -> Vec<u8> {
    let w = dt_net::WritePacket {
        packet_type: rng.pick(&[1, 1, 1, 1, 2, 3, 0, 9]),
        command: cmd,
        seq,
        timeout_nanos: rng.pick(&[5_000_000_000, 5_000_000_000, 0, -1, 1, i64::MAX]),
        body: dt_net::WriteBody::Bytes(body),
        ..Default::default()
    };
    let mut out = BytesMut::new();
    w.encode_frame(&mut out);
    out.to_vec()
}

/// What one hostile connection does.
#[derive(Debug, Clone, Copy)]
enum Attack {
    /// Random bytes, no handshake: closed at the latest at the handshake deadline.
    RandomNoHandshake,
    /// Handshake, then random bytes; then our FIN.
    RandomAfterHandshake,
    /// Handshake, then a length prefix that must be refused at once.
    HugeLength(u32),
    /// Handshake, a frame cut short, then our FIN.
    Truncated,
    /// Handshake, then well-framed requests with garbage bodies; then our FIN.
    GarbageBodies,
}

struct Outcome {
    attack: Attack,
    port: u16,
    /// The last connection was closed by the server.
    closed: bool,
    /// Frames received.
    frames: usize,
    /// Connections opened, and closed by the server.
    conns: usize,
    closes: usize,
    took: Duration,
}

/// Garbage frames per GarbageBodies job (`HOSTILE_FRAMES`, default 60).
fn garbage_frames() -> usize {
    std::env::var("HOSTILE_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn hostile(addr: SocketAddr, replicate: bool, attack: Attack, seed: u64) -> Outcome {
    let mut rng = Rng(seed | 1);
    let t0 = Instant::now();
    let pi = ProcessInfo {
        uuid1: 0xbad,
        uuid2: seed,
    };
    let mut r = match attack {
        Attack::RandomNoHandshake => Raw::connect(addr),
        _ => Raw::handshaken(addr, pi),
    };
    let mut frames = 0;
    let (mut conns, mut closes) = (1, 0);
    let (fin, wait) = match attack {
        Attack::RandomNoHandshake => {
            let n = rng.pick(&[1usize, 3, 4, 9, 100, 5000]);
            let _ = r.s.write_all(&rng.bytes(n));
            (false, Duration::from_secs(8))
        }
        Attack::RandomAfterHandshake => {
            let n = rng.pick(&[1usize, 3, 4, 9, 100, 5000]);
            let _ = r.s.write_all(&rng.bytes(n));
            (true, Duration::from_secs(3))
        }
        Attack::HugeLength(len) => {
            let mut b = len.to_be_bytes().to_vec();
            b.extend_from_slice(&rng.bytes(64));
            let _ = r.s.write_all(&b);
            (false, Duration::from_secs(3))
        }
        Attack::Truncated => {
            let cmd = rng.pick(&all_codes());
            let body = body_for(&mut rng, cmd, replicate);
            let f = hostile_frame(&mut rng, cmd, 2, body);
            let cut = 1 + rng.below(f.len() as u64 - 1) as usize;
            let _ = r.s.write_all(&f[..cut]);
            (true, Duration::from_secs(3))
        }
        Attack::GarbageBodies => {
            // One frame at a time; a connection the server closed is replaced, so every
            // frame reaches a decoder.
            let codes = all_codes();
            let mut seq = 2;
            for _ in 0..garbage_frames() {
                let cmd = rng.pick(&codes);
                let body = body_for(&mut rng, cmd, replicate);
                let f = hostile_frame(&mut rng, cmd, seq, body);
                seq += 1;
                let closed = r.s.write_all(&f).is_err()
                    || loop {
                        match r.next_frame_or_close(Duration::from_millis(2)) {
                            FrameOrClose::Frame => frames += 1,
                            FrameOrClose::Closed => break true,
                            FrameOrClose::Timeout => break false,
                        }
                    };
                if closed {
                    closes += 1;
                    conns += 1;
                    seq = 2;
                    r = Raw::handshaken(addr, pi);
                }
            }
            (true, Duration::from_secs(10))
        }
    };
    if fin {
        let _ = r.s.shutdown(std::net::Shutdown::Write);
    }
    let end = Instant::now() + wait;
    let mut closed = false;
    while Instant::now() < end {
        match r.next_frame_or_close(end - Instant::now()) {
            FrameOrClose::Frame => frames += 1,
            FrameOrClose::Closed => {
                closed = true;
                closes += 1;
                break;
            }
            FrameOrClose::Timeout => break,
        }
    }
    Outcome {
        attack,
        port: addr.port(),
        closed,
        frames,
        conns,
        closes,
        took: t0.elapsed(),
    }
}

/// A call that, like a real client, tries again on NOT_RAFT_LEADER: a one-node leader
/// whose dispatcher was starved of CPU (2 shared cores) can see its lease lapse for a
/// moment. At most 1 s of retries; the test bounds the slowest operation anyway.
fn call_retrying(c: &mut Raw, cmd: i32, body: Bytes) -> Option<dt_net::ReadPacket> {
    let end = Instant::now() + Duration::from_secs(1);
    loop {
        let r = c.call(cmd, body.clone());
        match &r {
            Some(p) if p.resp_code == dt_net::CmdCodes::NOT_RAFT_LEADER && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => return r,
        }
    }
}

/// The well-behaved client: puts and reads back its own keys until `stop`; returns the
/// operations done and the slowest one.
fn good_client(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    errors: Arc<Mutex<Vec<String>>>,
) -> (usize, Duration) {
    let mut c = Raw::handshaken(
        addr,
        ProcessInfo {
            uuid1: 0x600d,
            uuid2: 1,
        },
    );
    let (mut ops, mut slowest) = (0usize, Duration::ZERO);
    let mut i = 0u64;
    while !stop.load(Ordering::Acquire) {
        i += 1;
        let key = format!("good_{}", i % 50);
        let value = format!("v{i}");
        let t0 = Instant::now();
        let put = call_retrying(
            &mut c,
            KvCommands::DTKV_PUT,
            encode::to_bytes(&KvReq::put(GROUP, key.clone(), value.clone())),
        );
        let got = call_retrying(
            &mut c,
            KvCommands::DTKV_GET,
            encode::to_bytes(&KvReq::key(GROUP, key)),
        );
        slowest = slowest.max(t0.elapsed());
        let ok = match (&put, &got) {
            (Some(p), Some(g))
                if p.resp_code == 0 && (p.biz_code == 0 || p.biz_code == 3) && g.resp_code == 0 =>
            {
                KvResp::decode(&g.body)
                    .ok()
                    .and_then(|r| r.results.first().and_then(|x| x.node.clone()))
                    .is_some_and(|n| n.data[..] == *value.as_bytes())
            }
            _ => false,
        };
        if !ok {
            errors.lock().unwrap().push(format!(
                "op {i}: put {:?} get {:?}",
                put.map(|p| (p.resp_code, p.biz_code, p.msg)),
                got.map(|p| (p.resp_code, p.biz_code, p.msg))
            ));
            if errors.lock().unwrap().len() > 5 {
                break;
            }
        }
        ops += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    (ops, slowest)
}

#[test]
fn hostile_connections_do_not_disturb_a_good_client() {
    let seed: u64 = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234);
    let _ = env_logger::builder().is_test(true).try_init();
    // Any panic on any thread of this process (IO, dispatcher, daemon) fails the test.
    let panics = Arc::new(AtomicUsize::new(0));
    let p2 = panics.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        p2.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));

    let dir = tempfile::tempdir().unwrap();
    // every connection the hook was told about (to find one told twice)
    let closed_conns: Arc<Mutex<Vec<dt_net::ConnRef>>> = Arc::default();
    let cc2 = closed_conns.clone();
    let n = one_node_with(dir.path(), |s| {
        s.raft_server().on_conn_closed(move |c| {
            cc2.lock().unwrap().push(c.conn);
        })
    });
    let closes = || closed_conns.lock().unwrap().len();
    // The server's self check (raft.md §3.1) connected to its own replicate port and
    // disconnected; on a loaded machine the server may see that close only now. Count
    // from after it, so that every close counted below is one of this test's.
    assert!(
        eventually(Duration::from_secs(5), || closes() >= 1),
        "the self check's connection was not closed"
    );
    let closes_before = closes();

    let stop = Arc::new(AtomicBool::new(false));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let good = {
        let (stop, errors, addr) = (stop.clone(), errors.clone(), n.service);
        std::thread::spawn(move || good_client(addr, stop, errors))
    };

    let mut plan = Vec::new();
    for (addr, replicate) in [(n.service, false), (n.replicate, true)] {
        for i in 0..4 {
            plan.push((addr, replicate, Attack::RandomNoHandshake, i));
            plan.push((addr, replicate, Attack::RandomAfterHandshake, i));
            plan.push((addr, replicate, Attack::Truncated, i));
        }
        for len in [
            0x7fff_ffffu32,
            0x8000_0000,
            0xffff_ffff,
            5 * 1024 * 1024 + 1,
            0,
        ] {
            plan.push((addr, replicate, Attack::HugeLength(len), 0));
        }
        for i in 0..24 {
            plan.push((addr, replicate, Attack::GarbageBodies, i));
        }
    }
    let rng = Mutex::new(Rng(seed));
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let hs: Vec<_> = plan
            .chunks(plan.len().div_ceil(8))
            .map(|chunk| {
                let seeds: Vec<u64> = chunk.iter().map(|_| rng.lock().unwrap().next()).collect();
                s.spawn(move || {
                    chunk
                        .iter()
                        .zip(seeds)
                        .map(|(&(addr, rep, attack, _), sd)| hostile(addr, rep, attack, sd))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    stop.store(true, Ordering::Release);
    let (ops, slowest) = good.join().unwrap();

    let errs = errors.lock().unwrap().clone();
    assert!(
        errs.is_empty(),
        "seed {seed}: the good client failed: {errs:?}"
    );
    assert!(
        ops >= 20,
        "seed {seed}: the good client did only {ops} operations"
    );
    assert!(
        slowest < Duration::from_secs(3),
        "seed {seed}: a good operation took {slowest:?}"
    );
    let not_closed: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.closed)
        .map(|o| (o.attack, o.port, o.took))
        .collect();
    assert!(
        not_closed.is_empty(),
        "seed {seed}: the server kept these connections open: {not_closed:?}"
    );
    let answered: usize = outcomes.iter().map(|o| o.frames).sum();
    let opened = outcomes.iter().map(|o| o.conns).sum::<usize>() + 1; // + the good client
    let server_closed: usize = outcomes.iter().map(|o| o.closes).sum();
    eprintln!(
        "good client: {ops} ops, slowest {slowest:?}; hostile: {} connections, {server_closed} \
         closed by the server, {answered} answers",
        opened - 1
    );
    assert!(
        answered > 100,
        "seed {seed}: only {answered} answers to garbage"
    );
    // Every connection we opened (the good client's closes when its thread ends) is
    // closed on the server too, and was told once.
    assert!(
        eventually(Duration::from_secs(3), || closes() - closes_before
            >= opened),
        "seed {seed}: {} closes seen for {opened} connections",
        closes() - closes_before
    );
    // The server still serves a new client.
    let mut c = Raw::handshaken(
        n.service,
        ProcessInfo {
            uuid1: 0x600d,
            uuid2: 2,
        },
    );
    let r = c
        .call(
            KvCommands::DTKV_PUT,
            encode::to_bytes(&KvReq::put(GROUP, "after", "x")),
        )
        .expect("answered");
    assert_eq!((r.resp_code, r.biz_code), (0, 0));
    drop(c);
    // Its close is seen before the stop (a stop that ran out of time on a loaded
    // machine could leave it untold, which is not what this test is about).
    assert!(
        eventually(Duration::from_secs(5), || closes() - closes_before > opened),
        "seed {seed}: the last client's close was not seen"
    );
    n.server.stop(Duration::from_secs(2));
    // Exactly once per connection.
    let told = closed_conns.lock().unwrap().clone();
    let distinct: std::collections::HashSet<_> = told.iter().collect();
    assert_eq!(
        distinct.len(),
        told.len(),
        "seed {seed}: the hook fired more than once for some connection"
    );
    assert_eq!(
        closes() - closes_before,
        opened + 1,
        "seed {seed}: closes told for this test's {} connections",
        opened + 1
    );
    assert_eq!(
        panics.load(Ordering::SeqCst),
        0,
        "seed {seed}: a thread panicked"
    );
}

/// Regression (found by the test above): a 1 MiB value (legal for DtKV) in a group whose
/// log files are 1 MiB made an entry the log could not store; the write failed and the
/// group stopped for good. It is now refused before it gets an index (SYS_ERROR with
/// the reason) and the group goes on.
#[test]
fn a_value_larger_than_a_log_file_is_refused_and_the_group_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let n = one_node(dir.path()); // log_file_size 1 MiB
    let mut c = Raw::handshaken(
        n.service,
        ProcessInfo {
            uuid1: 0x1a,
            uuid2: 1,
        },
    );
    let big = vec![b'v'; dt_client::kv::MAX_VALUE_SIZE];
    let r = c
        .call(
            KvCommands::DTKV_PUT,
            encode::to_bytes(&KvReq::put(GROUP, "big", big)),
        )
        .expect("answered");
    assert_eq!(r.resp_code, dt_net::CmdCodes::SYS_ERROR, "{}", r.msg);
    assert!(r.msg.contains("larger than a log file"), "{}", r.msg);
    let r = c
        .call(
            KvCommands::DTKV_PUT,
            encode::to_bytes(&KvReq::put(GROUP, "small", "x")),
        )
        .expect("answered");
    assert_eq!((r.resp_code, r.biz_code), (0, 0), "{}", r.msg);
    n.server.stop(Duration::from_secs(2));
}
