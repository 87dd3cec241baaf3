//! The typed configuration of a server: [`ServerConfig`] (the reference's
//! `RaftServerConfig` keys), [`GroupConfig`] (its `RaftGroupConfig` keys) and
//! [`KvConfig`] (its `KvServerConfig` keys), with the reference's defaults, and how
//! each is filled from properties.

use dt_common::cpu_set::CpuSet;

use super::StartProblem;
use crate::props::{PropReader, ValueError};

/// One documented key: its name, its default (as text) and what it means.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    /// The property key (without prefix).
    pub key: &'static str,
    /// The default, as shown to a person.
    pub default: &'static str,
    /// What it controls.
    pub meaning: &'static str,
}

/// The default replicate port when `replicatePort` is absent or 0.
pub const DEFAULT_REPLICATE_PORT: i32 = 9331;
/// The default service port when `servicePort` is absent or 0.
pub const DEFAULT_SERVICE_PORT: i32 = 9332;

/// Server-wide settings (config.properties, no prefix; `servers` from
/// servers.properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `servers`: `id,host:replicatePort;…` of all nodes.
    pub servers: String,
    /// `replicatePort`: server-to-server and admin port.
    pub replicate_port: i32,
    /// `servicePort`: client port (0 = none in the Raft engine; the bootstrap uses 9332).
    pub service_port: i32,
    /// `nodeId`: this node's id (> 0).
    pub node_id: i32,
    /// `electTimeout` in ms.
    pub elect_timeout: i64,
    /// `rpcTimeout` in ms.
    pub rpc_timeout: i64,
    /// `connectTimeout` in ms.
    pub connect_timeout: i64,
    /// `heartbeatInterval` in ms.
    pub heartbeat_interval: i64,
    /// `pingInterval` in ms.
    pub ping_interval: i64,
    /// `checkSelf`: ping itself at start.
    pub check_self: bool,
    /// `blockIoThreads`: size of the shared blocking-IO pool.
    pub block_io_threads: i32,
    /// `maxConnInRequests` (dt only): cap on one client connection's unanswered
    /// requests on the service port (0 = none).
    pub max_conn_in_requests: i64,
    /// `batchFsync` (dt only): appends of many groups share one `syncfs`
    /// (`RaftServerConfig::batch_fsync`).
    pub batch_fsync: bool,
    /// `perfStatsInterval` (dt only): seconds between performance-figure log lines
    /// (`DtKvServerConfig::stats_interval`); 0: not measured.
    pub perf_stats_interval: i64,
}

/// The default `blockIoThreads`: max(2 × CPUs, 4).
pub fn default_block_io_threads() -> i32 {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (cpus.saturating_mul(2)).clamp(4, i32::MAX as usize) as i32
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            servers: String::new(),
            replicate_port: 0,
            service_port: 0,
            node_id: 0,
            elect_timeout: 15_000,
            rpc_timeout: 5_000,
            connect_timeout: 2_000,
            heartbeat_interval: 2_000,
            ping_interval: 2_000,
            check_self: true,
            block_io_threads: default_block_io_threads(),
            max_conn_in_requests: dt_raft::server::DEFAULT_MAX_CONN_IN_REQUESTS as i64,
            batch_fsync: true,
            perf_stats_interval: 0,
        }
    }
}

impl ServerConfig {
    /// Every key this struct reads.
    pub const KEYS: &'static [KeyDoc] = &[
        KeyDoc {
            key: "nodeId",
            default: "none (required, > 0)",
            meaning: "this node's id; must appear in servers",
        },
        KeyDoc {
            key: "replicatePort",
            default: "9331",
            meaning: "port for replication, votes and admin commands",
        },
        KeyDoc {
            key: "servicePort",
            default: "9332",
            meaning: "port for clients",
        },
        KeyDoc {
            key: "electTimeout",
            default: "15000",
            meaning: "election timeout in ms; also the base of the leader lease",
        },
        KeyDoc {
            key: "rpcTimeout",
            default: "5000",
            meaning: "timeout in ms of replication, vote and ping requests",
        },
        KeyDoc {
            key: "connectTimeout",
            default: "2000",
            meaning: "connect timeout in ms (used by the start-up self check)",
        },
        KeyDoc {
            key: "heartbeatInterval",
            default: "2000",
            meaning: "ms between heartbeat entries of an idle leader",
        },
        KeyDoc {
            key: "pingInterval",
            default: "2000",
            meaning: "ms between node pings",
        },
        KeyDoc {
            key: "checkSelf",
            default: "true",
            meaning: "ping this node's own replicate port at start",
        },
        KeyDoc {
            key: "blockIoThreads",
            default: "max(2 x CPUs, 4)",
            meaning: "threads of the shared blocking-IO pool",
        },
        KeyDoc {
            key: "maxConnInRequests",
            default: "10000",
            meaning: "dt only: unanswered requests one client connection may have on the service port; more are answered FLOW_CONTROL (0 = no cap)",
        },
        KeyDoc {
            key: "batchFsync",
            default: "true",
            meaning: "dt only: log appends of groups waiting for an fsync at the same time share one syncfs of their file system (Linux 5.8+) instead of an fdatasync each; false: an fdatasync per group",
        },
        KeyDoc {
            key: "perfStatsInterval",
            default: "0",
            meaning: "dt only: seconds between the log lines (target dt_stats) of DtKV request, state-machine, IO-thread and dispatcher timings; 0: not measured",
        },
    ];

    /// Sets every field present in `r` (missing and blank keys keep their value).
    /// `servers` is read too (the bootstrap then replaces it with servers.properties').
    pub fn apply(&mut self, r: &PropReader<'_>) -> Result<(), ValueError> {
        r.string("servers", &mut self.servers)?;
        r.int("replicatePort", &mut self.replicate_port)?;
        r.int("servicePort", &mut self.service_port)?;
        r.int("nodeId", &mut self.node_id)?;
        r.long("electTimeout", &mut self.elect_timeout)?;
        r.long("rpcTimeout", &mut self.rpc_timeout)?;
        r.long("connectTimeout", &mut self.connect_timeout)?;
        r.long("heartbeatInterval", &mut self.heartbeat_interval)?;
        r.long("pingInterval", &mut self.ping_interval)?;
        r.boolean("checkSelf", &mut self.check_self)?;
        r.int("blockIoThreads", &mut self.block_io_threads)?;
        r.long("maxConnInRequests", &mut self.max_conn_in_requests)?;
        r.boolean("batchFsync", &mut self.batch_fsync)?;
        r.long("perfStatsInterval", &mut self.perf_stats_interval)?;
        Ok(())
    }
}

/// DtKV options of one group (servers.properties, `group.<id>.` prefix only).
#[derive(Debug, Clone, PartialEq)]
pub struct KvConfig {
    /// `useSeparateExecutor`: run DtKV on its own thread.
    pub use_separate_executor: bool,
    /// `readInDtKvExecutor`: serve lease reads on the DtKV executor.
    pub read_in_dt_kv_executor: bool,
    /// `initMapCapacity`: initial map size.
    pub init_map_capacity: i32,
    /// Map load factor (not settable from properties, as in the reference).
    pub load_factor: f32,
    /// `watchDispatchIntervalMillis`.
    pub watch_dispatch_interval_millis: i32,
    /// `watchMaxReqBytes`.
    pub watch_max_req_bytes: i32,
    /// `watchMaxBatchSize`.
    pub watch_max_batch_size: i32,
    /// `watchTimeoutMillis`.
    pub watch_timeout_millis: i64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            use_separate_executor: false,
            read_in_dt_kv_executor: true,
            init_map_capacity: 16 * 1024,
            load_factor: 0.75,
            watch_dispatch_interval_millis: 500,
            watch_max_req_bytes: 80 * 1024,
            watch_max_batch_size: 100,
            watch_timeout_millis: 120_000,
        }
    }
}

impl KvConfig {
    /// Every key this struct reads (with the `group.<id>.` prefix).
    pub const KEYS: &'static [KeyDoc] = &[
        KeyDoc { key: "useSeparateExecutor", default: "false", meaning: "run the group's DtKV on a dedicated thread instead of the Raft thread" },
        KeyDoc { key: "readInDtKvExecutor", default: "true", meaning: "serve lease reads on the DtKV executor (false: on IO threads under a read lock)" },
        KeyDoc { key: "initMapCapacity", default: "16384", meaning: "initial capacity of the key map" },
        KeyDoc { key: "watchDispatchIntervalMillis", default: "500", meaning: "ms between watch notification rounds" },
        KeyDoc { key: "watchMaxReqBytes", default: "81920", meaning: "byte limit of one watch notification push" },
        KeyDoc { key: "watchMaxBatchSize", default: "100", meaning: "items per watch notification push" },
        KeyDoc { key: "watchTimeoutMillis", default: "120000", meaning: "ms after which a silent watching client is dropped (must exceed the client heartbeat, 60 s)" },
    ];

    /// Sets every field present in `r`.
    pub fn apply(&mut self, r: &PropReader<'_>) -> Result<(), ValueError> {
        r.boolean("useSeparateExecutor", &mut self.use_separate_executor)?;
        r.boolean("readInDtKvExecutor", &mut self.read_in_dt_kv_executor)?;
        r.int("initMapCapacity", &mut self.init_map_capacity)?;
        r.int(
            "watchDispatchIntervalMillis",
            &mut self.watch_dispatch_interval_millis,
        )?;
        r.int("watchMaxReqBytes", &mut self.watch_max_req_bytes)?;
        r.int("watchMaxBatchSize", &mut self.watch_max_batch_size)?;
        r.long("watchTimeoutMillis", &mut self.watch_timeout_millis)?;
        Ok(())
    }
}

/// Settings of one Raft group (config.properties, then `group.<id>.` keys of
/// servers.properties).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// The group id (from the `group.<id>.` keys).
    pub group_id: i32,
    /// `group.<id>.nodeIdOfMembers`, as written.
    pub node_id_of_members: String,
    /// `group.<id>.nodeIdOfObservers`, as written (None if absent).
    pub node_id_of_observers: Option<String>,
    /// `dataDir`; after bootstrap `<dataDir>/<groupId>`.
    pub data_dir: String,
    /// `statusFile`.
    pub status_file: String,
    /// `ioRetryInterval` in ms (the last repeats).
    pub io_retry_interval: Vec<i32>,
    /// `syncForce`.
    pub sync_force: bool,
    /// `dropLogPageCache` (dt only): log segments' pages leave the page cache once
    /// fsynced (`RaftGroupConfig::drop_synced_pages`).
    pub drop_log_page_cache: bool,
    /// `logPrefillBytes` (dt only): bytes of the log kept zero-filled ahead of the
    /// appends (`RaftGroupConfig::prefill_bytes`).
    pub log_prefill_bytes: i64,
    /// `dispatcherCpus` (dt only): the CPU list the group's dispatcher thread may run
    /// on (`RaftGroupConfig::dispatcher_cpus`); blank: anywhere.
    pub dispatcher_cpus: String,
    /// `raftPingCheck` (0, 1, 2).
    pub raft_ping_check: i32,
    /// `disableConfigChange`.
    pub disable_config_change: bool,
    /// `maxReplicateItems`.
    pub max_replicate_items: i32,
    /// `maxReplicateBytes`.
    pub max_replicate_bytes: i64,
    /// `singleReplicateLimit`.
    pub single_replicate_limit: i32,
    /// `maxPendingTasks`.
    pub max_pending_tasks: i32,
    /// `maxPendingTaskBytes`.
    pub max_pending_task_bytes: i64,
    /// `maxCacheTasks`.
    pub max_cache_tasks: i32,
    /// `maxCacheTaskBytes`.
    pub max_cache_task_bytes: i64,
    /// `idxItemsPerFile` (power of two).
    pub idx_items_per_file: i32,
    /// `idxCacheSize`.
    pub idx_cache_size: i32,
    /// `idxFlushThreshold`.
    pub idx_flush_threshold: i32,
    /// `logFileSize` (power of two).
    pub log_file_size: i64,
    /// `snapshotConcurrency`.
    pub snapshot_concurrency: i32,
    /// `diskSnapshotConcurrency`.
    pub disk_snapshot_concurrency: i32,
    /// `diskSnapshotBufferSize`.
    pub disk_snapshot_buffer_size: i32,
    /// `replicateSnapshotConcurrency`.
    pub replicate_snapshot_concurrency: i32,
    /// `replicateSnapshotBufferSize`.
    pub replicate_snapshot_buffer_size: i32,
    /// `saveSnapshotSeconds`.
    pub save_snapshot_seconds: i32,
    /// `saveSnapshotLogBytes` (dt only): also save a snapshot every so many bytes of
    /// log (`RaftGroupConfig::save_snapshot_log_bytes`; 0 = by time alone).
    pub save_snapshot_log_bytes: i64,
    /// `maxKeepSnapshots` (at least 1 is kept whatever the value).
    pub max_keep_snapshots: i32,
    /// `saveSnapshotWhenClose`.
    pub save_snapshot_when_close: bool,
    /// `autoDeleteLogDelaySeconds`.
    pub auto_delete_log_delay_seconds: i32,
    /// `deleteLogsAfterTakeSnapshot`.
    pub delete_logs_after_take_snapshot: bool,
    /// The group's DtKV options.
    pub kv: KvConfig,
}

impl GroupConfig {
    /// A group with the reference's defaults and the given member lists.
    pub fn new(
        group_id: i32,
        node_id_of_members: &str,
        node_id_of_observers: Option<&str>,
    ) -> Self {
        GroupConfig {
            group_id,
            node_id_of_members: node_id_of_members.to_string(),
            node_id_of_observers: node_id_of_observers.map(str::to_string),
            data_dir: "./data".to_string(),
            status_file: "raft.status".to_string(),
            io_retry_interval: vec![100, 1000, 3000, 5000, 10000, 20000],
            sync_force: true,
            drop_log_page_cache: true,
            log_prefill_bytes: 0,
            dispatcher_cpus: String::new(),
            raft_ping_check: 0,
            disable_config_change: false,
            max_replicate_items: 20_000,
            max_replicate_bytes: 16 * 1024 * 1024,
            single_replicate_limit: 1800 * 1024,
            max_pending_tasks: 50_000,
            max_pending_task_bytes: 256 * 1024 * 1024,
            max_cache_tasks: 100_000,
            max_cache_task_bytes: 256 * 1024 * 1024,
            idx_items_per_file: 1024 * 1024,
            idx_cache_size: 16 * 1024,
            idx_flush_threshold: 8 * 1024,
            log_file_size: 1024 * 1024 * 1024,
            snapshot_concurrency: 1,
            disk_snapshot_concurrency: 4,
            disk_snapshot_buffer_size: 64 * 1024,
            replicate_snapshot_concurrency: 4,
            replicate_snapshot_buffer_size: 64 * 1024,
            save_snapshot_seconds: 3600,
            save_snapshot_log_bytes: 4 << 30,
            max_keep_snapshots: 2,
            save_snapshot_when_close: true,
            auto_delete_log_delay_seconds: 60,
            delete_logs_after_take_snapshot: true,
            kv: KvConfig::default(),
        }
    }

    /// Every key the group reads from config.properties or `group.<id>.` keys
    /// (besides `nodeIdOfMembers`/`nodeIdOfObservers`, which only come from
    /// servers.properties).
    pub const KEYS: &'static [KeyDoc] = &[
        KeyDoc {
            key: "dataDir",
            default: "./data (shipped: ${DATA_DIR:./data})",
            meaning: "data root; each group uses <dataDir>/<groupId>",
        },
        KeyDoc {
            key: "statusFile",
            default: "raft.status",
            meaning: "name of the group's status file",
        },
        KeyDoc {
            key: "ioRetryInterval",
            default: "100,1000,3000,5000,10000,20000",
            meaning: "ms to wait before each retry of a failed disk IO (the last repeats)",
        },
        KeyDoc {
            key: "syncForce",
            default: "true",
            meaning: "fsync log writes before acknowledging and counting them",
        },
        KeyDoc {
            key: "dropLogPageCache",
            default: "true",
            meaning: "dt only: drop log pages from the page cache once fsynced (whole 2 MiB steps; 64-bit Linux). The log reads recent entries from memory, so cached pages only fill memory, and on a VM whose host reclaims free guest memory each new page costs a host fault (measured: 1.1-1.5x DtKV async put throughput after an idle pause, little in back-to-back runs). false keeps them cached, as the reference",
        },
        KeyDoc {
            key: "logPrefillBytes",
            default: "0",
            meaning: "dt only: bytes of the current log segment kept zero-filled and fsynced ahead of the appends (0 to 1073741824; 0, the default, turns it off), so that an append's fsync overwrites allocated blocks instead of also committing their allocation; costs a second write of the log's bytes. Try 4194304 when the log is bound by its fsyncs (few entries per fsync)",
        },
        KeyDoc {
            key: "dispatcherCpus",
            default: "blank (any CPU)",
            meaning: "dt only: CPU list (e.g. 1 or 2-3,6, as taskset -c) the group's dispatcher thread may run on: the thread that owns the group and executes its state machine; each CPU must be one the process may use. Pins it away from CPUs that other busy threads or interrupts crowd (docs/operations.md, \"Pinning the dispatcher\")",
        },
        KeyDoc {
            key: "raftPingCheck",
            default: "0",
            meaning: "node ping check: 0 none, 1 compare ids, 2 also host:port",
        },
        KeyDoc {
            key: "disableConfigChange",
            default: "false",
            meaning: "ignore every membership change",
        },
        KeyDoc {
            key: "maxReplicateItems",
            default: "20000",
            meaning: "entries in flight per follower",
        },
        KeyDoc {
            key: "maxReplicateBytes",
            default: "16777216",
            meaning: "bytes in flight per follower",
        },
        KeyDoc {
            key: "singleReplicateLimit",
            default: "1843200",
            meaning: "body bytes of one append request",
        },
        KeyDoc {
            key: "maxPendingTasks",
            default: "50000",
            meaning: "leader flow control: unapplied entries",
        },
        KeyDoc {
            key: "maxPendingTaskBytes",
            default: "268435456",
            meaning: "leader flow control: unapplied bytes",
        },
        KeyDoc {
            key: "maxCacheTasks",
            default: "100000",
            meaning: "entries kept in the tail cache",
        },
        KeyDoc {
            key: "maxCacheTaskBytes",
            default: "268435456",
            meaning: "bytes kept in the tail cache",
        },
        KeyDoc {
            key: "idxItemsPerFile",
            default: "1048576",
            meaning: "index entries per index file (power of two)",
        },
        KeyDoc {
            key: "idxCacheSize",
            default: "16384",
            meaning: "index entries cached in memory",
        },
        KeyDoc {
            key: "idxFlushThreshold",
            default: "8192",
            meaning: "unflushed committed entries that trigger an index flush",
        },
        KeyDoc {
            key: "logFileSize",
            default: "1073741824",
            meaning: "bytes per log segment file (power of two)",
        },
        KeyDoc {
            key: "snapshotConcurrency",
            default: "1",
            meaning: "concurrent state machine snapshot reads (or recovery writes)",
        },
        KeyDoc {
            key: "diskSnapshotConcurrency",
            default: "4",
            meaning: "concurrent snapshot file reads/writes",
        },
        KeyDoc {
            key: "diskSnapshotBufferSize",
            default: "65536",
            meaning: "snapshot file block size",
        },
        KeyDoc {
            key: "replicateSnapshotConcurrency",
            default: "4",
            meaning: "snapshot install chunks in flight",
        },
        KeyDoc {
            key: "replicateSnapshotBufferSize",
            default: "65536",
            meaning: "snapshot install chunk size",
        },
        KeyDoc {
            key: "saveSnapshotSeconds",
            default: "3600",
            meaning: "seconds between periodic snapshots",
        },
        KeyDoc {
            key: "saveSnapshotLogBytes",
            default: "4294967296",
            meaning: "dt only: also save a snapshot once this many bytes of log were written since the last one began (0: by saveSnapshotSeconds alone, as the reference). Log files are deleted only behind snapshots, so this bounds a busy group's disk use: about maxKeepSnapshots times this, plus one log file and autoDeleteLogDelaySeconds of writes",
        },
        KeyDoc {
            key: "maxKeepSnapshots",
            default: "2",
            meaning: "snapshots kept on disk (at least 1)",
        },
        KeyDoc {
            key: "saveSnapshotWhenClose",
            default: "true",
            meaning: "take a snapshot on clean shutdown",
        },
        KeyDoc {
            key: "autoDeleteLogDelaySeconds",
            default: "60",
            meaning: "delay before deleting log files covered by a snapshot",
        },
        KeyDoc {
            key: "deleteLogsAfterTakeSnapshot",
            default: "true",
            meaning: "delete covered log files after a snapshot",
        },
    ];

    /// `dispatcherCpus` as a set: `None` when blank, else the CPU list, every CPU of it
    /// one this process may use ([`StartProblem::BadCpus`] otherwise).
    pub fn dispatcher_cpu_set(&self) -> Result<Option<CpuSet>, StartProblem> {
        let text = &self.dispatcher_cpus;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let bad = |error| StartProblem::BadCpus {
            group_id: self.group_id,
            error,
        };
        let set = CpuSet::parse(text).map_err(bad)?;
        set.check_usable().map_err(bad)?;
        Ok(Some(set))
    }

    /// Sets every Raft group field present in `r` (not the DtKV options, not the
    /// member lists, which the reference never reads from these keys).
    pub fn apply(&mut self, r: &PropReader<'_>) -> Result<(), ValueError> {
        r.string("dataDir", &mut self.data_dir)?;
        r.string("statusFile", &mut self.status_file)?;
        r.int_array("ioRetryInterval", &mut self.io_retry_interval)?;
        r.boolean("syncForce", &mut self.sync_force)?;
        r.boolean("dropLogPageCache", &mut self.drop_log_page_cache)?;
        r.long("logPrefillBytes", &mut self.log_prefill_bytes)?;
        r.string("dispatcherCpus", &mut self.dispatcher_cpus)?;
        r.int("raftPingCheck", &mut self.raft_ping_check)?;
        r.boolean("disableConfigChange", &mut self.disable_config_change)?;
        r.int("maxReplicateItems", &mut self.max_replicate_items)?;
        r.long("maxReplicateBytes", &mut self.max_replicate_bytes)?;
        r.int("singleReplicateLimit", &mut self.single_replicate_limit)?;
        r.int("maxPendingTasks", &mut self.max_pending_tasks)?;
        r.long("maxPendingTaskBytes", &mut self.max_pending_task_bytes)?;
        r.int("maxCacheTasks", &mut self.max_cache_tasks)?;
        r.long("maxCacheTaskBytes", &mut self.max_cache_task_bytes)?;
        r.int("idxItemsPerFile", &mut self.idx_items_per_file)?;
        r.int("idxCacheSize", &mut self.idx_cache_size)?;
        r.int("idxFlushThreshold", &mut self.idx_flush_threshold)?;
        r.long("logFileSize", &mut self.log_file_size)?;
        r.int("snapshotConcurrency", &mut self.snapshot_concurrency)?;
        r.int(
            "diskSnapshotConcurrency",
            &mut self.disk_snapshot_concurrency,
        )?;
        r.int(
            "diskSnapshotBufferSize",
            &mut self.disk_snapshot_buffer_size,
        )?;
        r.int(
            "replicateSnapshotConcurrency",
            &mut self.replicate_snapshot_concurrency,
        )?;
        r.int(
            "replicateSnapshotBufferSize",
            &mut self.replicate_snapshot_buffer_size,
        )?;
        r.int("saveSnapshotSeconds", &mut self.save_snapshot_seconds)?;
        r.long("saveSnapshotLogBytes", &mut self.save_snapshot_log_bytes)?;
        r.int("maxKeepSnapshots", &mut self.max_keep_snapshots)?;
        r.boolean("saveSnapshotWhenClose", &mut self.save_snapshot_when_close)?;
        r.int(
            "autoDeleteLogDelaySeconds",
            &mut self.auto_delete_log_delay_seconds,
        )?;
        r.boolean(
            "deleteLogsAfterTakeSnapshot",
            &mut self.delete_logs_after_take_snapshot,
        )?;
        Ok(())
    }
}
