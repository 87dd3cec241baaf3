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
        // the stages timed on every node (what they must report is checked by
        // server_cluster's perf-hook test)
        "--perf",
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

/// The CPU line's figures come from `/proc/<pid>/stat` and `/proc/stat` as the kernel
/// writes them: the process's ticks after its (possibly spaced) name, the machine's
/// busy, kernel and total ticks from the `cpu` line.
#[test]
fn cpu_accounting_reads_the_kernels_counters() {
    use raft_bench::support::{
        cpu_line, parse_machine_ticks, parse_process_ticks, CpuSample, MachineTicks,
    };
    use std::time::Duration;

    let stat = "4242 (raft bench (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                731 265 0 0 20 0 75 0 100 0 0";
    assert_eq!(parse_process_ticks(stat), Some((731, 265)));
    assert_eq!(parse_process_ticks("4242 (short) S 1"), None);
    assert_eq!(parse_process_ticks("garbage"), None);

    let proc_stat = "cpu  100 5 40 800 20 3 7 25 0 0\ncpu0 50 2 20 400 10 1 3 12 0 0\nintr 1\n";
    let m = parse_machine_ticks(proc_stat).unwrap();
    assert_eq!(
        m,
        MachineTicks {
            total: 1000,
            busy: 180,
            kernel: 50
        }
    );
    assert_eq!(parse_machine_ticks("cpu 1 2 x 4 5 6 7 8\n"), None);
    assert_eq!(parse_machine_ticks("cpu0 1 2 3 4 5 6 7 8\n"), None);

    // 2 s of wall time: 1.5 s user and 0.5 s system of the process (between the two
    // samples); the machine went from `m` to 400 ticks later, 300 of them busy, 100 in
    // the kernel.
    let m1 = MachineTicks {
        total: m.total + 400,
        busy: m.busy + 300,
        kernel: m.kernel + 100,
    };
    assert_eq!(
        cpu_line(
            Duration::from_secs(2),
            &CpuSample {
                process: (Duration::from_secs(3), Duration::from_secs(1)),
                machine: m
            },
            &CpuSample {
                process: (Duration::from_millis(4500), Duration::from_millis(1500)),
                machine: m1
            }
        ),
        "CPU process_user_pct=75.0 process_sys_pct=25.0 machine_busy_pct=75.0 machine_kernel_pct=25.0"
    );
    // The live counters parse on Linux.
    if cfg!(target_os = "linux") {
        let now = CpuSample::now().unwrap().machine;
        assert!(now.busy <= now.total && now.kernel <= now.busy);
    }
}
