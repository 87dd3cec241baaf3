//! [`DtKvServer`]: a RaftServer with DtKV groups and the DtKV processors on its service
//! port, assembled from a [`DtKvServerConfig`], plus the daemon task that drives TTL
//! expiry (through the log, on the leader) and watch dispatch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_client::kv::{KvCommands, WatchNotifyResp};
use dt_codec::encode;
use dt_common::{PerfHook, PerfStats};
use dt_net::{WriteBody, WritePacket};
use dt_raft::driver::RaftGroupConfig;
use dt_raft::server::{GroupsOptions, RaftGroups, RaftServer, RaftServerConfig, RaftServerError};
use dt_raft::sm::RaftInput;

use super::processor::{ChannelTable, KvContext, KvProcessor};
use super::state_machine::{ChannelId, DtKvFactory, KvGroup};
use super::stats_log::{StatsLog, SERVER_STATS};
use crate::bootstrap::KvConfig;
use crate::dtkv::{BizType, Push, PushOutcome, WatchConfig};

/// One group of a [`DtKvServer`].
///
/// `raft` and `kv` carry the group's own settings (the server binary fills them from
/// config.properties and `group.<id>.*`); left `None`, the group gets the reference's
/// defaults, its files in `<data_dir>/<group id>` with the server's `log_file_size`,
/// and the server-wide `watch` settings.
#[derive(Debug, Clone)]
pub struct KvGroupConfig {
    /// The group id.
    pub group_id: i32,
    /// Voting members.
    pub members: Vec<u32>,
    /// Observers.
    pub observers: Vec<u32>,
    /// The group's Raft settings, `data_dir` included. Its `group_id`, `members` and
    /// `observers` are replaced by the fields above; its node id and timings by the
    /// server's.
    pub raft: Option<RaftGroupConfig>,
    /// The group's DtKV options (watch limits and dispatch period, map capacity).
    pub kv: Option<KvConfig>,
}

impl KvGroupConfig {
    /// A group of `members` with default settings (no observers).
    pub fn new(group_id: i32, members: Vec<u32>) -> Self {
        KvGroupConfig {
            group_id,
            members,
            observers: Vec::new(),
            raft: None,
            kv: None,
        }
    }
}

/// Builds the settings of a group added at run time (RAFT_ADMIN_ADD_GROUP): the
/// server binary reads config.properties, then `group.<id>.*`, as at start.
pub trait NewGroupConfig: Send + Sync + std::fmt::Debug + 'static {
    /// The Raft settings (its `data_dir` created and writable) and DtKV options of
    /// new group `group_id`; the error text goes back to the admin client.
    fn create(
        &self,
        group_id: i32,
        members: &[u32],
        observers: &[u32],
    ) -> Result<(RaftGroupConfig, KvConfig), String>;
}

/// What a [`DtKvServer`] is built from.
#[derive(Debug, Clone)]
pub struct DtKvServerConfig {
    /// The Raft server (node id, ports, servers, timings).
    pub server: RaftServerConfig,
    /// The DtKV groups.
    pub groups: Vec<KvGroupConfig>,
    /// Where each group keeps its files (`<data_dir>/<group id>`).
    pub data_dir: PathBuf,
    /// The watch manager's settings.
    pub watch: WatchConfig,
    /// Dispatcher threads shared by the groups (0: one per group).
    pub dispatchers: usize,
    /// How long a lease read waits for the group to be ready.
    pub read_timeout: Duration,
    /// The period of the daemon task (TTL expiry, watch dispatch).
    pub daemon_interval: Duration,
    /// Log file size of each group (bytes) without its own `raft` settings.
    pub log_file_size: u64,
    /// Builds the settings of groups added at run time; `None`: defaults in
    /// `<data_dir>/<group id>`.
    pub new_group: Option<Arc<dyn NewGroupConfig>>,
    /// Where the groups (`RaftGroupConfig::perf`, replacing theirs, also for their
    /// dispatchers), the network IO threads (`RaftServerConfig::perf`, replacing the
    /// server's) and the DtKV requests (`dtkv_linearizable_op`: a write or a read
    /// through the log, from its arrival to its answer; `dtkv_lease_read`) report
    /// their timings. `None` (the default): with a `stats_interval`, the server's own
    /// [`PerfStats`] of [`SERVER_STATS`] (executions, DtKV requests, the IO threads'
    /// and dispatchers' loops), logged every `stats_interval` as the reference's
    /// default callbacks do; without, nothing is measured.
    pub perf: Option<PerfHook>,
    /// How often the server's own figures are logged (target `dt_stats`, level info;
    /// only with `perf` `None`); zero (the default): not measured at all. The
    /// reference logs them every minute to a stats file of their own; dt's lines would
    /// interleave with the console log and cost four clock reads per put, so the
    /// operator turns them on (`perfStatsInterval`).
    pub stats_interval: Duration,
}

impl DtKvServerConfig {
    /// A configuration with defaults for everything but the server and the groups.
    pub fn new(server: RaftServerConfig, groups: Vec<KvGroupConfig>, data_dir: PathBuf) -> Self {
        DtKvServerConfig {
            server,
            groups,
            data_dir,
            watch: WatchConfig::default(),
            dispatchers: 0,
            read_timeout: Duration::from_secs(5),
            daemon_interval: Duration::from_millis(50),
            log_file_size: 64 << 20,
            new_group: None,
            perf: None,
            stats_interval: Duration::ZERO,
        }
    }

    /// The Raft settings group `g` runs with (before the server's perf hook is set):
    /// its own `raft` settings, else defaults in `<data_dir>/<group id>` with
    /// `log_file_size`; its id, members and observers from `g`.
    pub fn raft_config_of(&self, g: &KvGroupConfig) -> RaftGroupConfig {
        let mut c = match &g.raft {
            Some(r) => r.clone(),
            None => {
                let mut c = RaftGroupConfig::new(g.group_id, 0, Vec::new());
                c.data_dir = self.data_dir.join(g.group_id.to_string());
                c.log_file_size = self.log_file_size;
                c
            }
        };
        c.group_id = g.group_id;
        c.members = g.members.clone();
        c.observers = g.observers.clone();
        c
    }
}

/// A DtKV server: the RaftServer, its DtKV groups, the processors and the daemon task.
pub struct DtKvServer {
    server: Arc<RaftServer>,
    groups: Arc<RaftGroups<DtKvFactory>>,
    ctx: Arc<KvContext>,
    stop: Arc<AtomicBool>,
    daemon: Mutex<Option<JoinHandle<()>>>,
    interval: Duration,
    /// The server's own figures, logged by the daemon (see `DtKvServerConfig::perf`).
    stats: Option<Arc<PerfStats>>,
    stats_interval: Duration,
}

impl std::fmt::Debug for DtKvServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DtKvServer({:?})", self.server)
    }
}

impl DtKvServer {
    /// Builds the server (nothing listens until [`DtKvServer::start`]).
    pub fn new(cfg: DtKvServerConfig) -> Result<DtKvServer, RaftServerError> {
        let (perf, stats) = match &cfg.perf {
            Some(p) => (p.clone(), None),
            None if cfg.stats_interval.is_zero() => (PerfHook::default(), None),
            None => {
                let s = Arc::new(PerfStats::new(&SERVER_STATS));
                (PerfHook::new(s.clone()), Some(s))
            }
        };
        let server = RaftServer::new(RaftServerConfig {
            perf: perf.clone(),
            ..cfg.server.clone()
        })?;
        let mut factory = DtKvFactory::new(
            server.block_io(),
            cfg.watch.clone(),
            Some(cfg.data_dir.clone()),
        );
        if let Some(n) = &cfg.new_group {
            factory.set_new_group(n.clone());
        }
        factory.set_perf(perf.clone());
        let factory = Arc::new(factory);
        let mut configs = Vec::with_capacity(cfg.groups.len());
        for g in &cfg.groups {
            let mut c = cfg.raft_config_of(g);
            c.perf = perf.clone();
            if let Some(kv) = &g.kv {
                factory
                    .set_kv_config(g.group_id, kv)
                    .map_err(|reason| RaftServerError::Group {
                        group_id: g.group_id,
                        reason,
                    })?;
            }
            configs.push(c);
        }
        let groups = RaftGroups::install(
            &server,
            factory.clone(),
            configs,
            GroupsOptions {
                dispatchers: cfg.dispatchers,
            },
        )?;
        let ctx = Arc::new(KvContext {
            gate: server.service_gate(),
            server: Arc::downgrade(&server),
            factory,
            groups: OnceLock::new(),
            channels: Mutex::new(ChannelTable::default()),
            read_timeout: cfg.read_timeout,
            cache_id: super::processor::next_cache_id(),
            perf,
        });
        let _ = ctx.groups.set(groups.clone());
        let weak = Arc::downgrade(&ctx);
        server.on_conn_closed(move |c| {
            if let Some(ctx) = weak.upgrade() {
                ctx.conn_closed(c.conn);
            }
        });
        for cmd in CLIENT_COMMANDS {
            server.register(cmd, KvProcessor::new(ctx.clone()));
        }
        Ok(DtKvServer {
            server,
            groups,
            ctx,
            stop: Arc::new(AtomicBool::new(false)),
            daemon: Mutex::new(None),
            interval: cfg.daemon_interval,
            stats,
            stats_interval: cfg.stats_interval,
        })
    }

    /// Starts the Raft server and the daemon task.
    pub fn start(&self) -> Result<(), RaftServerError> {
        self.server.start()?;
        let ctx = self.ctx.clone();
        let stop = self.stop.clone();
        let interval = self.interval;
        let stats = self
            .stats
            .clone()
            .map(|s| StatsLog::new(s, self.stats_interval));
        let h = std::thread::Builder::new()
            .name(format!("dtkv-daemon-{}", self.server.node_id()))
            .spawn(move || daemon_loop(ctx, stop, interval, stats))
            .map_err(RaftServerError::Io)?;
        *self.daemon.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        Ok(())
    }

    /// Waits until every group is ready (or the timeout).
    pub fn wait_group_ready(&self, timeout: Duration) -> Result<(), RaftServerError> {
        self.server.wait_group_ready(timeout)
    }

    /// The Raft server.
    pub fn raft_server(&self) -> &Arc<RaftServer> {
        &self.server
    }

    /// The groups (typed handles).
    pub fn groups(&self) -> &Arc<RaftGroups<DtKvFactory>> {
        &self.groups
    }

    /// The DtKV state of a group.
    pub fn kv_group(&self, group_id: i32) -> Option<Arc<KvGroup>> {
        self.ctx.factory.group(group_id)
    }

    /// Client connections holding a watch channel id (those that sent DTKV_SYNC_WATCH
    /// or DTKV_QUERY_STATUS and have not closed).
    pub fn watch_channel_count(&self) -> usize {
        self.ctx.channel_count()
    }

    /// Stops the daemon and the server.
    pub fn stop(&self, timeout: Duration) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.daemon.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        self.server.stop(timeout);
    }
}

impl Drop for DtKvServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The DtKV commands a client sends to the service port.
pub const CLIENT_COMMANDS: [i32; 17] = [
    KvCommands::DTKV_GET,
    KvCommands::DTKV_PUT,
    KvCommands::DTKV_REMOVE,
    KvCommands::DTKV_MKDIR,
    KvCommands::DTKV_LIST,
    KvCommands::DTKV_BATCH_GET,
    KvCommands::DTKV_BATCH_PUT,
    KvCommands::DTKV_BATCH_REMOVE,
    KvCommands::DTKV_CAS,
    KvCommands::DTKV_SYNC_WATCH,
    KvCommands::DTKV_QUERY_STATUS,
    KvCommands::DTKV_PUT_TEMP_NODE,
    KvCommands::DTKV_MAKE_TEMP_DIR,
    KvCommands::DTKV_UPDATE_TTL,
    KvCommands::DTKV_TRY_LOCK,
    KvCommands::DTKV_UNLOCK,
    KvCommands::DTKV_UPDATE_LOCK_LEASE,
];

/// How long a watch push may take.
const WATCH_PUSH_TIMEOUT: Duration = Duration::from_secs(5);

type Results = Arc<Mutex<Vec<(Arc<KvGroup>, ChannelId, crate::dtkv::PushToken, PushOutcome)>>>;

/// One round of a group's TTL expiry task (`dtkv-server.md` §5.2), the daemon's and
/// the DtKV simulation's: tells the group's TtlManager when its role changed
/// (`was_leader` remembers the role of the last round; `leader`: the group leads and
/// is ready) and, on the leader, returns the EXPIRE requests due at `now` (the
/// [`kv_clock`](super::kv_clock) base) with their log entries. A failed submission
/// goes back with `TtlManager::expire_failed(&req.key, req.ttl_millis, now)`.
pub fn ttl_round(
    kv: &KvGroup,
    leader: bool,
    was_leader: &mut Option<bool>,
    now: i64,
) -> Vec<(dt_client::kv::KvReq, RaftInput)> {
    if *was_leader != Some(leader) {
        *was_leader = Some(leader);
        kv.lock().ttl_manager().role_change(leader);
    }
    if !leader {
        return Vec::new();
    }
    let run = kv.lock().ttl_run(now);
    run.expire
        .into_iter()
        .map(|req| {
            let input = RaftInput::new(BizType::Expire.code(), encode::to_bytes(&req));
            (req, input)
        })
        .collect()
}

fn daemon_loop(
    ctx: Arc<KvContext>,
    stop: Arc<AtomicBool>,
    interval: Duration,
    mut stats: Option<StatsLog>,
) {
    let mut leader_of: std::collections::HashMap<i32, Option<bool>> = Default::default();
    // Per group: when its next watch dispatch is due (groups with their own
    // `watchDispatchIntervalMillis`; the others dispatch every round).
    let mut next_dispatch: std::collections::HashMap<i32, i64> = Default::default();
    let results: Results = Arc::default();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(interval);
        if let Some(s) = &mut stats {
            s.tick(Instant::now());
        }
        let Some(groups) = ctx.groups.get() else {
            continue;
        };
        // Closed connections lose their watches first.
        ctx.drop_closed_channels();
        // Push results first (they may produce more pushes).
        let done: Vec<_> = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
        for (kv, ch, token, outcome) in done {
            let more = kv
                .lock()
                .push_result(ch, &token, outcome, dt_common::mono_nanos());
            send_pushes(&ctx, &kv, more, &results);
        }
        for gid in groups.ids() {
            let (Some(g), Some(kv)) = (groups.group(gid), ctx.factory.group(gid)) else {
                continue;
            };
            // an idle group's garbage-collection sweep goes on here
            kv.lock().gc_step(super::state_machine::DAEMON_GC_STEP);
            let now = dt_common::mono_nanos();
            let leader = g.is_leader() && g.status().group_ready;
            {
                let was = leader_of.entry(gid).or_default();
                for (req, input) in ttl_round(&kv, leader, was, now) {
                    let kv2 = kv.clone();
                    let ctx2 = ctx.clone();
                    g.submit(input, move |r| match r {
                        Ok((_, out)) => {
                            if let Some(p) = out.lock_push {
                                ctx2.send_lock_push(*p);
                            }
                        }
                        Err(e) => {
                            log::debug!("expire of {:?} failed: {e}", req.key);
                            kv2.lock().ttl_manager().expire_failed(
                                &req.key,
                                req.ttl_millis,
                                dt_common::mono_nanos(),
                            );
                        }
                    });
                }
            }
            let interval = ctx.factory.dispatch_interval(gid);
            if let Some(iv) = interval {
                if next_dispatch.get(&gid).is_some_and(|&due| now < due) {
                    continue;
                }
                next_dispatch.insert(gid, now.saturating_add(iv.as_nanos() as i64));
            }
            let (pushes, done) = kv.lock().dispatch_watches(now);
            if !done {
                // A batch limit was hit: go on at the next round.
                next_dispatch.remove(&gid);
            }
            send_pushes(&ctx, &kv, pushes, &results);
        }
    }
}

fn send_pushes(
    ctx: &Arc<KvContext>,
    kv: &Arc<KvGroup>,
    pushes: Vec<Push<ChannelId>>,
    results: &Results,
) {
    let Some(server) = ctx.server.upgrade() else {
        return;
    };
    for p in pushes {
        let Some(conn) = ctx.channel_conn(p.channel) else {
            results.lock().unwrap_or_else(|e| e.into_inner()).push((
                kv.clone(),
                p.channel,
                p.token,
                PushOutcome::Failed { resp_code: None },
            ));
            continue;
        };
        let pkt = WritePacket::request(
            KvCommands::DTKV_WATCH_NOTIFY_PUSH,
            WriteBody::Encodable(Box::new(p.req)),
        );
        let results = results.clone();
        let kv = kv.clone();
        let (ch, token) = (p.channel, p.token);
        server.push_request_cb(conn, pkt, WATCH_PUSH_TIMEOUT, move |r| {
            let outcome = match r {
                Ok(resp) if resp.resp_code == dt_net::CmdCodes::SUCCESS => {
                    match <WatchNotifyResp as dt_client::kv::KvBody>::decode(&resp.body) {
                        Ok(w) => PushOutcome::Answered {
                            biz_code: dt_client::kv::KvCode::from_code(resp.biz_code),
                            results: w.results,
                        },
                        Err(_) => PushOutcome::Failed { resp_code: None },
                    }
                }
                Ok(resp) => PushOutcome::Failed {
                    resp_code: Some(resp.resp_code),
                },
                Err(_) => PushOutcome::Failed { resp_code: None },
            };
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((kv, ch, token, outcome));
        });
    }
}
