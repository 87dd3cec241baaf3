//! RaftServer's admin and node answers against the reference's captured session
//! (`vectors/sessions/cluster3_replicate_and_admin.frames.jsonl`): the admin client's
//! request frames are replayed byte for byte on a raw connection to a server configured
//! with the captured cluster's node list, and the answers must be the captured frames,
//! byte for byte (LIST_NODES, LIST_GROUPS, ADD_NODE, REMOVE_NODE, RAFT_PING and its
//! RAFT_GROUP_NOT_INIT / RAFT_GROUP_NOT_FOUND answers), or carry the same fields
//! (NODE_PING, whose UUID is per process).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dt_common::vectors::{hex, unhex};
use dt_net::{ReqContext, WritePacket};
use dt_raft::rpc::{NodePing, RpcBody};
use dt_raft::server::{
    GroupRequest, GroupState, MemberIds, RaftServer, RaftServerConfig, ServerGroup,
};
use serde_json::Value;

fn frames() -> Option<Vec<Value>> {
    let dir = dt_common::vectors::golden_vectors("admin_frames_match_the_reference_session")?;
    let lines = dt_common::vectors::read_lines(
        &dir.join("sessions/cluster3_replicate_and_admin.frames.jsonl"),
    );
    Some(
        lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v.get("header").is_none())
            .collect(),
    )
}

/// The frame of command `cmd` completed by record `n` (one read can complete several
/// frames, so `n` alone is not unique).
fn frame(all: &[Value], n: i64, cmd: i64) -> Vec<u8> {
    let f = all
        .iter()
        .find(|v| v["n"].as_i64() == Some(n) && v["cmd"].as_i64() == Some(cmd))
        .unwrap_or_else(|| panic!("frame n={n} cmd={cmd} not in the session"));
    unhex(f["frame_hex"].as_str().unwrap())
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut out = len.to_vec();
    out.extend(body);
    out
}

struct Group0 {
    running: AtomicBool,
}
impl ServerGroup for Group0 {
    fn group_id(&self) -> i32 {
        0
    }
    fn state(&self) -> GroupState {
        if self.running.load(Ordering::SeqCst) {
            GroupState::Running
        } else {
            GroupState::NotInit
        }
    }
    fn member_ids(&self) -> MemberIds {
        MemberIds {
            members: vec![1, 2, 3],
            ..Default::default()
        }
    }
    fn deliver(&self, _req: GroupRequest, _ctx: ReqContext) -> Option<WritePacket> {
        None
    }
}

#[test]
fn admin_frames_match_the_reference_session() {
    let Some(all) = frames() else {
        return;
    };
    // The captured cluster: nodes 1-3 on 127.0.0.1:17621-17623; we are node 3 (the admin
    // connection 12 talks to node 3), listening on a free port of our own.
    let port = dt_common::ports::free_loopback_ports(1).unwrap()[0];
    let s = RaftServer::new(RaftServerConfig {
        servers: "1,127.0.0.1:17621;2,127.0.0.1:17622;3,127.0.0.1:17623;".into(),
        node_id: 3,
        replicate_port: port,
        bind_host: "127.0.0.1".parse().unwrap(),
        check_self: false,
        io_threads: 1,
        block_io_threads: 1,
        ..Default::default()
    })
    .unwrap();
    let g0 = Arc::new(Group0 {
        running: AtomicBool::new(true),
    });
    s.add_group_entry(g0.clone()).unwrap();
    s.start().unwrap();

    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The admin client's handshake (frame 95); our handshake answer is not compared.
    c.write_all(&frame(&all, 95, 2)).unwrap();
    let _ = read_frame(&mut c);
    // LIST_NODES (134 → 135), LIST_GROUPS (136 → 137), then on node 1's admin connection
    // ADD_NODE 9 (248 → 249) and REMOVE_NODE 9 (250 → 251): same node table here.
    for (req, resp, cmd) in [
        (134, 135, 54),
        (136, 137, 55),
        (248, 249, 50),
        (250, 251, 51),
    ] {
        c.write_all(&frame(&all, req, cmd)).unwrap();
        let got = read_frame(&mut c);
        assert_eq!(
            hex(&got),
            hex(&frame(&all, resp, cmd)),
            "answer to frame {req}"
        );
    }
    // RAFT_PING for group 0 while it is not initialised (frame 35 → 36), once it is
    // (node 1 → node 3, frame 37 → 41: our id and the group's lists), and for a group
    // this node does not have (frame 256 → 258).
    g0.running.store(false, Ordering::SeqCst);
    c.write_all(&frame(&all, 35, 41)).unwrap();
    assert_eq!(
        hex(&read_frame(&mut c)),
        hex(&frame(&all, 36, 41)),
        "not init"
    );
    g0.running.store(true, Ordering::SeqCst);
    for (req, resp) in [(37, 41), (256, 258)] {
        c.write_all(&frame(&all, req, 41)).unwrap();
        let got = read_frame(&mut c);
        assert_eq!(
            hex(&got),
            hex(&frame(&all, resp, 41)),
            "answer to frame {req}"
        );
    }
    // Node 1's NODE_PING to node 3 (frame 22, a request of connection 5): node 3 answers
    // with its id, the sender's id and its own UUID (frame 33 has the reference's).
    c.write_all(&frame(&all, 22, 40)).unwrap();
    let got = read_frame(&mut c);
    let want = frame(&all, 33, 40);
    let (g, w) = (parse(&got), parse(&want));
    assert_eq!(
        (g.0, g.1, g.2),
        (w.0, w.1, w.2),
        "header of the node ping answer"
    );
    let (gp, wp) = (
        NodePing::decode(&g.3).unwrap(),
        NodePing::decode(&w.3).unwrap(),
    );
    assert_eq!(
        (gp.local_node_id, gp.remote_node_id),
        (wp.local_node_id, wp.remote_node_id)
    );
    let u = s.node_manager().uuid();
    assert_eq!(
        (gp.uuid_high as u64, gp.uuid_low as u64),
        (u.uuid1, u.uuid2)
    );
    s.stop(Duration::from_secs(1));
}

/// (command, seq, resp_code, body) of a frame.
fn parse(f: &[u8]) -> (i32, i32, i32, bytes::Bytes) {
    let mut buf = bytes::BytesMut::from(f);
    let p = dt_net::FrameDecoder::new(1 << 20)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    (p.command, p.seq, p.resp_code, p.body)
}
