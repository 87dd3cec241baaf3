//! The whole-cluster simulation on the real fiber driver: every node is a
//! [`RaftGroup`] (the driver of [`crate::driver`]) started with
//! [`RaftGroup::start_with_parts`] on its own fiber group, with a [`SimRaftLog`] as its
//! log, the application's state machine (the KV's [`KvSm`](super::app::KvSm) by
//! default, see [`super::app`]) and a
//! [`RaftTransport`] over the [`SimNet`]; clients use the group's public API
//! (`submit_async`, `lease_read`, `transfer_leadership`, `status`).
//!
//! How the faults are made:
//!
//! * a crash is: the disk crashes (everything unsynced is lost, the old log's calls
//!   fail, a snapshot save under way is lost), the node's incarnation number moves on
//!   (its messages in flight and its pending answers are dropped), then the group is
//!   shut down; a restart (a new fiber group, which needs the [`Simulation`]) is done
//!   by the outer loop of [`run_seed`] when the nemesis asks for it;
//! * a failed fsync makes the driver stop its group (fatal); the nemesis sees the
//!   stopped group and restarts the node like after a crash;
//! * snapshots are the driver's own: it saves the state machine's snapshot into the disk's
//!   [`SimSnapshots`] every `save_snapshot_seconds`, deletes the log up to it, and a
//!   leader streams a fresh snapshot to a peer behind its log over the same
//!   [`SimNet`] as every other message (loss, delay, partitions);
//! * the `clock` fault gives each node a clock running at its own rate
//!   ([`DriverOptions::clock`]);
//! * invariants are fed from the driver's action trace ([`DriverOptions::trace`]:
//!   role changes, commit index, install streams) and from the state machine (applied
//!   entries, snapshots taken and installed).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::Bytes;
use dt_fiber::{FiberGroup, FiberOptions, Simulation};

use super::app::{AppNode, ClusterView, DynSm, KvApp, SimApp, SmHooks};
use super::bugs::{self, Bug};
use super::cluster::{RunStats, SeedReport, SimConfig, CLIENT_TIMEOUT, ELECT_MS};
use super::disk::SimSnapshots;
use super::disk::{SimDisk, SimDiskConfig, SimRaftLog};
use super::history::{Event, History, Key, Value};
use super::kv::Command;
use super::lincheck::{check_events, CheckConfig, Verdict};
use super::net::{NetConfig, SimNet};
use crate::core::{Action, AppendResp, Index, NodeId, Role, Term, TransferReq, VoteReq, XorShift};
use crate::driver::oneshot::{oneshot, OneshotSender};
use crate::driver::{
    ActionTrace, DriverOptions, InboundError, RaftGroup, RaftGroupConfig, RaftTransport, RpcError,
    RpcFuture, SnapshotManager, TransferReply, VoteReply,
};
use crate::rpc;
use crate::sm::RaftError;

// ------------------------------------------------------------------------------
// the network: requests and answers as messages on the SimNet

enum ReqBody {
    Vote(VoteReq),
    Append(rpc::AppendReq),
    Transfer(TransferReq),
    Query,
    Install(rpc::InstallSnapshotReq),
}

#[derive(Clone)]
enum RespBody {
    Vote(Result<VoteReply, InboundError>),
    Append(Result<AppendResp, InboundError>),
    Transfer(Result<TransferReply, InboundError>),
    Query(Result<rpc::QueryStatusResp, InboundError>),
    Install(Result<AppendResp, InboundError>),
}

#[derive(Clone)]
enum Msg {
    Req { rpc: u64, body: Rc<ReqBody> },
    Resp { rpc: u64, body: Rc<RespBody> },
}

/// The senders' side of the network: answers awaited, by rpc id.
struct Rpcs {
    net: SimNet<Msg>,
    next: Cell<u64>,
    pending: RefCell<BTreeMap<u64, OneshotSender<RespBody>>>,
}

/// Removes an awaited answer when its future is dropped (timeout, crash).
struct PendingGuard {
    rpcs: Rc<Rpcs>,
    rpc: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.rpcs.pending.borrow_mut().remove(&self.rpc);
    }
}

/// One node incarnation's [`RaftTransport`] over the [`SimNet`].
struct SimTransport {
    rpcs: Rc<Rpcs>,
    me: NodeId,
}

fn remote(e: impl std::fmt::Debug) -> RpcError {
    RpcError::Remote {
        code: 1, // SYS_ERROR (wire-protocol §1.2)
        message: format!("{e:?}"),
    }
}

impl SimTransport {
    fn call<T: 'static>(
        &self,
        to: NodeId,
        body: ReqBody,
        map: impl FnOnce(RespBody) -> Result<T, RpcError> + 'static,
    ) -> RpcFuture<T> {
        let rpc = self.rpcs.next.get() + 1;
        self.rpcs.next.set(rpc);
        let (tx, rx) = oneshot();
        self.rpcs.pending.borrow_mut().insert(rpc, tx);
        let guard = PendingGuard {
            rpcs: self.rpcs.clone(),
            rpc,
        };
        // an install stream relies on its connection's order (TCP): its requests and
        // answers are never reordered or duplicated
        let ordered = matches!(body, ReqBody::Install(_));
        let msg = Msg::Req {
            rpc,
            body: Rc::new(body),
        };
        if ordered {
            self.rpcs.net.send_ordered(self.me, to, msg);
        } else {
            self.rpcs.net.send(self.me, to, msg);
        }
        Box::pin(async move {
            let _guard = guard;
            match rx.await {
                Some(b) => map(b),
                None => Err(RpcError::NotConnected(format!("node {to} gave no answer"))),
            }
        })
    }
}

impl RaftTransport for SimTransport {
    fn send_vote(
        &self,
        to: NodeId,
        _group_id: i32,
        req: VoteReq,
    ) -> RpcFuture<crate::core::VoteResp> {
        self.call(to, ReqBody::Vote(req), |b| match b {
            RespBody::Vote(Ok(Ok(r))) => Ok(r),
            RespBody::Vote(Ok(Err(refused))) => Err(remote(refused)),
            RespBody::Vote(Err(e)) => Err(remote(e)),
            _ => Err(RpcError::BadResponse("not a vote answer".into())),
        })
    }

    fn send_append(&self, to: NodeId, req: rpc::AppendReq) -> RpcFuture<AppendResp> {
        self.call(to, ReqBody::Append(req), |b| match b {
            RespBody::Append(Ok(r)) => Ok(r),
            RespBody::Append(Err(e)) => Err(remote(e)),
            _ => Err(RpcError::BadResponse("not an append answer".into())),
        })
    }

    fn send_transfer_leader(&self, to: NodeId, _group_id: i32, req: TransferReq) -> RpcFuture<()> {
        self.call(to, ReqBody::Transfer(req), |b| match b {
            RespBody::Transfer(Ok(Ok(()))) => Ok(()),
            RespBody::Transfer(Ok(Err(e))) => Err(remote(e)),
            RespBody::Transfer(Err(e)) => Err(remote(e)),
            _ => Err(RpcError::BadResponse("not a transfer answer".into())),
        })
    }

    fn query_status(&self, to: NodeId, _group_id: i32) -> RpcFuture<rpc::QueryStatusResp> {
        self.call(to, ReqBody::Query, |b| match b {
            RespBody::Query(Ok(r)) => Ok(r),
            RespBody::Query(Err(e)) => Err(remote(e)),
            _ => Err(RpcError::BadResponse("not a status answer".into())),
        })
    }

    fn send_install_snapshot(
        &self,
        to: NodeId,
        req: rpc::InstallSnapshotReq,
    ) -> RpcFuture<AppendResp> {
        self.call(to, ReqBody::Install(req), |b| match b {
            RespBody::Install(Ok(r)) => Ok(r),
            RespBody::Install(Err(e)) => Err(remote(e)),
            _ => Err(RpcError::BadResponse("not an install answer".into())),
        })
    }
}

// ------------------------------------------------------------------------------
// shared state

#[derive(Default)]
struct Checker {
    violations: Vec<String>,
    leaders: BTreeMap<Term, NodeId>,
    /// Entry (term, body) applied at each index (write entries only), with the term
    /// of the first node that applied it at that moment.
    applied: BTreeMap<Index, (Term, Bytes, Term)>,
    /// Writes acknowledged to a client: (index, term).
    acked: Vec<(Index, Term)>,
    /// The state digest after each applied index, as the first node that applied it
    /// reported it.
    digests: BTreeMap<Index, u64>,
    stats: RunStats,
    /// Why the run counts as stalled ([`RunStats::stalled`]).
    stall: Option<String>,
}

/// A node's clock: the simulation's at its own rate, from its own origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Drift {
    offset_ns: i64,
    /// Rate error in parts per million.
    ppm: i64,
}

impl Drift {
    fn local_nanos(&self, ns: i64) -> i64 {
        let local = ns as i128 * (1_000_000 + self.ppm as i128) / 1_000_000;
        self.offset_ns + local as i64
    }
}

/// The snapshot settings of a run (drawn per seed).
#[derive(Clone, Copy, Debug)]
struct SnapCfg {
    save_seconds: u64,
    delete_delay_seconds: u64,
    chunk_bytes: usize,
    concurrency: usize,
}

/// One running incarnation of a node.
pub(crate) struct Up {
    inc: u64,
    pub(crate) raft: RaftGroup<bool>,
    fg: FiberGroup,
    log: SimRaftLog,
    pub(crate) app: Rc<dyn AppNode>,
    /// The state machine is installing a snapshot.
    pub(crate) installing: Rc<Cell<bool>>,
    /// The index the state machine's state is at.
    at: Rc<Cell<Index>>,
}

pub(crate) struct Slot {
    pub(crate) disk: SimDisk,
    inc: Cell<u64>,
    up: RefCell<Option<Rc<Up>>>,
}

pub(crate) struct Shared {
    cfg: SimConfig,
    app: Rc<dyn SimApp>,
    rpcs: Rc<Rpcs>,
    checker: RefCell<Checker>,
    slots: Vec<Slot>,
    history: RefCell<History>,
    pub(crate) clients_done: Cell<bool>,
    pub(crate) finished: Cell<bool>,
    ops: Cell<u64>,
    ok: Cell<u64>,
    max_replicate_items: u64,
    /// `DT_SIM_TRACE` is set: print the nodes' actions and the nemesis' faults.
    trace: bool,
    snap: SnapCfg,
    clocks: Vec<Drift>,
    rng: RefCell<XorShift>,
    /// Nodes the outer loop must (re)start now.
    to_start: RefCell<Vec<NodeId>>,
    misc: RefCell<Option<FiberGroup>>,
    me: RefCell<Weak<Shared>>,
}

pub(crate) fn vnow() -> i64 {
    dt_fiber::now().map_or(0, |t| t.nano_time)
}

impl Shared {
    pub(crate) fn slot(&self, id: NodeId) -> &Slot {
        &self.slots[id as usize - 1]
    }

    pub(crate) fn up(&self, id: NodeId) -> Option<Rc<Up>> {
        self.slot(id).up.borrow().clone()
    }

    /// Every node of the run: the initial members and, with membership changes, the
    /// [`SPARES`].
    pub(crate) fn all_ids(&self) -> Vec<NodeId> {
        (1..=self.slots.len() as NodeId).collect()
    }

    /// The members every node is configured with at start (its static configuration,
    /// raft.md §11.4: snapshots and replayed configuration entries change it).
    fn initial_members(&self) -> Vec<NodeId> {
        (1..=self.cfg.nodes).collect()
    }

    /// The members of the configuration the cluster has reached: the leader's, else
    /// those of the node that applied the most.
    fn current_members(&self) -> Vec<NodeId> {
        self.current_sets().members
    }

    /// The sets of the configuration the cluster has reached (see
    /// [`Self::current_members`]), prepared members included.
    fn current_sets(&self) -> crate::core::MemberSets {
        let live = self.live();
        let best = live
            .iter()
            .find(|u| u.raft.status().role == Role::Leader)
            .or_else(|| live.iter().max_by_key(|u| u.raft.status().last_applied));
        match best {
            Some(u) => u.raft.status().members.clone(),
            None => crate::core::MemberSets::new(self.initial_members(), Vec::new()),
        }
    }

    fn live(&self) -> Vec<Rc<Up>> {
        self.slots
            .iter()
            .filter_map(|s| s.up.borrow().clone())
            .collect()
    }

    /// Whether the nemesis may crash `id` now. A node crashed during an install
    /// restarts waiting for the leader's install; the reference's grants no votes
    /// then (raft.md §12.3), and with a majority of nodes waiting so no leader could be
    /// elected again. dt's votes with the position its status file kept
    /// (`RaftCore::install_vote`), but the nemesis still crashes an installing node
    /// only when no other node waits for an install, which keeps the figures
    /// comparable (without this rule 3,000 seeds of 3 nodes end stuck in 4, with
    /// membership changes in 59, none with a violation).
    fn may_crash(&self, id: NodeId) -> bool {
        let installing = |i: NodeId| {
            let s = self.slot(i);
            s.disk.installing() || s.up.borrow().as_ref().is_some_and(|u| u.installing.get())
        };
        !installing(id) || !self.all_ids().into_iter().any(|o| o != id && installing(o))
    }

    pub(crate) fn violation(&self, what: String) {
        let mut c = self.checker.borrow_mut();
        if c.violations.len() < 20 {
            c.violations
                .push(format!("t={:.3}s {what}", vnow() as f64 / 1e9));
        }
    }

    fn deliver(&self, from: NodeId, to: NodeId, msg: Msg) {
        match msg {
            Msg::Resp { rpc, body } => {
                if let Some(tx) = self.rpcs.pending.borrow_mut().remove(&rpc) {
                    tx.send((*body).clone());
                }
            }
            Msg::Req { rpc, body } => {
                let Some(up) = self.up(to) else { return };
                let (tx, rx) = oneshot::<RespBody>();
                let inbox = up.raft.inbox();
                match &*body {
                    ReqBody::Vote(r) => {
                        inbox.vote(*r, Box::new(move |v| tx.send(RespBody::Vote(v))))
                    }
                    ReqBody::Append(r) => {
                        inbox.append(r.clone(), Box::new(move |v| tx.send(RespBody::Append(v))))
                    }
                    ReqBody::Transfer(r) => {
                        inbox.transfer_leader(*r, Box::new(move |v| tx.send(RespBody::Transfer(v))))
                    }
                    ReqBody::Query => {
                        inbox.query_status(Box::new(move |v| tx.send(RespBody::Query(v))))
                    }
                    ReqBody::Install(r) => inbox.install_snapshot(
                        r.clone(),
                        Box::new(move |v| tx.send(RespBody::Install(v))),
                    ),
                }
                let me = self.me.borrow().clone();
                let inc = up.inc;
                let _ = up
                    .fg
                    .spawn_with(FiberOptions::new("sim-reply").daemon(), async move {
                        let Some(r) = rx.await else { return };
                        let Some(sh) = me.upgrade() else { return };
                        // a crashed incarnation answers nothing
                        if sh.slot(to).inc.get() != inc || sh.up(to).is_none() {
                            return;
                        }
                        let ordered = matches!(r, RespBody::Install(_));
                        let msg = Msg::Resp {
                            rpc,
                            body: Rc::new(r),
                        };
                        if ordered {
                            sh.rpcs.net.send_ordered(to, from, msg);
                        } else {
                            sh.rpcs.net.send(to, from, msg);
                        }
                    });
            }
        }
    }

    pub(crate) fn on_apply(&self, id: NodeId, index: Index, term: Term, body: &Bytes) {
        let term_now = self.up(id).map_or(term, |u| u.raft.status().term.max(term));
        let mut c = self.checker.borrow_mut();
        c.stats.commit = c.stats.commit.max(index);
        match c.applied.get(&index) {
            Some((t, b, _)) => {
                if *t != term || b != body {
                    let t = *t;
                    drop(c);
                    self.violation(format!(
                        "node {id} applies term {term} at {index}, another node applied term {t}"
                    ));
                }
            }
            None => {
                c.applied.insert(index, (term, body.clone(), term_now));
            }
        }
    }

    /// The digest of a node's state at `index`: the first node that applies `index`
    /// records it (`applied`); every other must match the digest recorded at the
    /// greatest index `≤ index` (every write entry at or below it was applied by some
    /// node first, or came with a snapshot built from such).
    pub(crate) fn check_digest(
        &self,
        id: NodeId,
        index: Index,
        digest: u64,
        applied: bool,
        what: &str,
    ) {
        let mut c = self.checker.borrow_mut();
        let expected = match c.digests.range(..=index).next_back() {
            Some((&i, &d)) if i == index || !applied => Some(d),
            _ => None,
        };
        match expected {
            None if applied => {
                c.digests.insert(index, digest);
            }
            None if index == 0 => {}
            None => {
                drop(c);
                self.violation(format!(
                    "node {id}: {what} at {index} but no node applied an entry up to it"
                ));
            }
            Some(d) if d != digest => {
                drop(c);
                self.violation(format!(
                    "node {id}: {what} at {index} differs from the state of the applied entries"
                ));
            }
            Some(_) => {}
        }
    }

    fn on_leader(&self, id: NodeId, term: Term, log: &SimRaftLog) {
        if self.cfg.faults.crash
            && !self.clients_done.get()
            && self.rng.borrow_mut().range(0, 99) < 15
        {
            let wait = Duration::from_micros(self.rng.borrow_mut().range(0, 20_000));
            let sh = self.me.borrow().upgrade();
            let g = self.misc.borrow().clone();
            if let (Some(sh), Some(g)) = (sh, g) {
                let inc = self.slot(id).inc.get();
                let _ = g.spawn("crash-new-leader", async move {
                    if dt_fiber::sleep(wait).await.is_ok()
                        && !sh.clients_done.get()
                        && sh.slot(id).inc.get() == inc
                        && sh.up(id).is_some()
                        && sh.may_crash(id)
                    {
                        sh.checker.borrow_mut().stats.crashes += 1;
                        crash_node(&sh, id);
                    }
                });
            }
        }
        let mut c = self.checker.borrow_mut();
        c.stats.leaders += 1;
        let prev = c.leaders.insert(term, id);
        drop(c);
        if let Some(prev) = prev {
            if prev != id {
                let still = self.up(prev).is_some_and(|u| {
                    let s = u.raft.status();
                    s.role == Role::Leader && s.term == term
                });
                if still {
                    self.violation(format!("two leaders in term {term}: {prev} and {id}"));
                }
            }
        }
        let bad = {
            let c = self.checker.borrow();
            c.applied
                .iter()
                .find(|(i, (t, _, ct))| {
                    *ct < term && **i >= log.first_index() && log.term_at(**i) != Some(*t)
                })
                .map(|(i, _)| *i)
        };
        if let Some(i) = bad {
            self.violation(format!(
                "leader {id} of term {term} lacks committed entry {i}"
            ));
        }
    }

    fn check_log_matching(&self) {
        let nodes = self.live();
        for a in 0..nodes.len() {
            for b in a + 1..nodes.len() {
                let (x, y) = (&nodes[a].log, &nodes[b].log);
                let top = x.last_index().min(y.last_index());
                let lo = x.first_index().max(y.first_index());
                let Some(m) = (lo..=top).rev().find(|i| x.term_at(*i) == y.term_at(*i)) else {
                    continue;
                };
                for i in lo..=m {
                    if x.entry(i) != y.entry(i) {
                        self.violation(format!(
                            "log matching: nodes {} and {} agree at {m} but differ at {i}",
                            nodes[a].raft.node_id(),
                            nodes[b].raft.node_id()
                        ));
                        return;
                    }
                }
            }
        }
    }

    /// Whether the lease `up`'s group published holds now at the node's clock.
    fn lease_holds(&self, up: &Up) -> bool {
        let clock = self.clocks[up.raft.node_id() as usize - 1];
        up.raft.lease_holds_at(clock.local_nanos(vnow()))
    }

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
// nodes

/// Starts (or restarts) node `id` from its disk, in a new fiber group.
fn start_node(sh: &Rc<Shared>, sim: &mut Simulation, id: NodeId) {
    if std::env::var_os("DT_SIM_TRACE").is_some() {
        eprintln!("[{:?}] start n{id}", sim.elapsed());
    }
    let slot = sh.slot(id);
    if slot.up.borrow().is_some() {
        return;
    }
    let inc = slot.inc.get() + 1;
    slot.inc.set(inc);
    let fg = sim.new_group(&format!("node{id}-{inc}"));
    let log = slot.disk.open();
    let snapshots: Rc<SimSnapshots> = Rc::new(slot.disk.snapshots());
    let installing = Rc::new(Cell::new(false));
    let at = Rc::new(Cell::new(0));
    let (sm, app) = sh.app.new_node(
        id,
        SmHooks {
            id,
            sh: Rc::downgrade(sh),
            installing: installing.clone(),
            at: at.clone(),
        },
    );
    let sm = DynSm(sm);
    let mut cfg = RaftGroupConfig::new(1, id, sh.initial_members());
    cfg.elect_timeout_ms = ELECT_MS;
    cfg.heartbeat_interval_ms = 200;
    cfg.rpc_timeout_ms = 300;
    cfg.replicate_retry_ms = 100;
    cfg.max_replicate_items = sh.max_replicate_items;
    cfg.leader_stickiness = sh.cfg.leader_stickiness;
    cfg.save_snapshot_seconds = sh.snap.save_seconds;
    if let Some(b) = sh.cfg.snapshot_log_bytes {
        cfg.save_snapshot_log_bytes = b;
    }
    cfg.max_keep_snapshots = 1;
    cfg.save_snapshot_when_close = false;
    cfg.delete_logs_after_take_snapshot = true;
    cfg.auto_delete_log_delay_seconds = sh.snap.delete_delay_seconds;
    cfg.replicate_snapshot_buffer_size = sh.snap.chunk_bytes;
    cfg.replicate_snapshot_concurrency = sh.snap.concurrency;
    cfg.align_heartbeats = sh.cfg.align_heartbeats;
    let weak = Rc::downgrade(sh);
    let tlog = log.clone();
    let commit_seen = Cell::new(0u64);
    let trace: ActionTrace = Rc::new(move |_now, id, a| {
        let Some(sh) = weak.upgrade() else { return };
        if sh.slot(id).inc.get() != inc {
            return;
        }
        if sh.trace {
            match a {
                Action::Apply { .. } | Action::SendAppend { .. } | Action::ReplyAppend { .. } => {}
                _ => eprintln!("[{:.6}] n{id} {a:?}", vnow() as f64 / 1e9),
            }
        }
        match a {
            Action::RoleChanged {
                role: Role::Leader,
                term,
                ..
            } => sh.on_leader(id, *term, &tlog),
            Action::StartInstallSnapshot { .. } => {
                sh.checker.borrow_mut().stats.install_requests += 1;
            }
            Action::Apply { commit_index } => {
                if *commit_index < commit_seen.get() {
                    sh.violation(format!(
                        "node {id}: commit index moved back from {} to {commit_index}",
                        commit_seen.get()
                    ));
                }
                commit_seen.set(commit_seen.get().max(*commit_index));
            }
            _ => {}
        }
    });
    let transport = Rc::new(SimTransport {
        rpcs: sh.rpcs.clone(),
        me: id,
    });
    let clock = sh.clocks[id as usize - 1];
    let raft = RaftGroup::start_with_parts_and_snapshots(
        &fg,
        Box::new(log.clone()),
        sm,
        Some(SnapshotManager::with_store(snapshots)),
        cfg,
        transport,
        DriverOptions {
            trace: Some(trace),
            clock: (clock != Drift::default())
                .then(|| -> crate::driver::NodeClock { Rc::new(move |ns| clock.local_nanos(ns)) }),
            ..Default::default()
        },
    );
    for p in sh.all_ids() {
        if p != id {
            raft.inbox().set_member_ready(p, true);
        }
    }
    // a new state machine's state is the empty state, the state at index 0
    sh.check_digest(id, 0, app.digest(), true, "initial state");
    let view = ClusterView {
        sh: Rc::downgrade(sh),
    };
    sh.app.node_started(id, &app, &raft, &fg, &view);
    *slot.up.borrow_mut() = Some(Rc::new(Up {
        inc,
        raft,
        fg,
        log,
        app,
        installing,
        at,
    }));
}

/// The process of node `id` dies now: the disk keeps only what it synced, nothing of
/// this incarnation is sent or answered any more, its group is stopped.
fn crash_node(sh: &Shared, id: NodeId) {
    if std::env::var_os("DT_SIM_TRACE").is_some() {
        eprintln!("[{}] crash n{id}", vnow());
    }
    let slot = sh.slot(id);
    let Some(up) = slot.up.borrow_mut().take() else {
        return;
    };
    slot.inc.set(slot.inc.get() + 1);
    slot.disk.crash();
    up.fg.request_shutdown();
}

// ------------------------------------------------------------------------------
// clients

enum Outcome {
    Ok(Option<Value>, bool),
    Fail(Option<NodeId>),
    Info,
}

async fn client(sh: Rc<Shared>, process: u64, seed: u64) {
    let mut rng = XorShift::new(seed);
    let nodes = sh.all_ids().len() as u64;
    let mut guess: NodeId = 1 + rng.range(0, nodes - 1) as NodeId;
    let mut n = 0u64;
    // consecutive refusals: the pause before the next try doubles with each
    let mut refused = 0u32;
    while !sh.clients_done.get() {
        let think = if refused == 0 {
            rng.range(0, 30)
        } else {
            let cap = (10u64 << refused.min(6)).min(500);
            rng.range(cap / 2, cap)
        };
        if dt_fiber::sleep(Duration::from_millis(think)).await.is_err() || sh.clients_done.get() {
            return;
        }
        n += 1;
        let op_id = process * 1_000_000 + n;
        let key = rng.range(0, sh.cfg.keys as u64 - 1) as Key;
        let value = op_id as Value;
        let op = match rng.range(0, 99) {
            0..=39 => None,
            40..=69 => Some(Command::Put(key, value)),
            70..=89 => {
                let expected = match rng.range(0, 3) {
                    0 => None,
                    _ => Some(sh.recent_value(key, &mut rng)),
                };
                Some(Command::Cas {
                    key,
                    expected,
                    new: Some(value),
                })
            }
            _ => Some(Command::Remove(key)),
        };
        {
            let mut h = sh.history.borrow_mut();
            h.at(vnow() as u64);
            match op {
                None => h.get(process, key),
                Some(Command::Put(k, v)) => h.put(process, k, v),
                Some(Command::Cas { key, expected, new }) => h.cas(process, key, expected, new),
                Some(Command::Remove(k)) => h.remove(process, k),
            };
        }
        let outcome = match sh.up(guess) {
            None => Outcome::Fail(None),
            // a get is answered at once while the lease the node's group published
            // holds at the node's own clock: the DtKV IO thread's fast path
            // (`RaftGroup::lease_holds_now`)
            Some(up) if op.is_none() && sh.lease_holds(&up) => {
                sh.checker.borrow_mut().stats.published_lease_reads += 1;
                app_read(&up, key)
            }
            Some(up) => {
                let st = up.raft.status();
                if st.role != Role::Leader {
                    // refused before anything was proposed
                    Outcome::Fail(st.leader)
                } else {
                    match op {
                        None => read(&sh, &up, key).await,
                        Some(cmd) => write(&sh, &up, cmd, op_id, process).await,
                    }
                }
            }
        };
        let mut h = sh.history.borrow_mut();
        h.at(vnow() as u64);
        sh.ops.set(sh.ops.get() + 1);
        match outcome {
            Outcome::Ok(v, result) => {
                refused = 0;
                sh.ok.set(sh.ok.get() + 1);
                match op {
                    None => h.ok(process, v),
                    _ if !result => h.ok_false(process),
                    _ => h.ok(process, None),
                };
            }
            Outcome::Fail(hint) => {
                refused += 1;
                h.fail(process);
                guess = match hint {
                    Some(l) if l != guess => l,
                    _ => 1 + rng.range(0, nodes - 1) as NodeId,
                };
            }
            Outcome::Info => {
                refused = 0;
                h.info(process);
                guess = 1 + rng.range(0, nodes - 1) as NodeId;
            }
        }
    }
}

/// A lease read on `up`, then the read of its state machine.
async fn read(sh: &Shared, up: &Up, key: Key) -> Outcome {
    let r = dt_fiber::within(
        up.raft.lease_read(Duration::from_millis(500)),
        CLIENT_TIMEOUT,
    )
    .await;
    let alive = || sh.slot(up.raft.node_id()).inc.get() == up.inc;
    match r {
        Some(Ok(())) if alive() => app_read(up, key),
        // deliberate bug: serve the read although the lease check failed
        Some(Err(RaftError::NotLeader { leader: None }))
            if alive() && bugs::is_active(Bug::StaleLeaseRead) =>
        {
            app_read(up, key)
        }
        Some(Err(RaftError::NotLeader { leader })) => Outcome::Fail(leader),
        // a read has no effect: whatever went wrong, it did not happen
        _ => Outcome::Fail(None),
    }
}

/// A read of the node's state (its lease checked): fails when the state cannot serve
/// it (a read has no effect).
fn app_read(up: &Up, key: Key) -> Outcome {
    match up.app.get(key) {
        Ok(v) => Outcome::Ok(v, true),
        Err(_) => Outcome::Fail(None),
    }
}

/// A write through the log on `up`.
async fn write(sh: &Shared, up: &Up, cmd: Command, op_id: u64, process: u64) -> Outcome {
    let fut = up
        .raft
        .submit_async(sh.app.write_input(&cmd, op_id, process));
    match dt_fiber::within(fut, CLIENT_TIMEOUT).await {
        Some(Ok((index, result))) => {
            let term = sh.checker.borrow().applied.get(&index).map(|e| e.0);
            match term {
                Some(t) => sh.checker.borrow_mut().acked.push((index, t)),
                None => sh.violation(format!(
                    "write acknowledged at {index} but no node applied it"
                )),
            }
            Outcome::Ok(None, result)
        }
        Some(Err(
            RaftError::FlowControl { .. } | RaftError::InvalidInput(_) | RaftError::Rejected(_),
        )) => Outcome::Fail(None),
        // NotLeader may come after the entry was proposed (FailPendingTasks): unknown
        _ => Outcome::Info,
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
        if dt_fiber::sleep(Duration::from_millis(wait)).await.is_err() || sh.finished.get() {
            return;
        }
        let now = vnow();
        // groups the driver stopped (a failed fsync is fatal): the node restarts
        for &id in &ids {
            if let Some(up) = sh.up(id) {
                if let Some(why) = &up.raft.status().init_failed {
                    sh.violation(format!("node {id} cannot recover: {why}"));
                }
                if up.fg.should_stop() || up.fg.is_finished() {
                    sh.checker.borrow_mut().stats.log_failures += 1;
                    crash_node(&sh, id);
                    down.push((id, now + rng.range(50, 1_000) as i64 * 1_000_000));
                }
            }
        }
        if now >= until_ns {
            // calm: bring every node back, no new faults
            down.clear();
            for &id in &ids {
                if sh.up(id).is_none() && !sh.to_start.borrow().contains(&id) {
                    sh.to_start.borrow_mut().push(id);
                }
            }
            continue;
        }
        // nodes crashed elsewhere (right after an election) are back after a while too
        for &id in &ids {
            if sh.up(id).is_none()
                && !down.iter().any(|d| d.0 == id)
                && !sh.to_start.borrow().contains(&id)
            {
                down.push((id, now + rng.range(50, 1_000) as i64 * 1_000_000));
            }
        }
        let mut k = 0;
        while k < down.len() {
            if down[k].1 <= now {
                let (id, _) = down.swap_remove(k);
                sh.to_start.borrow_mut().push(id);
            } else {
                k += 1;
            }
        }
        if heal_at.is_some_and(|t| t <= now) {
            sh.rpcs.net.heal();
            heal_at = None;
        }
        let leader = sh
            .live()
            .into_iter()
            .find(|u| u.raft.status().role == Role::Leader)
            .map(|u| u.raft.node_id());
        match rng.range(0, 9) {
            0 | 1 if f.crash && down.len() < (sh.cfg.nodes as usize - 1) / 2 + 1 => {
                let id = match (leader, rng.range(0, 2)) {
                    (Some(l), 0) => l,
                    _ => 1 + rng.range(0, n - 1) as NodeId,
                };
                if sh.up(id).is_some() && sh.may_crash(id) {
                    sh.checker.borrow_mut().stats.crashes += 1;
                    crash_node(&sh, id);
                    down.push((id, now + rng.range(10, 2_000) as i64 * 1_000_000));
                }
            }
            2 | 3 if f.net && heal_at.is_none() => {
                sh.checker.borrow_mut().stats.partitions += 1;
                let net = &sh.rpcs.net;
                match rng.range(0, 3) {
                    0 => {
                        if let Some(l) = leader {
                            net.isolate(l, &ids);
                        }
                    }
                    1 => {
                        let a = 1 + rng.range(0, n - 1) as NodeId;
                        let b = 1 + rng.range(0, n - 1) as NodeId;
                        if a != b {
                            net.block(a, b);
                        }
                    }
                    2 => {
                        let cut = rng.range(1, n - 1) as usize;
                        let mut shuffled = ids.clone();
                        for i in (1..shuffled.len()).rev() {
                            shuffled.swap(i, rng.range(0, i as u64) as usize);
                        }
                        net.partition(&shuffled[..cut], &shuffled[cut..]);
                    }
                    _ => {
                        let a = 1 + rng.range(0, n - 1) as NodeId;
                        let b = 1 + rng.range(0, n - 1) as NodeId;
                        net.set_slow(a, b, rng.range(50_000, 600_000));
                    }
                }
                heal_at = Some(now + rng.range(200, 3_000) as i64 * 1_000_000);
            }
            4 => {
                if let Some(up) = leader.and_then(|l| sh.up(l)) {
                    let target = 1 + rng.range(0, n - 1) as NodeId;
                    if target != up.raft.node_id() {
                        sh.checker.borrow_mut().stats.transfers += 1;
                        // the answer is not awaited
                        drop(up.raft.transfer_leadership(target, Duration::from_secs(2)));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Crashes nodes in the middle of a snapshot save or an install: looks every few
/// milliseconds, and crashes a node caught at it with a seeded chance (at most a few
/// per run, and never more than a minority down).
async fn snapshot_nemesis(sh: Rc<Shared>, seed: u64, until_ns: i64) {
    let mut rng = XorShift::new(seed);
    let mut budget = rng.range(0, 4);
    while budget > 0 {
        if dt_fiber::sleep(Duration::from_millis(rng.range(2, 8)))
            .await
            .is_err()
            || sh.finished.get()
            || vnow() >= until_ns
        {
            return;
        }
        let down = sh.slots.iter().filter(|s| s.up.borrow().is_none()).count();
        if down >= (sh.cfg.nodes as usize - 1) / 2 {
            continue;
        }
        for id in sh.all_ids() {
            let Some(up) = sh.up(id) else { continue };
            let busy =
                sh.slot(id).disk.saving() || up.installing.get() || sh.slot(id).disk.installing();
            if busy && rng.range(0, 99) < 10 && sh.may_crash(id) {
                let mut c = sh.checker.borrow_mut();
                c.stats.crashes += 1;
                c.stats.crashes_in_snapshot += 1;
                drop(c);
                crash_node(&sh, id);
                budget -= 1;
                break;
            }
        }
    }
}

// ------------------------------------------------------------------------------
// membership changes

/// How long the admin waits for the answer to a prepare, commit or abort.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Shared {
    /// The live node that believes it leads in the highest term.
    pub(crate) fn leader(&self) -> Option<Rc<Up>> {
        self.live()
            .into_iter()
            .filter(|u| u.raft.status().role == Role::Leader)
            .max_by_key(|u| u.raft.status().term)
    }
}

fn pick(rng: &mut XorShift, v: &[NodeId]) -> Option<NodeId> {
    (!v.is_empty()).then(|| v[rng.range(0, v.len() as u64 - 1) as usize])
}

fn without(v: &[NodeId], x: NodeId) -> Vec<NodeId> {
    v.iter().copied().filter(|y| *y != x).collect()
}

fn with(v: &[NodeId], x: NodeId) -> Vec<NodeId> {
    let mut v = v.to_vec();
    v.push(x);
    v.sort_unstable();
    v
}

/// Nodes in no set at first (empty disks) with membership changes: two, so that a
/// change can replace two members at once or grow the group by two.
pub(crate) const SPARES: u32 = 2;

/// An operator's membership changes through the leader's admin API (raft.md §11.3),
/// at random moments while the faults go on: a member moved to the observers or out
/// of the group, an observer promoted back, a node in no set (a spare with its empty
/// disk, or a node removed earlier) added as a member, an observer dropped, and
/// changes of two nodes at once (two members replaced by two nodes in no set, as
/// 1,2,3 → 1,4,5; two nodes added; two members removed: 3 → 5 → 3 with overlap);
/// each change prepared, then committed or (one in five) aborted, sometimes with a
/// crash of the leader in between, sometimes left prepared (the next round aborts it
/// or prepares it again and commits). The members stay between 2 and every node.
async fn membership_admin(sh: Rc<Shared>, seed: u64, until_ns: i64) {
    let mut rng = XorShift::new(seed);
    let all = sh.all_ids();
    loop {
        let wait = rng.range(200, 1_500);
        if dt_fiber::sleep(Duration::from_millis(wait)).await.is_err()
            || sh.finished.get()
            || vnow() >= until_ns
        {
            return;
        }
        let Some(up) = sh.leader() else { continue };
        let sets = up.raft.status().members.clone();
        let (m, o) = (sets.members.clone(), sets.observers.clone());
        if !sets.prepared_members.is_empty() {
            let again = rng.range(0, 1) == 0;
            let (pm, po) = (
                sets.prepared_members.clone(),
                sets.prepared_observers.clone(),
            );
            if again {
                change(&sh, &mut rng, m, o, pm, po, false).await;
            } else {
                finish_change(&sh, &mut rng, None).await;
            }
            continue;
        }
        let others: Vec<NodeId> = all
            .iter()
            .copied()
            .filter(|x| !m.contains(x) && !o.contains(x))
            .collect();
        let mut choices: Vec<(Vec<NodeId>, Vec<NodeId>)> = Vec::new();
        if m.len() > 2 {
            let x = pick(&mut rng, &m).unwrap_or(1);
            choices.push((without(&m, x), with(&o, x))); // member -> observer
            choices.push((without(&m, x), o.clone())); // member removed
        }
        if m.len() < all.len() {
            if let Some(x) = pick(&mut rng, &o) {
                choices.push((with(&m, x), without(&o, x))); // observer -> member
            }
            if let Some(x) = pick(&mut rng, &others) {
                choices.push((with(&m, x), o.clone())); // a new (or removed) node joins
            }
        }
        if let Some(x) = pick(&mut rng, &o) {
            choices.push((m.clone(), without(&o, x))); // observer dropped
        }
        // two nodes at once
        let two = |rng: &mut XorShift, v: &[NodeId]| -> Option<(NodeId, NodeId)> {
            let x = pick(rng, v)?;
            let y = pick(rng, &without(v, x))?;
            Some((x, y))
        };
        if m.len() >= 3 {
            if let (Some((x, y)), Some((a, b))) = (two(&mut rng, &m), two(&mut rng, &others)) {
                // two members replaced (1,2,3 -> 1,4,5)
                choices.push((with(&with(&without(&without(&m, x), y), a), b), o.clone()));
            }
        }
        if let Some((a, b)) = two(&mut rng, &others) {
            choices.push((with(&with(&m, a), b), o.clone())); // two nodes join
        }
        if m.len() >= 4 {
            if let Some((x, y)) = two(&mut rng, &m) {
                choices.push((without(&without(&m, x), y), o.clone())); // two members leave
            }
        }
        let Some(k) = (!choices.is_empty()).then(|| rng.range(0, choices.len() as u64 - 1)) else {
            continue;
        };
        let (pm, po) = choices.swap_remove(k as usize);
        let abort = rng.range(0, 99) < 20;
        change(&sh, &mut rng, m, o, pm, po, abort).await;
    }
}

/// Prepares the change from (`m`, `o`) to (`pm`, `po`) on the leader, then commits
/// it (or aborts it).
async fn change(
    sh: &Rc<Shared>,
    rng: &mut XorShift,
    m: Vec<NodeId>,
    o: Vec<NodeId>,
    pm: Vec<NodeId>,
    po: Vec<NodeId>,
    abort: bool,
) {
    let Some(up) = sh.leader() else { return };
    if sh.trace {
        eprintln!(
            "[{:.6}] admin: prepare {m:?}/{o:?} -> {pm:?}/{po:?} at n{}",
            vnow() as f64 / 1e9,
            up.raft.node_id()
        );
    }
    let fut = up.raft.prepare_config_change(m, o, pm, po);
    let Some(Ok(prepare_index)) = dt_fiber::within(fut, ADMIN_TIMEOUT).await else {
        return;
    };
    sh.checker.borrow_mut().stats.config_prepares += 1;
    // the leader crashes with the change prepared
    if sh.cfg.faults.crash && rng.range(0, 99) < 10 {
        let down = sh.slots.iter().filter(|s| s.up.borrow().is_none()).count();
        let id = up.raft.node_id();
        if down < (sh.cfg.nodes as usize - 1) / 2 + 1 && sh.up(id).is_some() && sh.may_crash(id) {
            sh.checker.borrow_mut().stats.crashes += 1;
            crash_node(sh, id);
        }
    }
    // the admin gives up: the change stays prepared
    if rng.range(0, 99) < 5 {
        return;
    }
    finish_change(sh, rng, (!abort).then_some(prepare_index)).await;
}

/// Commits the change prepared at `prepare_index`, or aborts the prepared change
/// (`None`), on whichever node leads, trying a few times.
async fn finish_change(sh: &Rc<Shared>, rng: &mut XorShift, prepare_index: Option<Index>) {
    for _ in 0..3 {
        if let Some(l) = sh.leader() {
            if sh.trace {
                eprintln!(
                    "[{:.6}] admin: {} at n{}",
                    vnow() as f64 / 1e9,
                    prepare_index.map_or("abort".to_string(), |i| format!("commit {i}")),
                    l.raft.node_id()
                );
            }
            let fut = match prepare_index {
                Some(i) => l.raft.commit_change(i),
                None => l.raft.abort_change(),
            };
            match dt_fiber::within(fut, ADMIN_TIMEOUT).await {
                Some(Ok(_)) => {
                    let mut c = sh.checker.borrow_mut();
                    match prepare_index {
                        Some(_) => c.stats.config_commits += 1,
                        None => c.stats.config_aborts += 1,
                    }
                    return;
                }
                // e.g. "prepareIndex not match": the next round looks again
                Some(Err(RaftError::ConfigChange(_))) => return,
                _ => {}
            }
        }
        let pause = Duration::from_millis(rng.range(100, 600));
        if dt_fiber::sleep(pause).await.is_err() || sh.finished.get() {
            return;
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

/// Runs `sim` for `d`, (re)starting the nodes the nemesis asks for on the way.
fn run_for(sim: &mut Simulation, sh: &Rc<Shared>, d: Duration) {
    let end = sim.now().nano_time + d.as_nanos() as i64;
    loop {
        let left = end - sim.now().nano_time;
        if left <= 0 {
            return;
        }
        sim.run_until(
            || !sh.to_start.borrow().is_empty(),
            Duration::from_nanos(left as u64),
        );
        let ids = std::mem::take(&mut *sh.to_start.borrow_mut());
        for id in ids {
            start_node(sh, sim, id);
        }
    }
}

/// Runs one seed with every node on the real fiber driver and checks it.
/// Deterministic: the same seed and configuration give the same history.
pub fn run_seed(cfg: &SimConfig, seed: u64) -> SeedReport {
    run_seed_with(cfg, seed, Rc::new(KvApp))
}

/// [`run_seed`] with another application than the simulation's KV.
pub fn run_seed_with(cfg: &SimConfig, seed: u64, app: Rc<dyn SimApp>) -> SeedReport {
    bugs::set_active(cfg.bug);
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
    let snap = SnapCfg {
        save_seconds: rng.range(1, 2),
        delete_delay_seconds: rng.range(0, 1),
        chunk_bytes: [8, 16, 64, 1024][rng.range(0, 3) as usize],
        concurrency: rng.range(1, 4) as usize,
    };
    let all = cfg.nodes + if cfg.membership { SPARES } else { 0 };
    let clocks = (1..=all)
        .map(|_| {
            if f.clock {
                Drift {
                    offset_ns: rng.range(0, 10_000) as i64 * 1_000_000,
                    ppm: rng.range(0, 20_000) as i64 - 10_000,
                }
            } else {
                Drift::default()
            }
        })
        .collect();
    let slots = (1..=all)
        .map(|_| Slot {
            disk: SimDisk::new(disk_cfg.clone(), rng.next_u64()),
            inc: Cell::new(0),
            up: RefCell::new(None),
        })
        .collect();
    let sh = Rc::new(Shared {
        cfg: cfg.clone(),
        app: app.clone(),
        rpcs: Rc::new(Rpcs {
            net,
            next: Cell::new(0),
            pending: RefCell::new(BTreeMap::new()),
        }),
        checker: RefCell::new(Checker::default()),
        slots,
        history: RefCell::new(History::new()),
        clients_done: Cell::new(false),
        finished: Cell::new(false),
        ops: Cell::new(0),
        ok: Cell::new(0),
        max_replicate_items: [1, 2, 4, 8, 64][rng.range(0, 4) as usize],
        trace: std::env::var_os("DT_SIM_TRACE").is_some(),
        snap,
        clocks,
        rng: RefCell::new(XorShift::new(rng.next_u64())),
        to_start: RefCell::new(Vec::new()),
        misc: RefCell::new(None),
        me: RefCell::new(Weak::new()),
    });
    *sh.me.borrow_mut() = Rc::downgrade(&sh);
    {
        let weak = Rc::downgrade(&sh);
        sh.rpcs.net.set_deliver(move |from, to, msg| {
            if let Some(sh) = weak.upgrade() {
                sh.deliver(from, to, msg);
            }
        });
    }
    for id in 1..=all {
        start_node(&sh, &mut sim, id);
    }
    let cg = sim.new_group("clients");
    for p in 0..cfg.clients as u64 {
        let _ = cg.spawn("client", client(sh.clone(), p, rng.next_u64()));
    }
    let misc = sim.new_group("nemesis");
    *sh.misc.borrow_mut() = Some(misc.clone());
    let until = sim.now().nano_time + cfg.duration.as_nanos() as i64;
    let _ = misc.spawn("nemesis", nemesis(sh.clone(), rng.next_u64(), until));
    let _ = misc.spawn("invariants", invariant_ticker(sh.clone()));
    if f.crash {
        let _ = misc.spawn(
            "snapshot-nemesis",
            snapshot_nemesis(sh.clone(), rng.next_u64(), until),
        );
    }
    if cfg.membership {
        let _ = misc.spawn(
            "membership-admin",
            membership_admin(sh.clone(), rng.next_u64(), until),
        );
    }

    // the application's own workload, seeded apart from the harness's randomness
    app.spawn_workload(
        ClusterView {
            sh: Rc::downgrade(&sh),
        },
        &misc,
        seed ^ 0x000A_995E_ED0F_DA7A,
    );

    run_for(&mut sim, &sh, cfg.duration);
    // the end: stop the workload, heal, restart everybody, let it converge
    sh.clients_done.set(true);
    sh.rpcs.net.heal();
    let mut cfgn = sh.rpcs.net.config();
    cfgn.loss_per_mille = 0;
    sh.rpcs.net.set_config(cfgn);
    for slot in &sh.slots {
        slot.disk.set_sync_fail_per_mille(0);
    }
    run_for(&mut sim, &sh, CLIENT_TIMEOUT + Duration::from_secs(4));
    final_checks(&sh);
    app.final_checks(&ClusterView {
        sh: Rc::downgrade(&sh),
    });
    let virtual_time = sim.elapsed();
    sh.finished.set(true);
    sh.misc.borrow_mut().take();
    let _ = sim.stop(Duration::from_secs(5));
    for slot in &sh.slots {
        slot.up.borrow_mut().take();
    }

    let history: Vec<Event> = std::mem::take(&mut sh.history.borrow_mut().events);
    let mut violations = std::mem::take(&mut sh.checker.borrow_mut().violations);
    let mut check_unknown = false;
    match check_events(&history, &CheckConfig::default()) {
        Ok(r) => match r.verdict {
            Verdict::Linearizable => {}
            Verdict::Violation(v) => violations.push(format!("not linearizable: {v}")),
            Verdict::Unknown { .. } => check_unknown = true,
        },
        Err(e) => violations.push(format!("history malformed: {e}")),
    }
    let mut stats = sh.checker.borrow().stats;
    stats.messages = sh.rpcs.net.stats().sent;
    for slot in &sh.slots {
        let d = slot.disk.stats();
        stats.installs += d.installs;
        stats.empty_logs_after_install += d.empty_logs_after_install;
        stats.snapshots += d.snapshots_saved;
        stats.snapshot_saves_lost += d.snapshot_saves_lost;
        stats.log_deletions += d.log_deletions;
    }
    let stall = sh.checker.borrow_mut().stall.take();
    bugs::set_active(None);
    // nothing of the run outlives it (a fiber or a callback keeping the shared state
    // would leak a whole cluster per seed)
    debug_assert_eq!(Rc::strong_count(&sh), 1, "the run's state leaked");
    SeedReport {
        seed,
        ops: sh.ops.get(),
        ok: sh.ok.get(),
        virtual_time,
        violations,
        check_unknown,
        history,
        stats,
        app_stats: app.stats(),
        stall,
    }
}

/// After convergence: logs match pairwise, every acknowledged write is in every
/// node's log up to its commit index, and in a majority of the logs.
fn final_checks(sh: &Shared) {
    sh.check_log_matching();
    // every node's state is the applied entries' state at its index; equal indexes,
    // equal states
    let live = sh.live();
    for up in &live {
        if !up.installing.get() {
            let d = up.app.digest();
            sh.check_digest(up.raft.node_id(), up.at.get(), d, false, "final state");
        }
    }
    let top = live
        .iter()
        .map(|u| u.raft.status().last_applied)
        .max()
        .unwrap_or(0);
    let behind = live
        .iter()
        .filter(|u| u.raft.status().last_applied < top)
        .count() as u64;
    sh.checker.borrow_mut().stats.behind_at_end = behind;
    let acked = sh.checker.borrow().acked.clone();
    for up in sh.live() {
        if sh.slot(up.raft.node_id()).disk.installing() {
            // its log is gone until the leader's install: nothing to hold
            continue;
        }
        let commit = up.raft.status().commit_index;
        for &(i, t) in &acked {
            if i >= up.log.first_index() && up.log.term_at(i) != Some(t) && commit >= i {
                sh.violation(format!(
                    "node {}: acknowledged write at {i} (term {t}) is gone",
                    up.raft.node_id()
                ));
                break;
            }
        }
    }
    // liveness: after the faults healed and every node restarted (several election
    // timeouts ago), a leader of the configuration reached whose group is ready (its
    // term's first entry committed and applied)
    let ready_leader = live.iter().any(|u| {
        let s = u.raft.status();
        s.role == Role::Leader && s.group_ready
    });
    // a node waiting for an install whose log was dropped (an install under way or
    // interrupted): it holds none of the entries (for the write checks below) and,
    // unless it recorded the position to vote with (RaftCore::install_vote), grants no
    // votes
    let refuses = |u: &Up| {
        sh.slot(u.raft.node_id()).disk.installing()
            || u.installing.get()
            || u.raft.status().refuses_votes_for_install
    };
    let refuses_votes = |u: &Up| u.raft.status().refuses_votes_for_install;
    {
        // half of the members or more, or of the prepared members during a change (or
        // of a configuration a candidate's log holds, which the end state does not
        // show: any node refusing then)
        let sets = sh.current_sets();
        let no_leader = !live.iter().any(|u| u.raft.status().role == Role::Leader);
        let too_many = |set: &[NodeId]| {
            let refusing = live
                .iter()
                .filter(|u| set.contains(&u.raft.node_id()) && refuses_votes(u))
                .count();
            !set.is_empty() && refusing * 2 >= set.len()
        };
        let caught = too_many(&sets.members)
            || too_many(&sets.prepared_members)
            || (!ready_leader && live.iter().any(|u| refuses_votes(u)));
        if no_leader && caught {
            // liveness, not safety: too many nodes wait for an install to elect anyone
            sh.checker.borrow_mut().stats.stuck_installing = 1;
        }
    }
    if !ready_leader {
        sh.checker.borrow_mut().stats.stalled = 1;
        let note = format!("no ready leader at the end [{}]", node_states(sh));
        sh.checker.borrow_mut().stall = Some(note);
    }
    if let Some(&(i, t)) = acked.iter().max() {
        // the members of the configuration reached (all nodes without membership
        // changes): a majority of them must hold the write
        let members = sh.current_members();
        let live: Vec<Rc<Up>> = sh
            .live()
            .into_iter()
            .filter(|u| members.contains(&u.raft.node_id()))
            .collect();
        // a node waiting for an install whose log was dropped grants no votes: it
        // cannot help elect a leader that lacks the write
        // an intact log that starts after the node's state (an install finished, the
        // snapshot was not saved before a crash) continues the committed snapshot it
        // was installed after: the node holds what is below its log, and votes
        let holds = |u: &Up| {
            u.log.term_at(i) == Some(t)
                || (i < u.log.first_index() && (u.at.get() >= i || !refuses(u)))
        };
        let holders = live.iter().filter(|u| holds(u)).count();
        // nor can a member that has not learnt it is one (role none: it learns that
        // from a leader's log, which holds the write)
        let voters_without = live
            .iter()
            .filter(|u| !holds(u) && !refuses(u) && u.raft.status().role.is_voting())
            .count();
        // a node waiting for an install whose log was dropped grants no votes: it
        // cannot help elect a leader that lacks the write
        if holders * 2 <= members.len() && voters_without * 2 > members.len() {
            sh.violation(format!(
                "acknowledged write at {i} (term {t}) held by only {holders} of members {members:?} [{}]",
                node_states(sh)
            ));
        }
    }
}

/// One line per node: role, term, log, commit, apply, init (for reports).
fn node_states(sh: &Shared) -> String {
    let states: Vec<String> = sh
        .slots
        .iter()
        .enumerate()
        .map(|(k, s)| match s.up.borrow().as_ref() {
            None => format!("{}: down", k + 1),
            Some(u) => {
                let st = u.raft.status();
                format!(
                    "{}: {:?} term {} last {} commit {} applied {} members {:?}/{:?} init {} failed {:?} stop {} installing {} refuses votes {}",
                    k + 1,
                    st.role,
                    st.term,
                    u.log.last_index(),
                    st.commit_index,
                    st.last_applied,
                    st.members.members,
                    st.members.prepared_members,
                    st.init_finished,
                    st.init_failed,
                    u.fg.should_stop(),
                    s.disk.installing() || u.installing.get(),
                    st.refuses_votes_for_install
                )
            }
        })
        .collect();
    states.join("; ")
}
