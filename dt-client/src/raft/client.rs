//! [`RaftClient`]: the Raft groups a client talks to, their members' addresses, the
//! leader of each group (found with RAFT_QUERY_STATUS, corrected by NOT_RAFT_LEADER
//! hints), and the reference client's retry policy (`wire-protocol.md` §5.4–5.5).

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_codec::{encode, PbInt};
use dt_common::IdHashMap;
use dt_net::{
    CmdCodes, Commands, NetError, NioClient, NioClientConfig, PeerId, PeerStatus, PeerStatusView,
    ReadPacket, RpcHandler, WritePacket,
};

use super::in_flight::{InFlight, Sent};
use super::permits::{Acquired, Permits};
use super::status::QueryStatus;
use crate::future::{kv_channel, KvFuture};
use crate::kv::{ops, KvError};
use crate::timer::Timer;

/// How long a failed leader is still used before discovery runs again, and how long
/// discovery fails fast after it found no leader (the reference's 1 s).
pub const LEADER_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of a [`RaftClient`] (defaults are the reference's).
#[derive(Debug, Clone)]
pub struct RaftClientConfig {
    /// The network client's settings (its `peers` are ignored: nodes are added with
    /// [`RaftClient::add_or_update_nodes`]). Its own outbound limits are turned off; the
    /// two limits below apply, waiting instead of failing.
    pub nio: NioClientConfig,
    /// Default deadline of a request, retries and leader discovery included (5 s).
    pub rpc_timeout: Duration,
    /// Outstanding requests before new ones wait for a permit (2 000; 0: no limit).
    pub max_out_requests: usize,
    /// Outstanding request bytes before new ones wait for a permit (32 MiB; 0: none).
    pub max_out_bytes: usize,
}

impl Default for RaftClientConfig {
    fn default() -> Self {
        RaftClientConfig {
            nio: NioClientConfig {
                name: "RaftClient".into(),
                ..Default::default()
            },
            rpc_timeout: Duration::from_secs(5),
            max_out_requests: 2_000,
            max_out_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A server node: its id and service-port address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftNode {
    /// Node id (positive).
    pub node_id: i32,
    /// Address of its service port.
    pub addr: SocketAddr,
}

impl RaftNode {
    /// Parses the reference's server list: `"1,127.0.0.1:5001;2,127.0.0.1:5002"`
    /// (`id,host:port` separated by `;`; host names are resolved now).
    pub fn parse_list(s: &str) -> Result<Vec<RaftNode>, KvError> {
        let bad = |m: String| KvError::InvalidArgument(m);
        let mut out: Vec<RaftNode> = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = part
                .split_once(',')
                .ok_or_else(|| bad(format!("{part:?}: expected id,host:port")))?;
            let node_id: i32 = id
                .trim()
                .parse()
                .map_err(|_| bad(format!("{part:?}: bad node id")))?;
            if node_id <= 0 {
                return Err(bad(format!("{part:?}: node id must be positive")));
            }
            let addr = addr
                .trim()
                .to_socket_addrs()
                .map_err(|e| bad(format!("{part:?}: {e}")))?
                .next()
                .ok_or_else(|| bad(format!("{part:?}: no address")))?;
            if out.iter().any(|n| n.node_id == node_id) {
                return Err(bad(format!("node {node_id} listed twice")));
            }
            out.push(RaftNode { node_id, addr });
        }
        Ok(out)
    }
}

/// Per-request choices (the defaults are those of DtKV data requests).
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// Whether the request may be re-sent once (after a redirect, or after a
    /// not-ready answer and a new discovery), within its deadline.
    pub retryable: bool,
    /// Whether a request that finds the outbound limit reached waits for a permit until
    /// its deadline (true), or fails at once (the reference's lock operations).
    pub wait_permit: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            retryable: true,
            wait_permit: true,
        }
    }
}

type RespCb = Box<dyn FnOnce(Result<ReadPacket, KvError>) + Send>;
type LeaderWaiter = Box<dyn FnOnce(Result<(i32, PeerId), KvError>) + Send>;

struct NodeEntry {
    addr: SocketAddr,
    peer: PeerId,
    /// The peer's connection status, read per request without the peer table's lock.
    status: PeerStatusView,
}

#[derive(Default)]
struct GroupEntry {
    members: Vec<i32>,
    leader: Option<i32>,
    leader_fail: Option<Instant>,
    discovering: Option<Vec<LeaderWaiter>>,
    blocked_until: Option<Instant>,
}

#[derive(Default)]
struct State {
    nodes: IdHashMap<i32, NodeEntry>,
    groups: IdHashMap<i32, GroupEntry>,
}

pub(crate) struct Inner {
    pub(crate) nio: NioClient,
    /// Requests on the wire (their answers' handler).
    in_flight: Arc<InFlight>,
    /// `in_flight` as the network layer's handler.
    handler: Arc<dyn RpcHandler>,
    state: Mutex<State>,
    permits: Permits,
    pub(crate) timer: Timer,
    pub(crate) rpc_timeout: Duration,
    rng: AtomicU64,
}

pub(crate) struct Call {
    group: i32,
    command: i32,
    body: Bytes,
    deadline: Instant,
    opts: SendOptions,
    retried: bool,
    permit_bytes: usize,
    cb: RespCb,
}

impl Call {
    /// Answers the caller with a network error (the client is gone, for one).
    pub(crate) fn fail(self, e: NetError) {
        (self.cb)(Err(KvError::Net(e)))
    }
}

/// The client of a set of Raft groups: one connection per server node (shared by every
/// group the node serves), each group's leader cached, requests routed to it.
///
/// Routing follows the reference (`wire-protocol.md` §5.4–5.5): a request goes to the
/// cached leader while its connection is up and it has not failed in the last second;
/// otherwise leader discovery asks the group's members in random order with
/// RAFT_QUERY_STATUS (concurrent requests share one discovery; when no member names a
/// configured leader, discovery fails fast for 1 s). Answers: NOT_RAFT_LEADER with a
/// usable hint switches the leader and re-sends once; NOT_RAFT_LEADER without one
/// forgets the leader, re-discovers and re-sends once (the reference keeps the cached
/// leader, so a node removed from the group would keep refusing); NOT_INIT, STOPPING,
/// RAFT_GROUP_NOT_FOUND / STOPPED / NOT_INIT re-discover and re-send once; SYS_ERROR,
/// FLOW_CONTROL and transport errors mark the leader failed and fail the request;
/// CLIENT_ERROR and COMMAND_NOT_SUPPORT just fail. A re-send keeps the original
/// deadline (the packet's timeout is what remains) and gets a new seq.
///
/// Every request has a deadline; it covers waiting for an outbound permit, discovery,
/// the request and its retry. Results are delivered by callback, on the network IO
/// thread (or the timer thread, or the calling thread for immediate failures): keep
/// callbacks short and never block in them.
///
/// ```no_run
/// use std::time::Duration;
/// use dt_client::raft::{RaftClient, RaftClientConfig, RaftNode};
///
/// let client = RaftClient::new(RaftClientConfig::default()).unwrap();
/// client.add_or_update_nodes(&RaftNode::parse_list("1,127.0.0.1:5001").unwrap()).unwrap();
/// client.add_or_update_group(0, &[1]).unwrap();
/// let leader = client.fetch_leader(0, Duration::from_secs(3)).wait().unwrap();
/// assert_eq!(leader, 1);
/// ```
pub struct RaftClient {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn server_error(p: &ReadPacket) -> KvError {
    KvError::Server {
        resp_code: p.resp_code,
        msg: p.msg.clone(),
        leader_hint: if p.resp_code == CmdCodes::NOT_RAFT_LEADER {
            ops::leader_hint(p)
        } else {
            None
        },
    }
}

fn timeout_error(what: &'static str) -> KvError {
    KvError::Net(NetError::Timeout { what })
}

impl RaftClient {
    /// Starts a client with no nodes or groups yet.
    pub fn new(cfg: RaftClientConfig) -> Result<RaftClient, KvError> {
        Self::with_processors(cfg, |_| {})
    }

    /// Like [`RaftClient::new`], letting `register` add processors for requests the
    /// servers push (watch notifications, lock pushes) before the network starts.
    pub fn with_processors(
        cfg: RaftClientConfig,
        register: impl FnOnce(&mut NioClient),
    ) -> Result<RaftClient, KvError> {
        let mut ncfg = cfg.nio.clone();
        ncfg.peers.clear();
        // Flow control is ours (waiting); the network layer's fails fast.
        ncfg.max_out_requests = 0;
        ncfg.max_out_bytes = 0;
        let name = ncfg.name.clone();
        let mut nio = NioClient::new(ncfg);
        register(&mut nio);
        nio.start()?;
        let timer = Timer::start(&name).map_err(|e| KvError::Net(NetError::Io(e)))?;
        let seed = dt_common::mono_nanos() as u64 ^ (std::process::id() as u64) << 32;
        Ok(RaftClient {
            inner: Arc::new_cyclic(|me| {
                let in_flight = Arc::new(InFlight::new(me.clone()));
                Inner {
                    nio,
                    handler: in_flight.clone(),
                    in_flight,
                    state: Mutex::new(State::default()),
                    permits: Permits::new(cfg.max_out_requests, cfg.max_out_bytes),
                    timer,
                    rpc_timeout: cfg.rpc_timeout,
                    rng: AtomicU64::new(seed | 1),
                }
            }),
        })
    }

    /// The network client (its process identity, peers and their status).
    pub fn nio(&self) -> &NioClient {
        &self.inner.nio
    }

    /// The default request deadline.
    pub fn rpc_timeout(&self) -> Duration {
        self.inner.rpc_timeout
    }

    /// Group requests on the wire: sent to a server and not yet answered, failed or
    /// timed out (requests waiting for a permit or for leader discovery not counted).
    pub fn requests_in_flight(&self) -> usize {
        self.inner.in_flight.len()
    }

    /// Adds nodes, or changes the address of known ones (their connection is replaced;
    /// requests outstanding on it fail).
    pub fn add_or_update_nodes(&self, nodes: &[RaftNode]) -> Result<(), KvError> {
        for n in nodes {
            if n.node_id <= 0 {
                return Err(KvError::InvalidArgument(format!(
                    "node id {} must be positive",
                    n.node_id
                )));
            }
        }
        for n in nodes {
            let old = {
                let st = lock(&self.inner.state);
                st.nodes.get(&n.node_id).map(|e| (e.addr, e.peer))
            };
            match old {
                Some((addr, _)) if addr == n.addr => continue,
                Some((_, peer)) => {
                    let _ = self.inner.nio.remove_peer(peer);
                }
                None => {}
            }
            let peer = self.inner.nio.add_peer(n.addr)?;
            let status = self
                .inner
                .nio
                .peer_status_view(peer.id)
                .ok_or(KvError::Net(NetError::Stopped))?;
            lock(&self.inner.state).nodes.insert(
                n.node_id,
                NodeEntry {
                    addr: n.addr,
                    peer: peer.id,
                    status,
                },
            );
        }
        Ok(())
    }

    /// Removes a node no group uses any more, and closes its connection.
    pub fn remove_node(&self, node_id: i32) -> Result<(), KvError> {
        let peer = {
            let mut st = lock(&self.inner.state);
            if let Some((g, _)) = st.groups.iter().find(|(_, g)| g.members.contains(&node_id)) {
                return Err(KvError::InvalidArgument(format!(
                    "node {node_id} is a member of group {g}"
                )));
            }
            st.nodes
                .remove(&node_id)
                .ok_or_else(|| KvError::InvalidArgument(format!("unknown node {node_id}")))?
                .peer
        };
        self.inner.nio.remove_peer(peer)?;
        Ok(())
    }

    /// The nodes and the status of their connections.
    pub fn nodes(&self) -> Vec<(RaftNode, PeerStatus)> {
        let status: HashMap<PeerId, PeerStatus> = self
            .inner
            .nio
            .peers()
            .into_iter()
            .map(|(p, s)| (p.id, s))
            .collect();
        let st = lock(&self.inner.state);
        let mut v: Vec<_> = st
            .nodes
            .iter()
            .map(|(&node_id, e)| {
                (
                    RaftNode {
                        node_id,
                        addr: e.addr,
                    },
                    status
                        .get(&e.peer)
                        .copied()
                        .unwrap_or(PeerStatus::NotConnected),
                )
            })
            .collect();
        v.sort_by_key(|n| n.0.node_id);
        v
    }

    /// Adds a group with its member nodes (all known already), or changes its members;
    /// a cached leader that is no longer a member is forgotten.
    pub fn add_or_update_group(&self, group_id: i32, members: &[i32]) -> Result<(), KvError> {
        if group_id < 0 || members.is_empty() {
            return Err(KvError::InvalidArgument(format!(
                "group {group_id} needs a non-negative id and at least one member"
            )));
        }
        let mut st = lock(&self.inner.state);
        if let Some(m) = members.iter().find(|m| !st.nodes.contains_key(m)) {
            return Err(KvError::InvalidArgument(format!(
                "node {m} of group {group_id} is not known: add it first"
            )));
        }
        let g = st.groups.entry(group_id).or_default();
        let mut m = members.to_vec();
        m.sort_unstable();
        m.dedup();
        g.members = m;
        if g.leader.is_some_and(|l| !g.members.contains(&l)) {
            g.leader = None;
            g.leader_fail = None;
        }
        g.blocked_until = None;
        Ok(())
    }

    /// Forgets a group (its nodes stay).
    pub fn remove_group(&self, group_id: i32) -> Result<(), KvError> {
        let waiters = {
            let mut st = lock(&self.inner.state);
            let g = st
                .groups
                .remove(&group_id)
                .ok_or_else(|| KvError::InvalidArgument(format!("unknown group {group_id}")))?;
            g.discovering.unwrap_or_default()
        };
        for w in waiters {
            w(Err(KvError::InvalidArgument(format!(
                "group {group_id} was removed"
            ))));
        }
        Ok(())
    }

    /// The members of a group.
    pub fn group_members(&self, group_id: i32) -> Option<Vec<i32>> {
        lock(&self.inner.state)
            .groups
            .get(&group_id)
            .map(|g| g.members.clone())
    }

    /// The leader the client currently believes in, if any.
    pub fn leader(&self, group_id: i32) -> Option<i32> {
        lock(&self.inner.state)
            .groups
            .get(&group_id)
            .and_then(|g| g.leader)
    }

    /// The group's leader: the cached one when usable, else found by discovery.
    pub fn fetch_leader(&self, group_id: i32, timeout: Duration) -> KvFuture<i32> {
        let (p, f) = kv_channel();
        let deadline = Instant::now() + timeout;
        match self.inner.cached_leader(group_id) {
            Err(e) => p.complete(Err(e)),
            Ok(Some((n, _))) => p.complete(Ok(n)),
            Ok(None) => self.inner.discover(
                group_id,
                deadline,
                Box::new(move |r| p.complete(r.map(|(n, _)| n))),
            ),
        }
        f
    }

    /// Asks one node for its status of one group (RAFT_QUERY_STATUS).
    pub fn query_status(
        &self,
        node_id: i32,
        group_id: i32,
        timeout: Duration,
    ) -> KvFuture<QueryStatus> {
        let (p, f) = kv_channel();
        self.send_to_node(
            node_id,
            Commands::RAFT_QUERY_STATUS,
            group_body(group_id),
            timeout,
            move |r| {
                p.complete(r.and_then(|pkt| {
                    <QueryStatus as crate::kv::KvBody>::decode(&pkt.body)
                        .map_err(KvError::Malformed)
                }))
            },
        );
        f
    }

    /// Sends a request to the leader of `group_id` with the default options (retryable,
    /// waiting for a permit); `cb` gets the response with `resp_code` 0 or the error.
    pub fn send_request(
        &self,
        group_id: i32,
        command: i32,
        body: Bytes,
        timeout: Duration,
        cb: impl FnOnce(Result<ReadPacket, KvError>) + Send + 'static,
    ) {
        self.send_request_with(group_id, command, body, timeout, SendOptions::default(), cb)
    }

    /// Sends a request to the leader of `group_id` (see the type's docs for routing and
    /// retries).
    pub fn send_request_with(
        &self,
        group_id: i32,
        command: i32,
        body: Bytes,
        timeout: Duration,
        opts: SendOptions,
        cb: impl FnOnce(Result<ReadPacket, KvError>) + Send + 'static,
    ) {
        self.inner
            .send_request_arc(group_id, command, body, timeout, opts, cb);
    }

    /// Sends a request to one node (not routed to the leader, never retried: watch
    /// syncs, status queries, admin commands); a non-zero `resp_code` is an error.
    pub fn send_to_node(
        &self,
        node_id: i32,
        command: i32,
        body: Bytes,
        timeout: Duration,
        cb: impl FnOnce(Result<ReadPacket, KvError>) + Send + 'static,
    ) {
        self.inner
            .send_to_node_arc(node_id, command, body, timeout, cb);
    }

    /// Requests waiting for an outbound permit right now.
    pub fn waiting_for_permit(&self) -> usize {
        self.inner.permits.waiting()
    }

    /// Outstanding requests (holding a permit).
    pub fn outstanding(&self) -> usize {
        self.inner.permits.outstanding()
    }

    /// Stops: outstanding requests get up to `timeout`, then fail; the threads end.
    pub fn stop(&self, timeout: Duration) {
        self.inner.nio.stop(timeout);
        self.inner.timer.stop();
    }
}

impl Drop for RaftClient {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

impl std::fmt::Debug for RaftClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RaftClient({:?})", self.nodes())
    }
}

/// The body of RAFT_QUERY_STATUS / DTKV_QUERY_STATUS: the group id as a `PbInt`.
pub(crate) fn group_body(group_id: i32) -> Bytes {
    encode::to_bytes(&PbInt(group_id))
}

impl Inner {
    /// [`RaftClient::send_request_with`].
    pub(crate) fn send_request_arc(
        self: &Arc<Self>,
        group_id: i32,
        command: i32,
        body: Bytes,
        timeout: Duration,
        opts: SendOptions,
        cb: impl FnOnce(Result<ReadPacket, KvError>) + Send + 'static,
    ) {
        let now = Instant::now();
        let call = Call {
            group: group_id,
            command,
            permit_bytes: body.len() + 64,
            body,
            deadline: now + timeout,
            opts,
            retried: false,
            cb: Box::new(cb),
        };
        self.submit(call, None, now);
    }

    /// [`RaftClient::send_to_node`].
    pub(crate) fn send_to_node_arc(
        self: &Arc<Self>,
        node_id: i32,
        command: i32,
        body: Bytes,
        timeout: Duration,
        cb: impl FnOnce(Result<ReadPacket, KvError>) + Send + 'static,
    ) {
        let now = Instant::now();
        let call = Call {
            group: -1,
            command,
            permit_bytes: body.len() + 64,
            body,
            deadline: now + timeout,
            opts: SendOptions {
                retryable: false,
                wait_permit: true,
            },
            retried: false,
            cb: Box::new(cb),
        };
        self.submit(call, Some(node_id), now);
    }

    /// A group's members.
    pub(crate) fn members(&self, group_id: i32) -> Option<Vec<i32>> {
        lock(&self.state)
            .groups
            .get(&group_id)
            .map(|g| g.members.clone())
    }

    /// Whether the connection to a node is up.
    pub(crate) fn node_connected(&self, node_id: i32) -> bool {
        lock(&self.state)
            .nodes
            .get(&node_id)
            .is_some_and(|n| n.status.is_connected())
    }

    fn peer_of(&self, node_id: i32) -> Option<PeerId> {
        lock(&self.state).nodes.get(&node_id).map(|n| n.peer)
    }

    fn random(&self) -> u64 {
        // xorshift64*: only to spread discovery over the members.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The cached leader when the reference would use it; `Ok(None)`: discover first.
    /// On every routed request: one lock of the client's own state and one atomic load
    /// of the connection status (the peer table is not locked, nothing is allocated).
    fn cached_leader(&self, group_id: i32) -> Result<Option<(i32, PeerId)>, KvError> {
        let (leader, peer, failed_long_ago, connected) = {
            let st = lock(&self.state);
            let g = st
                .groups
                .get(&group_id)
                .ok_or_else(|| KvError::InvalidArgument(format!("unknown group {group_id}")))?;
            let Some(l) = g.leader else {
                return Ok(None);
            };
            let Some(n) = st.nodes.get(&l) else {
                return Ok(None);
            };
            let old = g
                .leader_fail
                .is_some_and(|t| t.elapsed() >= LEADER_RETRY_INTERVAL);
            (l, n.peer, old, n.status.is_connected())
        };
        if failed_long_ago || !connected {
            return Ok(None);
        }
        Ok(Some((leader, peer)))
    }

    fn mark_failed(&self, group_id: i32, node_id: i32, forget: bool) {
        let mut st = lock(&self.state);
        if let Some(g) = st.groups.get_mut(&group_id) {
            if g.leader == Some(node_id) {
                if forget {
                    g.leader = None;
                    g.leader_fail = None;
                } else {
                    g.leader_fail = Some(Instant::now());
                }
            }
        }
    }

    /// Leader discovery (§5.4); `w` gets the leader or the reason none was found.
    fn discover(self: &Arc<Self>, group_id: i32, deadline: Instant, w: LeaderWaiter) {
        let order = {
            let mut st = lock(&self.state);
            let Some(g) = st.groups.get_mut(&group_id) else {
                drop(st);
                return w(Err(KvError::InvalidArgument(format!(
                    "unknown group {group_id}"
                ))));
            };
            if let Some(list) = &mut g.discovering {
                list.push(w);
                return;
            }
            if let Some(until) = g.blocked_until {
                if Instant::now() < until {
                    drop(st);
                    return w(Err(KvError::NoLeader {
                        group_id,
                        reason: "no member named a leader less than 1 s ago".into(),
                    }));
                }
            }
            g.discovering = Some(vec![w]);
            let mut order = g.members.clone();
            drop(st);
            for i in (1..order.len()).rev() {
                let j = (self.random() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            order
        };
        log::debug!("group {group_id}: leader discovery among {order:?}");
        self.query_next(group_id, Arc::new(order), 0, deadline, Vec::new());
    }

    fn query_next(
        self: &Arc<Self>,
        group_id: i32,
        order: Arc<Vec<i32>>,
        i: usize,
        deadline: Instant,
        mut answers: Vec<String>,
    ) {
        let now = Instant::now();
        if i >= order.len() || now >= deadline {
            let timed_out = i < order.len();
            if timed_out {
                answers.push("deadline passed".into());
            }
            return self.end_discovery(group_id, Err(answers.join("; ")), !timed_out);
        }
        let node = order[i];
        let Some(peer) = self.peer_of(node) else {
            answers.push(format!("node {node}: unknown"));
            return self.query_next(group_id, order, i + 1, deadline, answers);
        };
        let timeout = (deadline - now).min(self.rpc_timeout);
        let me = self.clone();
        self.nio.send_request_raw_cb(
            Some(peer),
            WritePacket::request_bytes(Commands::RAFT_QUERY_STATUS, group_body(group_id)),
            timeout,
            move |r| {
                let found = match r {
                    Ok(p) if p.resp_code == CmdCodes::SUCCESS => {
                        match <QueryStatus as crate::kv::KvBody>::decode(&p.body) {
                            Ok(s) if s.leader_id > 0 => Ok(s.leader_id),
                            Ok(_) => Err(format!("node {node}: leader unknown")),
                            Err(e) => Err(format!("node {node}: {e}")),
                        }
                    }
                    Ok(p) => Err(format!("node {node}: {}", server_error(&p))),
                    Err(e) => Err(format!("node {node}: {e}")),
                };
                match found {
                    Ok(l) if me.is_member(group_id, l) => me.end_discovery(group_id, Ok(l), false),
                    Ok(l) => {
                        answers.push(format!("node {node}: leader {l} is not a member"));
                        me.query_next(group_id, order, i + 1, deadline, answers)
                    }
                    Err(a) => {
                        answers.push(a);
                        me.query_next(group_id, order, i + 1, deadline, answers)
                    }
                }
            },
        );
    }

    fn is_member(&self, group_id: i32, node_id: i32) -> bool {
        lock(&self.state)
            .groups
            .get(&group_id)
            .is_some_and(|g| g.members.contains(&node_id))
    }

    fn end_discovery(&self, group_id: i32, r: Result<i32, String>, block: bool) {
        let (waiters, peer) = {
            let mut st = lock(&self.state);
            let peer = r
                .as_ref()
                .ok()
                .and_then(|l| st.nodes.get(l).map(|n| n.peer));
            let Some(g) = st.groups.get_mut(&group_id) else {
                return;
            };
            let waiters = g.discovering.take().unwrap_or_default();
            match (&r, peer) {
                (Ok(l), Some(_)) => {
                    log::info!("group {group_id}: leader is node {l}");
                    g.leader = Some(*l);
                    g.leader_fail = None;
                    g.blocked_until = None;
                }
                _ => {
                    if block {
                        g.blocked_until = Some(Instant::now() + LEADER_RETRY_INTERVAL);
                    }
                }
            }
            (waiters, peer)
        };
        for w in waiters {
            match (&r, peer) {
                (Ok(l), Some(p)) => w(Ok((*l, p))),
                (Err(reason), _) => w(Err(KvError::NoLeader {
                    group_id,
                    reason: reason.clone(),
                })),
                (Ok(l), None) => w(Err(KvError::NoLeader {
                    group_id,
                    reason: format!("leader {l} has no address"),
                })),
            }
        }
    }

    /// Takes a permit (waiting until the deadline if allowed), then routes the call.
    /// `now` is a clock reading just taken by the caller, used when the permit is
    /// granted at once.
    fn submit(self: &Arc<Self>, call: Call, node: Option<i32>, now: Instant) {
        let me = self.clone();
        let bytes = call.permit_bytes;
        let wait = call.opts.wait_permit;
        let deadline = call.deadline;
        let go = move |r: Result<bool, NetError>| match r {
            Ok(at_once) => match node {
                Some(n) => me.send_direct(call, n),
                None => me.route_at(call, if at_once { now } else { Instant::now() }),
            },
            Err(e) => (call.cb)(Err(KvError::Net(e))),
        };
        if let Acquired::Queued(id) = self.permits.acquire(bytes, wait, go) {
            // read the clock only for a call that waits (most are sent at once)
            let since = Instant::now();
            let weak: Weak<Inner> = Arc::downgrade(self);
            self.timer.schedule(deadline, move || {
                if let Some(me) = weak.upgrade() {
                    me.permits.expire(id, since);
                }
            });
        }
    }

    fn finish(&self, call: Call, r: Result<ReadPacket, KvError>) {
        self.permits.release(call.permit_bytes);
        (call.cb)(r)
    }

    fn route(self: &Arc<Self>, call: Call) {
        self.route_at(call, Instant::now())
    }

    /// [`Inner::route`] with the time just read by the caller.
    fn route_at(self: &Arc<Self>, call: Call, now: Instant) {
        if now >= call.deadline {
            return self.finish(call, Err(timeout_error("request deadline")));
        }
        match self.cached_leader(call.group) {
            Err(e) => self.finish(call, Err(e)),
            Ok(Some((node, peer))) => self.send_call_at(call, node, peer, now),
            Ok(None) => {
                let me = self.clone();
                let (group, deadline) = (call.group, call.deadline);
                self.discover(
                    group,
                    deadline,
                    Box::new(move |r| match r {
                        Ok((node, peer)) => me.send_call(call, node, peer),
                        Err(e) => me.finish(call, Err(e)),
                    }),
                );
            }
        }
    }

    fn send_direct(self: &Arc<Self>, call: Call, node: i32) {
        let Some(peer) = self.peer_of(node) else {
            return self.finish(
                call,
                Err(KvError::InvalidArgument(format!("unknown node {node}"))),
            );
        };
        let remaining = call.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return self.finish(call, Err(timeout_error("request deadline")));
        }
        let me = self.clone();
        let pkt = WritePacket::request_bytes(call.command, call.body.clone());
        self.nio
            .send_request_raw_cb(Some(peer), pkt, remaining, move |r| match r {
                Ok(p) if p.resp_code == CmdCodes::SUCCESS => me.finish(call, Ok(p)),
                Ok(p) => {
                    let e = server_error(&p);
                    me.finish(call, Err(e))
                }
                Err(e) => me.finish(call, Err(KvError::Net(e))),
            });
    }

    fn send_call(self: &Arc<Self>, call: Call, node: i32, peer: PeerId) {
        self.send_call_at(call, node, peer, Instant::now())
    }

    /// [`Inner::send_call`] with the time just read by the caller (one clock read per
    /// request on the common path).
    fn send_call_at(self: &Arc<Self>, call: Call, node: i32, peer: PeerId, now: Instant) {
        let remaining = call.deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return self.finish(call, Err(timeout_error("request deadline")));
        }
        let pkt = WritePacket::request_bytes(call.command, call.body.clone());
        let token = self.in_flight.put(Sent { call, node, peer });
        // Not under the slab's lock: an immediate failure answers on this thread.
        self.nio
            .send_request_handler_raw_at(Some(peer), pkt, now, remaining, &self.handler, token);
    }

    pub(crate) fn on_result(
        self: &Arc<Self>,
        mut call: Call,
        node: i32,
        peer: PeerId,
        r: Result<ReadPacket, NetError>,
    ) {
        // the clock is read only when a retry is possible (not on a plain success)
        let can_retry =
            |call: &Call| call.opts.retryable && !call.retried && Instant::now() < call.deadline;
        let p = match r {
            Ok(p) => p,
            Err(NetError::FlowControl { .. }) => {
                // The network layer's own limit (lowered by a server hint): wait a
                // little and send again, within the deadline.
                let at = Instant::now() + Duration::from_millis(2);
                if at >= call.deadline {
                    return self.finish(call, Err(timeout_error("request deadline")));
                }
                let me = self.clone();
                self.timer
                    .schedule(at, move || me.send_call(call, node, peer));
                return;
            }
            Err(e) => {
                self.mark_failed(call.group, node, false);
                return self.finish(call, Err(KvError::Net(e)));
            }
        };
        match p.resp_code {
            CmdCodes::SUCCESS => self.finish(call, Ok(p)),
            CmdCodes::NOT_RAFT_LEADER => {
                let hint = ops::leader_hint(&p).filter(|h| self.is_member(call.group, *h));
                match hint {
                    Some(h) => {
                        {
                            let mut st = lock(&self.state);
                            if let Some(g) = st.groups.get_mut(&call.group) {
                                g.leader = Some(h);
                                g.leader_fail = None;
                            }
                        }
                        log::info!(
                            "group {}: node {node} is not the leader, redirected to {h}",
                            call.group
                        );
                        if can_retry(&call) {
                            call.retried = true;
                            match self.peer_of(h) {
                                Some(hp) => self.send_call(call, h, hp),
                                None => self.route(call),
                            }
                        } else {
                            self.finish(call, Err(server_error(&p)))
                        }
                    }
                    None => {
                        // No usable hint: the node does not know the leader (an
                        // election, an expired lease, or it left the group). The
                        // reference keeps sending to it; we forget it and find the
                        // leader again, so a removed node cannot hold the group.
                        self.mark_failed(call.group, node, true);
                        if can_retry(&call) {
                            call.retried = true;
                            self.route(call)
                        } else {
                            self.finish(call, Err(server_error(&p)))
                        }
                    }
                }
            }
            CmdCodes::NOT_INIT
            | CmdCodes::STOPPING
            | CmdCodes::RAFT_GROUP_NOT_FOUND
            | CmdCodes::RAFT_GROUP_STOPPED
            | CmdCodes::RAFT_GROUP_NOT_INIT => {
                self.mark_failed(call.group, node, true);
                if can_retry(&call) {
                    call.retried = true;
                    self.route(call)
                } else {
                    self.finish(call, Err(server_error(&p)))
                }
            }
            CmdCodes::SYS_ERROR | CmdCodes::FLOW_CONTROL => {
                self.mark_failed(call.group, node, false);
                self.finish(call, Err(server_error(&p)))
            }
            _ => self.finish(call, Err(server_error(&p))),
        }
    }
}
