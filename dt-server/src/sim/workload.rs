//! The DtKV simulation's own clients (outside the linearizability history): a TTL
//! client writing temporary nodes, and lock clients on one lock key.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use dt_client::kv::{KvCommands, KvReq, LockPayload};
use dt_fiber::FiberGroup;
use dt_net::ProcessInfo;
use dt_raft::core::XorShift;
use dt_raft::sim::app::ClusterView;
use dt_raft::sm::RaftInput;

use super::{plan_write, DtKvStats, GROUP, LOCK_KEY};

/// Number of temporary keys (`t0..`).
pub(crate) const TEMP_KEYS: u64 = 3;

/// Lock clients.
const LOCK_CLIENTS: u64 = 3;

/// How long a client waits for an answer.
const TIMEOUT: Duration = Duration::from_millis(1_500);

/// The DtKV key of temporary key `i`.
pub(crate) fn temp_key(i: u64) -> String {
    format!("t{i}")
}

/// Starts the TTL client and the lock clients on `fg`.
pub(crate) fn spawn(
    cluster: ClusterView,
    fg: &FiberGroup,
    seed: u64,
    stats: Rc<RefCell<DtKvStats>>,
) {
    let mut rng = XorShift::new(seed);
    let _ = fg.spawn(
        "dtkv-ttl-client",
        ttl_client(cluster.clone(), rng.next_u64(), stats.clone()),
    );
    for i in 0..LOCK_CLIENTS {
        let _ = fg.spawn(
            "dtkv-lock-client",
            lock_client(cluster.clone(), i, rng.next_u64(), stats.clone()),
        );
    }
}

/// Submits `input` at the leader; `Some(result)` when an answer came.
async fn submit(cluster: &ClusterView, input: RaftInput) -> Option<bool> {
    let raft = cluster.raft(cluster.leader()?)?;
    match dt_fiber::within(raft.submit_async(input), TIMEOUT).await {
        Some(Ok((_, ok))) => Some(ok),
        _ => None,
    }
}

/// Sleeps `ms`; false when the workload (or the run) is over.
async fn pause(cluster: &ClusterView, ms: u64) -> bool {
    dt_fiber::sleep(Duration::from_millis(ms)).await.is_ok() && !cluster.workload_done()
}

/// Writes temporary nodes with short TTLs, sometimes refreshes or removes them.
async fn ttl_client(cluster: ClusterView, seed: u64, stats: Rc<RefCell<DtKvStats>>) {
    let mut rng = XorShift::new(seed);
    let owner = ProcessInfo {
        uuid1: 2_000,
        uuid2: 9,
    };
    while pause(&cluster, rng.range(50, 600)).await {
        let key = temp_key(rng.range(0, TEMP_KEYS - 1));
        let ttl = rng.range(200, 1_500) as i64;
        let (command, req) = match rng.range(0, 9) {
            0..=5 => (
                KvCommands::DTKV_PUT_TEMP_NODE,
                KvReq::put(GROUP, key, "temp").with_ttl(ttl),
            ),
            6..=7 => (
                KvCommands::DTKV_UPDATE_TTL,
                KvReq::key(GROUP, key).with_ttl(ttl),
            ),
            _ => (KvCommands::DTKV_REMOVE, KvReq::key(GROUP, key)),
        };
        let Ok(input) = plan_write(command, &req, owner) else {
            cluster.violation(format!(
                "the TTL client's {command} was refused before the log"
            ));
            continue;
        };
        if submit(&cluster, input).await == Some(true) && command == KvCommands::DTKV_PUT_TEMP_NODE
        {
            stats.borrow_mut().temp_puts += 1;
        }
    }
}

/// Tries the lock (with or without a wait), holds it a while (refreshing the lease
/// sometimes), then unlocks or lets the hold lease run out.
async fn lock_client(cluster: ClusterView, i: u64, seed: u64, stats: Rc<RefCell<DtKvStats>>) {
    let mut rng = XorShift::new(seed);
    let owner = ProcessInfo {
        uuid1: 3_000 + i,
        uuid2: 11,
    };
    let mut op = 0i32;
    while pause(&cluster, rng.range(20, 500)).await {
        op += 1;
        let hold = rng.range(200, 1_200) as i64;
        let wait = if rng.range(0, 2) == 0 {
            0
        } else {
            // a TRY_LOCK's wait is at most its hold lease (`check_ttl`)
            rng.range(100, hold as u64) as i64
        };
        let payload = LockPayload {
            hold_ttl_millis: hold,
            lock_id: 1,
            op_id: op,
        };
        let lock = KvReq::put(GROUP, LOCK_KEY, payload.to_bytes()).with_ttl(wait);
        let mut reqs = vec![(KvCommands::DTKV_TRY_LOCK, lock)];
        if rng.range(0, 3) == 0 {
            reqs.push((
                KvCommands::DTKV_UPDATE_LOCK_LEASE,
                KvReq::key(GROUP, LOCK_KEY).with_ttl(hold),
            ));
        }
        if rng.range(0, 4) != 0 {
            reqs.push((KvCommands::DTKV_UNLOCK, KvReq::key(GROUP, LOCK_KEY)));
        }
        for (n, (command, req)) in reqs.into_iter().enumerate() {
            if n > 0 && !pause(&cluster, rng.range(0, 800)).await {
                return;
            }
            let Ok(input) = plan_write(command, &req, owner) else {
                cluster.violation(format!("lock client {i}: {command} refused before the log"));
                continue;
            };
            if submit(&cluster, input).await.is_some() {
                stats.borrow_mut().lock_ops += 1;
            }
        }
    }
}
