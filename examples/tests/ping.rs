//! The `ping` example runs end to end on loopback and refuses bad flags. Its source is
//! compiled into this test, so nothing depends on the example binary having been built.

use clap::Parser;

#[allow(dead_code)]
#[path = "../ping.rs"]
mod ping;

#[test]
fn pings_a_loopback_server() {
    let args = ping::Args::try_parse_from(["ping", "--count", "2", "--body", "hi"]).unwrap();
    ping::run(&args).unwrap();
}

#[test]
fn bad_flags_are_refused() {
    for bad in [&["--bogus"][..], &["--count", "0"], &["--count", "x"]] {
        let argv = std::iter::once("ping").chain(bad.iter().copied());
        assert!(
            ping::Args::try_parse_from(argv).is_err(),
            "accepted {bad:?}"
        );
    }
}
