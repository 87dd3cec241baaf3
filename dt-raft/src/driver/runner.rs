//! The fibers of one group and the execution of the core's actions.
//!
//! Ownership: [`Driver`] is shared by the group's fibers through an `Rc`; the core,
//! the tail cache and the bookkeeping sit in `RefCell`s that are borrowed only between
//! awaits. Every input (inbound message, transport answer, IO completion, tick, user
//! request) is fed to the core by the fiber that received it, followed by
//! [`Driver::run_actions`], which executes the produced actions in order. Actions never
//! call back into the core synchronously: work that completes later (log writes,
//! status saves, searches, sends) is queued to a fiber whose completion is a new input.
//!
//! Fibers: `lifecycle` (init, then waits for shutdown and cleans up; the only
//! non-daemon), `inbound`, `requests` (the linear task runner), `ticker`, `writer`
//! (log appends and truncations, in order), `status` (term/vote saves, one at a time),
//! `apply`, and per peer `replicate-N` (builds and sends appends in order) and `ack-N`
//! (awaits their answers in order), `install` (the follower's install steps, in
//! order), `snapshot-save` (periodic and requested snapshot saves), and per install
//! stream `install-send` (the leader's chunks to one peer).
//!
//! Snapshots (raft.md §12, §16): a snapshot is always taken by the apply fiber between
//! entries, once every started execution has completed (leader installs stream such a
//! fresh snapshot, not the saved file). A follower's install pauses the apply fiber,
//! drops the log and the tail cache, feeds the chunks to the state machine, re-creates
//! the log after the snapshot, restarts the apply fiber there and saves a local
//! snapshot. Init recovers the newest saved snapshot into the state machine and
//! replays the log after it; a log that does not continue it waits for an install.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use dt_common::PerfType;
use dt_fiber::{FiberChannel, FiberCondition, FiberGroup, FiberOptions, Published};

use super::group::{ConfigChange, DriverOptions, GroupStatus, Reply, Request, Shared};
use super::lease_share::LeaseShare;
use super::notify::Notify;
use super::snapshot_manager::{SnapshotManager, SnapshotSink, SnapshotSource};
use super::tail::{TailCache, TailEntry};
use super::transport::{
    GroupInbox, Inbound, InboundError, RaftTransport, Responder, RpcError, RpcFuture,
    TransferReply, VoteReply,
};
use super::RaftGroupConfig;
use crate::core::{
    Action, AppendResp, AppendSend, ConfigChangeError, ConfigEntry, Index, InstallStart,
    LeaseError, LocalEntries, MatchSearch, MemberSets, NodeId, RaftCore, ReqId, Role, Term,
    TransferError,
};
use crate::raft_log::{LogFuture, RaftLog};
use crate::rpc;
use crate::sm::{
    Exec, ExecEntry, RaftError, RaftFactory, RaftInput, RaftResult, SmError, SmFuture, Snapshot,
    SnapshotChunk, SnapshotInfo, StateMachine, SubmitCallback,
};
use crate::store::log_item::{total_len, TYPE_HEARTBEAT, TYPE_LOG_READ, TYPE_NORMAL};
use crate::store::{LogItem, StoreError};
use bytes::{Bytes, BytesMut};

/// Entries read from the log per read (apply, replication from disk).
const READ_BATCH: usize = 1024;
/// How many entries ahead of its execution an entry is hinted to the state machine
/// ([`StateMachine::prepare`]): far enough for a few dependent loads from memory to
/// complete while the entries between execute.
const PREPARE_AHEAD: usize = 4;
/// Bytes read from the log per read.
const READ_BYTES: usize = 16 * 1024 * 1024;
/// Bytes read from the log per read of the apply loop, which has two reads' entries
/// in memory at once (it reads one batch ahead): their blocks fit the pool of read
/// buffers (`store::read_pool`), so a replay reuses them.
const APPLY_READ_BYTES: usize = 4 * 1024 * 1024;
/// Applied entries stay in the tail cache at least this long (raft.md §6.3), unless
/// every peer already holds them (then they go at once: a one-node group keeps none).
const TAIL_KEEP_NANOS: i64 = 10_000_000_000;

/// Why the entries of an append could not be read.
enum EntriesError {
    /// They were deleted from the log (after a snapshot): the peer needs an install.
    Gone(String),
    /// Any other failure: replication to the peer restarts later.
    Failed(String),
}

/// A received append kept until its entries are written and it is answered.
struct Received {
    /// The request's term.
    term: Term,
    /// Its entries were handed to the writer (the reply may be deferred).
    written: bool,
    items: Vec<LogItem>,
    reply: Option<Responder<AppendResp>>,
}

/// Executions started ahead of their completion, at most.
const MAX_APPLY_FLIGHT: usize = 1024;

/// The state of one started execution.
enum Outcome<O> {
    /// Nothing to execute (heartbeat, read without caller, configuration entry).
    Noop,
    Done(Result<O, SmError>),
    Pending(crate::sm::SmFuture<'static, O>),
}

struct InFlight<O> {
    index: Index,
    term: Term,
    read_only: bool,
    /// A configuration entry, applied through the core when it is settled (in order).
    config: Option<ConfigEntry>,
    cb: Option<SubmitCallback<O>>,
    out: Outcome<O>,
}

/// An entry on its way to the state machine: item, caller, localCreateNanos.
type ToApply<O> = (LogItem, Option<SubmitCallback<O>>, i64);

/// A submitted input with its caller and deadline (core ms).
type Submitted<O> = (RaftInput, SubmitCallback<O>, Option<u64>);

/// What `propose` decided for one submitted input before moving it.
#[derive(Clone, Copy)]
enum Verdict {
    Accept,
    /// A biz type above 127.
    BizType(u8),
    /// An entry of this many bytes, larger than a log file.
    TooLarge(u64),
    /// Its deadline passed while it was queued.
    Timeout,
    /// The pending tasks and bytes when it came.
    FlowControl(usize, usize),
}

/// A follower-side install step, executed in order by the install fiber.
enum InstallOp {
    Begin {
        req: ReqId,
        index: Index,
        term: Term,
        /// The position the node votes with meanwhile (RaftCore::install_vote).
        vote: Option<(Term, Index)>,
    },
    Data {
        req: ReqId,
    },
    Finish {
        req: ReqId,
        index: Index,
        term: Term,
        next_write_pos: u64,
    },
}

/// A fresh state-machine snapshot asked of the apply fiber.
type SnapshotWant = super::oneshot::OneshotSender<SmFuture<'static, Box<dyn Snapshot>>>;

enum WriteOp {
    /// Remove entries `index..`.
    Truncate(Index),
    Append(Vec<LogItem>),
}

/// An append sent to a peer and not yet answered.
struct SentAppend {
    send: AppendSend,
    answer: RpcFuture<AppendResp>,
    /// When it times out (group-clock nanos).
    deadline: i64,
    /// The `raft_replicate_rpc` perf start (0: not timed) and the entries' bytes.
    perf: (i64, u64),
}

struct PeerLane {
    /// The peer left the group: the lane's fibers end.
    closed: Cell<bool>,
    sends: RefCell<VecDeque<AppendSend>>,
    send_notify: Notify,
    /// Appends sent and not yet answered, in order.
    acks: RefCell<VecDeque<SentAppend>>,
    ack_notify: Notify,
}

/// Ordered maps (not hash maps): what is dropped or retained in bulk is then done in
/// the same order in every process, which keeps a simulated run deterministic.
#[derive(Default)]
struct Book {
    next_req: ReqId,
    votes: BTreeMap<ReqId, (Term, Responder<VoteReply>)>,
    appends: BTreeMap<ReqId, Received>,
    transfers: BTreeMap<ReqId, Responder<TransferReply>>,
    transfer_reply: Option<Reply<()>>,
    /// The data of received install requests, until their step runs.
    install_data: BTreeMap<ReqId, (u64, Bytes)>,
    /// Admin membership changes waiting for their entry to be applied.
    config_waiters: Vec<ConfigWaiter>,
}

/// An admin membership change whose entry is written: answered with `index` once
/// lastApplied reaches `reply_at` (known when the entry is applied).
struct ConfigWaiter {
    index: Index,
    reply_at: Option<Index>,
    reply: Reply<Index>,
}

pub(crate) struct Driver<S: StateMachine> {
    me: Weak<Driver<S>>,
    cfg: RaftGroupConfig,
    group: FiberGroup,
    log: Rc<dyn RaftLog>,
    sm: RefCell<S>,
    transport: Rc<dyn RaftTransport>,
    opts: DriverOptions,
    core: RefCell<Option<RaftCore>>,
    tail: RefCell<TailCache<S::Output>>,
    book: RefCell<Book>,
    acts: RefCell<Vec<Action>>,
    cbs: RefCell<Vec<SubmitCallback<S::Output>>>,
    status: Published<GroupStatus>,
    /// The lease published for [`super::RaftGroup::lease_holds_now`] (and, on a
    /// virtual clock, [`super::RaftGroup::lease_holds_at`]).
    lease: Arc<LeaseShare>,

    tick_notify: Notify,
    planned_tick: Cell<u64>,

    writes: RefCell<VecDeque<WriteOp>>,
    write_notify: Notify,
    /// Signalled when the writer has handed every queued write to the log (or ended).
    writes_drained: FiberCondition,

    status_want: Cell<Option<(Term, NodeId)>>,
    status_notify: Notify,

    apply_commit: Cell<Index>,
    apply_notify: Notify,
    /// Commit index loaded at init: init finishes once applied up to it.
    init_commit: Cell<Index>,
    init_finished: Cell<bool>,
    /// The replay at init: its first index and when it started (group clock), until it
    /// is reported done.
    init_replay: Cell<Option<(Index, i64)>>,
    ready: FiberCondition,

    peers: RefCell<BTreeMap<NodeId, Rc<PeerLane>>>,

    /// Follower install steps, in order.
    install_ops: RefCell<VecDeque<InstallOp>>,
    install_notify: Notify,
    /// The snapshot being installed (follower).
    install_info: RefCell<Option<SnapshotInfo>>,
    /// Its data streams into this sink as it arrives, to be this node's snapshot
    /// before the log restarts after it (see [`Driver::install_finish`]).
    install_sink: RefCell<Option<SnapshotSink>>,
    /// The apply fiber is asked to stop executing (install under way).
    apply_pause: Cell<bool>,
    /// The apply fiber has nothing in flight and waits while paused.
    apply_idle: Cell<bool>,
    apply_idle_notify: Notify,
    /// Where the apply fiber restarts after an install (lastApplied, its term).
    apply_reset: Cell<Option<(Index, Term)>>,
    /// Fresh snapshots asked of the apply fiber.
    snapshot_wants: RefCell<Vec<SnapshotWant>>,
    /// The apply fiber runs (false after a fatal error ended it).
    apply_alive: Cell<bool>,

    /// The snapshot files.
    snapshots: Option<SnapshotManager>,
    /// Asks the save fiber for a save now.
    save_notify: Notify,
    /// lastIncludedIndex of the newest saved (or recovered) snapshot.
    last_saved: Cell<Index>,
    /// Log bytes handed to the log since the group started (`saveSnapshotLogBytes`).
    log_bytes: Cell<u64>,
    /// `log_bytes` at which the writer next asks for a save (see
    /// [`Driver::count_log_bytes`]).
    save_at_log_bytes: Cell<u64>,
    /// A save is under way.
    saving: Cell<bool>,
    /// A snapshot is being finished in the snapshot store (a save's or an install's
    /// last step); `store_done` wakes the one waiting for it. Two finishes at once
    /// could take the same snapshot id.
    storing: Cell<bool>,
    store_done: Notify,
    /// Installs finished so far: a save whose snapshot was taken before one is stale.
    installs_done: Cell<u64>,
    /// The configuration entries the log holds above lastApplied, by index (the core
    /// campaigns with them too, [`RaftCore::set_log_configs`]).
    log_configs: RefCell<BTreeMap<Index, ConfigEntry>>,
}

/// Starts the driver; see [`super::RaftGroup::start_on`].
pub(crate) fn start<F>(
    group: &FiberGroup,
    factory: Arc<F>,
    cfg: RaftGroupConfig,
    transport: Rc<dyn RaftTransport>,
    opts: DriverOptions,
) -> Arc<Shared<<F::Sm as StateMachine>::Output>>
where
    F: RaftFactory,
{
    let build = move |cfg: &RaftGroupConfig| {
        factory.create_raft_log(cfg).and_then(|log| {
            let sm = factory.create_state_machine(cfg)?;
            Ok((log, sm, factory.create_snapshot_manager(cfg)))
        })
    };
    start_built(group, build, cfg, transport, opts)
}

/// Starts the driver with a log, a state machine and (optionally) a snapshot manager
/// built by `build` on the group's thread; see [`super::RaftGroup::start_with_parts`].
pub(crate) fn start_built<S, B>(
    group: &FiberGroup,
    build: B,
    cfg: RaftGroupConfig,
    transport: Rc<dyn RaftTransport>,
    opts: DriverOptions,
) -> Arc<Shared<S::Output>>
where
    S: StateMachine,
    B: FnOnce(
            &RaftGroupConfig,
        ) -> Result<(Box<dyn RaftLog>, S, Option<SnapshotManager>), RaftError>
        + 'static,
{
    let status = Published::new(GroupStatus::initial(&cfg));
    let lease = Arc::new(LeaseShare::default());
    let inbound: FiberChannel<Inbound> = group.new_channel();
    let requests: FiberChannel<Request<S::Output>> = group.new_channel();
    let shared = Arc::new(Shared {
        group_id: cfg.group_id,
        node_id: cfg.node_id,
        handle: group.handle(),
        requests: requests.sender_with_reject(|r, _| r.fail(RaftError::Stopped)),
        inbox: GroupInbox::new(
            cfg.group_id,
            inbound.sender_with_reject(|m, _| m.fail(InboundError::GroupStopped)),
        ),
        status: status.clone(),
        lease: lease.clone(),
        virtual_clock: group.virtual_clock(),
        perf: cfg.perf.clone(),
    });
    let g = group.clone();
    let spawned = group.spawn("raft-lifecycle", async move {
        let built = build(&cfg);
        let (log, sm, snapshots) = match built {
            Ok(x) => x,
            Err(e) => {
                fail_init(&g, &status, &cfg, e.to_string());
                drain_on_stop(&inbound, &requests);
                return;
            }
        };
        let d = Rc::new_cyclic(|me| Driver {
            me: me.clone(),
            group: g.clone(),
            log: Rc::from(log),
            sm: RefCell::new(sm),
            transport,
            opts,
            core: RefCell::new(None),
            tail: RefCell::new(TailCache::new()),
            book: RefCell::new(Book::default()),
            acts: RefCell::new(Vec::new()),
            cbs: RefCell::new(Vec::new()),
            status,
            lease,
            tick_notify: Notify::default(),
            planned_tick: Cell::new(u64::MAX),
            writes: RefCell::new(VecDeque::new()),
            write_notify: Notify::default(),
            writes_drained: FiberCondition::new("writes-drained"),
            status_want: Cell::new(None),
            status_notify: Notify::default(),
            apply_commit: Cell::new(0),
            apply_notify: Notify::default(),
            init_commit: Cell::new(0),
            init_finished: Cell::new(false),
            init_replay: Cell::new(None),
            ready: FiberCondition::new("group-ready"),
            peers: RefCell::new(BTreeMap::new()),
            install_ops: RefCell::new(VecDeque::new()),
            install_notify: Notify::default(),
            install_info: RefCell::new(None),
            install_sink: RefCell::new(None),
            apply_pause: Cell::new(false),
            apply_idle: Cell::new(false),
            apply_idle_notify: Notify::default(),
            apply_reset: Cell::new(None),
            snapshot_wants: RefCell::new(Vec::new()),
            apply_alive: Cell::new(true),
            snapshots,
            save_notify: Notify::default(),
            last_saved: Cell::new(0),
            log_bytes: Cell::new(0),
            save_at_log_bytes: Cell::new(cfg.save_snapshot_log_bytes),
            saving: Cell::new(false),
            storing: Cell::new(false),
            store_done: Notify::default(),
            installs_done: Cell::new(0),
            log_configs: RefCell::new(BTreeMap::new()),
            cfg,
        });
        d.clone().lifecycle(inbound, requests).await;
    });
    if let Err(e) = spawned {
        log::error!("raft group {}: driver not started: {e}", shared.group_id);
    }
    shared
}

fn fail_init(g: &FiberGroup, status: &Published<GroupStatus>, cfg: &RaftGroupConfig, why: String) {
    log::error!("raft group {} init failed: {why}", cfg.group_id);
    let mut s = GroupStatus::initial(cfg);
    s.init_failed = Some(why.clone());
    status.publish(s);
    let _ = g.fatal(format!("raft group {} init failed: {why}", cfg.group_id));
}

fn drain_on_stop<O: 'static>(inbound: &FiberChannel<Inbound>, requests: &FiberChannel<Request<O>>) {
    while let Some(m) = inbound.try_take() {
        m.fail(InboundError::GroupStopped);
    }
    while let Some(r) = requests.try_take() {
        r.fail(RaftError::Stopped);
    }
}

/// Awaits `fut` at most `d` (on the group's clock).
async fn with_timeout<T>(fut: RpcFuture<T>, d: Duration) -> Result<T, RpcError> {
    let mut fut = fut;
    let mut sleep = pin!(dt_fiber::sleep(d));
    poll_fn(|cx| {
        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(RpcError::Timeout)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// What the state machine sees of a committed entry.
fn exec_entry(item: &LogItem, has_caller: bool, nanos: i64) -> ExecEntry<'_> {
    ExecEntry {
        index: item.index,
        term: item.term,
        item_type: item.item_type,
        biz_type: item.biz_type,
        leader_create_millis: item.timestamp,
        local_create_nanos: nanos,
        header: &item.header,
        body: &item.body,
        // Only a local caller's input comes with buffers of its own.
        body_shared: !has_caller,
    }
}

fn call<T>(f: impl Callable<T>, v: T) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.call_once(v))).is_err() {
        log::error!("a raft callback panicked");
    }
}

/// What [`call`] calls: a closure (responders, replies) or a submitted write's caller.
trait Callable<T> {
    fn call_once(self, v: T);
}

impl<T, F: FnOnce(T)> Callable<T> for F {
    fn call_once(self, v: T) {
        self(v)
    }
}

impl<O> Callable<RaftResult<O>> for SubmitCallback<O> {
    fn call_once(self, v: RaftResult<O>) {
        self.complete(v)
    }
}

impl<S: StateMachine> Driver<S> {
    fn now(&self) -> u64 {
        let n = self.group.now().nano_time;
        let n = self.opts.clock.as_ref().map_or(n, |c| c(n));
        (n / 1_000_000).max(0) as u64
    }

    fn nanos(&self) -> i64 {
        self.group.now().nano_time
    }

    fn core(&self) -> std::cell::RefMut<'_, RaftCore> {
        std::cell::RefMut::map(self.core.borrow_mut(), |c| {
            c.as_mut().expect("raft core used before init")
        })
    }

    fn fatal(&self, what: String) {
        let _ = self
            .group
            .fatal(format!("raft group {}: {what}", self.cfg.group_id));
    }

    /// [`fatal`](Self::fatal) for a failed log operation, except when the failure is
    /// that the log is closed: only the group's own shutdown closes it, so a write or a
    /// status save still in flight then is not an error to report.
    fn fatal_log(&self, what: &str, e: &StoreError) {
        if matches!(e, StoreError::Closed) {
            log::debug!(
                "raft group {}: {what} after the log closed at shutdown",
                self.cfg.group_id
            );
            return;
        }
        self.fatal(format!("{what} failed: {e}"));
    }

    fn spawn(&self, name: &'static str, fut: impl Future<Output = ()> + 'static) {
        if let Err(e) = self.group.spawn_with(FiberOptions::new(name).daemon(), fut) {
            log::debug!(
                "raft group {}: fiber {name} not started: {e}",
                self.cfg.group_id
            );
        }
    }

    // ---------------------------------------------------------------- lifecycle

    async fn lifecycle(
        self: Rc<Self>,
        inbound: FiberChannel<Inbound>,
        requests: FiberChannel<Request<S::Output>>,
    ) {
        if let Err(why) = self.init().await {
            fail_init(&self.group, &self.status, &self.cfg, why);
            drain_on_stop(&inbound, &requests);
            return;
        }
        self.spawn("raft-writer", self.clone().writer());
        self.spawn("raft-status", self.clone().status_saver());
        let d = self.clone();
        self.spawn("raft-apply", async move {
            d.clone().apply_loop().await;
            // stopped by a fatal error: nobody serves snapshot requests any more
            d.apply_alive.set(false);
            d.snapshot_wants.borrow_mut().clear();
            d.apply_idle_notify.notify();
        });
        self.spawn("raft-install", self.clone().install_loop());
        self.spawn("raft-snapshot-save", self.clone().save_loop());
        self.spawn("raft-ticker", self.clone().ticker());
        let inbound = Rc::new(inbound);
        let requests = Rc::new(requests);
        self.spawn("raft-inbound", self.clone().inbound_loop(inbound.clone()));
        self.spawn("raft-requests", self.clone().request_loop(requests.clone()));
        self.publish();
        // wait for the shutdown request
        while !self.group.should_stop() {
            let _ = dt_fiber::sleep_until_shutdown(Duration::from_secs(3600)).await;
        }
        self.shutdown(&inbound, &requests).await;
    }

    /// Group init (raft.md §14.3, §8.4): start the state machine, recover the newest
    /// valid snapshot into it, recover the log, build the core from the persisted
    /// state, replay committed entries after the snapshot (the apply fiber does). A
    /// log that does not continue the snapshot (or an install under way) leaves the
    /// node waiting for the leader's install.
    async fn init(&self) -> Result<(), String> {
        self.sm
            .borrow_mut()
            .start()
            .map_err(|e| format!("state machine start: {e}"))?;
        let mut recovered = match self.snapshots.clone() {
            Some(mgr) => mgr.load().await?,
            None => None,
        };
        let (snap_index, snap_term) = match &mut recovered {
            Some(r) => {
                self.recover_snapshot(r).await?;
                (r.info.last_included_index, r.info.last_included_term)
            }
            None => (0, 0),
        };
        self.last_saved.set(snap_index);
        let last = self
            .log
            .init()
            .await
            .map_err(|e| format!("log init: {e}"))?;
        let st = self
            .log
            .persisted_state()
            .map_err(|e| format!("status file: {e}"))?;
        let mut install_required = st.install_snapshot || st.first_valid_index > snap_index + 1;
        let (mut last_term, mut last_index) = match last {
            Some(l) => l,
            None => {
                install_required = true;
                (0, 0)
            }
        };
        if install_required {
            log::warn!(
                "raft group {}: the log starts at {} (install state {}, snapshot at {snap_index}): waiting for the leader's install",
                self.cfg.group_id, st.first_valid_index, st.install_snapshot
            );
        }
        if last_index < snap_index {
            last_index = snap_index;
            last_term = snap_term;
        }
        if last_term > st.current_term {
            return Err(format!(
                "last log term {last_term} is above currentTerm {}",
                st.current_term
            ));
        }
        // A node waiting for an install applies nothing from its log: the entries it
        // holds may not continue its state (an install finished but its local
        // snapshot was not saved before a crash), so its commit starts at the snapshot.
        let commit = if install_required {
            snap_index
        } else {
            st.commit_index.min(last_index).max(snap_index)
        };
        let core_cfg = self.cfg.core_config().map_err(|e| e.to_string())?;
        let seed = self.group.random_u64();
        let now = self.now();
        let mut core = RaftCore::new(
            core_cfg,
            seed,
            now,
            st.current_term,
            st.voted_for.max(0) as NodeId,
            last_index,
            last_term,
            commit,
        )
        .map_err(|e| e.to_string())?;
        if snap_index > 0 {
            core.on_applied(now, snap_index);
        }
        // §11.4: the sets stored with the snapshot replace the static configuration;
        // configuration entries after it are replayed on top by the apply fiber.
        if let Some(r) = recovered.as_ref().filter(|r| !r.info.members.is_empty()) {
            let i = &r.info;
            let sets = MemberSets {
                members: i.members.clone(),
                observers: i.observers.clone(),
                prepared_members: i.prepared_members.clone(),
                prepared_observers: i.prepared_observers.clone(),
            };
            // the same node-table check as a configuration entry's (§11.2 step 3)
            if let Some(id) = self.unknown_node(&sets) {
                return Err(format!(
                    "the snapshot's configuration {sets:?} names node {id}, not in the node table"
                ));
            }
            core.restore_config(now, sets, i.last_config_change_index);
        }
        if install_required {
            // the status file's commit index is committed: installs below it are
            // refused with it, for the leader to learn (RaftCore::set_known_committed)
            core.set_known_committed(st.commit_index);
            if let (true, Some((t, i))) = (st.install_snapshot, st.install_vote) {
                // an install interrupted: the log is gone, the status file kept the
                // position to vote with (RaftCore::install_vote)
                core.set_install_required_with_vote(now, t, i);
            } else if st.install_snapshot || last.is_none() {
                core.set_install_required(now);
            } else {
                // the log after an installed snapshot is intact: still a voter
                core.set_install_required_voting(now);
            }
        }
        let commit = core.commit_index();
        *self.core.borrow_mut() = Some(core);
        if !install_required && last_index > commit {
            // configuration entries not known committed: the core campaigns with them
            // too (set_log_configs)
            self.read_log_configs(commit + 1, last_index).await?;
        }
        self.apply_reset.set(Some((snap_index, snap_term)));
        self.init_commit.set(commit);
        self.apply_commit.set(commit);
        if commit <= snap_index || install_required {
            self.init_finished.set(true);
        } else {
            // operators see NOT_INIT meanwhile: say what the wait is for
            log::info!(
                "raft group {}: replaying entries {}..={commit} from the log",
                self.cfg.group_id,
                snap_index + 1
            );
            self.init_replay.set(Some((snap_index + 1, self.nanos())));
        }
        self.log.set_commit_index(commit);
        self.run_actions();
        Ok(())
    }

    /// Records the configuration entries of the log in `first..=last` (init).
    async fn read_log_configs(&self, first: Index, last: Index) -> Result<(), String> {
        let mut it = self.log.open_iterator();
        let mut next = first;
        while next <= last {
            let want = ((last + 1 - next) as usize).min(READ_BATCH);
            let items = it
                .next(next, want, READ_BYTES)
                .await
                .map_err(|e| format!("log read at {next} (init): {e}"))?;
            if items.is_empty() {
                return Err(format!("log read at {next} (init) returned nothing"));
            }
            for i in items.iter().take(want) {
                if i.index != next {
                    return Err(format!(
                        "log read (init) returned entry {} for {next}",
                        i.index
                    ));
                }
                self.note_log_config(i);
                next += 1;
            }
        }
        self.sync_log_configs();
        Ok(())
    }

    /// Feeds a snapshot read from disk to the state machine (storage.md §5.5).
    async fn recover_snapshot(&self, r: &mut SnapshotSource) -> Result<(), String> {
        let mut offset = 0u64;
        loop {
            let batch = r.next_batch().await?;
            if batch.is_empty() {
                break;
            }
            for data in &batch {
                let fut = self.sm.borrow_mut().install_snapshot(SnapshotChunk {
                    info: &r.info,
                    offset,
                    done: false,
                    data,
                });
                fut.await
                    .map_err(|e| format!("recovering the snapshot at byte {offset}: {e}"))?;
                offset += data.len() as u64;
            }
        }
        let empty = Bytes::new();
        let fut = self.sm.borrow_mut().install_snapshot(SnapshotChunk {
            info: &r.info,
            offset,
            done: true,
            data: &empty,
        });
        fut.await.map_err(|e| format!("recovering snapshot: {e}"))?;
        log::info!(
            "raft group {}: recovered snapshot at {} (term {})",
            self.cfg.group_id,
            r.info.last_included_index,
            r.info.last_included_term
        );
        Ok(())
    }

    async fn shutdown(
        &self,
        inbound: &FiberChannel<Inbound>,
        requests: &FiberChannel<Request<S::Output>>,
    ) {
        self.lease.set_end_ms(0);
        drain_on_stop(inbound, requests);
        {
            let mut cbs = Vec::new();
            self.tail.borrow_mut().take_callbacks(&mut cbs);
            for cb in cbs {
                call(cb, Err(RaftError::Stopped));
            }
        }
        let book = std::mem::take(&mut *self.book.borrow_mut());
        for (_, (_, r)) in book.votes {
            call(r, Err(InboundError::GroupStopped));
        }
        for (_, a) in book.appends {
            if let Some(r) = a.reply {
                call(r, Err(InboundError::GroupStopped));
            }
        }
        for (_, r) in book.transfers {
            call(r, Err(InboundError::GroupStopped));
        }
        if let Some(r) = book.transfer_reply {
            call(r, Err(RaftError::Stopped));
        }
        for w in book.config_waiters {
            call(w.reply, Err(RaftError::Stopped));
        }
        if self.cfg.save_snapshot_when_close && self.init_finished.get() {
            if let Err(e) = self.save_snapshot().await {
                log::warn!(
                    "raft group {}: snapshot on close failed: {e}",
                    self.cfg.group_id
                );
            }
        }
        self.sm.borrow_mut().stop();
        if let Err(e) = self.log.close().await {
            log::error!(
                "raft group {}: closing the log failed: {e}",
                self.cfg.group_id
            );
        }
    }

    fn publish(&self) {
        let s = self.snapshot_status();
        self.status.publish(s);
    }

    fn snapshot_status(&self) -> GroupStatus {
        let c = self.core.borrow();
        let Some(c) = c.as_ref() else {
            return GroupStatus::initial(&self.cfg);
        };
        GroupStatus {
            group_id: self.cfg.group_id,
            node_id: self.cfg.node_id,
            role: c.role(),
            term: c.term(),
            leader: c.leader(),
            commit_index: c.commit_index(),
            last_applied: c.last_applied(),
            last_log_index: c.last_log_index(),
            group_ready: c.group_ready(),
            init_finished: self.init_finished.get(),
            init_failed: None,
            members: c.member_sets().clone(),
            log_config_nodes: log_config_nodes(c),
            refuses_votes_for_install: c.refuses_votes_for_install(),
        }
    }

    fn query_status_resp(&self) -> rpc::QueryStatusResp {
        // With a core, every field it knows (apply timing, lastConfigChangeIndex, which
        // commit-change is checked against) comes from its full status.
        if let Some(c) = self.core.borrow().as_ref() {
            let mut r = rpc::QueryStatusResp::from_core(self.cfg.group_id, &c.status(self.now()));
            r.set_flag(self.init_finished.get(), false, c.group_ready(), false);
            return r;
        }
        self.snapshot_status().query_status_resp()
    }

    // ---------------------------------------------------------------- actions

    /// Executes the core's actions until it produces no more.
    fn run_actions(&self) {
        loop {
            let mut acts = std::mem::take(&mut *self.acts.borrow_mut());
            {
                let mut c = self.core.borrow_mut();
                let Some(c) = c.as_mut() else { return };
                acts.extend(c.drain_actions());
            }
            if acts.is_empty() {
                *self.acts.borrow_mut() = acts;
                break;
            }
            if let Some(t) = &self.opts.trace {
                let now = self.now();
                for a in &acts {
                    t(now, self.cfg.node_id, a);
                }
            }
            // before any action runs (a vote sent on step down, a TimeoutNow)
            self.revoke_lease_if_lost();
            for a in acts.drain(..) {
                self.exec(a);
            }
            *self.acts.borrow_mut() = acts;
        }
        self.publish_lease();
        // the ticker sleeps until the planned deadline: wake it if that moved earlier
        let d = self.core().next_deadline();
        if d < self.planned_tick.get() {
            self.tick_notify.notify();
        }
    }

    /// Whether the core may serve lease reads (its lease aside).
    fn lease_possible(&self, c: &RaftCore) -> bool {
        !self.group.should_stop()
            && c.role() == Role::Leader
            && c.group_ready()
            && !c.transfer_in_progress()
    }

    /// Clears the published lease when the core can no longer serve lease reads (a
    /// cheap check, before the actions of a step down or a transfer run).
    fn revoke_lease_if_lost(&self) {
        let lost = match self.core.borrow().as_ref() {
            Some(c) => !self.lease_possible(c),
            None => true,
        };
        // DELIBERATE BUG (feature sim-bugs, simulation self-test only): the published
        // lease outlives a step down or a transfer.
        #[cfg(feature = "sim-bugs")]
        if crate::sim::bugs::is_active(crate::sim::bugs::Bug::StalePublishedLease) {
            return;
        }
        if lost {
            self.lease.set_end_ms(0);
        }
    }

    /// Publishes the lease for reads on other threads: its end when the core would
    /// answer a lease read with Ok now, else none.
    fn publish_lease(&self) {
        let now = self.now();
        let end = {
            let mut c = self.core.borrow_mut();
            match c.as_mut() {
                Some(c) if self.lease_possible(c) => {
                    let end = c.lease_end();
                    if now < end {
                        end
                    } else {
                        0
                    }
                }
                _ => 0,
            }
        };
        #[cfg(feature = "sim-bugs")]
        if end == 0 && crate::sim::bugs::is_active(crate::sim::bugs::Bug::StalePublishedLease) {
            return;
        }
        self.lease.set_end_ms(end);
    }

    fn exec(&self, a: Action) {
        match a {
            Action::SaveStatus {
                term,
                voted_for,
                commit_index,
            } => {
                self.log.set_commit_index(commit_index);
                self.status_want.set(Some((term, voted_for)));
                self.status_notify.notify();
            }
            Action::AppendLocal {
                kind,
                first_index,
                last_index,
                term,
                prev_log_term,
            } => self.append_local(kind, first_index, last_index, term, prev_log_term),
            Action::AppendReceived {
                req,
                truncate_after,
                first_index,
                last_index,
            } => self.append_received(req, truncate_after, first_index, last_index),
            Action::SendVote { to, msg } => {
                let fut = self.transport.send_vote(to, self.cfg.group_id, msg.req);
                let timeout = Duration::from_millis(self.cfg.rpc_timeout_ms);
                let d = self.self_rc();
                self.spawn("raft-vote", async move {
                    if let Ok(resp) = with_timeout(fut, timeout).await {
                        let now = d.now();
                        d.core().handle_vote_resp(now, to, &msg, &resp);
                        d.run_actions();
                    }
                });
            }
            Action::SendAppend { to, msg } => {
                let lane = self.lane(to);
                lane.sends.borrow_mut().push_back(msg);
                lane.send_notify.notify();
            }
            Action::ReplyVote { req, resp } => {
                if let Some((_, r)) = self.book.borrow_mut().votes.remove(&req) {
                    call(r, Ok(resp));
                }
            }
            Action::ReplyAppend { req, resp } => {
                let r = {
                    let mut b = self.book.borrow_mut();
                    b.install_data.remove(&req);
                    b.appends.remove(&req)
                };
                if let Some(Received { reply: Some(r), .. }) = r {
                    call(r, Ok(resp));
                }
            }
            Action::FindMatchPos {
                search,
                suggest_term,
                suggest_index,
            } => {
                let d = self.self_rc();
                self.spawn("raft-match-pos", async move {
                    // entries still queued for the writer are not in the log yet
                    if !d.writes_handed().await {
                        return;
                    }
                    let found = match d.log.try_find_match_pos(suggest_term, suggest_index).await {
                        Ok(f) => f,
                        Err(e) => return d.fatal(format!("match-position search failed: {e}")),
                    };
                    let now = d.now();
                    match search {
                        MatchSearch::Follower { req } => {
                            d.core().on_follower_match_pos(now, req, found)
                        }
                        MatchSearch::Leader { peer, epoch } => {
                            d.core().on_leader_match_pos(now, peer, epoch, found)
                        }
                    }
                    d.run_actions();
                });
            }
            Action::StartInstallSnapshot { to, start } => {
                let d = self.self_rc();
                self.spawn("raft-install-send", async move {
                    let ok = d.send_snapshot(to, &start).await;
                    let now = d.now();
                    match ok {
                        Ok(Some(index)) => d.core().on_snapshot_installed(now, to, index),
                        Ok(None) => {}
                        Err(e) => {
                            log::warn!(
                                "raft group {}: install snapshot to node {to} failed: {e}",
                                d.cfg.group_id
                            );
                            d.core().handle_install_error(now, to, &start);
                        }
                    }
                    d.run_actions();
                });
            }
            Action::BeginInstallSnapshot {
                req,
                last_included_index,
                last_included_term,
            } => {
                // the log is thrown away (the core forgot its configuration entries)
                self.log_configs.borrow_mut().clear();
                // refuses_votes_for_install and the sets moved
                self.publish();
                let vote = self.core().install_vote();
                self.push_install(InstallOp::Begin {
                    req,
                    index: last_included_index,
                    term: last_included_term,
                    vote,
                })
            }
            Action::InstallSnapshotData { req, .. } => self.push_install(InstallOp::Data { req }),
            Action::FinishInstallSnapshot {
                req,
                last_included_index,
                last_included_term,
                next_write_pos,
            } => self.push_install(InstallOp::Finish {
                req,
                index: last_included_index,
                term: last_included_term,
                next_write_pos,
            }),
            Action::Apply { commit_index } => {
                self.log.set_commit_index(commit_index);
                if commit_index > self.apply_commit.get() {
                    self.apply_commit.set(commit_index);
                    self.apply_notify.notify();
                }
            }
            Action::RoleChanged { term, .. } => {
                self.forget_superseded(term);
                self.publish();
            }
            Action::CheckTransferTarget { to } => {
                let fut = self.transport.query_status(to, self.cfg.group_id);
                let timeout = Duration::from_millis(self.cfg.rpc_timeout_ms);
                let d = self.self_rc();
                self.spawn("raft-transfer-check", async move {
                    let ok = match with_timeout(fut, timeout).await {
                        Ok(s) => {
                            let c = d.core();
                            let sets = c.member_sets();
                            let same = |a: &[NodeId], b: &[i32]| {
                                let mut x: Vec<i64> = a.iter().map(|&v| v as i64).collect();
                                let mut y: Vec<i64> = b.iter().map(|&v| v as i64).collect();
                                x.sort_unstable();
                                y.sort_unstable();
                                x == y
                            };
                            same(&sets.members, &s.members)
                                && same(&sets.observers, &s.observers)
                                && same(&sets.prepared_members, &s.prepared_members)
                                && same(&sets.prepared_observers, &s.prepared_observers)
                        }
                        Err(_) => false,
                    };
                    let now = d.now();
                    d.core().on_transfer_target_checked(now, ok);
                    d.run_actions();
                });
            }
            Action::SendTransferLeader { to, req } => {
                let fut = self
                    .transport
                    .send_transfer_leader(to, self.cfg.group_id, req);
                let timeout = Duration::from_millis(self.cfg.rpc_timeout_ms);
                let d = self.self_rc();
                self.spawn("raft-transfer", async move {
                    let r = with_timeout(fut, timeout).await;
                    let reply = d.book.borrow_mut().transfer_reply.take();
                    if let Some(reply) = reply {
                        call(
                            reply,
                            r.map_err(|e| {
                                log::warn!("transfer to {to} failed: {e}");
                                RaftError::Transfer(TransferError::Refused)
                            }),
                        );
                    }
                });
            }
            Action::TransferFailed { error } => {
                let reply = self.book.borrow_mut().transfer_reply.take();
                if let Some(reply) = reply {
                    call(reply, Err(RaftError::Transfer(error)));
                }
            }
            Action::ReplyTransfer { req, result } => {
                if let Some(r) = self.book.borrow_mut().transfers.remove(&req) {
                    call(r, Ok(result));
                }
            }
            Action::FailPendingTasks { leader } => {
                let mut cbs = std::mem::take(&mut *self.cbs.borrow_mut());
                self.tail.borrow_mut().take_callbacks(&mut cbs);
                for cb in cbs.drain(..) {
                    call(cb, Err(RaftError::NotLeader { leader }));
                }
                *self.cbs.borrow_mut() = cbs;
                let waiters = std::mem::take(&mut self.book.borrow_mut().config_waiters);
                for w in waiters {
                    call(w.reply, Err(RaftError::NotLeader { leader }));
                }
            }
        }
    }

    /// The core never answers a granted vote or a deferred append success of a term
    /// older than `term` (raft.md §5.4 rule 7, §17 item 7): drop their responders (the
    /// sender sees no answer, as with the reference) instead of keeping them forever.
    fn forget_superseded(&self, term: Term) {
        let mut b = self.book.borrow_mut();
        b.votes.retain(|_, (t, _)| *t >= term);
        b.appends.retain(|_, r| !r.written || r.term >= term);
    }

    /// The `Rc` of this driver (fibers keep it alive).
    fn self_rc(&self) -> Rc<Self> {
        self.me
            .upgrade()
            .expect("the driver is alive while it runs")
    }

    fn append_local(
        &self,
        kind: LocalEntries,
        first: Index,
        last: Index,
        term: Term,
        prev_log_term: Term,
    ) {
        let mut tail = self.tail.borrow_mut();
        if kind == LocalEntries::Heartbeat {
            let ts = self.group.now();
            let mut prev = prev_log_term;
            for index in first..=last {
                tail.push(TailEntry {
                    item: LogItem {
                        item_type: TYPE_HEARTBEAT,
                        term,
                        prev_log_term: prev,
                        index,
                        timestamp: ts.wall_millis,
                        ..Default::default()
                    },
                    cb: None,
                    local_nanos: ts.nano_time,
                });
                prev = term;
            }
        }
        if !tail.covers(first, last + 1 - first) {
            drop(tail);
            return self.fatal(format!(
                "entries {first}..={last} to write are not in the tail cache"
            ));
        }
        let mut batch = self.log.spare_items();
        batch.reserve((last + 1 - first) as usize);
        batch.extend((first..=last).filter_map(|i| tail.get(i).map(|e| e.item.clone())));
        drop(tail);
        self.writes.borrow_mut().push_back(WriteOp::Append(batch));
        self.write_notify.notify();
    }

    fn append_received(
        &self,
        req: ReqId,
        truncate_after: Option<Index>,
        first: Index,
        last: Index,
    ) {
        let mut items = {
            let mut book = self.book.borrow_mut();
            match book.appends.get_mut(&req) {
                Some(r) => {
                    r.written = true;
                    std::mem::take(&mut r.items)
                }
                None => {
                    drop(book);
                    return self.fatal(format!("append request {req} to write is unknown"));
                }
            }
        };
        // the configuration entries above lastApplied changed (cut or added): the core
        // is told below; otherwise it already has them (no copy per append)
        let mut configs_changed = false;
        if let Some(t) = truncate_after {
            configs_changed |= !self.log_configs.borrow_mut().split_off(&(t + 1)).is_empty();
            self.writes.borrow_mut().push_back(WriteOp::Truncate(t + 1));
            let mut cbs = std::mem::take(&mut *self.cbs.borrow_mut());
            self.tail.borrow_mut().truncate_after(t, &mut cbs);
            for cb in cbs.drain(..) {
                call(cb, Err(RaftError::LogTruncated));
            }
            *self.cbs.borrow_mut() = cbs;
            let gone: Vec<ConfigWaiter> = {
                let mut b = self.book.borrow_mut();
                let (gone, keep) = std::mem::take(&mut b.config_waiters)
                    .into_iter()
                    .partition(|w| w.index > t);
                b.config_waiters = keep;
                gone
            };
            for w in gone {
                call(w.reply, Err(RaftError::LogTruncated));
            }
        }
        let nanos = self.nanos();
        // the request's own list becomes the write batch (no second list per request)
        items.retain(|it| it.index >= first && it.index <= last);
        {
            let mut tail = self.tail.borrow_mut();
            for it in &items {
                configs_changed |= self.note_log_config(it);
                tail.push(TailEntry {
                    item: it.clone(),
                    cb: None,
                    local_nanos: nanos,
                });
            }
        }
        self.writes.borrow_mut().push_back(WriteOp::Append(items));
        self.write_notify.notify();
        if configs_changed {
            self.sync_log_configs();
        }
    }

    /// Records `item` if it is a configuration entry above lastApplied; true if it was.
    fn note_log_config(&self, item: &LogItem) -> bool {
        if ConfigEntry::is_config_type(item.item_type as i32) {
            if let Some(e) = self.config_entry_of(item) {
                self.log_configs.borrow_mut().insert(item.index, e);
                return true;
            }
        }
        false
    }

    /// Hands the configuration entries above lastApplied to the core; publishes the
    /// status when the nodes only they name changed (the raft ping checks those too).
    fn sync_log_configs(&self) {
        let entries: Vec<(Index, ConfigEntry)> = self
            .log_configs
            .borrow()
            .iter()
            .map(|(i, e)| (*i, e.clone()))
            .collect();
        let changed = {
            let mut c = self.core();
            let before = log_config_nodes(&c);
            c.set_log_configs(entries);
            before != log_config_nodes(&c)
        };
        if changed {
            self.publish();
        }
    }
}

// -------------------------------------------------------------------- fibers

impl<S: StateMachine> Driver<S> {
    /// The send lane of `peer`, with its two fibers started on first use.
    fn lane(&self, peer: NodeId) -> Rc<PeerLane> {
        if let Some(l) = self.peers.borrow().get(&peer) {
            return l.clone();
        }
        let lane = Rc::new(PeerLane {
            closed: Cell::new(false),
            sends: RefCell::new(VecDeque::new()),
            send_notify: Notify::default(),
            acks: RefCell::new(VecDeque::new()),
            ack_notify: Notify::default(),
        });
        self.peers.borrow_mut().insert(peer, lane.clone());
        self.spawn(
            "raft-replicate",
            self.self_rc().replicate_loop(peer, lane.clone()),
        );
        self.spawn("raft-ack", self.self_rc().ack_loop(peer, lane.clone()));
        lane
    }

    /// Builds and sends the appends of one peer in order (reading entries from the
    /// tail cache, else from the log); answers are awaited by [`Self::ack_loop`].
    async fn replicate_loop(self: Rc<Self>, peer: NodeId, lane: Rc<PeerLane>) {
        let timeout = Duration::from_millis(self.cfg.rpc_timeout_ms);
        loop {
            if lane.closed.get() {
                return;
            }
            let next = lane.sends.borrow_mut().pop_front();
            let Some(send) = next else {
                lane.send_notify.notified().await;
                continue;
            };
            let logs = match self.entries_for(send.first_index, send.count).await {
                Ok(l) => l,
                Err(EntriesError::Gone(e)) => {
                    log::info!(
                        "raft group {}: entries {}+{} for node {peer} are gone from the log \
                         ({e}): installing a snapshot on it",
                        self.cfg.group_id,
                        send.first_index,
                        send.count
                    );
                    let now = self.now();
                    self.core().on_entries_gone(now, peer, &send);
                    self.run_actions();
                    continue;
                }
                Err(EntriesError::Failed(e)) => {
                    log::warn!(
                        "raft group {}: reading entries {}+{} for node {peer} failed: {e}",
                        self.cfg.group_id,
                        send.first_index,
                        send.count
                    );
                    let now = self.now();
                    self.core().handle_append_error(now, peer, &send);
                    self.run_actions();
                    continue;
                }
            };
            let perf = self.cfg.perf.start(PerfType::RaftReplicateRpc);
            let bytes = if perf != 0 {
                logs.iter()
                    .map(|l| {
                        (l.header.as_ref().map_or(0, |b| b.len())
                            + l.body.as_ref().map_or(0, |b| b.len())) as u64
                    })
                    .sum()
            } else {
                0
            };
            let req = rpc::AppendReq::from_send(self.cfg.group_id, &send, logs);
            let fut = self.transport.send_append(peer, req);
            let deadline = self.nanos() + timeout.as_nanos() as i64;
            lane.acks.borrow_mut().push_back(SentAppend {
                send,
                answer: fut,
                deadline,
                perf: (perf, bytes),
            });
            lane.ack_notify.notify();
        }
    }

    /// Entries `first .. first + count` in wire form.
    async fn entries_for(
        &self,
        first: Index,
        count: u64,
    ) -> Result<Vec<rpc::LogItem>, EntriesError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        {
            let tail = self.tail.borrow();
            if tail.covers(first, count) {
                // sized at once: collecting a filter_map would grow it from empty
                let mut out = Vec::with_capacity(count as usize);
                out.extend(
                    (first..first + count)
                        .filter_map(|i| tail.get(i).map(|e| rpc::LogItem::from(&e.item))),
                );
                return Ok(out);
            }
        }
        let mut out = Vec::with_capacity(count as usize);
        let mut it = self.log.open_iterator();
        let mut next = first;
        while next < first + count {
            let want = ((first + count - next) as usize).min(READ_BATCH);
            let items = match it.next(next, want, READ_BYTES).await {
                Ok(items) => items,
                // below what this node persisted and not there: deleted after a snapshot
                Err(e @ StoreError::NotFound { index, .. })
                    if index <= self.log.persisted_index() =>
                {
                    return Err(EntriesError::Gone(e.to_string()));
                }
                Err(e) => return Err(EntriesError::Failed(e.to_string())),
            };
            if items.is_empty() {
                return Err(EntriesError::Failed(format!(
                    "log read at {next} returned nothing"
                )));
            }
            for i in items.iter().take(want) {
                if i.index != next {
                    return Err(EntriesError::Failed(format!(
                        "log read returned entry {} for {next}",
                        i.index
                    )));
                }
                out.push(rpc::LogItem::from(i));
                next += 1;
            }
        }
        Ok(out)
    }

    /// Awaits the answers of one peer's appends in send order.
    async fn ack_loop(self: Rc<Self>, peer: NodeId, lane: Rc<PeerLane>) {
        // One timer serves many appends: deadlines grow in send order, so a timer set
        // for an earlier append's deadline fires no later than the current one's; when
        // it fires early the current deadline is checked and a timer set for it. A
        // timer per append would leave a cancelled entry in the dispatcher's timer heap
        // (and a wait cell) per round until its rpcTimeout passed.
        let mut timer: Option<Pin<Box<dt_fiber::Sleep>>> = None;
        loop {
            if lane.closed.get() {
                return;
            }
            let next = lane.acks.borrow_mut().pop_front();
            let Some(SentAppend {
                send,
                answer: mut fut,
                deadline,
                perf: (perf, bytes),
            }) = next
            else {
                lane.ack_notify.notified().await;
                continue;
            };
            // the timeout runs from the send, not from when the earlier answers came
            let r = poll_fn(|cx| {
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                loop {
                    let now = self.nanos();
                    if now >= deadline {
                        return Poll::Ready(Err(RpcError::Timeout));
                    }
                    let t = timer.get_or_insert_with(|| {
                        Box::pin(dt_fiber::sleep(Duration::from_nanos(
                            (deadline - now) as u64,
                        )))
                    });
                    match t.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        // fired: check the current deadline again (set anew if later)
                        Poll::Ready(Ok(_)) => timer = None,
                        Poll::Ready(Err(_)) => {
                            timer = None;
                            return Poll::Ready(Err(RpcError::Timeout));
                        }
                    }
                }
            })
            .await;
            let now = self.now();
            match r {
                Ok(resp) => {
                    self.cfg
                        .perf
                        .end(PerfType::RaftReplicateRpc, perf, send.count, bytes);
                    self.core().handle_append_resp(now, peer, &send, &resp)
                }
                Err(e) => {
                    log::debug!(
                        "raft group {}: append to {peer} failed: {e}",
                        self.cfg.group_id
                    );
                    self.core().handle_append_error(now, peer, &send)
                }
            }
            self.run_actions();
        }
    }

    /// Hands log writes and truncations to the log in order and reports what became
    /// durable.
    async fn writer(self: Rc<Self>) {
        let log = self.log.clone();
        let mut flight: VecDeque<crate::raft_log::LogFuture<'_, u64>> = VecDeque::new();
        // A truncation in progress: later appends wait until it is done (the log
        // requires it), earlier ones may still be in flight.
        let mut truncating: Option<(u64, crate::raft_log::LogFuture<'_, ()>)> = None;
        poll_fn(|cx| loop {
            let mut progressed = false;
            loop {
                if let Some((i, f)) = &mut truncating {
                    match f.as_mut().poll(cx) {
                        Poll::Pending => break,
                        Poll::Ready(Err(e)) => {
                            self.fatal(format!("truncating the log at {i} failed: {e}"));
                            return Poll::Ready(());
                        }
                        Poll::Ready(Ok(())) => truncating = None,
                    }
                }
                let op = self.writes.borrow_mut().pop_front();
                match op {
                    None => {
                        if self.writes_drained.waiter_count() > 0 {
                            self.writes_drained.signal_all();
                        }
                        break;
                    }
                    Some(WriteOp::Truncate(i)) => truncating = Some((i, log.truncate_tail(i))),
                    Some(WriteOp::Append(b)) => {
                        self.count_log_bytes(&b);
                        flight.push_back(log.append(b))
                    }
                }
            }
            while let Some(f) = flight.front_mut() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(Ok(idx)) => {
                        flight.pop_front();
                        let now = self.now();
                        self.core().on_log_persisted(now, idx);
                        self.run_actions();
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => {
                        self.fatal_log("log write", &e);
                        return Poll::Ready(());
                    }
                    Poll::Pending => break,
                }
            }
            if !progressed && self.write_notify.poll_notified(cx).is_pending() {
                return Poll::Pending;
            }
        })
        .await
    }

    /// Waits until the writer handed every queued write to the log (without spinning:
    /// a truncation may take a while); false if the group stops first.
    async fn writes_handed(&self) -> bool {
        while !self.writes.borrow().is_empty() {
            if self.group.should_stop() {
                return false;
            }
            // the timeout re-checks the group (a writer ended by a fatal error)
            let _ = self
                .writes_drained
                .wait_timeout(Duration::from_millis(50))
                .await;
        }
        true
    }

    /// Saves term and vote, one save at a time, always the latest wanted pair.
    async fn status_saver(self: Rc<Self>) {
        loop {
            let Some((term, vote)) = self.status_want.take() else {
                self.status_notify.notified().await;
                continue;
            };
            if let Err(e) = self.log.persist_term_vote(term, vote as i32).await {
                return self.fatal_log("saving the status file", &e);
            }
            let now = self.now();
            self.core().on_status_saved(now, term, vote);
            self.run_actions();
        }
    }

    /// Reads up to `want` entries from `first` off the log. The read starts when the
    /// future is first polled.
    fn read_log(&self, first: Index, want: usize) -> LogFuture<'_, Vec<LogItem>> {
        Box::pin(async move {
            let mut it = self.log.open_iterator();
            it.next(first, want, APPLY_READ_BYTES).await
        })
    }

    /// Calls the core's tick at its deadlines.
    async fn ticker(self: Rc<Self>) {
        loop {
            let now = self.now();
            let deadline = self.core().next_deadline();
            if deadline <= now {
                self.core().tick(now);
                self.run_actions();
                self.close_removed_lanes();
                if self.core().next_deadline() <= now {
                    // nothing moved the deadline: do not spin
                    let _ = dt_fiber::sleep(Duration::from_millis(1)).await;
                }
                continue;
            }
            self.planned_tick.set(deadline);
            let mut sleep = pin!(dt_fiber::sleep(Duration::from_millis(deadline - now)));
            poll_fn(|cx| {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                self.tick_notify.poll_notified(cx)
            })
            .await;
            self.planned_tick.set(u64::MAX);
        }
    }

    /// Applies committed entries in order (raft.md §8.3). `exec` runs ahead of
    /// completion (lastApplying before lastApplied): pending state-machine futures are
    /// queued and completed strictly in index order, each caller called then.
    async fn apply_loop(self: Rc<Self>) {
        let mut applying: Index = self.core().last_applied();
        let mut applied: Index = applying;
        let mut applied_term: Term = self.apply_reset.take().map_or(0, |(_, t)| t);
        let mut batch: Vec<ToApply<S::Output>> = Vec::new();
        let mut flight: VecDeque<InFlight<S::Output>> = VecDeque::new();
        // the last index told to `applied` (entries may complete as they are executed)
        let mut reported = applied;
        // The read of the next committed entries, started while the ones before them
        // execute (a replay from the log, a node catching up), with its first index.
        let mut prefetch: Option<(Index, LogFuture<'_, Vec<LogItem>>)> = None;
        loop {
            // complete what is done, in order
            let failed = poll_fn(|cx| {
                Poll::Ready(self.settle(&mut flight, &mut applied, &mut applied_term, cx))
            })
            .await;
            if let Some(why) = failed {
                return self.fatal(why);
            }
            if applied > reported {
                reported = applied;
                self.applied(applied);
            }
            if self.apply_pause.get() || !self.snapshot_wants.borrow().is_empty() {
                if flight.is_empty() {
                    // between entries, every earlier execution complete
                    self.serve_snapshot_wants(applied, applied_term);
                    if self.apply_pause.get() {
                        // an install may replace the log under the read
                        prefetch = None;
                        self.apply_idle.set(true);
                        self.apply_idle_notify.notify();
                        while self.apply_pause.get() {
                            self.apply_notify.notified().await;
                        }
                        self.apply_idle.set(false);
                        if let Some((i, t)) = self.apply_reset.take() {
                            applying = i;
                            applied = i;
                            reported = i;
                            applied_term = t;
                        }
                    }
                } else {
                    // let the executions in flight finish first
                    poll_fn(|cx| match flight.front_mut() {
                        Some(InFlight {
                            out: Outcome::Pending(f),
                            ..
                        }) => match f.as_mut().poll(cx) {
                            Poll::Ready(r) => {
                                flight[0].out = Outcome::Done(r);
                                Poll::Ready(())
                            }
                            Poll::Pending => Poll::Pending,
                        },
                        _ => Poll::Ready(()),
                    })
                    .await;
                }
                continue;
            }
            let commit = self.apply_commit.get();
            if applying >= commit || flight.len() >= MAX_APPLY_FLIGHT {
                // wait for a new commit index or for the oldest pending execution
                poll_fn(|cx| {
                    if let Some(InFlight {
                        out: Outcome::Pending(f),
                        ..
                    }) = flight.front_mut()
                    {
                        if let Poll::Ready(r) = f.as_mut().poll(cx) {
                            flight[0].out = Outcome::Done(r);
                            return Poll::Ready(());
                        }
                    }
                    if flight.len() < MAX_APPLY_FLIGHT {
                        return self.apply_notify.poll_notified(cx);
                    }
                    Poll::Pending
                })
                .await;
                continue;
            }
            // the next run of entries: from the tail cache, else from the log
            let first = applying + 1;
            {
                let mut tail = self.tail.borrow_mut();
                if tail.get(first).is_some() {
                    let mut i = first;
                    while i <= commit && batch.len() < READ_BATCH {
                        let Some(e) = tail.get(i) else { break };
                        let item = e.item.clone();
                        let nanos = e.local_nanos;
                        let cb = tail.take_callback(i);
                        batch.push((item, cb, nanos));
                        i += 1;
                    }
                }
            }
            if batch.is_empty() {
                let want = ((commit - applying) as usize).min(READ_BATCH);
                let read = match prefetch.take() {
                    Some((at, read)) if at == first => read.await,
                    _ => self.read_log(first, want).await,
                };
                let items = match read {
                    Ok(v) if !v.is_empty() && v[0].index == first => v,
                    Ok(_) => {
                        return self.fatal(format!(
                            "log read for apply at {first} returned a wrong entry"
                        ))
                    }
                    Err(e) => {
                        return self.fatal(format!("log read for apply at {first} failed: {e}"))
                    }
                };
                let next = first + items.len().min(want) as u64;
                let commit = self.apply_commit.get();
                if next <= commit {
                    // read on while these execute: the read and the execution overlap
                    let mut read =
                        self.read_log(next, ((commit + 1 - next) as usize).min(READ_BATCH));
                    if let Poll::Ready(r) = poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await
                    {
                        read = Box::pin(std::future::ready(r));
                    }
                    prefetch = Some((next, read));
                }
                let ts = self.group.now();
                for it in items.into_iter().take(want) {
                    // localCreateNanos of a replayed entry: now - (wall now - timestamp)
                    let age = (ts.wall_millis - it.timestamp).max(0) * 1_000_000;
                    batch.push((it, None, ts.nano_time - age));
                }
            }
            let mut n = 0;
            let mut run = batch.drain(..);
            for (item, cb, nanos) in run.as_slice().iter().take(PREPARE_AHEAD) {
                self.prepare_one(item, cb.is_some(), *nanos);
            }
            while let Some((item, cb, nanos)) = run.next() {
                if let Some((ahead, ahead_cb, ahead_nanos)) = run.as_slice().get(PREPARE_AHEAD - 1)
                {
                    self.prepare_one(ahead, ahead_cb.is_some(), *ahead_nanos);
                }
                let index = item.index;
                if index != applying + 1 {
                    return self.fatal(format!("apply out of order: {index} after {applying}"));
                }
                let mut out = self.exec_one(&item, cb.is_some(), nanos);
                if let Outcome::Pending(f) = &mut out {
                    // poll once so that a lazy future starts its work now, beside the
                    // earlier ones (completions are still taken in index order)
                    if let Poll::Ready(r) = poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await {
                        out = Outcome::Done(r);
                    }
                }
                let config = self.config_entry_of(&item);
                let e = InFlight {
                    index,
                    term: item.term,
                    read_only: item.item_type == TYPE_LOG_READ,
                    config,
                    cb,
                    out,
                };
                applying = index;
                if flight.is_empty() && !matches!(e.out, Outcome::Pending(_)) {
                    // done, and nothing before it is still running: complete it now
                    // rather than queueing it to be taken out again
                    if let Some(why) = self.complete(e, &mut applied, &mut applied_term) {
                        return self.fatal(why);
                    }
                } else {
                    flight.push_back(e);
                }
                n += 1;
                if n % 100 == 0 {
                    dt_fiber::yield_now().await;
                }
            }
        }
    }

    /// Hints the state machine that `item` is executed soon ([`StateMachine::prepare`]);
    /// only normal entries (what the state machine executes in every case).
    fn prepare_one(&self, item: &LogItem, has_caller: bool, nanos: i64) {
        if item.item_type == TYPE_NORMAL {
            self.sm
                .borrow_mut()
                .prepare(&exec_entry(item, has_caller, nanos));
        }
    }

    /// Starts the execution of one committed entry.
    fn exec_one(&self, item: &LogItem, has_caller: bool, nanos: i64) -> Outcome<S::Output> {
        let run = match item.item_type {
            TYPE_NORMAL => true,
            TYPE_LOG_READ => has_caller,
            // heartbeats; configuration entries (applied through the core when they
            // are settled in order, see `apply_config`)
            _ => false,
        };
        if !run {
            return Outcome::Noop;
        }
        let entry = exec_entry(item, has_caller, nanos);
        let perf = &self.cfg.perf;
        let t = perf.start(PerfType::RaftStateMachineExec);
        let exec = self.sm.borrow_mut().exec(&entry);
        match exec {
            Exec::Done(r) => {
                perf.end(PerfType::RaftStateMachineExec, t, 1, 0);
                Outcome::Done(r)
            }
            Exec::Pending(f) if t != 0 => {
                // timed until the state machine completes it
                let perf = perf.clone();
                Outcome::Pending(Box::pin(async move {
                    let r = f.await;
                    perf.end(PerfType::RaftStateMachineExec, t, 1, 0);
                    r
                }))
            }
            Exec::Pending(f) => Outcome::Pending(f),
        }
    }

    /// Completes the finished executions at the front of `flight` in order (polling
    /// the first pending one once), calling their callers. Returns why the group must
    /// stop if a write entry failed.
    fn settle(
        &self,
        flight: &mut VecDeque<InFlight<S::Output>>,
        applied: &mut Index,
        applied_term: &mut Term,
        cx: &mut std::task::Context<'_>,
    ) -> Option<String> {
        while let Some(front) = flight.front_mut() {
            if let Outcome::Pending(f) = &mut front.out {
                match f.as_mut().poll(cx) {
                    Poll::Ready(r) => front.out = Outcome::Done(r),
                    Poll::Pending => return None,
                }
            }
            let e = flight.pop_front().expect("checked");
            if let Some(why) = self.complete(e, applied, applied_term) {
                return Some(why);
            }
        }
        None
    }

    /// Completes one finished execution (the first in index order): applies its
    /// configuration, calls its caller, and advances `applied`. Returns why the group
    /// must stop if a write entry failed.
    fn complete(
        &self,
        e: InFlight<S::Output>,
        applied: &mut Index,
        applied_term: &mut Term,
    ) -> Option<String> {
        if let Some(entry) = &e.config {
            if let Err(why) = self.apply_config(e.index, entry) {
                return Some(why);
            }
        }
        match e.out {
            Outcome::Noop | Outcome::Pending(_) => {}
            Outcome::Done(Ok(o)) => {
                if let Some(cb) = e.cb {
                    call(cb, Ok((e.index, o)));
                }
            }
            Outcome::Done(Err(err)) if e.read_only => {
                if let Some(cb) = e.cb {
                    call(cb, Err(RaftError::StateMachine(err)));
                }
            }
            Outcome::Done(Err(err)) => {
                return Some(format!("state machine failed at index {}: {err}", e.index));
            }
        }
        *applied = e.index;
        *applied_term = e.term;
        None
    }

    fn applied(&self, index: Index) {
        let now = self.now();
        let (was_ready, ready) = {
            let mut c = self.core();
            let was = c.group_ready();
            c.on_applied(now, index);
            (was, c.group_ready())
        };
        self.answer_config_waiters(index);
        let mut changed = ready != was_ready;
        if !self.init_finished.get() && index >= self.init_commit.get() {
            self.init_finished.set(true);
            changed = true;
            if let Some((first, started)) = self.init_replay.take() {
                log::info!(
                    "raft group {}: replayed {} entries in {} ms",
                    self.cfg.group_id,
                    self.init_commit.get() + 1 - first,
                    (self.nanos() - started) / 1_000_000
                );
            }
        }
        let cached_from = self.tail.borrow().first_index().unwrap_or(Index::MAX);
        let droppable = self.core().tail_droppable_upto(cached_from);
        self.tail.borrow_mut().evict(
            index,
            droppable,
            self.nanos() - TAIL_KEEP_NANOS,
            self.cfg.max_cache_tasks,
            self.cfg.max_cache_task_bytes,
        );
        self.run_actions();
        if changed {
            self.publish();
            if ready {
                self.ready.signal_all();
            }
        }
    }

    /// Inbound requests, in arrival order.
    async fn inbound_loop(self: Rc<Self>, chan: Rc<FiberChannel<Inbound>>) {
        let mut buf = Vec::new();
        loop {
            match chan.take_all(&mut buf, None, false).await {
                Ok(_) => {}
                Err(_) => return,
            }
            for m in buf.drain(..) {
                self.inbound(m);
            }
            self.run_actions();
        }
    }

    fn next_req(&self) -> ReqId {
        let mut b = self.book.borrow_mut();
        b.next_req += 1;
        b.next_req
    }

    fn inbound(&self, m: Inbound) {
        if self.group.should_stop() {
            return m.fail(InboundError::GroupStopped);
        }
        let now = self.now();
        match m {
            Inbound::Vote(req, reply) => {
                let id = self.next_req();
                self.book.borrow_mut().votes.insert(id, (req.term, reply));
                self.core().handle_vote(now, id, &req);
            }
            Inbound::Append(req, reply) => {
                let spare = self.core().spare_entries();
                let core_req = match req.to_core_in(spare) {
                    Ok(r) => r,
                    Err(e) => return call(reply, Err(InboundError::Invalid(e.to_string()))),
                };
                let mut items = self.log.spare_items();
                items.reserve(req.logs.len());
                for l in &req.logs {
                    match LogItem::try_from(l) {
                        Ok(i) => items.push(i),
                        Err(e) => return call(reply, Err(InboundError::Invalid(e.to_string()))),
                    }
                }
                let id = self.next_req();
                self.book.borrow_mut().appends.insert(
                    id,
                    Received {
                        term: req.term as Term,
                        written: false,
                        items,
                        reply: Some(reply),
                    },
                );
                self.core().handle_append_owned(now, id, core_req);
            }
            Inbound::TransferLeader(req, reply) => {
                let id = self.next_req();
                self.book.borrow_mut().transfers.insert(id, reply);
                self.core().handle_transfer_leader(now, id, &req);
            }
            Inbound::QueryStatus(reply) => call(reply, Ok(self.query_status_resp())),
            Inbound::InstallSnapshot(req, reply) => {
                let core_req = match crate::core::InstallReq::try_from(&req) {
                    Ok(r) => r,
                    Err(e) => return call(reply, Err(InboundError::Invalid(e.to_string()))),
                };
                if let Some(sets) = &core_req.sets {
                    // the first request's configuration is applied like a
                    // configuration entry's (§12.3): every node it names must be in
                    // the node table
                    let unknown = {
                        let c = self.core();
                        c.adopts_install_sets(sets)
                            .then(|| self.unknown_node(sets))
                            .flatten()
                            .map(|id| (id, c.term()))
                    };
                    if let Some((node, term)) = unknown {
                        log::error!(
                            "raft group {}: install snapshot from node {}: its configuration \
                             {sets:?} names node {node}, not in the node table (node not exist)",
                            self.cfg.group_id,
                            core_req.leader_id
                        );
                        let resp = AppendResp::new(term, crate::core::AppendCode::ServerError);
                        return call(reply, Ok(resp));
                    }
                }
                let id = self.next_req();
                {
                    let mut b = self.book.borrow_mut();
                    b.appends.insert(
                        id,
                        Received {
                            term: core_req.term,
                            written: false,
                            items: Vec::new(),
                            reply: Some(reply),
                        },
                    );
                    b.install_data.insert(id, (core_req.offset, req.data));
                }
                self.core().handle_install_snapshot(now, id, &core_req);
            }
            Inbound::MemberReady(node, ready) => self.core().set_member_ready(now, node, ready),
        }
    }

    /// The linear task runner (raft.md §6.3) and the other requests of the handle.
    async fn request_loop(self: Rc<Self>, chan: Rc<FiberChannel<Request<S::Output>>>) {
        let mut buf = Vec::new();
        let mut batch: Vec<Submitted<S::Output>> = Vec::new();
        // scratch of `propose`, kept between batches
        let mut verdicts: Vec<Verdict> = Vec::new();
        let mut sizes: Vec<u64> = Vec::new();
        let mut changes: Vec<(ConfigChange, Reply<Index>)> = Vec::new();
        loop {
            if chan.take_all(&mut buf, None, false).await.is_err() {
                return;
            }
            let now = self.now();
            if self.group.should_stop() {
                for r in buf.drain(..) {
                    r.fail(RaftError::Stopped);
                }
                continue;
            }
            for r in buf.drain(..) {
                match r {
                    Request::Submit(input, cb, submitted) => {
                        self.cfg
                            .perf
                            .end(PerfType::RaftLeaderRunnerFiberLatency, submitted, 1, 0);
                        let deadline = input.timeout.map(|t| now + t.as_millis() as u64);
                        batch.push((input, cb, deadline));
                    }
                    Request::LeaseRead(timeout, reply) => self.lease_read(timeout, reply),
                    Request::Transfer(to, timeout, reply) => self.transfer(to, timeout, reply),
                    Request::Status(reply) => call(reply, Ok(self.snapshot_status())),
                    Request::Config(change, reply) => changes.push((change, reply)),
                }
            }
            if batch.is_empty() && changes.is_empty() {
                continue;
            }
            // a leader transfer holds new proposals (and membership changes) until it ends
            while self.core().transfer_in_progress() {
                let _ = dt_fiber::sleep(Duration::from_millis(5)).await;
            }
            if !batch.is_empty() {
                self.propose(&mut batch, &mut verdicts, &mut sizes);
            }
            for (change, reply) in changes.drain(..) {
                self.config_change(change, reply);
            }
        }
    }

    /// Proposes the accepted inputs of `batch` (draining it) and fails the others;
    /// `verdicts` and `sizes` are empty scratch vectors the caller keeps, so a batch
    /// allocates none. The checks run over the batch in place, and each input is moved
    /// once, into its log item, or its caller is failed.
    fn propose(
        &self,
        batch: &mut Vec<Submitted<S::Output>>,
        verdicts: &mut Vec<Verdict>,
        sizes: &mut Vec<u64>,
    ) {
        let now = self.now();
        let (mut tasks, mut bytes) = {
            let t = self.tail.borrow();
            (t.pending_tasks, t.pending_bytes)
        };
        debug_assert!(verdicts.is_empty() && sizes.is_empty());
        for (input, _, deadline) in batch.iter() {
            let total = total_len(input.header.len(), input.body.len()) as u64;
            let v = if input.biz_type > 127 {
                Verdict::BizType(input.biz_type)
            } else if !input.read_only && total > self.cfg.log_file_size {
                // The log cannot store it (an item never spans segments): refused here,
                // or the write would fail and stop the group.
                Verdict::TooLarge(total)
            } else if deadline.is_some_and(|d| now >= d) {
                Verdict::Timeout
            } else if tasks >= self.cfg.max_pending_tasks
                || bytes >= self.cfg.max_pending_task_bytes
            {
                Verdict::FlowControl(tasks, bytes)
            } else {
                tasks += 1;
                let size = input.size();
                bytes += size;
                sizes.push(size as u64);
                Verdict::Accept
            };
            verdicts.push(v);
        }
        let proposed = if sizes.is_empty() {
            None
        } else {
            Some(self.core().propose_sized(now, sizes))
        };
        sizes.clear();
        let ts = self.group.now();
        let (mut index, mut prev) = match &proposed {
            Some(Ok(p)) => (p.first_index, p.prev_log_term),
            _ => (0, 0),
        };
        for ((input, cb, _), v) in batch.drain(..).zip(verdicts.drain(..)) {
            let err = match v {
                // (an accepted input means something was proposed)
                Verdict::Accept => match &proposed {
                    Some(Ok(p)) => {
                        let item = LogItem {
                            item_type: if input.read_only {
                                TYPE_LOG_READ
                            } else {
                                TYPE_NORMAL
                            },
                            biz_type: input.biz_type,
                            term: p.term,
                            prev_log_term: prev,
                            index,
                            timestamp: ts.wall_millis,
                            header: input.header,
                            body: input.body,
                        };
                        prev = p.term;
                        index += 1;
                        // borrowed per entry: the callers failed below must not find
                        // the tail borrowed
                        self.tail.borrow_mut().push(TailEntry {
                            item,
                            cb: Some(cb),
                            local_nanos: ts.nano_time,
                        });
                        continue;
                    }
                    Some(Err(nl)) => RaftError::NotLeader { leader: nl.leader },
                    None => RaftError::NotLeader { leader: None },
                },
                Verdict::BizType(b) => RaftError::InvalidInput(format!("bizType {b} above 127")),
                Verdict::TooLarge(n) => RaftError::InvalidInput(format!(
                    "entry of {n} bytes is larger than a log file ({} bytes)",
                    self.cfg.log_file_size
                )),
                Verdict::Timeout => RaftError::Timeout,
                Verdict::FlowControl(pending_tasks, pending_bytes) => RaftError::FlowControl {
                    pending_tasks,
                    pending_bytes,
                },
            };
            call(cb, Err(err));
        }
        if proposed.is_some() {
            self.run_actions();
        }
    }

    fn lease_read(&self, timeout: Option<Duration>, reply: Reply<()>) {
        let now = self.now();
        let r = self.core().lease_read(now);
        match r {
            Ok(()) => call(reply, Ok(())),
            Err(LeaseError::NotLeader(l)) => call(reply, Err(RaftError::NotLeader { leader: l })),
            Err(LeaseError::Expired(_)) => call(reply, Err(RaftError::NotLeader { leader: None })),
            Err(LeaseError::NotReady) => {
                let d = self.self_rc();
                let limit = timeout.unwrap_or(Duration::from_millis(self.cfg.rpc_timeout_ms));
                let deadline = now + limit.as_millis() as u64;
                self.spawn("raft-lease-wait", async move {
                    loop {
                        let now = d.now();
                        if now >= deadline {
                            return call(reply, Err(RaftError::Timeout));
                        }
                        let r = d.core().lease_read(now);
                        match r {
                            Ok(()) => return call(reply, Ok(())),
                            Err(LeaseError::NotReady) => {}
                            Err(LeaseError::NotLeader(l)) => {
                                return call(reply, Err(RaftError::NotLeader { leader: l }))
                            }
                            Err(LeaseError::Expired(_)) => {
                                return call(reply, Err(RaftError::NotLeader { leader: None }))
                            }
                        }
                        let _ = d
                            .ready
                            .wait_timeout(Duration::from_millis(deadline - now))
                            .await;
                    }
                });
            }
        }
    }

    fn transfer(&self, to: NodeId, timeout: Duration, reply: Reply<()>) {
        let now = self.now();
        if self.book.borrow().transfer_reply.is_some() {
            return call(reply, Err(RaftError::Transfer(TransferError::InProgress)));
        }
        let r = self
            .core()
            .start_transfer(now, to, now + timeout.as_millis() as u64);
        match r {
            Ok(()) => {
                self.book.borrow_mut().transfer_reply = Some(reply);
                self.run_actions();
            }
            Err(e) => call(reply, Err(RaftError::Transfer(e))),
        }
    }
}

// ------------------------------------------------------------ membership change

impl<S: StateMachine> Driver<S> {
    /// Proposes the configuration entry of an admin membership change (raft.md §11.3)
    /// and keeps the caller until the entry is applied.
    fn config_change(&self, change: ConfigChange, reply: Reply<Index>) {
        let now = self.now();
        let node_exists = self.opts.node_exists.clone();
        let proposed = {
            let mut c = self.core();
            match &change {
                ConfigChange::Prepare {
                    members,
                    observers,
                    prepared_members,
                    prepared_observers,
                } => c.prepare_config_change(
                    now,
                    members,
                    observers,
                    prepared_members,
                    prepared_observers,
                    |id| node_exists.as_ref().is_none_or(|f| f(id)),
                ),
                ConfigChange::Commit { prepare_index } => {
                    c.commit_config_change(now, *prepare_index)
                }
                ConfigChange::Abort => c.abort_config_change(now),
            }
        };
        let p = match proposed {
            Ok(p) => p,
            Err(ConfigChangeError::NotLeader(leader)) => {
                return call(reply, Err(RaftError::NotLeader { leader }))
            }
            Err(e) => return call(reply, Err(RaftError::ConfigChange(e))),
        };
        let index = p.proposed.first_index;
        log::info!(
            "raft group {}: membership change {:?} written at {index}",
            self.cfg.group_id,
            p.entry
        );
        let ts = self.group.now();
        self.log_configs.borrow_mut().insert(index, p.entry.clone());
        self.sync_log_configs();
        self.tail.borrow_mut().push(TailEntry {
            item: LogItem {
                item_type: p.entry.item_type() as u8,
                term: p.proposed.term,
                prev_log_term: p.proposed.prev_log_term,
                index,
                timestamp: ts.wall_millis,
                body: p.entry.body().into(),
                ..Default::default()
            },
            cb: None,
            local_nanos: ts.nano_time,
        });
        self.book.borrow_mut().config_waiters.push(ConfigWaiter {
            index,
            reply_at: None,
            reply,
        });
        self.run_actions();
    }

    /// The configuration entry a log item holds, if it is one (a body that cannot be
    /// parsed is logged and applied as nothing).
    fn config_entry_of(&self, item: &LogItem) -> Option<ConfigEntry> {
        let t = item.item_type as i32;
        if !ConfigEntry::is_config_type(t) {
            return None;
        }
        match ConfigEntry::decode(t, &item.body) {
            Ok(e) => Some(e),
            Err(e) => {
                log::error!(
                    "raft group {}: configuration entry {} ignored: {e}",
                    self.cfg.group_id,
                    item.index
                );
                None
            }
        }
    }

    /// The first id of `sets` missing from the node table ([`DriverOptions::node_exists`];
    /// without it every id is known).
    fn unknown_node(&self, sets: &MemberSets) -> Option<NodeId> {
        let exists = self.opts.node_exists.as_ref()?;
        sets.members
            .iter()
            .chain(&sets.observers)
            .chain(&sets.prepared_members)
            .chain(&sets.prepared_observers)
            .copied()
            .find(|&id| !exists(id))
    }

    /// Applies the configuration entry at `index` (every earlier entry is applied):
    /// the core switches its sets; the status is published, the lanes of peers that
    /// left are stopped and the config hook runs.
    ///
    /// §11.2 step 3: when the entry changes the sets, every id of the current and the
    /// new sets must be in the node table; otherwise the entry is not applied and the
    /// error returned is fatal to the group (the reference's apply fiber fails the
    /// same way: a node that has not been told about a node with ADD_NODE cannot run a
    /// configuration naming it).
    fn apply_config(&self, index: Index, entry: &ConfigEntry) -> Result<(), String> {
        let now = self.now();
        {
            let mut m = self.log_configs.borrow_mut();
            *m = m.split_off(&(index + 1));
        }
        self.sync_log_configs();
        let (res, sets) = {
            let mut c = self.core();
            if let Some(next) = c.config_entry_sets(entry) {
                if let Some(id) = self
                    .unknown_node(c.member_sets())
                    .or_else(|| self.unknown_node(&next))
                {
                    return Err(format!(
                        "applying configuration entry {index} ({next:?}): node not exist: {id}"
                    ));
                }
            }
            let r = c.apply_config_entry(now, index, entry);
            (r, c.member_sets().clone())
        };
        if res.old_sets_mismatch {
            log::error!(
                "raft group {}: config entry {index}: old sets differ from the current {sets:?}",
                self.cfg.group_id
            );
        }
        for w in self.book.borrow_mut().config_waiters.iter_mut() {
            if w.index == index {
                w.reply_at = Some(res.reply_when_applied);
            }
        }
        if res.changed {
            log::info!(
                "raft group {}: members now {sets:?} (entry {index})",
                self.cfg.group_id
            );
            self.close_removed_lanes();
            self.publish();
            if let Some(h) = &self.opts.config_hook {
                h(&sets, &res);
            }
        }
        Ok(())
    }

    /// Answers the membership changes whose entries are applied far enough.
    fn answer_config_waiters(&self, applied: Index) {
        let done: Vec<ConfigWaiter> = {
            let mut b = self.book.borrow_mut();
            if b.config_waiters.is_empty() {
                return;
            }
            let (done, keep) = std::mem::take(&mut b.config_waiters)
                .into_iter()
                .partition(|w| w.reply_at.is_some_and(|r| r <= applied));
            b.config_waiters = keep;
            done
        };
        for w in done {
            call(w.reply, Ok(w.index));
        }
    }

    /// Stops the replication fibers of peers the core no longer replicates to.
    fn close_removed_lanes(&self) {
        let gone: Vec<NodeId> = {
            let c = self.core();
            self.peers
                .borrow()
                .keys()
                .copied()
                .filter(|id| c.progress(*id).is_none())
                .collect()
        };
        for id in gone {
            if let Some(l) = self.peers.borrow_mut().remove(&id) {
                log::info!(
                    "raft group {}: replication to node {id} stopped",
                    self.cfg.group_id
                );
                l.closed.set(true);
                l.send_notify.notify();
                l.ack_notify.notify();
            }
        }
    }
}

// -------------------------------------------------------------- install snapshot

impl<S: StateMachine> Driver<S> {
    /// Hands every waiting snapshot request a snapshot of the state after `index`
    /// (called by the apply fiber between entries).
    fn serve_snapshot_wants(&self, index: Index, term: Term) {
        let wants = std::mem::take(&mut *self.snapshot_wants.borrow_mut());
        if wants.is_empty() {
            return;
        }
        let info = {
            let c = self.core();
            SnapshotInfo::new(index, term, c.member_sets(), c.last_config_change_index())
        };
        for w in wants {
            let fut = self.sm.borrow_mut().take_snapshot(&info);
            w.send(fut);
        }
    }

    /// A fresh snapshot of the live state machine at lastApplied (raft.md §17 item
    /// 15), taken by the apply fiber between entries.
    async fn fresh_snapshot(&self) -> Result<Box<dyn Snapshot>, String> {
        if !self.apply_alive.get() {
            return Err("the apply fiber stopped".into());
        }
        let (tx, rx) = super::oneshot::oneshot();
        self.snapshot_wants.borrow_mut().push(tx);
        self.apply_notify.notify();
        let fut = rx
            .await
            .ok_or_else(|| "the apply fiber stopped".to_string())?;
        fut.await.map_err(|e| format!("take snapshot: {e}"))
    }

    /// Leader (§12.2): streams a fresh snapshot to `to`. `Ok(Some(index))` when the
    /// last request succeeded, `Ok(None)` when the core ended the stream (its reply
    /// was handled), `Err` on a send or read failure.
    async fn send_snapshot(
        &self,
        to: NodeId,
        start: &InstallStart,
    ) -> Result<Option<Index>, String> {
        let mut snap = self.fresh_snapshot().await?;
        let r = self.stream_snapshot(to, start, snap.as_mut()).await;
        snap.close();
        r
    }

    async fn stream_snapshot(
        &self,
        to: NodeId,
        start: &InstallStart,
        snap: &mut dyn Snapshot,
    ) -> Result<Option<Index>, String> {
        let gid = self.cfg.group_id;
        let (index, term) = {
            let i = snap.info();
            (i.last_included_index, i.last_included_term)
        };
        let next_write_pos = if index == 0 {
            0
        } else {
            self.log
                .load_next_item_pos(index)
                .await
                .map_err(|e| format!("nextWritePos of {index}: {e}"))?
        };
        let timeout = Duration::from_millis(self.cfg.rpc_timeout_ms);
        // the first request: configuration, no data
        let first = rpc::InstallSnapshotReq::first_from_core(gid, start, index, term);
        if !self.install_step(to, start, first, timeout).await? {
            return Ok(None);
        }
        let base = rpc::InstallSnapshotReq {
            group_id: gid,
            term: start.term as i32,
            leader_id: start.leader_id as i32,
            last_included_index: index as i64,
            last_included_term: term as i32,
            ..Default::default()
        };
        let concurrency = self.cfg.replicate_snapshot_concurrency.max(1);
        let chunk = self.cfg.replicate_snapshot_buffer_size.max(1);
        let mut flight: VecDeque<RpcFuture<AppendResp>> = VecDeque::new();
        let mut offset: u64 = 0;
        loop {
            let mut buf = BytesMut::with_capacity(chunk);
            while buf.len() < chunk {
                let n = snap
                    .read_next(&mut buf)
                    .await
                    .map_err(|e| format!("reading the snapshot: {e}"))?;
                if n == 0 {
                    break;
                }
            }
            if buf.is_empty() {
                break;
            }
            if !self.core().install_current(to, start) {
                return Ok(None);
            }
            let len = buf.len() as u64;
            let mut req = base.clone();
            req.offset = offset as i64;
            req.data = buf.freeze();
            offset += len;
            flight.push_back(self.transport.send_install_snapshot(to, req));
            if flight.len() >= concurrency {
                let f = flight.pop_front().expect("not empty");
                if !self.install_answer(to, start, f, timeout).await? {
                    return Ok(None);
                }
            }
        }
        while let Some(f) = flight.pop_front() {
            if !self.install_answer(to, start, f, timeout).await? {
                return Ok(None);
            }
        }
        let mut last = base;
        last.offset = offset as i64;
        last.done = true;
        last.next_write_pos = next_write_pos as i64;
        if !self.install_step(to, start, last, timeout).await? {
            return Ok(None);
        }
        Ok(Some(index))
    }

    async fn install_step(
        &self,
        to: NodeId,
        start: &InstallStart,
        req: rpc::InstallSnapshotReq,
        timeout: Duration,
    ) -> Result<bool, String> {
        if !self.core().install_current(to, start) {
            return Ok(false);
        }
        let f = self.transport.send_install_snapshot(to, req);
        self.install_answer(to, start, f, timeout).await
    }

    /// Awaits one install reply and hands it to the core: true to go on.
    async fn install_answer(
        &self,
        to: NodeId,
        start: &InstallStart,
        f: RpcFuture<AppendResp>,
        timeout: Duration,
    ) -> Result<bool, String> {
        let resp = with_timeout(f, timeout)
            .await
            .map_err(|e| format!("install request: {e}"))?;
        let now = self.now();
        let go = self.core().handle_install_resp(now, to, start, &resp);
        if !go {
            self.run_actions();
        }
        Ok(go)
    }

    fn push_install(&self, op: InstallOp) {
        self.install_ops.borrow_mut().push_back(op);
        self.install_notify.notify();
    }

    /// Follower (§12.3): runs the install steps in order.
    async fn install_loop(self: Rc<Self>) {
        loop {
            let next = self.install_ops.borrow_mut().pop_front();
            let Some(op) = next else {
                self.install_notify.notified().await;
                continue;
            };
            match op {
                InstallOp::Begin {
                    req,
                    index,
                    term,
                    vote,
                } => {
                    let r = self.install_begin(index, term, vote).await;
                    if let Err(e) = &r {
                        log::error!(
                            "raft group {}: install begin failed: {e}",
                            self.cfg.group_id
                        );
                    }
                    let now = self.now();
                    self.core().on_install_begun(now, req, r.is_ok());
                }
                InstallOp::Data { req } => {
                    let r = self.install_chunk(req, false).await;
                    if let Err(e) = &r {
                        log::warn!(
                            "raft group {}: install chunk failed: {e}",
                            self.cfg.group_id
                        );
                    }
                    let now = self.now();
                    self.core().on_install_data_done(now, req, r.is_ok());
                }
                InstallOp::Finish {
                    req,
                    index,
                    term,
                    next_write_pos,
                } => {
                    let r = self.install_finish(req, index, term, next_write_pos).await;
                    if let Err(e) = &r {
                        log::error!(
                            "raft group {}: install finish failed: {e}",
                            self.cfg.group_id
                        );
                    }
                    let now = self.now();
                    self.core().on_install_complete(now, req, r.is_ok());
                    if r.is_ok() {
                        log::info!(
                            "raft group {}: snapshot installed up to {index} (term {term})",
                            self.cfg.group_id
                        );
                        self.init_finished.set(true);
                        // refuses_votes_for_install and the sets moved
                        self.publish();
                        self.save_notify.notify();
                    }
                }
            }
            self.run_actions();
        }
    }

    /// The first install request: stop applying, fail pending tasks, drop the tail
    /// cache and the log (installSnapshot persisted by the log).
    async fn install_begin(
        &self,
        index: Index,
        term: Term,
        vote: Option<(Term, Index)>,
    ) -> Result<(), String> {
        // Never below what this node persisted as committed (a node waiting for an
        // install after a restart builds its core at its snapshot, so the core's own
        // check cannot see it): the log could not take the entries after it.
        let durable_commit = self.log.persisted_state().map_or(0, |s| s.commit_index);
        if index < durable_commit {
            return Err(format!(
                "snapshot at {index} is older than the commit index {durable_commit} persisted here"
            ));
        }
        self.apply_pause.set(true);
        self.apply_notify.notify();
        while !self.apply_idle.get() {
            if !self.apply_alive.get() {
                return Err("the apply fiber stopped".into());
            }
            self.apply_idle_notify.notified().await;
        }
        {
            let leader = self.core().leader();
            let mut cbs = Vec::new();
            {
                let mut t = self.tail.borrow_mut();
                t.take_callbacks(&mut cbs);
                t.truncate_after(0, &mut cbs);
            }
            for cb in cbs {
                call(cb, Err(RaftError::NotLeader { leader }));
            }
        }
        // entries still queued for the writer must reach the log before it is dropped
        if !self.writes_handed().await {
            return Err("the log writer stopped".into());
        }
        let begun = match vote {
            Some(v) => self.log.begin_install_voting(v).await,
            None => self.log.begin_install().await,
        };
        begun.map_err(|e| format!("log begin install: {e}"))?;
        let info = {
            let c = self.core();
            SnapshotInfo::new(index, term, c.member_sets(), index)
        };
        *self.install_info.borrow_mut() = Some(info.clone());
        // an install begun before (and not finished) is replaced: its partial file goes
        drop(self.install_sink.borrow_mut().take());
        if let Some(mgr) = self.snapshots.clone() {
            let sink = mgr.begin(info).await?;
            *self.install_sink.borrow_mut() = Some(sink);
        }
        Ok(())
    }

    /// Hands the data of install request `req` to the state machine.
    async fn install_chunk(&self, req: ReqId, done: bool) -> Result<(), String> {
        let (offset, data) = self
            .book
            .borrow_mut()
            .install_data
            .remove(&req)
            .unwrap_or_default();
        let info = self
            .install_info
            .borrow()
            .clone()
            .ok_or_else(|| "no install begun".to_string())?;
        let fut = self.sm.borrow_mut().install_snapshot(SnapshotChunk {
            info: &info,
            offset,
            done,
            data: &data,
        });
        fut.await
            .map_err(|e| format!("state machine install: {e}"))?;
        if self.snapshots.is_some() && !data.is_empty() {
            // taken out while written (install requests are handled one at a time)
            let mut sink = self
                .install_sink
                .borrow_mut()
                .take()
                .ok_or_else(|| "the install's snapshot file failed earlier".to_string())?;
            sink.write(data).await?;
            *self.install_sink.borrow_mut() = Some(sink);
        }
        Ok(())
    }

    /// The last install request: the state machine finishes, the installed snapshot
    /// is saved as this node's own, the log restarts after `index` at
    /// `next_write_pos` (status persisted with installSnapshot = false and
    /// commitIndex = `index`), the apply fiber restarts at `index`.
    ///
    /// The save comes first: once the log restarts, this node accepts (and
    /// acknowledges) entries after `index`, and a restart must find the state up to
    /// `index` on its own disk. Saved later, a crash in between left an older snapshot
    /// and a log starting after `index`; the node then needed an install again, which
    /// drops the log, entries it had acknowledged with it (simulation seed 804430: a
    /// committed entry lost, and a leader elected without it).
    async fn install_finish(
        &self,
        req: ReqId,
        index: Index,
        term: Term,
        next_write_pos: u64,
    ) -> Result<(), String> {
        self.install_chunk(req, true).await?;
        let sink = self.install_sink.borrow_mut().take();
        if self.snapshots.is_some() && sink.is_none() {
            // never restart the log without the installed state on disk
            return Err("the install's snapshot file failed earlier".into());
        }
        // DELIBERATE BUG (feature sim-bugs, simulation self-test only): the log restarts
        // first and the snapshot is saved later, by the save fiber.
        #[cfg(feature = "sim-bugs")]
        let sink =
            sink.filter(|_| !crate::sim::bugs::is_active(crate::sim::bugs::Bug::SaveAfterInstall));
        if let Some(sink) = sink {
            self.store_snapshot(sink)
                .await
                .map_err(|e| format!("saving the installed snapshot: {e}"))?;
        }
        self.installs_done.set(self.installs_done.get() + 1);
        // with the snapshot's term, so that a restart before anything is written
        // finds an empty log after it rather than "install required" (RaftLog::init)
        self.log
            .finish_install_with_term(index + 1, next_write_pos, term)
            .await
            .map_err(|e| format!("log finish install: {e}"))?;
        self.log.set_commit_index(index);
        *self.install_info.borrow_mut() = None;
        if self.apply_commit.get() < index {
            self.apply_commit.set(index);
        }
        self.apply_reset.set(Some((index, term)));
        self.apply_pause.set(false);
        self.apply_notify.notify();
        Ok(())
    }
}

// -------------------------------------------------------------- snapshot saving

impl<S: StateMachine> Driver<S> {
    /// Saves a snapshot every `saveSnapshotSeconds`, or when asked (after an install).
    async fn save_loop(self: Rc<Self>) {
        let period = Duration::from_secs(self.cfg.save_snapshot_seconds.max(1));
        loop {
            let mut sleep = pin!(dt_fiber::sleep(period));
            poll_fn(|cx| {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                self.save_notify.poll_notified(cx)
            })
            .await;
            if self.group.should_stop() {
                return;
            }
            if let Err(e) = self.save_snapshot().await {
                log::warn!(
                    "raft group {}: saving a snapshot failed: {e}",
                    self.cfg.group_id
                );
            }
        }
    }

    /// Counts the bytes of entries handed to the log and asks the save fiber for a
    /// snapshot each time `saveSnapshotLogBytes` more have been written since the last
    /// save began (0: never; saves then come from `saveSnapshotSeconds` alone). At most
    /// one ask per threshold's worth of log: a save that cannot run (no snapshot files,
    /// an install under way) is not asked for again at every append.
    fn count_log_bytes(&self, items: &[LogItem]) {
        let limit = self.cfg.save_snapshot_log_bytes;
        if limit == 0 {
            return;
        }
        let n: u64 = items.iter().map(|i| i.encoded_len() as u64).sum();
        let total = self.log_bytes.get().saturating_add(n);
        self.log_bytes.set(total);
        if total >= self.save_at_log_bytes.get() {
            self.save_at_log_bytes.set(total.saturating_add(limit));
            self.save_notify.notify();
        }
    }

    /// Takes a snapshot of the state machine at lastApplied and saves it (fsynced),
    /// keeps `maxKeepSnapshots`, then lets the log be deleted up to the oldest kept
    /// one (`deleteLogsAfterTakeSnapshot`, after `autoDeleteLogDelaySeconds`).
    /// Returns the saved lastIncludedIndex (or the previous one when nothing new was
    /// applied).
    async fn save_snapshot(&self) -> Result<Index, String> {
        if self.snapshots.is_none()
            || self.saving.get()
            || self.apply_pause.get()
            || self.core().installing_snapshot()
        {
            return Ok(self.last_saved.get());
        }
        self.saving.set(true);
        // the log written from here on counts towards the next save
        let limit = self.cfg.save_snapshot_log_bytes;
        if limit > 0 {
            self.save_at_log_bytes
                .set(self.log_bytes.get().saturating_add(limit));
        }
        let r = self.save_snapshot_inner().await;
        self.saving.set(false);
        r
    }

    /// Finishes a snapshot written through `sink`, one finish at a time (a finish
    /// under way ends first; it never waits for the apply fiber, so an install may wait
    /// for it), and moves `last_saved` up to it. Returns the oldest snapshot index kept.
    async fn store_snapshot(&self, sink: SnapshotSink) -> Result<Index, String> {
        while self.storing.get() {
            self.store_done.notified().await;
        }
        let index = sink.info().last_included_index;
        self.storing.set(true);
        let stored = sink.finish().await;
        self.storing.set(false);
        self.store_done.notify();
        let oldest = stored?;
        self.last_saved.set(self.last_saved.get().max(index));
        Ok(oldest)
    }

    async fn save_snapshot_inner(&self) -> Result<Index, String> {
        let installs = self.installs_done.get();
        let mut snap = self.fresh_snapshot().await?;
        let info = snap.info().clone();
        let index = info.last_included_index;
        if index == 0 || index <= self.last_saved.get() {
            snap.close();
            return Ok(self.last_saved.get());
        }
        let Some(mgr) = self.snapshots.clone() else {
            snap.close();
            return Ok(self.last_saved.get());
        };
        // streamed: read a chunk, write it (the files take batches), never all at once
        let copied = async {
            let mut sink = mgr.begin(info.clone()).await?;
            loop {
                let mut buf = BytesMut::with_capacity(64 * 1024);
                match snap.read_next(&mut buf).await {
                    Ok(0) => break Ok(sink),
                    Ok(_) => sink.write(buf.freeze()).await?,
                    Err(e) => break Err(format!("reading the snapshot: {e}")),
                }
            }
        }
        .await;
        snap.close();
        let sink = copied?;
        // An install began or ended meanwhile: this state is not the node's any more
        // (the install saves its own); the sink's partial file is dropped.
        if self.install_info.borrow().is_some() || self.installs_done.get() != installs {
            return Ok(self.last_saved.get());
        }
        let oldest = self.store_snapshot(sink).await?;
        log::info!(
            "raft group {}: snapshot saved at {index} (term {})",
            self.cfg.group_id,
            info.last_included_term
        );
        if self.cfg.delete_logs_after_take_snapshot {
            self.log.mark_truncate_by_index(
                oldest,
                Duration::from_secs(self.cfg.auto_delete_log_delay_seconds),
            );
        }
        Ok(index)
    }
}

/// The nodes `c` replicates to that its member sets' replicate list does not name
/// ([`GroupStatus::log_config_nodes`]).
fn log_config_nodes(c: &RaftCore) -> Vec<NodeId> {
    // built without a list of the targets: empty (no allocation) in the steady state,
    // where the log holds no configuration entry above lastApplied
    let sets = c.member_sets();
    let mut out = Vec::new();
    c.for_each_replication_target(|id| {
        if !sets.in_replicate_list(id) && !out.contains(&id) {
            out.push(id);
        }
    });
    out
}
