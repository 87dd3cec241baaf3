//! The auto-renewing lock, without the networking (`wire-protocol.md` §6.8.6, the
//! reference's `AutoRenewalLockImpl`): it keeps trying to acquire the lock (try-lock with
//! wait = lease), renews the lease every lease / 2 once held, retries failed requests
//! after 1 s, 10 s, 30 s, then 60 s, and when the lease runs out locally reports the
//! loss and starts acquiring again.
//!
//! Drive it with time (local monotonic nanoseconds): call [`AutoRenewalLock::tick`] at
//! [`AutoRenewalLock::next_wake`], feed answers and lock pushes, send the requests it
//! returns, and tell the application about [`Renewal::Acquired`] / [`Renewal::Lost`].

use super::codes::KvCode;
use super::error::KvError;
use super::lock_client::{LockClient, LockDone, LockRequest};

const MS: i64 = 1_000_000;

/// Something for the caller to do.
#[derive(Debug)]
pub enum Renewal {
    /// Send this request; its answer goes to [`AutoRenewalLock::on_response`] with
    /// `op_id`.
    Send {
        /// The request.
        request: LockRequest,
        /// The lock operation it belongs to.
        op_id: i32,
    },
    /// The lock is now held (tell the application).
    Acquired,
    /// The lock was lost (tell the application).
    Lost,
}

/// An auto-renewing lock over one [`LockClient`].
#[derive(Debug)]
pub struct AutoRenewalLock {
    lock: LockClient,
    lease_millis: i64,
    retry_millis: Vec<i64>,
    retry_index: usize,
    locked: bool,
    task_got_lock: bool,
    rpc_in_progress: bool,
    restart_after_rpc: bool,
    wake_at: Option<i64>,
    wait_timer: Option<(i32, i64)>,
    closed: bool,
}

impl AutoRenewalLock {
    /// The reference client's retry delays.
    pub const DEFAULT_RETRY_MILLIS: [i64; 4] = [1_000, 10_000, 30_000, 60_000];

    /// An auto-renewing lock holding `lock` for `lease_millis` at a time.
    pub fn new(
        lock: LockClient,
        lease_millis: i64,
        retry_millis: Vec<i64>,
    ) -> Result<Self, KvError> {
        if lease_millis <= 1 || retry_millis.is_empty() {
            return Err(KvError::InvalidArgument(format!(
                "lease must be above 1 ms and retry delays given, got {lease_millis} ms"
            )));
        }
        Ok(AutoRenewalLock {
            lock,
            lease_millis,
            retry_millis,
            retry_index: 0,
            locked: false,
            task_got_lock: false,
            rpc_in_progress: false,
            restart_after_rpc: false,
            wake_at: None,
            wait_timer: None,
            closed: false,
        })
    }

    /// Whether the lock is held at `now`.
    pub fn is_held(&self, now: i64) -> bool {
        self.lock.is_held(now)
    }

    /// The underlying lock object.
    pub fn lock(&self) -> &LockClient {
        &self.lock
    }

    /// Starts acquiring.
    pub fn start(&mut self, now: i64) -> Vec<Renewal> {
        let mut out = Vec::new();
        self.run(now, &mut out);
        out
    }

    /// When [`AutoRenewalLock::tick`] must run next.
    pub fn next_wake(&self) -> Option<i64> {
        [
            self.wake_at,
            self.wait_timer.map(|t| t.1),
            self.lock.lease_end(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs what is due at `now`: the try-lock wait timer, the local lease expiry, the
    /// scheduled renewal or retry.
    pub fn tick(&mut self, now: i64) -> Vec<Renewal> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        if let Some((op, at)) = self.wait_timer {
            if at <= now {
                self.wait_timer = None;
                if let Some(done) = self.lock.on_wait_timeout(op) {
                    self.done(done, now, &mut out);
                }
            }
        }
        let (lost, cancelled) = self.lock.check_expiry(now);
        if lost {
            self.on_expire(now, &mut out);
        }
        if let Some(done) = cancelled {
            self.done(done, now, &mut out);
        }
        if self.wake_at.is_some_and(|t| t <= now) {
            self.wake_at = None;
            self.run(now, &mut out);
        }
        out
    }

    /// The answer to a lock request.
    pub fn on_response(
        &mut self,
        op_id: i32,
        answer: Result<KvCode, KvError>,
        now: i64,
    ) -> Vec<Renewal> {
        let mut out = Vec::new();
        if let Some(done) = self.lock.on_response(op_id, answer, now) {
            self.done(done, now, &mut out);
        }
        out
    }

    /// A DTKV_LOCK_PUSH for this lock's key.
    pub fn on_push(&mut self, value: &[u8], server_wait_nanos: i64, now: i64) -> Vec<Renewal> {
        let mut out = Vec::new();
        if let Some(done) = self.lock.on_push(value, server_wait_nanos, now) {
            self.done(done, now, &mut out);
        }
        out
    }

    /// Stops: returns the UNLOCK to send (when the lock may be held) and reports the
    /// loss if it was held.
    pub fn close(&mut self, now: i64) -> (Option<LockRequest>, Vec<Renewal>) {
        let mut out = Vec::new();
        if self.closed {
            return (None, out);
        }
        self.closed = true;
        self.wake_at = None;
        self.wait_timer = None;
        let release = self.lock.close(now);
        if self.locked {
            self.locked = false;
            out.push(Renewal::Lost);
        }
        (release.request, out)
    }

    fn run(&mut self, now: i64, out: &mut Vec<Renewal>) {
        if self.closed {
            return;
        }
        if self.lock.lease_rest_millis(now) > 1 {
            match self.lock.update_lease(self.lease_millis, now) {
                Ok(request) => self.sent(request, None, out),
                Err(e) => self.failed(e, now),
            }
        } else if !self.task_got_lock {
            match self
                .lock
                .try_lock(self.lease_millis, self.lease_millis, now)
            {
                Ok(request) => {
                    let at = now + self.lease_millis * MS;
                    self.sent(request, Some(at), out)
                }
                Err(e) => self.failed(e, now),
            }
        }
        // Else the lease is about to end: wait for its expiry to start over.
    }

    fn sent(&mut self, request: LockRequest, wait_until: Option<i64>, out: &mut Vec<Renewal>) {
        let op_id = self.lock.current_op().expect("an operation was started");
        self.rpc_in_progress = true;
        self.wait_timer = wait_until.map(|at| (op_id, at));
        out.push(Renewal::Send { request, op_id });
    }

    fn failed(&mut self, _e: KvError, now: i64) {
        self.rpc_in_progress = false;
        let d = self.retry_millis[self.retry_index.min(self.retry_millis.len() - 1)];
        self.retry_index += 1;
        self.wake_at = Some(now + d * MS);
    }

    fn done(&mut self, done: LockDone, now: i64, out: &mut Vec<Renewal>) {
        self.rpc_in_progress = false;
        self.wait_timer = None;
        if self.closed {
            return;
        }
        if self.restart_after_rpc {
            // The lock expired while this request was in flight: start over.
            self.restart_after_rpc = false;
            self.run(now, out);
            return;
        }
        let result = match done {
            LockDone::TryLock(r) => r.map(|_| ()),
            LockDone::UpdateLease(r) | LockDone::Unlock(r) => r,
        };
        match result {
            Err(e) => self.failed(e, now),
            Ok(()) => {
                self.retry_index = 0;
                if self.lock.lease_rest_millis(now) > 1 {
                    self.task_got_lock = true;
                    if !self.locked {
                        self.locked = true;
                        out.push(Renewal::Acquired);
                    }
                    self.wake_at = Some(now + self.lease_millis / 2 * MS);
                } else {
                    self.run(now, out);
                }
            }
        }
    }

    fn on_expire(&mut self, now: i64, out: &mut Vec<Renewal>) {
        if !self.locked {
            return;
        }
        self.wake_at = None;
        self.locked = false;
        out.push(Renewal::Lost);
        self.task_got_lock = false;
        self.retry_index = 0;
        if self.rpc_in_progress {
            self.restart_after_rpc = true;
        } else {
            self.run(now, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvCommands, LockPayload};

    const S: i64 = 1_000_000_000;

    fn new_lock() -> AutoRenewalLock {
        let l = LockClient::new(0, "jobs.leader", 1, 0).unwrap();
        AutoRenewalLock::new(l, 10_000, AutoRenewalLock::DEFAULT_RETRY_MILLIS.to_vec()).unwrap()
    }

    fn sent(r: &[Renewal]) -> (i32, i32) {
        match r.iter().find_map(|x| match x {
            Renewal::Send { request, op_id } => Some((request.0, *op_id)),
            _ => None,
        }) {
            Some(x) => x,
            None => panic!("nothing sent: {r:?}"),
        }
    }

    #[test]
    fn acquires_waits_renews_every_half_lease_and_retries_failures() {
        let mut a = new_lock();
        let (cmd, op) = sent(&a.start(0));
        assert_eq!(cmd, KvCommands::DTKV_TRY_LOCK);
        // Queued behind another holder: waits (the wait timer is the lease).
        assert!(a
            .on_response(op, Ok(KvCode::LockByOther), S / 10)
            .is_empty());
        assert_eq!(a.next_wake(), Some(10 * S));
        // Handed over by push after 2 s.
        let v = LockPayload {
            hold_ttl_millis: 10_000,
            lock_id: 1,
            op_id: op,
        }
        .to_bytes();
        let r = a.on_push(&v, 2 * S, 2 * S);
        assert!(matches!(r[..], [Renewal::Acquired]));
        assert!(a.is_held(3 * S));
        // Renewal at lease / 2.
        assert_eq!(a.next_wake(), Some(7 * S));
        let (cmd, op) = sent(&a.tick(7 * S));
        assert_eq!(cmd, KvCommands::DTKV_UPDATE_LOCK_LEASE);
        // A failure: retried after 1 s, then 10 s.
        let e = KvError::InvalidArgument("network".into());
        assert!(a.on_response(op, Err(e), 7 * S).is_empty());
        assert_eq!(a.next_wake(), Some(8 * S));
        let (_, op) = sent(&a.tick(8 * S));
        let e = KvError::InvalidArgument("network".into());
        a.on_response(op, Err(e), 8 * S);
        // The lease (ending at 12 s) runs out before the 10 s retry: lost, and it starts
        // acquiring again.
        assert_eq!(a.next_wake(), Some(12 * S));
        let r = a.tick(12 * S);
        assert!(matches!(r[0], Renewal::Lost));
        assert_eq!(sent(&r).0, KvCommands::DTKV_TRY_LOCK);
        assert!(!a.is_held(12 * S));
    }

    #[test]
    fn a_try_lock_that_times_out_tries_again_and_close_releases() {
        let mut a = new_lock();
        let (_, op) = sent(&a.start(0));
        assert!(a.on_response(op, Ok(KvCode::LockByOther), 0).is_empty());
        // The wait ended without the lock: the task tries again at once.
        let (cmd, op2) = sent(&a.tick(10 * S));
        assert_eq!(cmd, KvCommands::DTKV_TRY_LOCK);
        assert!(op2 > op);
        let r = a.on_response(op2, Ok(KvCode::Success), 10 * S);
        assert!(matches!(r[..], [Renewal::Acquired]));
        let (unlock, r) = a.close(11 * S);
        assert_eq!(unlock.unwrap().0, KvCommands::DTKV_UNLOCK);
        assert!(matches!(r[..], [Renewal::Lost]));
        assert!(a.tick(20 * S).is_empty());
    }
}
