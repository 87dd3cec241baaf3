//! In-process doubles of the driver's seams, for tests, examples and simulations:
//!
//! * [`LocalNetwork`]: a network between groups of one process. Each node gets a
//!   [`RaftTransport`] ([`LocalNetwork::transport`]); requests are delivered through
//!   the target group's [`GroupInbox`] and answered through its responder, so it works
//!   between dispatcher threads and on one [`dt_fiber::Simulation`] thread alike
//!   (deterministically there: no thread, no clock of its own). Nodes can be taken
//!   down and partitioned.
//! * [`MemRaftLog`] over a [`MemLogStore`]: a minimal in-memory [`RaftLog`] whose
//!   futures are ready at once (keep the store to "restart" a node with its data).
//! * [`MemLogFactory`]: a [`RaftFactory`] using it; [`CounterSm`]: a trivial state
//!   machine adding decimal numbers, which records what it applied.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::oneshot::oneshot;
use super::transport::{GroupInbox, InboundError, RaftTransport, RpcError, RpcFuture};
use super::{RaftGroup, RaftGroupConfig};
use crate::core::{AppendResp, Index, NodeId, TransferReq, VoteReq, VoteResp};
use crate::raft_log::{LogFuture, LogIterator, RaftLog};
use crate::rpc;
use crate::sm::{
    BytesSnapshot, Exec, ExecEntry, RaftError, RaftFactory, SmError, SmFuture, Snapshot,
    SnapshotChunk, SnapshotInfo, StateMachine,
};
use crate::store::{LogItem, PersistedState, StoreError, StoreResult};
use bytes::Bytes;

/// SYS_ERROR: the code a refused request is answered with (wire-protocol §1.2).
const SYS_ERROR: i32 = 1;

#[derive(Default)]
struct NetState {
    inboxes: BTreeMap<(NodeId, i32), GroupInbox>,
    down: BTreeSet<NodeId>,
    /// Links that drop everything (both directions).
    cut: BTreeSet<(NodeId, NodeId)>,
}

/// An in-process network of Raft nodes (see the [module documentation](self)).
#[derive(Clone, Default)]
pub struct LocalNetwork {
    st: Arc<Mutex<NetState>>,
}

impl std::fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalNetwork")
    }
}

impl LocalNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The transport node `node` sends with.
    pub fn transport(&self, node: NodeId) -> Rc<dyn RaftTransport> {
        Rc::new(LocalTransport {
            net: self.clone(),
            from: node,
        })
    }

    /// Connects `group` (running on node `group.node_id()`) to the network and marks
    /// the nodes of the same group ready for each other (what raft pings would do).
    pub fn register<O: Send + 'static>(&self, node: NodeId, group: &RaftGroup<O>) {
        self.register_inbox(node, group.inbox().clone())
    }

    /// [`LocalNetwork::register`] with a bare inbox.
    pub fn register_inbox(&self, node: NodeId, inbox: GroupInbox) {
        let gid = inbox.group_id();
        let others: Vec<(NodeId, GroupInbox)> = {
            let mut st = self.lock();
            st.down.remove(&node);
            st.inboxes.insert((node, gid), inbox.clone());
            st.inboxes
                .iter()
                .filter(|((n, g), _)| *g == gid && *n != node)
                .map(|((n, _), i)| (*n, i.clone()))
                .collect()
        };
        for (n, other) in others {
            other.set_member_ready(node, true);
            inbox.set_member_ready(n, true);
        }
    }

    /// Takes node `node` off the network (its groups get no requests and no answers).
    pub fn set_down(&self, node: NodeId) {
        let mut st = self.lock();
        st.down.insert(node);
        st.inboxes.retain(|(n, _), _| *n != node);
    }

    /// Cuts (or restores) the link between `a` and `b`.
    pub fn set_cut(&self, a: NodeId, b: NodeId, cut: bool) {
        let mut st = self.lock();
        let k = (a.min(b), a.max(b));
        if cut {
            st.cut.insert(k);
        } else {
            st.cut.remove(&k);
        }
    }

    fn route(&self, from: NodeId, to: NodeId, group: i32) -> Result<GroupInbox, RpcError> {
        let st = self.lock();
        if st.down.contains(&from) || st.down.contains(&to) {
            return Err(RpcError::NotConnected(format!("node {to} is down")));
        }
        if st.cut.contains(&(from.min(to), from.max(to))) {
            return Err(RpcError::NotConnected(format!("link {from}-{to} is cut")));
        }
        st.inboxes
            .get(&(to, group))
            .cloned()
            .ok_or_else(|| RpcError::NotConnected(format!("node {to} has no group {group}")))
    }
}

fn inbound_err(e: InboundError) -> RpcError {
    RpcError::Remote {
        code: SYS_ERROR,
        message: e.to_string(),
    }
}

struct LocalTransport {
    net: LocalNetwork,
    from: NodeId,
}

impl LocalTransport {
    /// Sends through `deliver` and maps the reply with `map`.
    fn call<R: Send + 'static, T: 'static>(
        &self,
        to: NodeId,
        group: i32,
        deliver: impl FnOnce(&GroupInbox, Box<dyn FnOnce(Result<R, InboundError>) + Send>),
        map: impl FnOnce(R) -> Result<T, RpcError> + 'static,
    ) -> RpcFuture<T> {
        let inbox = match self.net.route(self.from, to, group) {
            Ok(i) => i,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let (tx, rx) = oneshot();
        deliver(&inbox, Box::new(move |r| tx.send(r)));
        let net = self.net.clone();
        let from = self.from;
        Box::pin(async move {
            let r = rx.await;
            // an answer crossing a link cut (or a node taken down) meanwhile is lost
            net.route(from, to, group)?;
            match r {
                Some(Ok(v)) => map(v),
                Some(Err(e)) => Err(inbound_err(e)),
                None => Err(RpcError::NotConnected(format!(
                    "node {to} dropped the request"
                ))),
            }
        })
    }
}

impl RaftTransport for LocalTransport {
    fn send_vote(&self, to: NodeId, group_id: i32, req: VoteReq) -> RpcFuture<VoteResp> {
        self.call(
            to,
            group_id,
            |i, r| i.vote(req, r),
            |v| {
                v.map_err(|refused| RpcError::Remote {
                    code: SYS_ERROR,
                    message: format!("{refused:?}"),
                })
            },
        )
    }

    fn send_append(&self, to: NodeId, req: rpc::AppendReq) -> RpcFuture<AppendResp> {
        let gid = req.group_id;
        self.call(to, gid, |i, r| i.append(req, r), Ok)
    }

    fn send_transfer_leader(&self, to: NodeId, group_id: i32, req: TransferReq) -> RpcFuture<()> {
        self.call(
            to,
            group_id,
            |i, r| i.transfer_leader(req, r),
            |v| {
                v.map_err(|e| RpcError::Remote {
                    code: SYS_ERROR,
                    message: format!("{e:?}"),
                })
            },
        )
    }

    fn query_status(&self, to: NodeId, group_id: i32) -> RpcFuture<rpc::QueryStatusResp> {
        self.call(to, group_id, |i, r| i.query_status(r), Ok)
    }

    fn send_install_snapshot(
        &self,
        to: NodeId,
        req: rpc::InstallSnapshotReq,
    ) -> RpcFuture<AppendResp> {
        let gid = req.group_id;
        self.call(to, gid, |i, r| i.install_snapshot(req, r), Ok)
    }
}

// ------------------------------------------------------------------ in-memory log

#[derive(Default)]
struct MemData {
    items: Vec<LogItem>,
    term: u32,
    vote: i32,
    commit: u64,
    open: bool,
}

/// The contents of a [`MemRaftLog`]: entries and status. Clone it to keep a node's
/// "disk" across a restart.
#[derive(Clone, Default)]
pub struct MemLogStore {
    d: Arc<Mutex<MemData>>,
}

impl std::fmt::Debug for MemLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemLogStore")
    }
}

impl MemLogStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemData> {
        self.d.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (index, term) of every entry.
    pub fn terms(&self) -> Vec<(Index, u32)> {
        self.lock()
            .items
            .iter()
            .map(|i| (i.index, i.term))
            .collect()
    }
}

/// A [`RaftLog`] in memory (see the [module documentation](self)). Every write is
/// "durable" at once.
#[derive(Debug)]
pub struct MemRaftLog {
    store: MemLogStore,
}

impl MemRaftLog {
    /// A log over `store`.
    pub fn new(store: MemLogStore) -> Self {
        MemRaftLog { store }
    }
}

fn ready<'a, T: 'a>(v: StoreResult<T>) -> LogFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl RaftLog for MemRaftLog {
    fn init(&self) -> LogFuture<'_, Option<(u32, u64)>> {
        let mut d = self.store.lock();
        if d.open {
            return ready(Err(StoreError::InvalidArgument(
                "the log is already open".into(),
            )));
        }
        d.open = true;
        let last = d.items.last().map_or((0, 0), |i| (i.term, i.index));
        ready(Ok(Some(last)))
    }

    fn append(&self, items: Vec<LogItem>) -> LogFuture<'_, u64> {
        let mut d = self.store.lock();
        for it in items {
            let next = d.items.len() as u64 + 1;
            if it.index != next {
                return ready(Err(StoreError::InvalidArgument(format!(
                    "append of {} where {next} was expected",
                    it.index
                ))));
            }
            d.items.push(it);
        }
        ready(Ok(d.items.len() as u64))
    }

    fn truncate_tail(&self, index: u64) -> LogFuture<'_, ()> {
        let mut d = self.store.lock();
        if index <= d.commit {
            return ready(Err(StoreError::InvalidArgument(format!(
                "truncating at {index} would remove committed entries (commit {})",
                d.commit
            ))));
        }
        let keep = ((index.max(1) - 1) as usize).min(d.items.len());
        d.items.truncate(keep);
        ready(Ok(()))
    }

    fn open_iterator(&self) -> Box<dyn LogIterator + '_> {
        Box::new(MemIter { log: self })
    }

    fn try_find_match_pos(&self, term: u32, index: u64) -> LogFuture<'_, Option<(u32, u64)>> {
        let d = self.store.lock();
        let top = index.min(d.items.len() as u64);
        let mut found = None;
        for i in (1..=top).rev() {
            let t = d.items[i as usize - 1].term;
            if (t <= term && i < index) || (t == term && i == index) {
                found = Some((t, i));
                break;
            }
        }
        ready(Ok(found))
    }

    fn mark_truncate_by_index(&self, _index: u64, _delay: Duration) {}

    fn mark_truncate_by_timestamp(&self, _ts: i64, _bound: u64, _delay: Duration) {}

    fn begin_install(&self) -> LogFuture<'_, ()> {
        ready(Err(StoreError::InvalidArgument(
            "MemRaftLog has no install".into(),
        )))
    }

    fn finish_install(&self, _next_index: u64, _next_pos: u64) -> LogFuture<'_, ()> {
        ready(Err(StoreError::InvalidArgument(
            "MemRaftLog has no install".into(),
        )))
    }

    fn load_next_item_pos(&self, _index: u64) -> LogFuture<'_, u64> {
        ready(Ok(0))
    }

    fn set_commit_index(&self, index: u64) {
        let mut d = self.store.lock();
        let last = d.items.len() as u64;
        d.commit = d.commit.max(index.min(last));
    }

    fn persisted_index(&self) -> u64 {
        self.store.lock().items.len() as u64
    }

    fn close(&self) -> LogFuture<'_, ()> {
        self.store.lock().open = false;
        ready(Ok(()))
    }

    fn persisted_state(&self) -> StoreResult<PersistedState> {
        let d = self.store.lock();
        Ok(PersistedState {
            current_term: d.term,
            voted_for: d.vote,
            commit_index: d.commit,
            install_snapshot: false,
            first_valid_index: 1,
            install_vote: None,
        })
    }

    fn persist_term_vote(&self, current_term: u32, voted_for: i32) -> LogFuture<'_, ()> {
        let mut d = self.store.lock();
        d.term = current_term;
        d.vote = voted_for;
        ready(Ok(()))
    }
}

impl Drop for MemRaftLog {
    fn drop(&mut self) {
        self.store.lock().open = false;
    }
}

struct MemIter<'a> {
    log: &'a MemRaftLog,
}

impl LogIterator for MemIter<'_> {
    fn next(&mut self, index: u64, limit: usize, _bytes: usize) -> LogFuture<'_, Vec<LogItem>> {
        let d = self.log.store.lock();
        let len = d.items.len() as u64;
        if index == 0 || index > len {
            return ready(Err(StoreError::NotFound {
                index,
                reason: "beyond the end of the log".into(),
            }));
        }
        let start = index as usize - 1;
        let end = (start + limit.max(1)).min(d.items.len());
        ready(Ok(d.items[start..end].to_vec()))
    }
}

/// A [`RaftFactory`] giving each group a [`MemRaftLog`] over a store kept per group id
/// (so a group started again gets its entries back) and a state machine from `make_sm`.
pub struct MemLogFactory<S> {
    make_sm: Box<dyn Fn() -> S + Send + Sync>,
    stores: Mutex<BTreeMap<i32, MemLogStore>>,
}

impl<S: StateMachine> MemLogFactory<S> {
    /// A factory building state machines with `make_sm`.
    pub fn new(make_sm: impl Fn() -> S + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(MemLogFactory {
            make_sm: Box::new(make_sm),
            stores: Mutex::new(BTreeMap::new()),
        })
    }

    /// The store of group `group_id` (created on first use).
    pub fn store(&self, group_id: i32) -> MemLogStore {
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(group_id)
            .or_default()
            .clone()
    }
}

impl<S: StateMachine> RaftFactory for MemLogFactory<S> {
    type Sm = S;

    fn create_state_machine(&self, _cfg: &RaftGroupConfig) -> Result<S, RaftError> {
        Ok((self.make_sm)())
    }

    fn create_raft_log(&self, cfg: &RaftGroupConfig) -> Result<Box<dyn RaftLog>, RaftError> {
        Ok(Box::new(MemRaftLog::new(self.store(cfg.group_id))))
    }

    /// No snapshot files: the log is in memory.
    fn create_snapshot_manager(&self, _cfg: &RaftGroupConfig) -> Option<super::SnapshotManager> {
        None
    }
}

type RecordEntry = (Index, Vec<u8>);

/// What [`CounterSm`] executed: `(index, body)` in order, shared with the test.
pub type AppliedLog = Arc<Mutex<Vec<(Index, Vec<u8>)>>>;

/// A trivial state machine: each NORMAL entry's body is a decimal number added to a
/// total; the output is the new total. Read-only entries return the total. It records
/// `(index, body)` of everything it executed in [`CounterSm::applied`].
///
/// It supports snapshots: the snapshot holds the total and the record, so a node
/// caught up by an install (or recovered from a snapshot) has the same record as the
/// leader.
#[derive(Debug, Default)]
pub struct CounterSm {
    total: i64,
    applied: AppliedLog,
    /// Bytes of an install in progress.
    installing: Vec<u8>,
}

impl CounterSm {
    /// A counter at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter recording into `applied` (shared with the test).
    pub fn recording(applied: AppliedLog) -> Self {
        CounterSm {
            total: 0,
            applied,
            installing: Vec::new(),
        }
    }

    /// The current total.
    pub fn total(&self) -> i64 {
        self.total
    }

    fn encode(&self) -> Vec<u8> {
        let rec = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(12 + rec.len() * 16);
        out.extend_from_slice(&self.total.to_le_bytes());
        out.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        for (i, b) in rec.iter() {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        out
    }

    fn decode(data: &[u8]) -> Result<(i64, Vec<RecordEntry>), SmError> {
        fn take<'a>(d: &mut &'a [u8], n: usize) -> Result<&'a [u8], SmError> {
            if d.len() < n {
                return Err(SmError::Rejected("counter snapshot truncated".into()));
            }
            let (a, b) = d.split_at(n);
            *d = b;
            Ok(a)
        }
        let mut d = data;
        let total = i64::from_le_bytes(take(&mut d, 8)?.try_into().expect("8 bytes"));
        let n = u32::from_le_bytes(take(&mut d, 4)?.try_into().expect("4 bytes")) as usize;
        let mut rec = Vec::with_capacity(n.min(d.len() / 12));
        for _ in 0..n {
            let i = u64::from_le_bytes(take(&mut d, 8)?.try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(take(&mut d, 4)?.try_into().expect("4 bytes"));
            rec.push((i, take(&mut d, len as usize)?.to_vec()));
        }
        if !d.is_empty() {
            return Err(SmError::Rejected(
                "counter snapshot has trailing bytes".into(),
            ));
        }
        Ok((total, rec))
    }

    /// The shared record of executed entries.
    pub fn applied(&self) -> AppliedLog {
        self.applied.clone()
    }
}

impl StateMachine for CounterSm {
    type Output = i64;

    fn exec(&mut self, e: &ExecEntry<'_>) -> Exec<i64> {
        if e.is_read_only() {
            return Exec::Done(Ok(self.total));
        }
        let n: i64 = std::str::from_utf8(e.body)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        self.total += n;
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((e.index, e.body.to_vec()));
        Exec::Done(Ok(self.total))
    }

    fn take_snapshot(&mut self, info: &SnapshotInfo) -> SmFuture<'static, Box<dyn Snapshot>> {
        let snap: Box<dyn Snapshot> =
            Box::new(BytesSnapshot::new(info.clone(), Bytes::from(self.encode())));
        Box::pin(async move { Ok(snap) })
    }

    fn install_snapshot(&mut self, chunk: SnapshotChunk<'_>) -> SmFuture<'static, ()> {
        if chunk.offset == 0 {
            self.installing.clear();
        }
        if chunk.offset != self.installing.len() as u64 {
            let why = format!(
                "chunk at {} after {} bytes",
                chunk.offset,
                self.installing.len()
            );
            return Box::pin(async move { Err(SmError::Rejected(why)) });
        }
        self.installing.extend_from_slice(chunk.data);
        let mut r = Ok(());
        if chunk.done {
            match Self::decode(&self.installing) {
                Ok((total, rec)) => {
                    self.total = total;
                    *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = rec;
                }
                Err(e) => r = Err(e),
            }
            self.installing = Vec::new();
        }
        Box::pin(async move { r })
    }
}
