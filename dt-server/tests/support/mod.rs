//! Running the real `dt-server` binary as a child process on free loopback ports, with
//! its configuration files written into a temporary directory.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_client::admin::AdminRaftClient;
use dt_client::raft::{RaftClientConfig, RaftNode};
use dt_client::KvClient;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_dt-server");

/// `n` distinct ports free right now on 127.0.0.1 (all bound at once, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    dt_common::ports::free_loopback_ports(n).unwrap()
}

/// The files of one node of a loopback cluster.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    /// The node id.
    pub node_id: i32,
    /// Its directory (config files, `data/`, `stderr.log`).
    pub dir: PathBuf,
    /// `config.properties`.
    pub config: PathBuf,
    /// `servers.properties`.
    pub servers: PathBuf,
}

/// A loopback cluster's layout: replicate and service port of each node (ids 1..=n).
#[derive(Debug, Clone)]
pub struct Layout {
    /// Replicate ports, node 1 first.
    pub repl: Vec<u16>,
    /// Service ports, node 1 first.
    pub svc: Vec<u16>,
}

impl Layout {
    /// `n` nodes on free ports.
    pub fn new(n: usize) -> Layout {
        let p = free_ports(2 * n);
        Layout {
            repl: p[..n].to_vec(),
            svc: p[n..].to_vec(),
        }
    }

    /// `id,127.0.0.1:replicatePort;…`.
    pub fn servers(&self) -> String {
        self.servers_of(&self.ids())
    }

    /// `id,127.0.0.1:servicePort;…` (what a KvClient connects to).
    pub fn client_servers(&self) -> String {
        self.client_servers_of(&self.ids())
    }

    /// [`Layout::servers`] of the nodes `ids` only.
    pub fn servers_of(&self, ids: &[i32]) -> String {
        list(&self.repl, ids)
    }

    /// [`Layout::client_servers`] of the nodes `ids` only.
    pub fn client_servers_of(&self, ids: &[i32]) -> String {
        list(&self.svc, ids)
    }

    /// Node ids 1..=n.
    pub fn ids(&self) -> Vec<i32> {
        (1..=self.repl.len() as i32).collect()
    }

    /// Writes every node's files under `root` ([`Layout::write_node`] with
    /// `extra_config` for each), node 1 first.
    pub fn write_all(&self, root: &Path, extra_config: &str) -> Vec<NodeFiles> {
        self.ids()
            .iter()
            .map(|&id| self.write_node(root, id, extra_config, ""))
            .collect()
    }

    /// Writes node `id`'s files under `root/node<id>` with short timings; `extra_config`
    /// and `extra_servers` are appended to the two files.
    pub fn write_node(
        &self,
        root: &Path,
        id: i32,
        extra_config: &str,
        extra_servers: &str,
    ) -> NodeFiles {
        let dir = root.join(format!("node{id}"));
        fs::create_dir_all(&dir).unwrap();
        let i = id as usize - 1;
        let config = format!(
            "nodeId = {id}\nreplicatePort = {}\nservicePort = {}\n\
             electTimeout = 1000\nheartbeatInterval = 200\npingInterval = 200\n\
             rpcTimeout = 1000\nconnectTimeout = 1000\nblockIoThreads = 2\n\
             dataDir = {}\nlogFileSize = 1048576\n{extra_config}",
            self.repl[i],
            self.svc[i],
            dir.join("data").display()
        );
        let members = self
            .ids()
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let servers = format!(
            "# test cluster\nservers = {}\n\ngroup.0.nodeIdOfMembers = {members}\n\
             group.0.nodeIdOfObservers =\n{extra_servers}",
            self.servers()
        );
        let files = NodeFiles {
            node_id: id,
            config: dir.join("config.properties"),
            servers: dir.join("servers.properties"),
            dir,
        };
        fs::write(&files.config, config).unwrap();
        fs::write(&files.servers, servers).unwrap();
        files
    }
}

fn list(ports: &[u16], ids: &[i32]) -> String {
    let mut s = String::new();
    for &id in ids {
        let _ = write!(s, "{id},127.0.0.1:{};", ports[id as usize - 1]);
    }
    s
}

/// A running `dt-server` child; killed on drop if still running.
#[derive(Debug)]
pub struct Server {
    /// The child process.
    pub child: Child,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Server {
    /// Starts the binary with `args` in `cwd`, stderr into `cwd/<log_name>`.
    pub fn spawn(cwd: &Path, args: &[&str], log_name: &str) -> Server {
        let log = cwd.join(log_name);
        let err = fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        Server { child, log }
    }

    /// Starts node `f` from its files.
    pub fn start(f: &NodeFiles, log_name: &str) -> Server {
        Server::spawn(
            &f.dir,
            &[
                "-c",
                f.config.to_str().unwrap(),
                "-s",
                f.servers.to_str().unwrap(),
            ],
            log_name,
        )
    }

    /// Sends SIGTERM (with the `kill` command).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`, ...) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id();
        let st = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{signal} {pid}");
    }

    /// SIGTERM, then requires exit code 0 within 30 s (a clean stop).
    pub fn stop_clean(&mut self) {
        self.terminate();
        let st = self.wait_exit(Duration::from_secs(30));
        assert_eq!(st.code(), Some(0), "{}", self.log_text());
    }

    /// Kills the process (SIGKILL: a crash) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit (panics after `timeout`, with its log).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "dt-server did not exit in {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Puts `key` until it succeeds (a fresh client per attempt, so leader discovery does
/// not back off), within `timeout`; returns the client that succeeded.
pub fn put_until_ok(
    servers: &str,
    members: &[i32],
    key: &str,
    value: &str,
    timeout: Duration,
) -> KvClient {
    let end = Instant::now() + timeout;
    loop {
        let kv = KvClient::connect(servers, &[(0, members)]).unwrap();
        match kv.put(0, key.to_string(), value.to_string()) {
            Ok(_) => return kv,
            Err(e) => {
                kv.stop(Duration::from_millis(100));
                assert!(Instant::now() < end, "no put within {timeout:?}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Copies the directory tree `from` to `to` (created; files in it are overwritten).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Waits until every node of `l` reports group 0 applied up to `index` and a known
/// leader (panics after `timeout`, with the last status).
pub fn wait_all_applied(l: &Layout, index: i64, timeout: Duration) {
    let admin = AdminRaftClient::new(RaftClientConfig::default()).unwrap();
    admin
        .raft()
        .add_or_update_nodes(&RaftNode::parse_list(&l.servers()).unwrap())
        .unwrap();
    let end = Instant::now() + timeout;
    for id in l.ids() {
        loop {
            let st = admin.query_status(id, 0, Duration::from_secs(2)).wait();
            if let Ok(st) = &st {
                if st.last_applied >= index && st.leader_id > 0 {
                    break;
                }
            }
            assert!(
                Instant::now() < end,
                "node {id} did not apply {index}: {st:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    admin.stop(Duration::from_secs(1));
}

/// What a `dt-admin` run printed, and its exit code.
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// stdout.
    pub out: String,
    /// stderr.
    pub err: String,
}

impl Run {
    /// stdout as one JSON object (`--json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(self.out.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.out))
    }
}

/// Runs the `dt-admin` binary with `-s file` and `args`.
pub fn admin(file: &Path, args: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_dt-admin"))
        .arg("-s")
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: o.status.code().expect("exited"),
        out: String::from_utf8(o.stdout).unwrap(),
        err: String::from_utf8(o.stderr).unwrap(),
    }
}

/// Runs `dt-admin` and requires exit code 0.
pub fn ok(file: &Path, args: &[&str]) -> Run {
    let r = admin(file, args);
    assert_eq!(
        r.code, 0,
        "dt-admin {args:?}: code {}\nstdout: {}\nstderr: {}",
        r.code, r.out, r.err
    );
    r
}

/// `query-status --json` of `group` on `node` (exit 0 required).
pub fn status(file: &Path, node: i32, group: i32) -> Value {
    try_status(file, node, group).unwrap_or_else(|| panic!("query-status of node {node} failed"))
}

/// [`status`], or `None` when dt-admin fails (the node is down or still starting).
pub fn try_status(file: &Path, node: i32, group: i32) -> Option<Value> {
    let r = admin(
        file,
        &[
            "query-status",
            "--node-id",
            &node.to_string(),
            "--group-id",
            &group.to_string(),
            "--json",
        ],
    );
    (r.code == 0).then(|| r.json())
}

/// A JSON array of ids, sorted.
pub fn ids(v: &Value) -> Vec<i64> {
    let mut x: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_i64().unwrap())
        .collect();
    x.sort_unstable();
    x
}

/// Polls `f` every 100 ms until it holds (panics naming `what` after `timeout`).
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `dt-admin add-node`: tells node `on` about node `id` at 127.0.0.1:`port` (exit 0
/// required).
pub fn add_node(file: &Path, on: &str, id: &str, port: u16) -> Run {
    ok(
        file,
        &[
            "add-node",
            "--node-id",
            on,
            "--add-node-id",
            id,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ],
    )
}

/// A thread writing `k1`, `k2`, ... (value: the number) into group 0 one after another,
/// each retried until answered: [`SeqWriter::acked`] is the last one answered.
pub struct SeqWriter {
    acked: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl SeqWriter {
    /// Starts writing with `kv` (stopped with the writer).
    pub fn start(kv: KvClient) -> SeqWriter {
        let acked = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, f, s) = (acked.clone(), failures.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 1u64;
            while !s.load(Ordering::Relaxed) {
                match kv.put(0, format!("k{i}"), i.to_string()) {
                    Ok(_) => {
                        a.store(i, Ordering::SeqCst);
                        i += 1;
                    }
                    Err(_) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            kv.stop(Duration::from_secs(1));
        });
        SeqWriter {
            acked,
            failures,
            stop,
            thread,
        }
    }

    /// The last key number answered (0: none yet).
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Failed attempts so far (each retried with the same key).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Waits until `n` more writes than now were answered (panics naming `what`).
    pub fn wait_progress(&self, n: u64, what: &str, timeout: Duration) {
        let from = self.acked();
        wait_until(what, timeout, || self.acked() >= from + n);
    }

    /// Stops the writer; returns the last key number answered.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let acked = self.acked;
        self.thread.join().unwrap();
        acked.load(Ordering::SeqCst)
    }
}

/// An 8 KiB value, different for every `i` (`value i ` then a letter repeated).
pub fn value_8k(i: u32) -> bytes::Bytes {
    let mut v = format!("value {i} ").into_bytes();
    v.resize(8 * 1024, b'a' + (i % 26) as u8);
    bytes::Bytes::from(v)
}

/// SIGTERM to every node, then each must exit 0 (a clean stop saves a snapshot).
pub fn stop_all(nodes: &mut [Server]) {
    for n in nodes.iter() {
        n.terminate();
    }
    for n in nodes.iter_mut() {
        let st = n.wait_exit(Duration::from_secs(30));
        assert_eq!(st.code(), Some(0), "{}", n.log_text());
    }
}

/// Starts every node from its files, stderr into `<node dir>/<log_name>`.
pub fn start_all(files: &[NodeFiles], log_name: &str) -> Vec<Server> {
    files.iter().map(|f| Server::start(f, log_name)).collect()
}

/// Reads `k1`..`k<last>` of group 0 through a fresh client and requires each to hold
/// its number (what [`SeqWriter`] wrote).
pub fn check_written(l: &Layout, last: u64) {
    let kv = KvClient::connect(&l.client_servers(), &[(0, &l.ids())]).unwrap();
    for i in 1..=last {
        let got = kv.get(0, format!("k{i}")).unwrap().map(|n| n.data);
        assert_eq!(got, Some(bytes::Bytes::from(i.to_string())), "k{i}");
    }
    kv.stop(Duration::from_secs(1));
}
