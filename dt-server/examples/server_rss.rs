//! Measures the resident set (RSS, from `/proc/<pid>/status`) of `dt-server` processes
//! while `dt-bench` puts asynchronously (256-byte values over 10,000 keys, fsync on,
//! the shipped defaults except the ports). The issue's target is at most 48 MiB for a
//! 1-node server under the async put benchmark.
//!
//! ```text
//! cargo build --release -p dt-server --bins
//! cargo run --release -p dt-server --example server_rss -- [--mode single|lagging-follower]
//!     [--seconds 20] [--lag-seconds 10] [--settle-seconds 15] [--bin-dir target/release]
//!     [--dir DIR]
//! ```
//!
//! * `single`: one node; RSS sampled every 100 ms during the benchmark.
//! * `lagging-follower`: three nodes; five seconds into the benchmark one follower is
//!   stopped (SIGTERM) for `--lag-seconds`, then restarted on its data directory and
//!   caught up by the leader while the puts go on; the leader's RSS is sampled
//!   (before, while the follower is down, while it catches up).
//!
//! After the benchmark the leader's RSS is sampled `--settle-seconds` longer (idle: does
//! it come down?). Prints the RSS once a second, dt-bench's own `RESULT` line, then
//! `RESULT rss_mib mode=.. max=.. end=.. hwm=..` (hwm: the kernel's peak, VmHWM).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dt_client::KvClient;

/// What to measure.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// One node under the benchmark.
    Single,
    /// Three nodes; one follower stopped, then caught up.
    LaggingFollower,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Single => "single",
            Mode::LaggingFollower => "lagging-follower",
        })
    }
}

#[derive(clap::Parser)]
#[command(
    name = "server_rss",
    about = "RSS of dt-server processes under dt-bench async puts"
)]
struct Args {
    /// single: one node; lagging-follower: three nodes, one follower stopped a while.
    #[arg(long, value_enum, default_value = "single")]
    mode: Mode,
    /// Seconds of benchmark (1 to 3600).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Seconds the follower stays stopped (lagging-follower; 1 to 3600).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lag_seconds: u64,
    /// Where dt-server and dt-bench are (default: beside this program's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Seconds the leader's RSS is still sampled after the benchmark ended (0 to 3600):
    /// whether it comes down once the load and the catch-up are over.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(0..=3600))]
    settle_seconds: u64,
    /// An extra line for every node's config.properties (repeatable), e.g.
    /// `--conf "maxCacheTasks = 5000"` to see what a setting does to the RSS.
    #[arg(long)]
    conf: Vec<String>,
    /// Data directories (removed first).
    #[arg(long, default_value = "target/server_rss")]
    dir: PathBuf,
}

fn free_port() -> u16 {
    dt_common::ports::free_loopback_ports(1).expect("free loopback ports")[0]
}

/// `VmRSS` and `VmHWM` of process `pid` in KiB.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    svc: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    /// Writes the configuration of `n` nodes on free loopback ports under `dir`.
    fn new(bin: &Path, dir: &Path, n: usize, extra: &[String]) -> Cluster {
        let repl: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let svc: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let servers: Vec<String> = repl
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},127.0.0.1:{p}", i + 1))
            .collect();
        let members: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        std::fs::write(
            dir.join("servers.properties"),
            format!(
                "servers = {}\ngroup.0.nodeIdOfMembers = {}\n",
                servers.join(";"),
                members.join(",")
            ),
        )
        .unwrap();
        for i in 0..n {
            std::fs::write(
                dir.join(format!("config{}.properties", i + 1)),
                format!(
                    "nodeId = {}\nreplicatePort = {}\nservicePort = {}\ndataDir = {}\n{}",
                    i + 1,
                    repl[i],
                    svc[i],
                    dir.join(format!("data{}", i + 1)).display(),
                    extra.iter().map(|l| format!("{l}\n")).collect::<String>()
                ),
            )
            .unwrap();
        }
        let clients: Vec<String> = svc
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},127.0.0.1:{p}", i + 1))
            .collect();
        std::fs::write(
            dir.join("client.properties"),
            format!("servers = {}\n", clients.join(";")),
        )
        .unwrap();
        Cluster {
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            svc,
            children: (0..n).map(|_| None).collect(),
        }
    }

    fn start(&mut self, id: usize) {
        let child = Command::new(self.bin.join("dt-server"))
            .arg("-c")
            .arg(self.dir.join(format!("config{id}.properties")))
            .arg("-s")
            .arg(self.dir.join("servers.properties"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dt-server");
        self.children[id - 1] = Some(child);
    }

    fn stop(&mut self, id: usize) {
        if let Some(mut c) = self.children[id - 1].take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    fn pid(&self, id: usize) -> Option<u32> {
        self.children[id - 1].as_ref().map(|c| c.id())
    }

    fn wait_ports(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for p in &self.svc {
            while TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(Instant::now() < deadline, "a service port never opened");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// The group's leader, once it takes puts.
    fn leader(&self) -> usize {
        let servers: Vec<String> = self
            .svc
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},127.0.0.1:{p}", i + 1))
            .collect();
        let members: Vec<i32> = (1..=self.svc.len() as i32).collect();
        let kv = KvClient::connect(&servers.join(";"), &[(0, &members)]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let leader = loop {
            if kv.put(0, "rss", "ready").is_ok() {
                if let Some(l) = kv.raft().leader(0) {
                    break l as usize;
                }
            }
            assert!(Instant::now() < deadline, "no leader takes puts");
            std::thread::sleep(Duration::from_millis(50));
        };
        kv.stop(Duration::from_millis(100));
        leader
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=self.children.len() {
            self.stop(id);
        }
    }
}

fn main() {
    let a = <Args as clap::Parser>::parse();
    let (mode, seconds, lag) = (a.mode, a.seconds, a.lag_seconds);
    let bin_dir = a.bin_dir.unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().to_path_buf()
    });
    for b in ["dt-server", "dt-bench"] {
        if !bin_dir.join(b).exists() {
            eprintln!(
                "{} not found: build with `cargo build --release -p dt-server --bins` (or pass --bin-dir)",
                bin_dir.join(b).display()
            );
            std::process::exit(2);
        }
    }
    let root = a.dir;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let n = if mode == Mode::Single { 1 } else { 3 };
    let mut cluster = Cluster::new(&bin_dir, &root, n, &a.conf);
    for id in 1..=n {
        cluster.start(id);
    }
    cluster.wait_ports();
    let leader = cluster.leader();
    let follower = (1..=n).find(|&i| i != leader);
    let lpid = cluster.pid(leader).unwrap();
    println!(
        "server_rss: mode {mode}, {n} node(s), leader node {leader}; RSS at start {:.1} MiB; \
         dt-bench --async, 256 B values, 10,000 keys, {seconds} s",
        rss_kib(lpid).map_or(0.0, |r| mib(r.0))
    );
    let bench = Command::new(bin_dir.join("dt-bench"))
        .arg("-s")
        .arg(root.join("client.properties"))
        .args([
            "-g",
            "0",
            "--async",
            "--value-size",
            "256",
            "--key-count",
            "10000",
        ])
        .args(["--duration", &seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start dt-bench");
    let t0 = Instant::now();
    let mut max = 0;
    let mut last_print = 0;
    let mut stopped_at = None;
    let mut restarted = false;
    let mut phase_max = [0u64; 3];
    let mut bench = bench;
    // read its output meanwhile, so that a full pipe never blocks it
    let mut stdout = bench.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let status = loop {
        if let Some(s) = bench.try_wait().unwrap() {
            break s;
        }
        let t = t0.elapsed().as_secs();
        if let (Some(f), Mode::LaggingFollower) = (follower, mode) {
            if stopped_at.is_none() && t >= 5 {
                cluster.stop(f);
                stopped_at = Some(t);
                println!("t={t}s: follower node {f} stopped");
            } else if !restarted && stopped_at.is_some_and(|s| t >= s + lag) {
                cluster.start(f);
                restarted = true;
                println!("t={t}s: follower node {f} restarted; the leader catches it up");
            }
        }
        if let Some((rss, _)) = rss_kib(lpid) {
            max = max.max(rss);
            let phase = match (stopped_at, restarted) {
                (None, _) => 0,
                (Some(_), false) => 1,
                (Some(_), true) => 2,
            };
            phase_max[phase] = phase_max[phase].max(rss);
            if t > last_print {
                last_print = t;
                println!("t={t}s: leader RSS {:.1} MiB", mib(rss));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = reader.join().unwrap_or_default();
    for l in out
        .lines()
        .filter(|l| l.starts_with("RESULT") || l.contains("[Final]"))
    {
        println!("dt-bench: {l}");
    }
    let bench_end = rss_kib(lpid).map_or(0, |r| r.0);
    // after the benchmark: does the RSS come down?
    let settle = Instant::now();
    let mut settle_min = bench_end;
    while settle.elapsed() < Duration::from_secs(a.settle_seconds) {
        std::thread::sleep(Duration::from_millis(100));
        if let Some((rss, _)) = rss_kib(lpid) {
            settle_min = settle_min.min(rss);
        }
    }
    let (end, hwm) = rss_kib(lpid).unwrap_or((0, 0));
    if mode == Mode::LaggingFollower {
        println!(
            "leader RSS max: before the stop {:.1} MiB, follower down {:.1} MiB, catching up {:.1} MiB",
            mib(phase_max[0]),
            mib(phase_max[1]),
            mib(phase_max[2])
        );
    }
    println!(
        "leader RSS after the benchmark: at its end {:.1} MiB, {} s later {:.1} MiB (min {:.1} MiB)",
        mib(bench_end),
        a.settle_seconds,
        mib(end),
        mib(settle_min)
    );
    println!(
        "RESULT rss_mib mode={mode} max={:.1} end={:.1} hwm={:.1} bench_exit={:?}",
        mib(max),
        mib(end),
        mib(hwm),
        status.code()
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}
