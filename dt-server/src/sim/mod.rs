//! The deterministic whole-cluster simulation with the DtKV state machine (issues 11
//! and 12): dt-raft's simulation ([`dt_raft::sim`]: nodes on the real fiber driver,
//! seeded network, disk, crash and clock faults, snapshots and installs, one seed
//! deciding everything) runs DtKV's real [`StateMachine`] binding
//! ([`DtKvStateMachine`], the code the server applies) through its application
//! extension point ([`dt_raft::sim::app::SimApp`]).
//!
//! What runs ([`DtKvApp`]):
//!
//! * the harness's clients do put / get (lease read) / cas / remove on keys `k0..`
//!   as DtKV requests: each is the body a client sends, planned by the service's real
//!   [`plan`] (owner set to the client's connection UUID) and
//!   submitted with its business type; the answers go through the linearizability
//!   check of [`dt_raft::sim::lincheck`];
//! * every node runs the TTL expiry task of the server's daemon
//!   ([`ttl_round`]) on its own fiber group, on the
//!   node's fiber clock (the same base as the driver's `local_create_nanos`);
//! * a TTL client writes temporary nodes (`t0..t2`, TTL 200–1500 ms), sometimes
//!   refreshes them (UPDATE_TTL) or removes them; expiry happens through EXPIRE log
//!   entries only;
//! * lock clients try-lock (with and without a wait), refresh the lease, unlock or let
//!   the hold lease run out, on one lock key (`lk`);
//! * on every node a watcher (one client connection) watches `k0` and the node runs
//!   the watch dispatch every 50 ms; now and then a push is lost (retried by the
//!   server); after a restart or an install the watcher syncs again with the raft
//!   index it knows.
//!
//! Invariants, besides the harness's own (one entry per index, leader completeness,
//! log matching, commit never backwards, acknowledged writes kept, linearizability):
//!
//! * every replica that applied index `i` has the same DtKV state digest at `i`
//!   ([`KvTree::state_digest`](crate::dtkv::KvTree::state_digest): every live node's
//!   key, indexes, times, flags, value, TTL and owner); every snapshot taken or
//!   installed at `i` and every node's final state match it too;
//! * locks, on every replica at every applied entry: a lock changes hands only by a
//!   TRY_LOCK of a free lock, an UNLOCK by its holder or the EXPIRE of the holder's
//!   entry; a hand-over goes to a client that was waiting; the grant's fencing token
//!   (the raft index of the grant, the new holder's TTL index) increases strictly;
//!   a lock entry always has a TTL with its owner;
//! * TTL: at the end (faults healed, the cluster converged), the leader's TtlManager
//!   tracks exactly the TTLs of its tree, and no temporary node whose TTL ran out on
//!   the leader's clock more than [`EXPIRY_BOUND`] before (or before the leader took
//!   office, whichever is later) is still there;
//! * watches: every notification a watcher gets from a node has a raft index above
//!   the last one it got from that node; at the end, on every node that applied as
//!   far as any, the watcher's last notification is `k0`'s final state;
//! * client answers are codes a correct DtKV gives for the request.
//!
//! The [`bugs`] module holds deliberate DtKV bugs (feature `sim-bugs`) the simulation
//! must find. The `dtkv_sim` example runs seeds from the command line.

pub mod bugs;
mod watch;
mod workload;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dt_client::kv::{lock_entry_key, KvBody, KvCode, KvCommands, KvReq};
use dt_codec::encode;
use dt_fiber::{FiberGroup, FiberOptions};
use dt_net::ProcessInfo;
use dt_raft::core::NodeId;
use dt_raft::driver::RaftGroup;
use dt_raft::sim::app::{AppNode, ClusterView, SimApp, SmHooks};
use dt_raft::sim::history::{Key, Value};
use dt_raft::sim::kv::Command;
use dt_raft::sm::{
    Exec, ExecEntry, RaftInput, SmError, SmFuture, Snapshot, SnapshotChunk, SnapshotInfo,
    StateMachine,
};

use crate::dtkv::{plan, BizType, KvAction, TtlInfo, WatchConfig};
use crate::kv_server::{kv_clock, ttl_round, DtKvStateMachine, KvGroup};

pub use bugs::DtKvBug;

/// The group id of the simulated DtKV group.
pub const GROUP: i32 = 1;

/// The lock key the lock clients use.
pub const LOCK_KEY: &str = "lk";

/// How long after a temporary node's TTL ran out on a stable leader's clock it must be
/// gone: the expiry task's period (50 ms here), a failed submission's retry delay
/// (1 s, `ttl_manager::DEFAULT_DELAY_NANOS`) and the commit of the EXPIRE entry.
pub const EXPIRY_BOUND: Duration = Duration::from_millis(2_500);

/// The expiry task's period on each node.
const TTL_TASK_PERIOD: Duration = Duration::from_millis(50);

/// The UUID of a harness client's connection.
fn client_owner(process: u64) -> ProcessInfo {
    ProcessInfo {
        uuid1: 1_000 + process,
        uuid2: 7,
    }
}

/// The DtKV key of a harness key.
pub fn key_name(k: Key) -> String {
    format!("k{k}")
}

/// Counters of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct DtKvStats {
    /// EXPIRE entries applied with success (on the first node to apply them).
    pub expired: u64,
    /// Temporary nodes written (acknowledged).
    pub temp_puts: u64,
    /// Lock grants (by TRY_LOCK or hand-over, on the first node to apply them).
    pub lock_grants: u64,
    /// Of which hand-overs (UNLOCK or EXPIRE of the holder with a waiter).
    pub lock_handovers: u64,
    /// Lock requests answered.
    pub lock_ops: u64,
    /// 1 when the end's expiry check ran (a leader observed in office).
    pub expiry_checks: u64,
    /// Temporary nodes the end's expiry check found (and checked).
    pub temps_at_end: u64,
    /// Watchers whose last notification was compared with the final state.
    pub watch_final_checks: u64,
}

/// The DtKV application of a simulation run (one per run: it keeps the run's
/// counters).
#[derive(Default)]
pub struct DtKvApp {
    stats: Rc<RefCell<DtKvStats>>,
    /// What the first node to apply each index saw.
    records: Rc<Records>,
    /// When the leader the expiry check relies on took office: (node, term, virtual ns).
    office: Rc<RefCell<Option<(NodeId, u32, i64)>>>,
    /// The DtKV state of each node's latest incarnation.
    groups: RefCell<BTreeMap<NodeId, Arc<KvGroup>>>,
    /// Each node's watcher (a client: it outlives the node's incarnations).
    watchers: RefCell<BTreeMap<NodeId, Rc<RefCell<watch::Watcher>>>>,
    /// Incarnations started (seeds the watchers' randomness).
    starts: Cell<u64>,
}

impl DtKvApp {
    /// A new application (one per run).
    pub fn new() -> Self {
        Self::default()
    }

    /// The run's counters.
    pub fn dtkv_stats(&self) -> DtKvStats {
        *self.stats.borrow()
    }
}

/// A DtKV request as a client sends it, planned by the service's real processor
/// decision ([`plan`]): the log entry to submit, or the immediate answer's code.
pub fn plan_write(command: i32, req: &KvReq, owner: ProcessInfo) -> Result<RaftInput, KvCode> {
    let body: Bytes = encode::to_bytes(req);
    match plan(command, &body, owner) {
        Some(Ok(KvAction::Write { biz, req })) => {
            Ok(RaftInput::new(biz.code(), encode::to_bytes(&req)))
        }
        Some(Ok(KvAction::Respond { response, .. })) => Err(response.biz_code),
        _ => Err(KvCode::ClientReqError),
    }
}

fn value_bytes(v: Value) -> Bytes {
    Bytes::from(v.to_string())
}

impl SimApp for DtKvApp {
    fn new_node(
        &self,
        node: NodeId,
        hooks: SmHooks,
    ) -> (Box<dyn StateMachine<Output = bool>>, Rc<dyn AppNode>) {
        let group = Arc::new(KvGroup::new(GROUP, WatchConfig::default()));
        self.groups.borrow_mut().insert(node, group.clone());
        let sm = DtKvSimSm {
            inner: DtKvStateMachine::new(group.clone()),
            group: group.clone(),
            hooks: Rc::new(hooks),
            last_grant: 0,
            stats: self.stats.clone(),
            records: self.records.clone(),
        };
        (Box::new(sm), Rc::new(DtKvNode { group }))
    }

    fn write_input(&self, cmd: &Command, _op_id: u64, process: u64) -> RaftInput {
        let (command, req) = match *cmd {
            Command::Put(k, v) => (
                KvCommands::DTKV_PUT,
                KvReq::put(GROUP, key_name(k), value_bytes(v)),
            ),
            Command::Cas { key, expected, new } => {
                let mut r = KvReq::key(GROUP, key_name(key));
                r.expect_value = expected.map(value_bytes).unwrap_or_default();
                r.value = new.map(value_bytes).unwrap_or_default();
                (KvCommands::DTKV_CAS, r)
            }
            Command::Remove(k) => (KvCommands::DTKV_REMOVE, KvReq::key(GROUP, key_name(k))),
        };
        // the harness's commands always pass the service's checks
        plan_write(command, &req, client_owner(process)).expect("a valid DtKV write")
    }

    fn node_started(
        &self,
        node: NodeId,
        _app: &Rc<dyn AppNode>,
        raft: &RaftGroup<bool>,
        fg: &FiberGroup,
        cluster: &ClusterView,
    ) {
        if let Some(group) = self.groups.borrow().get(&node) {
            let daemon = |name| FiberOptions::new(name).daemon();
            let _ = fg.spawn_with(daemon("dtkv-ttl"), ttl_task(raft.clone(), group.clone()));
            let watcher = self.watchers.borrow_mut().entry(node).or_default().clone();
            self.starts.set(self.starts.get() + 1);
            let seed = self.starts.get().wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(node);
            let _ = fg.spawn_with(
                daemon("dtkv-watch"),
                watch::watch_task(node, group.clone(), watcher, cluster.clone(), seed),
            );
        }
    }

    fn spawn_workload(&self, cluster: ClusterView, fg: &FiberGroup, seed: u64) {
        let _ = fg.spawn(
            "dtkv-office",
            watch_office(cluster.clone(), self.office.clone()),
        );
        workload::spawn(cluster, fg, seed, self.stats.clone());
    }

    fn final_checks(&self, cluster: &ClusterView) {
        self.check_expiry(cluster);
        self.check_watches(cluster);
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats.borrow();
        vec![
            ("expired", s.expired),
            ("temp_puts", s.temp_puts),
            ("lock_grants", s.lock_grants),
            ("lock_handovers", s.lock_handovers),
            ("lock_ops", s.lock_ops),
            ("expiry_checks", s.expiry_checks),
            ("temps_at_end", s.temps_at_end),
            ("ttls_ahead", self.records.ahead.get()),
            ("tokens_ahead", self.records.ahead_tokens.get()),
            ("watch_final_checks", s.watch_final_checks),
            (
                "watch_notifications",
                self.watchers
                    .borrow()
                    .values()
                    .map(|w| w.borrow().delivered)
                    .sum(),
            ),
        ]
    }
}

/// Records when the current leader took office (seen ready), for the expiry check.
async fn watch_office(cluster: ClusterView, office: Rc<RefCell<Option<(NodeId, u32, i64)>>>) {
    while !cluster.finished() {
        if dt_fiber::sleep(TTL_TASK_PERIOD).await.is_err() {
            return;
        }
        let Some(l) = cluster.leader() else { continue };
        let Some(st) = cluster.status(l) else {
            continue;
        };
        if !st.group_ready {
            continue;
        }
        let mut o = office.borrow_mut();
        if !matches!(*o, Some((n, t, _)) if n == l && t == st.term) {
            *o = Some((l, st.term, cluster.now_nanos()));
        }
    }
}

impl DtKvApp {
    /// The end check of the watchers, on the live nodes that applied as far as any.
    fn check_watches(&self, cluster: &ClusterView) {
        let applied = |id| cluster.status(id).map(|s| s.last_applied);
        let top = cluster.node_ids().into_iter().filter_map(applied).max();
        for id in cluster.node_ids() {
            if applied(id).is_none() || applied(id) != top || cluster.installing(id) {
                continue;
            }
            let (Some(g), Some(w)) = (
                self.groups.borrow().get(&id).cloned(),
                self.watchers.borrow().get(&id).cloned(),
            ) else {
                continue;
            };
            watch::final_check(id, &g, &w.borrow(), cluster);
            self.stats.borrow_mut().watch_final_checks += 1;
        }
    }

    /// The end checks of TTLs on the leader (see the module docs).
    fn check_expiry(&self, cluster: &ClusterView) {
        let Some(l) = cluster.leader() else { return };
        let Some(st) = cluster.status(l) else { return };
        if !st.group_ready || cluster.installing(l) {
            return;
        }
        let Some(group) = self.groups.borrow().get(&l).cloned() else {
            return;
        };
        let now = cluster.now_nanos();
        let since = match *self.office.borrow() {
            Some((n, t, at)) if n == l && t == st.term => at,
            _ => return, // not observed in office: nothing to rely on
        };
        let mut kv = group.lock();
        let mut temps = Vec::new();
        for i in 0..workload::TEMP_KEYS {
            let k = workload::temp_key(i);
            if let Some(n) = kv.tree().get(k.as_bytes()).node {
                temps.push((k, n));
            }
        }
        {
            let mut s = self.stats.borrow_mut();
            s.expiry_checks += 1;
            s.temps_at_end += temps.len() as u64;
        }
        for (k, _) in temps {
            match kv.ttl_manager().expiry_of(k.as_bytes()) {
                None => cluster.violation(format!(
                    "leader {l}: temp node {k} exists but its TTL is not in the TtlManager"
                )),
                Some((_, at)) => {
                    let due = at.max(since) + EXPIRY_BOUND.as_nanos() as i64;
                    if due < now {
                        cluster.violation(format!(
                            "leader {l}: temp node {k} still exists {:.3}s after its TTL ran out on the leader (in office since {:.3}s)",
                            (now - at) as f64 / 1e9,
                            since as f64 / 1e9
                        ));
                    }
                }
            }
        }
    }
}

/// The reader of a node's DtKV state.
struct DtKvNode {
    group: Arc<KvGroup>,
}

impl AppNode for DtKvNode {
    fn get(&self, key: Key) -> Result<Option<Value>, String> {
        let r = self
            .group
            .lock()
            .read(KvCommands::DTKV_GET, &KvReq::key(GROUP, key_name(key)));
        match r.biz_code {
            KvCode::Success | KvCode::NotFound => {}
            c => return Err(format!("get answered {c:?}")),
        }
        let node = r
            .body
            .to_resp()
            .and_then(|b| b.results.into_iter().next())
            .and_then(|r| r.node);
        match node {
            None => Ok(None),
            Some(n) => std::str::from_utf8(&n.data)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("value {:?} is not a number", n.data)),
        }
    }

    fn digest(&self) -> u64 {
        self.group.lock().tree().state_digest()
    }
}

/// The TTL expiry task of one node incarnation (the server daemon's
/// [`ttl_round`]), on the node's fiber group and clock.
async fn ttl_task(raft: RaftGroup<bool>, group: Arc<KvGroup>) {
    let mut was = None;
    // ends with the node's incarnation (a crash shuts its fiber group down)
    while let Ok(false) = dt_fiber::sleep_until_shutdown(TTL_TASK_PERIOD).await {
        let st = raft.status();
        let leader = raft.is_leader() && st.group_ready;
        let now = kv_clock().0;
        for (req, input) in ttl_round(&group, leader, &mut was, now) {
            let g = group.clone();
            raft.submit(input, move |r| {
                if r.is_err() {
                    g.lock()
                        .ttl_manager()
                        .expire_failed(&req.key, req.ttl_millis, kv_clock().0);
                }
            });
        }
    }
}

/// DtKV's state machine binding with the simulation's checks around it.
struct DtKvSimSm {
    inner: DtKvStateMachine,
    group: Arc<KvGroup>,
    hooks: Rc<SmHooks>,
    /// The fencing token of the last grant this incarnation applied.
    last_grant: i64,
    stats: Rc<RefCell<DtKvStats>>,
    records: Rc<Records>,
}

/// What the first node to apply each index saw (shared by the nodes of a run).
#[derive(Default)]
struct Records {
    /// The highest index applied by any node (counters count an entry once, on the
    /// first node that applies it).
    top: Cell<u64>,
    /// The TTLs of the state after each index, as the first node to apply it had
    /// them (the digest leaves their timing out).
    ttls: RefCell<BTreeMap<u64, BTreeMap<Bytes, TtlInfo>>>,
    /// TTL comparisons that differed only by a TTL restarted after the index.
    ahead: Cell<u64>,
    /// Lock grants whose token is a later lease refresh's index.
    ahead_tokens: Cell<u64>,
}

/// The TTLs of a node's state at `index` must be those the first node to apply it
/// had, but for TTLs restarted by a later entry (raft index above `index`): a
/// snapshot may carry those (`KvTree::state_digest`).
fn check_ttls(
    hooks: &SmHooks,
    records: &Records,
    index: u64,
    ttls: BTreeMap<Bytes, TtlInfo>,
    first: bool,
    what: &str,
) {
    let mut rec = records.ttls.borrow_mut();
    if first {
        rec.insert(index, ttls);
        return;
    }
    let Some((_, expected)) = rec.range(..=index).next_back() else {
        return;
    };
    let ahead = |t: &TtlInfo| t.raft_index > index as i64;
    let same = expected.len() == ttls.len()
        && expected
            .iter()
            .zip(&ttls)
            .all(|((k1, t1), (k2, t2))| k1 == k2 && (t1 == t2 || ahead(t1) || ahead(t2)));
    if same && expected != &ttls {
        records.ahead.set(records.ahead.get() + 1);
    }
    if !same {
        let diff: Vec<String> = ttls
            .iter()
            .filter(|(k, t)| expected.get(*k) != Some(*t))
            .map(|(k, t)| {
                format!(
                    "{}: {t:?} (expected {:?})",
                    String::from_utf8_lossy(k),
                    expected.get(k)
                )
            })
            .collect();
        drop(rec);
        hooks.violation(format!(
            "{what} at {index}: TTLs differ from those of the first node to apply it: {diff:?}"
        ));
    }
}

type LockEntries = Vec<(ProcessInfo, i64, Option<TtlInfo>)>;

impl DtKvSimSm {
    fn check_ttls(&self, index: u64, first: bool, what: &str) {
        let ttls = self.group.lock().tree().ttl_infos();
        check_ttls(&self.hooks, &self.records, index, ttls, first, what);
    }

    fn lock_entries(&self) -> LockEntries {
        self.group.lock().tree().lock_entries(LOCK_KEY.as_bytes())
    }

    /// The lock invariants of one applied entry (see the module docs).
    fn check_lock(
        &mut self,
        e: &ExecEntry<'_>,
        req: Option<&KvReq>,
        (before, after): (&LockEntries, &LockEntries),
        first: bool,
    ) {
        let index = e.index as i64;
        for (o, _, ttl) in after {
            if ttl.is_none_or(|t| t.owner != *o) {
                self.hooks
                    .violation(format!("lock entry of {o:?} without its TTL at {index}"));
            }
        }
        let holder = |v: &LockEntries| v.first().map(|&(o, ci, _)| (o, ci));
        let (was, now) = (holder(before), holder(after));
        if was == now {
            return;
        }
        let biz = BizType::from_code(e.biz_type);
        let operator = req.and_then(|r| r.owner());
        let key = req.map(|r| r.key.clone()).unwrap_or_default();
        // the holder let go: its UNLOCK, or the EXPIRE of its entry
        let released = |a: ProcessInfo| {
            (biz == Some(BizType::Unlock) && operator == Some(a) && key == LOCK_KEY.as_bytes())
                || (biz == Some(BizType::Expire) && key == lock_entry_key(LOCK_KEY.as_bytes(), a))
        };
        let desc = || {
            format!(
                "entry {index} ({biz:?} by {operator:?} on {:?}): lock holder {was:?} -> {now:?}",
                String::from_utf8_lossy(&key)
            )
        };
        match (was, now) {
            (Some((a, _)), None) if !released(a) => self
                .hooks
                .violation(format!("lock lost without a release: {}", desc())),
            (_, Some((b, ci))) => {
                let ok = match was {
                    // a free lock is taken by the TRY_LOCK of the new holder
                    None => biz == Some(BizType::TryLock) && operator == Some(b) && ci == index,
                    // a held lock passes to a waiter when its holder lets go
                    Some((a, _)) => {
                        released(a) && before.iter().any(|&(o, c, _)| o == b && c == ci)
                    }
                };
                if !ok {
                    self.hooks
                        .violation(format!("lock granted wrongly: {}", desc()));
                }
                // the fencing token: the grant's index, the new holder's TTL index (or
                // a later one: a replica that installed a snapshot read after a later
                // lease refresh carries that TTL, and its replay of the grant leaves
                // it, as in the reference; `KvTree::state_digest`)
                let token = after[0].2.map_or(0, |t| t.raft_index);
                if token < index || index <= self.last_grant {
                    self.hooks.violation(format!(
                        "lock grant at {index}: token {token} (last grant {}) is not the grant's index: {}",
                        self.last_grant,
                        desc()
                    ));
                }
                if token > index {
                    self.records
                        .ahead_tokens
                        .set(self.records.ahead_tokens.get() + 1);
                }
                self.last_grant = index;
                if first {
                    let mut s = self.stats.borrow_mut();
                    s.lock_grants += 1;
                    s.lock_handovers += u64::from(was.is_some());
                }
            }
            _ => {}
        }
    }

    /// Whether the harness's client answer `code` of a `biz` entry is one DtKV gives.
    fn client_result(&self, index: u64, biz: Option<BizType>, code: KvCode) -> bool {
        use KvCode::*;
        let r = match (biz, code) {
            (Some(BizType::Put), Success | SuccessOverwrite) => Some(true),
            (Some(BizType::Cas), Success) => Some(true),
            (Some(BizType::Cas), CasMismatch) => Some(false),
            (Some(BizType::Remove), Success) => Some(true),
            (Some(BizType::Remove), NotFound) => Some(false),
            _ => None,
        };
        r.unwrap_or_else(|| {
            self.hooks.violation(format!(
                "entry {index}: {biz:?} answered {code:?} on a client key"
            ));
            false
        })
    }
}

impl StateMachine for DtKvSimSm {
    type Output = bool;

    fn start(&mut self) -> Result<(), SmError> {
        self.inner.start()
    }

    fn exec(&mut self, e: &ExecEntry<'_>) -> Exec<bool> {
        self.hooks.applying(e.index, e.term, e.body);
        // counters count an entry once, on the first node that applies it
        let first = e.index > self.records.top.get();
        if first {
            self.records.top.set(e.index);
        }
        let req = KvReq::decode(e.body).ok();
        let before = self.lock_entries();
        let out = match self.inner.exec(e) {
            Exec::Done(r) => r,
            Exec::Pending(_) => {
                self.hooks.violation("DtKV answered an entry later".into());
                return Exec::Done(Err(SmError::Failed("pending".into())));
            }
        };
        let after = self.lock_entries();
        self.check_lock(e, req.as_ref(), (&before, &after), first);
        let digest = self.group.lock().tree().state_digest();
        self.check_ttls(e.index, first, "applied state");
        self.hooks
            .state_at(e.index, digest, true, "applied state (digest)");
        let biz = BizType::from_code(e.biz_type);
        match out {
            Ok(o) => {
                let code = o.biz_code();
                if first && biz == Some(BizType::Expire) && code == KvCode::Success {
                    self.stats.borrow_mut().expired += 1;
                }
                // the harness's clients work on keys k0, k1, ...
                let client_key = req.as_ref().is_some_and(|r| r.key.first() == Some(&b'k'));
                let result = if client_key {
                    self.client_result(e.index, biz, code)
                } else {
                    code == KvCode::Success
                };
                Exec::Done(Ok(result))
            }
            Err(err) => {
                self.hooks
                    .violation(format!("entry {} failed in DtKV: {err}", e.index));
                Exec::Done(Err(err))
            }
        }
    }

    fn take_snapshot(&mut self, info: &SnapshotInfo) -> SmFuture<'static, Box<dyn Snapshot>> {
        let digest = self.group.lock().tree().state_digest();
        self.hooks
            .state_at(info.last_included_index, digest, false, "snapshot taken");
        self.check_ttls(info.last_included_index, false, "snapshot taken");
        self.inner.take_snapshot(info)
    }

    fn install_snapshot(&mut self, chunk: SnapshotChunk<'_>) -> SmFuture<'static, ()> {
        if chunk.offset == 0 {
            self.hooks.installing(true, 0);
        }
        let (done, index) = (chunk.done, chunk.info.last_included_index);
        let f = self.inner.install_snapshot(chunk);
        let hooks = self.hooks.clone();
        let group = self.group.clone();
        let records = self.records.clone();
        Box::pin(async move {
            f.await?;
            if done {
                hooks.installing(false, index);
                let digest = group.lock().tree().state_digest();
                hooks.state_at(index, digest, false, "snapshot installed");
                let ttls = group.lock().tree().ttl_infos();
                check_ttls(&hooks, &records, index, ttls, false, "snapshot installed");
            }
            Ok(())
        })
    }

    fn stop(&mut self) {
        self.inner.stop()
    }
}

/// Runs one seed of the DtKV simulation (dt-raft's harness with [`DtKvApp`]) with
/// `bug` switched on for the run. Deterministic: the same seed and configuration give
/// the same history.
///
/// ```
/// use std::time::Duration;
/// use dt_raft::sim::cluster::{Faults, SimConfig};
///
/// let cfg = SimConfig {
///     duration: Duration::from_secs(2),
///     faults: Faults::default(),
///     ..SimConfig::default()
/// };
/// let r = dt_server::sim::run_dtkv_seed(&cfg, 1, None);
/// assert!(r.violations.is_empty(), "{:?}", r.violations);
/// assert!(r.ok > 10);
/// ```
pub fn run_dtkv_seed(
    cfg: &dt_raft::sim::cluster::SimConfig,
    seed: u64,
    bug: Option<DtKvBug>,
) -> dt_raft::sim::cluster::SeedReport {
    bugs::set_active(bug);
    let r = dt_raft::sim::cluster::run_seed_with(cfg, seed, Rc::new(DtKvApp::new()));
    bugs::set_active(None);
    r
}
