//! Watches in the DtKV simulation: on every node a watcher (one client connection,
//! outside the linearizability history) watches key `k0`, and the node's watch
//! dispatch runs as the server's daemon does it. The watcher survives the node's
//! crashes and installs (its state is the client's): when the node has no watch of
//! its channel any more (a restart, an install reset the watch state) it syncs again
//! with the raft index it knows.
//!
//! Checks: each delivered notification of `k0` has a raft index above the last one
//! the watcher got from that node (`dtkv-server.md` §7.3: sent only if raftIndex >
//! the watch's notifiedIndex); at the end, on every node that applied as far as any,
//! the watcher's last notification is the key's final state (value and update index,
//! or not existing).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dt_client::kv::{KvCode, WatchNotifyReq, WatchReq, WatchState};
use dt_raft::core::{NodeId, XorShift};
use dt_raft::sim::app::ClusterView;

use super::GROUP;
use crate::dtkv::PushOutcome;
use crate::kv_server::{kv_clock, KvGroup};

/// The watcher's channel id on every node.
const CHANNEL: u64 = 1;

/// The watched key.
pub(crate) const WATCHED: &str = "k0";

/// How often the node's watch dispatch runs.
const PERIOD: Duration = Duration::from_millis(50);

/// One node's watcher (the client side).
#[derive(Debug, Default)]
pub(crate) struct Watcher {
    /// The last notification delivered: (raft index, state, value).
    pub(crate) last: Option<(i64, i32, Bytes)>,
    /// Notifications delivered.
    pub(crate) delivered: u64,
    /// The last push was made to fail (the next is answered).
    failed_last: bool,
}

/// The watch dispatch and the watcher of one node incarnation.
pub(crate) async fn watch_task(
    node: NodeId,
    group: Arc<KvGroup>,
    watcher: Rc<RefCell<Watcher>>,
    cluster: ClusterView,
    seed: u64,
) {
    let mut rng = XorShift::new(seed);
    // ends with the node's incarnation (a crash shuts its fiber group down)
    while let Ok(false) = dt_fiber::sleep_until_shutdown(PERIOD).await {
        let now = kv_clock().0;
        // QUERY_STATUS: the watch count (which also keeps the channel alive)
        if group.lock().watch_count(CHANNEL, now) == 0 {
            let known = watcher.borrow().last.as_ref().map_or(0, |l| l.0);
            let req = WatchReq {
                group_id: GROUP,
                sync_all: false,
                known_raft_indexes: vec![known],
                keys: vec![Bytes::from_static(WATCHED.as_bytes())],
            };
            let code = group.lock().sync_watch(CHANNEL, &req, now);
            if trace() {
                eprintln!(
                    "[{:.6}] n{node} watch sync known {known}: {code:?}",
                    now as f64 / 1e9
                );
            }
            if code != KvCode::Success && code != KvCode::InstallSnapshot {
                cluster.violation(format!("node {node}: watch sync answered {code:?}"));
            }
        }
        let (mut pushes, _) = group.lock().dispatch_watches(now);
        while let Some(p) = pushes.pop() {
            // now and then a push is lost (never two in a row, never at the end)
            let fail =
                !cluster.workload_done() && !watcher.borrow().failed_last && rng.range(0, 19) == 0;
            watcher.borrow_mut().failed_last = fail;
            if fail && trace() {
                eprintln!("[{:.6}] n{node} watch push lost", now as f64 / 1e9);
            }
            let outcome = if fail {
                PushOutcome::Failed { resp_code: None }
            } else {
                deliver(node, &p.req, &watcher, &cluster);
                PushOutcome::Answered {
                    biz_code: KvCode::Success,
                    results: Vec::new(),
                }
            };
            let more = group
                .lock()
                .push_result(p.channel, &p.token, outcome, kv_clock().0);
            pushes.extend(more);
        }
    }
}

/// The watcher receives a push: every notification of the watched key must come
/// after the last one.
fn deliver(node: NodeId, req: &WatchNotifyReq, watcher: &RefCell<Watcher>, cluster: &ClusterView) {
    let mut w = watcher.borrow_mut();
    for n in &req.notify_list {
        if trace() {
            eprintln!(
                "[{:.6}] n{node} watch notify {} state {} {:?}",
                cluster.now_nanos() as f64 / 1e9,
                n.raft_index,
                n.state,
                n.value
            );
        }
        if n.key != WATCHED.as_bytes() {
            cluster.violation(format!(
                "node {node}: notification of unwatched key {:?}",
                n.key
            ));
            continue;
        }
        if let Some((last, _, _)) = &w.last {
            if n.raft_index <= *last {
                cluster.violation(format!(
                    "node {node}: watch notification at raft index {} after one at {last}",
                    n.raft_index
                ));
            }
        }
        w.last = Some((n.raft_index, n.state, n.value.clone()));
        w.delivered += 1;
    }
}

fn trace() -> bool {
    std::env::var_os("DT_SIM_TRACE").is_some()
}

/// At the end: the watcher's last notification is `k0`'s final state on `node`.
pub(crate) fn final_check(node: NodeId, group: &KvGroup, watcher: &Watcher, cluster: &ClusterView) {
    let r = group.lock().tree().get(WATCHED.as_bytes());
    let last = watcher.last.as_ref();
    let ok = match (&r.node, last) {
        (Some(n), Some((i, s, v))) => {
            *i == n.update_index && *s == WatchState::ValueExists.code() && *v == n.data
        }
        (Some(_), None) => false,
        (None, Some((_, s, _))) => *s == WatchState::NotExists.code(),
        (None, None) => true,
    };
    if !ok {
        cluster.violation(format!(
            "node {node}: the watcher's last notification {last:?} is not the final state of {WATCHED} ({:?})",
            r.node.map(|n| (n.update_index, n.data))
        ));
    }
}
