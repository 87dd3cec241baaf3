//! NODE_PING (40) and RAFT_PING (41) bodies, request and response alike (`raft.md`
//! §3.1–3.2).

use bytes::BytesMut;
use dt_codec::encode::{self, Encodable};
use dt_codec::{BytesCollector, Chunk, PbCallback, PbError};

use super::{collect_str, int32, RpcBody};

/// `NodePing`: node-level liveness check between servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodePing {
    /// Field 1, int32: the sender's node id.
    pub local_node_id: i32,
    /// Field 2, int32: the id the sender believes the receiver has.
    pub remote_node_id: i32,
    /// Field 3, fixed64: the sender's process UUID, high 64 bits.
    pub uuid_high: i64,
    /// Field 4, fixed64: the sender's process UUID, low 64 bits.
    pub uuid_low: i64,
}

impl Encodable for NodePing {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.local_node_id)
            + encode::size_int32(2, self.remote_node_id)
            + encode::size_fixed64(3, self.uuid_high as u64)
            + encode::size_fixed64(4, self.uuid_low as u64)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.local_node_id);
        encode::put_int32(out, 2, self.remote_node_id);
        encode::put_fixed64(out, 3, self.uuid_high as u64);
        encode::put_fixed64(out, 4, self.uuid_low as u64);
    }
}

/// Decoder of [`NodePing`].
#[derive(Debug, Default)]
pub struct NodePingCallback {
    msg: NodePing,
}

impl PbCallback for NodePingCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = NodePing::default();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.local_node_id = int32(v),
            2 => self.msg.remote_node_id = int32(v),
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, field: u32, v: u64) -> Result<(), PbError> {
        match field {
            3 => self.msg.uuid_high = v as i64,
            4 => self.msg.uuid_low = v as i64,
            _ => {}
        }
        Ok(())
    }
}

impl RpcBody for NodePing {
    type Callback = NodePingCallback;
    fn finish(cb: NodePingCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}

/// `RaftPing`: per-group check that a peer has the same configuration.
///
/// The four lists are server lists in the reference's format `id,host:port;` per node
/// with a trailing `;` (see [`RaftPing::format_servers`]); an empty list is not written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftPing {
    /// Field 1, int32.
    pub group_id: i32,
    /// Field 2, int32: the sender.
    pub node_id: i32,
    /// Field 3, string.
    pub members: String,
    /// Field 4, string.
    pub observers: String,
    /// Field 5, string.
    pub prepared_members: String,
    /// Field 6, string.
    pub prepared_observers: String,
}

impl RaftPing {
    /// Formats a server list as the reference does: `id,host:port;` for each node.
    pub fn format_servers<'a>(nodes: impl IntoIterator<Item = (i32, &'a str, i32)>) -> String {
        let mut s = String::new();
        for (id, host, port) in nodes {
            s.push_str(&format!("{id},{host}:{port};"));
        }
        s
    }
}

impl Encodable for RaftPing {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group_id)
            + encode::size_int32(2, self.node_id)
            + encode::size_str(3, &self.members)
            + encode::size_str(4, &self.observers)
            + encode::size_str(5, &self.prepared_members)
            + encode::size_str(6, &self.prepared_observers)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group_id);
        encode::put_int32(out, 2, self.node_id);
        encode::put_str(out, 3, &self.members);
        encode::put_str(out, 4, &self.observers);
        encode::put_str(out, 5, &self.prepared_members);
        encode::put_str(out, 6, &self.prepared_observers);
    }
}

/// Decoder of [`RaftPing`].
#[derive(Debug, Default)]
pub struct RaftPingCallback {
    msg: RaftPing,
    acc: BytesCollector,
}

impl PbCallback for RaftPingCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg = RaftPing::default();
        self.acc.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        match field {
            1 => self.msg.group_id = int32(v),
            2 => self.msg.node_id = int32(v),
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        let m = &mut self.msg;
        let out = match field {
            3 => &mut m.members,
            4 => &mut m.observers,
            5 => &mut m.prepared_members,
            6 => &mut m.prepared_observers,
            _ => return Ok(()),
        };
        collect_str(&mut self.acc, &chunk, out)
    }
}

impl RpcBody for RaftPing {
    type Callback = RaftPingCallback;
    fn finish(cb: RaftPingCallback) -> Result<Self, PbError> {
        Ok(cb.msg)
    }
}
