//! Pieces the dt-raft bench programs share (not an example itself: a directory without a
//! `main.rs`). Each program includes it with `#[path = "support/mod.rs"] mod support;`.

#![allow(dead_code)] // each program uses some of it

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory to work in: `dir` (created) when given, else a fresh temporary one
/// named `prefix…`, removed when the returned guard drops.
pub fn work_dir(
    dir: Option<&Path>,
    prefix: &str,
) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            Ok((d.to_path_buf(), None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .map_err(|e| format!("temp dir: {e}"))?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// This process's resident set and its peak, in KiB (`VmRSS`, `VmHWM` of
/// `/proc/self/status`; `None` where there is no such file).
pub fn resident_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[allow(unused_imports)] // each program uses some of it
pub use dt_common::process_cpu::{parse_process_ticks, process_cpu, process_cpu_split};

/// The whole machine's CPU ticks so far (all cores), from the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// Every tick counted (busy, idle and waiting for IO; guest time is already in user).
    pub total: u64,
    /// Ticks neither idle nor waiting for IO.
    pub busy: u64,
    /// Ticks in the kernel: system, hard and soft interrupts (kernel threads such as
    /// the page-cache writeback workers count here, whoever caused their work).
    pub kernel: u64,
}

/// The machine's CPU ticks now (Linux; `None` elsewhere).
pub fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// [`MachineTicks`] from the text of `/proc/stat` (its first line: `cpu user nice
/// system idle iowait irq softirq steal ...`).
pub fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
        return None;
    };
    let kernel = system + irq + softirq;
    let busy = user + nice + kernel + steal;
    Some(MachineTicks {
        total: busy + idle + iowait,
        busy,
        kernel,
    })
}

/// The process's and the machine's CPU counters at one moment ([`CpuSample::now`]).
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    /// The process's user and system time.
    pub process: (Duration, Duration),
    /// The machine's ticks.
    pub machine: MachineTicks,
}

impl CpuSample {
    /// Both counters now (Linux; `None` elsewhere).
    pub fn now() -> Option<CpuSample> {
        Some(CpuSample {
            process: process_cpu_split()?,
            machine: machine_ticks()?,
        })
    }
}

/// The `CPU ...` line of a bench over `wall` seconds, from sample `a` to sample `b`:
/// the process's user and system CPU as percentages of one core, and the machine's
/// busy and kernel shares of all its cores (the kernel work a process causes but does
/// not run itself, such as writeback, shows only in the machine's share).
pub fn cpu_line(wall: Duration, a: &CpuSample, b: &CpuSample) -> String {
    let wall = wall.as_secs_f64().max(1e-9);
    let (m0, m1) = (a.machine, b.machine);
    let total = m1.total.saturating_sub(m0.total).max(1) as f64;
    let user = b.process.0.saturating_sub(a.process.0);
    let system = b.process.1.saturating_sub(a.process.1);
    format!(
        "CPU process_user_pct={:.1} process_sys_pct={:.1} machine_busy_pct={:.1} machine_kernel_pct={:.1}",
        user.as_secs_f64() * 100.0 / wall,
        system.as_secs_f64() * 100.0 / wall,
        m1.busy.saturating_sub(m0.busy) as f64 * 100.0 / total,
        m1.kernel.saturating_sub(m0.kernel) as f64 * 100.0 / total,
    )
}
