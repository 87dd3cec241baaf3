//! [`DtKv`]: one group's DtKV state machine without the consensus layer — the tree, the
//! TtlManager and the WatchManager kept in step, and the install / snapshot life cycle
//! with its status and epoch (`dtkv-server.md` §9–§10). The `StateMachine` binding of
//! the consensus layer will wrap it: `exec` for committed entries, `install_chunk` and
//! `take_snapshot` for snapshots, the rest for the processors and the daemon tasks.

use std::fmt;
use std::hash::Hash;

use bytes::Bytes;
use dt_client::kv::{KvCode, KvReq, WatchReq};

use super::apply::ApplyOutcome;
use super::biz_type::BizType;
use super::processor::read;
use super::response::KvResponse;
use super::snapshot::{SnapshotDecoder, SnapshotError, SnapshotReader};
use super::tree::KvTree;
use super::ttl_manager::{TtlManager, TtlRun};
use super::watch_manager::{Push, PushOutcome, PushToken, WatchConfig, WatchManager};

/// Why a state-machine call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtKvError {
    /// A snapshot is being installed (an entry applied now would be a bug of the caller;
    /// a snapshot cannot be taken).
    Installing,
    /// An install chunk came without an install in progress (offset ≠ 0 first).
    NotInstalling,
    /// The snapshot being read was taken before an install replaced the state.
    SnapshotCancelled,
    /// The installed stream is malformed.
    Snapshot(SnapshotError),
}

impl fmt::Display for DtKvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtKvError::Installing => write!(f, "dtkv is installing a snapshot"),
            DtKvError::NotInstalling => {
                write!(
                    f,
                    "snapshot chunk at a non-zero offset without an install in progress"
                )
            }
            DtKvError::SnapshotCancelled => {
                write!(
                    f,
                    "snapshot cancelled: the state was replaced by an install"
                )
            }
            DtKvError::Snapshot(e) => write!(f, "bad snapshot: {e}"),
        }
    }
}

impl std::error::Error for DtKvError {}

/// A snapshot being taken ([`DtKv::take_snapshot`]).
#[derive(Debug)]
pub struct DtKvSnapshot {
    reader: SnapshotReader,
    epoch: u64,
}

/// One group's DtKV state: tree, TTLs, watches, install status.
#[derive(Debug)]
pub struct DtKv<C> {
    tree: KvTree,
    ttl: TtlManager,
    watches: WatchManager<C>,
    installing: Option<SnapshotDecoder>,
    epoch: u64,
}

impl<C: Copy + Eq + Hash + Ord + fmt::Debug> DtKv<C> {
    /// Starts loading the key map's slot for `key` into the cache, for an entry on it
    /// executed soon (the first of three steps, each a little later than the one
    /// before, so that each load has completed when the next step reads it). Returns
    /// the slot's bucket for [`DtKv::prefetch_holder`], `None` when `key` is surely
    /// not in the tree. These steps change nothing.
    pub fn prefetch_slot(&self, key: &[u8]) -> Option<usize> {
        self.tree.prefetch_slot(key)
    }

    /// Second step: reads the slot of `bucket` (as [`DtKv::prefetch_slot`] gave it) and
    /// starts loading its holder; returns the holder for [`DtKv::prefetch_value`]. Any
    /// `bucket` is accepted (one emptied or moved since is passed over).
    pub fn prefetch_holder(&self, bucket: usize) -> Option<usize> {
        self.tree.prefetch_holder(bucket)
    }

    /// Last step: starts loading the start of holder `h`'s value, where a put that
    /// replaces it frees it. Any `h` is accepted.
    pub fn prefetch_value(&self, h: usize) {
        self.tree.prefetch_value(h)
    }

    /// An empty state machine for `group_id`.
    pub fn new(group_id: i32, watch: WatchConfig) -> Self {
        Self::with_capacity(group_id, watch, 0)
    }

    /// An empty state machine whose key map has room for `map_capacity` keys (the
    /// reference's `initMapCapacity`).
    pub fn with_capacity(group_id: i32, watch: WatchConfig, map_capacity: usize) -> Self {
        DtKv {
            tree: KvTree::with_capacity(map_capacity),
            ttl: TtlManager::new(),
            watches: WatchManager::new(group_id, watch),
            installing: None,
            epoch: 0,
        }
    }

    /// The tree (reads, tests).
    pub fn tree(&self) -> &KvTree {
        &self.tree
    }

    /// Whether a snapshot is being installed.
    pub fn is_installing(&self) -> bool {
        self.installing.is_some()
    }

    /// Applies a committed entry (`local_create_nanos`: when this node created or
    /// received it, for TTLs) and keeps the TTL and watch state in step.
    pub fn exec(
        &mut self,
        index: i64,
        timestamp: i64,
        local_create_nanos: i64,
        biz: BizType,
        req: &KvReq,
    ) -> Result<ApplyOutcome, DtKvError> {
        self.exec_with_push_wait(
            index,
            timestamp,
            local_create_nanos,
            biz,
            &mut req.clone(),
            local_create_nanos,
        )
        .map(|(out, _)| out)
    }

    /// Like [`DtKv::exec`], also returning the lock push's server-side wait (ns) when
    /// the entry handed a lock over (measured before the TTL restarts, at `now`). What
    /// the tree keeps is taken out of `req` ([`KvTree::apply_taking`]).
    pub fn exec_with_push_wait(
        &mut self,
        index: i64,
        timestamp: i64,
        local_create_nanos: i64,
        biz: BizType,
        req: &mut KvReq,
        now: i64,
    ) -> Result<(ApplyOutcome, Option<i64>), DtKvError> {
        if self.is_installing() {
            return Err(DtKvError::Installing);
        }
        let out = self.tree.apply_taking(index, timestamp, biz, req);
        let wait = out
            .lock_handover
            .as_ref()
            .map(|h| self.ttl.lock_wait_nanos(h, now));
        self.ttl.apply_changes(&out.ttl_changes, local_create_nanos);
        self.watches.after_apply(&out.watch_events, index);
        Ok((out, wait))
    }

    /// A lease read of the latest state; INSTALL_SNAPSHOT while installing.
    pub fn read(&self, command: i32, req: &KvReq) -> KvResponse {
        if self.is_installing() {
            return KvResponse::rejected(KvCode::InstallSnapshot, "");
        }
        read(&self.tree, command, req)
    }

    /// DTKV_SYNC_WATCH from `channel`; INSTALL_SNAPSHOT while installing.
    pub fn sync_watch(&mut self, channel: C, req: &WatchReq, now: i64) -> KvCode {
        if self.is_installing() {
            return KvCode::InstallSnapshot;
        }
        self.watches.sync(&mut self.tree, channel, req, now);
        KvCode::Success
    }

    /// The watch count of DTKV_QUERY_STATUS (refreshes the channel's liveness).
    pub fn watch_count(&mut self, channel: C, now: i64) -> i32 {
        self.watches.watch_count(channel, now)
    }

    /// One watch dispatch round (paused while installing).
    pub fn dispatch_watches(&mut self, now: i64) -> (Vec<Push<C>>, bool) {
        if self.is_installing() {
            return (Vec::new(), true);
        }
        let (pushes, done) = self.watches.dispatch(&self.tree, now);
        self.watches.clean_timeouts(&mut self.tree, now);
        (pushes, done)
    }

    /// The outcome of a watch push.
    pub fn push_result(
        &mut self,
        channel: C,
        token: &PushToken,
        outcome: PushOutcome,
        now: i64,
    ) -> Vec<Push<C>> {
        self.watches
            .push_result(&mut self.tree, channel, token, outcome, now)
    }

    /// Channels that have watches now.
    pub fn watch_channel_count(&self) -> usize {
        self.watches.channel_count()
    }

    /// A connection closed: its watches go.
    pub fn channel_closed(&mut self, channel: C) {
        self.watches.remove_channel(&mut self.tree, channel);
    }

    /// The TTL manager (leader role changes, failed submissions).
    pub fn ttl_manager(&mut self) -> &mut TtlManager {
        &mut self.ttl
    }

    /// One run of the expiry task.
    pub fn ttl_run(&mut self, now: i64) -> TtlRun {
        self.ttl.run(now)
    }

    /// A chunk of a snapshot to install: offset 0 starts over (watches dropped, an
    /// empty tree, status "installing", epoch + 1); `done` ends it (epoch + 1).
    /// `now`/`wall_millis` place the installed TTLs on the local clock.
    pub fn install_chunk(
        &mut self,
        offset: u64,
        data: &[u8],
        done: bool,
        now: i64,
        wall_millis: i64,
    ) -> Result<(), DtKvError> {
        if offset == 0 {
            self.watches.reset();
            self.tree = KvTree::new();
            self.ttl.install(&[], now, wall_millis);
            self.installing = Some(SnapshotDecoder::new());
            self.epoch += 1;
        }
        let Some(decoder) = self.installing.as_mut() else {
            return Err(DtKvError::NotInstalling);
        };
        let mut records = Vec::new();
        decoder
            .feed(data, &mut records)
            .map_err(DtKvError::Snapshot)?;
        let mut ttls = Vec::new();
        for r in records {
            ttls.extend(self.tree.install_record(r).map_err(DtKvError::Snapshot)?);
        }
        // DELIBERATE BUG (feature sim-bugs, simulation self-test only): the TTLs of an
        // installed snapshot are not queued (they never expire).
        #[cfg(feature = "sim-bugs")]
        if crate::sim::bugs::is_active(crate::sim::bugs::DtKvBug::InstallForgetsTtls) {
            ttls.clear();
        }
        // Installed TTLs are placed by the wall clock, like a restart.
        for t in &ttls {
            self.ttl.add_installed(t, now, wall_millis);
        }
        if done {
            let decoder = self.installing.take().expect("installing");
            decoder.finish().map_err(DtKvError::Snapshot)?;
            self.epoch += 1;
        }
        Ok(())
    }

    /// Takes a snapshot of the state after `last_included_index` (refused while
    /// installing).
    pub fn take_snapshot(&mut self, last_included_index: i64) -> Result<DtKvSnapshot, DtKvError> {
        if self.is_installing() {
            return Err(DtKvError::Installing);
        }
        Ok(DtKvSnapshot {
            reader: self.tree.snapshot_reader(last_included_index),
            epoch: self.epoch,
        })
    }

    /// The next at most `max` bytes of a snapshot's stream (empty at the end); fails
    /// once an install replaced the state it was taken from.
    pub fn read_snapshot(&mut self, s: &mut DtKvSnapshot, max: usize) -> Result<Bytes, DtKvError> {
        if s.epoch != self.epoch {
            return Err(DtKvError::SnapshotCancelled);
        }
        Ok(self.tree.read_snapshot(&mut s.reader, max))
    }

    /// Closes a snapshot and starts the garbage-collection sweep that drops the
    /// versions only it kept (not for a snapshot of a replaced state), run a few
    /// holders at a time by [`DtKv::gc_step`].
    pub fn close_snapshot(&mut self, s: DtKvSnapshot) {
        if s.epoch == self.epoch {
            self.tree.close_snapshot_reader(s.reader);
        }
    }

    /// Runs up to `max` holders of the sweep under way; returns whether holders remain.
    pub fn gc_step(&mut self, max: usize) -> bool {
        self.tree.gc_step(max)
    }

    /// Whether a garbage-collection sweep is under way.
    pub fn gc_pending(&self) -> bool {
        self.tree.gc_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dt_client::kv::KvCommands;
    use dt_net::ProcessInfo;

    const A: ProcessInfo = ProcessInfo { uuid1: 1, uuid2: 2 };
    const MS: i64 = 1_000_000;

    fn put_temp(k: &str, ttl: i64) -> KvReq {
        let mut r = KvReq::put(0, k.to_string(), "v").with_ttl(ttl);
        r.set_owner(A);
        r
    }

    #[test]
    fn install_replaces_the_state_and_cancels_older_snapshots() {
        let mut src: DtKv<u32> = DtKv::new(0, WatchConfig::default());
        src.exec(1, 1_000, 0, BizType::PutTempNode, &put_temp("t", 60_000))
            .unwrap();
        src.exec(2, 1_000, 0, BizType::Put, &KvReq::put(0, "k", "v"))
            .unwrap();
        let mut snap = src.take_snapshot(2).unwrap();
        let mut stream = Vec::new();
        loop {
            let b = src.read_snapshot(&mut snap, 50).unwrap();
            if b.is_empty() {
                break;
            }
            stream.extend_from_slice(&b);
        }
        src.close_snapshot(snap);
        assert!(src.gc_pending(), "closing starts a sweep");

        let mut dst: DtKv<u32> = DtKv::new(0, WatchConfig::default());
        dst.exec(1, 0, 0, BizType::Put, &KvReq::put(0, "old", "x"))
            .unwrap();
        let mut old = dst.take_snapshot(1).unwrap();
        let watch = WatchReq {
            group_id: 0,
            sync_all: false,
            known_raft_indexes: vec![0],
            keys: vec!["old".into()],
        };
        assert_eq!(dst.sync_watch(7, &watch, 0), KvCode::Success);
        let (first, rest) = stream.split_at(stream.len() / 2);
        dst.install_chunk(0, first, false, 100_000 * MS, 11_000)
            .unwrap();
        // While installing: reads, watch syncs, exec and snapshots are refused.
        assert_eq!(
            dst.read(KvCommands::DTKV_GET, &KvReq::key(0, "k")).biz_code,
            KvCode::InstallSnapshot
        );
        assert_eq!(dst.sync_watch(7, &watch, 0), KvCode::InstallSnapshot);
        assert_eq!(
            dst.exec(3, 0, 0, BizType::Put, &KvReq::put(0, "k", "v"))
                .unwrap_err(),
            DtKvError::Installing
        );
        assert!(dst.take_snapshot(3).is_err());
        assert_eq!(
            dst.read_snapshot(&mut old, 10).unwrap_err(),
            DtKvError::SnapshotCancelled
        );
        dst.install_chunk(first.len() as u64, rest, true, 100_000 * MS, 11_000)
            .unwrap();
        dst.close_snapshot(old);
        assert!(
            !dst.gc_pending(),
            "no sweep for a replaced state's snapshot"
        );
        assert_eq!(dst.tree().get(b"k").node.unwrap().update_index, 2);
        assert!(dst.tree().get(b"old").node.is_none());
        assert_eq!(dst.watch_count(7, 0), 0, "watches dropped by the install");
        // The TTL was placed by the wall clock: 10 s of 60 had passed.
        assert_eq!(dst.ttl_manager().expiry_of(b"t"), Some((1, 150_000 * MS)));
        assert_eq!(
            dst.install_chunk(5, &[], true, 0, 0).unwrap_err(),
            DtKvError::NotInstalling
        );
    }

    #[test]
    fn exec_reports_the_lock_push_wait() {
        use dt_client::kv::LockPayload;
        let mut kv: DtKv<u32> = DtKv::new(0, WatchConfig::default());
        let lock = |hold| {
            LockPayload {
                hold_ttl_millis: hold,
                lock_id: 1,
                op_id: 1,
            }
            .to_bytes()
        };
        let b = ProcessInfo { uuid1: 3, uuid2: 4 };
        let mut r = KvReq::put(0, "lk", lock(1000)).with_ttl(0);
        r.set_owner(A);
        kv.exec(1, 0, 0, BizType::TryLock, &r).unwrap();
        let mut r = KvReq::put(0, "lk", lock(1000)).with_ttl(500);
        r.set_owner(b);
        kv.exec(2, 0, 10 * MS, BizType::TryLock, &r).unwrap();
        let mut u = KvReq::key(0, "lk");
        u.set_owner(A);
        let (out, wait) = kv
            .exec_with_push_wait(3, 0, 50 * MS, BizType::Unlock, &mut u, 50 * MS)
            .unwrap();
        assert_eq!(out.lock_handover.unwrap().owner, b);
        assert_eq!(wait, Some(39 * MS));
    }
}
