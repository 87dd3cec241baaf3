//! NioClient and NioServer working together: pipelining, deadlines, flow control, seq
//! numbers, executors, push, peers and reconnect, graceful stop, futures, perf hooks.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_common::{PerfCallback, PerfType};
use dt_net::*;

const T: Duration = Duration::from_secs(5);

fn addr(s: &NioServer) -> SocketAddr {
    format!("127.0.0.1:{}", s.port()).parse().unwrap()
}

fn server_with(f: impl FnOnce(&mut NioServer), cfg: NioServerConfig) -> NioServer {
    let mut s = NioServer::new(cfg);
    f(&mut s);
    s.start().unwrap();
    s
}

fn small() -> NioServerConfig {
    NioServerConfig {
        io_threads: 2,
        ..Default::default()
    }
}

fn client_to(a: SocketAddr) -> NioClient {
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![a],
        ..Default::default()
    });
    c.start().unwrap();
    c
}

fn ping(body: &'static [u8]) -> WritePacket {
    WritePacket::request_bytes(Commands::CMD_PING, Bytes::from_static(body))
}

/// A thread-per-task executor; `delay` makes processors slow.
struct Threads;
impl Executor for Threads {
    fn execute(&self, t: Box<dyn FnOnce() + Send>) -> Result<(), Box<dyn FnOnce() + Send>> {
        std::thread::spawn(t);
        Ok(())
    }
}

/// Sleeps `ms` (from the body's first byte × 10 ms) on an executor, then echoes.
struct Slow;
impl ReqProcessor for Slow {
    type Body = u64;
    fn run_on(&self) -> RunOn {
        RunOn::Executor(Arc::new(Threads))
    }
    fn decode(&self, p: &ReadPacket) -> Result<u64, dt_codec::PbError> {
        Ok(p.body.first().copied().unwrap_or(0) as u64 * 10)
    }
    fn process(&self, p: ReadPacket, ms: u64, _c: ReqContext) -> Option<WritePacket> {
        std::thread::sleep(Duration::from_millis(ms));
        Some(WritePacket::response(WriteBody::Bytes(p.body)))
    }
}

#[test]
fn pipelined_requests_before_connect_all_succeed() {
    let s = server_with(|_| {}, small());
    let c = client_to(addr(&s)); // no wait: requests queue until the handshake is sent
    let futs: Vec<_> = (0..50)
        .map(|_| c.send_request(None, ping(b"x"), T))
        .collect();
    for f in futs {
        assert_eq!(&f.wait().unwrap().body[..], b"x");
    }
    assert_eq!(c.pending_requests(), 0);
}

#[test]
fn request_without_answer_times_out() {
    let s = server_with(
        |s| s.register(100, FnProcessor(|_p: &ReadPacket, _c: &ReqContext| None)),
        small(),
    );
    let c = client_to(addr(&s));
    let t0 = Instant::now();
    let r = c.send_request_sync(
        None,
        WritePacket::request_bytes(100, Bytes::new()),
        Duration::from_millis(200),
    );
    assert!(matches!(r, Err(NetError::Timeout { .. })), "{r:?}");
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(190) && el < Duration::from_millis(1500),
        "{el:?}"
    );
    assert_eq!(c.pending_requests(), 0);
}

#[test]
fn a_request_sent_after_the_worker_idled_still_times_out_on_time() {
    // With nothing in flight the worker sleeps up to a second between wake-ups; a request
    // sent then must bring the sweep's 50 ms rhythm back, not wait for that second.
    let s = server_with(
        |s| s.register(100, FnProcessor(|_p: &ReadPacket, _c: &ReqContext| None)),
        small(),
    );
    let c = client_to(addr(&s));
    assert_eq!(
        &c.send_request(None, ping(b"x"), T).wait().unwrap().body[..],
        b"x"
    );
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..3 {
        let t0 = Instant::now();
        let r = c.send_request_sync(
            None,
            WritePacket::request_bytes(100, Bytes::new()),
            Duration::from_millis(150),
        );
        assert!(matches!(r, Err(NetError::Timeout { .. })), "{r:?}");
        let el = t0.elapsed();
        assert!(
            el >= Duration::from_millis(140) && el < Duration::from_millis(700),
            "{el:?}"
        );
        std::thread::sleep(Duration::from_millis(1100));
    }
}

#[test]
fn flow_control_is_a_typed_error_not_a_hang() {
    let s = server_with(|s| s.register(100, Slow), small());
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![addr(&s)],
        max_out_requests: 2,
        ..Default::default()
    });
    c.start().unwrap();
    assert!(c.wait_connected(T));
    let slow = || WritePacket::request_bytes(100, Bytes::from_static(&[20]));
    let a = c.send_request(None, slow(), T);
    let b = c.send_request(None, slow(), T);
    let t0 = Instant::now();
    let r = c.send_request(None, slow(), T).wait();
    assert!(matches!(r, Err(NetError::FlowControl { .. })), "{r:?}");
    assert!(t0.elapsed() < Duration::from_millis(100));
    a.wait().unwrap();
    b.wait().unwrap();
    c.send_request_sync(None, slow(), T).unwrap();
}

#[test]
fn server_inbound_flow_control_answers_flow_control() {
    let s = server_with(
        |s| s.register(100, Slow),
        NioServerConfig {
            max_in_requests: 1,
            ..small()
        },
    );
    let c = client_to(addr(&s));
    let a = c.send_request(
        None,
        WritePacket::request_bytes(100, Bytes::from_static(&[20])),
        T,
    );
    std::thread::sleep(Duration::from_millis(50));
    let r = c.send_request_sync(
        None,
        WritePacket::request_bytes(100, Bytes::from_static(&[0])),
        T,
    );
    match r {
        Err(NetError::Remote { code, msg }) => {
            assert_eq!(code, CmdCodes::FLOW_CONTROL);
            assert_eq!(msg, "max incoming request: 1");
        }
        r => panic!("{r:?}"),
    }
    a.wait().unwrap();
}

#[test]
fn seq_numbers_start_at_1_and_one_ways_consume_numbers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let s = server_with(
        move |s| {
            s.register(
                100,
                FnProcessor(move |p: &ReadPacket, c: &ReqContext| {
                    s2.lock()
                        .unwrap()
                        .push((p.seq, c.is_one_way(), p.timeout_nanos > 0));
                    Some(WritePacket::response(WriteBody::Empty))
                }),
            )
        },
        small(),
    );
    let c = client_to(addr(&s));
    assert!(c.wait_connected(T));
    let req = || WritePacket::request_bytes(100, Bytes::new());
    c.send_request_sync(None, req(), T).unwrap();
    c.send_one_way(None, req(), T).unwrap();
    c.send_request_sync(None, req(), T).unwrap();
    let v = seen.lock().unwrap().clone();
    // seq 1 was the handshake.
    assert_eq!(v, vec![(2, false, true), (3, true, true), (4, false, true)]);
}

#[test]
fn executor_processor_with_late_responder_and_identity() {
    struct Later;
    impl ReqProcessor for Later {
        type Body = ();
        fn run_on(&self) -> RunOn {
            RunOn::Executor(Arc::new(Threads))
        }
        fn decode(&self, _p: &ReadPacket) -> Result<(), dt_codec::PbError> {
            Ok(())
        }
        fn process(&self, _p: ReadPacket, _b: (), c: ReqContext) -> Option<WritePacket> {
            let pi = c.process_info().unwrap();
            let r = c.responder();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                let mut w = WritePacket::response(WriteBody::Bytes(Bytes::from(
                    format!("{:x}{:x}", pi.uuid1, pi.uuid2).into_bytes(),
                )));
                w.biz_code = 7;
                r.respond(w);
            });
            None
        }
    }
    let s = server_with(|s| s.register(100, Later), small());
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![addr(&s)],
        process_info: ProcessInfo {
            uuid1: 0xab,
            uuid2: 0xcd,
        },
        ..Default::default()
    });
    c.start().unwrap();
    let r = c
        .send_request_sync(None, WritePacket::request_bytes(100, Bytes::new()), T)
        .unwrap();
    assert_eq!(&r.body[..], b"abcd");
    assert_eq!(r.biz_code, 7);
}

#[test]
fn server_pushes_a_request_to_the_client() {
    let conn = Arc::new(Mutex::new(None));
    let c2 = conn.clone();
    let s = server_with(
        move |s| {
            s.register(
                100,
                FnProcessor(move |_p: &ReadPacket, c: &ReqContext| {
                    *c2.lock().unwrap() = Some(c.conn());
                    Some(WritePacket::response(WriteBody::Empty))
                }),
            )
        },
        small(),
    );
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![addr(&s)],
        ..Default::default()
    });
    let pushed = Arc::new(Mutex::new(Vec::new()));
    let p2 = pushed.clone();
    c.register(
        202,
        FnProcessor(move |p: &ReadPacket, cx: &ReqContext| {
            p2.lock().unwrap().push((p.packet_type, cx.is_one_way()));
            Some(WritePacket::response(WriteBody::Empty)) // dropped: one-way
        }),
    );
    c.register(
        200,
        FnProcessor(|p: &ReadPacket, _c: &ReqContext| {
            let mut b = p.body.to_vec();
            b.reverse();
            Some(WritePacket::response(WriteBody::Bytes(b.into())))
        }),
    );
    c.start().unwrap();
    c.send_request_sync(None, WritePacket::request_bytes(100, Bytes::new()), T)
        .unwrap();
    let cr = conn.lock().unwrap().unwrap();
    assert_eq!(s.conn_of(c.process_info()), Some(cr));
    let r = s
        .send_request(
            cr,
            WritePacket::request_bytes(200, Bytes::from_static(b"abc")),
            T,
        )
        .wait()
        .unwrap();
    assert_eq!(&r.body[..], b"cba");
    // Ping is answered by clients too; unknown commands get COMMAND_NOT_SUPPORT.
    let r = s.send_request(cr, ping(b"p"), T).wait().unwrap();
    assert_eq!(&r.body[..], b"p");
    let r = s
        .send_request(cr, WritePacket::request_bytes(201, Bytes::new()), T)
        .wait();
    assert!(matches!(r, Err(NetError::Remote { code: 3, .. })), "{r:?}");
}

#[test]
fn peers_added_removed_and_reconnected_with_backoff() {
    // A port that is free now, served later.
    let a: std::net::SocketAddr = (
        [127, 0, 0, 1],
        dt_common::ports::free_loopback_ports(1).unwrap()[0],
    )
        .into();
    let mut c = NioClient::new(NioClientConfig::default());
    c.start().unwrap();
    let p = c.add_peer(a).unwrap();
    let r = c.send_request_sync(Some(p.id), ping(b""), T);
    assert!(matches!(r, Err(NetError::Connect(_))), "{r:?}");
    // The message says it once: "connect failed: Connection refused (os error 111)".
    let msg = r.unwrap_err().to_string();
    assert_eq!(msg.matches("connect failed").count(), 1, "{msg}");
    let s = server_with(
        |_| {},
        NioServerConfig {
            ports: vec![a.port()],
            ..small()
        },
    );
    // back-off 100 ms, then 1 s: connected within ~1.2 s
    assert!(c.wait_connected(Duration::from_secs(4)), "{:?}", c.peers());
    c.send_request_sync(Some(p.id), ping(b"ok"), T).unwrap();
    // Removal fails outstanding requests and forgets the peer.
    let s2 = server_with(|s| s.register(100, Slow), small());
    let p2 = c.add_peer(addr(&s2)).unwrap();
    let f = c.send_request(
        Some(p2.id),
        WritePacket::request_bytes(100, Bytes::from_static(&[50])),
        T,
    );
    std::thread::sleep(Duration::from_millis(100));
    c.remove_peer(p2.id).unwrap();
    assert!(matches!(f.wait(), Err(NetError::ConnectionClosed(_))));
    assert_eq!(c.peers().len(), 1);
    drop(s);
}

#[test]
fn graceful_stop_finishes_in_flight_and_answers_stopping() {
    let s = Arc::new(server_with(|s| s.register(100, Slow), small()));
    let c = client_to(addr(&s));
    assert!(c.wait_connected(T));
    let inflight = c.send_request(
        None,
        WritePacket::request_bytes(100, Bytes::from_static(&[30])),
        T,
    );
    std::thread::sleep(Duration::from_millis(50));
    let s2 = s.clone();
    let stopper = std::thread::spawn(move || s2.stop(Duration::from_secs(3)));
    std::thread::sleep(Duration::from_millis(50));
    let r = c.send_request_sync(None, ping(b""), T);
    assert!(
        matches!(
            r,
            Err(NetError::Remote {
                code: CmdCodes::STOPPING,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(inflight.wait().is_ok());
    stopper.join().unwrap();
    let r = c.send_request_sync(None, ping(b""), Duration::from_millis(300));
    assert!(r.is_err());
    c.stop(Duration::from_millis(100));
    let r = c.send_request_sync(None, ping(b""), T);
    assert!(matches!(r, Err(NetError::Stopped)), "{r:?}");
}

#[test]
fn client_stop_fails_outstanding_requests() {
    let s = server_with(|s| s.register(100, Slow), small());
    let c = client_to(addr(&s));
    let f = c.send_request(
        None,
        WritePacket::request_bytes(100, Bytes::from_static(&[100])),
        T,
    );
    std::thread::sleep(Duration::from_millis(100));
    c.stop(Duration::from_millis(50));
    assert!(matches!(f.wait(), Err(NetError::Stopped)));
}

#[test]
fn future_is_awaitable_without_a_runtime() {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    fn block_on<F: Future>(f: F) -> F::Output {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
    let s = server_with(|_| {}, small());
    let c = client_to(addr(&s));
    let v = block_on(async {
        let a = c.send_request(None, ping(b"a"), T).await.unwrap();
        let b = c
            .call(None, ping(b"bb"), T, |p| Ok(p.body.len()))
            .await
            .unwrap();
        (a.body, b)
    });
    assert_eq!((&v.0[..], v.1), (&b"a"[..], 2));
}

#[test]
fn multiple_ports_and_perf_hooks() {
    #[derive(Default)]
    struct Count {
        read: AtomicU64,
        write: AtomicU64,
        lat: AtomicU64,
        worker_loops: AtomicU64,
        worker_polls: AtomicU64,
    }
    impl PerfCallback for Count {
        fn accept(&self, _t: PerfType) -> bool {
            true
        }
        fn fire(&self, t: PerfType, c: u64, _b: u64) {
            match t {
                PerfType::RpcRead => self.read.fetch_add(c, Ordering::Relaxed),
                PerfType::RpcWrite => self.write.fetch_add(c, Ordering::Relaxed),
                _ => 0,
            };
        }
        fn fire_time(&self, t: PerfType, _n: u64, c: u64, _b: u64) {
            match t {
                PerfType::RpcLatency => self.lat.fetch_add(c, Ordering::Relaxed),
                PerfType::RpcWorkerWork => self.worker_loops.fetch_add(c, Ordering::Relaxed),
                PerfType::RpcWorkerSel => self.worker_polls.fetch_add(c, Ordering::Relaxed),
                _ => 0,
            };
        }
    }
    let sp = Arc::new(Count::default());
    let s = server_with(
        |s| {
            s.register(
                100,
                FnProcessor(|_p: &ReadPacket, c: &ReqContext| {
                    Some(WritePacket::response(WriteBody::Bytes(Bytes::from(
                        c.local_port().to_be_bytes().to_vec(),
                    ))))
                }),
            )
        },
        NioServerConfig {
            ports: vec![0, 0],
            perf: sp.clone(),
            ..small()
        },
    );
    let addrs = s.local_addrs();
    let cp = Arc::new(Count::default());
    let mut c = NioClient::new(NioClientConfig {
        perf: cp.clone(),
        ..Default::default()
    });
    c.start().unwrap();
    for a in &addrs {
        let p = c
            .add_peer(format!("127.0.0.1:{}", a.port()).parse().unwrap())
            .unwrap();
        let r = c
            .send_request_sync(Some(p.id), WritePacket::request_bytes(100, Bytes::new()), T)
            .unwrap();
        assert_eq!(&r.body[..], &a.port().to_be_bytes());
    }
    assert!(sp.read.load(Ordering::Relaxed) >= 4); // 2 handshakes + 2 requests
    assert!(sp.write.load(Ordering::Relaxed) >= 4);
    assert_eq!(cp.lat.load(Ordering::Relaxed), 2);
    // every worker iteration reports its poll and its work: at least one per request
    assert!(sp.worker_loops.load(Ordering::Relaxed) >= 2);
    assert!(sp.worker_polls.load(Ordering::Relaxed) >= 2);
}

#[test]
fn large_bodies_both_directions_and_size_limits() {
    let s = server_with(|_| {}, small());
    let c = client_to(addr(&s));
    let big: Bytes = (0..1024 * 1024).map(|i| i as u8).collect::<Vec<_>>().into();
    let r = c
        .send_request_sync(
            None,
            WritePacket::request_bytes(Commands::CMD_PING, big.clone()),
            T,
        )
        .unwrap();
    assert_eq!(r.body, big);
    let huge = Bytes::from(vec![0u8; 5 * 1024 * 1024]);
    let r = c.send_request_sync(
        None,
        WritePacket::request_bytes(Commands::CMD_PING, huge),
        T,
    );
    assert!(matches!(r, Err(NetError::TooLarge { .. })), "{r:?}");
}

#[test]
fn request_expired_while_queued_for_the_executor_is_dropped() {
    struct Late;
    impl Executor for Late {
        fn execute(&self, t: Box<dyn FnOnce() + Send>) -> Result<(), Box<dyn FnOnce() + Send>> {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                t()
            });
            Ok(())
        }
    }
    struct Counting(Arc<AtomicU64>);
    impl ReqProcessor for Counting {
        type Body = ();
        fn run_on(&self) -> RunOn {
            RunOn::Executor(Arc::new(Late))
        }
        fn decode(&self, _p: &ReadPacket) -> Result<(), dt_codec::PbError> {
            Ok(())
        }
        fn process(&self, _p: ReadPacket, _b: (), _c: ReqContext) -> Option<WritePacket> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Some(WritePacket::response(WriteBody::Empty))
        }
    }
    let runs = Arc::new(AtomicU64::new(0));
    let r2 = runs.clone();
    let s = server_with(move |s| s.register(100, Counting(r2)), small());
    let c = client_to(addr(&s));
    let r = c.send_request_sync(
        None,
        WritePacket::request_bytes(100, Bytes::new()),
        Duration::from_millis(100),
    );
    assert!(matches!(r, Err(NetError::Timeout { .. })), "{r:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "expired request must not be processed"
    );
    // With time to spare it runs.
    c.send_request_sync(None, WritePacket::request_bytes(100, Bytes::new()), T)
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn panicking_processor_answers_sys_error_and_server_survives() {
    struct Boom;
    impl ReqProcessor for Boom {
        type Body = ();
        fn run_on(&self) -> RunOn {
            RunOn::Executor(Arc::new(Threads))
        }
        fn decode(&self, _p: &ReadPacket) -> Result<(), dt_codec::PbError> {
            Ok(())
        }
        fn process(&self, _p: ReadPacket, _b: (), _c: ReqContext) -> Option<WritePacket> {
            panic!("boom on executor")
        }
    }
    let s = server_with(
        |s| {
            s.register(
                100,
                FnProcessor(|_p: &ReadPacket, _c: &ReqContext| -> Option<WritePacket> {
                    panic!("boom inline")
                }),
            );
            s.register(101, Boom);
        },
        NioServerConfig {
            io_threads: 1,
            ..Default::default()
        },
    );
    let c = client_to(addr(&s));
    for (cmd, text) in [(100, "boom inline"), (101, "boom on executor")] {
        match c.send_request_sync(None, WritePacket::request_bytes(cmd, Bytes::new()), T) {
            Err(NetError::Remote { code, msg }) => {
                assert_eq!(code, CmdCodes::SYS_ERROR);
                assert_eq!(msg, text);
            }
            r => panic!("{r:?}"),
        }
    }
    assert_eq!(
        &c.send_request_sync(None, ping(b"alive"), T).unwrap().body[..],
        b"alive"
    );
}

#[test]
fn panicking_callback_does_not_kill_the_client() {
    let s = server_with(|_| {}, small());
    let c = client_to(addr(&s));
    assert!(c.wait_connected(T));
    let (tx, rx) = std::sync::mpsc::channel();
    c.send_request_cb(None, ping(b""), T, |_r| panic!("callback boom"));
    c.send_request_cb(None, ping(b"2"), T, move |r| tx.send(r.is_ok()).unwrap());
    assert!(rx.recv_timeout(T).unwrap());
    assert!(c.send_request_sync(None, ping(b"3"), T).is_ok());
}

#[test]
fn handler_api_delivers_results_by_token() {
    struct Collect(Mutex<Vec<(u64, Result<usize, String>)>>);
    impl RpcHandler for Collect {
        fn on_result(&self, token: u64, r: Result<ReadPacket, NetError>) {
            self.0
                .lock()
                .unwrap()
                .push((token, r.map(|p| p.body.len()).map_err(|e| e.to_string())));
        }
    }
    let s = server_with(|_| {}, small());
    let c = client_to(addr(&s));
    let h = Arc::new(Collect(Mutex::new(Vec::new())));
    let dynh: Arc<dyn RpcHandler> = h.clone();
    for t in 0..20u64 {
        let body = Bytes::from(vec![0u8; t as usize]);
        c.send_request_handler(None, WritePacket::request_bytes(1, body), T, &dynh, t);
    }
    let stat: &'static Collect = Box::leak(Box::new(Collect(Mutex::new(Vec::new()))));
    c.send_request_static(
        None,
        WritePacket::request_bytes(1, Bytes::from_static(b"abc")),
        T,
        stat,
        99,
    );
    let end = Instant::now() + T;
    while (h.0.lock().unwrap().len() < 20 || stat.0.lock().unwrap().is_empty())
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut v = h.0.lock().unwrap().clone();
    v.sort_by_key(|e| e.0);
    assert_eq!(
        v,
        (0..20u64).map(|t| (t, Ok(t as usize))).collect::<Vec<_>>()
    );
    assert_eq!(stat.0.lock().unwrap()[0], (99, Ok(3)));
}

#[test]
fn late_responder_keeps_its_flow_control_permit_until_the_response_leaves() {
    /// Returns `None` at once and answers from another thread 600 ms later.
    struct Later;
    impl ReqProcessor for Later {
        type Body = ();
        fn run_on(&self) -> RunOn {
            RunOn::Executor(Arc::new(Threads))
        }
        fn decode(&self, _p: &ReadPacket) -> Result<(), dt_codec::PbError> {
            Ok(())
        }
        fn process(&self, p: ReadPacket, _b: (), c: ReqContext) -> Option<WritePacket> {
            let r = c.responder();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(600));
                r.respond(WritePacket::response(WriteBody::Bytes(p.body)));
            });
            None
        }
    }
    let s = server_with(
        |s| s.register(110, Later),
        NioServerConfig {
            io_threads: 1,
            max_in_requests: 1,
            ..Default::default()
        },
    );
    let c = client_to(addr(&s));
    assert!(c.wait_connected(T));
    let req = |b: &'static [u8]| WritePacket::request_bytes(110, Bytes::from_static(b));
    let first = c.send_request(None, req(b"1"), T);
    // `process` has long returned; the answer is still pending, so is the permit.
    std::thread::sleep(Duration::from_millis(200));
    let e = c.send_request_sync(None, req(b"2"), T).unwrap_err();
    assert!(
        matches!(
            e,
            NetError::Remote {
                code: CmdCodes::FLOW_CONTROL,
                ..
            }
        ),
        "the permit was released before the response was sent: {e:?}"
    );
    assert_eq!(&first.wait().unwrap().body[..], b"1");
    // Released once the response left: the next request is accepted.
    assert_eq!(
        &c.send_request_sync(None, req(b"3"), T).unwrap().body[..],
        b"3"
    );
    c.stop(T);
    s.stop(T);
}

#[test]
fn raw_callback_sees_resp_code_msg_and_extra() {
    let s = server_with(
        |s| {
            s.register(
                100,
                FnProcessor(|_p: &ReadPacket, _c: &ReqContext| {
                    let mut w = WritePacket::error(CmdCodes::NOT_RAFT_LEADER, "not leader");
                    w.extra = Some(Bytes::from_static(b"2"));
                    Some(w)
                }),
            );
        },
        small(),
    );
    let c = client_to(addr(&s));
    let (tx, rx) = std::sync::mpsc::channel();
    c.send_request_raw_cb(
        None,
        WritePacket::request_bytes(100, Bytes::new()),
        T,
        move |r| tx.send(r).unwrap(),
    );
    let p = rx.recv_timeout(T).unwrap().unwrap();
    assert_eq!(p.resp_code, CmdCodes::NOT_RAFT_LEADER);
    assert_eq!(p.msg, "not leader");
    assert_eq!(p.extra.as_deref(), Some(&b"2"[..]));
    // The plain callback still turns it into an error.
    let r = c.send_request_sync(None, WritePacket::request_bytes(100, Bytes::new()), T);
    assert!(matches!(r, Err(NetError::Remote { code: 7, .. })), "{r:?}");
}
