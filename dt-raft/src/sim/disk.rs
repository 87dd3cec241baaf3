//! [`SimDisk`] and [`SimRaftLog`]: an in-memory [`RaftLog`] for the simulation, with
//! the crash semantics of `shared/spec/storage.md`.
//!
//! The disk keeps the log as one byte image in the store's real encoding (42-byte
//! item headers with CRC32C, business parts with their CRC32C, written back to back
//! from position 0). Three layers:
//!
//! * **the page cache** (`bytes`): every append lands here at once, overwriting from
//!   the write position (a truncation moves the write position back; stale items
//!   behind it stay in the image, as in a pre-allocated segment);
//! * **the platter** (`durable`): what an fsync captured. Each append issues an fsync
//!   that completes after a seeded delay on dt-fiber's virtual clock; completions are
//!   delivered in issue order;
//! * **the status file**: term, vote and commit index, replaced atomically (the
//!   store writes a temp file, fsyncs and renames): a crash keeps the old value or
//!   the new one, never a mix. Modelled at value level, not as bytes.
//!
//! [`SimDisk::crash`] throws the page cache away: the platter survives, plus (when
//! torn writes are on) a random prefix of the unsynced bytes — which may cut an item
//! in half. Recovery ([`RaftLog::init`] of a new [`SimRaftLog`]) then parses the image
//! with the store's own header/CRC checks and the index/term chain, and stops at the
//! first item that does not check out, exactly like the store's tail recovery. A break
//! at or below the durable commit index is reported as
//! [`StoreError::Corrupt`] (the real store refuses to
//! start there too).
//!
//! **Snapshots and log deletion.** The disk also keeps the node's saved snapshot
//! ([`SimDisk::snapshots`], a [`SnapshotStore`]: a save is durable when its future
//! resolves, after a seeded delay; a crash before keeps the previous one, as the
//! store's data-file-then-idx-file order does). [`RaftLog::mark_truncate_by_index`]
//! deletes the log's prefix after the delay (never the last entry, never beyond
//! what is durable), like the store deleting whole segments: the image then starts
//! at a later index and byte position. An install ([`RaftLog::begin_install`] /
//! [`RaftLog::finish_install`]) records the install flag in the status, drops the
//! whole log, and restarts it at the leader's next index and position; a crash in
//! between leaves a node that waits for the leader's install again. A crash after
//! the finish with nothing written since finds an empty log after the snapshot's
//! entry, whose term [`RaftLog::finish_install_with_term`] recorded (as the store's
//! status file does).
//!
//! An fsync may fail ([`SimDiskConfig::sync_fail_per_mille`]): the log becomes
//! fail-stop, as the store does: the failing append and every later call get
//! [`StoreError::Failed`]; the node has to restart (crash) and recover.
//!
//! Everything is single-threaded (`Rc`/`RefCell`) and deterministic for a seed. The
//! futures must be awaited in a fiber of a [`dt_fiber::Simulation`] (they sleep on
//! its virtual clock).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::core::XorShift;
use crate::driver::{SavedSnapshot, SnapshotStore, SnapshotStoreFuture};
use crate::raft_log::{LogFuture, LogIterator, RaftLog};
use crate::sm::SnapshotInfo;
use crate::store::log_item::{HeaderCheck, LogHeader, ITEM_HEADER_SIZE};
use crate::store::{LogItem, PersistedState, StoreError, StoreResult};

/// Fault and timing knobs of a [`SimDisk`].
#[derive(Clone, Debug)]
pub struct SimDiskConfig {
    /// Shortest fsync latency (µs of virtual time).
    pub sync_min_us: u64,
    /// Longest fsync latency (µs).
    pub sync_max_us: u64,
    /// Whether a crash may keep a torn prefix of the unsynced bytes.
    pub torn_writes: bool,
    /// Chance per fsync, in 1/1000, that it fails (the log then fails).
    pub sync_fail_per_mille: u64,
    /// Deliberate bug (simulation self-test): an append resolves as soon as its bytes
    /// are in the page cache, before the fsync.
    pub ack_before_sync: bool,
}

impl Default for SimDiskConfig {
    fn default() -> Self {
        SimDiskConfig {
            sync_min_us: 200,
            sync_max_us: 5_000,
            torn_writes: true,
            sync_fail_per_mille: 0,
            ack_before_sync: false,
        }
    }
}

/// Counters of what the disk went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Crashes.
    pub crashes: u64,
    /// Crashes that left a torn (partial) unsynced write behind.
    pub torn: u64,
    /// Recoveries that stopped at a bad item (torn tail or stale bytes).
    pub tails_cut: u64,
    /// Failed fsyncs.
    pub sync_failures: u64,
    /// Snapshots saved (completed).
    pub snapshots_saved: u64,
    /// Snapshot saves lost to a crash.
    pub snapshot_saves_lost: u64,
    /// Log prefixes deleted after a snapshot.
    pub log_deletions: u64,
    /// Installs finished (the log restarted after a leader's snapshot).
    pub installs: u64,
    /// Restarts that found an empty log after an install whose term was recorded
    /// (reported as the snapshot's entry, not as "install required").
    pub empty_logs_after_install: u64,
}

struct DiskState {
    cfg: SimDiskConfig,
    rng: XorShift,
    /// Incremented by every crash: operations of an older incarnation are dead.
    gen: u64,
    // ---- the device ----
    /// Durable image.
    durable: Vec<u8>,
    /// Durable status (term, vote, commit index, install flag, first valid index).
    status: PersistedState,
    /// Index of the first entry of the image (1, or later after a deletion or an
    /// install); durable (file deletions and installs are).
    first: u64,
    /// Term of entry `first - 1` when known (after a deletion, or an install that
    /// recorded it), for the chain check and an empty log's position at init.
    first_prev: Option<u32>,
    /// Log position of byte 0 of both images.
    base: usize,
    /// The saved snapshot (durable).
    snapshot: Option<SavedSnapshot>,
    /// A snapshot save of this incarnation is under way.
    saving: bool,
    // ---- the process (lost on crash) ----
    /// Page-cache image.
    bytes: Vec<u8>,
    /// Lowest byte of `bytes` written since the last completed fsync.
    dirty_lo: usize,
    /// Write position (end of the last entry).
    end: usize,
    /// Entries (index = `first` + position) and their byte offsets in the images.
    items: Vec<LogItem>,
    pos: Vec<usize>,
    persisted: u64,
    commit: u64,
    /// Virtual time (ns) at which the last issued fsync completes.
    last_sync_at: i64,
    last_status_at: i64,
    failed: Option<Arc<StoreError>>,
    open: bool,
    stats: DiskStats,
}

/// The simulated device of one node; survives crashes. Cheap to clone (shared).
#[derive(Clone)]
pub struct SimDisk {
    s: Rc<RefCell<DiskState>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.s.borrow();
        f.debug_struct("SimDisk")
            .field("durable_bytes", &s.durable.len())
            .field("entries", &s.items.len())
            .finish()
    }
}

fn now_ns() -> i64 {
    dt_fiber::now().map_or(0, |t| t.nano_time)
}

fn failed(op: &'static str) -> StoreError {
    StoreError::io(
        op,
        "sim-disk",
        std::io::Error::from_raw_os_error(crate::store::faults::EIO),
    )
}

impl SimDisk {
    /// An empty disk with `cfg`, its random choices seeded by `seed`.
    pub fn new(cfg: SimDiskConfig, seed: u64) -> Self {
        SimDisk {
            s: Rc::new(RefCell::new(DiskState {
                cfg,
                rng: XorShift::new(seed),
                gen: 0,
                durable: Vec::new(),
                status: PersistedState::default(),
                first: 1,
                first_prev: None,
                base: 0,
                snapshot: None,
                saving: false,
                bytes: Vec::new(),
                dirty_lo: 0,
                end: 0,
                items: Vec::new(),
                pos: Vec::new(),
                persisted: 0,
                commit: 0,
                last_sync_at: 0,
                last_status_at: 0,
                failed: None,
                open: false,
                stats: DiskStats::default(),
            })),
        }
    }

    /// Opens the log of this disk (the previous [`SimRaftLog`], if any, must be dead:
    /// call [`crash`](Self::crash) first). Call [`RaftLog::init`] before use.
    pub fn open(&self) -> SimRaftLog {
        let gen = self.s.borrow().gen;
        SimRaftLog {
            s: self.s.clone(),
            gen,
        }
    }

    /// The process dies: the page cache is lost, the durable image stays, plus (with
    /// torn writes) a random prefix of the bytes written since the last fsync. Pending
    /// futures of the old log resolve to [`StoreError::Closed`].
    pub fn crash(&self) {
        let mut s = self.s.borrow_mut();
        s.gen += 1;
        s.stats.crashes += 1;
        let lo = s.dirty_lo.min(s.end);
        let unsynced = s.end.saturating_sub(lo);
        if s.cfg.torn_writes && unsynced > 0 && s.failed.is_none() {
            let keep = s.rng.range(0, unsynced as u64) as usize;
            if keep > 0 {
                if keep < unsynced {
                    s.stats.torn += 1;
                }
                let DiskState { bytes, durable, .. } = &mut *s;
                if durable.len() < lo + keep {
                    durable.resize(lo + keep, 0);
                }
                durable[lo..lo + keep].copy_from_slice(&bytes[lo..lo + keep]);
            }
        }
        s.open = false;
        if s.saving {
            s.saving = false;
            s.stats.snapshot_saves_lost += 1;
        }
        s.bytes = Vec::new();
        s.items = Vec::new();
        s.pos = Vec::new();
        s.failed = None;
    }

    /// The snapshot store of the current incarnation (dead after a crash).
    pub fn snapshots(&self) -> SimSnapshots {
        let gen = self.s.borrow().gen;
        SimSnapshots {
            s: self.s.clone(),
            gen,
        }
    }

    /// Whether the status says an install is under way (or required).
    pub fn installing(&self) -> bool {
        self.s.borrow().status.install_snapshot
    }

    /// Whether a snapshot save is under way now.
    pub fn saving(&self) -> bool {
        self.s.borrow().saving
    }

    /// Changes the chance of fsync failures (per mille).
    pub fn set_sync_fail_per_mille(&self, per_mille: u64) {
        self.s.borrow_mut().cfg.sync_fail_per_mille = per_mille;
    }

    /// The durable status (what a restart would read).
    pub fn durable_status(&self) -> PersistedState {
        self.s.borrow().status
    }

    /// Counters.
    pub fn stats(&self) -> DiskStats {
        self.s.borrow().stats
    }

    /// The entries a recovery would find now, without touching the disk (for
    /// invariant checks: what survived).
    pub fn durable_entries(&self) -> Vec<LogItem> {
        let s = self.s.borrow();
        parse_image(&s.durable, s.first, s.first_prev).0
    }
}

/// The saved snapshot of a [`SimDisk`], as the driver's [`SnapshotStore`].
#[derive(Clone)]
pub struct SimSnapshots {
    s: Rc<RefCell<DiskState>>,
    gen: u64,
}

impl SnapshotStore for SimSnapshots {
    fn recover(&self) -> SnapshotStoreFuture<Option<SavedSnapshot>> {
        let s = self.s.borrow();
        let r = if s.gen != self.gen {
            Err("sim disk: crashed".to_string())
        } else {
            Ok(s.snapshot.clone())
        };
        Box::pin(async move { r })
    }

    fn save(&self, info: SnapshotInfo, chunks: Vec<Bytes>) -> SnapshotStoreFuture<u64> {
        let me = self.clone();
        Box::pin(async move {
            let d = {
                let mut s = me.s.borrow_mut();
                if s.gen != me.gen {
                    return Err("sim disk: crashed".to_string());
                }
                s.saving = true;
                // writing and syncing the data file, then the idx file
                let lo = s.cfg.sync_min_us * 2;
                let hi = s.cfg.sync_max_us * 4;
                Duration::from_micros(s.rng.range(lo, hi.max(lo)))
            };
            let slept = dt_fiber::sleep(d).await;
            let mut s = me.s.borrow_mut();
            if s.gen != me.gen || slept.is_err() {
                return Err("sim disk: crashed during the snapshot save".to_string());
            }
            s.saving = false;
            let index = info.last_included_index;
            s.snapshot = Some(SavedSnapshot { info, chunks });
            s.stats.snapshots_saved += 1;
            Ok(index)
        })
    }
}

/// Parses an image: the items from byte 0 (entry `first`, after an entry of term
/// `first_prev` when known) that check out (CRC, index chain, term chain), and
/// whether it stopped at a bad item (rather than at zeros / the end).
fn parse_image(
    img: &[u8],
    first: u64,
    first_prev: Option<u32>,
) -> (Vec<LogItem>, Vec<usize>, usize, bool) {
    let mut items: Vec<LogItem> = Vec::new();
    let mut pos = Vec::new();
    let mut p = 0usize;
    let mut cut = false;
    while p + ITEM_HEADER_SIZE <= img.len() {
        let hb: &[u8; ITEM_HEADER_SIZE] = img[p..p + ITEM_HEADER_SIZE].try_into().expect("len");
        if hb.iter().all(|b| *b == 0) {
            break;
        }
        let room = (img.len() - p) as u64;
        let h = match LogHeader::parse(hb, room) {
            HeaderCheck::Item(h) => h,
            _ => {
                cut = true;
                break;
            }
        };
        let total = h.total_len as usize;
        let Ok(item) = h.decode_parts(&img[p + ITEM_HEADER_SIZE..p + total]) else {
            cut = true;
            break;
        };
        let expect_index = items.len() as u64 + first;
        let expect_prev = match items.last() {
            Some(i) => Some(i.term),
            None if first == 1 => Some(0),
            None => first_prev,
        };
        if item.index != expect_index || expect_prev.is_some_and(|p| item.prev_log_term != p) {
            // stale bytes behind a truncation, or an older incarnation's tail
            cut = true;
            break;
        }
        items.push(item);
        pos.push(p);
        p += total;
    }
    (items, pos, p, cut)
}

/// The log of one incarnation of a node, on a [`SimDisk`]. See the [module docs](self).
/// Clones share the log.
#[derive(Clone)]
pub struct SimRaftLog {
    s: Rc<RefCell<DiskState>>,
    gen: u64,
}

impl SimRaftLog {
    fn check(&self) -> StoreResult<std::cell::RefMut<'_, DiskState>> {
        let s = self.s.borrow_mut();
        if s.gen != self.gen {
            return Err(StoreError::Closed);
        }
        if let Some(c) = &s.failed {
            return Err(StoreError::failed(c.clone()));
        }
        if !s.open {
            return Err(StoreError::InvalidArgument("log not initialised".into()));
        }
        Ok(s)
    }

    /// Entry `index` from the in-memory view (what the tail cache would give), if held.
    pub fn entry(&self, index: u64) -> Option<LogItem> {
        let s = self.s.borrow();
        if s.gen != self.gen || index < s.first {
            return None;
        }
        s.items.get((index - s.first) as usize).cloned()
    }

    /// Term of entry `index` (0 for index 0), if held.
    pub fn term_at(&self, index: u64) -> Option<u32> {
        if index == 0 {
            return Some(0);
        }
        let s = self.s.borrow();
        if index < s.first {
            return None;
        }
        s.items.get((index - s.first) as usize).map(|i| i.term)
    }

    /// The first index held (1, or later after a log deletion or an install).
    pub fn first_index(&self) -> u64 {
        self.s.borrow().first
    }

    /// The last index held in memory (written, maybe not synced).
    pub fn last_index(&self) -> u64 {
        let s = self.s.borrow();
        s.first - 1 + s.items.len() as u64
    }

    /// Whether an fsync failed and the log stopped (the node must restart).
    pub fn is_failed(&self) -> bool {
        self.s.borrow().failed.is_some()
    }

    /// Schedules one completion on the disk's serial timeline; returns the delay.
    fn schedule(s: &mut DiskState, status: bool) -> Duration {
        let now = now_ns();
        let d = s.rng.range(s.cfg.sync_min_us, s.cfg.sync_max_us) as i64 * 1000;
        let last = if status {
            &mut s.last_status_at
        } else {
            &mut s.last_sync_at
        };
        let at = (now + d).max(*last);
        *last = at;
        Duration::from_nanos((at - now) as u64)
    }

    fn finish_sync(&self, upto: u64) -> StoreResult<u64> {
        let mut s = self.check()?;
        if s.rng.range(0, 999) < s.cfg.sync_fail_per_mille {
            s.stats.sync_failures += 1;
            let e = Arc::new(failed("fsync"));
            s.failed = Some(e.clone());
            return Err(StoreError::failed(e));
        }
        let DiskState {
            bytes,
            durable,
            dirty_lo,
            end,
            ..
        } = &mut *s;
        let lo = (*dirty_lo).min(*end);
        if durable.len() < *end {
            durable.resize(*end, 0);
        }
        durable[lo..*end].copy_from_slice(&bytes[lo..*end]);
        *dirty_lo = *end;
        let upto = upto.min(s.first - 1 + s.items.len() as u64);
        if upto > s.persisted {
            s.persisted = upto;
        }
        Ok(s.persisted)
    }

    /// [`RaftLog::append`] as a future that does not borrow the log.
    pub fn append_owned(&self, items: Vec<LogItem>) -> LogFuture<'static, u64> {
        let r = (|| {
            let mut s = self.check()?;
            let mut upto = s.first - 1 + s.items.len() as u64;
            for it in items {
                if it.index != upto + 1 {
                    return Err(StoreError::InvalidArgument(format!(
                        "append of index {} after {upto}",
                        it.index
                    )));
                }
                let p = s.end;
                let mut enc = Vec::with_capacity(it.encoded_len());
                it.encode_into(&mut enc);
                let e = p + enc.len();
                if s.bytes.len() < e {
                    s.bytes.resize(e, 0);
                }
                s.bytes[p..e].copy_from_slice(&enc);
                s.dirty_lo = s.dirty_lo.min(p);
                s.end = e;
                s.pos.push(p);
                s.items.push(it);
                upto += 1;
            }
            let d = Self::schedule(&mut s, false);
            Ok((upto, d, s.cfg.ack_before_sync))
        })();
        let me = self.clone();
        Box::pin(async move {
            let (upto, d, early) = r?;
            if early {
                // deliberate bug: claim durability now, sync in the background
                let s = me.s.clone();
                let gen = me.gen;
                if let Some(g) = dt_fiber::current_group() {
                    let _ = g.spawn("sim-late-sync", async move {
                        let _ = dt_fiber::sleep(d).await;
                        let _ = SimRaftLog { s, gen }.finish_sync(upto);
                    });
                }
                let mut st = me.check()?;
                st.persisted = st.persisted.max(upto);
                return Ok(st.persisted);
            }
            dt_fiber::sleep(d).await.map_err(|_| StoreError::Closed)?;
            me.finish_sync(upto)
        })
    }

    /// [`RaftLog::persist_term_vote`] as a future that does not borrow the log.
    pub fn persist_term_vote_owned(
        &self,
        current_term: u32,
        voted_for: i32,
    ) -> LogFuture<'static, ()> {
        let r = self.check().map(|mut s| Self::schedule(&mut s, true));
        let me = self.clone();
        Box::pin(async move {
            let d = r?;
            dt_fiber::sleep(d).await.map_err(|_| StoreError::Closed)?;
            let mut s = me.check()?;
            if s.rng.range(0, 999) < s.cfg.sync_fail_per_mille {
                s.stats.sync_failures += 1;
                let e = Arc::new(failed("fsync"));
                s.failed = Some(e.clone());
                return Err(StoreError::failed(e));
            }
            // commitIndex goes along, never above what is durable here
            let commit = s.commit.min(s.persisted).max(s.status.commit_index);
            s.status = PersistedState {
                current_term,
                voted_for,
                commit_index: commit,
                ..s.status
            };
            Ok(())
        })
    }
}

impl SimRaftLog {
    /// Removes entries `index..` at once (the trait's `truncate_tail` resolves with
    /// this result immediately; the simulation's node runner calls it directly).
    pub fn truncate_tail_now(&self, index: u64) -> StoreResult<()> {
        let mut s = self.check()?;
        let last = s.first - 1 + s.items.len() as u64;
        if index < s.first || index > last + 1 {
            return Err(StoreError::InvalidArgument(format!(
                "truncate at {index} with last index {last}"
            )));
        }
        if index <= s.commit {
            return Err(StoreError::InvalidArgument(format!(
                "truncate at {index} at or below the commit index {}",
                s.commit
            )));
        }
        if index <= last {
            let k = (index - s.first) as usize;
            let p = s.pos[k];
            s.end = p;
            s.dirty_lo = s.dirty_lo.min(p);
            s.items.truncate(k);
            s.pos.truncate(k);
            s.persisted = s.persisted.min(index - 1);
        }
        Ok(())
    }

    /// Deletes the entries before `index` now, bounded by what is durable and the
    /// commit index, keeping the entry at the bound and at least the last entry: the
    /// store deletes a segment only when the next one starts at or below the bound
    /// (storage.md §8.1), so the entry at the bound (the saved snapshot's, at most)
    /// stays, and it never deletes the segment it writes to. Returns the new first
    /// index.
    pub fn delete_prefix_now(&self, index: u64) -> StoreResult<u64> {
        let mut s = self.check()?;
        let last = s.first - 1 + s.items.len() as u64;
        let bound = index
            .min(s.persisted)
            .min(s.commit)
            .min(last)
            .saturating_sub(1);
        if bound < s.first {
            return Ok(s.first);
        }
        let k = (bound - s.first + 1) as usize;
        let cut = s.pos[k];
        let st = &mut *s;
        st.first_prev = Some(st.items[k - 1].term);
        st.items.drain(..k);
        st.pos.drain(..k);
        for p in &mut st.pos {
            *p -= cut;
        }
        st.bytes.drain(..cut.min(st.bytes.len()));
        st.durable.drain(..cut.min(st.durable.len()));
        st.end -= cut;
        st.dirty_lo = st.dirty_lo.saturating_sub(cut);
        st.base += cut;
        st.first = bound + 1;
        st.stats.log_deletions += 1;
        Ok(st.first)
    }

    /// Install begin: the status says "installing" (with the vote position), then
    /// every log file is deleted.
    fn begin_install_with(&self, vote: Option<(u32, u64)>) -> LogFuture<'_, ()> {
        Box::pin(async move {
            self.install_sync().await?;
            let mut s = self.check()?;
            s.status.install_snapshot = true;
            s.status.install_vote = vote;
            s.durable.clear();
            s.bytes.clear();
            s.end = 0;
            s.dirty_lo = 0;
            s.items.clear();
            s.pos.clear();
            s.persisted = s.first - 1;
            Ok(())
        })
    }

    /// Install finish: the log restarts empty at `next_index`, the status says so
    /// (with the term of entry `next_index - 1` when given, durable like the status).
    fn finish_install_with(
        &self,
        next_index: u64,
        next_pos: u64,
        prev_term: Option<u32>,
    ) -> LogFuture<'_, ()> {
        Box::pin(async move {
            if next_index == 0 {
                return Err(StoreError::InvalidArgument("next index 0".into()));
            }
            self.install_sync().await?;
            let mut s = self.check()?;
            s.durable.clear();
            s.bytes.clear();
            s.end = 0;
            s.dirty_lo = 0;
            s.items.clear();
            s.pos.clear();
            s.first = next_index;
            s.first_prev = prev_term;
            s.base = next_pos as usize;
            s.persisted = next_index - 1;
            s.commit = s.commit.max(next_index - 1);
            s.status.install_snapshot = false;
            s.status.install_vote = None;
            s.status.first_valid_index = next_index;
            s.status.commit_index = s.status.commit_index.max(next_index - 1);
            s.stats.installs += 1;
            Ok(())
        })
    }

    /// Waits for an install step's fsyncs, after the appends in flight (the store
    /// waits for them first); an error if the log died meanwhile.
    async fn install_sync(&self) -> StoreResult<()> {
        let d = Self::schedule(&mut *self.check()?, false);
        dt_fiber::sleep(d).await.map_err(|_| StoreError::Closed)?;
        self.check().map(drop)
    }
}

impl RaftLog for SimRaftLog {
    fn init(&self) -> LogFuture<'_, Option<(u32, u64)>> {
        let r = (|| {
            let mut s = self.s.borrow_mut();
            if s.gen != self.gen {
                return Err(StoreError::Closed);
            }
            if s.status.install_snapshot {
                // an install was interrupted: the leader installs again
                s.durable.clear();
                s.bytes.clear();
                s.end = 0;
                s.dirty_lo = 0;
                s.items.clear();
                s.pos.clear();
                s.persisted = s.first - 1;
                s.commit = s.status.commit_index;
                s.open = true;
                return Ok(None);
            }
            let (items, pos, end, cut) = parse_image(&s.durable, s.first, s.first_prev);
            if cut {
                s.stats.tails_cut += 1;
            }
            if items.is_empty() && s.first > 1 {
                // nothing written since an install: an empty log after entry first - 1
                // when the install recorded its term (finish_install_with_term), else
                // "install required", like the store's
                let prev = s.first_prev.map(|t| (t, s.first - 1));
                s.stats.empty_logs_after_install += u64::from(prev.is_some());
                s.bytes = s.durable.clone();
                s.end = 0;
                s.dirty_lo = 0;
                s.items = items;
                s.pos = pos;
                s.persisted = s.first - 1;
                s.commit = s.status.commit_index;
                s.open = true;
                return Ok(prev);
            }
            let last = (
                items.last().map_or(0, |i| i.term),
                s.first - 1 + items.len() as u64,
            );
            if last.1 < s.status.commit_index {
                return Err(StoreError::corrupt(
                    "sim-disk",
                    end as u64,
                    format!(
                        "log ends at {} below the durable commit index {}",
                        last.1, s.status.commit_index
                    ),
                ));
            }
            s.bytes = s.durable.clone();
            s.end = end;
            s.dirty_lo = end;
            s.items = items;
            s.pos = pos;
            s.persisted = last.1;
            s.commit = s.status.commit_index;
            s.open = true;
            Ok(Some(last))
        })();
        Box::pin(async move { r })
    }

    fn append(&self, items: Vec<LogItem>) -> LogFuture<'_, u64> {
        self.append_owned(items)
    }

    fn truncate_tail(&self, index: u64) -> LogFuture<'_, ()> {
        let r = self.truncate_tail_now(index);
        Box::pin(async move { r })
    }

    fn open_iterator(&self) -> Box<dyn LogIterator + '_> {
        Box::new(SimIter { log: self })
    }

    fn try_find_match_pos(&self, term: u32, index: u64) -> LogFuture<'_, Option<(u32, u64)>> {
        let r = self.check().map(|s| {
            let valid = |t: u32, i: u64| (t <= term && i < index) || (t == term && i == index);
            let top = index.min(s.first - 1 + s.items.len() as u64);
            (s.first..=top)
                .rev()
                .find_map(|i| {
                    let t = s.items[(i - s.first) as usize].term;
                    valid(t, i).then_some((t, i))
                })
                // the entry before the log when its term is known (the store's
                // base_entry after an install; entries deleted after a snapshot too)
                .or_else(|| {
                    let base = s.first_prev.filter(|_| s.first > 1);
                    base.map(|t| (t, s.first - 1)).filter(|&(t, i)| valid(t, i))
                })
        });
        Box::pin(async move { r })
    }

    fn mark_truncate_by_index(&self, index: u64, delay: Duration) {
        if delay.is_zero() {
            let _ = self.delete_prefix_now(index);
            return;
        }
        let me = self.clone();
        if let Some(g) = dt_fiber::current_group() {
            let _ = g.spawn("sim-delete-log", async move {
                if dt_fiber::sleep(delay).await.is_ok() {
                    let _ = me.delete_prefix_now(index);
                }
            });
        }
    }

    fn mark_truncate_by_timestamp(&self, _ts: i64, _bound: u64, _delay: Duration) {}

    fn begin_install(&self) -> LogFuture<'_, ()> {
        self.begin_install_with(None)
    }

    fn begin_install_voting(&self, vote: (u32, u64)) -> LogFuture<'_, ()> {
        self.begin_install_with(Some(vote))
    }

    fn finish_install(&self, next_index: u64, next_pos: u64) -> LogFuture<'_, ()> {
        self.finish_install_with(next_index, next_pos, None)
    }

    fn finish_install_with_term(
        &self,
        next_index: u64,
        next_pos: u64,
        prev_term: u32,
    ) -> LogFuture<'_, ()> {
        self.finish_install_with(next_index, next_pos, Some(prev_term))
    }

    fn load_next_item_pos(&self, index: u64) -> LogFuture<'_, u64> {
        let r = self.check().and_then(|s| {
            let last = s.first - 1 + s.items.len() as u64;
            let at = if index + 1 < s.first || index > last {
                None
            } else if index == last {
                Some(s.end)
            } else {
                s.pos.get((index + 1 - s.first) as usize).copied()
            };
            at.map(|p| (s.base + p) as u64).ok_or(StoreError::NotFound {
                index,
                reason: "beyond the log".into(),
            })
        });
        Box::pin(async move { r })
    }

    fn set_commit_index(&self, index: u64) {
        if let Ok(mut s) = self.check() {
            s.commit = s.commit.max(index);
        }
    }

    fn persisted_index(&self) -> u64 {
        self.s.borrow().persisted
    }

    fn close(&self) -> LogFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn persisted_state(&self) -> StoreResult<PersistedState> {
        let s = self.s.borrow();
        if s.gen != self.gen {
            return Err(StoreError::Closed);
        }
        Ok(s.status)
    }

    fn persist_term_vote(&self, current_term: u32, voted_for: i32) -> LogFuture<'_, ()> {
        self.persist_term_vote_owned(current_term, voted_for)
    }
}

struct SimIter<'a> {
    log: &'a SimRaftLog,
}

impl LogIterator for SimIter<'_> {
    fn next(
        &mut self,
        index: u64,
        limit: usize,
        bytes_limit: usize,
    ) -> LogFuture<'_, Vec<LogItem>> {
        let r = self.log.check().and_then(|s| {
            let mut out = Vec::new();
            let mut bytes = 0;
            let mut i = index;
            while out.len() < limit.max(1) {
                let Some(it) = i.checked_sub(s.first).and_then(|k| s.items.get(k as usize)) else {
                    break;
                };
                bytes += it.encoded_len();
                if !out.is_empty() && bytes > bytes_limit {
                    break;
                }
                out.push(it.clone());
                i += 1;
            }
            if out.is_empty() {
                return Err(StoreError::NotFound {
                    index,
                    reason: "beyond the log".into(),
                });
            }
            Ok(out)
        });
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_log::RaftLog;
    use dt_fiber::Simulation;
    use std::cell::Cell;

    fn item(index: u64, term: u32, prev: u32) -> LogItem {
        LogItem {
            term,
            prev_log_term: prev,
            index,
            body: bytes::Bytes::from(vec![index as u8; 20]),
            ..Default::default()
        }
    }

    /// Runs `f` as a fiber to completion on a fresh simulation.
    fn run<F: std::future::Future<Output = ()> + 'static>(f: F) {
        let mut sim = Simulation::new(1);
        let g = sim.new_group("t");
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        g.spawn("t", async move {
            f.await;
            d.set(true);
        })
        .unwrap();
        assert!(sim.run_until(|| done.get(), Duration::from_secs(60)));
    }

    #[test]
    fn synced_entries_survive_a_crash_and_unsynced_ones_may_not() {
        let cfg = SimDiskConfig {
            torn_writes: false,
            ..Default::default()
        };
        let disk = SimDisk::new(cfg, 7);
        let d2 = disk.clone();
        run(async move {
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), Some((0, 0)));
            let p = log
                .append(vec![item(1, 1, 0), item(2, 1, 1)])
                .await
                .unwrap();
            assert_eq!(p, 2);
            assert_eq!(log.persisted_index(), 2);
            // written, not yet synced
            let f = log.append(vec![item(3, 1, 1)]);
            drop(f);
            assert_eq!(log.last_index(), 3);
            d2.crash();
            assert!(matches!(log.append(vec![]).await, Err(StoreError::Closed)));
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), Some((1, 2)));
            assert_eq!(log.entry(2).unwrap(), item(2, 1, 1));
        });
        assert_eq!(disk.stats().crashes, 1);
    }

    #[test]
    fn a_torn_tail_is_cut_by_the_checksums_and_nothing_synced_is_lost() {
        let mut cut = 0;
        let mut torn = 0;
        for seed in 1..60 {
            let disk = SimDisk::new(SimDiskConfig::default(), seed);
            let d2 = disk.clone();
            run(async move {
                let log = d2.open();
                log.init().await.unwrap();
                log.append(vec![item(1, 1, 0)]).await.unwrap();
                let f = log.append(
                    (2..=4)
                        .map(|i| item(i, 2, if i == 2 { 1 } else { 2 }))
                        .collect(),
                );
                drop(f);
                d2.crash();
                let log = d2.open();
                let (t, last) = log.init().await.unwrap().unwrap();
                assert!((1..=4).contains(&last), "synced entry 1 kept");
                assert_eq!(t, if last == 1 { 1 } else { 2 });
                for i in 1..=last {
                    assert_eq!(log.entry(i).unwrap().index, i);
                }
            });
            cut += disk.stats().tails_cut;
            torn += disk.stats().torn;
        }
        assert!(torn > 10, "torn writes happen ({torn})");
        assert!(cut > 5, "recovery cut torn items by their CRC ({cut})");
    }

    #[test]
    fn stale_items_behind_a_truncation_do_not_come_back() {
        let cfg = SimDiskConfig {
            torn_writes: false,
            ..Default::default()
        };
        let disk = SimDisk::new(cfg, 3);
        let d2 = disk.clone();
        run(async move {
            let log = d2.open();
            log.init().await.unwrap();
            log.append(
                (1..=4)
                    .map(|i| item(i, 1, if i == 1 { 0 } else { 1 }))
                    .collect(),
            )
            .await
            .unwrap();
            log.truncate_tail_now(3).unwrap();
            // a shorter entry of term 2 at 3, synced; old 4 (term 1) stays behind it
            let mut it = item(3, 2, 1);
            it.body = bytes::Bytes::from_static(b"x");
            log.append(vec![it]).await.unwrap();
            d2.crash();
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), Some((2, 3)));
        });
        assert_eq!(
            disk.stats().tails_cut,
            1,
            "the stale item 4 breaks the term chain"
        );
    }

    #[test]
    fn the_status_is_atomic_and_lost_when_unsynced() {
        let disk = SimDisk::new(SimDiskConfig::default(), 5);
        let d2 = disk.clone();
        run(async move {
            let log = d2.open();
            log.init().await.unwrap();
            log.persist_term_vote(3, 2).await.unwrap();
            drop(log.persist_term_vote(4, 1));
            d2.crash();
        });
        let st = disk.durable_status();
        assert_eq!((st.current_term, st.voted_for), (3, 2));
    }

    #[test]
    fn a_failed_fsync_makes_the_log_fail_stop_until_restart() {
        let cfg = SimDiskConfig {
            sync_fail_per_mille: 1000,
            ..Default::default()
        };
        let disk = SimDisk::new(cfg, 9);
        let d2 = disk.clone();
        run(async move {
            let log = d2.open();
            log.init().await.unwrap();
            let e = log.append(vec![item(1, 1, 0)]).await.unwrap_err();
            assert!(matches!(e, StoreError::Failed { .. }), "{e:?}");
            assert!(log.is_failed());
            assert!(matches!(
                log.truncate_tail_now(1),
                Err(StoreError::Failed { .. })
            ));
            assert!(matches!(
                log.persist_term_vote(1, 1).await,
                Err(StoreError::Failed { .. })
            ));
            assert_eq!(log.persisted_index(), 0);
            d2.crash();
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), Some((0, 0)));
        });
        assert!(disk.stats().sync_failures >= 1);
    }

    #[test]
    fn a_deleted_prefix_stays_deleted_and_the_rest_recovers() {
        let cfg = SimDiskConfig {
            torn_writes: false,
            ..Default::default()
        };
        let disk = SimDisk::new(cfg, 4);
        let d2 = disk.clone();
        run(async move {
            let log = d2.open();
            log.init().await.unwrap();
            let items = (1..=6).map(|i| item(i, 1, if i == 1 { 0 } else { 1 }));
            log.append(items.collect()).await.unwrap();
            let pos5 = log.load_next_item_pos(4).await.unwrap();
            // nothing is committed yet: nothing goes
            assert_eq!(log.delete_prefix_now(5).unwrap(), 1);
            log.set_commit_index(6);
            // the entry at the bound stays (as the store's segment rule keeps it)
            assert_eq!(log.delete_prefix_now(5).unwrap(), 5);
            assert_eq!((log.first_index(), log.last_index()), (5, 6));
            assert_eq!(log.entry(4), None);
            assert_eq!(log.term_at(4), None);
            assert_eq!(log.entry(5).unwrap().index, 5);
            assert_eq!(
                log.load_next_item_pos(4).await.unwrap(),
                pos5,
                "positions kept"
            );
            // the deleted entry 4 (term 1) still counts for the search, none before
            assert_eq!(log.try_find_match_pos(1, 4).await.unwrap(), Some((1, 4)));
            assert_eq!(log.try_find_match_pos(1, 3).await.unwrap(), None);
            assert_eq!(log.try_find_match_pos(1, 9).await.unwrap(), Some((1, 6)));
            // never the last entry
            assert_eq!(log.delete_prefix_now(100).unwrap(), 6);
            let mut it = log.open_iterator();
            assert!(it.next(5, 10, 1 << 20).await.is_err());
            assert_eq!(it.next(6, 10, 1 << 20).await.unwrap().len(), 1);
            drop(it);
            log.append(vec![item(7, 2, 1)]).await.unwrap();
            d2.crash();
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), Some((2, 7)));
            assert_eq!(log.first_index(), 6);
        });
        assert_eq!(disk.stats().log_deletions, 2);
    }

    #[test]
    fn an_install_restarts_the_log_and_an_interrupted_one_is_required_again() {
        let cfg = SimDiskConfig {
            torn_writes: false,
            ..Default::default()
        };
        let disk = SimDisk::new(cfg, 6);
        let d2 = disk.clone();
        run(async move {
            let log = d2.open();
            log.init().await.unwrap();
            log.append(vec![item(1, 1, 0), item(2, 1, 1)])
                .await
                .unwrap();
            log.begin_install().await.unwrap();
            assert!(d2.installing());
            assert_eq!(log.last_index(), 0);
            // a crash before the finish: the install is required again
            d2.crash();
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), None);
            log.begin_install().await.unwrap();
            log.finish_install(41, 9_000).await.unwrap();
            assert!(!d2.installing());
            assert_eq!(log.persisted_state().unwrap().first_valid_index, 41);
            assert_eq!(log.load_next_item_pos(40).await.unwrap(), 9_000);
            // nothing written yet, and the install did not record the term of entry
            // 40: a restart waits for an install, like the store
            d2.crash();
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), None);
            // with the term recorded: an empty log after entry 40 (term 2), which
            // takes entry 41 at once
            log.begin_install().await.unwrap();
            log.finish_install_with_term(41, 9_000, 2).await.unwrap();
            d2.crash();
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), Some((2, 40)));
            assert!(!d2.installing());
            log.begin_install().await.unwrap();
            log.finish_install(41, 9_000).await.unwrap();
            log.append(vec![item(41, 3, 2), item(42, 3, 3)])
                .await
                .unwrap();
            d2.crash();
            let log = d2.open();
            assert_eq!(log.init().await.unwrap(), Some((3, 42)));
            assert_eq!(log.entry(41).unwrap().term, 3);
        });
        assert_eq!(disk.stats().installs, 3);
    }

    #[test]
    fn a_snapshot_save_is_durable_when_it_resolves_and_lost_in_a_crash_before() {
        let disk = SimDisk::new(SimDiskConfig::default(), 8);
        let d2 = disk.clone();
        let info = |i| SnapshotInfo {
            last_included_index: i,
            last_included_term: 1,
            ..Default::default()
        };
        run(async move {
            let snaps = d2.snapshots();
            assert_eq!(snaps.recover().await.unwrap(), None);
            let data = vec![Bytes::from_static(b"abc")];
            assert_eq!(snaps.save(info(5), data.clone()).await.unwrap(), 5);
            let f = snaps.save(info(9), data.clone());
            let g = dt_fiber::current_group().unwrap();
            let d3 = d2.clone();
            g.spawn("crash", async move {
                // while the save sleeps
                dt_fiber::sleep(Duration::from_micros(1)).await.unwrap();
                assert!(d3.saving());
                d3.crash();
            })
            .unwrap();
            assert!(f.await.is_err());
            let r = d2.snapshots().recover().await.unwrap().unwrap();
            assert_eq!((r.info.last_included_index, r.chunks), (5, data));
        });
        assert_eq!(disk.stats().snapshots_saved, 1);
        assert_eq!(disk.stats().snapshot_saves_lost, 1);
    }

    #[test]
    fn completions_come_in_issue_order_on_virtual_time() {
        let disk = SimDisk::new(SimDiskConfig::default(), 11);
        let d2 = disk.clone();
        let order = Rc::new(RefCell::new(Vec::new()));
        let o2 = order.clone();
        let mut sim = Simulation::new(2);
        let g = sim.new_group("t");
        let log = d2.open();
        let g2 = g.clone();
        g.spawn("w", async move {
            log.init().await.unwrap();
            for i in 1..=20u64 {
                let l = log.clone();
                let o = o2.clone();
                let it = item(i, 1, if i == 1 { 0 } else { 1 });
                // each append awaited in its own fiber
                let fut = l.append_owned(vec![it]);
                g2.spawn("a", async move {
                    let p = fut.await.unwrap();
                    o.borrow_mut().push(p);
                    drop(l);
                })
                .unwrap();
            }
        })
        .unwrap();
        sim.run_for(Duration::from_secs(1));
        let v = order.borrow().clone();
        assert_eq!(v.len(), 20);
        assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
        assert_eq!(*v.last().unwrap(), 20);
    }
}
