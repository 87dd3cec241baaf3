//! Measures the time from starting the `dt-server` process to the first client put it
//! acknowledges, with an empty data directory (fsync on, the shipped defaults except
//! the ports): the issue's target is at most 50 ms.
//!
//! ```text
//! cargo build --release -p dt-server --bin dt-server
//! cargo run --release -p dt-server --example start_to_first_put -- [--rounds 10] [--bin PATH] [--dir DIR]
//! ```
//!
//! Each round writes a 1-node config.properties / servers.properties on free loopback
//! ports into a fresh directory (below `--dir`, default `target/start_to_first_put`, on
//! the same disk as the build), starts the binary, polls the service port until it
//! accepts a connection, then puts with a new `KvClient` until a put is acknowledged,
//! and stops the server with SIGTERM. It prints one line per round (port open, first
//! put), then `RESULT start_to_first_put_ms median=.. min=.. max=.. port_open_median=..`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dt_client::KvClient;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = arg(&args, "--rounds").map_or(10, |r| r.parse().expect("--rounds N"));
    let bin = arg(&args, "--bin").map(PathBuf::from).unwrap_or_else(|| {
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
    let root =
        PathBuf::from(arg(&args, "--dir").unwrap_or_else(|| "target/start_to_first_put".into()));
    println!(
        "start_to_first_put: {rounds} rounds of `{} -c .. -s ..` on an empty data dir under {} \
         (fsync on); time from spawn to the first acknowledged put",
        bin.display(),
        root.display()
    );
    let mut puts = Vec::new();
    let mut opens = Vec::new();
    for round in 0..rounds {
        let dir = root.join(format!("round{round}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
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
        let servers = format!("1,127.0.0.1:{svc}");
        let t0 = Instant::now();
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(dir.join("config.properties"))
            .arg("-s")
            .arg(dir.join("servers.properties"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dt-server");
        let deadline = t0 + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", svc)).is_err() {
            assert!(Instant::now() < deadline, "the service port never opened");
            std::thread::sleep(Duration::from_micros(200));
        }
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
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let st = child.wait().unwrap();
        println!(
            "round {round}: service port open {:.1} ms, first put acknowledged {:.1} ms, exit {:?}",
            ms(open),
            ms(put),
            st.code()
        );
        opens.push(ms(open));
        puts.push(ms(put));
        let _ = std::fs::remove_dir_all(&dir);
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
