//! The `fuzz_parser` example refuses bad flags and reports an input it cannot read instead
//! of panicking. Its source is compiled into this test, so nothing depends on the example
//! binary having been built.

use clap::Parser;

#[allow(dead_code)]
#[path = "../examples/fuzz_parser.rs"]
mod fuzz_parser;

#[test]
fn bad_flags_are_refused() {
    for bad in [
        &["--bogus"][..],
        &["--seconds", "x"],
        &["--seconds", "-1"],
        &["--seed", "-3"],
    ] {
        let argv = std::iter::once("fuzz_parser").chain(bad.iter().copied());
        assert!(
            fuzz_parser::Args::try_parse_from(argv).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn a_missing_input_is_reported() {
    let missing = std::path::PathBuf::from("/nonexistent/dt-fuzz-input");
    let err = fuzz_parser::input_files(&[missing]).unwrap_err();
    assert!(err.starts_with("/nonexistent/dt-fuzz-input: "), "{err}");
}
