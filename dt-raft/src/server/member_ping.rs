//! Raft pings and member readiness (`raft.md` §3.2), for all groups of the server from
//! one thread.
//!
//! Every second, for each group whose member pings started and each other node in its
//! replicate list (members, observers, prepared members; not prepared observers; and the
//! nodes of configurations its log holds but has not applied, which a leader also
//! replicates to, `ServerGroup::log_config_nodes`): a node
//! that is not ready makes the member not ready; a node whose epoch differs from the one
//! recorded for the member makes it not ready and, unless a ping is in flight, sends a
//! RAFT_PING with this node's view of the group. A successful answer (lists matching per
//! the group's `raftPingCheck`, node still ready with the same epoch) makes the member
//! ready and records the epoch. Verdicts reach the group through
//! [`ServerGroup::set_member_ready`] when they change.
//!
//! An idle server sends nothing here: pings go out only when a node's epoch moves, so the
//! cost of many groups is one table walk per second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_net::{WriteBody, WritePacket};

use super::config::parse_servers;
use super::group::{GroupRef, MemberIds, MembershipToken};
use super::node::NodeStatus;
use super::processors::{raft_ping_body, Shared};
use crate::rpc::{RaftCommands, RaftNode, RaftPing, RpcBody};

#[derive(Default)]
struct MemberState {
    ready: bool,
    notified: Option<bool>,
    node_epoch: Option<u32>,
    pinging: bool,
}

struct GroupPing {
    group: GroupRef,
    members: HashMap<i32, MemberState>,
    ping_ready: bool,
    /// What the last round derived from the group's membership, while its
    /// [`ServerGroup::membership_token`] stays the same.
    derived: Option<Derived>,
}

/// A group's membership as one round derived it.
struct Derived {
    /// `None`: the group gives none, derived again every round.
    token: Option<MembershipToken>,
    ids: MemberIds,
    /// The other nodes to check: the replicate list and the log's configurations' nodes.
    list: Vec<i32>,
    /// Whether the nodes' use counts follow `ids`.
    counted: bool,
}

#[derive(Default)]
struct Table {
    groups: HashMap<i32, GroupPing>,
}

pub(crate) struct MemberPinger {
    shared: Arc<Shared>,
    table: Mutex<Table>,
    cond: Condvar,
    interval: Duration,
    rpc_timeout: Duration,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MemberPinger {
    pub fn new(shared: Arc<Shared>, interval: Duration, rpc_timeout: Duration) -> Self {
        MemberPinger {
            shared,
            table: Mutex::default(),
            cond: Condvar::new(),
            interval,
            rpc_timeout,
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the ping thread (idempotent).
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let mut th = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if th.is_some() {
            return Ok(());
        }
        let me = self.clone();
        *th = Some(
            std::thread::Builder::new()
                .name(format!("raft-ping-{}", self.shared.node_id))
                .spawn(move || me.run())?,
        );
        Ok(())
    }

    /// Starts pinging the members of `g` (from the next round; one round runs now).
    pub fn add_group(self: &Arc<Self>, g: GroupRef) {
        let m = g.member_ids();
        let me = self.shared.node_id;
        // A node that is neither member nor observer is ping-ready at once.
        let ping_ready = !m.members.contains(&me) && !m.observers.contains(&me);
        self.lock().groups.insert(
            g.group_id(),
            GroupPing {
                group: g,
                members: HashMap::new(),
                ping_ready,
                derived: None,
            },
        );
        self.round();
    }

    /// Stops pinging for a group.
    pub fn remove_group(&self, group_id: i32) {
        self.lock().groups.remove(&group_id);
    }

    /// Whether the group's members reached the elect quorum of ready members (`None`
    /// when its member pings have not started).
    pub fn is_ping_ready(&self, group_id: i32) -> Option<bool> {
        self.lock().groups.get(&group_id).map(|g| g.ping_ready)
    }

    /// Whether member `node` of a group is ready.
    pub fn is_member_ready(&self, group_id: i32, node: i32) -> Option<bool> {
        let t = self.lock();
        let g = t.groups.get(&group_id)?;
        if node == self.shared.node_id {
            return Some(true);
        }
        g.members.get(&node).map(|m| m.ready)
    }

    /// Waits until every group is ping-ready (true), or the time passes or stop.
    pub fn wait_all_ready(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut t = self.lock();
        loop {
            if t.groups.values().all(|g| g.ping_ready) {
                return true;
            }
            let now = Instant::now();
            if now >= end || self.stop.load(Ordering::Acquire) {
                return false;
            }
            t = self
                .cond
                .wait_timeout(t, (end - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        {
            let _t = self.lock();
            self.cond.notify_all();
        }
        let th = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(th) = th {
            let _ = th.join();
        }
    }

    fn run(self: Arc<Self>) {
        loop {
            let end = Instant::now() + self.interval;
            let mut t = self.lock();
            loop {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                let now = Instant::now();
                if now >= end {
                    break;
                }
                t = self
                    .cond
                    .wait_timeout(t, end - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            drop(t);
            self.round();
        }
    }

    /// One pass over all groups and their members. A group whose membership is unchanged
    /// since the last round (same [`ServerGroup::membership_token`]) costs a few lookups
    /// and no allocation; each node's status is read once per round.
    pub fn round(self: &Arc<Self>) {
        let me = self.shared.node_id;
        let mut sends: Vec<(i32, i32, u32, GroupRef)> = Vec::new();
        let mut statuses: Vec<(i32, Option<NodeStatus>)> = Vec::new();
        {
            let mut t = self.lock();
            for (gid, gp) in t.groups.iter_mut() {
                let token = gp.group.membership_token();
                let same = matches!(
                    (&token, &gp.derived),
                    (Some(t), Some(Derived { token: Some(d), .. })) if Arc::ptr_eq(t, d)
                );
                let d = match gp.derived.take() {
                    Some(d) if same => d,
                    _ => {
                        let ids = gp.group.member_ids();
                        let list = replicate_list(me, &ids, &gp.group.log_config_nodes());
                        gp.members.retain(|id, _| list.contains(id));
                        Derived {
                            // taken before the reads: a change meanwhile shows next round
                            token,
                            ids,
                            list,
                            counted: false,
                        }
                    }
                };
                for &id in &d.list {
                    let status = match statuses.iter().find(|(n, _)| *n == id) {
                        Some((_, st)) => *st,
                        None => {
                            let st = self.shared.nodes.status_of(id);
                            statuses.push((id, st));
                            st
                        }
                    };
                    let m = gp.members.entry(id).or_default();
                    match status {
                        Some(st) if st.ready => {
                            if m.node_epoch != Some(st.epoch) {
                                m.ready = false;
                                if !m.pinging {
                                    m.pinging = true;
                                    sends.push((*gid, id, st.epoch, gp.group.clone()));
                                }
                            }
                        }
                        _ => m.ready = false,
                    }
                }
                update_group(me, gp, &d.ids);
                let counted = d.counted || self.shared.sync_use_counts(*gid, Some(&d.ids));
                gp.derived = Some(Derived { counted, ..d });
            }
            self.cond.notify_all();
        }
        for (gid, node, epoch, g) in sends {
            self.send_ping(gid, node, epoch, g);
        }
    }

    fn send_ping(self: &Arc<Self>, gid: i32, node: i32, epoch: u32, g: GroupRef) {
        let Some(peer) = self.shared.nodes.peer_of(node) else {
            let mut t = self.lock();
            if let Some(m) = t
                .groups
                .get_mut(&gid)
                .and_then(|gp| gp.members.get_mut(&node))
            {
                m.pinging = false;
            }
            return;
        };
        let body = raft_ping_body(&self.shared, &g);
        let check = g.raft_ping_check();
        let local = g.member_ids();
        let me = self.clone();
        self.shared.nodes.client().send_request_cb(
            Some(peer),
            WritePacket::request(
                RaftCommands::RAFT_PING,
                WriteBody::Encodable(Box::new(body)),
            ),
            self.rpc_timeout,
            move |r| {
                let verdict = r
                    .map_err(|e| e.to_string())
                    .and_then(|p| RaftPing::decode(&p.body).map_err(|e| e.to_string()))
                    .and_then(|p| check_remote_config(&me.shared, check, &local, &p));
                let still = me
                    .shared
                    .nodes
                    .status_of(node)
                    .is_some_and(|s| s.ready && s.epoch == epoch);
                let mut t = me.lock();
                let Some(gp) = t.groups.get_mut(&gid) else {
                    return;
                };
                let Some(m) = gp.members.get_mut(&node) else {
                    return;
                };
                m.pinging = false;
                match verdict {
                    Ok(()) if still => {
                        log::info!("raft ping success, group {gid}, node {node}");
                        m.ready = true;
                        m.node_epoch = Some(epoch);
                    }
                    Ok(()) => m.ready = false,
                    Err(e) => {
                        log::warn!("raft ping failed, group {gid}, node {node}: {e}");
                        m.ready = false;
                    }
                }
                let ids = gp.group.member_ids();
                update_group(me.shared.node_id, gp, &ids);
                me.cond.notify_all();
            },
        );
    }
}

/// The nodes other than `me` a round checks for a group: its replicate list (members,
/// observers, prepared members; not prepared observers) and the nodes of configurations
/// its log holds but has not applied (`extra`: a leader replicates to them too), each
/// once.
fn replicate_list(me: i32, ids: &MemberIds, extra: &[i32]) -> Vec<i32> {
    let mut list: Vec<i32> = Vec::new();
    for &id in ids
        .members
        .iter()
        .chain(&ids.observers)
        .chain(&ids.prepared_members)
        .chain(extra)
    {
        if id != me && !list.contains(&id) {
            list.push(id);
        }
    }
    list
}

/// Notifies changed verdicts and recomputes ping-ready.
fn update_group(me: i32, gp: &mut GroupPing, ids: &MemberIds) {
    for (id, m) in gp.members.iter_mut() {
        if m.notified != Some(m.ready) {
            m.notified = Some(m.ready);
            gp.group.set_member_ready(*id, m.ready);
        }
    }
    if !gp.ping_ready {
        let ready = ids
            .members
            .iter()
            .filter(|id| **id == me || gp.members.get(id).is_some_and(|m| m.ready))
            .count();
        if ready > ids.members.len() / 2 {
            log::info!("group {}: members ping ready", gp.group.group_id());
            gp.ping_ready = true;
        }
    }
}

/// Compares the remote's four lists with ours per `raftPingCheck` (§3.2).
fn check_remote_config(
    sh: &Shared,
    check: i32,
    local: &MemberIds,
    remote: &RaftPing,
) -> Result<(), String> {
    if check <= 0 {
        return Ok(());
    }
    for (name, ids, theirs) in [
        ("members", &local.members, &remote.members),
        ("observers", &local.observers, &remote.observers),
        (
            "preparedMembers",
            &local.prepared_members,
            &remote.prepared_members,
        ),
        (
            "preparedObservers",
            &local.prepared_observers,
            &remote.prepared_observers,
        ),
    ] {
        let remotes: Vec<RaftNode> = if theirs.trim().is_empty() {
            Vec::new()
        } else {
            parse_servers(theirs).map_err(|e| format!("{name}: {e}"))?
        };
        if remotes.len() != ids.len() {
            return Err(format!("{name} size not match, remote={theirs}"));
        }
        for rn in &remotes {
            if !ids.contains(&rn.node_id) {
                return Err(format!("{name} not match, remote={theirs}"));
            }
            if check > 1 {
                let same = sh
                    .nodes
                    .node(rn.node_id)
                    .is_some_and(|n| n.host == rn.host && n.port == rn.port);
                if !same {
                    return Err(format!("{name} address not match, remote={theirs}"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::group::{GroupState, MembershipToken, ServerGroup};
    use crate::server::inbound::GroupRequest;
    use crate::server::node::{NodeManager, NodeTiming};
    use dt_net::{NioClient, NioClientConfig, ReqContext};
    use std::sync::atomic::AtomicUsize;

    /// A group of nodes 1-3 that counts how often its membership is asked for.
    struct Counted {
        asks: AtomicUsize,
        token: Mutex<MembershipToken>,
        members: Mutex<Vec<i32>>,
    }

    impl ServerGroup for Counted {
        fn group_id(&self) -> i32 {
            7
        }
        fn state(&self) -> GroupState {
            GroupState::NotInit
        }
        fn member_ids(&self) -> MemberIds {
            self.asks.fetch_add(1, Ordering::SeqCst);
            MemberIds {
                members: self.members.lock().unwrap().clone(),
                ..MemberIds::default()
            }
        }
        fn membership_token(&self) -> Option<MembershipToken> {
            Some(self.token.lock().unwrap().clone())
        }
        fn deliver(&self, _: GroupRequest, _: ReqContext) -> Option<WritePacket> {
            None
        }
    }

    fn pinger() -> Arc<MemberPinger> {
        let nodes: Vec<RaftNode> = (1..=3)
            .map(|id| RaftNode {
                node_id: id,
                host: "127.0.0.1".into(),
                port: 4000 + id,
            })
            .collect();
        let timing = NodeTiming {
            ping_interval: Duration::from_secs(1),
            rpc_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        };
        let client = Arc::new(NioClient::new(NioClientConfig::default()));
        let nodes = NodeManager::new(1, &nodes, client, timing).expect("node table");
        let shared = Arc::new(Shared::new(1, nodes));
        Arc::new(MemberPinger::new(
            shared,
            Duration::from_secs(1),
            Duration::from_secs(1),
        ))
    }

    fn use_count(p: &MemberPinger, node: i32) -> u32 {
        p.shared
            .nodes
            .nodes()
            .iter()
            .find(|n| n.node.node_id == node)
            .map_or(0, |n| n.use_count)
    }

    #[test]
    fn rounds_over_an_unchanged_group_do_not_ask_for_its_membership_again() {
        let p = pinger();
        let g = Arc::new(Counted {
            asks: AtomicUsize::new(0),
            token: Mutex::new(Arc::new(1u32)),
            members: Mutex::new(vec![1, 2, 3]),
        });
        p.add_group(g.clone()); // asks once itself, and runs a round
        let after_add = g.asks.load(Ordering::SeqCst);
        assert_eq!(after_add, 2);
        assert_eq!(use_count(&p, 3), 1);
        for _ in 0..10 {
            p.round();
        }
        assert_eq!(g.asks.load(Ordering::SeqCst), after_add);
        // nodes 2 and 3 were never pinged ready: the members stay not ready
        assert_eq!(p.is_member_ready(7, 2), Some(false));
        assert_eq!(p.is_ping_ready(7), Some(false));

        // a new token (the group published a new status): asked again, once; the use
        // counts follow the new sets
        *g.members.lock().unwrap() = vec![1, 2];
        *g.token.lock().unwrap() = Arc::new(2u32);
        p.round();
        p.round();
        assert_eq!(g.asks.load(Ordering::SeqCst), after_add + 1);
        assert_eq!(use_count(&p, 3), 0);
        assert_eq!(use_count(&p, 2), 1);
        assert_eq!(p.is_member_ready(7, 3), None, "node 3 left the group");
    }
}
