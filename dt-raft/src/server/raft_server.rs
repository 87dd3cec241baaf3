//! [`RaftServer`]: one NioServer with the replicate and service ports, the replicate
//! client and node layer, the multi-raft group table, and the start / stop sequence
//! (`raft.md` §2, §14).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_net::{NetError, NioClient, NioClientConfig, NioServer, NioServerConfig};

use super::biz::BizExecutor;
use super::config::{RaftServerConfig, ServerConfigError};
use super::group::GroupRef;
use super::member_ping::MemberPinger;
use super::node::{NodeError, NodeManager, NodeTiming};
use super::processors::{AdminProcessor, GroupAdmin, GroupProcessor, NodePingProcessor, Shared};
use crate::rpc::RaftCommands;

/// What can go wrong building, starting or running a [`RaftServer`].
#[derive(Debug)]
#[non_exhaustive]
pub enum RaftServerError {
    /// The configuration cannot work.
    Config(ServerConfigError),
    /// The network layer failed (bind, start).
    Net(NetError),
    /// The node layer failed (the self check, an unknown node).
    Node(NodeError),
    /// A thread could not be started.
    Io(std::io::Error),
    /// `start` was called twice, or after `stop`.
    BadState(&'static str),
    /// A group could not be created, started or initialised.
    Group {
        /// The group.
        group_id: i32,
        /// Why.
        reason: String,
    },
    /// A wait ran out of time.
    Timeout(&'static str),
    /// The server stopped while waiting.
    Stopped,
    /// The background part of the start sequence failed.
    StartFailed(String),
}

impl fmt::Display for RaftServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaftServerError::Config(e) => write!(f, "bad raft server config: {e}"),
            RaftServerError::Net(e) => write!(f, "raft server network: {e}"),
            RaftServerError::Node(e) => write!(f, "raft server nodes: {e}"),
            RaftServerError::Io(e) => write!(f, "raft server thread: {e}"),
            RaftServerError::BadState(s) => write!(f, "raft server: {s}"),
            RaftServerError::Group { group_id, reason } => {
                write!(f, "raft group {group_id}: {reason}")
            }
            RaftServerError::Timeout(w) => write!(f, "raft server: timed out waiting for {w}"),
            RaftServerError::Stopped => write!(f, "raft server stopped"),
            RaftServerError::StartFailed(e) => write!(f, "raft server start failed: {e}"),
        }
    }
}

impl std::error::Error for RaftServerError {}

impl RaftServerError {
    /// Whether the start failed because a port to listen on is already in use.
    pub fn is_addr_in_use(&self) -> bool {
        match self {
            RaftServerError::Net(e) => e.is_addr_in_use(),
            RaftServerError::Io(e) => e.kind() == std::io::ErrorKind::AddrInUse,
            _ => false,
        }
    }
}

impl From<ServerConfigError> for RaftServerError {
    fn from(e: ServerConfigError) -> Self {
        RaftServerError::Config(e)
    }
}
impl From<NetError> for RaftServerError {
    fn from(e: NetError) -> Self {
        RaftServerError::Net(e)
    }
}
impl From<NodeError> for RaftServerError {
    fn from(e: NodeError) -> Self {
        RaftServerError::Node(e)
    }
}
impl From<std::io::Error> for RaftServerError {
    fn from(e: std::io::Error) -> Self {
        RaftServerError::Io(e)
    }
}

/// Hooks the server runs at points of its start sequence: implemented by the group layer
/// (the driver) to init groups, start their raft pings, and report readiness. Every
/// method runs on the server's start thread and may block.
pub trait StartHooks: Send + Sync + 'static {
    /// Waits until every group's init finished (step 4 of §14.2).
    fn wait_groups_init(&self, server: &RaftServer) -> Result<(), RaftServerError>;
    /// After every group is ping-ready: waits until every group whose role is not none
    /// is group-ready (the end of step 5).
    fn wait_groups_ready(&self, server: &RaftServer) -> Result<(), RaftServerError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    Stopped,
}

/// Start-sequence progress, for [`RaftServer::wait_group_ready`].
#[derive(Default)]
struct Progress {
    done: bool,
    error: Option<String>,
}

/// The Raft server of one process.
///
/// ```no_run
/// use std::time::Duration;
/// use dt_raft::server::{RaftServer, RaftServerConfig};
///
/// let cfg = RaftServerConfig {
///     servers: "1,127.0.0.1:4001;2,127.0.0.1:4002;3,127.0.0.1:4003".into(),
///     node_id: 1,
///     replicate_port: 4001,
///     ..Default::default()
/// };
/// let server = RaftServer::new(cfg).unwrap();
/// server.start().unwrap();
/// server.wait_group_ready(Duration::from_secs(30)).unwrap();
/// server.stop(Duration::from_secs(5));
/// ```
pub struct RaftServer {
    cfg: RaftServerConfig,
    shared: Arc<Shared>,
    nio: Mutex<NioServer>,
    client: Arc<NioClient>,
    biz: Arc<BizExecutor>,
    block_io: Arc<crate::raft_log::ThreadPoolIo>,
    fsync_batcher: Option<Arc<crate::store::fsync_batcher::FsyncBatcher>>,
    pinger: Arc<MemberPinger>,
    phase: Mutex<Phase>,
    progress: Arc<(Mutex<Progress>, Condvar)>,
    starter: Mutex<Option<JoinHandle<()>>>,
    hooks: OnceLock<Arc<dyn StartHooks>>,
    stopper: OnceLock<Arc<dyn GroupStopper>>,
    self_ref: OnceLock<std::sync::Weak<RaftServer>>,
}

impl fmt::Debug for RaftServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RaftServer(node {})", self.cfg.node_id)
    }
}

impl RaftServer {
    /// Checks the configuration (§14.1) and builds the server: NioServer with the
    /// processors registered, replicate client, node table. Nothing listens until
    /// [`RaftServer::start`].
    pub fn new(cfg: RaftServerConfig) -> Result<Arc<RaftServer>, RaftServerError> {
        let nodes = cfg.validate()?;
        let mut client = NioClient::new(NioClientConfig {
            name: format!("RaftRepClient{}", cfg.node_id),
            max_out_requests: 0,
            max_out_bytes: 0,
            connect_timeout: cfg.connect_timeout,
            ..Default::default()
        });
        // Started here (its IO thread idles without peers): the node manager and the
        // transport share it from now on. Peers are added at `start`.
        client.start()?;
        let client = Arc::new(client);
        let nodes = NodeManager::new(
            cfg.node_id,
            &nodes,
            client.clone(),
            NodeTiming {
                ping_interval: cfg.ping_interval,
                rpc_timeout: cfg.rpc_timeout,
                connect_timeout: cfg.connect_timeout,
            },
        )
        .map_err(|e| match e {
            NodeError::BadAddress(s) => RaftServerError::Config(ServerConfigError::BadServers {
                entry: cfg.servers.clone(),
                reason: s,
            }),
            e => RaftServerError::Node(e),
        })?;
        let shared = Arc::new(Shared::new(cfg.node_id, nodes));
        let biz = Arc::new(BizExecutor::start(format!("raft-biz-{}", cfg.node_id))?);
        let mut ports = vec![cfg.replicate_port];
        if cfg.service_port != 0 {
            ports.push(cfg.service_port);
        }
        let mut nio = NioServer::new(NioServerConfig {
            ports,
            bind_host: cfg.bind_host,
            io_threads: cfg.io_threads,
            name: format!("RaftNioServer{}", cfg.node_id),
            max_in_requests: 0,
            max_in_bytes: 0,
            max_conn_in_requests: if cfg.service_port != 0 && cfg.max_conn_in_requests > 0 {
                vec![(cfg.service_port, cfg.max_conn_in_requests)]
            } else {
                Vec::new()
            },
            perf: cfg.perf.shared(),
            ..Default::default()
        });
        nio.register(
            RaftCommands::NODE_PING,
            NodePingProcessor {
                shared: shared.clone(),
            },
        );
        for cmd in [
            RaftCommands::RAFT_APPEND_ENTRIES,
            RaftCommands::RAFT_PING,
            RaftCommands::RAFT_REQUEST_VOTE,
            RaftCommands::RAFT_INSTALL_SNAPSHOT,
            RaftCommands::RAFT_ADMIN_TRANSFER_LEADER,
            RaftCommands::RAFT_TRANSFER_LEADER,
            RaftCommands::RAFT_QUERY_STATUS,
            RaftCommands::RAFT_ADMIN_PREPARE_CHANGE,
            RaftCommands::RAFT_ADMIN_COMMIT_CHANGE,
            RaftCommands::RAFT_ADMIN_ABORT_CHANGE,
        ] {
            nio.register(
                cmd,
                GroupProcessor {
                    shared: shared.clone(),
                },
            );
        }
        for cmd in [
            RaftCommands::RAFT_ADMIN_ADD_NODE,
            RaftCommands::RAFT_ADMIN_REMOVE_NODE,
            RaftCommands::RAFT_ADMIN_ADD_GROUP,
            RaftCommands::RAFT_ADMIN_REMOVE_GROUP,
            RaftCommands::RAFT_ADMIN_LIST_NODES,
            RaftCommands::RAFT_ADMIN_LIST_GROUPS,
        ] {
            nio.register(
                cmd,
                AdminProcessor {
                    shared: shared.clone(),
                    biz: biz.clone(),
                },
            );
        }
        let pinger = Arc::new(MemberPinger::new(
            shared.clone(),
            cfg.raft_ping_interval,
            cfg.rpc_timeout,
        ));
        let block_io = crate::raft_log::ThreadPoolIo::new(cfg.block_io_threads);
        let fsync_batcher = cfg
            .batch_fsync
            .then(|| crate::store::fsync_batcher::FsyncBatcher::new(block_io.clone()));
        let s = Arc::new(RaftServer {
            cfg,
            shared,
            block_io,
            fsync_batcher,
            pinger,
            nio: Mutex::new(nio),
            client,
            biz,
            phase: Mutex::new(Phase::Created),
            progress: Arc::default(),
            starter: Mutex::new(None),
            hooks: OnceLock::new(),
            stopper: OnceLock::new(),
            self_ref: OnceLock::new(),
        });
        let _ = s.self_ref.set(Arc::downgrade(&s));
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &RaftServerConfig {
        &self.cfg
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.cfg.node_id
    }

    /// The node table and node pings.
    pub fn node_manager(&self) -> &NodeManager {
        &self.shared.nodes
    }

    /// The replicate client (the transport's connections to the other nodes).
    pub fn client(&self) -> &Arc<NioClient> {
        &self.client
    }

    /// Registers the processor of a client command served on the service port (e.g. the
    /// DtKV commands), before [`RaftServer::start`]. The processor should begin with
    /// [`RaftServer::check_service_request`] (or the same checks through
    /// [`ServiceGate`]).
    pub fn register<P: dt_net::ReqProcessor>(&self, command: i32, p: P) {
        self.nio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(command, p);
    }

    /// Adds a listener told about every connection of this server (service or replicate
    /// port) that closes, before [`RaftServer::start`]: see
    /// [`dt_net::ConnClosedListener`] (runs on the IO thread, must not block).
    pub fn on_conn_closed(&self, f: impl Fn(&dt_net::ConnClosed<'_>) + Send + Sync + 'static) {
        self.nio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add_conn_closed_listener(f);
    }

    /// Sends a request to a client connected on the service port (a server push such as
    /// DTKV_WATCH_NOTIFY_PUSH); `cb` gets the response or the error.
    pub fn push_request_cb(
        &self,
        conn: dt_net::ConnRef,
        pkt: dt_net::WritePacket,
        timeout: Duration,
        cb: impl FnOnce(Result<dt_net::ReadPacket, dt_net::NetError>) + Send + 'static,
    ) {
        self.nio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send_request_cb(conn, pkt, timeout, cb);
    }

    /// Sends a one-way request to a client connected on the service port (e.g.
    /// DTKV_LOCK_PUSH).
    pub fn push_one_way(
        &self,
        conn: dt_net::ConnRef,
        pkt: dt_net::WritePacket,
        timeout: Duration,
    ) -> Result<(), dt_net::NetError> {
        self.nio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send_one_way(conn, pkt, timeout)
    }

    /// The most recent live service-port connection of the client with this handshake
    /// identity.
    pub fn conn_of(&self, pi: dt_net::ProcessInfo) -> Option<dt_net::ConnRef> {
        self.nio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conn_of(pi)
    }

    /// The checks of a client command (`raft.md` §2), to run first in its processor.
    pub fn service_gate(&self) -> ServiceGate {
        ServiceGate {
            shared: self.shared.clone(),
        }
    }

    /// [`ServiceGate::check`] of this server.
    pub fn check_service_request(&self, ctx: &dt_net::ReqContext) -> Option<dt_net::WritePacket> {
        self.service_gate().check(ctx)
    }

    /// The shared blocking-IO pool (`block_io_threads` threads) for the groups' file work:
    /// hand it to the factory's logs (e.g.
    /// [`DefaultRaftFactory::new`](crate::sm::DefaultRaftFactory::new)). Its threads end
    /// when the last holder drops it.
    pub fn block_io(&self) -> Arc<crate::raft_log::ThreadPoolIo> {
        self.block_io.clone()
    }

    /// The fsync group commit of the groups' logs (one `syncfs` for many groups'
    /// appends; see [`FsyncBatcher`](crate::store::fsync_batcher::FsyncBatcher)), or
    /// `None` when `batch_fsync` is off. Groups added through
    /// [`RaftGroups`](crate::server::RaftGroups) get it in their configuration.
    pub fn fsync_batcher(&self) -> Option<Arc<crate::store::fsync_batcher::FsyncBatcher>> {
        self.fsync_batcher.clone()
    }

    /// Sets the hook run after a node was added or removed and after a group was added
    /// or removed at run time (the reference's persist-config task: a bootstrap writes
    /// its configuration files there). Runs on a server thread; keep it short.
    pub fn set_persist_config_hook(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.shared.persist_config.set(Arc::new(hook));
    }

    /// The state shared with the processors (node table, use counts, hooks).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Sets the start hooks of the group layer (before [`RaftServer::start`]).
    pub fn set_start_hooks(&self, h: Arc<dyn StartHooks>) {
        let _ = self.hooks.set(h);
    }

    /// Sets the handler of ADMIN_ADD_GROUP / ADMIN_REMOVE_GROUP (without one they
    /// answer SYS_ERROR "not supported", as the reference's default factory does).
    pub fn set_group_admin(&self, a: Arc<dyn GroupAdmin>) {
        let _ = self.shared.group_admin.set(a);
    }

    /// The group with this id.
    pub fn group(&self, group_id: i32) -> Option<GroupRef> {
        self.shared.groups.get(group_id)
    }

    /// All group ids, ascending.
    pub fn group_ids(&self) -> Vec<i32> {
        self.shared.groups.ids()
    }

    /// All groups.
    pub fn groups(&self) -> Vec<GroupRef> {
        self.shared.groups.snapshot().values().cloned().collect()
    }

    /// Registers a group: checks that its nodes exist, counts their use, and adds it to
    /// the table (requests for it are routed from now on). Fails for an existing id.
    pub fn add_group_entry(&self, g: GroupRef) -> Result<(), RaftServerError> {
        let id = g.group_id();
        let m = g.member_ids();
        let mut all: Vec<i32> = m.sets().iter().flat_map(|s| s.iter().copied()).collect();
        all.dedup();
        self.shared
            .nodes
            .check_nodes(&all)
            .map_err(|e| RaftServerError::Group {
                group_id: id,
                reason: e.to_string(),
            })?;
        if self.shared.groups.insert_new(id, g).is_err() {
            return Err(RaftServerError::Group {
                group_id: id,
                reason: format!("group already exist: {id}"),
            });
        }
        self.shared.sync_use_counts(id, Some(&m));
        if *self.phase.lock().unwrap_or_else(|p| p.into_inner()) == Phase::Running {
            self.shared.run_persist_config();
        }
        Ok(())
    }

    /// Removes a group entry (if the table still holds this very entry) and releases
    /// its nodes' use counts. Returns whether it was removed.
    pub fn remove_group_entry(&self, g: &GroupRef) -> bool {
        let removed = self.shared.groups.remove_if_same(g.group_id(), g);
        if removed {
            self.pinger.remove_group(g.group_id());
            self.shared.sync_use_counts(g.group_id(), None);
            self.shared.run_persist_config();
        }
        removed
    }

    /// The bound replicate address.
    pub fn replicate_addr(&self) -> Option<std::net::SocketAddr> {
        self.nio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .local_addrs()
            .first()
            .copied()
    }

    /// The bound service port (0 when there is none or before start).
    pub fn service_port(&self) -> u16 {
        self.shared.service_port.load(Ordering::Acquire) as u16
    }

    /// Whether the whole server is group ready (service port open to clients).
    pub fn is_group_ready(&self) -> bool {
        self.shared.group_ready.load(Ordering::Acquire)
    }

    /// Whether [`RaftServer::start`] has been called.
    pub fn is_started(&self) -> bool {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) != Phase::Created
    }

    /// Whether stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Starts the server (§14.2): binds both ports, starts the replicate client, registers
    /// the nodes and runs the self check (errors here are returned), then continues in
    /// the background: group inits ([`StartHooks::wait_groups_init`]), node pings,
    /// node-ping ready, raft pings of every group, every group ping-ready, group ready
    /// ([`StartHooks::wait_groups_ready`]). Watch it with [`RaftServer::wait_group_ready`].
    pub fn start(&self) -> Result<(), RaftServerError> {
        {
            let mut ph = self.phase.lock().unwrap_or_else(|p| p.into_inner());
            if *ph != Phase::Created {
                return Err(RaftServerError::BadState(
                    "start called twice or after stop",
                ));
            }
            *ph = Phase::Running;
        }
        let r = self.start_sync();
        if let Err(e) = r {
            self.stop(Duration::from_millis(100));
            return Err(e);
        }
        let me = self
            .self_ref
            .get()
            .and_then(|w| w.upgrade())
            .ok_or(RaftServerError::BadState(
                "server not built by RaftServer::new",
            ))?;
        let th = std::thread::Builder::new()
            .name(format!("raft-start-{}", self.cfg.node_id))
            .spawn(move || {
                let r = me.start_async();
                let (m, c) = &*me.progress;
                let mut p = m.lock().unwrap_or_else(|p| p.into_inner());
                p.done = true;
                match r {
                    Ok(()) => {
                        me.shared.group_ready.store(true, Ordering::Release);
                        log::info!("raft server {}: all group ready", me.cfg.node_id);
                    }
                    Err(e) => {
                        log::error!("raft server {}: start failed: {e}", me.cfg.node_id);
                        p.error = Some(e.to_string());
                    }
                }
                c.notify_all();
            })?;
        *self.starter.lock().unwrap_or_else(|p| p.into_inner()) = Some(th);
        Ok(())
    }

    fn start_sync(&self) -> Result<(), RaftServerError> {
        {
            let mut nio = self.nio.lock().unwrap_or_else(|p| p.into_inner());
            nio.start()?;
            if self.cfg.service_port != 0 {
                let addrs = nio.local_addrs();
                if let Some(a) = addrs.get(1) {
                    self.shared
                        .service_port
                        .store(u32::from(a.port()), Ordering::Release);
                }
            }
        }
        self.shared.nodes.register_peers()?;
        if self.cfg.check_self {
            self.shared.nodes.check_self()?;
        }
        Ok(())
    }

    fn start_async(&self) -> Result<(), RaftServerError> {
        let hooks = self.hooks.get().cloned();
        if let Some(h) = &hooks {
            h.wait_groups_init(self)?;
        }
        self.check_running()?;
        self.shared.nodes.start_ping()?;
        loop {
            if self
                .shared
                .nodes
                .wait_ping_ready(Duration::from_millis(200))
            {
                break;
            }
            self.check_running()?;
        }
        self.pinger.start()?;
        for g in self.groups() {
            self.pinger.add_group(g);
        }
        loop {
            if self.pinger.wait_all_ready(Duration::from_millis(200)) {
                break;
            }
            self.check_running()?;
        }
        log::info!(
            "raft server {}: all group members ping ready",
            self.cfg.node_id
        );
        if let Some(h) = &hooks {
            h.wait_groups_ready(self)?;
        }
        self.check_running()
    }

    /// Starts the raft pings of a group (done for all groups by the start sequence; call
    /// it for a group added at run time once its init finished).
    pub fn start_member_ping(&self, group_id: i32) -> Result<(), RaftServerError> {
        let g = self.group(group_id).ok_or(RaftServerError::Group {
            group_id,
            reason: "group not found".into(),
        })?;
        self.pinger.start()?;
        self.pinger.add_group(g);
        Ok(())
    }

    /// Whether a group's members reached ping-ready (`None` before its pings started).
    pub fn is_member_ping_ready(&self, group_id: i32) -> Option<bool> {
        self.pinger.is_ping_ready(group_id)
    }

    /// The raft ping's verdict on member `node` of a group (`None` if unknown).
    pub fn is_member_ready(&self, group_id: i32, node: i32) -> Option<bool> {
        self.pinger.is_member_ready(group_id, node)
    }

    fn check_running(&self) -> Result<(), RaftServerError> {
        if self.is_stopping() {
            Err(RaftServerError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Waits until the server is group ready (Ok), its start failed, it stopped, or
    /// `timeout` passed.
    pub fn wait_group_ready(&self, timeout: Duration) -> Result<(), RaftServerError> {
        let end = Instant::now() + timeout;
        let (m, c) = &*self.progress;
        let mut p = m.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if p.done {
                return match &p.error {
                    None => Ok(()),
                    Some(e) => Err(RaftServerError::StartFailed(e.clone())),
                };
            }
            if self.is_stopping() {
                return Err(RaftServerError::Stopped);
            }
            let now = Instant::now();
            if now >= end {
                return Err(RaftServerError::Timeout("group ready"));
            }
            p = c
                .wait_timeout(p, (end - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Stops the server (§14.7): answers service requests STOPPING, stops the groups
    /// (through [`GroupStopper`] when set) and waits for them within `timeout`, then stops
    /// the node pings, the NioServer, the client and the business thread.
    pub fn stop(&self, timeout: Duration) {
        {
            let mut ph = self.phase.lock().unwrap_or_else(|p| p.into_inner());
            if *ph == Phase::Stopped {
                return;
            }
            *ph = Phase::Stopped;
        }
        let end = Instant::now() + timeout;
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(s) = self.stopper.get() {
            s.stop_groups(self, timeout);
        }
        self.progress.1.notify_all();
        self.pinger.stop();
        self.shared.nodes.stop();
        let left = end.saturating_duration_since(Instant::now());
        self.nio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop(left);
        let left = end.saturating_duration_since(Instant::now());
        self.client.stop(left);
        self.biz.stop();
        let th = self
            .starter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(th) = th {
            let _ = th.join();
        }
    }

    /// Sets what stops the groups at server stop (before [`RaftServer::start`]).
    pub fn set_group_stopper(&self, s: Arc<dyn GroupStopper>) {
        let _ = self.stopper.set(s);
    }
}

impl Drop for RaftServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(1));
    }
}

/// Stops every group at server stop (saving a snapshot if configured) and waits for them
/// within the timeout; implemented by the group layer.
pub trait GroupStopper: Send + Sync + 'static {
    /// Stops all groups of `server`, waiting at most `timeout`.
    fn stop_groups(&self, server: &RaftServer, timeout: Duration);
}

/// The checks of a client (service-port) command, cheap to clone into a processor:
/// a client command on the replicate port is COMMAND_NOT_SUPPORT, before the server is
/// group ready NOT_INIT, once it stops STOPPING.
#[derive(Clone)]
pub struct ServiceGate {
    shared: Arc<Shared>,
}

impl fmt::Debug for ServiceGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceGate(node {})", self.shared.node_id)
    }
}

impl ServiceGate {
    /// `None` when the request may proceed, else the answer to send.
    pub fn check(&self, ctx: &dt_net::ReqContext) -> Option<dt_net::WritePacket> {
        use dt_net::{CmdCodes, WritePacket};
        let sp = self.shared.service_port.load(Ordering::Acquire);
        if sp == 0 || u32::from(ctx.local_port()) != sp {
            return Some(WritePacket::error(
                CmdCodes::COMMAND_NOT_SUPPORT,
                "command not supported on this port",
            ));
        }
        if !self.shared.group_ready.load(Ordering::Acquire) {
            return Some(WritePacket::error(
                CmdCodes::NOT_INIT,
                "raft server not ready",
            ));
        }
        if self.shared.stopping.load(Ordering::Acquire) {
            return Some(WritePacket::error(
                CmdCodes::STOPPING,
                "raft server shutdown",
            ));
        }
        None
    }
}
