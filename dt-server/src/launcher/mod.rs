//! The `dt-server` program as a library: from the command line to a running DtKV server
//! and back to an exit code (the reference's dist `Bootstrap`, `dtkv-server.md`
//! §13.6–13.7). The binary's `main` only sets up logging and the Ctrl-C / SIGTERM
//! handler and calls [`run`].
//!
//! * [`parse_command_line`]: no argument runs the embedded defaults
//!   ([`embedded_defaults`]: node 1, group 0,
//!   replicate port 9331, service port 9332, data under `./data`); otherwise
//!   `-c <config.properties> -s <servers.properties>` (both required, exit 101),
//!   plus optional `-DNAME=value` values for `${NAME:default}` (the reference's Java
//!   system properties).
//! * [`ServerPlan`]: the files loaded and checked with the bootstrap's rules and exit
//!   codes (102–106), mapped onto the Raft and DtKV settings ([`mapping`]).
//! * [`RunningServer`]: the [`DtKvServer`] started, the SYNC_CONFIG processor registered
//!   and the persist-config hook installed ([`config_sync`]); groups added at run time
//!   are configured like the ones in the files (config.properties, then `group.<id>.*`).
//! * [`run`]: all of it, logging where the server listens and when it is ready, then
//!   waiting for the stop signal and stopping within [`STOP_TIMEOUT`] (a snapshot is
//!   saved on close where `saveSnapshotWhenClose` is on).
//!
//! Starting a server from files on free loopback ports and stopping it:
//!
//! ```
//! use std::time::Duration;
//! use dt_server::bootstrap::BootstrapArgs;
//! use dt_server::launcher::{RunningServer, ServerPlan};
//! use dt_server::props::VarSource;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let ports = dt_common::ports::free_loopback_ports(2).unwrap();
//! let (repl, svc) = (ports[0], ports[1]);
//! let args = BootstrapArgs {
//!     config_file: dir.path().join("config.properties"),
//!     servers_file: dir.path().join("servers.properties"),
//! };
//! std::fs::write(&args.config_file, format!(
//!     "nodeId = 1\nreplicatePort = {repl}\nservicePort = {svc}\ndataDir = {}\nlogFileSize = 1048576\n",
//!     dir.path().join("data").display())).unwrap();
//! std::fs::write(&args.servers_file, format!(
//!     "servers = 1,127.0.0.1:{repl}\ngroup.0.nodeIdOfMembers = 1\n")).unwrap();
//!
//! let plan = ServerPlan::from_files(&args, VarSource::from_env()).unwrap();
//! let server = RunningServer::start(plan).unwrap();
//! while !server.wait_ready(Duration::from_secs(10)).unwrap() {}
//! assert_eq!(server.kv_server().raft_server().service_port(), svc);
//! server.stop(Duration::from_secs(10));
//! assert!(dir.path().join("data/0/snapshot").is_dir());
//! ```
//!
//! The whole program, as the binary runs it (here the embedded defaults until a stop
//! is sent; the binary sends on SIGINT or SIGTERM):
//!
//! ```no_run
//! use std::sync::mpsc;
//! let (tx, rx) = mpsc::channel::<()>();
//! std::thread::spawn(move || {
//!     std::thread::sleep(std::time::Duration::from_secs(10));
//!     let _ = tx.send(());
//! });
//! let code = dt_server::launcher::run::<&str>(&[], rx);
//! assert_eq!(code, 0);
//! ```

pub mod config_sync;
pub mod mapping;
pub mod restore;
pub mod sequence_runner;

pub use config_sync::{ConfigSync, SyncConfigProcessor, NO_SERVERS_FILE};
pub use mapping::{
    kv_group_config, perf_stats_interval, raft_group_config, raft_server_config, IGNORED_KEYS,
};
pub use restore::{RestoreArgs, RestoreFailure};
pub use sequence_runner::{SequenceRunner, SYNC_RETRY_DELAYS};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dt_raft::driver::RaftGroupConfig;
use dt_raft::rpc::RaftCommands;
use dt_raft::server::RaftServerError;

use crate::bootstrap::{
    check_start, embedded_defaults, ensure_data_dir, parse_args, BootConfig, BootstrapArgs,
    BootstrapError, DataDirCheck, GroupConfig, KvConfig, ServerConfig,
};
use crate::kv_server::{DtKvServer, DtKvServerConfig, NewGroupConfig};
use crate::props::VarSource;

/// How long a stop may take before the process exits anyway (the reference's 60 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The usage text (`dt-server --help`).
pub const USAGE: &str = "\
usage: dt-server                                  run one node with the embedded defaults
       dt-server -c <config.properties> -s <servers.properties> [-DNAME=value ...]
       dt-server --restore-snapshot <file.idx> --group-id <id> [-c ... -s ...] [-D...]

With no argument: node 1 serving DtKV group 0 alone, replicate port 9331 and service
(client) port 9332 on 127.0.0.1, data under ./data.
With -c and -s: the reference's configuration files (see conf/ and
docs/configuration.md); -DNAME=value sets NAME for ${NAME:default} in them (before the
environment).
Stops cleanly (snapshot on close) on Ctrl-C or SIGTERM.
--restore-snapshot: writes a new (absent or empty) directory for the group from a
copied snapshot pair (the .data file beside the .idx), with the settings of the
embedded defaults or of -c/-s, and exits; start the server afterwards. Restore every
member of the group from the same snapshot (docs/operations.md).
Exit codes: 101 command line, 102 cannot load a file (or the snapshot), 103 bad data
directory, 104 other bootstrap error, 105 bad configuration, 106 start failure.";

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// No argument: the embedded defaults.
    Embedded,
    /// `-c` and `-s`, with the `${NAME}` source (`-D` values, then the environment).
    Files(BootstrapArgs, VarSource),
    /// `--restore-snapshot <file.idx> --group-id <id>`: restore a group's directory
    /// and exit.
    Restore(RestoreArgs),
    /// `-h` or `--help`.
    Help,
}

/// Reads the command line (without the program name).
pub fn parse_command_line<S: AsRef<str>>(args: &[S]) -> Result<Command, BootstrapError> {
    if args.is_empty() {
        return Ok(Command::Embedded);
    }
    if args
        .iter()
        .any(|a| matches!(a.as_ref(), "-h" | "--help" | "-help"))
    {
        return Ok(Command::Help);
    }
    let mut vars = VarSource::from_env();
    let mut rest: Vec<&str> = Vec::new();
    for a in args {
        let a = a.as_ref();
        match a.strip_prefix("-D").and_then(|d| d.split_once('=')) {
            Some((k, v)) if !k.is_empty() => {
                vars.overrides.insert(k.to_string(), v.to_string());
            }
            _ => rest.push(a),
        }
    }
    if rest.contains(&RESTORE_OPTION) {
        return parse_restore(&rest, vars).map(Command::Restore);
    }
    Ok(Command::Files(parse_args(&rest)?, vars))
}

const RESTORE_OPTION: &str = "--restore-snapshot";

/// The value after `option` in `args` (`None`: the option is absent).
fn option_value<'a>(args: &[&'a str], option: &str) -> Result<Option<&'a str>, BootstrapError> {
    match args.iter().position(|a| *a == option) {
        None => Ok(None),
        Some(i) => match args.get(i + 1) {
            Some(v) if !v.starts_with('-') || v.parse::<i64>().is_ok() => Ok(Some(v)),
            _ => Err(BootstrapError::Usage(format!(
                "{option} needs a value (see dt-server --help)"
            ))),
        },
    }
}

/// `--restore-snapshot <file.idx> --group-id <id>`, with `-c` and `-s` or neither.
fn parse_restore(args: &[&str], vars: VarSource) -> Result<RestoreArgs, BootstrapError> {
    let snapshot = option_value(args, RESTORE_OPTION)?.unwrap_or_default();
    let group_id = match option_value(args, "--group-id")? {
        None => {
            return Err(BootstrapError::Usage(format!(
                "{RESTORE_OPTION} needs --group-id <id>: the group the snapshot is of"
            )))
        }
        Some(v) => v.parse::<i32>().map_err(|_| {
            BootstrapError::Usage(format!("--group-id {v:?} is not a group id (an integer)"))
        })?,
    };
    let files = if args.iter().any(|a| *a == "-c" || *a == "-s") {
        Some((parse_args(args)?, vars))
    } else {
        None
    };
    Ok(RestoreArgs {
        snapshot: PathBuf::from(snapshot),
        group_id,
        files,
    })
}

/// Everything a server is started with.
#[derive(Debug, Clone)]
pub struct ServerPlan {
    /// The DtKV server's settings (each group with its own Raft and DtKV settings).
    pub config: DtKvServerConfig,
    /// servers.properties, kept in step with the membership (`None`: embedded
    /// defaults, nothing to rewrite).
    pub servers_file: Option<PathBuf>,
    /// The data directory of each group, by id.
    pub data_dirs: BTreeMap<i32, PathBuf>,
}

/// Builds the settings of groups added at run time the way the files' groups were.
#[derive(Debug)]
struct GroupSource {
    /// The loaded files (`None`: embedded defaults).
    boot: Option<BootConfig>,
    /// The embedded defaults' data root.
    data_root: String,
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl NewGroupConfig for GroupSource {
    fn create(
        &self,
        group_id: i32,
        members: &[u32],
        observers: &[u32],
    ) -> Result<(RaftGroupConfig, KvConfig), String> {
        let (m, o) = (join_ids(members), join_ids(observers));
        let g = match &self.boot {
            Some(b) => b
                .create_group_config(group_id, &m, Some(&o), DataDirCheck::CreateAndProbe)
                .map_err(|e| e.to_string())?,
            None => {
                let mut g = GroupConfig::new(group_id, &m, Some(&o));
                g.data_dir = format!("{}/{group_id}", self.data_root);
                ensure_data_dir(Path::new(&g.data_dir)).map_err(|e| e.to_string())?;
                g
            }
        };
        let raft = raft_group_config(&g).map_err(|e| e.to_string())?;
        mapping::check_kv_config(group_id, &g.kv).map_err(|e| e.to_string())?;
        log::info!(
            "new group {group_id}: members [{m}], observers [{o}], data {}",
            g.data_dir
        );
        Ok((raft, g.kv))
    }
}

impl ServerPlan {
    /// The embedded defaults: creates and probes `./data/0` (exit 103 on failure).
    /// Both ports are bound on 127.0.0.1 only (the files' servers are bound on all
    /// interfaces, as the reference does): a server started without configuration is
    /// not reachable from other machines.
    pub fn embedded() -> Result<ServerPlan, BootstrapError> {
        let (server, groups) = embedded_defaults();
        for g in &groups {
            ensure_data_dir(Path::new(&g.data_dir))?;
        }
        check_start(&server, &groups).map_err(BootstrapError::Start)?;
        let mut plan = Self::build(&server, &groups, None, "./data".into())?;
        plan.config.server.bind_host = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        Ok(plan)
    }

    /// Loads `-c` and `-s` with the bootstrap's rules, creating and probing each
    /// group's data directory.
    pub fn from_files(args: &BootstrapArgs, vars: VarSource) -> Result<ServerPlan, BootstrapError> {
        let mut boot = BootConfig::load(args, vars, DataDirCheck::CreateAndProbe)?;
        log::info!(
            "config files loaded: {} and {}",
            args.config_file.display(),
            args.servers_file.display()
        );
        boot.check_start()?;
        let data_root = boot
            .groups
            .first()
            .and_then(|g| Path::new(&g.data_dir).parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("./data"));
        let (server, groups) = (boot.server.clone(), boot.groups.clone());
        Self::build(&server, &groups, Some(boot), data_root)
    }

    /// Builds the plan from checked settings.
    pub fn build(
        server: &ServerConfig,
        groups: &[GroupConfig],
        boot: Option<BootConfig>,
        data_root: PathBuf,
    ) -> Result<ServerPlan, BootstrapError> {
        let scfg = raft_server_config(server).map_err(BootstrapError::Start)?;
        let mut kv_groups = Vec::with_capacity(groups.len());
        let mut data_dirs = BTreeMap::new();
        for g in groups {
            kv_groups.push(kv_group_config(g).map_err(BootstrapError::Start)?);
            data_dirs.insert(g.group_id, PathBuf::from(&g.data_dir));
        }
        let servers_file = boot.as_ref().map(|b| b.servers_file.clone());
        let mut config = DtKvServerConfig::new(scfg, kv_groups, data_root.clone());
        config.stats_interval = perf_stats_interval(server).map_err(BootstrapError::Start)?;
        config.new_group = Some(Arc::new(GroupSource {
            boot,
            data_root: data_root.display().to_string(),
        }));
        Ok(ServerPlan {
            config,
            servers_file,
            data_dirs,
        })
    }
}

/// A started server: the DtKV server, its servers.properties sync and the SYNC_CONFIG
/// processor.
#[derive(Debug)]
pub struct RunningServer {
    kv: DtKvServer,
    sync: Option<Arc<ConfigSync>>,
    plan: ServerPlan,
}

impl RunningServer {
    /// Builds and starts the server: ports bound, self check done (errors here are
    /// exit 106); the groups' init, pings and elections go on in the background.
    pub fn start(plan: ServerPlan) -> Result<RunningServer, BootstrapError> {
        let kv = DtKvServer::new(plan.config.clone()).map_err(BootstrapError::Server)?;
        let server = kv.raft_server().clone();
        let sync = match &plan.servers_file {
            Some(f) => Some(
                ConfigSync::start(Arc::downgrade(&server), f.clone())
                    .map_err(|e| BootstrapError::Server(RaftServerError::Io(e)))?,
            ),
            None => None,
        };
        server.register(
            RaftCommands::RAFT_ADMIN_SYNC_CONFIG,
            SyncConfigProcessor::new(Arc::downgrade(&server), sync.clone()),
        );
        match &sync {
            Some(s) => {
                let s = s.clone();
                server.set_persist_config_hook(move || s.request());
            }
            None => server.set_persist_config_hook(|| {
                log::warn!(
                    "membership changed; not written anywhere (embedded defaults, no -s file)"
                )
            }),
        }
        if let Err(e) = kv.start() {
            if let Some(s) = &sync {
                s.stop();
            }
            return Err(BootstrapError::Server(e));
        }
        Ok(RunningServer { kv, sync, plan })
    }

    /// Waits up to `timeout` for every group to be ready: `Ok(true)` ready,
    /// `Ok(false)` not yet, `Err` the start sequence failed (exit 106).
    pub fn wait_ready(&self, timeout: Duration) -> Result<bool, BootstrapError> {
        match self.kv.wait_group_ready(timeout) {
            Ok(()) => Ok(true),
            Err(RaftServerError::Timeout(_)) => Ok(false),
            Err(e) => Err(BootstrapError::Server(e)),
        }
    }

    /// The DtKV server.
    pub fn kv_server(&self) -> &DtKvServer {
        &self.kv
    }

    /// The servers.properties sync (`None` with the embedded defaults).
    pub fn config_sync(&self) -> Option<&Arc<ConfigSync>> {
        self.sync.as_ref()
    }

    /// What the server was started with.
    pub fn plan(&self) -> &ServerPlan {
        &self.plan
    }

    /// A line saying where the server listens.
    pub fn describe(&self) -> String {
        let s = self.kv.raft_server();
        let c = s.config();
        let dirs: Vec<String> = self
            .plan
            .data_dirs
            .iter()
            .map(|(g, d)| format!("group {g} in {}", d.display()))
            .collect();
        format!(
            "node {} listening: replicate port {} (servers and admin), service port {} \
             (clients), {}; servers: {}",
            c.node_id,
            s.replicate_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| c.replicate_port.to_string()),
            s.service_port(),
            dirs.join(", "),
            c.servers
        )
    }

    /// Stops the server within `timeout` (groups saving a snapshot on close where
    /// configured), then the sync thread.
    pub fn stop(&self, timeout: Duration) {
        self.kv.stop(timeout);
        if let Some(s) = &self.sync {
            s.stop();
        }
    }
}

fn fail(e: &BootstrapError) -> i32 {
    eprintln!("dt-server: error: {e}");
    e.exit_code()
}

/// The whole program: reads `args` (without the program name), starts the server,
/// logs where it listens and when it is ready, waits until `stop` receives (or its
/// sender is dropped), stops within [`STOP_TIMEOUT`] and returns the exit code (0, or
/// 101–106 with the reason on stderr).
pub fn run<S: AsRef<str>>(args: &[S], stop: Receiver<()>) -> i32 {
    let t0 = Instant::now();
    let plan = match parse_command_line(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Ok(Command::Embedded) => {
            log::info!("no arguments: running the embedded defaults (dt-server --help for more)");
            ServerPlan::embedded()
        }
        Ok(Command::Files(a, vars)) => ServerPlan::from_files(&a, vars),
        Ok(Command::Restore(r)) => {
            return match restore::restore(&r) {
                Ok((done, dir)) => {
                    println!("{}", restore::describe(&done, &dir, r.group_id));
                    0
                }
                Err(e) => {
                    eprintln!("dt-server: error: {e}");
                    e.exit_code()
                }
            }
        }
        Err(e) => {
            eprintln!("{USAGE}");
            return fail(&e);
        }
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let server = match RunningServer::start(plan) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    log::info!("{}", server.describe());
    loop {
        match server.wait_ready(Duration::from_millis(50)) {
            Ok(true) => {
                log::info!(
                    "ready: all groups ready {} ms after start",
                    t0.elapsed().as_millis()
                );
                break;
            }
            Ok(false) => {}
            Err(e) => {
                let code = fail(&e);
                server.stop(Duration::from_secs(5));
                return code;
            }
        }
        match stop.try_recv() {
            Ok(()) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return shut_down(&server);
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
    }
    loop {
        match stop.recv_timeout(Duration::from_secs(3600)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return shut_down(&server),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

fn shut_down(server: &RunningServer) -> i32 {
    let t = Instant::now();
    log::info!(
        "stopping (timeout {} s; snapshot on close where saveSnapshotWhenClose is on)",
        STOP_TIMEOUT.as_secs()
    );
    server.stop(STOP_TIMEOUT);
    log::info!("stopped in {} ms", t.elapsed().as_millis());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        assert!(matches!(
            parse_command_line::<&str>(&[]),
            Ok(Command::Embedded)
        ));
        assert!(matches!(parse_command_line(&["--help"]), Ok(Command::Help)));
        match parse_command_line(&["-DDATA_DIR=/x", "-c", "a", "-s", "b"]).unwrap() {
            Command::Files(a, v) => {
                assert_eq!(a.config_file, PathBuf::from("a"));
                assert_eq!(a.servers_file, PathBuf::from("b"));
                assert_eq!(v.lookup("DATA_DIR").as_deref(), Some("/x"));
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            parse_command_line(&["-c", "a"]).unwrap_err().exit_code(),
            101
        );
        assert_eq!(
            parse_command_line(&["-s", "a", "-c"])
                .unwrap_err()
                .exit_code(),
            101
        );
    }

    #[test]
    fn restore_command_lines() {
        match parse_command_line(&["--restore-snapshot", "b/x_3.idx", "--group-id", "4"]).unwrap() {
            Command::Restore(r) => {
                assert_eq!(r.snapshot, PathBuf::from("b/x_3.idx"));
                assert_eq!(r.group_id, 4);
                assert!(r.files.is_none(), "no -c/-s: the embedded defaults");
            }
            c => panic!("{c:?}"),
        }
        let line = [
            "-DDATA_DIR=/d",
            "-c",
            "a",
            "--group-id",
            "-1",
            "-s",
            "b",
            "--restore-snapshot",
            "x.idx",
        ];
        match parse_command_line(&line).unwrap() {
            Command::Restore(r) => {
                assert_eq!(r.group_id, -1);
                let (a, v) = r.files.expect("-c and -s");
                assert_eq!((a.config_file, a.servers_file), ("a".into(), "b".into()));
                assert_eq!(v.lookup("DATA_DIR").as_deref(), Some("/d"));
            }
            c => panic!("{c:?}"),
        }
        for (bad, says) in [
            (&["--restore-snapshot", "x.idx"][..], "needs --group-id"),
            (
                &["--restore-snapshot", "x.idx", "--group-id"][..],
                "--group-id needs a value",
            ),
            (
                &["--restore-snapshot", "x.idx", "--group-id", "g"][..],
                "not a group id",
            ),
            (
                &["--group-id", "0", "--restore-snapshot"][..],
                "--restore-snapshot needs a value",
            ),
            (
                &["--restore-snapshot", "x.idx", "--group-id", "0", "-c", "a"][..],
                "-s",
            ),
        ] {
            let e = parse_command_line(bad).unwrap_err();
            assert_eq!(e.exit_code(), 101, "{bad:?}: {e}");
            assert!(e.to_string().contains(says), "{bad:?}: {e}");
        }
    }
}
