//! DistributedLock against a fake single-node lock server that follows the reference's
//! lock semantics (`wire-protocol.md` §6.8): FIFO holder, LOCK_BY_OTHER for waiters,
//! the hand-over push (DTKV_LOCK_PUSH, one-way, with the holder's payload) on unlock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::kv::{KvBody, KvCode, KvCommands, KvReq, KvResp, KvResult};
use dt_client::raft::RaftNode;
use dt_client::{KvClient, KvClientConfig};
use dt_codec::encode;
use dt_net::{
    ConnRef, NioServer, NioServerConfig, ProcessInfo, ReadPacket, ReqContext, ReqProcessor,
    WriteBody, WritePacket,
};
use dt_raft::rpc::QueryStatusResp;

#[derive(Default)]
struct LockState {
    index: i64,
    /// key -> queue of (owner, payload, conn, create index); the first holds.
    queues: HashMap<Bytes, Vec<(ProcessInfo, Bytes, ConnRef, i64)>>,
    log: Vec<(i32, KvCode)>,
}

struct FakeLocks {
    st: Arc<Mutex<LockState>>,
    server: Arc<OnceLock<Arc<NioServer>>>,
}

fn answer(index: i64, code: KvCode) -> WritePacket {
    let r = KvResp::single(index, KvResult::code(code));
    let mut p = WritePacket::response(WriteBody::Bytes(encode::to_bytes(&r)));
    p.biz_code = code.code();
    p
}

impl ReqProcessor for FakeLocks {
    type Body = ();
    fn decode(&self, _p: &ReadPacket) -> Result<(), dt_codec::PbError> {
        Ok(())
    }
    fn process(&self, pkt: ReadPacket, _b: (), ctx: ReqContext) -> Option<WritePacket> {
        if pkt.command == dt_net::Commands::RAFT_QUERY_STATUS {
            let s = QueryStatusResp {
                node_id: 1,
                leader_id: 1,
                ..Default::default()
            };
            return Some(WritePacket::response(WriteBody::Bytes(encode::to_bytes(
                &s,
            ))));
        }
        let owner = ctx.process_info().unwrap();
        let req = KvReq::decode(&pkt.body).unwrap();
        let mut st = self.st.lock().unwrap();
        st.index += 1;
        let index = st.index;
        let mut push = None;
        let code = {
            let q = st.queues.entry(req.key.clone()).or_default();
            let pos = q.iter().position(|e| e.0 == owner);
            match pkt.command {
                KvCommands::DTKV_TRY_LOCK => match pos {
                    Some(0) => KvCode::LockBySelf,
                    Some(i) => {
                        q[i].1 = req.value.clone();
                        KvCode::LockByOther
                    }
                    None if q.is_empty() => {
                        q.push((owner, req.value.clone(), ctx.conn(), index));
                        KvCode::Success
                    }
                    None if req.ttl_millis == 0 => KvCode::LockByOther,
                    None => {
                        q.push((owner, req.value.clone(), ctx.conn(), index));
                        KvCode::LockByOther
                    }
                },
                KvCommands::DTKV_UNLOCK => match pos {
                    Some(0) => {
                        q.remove(0);
                        if let Some(next) = q.first() {
                            push = Some((next.1.clone(), next.2));
                        }
                        KvCode::Success
                    }
                    Some(i) => {
                        q.remove(i);
                        KvCode::LockByOther
                    }
                    None => KvCode::NotFound,
                },
                KvCommands::DTKV_UPDATE_LOCK_LEASE => match pos {
                    Some(0) => KvCode::Success,
                    _ => KvCode::LockByOther,
                },
                KvCommands::DTKV_GET => {
                    // The lock entry key: "<key>.<uuid hex>".
                    let k = String::from_utf8_lossy(&req.key).into_owned();
                    let (lk, hexid) = k.rsplit_once('.').unwrap();
                    let q = st.queues.get(lk.as_bytes()).cloned().unwrap_or_default();
                    let e = q
                        .iter()
                        .find(|e| format!("{:016x}{:016x}", e.0.uuid1, e.0.uuid2) == hexid);
                    let out = match e {
                        Some(e) => {
                            let r = KvResp::single(
                                0,
                                KvResult::with_node(dt_client::kv::KvNode {
                                    create_index: e.3,
                                    create_time: 1,
                                    update_index: e.3,
                                    update_time: 1,
                                    flag: 6,
                                    data: e.1.clone(),
                                }),
                            );
                            WritePacket::response(WriteBody::Bytes(encode::to_bytes(&r)))
                        }
                        None => {
                            let mut p = WritePacket::response(WriteBody::Empty);
                            p.biz_code = KvCode::NotFound.code();
                            p
                        }
                    };
                    return Some(out);
                }
                _ => KvCode::ClientReqError,
            }
        };
        st.log.push((pkt.command, code));
        if let Some((payload, conn)) = push {
            let body = KvReq {
                group_id: req.group_id,
                key: req.key.clone(),
                value: payload,
                ttl_millis: 2_000_000, // 2 ms of server-side wait, in ns
                ..Default::default()
            };
            let pkt = WritePacket::request(
                KvCommands::DTKV_LOCK_PUSH,
                WriteBody::Bytes(encode::to_bytes(&body)),
            );
            let server = self.server.get().unwrap().clone();
            // The push goes out after the unlock answer (as from the apply thread).
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                let mut pkt = pkt;
                pkt.packet_type = 3;
                server
                    .send_one_way(conn, pkt, Duration::from_secs(5))
                    .unwrap();
            });
        }
        Some(answer(index, code))
    }
}

fn start() -> (Arc<NioServer>, Arc<Mutex<LockState>>) {
    let st = Arc::new(Mutex::new(LockState::default()));
    let cell = Arc::new(OnceLock::new());
    let mut s = NioServer::new(NioServerConfig {
        ports: vec![0],
        io_threads: 1,
        ..Default::default()
    });
    for c in [
        dt_net::Commands::RAFT_QUERY_STATUS,
        KvCommands::DTKV_TRY_LOCK,
        KvCommands::DTKV_UNLOCK,
        KvCommands::DTKV_UPDATE_LOCK_LEASE,
        KvCommands::DTKV_GET,
    ] {
        s.register(
            c,
            FakeLocks {
                st: st.clone(),
                server: cell.clone(),
            },
        );
    }
    s.start().unwrap();
    let s = Arc::new(s);
    let _ = cell.set(s.clone());
    (s, st)
}

fn client(server: &NioServer) -> KvClient {
    let kv = KvClient::new(KvClientConfig::default()).unwrap();
    kv.raft()
        .add_or_update_nodes(&[RaftNode {
            node_id: 1,
            addr: format!("127.0.0.1:{}", server.port()).parse().unwrap(),
        }])
        .unwrap();
    kv.raft().add_or_update_group(0, &[1]).unwrap();
    kv
}

#[test]
fn hand_over_by_push_fencing_and_close() {
    let (server, st) = start();
    let a = client(&server);
    let b = client(&server);
    let la = a.create_lock(0, "jobs.x").unwrap();
    assert!(
        a.create_lock(0, "jobs.x").is_err(),
        "one lock object per key"
    );
    let lb = b.create_lock(0, "jobs.x").unwrap();

    assert!(la.try_lock(10_000, 0).unwrap());
    let ta = la.fencing_token().unwrap();
    assert!(la.is_held_by_current_client());
    assert!(la.lease_rest_millis() > 9_000);
    assert!(!lb.try_lock(10_000, 0).unwrap());
    let fb = lb.try_lock_async(10_000, 5_000);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!fb.is_done());
    la.update_lease(8_000).unwrap();
    assert!(la.lease_rest_millis() <= 8_000);
    let t = Instant::now();
    la.unlock().unwrap();
    assert!(fb.wait().unwrap(), "B gets the lock by push");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(lb.is_held_by_current_client() && !la.is_held_by_current_client());
    // B's token is read from the server after the push.
    let t = Instant::now();
    while lb.fencing_token().is_none() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let tb = lb.fencing_token().unwrap();
    assert!(tb > ta, "{tb} > {ta}");

    // Dropping a held lock unlocks it.
    drop(lb);
    let t = Instant::now();
    while !st
        .lock()
        .unwrap()
        .queues
        .get(&Bytes::from("jobs.x"))
        .is_some_and(|q| q.is_empty())
    {
        assert!(t.elapsed() < Duration::from_secs(3), "no unlock on drop");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(la.try_lock(1_000, 0).unwrap());
    la.unlock().unwrap();
    a.stop(Duration::from_secs(1));
    b.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
}

#[test]
fn wait_timer_and_local_lease_expiry() {
    let (server, _st) = start();
    let a = client(&server);
    let b = client(&server);
    let la = a.create_lock(0, "l").unwrap();
    let lb = b.create_lock(0, "l").unwrap();
    assert!(la.try_lock(400, 0).unwrap());
    // B waits 200 ms and gives up (no unlock comes).
    let t = Instant::now();
    assert!(!lb.try_lock(1_000, 200).unwrap());
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(190) && e < Duration::from_millis(1_000),
        "{e:?}"
    );
    // A's lease runs out locally without renewal.
    std::thread::sleep(Duration::from_millis(350));
    assert!(!la.is_held_by_current_client());
    assert_eq!(la.fencing_token(), None);
    // Bad arguments are refused locally.
    assert!(la.try_lock(100, 200).is_err());
    assert!(la.update_lease(100).is_err(), "not held");
    a.stop(Duration::from_secs(1));
    b.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
}

#[test]
fn auto_renewal_lock_renews_and_hands_over() {
    let (server, st) = start();
    let a = client(&server);
    let b = client(&server);
    let (tx, rx) = std::sync::mpsc::channel();
    let ta = tx.clone();
    let la = a
        .create_auto_renewal_lock(0, "auto", 300, move |h| ta.send(('A', h)).unwrap())
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(3)).unwrap(),
        ('A', true)
    );
    let lb = b
        .create_auto_renewal_lock(0, "auto", 300, move |h| tx.send(('B', h)).unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(la.is_held_by_current_client());
    assert!(!lb.is_held_by_current_client());
    assert!(rx.try_recv().is_err(), "no loss while renewing");
    let renewals = st
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|e| **e == (KvCommands::DTKV_UPDATE_LOCK_LEASE, KvCode::Success))
        .count();
    assert!(
        renewals >= 3,
        "{renewals} renewals in 1 s with a 300 ms lease"
    );
    drop(la);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).unwrap(),
        ('A', false)
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(2)).unwrap(),
        ('B', true)
    );
    assert!(lb.is_held_by_current_client());
    drop(lb);
    a.stop(Duration::from_secs(1));
    b.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
}
