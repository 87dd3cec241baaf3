//! [`LockManager`] and [`DistributedLock`]: distributed locks over the network
//! (`wire-protocol.md` §6.8), driving a [`LockClient`] per lock object: TRY_LOCK /
//! UNLOCK / UPDATE_LOCK_LEASE to the group's leader, the DTKV_LOCK_PUSH that hands a
//! waiting client the lock, the try-lock wait timer and the local lease clock.
//!
//! Timing is the reference client's: the lease is counted locally from the moment the
//! request is sent (so this client considers the lock lost no later than the server
//! does), a hand-over by push adds the server-side wait. Lock requests do not wait for an
//! outbound permit: they fail at once when the client's limit is reached.
//!
//! **Fencing token**: [`DistributedLock::fencing_token`] is the raft index at which this
//! client's lock entry was created (its position in the lock's FIFO queue). It grows with
//! every new holder of the lock, so a resource that remembers the highest token it has
//! seen can refuse a write from a stale holder whose lease ran out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_codec::encode;
use dt_net::{FnProcessor, NioClient, ReadPacket};

use crate::future::{kv_channel, KvFuture};
use crate::kv::{
    self, lock_entry_key, ops, KvBody, KvCode, KvCommands, KvError, KvReq, LockClient, LockDone,
    LockStatus, Renewal,
};
use crate::raft::client::Inner;
use crate::raft::{RaftClient, SendOptions};

type Done = Box<dyn FnOnce(LockDone) + Send>;

/// Which operation [`LockObj::start`] begins (to report a refusal as its own kind).
#[derive(Clone, Copy)]
enum Kind {
    TryLock { wait_millis: i64 },
    Unlock,
    UpdateLease,
}

struct LockState {
    client: LockClient,
    done: Option<(i32, Done)>,
    fencing: Option<i64>,
    expiry_timer: Option<u64>,
}

struct LockObj {
    group_id: i32,
    key: Bytes,
    lock_id: i32,
    state: Mutex<LockState>,
    mgr: Weak<Shared>,
}

/// A registered lock object: push routing goes by (group, key).
enum Entry {
    Plain(Weak<LockObj>),
    Auto(Weak<AutoObj>),
}

impl Entry {
    fn alive(&self) -> bool {
        match self {
            Entry::Plain(w) => w.strong_count() > 0,
            Entry::Auto(w) => w.strong_count() > 0,
        }
    }
}

struct Shared {
    raft: OnceLock<Weak<Inner>>,
    locks: Mutex<HashMap<(i32, Bytes), Entry>>,
    next_id: AtomicI32,
}

/// The locks of a [`crate::KvClient`].
pub struct LockManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockManager")
    }
}

/// One distributed lock object (one per key per client). Dropping it closes it: a lock
/// that may still be held is released with UNLOCK.
pub struct DistributedLock {
    obj: Arc<LockObj>,
}

impl std::fmt::Debug for DistributedLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DistributedLock({}, {:?})",
            self.obj.group_id,
            String::from_utf8_lossy(&self.obj.key)
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> i64 {
    dt_common::mono_nanos()
}

impl LockManager {
    pub(crate) fn prepare() -> (LockManager, impl FnOnce(&mut NioClient)) {
        let shared = Arc::new(Shared {
            raft: OnceLock::new(),
            locks: Mutex::new(HashMap::new()),
            next_id: AtomicI32::new(1),
        });
        let weak = Arc::downgrade(&shared);
        let register = move |nio: &mut NioClient| {
            nio.register(
                KvCommands::DTKV_LOCK_PUSH,
                FnProcessor(move |pkt: &ReadPacket, _ctx: &dt_net::ReqContext| {
                    if let Some(s) = weak.upgrade() {
                        s.on_push(pkt);
                    }
                    None // one-way: never answered
                }),
            );
        };
        (LockManager { shared }, register)
    }

    pub(crate) fn attach(&self, raft: &RaftClient) {
        let _ = self.shared.raft.set(Arc::downgrade(&raft.inner));
    }

    /// The lock object for `key` in `group_id` (one per key per client: a second one
    /// for the same key is refused while the first is alive).
    pub fn create_lock(
        &self,
        group_id: i32,
        key: impl Into<Bytes>,
    ) -> Result<DistributedLock, KvError> {
        let key = key.into();
        let mut locks = lock(&self.shared.locks);
        check_free(&locks, group_id, &key)?;
        let lock_id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let client = LockClient::new(group_id, key.clone(), lock_id, now())?;
        let obj = Arc::new(LockObj {
            group_id,
            key: key.clone(),
            lock_id,
            state: Mutex::new(LockState {
                client,
                done: None,
                fencing: None,
                expiry_timer: None,
            }),
            mgr: Arc::downgrade(&self.shared),
        });
        locks.insert((group_id, key), Entry::Plain(Arc::downgrade(&obj)));
        Ok(DistributedLock { obj })
    }

    /// An auto-renewing lock for `key` in `group_id` (the reference's
    /// `AutoRenewalLock`): it keeps trying to acquire the lock (try-lock with wait =
    /// lease), renews the lease every lease / 2 while held, retries failed requests after
    /// 1, 10, 30, then 60 s, and when the lease runs out locally reports the loss and
    /// starts again. `listener(true)` runs when the lock is acquired, `listener(false)`
    /// when it is lost; it runs on the client's network or timer thread: keep it short.
    /// Dropping the returned object releases the lock.
    pub fn create_auto_renewal_lock(
        &self,
        group_id: i32,
        key: impl Into<Bytes>,
        lease_millis: i64,
        listener: impl Fn(bool) + Send + Sync + 'static,
    ) -> Result<AutoRenewalLock, KvError> {
        let key = key.into();
        let mut locks = lock(&self.shared.locks);
        check_free(&locks, group_id, &key)?;
        let lock_id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let client = LockClient::new(group_id, key.clone(), lock_id, now())?;
        let auto = kv::AutoRenewalLock::new(
            client,
            lease_millis,
            kv::AutoRenewalLock::DEFAULT_RETRY_MILLIS.to_vec(),
        )?;
        let obj = Arc::new(AutoObj {
            group_id,
            key: key.clone(),
            state: Mutex::new((auto, None)),
            mgr: Arc::downgrade(&self.shared),
            listener: Box::new(listener),
        });
        locks.insert((group_id, key), Entry::Auto(Arc::downgrade(&obj)));
        drop(locks);
        let out = lock(&obj.state).0.start(now());
        obj.process(out);
        Ok(AutoRenewalLock { obj })
    }
}

fn check_free(
    locks: &HashMap<(i32, Bytes), Entry>,
    group_id: i32,
    key: &Bytes,
) -> Result<(), KvError> {
    if locks
        .get(&(group_id, key.clone()))
        .is_some_and(Entry::alive)
    {
        return Err(KvError::InvalidArgument(format!(
            "a lock object for {:?} in group {group_id} exists already",
            String::from_utf8_lossy(key)
        )));
    }
    Ok(())
}

struct AutoObj {
    group_id: i32,
    key: Bytes,
    /// The lock and its pending timer.
    state: Mutex<(kv::AutoRenewalLock, Option<u64>)>,
    mgr: Weak<Shared>,
    listener: Box<dyn Fn(bool) + Send + Sync>,
}

impl AutoObj {
    fn raft(&self) -> Option<Arc<Inner>> {
        self.mgr.upgrade().and_then(|m| m.raft())
    }

    /// Carries out what the auto-renewal logic asked for, then re-arms its timer.
    fn process(self: &Arc<Self>, out: Vec<Renewal>) {
        let Some(raft) = self.raft() else { return };
        for r in out {
            match r {
                Renewal::Acquired => (self.listener)(true),
                Renewal::Lost => (self.listener)(false),
                Renewal::Send {
                    request: (cmd, req),
                    op_id,
                } => {
                    let me = self.clone();
                    raft.send_request_arc(
                        self.group_id,
                        cmd,
                        encode::to_bytes(&req),
                        raft.rpc_timeout,
                        SendOptions {
                            retryable: true,
                            wait_permit: false,
                        },
                        move |r| {
                            let answer = r.map(|p| KvCode::from_code(p.biz_code));
                            let out = lock(&me.state).0.on_response(op_id, answer, now());
                            me.process(out);
                        },
                    );
                }
            }
        }
        let mut st = lock(&self.state);
        if let Some(t) = st.1.take() {
            raft.timer.cancel(t);
        }
        if let Some(at) = st.0.next_wake() {
            let at = Instant::now() + Duration::from_nanos((at - now()).max(0) as u64);
            let weak = Arc::downgrade(self);
            st.1 = Some(raft.timer.schedule(at, move || {
                if let Some(me) = weak.upgrade() {
                    let out = {
                        let mut st = lock(&me.state);
                        st.1 = None;
                        st.0.tick(now())
                    };
                    me.process(out);
                }
            }));
        }
    }
}

/// An auto-renewing lock (see [`LockManager::create_auto_renewal_lock`]); dropping it
/// stops renewing and releases the lock.
pub struct AutoRenewalLock {
    obj: Arc<AutoObj>,
}

impl std::fmt::Debug for AutoRenewalLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AutoRenewalLock({:?})",
            String::from_utf8_lossy(&self.obj.key)
        )
    }
}

impl AutoRenewalLock {
    /// Whether this client holds the lock now (by its local lease).
    pub fn is_held_by_current_client(&self) -> bool {
        lock(&self.obj.state).0.is_held(now())
    }

    /// What is left of the lease, in ms.
    pub fn lease_rest_millis(&self) -> i64 {
        lock(&self.obj.state).0.lock().lease_rest_millis(now())
    }
}

impl Drop for AutoRenewalLock {
    fn drop(&mut self) {
        let raft = self.obj.raft();
        let (req, out) = {
            let mut st = lock(&self.obj.state);
            if let (Some(t), Some(r)) = (st.1.take(), raft.as_ref()) {
                r.timer.cancel(t);
            }
            st.0.close(now())
        };
        for r in out {
            if let Renewal::Lost = r {
                (self.obj.listener)(false);
            }
        }
        if let Some(m) = self.obj.mgr.upgrade() {
            lock(&m.locks).remove(&(self.obj.group_id, self.obj.key.clone()));
        }
        if let (Some((cmd, req)), Some(raft)) = (req, raft) {
            raft.send_request_arc(
                self.obj.group_id,
                cmd,
                encode::to_bytes(&req),
                raft.rpc_timeout,
                SendOptions::default(),
                |r| {
                    if let Err(e) = r {
                        log::warn!("unlock on close failed: {e}");
                    }
                },
            );
        }
    }
}

impl Shared {
    fn raft(&self) -> Option<Arc<Inner>> {
        self.raft.get().and_then(Weak::upgrade)
    }

    fn on_push(&self, pkt: &ReadPacket) {
        let Ok(req) = KvReq::decode(&pkt.body) else {
            log::warn!("undecodable lock push ignored");
            return;
        };
        let (plain, auto) = match lock(&self.locks).get(&(req.group_id, req.key.clone())) {
            Some(Entry::Plain(w)) => (w.upgrade(), None),
            Some(Entry::Auto(w)) => (None, w.upgrade()),
            None => (None, None),
        };
        if let Some(a) = auto {
            let out = lock(&a.state).0.on_push(&req.value, req.ttl_millis, now());
            a.process(out);
            return;
        }
        let Some(obj) = plain else {
            log::debug!("lock push for a key without lock object");
            return;
        };
        let done = {
            let mut st = lock(&obj.state);
            st.client.on_push(&req.value, req.ttl_millis, now())
        };
        if let Some(d) = done {
            log::info!(
                "lock {:?} handed over by push",
                String::from_utf8_lossy(&obj.key)
            );
            obj.finish(d);
        }
    }
}

impl LockObj {
    /// Delivers the end of the current operation to its waiter, and arms the lease
    /// expiry check when the lock was acquired.
    fn finish(self: &Arc<Self>, d: LockDone) {
        let acquired = matches!(
            d,
            LockDone::TryLock(Ok(true)) | LockDone::UpdateLease(Ok(()))
        );
        let (cb, need_fencing) = {
            let mut st = lock(&self.state);
            let cb = st.done.take().map(|(_, cb)| cb);
            (cb, acquired && st.fencing.is_none())
        };
        if acquired {
            self.arm_expiry();
        }
        if need_fencing {
            self.fetch_fencing();
        }
        if let Some(cb) = cb {
            cb(d);
        }
    }

    fn raft(&self) -> Option<Arc<Inner>> {
        self.mgr.upgrade().and_then(|m| m.raft())
    }

    fn arm_expiry(self: &Arc<Self>) {
        let Some(raft) = self.raft() else { return };
        let mut st = lock(&self.state);
        let Some(end) = st.client.lease_end() else {
            return;
        };
        if let Some(t) = st.expiry_timer.take() {
            raft.timer.cancel(t);
        }
        let at = Instant::now() + Duration::from_nanos((end - now()).max(0) as u64);
        let weak = Arc::downgrade(self);
        st.expiry_timer = Some(raft.timer.schedule(at, move || {
            if let Some(me) = weak.upgrade() {
                let (lost, cancelled) = {
                    let mut st = lock(&me.state);
                    st.expiry_timer = None;
                    let r = st.client.check_expiry(now());
                    if r.0 {
                        st.fencing = None;
                    }
                    r
                };
                if lost {
                    log::warn!(
                        "lock {:?} lease expired locally",
                        String::from_utf8_lossy(&me.key)
                    );
                } else if lock(&me.state).client.lease_end().is_some() {
                    me.arm_expiry(); // renewed meanwhile
                }
                if let Some(d) = cancelled {
                    me.finish(d);
                }
            }
        }));
    }

    /// Reads this client's lock entry to learn its create index (the fencing token).
    fn fetch_fencing(self: &Arc<Self>) {
        let Some(raft) = self.raft() else { return };
        let owner = raft.nio.process_info();
        let entry = lock_entry_key(&self.key, owner);
        let Ok((cmd, req)) = ops::get(self.group_id, entry) else {
            return;
        };
        let me = self.clone();
        raft.send_request_arc(
            self.group_id,
            cmd,
            encode::to_bytes(&req),
            raft.rpc_timeout,
            SendOptions::default(),
            move |r| {
                if let Ok((code, resp)) = r.and_then(|p| ops::interpret(cmd, &p)) {
                    if let Some(n) = ops::get_node(code, resp) {
                        let mut st = lock(&me.state);
                        if st.client.status() == LockStatus::Locked && st.fencing.is_none() {
                            st.fencing = Some(n.create_index);
                        }
                    }
                }
            },
        );
    }

    /// Starts an operation: `build` makes its request from the lock client; `done` gets
    /// its end.
    fn start(
        self: &Arc<Self>,
        build: impl FnOnce(&mut LockClient, i64) -> Result<Option<(i32, KvReq)>, KvError>,
        kind: Kind,
        done: Done,
    ) {
        let Some(raft) = self.raft() else {
            return done(LockDone::Unlock(Err(KvError::Net(
                dt_net::NetError::Stopped,
            ))));
        };
        let (op, cmd, req, cancelled) = {
            let mut st = lock(&self.state);
            let t = now();
            let before = st.client.current_op();
            let r = match build(&mut st.client, t) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    drop(st);
                    return done(LockDone::Unlock(Ok(())));
                }
                Err(e) => {
                    drop(st);
                    return done(match kind {
                        Kind::Unlock => LockDone::Unlock(Err(e)),
                        Kind::UpdateLease => LockDone::UpdateLease(Err(e)),
                        Kind::TryLock { .. } => LockDone::TryLock(Err(e)),
                    });
                }
            };
            let op = st.client.current_op().unwrap_or_default();
            // An unlock cancels the operation in flight: its waiter gets an error.
            let cancelled = if before.is_some() && before != Some(op) {
                st.done.take()
            } else {
                None
            };
            st.done = Some((op, done));
            if r.0 == KvCommands::DTKV_TRY_LOCK {
                st.fencing = None;
            }
            (op, r.0, r.1, cancelled)
        };
        if let Some((_, cb)) = cancelled {
            cb(LockDone::TryLock(Err(KvError::InvalidArgument(
                "canceled by unlock".into(),
            ))));
        }
        if let Kind::TryLock { wait_millis } = kind {
            if wait_millis <= 0 {
                return self.send(raft, op, cmd, req);
            }
            let weak = Arc::downgrade(self);
            raft.timer.schedule(
                Instant::now() + Duration::from_millis(wait_millis as u64),
                move || {
                    if let Some(me) = weak.upgrade() {
                        let d = lock(&me.state).client.on_wait_timeout(op);
                        if let Some(d) = d {
                            me.finish(d);
                        }
                    }
                },
            );
        }
        self.send(raft, op, cmd, req);
    }

    fn send(self: &Arc<Self>, raft: Arc<Inner>, op: i32, cmd: i32, req: KvReq) {
        let me = self.clone();
        raft.send_request_arc(
            self.group_id,
            cmd,
            encode::to_bytes(&req),
            raft.rpc_timeout,
            SendOptions {
                retryable: true,
                wait_permit: false,
            },
            move |r| {
                let answer = r.map(|p| (KvCode::from_code(p.biz_code), p));
                let d = {
                    let mut st = lock(&me.state);
                    if let Ok((KvCode::Success, p)) = &answer {
                        if cmd == KvCommands::DTKV_TRY_LOCK {
                            if let Ok(resp) = crate::kv::KvResp::decode(&p.body) {
                                if resp.raft_index > 0 {
                                    st.fencing = Some(resp.raft_index);
                                }
                            }
                        }
                    }
                    st.client.on_response(op, answer.map(|a| a.0), now())
                };
                if let Some(d) = d {
                    me.finish(d);
                }
            },
        );
    }
}

impl DistributedLock {
    /// The group.
    pub fn group_id(&self) -> i32 {
        self.obj.group_id
    }

    /// The lock key.
    pub fn key(&self) -> &Bytes {
        &self.obj.key
    }

    /// Tries to take the lock for `lease_millis`, waiting up to `wait_millis`
    /// (0 ≤ wait ≤ lease; 0: do not wait) for the holder to release it or expire; true
    /// when held. As a future.
    pub fn try_lock_async(&self, lease_millis: i64, wait_millis: i64) -> KvFuture<bool> {
        let (p, f) = kv_channel();
        self.obj.start(
            |c, t| c.try_lock(lease_millis, wait_millis, t).map(Some),
            Kind::TryLock { wait_millis },
            Box::new(move |d| {
                p.complete(match d {
                    LockDone::TryLock(r) => r,
                    LockDone::Unlock(Err(e)) | LockDone::UpdateLease(Err(e)) => Err(e),
                    _ => Ok(false),
                })
            }),
        );
        f
    }

    /// [`DistributedLock::try_lock_async`], blocking.
    pub fn try_lock(&self, lease_millis: i64, wait_millis: i64) -> Result<bool, KvError> {
        self.try_lock_async(lease_millis, wait_millis).wait()
    }

    /// Releases the lock (or leaves the queue); cancels a try-lock in flight. Nothing is
    /// sent when the lock is known not held.
    pub fn unlock_async(&self) -> KvFuture<()> {
        let (p, f) = kv_channel();
        let obj = self.obj.clone();
        self.obj.start(
            |c, t| {
                let r = c.unlock(false, t)?;
                Ok(r.request)
            },
            Kind::Unlock,
            Box::new(move |d| {
                lock(&obj.state).fencing = None;
                p.complete(match d {
                    LockDone::Unlock(r) => r,
                    LockDone::TryLock(Err(e)) | LockDone::UpdateLease(Err(e)) => Err(e),
                    _ => Ok(()),
                })
            }),
        );
        f
    }

    /// [`DistributedLock::unlock_async`], blocking.
    pub fn unlock(&self) -> Result<(), KvError> {
        self.unlock_async().wait()
    }

    /// Extends the held lock's lease to `lease_millis` from now.
    pub fn update_lease_async(&self, lease_millis: i64) -> KvFuture<()> {
        let (p, f) = kv_channel();
        self.obj.start(
            |c, t| c.update_lease(lease_millis, t).map(Some),
            Kind::UpdateLease,
            Box::new(move |d| {
                p.complete(match d {
                    LockDone::UpdateLease(r) => r,
                    LockDone::TryLock(Err(e)) | LockDone::Unlock(Err(e)) => Err(e),
                    _ => Ok(()),
                })
            }),
        );
        f
    }

    /// [`DistributedLock::update_lease_async`], blocking.
    pub fn update_lease(&self, lease_millis: i64) -> Result<(), KvError> {
        self.update_lease_async(lease_millis).wait()
    }

    /// Whether this client holds the lock now (by its local lease).
    pub fn is_held_by_current_client(&self) -> bool {
        lock(&self.obj.state).client.is_held(now())
    }

    /// What is left of the lease, in ms (0 when not held).
    pub fn lease_rest_millis(&self) -> i64 {
        lock(&self.obj.state).client.lease_rest_millis(now())
    }

    /// The fencing token of the current hold: the raft index at which this client's
    /// lock entry was created (see the module docs). `None` when not held, or for a
    /// moment after a hand-over by push (it is read from the server then).
    pub fn fencing_token(&self) -> Option<i64> {
        let st = lock(&self.obj.state);
        if st.client.is_held(now()) {
            st.fencing
        } else {
            None
        }
    }

    /// The id the lock pushes name this object by.
    pub fn lock_id(&self) -> i32 {
        self.obj.lock_id
    }
}

impl Drop for DistributedLock {
    fn drop(&mut self) {
        let (req, cancelled) = {
            let mut st = lock(&self.obj.state);
            let r = st.client.close(now());
            (r.request, st.done.take())
        };
        if let Some((_, cb)) = cancelled {
            cb(LockDone::TryLock(Err(KvError::InvalidArgument(
                "lock closed".into(),
            ))));
        }
        if let Some(m) = self.obj.mgr.upgrade() {
            lock(&m.locks).remove(&(self.obj.group_id, self.obj.key.clone()));
        }
        if let (Some((cmd, req)), Some(raft)) = (req, self.obj.raft()) {
            raft.send_request_arc(
                self.obj.group_id,
                cmd,
                encode::to_bytes(&req),
                raft.rpc_timeout,
                SendOptions::default(),
                |r| {
                    if let Err(e) = r {
                        log::warn!("unlock on close failed: {e}");
                    }
                },
            );
        }
    }
}
