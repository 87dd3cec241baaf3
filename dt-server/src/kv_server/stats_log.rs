//! The server's own performance figures, logged periodically (the reference's default
//! raft and DtKV perf callbacks, which log to its stats log once a minute).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dt_common::{PerfFigures, PerfStats, PerfType};

/// What the server counts when no perf hook is configured: the reference's default
/// callbacks count state-machine executions, lease reads and linearizable operations.
pub const SERVER_STATS: [PerfType; 3] = [
    PerfType::RaftStateMachineExec,
    PerfType::DtkvLeaseRead,
    PerfType::DtkvLinearizableOp,
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
        let lines: Vec<String> = self
            .stats
            .take()
            .into_iter()
            .map(|(t, f)| stats_line(t, &f, period))
            .collect();
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
    fn figures_are_logged_once_per_interval_and_restart() {
        let stats = Arc::new(PerfStats::new(&SERVER_STATS));
        let mut log = StatsLog::new(stats.clone(), Duration::from_secs(60));
        let start = log.since;
        stats.fire_time(PerfType::RaftStateMachineExec, 1_000, 1, 0);
        stats.fire_time(PerfType::DtkvLeaseRead, 3_000_000, 1, 0);
        // not due yet: nothing logged, nothing taken
        assert!(log.tick(start + Duration::from_secs(59)).is_empty());
        let lines = log.tick(start + Duration::from_secs(60));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("raft_state_machine_exec: 1 in 60.0 s"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("dtkv_lease_read: 1 in 60.0 s"),
            "{lines:?}"
        );
        assert!(
            lines[1].ends_with("avg 3.000 ms, max 3.000 ms"),
            "{lines:?}"
        );
        // a new period: quiet types are left out
        stats.fire_time(PerfType::DtkvLinearizableOp, 5_000, 1, 0);
        assert!(log.tick(start + Duration::from_secs(100)).is_empty());
        let lines = log.tick(start + Duration::from_secs(120));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("dtkv_linearizable_op: 1 in 60.0 s"),
            "{lines:?}"
        );
    }
}
