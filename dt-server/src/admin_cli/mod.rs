//! `dt-admin`, the admin command-line tool (the reference's `DtAdmin`,
//! `dtkv-server.md` §13.9), as a library so that its parts are testable; the binary
//! only calls [`main_with`].
//!
//! * [`args`]: the subcommands and options with the reference's names, parsed by
//!   clap; `--help` / `--h` / `-h` on every subcommand; `-s <servers.properties>`
//!   and `--json` anywhere on the line.
//! * [`targets`]: which nodes to talk to, from the servers file's `servers` (replicate
//!   ports) and `group.<id>.nodeIdOfMembers/Observers`.
//! * [`exec`]: each subcommand on a [`dt_client::admin::AdminRaftClient`], with the
//!   reference's checks (transfer-leader: old ≠ new, the leader found is the old
//!   leader, the new leader is one of the group's nodes; commit-change: the leader's
//!   `lastConfigChangeIndex` is the prepare index).
//! * [`report`]: the reference's output lines, or one JSON object with `--json`.
//! * [`exit`]: the failures and the reference's exit codes 101–105.
//!
//! ```
//! use dt_server::admin_cli::main_with;
//!
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! // No servers file: a usage error, exit code 101, and a message saying what is missing.
//! let code = main_with(["dt-admin", "list-nodes", "--node-id", "1"], &mut out, &mut err);
//! assert_eq!(code, 101);
//! assert!(String::from_utf8(err).unwrap().contains("-s <servers.properties> is required"));
//! ```

pub mod args;
pub mod exec;
pub mod exit;
pub mod report;
pub mod targets;

use std::io::Write;
use std::time::Duration;

use dt_client::admin::AdminRaftClient;
use dt_client::raft::RaftClientConfig;

pub use args::{parse, AdminArgs, AdminCommand, IdList, Parsed};
pub use exec::{execute, Outcome};
pub use exit::{AdminError, CommandError};
pub use targets::AdminTargets;

/// A finished command: what it returned and whether the local servers file changed
/// (`None` for commands that do not change the servers).
#[derive(Debug)]
pub struct Finished {
    /// The result.
    pub outcome: Outcome,
    /// For commands that change the servers: whether the servers file's modification
    /// time changed while the command ran.
    pub local_file_updated: Option<bool>,
}

/// Loads the servers file, starts an admin client on it and runs the command;
/// progress lines go to `progress`.
pub fn run(args: &AdminArgs, progress: &mut dyn Write) -> Result<Finished, AdminError> {
    let path = args
        .servers_file
        .as_deref()
        .ok_or_else(|| AdminError::Usage("-s <servers.properties> is required".into()))?;
    let targets = AdminTargets::load(path)?;
    let before = targets::modified(path);
    let client = AdminRaftClient::new(RaftClientConfig::default())
        .map_err(|e| AdminError::ClientInit(e.to_string()))?;
    let result = targets.register(&client).and_then(|()| {
        let servers = |g: i32| targets.groups.get(&g).cloned();
        execute(&client, &args.command, &servers, progress).map_err(AdminError::from)
    });
    client.stop(Duration::from_secs(5));
    let outcome = result?;
    let local_file_updated = args
        .command
        .changes_server_config()
        .then(|| targets::modified(path) != before);
    Ok(Finished {
        outcome,
        local_file_updated,
    })
}

/// The whole program: parses `argv`, runs, prints the result on `stdout` and errors
/// on `stderr` (with `--json`, exactly one JSON object on `stdout` as well), and
/// returns the exit code (0, or 101–105).
pub fn main_with<I, T>(argv: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    // Known before parsing so that a usage error is reported as JSON too.
    let json = argv.iter().skip(1).any(|a| a == "--json");
    let args = match parse(argv) {
        Ok(Parsed::Help(h)) => {
            return match stdout.write_all(h.as_bytes()) {
                Ok(()) => 0,
                Err(_) => exit::EXIT_OTHER,
            };
        }
        Ok(Parsed::Run(a)) => a,
        Err(e) => return fail(None, json, &e, stdout, stderr),
    };
    let command = args.command.name();
    let mut sink = std::io::sink();
    let progress: &mut dyn Write = if args.json { &mut sink } else { stdout };
    let finished = match run(&args, progress) {
        Ok(f) => f,
        Err(e) => return fail(Some(command), args.json, &e, stdout, stderr),
    };
    let written = if args.json {
        let v = report::json_result(command, &finished.outcome, finished.local_file_updated);
        writeln!(stdout, "{v}")
    } else {
        let file = args
            .servers_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let text = report::human(&finished.outcome, &file, finished.local_file_updated);
        stdout.write_all(text.as_bytes())
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(_) => exit::EXIT_OTHER,
    }
}

fn fail(
    command: Option<&str>,
    json: bool,
    e: &AdminError,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let _ = match e {
        // clap's message already starts with "error:" and ends with the usage.
        AdminError::Usage(m) if m.starts_with("error:") => writeln!(stderr, "{}", m.trim_end()),
        _ => writeln!(stderr, "Error: {e}"),
    };
    if json {
        let _ = writeln!(stdout, "{}", report::json_error(command, e));
    }
    let _ = stdout.flush();
    e.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main_out(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = main_with(
            std::iter::once("dt-admin").chain(args.iter().copied()),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn exit_codes_before_any_request() {
        let (code, out, err) = main_out(&["list-nodes", "--node-id", "1"]);
        assert_eq!(code, 101);
        assert!(out.is_empty());
        assert!(err.contains("-s <servers.properties> is required"), "{err}");

        let (code, _, err) = main_out(&["-s", "f", "list-nodes", "--node-id", "one"]);
        assert_eq!(code, 101);
        assert!(err.contains("--node-id") && err.contains("one"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.properties");
        let m = missing.to_str().unwrap();
        let (code, _, err) = main_out(&["-s", m, "list-groups", "--node-id", "1"]);
        assert_eq!(code, 102);
        assert!(err.contains("missing.properties"), "{err}");

        let bad = dir.path().join("bad.properties");
        std::fs::write(&bad, "group.0.nodeIdOfMembers = 1\n").unwrap();
        let b = bad.to_str().unwrap();
        let (code, out, err) = main_out(&["-s", b, "--json", "list-groups", "--node-id", "1"]);
        assert_eq!(code, 103);
        assert!(err.contains("servers property is required"), "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["exitCode"], 103);
        assert_eq!(v["command"], "list-groups");

        let (code, out, _) = main_out(&["--json", "-s", b, "list-groups"]);
        assert_eq!(code, 101);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["exitCode"], 101);

        let (code, out, err) = main_out(&["query-status", "--h"]);
        assert_eq!(code, 0);
        assert!(out.contains("--group-id"), "{out}");
        assert!(err.is_empty());
    }

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_stdout_is_an_other_error() {
        let mut err = Vec::new();
        let code = main_with(["dt-admin", "list-nodes", "--help"], &mut Closed, &mut err);
        assert_eq!(code, exit::EXIT_OTHER);
    }
}
