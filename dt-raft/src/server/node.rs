//! The node layer (`raft.md` §3.1, §14.6): [`NodeManager`] keeps the table of all known
//! servers (id → `host:port`, a peer of the replicate [`NioClient`], a readiness status
//! `(ready, epoch)` and a use count), pings every other node each `ping_interval` with
//! NODE_PING (40), answers the pings of others, and runs the self check at start.
//!
//! The table sits behind one mutex that is taken by the ping thread every interval, by
//! ping results, by admin commands and by group creation/removal: never on the path of a
//! replicated entry. The outbound Raft transport resolves node ids to peers through
//! [`NodeManager::peer_of`]; a [`NodeManager::version`] counter (an atomic, bumped on
//! every change of the node set) lets a caller cache that mapping and re-read it only when
//! it changed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_codec::PbError;
use dt_net::{NetError, NioClient, PeerId, ProcessInfo, WriteBody, WritePacket};

use super::config::resolve;
use crate::rpc::{NodePing, RaftCommands, RaftNode, RpcBody};

/// Readiness of a node as the node pings see it: `ready` flips with ping results, `epoch`
/// grows by one each time the node becomes ready (so a group can tell "still the same
/// connection" from "it went away and came back").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// The last ping succeeded.
    pub ready: bool,
    /// Times the node became ready.
    pub epoch: u32,
}

/// One row of the node table, as [`NodeManager::nodes`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Id and replicate address.
    pub node: RaftNode,
    /// Whether this is the local node.
    pub is_self: bool,
    /// Ping readiness.
    pub status: NodeStatus,
    /// Number of group membership sets that reference the node.
    pub use_count: u32,
}

/// What can go wrong in the node layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// ADD_NODE with an id that exists with another address.
    AddressConflict {
        /// The node id.
        node_id: i32,
        /// The address it has.
        existing: String,
        /// The address asked for.
        requested: String,
    },
    /// REMOVE_NODE of the local node.
    RemoveSelf,
    /// REMOVE_NODE of a node some group still references.
    InUse {
        /// The node id.
        node_id: i32,
        /// How many membership sets reference it.
        use_count: u32,
    },
    /// A group names a node that is not in the table.
    NotExist(i32),
    /// The node's address cannot be resolved.
    BadAddress(String),
    /// A node id that is not positive.
    BadNodeId(i32),
    /// A ping answer contradicts the configuration (wrong id, same process UUID as a
    /// different node, or a self check answered by another process).
    ConfigMismatch(String),
    /// The RPC failed.
    Net(NetError),
    /// The answer could not be decoded.
    Decode(PbError),
    /// The node manager is stopped.
    Stopped,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::AddressConflict {
                node_id,
                existing,
                requested,
            } => write!(
                f,
                "node {node_id} already exist but host/port is not same, new node is \
                 {requested}, exist one is {existing}"
            ),
            NodeError::RemoveSelf => write!(f, "can not remove self"),
            NodeError::InUse { use_count, .. } => {
                write!(f, "node is using, current ref count: {use_count}")
            }
            NodeError::NotExist(id) => write!(f, "node not exist: {id}"),
            NodeError::BadAddress(s) => write!(f, "bad node address: {s}"),
            NodeError::BadNodeId(id) => write!(f, "node id must be positive: {id}"),
            NodeError::ConfigMismatch(s) => write!(f, "config fail: {s}"),
            NodeError::Net(e) => write!(f, "node ping failed: {e}"),
            NodeError::Decode(e) => write!(f, "bad node ping answer: {e}"),
            NodeError::Stopped => write!(f, "node manager stopped"),
        }
    }
}

impl std::error::Error for NodeError {}

/// Timing of the node layer (from [`super::RaftServerConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct NodeTiming {
    /// Period of node pings.
    pub ping_interval: Duration,
    /// Timeout of one ping.
    pub rpc_timeout: Duration,
    /// Added to `rpc_timeout` for the self check's wait.
    pub connect_timeout: Duration,
}

struct NodeEntry {
    node: RaftNode,
    addr: SocketAddr,
    peer: Option<PeerId>,
    is_self: bool,
    status: NodeStatus,
    use_count: u32,
    pinging: bool,
}

#[derive(Default)]
struct Table {
    nodes: BTreeMap<i32, NodeEntry>,
    ready_nodes: usize,
    ping_ready: bool,
}

struct Inner {
    self_id: i32,
    uuid: ProcessInfo,
    client: Arc<NioClient>,
    timing: NodeTiming,
    start_ready_quorum: usize,
    table: Mutex<Table>,
    cond: Condvar,
    version: AtomicU64,
    stop: AtomicBool,
}

/// The node table and the node pings. Cheap to clone (shared).
#[derive(Clone)]
pub struct NodeManager {
    inner: Arc<Inner>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl fmt::Debug for NodeManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeManager(self={})", self.inner.self_id)
    }
}

impl NodeManager {
    /// A manager for `nodes` (which must hold `self_id`), pinging through `client`.
    /// Addresses are resolved here; the nodes become peers of the client at
    /// [`NodeManager::register_peers`] and are pinged from [`NodeManager::start_ping`]. "Node-ping ready" is reached once
    /// `floor(N/2)+1` nodes of this initial list are ready.
    pub fn new(
        self_id: i32,
        nodes: &[RaftNode],
        client: Arc<NioClient>,
        timing: NodeTiming,
    ) -> Result<NodeManager, NodeError> {
        let inner = Arc::new(Inner {
            self_id,
            uuid: ProcessInfo::random(),
            client,
            timing,
            start_ready_quorum: nodes.len() / 2 + 1,
            table: Mutex::new(Table::default()),
            cond: Condvar::new(),
            version: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let m = NodeManager {
            inner,
            thread: Arc::default(),
        };
        if !nodes.iter().any(|n| n.node_id == self_id) {
            return Err(NodeError::NotExist(self_id));
        }
        for n in nodes {
            m.insert(n.clone())?;
        }
        Ok(m)
    }

    /// Registers every other node as a peer of the client (which must be started); called
    /// once at server start. Nodes added later get their peer at once.
    pub fn register_peers(&self) -> Result<(), NodeError> {
        let mut t = self.lock();
        for e in t.nodes.values_mut() {
            if !e.is_self && e.peer.is_none() {
                e.peer = Some(
                    self.inner
                        .client
                        .add_peer(e.addr)
                        .map_err(NodeError::Net)?
                        .id,
                );
            }
        }
        self.inner.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, node: RaftNode) -> Result<(), NodeError> {
        let addr = resolve(&node.host, node.port).map_err(NodeError::BadAddress)?;
        let is_self = node.node_id == self.inner.self_id;
        let mut t = self.lock();
        t.nodes.insert(
            node.node_id,
            NodeEntry {
                node,
                addr,
                peer: None,
                is_self,
                status: NodeStatus::default(),
                use_count: 0,
                pinging: false,
            },
        );
        self.inner.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// This node's id.
    pub fn self_id(&self) -> i32 {
        self.inner.self_id
    }

    /// This process's node UUID (sent in NODE_PING; not the handshake UUID).
    pub fn uuid(&self) -> ProcessInfo {
        self.inner.uuid
    }

    /// The replicate client.
    pub fn client(&self) -> &Arc<NioClient> {
        &self.inner.client
    }

    /// Bumped on every change of the node set (add, remove); lets callers cache
    /// [`NodeManager::peer_of`].
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// The client peer of a node (`None` for the local node and unknown ids).
    pub fn peer_of(&self, node_id: i32) -> Option<PeerId> {
        self.lock().nodes.get(&node_id).and_then(|e| e.peer)
    }

    /// The replicate address of a node.
    pub fn node(&self, node_id: i32) -> Option<RaftNode> {
        self.lock().nodes.get(&node_id).map(|e| e.node.clone())
    }

    /// The ping status of a node.
    pub fn status_of(&self, node_id: i32) -> Option<NodeStatus> {
        self.lock().nodes.get(&node_id).map(|e| e.status)
    }

    /// All nodes, by id.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.lock()
            .nodes
            .values()
            .map(|e| NodeInfo {
                node: e.node.clone(),
                is_self: e.is_self,
                status: e.status,
                use_count: e.use_count,
            })
            .collect()
    }

    /// Ids and addresses of all nodes, by id (LIST_NODES).
    pub fn list_nodes(&self) -> Vec<RaftNode> {
        self.lock().nodes.values().map(|e| e.node.clone()).collect()
    }

    /// Number of ready nodes.
    pub fn ready_nodes(&self) -> usize {
        self.lock().ready_nodes
    }

    /// Whether node-ping ready has been reached (it stays reached).
    pub fn is_ping_ready(&self) -> bool {
        self.lock().ping_ready
    }

    /// Waits until node-ping ready (true) or `timeout` passes or the manager stops.
    pub fn wait_ping_ready(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut t = self.lock();
        loop {
            if t.ping_ready {
                return true;
            }
            if self.inner.stop.load(Ordering::Acquire) {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            t = self
                .inner
                .cond
                .wait_timeout(t, (end - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Checks that every id is a known node.
    pub fn check_nodes(&self, ids: &[i32]) -> Result<(), NodeError> {
        let t = self.lock();
        match ids.iter().find(|id| !t.nodes.contains_key(id)) {
            Some(id) => Err(NodeError::NotExist(*id)),
            None => Ok(()),
        }
    }

    /// Adds `delta` (±1) to the use count of each node in each set; all ids must exist
    /// (checked first, nothing changed on error).
    pub fn add_use(&self, sets: &[&[i32]], delta: i32) -> Result<(), NodeError> {
        let mut t = self.lock();
        for id in sets.iter().flat_map(|s| s.iter()) {
            if !t.nodes.contains_key(id) {
                return Err(NodeError::NotExist(*id));
            }
        }
        for id in sets.iter().flat_map(|s| s.iter()) {
            if let Some(e) = t.nodes.get_mut(id) {
                e.use_count = e.use_count.saturating_add_signed(delta);
            }
        }
        Ok(())
    }

    /// ADD_NODE: registers a node as a peer (pings connect it and mark it ready).
    /// Idempotent for the same id and address; the same id with another address fails.
    pub fn add_node(&self, node: RaftNode) -> Result<(), NodeError> {
        if let Some(e) = self.lock().nodes.get(&node.node_id) {
            return if e.node.host == node.host && e.node.port == node.port {
                Ok(())
            } else {
                Err(NodeError::AddressConflict {
                    node_id: node.node_id,
                    existing: format!("{}:{}", e.node.host, e.node.port),
                    requested: format!("{}:{}", node.host, node.port),
                })
            };
        }
        if node.node_id <= 0 {
            return Err(NodeError::BadNodeId(node.node_id));
        }
        let addr = resolve(&node.host, node.port).map_err(NodeError::BadAddress)?;
        let mut t = self.lock();
        // Re-check under the lock: another admin call may have added it meanwhile.
        if let Some(e) = t.nodes.get(&node.node_id) {
            return if e.node.host == node.host && e.node.port == node.port {
                Ok(())
            } else {
                Err(NodeError::AddressConflict {
                    node_id: node.node_id,
                    existing: format!("{}:{}", e.node.host, e.node.port),
                    requested: format!("{}:{}", node.host, node.port),
                })
            };
        }
        let peer = self.inner.client.add_peer(addr).map_err(NodeError::Net)?.id;
        log::info!("node {} added: {}:{}", node.node_id, node.host, node.port);
        t.nodes.insert(
            node.node_id,
            NodeEntry {
                node,
                addr,
                peer: Some(peer),
                is_self: false,
                status: NodeStatus::default(),
                use_count: 0,
                pinging: false,
            },
        );
        self.inner.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// REMOVE_NODE: removes a node no group references. Unknown ids succeed; the local
    /// node and nodes in use fail.
    pub fn remove_node(&self, node_id: i32) -> Result<(), NodeError> {
        if node_id == self.inner.self_id {
            return Err(NodeError::RemoveSelf);
        }
        let mut t = self.lock();
        let Some(e) = t.nodes.get(&node_id) else {
            log::warn!("remove node {node_id}: not exist");
            return Ok(());
        };
        if e.use_count > 0 {
            return Err(NodeError::InUse {
                node_id,
                use_count: e.use_count,
            });
        }
        let e = t.nodes.remove(&node_id).expect("checked above");
        if e.status.ready {
            t.ready_nodes -= 1;
        }
        self.inner.version.fetch_add(1, Ordering::Release);
        drop(t);
        if let Some(p) = e.peer {
            let _ = self.inner.client.remove_peer(p);
        }
        log::info!("node {node_id} removed");
        Ok(())
    }

    /// Answers a NODE_PING from another server: our id, its id and our UUID, or an error
    /// text when the sender is not in our table (`node not found: <id>`).
    pub fn answer_ping(&self, req: &NodePing) -> Result<NodePing, String> {
        if !self.lock().nodes.contains_key(&req.local_node_id) {
            return Err(format!("node not found: {}", req.local_node_id));
        }
        Ok(NodePing {
            local_node_id: self.inner.self_id,
            remote_node_id: req.local_node_id,
            uuid_high: self.inner.uuid.uuid1 as i64,
            uuid_low: self.inner.uuid.uuid2 as i64,
        })
    }

    /// The self check (§3.1): pings our own configured address through the replicate
    /// client and requires our own UUID back, then disconnects. Marks the local node
    /// ready.
    pub fn check_self(&self) -> Result<(), NodeError> {
        let addr = {
            let t = self.lock();
            t.nodes
                .get(&self.inner.self_id)
                .map(|e| e.addr)
                .ok_or(NodeError::NotExist(self.inner.self_id))?
        };
        let peer = self.inner.client.add_peer(addr).map_err(NodeError::Net)?;
        let timeout = self.inner.timing.connect_timeout + self.inner.timing.rpc_timeout;
        let r = self
            .inner
            .client
            .send_request(Some(peer.id), self.ping_packet(self.inner.self_id), timeout)
            .wait()
            .map_err(NodeError::Net)
            .and_then(|p| NodePing::decode(&p.body).map_err(NodeError::Decode))
            .and_then(|resp| check_answer(&self.inner, self.inner.self_id, true, &resp));
        let _ = self.inner.client.remove_peer(peer.id);
        r?;
        let mut t = self.lock();
        Inner::update_status(&self.inner, &mut t, self.inner.self_id, true);
        Ok(())
    }

    fn ping_packet(&self, to: i32) -> WritePacket {
        WritePacket::request(
            RaftCommands::NODE_PING,
            WriteBody::Encodable(Box::new(NodePing {
                local_node_id: self.inner.self_id,
                remote_node_id: to,
                uuid_high: self.inner.uuid.uuid1 as i64,
                uuid_low: self.inner.uuid.uuid2 as i64,
            })),
        )
    }

    /// Starts the ping thread: every `ping_interval`, each other node not being pinged is
    /// pinged. Idempotent.
    pub fn start_ping(&self) -> std::io::Result<()> {
        let mut th = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if th.is_some() {
            return Ok(());
        }
        let m = self.clone();
        *th = Some(
            std::thread::Builder::new()
                .name(format!("node-ping-{}", self.inner.self_id))
                .spawn(move || m.ping_loop())?,
        );
        Ok(())
    }

    fn ping_loop(&self) {
        loop {
            self.ping_all();
            let end = Instant::now() + self.inner.timing.ping_interval;
            let mut t = self.lock();
            loop {
                if self.inner.stop.load(Ordering::Acquire) {
                    return;
                }
                let now = Instant::now();
                if now >= end {
                    break;
                }
                t = self
                    .inner
                    .cond
                    .wait_timeout(t, end - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }

    /// Pings every other node that is not being pinged now (one round).
    pub fn ping_all(&self) {
        let mut todo = Vec::new();
        {
            let mut t = self.lock();
            for e in t.nodes.values_mut() {
                if !e.is_self && !e.pinging {
                    if let Some(p) = e.peer {
                        e.pinging = true;
                        todo.push((e.node.node_id, p));
                    }
                }
            }
        }
        for (id, peer) in todo {
            let inner = self.inner.clone();
            self.inner.client.send_request_cb(
                Some(peer),
                self.ping_packet(id),
                self.inner.timing.rpc_timeout,
                move |r| {
                    let r = r
                        .map_err(NodeError::Net)
                        .and_then(|p| NodePing::decode(&p.body).map_err(NodeError::Decode))
                        .and_then(|resp| check_answer(&inner, id, false, &resp));
                    let mut t = inner.table.lock().unwrap_or_else(|p| p.into_inner());
                    match t.nodes.get_mut(&id) {
                        Some(e) if e.peer == Some(peer) => e.pinging = false,
                        _ => return, // removed (or replaced) meanwhile
                    }
                    if let Err(e) = &r {
                        log::warn!(
                            "node ping failed, localId={}, remoteId={id}: {e}",
                            inner.self_id
                        );
                    }
                    Inner::update_status(&inner, &mut t, id, r.is_ok());
                },
            );
        }
    }

    /// Stops the ping thread (outstanding pings finish or time out in the client).
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        {
            let _t = self.lock();
            self.inner.cond.notify_all();
        }
        let th = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(th) = th {
            let _ = th.join();
        }
    }
}

impl Inner {
    fn update_status(inner: &Inner, t: &mut Table, id: i32, ready: bool) {
        let Some(e) = t.nodes.get_mut(&id) else {
            return;
        };
        if e.status.ready == ready {
            return;
        }
        if ready {
            e.status = NodeStatus {
                ready: true,
                epoch: e.status.epoch.wrapping_add(1),
            };
            t.ready_nodes += 1;
        } else {
            e.status.ready = false;
            t.ready_nodes -= 1;
        }
        if !t.ping_ready && t.ready_nodes >= inner.start_ready_quorum {
            log::info!("node {}: node ping ready", inner.self_id);
            t.ping_ready = true;
        }
        inner.cond.notify_all();
    }
}

fn check_answer(inner: &Inner, expect: i32, is_self: bool, r: &NodePing) -> Result<(), NodeError> {
    if r.local_node_id != expect {
        return Err(NodeError::ConfigMismatch(format!(
            "node id not match. expect {expect}, but {}",
            r.local_node_id
        )));
    }
    let same = r.uuid_high as u64 == inner.uuid.uuid1 && r.uuid_low as u64 == inner.uuid.uuid2;
    if is_self && !same {
        return Err(NodeError::ConfigMismatch("self node uuid not match".into()));
    }
    if !is_self && same {
        return Err(NodeError::ConfigMismatch("node uuid match".into()));
    }
    Ok(())
}
