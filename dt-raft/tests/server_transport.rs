//! NioRaftTransport and inbox delivery over loopback: a server routes decoded Raft
//! requests into a group's GroupInbox (a fiber group on its own dispatcher here, playing
//! the group), and another node's transport gets the answers as the core's structs.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use dt_fiber::{Dispatcher, DispatcherConfig, FiberChannel};
use dt_net::{CmdCodes, ReqContext, WritePacket};
use dt_raft::core::{AppendCode, AppendResp, TransferError, TransferReq, VoteReq, VoteResp};
use dt_raft::driver::{GroupInbox, Inbound, InboundError, RaftTransport, RpcError};
use dt_raft::raft_log::block_on_timeout;
use dt_raft::rpc;
use dt_raft::server::{
    deliver_to_inbox, GroupRequest, GroupState, MemberIds, NioRaftTransport, RaftServer,
    RaftServerConfig, ServerGroup,
};

fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

fn config(ports: &[u16], id: i32) -> RaftServerConfig {
    RaftServerConfig {
        servers: ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},127.0.0.1:{p};", i + 1))
            .collect(),
        node_id: id,
        replicate_port: ports[id as usize - 1],
        bind_host: "127.0.0.1".parse().unwrap(),
        ping_interval: Duration::from_millis(100),
        rpc_timeout: Duration::from_millis(1000),
        io_threads: 1,
        block_io_threads: 1,
        ..Default::default()
    }
}

struct InboxGroup {
    inbox: GroupInbox,
}

impl ServerGroup for InboxGroup {
    fn group_id(&self) -> i32 {
        self.inbox.group_id()
    }
    fn state(&self) -> GroupState {
        GroupState::Running
    }
    fn member_ids(&self) -> MemberIds {
        MemberIds {
            members: vec![1, 2],
            ..Default::default()
        }
    }
    fn deliver(&self, req: GroupRequest, ctx: ReqContext) -> Option<WritePacket> {
        deliver_to_inbox(&self.inbox, req, ctx)
    }
}

/// A fiber that answers like a trivial group: grants votes for terms ≥ 5, refuses
/// others as unknown candidates; appends succeed at the leader's term; transfers are
/// refused; query status reports the group; member-ready messages are counted.
fn start_fake_group(d: &Dispatcher, group_id: i32) -> GroupInbox {
    let h = d.start_group("fake").unwrap();
    let (tx, rx) = mpsc::channel();
    h.execute(move |g| {
        let ch: FiberChannel<Inbound> = FiberChannel::new(g);
        tx.send(ch.sender()).unwrap();
        g.spawn("inbox", async move {
            while let Ok(Some(m)) = ch.take_or_stop(None).await {
                match m {
                    Inbound::Vote(r, reply) if r.term >= 5 => reply(Ok(Ok(VoteResp {
                        term: r.term,
                        vote_granted: true,
                    }))),
                    Inbound::Vote(_, reply) => {
                        reply(Ok(Err(dt_raft::core::VoteRefused::UnknownCandidate)))
                    }
                    Inbound::Append(r, reply) => reply(Ok(AppendResp {
                        term: r.term as u32,
                        code: AppendCode::Success,
                        suggest_term: 0,
                        suggest_index: 0,
                    })),
                    Inbound::TransferLeader(_, reply) => reply(Ok(Err(TransferError::Refused))),
                    Inbound::QueryStatus(reply) => reply(Ok(rpc::QueryStatusResp {
                        group_id,
                        node_id: 1,
                        term: 7,
                        leader_id: 1,
                        ..Default::default()
                    })),
                    Inbound::InstallSnapshot(r, reply) => reply(Ok(AppendResp {
                        term: r.term as u32,
                        code: AppendCode::Success,
                        suggest_term: 0,
                        suggest_index: 0,
                    })),
                    Inbound::MemberReady(..) => {}
                }
            }
        })
        .unwrap();
    })
    .unwrap();
    GroupInbox::new(group_id, rx.recv().unwrap())
}

#[test]
fn transport_round_trips_through_a_group_inbox() {
    let ports = free_ports(2);
    let s1 = RaftServer::new(config(&ports, 1)).unwrap();
    let s2 = RaftServer::new(config(&ports, 2)).unwrap();
    s1.start().unwrap();
    s2.start().unwrap();
    let d = Dispatcher::start(DispatcherConfig::new("fake-group")).unwrap();
    let inbox = start_fake_group(&d, 4);
    s1.add_group_entry(Arc::new(InboxGroup {
        inbox: inbox.clone(),
    }))
    .unwrap();

    let t = NioRaftTransport::new(s2.node_manager().clone(), Duration::from_secs(2));
    let wait = Duration::from_secs(5);
    let vote = |term| VoteReq {
        term,
        candidate_id: 2,
        last_log_index: 10,
        last_log_term: 3,
        pre_vote: false,
    };
    let r = block_on_timeout(t.send_vote(1, 4, vote(5)), wait).unwrap();
    assert_eq!(
        r,
        Ok(VoteResp {
            term: 5,
            vote_granted: true
        })
    );
    match block_on_timeout(t.send_vote(1, 4, vote(1)), wait).unwrap() {
        Err(RpcError::Remote { code, message }) => {
            assert_eq!(code, CmdCodes::SYS_ERROR);
            assert_eq!(message, "receive vote request from unknown member");
        }
        other => panic!("{other:?}"),
    }
    let app = rpc::AppendReq {
        group_id: 4,
        term: 6,
        leader_id: 2,
        ..Default::default()
    };
    let r = block_on_timeout(t.send_append(1, app), wait)
        .unwrap()
        .unwrap();
    assert_eq!((r.term, r.code), (6, AppendCode::Success));
    let tr = TransferReq {
        term: 6,
        old_leader_id: 2,
        new_leader_id: 1,
        log_index: 9,
    };
    match block_on_timeout(t.send_transfer_leader(1, 4, tr), wait).unwrap() {
        Err(RpcError::Remote { code, .. }) => assert_eq!(code, CmdCodes::SYS_ERROR),
        other => panic!("{other:?}"),
    }
    let st = block_on_timeout(t.query_status(1, 4), wait)
        .unwrap()
        .unwrap();
    assert_eq!((st.group_id, st.term, st.leader_id), (4, 7, 1));
    // Unknown group on the peer, unknown node here.
    match block_on_timeout(t.query_status(1, 5), wait).unwrap() {
        Err(RpcError::Remote { code, .. }) => assert_eq!(code, CmdCodes::RAFT_GROUP_NOT_FOUND),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        block_on_timeout(t.query_status(9, 4), wait).unwrap(),
        Err(RpcError::NotConnected(_))
    ));
    // A group that stopped: its inbox answers RAFT_GROUP_STOPPED.
    d.stop(Duration::from_secs(2));
    match block_on_timeout(t.send_vote(1, 4, vote(5)), wait).unwrap() {
        Err(RpcError::Remote { code, message }) => {
            assert_eq!(code, CmdCodes::RAFT_GROUP_STOPPED, "{message}");
        }
        other => panic!("{other:?}"),
    }
    let _ = InboundError::GroupStopped;
    s2.stop(Duration::from_secs(1));
    s1.stop(Duration::from_secs(1));
}

/// A group that never answers (its requests are dropped unanswered).
struct SilentGroup;
impl ServerGroup for SilentGroup {
    fn group_id(&self) -> i32 {
        6
    }
    fn state(&self) -> GroupState {
        GroupState::Running
    }
    fn member_ids(&self) -> MemberIds {
        MemberIds::default()
    }
    fn deliver(&self, _req: GroupRequest, _ctx: ReqContext) -> Option<WritePacket> {
        None
    }
}

#[test]
fn an_unanswered_request_times_out_with_a_typed_error() {
    let ports = free_ports(2);
    let s1 = RaftServer::new(config(&ports, 1)).unwrap();
    let s2 = RaftServer::new(config(&ports, 2)).unwrap();
    s1.start().unwrap();
    s2.start().unwrap();
    s1.add_group_entry(Arc::new(SilentGroup)).unwrap();
    let t = NioRaftTransport::new(s2.node_manager().clone(), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let r = block_on_timeout(t.query_status(1, 6), Duration::from_secs(5)).unwrap();
    assert_eq!(r, Err(RpcError::Timeout));
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A peer that is down: not connected (or a timeout while connecting), never a hang.
    s1.stop(Duration::from_secs(1));
    let r = block_on_timeout(t.query_status(1, 6), Duration::from_secs(5)).unwrap();
    assert!(
        matches!(r, Err(RpcError::NotConnected(_)) | Err(RpcError::Timeout)),
        "{r:?}"
    );
    s2.stop(Duration::from_secs(1));
}
