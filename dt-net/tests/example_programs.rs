//! The `rpc_server` example's command line: bad flags are refused, a busy port is reported
//! with its cause and a non-zero exit, and a listening server prints the `LISTENING` line
//! scripts read.
//!
//! The example's source is compiled into this test (so nothing depends on the example
//! binary having been built). The process-level checks run this test binary again as the
//! program: the test `child_rpc_server` becomes `rpc_server` when `DT_EXAMPLE_ARGV` is set.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[allow(dead_code)]
#[path = "../examples/rpc_server.rs"]
mod rpc_server;

const ARGV_ENV: &str = "DT_EXAMPLE_ARGV";

/// Runs `rpc_server` with `args` in a child process (this binary, see the module doc).
fn rpc_server_process(args: &[&str]) -> Command {
    let mut argv = vec!["rpc_server"];
    argv.extend_from_slice(args);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_rpc_server",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(ARGV_ENV, argv.join("\u{1f}"));
    cmd
}

/// Not a test of its own: the body of the child processes above.
#[test]
fn child_rpc_server() {
    let Ok(argv) = std::env::var(ARGV_ENV) else {
        return;
    };
    let code = rpc_server::main_with(argv.split('\u{1f}').map(Into::into));
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}

#[test]
fn bad_flags_are_refused() {
    for bad in [
        &["--bogus"][..],
        &["--port", "70000"],
        &["--port", "x"],
        &["--bind", "not-an-address"],
        &["--io-threads", "0"],
    ] {
        let argv = std::iter::once("rpc_server").chain(bad.iter().copied());
        assert!(
            rpc_server::Args::try_parse_from(argv).is_err(),
            "accepted {bad:?}"
        );
    }
    let a = rpc_server::Args::try_parse_from(["rpc_server"]).unwrap();
    assert_eq!(a.bind.to_string(), "127.0.0.1");
    assert_eq!(a.port, 9000);
}

#[test]
fn busy_port_is_an_error_in_process() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let args = rpc_server::Args::try_parse_from(["rpc_server", "--port", &port]).unwrap();
    let err = match rpc_server::start(&args, None) {
        Ok(server) => {
            server.stop(Duration::from_secs(1));
            panic!("started on a busy port");
        }
        Err(e) => e,
    };
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn busy_port_exits_with_status_1_and_the_cause() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = rpc_server_process(&["--port", &port]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("rpc_server: cannot listen on 127.0.0.1:{port}")),
        "stderr: {stderr}"
    );
}

#[test]
fn bad_flag_exits_with_status_2_and_a_message() {
    let out = rpc_server_process(&["--bogus"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("--bogus"), "stderr: {stderr}");
}

#[test]
fn listening_line_names_the_port() {
    let mut child = rpc_server_process(&["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The test harness may print its own text first on the same line.
            if let Some((_, addr)) = line.split_once("LISTENING ") {
                let _ = tx.send(addr.to_string());
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    let _ = child.kill();
    let _ = child.wait();
    let addr: std::net::SocketAddr = got.expect("no LISTENING line").parse().unwrap();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
}
