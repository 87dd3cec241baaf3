//! The DtKV simulation in CI (`dt_server::sim`): dt-raft's whole-cluster simulation
//! running DtKV's real state machine binding, TTL expiry and locks under every fault.
//! A fixed set of seeds must be clean, the same seed must give the same history, the
//! workload must reach TTL expiry, lock hand-overs, watch notifications and snapshot
//! installs, and (with
//! the `sim-bugs` feature, as `.ci/run` does) each deliberate DtKV bug must be found.
//!
//! The bug seeds below were found with the example
//! (`cargo run --release -p dt-server --features sim-bugs --example dtkv_sim -- --seeds 100 --bug NAME`);
//! a change of the harness, the workload or DtKV changes every seed's trajectory, so
//! when a bug stops being found within its bound, rerun that command.

use std::time::Duration;

use dt_raft::sim::cluster::SimConfig;
use dt_raft::sim::jsonl::write_history;
use dt_server::sim::run_dtkv_seed;

/// The CI configuration: all faults, 20 simulated seconds (the defaults).
fn cfg(nodes: u32) -> SimConfig {
    SimConfig {
        nodes,
        ..SimConfig::default()
    }
}

/// Seeds per cluster size: fewer in debug builds.
fn seeds(release: u64, debug: u64) -> u64 {
    dt_raft::sim::seeds_for_build(release, debug)
}

fn stat(r: &dt_raft::sim::cluster::SeedReport, name: &str) -> u64 {
    r.app_stats
        .iter()
        .find(|(k, _)| *k == name)
        .map_or(0, |(_, v)| *v)
}

#[test]
fn dtkv_three_nodes_all_faults_fixed_seeds_are_clean() {
    let c = cfg(3);
    let (mut ops, mut expired, mut handovers, mut installs, mut temp) = (0, 0, 0, 0, 0);
    let (mut ahead, mut notified, mut watch_checks) = (0, 0, 0);
    for seed in 1..=seeds(400, 100) {
        let r = run_dtkv_seed(&c, seed, None);
        r.fully_checked().unwrap_or_else(|e| panic!("{e}"));
        assert!(r.ops > 100, "the workload ran: {r}");
        ops += r.ops;
        expired += stat(&r, "expired");
        ahead += stat(&r, "ttls_ahead");
        notified += stat(&r, "watch_notifications");
        watch_checks += stat(&r, "watch_final_checks");
        handovers += stat(&r, "lock_handovers");
        temp += stat(&r, "temp_puts");
        installs += r.stats.installs;
    }
    // seeds 1..=100: 43,728 client operations, 817 TTL expiries through the log,
    // 159 lock hand-overs, 303 temp nodes written, 2,964 watch notifications, 199
    // watchers compared with the final state, 10 states whose TTLs differed only by a
    // TTL restarted later (carried by a snapshot; 58 before the simulated disk kept
    // the snapshot's entry at a log deletion, as the store does, which made installs
    // rarer)
    assert!(ops > 20_000, "clients ran ({ops})");
    assert!(
        expired > 300,
        "temp nodes expired through the log ({expired})"
    );
    assert!(handovers > 50, "locks were handed over ({handovers})");
    assert!(temp > 100, "temp nodes were written ({temp})");
    assert!(notified > 1_000, "watchers were notified ({notified})");
    assert!(
        watch_checks > 100,
        "watchers were checked at the end ({watch_checks})"
    );
    assert!(ahead >= 5, "snapshots carried newer TTLs ({ahead})");
    assert!(installs > 20, "snapshots were installed ({installs})");
}

#[test]
fn dtkv_five_nodes_all_faults_fixed_seeds_are_clean() {
    let c = cfg(5);
    for seed in 1..=seeds(100, 25) {
        let r = run_dtkv_seed(&c, seed, None);
        r.fully_checked().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A replica that installed a snapshot read after a later lease refresh replays the
/// lock hand-over under it with the newer TTL (TTLs change in place, as in the
/// reference): its fencing token reads the refresh's index, not the grant's. The lock
/// check allows a later token, never an earlier one. These seeds did that when they
/// were chosen; a change to the consensus code changes the runs, so the test asks only
/// that one of them still does. When none does, find new ones with
/// `for s in $(seq 1 2000); do cargo run --release -p dt-server --example dtkv_sim --
/// --seeds 1 --start $s | grep -q 'tokens_ahead=[1-9]' && echo $s; done`.
#[test]
fn dtkv_replayed_grant_under_a_newer_ttl_is_clean() {
    let mut shown = 0;
    for seed in [264, 790, 936, 1049, 1247] {
        let r = run_dtkv_seed(&cfg(3), seed, None);
        r.fully_checked().unwrap_or_else(|e| panic!("{e}"));
        shown += stat(&r, "tokens_ahead");
    }
    assert!(
        shown > 0,
        "none of the seeds replays a grant under a newer TTL any more"
    );
}

#[test]
fn dtkv_same_seed_same_history() {
    let c = SimConfig {
        duration: Duration::from_secs(10),
        ..cfg(3)
    };
    let enc = |seed| {
        let r = run_dtkv_seed(&c, seed, None);
        let mut v = Vec::new();
        write_history(&mut v, &r.history).unwrap();
        (v, r.app_stats)
    };
    let a = enc(42);
    assert!(!a.0.is_empty());
    assert_eq!(a, enc(42));
    assert_ne!(a.0, enc(43).0);
}

#[cfg(feature = "sim-bugs")]
mod bugs {
    use super::*;
    use dt_server::sim::DtKvBug;

    /// The first seed of `1..=max` where `bug` is found (and that seed is clean
    /// without it).
    fn found_within(bug: DtKvBug, max: u64) -> u64 {
        let c = cfg(3);
        let seed = (1..=max)
            .find(|s| !run_dtkv_seed(&c, *s, Some(bug)).violations.is_empty())
            .unwrap_or_else(|| panic!("{} not found in {max} seeds", bug.name()));
        let r = run_dtkv_seed(&c, seed, None);
        r.fully_checked().unwrap_or_else(|e| panic!("{e}"));
        seed
    }

    #[test]
    fn expire_by_local_clock_is_found_within_5_seeds() {
        // seeds 1..=60: found in 53 (the first is seed 1), by the TTL and digest checks
        found_within(DtKvBug::ExpireByLocalClock, 5);
    }

    #[test]
    fn try_lock_steals_held_lock_is_found_within_5_seeds() {
        // seeds 1..=60: found in 54 (the first is seed 1), by the lock hand-over check
        found_within(DtKvBug::TryLockStealsHeldLock, 5);
    }

    #[test]
    fn install_forgets_ttls_is_found_within_30_seeds() {
        // seeds 1..=60: found in 5 (the first is seed 16, since the membership-liveness
        // and tail-cache changes rerouted the runs; it was seed 1), by the end's TTL check
        found_within(DtKvBug::InstallForgetsTtls, 30);
    }
}
