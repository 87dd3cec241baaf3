//! Plain message structs of the Raft RPCs as the core sees them (raft.md §5.3, §7.1,
//! §7.2), and what the core asks the driver to send. Wire encoding lives elsewhere.

use super::{Index, NodeId, Term};

/// An id the driver gives each received request, so that a reply (possibly
/// deferred) can be routed back to the connection it came from.
pub type ReqId = u64;

/// RAFT_REQUEST_VOTE request (pre-vote and vote).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteReq {
    /// Pre-vote: the candidate's current term; vote: the new term.
    pub term: Term,
    /// The candidate.
    pub candidate_id: NodeId,
    /// The candidate's last log index.
    pub last_log_index: Index,
    /// The candidate's last log term.
    pub last_log_term: Term,
    /// True for a pre-vote.
    pub pre_vote: bool,
}

/// RAFT_REQUEST_VOTE response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteResp {
    /// The voter's current term after handling the request.
    pub term: Term,
    /// True if granted.
    pub vote_granted: bool,
}

/// Why a vote request is refused with SYS_ERROR instead of a [`VoteResp`] (§5.4 rule 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteRefused {
    /// "receive vote request from unknown member".
    UnknownCandidate,
    /// "current node is not members".
    NotMember,
}

/// A vote request the core asks the driver to send; the driver hands it back with
/// the response (or the RPC error) so the core can match it to its round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteSend {
    /// The request body.
    pub req: VoteReq,
    /// The vote round it belongs to.
    pub round: u64,
    /// When it was sent (the core's time).
    pub sent_at: u64,
}

/// Index and term of one entry of an append request (the core needs no payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Raft index.
    pub index: Index,
    /// Term of the entry.
    pub term: Term,
}

/// RAFT_APPEND_ENTRIES request as received (§7.1); entries reduced to index and term.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendReq {
    /// The leader's term.
    pub term: Term,
    /// The leader.
    pub leader_id: NodeId,
    /// Index before the first entry (absent, 0, in an empty append).
    pub prev_log_index: Index,
    /// Term of `prev_log_index`.
    pub prev_log_term: Term,
    /// The leader's commit index.
    pub leader_commit: Index,
    /// The entries, in the order received.
    pub entries: Vec<EntryMeta>,
}

/// appendCode of an AppendEntries / InstallSnapshot response (§7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendCode {
    /// 0.
    Success,
    /// 1: prev entry does not match; the suggestion carries the follower's best match.
    LogNotMatch,
    /// 2: the leader tried to overwrite committed entries.
    PrevLogIndexLessThanLocalCommit,
    /// 3: smaller term, a leader received an append, or bad entries.
    ReqError,
    /// 4: the follower is installing a snapshot.
    InstallSnapshot,
    /// 5: the sender is not a member on the receiver.
    NotMemberInGroup,
    /// 6: failure on the follower.
    ServerError,
}

impl AppendCode {
    /// The wire value.
    pub fn code(self) -> i32 {
        match self {
            AppendCode::Success => 0,
            AppendCode::LogNotMatch => 1,
            AppendCode::PrevLogIndexLessThanLocalCommit => 2,
            AppendCode::ReqError => 3,
            AppendCode::InstallSnapshot => 4,
            AppendCode::NotMemberInGroup => 5,
            AppendCode::ServerError => 6,
        }
    }

    /// The code of a wire value, `None` if unknown.
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => AppendCode::Success,
            1 => AppendCode::LogNotMatch,
            2 => AppendCode::PrevLogIndexLessThanLocalCommit,
            3 => AppendCode::ReqError,
            4 => AppendCode::InstallSnapshot,
            5 => AppendCode::NotMemberInGroup,
            6 => AppendCode::ServerError,
            _ => return None,
        })
    }
}

/// AppendEntries / InstallSnapshot response (§7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResp {
    /// The responder's current term.
    pub term: Term,
    /// The result.
    pub code: AppendCode,
    /// Match-position hint (LOG_NOT_MATCH).
    pub suggest_term: Term,
    /// Match-position hint (LOG_NOT_MATCH).
    pub suggest_index: Index,
}

impl AppendResp {
    /// A response with `code` and no suggestion.
    pub fn new(term: Term, code: AppendCode) -> Self {
        AppendResp {
            term,
            code,
            suggest_term: 0,
            suggest_index: 0,
        }
    }

    /// True for SUCCESS (the wire's `success = 1`).
    pub fn success(&self) -> bool {
        self.code == AppendCode::Success
    }
}

/// An append the core asks the driver to send to one peer. The driver reads
/// entries `first_index .. first_index + count` from its tail cache or log and sets
/// the wire's `prevLogIndex = first_index - 1` and `prevLogTerm` = the first entry's
/// prevLogTerm; `count == 0` is an empty append that carries only `leader_commit`.
/// The driver hands it back with the response or the RPC error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendSend {
    /// The leader's term.
    pub term: Term,
    /// The leader (self).
    pub leader_id: NodeId,
    /// First entry index (for an empty append: the follower's next index).
    pub first_index: Index,
    /// Number of entries, 0 for an empty append.
    pub count: u64,
    /// The leader's commit index.
    pub leader_commit: Index,
    /// The replicate epoch of the peer when sent; stale responses are ignored.
    pub epoch: u64,
    /// When it was sent (lease bookkeeping).
    pub sent_at: u64,
}

impl AppendSend {
    /// `prevLogIndex` of the request.
    pub fn prev_log_index(&self) -> Index {
        self.first_index.saturating_sub(1)
    }
}

/// RAFT_INSTALL_SNAPSHOT request as the core sees it (§12.1); the chunk's bytes stay
/// with the driver (only their length is here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallReq {
    /// The leader's term.
    pub term: Term,
    /// The leader.
    pub leader_id: NodeId,
    /// Index of the last entry the snapshot covers.
    pub last_included_index: Index,
    /// Term of that entry.
    pub last_included_term: Term,
    /// Byte offset of this chunk in the snapshot stream.
    pub offset: u64,
    /// True in the last request.
    pub done: bool,
    /// Last request: byte position in the leader's log right after
    /// lastIncludedIndex, where the follower's new log continues (§17 item 15).
    pub next_write_pos: u64,
    /// First request: the leader's four sets (the wire's members non-empty); `None`
    /// in data and last requests.
    pub sets: Option<super::MemberSets>,
    /// First request: the leader's lastConfigChangeIndex (field 13). The follower
    /// does not use it: its lastConfigChangeIndex becomes lastIncludedIndex.
    pub last_config_change_index: Index,
    /// Bytes of data in this request (field 15).
    pub data_len: u64,
}
