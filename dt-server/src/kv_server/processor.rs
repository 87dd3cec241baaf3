//! The DtKV request processors on the service port (`dtkv-server.md` §1, §5.1, §7,
//! §8; `wire-protocol.md` §6): [`ServiceGate`] first, then [`plan`]; reads answered
//! on the calling thread while the leader's published lease holds
//! ([`RaftGroup::lease_holds_now`]), else after a lease read on the group's thread, writes through
//! [`RaftGroup::submit_respond`] (one shared responder, the request's perf start time as
//! the mark), watch syncs and KV status on the group's [`KvGroup`]. A Raft failure is answered as the
//! reference does ([`raft_error_packet`]: NOT_RAFT_LEADER with the leader hint in
//! `extra`, no answer on a timeout).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use dt_client::kv::{KvCode, KvCommands, KvReq, KvStatusResp};
use dt_codec::{encode, Encodable, PbError};
use dt_common::{PerfHook, PerfType};
use dt_net::{
    CmdCodes, ConnRef, ProcessInfo, ReadPacket, ReqContext, ReqProcessor, Responder, WriteBody,
    WritePacket, INLINE_BODY_MAX,
};
use dt_raft::driver::{GroupStatus, RaftFuture, RaftGroup};
use dt_raft::rpc::QueryStatusResp;
use dt_raft::server::{raft_error_packet, RaftGroups, RaftServer, ServiceGate};
use dt_raft::sm::{RaftError, RaftInput, RaftResponder, RaftResult};

use super::state_machine::{ChannelId, DtKvFactory, KvGroup, KvOutput};
use crate::dtkv::{plan, KvAction, KvRespBody, KvResponse, SizedBody};

/// How long a lock push may wait to be sent (`dtkv-server.md` §6.6).
pub const LOCK_PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Server-wide ids of the client connections that hold watches (the watch manager's
/// channels). An entry lives from the connection's first DTKV_SYNC_WATCH or
/// DTKV_QUERY_STATUS until the connection closes ([`ChannelTable::remove`], from the
/// server's connection-closed hook); the ids of closed connections wait in
/// [`ChannelTable::take_closed`] until the daemon drops their watches (within one daemon
/// period). The reference drops a closed connection's watches only at the next push
/// attempt or after the 120 s watch timeout; dropping them at once is observably the
/// same for clients (nobody can re-use a closed connection). A close does not touch
/// locks, in the reference or here: they belong to the client's UUID, not to a
/// connection (a reconnecting client keeps them), and end by unlock or lease expiry.
#[derive(Debug, Default)]
pub struct ChannelTable {
    by_conn: HashMap<ConnRef, ChannelId>,
    by_id: HashMap<ChannelId, ConnRef>,
    next: ChannelId,
    closed: Vec<ChannelId>,
}

impl ChannelTable {
    /// The id of `conn` (assigned on first use).
    pub fn id_of(&mut self, conn: ConnRef) -> ChannelId {
        if let Some(&id) = self.by_conn.get(&conn) {
            return id;
        }
        self.next += 1;
        self.by_conn.insert(conn, self.next);
        self.by_id.insert(self.next, conn);
        self.next
    }

    /// The connection of `id`.
    pub fn conn(&self, id: ChannelId) -> Option<ConnRef> {
        self.by_id.get(&id).copied()
    }

    /// `conn` closed: forgets it; its id (if it had one) is queued for
    /// [`ChannelTable::take_closed`].
    pub fn remove(&mut self, conn: ConnRef) -> Option<ChannelId> {
        let id = self.by_conn.remove(&conn)?;
        self.by_id.remove(&id);
        self.closed.push(id);
        Some(id)
    }

    /// The ids of the connections closed since the last call.
    pub fn take_closed(&mut self) -> Vec<ChannelId> {
        std::mem::take(&mut self.closed)
    }

    /// Connections with an id now.
    pub fn len(&self) -> usize {
        self.by_conn.len()
    }

    /// Whether no connection has an id.
    pub fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }
}

/// What the processors of one server share.
pub struct KvContext {
    pub(crate) gate: ServiceGate,
    pub(crate) server: Weak<RaftServer>,
    pub(crate) factory: Arc<DtKvFactory>,
    pub(crate) groups: OnceLock<Arc<RaftGroups<DtKvFactory>>>,
    pub(crate) channels: Mutex<ChannelTable>,
    pub(crate) read_timeout: Duration,
    /// Identifies this context in the IO threads' [`GroupCache`]s.
    pub(crate) cache_id: u64,
    /// Where the requests' timings go (`DtKvServerConfig::perf`).
    pub(crate) perf: PerfHook,
}

/// A fresh [`KvContext::cache_id`].
pub(crate) fn next_cache_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl std::fmt::Debug for KvContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KvContext({:?})", self.gate)
    }
}

impl KvContext {
    pub(crate) fn channel_id(&self, conn: ConnRef) -> ChannelId {
        self.channels().id_of(conn)
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, ChannelTable> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection-closed hook (IO thread): frees the connection's channel id; the
    /// daemon drops its watches ([`KvContext::drop_closed_channels`]).
    pub(crate) fn conn_closed(&self, conn: ConnRef) {
        self.channels().remove(conn);
    }

    /// Drops the watches of the connections closed since the last call, in every group
    /// (the daemon's thread: the groups' locks are not taken on an IO thread for this).
    pub(crate) fn drop_closed_channels(&self) {
        let closed = self.channels().take_closed();
        if closed.is_empty() {
            return;
        }
        for gid in self.factory.group_ids() {
            if let Some(kv) = self.factory.group(gid) {
                let mut kv = kv.lock();
                for &ch in &closed {
                    kv.channel_closed(ch);
                }
            }
        }
    }

    /// Connections holding a channel id now (watches or status queries).
    pub(crate) fn channel_count(&self) -> usize {
        self.channels().len()
    }

    pub(crate) fn channel_conn(&self, id: ChannelId) -> Option<ConnRef> {
        self.channels().conn(id)
    }

    /// Group `gid`'s Raft handle and DtKV state, from this thread's [`GroupCache`]: one
    /// lookup and no lock while the group tables are unchanged (two atomic loads tell);
    /// rebuilt under the tables' locks after a change.
    fn group_entry(&self, gid: i32) -> Option<GroupEntry> {
        let groups = self.groups.get()?;
        let gens = (groups.generation(), self.factory.generation());
        let owner = self.cache_id;
        GROUP_CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.owner != owner || c.gens != Some(gens) {
                c.rebuild(owner, gens, groups, &self.factory);
            }
            c.map.get(&gid).cloned()
        })
    }

    /// Sends the DTKV_LOCK_PUSH of a hand-over to the new owner's connection (skipped
    /// when it is offline).
    pub(crate) fn send_lock_push(&self, push: KvReq) {
        let Some(server) = self.server.upgrade() else {
            return;
        };
        let Some(owner) = push.owner() else { return };
        let Some(conn) = server.conn_of(owner) else {
            log::debug!("lock push to offline client {owner:?} skipped");
            return;
        };
        let pkt = WritePacket::request(
            KvCommands::DTKV_LOCK_PUSH,
            WriteBody::Encodable(Box::new(push)),
        );
        if let Err(e) = server.push_one_way(conn, pkt, LOCK_PUSH_TIMEOUT) {
            log::warn!("lock push failed: {e}");
        }
    }
}

/// A group as the processors use it.
#[derive(Clone)]
struct GroupEntry {
    raft: RaftGroup<KvOutput>,
    kv: Arc<KvGroup>,
}

/// One IO thread's copy of the group tables (its processors run there): the
/// [`RaftGroups`] handle and the [`KvGroup`] of every group whose state machine exists,
/// as of the tables' generations it was built at, for the [`KvContext`] at `owner`.
#[derive(Default)]
struct GroupCache {
    owner: u64,
    gens: Option<(u64, u64)>,
    map: dt_common::IdHashMap<i32, GroupEntry>,
}

impl GroupCache {
    fn rebuild(
        &mut self,
        owner: u64,
        gens: (u64, u64),
        groups: &RaftGroups<DtKvFactory>,
        factory: &DtKvFactory,
    ) {
        self.map.clear();
        for gid in groups.ids() {
            if let (Some(raft), Some(kv)) = (groups.group(gid), factory.group(gid)) {
                self.map.insert(gid, GroupEntry { raft, kv });
            }
        }
        self.owner = owner;
        self.gens = Some(gens);
    }
}

thread_local! {
    static GROUP_CACHE: RefCell<GroupCache> = RefCell::default();
}

/// The packet of a DtKV answer.
pub fn kv_packet(r: KvResponse) -> WritePacket {
    // small answers (a code and an index) are encoded here, into the packet: nothing
    // allocated here is then freed by the IO thread that writes it; a write's answer
    // (only a code) without the generic encoder
    let body = match r.body {
        KvRespBody::Code {
            raft_index,
            biz_code,
        } => {
            let (a, n) = KvRespBody::code_bytes(raft_index, biz_code);
            WriteBody::copy_of(&a[..n])
        }
        body => {
            let sized = SizedBody::new(body);
            if sized.encoded_size() > INLINE_BODY_MAX {
                WriteBody::Encodable(Box::new(sized))
            } else {
                WriteBody::of(sized)
            }
        }
    };
    let mut p = WritePacket::response(body);
    p.biz_code = r.biz_code.code();
    p.msg = r.msg;
    p
}

/// The RAFT_QUERY_STATUS answer of a group from its published status (see
/// [`GroupStatus::query_status_resp`]).
pub fn query_status_resp(s: &GroupStatus) -> QueryStatusResp {
    s.query_status_resp()
}

/// Runs `f` with the outcome of `fut` when it completes (polled by its waker, on
/// the thread that completes it): a callback form of a [`RaftFuture`] that blocks no
/// thread.
pub(crate) fn on_complete<T: Send + 'static>(
    fut: RaftFuture<T>,
    f: impl FnOnce(Result<T, RaftError>) + Send + 'static,
) {
    type Job<T> = (
        Pin<Box<RaftFuture<T>>>,
        Box<dyn FnOnce(Result<T, RaftError>) + Send>,
    );
    struct Task<T> {
        job: Mutex<Option<Job<T>>>,
    }
    impl<T: Send + 'static> Task<T> {
        fn poll(self: &Arc<Self>) {
            let waker = Waker::from(self.clone());
            let mut g = self.job.lock().unwrap_or_else(|p| p.into_inner());
            let Some((fut, _)) = g.as_mut() else { return };
            if let Poll::Ready(r) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                let (_, f) = g.take().expect("job");
                drop(g);
                f(r);
            }
        }
    }
    impl<T: Send + 'static> Wake for Task<T> {
        fn wake(self: Arc<Self>) {
            self.poll();
        }
    }
    let t = Arc::new(Task {
        job: Mutex::new(Some((Box::pin(fut), Box::new(f) as Box<_>))),
    });
    t.poll();
}

/// The processor of every client DtKV command (one instance per command code).
#[derive(Debug, Clone)]
pub struct KvProcessor {
    ctx: Arc<KvContext>,
    writes: Arc<KvWrites>,
}

/// Answers this processor's writes on the group's thread, all of them through one
/// shared object (see [`RaftResponder`]): a write carries its request's responder and
/// its perf start time (the mark, 0 when not timed) by value, and nothing is allocated
/// per write.
#[derive(Debug)]
struct KvWrites {
    ctx: Arc<KvContext>,
}

impl RaftResponder<KvOutput> for KvWrites {
    /// Answers a write's request with its outcome, then sends the lock push it caused.
    fn done(&self, r: RaftResult<KvOutput>, resp: Responder, started: u64) {
        match r {
            Ok((_, mut out)) => {
                let push = out.lock_push.take();
                resp.respond(kv_packet(out.into_response()));
                if let Some(p) = push {
                    self.ctx.send_lock_push(*p);
                }
            }
            Err(e) => {
                if let Some(p) = raft_error_packet(&e) {
                    resp.respond(p)
                }
            }
        }
        self.ctx
            .perf
            .end(PerfType::DtkvLinearizableOp, started as i64, 1, 0);
    }
}

impl KvProcessor {
    /// A processor over the server's shared context.
    pub fn new(ctx: Arc<KvContext>) -> Self {
        let writes = Arc::new(KvWrites { ctx: ctx.clone() });
        KvProcessor { ctx, writes }
    }

    fn read(
        &self,
        g: RaftGroup<KvOutput>,
        kv: Arc<KvGroup>,
        command: i32,
        req: KvReq,
        resp: Responder,
    ) {
        let t = self.ctx.perf.start(PerfType::DtkvLeaseRead);
        // the hook travels with the read only when it times it
        let perf = (t != 0).then(|| self.ctx.perf.clone());
        on_complete(g.lease_read(self.ctx.read_timeout), move |r| {
            match r {
                Ok(()) => resp.respond(kv_packet(kv.lock().read(command, &req))),
                Err(e) => {
                    if let Some(p) = raft_error_packet(&e) {
                        resp.respond(p)
                    }
                }
            }
            if let Some(perf) = perf {
                perf.end(PerfType::DtkvLeaseRead, t, 1, 0);
            }
        });
    }

    fn write(&self, g: RaftGroup<KvOutput>, biz: u8, req: KvReq, resp: Responder) {
        // A small body shares a chunk of this thread's pool (one allocation per chunk,
        // not per write; no shared header allocated when Raft first clones it): the
        // state machine copies what it keeps of such a body
        // ([`DtKvStateMachine`](super::state_machine::DtKvStateMachine)).
        let input = RaftInput::new(biz, encode::to_bytes_pooled(&req));
        let t = self.ctx.perf.start(PerfType::DtkvLinearizableOp);
        // a monotonic time in nanoseconds, or 0: the same number as a u64 mark
        g.submit_respond(input, &self.writes, resp, t as u64);
    }
}

impl ReqProcessor for KvProcessor {
    type Body = KvAction;

    fn decode(&self, pkt: &ReadPacket) -> Result<KvAction, PbError> {
        // The owner is set from the connection in `process`.
        plan(pkt.command, &pkt.body, ProcessInfo::default())
            .unwrap_or_else(|| Err(PbError::invalid("not a dtkv client command")))
    }

    fn process(&self, _pkt: ReadPacket, action: KvAction, ctx: ReqContext) -> Option<WritePacket> {
        if let Some(p) = self.ctx.gate.check(&ctx) {
            return Some(p);
        }
        let gid = action.group_id();
        let Some(GroupEntry { raft: g, kv }) = self.ctx.group_entry(gid) else {
            return Some(WritePacket::error(
                CmdCodes::RAFT_GROUP_NOT_FOUND,
                format!("raft group not found: {gid}"),
            ));
        };
        match action {
            KvAction::Respond { response, .. } => Some(kv_packet(response)),
            KvAction::Read { command, req } => {
                // The lease as the group's thread published it: while it holds, the
                // read is answered here, without a round trip to the group's thread
                // (as the reference's leaseRead does); else that thread decides.
                if g.lease_holds_now() {
                    let perf = &self.ctx.perf;
                    let t = perf.start(PerfType::DtkvLeaseRead);
                    let p = kv_packet(kv.lock().read(command, &req));
                    perf.end(PerfType::DtkvLeaseRead, t, 1, 0);
                    return Some(p);
                }
                self.read(g, kv, command, req, ctx.responder());
                None
            }
            KvAction::Write { biz, mut req } => {
                if let Some(owner) = ctx.process_info() {
                    req.set_owner(owner);
                }
                self.write(g, biz.code(), req, ctx.responder());
                None
            }
            KvAction::SyncWatch(w) => {
                let ch = self.ctx.channel_id(ctx.conn());
                let code = kv.lock().sync_watch(ch, &w, dt_common::mono_nanos());
                Some(kv_packet(KvResponse::rejected(code, ""))).map(|mut p| {
                    if code == KvCode::Success {
                        p.msg.clear();
                    }
                    p
                })
            }
            KvAction::Status { .. } => {
                let ch = self.ctx.channel_id(ctx.conn());
                let watch_count = kv.lock().watch_count(ch, dt_common::mono_nanos());
                let st = query_status_resp(&g.status());
                let body = KvStatusResp {
                    raft_server_status: Some(encode::to_bytes(&st)),
                    watch_count,
                };
                Some(WritePacket::response(WriteBody::Encodable(Box::new(body))))
            }
        }
    }
}
