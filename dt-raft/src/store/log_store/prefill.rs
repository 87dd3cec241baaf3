//! Zero-filling the current segment ahead of the write position.
//!
//! Segments are created sparse (set length, as the reference creates them), so the
//! first write into each file-system block allocates it, and the fsync that makes the
//! write durable must also write the allocation (extent tree, bitmaps) — on ext4
//! measured at 1.3x to 2x the cost of an fsync over allocated blocks for writes of
//! 4 KiB to 80 KiB. A [`PrefillJob`] writes zeros over the next stretch past the write
//! position and fsyncs them, off the write lane, so the appends that follow overwrite
//! allocated blocks.
//!
//! Correctness never depends on it: bytes past the write position are garbage to
//! every reader (recovery stops at the first invalid item), so zeros there change
//! nothing. What must hold is that a prefill never writes where an append writes; the
//! owner guarantees it: it plans a prefill only at or past `next_pos` (the end of
//! every batch prepared so far) and holds back a write job reaching into a prefill in
//! flight until that prefill is done (see `DefaultRaftLog`).

use std::sync::{Arc, Mutex};

use super::LogStore;
use crate::store::error::StoreResult;
use crate::store::file_queue::DtFile;

/// Zeros written per system call.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Keeps a prefill from touching the files once the log that planned it is gone (its
/// directory may then be opened again by someone else): the job holds the lock while
/// it writes and does nothing once `cancelled` is set.
#[derive(Debug, Default)]
pub struct PrefillGate {
    cancelled: Mutex<bool>,
}

impl PrefillGate {
    /// A gate that lets prefills through.
    pub fn new() -> Arc<PrefillGate> {
        Arc::new(PrefillGate::default())
    }

    /// Waits until no prefill is writing, and lets none start after. Blocks for at most
    /// one prefill: call it on an IO thread.
    pub fn cancel(&self) {
        *self.cancelled.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
}

/// Zeros over `[from, to)` of one segment, then an fdatasync: planned by
/// [`LogStore::plan_prefill`].
#[derive(Debug)]
pub struct PrefillJob {
    file: Arc<DtFile>,
    from: u64,
    to: u64,
}

impl PrefillJob {
    /// The absolute range the job zero-fills.
    pub fn range(&self) -> (u64, u64) {
        (self.from, self.to)
    }

    /// Writes the zeros and fsyncs them, unless `gate` was cancelled. Returns the end
    /// of the range filled (`from` when cancelled).
    pub fn run(self, gate: &PrefillGate) -> StoreResult<u64> {
        let cancelled = gate.cancelled.lock().unwrap_or_else(|p| p.into_inner());
        if *cancelled {
            return Ok(self.from);
        }
        let mut pos = self.from;
        while pos < self.to {
            let n = (self.to - pos).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], pos - self.file.start)?;
            pos += n as u64;
        }
        self.file.sync_data()?;
        drop(cancelled);
        Ok(self.to)
    }
}

impl LogStore {
    /// The next prefill to run, if one is due: when fewer than `ahead / 2` bytes past
    /// `next_pos` are known to be zero-filled (`filled_to`), the stretch from there up
    /// to `next_pos + ahead`, within the segment holding it. `None` when `ahead` is 0,
    /// syncing is off, the store failed, or the stretch would start in a segment not
    /// created yet.
    pub fn plan_prefill(&self, filled_to: u64, ahead: u64) -> Option<PrefillJob> {
        if ahead == 0 || !self.cfg.sync || self.failure().is_some() {
            return None;
        }
        let next = self.next_pos();
        let from = filled_to.max(next);
        if from - next >= ahead / 2 {
            return None;
        }
        let file = self.files.get(from)?;
        let seg_end = file.start + self.files.file_size();
        let to = (next + ahead).min(seg_end);
        (to > from).then_some(PrefillJob { file, from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LogItem, StoreConfig};

    fn item(index: u64, len: usize) -> LogItem {
        LogItem {
            term: 1,
            prev_log_term: u32::from(index > 1),
            index,
            body: vec![7u8; len].into(),
            ..Default::default()
        }
    }

    #[test]
    fn plans_ahead_of_the_write_position_within_the_segment() {
        let d = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            log_file_size: 64 * 1024,
            ..StoreConfig::small_for_tests()
        };
        let mut s = LogStore::open(d.path(), cfg).unwrap();
        let first = s.plan_prefill(0, 16 * 1024).unwrap();
        assert_eq!(first.range(), (s.next_pos(), s.next_pos() + 16 * 1024));
        s.append(&[item(1, 100)]).unwrap();
        s.sync().unwrap();
        let next = s.next_pos();
        let job = s.plan_prefill(0, 16 * 1024).unwrap();
        assert_eq!(job.range(), (next, next + 16 * 1024));
        // Enough already filled: nothing due; half of it left: the rest.
        assert!(s.plan_prefill(next + 8 * 1024, 16 * 1024).is_none());
        let job = s.plan_prefill(next + 8 * 1024 - 1, 16 * 1024).unwrap();
        assert_eq!(job.range(), (next + 8 * 1024 - 1, next + 16 * 1024));
        // Never past the segment's end.
        let job = s.plan_prefill(0, 1 << 20).unwrap();
        assert_eq!(job.range(), (next, 64 * 1024));
        assert!(s.plan_prefill(64 * 1024, 1 << 20).is_none());
        // Off when told so.
        assert!(s.plan_prefill(0, 0).is_none());
    }

    #[test]
    fn a_prefill_writes_zeros_only_past_the_data_and_the_log_reopens_the_same() {
        let d = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            log_file_size: 64 * 1024,
            ..StoreConfig::small_for_tests()
        };
        let mut s = LogStore::open(d.path(), cfg.clone()).unwrap();
        s.append(&[item(1, 300), item(2, 300)]).unwrap();
        s.sync().unwrap();
        let next = s.next_pos();
        // Garbage past the end (as a truncation leaves), then the prefill over it.
        let seg = s.file_queue().get(0).unwrap();
        seg.write_all_at(&[0xAB; 512], next).unwrap();
        let gate = PrefillGate::new();
        let job = s.plan_prefill(0, 4096).unwrap();
        assert_eq!(job.run(&gate).unwrap(), next + 4096);
        let mut buf = vec![1u8; 4096];
        seg.read_exact_at(&mut buf, next).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        drop(seg);
        s.append(&[item(3, 300)]).unwrap();
        s.sync().unwrap();
        s.close().unwrap();
        drop(s);
        let s = LogStore::open(d.path(), cfg).unwrap();
        assert_eq!(s.last_index(), 3);
    }

    #[test]
    fn a_cancelled_gate_stops_prefills() {
        let d = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            log_file_size: 64 * 1024,
            ..StoreConfig::small_for_tests()
        };
        let mut s = LogStore::open(d.path(), cfg).unwrap();
        s.append(&[item(1, 100)]).unwrap();
        s.sync().unwrap();
        let next = s.next_pos();
        let seg = s.file_queue().get(0).unwrap();
        seg.write_all_at(&[0xAB; 16], next).unwrap();
        let gate = PrefillGate::new();
        gate.cancel();
        let job = s.plan_prefill(0, 4096).unwrap();
        assert_eq!(job.run(&gate).unwrap(), next);
        let mut buf = [0u8; 16];
        seg.read_exact_at(&mut buf, next).unwrap();
        assert_eq!(buf, [0xAB; 16], "a cancelled prefill writes nothing");
    }
}
