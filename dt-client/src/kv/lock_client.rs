//! The client's side of a distributed lock, without the networking
//! (`wire-protocol.md` §6.8.6, the reference's `DistributedLockImpl`): the lock's state,
//! the requests each operation sends, and how answers, lock pushes, the try-lock wait
//! timer and the local lease clock move it. Time is passed in (local monotonic
//! nanoseconds); the caller sends the requests, runs the timers this asks for and feeds
//! back what happened.
//!
//! The lease is measured locally from the moment a request is sent, so the client
//! considers the lock lost no later than the server does. One operation at a time: a
//! second one while another is in flight is refused (unlock cancels the one in flight).

use bytes::Bytes;

use super::codes::{KvCode, KvCommands};
use super::error::KvError;
use super::key::{check_key, MAX_TTL_MILLIS};
use super::lock::LockPayload;
use super::req::KvReq;

const MS: i64 = 1_000_000;

/// Where the lock stands for this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    /// Not held.
    NotLocked,
    /// Held until the local lease end.
    Locked,
    /// A try-lock or unlock is in flight, or its outcome was lost.
    Unknown,
    /// Closed; no more operations.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    TryLock { wait_millis: i64 },
    Unlock,
    Renew,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    kind: OpKind,
    op_id: i32,
}

/// A request to send: the command and its body.
pub type LockRequest = (i32, KvReq);

/// What starting an unlock or closing produced.
#[derive(Debug)]
pub struct Release {
    /// The UNLOCK to send, if any.
    pub request: Option<LockRequest>,
    /// The operation in flight that was cancelled, if any.
    pub cancelled: Option<LockDone>,
}

/// The end of an operation, for its caller.
#[derive(Debug)]
pub enum LockDone {
    /// A try-lock ended: whether the lock is now held.
    TryLock(Result<bool, KvError>),
    /// An unlock ended.
    Unlock(Result<(), KvError>),
    /// A lease update ended.
    UpdateLease(Result<(), KvError>),
}

/// One lock object of one client (the reference's `DistributedLockImpl`).
#[derive(Debug)]
pub struct LockClient {
    group_id: i32,
    key: Bytes,
    lock_id: i32,
    op_id: i32,
    status: LockStatus,
    lease_end: i64,
    new_lease_end: i64,
    current: Option<Op>,
}

fn lease_ok(lease_millis: i64) -> Result<(), KvError> {
    if lease_millis <= 0 || lease_millis > MAX_TTL_MILLIS {
        return Err(KvError::InvalidArgument(format!(
            "lease must be in 1..={MAX_TTL_MILLIS} ms, got {lease_millis}"
        )));
    }
    Ok(())
}

fn state_err(msg: &str) -> KvError {
    KvError::InvalidArgument(msg.to_string())
}

impl LockClient {
    /// A lock object for `key` in `group_id`; `lock_id` tells this client's lock
    /// objects apart in pushes.
    pub fn new(
        group_id: i32,
        key: impl Into<Bytes>,
        lock_id: i32,
        now: i64,
    ) -> Result<Self, KvError> {
        let key = key.into();
        if check_key(&key, false, true) != KvCode::Success {
            return Err(KvError::InvalidArgument(format!(
                "invalid lock key {:?}",
                String::from_utf8_lossy(&key)
            )));
        }
        let past = now - 10_000 * MS;
        Ok(LockClient {
            group_id,
            key,
            lock_id,
            op_id: 0,
            status: LockStatus::NotLocked,
            lease_end: past,
            new_lease_end: past,
            current: None,
        })
    }

    /// The lock's status.
    pub fn status(&self) -> LockStatus {
        self.status
    }

    /// Whether this client holds the lock at `now` (by its local lease).
    pub fn is_held(&self, now: i64) -> bool {
        self.lease_rest_millis(now) > 0
    }

    /// What is left of the local lease, in ms.
    pub fn lease_rest_millis(&self, now: i64) -> i64 {
        (self.lease_end - now).max(0) / MS
    }

    /// The local instant the lease ends, while held (to schedule the expiry check).
    pub fn lease_end(&self) -> Option<i64> {
        (self.status == LockStatus::Locked).then_some(self.lease_end)
    }

    fn reset_lease(&mut self, now: i64) {
        self.lease_end = now - 10_000 * MS;
        self.new_lease_end = self.lease_end;
    }

    /// Starts a try-lock: hold for `lease_millis` once acquired, wait up to
    /// `wait_millis` (0: do not wait) for the holder to let go. Returns the request to
    /// send; when `wait_millis` > 0 the caller also arms a timer calling
    /// [`LockClient::on_wait_timeout`] after that long.
    pub fn try_lock(
        &mut self,
        lease_millis: i64,
        wait_millis: i64,
        now: i64,
    ) -> Result<(i32, KvReq), KvError> {
        lease_ok(lease_millis)?;
        if wait_millis < 0 || wait_millis > lease_millis {
            return Err(KvError::InvalidArgument(format!(
                "wait must be in 0..=lease ({lease_millis} ms), got {wait_millis}"
            )));
        }
        match self.status {
            LockStatus::Closed => return Err(state_err("lock is closed")),
            LockStatus::Locked => return Err(state_err("already locked by this client")),
            _ => {}
        }
        if self.current.is_some() {
            return Err(state_err("another operation is in progress"));
        }
        self.op_id = self.op_id.wrapping_add(1);
        self.current = Some(Op {
            kind: OpKind::TryLock { wait_millis },
            op_id: self.op_id,
        });
        self.status = LockStatus::Unknown;
        self.new_lease_end = now + lease_millis * MS;
        let value = LockPayload {
            hold_ttl_millis: lease_millis,
            lock_id: self.lock_id,
            op_id: self.op_id,
        }
        .to_bytes();
        let req = KvReq::put(self.group_id, self.key.clone(), value).with_ttl(wait_millis);
        Ok((KvCommands::DTKV_TRY_LOCK, req))
    }

    /// Starts an unlock (cancelling an operation in flight). `None` when the lock is
    /// not held and `force` is false: nothing to send, the unlock is done.
    pub fn unlock(&mut self, force: bool, now: i64) -> Result<Release, KvError> {
        if self.status == LockStatus::Closed {
            return Err(state_err("lock is closed"));
        }
        if self.status == LockStatus::NotLocked && !force {
            return Ok(Release {
                request: None,
                cancelled: None,
            });
        }
        let cancelled = self.cancel_current("canceled by unlock");
        self.op_id = self.op_id.wrapping_add(1);
        self.current = Some(Op {
            kind: OpKind::Unlock,
            op_id: self.op_id,
        });
        self.status = LockStatus::Unknown;
        self.reset_lease(now);
        let req = KvReq::key(self.group_id, self.key.clone());
        Ok(Release {
            request: Some((KvCommands::DTKV_UNLOCK, req)),
            cancelled,
        })
    }

    /// Starts a lease update of the held lock to `lease_millis` from now.
    pub fn update_lease(&mut self, lease_millis: i64, now: i64) -> Result<(i32, KvReq), KvError> {
        lease_ok(lease_millis)?;
        match self.status {
            LockStatus::Closed => return Err(state_err("lock is closed")),
            LockStatus::Locked => {}
            _ => return Err(state_err("not locked by this client")),
        }
        if self.current.is_some() {
            return Err(state_err("another operation is in progress"));
        }
        if self.lease_end - now <= 0 {
            return Err(state_err("lease expired"));
        }
        self.op_id = self.op_id.wrapping_add(1);
        self.current = Some(Op {
            kind: OpKind::Renew,
            op_id: self.op_id,
        });
        self.new_lease_end = now + lease_millis * MS;
        let req = KvReq::key(self.group_id, self.key.clone()).with_ttl(lease_millis);
        Ok((KvCommands::DTKV_UPDATE_LOCK_LEASE, req))
    }

    fn cancel_current(&mut self, why: &str) -> Option<LockDone> {
        let op = self.current.take()?;
        let e = || KvError::InvalidArgument(why.to_string());
        Some(match op.kind {
            OpKind::TryLock { .. } => LockDone::TryLock(Err(e())),
            OpKind::Unlock => LockDone::Unlock(Err(e())),
            OpKind::Renew => LockDone::UpdateLease(Err(e())),
        })
    }

    fn acquired(&mut self, server_wait_nanos: i64, now: i64) -> LockDone {
        self.current = None;
        self.new_lease_end += server_wait_nanos;
        if self.new_lease_end - now <= 0 {
            // Granted by the server, but the lease already ran out here.
            return LockDone::TryLock(Ok(false));
        }
        self.status = LockStatus::Locked;
        self.lease_end = self.new_lease_end;
        LockDone::TryLock(Ok(true))
    }

    /// The answer to the operation `op_id` (the one the request was sent for): its
    /// `biz_code`, or the error that ended it. `None`: the operation goes on (a
    /// try-lock queued behind the holder waits for a push or its timer) or is no longer
    /// current.
    pub fn on_response(
        &mut self,
        op_id: i32,
        answer: Result<KvCode, KvError>,
        now: i64,
    ) -> Option<LockDone> {
        let op = self.current.filter(|o| o.op_id == op_id)?;
        if self.status == LockStatus::Closed {
            return None;
        }
        let code = match answer {
            Err(e) => {
                self.current = None;
                return Some(match op.kind {
                    OpKind::TryLock { .. } => LockDone::TryLock(Err(e)),
                    OpKind::Unlock => LockDone::Unlock(Err(e)),
                    OpKind::Renew => LockDone::UpdateLease(Err(e)),
                });
            }
            Ok(c) => c,
        };
        let business = |command| KvError::Business {
            command,
            code,
            msg: String::new(),
        };
        match op.kind {
            OpKind::TryLock { wait_millis } => match code {
                KvCode::Success | KvCode::LockBySelf => Some(self.acquired(0, now)),
                KvCode::LockByOther if wait_millis > 0 => None,
                KvCode::LockByOther => {
                    self.current = None;
                    Some(LockDone::TryLock(Ok(false)))
                }
                _ => {
                    self.current = None;
                    Some(LockDone::TryLock(Err(business(KvCommands::DTKV_TRY_LOCK))))
                }
            },
            OpKind::Unlock => {
                self.current = None;
                if matches!(
                    code,
                    KvCode::Success | KvCode::LockByOther | KvCode::NotFound
                ) {
                    self.reset_lease(now);
                    self.status = LockStatus::NotLocked;
                    Some(LockDone::Unlock(Ok(())))
                } else {
                    Some(LockDone::Unlock(Err(business(KvCommands::DTKV_UNLOCK))))
                }
            }
            OpKind::Renew => {
                self.current = None;
                if self.status != LockStatus::Locked
                    || self.lease_end - now <= 0
                    || self.new_lease_end - now <= 0
                {
                    Some(LockDone::UpdateLease(Err(state_err(
                        "not held by this client",
                    ))))
                } else if code == KvCode::Success {
                    self.lease_end = self.new_lease_end;
                    Some(LockDone::UpdateLease(Ok(())))
                } else {
                    Some(LockDone::UpdateLease(Err(business(
                        KvCommands::DTKV_UPDATE_LOCK_LEASE,
                    ))))
                }
            }
        }
    }

    /// A DTKV_LOCK_PUSH for this lock's key: the server handed the lock over to this
    /// client after `server_wait_nanos` (the push's `ttl_millis`). Ignored unless it
    /// names this lock object and its current try-lock.
    pub fn on_push(&mut self, value: &[u8], server_wait_nanos: i64, now: i64) -> Option<LockDone> {
        let p = LockPayload::parse(value)?;
        if self.status == LockStatus::Closed || p.lock_id != self.lock_id || p.op_id != self.op_id {
            return None;
        }
        match self.current {
            Some(Op {
                kind: OpKind::TryLock { .. },
                ..
            }) => Some(self.acquired(server_wait_nanos, now)),
            _ => None,
        }
    }

    /// The try-lock's wait ran out without the lock: it ends with `false` (the queued
    /// entry expires on the server by itself).
    pub fn on_wait_timeout(&mut self, op_id: i32) -> Option<LockDone> {
        match self.current {
            Some(Op {
                kind: OpKind::TryLock { .. },
                op_id: id,
            }) if id == op_id => {
                self.current = None;
                Some(LockDone::TryLock(Ok(false)))
            }
            _ => None,
        }
    }

    /// Checks the local lease at `now`: when it ran out, the lock is lost (`true`) and an
    /// operation in flight is cancelled (returned).
    pub fn check_expiry(&mut self, now: i64) -> (bool, Option<LockDone>) {
        if self.status != LockStatus::Locked || self.lease_end - now > 0 {
            return (false, None);
        }
        self.status = LockStatus::NotLocked;
        self.reset_lease(now);
        (true, self.cancel_current("lock expired and op canceled"))
    }

    /// The id of the operation in flight (to match its answer and its timer).
    pub fn current_op(&self) -> Option<i32> {
        self.current.map(|o| o.op_id)
    }

    /// Closes the lock object: cancels the operation in flight, and returns an UNLOCK to
    /// send when the lock may still be held (held, or a try-lock whose lease would still
    /// run).
    pub fn close(&mut self, now: i64) -> Release {
        if self.status == LockStatus::Closed {
            return Release {
                request: None,
                cancelled: None,
            };
        }
        let old = self.status;
        self.status = LockStatus::Closed;
        let cancelled = self.cancel_current("canceled by close");
        let send =
            matches!(old, LockStatus::Locked | LockStatus::Unknown) && self.new_lease_end - now > 0;
        self.reset_lease(now);
        let request = send.then(|| {
            (
                KvCommands::DTKV_UNLOCK,
                KvReq::key(self.group_id, self.key.clone()),
            )
        });
        Release { request, cancelled }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn acquire_renew_and_lose_by_the_local_lease() {
        let mut l = LockClient::new(0, "lk", 1, 0).unwrap();
        let (cmd, req) = l.try_lock(10_000, 0, 0).unwrap();
        assert_eq!(cmd, KvCommands::DTKV_TRY_LOCK);
        assert_eq!(LockPayload::parse(&req.value).unwrap().op_id, 1);
        assert!(l.try_lock(10_000, 0, 0).is_err(), "one operation at a time");
        assert!(matches!(
            l.on_response(1, Ok(KvCode::Success), S),
            Some(LockDone::TryLock(Ok(true)))
        ));
        // The lease counts from the send, not the answer.
        assert_eq!(l.lease_rest_millis(S), 9_000);
        let (_, req) = l.update_lease(20_000, 5 * S).unwrap();
        assert_eq!(req.ttl_millis, 20_000);
        assert!(matches!(
            l.on_response(2, Ok(KvCode::Success), 6 * S),
            Some(LockDone::UpdateLease(Ok(())))
        ));
        assert_eq!(l.lease_end(), Some(25 * S));
        assert!(!l.check_expiry(24 * S).0);
        assert!(l.check_expiry(25 * S).0);
        assert_eq!(l.status(), LockStatus::NotLocked);
    }

    #[test]
    fn waiting_for_a_push_and_its_server_side_wait() {
        let mut l = LockClient::new(0, "lk", 3, 0).unwrap();
        l.try_lock(10_000, 5_000, 0).unwrap();
        assert!(
            l.on_response(1, Ok(KvCode::LockByOther), S).is_none(),
            "waits"
        );
        // A push for another lock object or another operation is ignored.
        let other = LockPayload {
            hold_ttl_millis: 10_000,
            lock_id: 4,
            op_id: 1,
        }
        .to_bytes();
        assert!(l.on_push(&other, 0, 2 * S).is_none());
        let mine = LockPayload {
            hold_ttl_millis: 10_000,
            lock_id: 3,
            op_id: 1,
        }
        .to_bytes();
        assert!(matches!(
            l.on_push(&mine, 2 * S, 3 * S),
            Some(LockDone::TryLock(Ok(true)))
        ));
        // Lease: 10 s from the send, plus the 2 s the server made us wait.
        assert_eq!(l.lease_end(), Some(12 * S));
        let mut l = LockClient::new(0, "lk", 3, 0).unwrap();
        l.try_lock(10_000, 5_000, 0).unwrap();
        assert!(matches!(
            l.on_wait_timeout(1),
            Some(LockDone::TryLock(Ok(false)))
        ));
        assert!(l.on_push(&mine, 0, 6 * S).is_none(), "too late");
    }

    #[test]
    fn unlock_close_and_errors() {
        let mut l = LockClient::new(0, "lk", 1, 0).unwrap();
        assert!(
            l.unlock(false, 0).unwrap().request.is_none(),
            "nothing held"
        );
        l.try_lock(10_000, 0, 0).unwrap();
        let r = l.unlock(false, 0).unwrap();
        assert!(r.request.is_some());
        assert!(matches!(r.cancelled, Some(LockDone::TryLock(Err(_)))));
        assert!(matches!(
            l.on_response(2, Ok(KvCode::NotFound), 0),
            Some(LockDone::Unlock(Ok(())))
        ));
        l.try_lock(10_000, 0, 0).unwrap();
        let done = l.on_response(3, Ok(KvCode::NotLockNode), 0);
        assert!(matches!(
            done,
            Some(LockDone::TryLock(Err(KvError::Business {
                code: KvCode::NotLockNode,
                ..
            })))
        ));
        // A try-lock refused without waiting leaves the state unknown: closing within
        // its lease sends an UNLOCK just in case.
        l.try_lock(1_000, 0, 0).unwrap();
        assert!(matches!(
            l.on_response(4, Ok(KvCode::LockByOther), 0),
            Some(LockDone::TryLock(Ok(false)))
        ));
        assert!(l.close(S / 2).request.is_some());
        assert!(l.try_lock(10, 0, S).is_err());
        assert!(LockClient::new(0, "a..b", 1, 0).is_err());
    }
}
