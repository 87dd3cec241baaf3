//! Measures the time from starting the `dt-server` process to the first client put it
//! acknowledges (fsync on, the shipped defaults except the ports): with an empty data
//! directory (the issue's target is at most 50 ms), or with a data directory holding a
//! log of about N MiB to recover (`--prefill-mib N`).
//!
//! ```text
//! cargo build --release -p dt-server --bin dt-server
//! cargo run --release -p dt-server --example start_to_first_put -- [--rounds 10] [--bin PATH] [--dir DIR]
//!     [--prefill-mib 1024 [--prefill-value-size 16384] [--prefill-stop kill|term]]
//! ```
//!
//! Each round writes a 1-node config.properties / servers.properties on free loopback
//! ports into a directory below `--dir` (default `target/start_to_first_put`, on the
//! same disk as the build), starts the binary, polls the service port until it
//! accepts a connection, then puts with a new `KvClient` until a put is acknowledged,
//! and stops the server. It prints one line per round (port open, first put), then
//! `RESULT start_to_first_put_ms median=.. min=.. max=.. port_open_median=..`.
//!
//! Without `--prefill-mib` each round starts on a fresh, empty data directory and is
//! stopped with SIGTERM. With it, a server first fills one data directory with puts of
//! `--prefill-value-size` bytes over 10,000 keys until about N MiB of log are written,
//! and every round starts on that directory. `--prefill-stop` says how that server and
//! each round's server stop: `kill` (default; SIGKILL, a crash: no snapshot, the start
//! replays the whole log into the state machine) or `term` (SIGTERM, a clean stop: a
//! snapshot on close, the start loads it and replays only the log after it).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dt_client::KvClient;

#[derive(clap::Parser)]
#[command(
    name = "start_to_first_put",
    about = "Time from spawning dt-server to its first acknowledged put"
)]
struct Args {
    /// Rounds to time (1 to 1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    rounds: u64,
    /// The dt-server binary (default: beside this program's directory).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Where the data directories go.
    #[arg(long, default_value = "target/start_to_first_put")]
    dir: PathBuf,
    /// Start every round on a log of about this many MiB (0: an empty data dir).
    #[arg(long, default_value_t = 0)]
    prefill_mib: u64,
    /// Bytes per value of the prefilled log (1 to 1048576).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    prefill_value_size: u64,
    /// How the prefilling server (and every round's) is stopped.
    #[arg(long, default_value = "kill", value_parser = ["kill", "term"])]
    prefill_stop: String,
}

fn free_port() -> u16 {
    dt_common::ports::free_loopback_ports(1).expect("free loopback ports")[0]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// A 1-node configuration on new free ports in `dir`, data in `<dir>/data`; returns
/// the service port.
fn write_config(dir: &std::path::Path) -> u16 {
    let (repl, svc) = (free_port(), free_port());
    std::fs::write(
        dir.join("config.properties"),
        format!(
            "nodeId = 1\nreplicatePort = {repl}\nservicePort = {svc}\ndataDir = {}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("servers.properties"),
        format!("servers = 1,127.0.0.1:{repl}\ngroup.0.nodeIdOfMembers = 1\n"),
    )
    .unwrap();
    svc
}

fn spawn(bin: &std::path::Path, dir: &std::path::Path) -> Child {
    Command::new(bin)
        .arg("-c")
        .arg(dir.join("config.properties"))
        .arg("-s")
        .arg(dir.join("servers.properties"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start dt-server")
}

/// Stops the server with SIGKILL (`kill`) or SIGTERM (`term`); returns its exit code.
fn stop(child: &mut Child, how: &str) -> Option<i32> {
    let sig = if how == "kill" { "-KILL" } else { "-TERM" };
    let _ = Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap().code()
}

/// Waits until the service port accepts connections.
fn wait_port(svc: u16, deadline: Instant) {
    while TcpStream::connect(("127.0.0.1", svc)).is_err() {
        assert!(Instant::now() < deadline, "the service port never opened");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// Fills `<dir>/data` with about `mib` MiB of log: puts of `value_size` bytes over
/// 10,000 keys, 256 in flight, then stops the server as `how` says.
fn prefill(bin: &std::path::Path, dir: &std::path::Path, mib: u64, value_size: usize, how: &str) {
    let svc = write_config(dir);
    let t0 = Instant::now();
    let mut child = spawn(bin, dir);
    wait_port(svc, t0 + Duration::from_secs(60));
    let kv = KvClient::connect(&format!("1,127.0.0.1:{svc}"), &[(0, &[1])]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while kv.put(0, "first", "put").is_err() {
        assert!(Instant::now() < deadline, "the prefill server takes no put");
        std::thread::sleep(Duration::from_millis(10));
    }
    let value = bytes::Bytes::from(vec![b'v'; value_size]);
    let count = (mib << 20) / value_size as u64 + 1;
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), dt_client::kv::KvError>>();
    let mut outstanding = 0;
    let t = Instant::now();
    for i in 0..count {
        if outstanding == 256 {
            rx.recv_timeout(Duration::from_secs(60))
                .expect("a put answered")
                .expect("a put acknowledged");
            outstanding -= 1;
        }
        let tx = tx.clone();
        kv.put_cb(
            0,
            bytes::Bytes::from(format!("key{}", i % 10_000)),
            value.clone(),
            move |r| {
                let _ = tx.send(r.map(|_| ()));
            },
        );
        outstanding += 1;
        if i % (count / 10).max(1) == 0 && i > 0 {
            println!(
                "prefill: {} MiB written in {:.1} s",
                (i * value_size as u64) >> 20,
                t.elapsed().as_secs_f64()
            );
        }
    }
    for _ in 0..outstanding {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("a put answered")
            .expect("a put acknowledged");
    }
    kv.stop(Duration::from_millis(100));
    let code = stop(&mut child, how);
    println!(
        "prefill: {count} puts of {value_size} B ({} MiB of values) in {:.1} s; server stopped with \
         SIG{} (exit {code:?}); log files {} MiB (preallocated), snapshot files {} MiB",
        (count * value_size as u64) >> 20,
        t.elapsed().as_secs_f64(),
        how.to_uppercase(),
        dir_bytes(&dir.join("data/0/log")) >> 20,
        dir_bytes(&dir.join("data/0/snapshot")) >> 20,
    );
}

fn main() {
    let a = <Args as clap::Parser>::parse();
    let (rounds, prefill_mib, how) = (a.rounds, a.prefill_mib, a.prefill_stop);
    let value_size = a.prefill_value_size as usize;
    let bin = a.bin.unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/examples/<this> -> target/<profile>/dt-server
        exe.parent().unwrap().parent().unwrap().join("dt-server")
    });
    if !bin.exists() {
        eprintln!(
            "{} not found: build it first with `cargo build --release -p dt-server --bin dt-server` \
             (or pass --bin PATH)",
            bin.display()
        );
        std::process::exit(2);
    }
    let root = a.dir;
    let prefilled = root.join("prefilled");
    if prefill_mib > 0 {
        println!(
            "start_to_first_put: {rounds} rounds of `{}` on a data dir holding a log of about \
             {prefill_mib} MiB under {} (fsync on; stopped with SIG{}); time from spawn to the \
             first acknowledged put",
            bin.display(),
            prefilled.display(),
            how.to_uppercase()
        );
        let _ = std::fs::remove_dir_all(&prefilled);
        std::fs::create_dir_all(&prefilled).unwrap();
        prefill(&bin, &prefilled, prefill_mib, value_size, &how);
    } else {
        println!(
            "start_to_first_put: {rounds} rounds of `{} -c .. -s ..` on an empty data dir under {} \
             (fsync on); time from spawn to the first acknowledged put",
            bin.display(),
            root.display()
        );
    }
    let mut puts = Vec::new();
    let mut opens = Vec::new();
    for round in 0..rounds {
        let dir = if prefill_mib > 0 {
            prefilled.clone()
        } else {
            let d = root.join(format!("round{round}"));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let svc = write_config(&dir);
        let servers = format!("1,127.0.0.1:{svc}");
        let t0 = Instant::now();
        let mut child = spawn(&bin, &dir);
        let deadline = t0 + Duration::from_secs(300);
        wait_port(svc, deadline);
        let open = t0.elapsed();
        let put = loop {
            let kv = KvClient::connect(&servers, &[(0, &[1])]).unwrap();
            let r = kv.put(0, "first", "put");
            kv.stop(Duration::from_millis(100));
            if r.is_ok() {
                break t0.elapsed();
            }
            assert!(Instant::now() < deadline, "no put acknowledged: {r:?}");
            std::thread::sleep(Duration::from_millis(1));
        };
        let code = stop(&mut child, if prefill_mib > 0 { &how } else { "term" });
        println!(
            "round {round}: service port open {:.1} ms, first put acknowledged {:.1} ms, exit {code:?}",
            ms(open),
            ms(put),
        );
        opens.push(ms(open));
        puts.push(ms(put));
        if prefill_mib == 0 {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if prefill_mib > 0 {
        let _ = std::fs::remove_dir_all(&prefilled);
    }
    let (min, max) = (
        puts.iter().cloned().fold(f64::MAX, f64::min),
        puts.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "RESULT start_to_first_put_ms median={:.1} min={min:.1} max={max:.1} port_open_median={:.1}",
        median(&mut puts),
        median(&mut opens)
    );
}
