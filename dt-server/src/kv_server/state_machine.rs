//! [`DtKvStateMachine`]: the consensus layer's [`StateMachine`] over one group's
//! [`DtKv`], and [`DtKvFactory`], the [`RaftFactory`] that builds it (`dtkv-server.md`
//! §6, §9, §10).
//!
//! The state is shared with the request processors and the daemon task through a
//! [`KvGroup`] (a short mutex around [`DtKv`]): entries are executed by the group's
//! dispatcher thread in log order; lease reads, watch syncs and dispatch take the lock
//! for the time of one tree operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use dt_client::kv::{KvBody, KvCode, KvReq};
use dt_codec::plain::{PlainFields, PlainValue};
use dt_common::PerfHook;
use dt_raft::driver::RaftGroupConfig;
use dt_raft::raft_log::{DefaultRaftLog, Executor, RaftLog};
use dt_raft::sm::{
    store_config, Exec, ExecEntry, RaftError, RaftFactory, SmError, SmFuture, Snapshot,
    SnapshotChunk, SnapshotInfo, StateMachine,
};

use super::server::NewGroupConfig;
use crate::bootstrap::KvConfig;
use crate::dtkv::{
    ApplyResult, BizType, DtKv, DtKvSnapshot, KvResponse, LockHandover, WatchConfig,
};

/// A watch channel: the server-wide id of a client connection (see
/// [`ChannelTable`](super::ChannelTable)).
pub type ChannelId = u64;

/// One group's DtKV state, shared by its state machine, its processors and the daemon.
#[derive(Debug)]
pub struct KvGroup {
    group_id: i32,
    kv: Mutex<DtKv<ChannelId>>,
}

impl KvGroup {
    /// An empty state for `group_id`.
    pub fn new(group_id: i32, watch: WatchConfig) -> Self {
        Self::with_capacity(group_id, watch, 0)
    }

    /// An empty state whose key map has room for `map_capacity` keys.
    pub fn with_capacity(group_id: i32, watch: WatchConfig, map_capacity: usize) -> Self {
        KvGroup {
            group_id,
            kv: Mutex::new(DtKv::with_capacity(group_id, watch, map_capacity)),
        }
    }

    /// The group id.
    pub fn group_id(&self) -> i32 {
        self.group_id
    }

    /// Locks the state (held for one operation only; never across IO).
    pub fn lock(&self) -> MutexGuard<'_, DtKv<ChannelId>> {
        self.kv.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`KvGroup::lock`] without waiting: `None` while another thread holds the state.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, DtKv<ChannelId>>> {
        match self.kv.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// What the leader's caller gets for an executed DtKV entry.
///
/// Every replica produces one and only the leader's is answered: the answer's packet
/// body is built from it when answering ([`KvOutput::response`]), not on every replica
/// for every entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvOutput {
    /// The entry's raft index (the answer's `raft_index`).
    pub raft_index: i64,
    /// The entry's result.
    pub result: ApplyResult,
    /// The DTKV_LOCK_PUSH to send to the lock's new owner (only the leader sends it).
    /// Boxed: it is rare, and every output is moved several times on its way to the
    /// caller.
    pub lock_push: Option<Box<KvReq>>,
}

impl KvOutput {
    /// The packet's `biz_code`.
    pub fn biz_code(&self) -> KvCode {
        self.result.biz_code()
    }

    /// The answer to the client.
    pub fn response(&self) -> KvResponse {
        KvResponse::write(self.raft_index, self.result.clone())
    }

    /// The answer to the client, taking the result.
    pub fn into_response(self) -> KvResponse {
        KvResponse::write(self.raft_index, self.result)
    }
}

/// The DTKV_LOCK_PUSH body of a hand-over (`dtkv-server.md` §6.6).
pub fn lock_push_req(group_id: i32, h: &LockHandover, wait_nanos: i64) -> KvReq {
    let mut r = KvReq::put(group_id, h.lock_key.clone(), h.value.clone());
    r.ttl_millis = wait_nanos;
    r.set_owner(h.owner);
    r
}

/// Wall-clock milliseconds now.
pub(crate) fn wall_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The local clock DtKV's TTLs and watches run on: on a dispatcher thread its fiber
/// clock (the operating system's monotonic clock, cached per round, in production; the
/// virtual clock in a simulation: the same base as the driver's `local_create_nanos`),
/// elsewhere the monotonic clock. Returns (monotonic nanoseconds, wall-clock millis).
pub fn kv_clock() -> (i64, i64) {
    match dt_fiber::now() {
        Some(t) => (t.nano_time, t.wall_millis),
        None => (dt_common::mono_nanos(), wall_millis()),
    }
}

/// The DtKV state machine of one group.
#[derive(Debug)]
pub struct DtKvStateMachine {
    group: Arc<KvGroup>,
    /// What `prepare` loads for the last entries it was hinted, by hint number modulo
    /// [`PREPARED`].
    prepared: [Prepared; PREPARED],
    /// How many hints `prepare` had.
    hints: usize,
}

/// How many hints `prepare` remembers: an entry's slot is loaded at its hint, its
/// holder two hints later and its value three hints later (the engine hints four
/// entries ahead, so the last comes one entry before its execution).
const PREPARED: usize = 4;

/// One hinted entry's loads in flight.
#[derive(Debug, Clone, Copy, Default)]
struct Prepared {
    /// The map bucket whose slot is loading.
    bucket: Option<usize>,
    /// The holder loading.
    holder: Option<usize>,
}

impl DtKvStateMachine {
    /// A state machine over `group`.
    pub fn new(group: Arc<KvGroup>) -> Self {
        DtKvStateMachine {
            group,
            prepared: [Prepared::default(); PREPARED],
            hints: 0,
        }
    }
}

impl StateMachine for DtKvStateMachine {
    type Output = KvOutput;

    fn exec(&mut self, entry: &ExecEntry<'_>) -> Exec<KvOutput> {
        let Some(biz) = BizType::from_code(entry.biz_type) else {
            return Exec::Done(Err(SmError::Rejected(format!(
                "unknown dtkv biz type {}",
                entry.biz_type
            ))));
        };
        // A follower's or replayed entry is a slice of a whole AppendEntries frame or
        // read block, and a leader's small body a slice of a pooled chunk (the
        // processor encodes it with `to_bytes_pooled`) that the IO thread keeps slicing
        // for the next requests. Slices of it would keep all of it alive in the tree,
        // and making and dropping them here moves that buffer's reference count between
        // this thread and the others on every entry (at 550k puts a second those drops
        // were 11% of this thread's time). So such a body is decoded into fields of
        // their own (one allocation each, freed on this thread, or moved into the tree
        // when it keeps the value; keys it keeps it copies itself:
        // `KvTree::apply_taking`). A larger local body has a buffer of its own, and its
        // value is kept in place.
        let copy = entry.body_shared || entry.body.len() <= dt_codec::encode::POOLED_MAX;
        let decoded = if copy {
            KvReq::decode_copied(entry.body)
        } else {
            KvReq::decode(entry.body)
        };
        let mut req = match decoded {
            Ok(r) => r,
            Err(e) => return Exec::Done(Err(SmError::Rejected(format!("bad KvReq: {e}")))),
        };
        let now = kv_clock().0;
        let mut kv = self.group.lock();
        #[cfg(feature = "sim-bugs")]
        if crate::sim::bugs::skip_expire(biz, &req, &mut kv, now) {
            return Exec::Done(Ok(KvOutput {
                raft_index: entry.index as i64,
                result: ApplyResult::Single(dt_client::kv::KvResult::code(KvCode::Success)),
                lock_push: None,
            }));
        }
        let r = kv.exec_with_push_wait(
            entry.index as i64,
            entry.leader_create_millis,
            entry.local_create_nanos,
            biz,
            &mut req,
            now,
        );
        // a snapshot's garbage-collection sweep, if one is under way
        kv.gc_step(GC_PER_ENTRY);
        Exec::Done(match r {
            Ok((out, wait)) => {
                let lock_push = out
                    .lock_handover
                    .as_ref()
                    .map(|h| Box::new(lock_push_req(self.group.group_id, h, wait.unwrap_or(0))));
                Ok(KvOutput {
                    raft_index: entry.index as i64,
                    result: out.result,
                    lock_push,
                })
            }
            Err(e) => Err(SmError::Failed(e.to_string())),
        })
    }

    /// Loads early what executing the entry will wait for, in three steps one to two
    /// hints apart: the key's map slot, then (the slot in the cache) the key's holder,
    /// then (the holder in the cache) the value a put replaces and frees. A body that
    /// is not a request on one key is passed over.
    fn prepare(&mut self, entry: &ExecEntry<'_>) {
        let mut f = PlainFields::new(entry.body);
        if f.next_if(0x08).is_err() {
            return;
        }
        let Ok(Some(PlainValue::Len(key))) = f.next_if(0x12) else {
            return;
        };
        // A hint never waits: with the lock held elsewhere (an IO thread's read) it is
        // skipped.
        let Some(kv) = self.group.try_lock() else {
            return;
        };
        let n = self.hints;
        self.hints = n.wrapping_add(1);
        self.prepared[n % PREPARED] = Prepared {
            bucket: kv.prefetch_slot(&entry.body[key]),
            holder: None,
        };
        // hinted two hints ago
        let p = &mut self.prepared[(n + PREPARED - 2) % PREPARED];
        if let Some(b) = p.bucket.take() {
            p.holder = kv.prefetch_holder(b);
        }
        // hinted three hints ago
        if let Some(h) = self.prepared[(n + PREPARED - 3) % PREPARED].holder.take() {
            kv.prefetch_value(h);
        }
    }

    fn take_snapshot(&mut self, info: &SnapshotInfo) -> SmFuture<'static, Box<dyn Snapshot>> {
        let r = self
            .group
            .lock()
            .take_snapshot(info.last_included_index as i64);
        let group = self.group.clone();
        let info = info.clone();
        Box::pin(async move {
            let snap = r.map_err(|e| SmError::Failed(e.to_string()))?;
            Ok(Box::new(KvSnapshot {
                info,
                group,
                snap: Some(snap),
            }) as Box<dyn Snapshot>)
        })
    }

    fn install_snapshot(&mut self, chunk: SnapshotChunk<'_>) -> SmFuture<'static, ()> {
        let (now, wall) = kv_clock();
        let r = self
            .group
            .lock()
            .install_chunk(chunk.offset, chunk.data, chunk.done, now, wall);
        Box::pin(async move { r.map_err(|e| SmError::Failed(e.to_string())) })
    }
}

/// Holders of a garbage-collection sweep (started when a snapshot closes) visited
/// after each entry executed: a million-holder sweep then takes ~125 000 entries, a
/// fraction of a second under load, at well under a microsecond per entry, instead of
/// holding the group's thread for the whole sweep at once (0.2–0.25 s, measured with a
/// million keys). The daemon also runs [`DAEMON_GC_STEP`] per tick for an idle group.
pub const GC_PER_ENTRY: usize = 8;

/// Holders of a sweep the daemon visits per tick and group (see [`GC_PER_ENTRY`]).
pub const DAEMON_GC_STEP: usize = 1024;

/// A DtKV snapshot being read: the tree's MVCC view at its index.
struct KvSnapshot {
    info: SnapshotInfo,
    group: Arc<KvGroup>,
    snap: Option<DtKvSnapshot>,
}

impl Snapshot for KvSnapshot {
    fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    fn read_next<'a>(&'a mut self, buf: &'a mut BytesMut) -> SmFuture<'a, usize> {
        let max = buf.capacity() - buf.len();
        let r = match self.snap.as_mut() {
            None => Ok(bytes::Bytes::new()),
            Some(s) => self.group.lock().read_snapshot(s, max.max(1)),
        };
        Box::pin(async move {
            let b = r.map_err(|e| SmError::Failed(e.to_string()))?;
            buf.put_slice(&b);
            Ok(b.len())
        })
    }

    fn close(&mut self) {
        if let Some(s) = self.snap.take() {
            // The sweep it starts runs a few holders after each entry executed
            // (`DtKvStateMachine::exec`) and on the daemon's ticks.
            self.group.lock().close_snapshot(s);
        }
    }
}

/// Builds DtKV groups: a [`DtKvStateMachine`] over a [`KvGroup`] it records (so the
/// processors find it) and a file log in `cfg.data_dir`.
pub struct DtKvFactory {
    io: Arc<dyn Executor>,
    watch: WatchConfig,
    groups: Mutex<HashMap<i32, Arc<KvGroup>>>,
    /// Bumped after every insert into `groups` (see [`DtKvFactory::generation`]).
    generation: std::sync::atomic::AtomicU64,
    base_dir: Option<std::path::PathBuf>,
    /// Per-group DtKV options (groups without an entry use `watch`).
    options: Mutex<HashMap<i32, GroupKvOptions>>,
    new_group: Option<Arc<dyn NewGroupConfig>>,
    /// The perf hook of the groups added at run time.
    perf: PerfHook,
}

/// The DtKV options of one group, checked and converted.
#[derive(Debug, Clone)]
struct GroupKvOptions {
    watch: WatchConfig,
    map_capacity: usize,
    dispatch_interval: Duration,
}

/// The watch settings and map capacity a group's [`KvConfig`] names, checked
/// (`watchMaxBatchSize`, `watchMaxReqBytes`, `watchDispatchIntervalMillis` and
/// `watchTimeoutMillis` positive, `initMapCapacity` not negative).
pub fn watch_config_of(kv: &KvConfig) -> Result<(WatchConfig, usize, Duration), String> {
    fn positive(key: &str, v: i64) -> Result<i64, String> {
        if v > 0 {
            Ok(v)
        } else {
            Err(format!("{key} must be positive (got {v})"))
        }
    }
    let w = WatchConfig {
        max_batch: positive("watchMaxBatchSize", kv.watch_max_batch_size as i64)? as usize,
        max_req_bytes: positive("watchMaxReqBytes", kv.watch_max_req_bytes as i64)? as usize,
        timeout_nanos: positive("watchTimeoutMillis", kv.watch_timeout_millis)?
            .saturating_mul(1_000_000),
        ..WatchConfig::default()
    };
    let interval = positive(
        "watchDispatchIntervalMillis",
        kv.watch_dispatch_interval_millis as i64,
    )?;
    if kv.init_map_capacity < 0 {
        return Err(format!(
            "initMapCapacity must not be negative (got {})",
            kv.init_map_capacity
        ));
    }
    Ok((
        w,
        kv.init_map_capacity as usize,
        Duration::from_millis(interval as u64),
    ))
}

impl std::fmt::Debug for DtKvFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DtKvFactory({:?})", self.group_ids())
    }
}

impl DtKvFactory {
    /// A factory whose logs run their file work on `io`. `base_dir`: where groups added
    /// at run time keep their files (`<base_dir>/<group id>`); `None` refuses them.
    pub fn new(
        io: Arc<dyn Executor>,
        watch: WatchConfig,
        base_dir: Option<std::path::PathBuf>,
    ) -> Self {
        DtKvFactory {
            io,
            watch,
            groups: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            base_dir,
            options: Mutex::new(HashMap::new()),
            new_group: None,
            perf: PerfHook::default(),
        }
    }

    /// Sets what builds the configuration of groups added at run time (instead of
    /// defaults in `<base_dir>/<group id>`).
    pub fn set_new_group(&mut self, n: Arc<dyn NewGroupConfig>) {
        self.new_group = Some(n);
    }

    /// The perf hook the groups added at run time report to (their
    /// `RaftGroupConfig::perf`); the no-op hook by default.
    pub fn set_perf(&mut self, perf: PerfHook) {
        self.perf = perf;
    }

    /// Records group `group_id`'s DtKV options (used when its state machine is
    /// created); fails with a message naming the bad key.
    pub fn set_kv_config(&self, group_id: i32, kv: &KvConfig) -> Result<(), String> {
        let (watch, map_capacity, dispatch_interval) = watch_config_of(kv)?;
        self.options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                group_id,
                GroupKvOptions {
                    watch,
                    map_capacity,
                    dispatch_interval,
                },
            );
        Ok(())
    }

    /// The watch dispatch period of a group with its own DtKV options (`None`: every
    /// round of the server's daemon).
    pub fn dispatch_interval(&self, group_id: i32) -> Option<Duration> {
        self.options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group_id)
            .map(|o| o.dispatch_interval)
    }

    fn map(&self) -> MutexGuard<'_, HashMap<i32, Arc<KvGroup>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state of group `group_id`, once its state machine was created.
    pub fn group(&self, group_id: i32) -> Option<Arc<KvGroup>> {
        self.map().get(&group_id).cloned()
    }

    /// A number that changes after every group state created (read without a lock): a
    /// per-thread cache of [`DtKvFactory::group`] results is current while this returns
    /// the value it was built at (build it after reading the value).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The ids of the groups created so far.
    pub fn group_ids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.map().keys().copied().collect();
        v.sort_unstable();
        v
    }
}

impl RaftFactory for DtKvFactory {
    type Sm = DtKvStateMachine;

    fn create_state_machine(&self, cfg: &RaftGroupConfig) -> Result<DtKvStateMachine, RaftError> {
        let opts = self
            .options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cfg.group_id)
            .cloned();
        let g = Arc::new(match opts {
            Some(o) => KvGroup::with_capacity(cfg.group_id, o.watch, o.map_capacity),
            None => KvGroup::new(cfg.group_id, self.watch.clone()),
        });
        self.map().insert(cfg.group_id, g.clone());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(DtKvStateMachine::new(g))
    }

    fn create_raft_log(&self, cfg: &RaftGroupConfig) -> Result<Box<dyn RaftLog>, RaftError> {
        Ok(Box::new(DefaultRaftLog::new(
            &cfg.data_dir,
            store_config(cfg),
            self.io.clone(),
        )))
    }

    fn create_config(
        &self,
        group_id: i32,
        members: &[u32],
        observers: &[u32],
    ) -> Result<RaftGroupConfig, RaftError> {
        if let Some(n) = &self.new_group {
            let (mut c, kv) = n
                .create(group_id, members, observers)
                .map_err(RaftError::InvalidInput)?;
            c.group_id = group_id;
            c.members = members.to_vec();
            c.observers = observers.to_vec();
            c.perf = self.perf.clone();
            self.set_kv_config(group_id, &kv)
                .map_err(RaftError::InvalidInput)?;
            return Ok(c);
        }
        let Some(base) = &self.base_dir else {
            return Err(RaftError::InvalidInput(format!(
                "this server has no data directory for new group {group_id}"
            )));
        };
        let mut c = RaftGroupConfig::new(group_id, 0, members.to_vec());
        c.observers = observers.to_vec();
        c.data_dir = base.join(group_id.to_string());
        c.perf = self.perf.clone();
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dt_client::kv::KvCommands;
    use dt_codec::encode;
    use dt_raft::store::log_item::TYPE_NORMAL;
    use std::task::{Context, Poll, Waker};

    fn ready<T>(mut f: SmFuture<'_, T>) -> Result<T, SmError> {
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("the DtKV futures complete at once"),
        }
    }

    fn exec(sm: &mut DtKvStateMachine, index: u64, biz: BizType, req: &KvReq) -> KvOutput {
        let body = encode::to_bytes(req);
        let header = Bytes::new();
        let e = ExecEntry {
            index,
            term: 1,
            item_type: TYPE_NORMAL,
            biz_type: biz.code(),
            leader_create_millis: 1_000,
            local_create_nanos: dt_common::mono_nanos(),
            header: &header,
            body: &body,
            body_shared: false,
        };
        match sm.exec(&e) {
            Exec::Done(r) => r.unwrap(),
            Exec::Pending(_) => panic!("DtKV executes synchronously"),
        }
    }

    /// Entry `index` of biz type code `biz` with `body`, created at time 0.
    fn entry<'a>(
        index: u64,
        biz: u8,
        header: &'a Bytes,
        body: &'a Bytes,
        body_shared: bool,
    ) -> ExecEntry<'a> {
        ExecEntry {
            index,
            term: 1,
            item_type: TYPE_NORMAL,
            biz_type: biz,
            leader_create_millis: 0,
            local_create_nanos: 0,
            header,
            body,
            body_shared,
        }
    }

    /// A value applied from a shared body (a follower's slice of a whole frame) or a
    /// small local body (which the processor cuts from a pooled chunk) is kept in a
    /// buffer of its own; one from a large local body (a buffer of its own) is kept as
    /// is. A new node's key is always a copy (of a few bytes, not the whole body).
    #[test]
    fn values_from_a_shared_body_do_not_keep_the_whole_buffer() {
        let g = Arc::new(KvGroup::new(0, WatchConfig::default()));
        let mut sm = DtKvStateMachine::new(g.clone());
        let one = encode::to_bytes(&KvReq::put(0, "k1", "value one"));
        let two = encode::to_bytes_pooled(&KvReq::put(0, "k2", "value two"));
        let big_value = vec![b'x'; dt_codec::encode::POOLED_MAX];
        let four = encode::to_bytes(&KvReq::put(0, "k4", big_value.clone()));
        let mut batch = KvReq::key(0, "");
        batch.keys = vec![Bytes::from_static(b"b1"), Bytes::from_static(b"b2")];
        batch.values = vec![Bytes::from_static(b"bv1"), Bytes::from_static(b"bv2")];
        let three = encode::to_bytes(&batch);
        // "A frame": other bytes around the entries' bodies.
        let mut frame = vec![0xEE; 1000];
        frame.extend_from_slice(&one);
        frame.extend_from_slice(&three);
        frame.extend_from_slice(&[0xEE; 1000]);
        let frame = Bytes::from(frame);
        let shared = frame.slice(1000..1000 + one.len());
        let shared3 = frame.slice(1000 + one.len()..1000 + one.len() + three.len());
        let header = Bytes::new();
        for (index, body, body_shared, biz) in [
            (1, &shared, true, BizType::Put),
            (2, &two, false, BizType::Put),
            (3, &shared3, true, BizType::BatchPut),
            (4, &four, false, BizType::Put),
        ] {
            let e = entry(index, biz.code(), &header, body, body_shared);
            assert!(matches!(sm.exec(&e), Exec::Done(Ok(_))));
        }
        let within = |b: &Bytes, buf: &Bytes| {
            let (p, s) = (b.as_ptr() as usize, buf.as_ptr() as usize);
            p >= s && p < s + buf.len()
        };
        let v1 = g.lock().tree().get(b"k1").node.expect("k1").data;
        assert_eq!(&v1[..], b"value one");
        assert!(
            !within(&v1, &frame),
            "the value still points into the frame"
        );
        let v2 = g.lock().tree().get(b"k2").node.expect("k2").data;
        assert_eq!(&v2[..], b"value two");
        assert!(!within(&v2, &two), "a small local body's value is copied");
        let v4 = g.lock().tree().get(b"k4").node.expect("k4").data;
        assert_eq!(v4, big_value);
        assert!(
            within(&v4, &four),
            "a large local body is its own buffer: kept without a copy"
        );
        let kv = g.lock();
        let t = kv.tree();
        for (key, value) in [(&b"b1"[..], &b"bv1"[..]), (b"b2", b"bv2")] {
            let v = t.get(key).node.expect("batch key").data;
            assert_eq!(&v[..], value);
            assert!(!within(&v, &frame), "a batch value points into the frame");
        }
        for (key, body) in [(&b"k1"[..], &frame), (b"k2", &two), (b"b1", &frame)] {
            let h = t.lookup(key).expect("a holder");
            let k = &t.holders[h].key;
            assert_eq!(&k[..], key);
            assert!(!within(k, body), "the key of {key:?} points into its body");
        }
    }

    /// Closing a snapshot starts a garbage-collection sweep that runs GC_PER_ENTRY
    /// holders after each entry executed, not all at once: with ~1 000 holders it is
    /// still under way after 50 entries and done 100 entries later, and every version
    /// the snapshot kept is gone.
    #[test]
    fn a_closed_snapshots_sweep_runs_a_few_holders_per_entry() {
        let g = Arc::new(KvGroup::new(0, WatchConfig::default()));
        let mut sm = DtKvStateMachine::new(g.clone());
        let header = Bytes::new();
        let mut index = 0;
        let mut put = |sm: &mut DtKvStateMachine, k: String, v: &str| {
            index += 1;
            let body = encode::to_bytes(&KvReq::put(0, k, v.to_string()));
            let e = entry(index, BizType::Put.code(), &header, &body, false);
            assert!(matches!(sm.exec(&e), Exec::Done(Ok(_))));
        };
        for i in 0..1000 {
            put(&mut sm, format!("k{i}"), "v1");
        }
        let snap = g.lock().take_snapshot(1000).unwrap();
        for i in 0..1000 {
            put(&mut sm, format!("k{i}"), "v2"); // keeps v1 for the snapshot
        }
        g.lock().close_snapshot(snap);
        assert!(g.lock().gc_pending());
        for _ in 0..50 {
            put(&mut sm, "x".to_string(), "y");
        }
        assert!(
            g.lock().gc_pending(),
            "50 entries visit 400 holders of ~1 000"
        );
        for _ in 0..100 {
            put(&mut sm, "x".to_string(), "y");
        }
        let kv = g.lock();
        assert!(!kv.gc_pending(), "150 entries visit 1 200 holders");
        let t = kv.tree();
        let h = t.lookup(b"k7").unwrap();
        assert_eq!(t.holders[h].versions.len(), 1, "v1 dropped");
        assert_eq!(&t.get(b"k7").node.unwrap().data[..], b"v2");
    }

    /// `prepare` only loads: a state machine hinted ahead (as the engine does, and with
    /// hints that do not fit: bodies that are no request, keys never written, entries
    /// never executed) answers and ends exactly as one never hinted.
    #[test]
    fn hints_change_nothing() {
        let mut reqs: Vec<(BizType, KvReq)> = vec![(BizType::Mkdir, KvReq::key(0, "d"))];
        for i in 0..400u32 {
            let key = format!("d.k{}", i * 7 % 23);
            reqs.push(match i % 5 {
                0..=2 => (BizType::Put, KvReq::put(0, key, format!("v{i}"))),
                3 => (BizType::Remove, KvReq::key(0, key)),
                _ => (BizType::Mkdir, KvReq::key(0, format!("d.dir{}", i % 3))),
            });
        }
        let bodies: Vec<Bytes> = reqs.iter().map(|(_, r)| encode::to_bytes(r)).collect();
        let header = Bytes::new();
        let junk = [
            Bytes::from_static(&[0x12, 0x7f, b'k']),
            Bytes::from_static(&[0xff; 9]),
            Bytes::new(),
            encode::to_bytes(&KvReq::put(0, "never.written", "x")),
        ];
        let run = |hinted: bool| {
            let g = Arc::new(KvGroup::new(0, WatchConfig::default()));
            let mut sm = DtKvStateMachine::new(g.clone());
            let mut outs = Vec::new();
            for i in 0..reqs.len() {
                if hinted {
                    if let Some((biz, _)) = reqs.get(i + 4) {
                        sm.prepare(&entry(
                            i as u64 + 5,
                            biz.code(),
                            &header,
                            &bodies[i + 4],
                            true,
                        ));
                    }
                    let j = &junk[i % junk.len()];
                    sm.prepare(&entry(i as u64 + 1, BizType::Put.code(), &header, j, true));
                }
                match sm.exec(&entry(
                    i as u64 + 1,
                    reqs[i].0.code(),
                    &header,
                    &bodies[i],
                    true,
                )) {
                    Exec::Done(r) => outs.push(r.unwrap()),
                    Exec::Pending(_) => panic!("DtKV executes synchronously"),
                }
            }
            let kv = g.lock();
            let state: Vec<dt_client::kv::KvResult> = (0..23)
                .map(|k| kv.tree().get(format!("d.k{k}").as_bytes()))
                .chain((0..3).map(|k| kv.tree().get(format!("d.dir{k}").as_bytes())))
                .collect();
            (outs, state)
        };
        let (plain, plain_state) = run(false);
        let (hinted, hinted_state) = run(true);
        assert_eq!(plain.len(), reqs.len());
        assert_eq!(hinted, plain);
        assert_eq!(hinted_state, plain_state);
        assert!(
            plain_state.iter().any(|r| r.node.is_some()),
            "the run leaves keys to compare"
        );
    }

    #[test]
    fn exec_answers_with_the_entry_index_and_snapshots_round_trip() {
        let g = Arc::new(KvGroup::new(0, WatchConfig::default()));
        let mut sm = DtKvStateMachine::new(g.clone());
        let out = exec(&mut sm, 5, BizType::Mkdir, &KvReq::key(0, "d"));
        assert_eq!(out.biz_code(), KvCode::Success);
        let resp = out.response();
        assert_eq!(resp.biz_code, KvCode::Success);
        assert_eq!(resp.body.to_resp().unwrap().raft_index, 5);
        for i in 0..50u64 {
            let out = exec(
                &mut sm,
                6 + i,
                BizType::Put,
                &KvReq::put(0, format!("d.k{i}"), format!("v{i}")),
            );
            assert_eq!(out.response().biz_code, KvCode::Success);
        }
        // A bad biz type or body is refused (fatal to the group, never applied).
        let body = Bytes::from_static(&[0x0b]);
        let header = Bytes::new();
        let mut e = entry(100, 120, &header, &body, false);
        assert!(matches!(sm.exec(&e), Exec::Done(Err(SmError::Rejected(_)))));
        e.biz_type = BizType::Put.code();
        assert!(matches!(sm.exec(&e), Exec::Done(Err(SmError::Rejected(_)))));

        let info = SnapshotInfo {
            last_included_index: 55,
            last_included_term: 1,
            members: vec![1],
            ..Default::default()
        };
        let mut snap = ready(sm.take_snapshot(&info)).unwrap();
        // A write after the snapshot must not leak into it.
        exec(&mut sm, 56, BizType::Put, &KvReq::put(0, "d.late", "x"));
        let mut stream = Vec::new();
        loop {
            let mut buf = BytesMut::with_capacity(100);
            let n = ready(snap.read_next(&mut buf)).unwrap();
            if n == 0 {
                break;
            }
            stream.extend_from_slice(&buf);
        }
        snap.close();
        assert!(!stream.is_empty());

        let g2 = Arc::new(KvGroup::new(0, WatchConfig::default()));
        let mut sm2 = DtKvStateMachine::new(g2.clone());
        let data: Vec<Bytes> = stream.chunks(77).map(Bytes::copy_from_slice).collect();
        let mut off = 0u64;
        for (i, d) in data.iter().enumerate() {
            ready(sm2.install_snapshot(SnapshotChunk {
                info: &info,
                offset: off,
                done: i + 1 == data.len(),
                data: d,
            }))
            .unwrap();
            off += d.len() as u64;
        }
        let read = |g: &KvGroup, k: &str| {
            g.lock()
                .read(KvCommands::DTKV_GET, &KvReq::key(0, k.to_string()))
                .body
                .to_resp()
                .and_then(|b| b.results.into_iter().next())
                .and_then(|r| r.node)
                .map(|n| n.data)
        };
        assert_eq!(read(&g2, "d.k7"), Some(Bytes::from("v7")));
        assert_eq!(read(&g2, "d.k49"), Some(Bytes::from("v49")));
        assert_eq!(read(&g2, "d.late"), None);
        assert_eq!(read(&g, "d.late"), Some(Bytes::from("x")));
    }
}
