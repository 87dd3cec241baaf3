//! Each DtKV and Raft example runs its whole scenario here, end to end on loopback,
//! with short settings: the example's source is compiled into this test (one test
//! binary for all of them) and its `run` is called with the flags a user would pass.
//! The scenarios check what they show (values read back, events seen, locks handed
//! over, replicas equal) and fail with an error otherwise.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;

#[allow(dead_code)]
#[path = "../auto_renew_lock.rs"]
mod auto_renew_lock;
#[allow(dead_code)]
#[path = "../change_members.rs"]
mod change_members;
#[allow(dead_code)]
#[path = "../embedded_cluster.rs"]
mod embedded_cluster;
#[allow(dead_code)]
#[path = "../embedded_raft.rs"]
mod embedded_raft;
#[allow(dead_code)]
#[path = "../kv_ops.rs"]
mod kv_ops;
#[allow(dead_code)]
#[path = "../lock.rs"]
mod lock;
#[allow(dead_code)]
#[path = "../multi_raft.rs"]
mod multi_raft;
#[allow(dead_code)]
#[path = "../raft_benchmark.rs"]
mod raft_benchmark;
#[allow(dead_code)]
#[path = "../standalone_client.rs"]
mod standalone_client;
#[allow(dead_code)]
#[path = "../standalone_server.rs"]
mod standalone_server;
#[allow(dead_code)]
#[path = "../transfer_leader.rs"]
mod transfer_leader;
#[allow(dead_code)]
#[path = "../ttl.rs"]
mod ttl;
#[allow(dead_code)]
#[path = "../watch.rs"]
mod watch;

fn args<A: Parser>(argv: &[&str]) -> A {
    A::try_parse_from(std::iter::once("example").chain(argv.iter().copied()))
        .unwrap_or_else(|e| panic!("flags {argv:?}: {e}"))
}

fn free_port() -> u16 {
    dt_common::ports::free_loopback_ports(1).unwrap()[0]
}

#[test]
fn embedded_cluster_puts_and_gets() {
    embedded_cluster::run(&args(&[
        "--count",
        "300",
        "--keys",
        "50",
        "--in-flight",
        "64",
    ]))
    .unwrap();
}

#[test]
fn raft_benchmark_runs_its_puts_without_a_failure() {
    // run() fails when a put failed or none succeeded
    raft_benchmark::run(&args(&[
        "--seconds",
        "1",
        "--warmup",
        "0",
        "--keys",
        "100",
        "--max-pending",
        "64",
    ]))
    .unwrap();
}

#[test]
fn standalone_client_talks_to_standalone_server_and_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, sp) = (free_port().to_string(), free_port().to_string());
    let dir_s = dir.path().to_str().unwrap().to_string();
    let servers = format!("1,127.0.0.1:{sp}");
    for _ in 0..2 {
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            let a: standalone_server::Args = args(&[
                "--replicate-port",
                &rp,
                "--service-port",
                &sp,
                "--dir",
                &dir_s,
            ]);
            std::thread::spawn(move || {
                standalone_server::run_until(&a, &|| stop.load(Ordering::Acquire))
            })
        };
        let client = standalone_client::run(&args(&[
            "--servers",
            &servers,
            "--count",
            "200",
            "--keys",
            "20",
        ]));
        stop.store(true, Ordering::Release);
        server.join().unwrap().unwrap();
        client.unwrap();
    }
    // A second server on the same ports while the first runs: refused, not a panic.
    let stop = Arc::new(AtomicBool::new(false));
    let first = {
        let stop = stop.clone();
        let a: standalone_server::Args = args(&[
            "--replicate-port",
            &rp,
            "--service-port",
            &sp,
            "--dir",
            &dir_s,
        ]);
        std::thread::spawn(move || {
            standalone_server::run_until(&a, &|| stop.load(Ordering::Acquire))
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let other = tempfile::tempdir().unwrap();
    let busy: standalone_server::Args = args(&[
        "--replicate-port",
        &rp,
        "--service-port",
        &sp,
        "--dir",
        other.path().to_str().unwrap(),
    ]);
    let err = standalone_server::run_until(&busy, &|| true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("replicate port {rp}")) && err.contains("in use"),
        "{err}"
    );
    stop.store(true, Ordering::Release);
    first.join().unwrap().unwrap();
}

#[test]
fn standalone_client_without_a_server_fails_with_a_message() {
    let servers = format!("1,127.0.0.1:{}", free_port());
    let err = standalone_client::run(&args(&["--servers", &servers, "--count", "1"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no leader for group 0"), "{err}");
}

#[test]
fn multi_raft_adds_and_removes_a_group() {
    multi_raft::run(&args(&[])).unwrap();
}

#[test]
fn change_members_three_to_four_to_three() {
    change_members::run(&args(&[])).unwrap();
}

#[test]
fn transfer_leader_client_follows() {
    transfer_leader::run(&args(&["--transfers", "2"])).unwrap();
}

#[test]
fn kv_ops_every_operation() {
    kv_ops::run(&args(&[])).unwrap();
}

#[test]
fn kv_ops_reports_a_busy_port() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (rb, sb) = ((port - 1).to_string(), (free_port() - 1).to_string());
    let err = kv_ops::run(&args(&["--replicate-base", &rb, "--service-base", &sb]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("node 1 cannot start on replicate port {port}")),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn watch_key_and_directory() {
    watch::run(&args(&[])).unwrap();
}

#[test]
fn ttl_expiry_and_update() {
    ttl::run(&args(&["--ttl-ms", "300"])).unwrap();
}

#[test]
fn lock_contention_and_lease_expiry() {
    lock::run(&args(&["--lease-ms", "300"])).unwrap();
}

#[test]
fn auto_renew_lock_hand_over() {
    auto_renew_lock::run(&args(&["--lease-ms", "300"])).unwrap();
}

#[test]
fn embedded_raft_counter_replicas_agree() {
    embedded_raft::run(&args(&["--adds", "30"])).unwrap();
}

#[test]
fn every_example_has_help_and_refuses_bad_flags() {
    use clap::error::ErrorKind;
    fn check<A: Parser>(name: &str, bad: &[&str]) {
        let help = A::try_parse_from([name, "--help"]).err().map(|e| e.kind());
        assert_eq!(help, Some(ErrorKind::DisplayHelp), "{name} --help");
        let argv = std::iter::once(name).chain(bad.iter().copied());
        assert!(A::try_parse_from(argv).is_err(), "{name} accepted {bad:?}");
        assert!(
            A::try_parse_from([name, "--bogus"]).is_err(),
            "{name} --bogus"
        );
    }
    check::<embedded_cluster::Args>("embedded_cluster", &["--count", "0"]);
    check::<standalone_server::Args>("standalone_server", &["--replicate-port", "0"]);
    check::<standalone_client::Args>("standalone_client", &["--value-size", "0"]);
    check::<multi_raft::Args>("multi_raft", &["--replicate-base", "4000"]);
    check::<change_members::Args>("change_members", &["--service-base", "x"]);
    check::<transfer_leader::Args>("transfer_leader", &["--transfers", "0"]);
    check::<kv_ops::Args>("kv_ops", &["--group", "x"]);
    check::<watch::Args>("watch", &["--servers"]);
    check::<ttl::Args>("ttl", &["--ttl-ms", "5"]);
    check::<lock::Args>("lock", &["--lease-ms", "-1"]);
    check::<auto_renew_lock::Args>("auto_renew_lock", &["--lease-ms", "10"]);
    check::<embedded_raft::Args>("embedded_raft", &["--adds", "0"]);
    check::<raft_benchmark::Args>("raft_benchmark", &["--nodes", "10"]);
}

/// Set in the child process of [`standalone_server_stops_cleanly_on_ctrl_c`]: the
/// server's flags, separated by spaces.
const STANDALONE_CHILD: &str = "DT_EXAMPLES_STANDALONE_CHILD";

#[test]
fn standalone_server_stops_cleanly_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    if let Ok(flags) = std::env::var(STANDALONE_CHILD) {
        // The child: this test binary run again, serving with the example's signal
        // handling until SIGINT; its exit status is the example's.
        let argv: Vec<&str> = flags.split(' ').collect();
        let code = match standalone_server::run_until_stopped(&args(&argv)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("standalone_server: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The ports are picked here and bound by the child: another program may take one
    // in between, then the child fails at once and the start is tried again.
    let mut tries = 0;
    let (mut child, lines, servers) = loop {
        let (rp, sp) = (free_port(), free_port());
        let flags = format!(
            "--replicate-port {rp} --service-port {sp} --dir {}",
            data.display()
        );
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "standalone_server_stops_cleanly_on_ctrl_c",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(STANDALONE_CHILD, &flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut ready = false;
        while let Ok(l) = lines.recv_timeout(Duration::from_secs(30)) {
            // (after the child harness's "test ... " on the same line)
            if l.contains("DtKV server ready") {
                ready = true;
                break;
            }
        }
        if ready {
            break (child, lines, format!("1,127.0.0.1:{sp}"));
        }
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(
            err.contains("in use") && tries < 5,
            "the server did not start ({status}): {err}"
        );
        tries += 1;
    };
    // Some data, then Ctrl-C.
    standalone_client::run(&args(&[
        "--servers",
        &servers,
        "--count",
        "100",
        "--keys",
        "10",
    ]))
    .unwrap();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the server did not stop within 20 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said: Vec<String> = lines.try_iter().collect();
    assert_eq!(status.code(), Some(0), "{said:?}");
    assert!(
        said.iter().any(|l| l.starts_with("Ctrl-C received")),
        "{said:?}"
    );
    assert_eq!(said.last().map(String::as_str), Some("stopped"), "{said:?}");
    // The stop saved a snapshot of group 0 (snapshot on close).
    let snaps: Vec<String> = std::fs::read_dir(data.join("0/snapshot"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(snaps.iter().any(|n| n.ends_with(".idx")), "{snaps:?}");
}
