//! From the typed configuration files ([`ServerConfig`], [`GroupConfig`], [`KvConfig`])
//! to the settings the running server takes ([`RaftServerConfig`],
//! [`RaftGroupConfig`], [`KvGroupConfig`]), with range checks.
//!
//! Every key of config.properties and servers.properties (`dtkv-server.md` §13.3–13.4)
//! either reaches the setting it names here, or is listed in [`IGNORED_KEYS`] with the
//! reason dt accepts it without using it.

use std::time::Duration;

use dt_raft::driver::RaftGroupConfig;
use dt_raft::server::RaftServerConfig;

use crate::bootstrap::{GroupConfig, KvConfig, ServerConfig, StartProblem};
use crate::kv_server::KvGroupConfig;

/// A key dt reads and checks but does not use, and why.
#[derive(Debug, Clone, Copy)]
pub struct IgnoredKey {
    /// The property key.
    pub key: &'static str,
    /// Why dt has no use for it.
    pub reason: &'static str,
}

/// The keys of §13.3–13.4 that are accepted (type-checked) and ignored.
pub const IGNORED_KEYS: &[IgnoredKey] = &[
    IgnoredKey {
        key: "servers (in config.properties)",
        reason: "taken from servers.properties, as the reference does",
    },
    IgnoredKey {
        key: "ioRetryInterval",
        reason: "dt does not retry a failed disk write or fsync: the group stops (fail-stop), \
                 because an fsync retried after an error can report data the disk lost as safe",
    },
    IgnoredKey {
        key: "snapshotConcurrency",
        reason: "dt reads a state machine snapshot with one reader and recovers it in order",
    },
    IgnoredKey {
        key: "diskSnapshotConcurrency",
        reason: "dt writes and reads a snapshot file sequentially on one blocking-IO task",
    },
    IgnoredKey {
        key: "diskSnapshotBufferSize",
        reason: "dt writes snapshot files in 64 KiB blocks (the reference's default); each \
                 snapshot records its block size, so files with other sizes still load",
    },
    IgnoredKey {
        key: "useSeparateExecutor",
        reason: "DtKV always executes on its group's Raft thread (the reference's default, false)",
    },
    IgnoredKey {
        key: "readInDtKvExecutor",
        reason: "lease reads are answered on the thread that completes the lease check, \
                 under the group's short lock; there is no separate DtKV executor",
    },
];

fn range(
    group_id: Option<i32>,
    key: &'static str,
    value: i64,
    min: i64,
    max: i64,
    expected: &'static str,
) -> Result<i64, StartProblem> {
    if value < min || value > max {
        Err(StartProblem::OutOfRange {
            group_id,
            key,
            value,
            expected,
        })
    } else {
        Ok(value)
    }
}

fn millis(key: &'static str, v: i64) -> Result<Duration, StartProblem> {
    let v = range(None, key, v, 1, i64::MAX, "a positive number of ms")?;
    Ok(Duration::from_millis(v as u64))
}

fn port(key: &'static str, v: i32) -> Result<u16, StartProblem> {
    Ok(range(None, key, v as i64, 1, 65_535, "a port between 1 and 65535")? as u16)
}

/// The Raft server's settings from config.properties (and `servers` from
/// servers.properties). Both ports must be set (the bootstrap defaults them to
/// 9331/9332); the ports are bound on all interfaces, as the reference does.
pub fn raft_server_config(s: &ServerConfig) -> Result<RaftServerConfig, StartProblem> {
    Ok(RaftServerConfig {
        servers: s.servers.clone(),
        replicate_port: port("replicatePort", s.replicate_port)?,
        service_port: port("servicePort", s.service_port)?,
        node_id: s.node_id,
        elect_timeout: millis("electTimeout", s.elect_timeout)?,
        rpc_timeout: millis("rpcTimeout", s.rpc_timeout)?,
        connect_timeout: millis("connectTimeout", s.connect_timeout)?,
        heartbeat_interval: millis("heartbeatInterval", s.heartbeat_interval)?,
        ping_interval: millis("pingInterval", s.ping_interval)?,
        check_self: s.check_self,
        block_io_threads: range(
            None,
            "blockIoThreads",
            s.block_io_threads as i64,
            1,
            4096,
            "between 1 and 4096",
        )? as usize,
        max_conn_in_requests: range(
            None,
            "maxConnInRequests",
            s.max_conn_in_requests,
            0,
            u32::MAX as i64,
            "0 (no cap) or a positive number of requests",
        )? as u32,
        batch_fsync: s.batch_fsync,
        ..RaftServerConfig::default()
    })
}

/// `perfStatsInterval` (seconds; 0 = off) as the DtKV server's `stats_interval`.
pub fn perf_stats_interval(s: &ServerConfig) -> Result<Duration, StartProblem> {
    let v = range(
        None,
        "perfStatsInterval",
        s.perf_stats_interval,
        0,
        86_400,
        "0 (off) or a number of seconds up to 86400",
    )?;
    Ok(Duration::from_secs(v as u64))
}

/// Parses a `nodeIdOfMembers` / `nodeIdOfObservers` value (comma-separated positive
/// ids, blanks skipped).
pub fn node_ids(group_id: i32, text: &str) -> Result<Vec<u32>, StartProblem> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let t = part.trim();
        if t.is_empty() {
            continue;
        }
        match t.parse::<u32>() {
            Ok(id) if id > 0 => out.push(id),
            _ => {
                return Err(StartProblem::BadMemberId {
                    group_id,
                    text: t.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// One group's Raft settings from config.properties and `group.<id>.*` (its
/// `data_dir` is already `<dataDir>/<id>`). Node id and timings are the server's and
/// are filled in by the Raft server.
pub fn raft_group_config(g: &GroupConfig) -> Result<RaftGroupConfig, StartProblem> {
    let gid = Some(g.group_id);
    let members = node_ids(g.group_id, &g.node_id_of_members)?;
    let observers = node_ids(
        g.group_id,
        g.node_id_of_observers.as_deref().unwrap_or_default(),
    )?;
    let nonneg = |key: &'static str, v: i64| -> Result<u64, StartProblem> {
        Ok(range(gid, key, v, 0, i64::MAX, "zero or more")? as u64)
    };
    let positive = |key: &'static str, v: i64| -> Result<u64, StartProblem> {
        Ok(range(gid, key, v, 1, i64::MAX, "positive")? as u64)
    };
    let mut c = RaftGroupConfig::new(g.group_id, 0, members);
    c.observers = observers;
    c.data_dir = g.data_dir.clone().into();
    if g.status_file.trim().is_empty() {
        return Err(StartProblem::OutOfRange {
            group_id: gid,
            key: "statusFile",
            value: 0,
            expected: "a file name",
        });
    }
    c.status_file = g.status_file.clone();
    c.sync_force = g.sync_force;
    c.drop_synced_pages = g.drop_log_page_cache;
    c.prefill_bytes = range(
        gid,
        "logPrefillBytes",
        g.log_prefill_bytes,
        0,
        1 << 30,
        "0 (off) to 1073741824",
    )? as u64;
    c.dispatcher_cpus = g.dispatcher_cpu_set()?;
    c.raft_ping_check = range(
        gid,
        "raftPingCheck",
        g.raft_ping_check as i64,
        0,
        2,
        "0, 1 or 2",
    )? as i32;
    c.disable_config_change = g.disable_config_change;
    c.max_replicate_items = positive("maxReplicateItems", g.max_replicate_items as i64)?;
    c.max_replicate_bytes = positive("maxReplicateBytes", g.max_replicate_bytes)?;
    c.single_replicate_limit =
        positive("singleReplicateLimit", g.single_replicate_limit as i64)? as usize;
    c.max_pending_tasks = positive("maxPendingTasks", g.max_pending_tasks as i64)? as usize;
    c.max_pending_task_bytes = positive("maxPendingTaskBytes", g.max_pending_task_bytes)? as usize;
    c.max_cache_tasks = nonneg("maxCacheTasks", g.max_cache_tasks as i64)? as usize;
    c.max_cache_task_bytes = nonneg("maxCacheTaskBytes", g.max_cache_task_bytes)? as usize;
    c.idx_items_per_file = positive("idxItemsPerFile", g.idx_items_per_file as i64)?;
    c.idx_cache_size = positive("idxCacheSize", g.idx_cache_size as i64)? as usize;
    c.idx_flush_threshold = positive("idxFlushThreshold", g.idx_flush_threshold as i64)?;
    c.log_file_size = positive("logFileSize", g.log_file_size)?;
    c.replicate_snapshot_concurrency = positive(
        "replicateSnapshotConcurrency",
        g.replicate_snapshot_concurrency as i64,
    )? as usize;
    c.replicate_snapshot_buffer_size = positive(
        "replicateSnapshotBufferSize",
        g.replicate_snapshot_buffer_size as i64,
    )? as usize;
    c.save_snapshot_seconds = nonneg("saveSnapshotSeconds", g.save_snapshot_seconds as i64)?;
    c.save_snapshot_log_bytes = nonneg("saveSnapshotLogBytes", g.save_snapshot_log_bytes)?;
    c.max_keep_snapshots = nonneg("maxKeepSnapshots", g.max_keep_snapshots as i64)? as usize;
    c.save_snapshot_when_close = g.save_snapshot_when_close;
    c.auto_delete_log_delay_seconds = nonneg(
        "autoDeleteLogDelaySeconds",
        g.auto_delete_log_delay_seconds as i64,
    )?;
    c.delete_logs_after_take_snapshot = g.delete_logs_after_take_snapshot;
    // Accepted and ignored (see IGNORED_KEYS), but still range-checked so a typo
    // that would break the reference does not pass silently here.
    for v in &g.io_retry_interval {
        nonneg("ioRetryInterval", *v as i64)?;
    }
    positive("snapshotConcurrency", g.snapshot_concurrency as i64)?;
    positive(
        "diskSnapshotConcurrency",
        g.disk_snapshot_concurrency as i64,
    )?;
    positive("diskSnapshotBufferSize", g.disk_snapshot_buffer_size as i64)?;
    Ok(c)
}

/// The DtKV options of a group, checked (the message names the bad key).
pub fn check_kv_config(group_id: i32, kv: &KvConfig) -> Result<(), StartProblem> {
    crate::kv_server::watch_config_of(kv)
        .map(|_| ())
        .map_err(|reason| StartProblem::BadKvOption { group_id, reason })
}

/// A [`KvGroupConfig`] carrying the group's Raft settings and DtKV options.
pub fn kv_group_config(g: &GroupConfig) -> Result<KvGroupConfig, StartProblem> {
    let raft = raft_group_config(g)?;
    check_kv_config(g.group_id, &g.kv)?;
    Ok(KvGroupConfig {
        group_id: g.group_id,
        members: raft.members.clone(),
        observers: raft.observers.clone(),
        raft: Some(raft),
        kv: Some(g.kv.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::{BootConfig, DataDirCheck};
    use crate::props::{Properties, VarSource};
    use dt_common::cpu_set::{CpuListError, CpuSet};

    /// Every key set to a non-default value in the files must arrive in the running
    /// server's settings.
    #[test]
    fn every_key_reaches_its_setting() {
        let config = Properties::parse_str(
            "nodeId = 2\nreplicatePort = 4001\nservicePort = 4002\nelectTimeout = 1111\n\
             rpcTimeout = 2222\nconnectTimeout = 3333\nheartbeatInterval = 444\n\
             pingInterval = 555\ncheckSelf = false\nblockIoThreads = 7\nmaxConnInRequests = 77\n\
             batchFsync = false\nperfStatsInterval = 30\ndataDir = /d\n\
             statusFile = st\nsyncForce = false\ndropLogPageCache = false\nlogPrefillBytes = 65536\nraftPingCheck = 2\ndisableConfigChange = true\n\
             maxReplicateItems = 11\nmaxReplicateBytes = 12\nsingleReplicateLimit = 13\n\
             maxPendingTasks = 14\nmaxPendingTaskBytes = 15\nmaxCacheTasks = 16\n\
             maxCacheTaskBytes = 17\nidxItemsPerFile = 1024\nidxCacheSize = 19\n\
             idxFlushThreshold = 20\nlogFileSize = 2097152\nreplicateSnapshotConcurrency = 3\n\
             replicateSnapshotBufferSize = 4096\nsaveSnapshotSeconds = 21\nsaveSnapshotLogBytes = 23\n\
             maxKeepSnapshots = 5\nsaveSnapshotWhenClose = false\n\
             autoDeleteLogDelaySeconds = 22\ndeleteLogsAfterTakeSnapshot = false\n",
        )
        .unwrap();
        // the last CPU this process may use, as a per-group override
        let cpu = CpuSet::allowed().map_or(0, |a| a.iter().last().unwrap_or(0));
        let servers = Properties::parse_str(&format!(
            "servers = 1,h1:4001;2,h2:4001\ngroup.5.nodeIdOfMembers = 1,2\n\
             group.5.nodeIdOfObservers =\ngroup.5.maxKeepSnapshots = 9\n\
             group.5.watchMaxBatchSize = 7\ngroup.5.watchMaxReqBytes = 99\n\
             group.5.watchTimeoutMillis = 3000\ngroup.5.watchDispatchIntervalMillis = 40\n\
             group.5.initMapCapacity = 8\ngroup.5.dispatcherCpus = {cpu}\n",
        ))
        .unwrap();
        let mut boot = BootConfig::from_properties(
            config,
            servers,
            "servers.properties".into(),
            VarSource::default(),
            DataDirCheck::Skip,
        )
        .unwrap();
        boot.check_start().unwrap();
        let s = raft_server_config(&boot.server).unwrap();
        assert_eq!(s.servers, "1,h1:4001;2,h2:4001");
        assert_eq!(
            (s.replicate_port, s.service_port, s.node_id),
            (4001, 4002, 2)
        );
        assert_eq!(s.elect_timeout, Duration::from_millis(1111));
        assert_eq!(s.rpc_timeout, Duration::from_millis(2222));
        assert_eq!(s.connect_timeout, Duration::from_millis(3333));
        assert_eq!(s.heartbeat_interval, Duration::from_millis(444));
        assert_eq!(s.ping_interval, Duration::from_millis(555));
        assert!(!s.check_self);
        assert_eq!(s.block_io_threads, 7);
        assert_eq!(s.max_conn_in_requests, 77);
        assert!(!s.batch_fsync);
        assert_eq!(
            perf_stats_interval(&boot.server).unwrap(),
            Duration::from_secs(30)
        );

        let k = kv_group_config(&boot.groups[0]).unwrap();
        assert_eq!((k.group_id, &k.members[..]), (5, &[1u32, 2][..]));
        assert!(k.observers.is_empty());
        let g = k.raft.unwrap();
        assert_eq!(g.data_dir, std::path::PathBuf::from("/d/5"));
        assert_eq!(g.status_file, "st");
        assert!(!g.sync_force);
        assert!(!g.drop_synced_pages);
        assert_eq!(g.prefill_bytes, 65536);
        #[cfg(target_os = "linux")]
        assert_eq!(
            g.dispatcher_cpus,
            Some(CpuSet::parse(&cpu.to_string()).unwrap())
        );
        assert_eq!(g.raft_ping_check, 2);
        assert!(g.disable_config_change);
        assert_eq!(g.max_replicate_items, 11);
        assert_eq!(g.max_replicate_bytes, 12);
        assert_eq!(g.single_replicate_limit, 13);
        assert_eq!(g.max_pending_tasks, 14);
        assert_eq!(g.max_pending_task_bytes, 15);
        assert_eq!(g.max_cache_tasks, 16);
        assert_eq!(g.max_cache_task_bytes, 17);
        assert_eq!(g.idx_items_per_file, 1024);
        assert_eq!(g.idx_cache_size, 19);
        assert_eq!(g.idx_flush_threshold, 20);
        assert_eq!(g.log_file_size, 2_097_152);
        assert_eq!(g.replicate_snapshot_concurrency, 3);
        assert_eq!(g.replicate_snapshot_buffer_size, 4096);
        assert_eq!(g.save_snapshot_seconds, 21);
        assert_eq!(g.save_snapshot_log_bytes, 23);
        assert_eq!(
            g.max_keep_snapshots, 9,
            "group.5.* wins over config.properties"
        );
        assert!(!g.save_snapshot_when_close);
        assert_eq!(g.auto_delete_log_delay_seconds, 22);
        assert!(!g.delete_logs_after_take_snapshot);

        let kv = k.kv.unwrap();
        let (w, cap, iv) = crate::kv_server::watch_config_of(&kv).unwrap();
        assert_eq!(w.max_batch, 7);
        assert_eq!(w.max_req_bytes, 99);
        assert_eq!(w.timeout_nanos, 3_000_000_000);
        assert_eq!(cap, 8);
        assert_eq!(iv, Duration::from_millis(40));
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let mut s = ServerConfig {
            servers: "1,h:1".into(),
            replicate_port: 70_000,
            service_port: 9332,
            node_id: 1,
            ..ServerConfig::default()
        };
        let e = raft_server_config(&s).unwrap_err();
        assert!(e.to_string().contains("replicatePort"), "{e}");
        s.replicate_port = 9331;
        s.elect_timeout = -1;
        let e = raft_server_config(&s).unwrap_err();
        assert!(e.to_string().contains("electTimeout"), "{e}");

        let mut g = GroupConfig::new(3, "1", None);
        g.max_pending_tasks = -5;
        let e = raft_group_config(&g).unwrap_err();
        assert_eq!(
            e.to_string(),
            "group 3: maxPendingTasks must be positive (got -5)"
        );
        let mut g = GroupConfig::new(3, "1", None);
        assert_eq!(
            raft_group_config(&g).unwrap().save_snapshot_log_bytes,
            4 << 30,
            "saveSnapshotLogBytes defaults to 4 GiB"
        );
        g.save_snapshot_log_bytes = -1;
        let e = raft_group_config(&g).unwrap_err().to_string();
        assert!(
            e.contains("saveSnapshotLogBytes") && e.contains("-1"),
            "{e}"
        );
        for bad in [-1, (1 << 30) + 1] {
            let mut g = GroupConfig::new(3, "1", None);
            g.log_prefill_bytes = bad;
            let e = raft_group_config(&g).unwrap_err().to_string();
            assert!(
                e.contains("logPrefillBytes") && e.contains(&bad.to_string()),
                "{e}"
            );
        }
        for (bad, says) in [
            ("x", "'x' is not a CPU number"),
            ("2-1", "the CPU range 2-1 ends before it starts"),
            (
                "1023",
                "CPU 1023 is not available to this process (it may use ",
            ),
        ] {
            let mut g = GroupConfig::new(3, "1", None);
            g.dispatcher_cpus = bad.into();
            let e = raft_group_config(&g).unwrap_err();
            assert!(
                matches!(e, StartProblem::BadCpus { group_id: 3, .. }),
                "{e:?}"
            );
            if bad == "2-1" {
                assert!(matches!(
                    e,
                    StartProblem::BadCpus {
                        error: CpuListError::BackwardRange { from: 2, to: 1 },
                        ..
                    }
                ));
            }
            let e = e.to_string();
            assert!(e.starts_with("group 3: dispatcherCpus: "), "{e}");
            #[cfg(target_os = "linux")]
            if !CpuSet::allowed().unwrap().contains(1023) {
                assert!(e.contains(says), "{e}");
            }
            #[cfg(not(target_os = "linux"))]
            let _ = says;
        }
        let mut g = GroupConfig::new(3, "1", None);
        g.dispatcher_cpus = "  ".into();
        assert_eq!(raft_group_config(&g).unwrap().dispatcher_cpus, None);
        let mut g = GroupConfig::new(3, "1,x", None);
        assert!(matches!(
            raft_group_config(&g),
            Err(StartProblem::BadMemberId { .. })
        ));
        g.node_id_of_members = "1".into();
        g.kv.watch_max_batch_size = 0;
        let e = kv_group_config(&g).unwrap_err();
        assert!(e.to_string().contains("watchMaxBatchSize"), "{e}");
    }
}
