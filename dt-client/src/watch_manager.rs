//! [`WatchManager`]: the networked watch client (`wire-protocol.md` §6.7.3). It drives
//! a [`WatchClient`] (which keys, what was last seen for each) over the network:
//! chooses a healthy server per group, sends DTKV_SYNC_WATCH, answers the server's
//! DTKV_WATCH_NOTIFY_PUSH, checks the server with DTKV_QUERY_STATUS, and hands events to
//! the application's listener.
//!
//! ## What it guarantees
//!
//! * For each key, events are delivered in increasing raft index order, never twice and
//!   never backwards, also across a reconnect, a server switch or a leader change: the
//!   client records the last index it delivered per key and re-registers every key with
//!   that index (`sync_all`), so a new server sends only newer states.
//! * An event is the key's **current** state: several changes may come as one event
//!   (intermediate values are not guaranteed), and the latest state of every watched
//!   key is eventually delivered while the cluster can serve.
//! * Events are delivered one at a time, in arrival order, on the executor the
//!   application chose ([`WatchManager::set_listener`]); a listener is never called
//!   concurrently with itself.
//!
//! ## When it re-syncs
//!
//! A full re-sync (`sync_all`, every key with its last index) goes to a (re)selected
//! server after a failed sync, when the connection to the watch server is down, when
//! the server is no longer healthy (group not ready, no leader, applying late) and when
//! DTKV_QUERY_STATUS shows fewer watches on the connection than the client has (the
//! server lost them: a reconnect or a restart). The status check runs every
//! [`WatchManager::set_check_interval`] (60 s by default, the reference's keep-alive).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_codec::encode;
use dt_common::Executor;
use dt_net::{FnProcessor, NioClient, ReadPacket, WriteBody, WritePacket};

use crate::kv::{
    KvBody, KvCommands, KvError, KvStatusResp, WatchClient, WatchEvent, WatchNotifyReq,
};
use crate::raft::client::Inner;
use crate::raft::{group_body, QueryStatus, RaftClient};

/// The application's watch listener.
pub type WatchListener = Arc<dyn Fn(WatchEvent) + Send + Sync>;

type ListenerOn = (WatchListener, Option<Arc<dyn Executor>>);

#[derive(Default)]
struct GroupSel {
    server: Option<i32>,
    syncing: bool,
    selecting: bool,
    fails: HashMap<i32, u32>,
}

#[derive(Default)]
struct State {
    client: WatchClient,
    groups: HashMap<i32, GroupSel>,
}

struct Shared {
    state: Mutex<State>,
    raft: OnceLock<Weak<Inner>>,
    listener: Mutex<Option<ListenerOn>>,
    dispatching: AtomicBool,
    check_interval: Mutex<Duration>,
    stopped: AtomicBool,
}

/// Watches of a [`crate::KvClient`]: see the module docs for what it guarantees.
pub struct WatchManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WatchManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WatchManager")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The period of the housekeeping tick (connection check, re-sync retries).
const TICK: Duration = Duration::from_millis(500);

impl WatchManager {
    /// A manager and the registration of its push processor (run it on the network
    /// client before it starts); then [`WatchManager::attach`] it to the Raft client.
    pub(crate) fn prepare() -> (WatchManager, impl FnOnce(&mut NioClient)) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            raft: OnceLock::new(),
            listener: Mutex::new(None),
            dispatching: AtomicBool::new(false),
            check_interval: Mutex::new(Duration::from_secs(60)),
            stopped: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&shared);
        let register = move |nio: &mut NioClient| {
            nio.register(
                KvCommands::DTKV_WATCH_NOTIFY_PUSH,
                FnProcessor(move |pkt: &ReadPacket, _ctx: &dt_net::ReqContext| {
                    let shared = weak.upgrade()?;
                    Some(shared.on_push(pkt))
                }),
            );
        };
        (WatchManager { shared }, register)
    }

    pub(crate) fn attach(&self, raft: &RaftClient) {
        let _ = self.shared.raft.set(Arc::downgrade(&raft.inner));
        Shared::schedule_tick(&self.shared, Instant::now() + TICK, Instant::now());
    }

    /// Sets the listener and where it runs: on `executor` (a thread pool, a fiber
    /// group...), or, with `None`, on a thread the manager starts for each batch of
    /// events. Events already queued are delivered to it.
    pub fn set_listener(
        &self,
        listener: impl Fn(WatchEvent) + Send + Sync + 'static,
        executor: Option<Arc<dyn Executor>>,
    ) {
        *lock(&self.shared.listener) = Some((Arc::new(listener), executor));
        self.shared.dispatch();
    }

    /// How often the watch server of each group is checked with DTKV_QUERY_STATUS
    /// (60 s by default; the reference's keep-alive).
    pub fn set_check_interval(&self, every: Duration) {
        *lock(&self.shared.check_interval) = every.max(TICK);
    }

    /// Starts watching keys (values or directories) of a group; the server pushes
    /// their current state at once, then every change.
    pub fn add_watch(&self, group_id: i32, keys: &[&str]) -> Result<(), KvError> {
        let keys: Vec<Bytes> = keys
            .iter()
            .map(|k| Bytes::copy_from_slice(k.as_bytes()))
            .collect();
        lock(&self.shared.state).client.add_watch(group_id, &keys)?;
        self.shared.sync(group_id);
        Ok(())
    }

    /// Stops watching keys.
    pub fn remove_watch(&self, group_id: i32, keys: &[&str]) -> Result<(), KvError> {
        let keys: Vec<Bytes> = keys
            .iter()
            .map(|k| Bytes::copy_from_slice(k.as_bytes()))
            .collect();
        lock(&self.shared.state)
            .client
            .remove_watch(group_id, &keys)?;
        self.shared.sync(group_id);
        Ok(())
    }

    /// The keys watched in a group.
    pub fn watched(&self, group_id: i32) -> Vec<Bytes> {
        lock(&self.shared.state).client.watched(group_id)
    }

    /// The node the group's watches are registered on, if one is chosen.
    pub fn watch_server(&self, group_id: i32) -> Option<i32> {
        lock(&self.shared.state)
            .groups
            .get(&group_id)
            .and_then(|g| g.server)
    }

    /// Removes every watch from the servers (best effort) and stops the manager.
    pub(crate) fn stop(&self, raft: &RaftClient, timeout: Duration) {
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let (reqs, servers) = {
            let mut st = lock(&self.shared.state);
            let servers: HashMap<i32, i32> = st
                .groups
                .iter()
                .filter_map(|(g, s)| s.server.map(|n| (*g, n)))
                .collect();
            (st.client.remove_all(), servers)
        };
        let mut futs = Vec::new();
        for r in reqs {
            if let Some(&node) = servers.get(&r.group_id) {
                let (p, f) = crate::kv_channel::<()>();
                raft.send_to_node(
                    node,
                    KvCommands::DTKV_SYNC_WATCH,
                    encode::to_bytes(&r),
                    timeout,
                    move |r| p.complete(r.map(|_| ())),
                );
                futs.push(f);
            }
        }
        for f in futs {
            let _ = f.wait();
        }
    }
}

impl Drop for WatchManager {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
    }
}

impl Shared {
    fn raft(&self) -> Option<Arc<Inner>> {
        self.raft.get().and_then(Weak::upgrade)
    }

    fn on_push(self: &Arc<Self>, pkt: &ReadPacket) -> WritePacket {
        let req = match WatchNotifyReq::decode(&pkt.body) {
            Ok(r) => r,
            Err(e) => {
                return WritePacket::error(dt_net::CmdCodes::CLIENT_ERROR, e.to_string());
            }
        };
        let (code, resp) = lock(&self.state).client.on_push(&req);
        let mut out = WritePacket::response(match resp {
            Some(r) => WriteBody::Bytes(encode::to_bytes(&r)),
            None => WriteBody::Empty,
        });
        out.biz_code = code.code();
        self.dispatch();
        out
    }

    /// Delivers queued events, one drain at a time, on the listener's executor.
    fn dispatch(self: &Arc<Self>) {
        let Some((listener, exec)) = lock(&self.listener).clone() else {
            return;
        };
        if self.dispatching.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        let task: Box<dyn FnOnce() + Send> = Box::new(move || loop {
            let ev = lock(&me.state).client.take_event();
            match ev {
                Some(ev) => {
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener(ev)))
                        .is_err()
                    {
                        log::error!("watch listener panicked");
                    }
                }
                None => {
                    me.dispatching.store(false, Ordering::Release);
                    // An event queued between the last take and the flag: drain again.
                    if lock(&me.state).client.has_events() {
                        me.dispatch();
                    }
                    return;
                }
            }
        });
        let refused = match exec {
            Some(e) => e.execute(task).err().map(|_| ()),
            None => std::thread::Builder::new()
                .name("dt-watch-listener".into())
                .spawn(task)
                .err()
                .map(|_| ()),
        };
        if refused.is_some() {
            log::warn!("watch listener executor refused a task; retrying on the next event");
            self.dispatching.store(false, Ordering::Release);
        }
    }

    /// Sends the next DTKV_SYNC_WATCH of a group (selecting a server first if needed).
    fn sync(self: &Arc<Self>, group_id: i32) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let Some(raft) = self.raft() else { return };
        let next = {
            let mut guard = lock(&self.state);
            let st = &mut *guard;
            let g = st.groups.entry(group_id).or_default();
            if g.syncing || g.selecting {
                return;
            }
            match g.server {
                None => {
                    g.selecting = true;
                    None
                }
                Some(node) => {
                    let Some(req) = st.client.next_sync(group_id) else {
                        return;
                    };
                    g.syncing = true;
                    Some((node, req))
                }
            }
        };
        let Some((node, req)) = next else {
            return self.select_server(&raft, group_id);
        };
        let me = self.clone();
        let full = req.sync_all;
        log::debug!(
            "group {group_id}: sync {} watch key(s) to node {node} (sync_all {full})",
            req.keys.len()
        );
        raft.send_to_node_arc(
            node,
            KvCommands::DTKV_SYNC_WATCH,
            encode::to_bytes(&req),
            raft.rpc_timeout,
            move |r| {
                {
                    let mut st = lock(&me.state);
                    let st = &mut *st;
                    let g = st.groups.entry(group_id).or_default();
                    g.syncing = false;
                    if let Err(e) = &r {
                        log::warn!("group {group_id}: watch sync to node {node} failed: {e}");
                        *g.fails.entry(node).or_default() += 1;
                        g.server = None;
                        st.client.sync_failed(group_id);
                        // Retried by the tick.
                        return;
                    }
                }
                me.sync(group_id);
            },
        );
    }

    /// Chooses a healthy server for the group's watches: the members ordered by fewest
    /// failures, the first whose DTKV_QUERY_STATUS shows a healthy group.
    fn select_server(self: &Arc<Self>, raft: &Arc<Inner>, group_id: i32) {
        let members = raft.members(group_id).unwrap_or_default();
        let mut order = members;
        {
            let st = lock(&self.state);
            if let Some(g) = st.groups.get(&group_id) {
                order.sort_by_key(|n| g.fails.get(n).copied().unwrap_or(0));
            }
        }
        self.try_candidate(raft.clone(), group_id, order, 0);
    }

    fn try_candidate(self: &Arc<Self>, raft: Arc<Inner>, group_id: i32, order: Vec<i32>, i: usize) {
        if i >= order.len() {
            // None healthy now: the tick tries again.
            let mut st = lock(&self.state);
            st.groups.entry(group_id).or_default().selecting = false;
            return;
        }
        let node = order[i];
        let me = self.clone();
        let r2 = raft.clone();
        query_kv_status(&raft, node, group_id, move |r| match r {
            Ok((s, _)) if s.is_healthy_watch_server() => {
                {
                    let mut st = lock(&me.state);
                    let st = &mut *st;
                    let g = st.groups.entry(group_id).or_default();
                    g.selecting = false;
                    g.server = Some(node);
                    st.client.server_changed(group_id);
                }
                log::info!("group {group_id}: watches go to node {node}");
                me.sync(group_id);
            }
            other => {
                if let Err(e) = other {
                    log::debug!("group {group_id}: node {node} can't serve watches: {e}");
                }
                {
                    let mut st = lock(&me.state);
                    *st.groups
                        .entry(group_id)
                        .or_default()
                        .fails
                        .entry(node)
                        .or_default() += 1;
                }
                me.try_candidate(r2, group_id, order, i + 1)
            }
        });
    }

    fn schedule_tick(self: &Arc<Self>, at: Instant, last_check: Instant) {
        let Some(raft) = self.raft() else { return };
        let weak = Arc::downgrade(self);
        raft.timer.schedule(at, move || {
            if let Some(me) = weak.upgrade() {
                me.tick(last_check);
            }
        });
    }

    /// Housekeeping: re-sync groups that need it, drop a server whose connection is
    /// down, and every check interval verify each watch server with DTKV_QUERY_STATUS.
    fn tick(self: &Arc<Self>, last_check: Instant) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let Some(raft) = self.raft() else { return };
        let check_due = last_check.elapsed() >= *lock(&self.check_interval);
        let groups: Vec<(i32, Option<i32>, usize)> = {
            let st = lock(&self.state);
            st.client
                .groups()
                .into_iter()
                .map(|g| {
                    (
                        g,
                        st.groups.get(&g).and_then(|s| s.server),
                        st.client.watched(g).len(),
                    )
                })
                .collect()
        };
        for (g, server, nkeys) in groups {
            match server {
                Some(node) if !raft.node_connected(node) => {
                    self.lose_server(g, node, "connection down");
                    self.sync(g);
                }
                Some(node) if check_due => {
                    let me = self.clone();
                    query_kv_status(&raft, node, g, move |r| match r {
                        Ok((s, count)) if s.is_healthy_watch_server() => {
                            if (count as usize) < nkeys {
                                me.lose_server(g, node, "server lost watches");
                            }
                            me.sync(g);
                        }
                        Ok(_) => {
                            me.lose_server(g, node, "unhealthy");
                            me.sync(g);
                        }
                        Err(e) => {
                            log::warn!("group {g}: watch server {node} status failed: {e}");
                            me.lose_server(g, node, "status failed");
                            me.sync(g);
                        }
                    });
                }
                _ => self.sync(g),
            }
        }
        let now = Instant::now();
        self.schedule_tick(now + TICK, if check_due { now } else { last_check });
    }

    fn lose_server(&self, group_id: i32, node: i32, why: &str) {
        let mut st = lock(&self.state);
        let st = &mut *st;
        let g = st.groups.entry(group_id).or_default();
        if g.server == Some(node) {
            log::info!("group {group_id}: leaving watch server {node}: {why}");
            g.server = None;
            *g.fails.entry(node).or_default() += 1;
            st.client.server_changed(group_id);
        }
    }
}

/// DTKV_QUERY_STATUS to one node: the Raft status and the watch count of this
/// connection.
fn query_kv_status(
    raft: &Arc<Inner>,
    node: i32,
    group_id: i32,
    cb: impl FnOnce(Result<(QueryStatus, i32), KvError>) + Send + 'static,
) {
    raft.send_to_node_arc(
        node,
        KvCommands::DTKV_QUERY_STATUS,
        group_body(group_id),
        raft.rpc_timeout,
        move |r| {
            cb(r.and_then(|p| {
                let s = KvStatusResp::decode(&p.body).map_err(KvError::Malformed)?;
                let raw = s.raft_server_status.unwrap_or_default();
                let q =
                    <QueryStatus as crate::kv::KvBody>::decode(&raw).map_err(KvError::Malformed)?;
                Ok((q, s.watch_count))
            }))
        },
    );
}
