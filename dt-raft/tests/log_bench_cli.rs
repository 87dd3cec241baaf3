//! The `log_bench` example refuses bad flags and reports a directory it cannot create
//! instead of panicking. Its source is compiled into this test, so nothing depends on the
//! example binary having been built.

use clap::Parser;

#[allow(dead_code)]
#[path = "../examples/log_bench.rs"]
mod log_bench;

#[test]
fn bad_flags_are_refused() {
    for bad in [
        &["--bogus"][..],
        &[],
        &["--dir", "/tmp/x", "--seconds", "0"],
        &["--dir", "/tmp/x", "--seconds", "-1"],
        &["--dir", "/tmp/x", "--batches", "0"],
    ] {
        let argv = std::iter::once("log_bench").chain(bad.iter().copied());
        assert!(
            log_bench::Args::try_parse_from(argv).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn a_directory_that_cannot_be_created_is_reported() {
    let args =
        log_bench::Args::try_parse_from(["log_bench", "--dir", "/proc/dt-no-such-dir"]).unwrap();
    let err = log_bench::run(&args).unwrap_err();
    assert!(err.starts_with("/proc/dt-no-such-dir: "), "{err}");
}
