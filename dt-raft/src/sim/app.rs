//! The application the simulated nodes run: the extension point that lets the
//! whole-cluster simulation ([`super::cluster`]) drive another state machine than its
//! own KV ([`KvApp`], the default), e.g. DtKV's real `StateMachine` binding.
//!
//! An application is plain functions over a few handles:
//!
//! * [`SimApp::new_node`] builds the state machine of one node incarnation (any
//!   [`StateMachine`] whose output the application maps to the `bool` result of the
//!   harness's put / cas / remove) and an [`AppNode`] the harness reads from (lease
//!   reads, the final state digest); the state machine reports what it does through
//!   its [`SmHooks`] (entries applied, the state digest at an index, violations);
//! * [`SimApp::write_input`] turns a client [`Command`] into a log entry;
//! * optional: [`SimApp::node_started`] (per-node daemons on the node's fiber group),
//!   [`SimApp::spawn_workload`] (more client fibers, outside the linearizability
//!   history), [`SimApp::final_checks`] and [`SimApp::stats`].
//!
//! The harness checks with the digests: the first node that applies index `i`
//! records the digest of its state after `i`; every other node applying `i`, every
//! snapshot taken or installed at `i` and every node's final state must match the
//! digest recorded at the greatest index `≤ i` (a new state machine's state is the
//! state at index 0).

use std::cell::{Cell, RefCell};
use std::hash::{Hash, Hasher};
use std::rc::{Rc, Weak};

use bytes::Bytes;
use dt_fiber::FiberGroup;

use super::drive::{vnow, Shared};
use super::history::{Key, Value};
use super::kv::{Command, Kv};
use crate::core::{Index, NodeId, Term};
use crate::driver::{GroupStatus, RaftGroup};
use crate::sm::{
    BytesSnapshot, Exec, ExecEntry, RaftInput, SmError, SmFuture, Snapshot, SnapshotChunk,
    SnapshotInfo, StateMachine,
};

/// The application of a simulation run (one value per run; see the module docs).
pub trait SimApp {
    /// The state machine of a new incarnation of node `node` (empty: the driver
    /// installs the saved snapshot and replays the log), and its reader.
    fn new_node(
        &self,
        node: NodeId,
        hooks: SmHooks,
    ) -> (Box<dyn StateMachine<Output = bool>>, Rc<dyn AppNode>);

    /// The log entry of a client write (`op_id` is unique per operation).
    fn write_input(&self, cmd: &Command, op_id: u64, process: u64) -> RaftInput;

    /// Node `node`'s group runs on `fg` (per-node daemons go there; they end with it).
    fn node_started(
        &self,
        node: NodeId,
        app: &Rc<dyn AppNode>,
        raft: &RaftGroup<bool>,
        fg: &FiberGroup,
        cluster: &ClusterView,
    ) {
        let _ = (node, app, raft, fg, cluster);
    }

    /// More client fibers on `fg` (not part of the linearizability history); `seed`
    /// is drawn apart from the harness's own randomness.
    fn spawn_workload(&self, cluster: ClusterView, fg: &FiberGroup, seed: u64) {
        let _ = (cluster, fg, seed);
    }

    /// Checks after the cluster converged at the end of the run.
    fn final_checks(&self, cluster: &ClusterView) {
        let _ = cluster;
    }

    /// Counters for people, printed by the examples.
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// The harness's view of one node's application state.
pub trait AppNode {
    /// `key`'s value in the state now (after a lease read); `Err` when the state
    /// cannot serve reads now (the read then fails: it had no effect).
    fn get(&self, key: Key) -> Result<Option<Value>, String>;

    /// The digest of the state now (the final check compares it with the digest
    /// recorded at the index the state is at).
    fn digest(&self) -> u64;
}

/// What a node's state machine tells the harness.
pub struct SmHooks {
    pub(crate) id: NodeId,
    pub(crate) sh: Weak<Shared>,
    pub(crate) installing: Rc<Cell<bool>>,
    pub(crate) at: Rc<Cell<Index>>,
}

impl SmHooks {
    /// The node.
    pub fn node(&self) -> NodeId {
        self.id
    }

    /// A committed entry is being executed: the one-entry-per-index check; the state
    /// is at `index` from now on.
    pub fn applying(&self, index: Index, term: Term, body: &Bytes) {
        if let Some(sh) = self.sh.upgrade() {
            sh.on_apply(self.id, index, term, body);
        }
        self.at.set(index);
    }

    /// The state at `index` has `digest`: recorded by the first node that applies
    /// `index` (`applied`), else compared with the digest recorded at the greatest
    /// index `≤ index`; `what` names the check in a violation.
    pub fn state_at(&self, index: Index, digest: u64, applied: bool, what: &str) {
        if let Some(sh) = self.sh.upgrade() {
            sh.check_digest(self.id, index, digest, applied, what);
        }
    }

    /// An install (from the leader or a saved snapshot) starts or ends; when it ends
    /// the state is at `index`.
    pub fn installing(&self, on: bool, index: Index) {
        self.installing.set(on);
        if !on {
            self.at.set(index);
        }
    }

    /// Records an invariant violation.
    pub fn violation(&self, what: String) {
        if let Some(sh) = self.sh.upgrade() {
            sh.violation(format!("node {}: {what}", self.id));
        }
    }

    /// Virtual nanoseconds now (the simulation's clock, no node's drift).
    pub fn now_nanos(&self) -> i64 {
        vnow()
    }
}

/// The cluster as an application's fibers and checks see it.
#[derive(Clone)]
pub struct ClusterView {
    pub(crate) sh: Weak<Shared>,
}

impl ClusterView {
    /// Every node of the run.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.sh.upgrade().map_or_else(Vec::new, |sh| sh.all_ids())
    }

    /// Node `id`'s group while it runs.
    pub fn raft(&self, id: NodeId) -> Option<RaftGroup<bool>> {
        self.sh.upgrade()?.up(id).map(|u| u.raft.clone())
    }

    /// Node `id`'s application state while it runs.
    pub fn app(&self, id: NodeId) -> Option<Rc<dyn AppNode>> {
        self.sh.upgrade()?.up(id).map(|u| u.app.clone())
    }

    /// Node `id`'s status while it runs.
    pub fn status(&self, id: NodeId) -> Option<std::sync::Arc<GroupStatus>> {
        self.raft(id).map(|r| r.status())
    }

    /// The live node that believes it leads in the highest term.
    pub fn leader(&self) -> Option<NodeId> {
        self.sh.upgrade()?.leader().map(|u| u.raft.node_id())
    }

    /// Whether node `id` is installing a snapshot (its state is not readable).
    pub fn installing(&self, id: NodeId) -> bool {
        self.sh.upgrade().is_some_and(|sh| {
            sh.slot(id).disk.installing() || sh.up(id).is_some_and(|u| u.installing.get())
        })
    }

    /// Records an invariant violation.
    pub fn violation(&self, what: String) {
        if let Some(sh) = self.sh.upgrade() {
            sh.violation(what);
        }
    }

    /// The workload phase is over (the end: faults healed, convergence).
    pub fn workload_done(&self) -> bool {
        self.sh.upgrade().is_none_or(|sh| sh.clients_done.get())
    }

    /// The run is over: fibers should end.
    pub fn finished(&self) -> bool {
        self.sh.upgrade().is_none_or(|sh| sh.finished.get())
    }

    /// Virtual nanoseconds now.
    pub fn now_nanos(&self) -> i64 {
        vnow()
    }
}

/// A 64-bit digest of bytes (std's SipHash with its fixed keys: the same on every run).
pub fn digest_bytes(b: &[u8]) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    b.hash(&mut h);
    h.finish()
}

// ------------------------------------------------------------------------------
// the default application: the simulation's own KV

/// The simulation's own KV ([`Kv`], [`Command`]): the default application.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvApp;

impl SimApp for KvApp {
    fn new_node(
        &self,
        _node: NodeId,
        hooks: SmHooks,
    ) -> (Box<dyn StateMachine<Output = bool>>, Rc<dyn AppNode>) {
        let kv = Rc::new(RefCell::new(Kv::default()));
        let sm = KvSm {
            kv: kv.clone(),
            hooks,
            install_buf: Vec::new(),
        };
        (Box::new(sm), Rc::new(KvNode(kv)))
    }

    fn write_input(&self, cmd: &Command, op_id: u64, _process: u64) -> RaftInput {
        RaftInput::new(0, cmd.encode(op_id))
    }
}

struct KvNode(Rc<RefCell<Kv>>);

impl AppNode for KvNode {
    fn get(&self, key: Key) -> Result<Option<Value>, String> {
        Ok(self.0.borrow().get(key))
    }

    fn digest(&self) -> u64 {
        digest_bytes(&self.0.borrow().encode())
    }
}

/// The KV state machine as a real [`StateMachine`]: executes put / cas / remove
/// entries on the node's [`Kv`] (shared with the harness for lease reads), takes and
/// installs snapshots ([`Kv::encode`]), and reports every applied entry, snapshot
/// taken and snapshot installed to the checker.
pub struct KvSm {
    kv: Rc<RefCell<Kv>>,
    hooks: SmHooks,
    /// Bytes of the snapshot being installed.
    install_buf: Vec<u8>,
}

impl StateMachine for KvSm {
    type Output = bool;

    fn exec(&mut self, e: &ExecEntry<'_>) -> Exec<bool> {
        self.hooks.applying(e.index, e.term, e.body);
        let r = match Command::decode(e.body) {
            Ok((cmd, _)) => self.kv.borrow_mut().apply(&cmd),
            Err(b) => {
                self.hooks.violation(format!("entry {}: {}", e.index, b.0));
                false
            }
        };
        let d = digest_bytes(&self.kv.borrow().encode());
        self.hooks.state_at(e.index, d, true, "applied state");
        Exec::Done(Ok(r))
    }

    fn take_snapshot(&mut self, info: &SnapshotInfo) -> SmFuture<'static, Box<dyn Snapshot>> {
        let bytes = self.kv.borrow().encode();
        self.hooks.state_at(
            info.last_included_index,
            digest_bytes(&bytes),
            false,
            "snapshot taken",
        );
        let snap: Box<dyn Snapshot> = Box::new(BytesSnapshot::new(info.clone(), bytes));
        Box::pin(async move { Ok(snap) })
    }

    fn install_snapshot(&mut self, chunk: SnapshotChunk<'_>) -> SmFuture<'static, ()> {
        let r = self.install_chunk(chunk);
        Box::pin(async move { r })
    }
}

impl KvSm {
    fn install_chunk(&mut self, chunk: SnapshotChunk<'_>) -> Result<(), SmError> {
        if chunk.offset == 0 {
            self.install_buf.clear();
            self.hooks.installing.set(true);
        }
        if chunk.offset != self.install_buf.len() as u64 {
            return Err(SmError::Failed(format!(
                "snapshot chunk at offset {}, expected {}",
                chunk.offset,
                self.install_buf.len()
            )));
        }
        self.install_buf.extend_from_slice(chunk.data);
        if !chunk.done {
            return Ok(());
        }
        let kv = Kv::decode(&self.install_buf).map_err(|e| SmError::Failed(e.0.to_string()))?;
        self.install_buf = Vec::new();
        let index = chunk.info.last_included_index;
        self.hooks.installing(false, index);
        self.hooks.state_at(
            index,
            digest_bytes(&kv.encode()),
            false,
            "snapshot installed",
        );
        *self.kv.borrow_mut() = kv;
        Ok(())
    }
}

/// A boxed state machine as a [`StateMachine`] (the driver takes a sized one).
pub(crate) struct DynSm(pub(crate) Box<dyn StateMachine<Output = bool>>);

impl StateMachine for DynSm {
    type Output = bool;

    fn start(&mut self) -> Result<(), SmError> {
        self.0.start()
    }

    fn exec(&mut self, entry: &ExecEntry<'_>) -> Exec<bool> {
        self.0.exec(entry)
    }

    fn take_snapshot(&mut self, info: &SnapshotInfo) -> SmFuture<'static, Box<dyn Snapshot>> {
        self.0.take_snapshot(info)
    }

    fn install_snapshot(&mut self, chunk: SnapshotChunk<'_>) -> SmFuture<'static, ()> {
        self.0.install_snapshot(chunk)
    }

    fn stop(&mut self) {
        self.0.stop()
    }
}
