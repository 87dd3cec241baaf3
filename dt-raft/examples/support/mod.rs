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

/// CPU time of this process (user + system), from `/proc/self/stat` and the clock tick
/// rate in the auxiliary vector (Linux; `None` elsewhere).
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    let hz = auxv
        .chunks_exact(16)
        .find(|c| u64::from_ne_bytes(c[..8].try_into().unwrap_or([0; 8])) == 17)
        .map(|c| u64::from_ne_bytes(c[8..].try_into().unwrap_or([0; 8])))
        .filter(|h| *h > 0)
        .unwrap_or(100);
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}
