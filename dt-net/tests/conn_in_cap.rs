//! The per-connection cap on unanswered requests
//! ([`NioServerConfig::max_conn_in_requests`]): a client that pipelines past it gets
//! FLOW_CONTROL for the excess while other connections go on being served; answers give
//! the room back; requests that are never answered give it back too; the cap applies
//! to the ports it names only; and it holds for processors on the IO thread and on an
//! executor alike.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dt_net::*;

const T: Duration = Duration::from_secs(5);
const CAP: u32 = 8;
const HOLD: i32 = 100;
const DROP: i32 = 101;

/// Responders of requests not answered yet.
type Held = Arc<Mutex<Vec<(Responder, Bytes)>>>;

/// Keeps every request's Responder (answers when told); `run_on` as given.
struct Hold {
    held: Held,
    on: RunOn,
}

impl ReqProcessor for Hold {
    type Body = ();
    fn run_on(&self) -> RunOn {
        self.on.clone()
    }
    fn decode(&self, _p: &ReadPacket) -> Result<(), dt_codec::PbError> {
        Ok(())
    }
    fn process(&self, p: ReadPacket, _b: (), c: ReqContext) -> Option<WritePacket> {
        self.held.lock().unwrap().push((c.responder(), p.body));
        None
    }
}

/// Runs each task on a thread of its own.
struct Threads;
impl Executor for Threads {
    fn execute(&self, t: Box<dyn FnOnce() + Send>) -> Result<(), Box<dyn FnOnce() + Send>> {
        std::thread::spawn(t);
        Ok(())
    }
}

fn answer_all(held: &Held) -> usize {
    let all: Vec<_> = held.lock().unwrap().drain(..).collect();
    let n = all.len();
    for (r, body) in all {
        r.respond(WritePacket::response(WriteBody::Bytes(body)));
    }
    n
}

fn wait_held(held: &Held, n: usize) {
    let end = std::time::Instant::now() + T;
    while held.lock().unwrap().len() < n {
        assert!(
            std::time::Instant::now() < end,
            "{n} requests never arrived"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn server(on: RunOn, caps: Vec<(u16, u32)>, ports: Vec<u16>) -> (NioServer, Held) {
    let held: Held = Arc::default();
    let mut s = NioServer::new(NioServerConfig {
        ports,
        io_threads: 1,
        max_conn_in_requests: caps,
        ..Default::default()
    });
    s.register(
        HOLD,
        Hold {
            held: held.clone(),
            on,
        },
    );
    s.register(
        DROP,
        // Returns no answer and keeps no Responder: the request is never answered.
        FnProcessor(|_p: &ReadPacket, _c: &ReqContext| None),
    );
    s.start().unwrap();
    (s, held)
}

fn client(a: SocketAddr) -> NioClient {
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![a],
        ..Default::default()
    });
    c.start().unwrap();
    assert!(c.wait_connected(T));
    c
}

fn req(cmd: i32, i: u32) -> WritePacket {
    WritePacket::request_bytes(cmd, Bytes::from(i.to_be_bytes().to_vec()))
}

fn is_flow_control(r: &Result<ReadPacket, NetError>) -> bool {
    match r {
        Err(NetError::Remote { code, msg }) => {
            assert_eq!(*code, CmdCodes::FLOW_CONTROL);
            assert_eq!(msg, &format!("max incoming requests per connection: {CAP}"));
            true
        }
        _ => false,
    }
}

fn pipelining_past_the_cap(on: RunOn) {
    let (s, held) = server(on, vec![(0, CAP)], vec![0]);
    let a: SocketAddr = format!("127.0.0.1:{}", s.port()).parse().unwrap();
    let c1 = client(a);
    let c2 = client(a);

    // One connection pipelines CAP + 3 requests: CAP are held, 3 refused at once.
    let futs: Vec<_> = (0..CAP + 3)
        .map(|i| c1.send_request(None, req(HOLD, i), T))
        .collect();
    let mut futs = futs.into_iter();
    let held_futs: Vec<_> = futs.by_ref().take(CAP as usize).collect();
    for f in futs {
        assert!(is_flow_control(&f.wait()));
    }
    wait_held(&held, CAP as usize);
    // A ping on the full connection is refused too; one on another connection is not.
    let r = c1.send_request_sync(None, req(Commands::CMD_PING, 0), T);
    assert!(is_flow_control(&r), "{:?}", r.map(|p| p.body));
    let other = c2.send_request(None, req(HOLD, 99), T);
    wait_held(&held, CAP as usize + 1);
    assert_eq!(answer_all(&held), CAP as usize + 1);
    for (i, f) in held_futs.into_iter().enumerate() {
        assert_eq!(&f.wait().unwrap().body[..], &(i as u32).to_be_bytes());
    }
    assert_eq!(&other.wait().unwrap().body[..], &99u32.to_be_bytes());

    // Answers gave the room back: CAP more are accepted.
    let futs: Vec<_> = (0..CAP)
        .map(|i| c1.send_request(None, req(HOLD, i), T))
        .collect();
    wait_held(&held, CAP as usize);
    answer_all(&held);
    for f in futs {
        f.wait().unwrap();
    }
}

#[test]
fn pipelining_past_the_cap_gets_flow_control_io_thread_processor() {
    pipelining_past_the_cap(RunOn::IoThread);
}

#[test]
fn pipelining_past_the_cap_gets_flow_control_executor_processor() {
    pipelining_past_the_cap(RunOn::Executor(Arc::new(Threads)));
}

#[test]
fn requests_never_answered_give_their_room_back() {
    let (s, held) = server(RunOn::IoThread, vec![(0, CAP)], vec![0]);
    let a: SocketAddr = format!("127.0.0.1:{}", s.port()).parse().unwrap();
    let c = client(a);
    // 3 × CAP requests whose Responders are dropped: each times out, none is refused.
    let futs: Vec<_> = (0..3 * CAP)
        .map(|i| c.send_request(None, req(DROP, i), Duration::from_millis(300)))
        .collect();
    for f in futs {
        let r = f.wait();
        assert!(matches!(r, Err(NetError::Timeout { .. })), "{r:?}");
    }
    // A held request's Responder dropped unanswered gives its unit back as well.
    let futs: Vec<_> = (0..CAP)
        .map(|i| c.send_request(None, req(HOLD, i), Duration::from_millis(300)))
        .collect();
    wait_held(&held, CAP as usize);
    held.lock().unwrap().clear();
    for f in futs {
        assert!(matches!(f.wait(), Err(NetError::Timeout { .. })));
    }
    let futs: Vec<_> = (0..CAP)
        .map(|i| c.send_request(None, req(HOLD, i), T))
        .collect();
    wait_held(&held, CAP as usize);
    answer_all(&held);
    for f in futs {
        f.wait().unwrap();
    }
}

#[test]
fn the_cap_applies_to_the_ports_it_names() {
    let ports = dt_common::ports::free_loopback_ports(2).unwrap();
    let (_s, held) = server(RunOn::IoThread, vec![(ports[1], CAP)], ports.clone());
    let uncapped = client(format!("127.0.0.1:{}", ports[0]).parse().unwrap());
    let capped = client(format!("127.0.0.1:{}", ports[1]).parse().unwrap());
    let many: Vec<_> = (0..3 * CAP)
        .map(|i| uncapped.send_request(None, req(HOLD, i), T))
        .collect();
    wait_held(&held, 3 * CAP as usize);
    let few: Vec<_> = (0..CAP + 1)
        .map(|i| capped.send_request(None, req(HOLD, i), T))
        .collect();
    let mut few = few.into_iter();
    let kept: Vec<_> = few.by_ref().take(CAP as usize).collect();
    assert!(is_flow_control(&few.next().unwrap().wait()));
    wait_held(&held, 4 * CAP as usize);
    answer_all(&held);
    for f in many.into_iter().chain(kept) {
        f.wait().unwrap();
    }
}
