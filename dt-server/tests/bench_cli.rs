//! The real `dt-bench` binary against an in-process one-node DtKV server: async put,
//! async get and sync put each run ~2 s and print a parsable RESULT line with TPS > 0
//! and no failure; bad options and files exit 1 with a message.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use dt_raft::server::RaftServerConfig;
use dt_server::kv_server::{DtKvServer, DtKvServerConfig, KvGroupConfig};

const BIN: &str = env!("CARGO_BIN_EXE_dt-bench");

fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

/// Writes the machine's dirty page cache out first (`sync`, where there is one). The
/// server fsyncs every append, and right after a build (`cargo test -p dt-server` just
/// compiled: ~2 GiB dirty here) its fsyncs wait behind that writeback for seconds: a
/// 2-s measured phase then saw no completion at all (reproduced: "no operation
/// succeeded in the measured phase").
fn settle_disk() {
    let _ = Command::new("sync").status();
}

fn start_server(dir: &Path, repl: u16, svc: u16) -> DtKvServer {
    settle_disk();
    let scfg = RaftServerConfig {
        servers: format!("1,127.0.0.1:{repl}"),
        node_id: 1,
        replicate_port: repl,
        service_port: svc,
        bind_host: "127.0.0.1".parse().unwrap(),
        elect_timeout: Duration::from_millis(1000),
        heartbeat_interval: Duration::from_millis(200),
        io_threads: 1,
        block_io_threads: 1,
        ..Default::default()
    };
    let g = KvGroupConfig::new(0, vec![1]);
    let mut cfg = DtKvServerConfig::new(scfg, vec![g], dir.join("n1"));
    cfg.log_file_size = 4 << 20;
    let s = DtKvServer::new(cfg).unwrap();
    s.start().unwrap();
    s.wait_group_ready(Duration::from_secs(20)).unwrap();
    s
}

/// A one-node server in `dir` on free ports, and a client.properties naming it.
fn one_node(dir: &Path) -> (DtKvServer, std::path::PathBuf) {
    let ports = free_ports(2);
    let server = start_server(dir, ports[0], ports[1]);
    let props = dir.join("client.properties");
    std::fs::write(&props, format!("servers = 1,127.0.0.1:{}\n", ports[1])).unwrap();
    (server, props)
}

fn bench(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

struct Result {
    tps: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

/// The RESULT line (the last line of stdout), parsed.
fn result_of(o: &Output) -> Result {
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().last().unwrap_or("");
    let fields: Vec<(&str, &str)> = last
        .strip_prefix("RESULT ")
        .unwrap_or_else(|| panic!("last line is not RESULT: {last:?}\n{out}"))
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
    assert_eq!(names, ["tps", "p50_us", "p99_us", "p999_us", "max_us"]);
    let u = |i: usize| fields[i].1.parse::<u64>().unwrap();
    Result {
        tps: fields[0].1.parse().unwrap(),
        p50: u(1),
        p99: u(2),
        p999: u(3),
        max: u(4),
    }
}

fn check_run(o: &Output, what: &str) -> Result {
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{what}: {:?}\n{out}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let r = result_of(o);
    assert!(r.tps > 0.0, "{what}: tps {}\n{out}", r.tps);
    assert!(
        r.p50 <= r.p99 && r.p99 <= r.p999,
        "{what}: percentiles out of order\n{out}"
    );
    assert!(
        r.p999 <= r.max + r.max / 100 + 1,
        "{what}: p999 above max\n{out}"
    );
    let fin = out
        .lines()
        .find(|l| l.starts_with("[Final] TPS: "))
        .unwrap_or_else(|| panic!("{what}: no [Final] line\n{out}"));
    assert!(fin.contains(", Fail: 0, "), "{what}: {fin}");
    assert!(
        out.lines().any(|l| l.starts_with("[Final] P50: ")),
        "{what}\n{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("[Now] TPS: ")),
        "{what}\n{out}"
    );
    if cfg!(target_os = "linux") {
        // The process's own CPU over the measured seconds, per success: a client that
        // did the work cannot have used none.
        let us = out
            .lines()
            .find_map(|l| l.strip_prefix("[Final] Client CPU: "))
            .and_then(|l| l.split(' ').next())
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{what}: no client CPU line\n{out}"));
        assert!(us > 0.0, "{what}: client CPU {us} us per operation\n{out}");
    }
    r
}

#[test]
fn dt_bench_against_a_one_node_server() {
    let dir = tempfile::tempdir().unwrap();
    let (server, props) = one_node(dir.path());
    let p = props.to_str().unwrap();
    let common = [
        "-s",
        p,
        "-g",
        "0",
        "--duration",
        "2",
        "--warmup",
        "1",
        "--key-count",
        "200",
        "--value-size",
        "64",
        "--use-nanos",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        common
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = with(extra);
        bench(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let o = run(&["--op", "put", "--max-pending", "200"]);
    let put = check_run(&o, "async put");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("[Warmup] TPS: "), "{out}");
    assert!(
        out.contains("Warmup complete, starting benchmark..."),
        "{out}"
    );
    assert!(out.contains(", async put, 200 keys, 64 bytes value, 200 total maxPending"));
    assert!(put.p50 > 0, "nanosecond latencies are not all zero");

    // Get: the keys are written first, then read.
    let o = run(&["--op", "get", "--max-pending", "200"]);
    check_run(&o, "async get");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Preloading 200 keys..."));

    let o = run(&["--sync", "--thread-count", "8", "--client-count", "2"]);
    check_run(&o, "sync put");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("  2 clients, 8 threads total"), "{out}");

    // --json: the object on stdout before RESULT, progress on stderr.
    let o = run(&["--op", "get", "--no-preload", "--json"]);
    let r = check_json(&o);
    assert!(r.tps > 0.0);

    server.stop(Duration::from_secs(5));
}

fn check_json(o: &Output) -> Result {
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["op"], "get");
    assert_eq!(v["fail"], 0);
    assert!(v["success"].as_u64().unwrap() > 0);
    assert!(err.contains("[Final] TPS: "), "{err}");
    let r = result_of(o);
    assert_eq!(v["p99_us"].as_u64().unwrap(), r.p99);
    if cfg!(target_os = "linux") {
        let per_op = v["client_cpu_us_per_op"].as_f64().unwrap();
        let user = v["client_cpu_user_s"].as_f64().unwrap();
        let system = v["client_cpu_system_s"].as_f64().unwrap();
        assert!(per_op > 0.0 && user + system > 0.0, "{out}");
    }
    r
}

fn assert_usage(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

#[test]
fn dt_bench_refuses_bad_options_and_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_usage(&bench(&["-g", "0"]), "-s <FILE>");
    assert_usage(&bench(&["-s", "x"]), "--group-id");
    assert_usage(&bench(&["-s", "x", "-g", "0", "--op", "cas"]), "cas");
    assert_usage(
        &bench(&["-s", "x", "-g", "0", "--duration", "0"]),
        "--duration",
    );
    assert_usage(
        &bench(&["-s", "x", "-g", "0", "--frobnicate"]),
        "--frobnicate",
    );
    let missing = dir.path().join("missing.properties");
    assert_usage(
        &bench(&["-s", missing.to_str().unwrap(), "-g", "0"]),
        "Error: ",
    );
    let empty = dir.path().join("empty.properties");
    std::fs::write(&empty, "x = 1\n").unwrap();
    assert_usage(
        &bench(&["-s", empty.to_str().unwrap(), "-g", "0"]),
        "servers",
    );
    // Nothing listens there: discovery fails at once.
    let port = free_ports(1)[0];
    let dead = dir.path().join("dead.properties");
    std::fs::write(&dead, format!("servers = 1,127.0.0.1:{port}\n")).unwrap();
    assert_usage(
        &bench(&["-s", dead.to_str().unwrap(), "-g", "0"]),
        "no leader of group 0",
    );
    let help = bench(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--max-pending"));
}

/// The server goes away in the middle of an async run: the requests out fail, the
/// driver keeps sending in the slots they give back (every few ms, not in a loop), and
/// the run still ends on time and reports its failures.
#[test]
fn dt_bench_counts_failures_and_ends_when_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (server, props) = one_node(dir.path());
    let t0 = std::time::Instant::now();
    let child = Command::new(BIN)
        .args(["-s", props.to_str().unwrap(), "-g", "0", "--op", "get"])
        .args(["--no-preload", "--warmup", "1", "--duration", "4"])
        .args(["--key-count", "100", "--max-pending", "200", "--use-nanos"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    server.stop(Duration::from_secs(5));
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    // 1 s of warm-up and 4 measured, plus at most the 10 s the last requests may take.
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(o.status.success(), "{:?}\n{out}\n{err}", o.status);
    let fin = out
        .lines()
        .find(|l| l.starts_with("[Final] TPS: "))
        .unwrap_or_else(|| panic!("no [Final] line\n{out}"));
    // "Success: 5,171,344, Fail: 0, ...": the digits and separators after the name.
    let count = |name: &str| -> u64 {
        let after = fin.split(name).nth(1).unwrap_or("");
        let n: String = after
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect();
        n.parse().unwrap_or_else(|e| panic!("{name} in {fin}: {e}"))
    };
    assert!(count("Success: ") > 0, "{fin}");
    assert!(count("Fail: ") > 0, "{fin}\n{err}");
    assert!(err.contains("Async get error: "), "{err}");
    result_of(&o);
}
