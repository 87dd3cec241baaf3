//! `StoreConfig`: the knobs of the log store (the storage part of the reference's
//! RaftGroupConfig).

use super::error::{StoreError, StoreResult};
use dt_common::PerfHook;
use std::sync::Arc;

use super::faults::Faults;
use super::fsync_batcher::FsyncBatcher;
use super::log_item::ITEM_HEADER_SIZE;
use super::log_store::LOCK_FILE_NAME;

/// Configuration of one group's store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Size of every log segment file (`logFileSize`); a power of two. Default 1 GiB.
    pub log_file_size: u64,
    /// Entries per index file (`idxItemsPerFile`); a power of two. Default 1 048 576.
    pub idx_items_per_file: u64,
    /// Flushed index entries kept in memory (`idxCacheSize`). Default 16 384.
    pub idx_cache_size: usize,
    /// Committed-but-unflushed index entries that trigger a flush
    /// (`idxFlushThreshold`). Default 8192.
    pub idx_flush_threshold: u64,
    /// Whether writes, file creations and status updates are fsynced. Turning this off
    /// trades durability for speed (tests, benchmarks of the write path only).
    pub sync: bool,
    /// `syncForce`: appends are acknowledged when fsynced (true) or when written to
    /// the page cache (false). Every write is fsynced eventually either way when
    /// `sync` is on.
    pub sync_force: bool,
    /// Most entries kept in the tail cache once written (entries not written yet are
    /// always kept). Default 256: the driver keeps its own cache of the entries its
    /// apply and its followers still need, so this one serves little more than reads
    /// of unwritten entries; each cached entry may hold on to the whole network buffer
    /// it was decoded from (`raft_bench --groups 100`, three nodes in one process:
    /// resident set after 20 s ~580 MiB with 4 096 items, ~150 MiB with 256, at the
    /// same throughput; one group ran as fast with either).
    pub tail_cache_items: usize,
    /// Most bytes (encoded) kept in the tail cache once written (default 1 MiB).
    pub tail_cache_bytes: usize,
    /// Block size of sequential log reads (recovery, iteration). Entries read are
    /// slices of their block; blocks of up to 1 MiB are kept for reuse once free.
    pub read_block_size: usize,
    /// Bytes of the current segment kept zero-filled (and fsynced) ahead of the write
    /// position by a background job of `DefaultRaftLog`, so that an fsynced append
    /// overwrites blocks the file system has already allocated instead of allocating
    /// them in its own fsync (segments are created sparse, as the reference creates
    /// them). Costs one extra sequential write of the log's bytes and the CPU to copy
    /// the zeros. 0 turns it off; only with `sync` on; at most 1 GiB. Default 0 (off):
    /// measured here, 4 MiB makes an fsync-bound log faster (log_bench closed loop:
    /// 1.07x at 1 entry per fsync, 1.8x at 16, 1.1x at 256; the DtKV server's sync put
    /// with 128 threads ~9% on average, spread 79k-120k puts/s either way) but a
    /// CPU-bound one slower (raft_bench, 3 nodes in one process on 2 cores: 8-15% fewer
    /// writes, p99 up). The server binary's key is `logPrefillBytes`.
    pub prefill_bytes: u64,
    /// Drop the log segments' pages from the page cache once an fsync has made them
    /// durable, in whole 2 MiB steps below the last fsynced append (one `posix_fadvise`
    /// per step; 64-bit Linux only). The log reads recent entries from its tail cache and older
    /// ones rarely (a follower far behind, recovery), so the pages would only fill the
    /// page cache; dropped, they are reused by the next appends instead of new pages
    /// being taken from free memory. That matters most on a virtual machine whose host
    /// takes free guest memory back: there each new page-cache page costs a fault in
    /// the host on first touch (~25 us per 4 KiB page measured on the test machine,
    /// 6.5 s of writing time per GiB). Default true; false keeps every written page
    /// cached, as the reference does (the OS evicts them under memory pressure).
    pub drop_synced_pages: bool,
    /// Also verify, at start-up, every entry before the recovery anchor (CRCs and the
    /// index/term chain), so that a corrupt entry anywhere refuses the start instead of
    /// failing the read that reaches it later. Costs one sequential read of the whole
    /// log (about 2.5 s per GiB from a cold cache on the test machine). Off by default,
    /// like the reference, which checks only from the anchor on.
    pub verify_on_start: bool,
    /// File name of the status file in the data directory.
    pub status_file_name: String,
    /// A hook under every write and fsync of the store's files, for fault-injection
    /// tests and simulations ([`DiskFaults`](super::faults::DiskFaults)); `None` in
    /// production.
    pub faults: Faults,
    /// Shares the fsyncs of this log's appends with other logs of the process (one
    /// `syncfs` for many groups, see [`FsyncBatcher`]); `None`: each append's own
    /// `fdatasync`. [`RaftServer`](crate::server::RaftServer) makes one per server
    /// (`RaftServerConfig::batch_fsync`), and its factories set it. Only
    /// [`DefaultRaftLog`](crate::raft_log::DefaultRaftLog) appends use it.
    pub fsync_batcher: Option<Arc<FsyncBatcher>>,
    /// Where the log's writes and fsyncs are reported (`raft_log_write1`: the write
    /// syscalls of one write job, with its entries and bytes; `raft_log_sync`: its
    /// fsync, including the wait for a shared batcher round); no-op by default.
    pub perf: PerfHook,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            log_file_size: 1 << 30,
            idx_items_per_file: 1 << 20,
            idx_cache_size: 16 * 1024,
            idx_flush_threshold: 8192,
            sync: true,
            sync_force: true,
            tail_cache_items: 256,
            tail_cache_bytes: 1 << 20,
            read_block_size: 256 * 1024,
            prefill_bytes: 0,
            drop_synced_pages: true,
            verify_on_start: false,
            status_file_name: "raft.status".into(),
            faults: None,
            fsync_batcher: None,
            perf: PerfHook::default(),
        }
    }
}

/// Smallest log segment: room for a few items.
pub const MIN_LOG_FILE_SIZE: u64 = 4096;
/// Largest log segment (positions inside a segment are read into memory blocks).
pub const MAX_LOG_FILE_SIZE: u64 = 1 << 40;

impl StoreConfig {
    /// Checks every field; the error ([`StoreError::InvalidConfig`]) names the first
    /// field that is out of range, its value and what it must be.
    /// [`LogStore::open`](super::LogStore::open)
    /// calls it first, so a bad configuration is refused
    /// before any file is touched.
    ///
    /// ```
    /// use dt_raft::store::{StoreConfig, StoreError};
    /// let mut cfg = StoreConfig::default();
    /// cfg.log_file_size = 1000;
    /// match cfg.validate() {
    ///     Err(StoreError::InvalidConfig { field, .. }) => assert_eq!(field, "log_file_size"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn validate(&self) -> StoreResult<()> {
        fn bad(field: &'static str, value: impl ToString, requirement: &'static str) -> StoreError {
            StoreError::InvalidConfig {
                field,
                value: value.to_string(),
                requirement,
            }
        }
        if !self.log_file_size.is_power_of_two()
            || !(MIN_LOG_FILE_SIZE..=MAX_LOG_FILE_SIZE).contains(&self.log_file_size)
        {
            return Err(bad(
                "log_file_size",
                self.log_file_size,
                "a power of two from 4096 (4 KiB) to 2^40 (1 TiB)",
            ));
        }
        if !self.idx_items_per_file.is_power_of_two()
            || !(2..=1 << 37).contains(&self.idx_items_per_file)
        {
            return Err(bad(
                "idx_items_per_file",
                self.idx_items_per_file,
                "a power of two from 2 to 2^37 (index files of at most 1 TiB)",
            ));
        }
        if self.idx_flush_threshold == 0 {
            return Err(bad("idx_flush_threshold", 0, "at least 1"));
        }
        if self.read_block_size < ITEM_HEADER_SIZE {
            return Err(bad(
                "read_block_size",
                self.read_block_size,
                "at least 42 (one item header)",
            ));
        }
        if self.prefill_bytes > 1 << 30 {
            return Err(bad(
                "prefill_bytes",
                self.prefill_bytes,
                "at most 2^30 (1 GiB); 0 turns prefilling off",
            ));
        }
        let name = self.status_file_name.as_str();
        let reserved = ["", ".", "..", "log", "idx", "snapshot", LOCK_FILE_NAME];
        if reserved.contains(&name) || name.contains('/') || name.ends_with(".tmp") {
            return Err(bad(
                "status_file_name",
                format!("{name:?}"),
                "a plain file name other than log, idx, snapshot and dt.lock, not ending \
                 in .tmp",
            ));
        }
        Ok(())
    }

    /// `self`, if [`StoreConfig::validate`] accepts it.
    pub fn validated(self) -> StoreResult<StoreConfig> {
        self.validate().map(|_| self)
    }

    /// Small files (16 KiB segments, 256-entry index files: the configuration of the
    /// reference-written test images), small caches, fsync on, no prefilling (so a
    /// test's byte budget or write count sees only the log's own writes).
    pub fn small_for_tests() -> Self {
        StoreConfig {
            log_file_size: 16 * 1024,
            idx_items_per_file: 256,
            idx_cache_size: 64,
            idx_flush_threshold: 32,
            tail_cache_items: 16,
            tail_cache_bytes: 4096,
            read_block_size: 4096,
            ..Default::default()
        }
    }
}
