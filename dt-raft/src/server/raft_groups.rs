//! [`RaftGroups`]: the server's Raft groups built by a [`RaftFactory`] and run by the
//! fiber driver ([`RaftGroup`]): creation at construction and at run time
//! (ADMIN_ADD_GROUP), the group steps of the start sequence (init, group ready), removal
//! (ADMIN_REMOVE_GROUP) and stop, and the mapping of groups onto dispatcher threads.
//!
//! Groups go onto a fixed set of dispatchers round-robin
//! ([`GroupsOptions::dispatchers`]), or one dispatcher per group (`0`, the reference's
//! default factory).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use dt_fiber::{Dispatcher, DispatcherConfig};
use dt_net::{CmdCodes, ReqContext, WriteBody, WritePacket};

use super::config::parse_member_ids;
use super::group::{GroupState, MemberIds, MembershipToken, ServerGroup};
use super::inbound::GroupRequest;
use super::inbox::{deliver_to_inbox, raft_error_packet};
use super::processors::GroupAdmin;
use super::raft_server::{GroupStopper, RaftServer, RaftServerError, StartHooks};
use super::transport::NioRaftTransport;
use crate::core::Role;
use crate::driver::{ConfigChange, DriverOptions, RaftGroup, RaftGroupConfig, RaftTransport};
use crate::rpc::AdminAddGroupReq;
use crate::sm::{RaftFactory, StateMachine};

/// How [`RaftGroups`] runs its groups.
#[derive(Debug, Clone, Default)]
pub struct GroupsOptions {
    /// Dispatcher threads shared by all groups, round-robin; 0 = one per group.
    pub dispatchers: usize,
}

/// The output type of a factory's state machine.
pub type FactoryOutput<F> = <<F as RaftFactory>::Sm as StateMachine>::Output;

/// A group as the server routes to it: the driver's handle plus the server's view.
struct DriverGroup<O: Send + 'static> {
    group: RaftGroup<O>,
    raft_ping_check: i32,
    stopping: AtomicBool,
    /// Init finished (it never goes back): requests skip reading the status after.
    init_seen: AtomicBool,
    /// The dispatcher owned by this group alone (one-per-group mode).
    own_dispatcher: Mutex<Option<Dispatcher>>,
    /// The server, for the ping-ready gate of the admin commands.
    server: Weak<RaftServer>,
}

impl<O: Send + 'static> ServerGroup for DriverGroup<O> {
    fn group_id(&self) -> i32 {
        self.group.group_id()
    }

    fn state(&self) -> GroupState {
        if self.stopping.load(Ordering::Acquire) || self.group.fiber_group().should_stop() {
            return GroupState::Stopping;
        }
        if self.init_seen.load(Ordering::Relaxed) {
            return GroupState::Running;
        }
        if self.group.status().init_finished {
            self.init_seen.store(true, Ordering::Relaxed);
            GroupState::Running
        } else {
            GroupState::NotInit
        }
    }

    fn member_ids(&self) -> MemberIds {
        let s = self.group.status();
        let v = |x: &[u32]| x.iter().map(|i| *i as i32).collect();
        MemberIds {
            members: v(&s.members.members),
            observers: v(&s.members.observers),
            prepared_members: v(&s.members.prepared_members),
            prepared_observers: v(&s.members.prepared_observers),
        }
    }

    fn log_config_nodes(&self) -> Vec<i32> {
        let s = self.group.status();
        s.log_config_nodes.iter().map(|i| *i as i32).collect()
    }

    fn membership_token(&self) -> Option<MembershipToken> {
        // both answers come from the published status, replaced (never changed in
        // place) when anything in it moves
        Some(self.group.status())
    }

    fn raft_ping_check(&self) -> i32 {
        self.raft_ping_check
    }

    fn set_member_ready(&self, node: i32, ready: bool) {
        if let Ok(n) = u32::try_from(node) {
            self.group.inbox().set_member_ready(n, ready);
        }
    }

    fn deliver(&self, req: GroupRequest, ctx: ReqContext) -> Option<WritePacket> {
        let admin = matches!(
            req,
            GroupRequest::AdminTransferLeader(_)
                | GroupRequest::PrepareChange(_)
                | GroupRequest::CommitChange(_)
                | GroupRequest::AbortChange(_)
        );
        if admin && !self.ping_ready() {
            // raft.md §10.1, §11.3, §16.5: admin commands wait for ping-ready
            return Some(WritePacket::error(
                CmdCodes::SYS_ERROR,
                format!("not initialized: group {}", self.group.group_id()),
            ));
        }
        match req {
            GroupRequest::AdminTransferLeader(r) => {
                let Ok(to) = u32::try_from(r.new_leader_id) else {
                    return Some(WritePacket::error(
                        CmdCodes::SYS_ERROR,
                        format!("bad new leader id {}", r.new_leader_id),
                    ));
                };
                let left = ctx.deadline().deadline_nanos() - dt_common::mono_nanos();
                let timeout = Duration::from_nanos(left.max(1_000_000) as u64);
                let resp = ctx.responder();
                // The driver answers when the transfer ends (at the latest at its
                // deadline), on the group's thread: no thread waits for it.
                self.group
                    .transfer_leadership_cb(to, timeout, move |r| match r {
                        Ok(()) => resp.respond(WritePacket::response(WriteBody::Empty)),
                        Err(e) => {
                            if let Some(p) = raft_error_packet(&e) {
                                resp.respond(p)
                            }
                        }
                    });
                None
            }
            GroupRequest::PrepareChange(r) => {
                let ids = |v: &[i32]| -> Result<Vec<u32>, String> {
                    v.iter()
                        .map(|&i| u32::try_from(i).map_err(|_| format!("node not exist: {i}")))
                        .collect()
                };
                let change = (|| {
                    Ok::<_, String>(ConfigChange::Prepare {
                        members: ids(&r.members)?,
                        observers: ids(&r.observers)?,
                        prepared_members: ids(&r.prepared_members)?,
                        prepared_observers: ids(&r.prepared_observers)?,
                    })
                })();
                match change {
                    Ok(c) => self.config_change(c, ctx),
                    Err(e) => Some(WritePacket::error(CmdCodes::SYS_ERROR, e)),
                }
            }
            GroupRequest::CommitChange(r) => {
                let Ok(prepare_index) = u64::try_from(r.prepare_index) else {
                    return Some(WritePacket::error(
                        CmdCodes::SYS_ERROR,
                        format!("bad prepareIndex {}", r.prepare_index),
                    ));
                };
                self.config_change(ConfigChange::Commit { prepare_index }, ctx)
            }
            GroupRequest::AbortChange(_) => self.config_change(ConfigChange::Abort, ctx),
            other => deliver_to_inbox(self.group.inbox(), other, ctx),
        }
    }
}

impl<O: Send + 'static> DriverGroup<O> {
    /// The group's member pings reached ping-ready (it never goes back).
    fn ping_ready(&self) -> bool {
        self.server
            .upgrade()
            .is_some_and(|s| s.is_member_ping_ready(self.group.group_id()) == Some(true))
    }

    /// RAFT_ADMIN_PREPARE / COMMIT / ABORT_CHANGE (raft.md §11.3): answered with the
    /// entry's index (field 1 fixed64) once applied, or the refusal (NOT_RAFT_LEADER
    /// with the hint, SYS_ERROR with the reason).
    fn config_change(&self, change: ConfigChange, ctx: ReqContext) -> Option<WritePacket> {
        let resp = ctx.responder();
        self.group.config_change(change, move |r| match r {
            Ok(index) => resp.respond(WritePacket::response(WriteBody::Encodable(Box::new(
                dt_codec::PbLong(index as i64),
            )))),
            Err(e) => {
                if let Some(p) = raft_error_packet(&e) {
                    resp.respond(p)
                }
            }
        });
        None
    }
}

struct Inner<O: Send + 'static> {
    groups: HashMap<i32, (RaftGroup<O>, Arc<DriverGroup<O>>)>,
    shared_dispatchers: Vec<Dispatcher>,
    next: usize,
}

/// The Raft groups of one [`RaftServer`], built by a [`RaftFactory`].
///
/// [`RaftGroups::install`] creates the configured groups and plugs into the server (its
/// start sequence, stop, and ADD_GROUP / REMOVE_GROUP); [`RaftGroups::group`] gives the
/// typed [`RaftGroup`] handle to submit writes, read, transfer leadership.
pub struct RaftGroups<F: RaftFactory> {
    server: Weak<RaftServer>,
    factory: Arc<F>,
    opts: GroupsOptions,
    inner: Mutex<Inner<FactoryOutput<F>>>,
    me: std::sync::OnceLock<Weak<RaftGroups<F>>>,
    /// Bumped after every change of `inner.groups` (see [`RaftGroups::generation`]).
    generation: std::sync::atomic::AtomicU64,
}

impl<F: RaftFactory> std::fmt::Debug for RaftGroups<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RaftGroups({:?})", self.ids())
    }
}

fn group_err(group_id: i32, reason: impl Into<String>) -> RaftServerError {
    RaftServerError::Group {
        group_id,
        reason: reason.into(),
    }
}

impl<F: RaftFactory> RaftGroups<F> {
    /// Creates the groups of `configs` on `server` (before [`RaftServer::start`]) and
    /// installs the start hooks, the stopper and the group admin. The server-level values
    /// of each config (node id, election timeout, heartbeat interval, rpc timeout) are
    /// taken from the server's configuration.
    pub fn install(
        server: &Arc<RaftServer>,
        factory: Arc<F>,
        configs: Vec<RaftGroupConfig>,
        opts: GroupsOptions,
    ) -> Result<Arc<RaftGroups<F>>, RaftServerError> {
        if server.is_started() {
            return Err(RaftServerError::BadState(
                "RaftGroups::install must come before RaftServer::start",
            ));
        }
        let me = Arc::new(RaftGroups {
            server: Arc::downgrade(server),
            factory,
            opts,
            inner: Mutex::new(Inner {
                groups: HashMap::new(),
                shared_dispatchers: Vec::new(),
                next: 0,
            }),
            me: std::sync::OnceLock::new(),
            generation: std::sync::atomic::AtomicU64::new(0),
        });
        let _ = me.me.set(Arc::downgrade(&me));
        let mut seen = std::collections::HashSet::new();
        for c in &configs {
            if !seen.insert(c.group_id) {
                return Err(RaftServerError::Config(
                    super::config::ServerConfigError::DuplicateGroupId(c.group_id),
                ));
            }
        }
        for c in configs {
            if let Err(e) = me.create(server, c) {
                // Undo the groups created so far: stopped and out of the server's table.
                let created: Vec<Arc<DriverGroup<FactoryOutput<F>>>> =
                    me.lock().groups.values().map(|g| g.1.clone()).collect();
                me.stop_groups(server, Duration::from_secs(5));
                for g in created {
                    let entry: Arc<dyn ServerGroup> = g;
                    server.remove_group_entry(&entry);
                }
                me.lock().groups.clear();
                me.bump_generation();
                return Err(e);
            }
        }
        server.set_start_hooks(me.clone());
        server.set_group_stopper(me.clone());
        server.set_group_admin(me.clone());
        Ok(me)
    }

    fn lock(&self) -> MutexGuard<'_, Inner<FactoryOutput<F>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump_generation(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// A number that changes after every change of the group table (a group added or
    /// removed), read without a lock: a per-thread cache of [`RaftGroups::group`]
    /// handles is current while this returns the value it was built at (build it after
    /// reading the value).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The typed handle of a group.
    pub fn group(&self, group_id: i32) -> Option<RaftGroup<FactoryOutput<F>>> {
        self.lock().groups.get(&group_id).map(|g| g.0.clone())
    }

    /// The group ids, ascending.
    pub fn ids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.lock().groups.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Creates, starts and registers one group (its init runs in its fibers).
    fn create(
        &self,
        server: &Arc<RaftServer>,
        mut cfg: RaftGroupConfig,
    ) -> Result<(), RaftServerError> {
        let gid = cfg.group_id;
        if self.lock().groups.contains_key(&gid) || server.group(gid).is_some() {
            return Err(group_err(gid, format!("group already exist: {gid}")));
        }
        let scfg = server.config();
        cfg.node_id = scfg.node_id as u32;
        cfg.elect_timeout_ms = scfg.elect_timeout.as_millis() as u64;
        cfg.heartbeat_interval_ms = scfg.heartbeat_interval.as_millis() as u64;
        cfg.rpc_timeout_ms = scfg.rpc_timeout.as_millis() as u64;
        if cfg.fsync_batcher.is_none() {
            cfg.fsync_batcher = server.fsync_batcher();
        }
        if cfg.members.is_empty() {
            return Err(group_err(gid, format!("no member in group: {gid}")));
        }
        if let Some(id) = cfg.members.iter().find(|m| cfg.observers.contains(m)) {
            return Err(group_err(
                gid,
                format!("member and observer has same node: {id}"),
            ));
        }
        let ids: Vec<i32> = cfg
            .members
            .iter()
            .chain(&cfg.observers)
            .map(|i| *i as i32)
            .collect();
        server
            .node_manager()
            .check_nodes(&ids)
            .map_err(|e| group_err(gid, e.to_string()))?;
        cfg.core_config()
            .map_err(|e| group_err(gid, format!("bad group config: {e}")))?;

        let name = format!("group-{gid}");
        let (handle, own) = if self.opts.dispatchers == 0 {
            let d = Dispatcher::start(dispatcher_config(format!("raft-{gid}"), &cfg))
                .map_err(|e| group_err(gid, e.to_string()))?;
            let h = d
                .start_group(&name)
                .map_err(|e| group_err(gid, e.to_string()))?;
            (h, Some(d))
        } else {
            let mut inner = self.lock();
            if inner.shared_dispatchers.is_empty() {
                for i in 0..self.opts.dispatchers {
                    let d =
                        Dispatcher::start(dispatcher_config(format!("raft-dispatcher-{i}"), &cfg))
                            .map_err(|e| group_err(gid, e.to_string()))?;
                    inner.shared_dispatchers.push(d);
                }
            }
            let i = inner.next % inner.shared_dispatchers.len();
            inner.next += 1;
            let h = inner.shared_dispatchers[i]
                .start_group(&name)
                .map_err(|e| group_err(gid, e.to_string()))?;
            (h, None)
        };
        let nodes = server.node_manager().clone();
        let timeout = scfg.rpc_timeout + Duration::from_millis(500);
        let raft_ping_check = cfg.raft_ping_check;
        let shared = Arc::downgrade(server.shared());
        let group = RaftGroup::start_with(&handle, self.factory.clone(), cfg, move || {
            let table = nodes.clone();
            let opts = DriverOptions {
                node_exists: Some(Rc::new(move |id| {
                    i32::try_from(id).is_ok_and(|id| table.node(id).is_some())
                })),
                config_hook: Some(Rc::new(move |sets, applied| {
                    let Some(sh) = shared.upgrade() else { return };
                    let v = |x: &[u32]| x.iter().map(|i| *i as i32).collect();
                    // §14.6: use counts follow the sets as each config entry applies
                    let ids = MemberIds {
                        members: v(&sets.members),
                        observers: v(&sets.observers),
                        prepared_members: v(&sets.prepared_members),
                        prepared_observers: v(&sets.prepared_observers),
                    };
                    sh.sync_use_counts(gid, Some(&ids));
                    if applied.persist_config {
                        // the hook may write files: never on the dispatcher thread
                        let spawned = std::thread::Builder::new()
                            .name("raft-persist-config".into())
                            .spawn(move || sh.run_persist_config());
                        if let Err(e) = spawned {
                            log::error!("group {gid}: persist config not run: {e}");
                        }
                    }
                })),
                ..Default::default()
            };
            (
                Rc::new(NioRaftTransport::new(nodes, timeout)) as Rc<dyn RaftTransport>,
                opts,
            )
        })
        .map_err(|e| group_err(gid, e.to_string()))?;
        let entry = Arc::new(DriverGroup {
            group: group.clone(),
            raft_ping_check,
            stopping: AtomicBool::new(false),
            init_seen: AtomicBool::new(false),
            own_dispatcher: Mutex::new(own),
            server: Arc::downgrade(server),
        });
        if let Err(e) = server.add_group_entry(entry.clone()) {
            group.shutdown();
            stop_own_dispatcher(&entry, Duration::from_secs(1));
            return Err(e);
        }
        self.lock().groups.insert(gid, (group, entry));
        self.bump_generation();
        Ok(())
    }

    fn entries(&self) -> Vec<(i32, RaftGroup<FactoryOutput<F>>)> {
        let mut v: Vec<_> = self
            .lock()
            .groups
            .iter()
            .map(|(k, g)| (*k, g.0.clone()))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    fn wait_init(
        server: &RaftServer,
        gid: i32,
        g: &RaftGroup<FactoryOutput<F>>,
    ) -> Result<(), RaftServerError> {
        loop {
            let s = g.status();
            if let Some(e) = &s.init_failed {
                return Err(group_err(gid, format!("init failed: {e}")));
            }
            if s.init_finished {
                return Ok(());
            }
            if server.is_stopping() || g.fiber_group().is_finished() {
                return Err(RaftServerError::Stopped);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn stop_own_dispatcher<O: Send + 'static>(g: &DriverGroup<O>, timeout: Duration) {
    let d = g
        .own_dispatcher
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(d) = d {
        d.stop(timeout);
    }
}

impl<F: RaftFactory> StartHooks for RaftGroups<F> {
    fn wait_groups_init(&self, server: &RaftServer) -> Result<(), RaftServerError> {
        for (gid, g) in self.entries() {
            Self::wait_init(server, gid, &g)?;
        }
        Ok(())
    }

    fn wait_groups_ready(&self, server: &RaftServer) -> Result<(), RaftServerError> {
        for (gid, g) in self.entries() {
            loop {
                let s = g.status();
                if s.role == Role::None || s.group_ready {
                    break;
                }
                if server.is_stopping() {
                    return Err(RaftServerError::Stopped);
                }
                if g.fiber_group().is_finished() {
                    return Err(group_err(gid, "group stopped before it was ready"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }
}

impl<F: RaftFactory> GroupStopper for RaftGroups<F> {
    fn stop_groups(&self, _server: &RaftServer, timeout: Duration) {
        let end = Instant::now() + timeout;
        let all: Vec<_> = self.lock().groups.values().cloned().collect();
        for (g, e) in &all {
            e.stopping.store(true, Ordering::Release);
            g.shutdown();
        }
        for (g, e) in &all {
            let left = end.saturating_duration_since(Instant::now());
            if !g.wait_stopped(left) {
                log::warn!("group {} did not stop within the timeout", g.group_id());
            }
            stop_own_dispatcher(e, end.saturating_duration_since(Instant::now()));
        }
        let shared: Vec<Dispatcher> = std::mem::take(&mut self.lock().shared_dispatchers);
        for d in shared {
            d.stop(end.saturating_duration_since(Instant::now()));
        }
    }
}

impl<F: RaftFactory> GroupAdmin for RaftGroups<F> {
    fn add_group(&self, req: &AdminAddGroupReq) -> Result<(), String> {
        let server = self.server.upgrade().ok_or("raft server is not running")?;
        if server.is_stopping() {
            return Err("raft server is not running".into());
        }
        let gid = req.group_id;
        if server.group(gid).is_some() {
            return Err(format!("group already exist: {gid}"));
        }
        let all: std::collections::HashSet<i32> = server
            .node_manager()
            .list_nodes()
            .iter()
            .map(|n| n.node_id)
            .collect();
        let to_u32 = |v: Vec<i32>| -> Result<Vec<u32>, String> {
            v.into_iter()
                .map(|i| u32::try_from(i).map_err(|_| format!("bad node id {i}")))
                .collect()
        };
        let members = parse_member_ids(gid, &req.node_id_of_members, &all)
            .map_err(|e| e.to_string())
            .and_then(to_u32)?;
        let observers = parse_member_ids(gid, &req.node_id_of_observers, &all)
            .map_err(|e| e.to_string())
            .and_then(to_u32)?;
        let cfg = self
            .factory
            .create_config(gid, &members, &observers)
            .map_err(|e| e.to_string())?;
        self.create(&server, cfg).map_err(|e| e.to_string())?;
        log::info!("group {gid} added");
        // The raft pings of the new group start once its init finished.
        let g = self.group(gid).ok_or("group vanished")?;
        let weak = self.server.clone();
        let _ = std::thread::Builder::new()
            .name(format!("raft-add-group-{gid}"))
            .spawn(move || {
                let Some(server) = weak.upgrade() else {
                    return;
                };
                match Self::wait_init(&server, gid, &g) {
                    Ok(()) => {
                        if let Err(e) = server.start_member_ping(gid) {
                            log::warn!("group {gid}: raft ping not started: {e}");
                        }
                    }
                    Err(e) => log::error!("add group init fail: {e}"),
                }
            });
        Ok(())
    }

    fn remove_group(&self, group_id: i32, timeout: Duration) -> Result<(), String> {
        let server = self.server.upgrade().ok_or("raft server is not running")?;
        let Some((g, e)) = self.lock().groups.get(&group_id).cloned() else {
            log::warn!("group {group_id} not exist");
            return Ok(());
        };
        if server.is_stopping() {
            return Err("raft server is not running".into());
        }
        if e.stopping.swap(true, Ordering::AcqRel) {
            log::warn!("group {group_id} is stopping");
            return Ok(());
        }
        g.shutdown();
        let weak_server = self.server.clone();
        let weak_me = self.me.get().cloned().unwrap_or_default();
        // Removal from the tables happens once the group has stopped; the reply goes now.
        std::thread::Builder::new()
            .name(format!("raft-remove-group-{group_id}"))
            .spawn(move || {
                if !g.wait_stopped(timeout) {
                    log::warn!("group {group_id} did not stop within {timeout:?}");
                }
                stop_own_dispatcher(&e, Duration::from_secs(1));
                let entry: Arc<dyn ServerGroup> = e.clone();
                if let Some(server) = weak_server.upgrade() {
                    server.remove_group_entry(&entry);
                }
                if let Some(me) = weak_me.upgrade() {
                    let mut inner = me.lock();
                    if inner
                        .groups
                        .get(&group_id)
                        .is_some_and(|(_, cur)| Arc::ptr_eq(cur, &e))
                    {
                        inner.groups.remove(&group_id);
                        drop(inner);
                        me.bump_generation();
                    }
                }
                log::info!("group {group_id} removed");
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A dispatcher named `name` reporting its loop (`FiberWork`, `FiberPoll`) and fiber
/// runs to `cfg.perf`, as the reference's factory gives a group's dispatcher the
/// group's perf callback, on the CPUs of `cfg.dispatcher_cpus`. Shared dispatchers
/// take the hook and the CPUs of the group that started them.
fn dispatcher_config(name: String, cfg: &RaftGroupConfig) -> DispatcherConfig {
    let mut d = DispatcherConfig::new(name);
    d.perf = cfg.perf.shared();
    d.cpus = cfg.dispatcher_cpus;
    d
}
