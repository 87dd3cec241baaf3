//! The whole-cluster simulation: several nodes, a client workload, faults, invariant
//! checks and the linearizability check, all in one thread on a
//! [`dt_fiber::Simulation`]; one seed decides everything.
//!
//! **Which runner.** By default every node is the real fiber driver's
//! [`RaftGroup`](crate::driver::RaftGroup) with the real apply path ([`super::drive`]:
//! [`SimRaftLog`] as its log, the KV state machine, a transport over [`SimNet`]).
//! [`SimConfig::interim_runner`] runs the older interim node runner of this module
//! instead (the core driven directly, installs by copying, per-node clock drift),
//! kept for comparison. The workload, faults, checks and command line are the same.
//!
//! What a run does ([`run_seed`]):
//!
//! * `nodes` voters on one [`SimNet`], each with a [`SimDisk`], a KV state machine
//!   ([`super::kv`]) and a clock running at its own rate (drift within ±1 %, far
//!   inside the lease's margin of electTimeout/10);
//! * client processes invoke put / get (lease read) / cas / remove on a few keys at
//!   the node they think leads, with a timeout; a refusal before anything was
//!   proposed is `fail`, a timeout or a lost leadership after proposing is `info`;
//! * a nemesis fiber, at random virtual instants: partitions (symmetric, one-way,
//!   isolate the leader), slow links, crashes and restarts of any node (a crash keeps
//!   what the disk synced, maybe a torn tail), fsync failures (the node's log fails
//!   and the node restarts), leader transfers;
//! * invariants checked as events happen: at most one leader per term (a transfer
//!   hands the term over only after the old leader stepped down), leader completeness
//!   (a new leader holds every entry known committed), one entry per index across all
//!   applies, commit never moving back within an incarnation, log matching between
//!   all pairs of nodes (every 500 ms and at the end), no acknowledged write missing
//!   from any node's log at the end;
//! * at the end: faults healed, crashed nodes restarted, the cluster left to
//!   converge, the last checks, then [`super::lincheck`] over the history.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use dt_fiber::{FiberChannel, FiberGroup, Simulation};

use super::bugs::{self, Bug};
use super::disk::{SimDisk, SimDiskConfig, SimRaftLog};
use super::history::{Event, History, Key, Value};
use super::kv::{Command, Kv};
use super::lincheck::{check_events, CheckConfig, Verdict};
use super::net::{NetConfig, SimNet};
use crate::core::{
    Action, AppendReq, AppendResp, AppendSend, CoreConfig, EntryMeta, Index, LeaseError,
    MatchSearch, NodeId, RaftCore, ReqId, Role, Term, TransferReq, VoteResp, VoteSend, XorShift,
};
use crate::raft_log::RaftLog;
use crate::store::log_item::{TYPE_HEARTBEAT, TYPE_NORMAL};
use crate::store::LogItem;

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Loss, duplicates, reordering, partitions, slow links.
    pub net: bool,
    /// Torn unsynced writes at a crash, fsync failures.
    pub disk: bool,
    /// Crash and restart of nodes.
    pub crash: bool,
    /// Clock drift between nodes (interim runner only: on the driver every node reads
    /// the one dispatcher clock of the simulation).
    pub clock: bool,
}

impl Faults {
    /// Every fault.
    pub fn all() -> Self {
        Faults {
            net: true,
            disk: true,
            crash: true,
            clock: true,
        }
    }

    /// Parses `net,disk,crash,clock,all` (comma separated; `none` for no faults).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut f = Faults::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "net" => f.net = true,
                "disk" => f.disk = true,
                "crash" => f.crash = true,
                "clock" => f.clock = true,
                "all" => f = Faults::all(),
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown fault {other:?} (expected net, disk, crash, clock, all, none)"
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// What one run simulates.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of voting nodes (3 or 5 in practice).
    pub nodes: u32,
    /// Faults to inject.
    pub faults: Faults,
    /// Virtual time with the workload and faults running.
    pub duration: Duration,
    /// Client processes.
    pub clients: u32,
    /// Keys the clients work on.
    pub keys: i64,
    /// A deliberate bug to switch on (the simulation's self-test).
    pub bug: Option<Bug>,
    /// [`CoreConfig::leader_stickiness`]; without it lease reads are not
    /// linearizable under partitions (the default is on here).
    pub leader_stickiness: bool,
    /// [`CoreConfig::align_heartbeats`] on the fiber driver (the default is on here, as
    /// in `RaftGroupConfig`; the interim runner never aligns).
    pub align_heartbeats: bool,
    /// Run the nodes on the interim node runner of this module (the core driven
    /// directly, installs by copying, per-node clock drift) instead of the real fiber
    /// driver ([`super::drive`], the default).
    pub interim_runner: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            faults: Faults::all(),
            duration: Duration::from_secs(20),
            clients: 5,
            keys: 3,
            bug: None,
            leader_stickiness: true,
            align_heartbeats: true,
            interim_runner: false,
        }
    }
}

/// The outcome of one seed.
#[derive(Debug)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Client operations completed (ok, fail or info).
    pub ops: u64,
    /// Of which `ok`.
    pub ok: u64,
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Invariant violations and the linearizability verdict if it failed; empty when
    /// the run is clean.
    pub violations: Vec<String>,
    /// Whether the checker gave up on some key (step budget).
    pub check_unknown: bool,
    /// The client history.
    pub history: Vec<Event>,
    /// Counters for people.
    pub stats: RunStats,
}

/// Counters of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    /// Node crashes.
    pub crashes: u64,
    /// Log failures (fsync errors) that forced a restart.
    pub log_failures: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Leader elections (leader role taken).
    pub leaders: u64,
    /// Leader transfers started.
    pub transfers: u64,
    /// Highest commit index seen.
    pub commit: u64,
    /// Messages sent on the network.
    pub messages: u64,
    /// Peers the core asked to install a snapshot for (not simulated).
    pub install_requests: u64,
}

// ------------------------------------------------------------------------------
// messages and shared state

#[derive(Clone)]
enum Msg {
    Vote(VoteSend),
    VoteResp(VoteSend, VoteResp),
    Append {
        rpc: u64,
        send: AppendSend,
        req: Rc<AppendReq>,
        items: Rc<Vec<LogItem>>,
    },
    AppendResp {
        rpc: u64,
        send: AppendSend,
        resp: AppendResp,
    },
    Transfer(TransferReq),
}

/// Where a node sends a client's answer: (operation id, reply).
type ReplyTo = FiberChannel<(u64, Reply)>;

/// A client's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    /// Done; the read value (get) or the boolean result (cas, remove).
    Ok(Option<Value>, bool),
    /// Refused before anything was proposed: did not happen. Hint of the leader.
    Refused(Option<NodeId>),
    /// Proposed, then leadership was lost: may or may not happen.
    Unknown,
}

#[derive(Clone, Copy, Debug)]
enum ClientOp {
    Get(Key),
    Write(Command),
}

struct ClientReq {
    op_id: u64,
    op: ClientOp,
    reply: ReplyTo,
}

enum Ev {
    Net(NodeId, Msg),
    Persisted(u64),
    StatusSaved(Term, NodeId),
    LogFailed,
    Client(ClientReq),
    Stop,
}

/// Cluster-wide facts the invariants are checked against.
#[derive(Default)]
struct Checker {
    violations: Vec<String>,
    /// Leader per term.
    leaders: BTreeMap<Term, NodeId>,
    /// Entry (term, body) applied at each index by anybody: all must agree.
    /// With the term of the first node that applied it, at that moment: an upper
    /// bound of the term in which it was committed.
    applied: Vec<(Term, Bytes, Term)>,
    /// Writes acknowledged to a client: (index, term).
    acked: Vec<(Index, Term)>,
    stats: RunStats,
}

impl Checker {
    fn violation(&mut self, now_ns: i64, what: String) {
        if self.violations.len() < 20 {
            self.violations
                .push(format!("t={:.3}s {what}", now_ns as f64 / 1e9));
        }
    }
}

struct Shared {
    cfg: SimConfig,
    net: SimNet<Msg>,
    checker: RefCell<Checker>,
    nodes: Vec<NodeSlot>,
    next_rpc: Cell<u64>,
    history: RefCell<History>,
    clients_done: Cell<bool>,
    /// The run is over: the nemesis stops.
    finished: Cell<bool>,
    ops: Cell<u64>,
    ok: Cell<u64>,
    rpc_timeout_ms: u64,
    /// Entries in flight per follower, drawn per seed from 1..=64: small windows split
    /// a new leader's catch-up into batches of older-term entries.
    max_replicate_items: u64,
    /// Random choices of the checks-side faults (crash right after an election).
    rng: RefCell<XorShift>,
    /// This, for fibers spawned from `&self` methods.
    me: RefCell<std::rc::Weak<Shared>>,
    /// The nemesis' group.
    misc: RefCell<Option<FiberGroup>>,
}

struct NodeSlot {
    id: NodeId,
    group: FiberGroup,
    disk: SimDisk,
    clock: NodeClock,
    inbox: RefCell<Option<FiberChannel<Ev>>>,
    node: RefCell<Option<Rc<RefCell<Node>>>>,
    seed: Cell<u64>,
}

/// A node's clock: virtual time at its own rate, from its own origin (ms).
#[derive(Clone, Copy)]
struct NodeClock {
    offset_ms: u64,
    /// Rate error in parts per million.
    ppm: i64,
}

thread_local! {
    static TRACE: Cell<bool> = const { Cell::new(false) };
}

/// Prints what the nodes and the nemesis do to stderr (`DT_SIM_TRACE=1`), for
/// replaying a failing seed.
fn trace(what: impl FnOnce() -> String) {
    if TRACE.with(Cell::get) {
        eprintln!("[{:>12.6}] {}", vnow() as f64 / 1e9, what());
    }
}

fn vnow() -> i64 {
    dt_fiber::now().map_or(0, |t| t.nano_time)
}

impl NodeClock {
    fn now_ms(&self) -> u64 {
        let ns = vnow() as i128;
        let local = ns * (1_000_000 + self.ppm as i128) / 1_000_000;
        self.offset_ms + (local / 1_000_000) as u64
    }

    /// Virtual time to wait for `ms` of this clock.
    fn virtual_wait(&self, ms: u64) -> Duration {
        let ns = ms as u128 * 1_000_000 * 1_000_000 / (1_000_000 + self.ppm) as u128;
        Duration::from_nanos(ns as u64 + 1)
    }
}

// ------------------------------------------------------------------------------
// the node runner (interim; see the module docs)

enum Pending {
    Vote(NodeId, VoteSend),
    Append(NodeId, u64, AppendSend, Rc<Vec<LogItem>>),
}

struct Waiter {
    term: Term,
    op_id: u64,
    reply: ReplyTo,
}

struct Node {
    id: NodeId,
    core: RaftCore,
    log: SimRaftLog,
    kv: Kv,
    applied: Index,
    commit_seen: Index,
    reqs: BTreeMap<ReqId, Pending>,
    next_req: ReqId,
    bodies: BTreeMap<Index, Bytes>,
    waiters: BTreeMap<Index, Waiter>,
    reads: VecDeque<(Index, Key, u64, ReplyTo)>,
    rpcs: BTreeMap<u64, (NodeId, AppendSend, u64)>,
    failed: bool,
}

impl Node {
    fn reply(w: &ReplyTo, op_id: u64, r: Reply) {
        w.offer((op_id, r));
    }

    fn handle(&mut self, sh: &Shared, now: u64, ev: Ev) {
        match ev {
            Ev::Net(from, msg) => self.on_msg(sh, now, from, msg),
            Ev::Persisted(i) => self.core.on_log_persisted(now, i),
            Ev::StatusSaved(t, v) => self.core.on_status_saved(now, t, v),
            Ev::LogFailed => self.failed = true,
            Ev::Client(req) => self.on_client(sh, now, req),
            Ev::Stop => {}
        }
        self.run_actions(sh, now);
    }

    fn on_msg(&mut self, sh: &Shared, now: u64, from: NodeId, msg: Msg) {
        match msg {
            Msg::Vote(send) => {
                let id = self.new_req();
                self.reqs.insert(id, Pending::Vote(from, send));
                self.core.handle_vote(now, id, &send.req);
            }
            Msg::VoteResp(send, resp) => self.core.handle_vote_resp(now, from, &send, &resp),
            Msg::Append {
                rpc,
                send,
                req,
                items,
            } => {
                let id = self.new_req();
                self.reqs
                    .insert(id, Pending::Append(from, rpc, send, items));
                self.core.handle_append(now, id, &req);
            }
            Msg::AppendResp { rpc, send, resp } => {
                if self.rpcs.remove(&rpc).is_some() {
                    self.core.handle_append_resp(now, from, &send, &resp);
                }
            }
            Msg::Transfer(req) => {
                let id = self.new_req();
                self.core.handle_transfer_leader(now, id, &req);
            }
        }
        let _ = sh;
    }

    fn new_req(&mut self) -> ReqId {
        self.next_req += 1;
        self.next_req
    }

    fn on_client(&mut self, sh: &Shared, now: u64, req: ClientReq) {
        let ClientReq { op_id, op, reply } = req;
        match op {
            ClientOp::Get(key) => match self.core.lease_read(now) {
                Ok(()) => self.queue_read(key, op_id, reply),
                Err(LeaseError::Expired(_)) if bugs::is_active(Bug::StaleLeaseRead) => {
                    // deliberate bug: serve the read without a valid lease
                    self.queue_read(key, op_id, reply)
                }
                Err(LeaseError::NotLeader(l)) => Self::reply(&reply, op_id, Reply::Refused(l)),
                Err(_) => Self::reply(&reply, op_id, Reply::Refused(None)),
            },
            ClientOp::Write(cmd) => {
                if self.core.transfer_in_progress() {
                    return Self::reply(&reply, op_id, Reply::Refused(None));
                }
                match self.core.propose(now, 1) {
                    Ok(p) => {
                        self.bodies.insert(p.first_index, cmd.encode(op_id));
                        self.waiters.insert(
                            p.first_index,
                            Waiter {
                                term: p.term,
                                op_id,
                                reply,
                            },
                        );
                    }
                    Err(e) => Self::reply(&reply, op_id, Reply::Refused(e.leader)),
                }
            }
        }
        let _ = sh;
    }

    fn queue_read(&mut self, key: Key, op_id: u64, reply: ReplyTo) {
        let at = self.core.commit_index();
        trace(|| {
            format!(
                "n{} read k{key} op {op_id} at {at} applied {} value {:?} term {}",
                self.id,
                self.applied,
                self.kv.get(key),
                self.core.term()
            )
        });
        if self.applied >= at {
            Self::reply(&reply, op_id, Reply::Ok(self.kv.get(key), true));
        } else {
            self.reads.push_back((at, key, op_id, reply));
        }
    }

    fn run_actions(&mut self, sh: &Shared, now: u64) {
        loop {
            let acts: Vec<Action> = self.core.drain_actions().collect();
            if acts.is_empty() {
                return;
            }
            for a in acts {
                self.exec(sh, now, a);
            }
        }
    }

    fn persist(&self, sh: &Shared, items: Vec<LogItem>) {
        let f = self.log.append_owned(items);
        let inbox = sh.inbox(self.id);
        let _ = sh.group(self.id).spawn("append", async move {
            match f.await {
                Ok(i) => inbox.offer(Ev::Persisted(i)),
                Err(crate::store::StoreError::Closed) => {}
                Err(_) => inbox.offer(Ev::LogFailed),
            }
        });
    }

    fn exec(&mut self, sh: &Shared, now: u64, a: Action) {
        match a {
            Action::SaveStatus {
                term,
                voted_for,
                commit_index,
            } => {
                self.log.set_commit_index(commit_index);
                let f = self.log.persist_term_vote_owned(term, voted_for as i32);
                let inbox = sh.inbox(self.id);
                let _ = sh.group(self.id).spawn("status", async move {
                    match f.await {
                        Ok(()) => inbox.offer(Ev::StatusSaved(term, voted_for)),
                        Err(crate::store::StoreError::Closed) => {}
                        Err(_) => inbox.offer(Ev::LogFailed),
                    }
                });
            }
            Action::AppendLocal {
                kind: _,
                first_index,
                last_index,
                term,
                prev_log_term,
            } => {
                let mut prev = prev_log_term;
                let items = (first_index..=last_index)
                    .map(|index| {
                        let body = self.bodies.remove(&index);
                        let it = LogItem {
                            item_type: if body.is_some() {
                                TYPE_NORMAL
                            } else {
                                TYPE_HEARTBEAT
                            },
                            term,
                            prev_log_term: prev,
                            index,
                            timestamp: now as i64,
                            body: body.unwrap_or_default(),
                            ..Default::default()
                        };
                        prev = term;
                        it
                    })
                    .collect();
                self.persist(sh, items);
            }
            Action::AppendReceived {
                req,
                truncate_after,
                first_index,
                last_index,
            } => {
                let Some(Pending::Append(_, _, _, items)) = self.reqs.get(&req) else {
                    return;
                };
                let items = items.clone();
                if let Some(t) = truncate_after {
                    if t < self.log.last_index() {
                        if let Err(e) = self.log.truncate_tail_now(t + 1) {
                            sh.violation(format!("node {}: truncate after {t}: {e}", self.id));
                            self.failed = true;
                            return;
                        }
                        // proposals there may still commit through another leader
                        let gone: Vec<Index> =
                            self.waiters.keys().copied().filter(|i| *i > t).collect();
                        for i in gone {
                            let w = self.waiters.remove(&i).expect("key");
                            Self::reply(&w.reply, w.op_id, Reply::Unknown);
                        }
                    }
                }
                let new: Vec<LogItem> = items
                    .iter()
                    .filter(|e| e.index >= first_index && e.index <= last_index)
                    .cloned()
                    .collect();
                self.persist(sh, new);
            }
            Action::SendVote { to, msg } => sh.net.send(self.id, to, Msg::Vote(msg)),
            Action::SendAppend { to, msg } => self.send_append(sh, now, to, msg),
            Action::ReplyVote { req, resp } => {
                if let Some(Pending::Vote(from, send)) = self.reqs.remove(&req) {
                    if let Ok(resp) = resp {
                        sh.net.send(self.id, from, Msg::VoteResp(send, resp));
                    }
                }
            }
            Action::ReplyAppend { req, resp } => {
                if let Some(Pending::Append(from, rpc, send, _)) = self.reqs.remove(&req) {
                    sh.net
                        .send(self.id, from, Msg::AppendResp { rpc, send, resp });
                }
            }
            Action::FindMatchPos {
                search,
                suggest_term,
                suggest_index,
            } => {
                let log = &self.log;
                let top = suggest_index.min(log.last_index());
                let found = (1..=top).rev().find_map(|i| {
                    let t = log.term_at(i).unwrap_or(0);
                    ((t <= suggest_term && i < suggest_index)
                        || (t == suggest_term && i == suggest_index))
                        .then_some((t, i))
                });
                match search {
                    MatchSearch::Follower { req } => {
                        self.core.on_follower_match_pos(now, req, found)
                    }
                    MatchSearch::Leader { peer, epoch } => {
                        self.core.on_leader_match_pos(now, peer, epoch, found)
                    }
                }
            }
            Action::StartInstallSnapshot { to, start } => {
                sh.checker.borrow_mut().stats.install_requests += 1;
                if !self.install(sh, now, to) {
                    // the stream failed: the core asks again after replicate_retry_ms
                    self.core.handle_install_error(now, to, &start);
                }
            }
            // the simulation installs by copying (`install`), so no node receives
            // install requests; refuse any the core would act on
            Action::BeginInstallSnapshot { req, .. } => self.core.on_install_begun(now, req, false),
            Action::InstallSnapshotData { req, .. } => {
                self.core.on_install_data_done(now, req, false)
            }
            Action::FinishInstallSnapshot { req, .. } => {
                self.core.on_install_complete(now, req, false)
            }
            Action::Apply { commit_index } => self.apply(sh, now, commit_index),
            Action::RoleChanged { role, term, .. } => {
                trace(|| format!("n{} {role:?} term {term}", self.id));
                if role == Role::Leader {
                    sh.on_leader(self.id, term, &self.log);
                } else {
                    // reads waiting on a lost leadership: refused (they had no effect)
                    for (_, _, op_id, r) in self.reads.drain(..) {
                        Self::reply(&r, op_id, Reply::Refused(None));
                    }
                }
            }
            Action::FailPendingTasks { .. } => {
                for (_, w) in std::mem::take(&mut self.waiters) {
                    Self::reply(&w.reply, w.op_id, Reply::Unknown);
                }
            }
            Action::CheckTransferTarget { .. } => self.core.on_transfer_target_checked(now, true),
            Action::SendTransferLeader { to, req } => sh.net.send(self.id, to, Msg::Transfer(req)),
            Action::TransferFailed { .. } | Action::ReplyTransfer { .. } => {}
        }
    }

    /// Simulation shortcut for install snapshot: the follower gets this leader's
    /// applied prefix (log and state machine) at once, if it is up and reachable.
    /// Installs this node's applied prefix on `to` at once; false when it cannot now.
    fn install(&mut self, sh: &Shared, now: u64, to: NodeId) -> bool {
        if sh.net.is_blocked(self.id, to) {
            return false; // retried when the core asks again
        }
        let Some(f) = sh.slot(to).node.borrow().clone() else {
            return false;
        };
        let Ok(mut f) = f.try_borrow_mut() else {
            return false;
        };
        let c = self.applied;
        if f.core.commit_index() > c || f.core.term() > self.core.term() {
            return false;
        }
        let items: Vec<LogItem> = (1..=c).filter_map(|i| self.log.entry(i)).collect();
        if items.len() as u64 != c || f.log.install_prefix(items).is_err() {
            return false;
        }
        let term = self.log.term_at(c).unwrap_or(0);
        let fnow = sh.slot(to).clock.now_ms();
        // proposals the follower still waited for are decided elsewhere now
        for (_, w) in std::mem::take(&mut f.waiters) {
            Self::reply(&w.reply, w.op_id, Reply::Unknown);
        }
        f.kv = self.kv.clone();
        f.applied = c;
        f.commit_seen = f.commit_seen.max(c);
        f.core.on_install_finished(fnow, c, term);
        f.run_actions(sh, fnow);
        drop(f);
        self.core.on_snapshot_installed(now, to, c);
        true
    }

    fn send_append(&mut self, sh: &Shared, now: u64, to: NodeId, msg: AppendSend) {
        let mut req = AppendReq {
            term: msg.term,
            leader_id: self.id,
            leader_commit: msg.leader_commit,
            ..Default::default()
        };
        let mut items = Vec::new();
        if msg.count > 0 {
            let first = msg.first_index;
            let Some(prev) = self.log.term_at(first - 1) else {
                self.core.handle_append_error(now, to, &msg);
                return;
            };
            req.prev_log_index = first - 1;
            req.prev_log_term = prev;
            for i in first..first + msg.count {
                let Some(e) = self.log.entry(i) else {
                    self.core.handle_append_error(now, to, &msg);
                    return;
                };
                req.entries.push(EntryMeta {
                    index: i,
                    term: e.term,
                });
                items.push(e);
            }
        }
        let rpc = sh.next_rpc.get() + 1;
        sh.next_rpc.set(rpc);
        self.rpcs.insert(rpc, (to, msg, now + sh.rpc_timeout_ms));
        sh.net.send(
            self.id,
            to,
            Msg::Append {
                rpc,
                send: msg,
                req: Rc::new(req),
                items: Rc::new(items),
            },
        );
    }

    fn apply(&mut self, sh: &Shared, now: u64, commit: Index) {
        if commit < self.commit_seen {
            sh.violation(format!(
                "node {}: commit index moved back from {} to {commit}",
                self.id, self.commit_seen
            ));
        }
        self.commit_seen = self.commit_seen.max(commit);
        self.log.set_commit_index(commit);
        while self.applied < commit {
            let i = self.applied + 1;
            let Some(e) = self.log.entry(i) else {
                sh.violation(format!(
                    "node {}: committed entry {i} not in its log",
                    self.id
                ));
                return;
            };
            sh.on_apply(self.id, self.core.term(), i, &e);
            if e.item_type == TYPE_NORMAL {
                trace(|| {
                    let c = Command::decode(&e.body);
                    format!("n{} apply {i} term {} {c:?}", self.id, e.term)
                });
            }
            let mut result = true;
            if e.item_type == TYPE_NORMAL {
                match Command::decode(&e.body) {
                    Ok((cmd, _)) => result = self.kv.apply(&cmd),
                    Err(b) => sh.violation(format!("node {}: entry {i}: {}", self.id, b.0)),
                }
            }
            self.applied = i;
            if let Some(w) = self.waiters.remove(&i) {
                let r = if w.term == e.term {
                    sh.checker.borrow_mut().acked.push((i, e.term));
                    Reply::Ok(None, result)
                } else {
                    Reply::Unknown
                };
                Self::reply(&w.reply, w.op_id, r);
            }
        }
        self.core.on_applied(now, self.applied);
        while self.reads.front().is_some_and(|r| r.0 <= self.applied) {
            let (_, key, op_id, r) = self.reads.pop_front().expect("front");
            Self::reply(&r, op_id, Reply::Ok(self.kv.get(key), true));
        }
    }

    /// RPCs past their timeout fail (the driver's rpcTimeout).
    fn expire_rpcs(&mut self, now: u64) {
        let mut expired: Vec<u64> = self
            .rpcs
            .iter()
            .filter(|r| r.1 .2 <= now)
            .map(|r| *r.0)
            .collect();
        expired.sort_unstable();
        for rpc in expired {
            let (to, send, _) = self.rpcs.remove(&rpc).expect("key");
            self.core.handle_append_error(now, to, &send);
        }
    }

    fn next_wake(&self) -> u64 {
        let mut d = self.core.next_deadline();
        for r in self.rpcs.values() {
            d = d.min(r.2);
        }
        d
    }
}

impl Shared {
    fn slot(&self, id: NodeId) -> &NodeSlot {
        &self.nodes[id as usize - 1]
    }
    fn inbox(&self, id: NodeId) -> FiberChannel<Ev> {
        self.slot(id).inbox.borrow().clone().expect("inbox")
    }
    fn group(&self, id: NodeId) -> &FiberGroup {
        &self.slot(id).group
    }
    fn all_ids(&self) -> Vec<NodeId> {
        (1..=self.cfg.nodes).collect()
    }

    fn violation(&self, what: String) {
        self.checker.borrow_mut().violation(vnow(), what);
    }

    fn on_leader(&self, id: NodeId, term: Term, log: &SimRaftLog) {
        // a crash during the leader change: the new leader dies within a few ms, with
        // its no-op (and maybe older entries) on only some nodes
        if self.cfg.faults.crash && !self.finished.get() && self.rng.borrow_mut().range(0, 99) < 15
        {
            let wait = Duration::from_micros(self.rng.borrow_mut().range(0, 20_000));
            let sh = self.me.borrow().upgrade();
            let g = self.misc.borrow().clone();
            if let (Some(sh), Some(g)) = (sh, g) {
                let _ = g.spawn("crash-new-leader", async move {
                    if dt_fiber::sleep(wait).await.is_ok()
                        && !sh.finished.get()
                        && sh.slot(id).node.borrow().is_some()
                    {
                        sh.checker.borrow_mut().stats.crashes += 1;
                        crash_node(&sh, id);
                    }
                });
            }
        }
        let mut c = self.checker.borrow_mut();
        c.stats.leaders += 1;
        if let Some(prev) = c.leaders.insert(term, id) {
            if prev != id {
                let still =
                    self.slot(prev).node.borrow().as_ref().is_some_and(|n| {
                        n.try_borrow().is_ok_and(|n| n.core.role() == Role::Leader)
                    });
                if still {
                    c.violation(
                        vnow(),
                        format!("two leaders in term {term}: {prev} and {id}"),
                    );
                }
            }
        }
        // leader completeness: every entry committed in an earlier term is in the new
        // leader's log (a leader of an older term, made by a late transfer, need not
        // hold what a newer term committed)
        let bad = c
            .applied
            .iter()
            .enumerate()
            .find(|(i, (t, _, ct))| *ct < term && log.term_at(*i as u64 + 1) != Some(*t))
            .map(|(i, _)| i as u64 + 1);
        if let Some(i) = bad {
            c.violation(
                vnow(),
                format!("leader {id} of term {term} lacks committed entry {i}"),
            );
        }
    }

    fn on_apply(&self, id: NodeId, term_now: Term, index: Index, e: &LogItem) {
        let mut c = self.checker.borrow_mut();
        let i = index as usize - 1;
        if let Some((t, b, _)) = c.applied.get(i) {
            if *t != e.term || *b != e.body {
                let what = format!(
                    "node {id} applies term {} at {index}, another node applied term {t}",
                    e.term
                );
                c.violation(vnow(), what);
            }
        } else if i == c.applied.len() {
            c.applied.push((e.term, e.body.clone(), term_now));
            c.stats.commit = index;
        } else {
            let what = format!("node {id} applies {index} with a gap before it");
            c.violation(vnow(), what);
        }
    }

    fn live_nodes(&self) -> Vec<Rc<RefCell<Node>>> {
        self.nodes
            .iter()
            .filter_map(|s| s.node.borrow().clone())
            .collect()
    }

    /// Log matching between every pair of live nodes: where two logs hold an entry of
    /// the same term at the same index, they agree on everything up to it.
    fn check_log_matching(&self) {
        let nodes = self.live_nodes();
        for a in 0..nodes.len() {
            for b in a + 1..nodes.len() {
                let (x, y) = (nodes[a].borrow(), nodes[b].borrow());
                let top = x.log.last_index().min(y.log.last_index());
                let Some(m) = (1..=top)
                    .rev()
                    .find(|i| x.log.term_at(*i) == y.log.term_at(*i))
                else {
                    continue;
                };
                for i in 1..=m {
                    let (ex, ey) = (x.log.entry(i), y.log.entry(i));
                    if ex != ey {
                        self.violation(format!(
                            "log matching: nodes {} and {} agree at {m} but differ at {i}",
                            x.id, y.id
                        ));
                        return;
                    }
                }
            }
        }
    }
}

/// Starts (or restarts) node `id` from its disk.
fn start_node(sh: &Rc<Shared>, id: NodeId) {
    trace(|| format!("n{id} start"));
    let slot = sh.slot(id);
    let inbox: FiberChannel<Ev> = slot.group.new_channel();
    *slot.inbox.borrow_mut() = Some(inbox.clone());
    let seed = slot.seed.get();
    slot.seed
        .set(seed.wrapping_mul(6364136223846793005).wrapping_add(1));
    let sh2 = sh.clone();
    let _ = slot.group.spawn("raft", async move {
        let sh = sh2;
        let slot = sh.slot(id);
        let log = slot.disk.open();
        let last = match log.init().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                sh.violation(format!("node {id} cannot recover its log: {e}"));
                return;
            }
        };
        let st = log.persisted_state().expect("state after init");
        let clock = slot.clock;
        let now = clock.now_ms();
        let mut c = CoreConfig::new(id, sh.all_ids());
        c.elect_timeout_ms = ELECT_MS;
        c.heartbeat_interval_ms = 200;
        c.replicate_retry_ms = 100;
        c.max_replicate_items = sh.max_replicate_items;
        c.leader_stickiness = sh.cfg.leader_stickiness;
        let mut core = match RaftCore::new(
            c,
            seed,
            now,
            st.current_term,
            st.voted_for as NodeId,
            last.1,
            last.0,
            st.commit_index,
        ) {
            Ok(c) => c,
            Err(e) => {
                sh.violation(format!("node {id}: {e}"));
                return;
            }
        };
        for p in sh.all_ids() {
            core.set_member_ready(now, p, true);
        }
        let node = Rc::new(RefCell::new(Node {
            id,
            core,
            log,
            kv: Kv::default(),
            applied: 0,
            commit_seen: 0,
            reqs: BTreeMap::new(),
            next_req: 0,
            bodies: BTreeMap::new(),
            waiters: BTreeMap::new(),
            reads: VecDeque::new(),
            rpcs: BTreeMap::new(),
            failed: false,
        }));
        {
            let mut n = node.borrow_mut();
            // replay what the status says is committed
            let c = n.core.commit_index();
            n.apply(&sh, now, c);
            n.run_actions(&sh, now);
        }
        *slot.node.borrow_mut() = Some(node.clone());
        loop {
            let wait = {
                let n = node.borrow();
                let now = clock.now_ms();
                // at least 1 ms: the core's deadline may stay in the past (during a
                // leader transfer the heartbeat deadline is not pushed on)
                clock.virtual_wait(n.next_wake().saturating_sub(now).max(1))
            };
            let ev = match inbox.take_timeout(wait).await {
                Ok(ev) => ev,
                Err(_) => break,
            };
            let mut n = node.borrow_mut();
            let now = clock.now_ms();
            let mut stop = false;
            let mut next = ev;
            while let Some(ev) = next.take() {
                if matches!(ev, Ev::Stop) {
                    stop = true;
                    break;
                }
                n.handle(&sh, now, ev);
                next = inbox.try_take();
            }
            if stop {
                break;
            }
            n.expire_rpcs(now);
            if n.core.next_deadline() <= now {
                n.core.tick(now);
            }
            n.run_actions(&sh, now);
            if n.failed {
                // fail-stop: the log failed; the nemesis restarts the node
                drop(n);
                sh.checker.borrow_mut().stats.log_failures += 1;
                crash_node(&sh, id);
                break;
            }
        }
    });
}

/// The process of node `id` dies now.
fn crash_node(sh: &Shared, id: NodeId) {
    trace(|| format!("n{id} crash"));
    let slot = sh.slot(id);
    if slot.node.borrow_mut().take().is_none() {
        return;
    }
    if let Some(inbox) = slot.inbox.borrow_mut().take() {
        inbox.offer(Ev::Stop);
    }
    slot.disk.crash();
}

/// Election timeout of the simulated groups (ms).
pub const ELECT_MS: u64 = 1_000;

// ------------------------------------------------------------------------------
// clients

async fn client(sh: Rc<Shared>, process: u64, seed: u64) {
    let g = dt_fiber::current_group().expect("in a fiber");
    let reply: ReplyTo = g.new_channel();
    let mut rng = XorShift::new(seed);
    let mut guess: NodeId = 1 + rng.range(0, sh.cfg.nodes as u64 - 1) as NodeId;
    let mut n = 0u64;
    while !sh.clients_done.get() {
        let think = rng.range(0, 30);
        if dt_fiber::sleep(Duration::from_millis(think)).await.is_err() {
            return;
        }
        if sh.clients_done.get() {
            return;
        }
        n += 1;
        let op_id = process * 1_000_000 + n;
        let key = rng.range(0, sh.cfg.keys as u64 - 1) as Key;
        let value = op_id as Value;
        let op = match rng.range(0, 99) {
            0..=39 => ClientOp::Get(key),
            40..=69 => ClientOp::Write(Command::Put(key, value)),
            70..=89 => {
                let expected = match rng.range(0, 3) {
                    0 => None,
                    _ => Some(sh.recent_value(key, &mut rng)),
                };
                ClientOp::Write(Command::Cas {
                    key,
                    expected,
                    new: Some(value),
                })
            }
            _ => ClientOp::Write(Command::Remove(key)),
        };
        {
            let mut h = sh.history.borrow_mut();
            h.at(vnow() as u64);
            match op {
                ClientOp::Get(k) => h.get(process, k),
                ClientOp::Write(Command::Put(k, v)) => h.put(process, k, v),
                ClientOp::Write(Command::Cas { key, expected, new }) => {
                    h.cas(process, key, expected, new)
                }
                ClientOp::Write(Command::Remove(k)) => h.remove(process, k),
            };
        }
        let alive = sh.slot(guess).inbox.borrow().clone();
        if let Some(inbox) = alive {
            inbox.offer(Ev::Client(ClientReq {
                op_id,
                op,
                reply: reply.clone(),
            }));
        }
        let deadline = vnow() + CLIENT_TIMEOUT.as_nanos() as i64;
        let outcome = loop {
            let left = deadline - vnow();
            if left <= 0 {
                break None;
            }
            match reply.take_timeout(Duration::from_nanos(left as u64)).await {
                Ok(Some((id, r))) if id == op_id => break Some(r),
                Ok(Some(_)) => continue, // a late answer to an earlier attempt
                _ => break None,
            }
        };
        let mut h = sh.history.borrow_mut();
        h.at(vnow() as u64);
        sh.ops.set(sh.ops.get() + 1);
        match outcome {
            Some(Reply::Ok(v, result)) => {
                sh.ok.set(sh.ok.get() + 1);
                match op {
                    ClientOp::Get(_) => h.ok(process, v),
                    _ if !result => h.ok_false(process),
                    _ => h.ok(process, None),
                };
            }
            Some(Reply::Refused(hint)) => {
                h.fail(process);
                guess = match hint {
                    Some(l) if l != guess => l,
                    _ => 1 + rng.range(0, sh.cfg.nodes as u64 - 1) as NodeId,
                };
            }
            Some(Reply::Unknown) | None => {
                h.info(process);
                guess = 1 + rng.range(0, sh.cfg.nodes as u64 - 1) as NodeId;
            }
        }
    }
}

/// How long a client waits for an answer before recording `info`.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_millis(1_500);

impl Shared {
    /// A value a cas may expect: one recently written to `key`, or a random one.
    fn recent_value(&self, key: Key, rng: &mut XorShift) -> Value {
        let h = self.history.borrow();
        h.events
            .iter()
            .rev()
            .take(40)
            .filter(|e| e.key == key)
            .find_map(|e| e.value)
            .unwrap_or_else(|| rng.range(0, 5) as Value)
    }
}

// ------------------------------------------------------------------------------
// the nemesis

async fn nemesis(sh: Rc<Shared>, seed: u64, until_ns: i64) {
    let mut rng = XorShift::new(seed);
    let f = sh.cfg.faults;
    let ids = sh.all_ids();
    let n = ids.len() as u64;
    let mut down: Vec<(NodeId, i64)> = Vec::new();
    let mut heal_at: Option<i64> = None;
    loop {
        let wait = rng.range(20, 400);
        if dt_fiber::sleep(Duration::from_millis(wait)).await.is_err() {
            return;
        }
        let now = vnow();
        if sh.finished.get() {
            return;
        }
        if now >= until_ns {
            // calm: bring every node back, no new faults
            for &id in &ids {
                if sh.slot(id).node.borrow().is_none() {
                    if let Some(inbox) = sh.slot(id).inbox.borrow_mut().take() {
                        inbox.offer(Ev::Stop);
                    }
                    start_node(&sh, id);
                }
            }
            continue;
        }
        // restarts that are due
        let mut k = 0;
        while k < down.len() {
            if down[k].1 <= now {
                let (id, _) = down.swap_remove(k);
                start_node(&sh, id);
            } else {
                k += 1;
            }
        }
        // nodes whose log failed are back after a while too
        for &id in &ids {
            if sh.slot(id).node.borrow().is_none()
                && sh.slot(id).inbox.borrow().is_none()
                && !down.iter().any(|d| d.0 == id)
            {
                down.push((id, now + rng.range(50, 1_000) as i64 * 1_000_000));
            }
        }
        if heal_at.is_some_and(|t| t <= now) {
            trace(|| "heal".into());
            sh.net.heal();
            heal_at = None;
        }
        let leader = sh.live_nodes().into_iter().find_map(|nd| {
            let nd = nd.borrow();
            (nd.core.role() == Role::Leader).then_some(nd.id)
        });
        match rng.range(0, 9) {
            0 | 1 if f.crash && down.len() < (n as usize - 1) / 2 + 1 => {
                // crash anyone (sometimes the leader), restart later
                let id = match (leader, rng.range(0, 2)) {
                    (Some(l), 0) => l,
                    _ => 1 + rng.range(0, n - 1) as NodeId,
                };
                if sh.slot(id).node.borrow().is_some() {
                    sh.checker.borrow_mut().stats.crashes += 1;
                    crash_node(&sh, id);
                    down.push((id, now + rng.range(10, 2_000) as i64 * 1_000_000));
                }
            }
            2 | 3 if f.net && heal_at.is_none() => {
                sh.checker.borrow_mut().stats.partitions += 1;
                match rng.range(0, 3) {
                    0 => {
                        if let Some(l) = leader {
                            trace(|| format!("isolate n{l}"));
                            sh.net.isolate(l, &ids);
                        }
                    }
                    1 => {
                        let a = 1 + rng.range(0, n - 1) as NodeId;
                        let b = 1 + rng.range(0, n - 1) as NodeId;
                        if a != b {
                            trace(|| format!("block n{a}->n{b}"));
                            sh.net.block(a, b);
                        }
                    }
                    2 => {
                        let cut = rng.range(1, n - 1) as usize;
                        let mut shuffled = ids.clone();
                        for i in (1..shuffled.len()).rev() {
                            shuffled.swap(i, rng.range(0, i as u64) as usize);
                        }
                        trace(|| format!("partition {:?}", shuffled.split_at(cut)));
                        sh.net.partition(&shuffled[..cut], &shuffled[cut..]);
                    }
                    _ => {
                        let a = 1 + rng.range(0, n - 1) as NodeId;
                        let b = 1 + rng.range(0, n - 1) as NodeId;
                        sh.net.set_slow(a, b, rng.range(50_000, 600_000));
                    }
                }
                heal_at = Some(now + rng.range(200, 3_000) as i64 * 1_000_000);
            }
            4 => {
                if let Some(l) = leader {
                    let target = 1 + rng.range(0, n - 1) as NodeId;
                    let node = sh.slot(l).node.borrow().clone();
                    if let Some(node) = node {
                        let mut nd = node.borrow_mut();
                        let now_ms = sh.slot(l).clock.now_ms();
                        if nd
                            .core
                            .start_transfer(now_ms, target, now_ms + 2_000)
                            .is_ok()
                        {
                            sh.checker.borrow_mut().stats.transfers += 1;
                            nd.run_actions(&sh, now_ms);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

async fn invariant_ticker(sh: Rc<Shared>) {
    loop {
        if dt_fiber::sleep(Duration::from_millis(500)).await.is_err() || sh.finished.get() {
            return;
        }
        sh.check_log_matching();
    }
}

// ------------------------------------------------------------------------------
// one seed

/// Runs one seed and checks it. Deterministic: the same seed and configuration give
/// the same history, byte for byte.
pub fn run_seed(cfg: &SimConfig, seed: u64) -> SeedReport {
    if cfg.interim_runner {
        run_seed_interim(cfg, seed)
    } else {
        super::drive::run_seed(cfg, seed)
    }
}

/// [`run_seed`] on the interim node runner.
fn run_seed_interim(cfg: &SimConfig, seed: u64) -> SeedReport {
    bugs::set_active(cfg.bug);
    TRACE.with(|t| t.set(std::env::var_os("DT_SIM_TRACE").is_some()));
    let mut sim = Simulation::new(seed);
    let mut rng = XorShift::new(seed ^ 0x5DEE_CE66_D1CE_5EED);
    let net_group = sim.new_group("net");
    let f = cfg.faults;
    let net_cfg = if f.net {
        NetConfig {
            min_delay_us: 100,
            max_delay_us: 3_000,
            loss_per_mille: rng.range(0, 50),
            dup_per_mille: rng.range(0, 30),
            reorder: rng.range(0, 1) == 1,
        }
    } else {
        NetConfig::default()
    };
    let net: SimNet<Msg> = SimNet::new(net_group, net_cfg, rng.next_u64());
    let disk_cfg = SimDiskConfig {
        sync_min_us: 200,
        sync_max_us: 8_000,
        torn_writes: f.disk,
        sync_fail_per_mille: if f.disk { 1 } else { 0 },
        ack_before_sync: cfg.bug == Some(Bug::AckBeforeFsync),
    };
    let nodes = (1..=cfg.nodes)
        .map(|id| NodeSlot {
            id,
            group: sim.new_group(&format!("node{id}")),
            disk: SimDisk::new(disk_cfg.clone(), rng.next_u64()),
            clock: NodeClock {
                offset_ms: 1_000_000 + rng.range(0, 10_000),
                ppm: if f.clock {
                    rng.range(0, 20_000) as i64 - 10_000
                } else {
                    0
                },
            },
            inbox: RefCell::new(None),
            node: RefCell::new(None),
            seed: Cell::new(rng.next_u64()),
        })
        .collect();
    let sh = Rc::new(Shared {
        cfg: cfg.clone(),
        net,
        checker: RefCell::new(Checker::default()),
        nodes,
        next_rpc: Cell::new(0),
        history: RefCell::new(History::new()),
        clients_done: Cell::new(false),
        finished: Cell::new(false),
        ops: Cell::new(0),
        ok: Cell::new(0),
        rpc_timeout_ms: 300,
        max_replicate_items: [1, 2, 4, 8, 64][rng.range(0, 4) as usize],
        rng: RefCell::new(XorShift::new(rng.next_u64())),
        me: RefCell::new(std::rc::Weak::new()),
        misc: RefCell::new(None),
    });
    {
        let weak = Rc::downgrade(&sh);
        sh.net.set_deliver(move |from, to, msg| {
            let Some(sh) = weak.upgrade() else { return };
            let inbox = sh.slot(to).inbox.borrow().clone();
            if let Some(inbox) = inbox {
                inbox.offer(Ev::Net(from, msg));
            }
        });
    }
    for id in 1..=cfg.nodes {
        start_node(&sh, id);
    }
    let cg = sim.new_group("clients");
    for p in 0..cfg.clients as u64 {
        let _ = cg.spawn("client", client(sh.clone(), p, rng.next_u64()));
    }
    let misc = sim.new_group("nemesis");
    *sh.me.borrow_mut() = Rc::downgrade(&sh);
    *sh.misc.borrow_mut() = Some(misc.clone());
    let until = sim.now().nano_time + cfg.duration.as_nanos() as i64;
    let _ = misc.spawn("nemesis", nemesis(sh.clone(), rng.next_u64(), until));
    let _ = misc.spawn("invariants", invariant_ticker(sh.clone()));

    sim.run_for(cfg.duration);
    // the end: stop the workload, heal, restart everybody, let it converge
    sh.clients_done.set(true);
    sh.net.heal();
    let mut cfgn = sh.net.config();
    cfgn.loss_per_mille = 0;
    sh.net.set_config(cfgn);
    for slot in &sh.nodes {
        slot.disk.set_sync_fail_per_mille(0);
    }
    sim.run_for(CLIENT_TIMEOUT + Duration::from_secs(4));
    final_checks(&sh);
    let virtual_time = sim.elapsed();
    sh.finished.set(true);
    sh.misc.borrow_mut().take();
    // break the Rc cycles (fibers hold the shared state, which holds their inboxes)
    for slot in &sh.nodes {
        slot.node.borrow_mut().take();
        if let Some(inbox) = slot.inbox.borrow_mut().take() {
            inbox.offer(Ev::Stop);
        }
    }
    let stopped = sim.stop(Duration::from_secs(5));
    if std::env::var_os("DT_SIM_DEBUG_STOP").is_some() {
        eprintln!("stopped={stopped} groups={}", sim.group_count());
    }

    let history = std::mem::take(&mut sh.history.borrow_mut().events);
    let mut violations = std::mem::take(&mut sh.checker.borrow_mut().violations);
    let mut check_unknown = false;
    match check_events(
        &history,
        &CheckConfig {
            max_steps_per_key: 10_000_000,
        },
    ) {
        Ok(r) => match r.verdict {
            Verdict::Linearizable => {}
            Verdict::Violation(v) => violations.push(format!("not linearizable: {v}")),
            Verdict::Unknown { .. } => check_unknown = true,
        },
        Err(e) => violations.push(format!("history malformed: {e}")),
    }
    let mut stats = sh.checker.borrow().stats;
    stats.messages = sh.net.stats().sent;
    bugs::set_active(None);
    SeedReport {
        seed,
        ops: sh.ops.get(),
        ok: sh.ok.get(),
        virtual_time,
        violations,
        check_unknown,
        history,
        stats,
    }
}

/// After convergence: logs match pairwise, every acknowledged write is in every
/// node's log, every node applied the same prefix.
fn final_checks(sh: &Shared) {
    sh.check_log_matching();
    let acked = sh.checker.borrow().acked.clone();
    for node in sh.live_nodes() {
        let n = node.borrow();
        for &(i, t) in &acked {
            // beyond its commit index a lagging node may still hold stale entries
            if n.log.term_at(i) != Some(t) && n.core.commit_index() >= i {
                sh.violation(format!(
                    "node {}: acknowledged write at {i} (term {t}) is gone",
                    n.id
                ));
                break;
            }
        }
    }
    if let Some(&(i, t)) = acked.iter().max() {
        let holders = sh
            .live_nodes()
            .iter()
            .filter(|n| n.borrow().log.term_at(i) == Some(t))
            .count();
        if holders * 2 <= sh.cfg.nodes as usize {
            let states: Vec<String> = sh
                .nodes
                .iter()
                .map(|s| match s.node.borrow().as_ref() {
                    None => format!("{}: down", s.id),
                    Some(n) => {
                        let n = n.borrow();
                        format!(
                            "{}: {:?} term {} last {} commit {} applied {}",
                            n.id,
                            n.core.role(),
                            n.core.term(),
                            n.log.last_index(),
                            n.core.commit_index(),
                            n.applied
                        )
                    }
                })
                .collect();
            sh.violation(format!(
                "acknowledged write at {i} (term {t}) held by only {holders} nodes [{}]",
                states.join("; ")
            ));
        }
    }
}

impl fmt::Display for SeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: ops={} ok={} virtual={:.1}s violations={} {:?}",
            self.seed,
            self.ops,
            self.ok,
            self.virtual_time.as_secs_f64(),
            self.violations.len(),
            self.stats
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(faults: Faults) -> SimConfig {
        SimConfig {
            duration: Duration::from_secs(5),
            faults,
            ..Default::default()
        }
    }

    #[test]
    fn a_quiet_cluster_serves_clients_linearizably() {
        let r = run_seed(&short(Faults::default()), 1);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert!(r.ok > 50, "{r}");
        assert!(r.stats.commit > 20, "{r}");
    }

    #[test]
    fn same_seed_same_history() {
        let cfg = short(Faults::all());
        let a = run_seed(&cfg, 7);
        let b = run_seed(&cfg, 7);
        let enc = |r: &SeedReport| {
            let mut v = Vec::new();
            super::super::jsonl::write_history(&mut v, &r.history).unwrap();
            v
        };
        assert!(!a.history.is_empty());
        assert_eq!(enc(&a), enc(&b));
        assert_ne!(enc(&a), enc(&run_seed(&cfg, 8)));
    }
}
