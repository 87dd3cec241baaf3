//! The server's own performance figures, logged periodically (the reference's default
//! raft and DtKV perf callbacks, which log to its stats log once a minute).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dt_common::{PerfFigures, PerfStats, PerfType};

/// What the server counts when no perf hook is configured: as the reference's default
/// callbacks, state-machine executions, lease reads, linearizable operations, and the
/// loops of the network IO threads and of the dispatchers (their busy share).
pub const SERVER_STATS: [PerfType; 7] = [
    PerfType::RaftStateMachineExec,
    PerfType::DtkvLeaseRead,
    PerfType::DtkvLinearizableOp,
    PerfType::RpcWorkerSel,
    PerfType::RpcWorkerWork,
    PerfType::FiberPoll,
    PerfType::FiberWork,
];

/// Loop figures reported as one line each: (work, wait, the line's name).
const LOOPS: [(PerfType, PerfType, &str); 2] = [
    (
        PerfType::RpcWorkerWork,
        PerfType::RpcWorkerSel,
        "rpc_io_threads",
    ),
    (PerfType::FiberWork, PerfType::FiberPoll, "raft_dispatchers"),
];

/// The log target of the figures (route it to a file of its own with the logger's
/// filters, as the reference writes `dongting-stats.log`).
pub const STATS_TARGET: &str = "dt_stats";

/// Logs a [`PerfStats`]'s figures every `interval`, from a thread that calls
/// [`StatsLog::tick`] often (the DtKV daemon).
#[derive(Debug)]
pub struct StatsLog {
    stats: Arc<PerfStats>,
    interval: Duration,
    since: Instant,
}

impl StatsLog {
    /// Figures of `stats` every `interval` (not zero), the first period starting now.
    pub fn new(stats: Arc<PerfStats>, interval: Duration) -> Self {
        StatsLog {
            stats,
            interval,
            since: Instant::now(),
        }
    }

    /// Logs (target [`STATS_TARGET`], info) and restarts the figures once `interval`
    /// has passed since the period began; returns the lines logged.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let period = now.saturating_duration_since(self.since);
        if period < self.interval {
            return Vec::new();
        }
        self.since = now;
        let taken = self.stats.take();
        let of = |t: PerfType| taken.iter().find(|(x, _)| *x == t).map(|(_, f)| *f);
        let mut lines: Vec<String> = taken
            .iter()
            .filter(|(t, _)| !LOOPS.iter().any(|(w, p, _)| t == w || t == p))
            .map(|(t, f)| stats_line(*t, f, period))
            .collect();
        for (work, wait, name) in LOOPS {
            if let Some(w) = of(work) {
                lines.push(loop_line(name, &w, &of(wait).unwrap_or_default()));
            }
        }
        for l in &lines {
            log::info!(target: STATS_TARGET, "{l}");
        }
        lines
    }
}

/// One type's figures over `period` as a log line, e.g.
/// `dtkv_linearizable_op: 1200 in 60.0 s (20.0/s), avg 2.512 ms, max 9.003 ms`.
pub fn stats_line(t: PerfType, f: &PerfFigures, period: Duration) -> String {
    let secs = period.as_secs_f64();
    let rate = if secs > 0.0 {
        f.events as f64 / secs
    } else {
        0.0
    };
    format!(
        "{}: {} in {:.1} s ({:.1}/s), avg {:.3} ms, max {:.3} ms",
        t.name(),
        f.events,
        secs,
        rate,
        f.avg_nanos() as f64 / 1e6,
        f.max_nanos as f64 / 1e6
    )
}

/// The figures of threads that loop between waiting and working (IO threads,
/// dispatchers), summed over the threads: e.g. `rpc_io_threads: 1523000 rounds, avg
/// 12.5 us, max 1.200 ms, busy 31.7%` (the reference's "thread avg usage").
pub fn loop_line(name: &str, work: &PerfFigures, wait: &PerfFigures) -> String {
    let total = work.total_nanos + wait.total_nanos;
    let busy = if total > 0 {
        work.total_nanos as f64 * 100.0 / total as f64
    } else {
        0.0
    };
    format!(
        "{name}: {} rounds, avg {:.1} us, max {:.3} ms, busy {busy:.1}%",
        work.events,
        work.avg_nanos() as f64 / 1e3,
        work.max_nanos as f64 / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dt_common::PerfCallback;

    #[test]
    fn a_line_names_the_type_and_its_figures() {
        let f = PerfFigures {
            events: 1200,
            items: 1200,
            bytes: 0,
            total_nanos: 1200 * 2_512_000,
            max_nanos: 9_003_000,
        };
        assert_eq!(
            stats_line(PerfType::DtkvLinearizableOp, &f, Duration::from_secs(60)),
            "dtkv_linearizable_op: 1200 in 60.0 s (20.0/s), avg 2.512 ms, max 9.003 ms"
        );
    }

    #[test]
    fn loops_are_one_line_with_their_busy_share() {
        let stats = Arc::new(PerfStats::new(&SERVER_STATS));
        let mut log = StatsLog::new(stats.clone(), Duration::from_secs(1));
        let start = log.since;
        for _ in 0..4 {
            stats.fire_time(PerfType::RpcWorkerWork, 25_000, 1, 0);
            stats.fire_time(PerfType::RpcWorkerSel, 75_000, 1, 0);
        }
        stats.fire_time(PerfType::FiberWork, 2_000_000, 1, 0);
        let lines = log.tick(start + Duration::from_secs(1));
        assert_eq!(
            lines,
            vec![
                "rpc_io_threads: 4 rounds, avg 25.0 us, max 0.025 ms, busy 25.0%".to_string(),
                "raft_dispatchers: 1 rounds, avg 2000.0 us, max 2.000 ms, busy 100.0%".to_string(),
            ]
        );
    }

    #[test]
    fn figures_are_logged_once_per_interval_and_restart() {
        let stats = Arc::new(PerfStats::new(&SERVER_STATS));
        let mut log = StatsLog::new(stats.clone(), Duration::from_secs(60));
        let start = log.since;
        stats.fire_time(PerfType::RaftStateMachineExec, 1_000, 1, 0);
        stats.fire_time(PerfType::DtkvLeaseRead, 3_000_000, 1, 0);
        // not due yet: nothing logged, nothing taken
        assert!(log.tick(start + Duration::from_secs(59)).is_empty());
        assert_eq!(
            log.tick(start + Duration::from_secs(60)),
            vec![
                "raft_state_machine_exec: 1 in 60.0 s (0.0/s), avg 0.001 ms, max 0.001 ms",
                "dtkv_lease_read: 1 in 60.0 s (0.0/s), avg 3.000 ms, max 3.000 ms",
            ]
        );
        // a new period: quiet types are left out
        stats.fire_time(PerfType::DtkvLinearizableOp, 5_000, 1, 0);
        assert!(log.tick(start + Duration::from_secs(100)).is_empty());
        assert_eq!(
            log.tick(start + Duration::from_secs(120)),
            vec!["dtkv_linearizable_op: 1 in 60.0 s (0.0/s), avg 0.005 ms, max 0.005 ms"]
        );
    }
}
