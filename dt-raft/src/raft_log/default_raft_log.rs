//! `DefaultRaftLog`: [`LogStore`] owned by the group's thread, its file work on IO
//! threads, with group commit.
//!
//! # One owner
//!
//! Everything about the log (positions, segments, the tail cache, the index cache, the
//! watermarks, the status values) lives in one [`LogStore`] that only the thread
//! calling the [`RaftLog`] methods touches: `DefaultRaftLog` is neither `Send` nor
//! `Sync`, and its state sits in a `RefCell`, not behind a mutex. File work is planned
//! there, in memory, as a job holding only buffers and open file handles (see
//! `store::log_store::split`); an IO thread of the [`Executor`] runs the job and posts
//! its result back as a message. Messages are applied on the owner's thread whenever
//! one of the log's methods is called or one of its futures is polled; an IO thread
//! finishing a job wakes the futures waiting on the log.
//!
//! # Group commit
//!
//! Appends are encoded and given positions at once (the entries are readable from the
//! tail cache right away) and queued. A write job writes every batch queued when it
//! started, then issues one `fdatasync` per segment touched, and its completion
//! acknowledges those appends. With `sync_force`, a log alone on its write lane may
//! have two write jobs in flight: the next one is handed to the lane while the last
//! one's fsync runs, so that the lane's IO thread can go from that fsync straight to
//! the next write instead of waiting for the owner's thread to see the result first
//! (on a loaded 2-core machine that wait was often longer than the fsync). The lane
//! runs the jobs in order and the fsync batcher answers in order, so jobs complete in
//! the order they started, and each one acknowledges only its own appends. A job that
//! would create a segment waits until none is in flight (the one in flight may be
//! creating it). Appends that arrive while the jobs are in flight queue up and share
//! the next job: the more load, the bigger the groups. Measured with DtKV async put
//! (dt-bench, 1 node, interleaved pairs of runs): 310k to 347k ops/s on average over
//! five pairs while the machine was loaded, 434k to 444k over five pairs later. A lane
//! shared by several logs keeps one job per log in flight (see `Owner::max_writes`).
//! With `sync_force` off, appends are acknowledged once written and the `fdatasync`
//! follows as its own job before the next write (one job in flight).
//!
//! With an [`FsyncBatcher`](crate::store::fsync_batcher::FsyncBatcher), the logs owned
//! by one thread (a dispatcher's groups) share one write lane: the write jobs they
//! start in one pass of the dispatcher run back to back on one IO thread, and their
//! fsyncs go to the batcher together, as one round. With 100 groups this took
//! `raft_bench` from about 58k to 84k ops/s (interleaved runs on 2 cores): the
//! per-log lanes had each woken a pool thread and led or joined a round of their own.
//!
//! # Prefill
//!
//! With `sync` on and [`StoreConfig::prefill_bytes`] above 0, a job on another IO
//! thread keeps the stretch of the current segment past the write position zero-filled
//! and fsynced (`store::log_store::prefill`), so that appends' fsyncs do not also
//! allocate blocks. The stretch grows with the bytes the log wrote since it opened (in
//! 64 KiB steps, up to `prefill_bytes`): a quiet group does not prefill at all. A prefill starts at or past the end of every batch prepared so far,
//! and a write job that would reach into a prefill in flight waits for it.
//!
//! # Failures
//!
//! A write or fsync error, a panic in any IO job, a job the executor refuses or drops
//! without running: each puts the log in the failed state (fail-stop). The appends
//! waiting on it and every later one get [`StoreError::Failed`] naming the first cause;
//! nothing hangs.
//!
//! # Rare whole-store operations
//!
//! `init`, `begin_install`, `finish_install` and `close` hand the whole `LogStore` to an
//! IO job (moved, not shared) once nothing else is in flight, and get it back with the
//! result; in between, calls that need the store fail with
//! [`StoreError::Installing`] or [`StoreError::Closed`].

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::{LogFuture, LogIterator, RaftLog};
use crate::store::fsync_batcher::defer_syncs;
use crate::store::log_store::{
    sync_files, IndexFlush, Lookup, PrefillGate, ReadPlan, TruncatePlan, WriteDone,
};
use crate::store::match_pos::{MatchSearch, Probe};
use crate::store::{
    LogItem, LogStore, PersistedState, RaftStatus, StoreConfig, StoreError, StoreResult, WriteBatch,
};
use dt_common::{Executor, Task};

/// The smallest stretch prefilled, and the step prefills grow by: a log starts
/// prefilling once it wrote this much since it opened.
const PREFILL_MIN: u64 = 64 * 1024;

/// How long prefilling pauses after a prefill could not write (a full disk).
const PREFILL_PAUSE: Duration = Duration::from_secs(10);

/// How often the log looks for expired segments to delete (after a write).
const DELETE_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// A result from an IO job, applied on the owner's thread.
enum Msg {
    /// Any job's result and what to do with it.
    Run(Box<dyn FnOnce(&mut Owner) + Send>),
    /// The result of the write job (or its follow-up fsync) in flight, of which there is
    /// at most one: the hot path of every append, posted without boxing anything.
    /// `Err` is a failure of the job itself (panic, refused, lost).
    Write(StoreResult<StoreResult<WriteDone>>),
}

/// What the owner does with the result of an IO job.
type Done<R> = Box<dyn FnOnce(&mut Owner, StoreResult<R>) + Send>;

/// Where an owner-side future finds its result.
type Slot<T> = Rc<Cell<Option<StoreResult<T>>>>;

/// Write jobs in flight at once with `sync_force`: the next job writes while the last
/// one's fsync runs, so the lane's IO thread goes from one fsync straight to the next
/// job's write instead of waiting for the owner to see the fsync's result first.
const MAX_WRITES_IN_FLIGHT: usize = 2;

/// Answer slots of appends kept for reuse at most (appends in flight at once are few:
/// the write jobs of a log in flight are at most two).
const MAX_SPARE_SLOTS: usize = 16;

#[derive(Default)]
struct InboxQ {
    msgs: Vec<Msg>,
    /// The first waiting waker (usually the only one: the group's writer), kept out of
    /// `wakers` so that a post and the next park allocate nothing.
    waker: Option<Waker>,
    wakers: Vec<Waker>,
}

/// The only thing IO threads and the owner share: a queue of result messages and the
/// wakers of the owner's futures waiting for them.
#[derive(Default)]
struct Inbox {
    q: Mutex<InboxQ>,
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, InboxQ> {
        // A message queue stays consistent even if a holder panicked.
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn post(&self, m: Msg) {
        let (first, rest) = {
            let mut q = self.lock();
            q.msgs.push(m);
            (q.waker.take(), std::mem::take(&mut q.wakers))
        };
        if let Some(w) = first {
            w.wake();
        }
        for w in rest {
            w.wake();
        }
    }

    /// Moves the posted messages into `out` (empty).
    fn take(&self, out: &mut Vec<Msg>) {
        let mut q = self.lock();
        std::mem::swap(&mut q.msgs, out);
    }

    /// Registers `w` to be woken by the next message, unless one is already there
    /// (then returns false: pump again).
    fn park(&self, w: &Waker) -> bool {
        let mut q = self.lock();
        if !q.msgs.is_empty() {
            return false;
        }
        match &q.waker {
            None => q.waker = Some(w.clone()),
            Some(x) if x.will_wake(w) => {}
            Some(_) => {
                if !q.wakers.iter().any(|x| x.will_wake(w)) {
                    q.wakers.push(w.clone());
                }
            }
        }
        true
    }
}

/// The reply half of an IO job: delivers its result to the owner exactly once; if the
/// job is dropped without running (refused or discarded by the executor) it delivers
/// that failure instead.
struct Reply<R: Send + 'static> {
    inbox: Arc<Inbox>,
    what: &'static str,
    dir: Arc<Path>,
    done: Option<Done<R>>,
}

impl<R: Send + 'static> Reply<R> {
    fn send(mut self, r: Result<R, StoreError>) {
        if let Some(done) = self.done.take() {
            post(&self.inbox, done, r);
        }
    }
}

impl<R: Send + 'static> Drop for Reply<R> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let e = job_error(
                self.what,
                &self.dir,
                "the IO executor refused the job or dropped it without running it".into(),
            );
            post(&self.inbox, done, Err(e));
        }
    }
}

/// Posts a job's result. `Err` here is a failure of the job itself (panic, refused,
/// lost): it fails the log before the job's own handler sees it.
fn post<R: Send + 'static>(inbox: &Inbox, done: Done<R>, r: Result<R, StoreError>) {
    inbox.post(Msg::Run(Box::new(move |o: &mut Owner| match r {
        Ok(v) => done(o, Ok(v)),
        Err(e) => {
            let f = o.fail(e);
            done(o, Err(f))
        }
    })));
}

/// The reply half of the write job (or its follow-up fsync): posts
/// [`Msg::Write`] exactly once; dropped unsent (the job refused, lost, or panicked
/// while holding it) it posts that failure instead.
struct WriteReply {
    inbox: Arc<Inbox>,
    what: &'static str,
    dir: Arc<Path>,
    sent: bool,
}

impl WriteReply {
    fn send(mut self, r: Result<StoreResult<WriteDone>, StoreError>) {
        self.sent = true;
        self.inbox.post(Msg::Write(r));
    }
}

impl Drop for WriteReply {
    fn drop(&mut self) {
        if !self.sent {
            let e = job_error(
                self.what,
                &self.dir,
                "the IO executor refused the job or dropped it without running it".into(),
            );
            self.inbox.post(Msg::Write(Err(e)));
        }
    }
}

fn job_error(what: &'static str, dir: &Path, msg: String) -> StoreError {
    StoreError::io(what, dir, std::io::Error::other(msg))
}

/// The failure of a job that panicked with `p`.
fn panicked(what: &'static str, dir: &Path, p: &(dyn Any + Send)) -> StoreError {
    job_error(what, dir, format!("the IO job panicked: {}", panic_text(p)))
}

fn panic_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".into()
    }
}

/// A copy of an error that is to be given to several waiters.
fn dup(e: &StoreError) -> StoreError {
    match e {
        StoreError::Failed { cause } => StoreError::failed(cause.clone()),
        StoreError::Closed => StoreError::Closed,
        StoreError::Installing => StoreError::Installing,
        other => StoreError::Io {
            op: "raft log",
            path: PathBuf::new(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// How long an idle write lane waits for the next job before releasing its thread.
const LANE_LINGER: Duration = Duration::from_micros(50);

/// The write lane: write and fsync jobs (at most one in flight per log, the owner sees
/// to that; several logs of one thread may share a lane, see [`shared_lane`]) run in
/// order on an IO thread that lingers briefly for the next one. In a
/// request/response rhythm the next append arrives within microseconds of the last
/// acknowledgement, and picking it up here saves a pool wake-up (as costly as a fast
/// fsync). The lane holds no log state: only the jobs handed to it.
///
/// The linger pays off only in that rhythm: a lane whose jobs come seldom (an idle
/// group's heartbeat a second) would spend every linger yielding for nothing, which for
/// many groups added up to a visible share of a core. So the lane lingers only while it
/// is *hot*: its last job arrived within [`LANE_HOT_GAP`] of the lane going idle, or a
/// linger caught a job.
struct Lane {
    tx: crossbeam_channel::Sender<Task>,
    rx: crossbeam_channel::Receiver<Task>,
    running: AtomicBool,
    /// When the lane last went idle (monotonic nanos; 0 = never).
    idle_since: AtomicI64,
    /// Logs writing through the lane (see [`LaneUse`]).
    logs: AtomicUsize,
}

/// A log's use of a lane, counted in [`Lane::logs`] while it lasts.
struct LaneUse(Arc<Lane>);

impl LaneUse {
    fn new(lane: Arc<Lane>) -> Self {
        lane.logs.fetch_add(1, Ordering::Relaxed);
        LaneUse(lane)
    }
}

impl Drop for LaneUse {
    fn drop(&mut self) {
        self.0.logs.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Most jobs a lane runs before handing their fsyncs to the batcher.
const LANE_BATCH: usize = 64;

std::thread_local! {
    /// The write lane shared by the logs this thread owns that use an fsync batcher,
    /// one per executor (keyed by its address).
    static SHARED_LANES: RefCell<Vec<(usize, Arc<Lane>)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's shared write lane for `io`. The logs of one dispatcher thread write
/// through one lane: their write jobs, queued in one pass of the dispatcher, run on one
/// IO thread back to back and their fsyncs share one batcher round, instead of waking
/// a pool thread (and leading or joining a round) per log. The lane holds no log state
/// and keeps each log's jobs in order, so sharing it changes only who runs them.
fn shared_lane(io: &Arc<dyn Executor>) -> Arc<Lane> {
    let key = Arc::as_ptr(io) as *const () as usize;
    SHARED_LANES.with(|l| {
        let mut l = l.borrow_mut();
        if let Some((_, lane)) = l.iter().find(|(k, _)| *k == key) {
            return lane.clone();
        }
        let lane = Arc::new(Lane::default());
        l.push((key, lane.clone()));
        lane
    })
}

/// A lane restarted within this gap after going idle lingers after its jobs.
const LANE_HOT_GAP: Duration = Duration::from_micros(250);

impl Default for Lane {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Lane {
            tx,
            rx,
            running: AtomicBool::new(false),
            idle_since: AtomicI64::new(0),
            logs: AtomicUsize::new(0),
        }
    }
}

impl Lane {
    fn submit(me: &Arc<Lane>, io: &dyn Executor, task: Task) {
        // The lane owns both ends; sending cannot fail.
        let _ = me.tx.send(task);
        // Pairs with the runner's fence between clearing `running` and looking at the
        // queue: one of the two sides sees the other's write (see LaneRunner::run).
        std::sync::atomic::fence(Ordering::SeqCst);
        if !me.running.swap(true, Ordering::AcqRel) {
            let runner = LaneRunner {
                lane: me.clone(),
                finished: false,
            };
            // A refused runner is dropped here and fails the queued jobs.
            let _ = io.execute(Box::new(move || runner.run()));
        }
    }
}

/// The lane's IO-thread loop. If the executor drops it without running it (or it
/// dies), its drop releases the lane and drops the queued jobs, whose replies report
/// them as lost: the log fails instead of waiting forever.
struct LaneRunner {
    lane: Arc<Lane>,
    finished: bool,
}

impl LaneRunner {
    fn run(mut self) {
        let lane = self.lane.clone();
        let since = lane.idle_since.load(Ordering::Relaxed);
        let mut hot = since != 0
            && dt_common::mono_nanos().saturating_sub(since) <= LANE_HOT_GAP.as_nanos() as i64;
        loop {
            // The write jobs queued (of every log sharing the lane) run back to back
            // and their fsyncs go to the batcher together at the end: one round, one
            // wait. Bounded, so that a steady stream of jobs does not hold back the
            // fsyncs of the first ones.
            defer_syncs(|| {
                for _ in 0..LANE_BATCH {
                    let Ok(task) = lane.rx.try_recv() else {
                        break;
                    };
                    // Jobs catch their own panics; this only keeps the lane alive if a
                    // reply's waker panics.
                    let _ = catch_unwind(AssertUnwindSafe(task));
                }
            });
            if !lane.rx.is_empty() {
                continue;
            }
            if hot {
                // Yield rather than spin: the caller just woken is often placed on this
                // very CPU, and a spinning lane would keep it off until the linger ends.
                let until = Instant::now() + LANE_LINGER;
                while lane.rx.is_empty() && Instant::now() < until {
                    std::thread::yield_now();
                }
                if !lane.rx.is_empty() {
                    continue;
                }
                hot = false;
            }
            lane.idle_since
                .store(dt_common::mono_nanos(), Ordering::Relaxed);
            lane.running.store(false, Ordering::Release);
            // Without this fence the store above may become visible only after the
            // queue is read (store-load reordering): a job sent meanwhile would find
            // the lane still running and start nobody, while this runner found the
            // queue empty and left, and the job would wait for the next submit (for
            // ever, in a closed loop of single appends).
            std::sync::atomic::fence(Ordering::SeqCst);
            // A job queued after the check above and before the release found the
            // lane running and started nobody: take it back if nobody else did.
            if lane.rx.is_empty() || lane.running.swap(true, Ordering::AcqRel) {
                self.finished = true;
                return;
            }
        }
    }
}

impl Drop for LaneRunner {
    fn drop(&mut self) {
        if !self.finished {
            self.lane.running.store(false, Ordering::Release);
            while let Ok(task) = self.lane.rx.try_recv() {
                drop(task);
            }
        }
    }
}

/// Why the store is away from its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lent {
    Opening,
    Install,
    Close,
}

/// The state of one log, owned by the group's thread.
struct Owner {
    dir: Arc<Path>,
    cfg: StoreConfig,
    io: Arc<dyn Executor>,
    inbox: Arc<Inbox>,
    /// The write lane, chosen at the first write and kept (its jobs run in order):
    /// the thread's shared lane with an fsync batcher, else the log's own (its jobs
    /// fsync file by file, which other logs must not wait behind).
    lane: Option<LaneUse>,
    store: Option<LogStore>,
    lent: Option<Lent>,
    /// The first failure, also while the store is away.
    failed: Option<Arc<StoreError>>,
    /// A commit index reported while the store was away.
    pending_commit: u64,
    /// The persisted index when the store went away (for a close in progress).
    persisted_away: u64,
    /// Owner-side results of jobs in flight, by key (each a `Slot<T>`).
    ops: HashMap<u64, Box<dyn Any>>,
    next_op: u64,
    /// Batches prepared but not yet handed to a write job, and their waiters.
    queued: Vec<WriteBatch>,
    queued_waiters: Vec<Slot<u64>>,
    /// Waiters of the write jobs in flight, oldest first (one list per job).
    writing: VecDeque<Vec<Slot<u64>>>,
    /// Emptied waiter lists, for the next jobs (no allocation per job).
    spare_waiters: Vec<Vec<Slot<u64>>>,
    /// Answer slots of appends already answered, for the next appends (no allocation
    /// per append): at most [`MAX_SPARE_SLOTS`].
    spare_slots: Vec<Slot<u64>>,
    /// Write jobs (or a write's follow-up fsync) in flight: at most
    /// [`MAX_WRITES_IN_FLIGHT`], and one when `sync_force` is off.
    writes: usize,
    idx_flush_busy: bool,
    /// Status-file writes: one in flight; requests meanwhile share the next one.
    status_busy: bool,
    status_requested: bool,
    status_next: Vec<Slot<()>>,
    status_flight: Vec<Slot<()>>,
    delete_busy: bool,
    last_delete_check: Instant,
    syncs: u64,
    spare_msgs: Vec<Msg>,
    /// The range a prefill in flight zero-fills.
    prefill: Option<(u64, u64)>,
    /// Positions below this are known zero-filled or written (0: nothing known).
    prefilled_to: u64,
    /// Stops prefills once the log is dropped.
    prefill_gate: Arc<PrefillGate>,
    /// No prefill before this (after one failed to write).
    prefill_paused_until: Option<Instant>,
    /// The write position when the store was opened (or installed): prefills ramp up
    /// with the bytes written since.
    prefill_base: Option<u64>,
}

impl Owner {
    /// Applies every posted message (each may start more work).
    fn pump(&mut self) {
        loop {
            let mut msgs = std::mem::take(&mut self.spare_msgs);
            self.inbox.take(&mut msgs);
            if msgs.is_empty() {
                self.spare_msgs = msgs;
                return;
            }
            for m in msgs.drain(..) {
                match m {
                    Msg::Run(f) => f(self),
                    Msg::Write(Ok(r)) => self.write_finished(Ok(r)),
                    Msg::Write(Err(e)) => {
                        let f = self.fail(e);
                        self.write_finished(Err(f))
                    }
                }
            }
            self.spare_msgs = msgs;
        }
    }

    /// Runs `work` on an IO thread; `done` gets its result on the owner's thread. A
    /// panic, a refusal or a lost job fails the log and reaches `done` as `Err`.
    fn spawn<R, W, D>(&mut self, what: &'static str, work: W, done: D)
    where
        R: Send + 'static,
        W: FnOnce() -> R + Send + 'static,
        D: FnOnce(&mut Owner, StoreResult<R>) + Send + 'static,
    {
        let task = self.make_task(what, work, done);
        // A refused task is dropped here; its reply reports the refusal.
        let _ = self.io.execute(task);
    }

    /// [`Owner::spawn`] through the write lane (write and fsync jobs, one at a time).
    fn spawn_on_lane<R, W, D>(&mut self, what: &'static str, work: W, done: D)
    where
        R: Send + 'static,
        W: FnOnce() -> R + Send + 'static,
        D: FnOnce(&mut Owner, StoreResult<R>) + Send + 'static,
    {
        let task = self.make_task(what, work, done);
        Lane::submit(&self.lane(), &*self.io, task);
    }

    /// [`Owner::spawn_on_lane`] for work that answers later, from another thread:
    /// `work` gets the reply to send (a reply dropped unsent, by a panic for one,
    /// fails the log).
    fn spawn_on_lane_replying<R, W, D>(&mut self, what: &'static str, work: W, done: D)
    where
        R: Send + 'static,
        W: FnOnce(Reply<R>) + Send + 'static,
        D: FnOnce(&mut Owner, StoreResult<R>) + Send + 'static,
    {
        let reply = self.reply(what, done);
        let task: Task = Box::new(move || {
            let _ = catch_unwind(AssertUnwindSafe(move || work(reply)));
        });
        Lane::submit(&self.lane(), &*self.io, task);
    }

    /// The reply half of the write job, whose result goes to [`Owner::write_finished`].
    fn write_reply(&self, what: &'static str) -> WriteReply {
        WriteReply {
            inbox: self.inbox.clone(),
            what,
            dir: self.dir.clone(),
            sent: false,
        }
    }

    /// The reply half of a job named `what`, whose result goes to `done`.
    fn reply<R: Send + 'static>(
        &self,
        what: &'static str,
        done: impl FnOnce(&mut Owner, StoreResult<R>) + Send + 'static,
    ) -> Reply<R> {
        Reply {
            inbox: self.inbox.clone(),
            what,
            dir: self.dir.clone(),
            done: Some(Box::new(done)),
        }
    }

    fn make_task<R, W, D>(&mut self, what: &'static str, work: W, done: D) -> Task
    where
        R: Send + 'static,
        W: FnOnce() -> R + Send + 'static,
        D: FnOnce(&mut Owner, StoreResult<R>) + Send + 'static,
    {
        let reply = self.reply(what, done);
        Box::new(move || match catch_unwind(AssertUnwindSafe(work)) {
            Ok(v) => reply.send(Ok(v)),
            Err(p) => {
                let e = panicked(reply.what, &reply.dir, &*p);
                reply.send(Err(e))
            }
        })
    }

    /// The write lane (see the field).
    fn lane(&mut self) -> Arc<Lane> {
        self.lane_ref().clone()
    }

    /// The write lane, borrowed (no reference count touched).
    fn lane_ref(&mut self) -> &Arc<Lane> {
        let (cfg, io) = (&self.cfg, &self.io);
        &self
            .lane
            .get_or_insert_with(|| {
                LaneUse::new(match cfg.fsync_batcher {
                    Some(_) => shared_lane(io),
                    None => Arc::new(Lane::default()),
                })
            })
            .0
    }

    /// A new owner-side result slot and its key.
    fn new_op<T: 'static>(&mut self) -> (u64, Slot<T>) {
        let slot: Slot<T> = Rc::new(Cell::new(None));
        let key = self.next_op;
        self.next_op += 1;
        self.ops.insert(key, Box::new(slot.clone()));
        (key, slot)
    }

    fn finish_op<T: 'static>(&mut self, key: u64, r: StoreResult<T>) {
        if let Some(b) = self.ops.remove(&key) {
            if let Ok(slot) = b.downcast::<Slot<T>>() {
                slot.set(Some(r));
            }
        }
    }

    /// Runs `work` on an IO thread; the returned slot gets its result.
    fn run_io<T, W>(&mut self, what: &'static str, work: W) -> Slot<T>
    where
        T: Send + 'static,
        W: FnOnce() -> StoreResult<T> + Send + 'static,
    {
        let (key, slot) = self.new_op::<T>();
        self.spawn(what, work, move |o, r| o.finish_op(key, r.and_then(|x| x)));
        slot
    }

    /// The store, or why it cannot be used.
    fn store(&mut self) -> StoreResult<&mut LogStore> {
        if self.store.is_none() {
            return Err(self.away_error());
        }
        Ok(self.store.as_mut().expect("checked"))
    }

    fn away_error(&self) -> StoreError {
        match (&self.failed, self.lent) {
            (Some(c), _) => StoreError::failed(c.clone()),
            (None, Some(Lent::Install)) => StoreError::Installing,
            _ => StoreError::Closed,
        }
    }

    /// Puts the log in the failed state (the first cause wins) and returns the
    /// [`StoreError::Failed`] to pass on.
    fn fail(&mut self, e: StoreError) -> StoreError {
        let f = match self.store.as_mut() {
            Some(s) => s.fail(Arc::new(e)),
            None => {
                let cause = match e {
                    StoreError::Failed { cause } => cause,
                    other => Arc::new(other),
                };
                if self.failed.is_none() {
                    log::error!(
                        "raft log in {} failed, refusing further work: {cause}",
                        self.dir.display()
                    );
                }
                StoreError::failed(self.failed.get_or_insert(cause).clone())
            }
        };
        if let StoreError::Failed { cause } = &f {
            self.failed.get_or_insert_with(|| cause.clone());
        }
        f
    }

    /// Nothing but reads in flight or queued.
    fn idle(&self) -> bool {
        self.writes == 0
            && self.queued.is_empty()
            && !self.idx_flush_busy
            && !self.status_busy
            && !self.status_requested
            && !self.delete_busy
            && self.prefill.is_none()
    }

    /// Starts a write job for the queued batches if the lane may take one more: when
    /// none is in flight, or (with `sync_force`) when one is and the new one creates
    /// no segment (the one in flight may be creating it).
    fn kick_writes(&mut self) {
        if self.queued.is_empty() || self.writes >= self.max_writes() {
            return;
        }
        if self.writes > 0
            && self
                .store
                .as_ref()
                .is_some_and(|s| s.write_needs_new_segment(&self.queued))
        {
            // The completion of the job in flight kicks the writes again.
            return;
        }
        if let Some((from, _)) = self.prefill {
            let end = self
                .queued
                .iter()
                .flat_map(|b| b.chunks.last())
                .map(|c| c.pos + c.data.len() as u64)
                .max()
                .unwrap_or(0);
            if end > from {
                // The prefill's end kicks the writes again.
                return;
            }
        }
        let sync_force = self.cfg.sync_force;
        let planned = match self.store.as_mut() {
            Some(s) => match s.failure() {
                Some(c) => Err(StoreError::failed(c.clone())),
                None => {
                    let batches = std::mem::replace(&mut self.queued, s.take_batch_list());
                    let job = s.plan_write(batches, sync_force);
                    // The queued waiters go with the job; an emptied list takes their
                    // place, so that no list is allocated again.
                    let spare = self.spare_waiters.pop().unwrap_or_default();
                    let waiters = std::mem::replace(&mut self.queued_waiters, spare);
                    self.writing.push_back(waiters);
                    self.writes += 1;
                    let reply = self.write_reply("write");
                    let task: Task = match self.cfg.fsync_batcher.clone() {
                        // A panic drops the reply, which reports the job as lost.
                        Some(b) if job.syncs() => Box::new(move || {
                            let _ = catch_unwind(AssertUnwindSafe(move || {
                                job.run_batched(&b, move |r| reply.send(Ok(r)))
                            }));
                        }),
                        _ => Box::new(move || match catch_unwind(AssertUnwindSafe(|| job.run())) {
                            Ok(r) => reply.send(Ok(r)),
                            Err(p) => {
                                let e = panicked(reply.what, &reply.dir, &*p);
                                reply.send(Err(e))
                            }
                        }),
                    };
                    Ok(task)
                }
            },
            None => Err(self.away_error()),
        };
        match planned {
            Ok(task) => Lane::submit(&self.lane(), &*self.io, task),
            Err(e) => {
                self.queued.clear();
                for w in self.queued_waiters.drain(..) {
                    w.set(Some(Err(dup(&e))));
                }
            }
        }
    }

    /// Most write jobs in flight at once: [`MAX_WRITES_IN_FLIGHT`] with `sync_force`
    /// on a lane of its own (a job's completion acknowledges only its own appends, so
    /// the next one can write while the last one's fsync runs), else 1. A lane shared
    /// by several logs (the groups of one dispatcher) is kept busy by the other logs'
    /// jobs, and there a second job per log only made more, smaller jobs: `raft_bench
    /// --groups 100` lost ~6%.
    fn max_writes(&mut self) -> usize {
        if self.cfg.sync_force && self.lane_ref().logs.load(Ordering::Relaxed) <= 1 {
            MAX_WRITES_IN_FLIGHT
        } else {
            1
        }
    }

    /// Gives back an emptied waiter list for reuse.
    fn recycle_waiters(&mut self, list: Vec<Slot<u64>>) {
        debug_assert!(list.is_empty());
        if self.spare_waiters.len() < MAX_WRITES_IN_FLIGHT {
            self.spare_waiters.push(list);
        }
    }

    fn write_finished(&mut self, r: StoreResult<StoreResult<WriteDone>>) {
        self.writes = self.writes.saturating_sub(1);
        let done = match (
            r.and_then(|x| x),
            self.store.as_ref().and_then(|s| s.failure()),
        ) {
            // A job after one that failed: its fsync may succeed where the earlier one
            // lost pages, so it proves nothing and moves no watermark.
            (Ok(_), Some(c)) => Err(StoreError::failed(c.clone())),
            (d, _) => d,
        };
        let synced = done.as_ref().is_ok_and(|d| d.synced);
        let recorded = match (done, self.store.as_mut()) {
            (Ok(d), Some(s)) => s.write_done(d).map(|touched| (touched, s)),
            (Ok(_), None) => Err(StoreError::Closed),
            (Err(e), _) => Err(e),
        };
        match recorded {
            Ok((touched, s)) => {
                let persisted = s.persisted_index();
                let follow_up = (!synced && s.config().sync && !touched.is_empty())
                    .then(|| (touched, s.last_write_index()));
                if synced {
                    self.syncs += 1;
                }
                // Jobs finish in the order they started (one lane runs them, and the
                // fsync batcher answers in order): these are the oldest job's waiters.
                let mut waiters = self.writing.pop_front().unwrap_or_default();
                for w in waiters.drain(..) {
                    w.set(Some(Ok(persisted)));
                }
                self.recycle_waiters(waiters);
                if let Some((touched, target)) = follow_up {
                    // sync_force off: acknowledged once written; the fsync follows
                    // before the next write.
                    self.writes += 1;
                    let done = move |o: &mut Owner, r: StoreResult<StoreResult<()>>| {
                        o.sync_finished(target, r.and_then(|x| x))
                    };
                    match self.cfg.fsync_batcher.clone() {
                        Some(b) => self.spawn_on_lane_replying(
                            "fdatasync",
                            move |reply| b.sync(touched, Box::new(move |r| reply.send(Ok(r)))),
                            done,
                        ),
                        None => self.spawn_on_lane("fdatasync", move || sync_files(&touched), done),
                    }
                    return;
                }
                self.after_write();
            }
            Err(e) => {
                let f = self.fail(e);
                // The log has failed: every job in flight is answered with the failure
                // (their own completions, when they come, find no waiters).
                while let Some(mut waiters) = self.writing.pop_front() {
                    for w in waiters.drain(..) {
                        w.set(Some(Err(dup(&f))));
                    }
                    self.recycle_waiters(waiters);
                }
            }
        }
        self.kick_writes();
    }

    fn sync_finished(&mut self, target: u64, r: StoreResult<()>) {
        self.writes = self.writes.saturating_sub(1);
        match r {
            Ok(()) => {
                self.syncs += 1;
                if let Some(s) = self.store.as_mut() {
                    s.on_forced(target);
                }
                self.after_write();
            }
            Err(e) => {
                self.fail(e);
            }
        }
        self.kick_writes();
    }

    /// Index flush, prefill and segment deletion, when due, after a successful write.
    fn after_write(&mut self) {
        self.maybe_start_index_flush();
        self.maybe_start_prefill();
        if !self.delete_busy && self.last_delete_check.elapsed() >= DELETE_CHECK_INTERVAL {
            self.last_delete_check = Instant::now();
            if let Some(s) = self.store.as_mut() {
                let job = s.plan_delete_expired(Instant::now());
                if !job.is_empty() {
                    self.delete_busy = true;
                    self.spawn(
                        "delete",
                        move || job.run(),
                        |o, r| {
                            o.delete_busy = false;
                            if let Ok(Err(e)) = r {
                                log::warn!("deleting old log segments failed: {e}");
                            }
                        },
                    );
                }
            }
        }
    }

    /// Starts a prefill of the current segment when the zero-filled stretch past the
    /// write position runs short (module documentation, "Prefill").
    fn maybe_start_prefill(&mut self) {
        if self.prefill.is_some() {
            return;
        }
        if let Some(t) = self.prefill_paused_until {
            if Instant::now() < t {
                return;
            }
            self.prefill_paused_until = None;
        }
        let Some(s) = self.store.as_ref() else { return };
        // Ramp up with what the log wrote since it opened: a quiet group (heartbeats,
        // a test's few entries) never prefills, a busy one soon runs the full stretch.
        let base = *self.prefill_base.get_or_insert(s.next_pos());
        let written = s.next_pos().saturating_sub(base);
        let ahead = self.cfg.prefill_bytes.min(written) & !(PREFILL_MIN - 1);
        if ahead < PREFILL_MIN {
            return;
        }
        let Some(job) = s.plan_prefill(self.prefilled_to, ahead) else {
            return;
        };
        self.prefill = Some(job.range());
        let gate = self.prefill_gate.clone();
        self.spawn(
            "prefill",
            move || job.run(&gate),
            |o, r| {
                o.prefill = None;
                match r.and_then(|x| x) {
                    Ok(to) => o.prefilled_to = o.prefilled_to.max(to),
                    // A write refused (a full disk): the appends will meet it too, or
                    // the space comes back; prefilling pauses meanwhile.
                    Err(StoreError::Io {
                        op: "write",
                        source,
                        ..
                    }) => {
                        log::warn!(
                            "raft log in {}: zero-filling ahead of the log failed ({source}); \
                             paused for {PREFILL_PAUSE:?}",
                            o.dir.display()
                        );
                        o.prefill_paused_until = Some(Instant::now() + PREFILL_PAUSE);
                    }
                    // Zeros past the write position protect nothing, but an fsync
                    // error may have consumed the report of a failed write-back of
                    // appended data too: fail the log as a failed append fsync does.
                    Err(e) => {
                        o.fail(e);
                    }
                }
                o.kick_writes();
            },
        );
    }

    /// Starts an index flush when one is due: the entries are encoded here, their write
    /// and fsync run as their own job (so neither the appends just acknowledged nor the
    /// next write wait for it), then the status file records the new anchor.
    fn maybe_start_index_flush(&mut self) {
        if self.idx_flush_busy {
            return;
        }
        let Some(s) = self.store.as_mut() else { return };
        if s.failure().is_some() || !s.index_flush_due() {
            return;
        }
        if let Some(job) = s.plan_index_files() {
            // The files come first, made and allocated on an IO thread.
            self.idx_flush_busy = true;
            self.spawn(
                "create index file",
                move || job.run(),
                |o, r| {
                    o.idx_flush_busy = false;
                    let added = r
                        .and_then(|x| x)
                        .and_then(|files| o.store()?.index_files_created(files));
                    match added {
                        Ok(()) => o.maybe_start_index_flush(),
                        Err(e) => {
                            o.fail(e);
                        }
                    }
                },
            );
            return;
        }
        match s.begin_index_flush(false) {
            Ok(IndexFlush::Nothing) => {}
            Ok(IndexFlush::Status(_)) => self.request_status(None),
            Ok(IndexFlush::Write(w)) => {
                self.idx_flush_busy = true;
                self.spawn(
                    "index write",
                    move || w.run().map(|()| w.end),
                    |o, r| o.index_synced(r.and_then(|x| x)),
                );
            }
            Err(e) => {
                self.fail(e);
            }
        }
    }

    fn index_synced(&mut self, r: StoreResult<u64>) {
        self.idx_flush_busy = false;
        match r {
            Ok(end) => {
                if let Some(s) = self.store.as_mut() {
                    if s.finish_index_flush(end).is_some() {
                        self.request_status(None);
                    }
                }
            }
            Err(e) => {
                self.fail(e);
            }
        }
    }

    /// Asks for the status file to be written with the current values; `waiter`, if
    /// any, is completed when a write that started after this call is durable.
    fn request_status(&mut self, waiter: Option<Slot<()>>) {
        self.status_next.extend(waiter);
        self.status_requested = true;
        self.kick_status();
    }

    fn kick_status(&mut self) {
        if self.status_busy || !self.status_requested {
            return;
        }
        let err = match self.store.as_mut() {
            None if self.lent.is_some() && self.failed.is_none() => return, // when it is back
            None => Some(self.away_error()),
            Some(s) => match s.failure() {
                Some(c) => Some(StoreError::failed(c.clone())),
                None => {
                    let p = s.status().pending();
                    self.status_requested = false;
                    self.status_flight = std::mem::take(&mut self.status_next);
                    self.status_busy = true;
                    self.spawn(
                        "status write",
                        move || p.write().map(|()| p.status),
                        |o, r| o.status_written(r.and_then(|x| x)),
                    );
                    None
                }
            },
        };
        if let Some(e) = err {
            self.status_requested = false;
            for w in self.status_next.drain(..) {
                w.set(Some(Err(dup(&e))));
            }
        }
    }

    fn status_written(&mut self, r: StoreResult<RaftStatus>) {
        self.status_busy = false;
        match r {
            Ok(st) => {
                if let Some(s) = self.store.as_mut() {
                    s.status().mark_persisted(st);
                }
                for w in self.status_flight.drain(..) {
                    w.set(Some(Ok(())));
                }
            }
            Err(e) => {
                let f = self.fail(e);
                for w in self.status_flight.drain(..) {
                    w.set(Some(Err(dup(&f))));
                }
            }
        }
        self.kick_status();
    }

    /// The store is back from an IO job that had it.
    fn store_back(&mut self, mut s: LogStore) {
        self.lent = None;
        // After an install the positions start over: nothing past them is known filled.
        self.prefilled_to = 0;
        self.prefill_base = None;
        if let Some(c) = &self.failed {
            s.fail(c.clone());
        }
        if self.pending_commit > 0 && !s.is_closed() {
            s.set_commit_index(self.pending_commit);
        }
        self.pending_commit = 0;
        self.store = Some(s);
        self.kick_status();
        self.kick_writes();
    }
}

/// The default [`RaftLog`]: segment and index files in a data directory, file work on
/// an [`Executor`], group commit, a tail cache for recent entries. See the module
/// documentation for how the work is split.
///
/// It belongs to the thread (the group's dispatcher thread) that calls its methods
/// and polls its futures: it is neither `Send` nor `Sync`.
///
/// ```
/// use dt_raft::raft_log::{block_on, DefaultRaftLog, RaftLog, ThreadPoolIo};
/// use dt_raft::store::{LogItem, StoreConfig};
///
/// let dir = tempfile::tempdir().unwrap();
/// let log = DefaultRaftLog::new(dir.path(), StoreConfig::small_for_tests(), ThreadPoolIo::new(2));
/// assert_eq!(block_on(log.init()).unwrap(), Some((0, 0)));
/// let items = vec![LogItem { term: 1, index: 1, body: b"x"[..].into(), ..Default::default() }];
/// let persisted = block_on(log.append(items)).unwrap();
/// assert_eq!(persisted, 1);
/// let mut it = log.open_iterator();
/// assert_eq!(block_on(it.next(1, 10, 1 << 20)).unwrap()[0].body, &b"x"[..]);
/// drop(it);
/// block_on(log.close()).unwrap();
/// ```
pub struct DefaultRaftLog {
    st: RefCell<Owner>,
}

impl DefaultRaftLog {
    /// A log over `data_dir` (not opened until [`RaftLog::init`]).
    pub fn new(data_dir: &Path, cfg: StoreConfig, io: Arc<dyn Executor>) -> Self {
        DefaultRaftLog {
            st: RefCell::new(Owner {
                dir: Arc::from(data_dir),
                cfg,
                io,
                inbox: Arc::new(Inbox::default()),
                lane: None,
                store: None,
                lent: None,
                failed: None,
                pending_commit: 0,
                persisted_away: 0,
                ops: HashMap::new(),
                next_op: 0,
                queued: Vec::new(),
                queued_waiters: Vec::new(),
                writing: VecDeque::new(),
                spare_waiters: Vec::new(),
                spare_slots: Vec::new(),
                writes: 0,
                idx_flush_busy: false,
                status_busy: false,
                status_requested: false,
                status_next: Vec::new(),
                status_flight: Vec::new(),
                delete_busy: false,
                last_delete_check: Instant::now(),
                syncs: 0,
                spare_msgs: Vec::new(),
                prefill: None,
                prefilled_to: 0,
                prefill_gate: PrefillGate::new(),
                prefill_paused_until: None,
                prefill_base: None,
            }),
        }
    }

    /// The owner's state, with the IO results that arrived applied.
    fn owner(&self) -> std::cell::RefMut<'_, Owner> {
        let mut o = self.st.borrow_mut();
        o.pump();
        o
    }

    /// Resolves with `check`'s answer, applying IO results as they arrive.
    fn wait<'a, T>(
        &'a self,
        mut check: impl FnMut(&mut Owner) -> Option<StoreResult<T>> + 'a,
    ) -> impl Future<Output = StoreResult<T>> + 'a {
        std::future::poll_fn(move |cx| {
            let mut o = self.st.borrow_mut();
            loop {
                o.pump();
                if let Some(r) = check(&mut o) {
                    return Poll::Ready(r);
                }
                if o.inbox.park(cx.waker()) {
                    return Poll::Pending;
                }
            }
        })
    }

    fn wait_slot<T: 'static>(&self, slot: Slot<T>) -> LogFuture<'_, T> {
        Box::pin(self.wait(move |_| slot.take()))
    }

    /// Runs `f` on the opened store, on the caller's thread: reading the status (term,
    /// vote), inspection, tests. Do not write files from here; use
    /// [`DefaultRaftLog::persist_status`] for the status file.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut LogStore) -> StoreResult<T>) -> StoreResult<T> {
        let mut o = self.owner();
        f(o.store()?)
    }

    /// Deletes segments whose deletion delay has passed (also done after writes, every
    /// ten seconds): they leave the log at once, the files are deleted on an IO thread.
    pub fn delete_expired(&self) -> LogFuture<'_, usize> {
        let mut o = self.owner();
        let job = match o.store() {
            Ok(s) => s.plan_delete_expired(Instant::now()),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let slot = o.run_io("delete", move || job.run());
        drop(o);
        self.wait_slot(slot)
    }

    /// Changes the status values (term, vote, ...) with `f` at once and persists them
    /// atomically on an IO thread; resolves when they are durable. Raft awaits this
    /// before granting a vote, starting an election or accepting a higher term. A
    /// failed write fails the log.
    pub fn persist_status(&self, f: impl FnOnce(&mut RaftStatus)) -> LogFuture<'_, ()> {
        let mut o = self.owner();
        let s = match o.store() {
            Ok(s) => s,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        if s.is_closed() {
            let e = s
                .failure()
                .map_or(StoreError::Closed, |c| StoreError::failed(c.clone()));
            return Box::pin(std::future::ready(Err(e)));
        }
        f(&mut s.status().status);
        let slot: Slot<()> = Rc::new(Cell::new(None));
        o.request_status(Some(slot.clone()));
        drop(o);
        self.wait_slot(slot)
    }

    /// Number of group fsyncs issued so far (each covers every append of its job).
    pub fn sync_count(&self) -> u64 {
        self.owner().syncs
    }

    /// Write jobs (with their fsyncs) in flight now: at most 2 with `sync_force` (the
    /// next job writes while the last one's fsync runs), else at most 1.
    pub fn writes_in_flight(&self) -> usize {
        self.owner().writes
    }

    /// Waits until nothing but reads is in flight, then hands the store to an IO job
    /// running `work`, and takes it back.
    fn lend<T, W>(&self, kind: Lent, work: W) -> LogFuture<'_, T>
    where
        T: Send + 'static,
        W: FnOnce(&mut LogStore) -> StoreResult<T> + Send + 'static,
    {
        Box::pin(async move {
            self.wait(|o| o.idle().then_some(Ok(()))).await?;
            let slot = {
                let mut o = self.owner();
                let Some(mut s) = o.store.take() else {
                    return Err(o.away_error());
                };
                o.lent = Some(kind);
                o.persisted_away = match kind {
                    Lent::Close => s.persisted_index(),
                    _ => 0,
                };
                let (key, slot) = o.new_op::<T>();
                o.spawn(
                    "log store",
                    move || {
                        let r = work(&mut s);
                        (s, r)
                    },
                    move |o, r| match r {
                        Ok((s, r)) => {
                            o.store_back(s);
                            o.finish_op(key, r);
                        }
                        Err(e) => {
                            // The store went down with the job; the log is failed.
                            o.lent = None;
                            o.finish_op::<T>(key, Err(e));
                        }
                    },
                );
                slot
            };
            self.wait(move |_| slot.take()).await
        })
    }

    fn ready<T: 'static>(r: StoreResult<T>) -> LogFuture<'static, T> {
        Box::pin(std::future::ready(r))
    }
}

impl Drop for DefaultRaftLog {
    fn drop(&mut self) {
        let o = self.st.get_mut();
        if let Some(s) = o.store.take() {
            if o.writes > 0 || o.prefill.is_some() {
                // A write job or a prefill may still be writing into the files: keep
                // the store (and its directory lock) until the lane is past the write
                // and no prefill writes any more, so that nobody reopens the directory
                // under a write in flight.
                let gate = o.prefill_gate.clone();
                let lane = o.lane();
                Lane::submit(
                    &lane,
                    &*o.io,
                    Box::new(move || {
                        gate.cancel();
                        drop(s)
                    }),
                );
            }
        }
    }
}

impl RaftLog for DefaultRaftLog {
    fn init(&self) -> LogFuture<'_, Option<(u32, u64)>> {
        let mut o = self.owner();
        if o.store.is_some() || o.lent.is_some() {
            return Self::ready(Err(StoreError::InvalidArgument(
                "the log is already initialized".into(),
            )));
        }
        o.lent = Some(Lent::Opening);
        let (dir, cfg) = (o.dir.to_path_buf(), o.cfg.clone());
        let (key, slot) = o.new_op::<Option<(u32, u64)>>();
        o.spawn(
            "open",
            move || LogStore::open(&dir, cfg),
            move |o, r| match r.and_then(|x| x) {
                Ok(s) => {
                    let res = s.init_result();
                    o.store_back(s);
                    o.finish_op(key, Ok(res));
                }
                Err(e) => {
                    o.lent = None;
                    o.finish_op::<Option<(u32, u64)>>(key, Err(e));
                }
            },
        );
        drop(o);
        self.wait_slot(slot)
    }

    fn append(&self, items: Vec<LogItem>) -> LogFuture<'_, u64> {
        let mut o = self.owner();
        let batch = match o.store() {
            Ok(s) => s.prepare_append_owned(items),
            Err(e) => Err(e),
        };
        match batch {
            Ok(b) => {
                let slot: Slot<u64> = o
                    .spare_slots
                    .pop()
                    .unwrap_or_else(|| Rc::new(Cell::new(None)));
                o.queued.push(b);
                o.queued_waiters.push(slot.clone());
                o.kick_writes();
                drop(o);
                // answered, the slot goes back to the pool once nobody else holds it
                let mut slot = Some(slot);
                Box::pin(self.wait(move |o| {
                    let r = slot.as_ref()?.take()?;
                    if let Some(s) = slot.take() {
                        if Rc::strong_count(&s) == 1 && o.spare_slots.len() < MAX_SPARE_SLOTS {
                            o.spare_slots.push(s);
                        }
                    }
                    Some(r)
                }))
            }
            Err(e) => Self::ready(Err(e)),
        }
    }

    fn spare_items(&self) -> Vec<LogItem> {
        // only a convenience: a new list whenever the store is away (or busy)
        match self.st.try_borrow_mut() {
            Ok(mut o) => o
                .store
                .as_mut()
                .map(|s| s.take_item_list())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    fn truncate_tail(&self, index: u64) -> LogFuture<'_, ()> {
        // Planned here, at the call: applied at once when the entry before the cut is
        // in memory. Otherwise its header (and its index-file entry) is read on an IO
        // thread and the cut is applied when the future is polled after that.
        // Batches in flight that the truncation cuts belong to an older epoch: their
        // completion no longer moves the watermarks, which only the owner changes.
        let first = self
            .owner()
            .store()
            .and_then(|s| s.plan_truncate_tail(index));
        Box::pin(async move {
            let mut plan = first?;
            loop {
                match plan {
                    TruncatePlan::Done => return Ok(()),
                    TruncatePlan::Read(r) => {
                        let slot = self.owner().run_io("read", move || r.run());
                        let prev = self.wait(move |_| slot.take()).await?;
                        plan = self.owner().store()?.finish_truncate_tail(prev)?;
                    }
                }
            }
        })
    }

    fn open_iterator(&self) -> Box<dyn LogIterator + '_> {
        Box::new(DefaultLogIterator { log: self })
    }

    fn try_find_match_pos(&self, term: u32, index: u64) -> LogFuture<'_, Option<(u32, u64)>> {
        Box::pin(async move {
            let (mut search, base) = {
                let mut o = self.owner();
                let s = o.store()?;
                let (first, last) = s.index_range()?;
                (MatchSearch::new(term, index, first, last), s.base_entry())
            };
            loop {
                match search.next_probe() {
                    Probe::Done(r) => {
                        return Ok(
                            r.or_else(|| crate::store::log_store::base_if_valid(base, term, index))
                        )
                    }
                    Probe::TermOf(i) => {
                        let slot = {
                            let mut o = self.owner();
                            match o.store()?.plan_term_at(i)? {
                                Lookup::Known(t) => {
                                    search.feed(t);
                                    continue;
                                }
                                Lookup::Read(h) => o.run_io("read", move || h.run()),
                            }
                        };
                        let (t, _) = self.wait(move |_| slot.take()).await?;
                        search.feed(t);
                    }
                }
            }
        })
    }

    fn mark_truncate_by_index(&self, index: u64, delay: Duration) {
        if let Ok(s) = self.owner().store() {
            s.mark_truncate_by_index(index, delay);
        }
    }

    fn mark_truncate_by_timestamp(&self, timestamp_ms: i64, bound_index: u64, delay: Duration) {
        if let Ok(s) = self.owner().store() {
            s.mark_truncate_by_timestamp(timestamp_ms, bound_index, delay);
        }
    }

    fn begin_install(&self) -> LogFuture<'_, ()> {
        self.lend(Lent::Install, |s| s.begin_install(None))
    }

    fn begin_install_voting(&self, vote: (u32, u64)) -> LogFuture<'_, ()> {
        self.lend(Lent::Install, move |s| s.begin_install(Some(vote)))
    }

    fn finish_install(&self, next_index: u64, next_pos: u64) -> LogFuture<'_, ()> {
        self.lend(Lent::Install, move |s| {
            s.finish_install(next_index, next_pos)
        })
    }

    fn finish_install_with_term(
        &self,
        next_index: u64,
        next_pos: u64,
        prev_term: u32,
    ) -> LogFuture<'_, ()> {
        self.lend(Lent::Install, move |s| {
            s.finish_install_with_term(next_index, next_pos, Some(prev_term))
        })
    }

    fn load_next_item_pos(&self, index: u64) -> LogFuture<'_, u64> {
        let mut o = self.owner();
        let look = match o.store().and_then(|s| s.plan_next_item_pos(index)) {
            Ok(l) => l,
            Err(e) => return Self::ready(Err(e)),
        };
        match look {
            Lookup::Known(p) => Self::ready(Ok(p)),
            Lookup::Read(h) => {
                let slot = o.run_io("read", move || h.run().map(|(_, next)| next));
                drop(o);
                self.wait_slot(slot)
            }
        }
    }

    fn set_commit_index(&self, index: u64) {
        let mut o = self.owner();
        match o.store.as_mut() {
            Some(s) => s.set_commit_index(index),
            None => o.pending_commit = o.pending_commit.max(index),
        }
    }

    fn persisted_index(&self) -> u64 {
        let o = self.owner();
        match &o.store {
            Some(s) if s.init_result().is_some() => s.persisted_index(),
            Some(_) => 0,
            None if o.lent == Some(Lent::Close) => o.persisted_away,
            None => 0,
        }
    }

    fn persisted_state(&self) -> StoreResult<PersistedState> {
        self.with_store(|s| Ok(s.persisted_state()))
    }

    fn persist_term_vote(&self, current_term: u32, voted_for: i32) -> LogFuture<'_, ()> {
        self.persist_status(move |st| {
            st.current_term = current_term;
            st.voted_for = voted_for;
        })
    }

    fn close(&self) -> LogFuture<'_, ()> {
        {
            let o = self.owner();
            if o.store.is_none() && o.lent.is_none() {
                return match &o.failed {
                    Some(c) => Self::ready(Err(StoreError::failed(c.clone()))),
                    None => Self::ready(Ok(())),
                };
            }
        }
        self.lend(Lent::Close, |s| s.close())
    }
}

/// Iterator of [`DefaultRaftLog`]: the tail cache answers at once; older entries are
/// read on an IO thread from the segment files handed to it.
struct DefaultLogIterator<'a> {
    log: &'a DefaultRaftLog,
}

impl LogIterator for DefaultLogIterator<'_> {
    fn next(
        &mut self,
        index: u64,
        limit: usize,
        bytes_limit: usize,
    ) -> LogFuture<'_, Vec<LogItem>> {
        let mut o = self.log.owner();
        let plan = o.store().and_then(|s| {
            s.plan_read(index, limit, bytes_limit)
                .map(|p| (p, s.files_snapshot()))
        });
        match plan {
            Err(e) => DefaultRaftLog::ready(Err(e)),
            Ok((ReadPlan::Cached(v), _)) => DefaultRaftLog::ready(Ok(v)),
            Ok((ReadPlan::Files(r), files)) => {
                let block = o.cfg.read_block_size;
                let slot = o.run_io("read", move || r.read(&files, block));
                drop(o);
                self.log.wait_slot(slot)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn a_post_wakes_every_parked_waiter_once() {
        let inbox = Inbox::default();
        let (a, wa) = waker();
        let (b, wb) = waker();
        let (c, wc) = waker();
        assert!(inbox.park(&wa));
        assert!(inbox.park(&wa), "the same waker twice is kept once");
        assert!(inbox.park(&wb));
        assert!(inbox.park(&wc));
        inbox.post(Msg::Write(Err(StoreError::Closed)));
        let n = |c: &Arc<Count>| c.0.load(Ordering::SeqCst);
        assert_eq!((n(&a), n(&b), n(&c)), (1, 1, 1));
        // A message waiting: no park, and nothing is registered.
        assert!(!inbox.park(&wb));
        let mut out = Vec::new();
        inbox.take(&mut out);
        assert!(matches!(
            out.as_slice(),
            [Msg::Write(Err(StoreError::Closed))]
        ));
        // Parked again after the drain: the next post wakes it again, and only it.
        assert!(inbox.park(&wb));
        inbox.post(Msg::Write(Err(StoreError::Closed)));
        assert_eq!((n(&a), n(&b), n(&c)), (1, 2, 1));
    }
}
