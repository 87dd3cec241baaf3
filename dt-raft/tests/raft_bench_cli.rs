//! The `raft_bench` example refuses bad flags, reports a directory it cannot create, and
//! runs a short measurement end to end. Its source is compiled into this test.

use clap::Parser;

#[allow(dead_code)]
#[path = "../examples/raft_bench.rs"]
mod raft_bench;

#[test]
fn bad_flags_are_refused() {
    for bad in [
        &["--bogus"][..],
        &["--nodes", "0"],
        &["--groups", "0"],
        &["--seconds", "0"],
        &["--max-pending", "0"],
        &["--body-size", "0"],
        &["--sync-force", "maybe"],
        &["--batch-fsync", "maybe"],
    ] {
        let argv = std::iter::once("raft_bench").chain(bad.iter().copied());
        assert!(
            raft_bench::Args::try_parse_from(argv).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn a_directory_that_cannot_be_created_is_reported() {
    let args =
        raft_bench::Args::try_parse_from(["raft_bench", "--dir", "/proc/dt-no-such-dir"]).unwrap();
    let err = raft_bench::run(&args).unwrap_err();
    assert!(err.starts_with("/proc/dt-no-such-dir: "), "{err}");
}

#[test]
fn a_one_second_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let args = raft_bench::Args::try_parse_from([
        "raft_bench",
        "--seconds",
        "1",
        "--max-pending",
        "64",
        "--dir",
        d,
    ])
    .unwrap();
    raft_bench::run(&args).unwrap();
    // The groups' logs are where the flag says.
    assert!(dir.path().join("n1").join("g1").exists());
}

/// Several groups per server: their appends' fsyncs go through the server's shared
/// batcher, and so do (with `--batch-fsync false`) plain per-file fsyncs.
#[test]
fn a_multi_group_run_completes_with_and_without_fsync_batching() {
    for batch in ["true", "false"] {
        let dir = tempfile::tempdir().unwrap();
        let args = raft_bench::Args::try_parse_from([
            "raft_bench",
            "--seconds",
            "1",
            "--groups",
            "4",
            "--max-pending",
            "64",
            "--batch-fsync",
            batch,
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .unwrap();
        raft_bench::run(&args).unwrap();
        assert!(dir.path().join("n3").join("g4").exists());
    }
}

/// The submitter's wait for room: a completion wakes it (only when it waits), so a
/// closed loop of one write in flight runs at the speed of the handoff, not of the
/// wait's 10 ms safety timeout (2 000 handoffs would then take 20 s).
#[test]
fn a_completion_wakes_the_waiting_submitter() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let p = Arc::new(raft_bench::Pending::default());
    let far = Instant::now() + Duration::from_secs(60);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let completer = {
        let p = p.clone();
        std::thread::spawn(move || {
            for () in rx {
                p.release();
            }
        })
    };
    let t0 = Instant::now();
    for _ in 0..2000 {
        assert!(p.acquire(1, far));
        tx.send(()).unwrap();
    }
    drop(tx);
    completer.join().unwrap();
    assert_eq!(p.in_flight(), 0);
    // All places taken: a deadline in the past gives up at once.
    assert!(p.acquire(1, far));
    assert!(!p.acquire(1, Instant::now()));
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "2000 handoffs took {:?}",
        t0.elapsed()
    );
}
