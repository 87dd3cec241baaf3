//! The sans-IO consensus core of one Raft group (raft.md §4–§13).
//!
//! [`RaftCore`] holds the consensus state of one group: role, term and vote, the
//! per-peer replication progress, commit and apply positions, the lease, the
//! configuration. It does no IO. The driver feeds it inputs and executes the
//! [`Action`]s it returns:
//!
//! * **messages**: [`RaftCore::handle_vote`], [`RaftCore::handle_vote_resp`],
//!   [`RaftCore::handle_append`], [`RaftCore::handle_append_resp`],
//!   [`RaftCore::handle_install_snapshot`], [`RaftCore::handle_install_resp`],
//!   [`RaftCore::handle_transfer_leader`] and the RPC error forms;
//! * **time**: [`RaftCore::tick`] with the caller's monotonic milliseconds (call it at
//!   least at [`RaftCore::next_deadline`]);
//! * **IO completions**: [`RaftCore::on_log_persisted`], [`RaftCore::on_status_saved`],
//!   [`RaftCore::on_applied`], the results of the match-position searches it asked
//!   for ([`RaftCore::on_follower_match_pos`], [`RaftCore::on_leader_match_pos`]), the
//!   install steps ([`RaftCore::on_install_begun`], [`RaftCore::on_install_data_done`],
//!   [`RaftCore::on_install_complete`], [`RaftCore::on_snapshot_installed`]);
//! * **proposals** on the leader: [`RaftCore::propose`] / [`RaftCore::propose_sized`];
//! * **admin**: [`RaftCore::start_transfer`], [`RaftCore::prepare_config_change`],
//!   [`RaftCore::commit_config_change`], [`RaftCore::abort_config_change`];
//! * **apply of configuration entries**: [`RaftCore::apply_config_entry`] (and
//!   [`RaftCore::restore_config`] for a snapshot's configuration at start;
//!   [`RaftCore::set_install_required`] when init finds the node needs an install);
//! * **queries**: [`RaftCore::status`] (QUERY_STATUS), the lease, the accessors.
//!
//! Every call appends actions to an internal buffer that is reused across calls;
//! take them with [`RaftCore::drain_actions`] and execute them in order. Replies that
//! must wait for durability (a granted vote, a follower's append) are only emitted
//! once the matching completion arrives. Randomness (election timeouts) comes from a
//! [`XorShift`] seeded by the caller, so a run is reproducible.
//!
//! ## What the driver promises
//!
//! * Time never goes backwards between calls.
//! * IO completions come in the order the actions were issued: persisted indexes
//!   and saved statuses never go back (the log and the status file are written in
//!   order).
//! * Every [`Action::SendAppend`] comes back exactly once, as a response
//!   ([`RaftCore::handle_append_resp`]) or an error after rpcTimeout
//!   ([`RaftCore::handle_append_error`]); otherwise the peer's window stays occupied.
//!   Likewise an [`Action::StartInstallSnapshot`] stream ends with
//!   [`RaftCore::on_snapshot_installed`], a `false` from
//!   [`RaftCore::handle_install_resp`], or [`RaftCore::handle_install_error`].
//! * Every [`Action::FindMatchPos`] is answered, and every follower-side install
//!   action ([`Action::BeginInstallSnapshot`], [`Action::InstallSnapshotData`],
//!   [`Action::FinishInstallSnapshot`]) is completed.
//! * Configuration entries are applied with [`RaftCore::apply_config_entry`] in log
//!   order, after every earlier entry is applied, followed by
//!   [`RaftCore::on_applied`].
//! * Requests are decoded into the plain structs of [`msg`]; terms above the wire's
//!   int32 range and non-positive node ids are rejected by the decoder. Anything else
//!   a peer may send (terms, indexes, entry sequences, snapshot chunks that make no
//!   sense) is checked here and answered with the spec's code or dropped, never a
//!   panic.
//!
//! ## What is here
//!
//! * Election with pre-vote, the voter and candidate rules, the leader's step-down
//!   without quorum (§5).
//! * Replication (§7): per-peer progress, the first append of an epoch carrying one
//!   entry then pipelining within `max_replicate_items` (silly window) and
//!   `max_replicate_bytes`, appends cut at `single_replicate_limit` bytes (sizes from
//!   [`RaftCore::propose_sized`]; entries the core has no size for are read from the
//!   log at most 1024 per append), empty appends for the commit index, the two-sided
//!   match-position search; the receiver with deferred, in-order replies.
//! * Commit of own-term entries by rwQuorum (joint: both quorums), follower commit,
//!   group ready (§8); the lease (§9); leader transfer (§10).
//! * Membership change by joint consensus (§11, [`config_change`]): the admin checks
//!   and idempotency of prepare / commit / abort, the PREPARE / DROP / COMMIT entries
//!   and their body encoding (byte-exact with the reference's), applying them
//!   (`disable_config_change`, lastConfigChangeIndex), "remove legacy" replication
//!   to nodes that left, prepared observers not replicated to, observers.
//! * Install snapshot decisions (§12): the leader marks a peer, starts, aborts and
//!   retries streams; the follower checks the first / data / last requests, adopts
//!   the leader's configuration and log position (lastConfigChangeIndex :=
//!   lastIncludedIndex).
//! * Query status (§13): [`CoreStatus`], with the sampled applyLagMillis.
//!
//! ## What the driver does (not here)
//!
//! Reading and writing the log, the status file and snapshots; streaming snapshot
//! chunks and taking the fresh state-machine snapshot; the node table (ids given to
//! the admin methods are checked with the caller's `node_exists`); raft pings and
//! readiness; the apply fiber and the state machine's futures; the linear task
//! runner's flow control (maxPendingTasks); dropping requests whose timeout has
//! expired (§17 item 17); the "persist config" hook; the init replay.
//!
//! ## Deliberate differences from the reference
//!
//! * A follower whose last entry is of the leader's term accepts a request whose
//!   entries overlap its log without truncating (log matching makes the overlap
//!   identical): a duplicated or re-sent request never removes acknowledged entries.
//! * An append waits until the current term is durable in the status file, also
//!   when the term was raised by a vote request.
//! * Install data chunks must continue the stream begun (same lastIncluded, offset
//!   where the previous chunk ended); others are answered SERVER_ERROR, and the
//!   leader restarts the stream.
//! * Configuration sets are compared as sets (order and repeats ignored), as the
//!   reference's `Set.equals`; the PREPARE body lists ids in the order held (the
//!   reference writes its hash-set order, which is ascending for small ids).
//! * Any leader applying a PREPARE writes the heartbeat entry that lets the admin's
//!   prepare complete (the reference does it in the admin request's callback).
//! * Campaigns, commit and the lease need a quorum in every configuration the
//!   unapplied configuration entries of the log may give
//!   ([`RaftCore::set_log_configs`]), and the core keeps replication progress for, and a
//!   leader replicates to, every node those configurations name
//!   ([`RaftCore::replication_targets`]); readiness verdicts are remembered for nodes
//!   not (yet) in any of them.
//! * A node votes whatever configuration it knows, and takes appends and installs
//!   from the leader of a term whoever it is, as in Raft: the reference refuses a
//!   vote when the candidate or the node itself is not a member of the node's applied
//!   configuration ("unknown member", "not members") and an append from a non-member
//!   (NOT_MEMBER_IN_GROUP). The candidate's count (a quorum of its configurations,
//!   each voter checking logs and persisting its vote) keeps elections safe; the
//!   refusals only left a group whose leader was lost in the middle of a change, with
//!   new members that had not applied (or received) it, unable to elect anyone again.
//! * A node whose log is dropped for an install votes with the later of its log's
//!   last entry and the snapshot's ([`RaftCore::install_vote`]), recorded in the
//!   status file with `installSnapshot` (dt-only keys the reference ignores), also
//!   after a crash interrupted the install; the reference refuses every vote until
//!   the install finishes, and a group whose nodes' installs were interrupted could
//!   never elect a leader again.

mod commit;
pub mod config;
pub mod config_change;
mod election;
mod install;
mod lease;
mod membership;
pub mod msg;
pub mod quorum;
mod receiver;
mod replicate;
pub mod rng;
pub mod role;
mod status;
mod transfer;

use std::collections::VecDeque;

pub use config::{ConfigError, CoreConfig};
pub use config_change::{
    ConfigApplied, ConfigBody, ConfigBodyError, ConfigChangeError, ConfigEntry, ConfigProposal,
};
pub use install::InstallStart;
pub use lease::LeaseError;
pub use msg::{
    AppendCode, AppendReq, AppendResp, AppendSend, EntryMeta, InstallReq, ReqId, VoteRefused,
    VoteReq, VoteResp, VoteSend,
};
pub use quorum::MemberSets;
pub use replicate::{NotLeader, Progress, Proposed};
pub use rng::XorShift;
pub use role::Role;
pub use status::CoreStatus;
pub use transfer::{TransferError, TransferReq};

/// A node id (positive; 0 means "none").
pub type NodeId = u32;
/// A Raft term.
pub type Term = u32;
/// A Raft log index (first index is 1).
pub type Index = u64;

/// "Not yet": groupReadyIndex while unknown (+∞ in the spec).
const NO_INDEX: Index = Index::MAX;

/// Who asked for a match-position search (§7.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchSearch {
    /// The follower, for the append request `req`.
    Follower {
        /// The append request waiting for the result.
        req: ReqId,
    },
    /// The leader, for `peer`'s suggestion.
    Leader {
        /// The follower that suggested.
        peer: NodeId,
        /// The peer's replicate epoch; a result for another epoch is ignored.
        epoch: u64,
    },
}

/// What produced entries the leader asks to persist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalEntries {
    /// Entries the driver proposed with [`RaftCore::propose`].
    Proposal,
    /// A heartbeat entry (type 1) the core created: on becoming leader (the no-op of
    /// the new term, §5.6) or after heartbeatInterval without proposals (§6.3).
    Heartbeat,
}

/// An action the driver must execute, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Persist the status file (term, votedFor, commitIndex) and report back with
    /// [`RaftCore::on_status_saved`]. Replies that wait for it are held by the core.
    SaveStatus {
        /// currentTerm.
        term: Term,
        /// votedFor (0 = none).
        voted_for: NodeId,
        /// commitIndex (persisted lazily by the reference).
        commit_index: Index,
    },
    /// Leader: write local entries `first_index..=last_index` of `term`; the first
    /// one's prevLogTerm is `prev_log_term`. Report with [`RaftCore::on_log_persisted`].
    AppendLocal {
        /// What the entries are.
        kind: LocalEntries,
        /// First index.
        first_index: Index,
        /// Last index.
        last_index: Index,
        /// Term of all of them.
        term: Term,
        /// Term of `first_index - 1`.
        prev_log_term: Term,
    },
    /// Follower: write entries `first_index..=last_index` of the received request
    /// `req`, after truncating the log above `truncate_after` if it is set (failing
    /// pending tasks there with "raft log truncated"). Report with
    /// [`RaftCore::on_log_persisted`].
    AppendReceived {
        /// The request carrying the entries.
        req: ReqId,
        /// Truncate entries with index > this first.
        truncate_after: Option<Index>,
        /// First entry of the request to write (earlier ones are already in the log).
        first_index: Index,
        /// Last entry to write.
        last_index: Index,
    },
    /// Send a (pre-)vote request.
    SendVote {
        /// Target.
        to: NodeId,
        /// The request and its round.
        msg: VoteSend,
    },
    /// Send an append request.
    SendAppend {
        /// Target.
        to: NodeId,
        /// The request.
        msg: AppendSend,
    },
    /// Reply to the vote request `req`.
    ReplyVote {
        /// The request.
        req: ReqId,
        /// The reply, or a refusal written as SYS_ERROR.
        resp: Result<VoteResp, VoteRefused>,
    },
    /// Reply to the append request `req`.
    ReplyAppend {
        /// The request.
        req: ReqId,
        /// The reply.
        resp: AppendResp,
    },
    /// Search the local log for the last entry valid for the suggestion (§7.5) and
    /// report with [`RaftCore::on_follower_match_pos`] / [`RaftCore::on_leader_match_pos`].
    FindMatchPos {
        /// Who waits for the result.
        search: MatchSearch,
        /// Suggested term.
        suggest_term: Term,
        /// Suggested index.
        suggest_index: Index,
    },
    /// Leader (§12.2): peer `to` has no usable log (it suggested (0,0), no match was
    /// found, or it answered INSTALL_SNAPSHOT); appends to it stop. Emitted when the
    /// peer is marked, and again `replicate_retry_ms` after a failed stream (while
    /// the peer is ready). The driver:
    ///
    /// 1. asks the apply fiber for a fresh state-machine snapshot at lastApplied (not
    ///    the snapshot file, §17 item 15) giving lastIncludedIndex / Term, and looks
    ///    up `nextWritePos` (byte position after lastIncludedIndex in the log);
    /// 2. sends the first request (`start.sets`, `start.last_config_change_index`,
    ///    offset 0, no data), then data chunks of `replicate_snapshot_buffer_size`
    ///    with up to `replicate_snapshot_concurrency` in flight, then the last
    ///    request (`done`, `nextWritePos`, offset = total bytes), all with
    ///    `start.term` and `start.leader_id`;
    /// 3. passes every reply to [`RaftCore::handle_install_resp`] and stops the
    ///    stream when it returns false; an RPC error or a snapshot read failure goes
    ///    to [`RaftCore::handle_install_error`];
    /// 4. after the last request's SUCCESS calls [`RaftCore::on_snapshot_installed`]
    ///    with lastIncludedIndex.
    StartInstallSnapshot {
        /// The peer.
        to: NodeId,
        /// Term, epoch and configuration of the stream.
        start: InstallStart,
    },
    /// Follower (§12.3), first install request `req`: the core has set
    /// installSnapshot, adopted the leader's sets and set lastConfigChangeIndex :=
    /// `last_included_index`. The driver persists installSnapshot = true in the
    /// status file (with [`RaftCore::install_vote`], the position the node votes with
    /// meanwhile, `RaftLog::begin_install_voting`), stops the apply fiber and waits for it, fails pending tasks,
    /// deletes all log and index files and clears the tail cache
    /// (`RaftLog::begin_install`), then calls [`RaftCore::on_install_begun`] (which
    /// replies). Later requests wait for it.
    BeginInstallSnapshot {
        /// The first request.
        req: ReqId,
        /// The snapshot's last index.
        last_included_index: Index,
        /// The snapshot's last term.
        last_included_term: Term,
    },
    /// Follower: data request `req` of the install begun: hand its data to
    /// `StateMachine::install_snapshot(last_included_index, last_included_term,
    /// offset, done = false, data)` and, when that completes, call
    /// [`RaftCore::on_install_data_done`] (which replies). Later requests do not wait;
    /// chunks reach the state machine in this order.
    InstallSnapshotData {
        /// The data request.
        req: ReqId,
        /// The snapshot's last index.
        last_included_index: Index,
        /// The snapshot's last term.
        last_included_term: Term,
        /// Byte offset of the chunk.
        offset: u64,
    },
    /// Follower: last install request `req`: call `StateMachine::install_snapshot(…,
    /// done = true, …)` and wait; re-create the log so that entry
    /// `last_included_index + 1` is written at byte `next_write_pos`
    /// (`RaftLog::finish_install`, storage.md §7); persist the status
    /// (installSnapshot = false, commitIndex = lastIncludedIndex) and wait; restart
    /// the apply fiber at lastApplied = lastIncludedIndex; start saving a local
    /// snapshot (asynchronously); then call [`RaftCore::on_install_complete`] (which
    /// replies). Later requests wait for it.
    FinishInstallSnapshot {
        /// The last request.
        req: ReqId,
        /// The snapshot's last index.
        last_included_index: Index,
        /// The snapshot's last term.
        last_included_term: Term,
        /// Where the new log continues (§17 item 15).
        next_write_pos: u64,
    },
    /// Apply committed entries up to `commit_index` (in order; report progress with
    /// [`RaftCore::on_applied`]).
    Apply {
        /// The new commit index.
        commit_index: Index,
    },
    /// The role (or term, or known leader) changed.
    RoleChanged {
        /// New role.
        role: Role,
        /// Current term.
        term: Term,
        /// Known leader, if any.
        leader: Option<NodeId>,
    },
    /// Leader transfer: query the target's status and compare its four member sets
    /// with ours, then call [`RaftCore::on_transfer_target_checked`].
    CheckTransferTarget {
        /// The target.
        to: NodeId,
    },
    /// Leader transfer: this node has stepped down; send RAFT_TRANSFER_LEADER to the
    /// target. The admin request completes with that RPC's reply.
    SendTransferLeader {
        /// The target.
        to: NodeId,
        /// The request.
        req: TransferReq,
    },
    /// Leader transfer failed before this node stepped down; the admin request fails
    /// and held proposals are released.
    TransferFailed {
        /// Why.
        error: TransferError,
    },
    /// Reply to RAFT_TRANSFER_LEADER `req` (an error is written as SYS_ERROR).
    ReplyTransfer {
        /// The request.
        req: ReqId,
        /// The result.
        result: Result<(), TransferError>,
    },
    /// A leader saw a higher term: every task still in its tail cache fails with
    /// NotLeader (§17 item 19).
    FailPendingTasks {
        /// The leader hint, if known.
        leader: Option<NodeId>,
    },
}

/// The current vote round (pre-vote or vote), §5.2–5.5.
#[derive(Clone, Debug, Default)]
struct VoteRound {
    id: u64,
    active: bool,
    pre_vote: bool,
    /// Vote round opened, status (term+1, self) being persisted before sending.
    waiting_status: bool,
    granted: Vec<NodeId>,
}

/// The consensus core of one group. See the [module docs](self).
pub struct RaftCore {
    cfg: CoreConfig,
    sets: MemberSets,
    rng: XorShift,
    now: u64,

    role: Role,
    term: Term,
    voted_for: NodeId,
    leader: Option<NodeId>,
    saved_term: Term,
    saved_vote: NodeId,

    last_log_index: Index,
    last_log_term: Term,
    /// lastForceLogIndex (syncForce) or lastWriteLogIndex, as reported by the driver.
    persisted_index: Index,
    commit_index: Index,
    leader_commit: Index,
    last_applied: Index,
    group_ready_index: Index,
    group_ready: bool,
    installing_snapshot: bool,
    /// Waiting for an install with an intact log: votes are still granted
    /// ([`RaftCore::set_install_required_voting`]).
    votes_while_waiting: bool,
    /// While installing: the (last log term, last log index) votes are granted with,
    /// the log being dropped ([`RaftCore::install_vote`]).
    install_vote: Option<(Term, Index)>,
    /// A committed index this node knows of besides its commit index (the status
    /// file's, for a node waiting for an install: [`RaftCore::set_known_committed`]).
    known_committed: Index,
    follower_install: Option<install::FollowerInstall>,
    last_config_change_index: Index,
    /// The configuration entries the log holds above lastApplied, in log order (the
    /// driver's view, [`RaftCore::set_log_configs`]): a campaign needs an elect quorum
    /// in every configuration they may give.
    log_configs: Vec<(Index, config_change::ConfigEntry)>,

    /// Body sizes of the leader's recent entries: `tail_bytes[k]` is index
    /// `tail_base + k`.
    tail_base: Index,
    tail_bytes: VecDeque<u64>,
    /// (commit index, time) samples for applyLagMillis (§13).
    commit_history: VecDeque<(Index, u64)>,
    /// The newest sample taken, consumed or not (rate limit).
    last_commit_sample: Option<(Index, u64)>,
    apply_lag_ms: u64,
    last_apply_time: u64,

    last_elect_time: u64,
    /// No election timer has been restarted since the core was made: a group whose
    /// only voter is this node then campaigns at its first check instead of after an
    /// election timeout (the reference starts every group with `lastElectTime` a day
    /// back; with more voters dt waits, see [`CoreConfig::leader_stickiness`]).
    fresh_start: bool,
    /// When an append of the current leader was last accepted (or the core was made):
    /// the fence of [`CoreConfig::leader_stickiness`].
    leader_heard_at: u64,
    elect_check_at: u64,
    last_propose_time: u64,
    vote: VoteRound,
    /// Granted real votes waiting for their status write: (req, term, candidate).
    vote_replies: VecDeque<(ReqId, Term, NodeId)>,
    /// Real vote requests waiting for the local log write to finish (§5.4 rule 5).
    parked_votes: VecDeque<(ReqId, NodeId, VoteReq)>,

    peers: Vec<Progress>,
    /// The last readiness verdict the driver gave for each node
    /// ([`RaftCore::set_member_ready`]), also for nodes the core has no progress for
    /// (yet, or any more): a node that joins the replicate list later starts with it.
    verdicts: Vec<(NodeId, bool)>,
    transfer: Option<transfer::Transfer>,
    receiver: receiver::Receiver,
    actions: Vec<Action>,
    scratch: Vec<u64>,
    /// Scratch of [`RaftCore::sync_peers`] (the replication targets), kept between calls.
    targets_scratch: Vec<NodeId>,
}

impl RaftCore {
    /// A core for a group whose persisted state is `term`, `voted_for`, a log ending at
    /// (`last_log_index`, `last_log_term`) — all persisted — and `commit_index`, at time
    /// `now`. Election timeouts use `seed`. Starts as follower (or observer / none).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: CoreConfig,
        seed: u64,
        now: u64,
        term: Term,
        voted_for: NodeId,
        last_log_index: Index,
        last_log_term: Term,
        commit_index: Index,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let sets = MemberSets::new(cfg.members.clone(), cfg.observers.clone());
        let role = role_in(&sets, cfg.node_id);
        let peers = sets
            .replicate_list()
            .into_iter()
            .map(|id| Progress::new(id, id == cfg.node_id))
            .collect();
        let mut core = RaftCore {
            rng: XorShift::new(seed),
            now,
            role,
            term,
            voted_for,
            leader: None,
            saved_term: term,
            saved_vote: voted_for,
            last_log_index,
            last_log_term,
            persisted_index: last_log_index,
            commit_index: commit_index.min(last_log_index),
            leader_commit: 0,
            last_applied: 0,
            group_ready_index: NO_INDEX,
            group_ready: false,
            installing_snapshot: false,
            votes_while_waiting: false,
            install_vote: None,
            known_committed: 0,
            follower_install: None,
            last_config_change_index: 0,
            log_configs: Vec::new(),
            tail_base: 0,
            tail_bytes: VecDeque::new(),
            commit_history: VecDeque::new(),
            last_commit_sample: None,
            apply_lag_ms: 0,
            last_apply_time: now,
            last_elect_time: now,
            fresh_start: true,
            leader_heard_at: now,
            elect_check_at: now,
            last_propose_time: now,
            vote: VoteRound::default(),
            vote_replies: VecDeque::new(),
            parked_votes: VecDeque::new(),
            peers,
            verdicts: Vec::new(),
            transfer: None,
            receiver: receiver::Receiver::default(),
            actions: Vec::new(),
            scratch: Vec::new(),
            targets_scratch: Vec::new(),
            cfg,
            sets,
        };
        // the reference's vote fiber first wakes after a random 1-30 ms; a sole voter
        // has no rival candidate to spread out from, so it checks at once
        let me = core.cfg.node_id;
        core.elect_check_at = if core.sets.has_elect_quorum(|id| id == me) {
            now
        } else {
            now + core.rng.range(1, 30)
        };
        Ok(core)
    }

    /// Takes the actions produced since the last call, in execution order.
    pub fn drain_actions(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// The local node id.
    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }
    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// currentTerm.
    pub fn term(&self) -> Term {
        self.term
    }
    /// votedFor (0 = none).
    pub fn voted_for(&self) -> NodeId {
        self.voted_for
    }
    /// The known leader (self when leader).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// lastLogIndex (entries accepted, persisted or not).
    pub fn last_log_index(&self) -> Index {
        self.last_log_index
    }
    /// lastLogTerm.
    pub fn last_log_term(&self) -> Term {
        self.last_log_term
    }
    /// The persisted index reported by the driver.
    pub fn persisted_index(&self) -> Index {
        self.persisted_index
    }
    /// commitIndex.
    pub fn commit_index(&self) -> Index {
        self.commit_index
    }
    /// lastApplied as reported by the driver.
    pub fn last_applied(&self) -> Index {
        self.last_applied
    }
    /// True once the first entry of the current term (leader) or the first entry
    /// accepted in this term (follower) is applied (§8.5).
    pub fn group_ready(&self) -> bool {
        self.group_ready
    }
    /// The member sets.
    pub fn member_sets(&self) -> &MemberSets {
        &self.sets
    }
    /// The highest index whose applied entries the driver's tail cache may drop however
    /// young they are, because nobody will ask the cache for them again. Leader:
    /// [`replicated_to_all`](Self::replicated_to_all). Any other role: `Index::MAX`,
    /// every applied entry. A follower's cache is read only by its own apply; if it
    /// becomes leader, what a peer lacks is read from the log. Kept for the
    /// reference's ten seconds instead, a busy follower's applied entries pile up, each
    /// also holding on to the network buffer it was decoded from (`raft_bench --groups
    /// 100`, three nodes in one process: the followers' caches took ~445 MiB after
    /// 15 s, and the process ~1.5 GiB).
    pub fn tail_droppable_upto(&self, cached_from: Index) -> Index {
        if self.role == Role::Leader {
            self.replicated_to_all(cached_from)
        } else {
            Index::MAX
        }
    }
    /// Leader: the highest index every other node it is replicating to right now
    /// from memory (members, observers, prepared and leaving ones) holds, `Index::MAX`
    /// when there is none (a one-node group, or every peer unreachable or behind).
    /// 0 in any other role (nothing is known). `cached_from` is the first index the
    /// caller still holds in memory.
    ///
    /// A peer does not count when the leader is not replicating to it (the raft ping
    /// marks it not ready: down, unreachable; its replication stopped after an error,
    /// until it restarts; it waits for a snapshot), or when it already lacks an entry
    /// before `cached_from` (it is caught up from the log). Whatever such a peer needs
    /// is read from the log, so the driver's tail cache need not hold entries for it:
    /// kept for a dead or far-behind follower, a busy leader's cache would fill to its
    /// bounds (`maxCacheTasks`, 100 000 entries, tens of MiB).
    pub fn replicated_to_all(&self, cached_from: Index) -> Index {
        if self.role != Role::Leader {
            return 0;
        }
        self.peers
            .iter()
            .filter(|p| !p.is_self && p.ready && p.running && !p.install_snapshot)
            .filter(|p| p.match_index.saturating_add(1) >= cached_from)
            .map(|p| p.match_index)
            .min()
            .unwrap_or(Index::MAX)
    }

    /// The replication progress of `id` (leader-side bookkeeping).
    pub fn progress(&self, id: NodeId) -> Option<&Progress> {
        self.peers.iter().find(|p| p.node_id == id)
    }

    /// The latest time at which [`tick`](Self::tick) must be called.
    pub fn next_deadline(&self) -> u64 {
        let mut d = self.elect_check_at;
        if let Some(t) = self.transfer {
            d = d.min(t.deadline());
        }
        if self.role == Role::Leader {
            d = d.min(self.heartbeat_due());
            for p in &self.peers {
                if !p.is_self && !p.running && p.ready && !p.searching && !p.install_snapshot {
                    d = d.min(p.restart_at);
                }
                if !p.is_self && p.ready && p.install_snapshot && !p.installing {
                    d = d.min(p.restart_at);
                }
                if let Some((_, deadline)) = p.remove_legacy {
                    d = d.min(deadline);
                }
            }
        }
        d
    }

    /// When an idle leader writes its next heartbeat entry: `heartbeatInterval` after the
    /// last proposal, rounded up to the alignment grid when
    /// [`CoreConfig::align_heartbeats`] is on.
    fn heartbeat_due(&self) -> u64 {
        let due = self.last_propose_time + self.cfg.heartbeat_interval_ms;
        if !self.cfg.align_heartbeats {
            return due;
        }
        let q = (self.cfg.heartbeat_interval_ms / 4).max(1);
        due.div_ceil(q) * q
    }

    /// Marks peer `id` ready or not (the raft ping of §3.2 decides). Only ready peers
    /// get pre-votes and replication. Self is always ready. The verdict is remembered
    /// for a node the core does not replicate to (yet): it applies when a
    /// configuration brings the node in.
    pub fn set_member_ready(&mut self, now: u64, id: NodeId, ready: bool) {
        self.now = self.now.max(now);
        if id != self.cfg.node_id {
            match self.verdicts.iter_mut().find(|v| v.0 == id) {
                Some(v) => v.1 = ready,
                None => self.verdicts.push((id, ready)),
            }
        }
        let Some(i) = self.peer_index(id) else { return };
        if self.peers[i].is_self || self.peers[i].ready == ready {
            return;
        }
        self.peers[i].ready = ready;
        if ready {
            self.peers[i].running = true;
            self.peers[i].restart_at = self.now;
            self.replicate_peer(i);
            self.try_start_install(i);
        } else {
            self.peers[i].bump_epoch(u64::MAX);
        }
    }

    /// Time passes: election checks (§5.1), the leader's step-down without quorum,
    /// heartbeat entries of an idle leader, restarts of stopped replication.
    pub fn tick(&mut self, now: u64) {
        self.now = self.now.max(now);
        if self.role == Role::Leader {
            if self.transfer.is_none() && self.now >= self.heartbeat_due() {
                self.append_local(LocalEntries::Heartbeat, 1);
            }
            let now = self.now;
            for i in 0..self.peers.len() {
                let p = &mut self.peers[i];
                if !p.is_self
                    && !p.running
                    && p.ready
                    && !p.searching
                    && !p.install_snapshot
                    && p.restart_at <= now
                {
                    p.running = true;
                    self.replicate_peer(i);
                }
            }
            for i in 0..self.peers.len() {
                self.try_start_install(i);
            }
            self.check_legacy();
        }
        self.check_transfer();
        if self.now >= self.elect_check_at {
            self.election_check();
        }
    }

    /// The log is persisted up to `index` (lastForceLogIndex when syncForce, else
    /// lastWriteLogIndex). Releases deferred append replies, advances commit.
    pub fn on_log_persisted(&mut self, now: u64, index: Index) {
        self.now = self.now.max(now);
        let index = index.min(self.last_log_index);
        if index <= self.persisted_index {
            return;
        }
        self.persisted_index = index;
        if self.role == Role::Leader {
            let me = self.cfg.node_id;
            if let Some(i) = self.peer_index(me) {
                self.peers[i].match_index = index;
            }
            self.leader_try_commit();
            self.check_transfer();
        } else {
            self.release_deferred();
            self.follower_commit();
        }
        if self.persisted_index == self.last_log_index {
            self.receiver_write_finished();
            self.unpark_votes();
        }
    }

    /// The status file now holds `term` and `voted_for`.
    pub fn on_status_saved(&mut self, now: u64, term: Term, voted_for: NodeId) {
        self.now = self.now.max(now);
        if term > self.saved_term || (term == self.saved_term && voted_for != 0) {
            self.saved_term = term;
            self.saved_vote = voted_for;
        }
        // granted votes: reply only if the term did not move meanwhile (§5.4 rule 7)
        while let Some(&(req, t, cand)) = self.vote_replies.front() {
            if t > self.saved_term || (t == self.saved_term && self.saved_vote != cand) {
                break;
            }
            self.vote_replies.pop_front();
            if t == self.term {
                let resp = VoteResp {
                    term: t,
                    vote_granted: true,
                };
                self.actions.push(Action::ReplyVote {
                    req,
                    resp: Ok(resp),
                });
            }
        }
        self.candidate_status_saved();
        self.receiver_status_saved();
    }

    /// The state machine has applied up to `index`.
    pub fn on_applied(&mut self, now: u64, index: Index) {
        self.now = self.now.max(now);
        if index > self.last_applied {
            self.last_applied = index;
            self.last_apply_time = self.now;
            self.sample_apply_lag();
        }
        if !self.group_ready
            && self.role != Role::None
            && self.last_applied >= self.group_ready_index
        {
            self.group_ready = true;
        }
    }

    fn peer_index(&self, id: NodeId) -> Option<usize> {
        self.peers.iter().position(|p| p.node_id == id)
    }

    fn set_role(&mut self, role: Role) {
        self.role = role;
        self.actions.push(Action::RoleChanged {
            role,
            term: self.term,
            leader: self.leader,
        });
    }

    /// Restarts the election timer: lastElectTime := now; the next check is at
    /// lastElectTime + electTimeout + random 10–700 ms.
    fn restart_elect_timer(&mut self) {
        self.fresh_start = false;
        self.last_elect_time = self.now;
        self.elect_check_at = self.now + self.cfg.elect_timeout_ms + self.rng.range(10, 700);
    }

    /// The state reset of §4, on every role and term change.
    fn reset(&mut self, keep_confirm: bool) {
        self.fail_transfer(TransferError::NotLeader(None));
        self.group_ready_index = NO_INDEX;
        self.group_ready = false;
        self.restart_elect_timer();
        self.leader = None;
        self.leader_commit = 0;
        self.tail_bytes.clear();
        self.commit_history.clear();
        self.last_commit_sample = None;
        self.apply_lag_ms = status::APPLY_LAG_UNKNOWN_MS;
        self.peers.retain(|p| p.remove_legacy.is_none());
        for p in &mut self.peers {
            p.next_index = 0;
            p.match_index = 0;
            p.rep_commit_index = 0;
            p.rep_commit_acked = 0;
            p.install_snapshot = false;
            p.searching = false;
            p.bump_epoch(0);
            p.installing = false;
            p.running = p.ready || p.is_self;
            if !keep_confirm {
                p.last_confirm = 0;
            }
        }
    }

    /// incrTerm (§4): a larger term was seen.
    fn incr_term(&mut self, term: Term) {
        let was_leader = self.role == Role::Leader;
        self.cancel_vote();
        self.reset(false);
        self.term = term;
        self.voted_for = 0;
        if was_leader {
            self.actions.push(Action::FailPendingTasks { leader: None });
        }
        let role = if self.role.is_voting() {
            Role::Follower
        } else {
            self.role
        };
        self.set_role(role);
        self.save_status();
    }

    fn save_status(&mut self) {
        self.actions.push(Action::SaveStatus {
            term: self.term,
            voted_for: self.voted_for,
            commit_index: self.commit_index,
        });
    }
}

/// The role a node has by membership alone.
fn role_in(sets: &MemberSets, id: NodeId) -> Role {
    if sets.is_voter(id) {
        Role::Follower
    } else if sets.is_observer(id) {
        Role::Observer
    } else {
        Role::None
    }
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_install;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_membership;
