//! Where tests find the golden vectors captured from the reference.
//!
//! Every test that reads the golden data (wire frames, parser verdicts, the reference's
//! data directories, recorded sessions) asks [`golden_vectors`] for the directory, so the
//! lookup and the skip message are the same everywhere:
//!
//! 1. `$DT_VECTORS`, when set;
//! 2. otherwise `../shared/vectors` beside the workspace root (the folder holding the
//!    workspace's `Cargo.toml`), whatever crate the test belongs to.
//!
//! When the directory is absent the test prints
//! `SKIPPED <test>: golden vectors not found at <path>` and passes, so a fresh clone
//! without the shared data still runs green. With `DT_REQUIRE_VECTORS=1` (CI sets it
//! whenever the vectors exist) absence is a failure instead: CI can never pass by
//! skipping.
//!
//! [`read_lines`], [`unhex`] and [`hex`] are the small readers every vector test shares
//! (JSON parsing stays in the tests, so this crate needs no JSON library).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the vectors directory.
pub const VECTORS_ENV: &str = "DT_VECTORS";
/// The environment variable that turns a missing vectors directory into a test failure.
pub const REQUIRE_ENV: &str = "DT_REQUIRE_VECTORS";

/// The workspace root: the folder holding the workspace's `Cargo.toml`, the parent of
/// every crate's folder (the crates sit at the top level of the workspace).
///
/// Taken from the running test's crate folder (`CARGO_MANIFEST_DIR`, which cargo sets
/// when it runs a test or program), so a build shared between two checkouts of the
/// workspace still looks beside the checkout being tested; else from where this crate
/// was built.
pub fn workspace_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let crate_dir = crate_dir.as_deref().unwrap_or(built);
    crate_dir.parent().unwrap_or(crate_dir).to_path_buf()
}

/// The directory the golden vectors are looked for in: `$DT_VECTORS`, else
/// `../shared/vectors` beside the workspace root.
pub fn vectors_path() -> PathBuf {
    match std::env::var_os(VECTORS_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join("..").join("shared").join("vectors"),
    }
}

/// The golden vectors directory for the test named `test`, or `None` after printing the
/// skip line when it is absent.
///
/// # Panics
///
/// When the directory is absent and `DT_REQUIRE_VECTORS=1`: a run that must check the
/// vectors fails instead of passing silently.
pub fn golden_vectors(test: &str) -> Option<PathBuf> {
    let dir = vectors_path();
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!(
            "{test}: golden vectors required ({REQUIRE_ENV}=1) but not found at {}",
            dir.display()
        );
    }
    // Straight to stderr, past the test harness's capture, so a plain `cargo test`
    // shows the skip.
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: golden vectors not found at {}",
        dir.display()
    );
    None
}

/// The non-blank lines of a golden data file (a `.jsonl` file holds one JSON value per
/// line); the caller parses each line with its own JSON reader.
///
/// # Panics
///
/// When the file cannot be read, naming the file: a missing or unreadable vector file is
/// a broken fixture, and the test reading it must fail.
pub fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The bytes of a hex string as the vectors write frames and bodies (`"0a0b..."`, two
/// digits a byte, either case).
///
/// # Panics
///
/// On an odd length or a character that is not a hex digit: a malformed vector is a
/// broken fixture, and the test reading it must fail.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(
        s.len().is_multiple_of(2),
        "odd hex length {} in a vector",
        s.len()
    );
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .unwrap_or_else(|| panic!("not hex at {i} in a vector: {s:?}"))
        })
        .collect()
}

/// Bytes as lower-case hex, the vectors' notation (the inverse of [`unhex`]).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_read_lines_skips_blank_lines() {
        assert_eq!(unhex("00ff0A"), vec![0, 255, 10]);
        assert_eq!(hex(&[0, 255, 10]), "00ff0a");
        assert!(std::panic::catch_unwind(|| unhex("0")).is_err());
        assert!(std::panic::catch_unwind(|| unhex("zz")).is_err());
        let f = std::env::temp_dir().join(format!("dt_vectors_lines_{}", std::process::id()));
        std::fs::write(&f, "{\"a\":1}\n\n  \n{\"b\":2}\n").unwrap();
        assert_eq!(read_lines(&f), vec!["{\"a\":1}", "{\"b\":2}"]);
        std::fs::remove_file(&f).unwrap();
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{}", root.display());
    }
}
