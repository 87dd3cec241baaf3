//! [`QueryStatus`]: the client's name for the RAFT_QUERY_STATUS (46) answer, the
//! `QueryStatusResp` of `wire-protocol.md` §5.3 (also nested in the DTKV_QUERY_STATUS
//! answer). The message and its decoder are dt-raft's
//! [`QueryStatusResp`](dt_raft::rpc::QueryStatusResp): one definition for the server that
//! writes it and the client that reads it, as the reference's client carries the Raft
//! client messages. Decode a body with [`KvBody::decode`](crate::kv::KvBody::decode).

pub use dt_raft::rpc::status::{
    QueryStatusResp as QueryStatus, QueryStatusRespCallback as QueryStatusCallback,
};
