//! Deliberate DtKV bugs the DtKV simulation must find (its self-test).
//!
//! The hooks exist only when dt-server is built with the `sim-bugs` cargo feature
//! (they compile to nothing otherwise). A bug is switched on for the current thread
//! (the simulation is single-threaded) with [`set_active`].

use std::cell::Cell;

/// A deliberate DtKV bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtKvBug {
    /// Binding: an EXPIRE entry is skipped by a replica whose own TTL queue says the
    /// TTL has not run out yet at its local clock (expiry decided from the applying
    /// node's clock instead of the log): replicas diverge.
    ExpireByLocalClock,
    /// Apply: a TRY_LOCK on a lock held by another client takes it away from the
    /// holder (the holder's entry is dropped, the caller is granted the lock).
    TryLockStealsHeldLock,
    /// Install: the TTLs of an installed snapshot (from the leader, or the node's own
    /// at a restart) are not queued in the TtlManager: those nodes never expire.
    InstallForgetsTtls,
}

impl DtKvBug {
    /// Every bug, in `--list-bugs` order.
    pub const ALL: [DtKvBug; 3] = [
        DtKvBug::ExpireByLocalClock,
        DtKvBug::TryLockStealsHeldLock,
        DtKvBug::InstallForgetsTtls,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DtKvBug::ExpireByLocalClock => "expire-by-local-clock",
            DtKvBug::TryLockStealsHeldLock => "try-lock-steals-held-lock",
            DtKvBug::InstallForgetsTtls => "install-forgets-ttls",
        }
    }

    /// The bug of a command-line name.
    pub fn from_name(s: &str) -> Option<DtKvBug> {
        DtKvBug::ALL.into_iter().find(|b| b.name() == s)
    }

    /// Whether this build can switch the bug on (it needs the `sim-bugs` feature).
    pub fn available(self) -> bool {
        cfg!(feature = "sim-bugs")
    }
}

impl dt_raft::sim::bugs::SimBug for DtKvBug {
    fn all() -> &'static [Self] {
        &DtKvBug::ALL
    }
    fn name(self) -> &'static str {
        DtKvBug::name(self)
    }
    fn available(self) -> bool {
        DtKvBug::available(self)
    }
}

thread_local! {
    static ACTIVE: Cell<Option<DtKvBug>> = const { Cell::new(None) };
}

/// Switches `bug` on for this thread (`None`: all off).
pub fn set_active(bug: Option<DtKvBug>) {
    ACTIVE.with(|a| a.set(bug));
}

/// Whether `bug` is on for this thread.
pub fn is_active(bug: DtKvBug) -> bool {
    ACTIVE.with(|a| a.get() == Some(bug))
}

/// The hook of [`DtKvBug::ExpireByLocalClock`] in the state machine binding: whether
/// to skip this entry.
#[cfg(feature = "sim-bugs")]
pub(crate) fn skip_expire(
    biz: crate::dtkv::BizType,
    req: &dt_client::kv::KvReq,
    kv: &mut crate::dtkv::DtKv<crate::kv_server::ChannelId>,
    now: i64,
) -> bool {
    is_active(DtKvBug::ExpireByLocalClock)
        && biz == crate::dtkv::BizType::Expire
        && kv
            .ttl_manager()
            .expiry_of(&req.key)
            .is_some_and(|(index, at)| index == req.ttl_millis && at > now)
}
