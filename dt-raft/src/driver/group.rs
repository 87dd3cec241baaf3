//! [`RaftGroup`]: the public, thread-safe handle of one running group.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dt_common::{PerfHook, PerfType};
use dt_fiber::{ChannelSender, FiberGroup, GroupHandle, Published};

use super::lease_share::LeaseShare;
use super::oneshot::{oneshot, OneshotReceiver};
use super::runner;
use super::transport::{GroupInbox, RaftTransport};
use super::{RaftGroupConfig, SnapshotManager};
use crate::core::{Action, ConfigApplied, Index, MemberSets, NodeId, Role, Term};
use crate::raft_log::RaftLog;
use crate::sm::{
    RaftError, RaftFactory, RaftHandler, RaftInput, RaftResponder, RaftResult, StateMachine,
    SubmitCallback,
};

/// A state snapshot of a group, as published by its thread or answered by
/// [`RaftGroup::query_status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group id.
    pub group_id: i32,
    /// This node.
    pub node_id: NodeId,
    /// The role.
    pub role: Role,
    /// currentTerm.
    pub term: Term,
    /// The known leader.
    pub leader: Option<NodeId>,
    /// commitIndex.
    pub commit_index: Index,
    /// lastApplied.
    pub last_applied: Index,
    /// lastLogIndex.
    pub last_log_index: Index,
    /// The first entry of the current term (leader) or of the first append accepted in
    /// it (follower) is applied (raft.md §8.5).
    pub group_ready: bool,
    /// The replay after restart reached the commit index loaded at init (§8.4).
    pub init_finished: bool,
    /// Why init failed, if it did.
    pub init_failed: Option<String>,
    /// The member sets.
    pub members: MemberSets,
    /// Nodes the member sets' replicate list does not name that the group replicates
    /// to too (when it leads) and whose readiness the raft ping must check: the nodes
    /// of configurations its log holds but has not applied
    /// ([`RaftCore::replication_targets`](crate::core::RaftCore::replication_targets)).
    pub log_config_nodes: Vec<NodeId>,
    /// The node waits for (or runs) an install with its log dropped and grants no
    /// votes until it finishes (raft.md §12.3,
    /// [`RaftCore::refuses_votes_for_install`](crate::core::RaftCore::refuses_votes_for_install)).
    pub refuses_votes_for_install: bool,
}

impl GroupStatus {
    pub(crate) fn initial(cfg: &RaftGroupConfig) -> Self {
        GroupStatus {
            group_id: cfg.group_id,
            node_id: cfg.node_id,
            role: Role::None,
            term: 0,
            leader: None,
            commit_index: 0,
            last_applied: 0,
            last_log_index: 0,
            group_ready: false,
            init_finished: false,
            init_failed: None,
            members: MemberSets::new(cfg.members.clone(), cfg.observers.clone()),
            log_config_nodes: Vec::new(),
            refuses_votes_for_install: false,
        }
    }

    /// The RAFT_QUERY_STATUS answer this published status gives (raft.md §13): the
    /// fields a published status holds; the apply timing and lastConfigChangeIndex,
    /// which only the core knows, stay 0.
    pub fn query_status_resp(&self) -> crate::rpc::QueryStatusResp {
        let ids = |v: &[NodeId]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
        let mut r = crate::rpc::QueryStatusResp {
            group_id: self.group_id,
            node_id: self.node_id as i32,
            term: self.term as i32,
            leader_id: self.leader.unwrap_or(0) as i32,
            commit_index: self.commit_index as i64,
            last_applied: self.last_applied as i64,
            last_log_index: self.last_log_index as i64,
            members: ids(&self.members.members),
            observers: ids(&self.members.observers),
            prepared_members: ids(&self.members.prepared_members),
            prepared_observers: ids(&self.members.prepared_observers),
            ..Default::default()
        };
        r.set_flag(
            self.init_finished,
            self.init_failed.is_some(),
            self.group_ready,
            false,
        );
        r
    }
}

/// A one-shot reply for a request handed to the group's thread.
pub(crate) type Reply<T> = Box<dyn FnOnce(Result<T, RaftError>) + Send>;

/// A membership change asked of the leader (raft.md §11.3), see
/// [`RaftGroup::config_change`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    /// RAFT_ADMIN_PREPARE_CHANGE: enter the joint configuration. `members` and
    /// `observers` are the current sets as the caller expects them (they must match);
    /// the prepared sets are the new configuration.
    Prepare {
        /// The current members, as expected.
        members: Vec<NodeId>,
        /// The current observers, as expected.
        observers: Vec<NodeId>,
        /// The new members (non-empty).
        prepared_members: Vec<NodeId>,
        /// The new observers.
        prepared_observers: Vec<NodeId>,
    },
    /// RAFT_ADMIN_COMMIT_CHANGE: the prepared sets become the current ones;
    /// `prepare_index` must be the group's lastConfigChangeIndex.
    Commit {
        /// The index the prepare answered (of the latest prepare).
        prepare_index: Index,
    },
    /// RAFT_ADMIN_ABORT_CHANGE: drop the prepared sets (a no-op entry when none).
    Abort,
}

/// Called on the group's thread after a configuration entry changed the member sets
/// (in log order, also during replay): the new sets and what the apply did (e.g.
/// [`ConfigApplied::persist_config`] after a COMMIT). Must not block.
pub type ConfigHook = Rc<dyn Fn(&MemberSets, &ConfigApplied)>;

/// Tells whether a node id is known (the server's node table); a prepare naming an
/// unknown id is refused with "node not exist".
pub type NodeExists = Rc<dyn Fn(NodeId) -> bool>;

/// A request from a [`RaftGroup`] handle to its group's thread.
pub(crate) enum Request<O> {
    /// An input, its callback, and when it was submitted (monotonic nanoseconds, 0
    /// when the perf hook does not time the request queue).
    Submit(RaftInput, SubmitCallback<O>, i64),
    LeaseRead(Option<Duration>, Reply<()>),
    Transfer(NodeId, Duration, Reply<()>),
    Status(Reply<GroupStatus>),
    Config(ConfigChange, Reply<Index>),
}

impl<O> Request<O> {
    pub(crate) fn fail(self, e: RaftError) {
        match self {
            Request::Submit(_, cb, _) => cb.complete(Err(e)),
            Request::LeaseRead(_, r) => r(Err(e)),
            Request::Transfer(_, _, r) => r(Err(e)),
            Request::Status(r) => r(Err(e)),
            Request::Config(_, r) => r(Err(e)),
        }
    }
}

/// A hook that sees every action the group's core produced, with the core's time in
/// ms and this node's id, before it is executed (tests compare traces of runs).
pub type ActionTrace = Rc<dyn Fn(u64, NodeId, &Action)>;

/// Options of [`RaftGroup::start_on_with`].
#[derive(Clone, Default)]
pub struct DriverOptions {
    /// See [`ActionTrace`].
    pub trace: Option<ActionTrace>,
    /// See [`ConfigHook`].
    pub config_hook: Option<ConfigHook>,
    /// See [`NodeExists`]; without it every id is accepted.
    pub node_exists: Option<NodeExists>,
    /// See [`NodeClock`]; without it the core reads the dispatcher's clock.
    pub clock: Option<NodeClock>,
}

/// Maps the dispatcher's monotonic nanoseconds to the clock this group's core reads
/// (elections, heartbeats, leases), for simulations whose nodes' clocks drift apart.
/// It must not go backwards.
pub type NodeClock = Rc<dyn Fn(i64) -> i64>;

impl fmt::Debug for DriverOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriverOptions")
            .field("trace", &self.trace.is_some())
            .field("config_hook", &self.config_hook.is_some())
            .field("node_exists", &self.node_exists.is_some())
            .field("clock", &self.clock.is_some())
            .finish()
    }
}

pub(crate) struct Shared<O> {
    pub(crate) group_id: i32,
    pub(crate) node_id: NodeId,
    pub(crate) handle: GroupHandle,
    pub(crate) requests: ChannelSender<Request<O>>,
    pub(crate) inbox: GroupInbox,
    pub(crate) status: Published<GroupStatus>,
    pub(crate) lease: Arc<LeaseShare>,
    /// The group runs on a simulation's virtual clock (its lease is not comparable
    /// with [`dt_common::mono_nanos`]).
    pub(crate) virtual_clock: bool,
    /// The group's perf hook (`RaftGroupConfig::perf`).
    pub(crate) perf: PerfHook,
}

/// The public handle of one Raft group on this node: `Send + Sync + Clone`, usable from
/// any thread (raft.md §16.5).
///
/// Every operation is handed to the group's dispatcher thread. Each has a callback form
/// (the callback runs on the group's thread and must not block) or a std-future form
/// ([`RaftFuture`], awaitable from any executor, or [`RaftFuture::wait`] on a plain
/// thread).
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use dt_fiber::Simulation;
/// use dt_raft::driver::local::{CounterSm, LocalNetwork, MemLogFactory};
/// use dt_raft::driver::{RaftGroup, RaftGroupConfig};
/// use dt_raft::sm::RaftInput;
///
/// // A one-node group on a simulated (virtual-time) dispatcher, in-memory log.
/// let mut sim = Simulation::new(7);
/// let g = sim.new_group("group-1");
/// let net = LocalNetwork::new();
/// let mut cfg = RaftGroupConfig::new(1, 1, vec![1]);
/// cfg.elect_timeout_ms = 1000;
/// cfg.heartbeat_interval_ms = 300;
/// let factory = MemLogFactory::new(CounterSm::new);
/// let group = RaftGroup::start_on(&g, factory, cfg, net.transport(1));
/// net.register(1, &group);
/// assert!(sim.run_until(|| group.status().group_ready, Duration::from_secs(10)));
///
/// let mut fut = Box::pin(group.submit_async(RaftInput::new(0, &b"5"[..])));
/// let mut done = None;
/// sim.run_until(|| { done = fut.as_mut().try_take(); done.is_some() }, Duration::from_secs(10));
/// let (index, total) = done.unwrap().unwrap();
/// assert_eq!(total, 5); // the counter's new value
/// assert!(index >= 2);  // after the leader's first (heartbeat) entry
/// ```
pub struct RaftGroup<O: Send + 'static> {
    inner: Arc<Shared<O>>,
}

impl<O: Send + 'static> Clone for RaftGroup<O> {
    fn clone(&self) -> Self {
        RaftGroup {
            inner: self.inner.clone(),
        }
    }
}

impl<O: Send + 'static> fmt::Debug for RaftGroup<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftGroup")
            .field("group_id", &self.inner.group_id)
            .field("node_id", &self.inner.node_id)
            .finish()
    }
}

impl<O: Send + 'static> RaftGroup<O> {
    /// Starts the group's driver in fiber group `group`, on its dispatcher thread (a
    /// real [`Dispatcher`](dt_fiber::Dispatcher)'s thread, or a
    /// [`Simulation`](dt_fiber::Simulation)'s). The state machine and the log are built
    /// by `factory` there; init (log recovery, replay of committed entries) runs in the
    /// group's fibers: watch [`RaftGroup::status`].
    pub fn start_on<F>(
        group: &FiberGroup,
        factory: Arc<F>,
        cfg: RaftGroupConfig,
        transport: Rc<dyn RaftTransport>,
    ) -> RaftGroup<O>
    where
        F: RaftFactory,
        F::Sm: StateMachine<Output = O>,
    {
        Self::start_on_with(group, factory, cfg, transport, DriverOptions::default())
    }

    /// [`RaftGroup::start_on`] with options.
    pub fn start_on_with<F>(
        group: &FiberGroup,
        factory: Arc<F>,
        cfg: RaftGroupConfig,
        transport: Rc<dyn RaftTransport>,
        opts: DriverOptions,
    ) -> RaftGroup<O>
    where
        F: RaftFactory,
        F::Sm: StateMachine<Output = O>,
    {
        RaftGroup {
            inner: runner::start(group, factory, cfg, transport, opts),
        }
    }

    /// Starts the group's driver in fiber group `group` with a log and a state machine
    /// already built on this (the dispatcher's) thread, for logs and state machines that
    /// are not `Send` (a simulation's disk, shared with the test through an `Rc`).
    /// Otherwise as [`RaftGroup::start_on_with`].
    pub fn start_with_parts<S>(
        group: &FiberGroup,
        log: Box<dyn RaftLog>,
        sm: S,
        cfg: RaftGroupConfig,
        transport: Rc<dyn RaftTransport>,
        opts: DriverOptions,
    ) -> RaftGroup<O>
    where
        S: StateMachine<Output = O>,
    {
        Self::start_with_parts_and_snapshots(group, log, sm, None, cfg, transport, opts)
    }

    /// [`RaftGroup::start_with_parts`] with a [`SnapshotManager`] (for example one over
    /// a [`SnapshotStore`](super::SnapshotStore) of a simulation's disk): the group
    /// recovers from its newest snapshot, saves one every `save_snapshot_seconds` and
    /// after an install, and deletes the log after a save
    /// (`delete_logs_after_take_snapshot`).
    pub fn start_with_parts_and_snapshots<S>(
        group: &FiberGroup,
        log: Box<dyn RaftLog>,
        sm: S,
        snapshots: Option<SnapshotManager>,
        cfg: RaftGroupConfig,
        transport: Rc<dyn RaftTransport>,
        opts: DriverOptions,
    ) -> RaftGroup<O>
    where
        S: StateMachine<Output = O>,
    {
        RaftGroup {
            inner: runner::start_built(
                group,
                move |_| Ok((log, sm, snapshots)),
                cfg,
                transport,
                opts,
            ),
        }
    }

    /// Starts the group from another thread: builds it on `handle`'s dispatcher thread
    /// (the transport too, with `transport`) and waits for the handle. Never call it on
    /// a dispatcher thread (it blocks); use [`RaftGroup::start_on`] there.
    pub fn start<F, T>(
        handle: &GroupHandle,
        factory: Arc<F>,
        cfg: RaftGroupConfig,
        transport: T,
    ) -> Result<RaftGroup<O>, RaftError>
    where
        F: RaftFactory,
        F::Sm: StateMachine<Output = O>,
        T: FnOnce() -> Rc<dyn RaftTransport> + Send + 'static,
    {
        Self::start_with(handle, factory, cfg, move || {
            (transport(), DriverOptions::default())
        })
    }

    /// [`RaftGroup::start`] with options: `setup` runs on the dispatcher thread and
    /// gives the transport and the [`DriverOptions`].
    pub fn start_with<F, T>(
        handle: &GroupHandle,
        factory: Arc<F>,
        cfg: RaftGroupConfig,
        setup: T,
    ) -> Result<RaftGroup<O>, RaftError>
    where
        F: RaftFactory,
        F::Sm: StateMachine<Output = O>,
        T: FnOnce() -> (Rc<dyn RaftTransport>, DriverOptions) + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        handle
            .execute(move |g| {
                let (transport, opts) = setup();
                let r = RaftGroup::start_on_with(g, factory, cfg, transport, opts);
                let _ = tx.send(r);
            })
            .map_err(|e| RaftError::Rejected(e.to_string()))?;
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| RaftError::Rejected("the dispatcher did not start the group".into()))
    }

    /// The group id.
    pub fn group_id(&self) -> i32 {
        self.inner.group_id
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// Where the network delivers this group's inbound requests.
    pub fn inbox(&self) -> &GroupInbox {
        &self.inner.inbox
    }

    /// The fiber group the driver runs in.
    pub fn fiber_group(&self) -> &GroupHandle {
        &self.inner.handle
    }

    /// The latest published status (updated on role, term, leader, readiness and init
    /// changes; commit and apply positions may lag, use [`RaftGroup::query_status`]
    /// for exact values).
    pub fn status(&self) -> Arc<GroupStatus> {
        self.inner.status.load()
    }

    /// Whether this node was the leader at the last published change (no lease check:
    /// use [`RaftGroup::lease_read`] before serving a read).
    pub fn is_leader(&self) -> bool {
        self.status().role == Role::Leader
    }

    fn send(&self, r: Request<O>) {
        if let Err(rej) = self.inner.requests.offer(r) {
            rej.item.fail(RaftError::Stopped);
        }
    }

    /// Submits a linearizable write (or, with `read_only`, a read through the log).
    /// `callback` gets the entry's index and the state machine's output once the entry
    /// is committed and executed, or an error (see [`RaftCallback`](crate::sm::RaftCallback)).
    pub fn submit(&self, input: RaftInput, callback: impl FnOnce(RaftResult<O>) + Send + 'static) {
        self.submit_with(input, SubmitCallback::Boxed(Box::new(callback)))
    }

    /// Queues a write for the group's thread, completed by `cb`.
    fn submit_with(&self, input: RaftInput, cb: SubmitCallback<O>) {
        let t = self
            .inner
            .perf
            .start(PerfType::RaftLeaderRunnerFiberLatency);
        self.send(Request::Submit(input, cb, t))
    }

    /// [`RaftGroup::submit`] completing `handler` with `token` instead of a closure:
    /// `handler.done(token, result)` is called exactly once (see [`RaftHandler`]). The
    /// handler is shared (an `Arc` clone per write), so a caller with one handler for
    /// all its writes submits without a heap allocation per write.
    pub fn submit_to<H: RaftHandler<O> + 'static>(
        &self,
        input: RaftInput,
        handler: &Arc<H>,
        token: u64,
    ) {
        let h: Arc<dyn RaftHandler<O>> = handler.clone();
        self.submit_with(input, SubmitCallback::Handler(h, token))
    }

    /// [`RaftGroup::submit`] for a write that came in as a network request: `responder`
    /// turns the outcome into the answer and sends it with `reply`, the request's
    /// [`Responder`](dt_net::Responder), which travels with the write by value (see
    /// [`RaftResponder`]); `mark` comes back with it (a perf start time, say). Nothing is
    /// allocated per write: what a request processor on a network thread uses for its
    /// writes.
    pub fn submit_respond<H: RaftResponder<O> + 'static>(
        &self,
        input: RaftInput,
        responder: &Arc<H>,
        reply: dt_net::Responder,
        mark: u64,
    ) {
        let h: Arc<dyn RaftResponder<O>> = responder.clone();
        self.submit_with(input, SubmitCallback::Respond(h, reply, mark))
    }

    /// [`RaftGroup::submit`] as a future.
    pub fn submit_async(&self, input: RaftInput) -> RaftFuture<(Index, O)> {
        let (tx, rx) = oneshot();
        self.submit(input, move |r| tx.send(r));
        RaftFuture { rx }
    }

    /// Resolves once a read of the state machine's latest state is linearizable on this
    /// node (the leader's lease holds and the group is ready, raft.md §9); waits for
    /// group ready at most `timeout`. Fails with [`RaftError::NotLeader`] otherwise.
    pub fn lease_read(&self, timeout: Duration) -> RaftFuture<()> {
        let (tx, rx) = oneshot();
        self.send(Request::LeaseRead(
            Some(timeout),
            Box::new(move |r| tx.send(r)),
        ));
        RaftFuture { rx }
    }

    /// Whether a lease read would succeed right now, answered on the calling thread
    /// from the lease the group's thread last published (no round trip): true means a
    /// read of the state machine's current state is linearizable now, as after
    /// [`RaftGroup::lease_read`] resolved Ok. False is no verdict (not the leader, not
    /// ready, lease not renewed yet, a transfer, a simulation's virtual clock): use
    /// [`RaftGroup::lease_read`] then.
    pub fn lease_holds_now(&self) -> bool {
        !self.inner.virtual_clock && self.inner.lease.holds_at(dt_common::mono_nanos())
    }

    /// [`Self::lease_holds_now`] at `local_nanos` of the clock this group's core reads
    /// (the dispatcher's monotonic nanoseconds, mapped by
    /// [`DriverOptions::clock`] when set): for a simulation on virtual time, which
    /// checks the published lease as the IO thread does, with the node's own clock.
    pub fn lease_holds_at(&self, local_nanos: i64) -> bool {
        self.inner.lease.holds_at(local_nanos)
    }

    /// Transfers leadership to `to` (raft.md §10), failing after `timeout`.
    pub fn transfer_leadership(&self, to: NodeId, timeout: Duration) -> RaftFuture<()> {
        let (tx, rx) = oneshot();
        self.send(Request::Transfer(
            to,
            timeout,
            Box::new(move |r| tx.send(r)),
        ));
        RaftFuture { rx }
    }

    /// [`Self::transfer_leadership`] with a callback instead of a future: `callback`
    /// gets the outcome once, on the group's thread (it must not block), when the
    /// transfer succeeded or failed (at the latest after `timeout`).
    pub fn transfer_leadership_cb(
        &self,
        to: NodeId,
        timeout: Duration,
        callback: impl FnOnce(Result<(), RaftError>) + Send + 'static,
    ) {
        self.send(Request::Transfer(to, timeout, Box::new(callback)));
    }

    /// Asks the leader for a membership change (raft.md §11.3); `callback` gets the
    /// index of the entry written (prepare, commit or abort index) once the change
    /// is applied on this node (for a prepare: once the entry after it is applied, so
    /// the prepared members have caught up), or an error: [`RaftError::NotLeader`]
    /// with the leader hint, [`RaftError::ConfigChange`] with the reference's reason.
    /// Held like writes while a leader transfer runs. A repeated prepare with the same
    /// sets succeeds with a new index (commit with that one); a repeated commit before
    /// the first is applied writes a no-op entry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dt_fiber::Simulation;
    /// use dt_raft::driver::local::{CounterSm, LocalNetwork, MemLogFactory};
    /// use dt_raft::driver::{RaftGroup, RaftGroupConfig};
    ///
    /// let mut sim = Simulation::new(3);
    /// let g = sim.new_group("group-1");
    /// let net = LocalNetwork::new();
    /// let mut cfg = RaftGroupConfig::new(1, 1, vec![1]);
    /// cfg.elect_timeout_ms = 1000;
    /// cfg.heartbeat_interval_ms = 300;
    /// let group = RaftGroup::start_on(&g, MemLogFactory::new(CounterSm::new), cfg, net.transport(1));
    /// net.register(1, &group);
    /// assert!(sim.run_until(|| group.status().group_ready, Duration::from_secs(10)));
    ///
    /// // node 1 stays the only member and node 7 becomes an observer
    /// let mut prepare = Box::pin(group.prepare_config_change(vec![1], vec![], vec![1], vec![7]));
    /// let mut index = None;
    /// sim.run_until(|| { index = prepare.as_mut().try_take(); index.is_some() }, Duration::from_secs(10));
    /// let prepare_index = index.unwrap().unwrap();
    /// assert_eq!(group.status().members.prepared_observers, [7]);
    ///
    /// let mut commit = Box::pin(group.commit_change(prepare_index));
    /// let mut done = None;
    /// sim.run_until(|| { done = commit.as_mut().try_take(); done.is_some() }, Duration::from_secs(10));
    /// assert!(done.unwrap().unwrap() > prepare_index);
    /// let sets = group.status().members.clone();
    /// assert_eq!((sets.members, sets.observers), (vec![1], vec![7]));
    /// assert!(sets.prepared_observers.is_empty());
    /// ```
    pub fn config_change(
        &self,
        change: ConfigChange,
        callback: impl FnOnce(Result<Index, RaftError>) + Send + 'static,
    ) {
        self.send(Request::Config(change, Box::new(callback)))
    }

    /// [`RaftGroup::config_change`] with [`ConfigChange::Prepare`], as a future
    /// resolving to the prepare index.
    pub fn prepare_config_change(
        &self,
        members: Vec<NodeId>,
        observers: Vec<NodeId>,
        prepared_members: Vec<NodeId>,
        prepared_observers: Vec<NodeId>,
    ) -> RaftFuture<Index> {
        self.config_change_async(ConfigChange::Prepare {
            members,
            observers,
            prepared_members,
            prepared_observers,
        })
    }

    /// [`RaftGroup::config_change`] with [`ConfigChange::Commit`], as a future
    /// resolving to the commit entry's index.
    pub fn commit_change(&self, prepare_index: Index) -> RaftFuture<Index> {
        self.config_change_async(ConfigChange::Commit { prepare_index })
    }

    /// [`RaftGroup::config_change`] with [`ConfigChange::Abort`], as a future
    /// resolving to the abort (DROP) entry's index.
    pub fn abort_change(&self) -> RaftFuture<Index> {
        self.config_change_async(ConfigChange::Abort)
    }

    fn config_change_async(&self, change: ConfigChange) -> RaftFuture<Index> {
        let (tx, rx) = oneshot();
        self.config_change(change, move |r| tx.send(r));
        RaftFuture { rx }
    }

    /// The exact current status, read on the group's thread.
    pub fn query_status(&self) -> RaftFuture<GroupStatus> {
        let (tx, rx) = oneshot();
        self.send(Request::Status(Box::new(move |r| tx.send(r))));
        RaftFuture { rx }
    }

    /// Asks the group to stop: pending callers fail with [`RaftError::Stopped`], the
    /// log is closed (fsynced), the state machine stopped.
    pub fn shutdown(&self) {
        let _ = self.inner.handle.request_shutdown();
    }

    /// Blocks (not on a dispatcher thread) until the group has stopped.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        self.inner.handle.wait_finished(timeout)
    }
}

/// The std future of a [`RaftGroup`] operation. Resolves to
/// [`RaftError::Stopped`] if the group stopped without answering.
pub struct RaftFuture<T> {
    rx: OneshotReceiver<Result<T, RaftError>>,
}

impl<T> fmt::Debug for RaftFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftFuture")
    }
}

impl<T> RaftFuture<T> {
    /// The result if it has arrived (for polling loops, e.g. in a simulation).
    pub fn try_take(self: Pin<&mut Self>) -> Option<Result<T, RaftError>> {
        self.rx.try_take()
    }

    /// Blocks the calling thread (never a dispatcher thread) for the result, at most
    /// `timeout` ([`RaftError::Timeout`]).
    pub fn wait(self, timeout: Duration) -> Result<T, RaftError> {
        match crate::raft_log::block_on_timeout(self, timeout) {
            Some(r) => r,
            None => Err(RaftError::Timeout),
        }
    }
}

impl<T> Future for RaftFuture<T> {
    type Output = Result<T, RaftError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let rx = Pin::new(&mut self.get_mut().rx);
        rx.poll(cx).map(|r| r.unwrap_or(Err(RaftError::Stopped)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_cross_threads() {
        send_sync::<RaftGroup<i64>>();
        send_sync::<GroupInbox>();
        fn send<T: Send>() {}
        send::<RaftFuture<(Index, i64)>>();
    }
}
