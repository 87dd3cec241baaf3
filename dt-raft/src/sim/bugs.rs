//! Deliberate bugs the simulation must be able to find (its self-test).
//!
//! Each [`Bug`] is a small, marked change of behaviour. Four live in the consensus
//! core and its driver and exist only when dt-raft is built with the `sim-bugs` cargo feature (the hooks
//! compile to nothing otherwise); the others live in the simulation's own disk and
//! harness (the lease-read hook in the client path of [`super::drive`]) and are always
//! available. A bug is switched on for the current thread
//! (the simulation is single-threaded) with [`set_active`].

use std::cell::Cell;

/// A deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// Core: the leader commits an entry of an older term by counting its replicas
    /// (raft.md §8.2 forbids it; Figure 8 of the Raft paper).
    CommitOldTerm,
    /// Core: a granted vote is answered before the status file holds it.
    VoteBeforePersist,
    /// Harness: a lease read is served even after the lease ran out.
    StaleLeaseRead,
    /// Disk: an append is acknowledged as persisted before its fsync.
    AckBeforeFsync,
    /// Driver: the lease published for reads on other threads
    /// ([`RaftGroup::lease_holds_now`](crate::driver::RaftGroup::lease_holds_now), the
    /// DtKV IO thread's fast path) is not cleared when the node can no longer serve
    /// lease reads (a step down, a leader transfer): it holds until its end.
    StalePublishedLease,
    /// Driver: a follower's install ends (the log restarts after the snapshot and
    /// takes new entries) before the installed snapshot is saved as the node's own; a
    /// crash in between leaves an older snapshot and a log starting after the
    /// installed one, so the node needs an install again, which drops entries it had
    /// acknowledged.
    SaveAfterInstall,
}

impl Bug {
    /// Every bug, in `--list-bugs` order.
    pub const ALL: [Bug; 6] = [
        Bug::CommitOldTerm,
        Bug::VoteBeforePersist,
        Bug::StaleLeaseRead,
        Bug::AckBeforeFsync,
        Bug::StalePublishedLease,
        Bug::SaveAfterInstall,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::CommitOldTerm => "commit-old-term",
            Bug::VoteBeforePersist => "vote-before-persist",
            Bug::StaleLeaseRead => "stale-lease-read",
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::StalePublishedLease => "stale-published-lease",
            Bug::SaveAfterInstall => "save-after-install",
        }
    }

    /// The bug of a command-line name.
    pub fn from_name(s: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == s)
    }

    /// Whether this build can switch the bug on (core bugs need `sim-bugs`).
    pub fn available(self) -> bool {
        match self {
            Bug::CommitOldTerm
            | Bug::VoteBeforePersist
            | Bug::StalePublishedLease
            | Bug::SaveAfterInstall => cfg!(feature = "sim-bugs"),
            Bug::StaleLeaseRead | Bug::AckBeforeFsync => true,
        }
    }
}

/// A set of deliberate bugs a simulation can switch on (the core's [`Bug`], DtKV's):
/// what the simulation programs' `--bug` and `--list-bugs` flags read.
pub trait SimBug: Copy + 'static {
    /// Every bug, in `--list-bugs` order.
    fn all() -> &'static [Self];
    /// The command-line name.
    fn name(self) -> &'static str;
    /// Whether this build can switch the bug on.
    fn available(self) -> bool;
}

impl SimBug for Bug {
    fn all() -> &'static [Self] {
        &Bug::ALL
    }
    fn name(self) -> &'static str {
        Bug::name(self)
    }
    fn available(self) -> bool {
        Bug::available(self)
    }
}

/// Reads a `--bug` flag: `None` without one; a message a person can act on for an
/// unknown name, or for a bug this build cannot switch on (`--features sim-bugs`).
pub fn parse_bug_flag<B: SimBug>(name: Option<&str>) -> Result<Option<B>, String> {
    let Some(n) = name else { return Ok(None) };
    match B::all().iter().copied().find(|b| b.name() == n) {
        None => Err(format!("--bug: unknown bug {n:?} (see --list-bugs)")),
        Some(b) if !b.available() => Err(format!(
            "--bug {n}: this build has no hooks for it; add --features sim-bugs"
        )),
        Some(b) => Ok(Some(b)),
    }
}

/// The flags both simulation programs share: `--list-bugs` (prints the bugs of `B`,
/// one per line, and gives `Ok(None)`: nothing more to do), `--faults` and `--bug`.
/// `Err` is a message for a person (the programs exit with status 2).
pub fn sim_flags<B: SimBug>(
    list_bugs: bool,
    faults: &str,
    bug: Option<&str>,
) -> Result<Option<(super::cluster::Faults, Option<B>)>, String> {
    if list_bugs {
        for &b in B::all() {
            println!("{}", b.name());
        }
        return Ok(None);
    }
    let faults = super::cluster::Faults::parse(faults).map_err(|e| format!("--faults: {e}"))?;
    Ok(Some((faults, parse_bug_flag::<B>(bug)?)))
}

thread_local! {
    static ACTIVE: Cell<Option<Bug>> = const { Cell::new(None) };
}

/// Switches `bug` on for this thread (`None`: all off).
pub fn set_active(bug: Option<Bug>) {
    ACTIVE.with(|a| a.set(bug));
}

/// Whether `bug` is on for this thread.
pub fn is_active(bug: Bug) -> bool {
    ACTIVE.with(|a| a.get() == Some(bug))
}

#[cfg(test)]
mod flag_tests {
    use super::*;

    #[test]
    fn a_bug_flag_names_a_bug_or_says_what_is_wrong() {
        assert_eq!(parse_bug_flag::<Bug>(None), Ok(None));
        assert_eq!(
            parse_bug_flag::<Bug>(Some("ack-before-fsync")),
            Ok(Some(Bug::AckBeforeFsync))
        );
        assert!(parse_bug_flag::<Bug>(Some("no-such-bug"))
            .unwrap_err()
            .contains("unknown bug"));
        let gated = parse_bug_flag::<Bug>(Some("commit-old-term"));
        if cfg!(feature = "sim-bugs") {
            assert_eq!(gated, Ok(Some(Bug::CommitOldTerm)));
        } else {
            assert!(gated.unwrap_err().contains("--features sim-bugs"));
        }
    }
}
