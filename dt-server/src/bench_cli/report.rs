//! What `dt-bench` prints: the reference's configuration blocks and per-second lines
//! (same wording), the `[Final]` lines with percentiles, the `--json` object and the
//! `RESULT` line scripts parse.

use super::args::BenchArgs;
use super::stats::{Percentiles, Window};

/// The outcome of the measured phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Counts and latency sum/maximum of the measured phase.
    pub totals: Window,
    /// Length of the measured phase in seconds.
    pub elapsed_secs: f64,
    /// Latency percentiles of the measured phase.
    pub percentiles: Percentiles,
    /// The CPU time this process (the clients and their network threads) used during
    /// the measured phase, user and system apart; `None` where it cannot be read (not
    /// Linux). With the server's own CPU per operation, it tells client cost from
    /// server cost when both share a machine.
    pub client_cpu: Option<ClientCpu>,
}

/// CPU time of the benchmark process over the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClientCpu {
    /// User time, seconds.
    pub user_secs: f64,
    /// System time, seconds.
    pub system_secs: f64,
}

impl Summary {
    /// Successful operations per second of the measured phase.
    pub fn tps(&self) -> f64 {
        if self.elapsed_secs > 0.0 {
            self.totals.success as f64 / self.elapsed_secs
        } else {
            0.0
        }
    }

    /// The benchmark process's CPU microseconds per successful operation of the
    /// measured phase (`None` without a CPU reading or without successes).
    pub fn client_cpu_us_per_op(&self) -> Option<f64> {
        let c = self.client_cpu?;
        (self.totals.success > 0)
            .then(|| (c.user_secs + c.system_secs) * 1e6 / self.totals.success as f64)
    }
}

/// `n` with a comma every three digits (Java's `%,d`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate rounded to a whole number (half to even) with thousands separators (the
/// reference's `#,###`).
pub fn rate(x: f64) -> String {
    thousands(x.max(0.0).round_ties_even() as u64)
}

/// One per-second line: `[Warmup|Now] TPS: …, Success: …, Fail: …, Avg: … us, Max: … us`.
pub fn second_line(label: &str, w: &Window) -> String {
    format!(
        "[{label}] TPS: {}, Success: {}, Fail: {}, Avg: {} us, Max: {} us",
        rate(w.success as f64),
        thousands(w.success),
        thousands(w.fail),
        thousands(w.avg_us()),
        thousands(w.max_us())
    )
}

/// The first block: where the servers come from.
pub fn configuration_block(args: &BenchArgs, servers: &str) -> String {
    format!(
        "Configuration:\n  Config file: {}\n  Servers: {servers}\n  Group ID: {}\n",
        args.servers_file.display(),
        args.group_id
    )
}

/// The `Benchmark config:` block (printed before the warm-up and before the result).
pub fn benchmark_config_block(args: &BenchArgs) -> String {
    let threads = if args.sync {
        format!("{} threads total", args.thread_count)
    } else {
        "one thread per client".to_string()
    };
    format!(
        "Benchmark config:\n  dt-bench {}, {} {}, {} keys, {} bytes value, {} total maxPending\n  {} clients, {threads}\n",
        env!("CARGO_PKG_VERSION"),
        if args.sync { "sync" } else { "async" },
        args.op.name(),
        args.key_count,
        args.value_size,
        args.effective_max_pending(),
        args.client_count,
    )
}

/// The `[Final]` lines: the reference's (TPS, counts, average, maximum), then the
/// percentiles.
pub fn final_lines(s: &Summary) -> String {
    let w = &s.totals;
    let p = &s.percentiles;
    format!(
        "[Final] TPS: {}, Success: {}, Fail: {}, Avg: {} us, Max: {} us\n\
         [Final] P50: {} us, P99: {} us, P999: {} us, Max: {} us\n",
        rate(s.tps()),
        thousands(w.success),
        thousands(w.fail),
        thousands(w.avg_us()),
        thousands(w.max_us()),
        thousands(p.p50_us),
        thousands(p.p99_us),
        thousands(p.p999_us),
        thousands(w.max_us()),
    )
}

/// `[Final] Client CPU: …` (this process over the measured phase, per successful
/// operation), or `None` without a CPU reading.
pub fn client_cpu_line(s: &Summary) -> Option<String> {
    let c = s.client_cpu?;
    let per_op = s
        .client_cpu_us_per_op()
        .map_or_else(|| "-".to_string(), |x| format!("{x:.2}"));
    Some(format!(
        "[Final] Client CPU: {per_op} us per operation (user {:.2} s, system {:.2} s)",
        c.user_secs, c.system_secs
    ))
}

/// The last line: `RESULT tps=<x> p50_us=<a> p99_us=<b> p999_us=<c> max_us=<d>`.
pub fn result_line(s: &Summary) -> String {
    format!(
        "RESULT tps={:.1} p50_us={} p99_us={} p999_us={} max_us={}",
        s.tps(),
        s.percentiles.p50_us,
        s.percentiles.p99_us,
        s.percentiles.p999_us,
        s.totals.max_us()
    )
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `--json` object (one line): the configuration and the result.
pub fn json(args: &BenchArgs, servers: &str, s: &Summary) -> String {
    let w = &s.totals;
    let p = &s.percentiles;
    format!(
        "{{\"servers_file\":{},\"servers\":{},\"group_id\":{},\"op\":\"{}\",\"mode\":\"{}\",\
         \"value_size\":{},\"key_count\":{},\"client_count\":{},\"thread_count\":{},\
         \"max_pending\":{},\"warmup_s\":{},\"duration_s\":{},\"use_nanos\":{},\
         \"elapsed_s\":{:.3},\"success\":{},\"fail\":{},\"tps\":{:.1},\"avg_us\":{},\
         \"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"client_cpu_user_s\":{},\
         \"client_cpu_system_s\":{},\"client_cpu_us_per_op\":{}}}",
        json_str(&args.servers_file.display().to_string()),
        json_str(servers),
        args.group_id,
        args.op.name(),
        if args.sync { "sync" } else { "async" },
        args.value_size,
        args.key_count,
        args.client_count,
        if args.sync {
            args.thread_count
        } else {
            args.client_count
        },
        args.effective_max_pending(),
        args.warmup,
        args.duration,
        args.use_nanos,
        s.elapsed_secs,
        w.success,
        w.fail,
        s.tps(),
        w.avg_us(),
        p.p50_us,
        p.p99_us,
        p.p999_us,
        w.max_us(),
        json_num(s.client_cpu.map(|c| c.user_secs)),
        json_num(s.client_cpu.map(|c| c.system_secs)),
        json_num(s.client_cpu_us_per_op()),
    )
}

/// A JSON number with three digits after the point, or `null`.
fn json_num(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.3}"),
        _ => "null".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::{BenchArgs, ParseOutcome};
    use super::*;

    fn args(a: &[&str]) -> BenchArgs {
        match BenchArgs::parse_from_args(std::iter::once("dt-bench").chain(a.iter().copied())) {
            ParseOutcome::Run(a) => a,
            o => panic!("{o:?}"),
        }
    }

    fn summary() -> Summary {
        Summary {
            totals: Window {
                success: 1_234_567,
                fail: 3,
                total_nanos: 1_234_570 * 1_500_000,
                max_nanos: 12_345_678,
            },
            elapsed_secs: 10.0,
            percentiles: Percentiles {
                p50_us: 1_400,
                p99_us: 3_100,
                p999_us: 9_000,
            },
            client_cpu: Some(ClientCpu {
                user_secs: 1.5,
                system_secs: 0.5,
            }),
        }
    }

    #[test]
    fn thousands_and_rates() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(rate(2.5), "2");
        assert_eq!(rate(3.5), "4");
        assert_eq!(rate(123_456.7), "123,457");
    }

    #[test]
    fn second_line_has_the_references_wording() {
        let w = Window {
            success: 45_678,
            fail: 2,
            total_nanos: 45_680 * 2_100_000,
            max_nanos: 15_000_000,
        };
        assert_eq!(
            second_line("Now", &w),
            "[Now] TPS: 45,678, Success: 45,678, Fail: 2, Avg: 2,100 us, Max: 15,000 us"
        );
        assert!(second_line("Warmup", &w).starts_with("[Warmup] TPS: 45,678,"));
    }

    #[test]
    fn final_and_result_lines() {
        let s = summary();
        assert_eq!(
            final_lines(&s),
            "[Final] TPS: 123,457, Success: 1,234,567, Fail: 3, Avg: 1,500 us, Max: 12,345 us\n\
             [Final] P50: 1,400 us, P99: 3,100 us, P999: 9,000 us, Max: 12,345 us\n"
        );
        assert_eq!(
            result_line(&s),
            "RESULT tps=123456.7 p50_us=1400 p99_us=3100 p999_us=9000 max_us=12345"
        );
        let zero = Summary {
            totals: Window::default(),
            elapsed_secs: 0.0,
            percentiles: Percentiles::default(),
            client_cpu: None,
        };
        assert_eq!(
            result_line(&zero),
            "RESULT tps=0.0 p50_us=0 p99_us=0 p999_us=0 max_us=0"
        );
    }

    #[test]
    fn client_cpu_per_operation() {
        // 2 s of CPU over 1 234 567 successes: 1.62 us each.
        let s = summary();
        assert_eq!(
            client_cpu_line(&s).as_deref(),
            Some("[Final] Client CPU: 1.62 us per operation (user 1.50 s, system 0.50 s)")
        );
        let none = Summary {
            client_cpu: None,
            ..summary()
        };
        assert_eq!(client_cpu_line(&none), None);
        assert_eq!(none.client_cpu_us_per_op(), None);
        let nothing_done = Summary {
            totals: Window::default(),
            ..summary()
        };
        assert_eq!(
            client_cpu_line(&nothing_done).as_deref(),
            Some("[Final] Client CPU: - us per operation (user 1.50 s, system 0.50 s)")
        );
    }

    #[test]
    fn config_blocks() {
        let a = args(&["-s", "conf/client.properties", "-g", "0"]);
        assert_eq!(
            configuration_block(&a, "1,127.0.0.1:9332"),
            "Configuration:\n  Config file: conf/client.properties\n  Servers: 1,127.0.0.1:9332\n  Group ID: 0\n"
        );
        let b = benchmark_config_block(&a);
        assert!(b.contains(", async put, 10000 keys, 256 bytes value, 2000 total maxPending\n"));
        assert!(b.ends_with("  1 clients, one thread per client\n"));
        let a = args(&[
            "-s",
            "x",
            "-g",
            "0",
            "--sync",
            "--thread-count",
            "3000",
            "--op",
            "get",
        ]);
        let b = benchmark_config_block(&a);
        assert!(b.contains(", sync get, 10000 keys, 256 bytes value, 3100 total maxPending\n"));
        assert!(b.ends_with("  1 clients, 3000 threads total\n"));
    }

    #[test]
    fn json_object_parses_with_the_figures() {
        let a = args(&["-s", "dir \"q\"\\c.properties", "-g", "2", "--sync"]);
        let j = json(&a, "1,h:1;2,h:2", &summary());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["servers_file"], "dir \"q\"\\c.properties");
        assert_eq!(v["servers"], "1,h:1;2,h:2");
        assert_eq!(v["group_id"], 2);
        assert_eq!(v["mode"], "sync");
        assert_eq!(v["op"], "put");
        assert_eq!(v["thread_count"], 128);
        assert_eq!(v["success"], 1_234_567);
        assert_eq!(v["fail"], 3);
        assert_eq!(v["tps"], 123_456.7);
        assert_eq!(v["p99_us"], 3_100);
        assert_eq!(v["max_us"], 12_345);
        assert_eq!(v["client_cpu_user_s"], 1.5);
        assert_eq!(v["client_cpu_system_s"], 0.5);
        assert_eq!(v["client_cpu_us_per_op"], 1.62);
        let none = Summary {
            client_cpu: None,
            ..summary()
        };
        let v: serde_json::Value = serde_json::from_str(&json(&a, "h", &none)).unwrap();
        assert!(v["client_cpu_user_s"].is_null() && v["client_cpu_us_per_op"].is_null());
        assert_eq!(json_str("\u{1}"), "\"\\u0001\"");
    }
}
