//! `StoreConfig`: the knobs of the log store (the storage part of the reference's
//! RaftGroupConfig).

use super::faults::Faults;

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
    /// Most entries kept in the tail cache.
    pub tail_cache_items: usize,
    /// Most bytes (encoded) kept in the tail cache.
    pub tail_cache_bytes: usize,
    /// Block size of sequential log reads (recovery, iteration).
    pub read_block_size: usize,
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
            tail_cache_items: 4096,
            tail_cache_bytes: 16 << 20,
            read_block_size: 256 * 1024,
            verify_on_start: false,
            status_file_name: "raft.status".into(),
            faults: None,
        }
    }
}

impl StoreConfig {
    /// Small files (16 KiB segments, 256-entry index files: the configuration of the
    /// reference-written test images), small caches, fsync on.
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
