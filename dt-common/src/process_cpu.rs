//! The CPU time this process has used, user and system apart, as Linux reports it in
//! `/proc/self/stat` (bench programs read it before and after a measured phase to give
//! a cost per operation that does not depend on how busy the machine was).
//!
//! ```
//! if let Some((user, system)) = dt_common::process_cpu::process_cpu_split() {
//!     println!("{:?} user, {:?} system so far", user, system);
//! }
//! ```

use std::time::Duration;

/// CPU time of this process (user + system); `None` where `/proc/self/stat` cannot be
/// read (not Linux).
pub fn process_cpu() -> Option<Duration> {
    process_cpu_split().map(|(user, system)| user + system)
}

/// CPU time of this process, user and system apart (see [`process_cpu`]): fields 14
/// and 15 of `/proc/self/stat`, in clock ticks of the rate the auxiliary vector gives.
pub fn process_cpu_split() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (user, system) = parse_process_ticks(&stat)?;
    let hz = clock_ticks_per_second();
    let d = |t: u64| Duration::from_nanos(t.saturating_mul(1_000_000_000) / hz);
    Some((d(user), d(system)))
}

/// The user and system ticks (fields 14 and 15) of a `/proc/<pid>/stat` line; `None`
/// when the line does not have them.
pub fn parse_process_ticks(stat: &str) -> Option<(u64, u64)> {
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

/// The clock tick rate (`AT_CLKTCK`, entry 17 of the auxiliary vector; 100 when unknown).
fn clock_ticks_per_second() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| {
            auxv.chunks_exact(16)
                .find(|c| u64::from_ne_bytes(c[..8].try_into().unwrap_or([0; 8])) == 17)
                .map(|c| u64::from_ne_bytes(c[8..].try_into().unwrap_or([0; 8])))
        })
        .filter(|h| *h > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticks_are_fields_14_and_15_even_when_the_command_name_has_spaces() {
        let line = "4242 (dt bench (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    731 96 0 0 20 0 9 0 12345 0 0";
        assert_eq!(parse_process_ticks(line), Some((731, 96)));
        assert_eq!(parse_process_ticks("12 (short) S 1 2"), None);
        assert_eq!(parse_process_ticks("no parenthesis"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_used_some_cpu_and_the_count_only_grows() {
        let a = process_cpu().expect("Linux has /proc/self/stat");
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = process_cpu().expect("Linux has /proc/self/stat");
        assert!(b > a, "{a:?} then {b:?} after 60 ms of spinning");
    }
}
