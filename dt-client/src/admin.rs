//! [`AdminRaftClient`]: the reference's admin operations on a Raft cluster
//! (`wire-protocol.md` Appendix A, `raft.md` §11.3, §14.4–14.6): status, leader transfer,
//! the two-phase membership change, and adding / removing nodes and groups on a server.
//!
//! Admin commands are accepted on the servers' **replicate** ports only, so the nodes of
//! an admin client are the replicate addresses (the distribution's 9331, the demos'
//! 4001…), unlike a [`crate::KvClient`]'s. The bodies are written here with the field
//! numbers and encodings of the reference (checked against the recorded vectors).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dt_codec::{
    encode, BytesCollector, Chunk, PbCallback, PbError, PbInt, PbLongCallback, PbParser,
};
use dt_net::{Commands, ReadPacket};
use dt_raft::rpc::RaftCommands;

use crate::future::{kv_channel, KvFuture};
use crate::kv::KvError;
use crate::raft::{QueryStatus, RaftClient, RaftClientConfig};

/// A node as a server lists it (RAFT_ADMIN_LIST_NODES): id and replicate address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminNode {
    /// Field 1: node id.
    pub node_id: i32,
    /// Field 2: host.
    pub host: String,
    /// Field 3: replicate port.
    pub port: i32,
}

fn put_ids(out: &mut BytesMut, field: u32, ids: &[i32]) {
    for &i in ids {
        encode::put_fixed32(out, field, i as u32);
    }
}

/// Body of RAFT_ADMIN_TRANSFER_LEADER (44): `TransferLeaderReq` without term and index.
pub fn transfer_leader_body(group_id: i32, old_leader: i32, new_leader: i32) -> Bytes {
    let mut b = BytesMut::new();
    encode::put_int32(&mut b, 1, group_id);
    encode::put_int32(&mut b, 3, old_leader);
    encode::put_int32(&mut b, 4, new_leader);
    b.freeze()
}

/// Body of RAFT_ADMIN_PREPARE_CHANGE (47): the current sets as expected, then the new
/// ones (repeated fixed32, unpacked).
pub fn prepare_change_body(
    group_id: i32,
    members: &[i32],
    observers: &[i32],
    prepared_members: &[i32],
    prepared_observers: &[i32],
) -> Bytes {
    let mut b = BytesMut::new();
    encode::put_int32(&mut b, 1, group_id);
    put_ids(&mut b, 2, members);
    put_ids(&mut b, 3, observers);
    put_ids(&mut b, 4, prepared_members);
    put_ids(&mut b, 5, prepared_observers);
    b.freeze()
}

/// Body of RAFT_ADMIN_COMMIT_CHANGE (48) / ABORT_CHANGE (49, index 0).
pub fn commit_or_abort_body(group_id: i32, prepare_index: i64) -> Bytes {
    let mut b = BytesMut::new();
    encode::put_int32(&mut b, 1, group_id);
    encode::put_fixed64(&mut b, 2, prepare_index as u64);
    b.freeze()
}

/// Body of RAFT_ADMIN_ADD_NODE (50); `host` must be ASCII (the reference writes one byte
/// per character).
pub fn add_node_body(node_id: i32, host: &str, port: i32) -> Result<Bytes, KvError> {
    if !host.is_ascii() {
        return Err(KvError::InvalidArgument(format!(
            "host {host:?} is not ASCII"
        )));
    }
    let mut b = BytesMut::new();
    encode::put_int32(&mut b, 1, node_id);
    encode::put_str(&mut b, 2, host);
    encode::put_int32(&mut b, 3, port);
    Ok(b.freeze())
}

fn id_list(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Body of RAFT_ADMIN_ADD_GROUP (52): member and observer ids as comma-separated text.
pub fn add_group_body(group_id: i32, members: &[i32], observers: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    encode::put_int32(&mut b, 1, group_id);
    encode::put_str(&mut b, 2, &id_list(members));
    encode::put_str(&mut b, 3, &id_list(observers));
    b.freeze()
}

#[derive(Default)]
struct AdminNodeCallback {
    node: AdminNode,
    acc: BytesCollector,
}

impl PbCallback for AdminNodeCallback {
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.node.node_id = v as i32,
            3 => self.node.port = v as i32,
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 2 {
            if let Some(b) = self.acc.push(&chunk) {
                self.node.host = String::from_utf8_lossy(&b).into_owned();
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct ListCallback {
    size: i32,
    nodes: Vec<AdminNode>,
    groups: Vec<i32>,
    acc: BytesCollector,
    err: Option<PbError>,
}

impl PbCallback for ListCallback {
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.size = v as i32,
            2 if self.groups.len() < 1_000_000 => self.groups.push(v as i32),
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 2 {
            if let Some(b) = self.acc.push(&chunk) {
                let mut p = PbParser::new(AdminNodeCallback::default());
                match p.parse_whole(&b) {
                    Ok(_) => self.nodes.push(p.into_callback().node),
                    Err(e) => self.err = Some(e),
                }
            }
        }
        Ok(())
    }
}

fn decode_list(body: &Bytes) -> Result<ListCallback, KvError> {
    let mut p = PbParser::new(ListCallback::default());
    p.parse_whole(body).map_err(KvError::Malformed)?;
    let mut cb = p.into_callback();
    if let Some(e) = cb.err.take() {
        return Err(KvError::Malformed(e));
    }
    Ok(cb)
}

/// Decodes an AdminListNodesResp body.
pub fn decode_list_nodes(body: &Bytes) -> Result<Vec<AdminNode>, KvError> {
    Ok(decode_list(body)?.nodes)
}

/// Decodes an AdminListGroupsResp body.
pub fn decode_list_groups(body: &Bytes) -> Result<Vec<i32>, KvError> {
    Ok(decode_list(body)?.groups)
}

fn pb_long(p: &ReadPacket) -> Result<i64, KvError> {
    Ok(p.decode_body::<PbLongCallback>()
        .map_err(KvError::Malformed)?
        .value)
}

/// The admin client: a [`RaftClient`] whose nodes are the servers' replicate ports.
///
/// ```no_run
/// use std::time::Duration;
/// use dt_client::admin::AdminRaftClient;
/// use dt_client::raft::{RaftClientConfig, RaftNode};
///
/// let admin = AdminRaftClient::new(RaftClientConfig::default()).unwrap();
/// admin.raft().add_or_update_nodes(&RaftNode::parse_list(
///     "1,127.0.0.1:4001;2,127.0.0.1:4002;3,127.0.0.1:4003").unwrap()).unwrap();
/// admin.raft().add_or_update_group(0, &[1, 2, 3]).unwrap();
/// let leader = admin.raft().fetch_leader(0, Duration::from_secs(3)).wait().unwrap();
/// let to = if leader == 1 { 2 } else { 1 };
/// admin.transfer_leader(0, leader, to, Duration::from_secs(10)).wait().unwrap();
/// ```
#[derive(Debug)]
pub struct AdminRaftClient {
    raft: RaftClient,
}

impl AdminRaftClient {
    /// Starts an admin client with no nodes yet.
    pub fn new(cfg: RaftClientConfig) -> Result<Self, KvError> {
        Ok(AdminRaftClient {
            raft: RaftClient::new(cfg)?,
        })
    }

    /// The Raft client underneath (add the replicate addresses and groups here).
    pub fn raft(&self) -> &RaftClient {
        &self.raft
    }

    fn to_node<T: Send + 'static>(
        &self,
        node_id: i32,
        command: i32,
        body: Bytes,
        timeout: Duration,
        map: impl FnOnce(ReadPacket) -> Result<T, KvError> + Send + 'static,
    ) -> KvFuture<T> {
        let (p, f) = kv_channel();
        self.raft
            .send_to_node(node_id, command, body, timeout, move |r| {
                p.complete(r.and_then(map))
            });
        f
    }

    fn to_leader<T: Send + 'static>(
        &self,
        group_id: i32,
        command: i32,
        body: Bytes,
        timeout: Duration,
        map: impl FnOnce(ReadPacket) -> Result<T, KvError> + Send + 'static,
    ) -> KvFuture<T> {
        let (p, f) = kv_channel();
        self.raft
            .send_request(group_id, command, body, timeout, move |r| {
                p.complete(r.and_then(map))
            });
        f
    }

    /// RAFT_QUERY_STATUS to one node.
    pub fn query_status(
        &self,
        node_id: i32,
        group_id: i32,
        timeout: Duration,
    ) -> KvFuture<QueryStatus> {
        self.raft.query_status(node_id, group_id, timeout)
    }

    /// RAFT_ADMIN_TRANSFER_LEADER (44), sent to the old leader: it hands leadership to
    /// `new_leader` and answers when done.
    pub fn transfer_leader(
        &self,
        group_id: i32,
        old_leader: i32,
        new_leader: i32,
        timeout: Duration,
    ) -> KvFuture<()> {
        self.to_node(
            old_leader,
            Commands::RAFT_ADMIN_TRANSFER_LEADER,
            transfer_leader_body(group_id, old_leader, new_leader),
            timeout,
            |_| Ok(()),
        )
    }

    /// RAFT_ADMIN_PREPARE_CHANGE (47) to the group's leader: starts a joint
    /// configuration; returns the prepare index (to commit or abort).
    pub fn prepare_config_change(
        &self,
        group_id: i32,
        members: &[i32],
        observers: &[i32],
        prepared_members: &[i32],
        prepared_observers: &[i32],
        timeout: Duration,
    ) -> KvFuture<i64> {
        let body = prepare_change_body(
            group_id,
            members,
            observers,
            prepared_members,
            prepared_observers,
        );
        self.to_leader(
            group_id,
            RaftCommands::RAFT_ADMIN_PREPARE_CHANGE,
            body,
            timeout,
            |p| pb_long(&p),
        )
    }

    /// RAFT_ADMIN_COMMIT_CHANGE (48) to the leader; returns the commit entry's index.
    pub fn commit_change(
        &self,
        group_id: i32,
        prepare_index: i64,
        timeout: Duration,
    ) -> KvFuture<i64> {
        let body = commit_or_abort_body(group_id, prepare_index);
        self.to_leader(
            group_id,
            RaftCommands::RAFT_ADMIN_COMMIT_CHANGE,
            body,
            timeout,
            |p| pb_long(&p),
        )
    }

    /// RAFT_ADMIN_ABORT_CHANGE (49) to the leader; returns the abort entry's index.
    pub fn abort_change(&self, group_id: i32, timeout: Duration) -> KvFuture<i64> {
        let body = commit_or_abort_body(group_id, 0);
        self.to_leader(
            group_id,
            RaftCommands::RAFT_ADMIN_ABORT_CHANGE,
            body,
            timeout,
            |p| pb_long(&p),
        )
    }

    /// RAFT_ADMIN_ADD_NODE (50) on server `target`: it learns node `node_id` at
    /// `host:port` (its replicate port).
    pub fn server_add_node(
        &self,
        target: i32,
        node_id: i32,
        host: &str,
        port: i32,
        timeout: Duration,
    ) -> KvFuture<()> {
        match add_node_body(node_id, host, port) {
            Ok(b) => self.to_node(
                target,
                RaftCommands::RAFT_ADMIN_ADD_NODE,
                b,
                timeout,
                |_| Ok(()),
            ),
            Err(e) => KvFuture::ready(Err(e)),
        }
    }

    /// RAFT_ADMIN_REMOVE_NODE (51) on server `target`.
    pub fn server_remove_node(&self, target: i32, node_id: i32, timeout: Duration) -> KvFuture<()> {
        let b = encode::to_bytes(&PbInt(node_id));
        self.to_node(
            target,
            RaftCommands::RAFT_ADMIN_REMOVE_NODE,
            b,
            timeout,
            |_| Ok(()),
        )
    }

    /// RAFT_ADMIN_ADD_GROUP (52) on server `target`.
    pub fn server_add_group(
        &self,
        target: i32,
        group_id: i32,
        members: &[i32],
        observers: &[i32],
        timeout: Duration,
    ) -> KvFuture<()> {
        let b = add_group_body(group_id, members, observers);
        self.to_node(
            target,
            RaftCommands::RAFT_ADMIN_ADD_GROUP,
            b,
            timeout,
            |_| Ok(()),
        )
    }

    /// RAFT_ADMIN_REMOVE_GROUP (53) on server `target`.
    pub fn server_remove_group(
        &self,
        target: i32,
        group_id: i32,
        timeout: Duration,
    ) -> KvFuture<()> {
        let b = encode::to_bytes(&PbInt(group_id));
        self.to_node(
            target,
            RaftCommands::RAFT_ADMIN_REMOVE_GROUP,
            b,
            timeout,
            |_| Ok(()),
        )
    }

    /// RAFT_ADMIN_LIST_NODES (54): the nodes server `target` knows.
    pub fn server_list_nodes(&self, target: i32, timeout: Duration) -> KvFuture<Vec<AdminNode>> {
        self.to_node(
            target,
            RaftCommands::RAFT_ADMIN_LIST_NODES,
            Bytes::new(),
            timeout,
            |p| decode_list_nodes(&p.body),
        )
    }

    /// RAFT_ADMIN_LIST_GROUPS (55): the groups server `target` runs.
    pub fn server_list_groups(&self, target: i32, timeout: Duration) -> KvFuture<Vec<i32>> {
        self.to_node(
            target,
            RaftCommands::RAFT_ADMIN_LIST_GROUPS,
            Bytes::new(),
            timeout,
            |p| decode_list_groups(&p.body),
        )
    }

    /// RAFT_ADMIN_SYNC_CONFIG (56) on server `target` (only servers started by the
    /// reference's distribution bootstrap handle it).
    pub fn server_sync_config(&self, target: i32, timeout: Duration) -> KvFuture<()> {
        self.to_node(
            target,
            RaftCommands::RAFT_ADMIN_SYNC_CONFIG,
            Bytes::new(),
            timeout,
            |_| Ok(()),
        )
    }

    /// Stops the client.
    pub fn stop(&self, timeout: Duration) {
        self.raft.stop(timeout);
    }
}
