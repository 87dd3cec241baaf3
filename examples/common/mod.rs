//! What the example programs share: starting DtKV nodes in this process on loopback
//! ([`KvCluster`]), the command-line flags for that ([`ClusterArgs`], [`TargetArgs`]),
//! and the `main` wrapper that turns an error into `<program>: <cause>` and exit
//! status 1 ([`main_with`]).
//!
//! ```no_run
//! use dt_examples::common::{group, ClusterArgs, KvCluster};
//!
//! // Three nodes (ids 1, 2, 3) running group 0, on ports the system picks, data in a
//! // temporary directory.
//! let cluster = KvCluster::start(&ClusterArgs::default(), &[1, 2, 3], vec![group(0, &[1, 2, 3])])?;
//! let kv = cluster.client(&[(0, &[1, 2, 3])])?;
//! kv.put(0, "greeting", "hello")?;
//! cluster.stop();
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_client::admin::AdminRaftClient;
use dt_client::raft::{RaftClientConfig, RaftNode};
use dt_client::KvClient;
use dt_raft::server::RaftServerConfig;
use dt_server::kv_server::{DtKvServer, DtKvServerConfig, KvGroupConfig};

/// The result of an example's scenario: any error, shown to the user as its message.
pub type DemoResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

/// How long the examples wait for a cluster to elect its leaders and become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs an example: sets up logging (`RUST_LOG`, errors only by default), parses the
/// flags (a bad flag exits with status 2 and clap's message, `--help` with 0), runs
/// `run`, and prints an error as `<name>: <cause>` with exit status 1.
pub fn main_with<A: Parser>(name: &str, run: impl FnOnce(&A) -> DemoResult) -> ExitCode {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error"))
        .try_init();
    let args = A::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the nodes an example starts in this process keep their data and listen.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Directory for the nodes' data, kept after the run (default: a temporary
    /// directory, removed at exit).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Node N's replicate port (servers and admin) is BASE+N, as in the reference's
    /// demos with 4000 (default: free ports the system picks).
    #[arg(long, value_name = "BASE", requires = "service_base")]
    pub replicate_base: Option<u16>,
    /// Node N's service port (clients) is BASE+N, as in the reference's demos with
    /// 5000 (default: free ports the system picks).
    #[arg(long, value_name = "BASE", requires = "replicate_base")]
    pub service_base: Option<u16>,
}

/// A DtKV group as the nodes of a [`KvCluster`] start it: id and voting members.
pub fn group(group_id: i32, members: &[u32]) -> KvGroupConfig {
    KvGroupConfig::new(group_id, members.to_vec())
}

/// The server settings of an example node: short timeouts so elections take a second
/// or two (the reference's demos shorten them too), one IO thread each.
pub fn node_config(
    servers: &str,
    node_id: i32,
    replicate_port: u16,
    service_port: u16,
) -> RaftServerConfig {
    RaftServerConfig {
        servers: servers.to_string(),
        node_id,
        replicate_port,
        service_port,
        bind_host: "127.0.0.1".parse().expect("a literal address"),
        elect_timeout: Duration::from_millis(3000),
        heartbeat_interval: Duration::from_millis(200),
        rpc_timeout: Duration::from_millis(2000),
        ping_interval: Duration::from_millis(200),
        raft_ping_interval: Duration::from_millis(100),
        io_threads: 1,
        block_io_threads: 2,
        ..Default::default()
    }
}

/// `id,127.0.0.1:port;...` for the given ports.
pub fn server_list(ports: &BTreeMap<i32, u16>) -> String {
    ports
        .iter()
        .map(|(id, p)| format!("{id},127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Replicate and service ports for nodes `ids`: `BASE+N` when the bases are given,
/// otherwise free loopback ports the system picks.
pub fn pick_ports(
    args: &ClusterArgs,
    ids: &[i32],
) -> DemoResult<(BTreeMap<i32, u16>, BTreeMap<i32, u16>)> {
    if let (Some(rb), Some(sb)) = (args.replicate_base, args.service_base) {
        let port = |base: u16, id: i32| -> DemoResult<u16> {
            u16::try_from(id)
                .ok()
                .and_then(|id| base.checked_add(id))
                .ok_or_else(|| format!("port base {base} + node id {id} is not a port").into())
        };
        let mut repl = BTreeMap::new();
        let mut svc = BTreeMap::new();
        for &id in ids {
            repl.insert(id, port(rb, id)?);
            svc.insert(id, port(sb, id)?);
        }
        return Ok((repl, svc));
    }
    // Distinct ports free now, outside the range outgoing connections are given (another
    // program could still take one before the nodes bind: the start then reports it).
    let ports = dt_common::ports::free_loopback_ports(ids.len() * 2)
        .map_err(|e| format!("cannot find free loopback ports: {e}"))?;
    let repl = ids
        .iter()
        .copied()
        .zip(ports[..ids.len()].iter().copied())
        .collect();
    let svc = ids
        .iter()
        .copied()
        .zip(ports[ids.len()..].iter().copied())
        .collect();
    Ok((repl, svc))
}

/// DtKV nodes running in this process on loopback, each a [`DtKvServer`] with its own
/// data directory `<dir>/node<N>`. Dropping it stops the nodes.
pub struct KvCluster {
    nodes: BTreeMap<i32, DtKvServer>,
    server_config: NodeConfigFn,
    repl: BTreeMap<i32, u16>,
    svc: BTreeMap<i32, u16>,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// Builds a node's server settings from the server list, its id, its replicate port
/// and its service port ([`node_config`] by default).
pub type NodeConfigFn = fn(&str, i32, u16, u16) -> RaftServerConfig;

impl KvCluster {
    /// Starts nodes `ids`, all running `groups`, and waits until every group has a
    /// leader. A port in use or an unusable directory is an error naming the node.
    ///
    /// When the system picks the ports, one of them can be taken between the pick and
    /// the bind (by any program's outgoing connection): the start is then tried again
    /// on new ports, up to five times.
    pub fn start(
        args: &ClusterArgs,
        ids: &[i32],
        groups: Vec<KvGroupConfig>,
    ) -> DemoResult<KvCluster> {
        KvCluster::start_with(args, ids, groups, node_config)
    }

    /// [`KvCluster::start`] with each node's server settings built by `server_config`
    /// instead of [`node_config`] (a benchmark wants the defaults, not the examples'
    /// short timeouts and single IO thread).
    pub fn start_with(
        args: &ClusterArgs,
        ids: &[i32],
        groups: Vec<KvGroupConfig>,
        server_config: NodeConfigFn,
    ) -> DemoResult<KvCluster> {
        let picked = args.replicate_base.is_none() || args.service_base.is_none();
        let mut tries = 0;
        loop {
            match KvCluster::try_start(args, ids, groups.clone(), server_config) {
                Ok(c) => return Ok(c),
                Err((true, msg)) if picked && tries < 5 => {
                    tries += 1;
                    println!("{msg}; trying again on other ports");
                }
                Err((_, msg)) => return Err(msg.into()),
            }
        }
    }

    /// One start attempt; the error says whether a port was in use.
    fn try_start(
        args: &ClusterArgs,
        ids: &[i32],
        groups: Vec<KvGroupConfig>,
        server_config: NodeConfigFn,
    ) -> Result<KvCluster, (bool, String)> {
        let (repl, svc) = pick_ports(args, ids).map_err(|e| (false, e.to_string()))?;
        let (dir, tmp) = match &args.dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("dt-example-")
                    .tempdir()
                    .map_err(|e| (false, format!("cannot create a temporary directory: {e}")))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let mut cluster = KvCluster {
            nodes: BTreeMap::new(),
            server_config,
            repl,
            svc,
            dir,
            _tmp: tmp,
        };
        let servers = server_list(&cluster.repl);
        for &id in ids {
            let node = cluster.start_node(&servers, id, groups.clone())?;
            cluster.nodes.insert(id, node);
        }
        cluster.wait_ready().map_err(|e| (false, e.to_string()))?;
        Ok(cluster)
    }

    fn start_node(
        &self,
        servers: &str,
        id: i32,
        groups: Vec<KvGroupConfig>,
    ) -> Result<DtKvServer, (bool, String)> {
        let (r, s) = (self.repl[&id], self.svc[&id]);
        let data = self.dir.join(format!("node{id}"));
        std::fs::create_dir_all(&data).map_err(|e| {
            (
                false,
                format!("node {id}: cannot create {}: {e}", data.display()),
            )
        })?;
        let cfg = DtKvServerConfig::new((self.server_config)(servers, id, r, s), groups, data);
        let node = DtKvServer::new(cfg).map_err(|e| (false, format!("node {id}: {e}")))?;
        node.start().map_err(|e| {
            (
                e.is_addr_in_use(),
                format!("node {id} cannot start on replicate port {r} / service port {s}: {e}"),
            )
        })?;
        Ok(node)
    }

    /// Starts node `id` while the cluster runs, the way an operator adds a machine: a
    /// new, empty data directory `<dir>/node<id>`, new ports (`BASE+id` with the bases,
    /// else picked by the system and picked again, up to five times, when one was
    /// taken before the bind), a server list of every node including itself, and
    /// `groups` (often none: the admin command ADD_GROUP creates them later). Returns
    /// its replicate port. It does not wait for the node to be ready: the running nodes
    /// must first learn it (ADD_NODE) to answer its node pings; then
    /// [`KvCluster::wait_node_ready`].
    pub fn start_node_at_run_time(
        &mut self,
        args: &ClusterArgs,
        id: i32,
        groups: Vec<KvGroupConfig>,
    ) -> DemoResult<u16> {
        if self.nodes.contains_key(&id) {
            return Err(format!("node {id} runs already").into());
        }
        let picked = args.replicate_base.is_none() || args.service_base.is_none();
        let mut tries = 0;
        loop {
            let (r, s) = pick_ports(args, &[id])?;
            self.repl.insert(id, r[&id]);
            self.svc.insert(id, s[&id]);
            let data = self.dir.join(format!("node{id}"));
            if data.exists() {
                std::fs::remove_dir_all(&data)
                    .map_err(|e| format!("node {id}: cannot empty {}: {e}", data.display()))?;
            }
            match self.start_node(&server_list(&self.repl), id, groups.clone()) {
                Ok(node) => {
                    self.nodes.insert(id, node);
                    return Ok(r[&id]);
                }
                Err((in_use, msg)) => {
                    self.repl.remove(&id);
                    self.svc.remove(&id);
                    if in_use && picked && tries < 5 {
                        tries += 1;
                        println!("{msg}; trying again on other ports");
                    } else {
                        return Err(msg.into());
                    }
                }
            }
        }
    }

    /// Waits until node `id` is ready (its node pings answered, its groups led).
    pub fn wait_node_ready(&self, id: i32) -> DemoResult {
        let n = self.nodes.get(&id).ok_or_else(|| format!("no node {id}"))?;
        n.wait_group_ready(READY_TIMEOUT)
            .map_err(|e| format!("node {id} not ready: {e}"))?;
        Ok(())
    }

    /// Waits until every node's groups are ready (a leader elected and known).
    pub fn wait_ready(&self) -> DemoResult {
        for (id, n) in &self.nodes {
            n.wait_group_ready(READY_TIMEOUT)
                .map_err(|e| format!("node {id} not ready: {e}"))?;
        }
        Ok(())
    }

    /// The node ids running in this process.
    pub fn ids(&self) -> Vec<i32> {
        self.nodes.keys().copied().collect()
    }

    /// Node `id`.
    pub fn node(&self, id: i32) -> Option<&DtKvServer> {
        self.nodes.get(&id)
    }

    /// Where the nodes keep their data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Node `id`'s service port.
    pub fn service_port(&self, id: i32) -> Option<u16> {
        self.svc.get(&id).copied()
    }

    /// The clients' view: `id,127.0.0.1:<service port>;...`.
    pub fn service_servers(&self) -> String {
        server_list(&self.svc)
    }

    /// The servers' and admin view: `id,127.0.0.1:<replicate port>;...`.
    pub fn replicate_servers(&self) -> String {
        server_list(&self.repl)
    }

    /// The node that leads `group_id` now, as the nodes themselves say.
    pub fn leader_of(&self, group_id: i32) -> Option<i32> {
        self.nodes.iter().find_map(|(id, n)| {
            n.groups()
                .group(group_id)
                .filter(|g| g.is_leader())
                .map(|_| *id)
        })
    }

    /// A KvClient on the service ports, knowing `groups` (id, members), with each
    /// group's leader already found.
    pub fn client(&self, groups: &[(i32, &[i32])]) -> DemoResult<KvClient> {
        connect_client(&self.service_servers(), groups)
    }

    /// An admin client on the replicate ports (admin commands go there), knowing
    /// every node.
    pub fn admin(&self) -> DemoResult<AdminRaftClient> {
        let admin = AdminRaftClient::new(RaftClientConfig::default())?;
        admin
            .raft()
            .add_or_update_nodes(&RaftNode::parse_list(&self.replicate_servers())?)?;
        Ok(admin)
    }

    /// Stops every node (each gets up to 5 s to finish).
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for (_, n) in std::mem::take(&mut self.nodes) {
            n.stop(Duration::from_secs(5));
        }
    }
}

impl Drop for KvCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A KvClient on `servers` (service ports, `id,host:port;...`) knowing `groups`, with
/// each group's leader already found (so a missing cluster is reported here, after
/// 5 s of retries: a server just started may still be electing).
pub fn connect_client(servers: &str, groups: &[(i32, &[i32])]) -> DemoResult<KvClient> {
    let kv = KvClient::connect(servers, groups)
        .map_err(|e| format!("bad server list '{servers}': {e}"))?;
    for (g, _) in groups {
        if let Err(e) = wait_leader(&kv, *g, Duration::from_secs(5)) {
            kv.stop(Duration::from_secs(1));
            return Err(format!("{e} at {servers}").into());
        }
    }
    Ok(kv)
}

/// For the examples that only need a client: a running cluster given by `--servers`,
/// or a one-node cluster started in this process.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// Service addresses of a running DtKV cluster, `id,host:port;...` (e.g. the
    /// standalone_server example's "1,127.0.0.1:5001"); without it, a one-node cluster
    /// starts in this process.
    #[arg(long, value_name = "LIST")]
    pub servers: Option<String>,
    /// The DtKV group to use (its members are the nodes of --servers).
    #[arg(long, default_value_t = 0)]
    pub group: i32,
    /// Where the in-process node keeps its data and listens (without --servers).
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The cluster an example talks to (see [`TargetArgs`]).
pub struct Target {
    /// The cluster started in this process, if any.
    pub cluster: Option<KvCluster>,
    /// Service addresses, `id,host:port;...`.
    pub servers: String,
    /// The group.
    pub group: i32,
    /// The group's members.
    pub members: Vec<i32>,
}

impl TargetArgs {
    /// Starts the in-process node, or checks the `--servers` list.
    pub fn open(&self) -> DemoResult<Target> {
        match &self.servers {
            Some(s) => {
                let members = RaftNode::parse_list(s)
                    .map_err(|e| format!("bad --servers '{s}': {e}"))?
                    .iter()
                    .map(|n| n.node_id)
                    .collect();
                Ok(Target {
                    cluster: None,
                    servers: s.clone(),
                    group: self.group,
                    members,
                })
            }
            None => {
                let c = KvCluster::start(&self.cluster, &[1], vec![group(self.group, &[1])])?;
                println!(
                    "started a one-node DtKV cluster in this process: {}",
                    c.service_servers()
                );
                Ok(Target {
                    servers: c.service_servers(),
                    cluster: Some(c),
                    group: self.group,
                    members: vec![1],
                })
            }
        }
    }
}

impl Target {
    /// A new client of the target's group.
    pub fn client(&self) -> DemoResult<KvClient> {
        connect_client(&self.servers, &[(self.group, &self.members)])
    }
}

/// Polls `f` every 20 ms until it is true or `timeout` passes; returns whether it
/// became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fails with `what` unless `cond` holds: the examples check what they show.
pub fn ensure(cond: bool, what: &str) -> DemoResult {
    if cond {
        Ok(())
    } else {
        Err(format!("unexpected: {what}").into())
    }
}

/// How [`put_and_get`] loads a group.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Puts (then gets) to run.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Distinct keys (key<i % keys>).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub keys: u32,
    /// Bytes of each value.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub value_size: u32,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub in_flight: u32,
}

/// The reference demos' load: `count` puts of `key<i % keys>` with up to `in_flight`
/// requests outstanding (callbacks), then as many gets of the same keys, each checked;
/// prints and returns the time of each phase.
pub fn put_and_get(
    kv: &KvClient,
    group_id: i32,
    load: &LoadArgs,
) -> DemoResult<(Duration, Duration)> {
    let value = bytes::Bytes::from(vec![b'x'; load.value_size as usize]);
    let key = |i: u32| bytes::Bytes::from(format!("key{}", i % load.keys));
    let wait = Duration::from_secs(30);

    let (tx, rx) = std::sync::mpsc::channel();
    let t = Instant::now();
    let mut outstanding = 0;
    for i in 0..load.count {
        if outstanding == load.in_flight {
            rx.recv_timeout(wait)??;
            outstanding -= 1;
        }
        let tx = tx.clone();
        kv.put_cb(group_id, key(i), value.clone(), move |r| {
            let _ = tx.send(r.map(|_| ()));
        });
        outstanding += 1;
    }
    for _ in 0..outstanding {
        rx.recv_timeout(wait)??;
    }
    let put_time = t.elapsed();

    let (tx, rx) = std::sync::mpsc::channel();
    let t = Instant::now();
    let (mut outstanding, mut found) = (0, 0u32);
    for i in 0..load.count {
        if outstanding == load.in_flight {
            found += rx.recv_timeout(wait)??;
            outstanding -= 1;
        }
        let tx = tx.clone();
        let want = value.clone();
        kv.get_cb(group_id, key(i), move |r| {
            let _ = tx.send(r.map(|n| u32::from(n.is_some_and(|n| n.data == want))));
        });
        outstanding += 1;
    }
    for _ in 0..outstanding {
        found += rx.recv_timeout(wait)??;
    }
    let get_time = t.elapsed();
    ensure(found == load.count, "every get returns the value put")?;

    let rate = |d: Duration| (f64::from(load.count) / d.as_secs_f64().max(1e-9)) as u64;
    println!(
        "{n} linearizable puts in {} ms ({} puts/s), {n} lease reads in {} ms ({} gets/s)",
        put_time.as_millis(),
        rate(put_time),
        get_time.as_millis(),
        rate(get_time),
        n = load.count,
    );
    Ok((put_time, get_time))
}

/// Puts `value` at `key` of `group_id`, retrying a failed put up to 3 times, 100 ms
/// apart. A group just started may change leader once more (a node that started late
/// wins a later election), and a put its first leader had appended but not committed
/// then fails ("raft log truncated", or NOT_RAFT_LEADER): nothing was written, and an
/// application retries, as here. Returns how many retries it took; `who` starts the
/// lines it prints.
pub fn put_retrying(
    kv: &KvClient,
    who: &str,
    group_id: i32,
    key: &str,
    value: &str,
) -> DemoResult<u32> {
    let mut tries = 0;
    loop {
        match kv.put(group_id, key.to_owned(), value.to_owned()) {
            Ok(_) => return Ok(tries),
            Err(e) if tries < 3 => {
                println!("{who}put to group {group_id} failed ({e}); retrying");
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The leader of `group_id` as `kv` finds it, retried until `timeout` (a group just
/// created or just changed may take an election before it has one).
pub fn wait_leader(kv: &KvClient, group_id: i32, timeout: Duration) -> DemoResult<i32> {
    let end = Instant::now() + timeout;
    loop {
        match kv
            .raft()
            .fetch_leader(group_id, Duration::from_secs(2))
            .wait()
        {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() >= end => {
                return Err(format!("no leader for group {group_id}: {e}").into())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A background writer: a client that puts `w<n>` = n to each of its groups every
/// 10 ms until [`Writer::finish`], retrying a failed put up to 3 times (as an
/// application would across a leader change), and printing each leader change it sees.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    kv: std::sync::Arc<KvClient>,
    handle: std::thread::JoinHandle<WriterStats>,
}

/// What a [`Writer`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Puts acknowledged.
    pub ok: u64,
    /// Puts acknowledged only after a retry.
    pub retried: u64,
    /// Puts that failed every try.
    pub failed: u64,
    /// The last value acknowledged in every group (the writer puts its round number),
    /// if any.
    pub last: Option<u64>,
}

impl Writer {
    /// Starts writing to `groups` of the cluster at `servers` with a client of its own.
    pub fn start(servers: &str, groups: &[(i32, &[i32])]) -> DemoResult<Writer> {
        use std::sync::atomic::Ordering;
        let kv = std::sync::Arc::new(connect_client(servers, groups)?);
        let ids: Vec<i32> = groups.iter().map(|(g, _)| *g).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let client = kv.clone();
        let handle = std::thread::spawn(move || {
            let mut st = WriterStats::default();
            let mut leaders: BTreeMap<i32, Option<i32>> = BTreeMap::new();
            while !s.load(Ordering::Acquire) {
                let n = st.ok;
                let mut all = true;
                for &g in &ids {
                    match put_retrying(&kv, "writer: ", g, "writer", &n.to_string()) {
                        Ok(0) => {}
                        Ok(_) => st.retried += 1,
                        Err(e) => {
                            println!("writer: put to group {g} failed: {e}");
                            all = false;
                        }
                    }
                    let l = kv.raft().leader(g);
                    if leaders.insert(g, l) != Some(l) {
                        println!("writer: group {g} now written to leader {l:?}");
                    }
                }
                if all {
                    st.last = Some(n);
                    st.ok += 1;
                } else {
                    st.failed += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            kv.stop(Duration::from_secs(1));
            st
        });
        Ok(Writer {
            stop,
            kv: client,
            handle,
        })
    }

    /// The writer's client: tell it about nodes and members added meanwhile
    /// (`client().raft().add_or_update_nodes(..)`, `add_or_update_group(..)`).
    pub fn client(&self) -> &KvClient {
        &self.kv
    }

    /// Stops the writer and prints and returns what it did.
    pub fn finish(self) -> DemoResult<WriterStats> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let st = self
            .handle
            .join()
            .map_err(|_| "the writer thread panicked")?;
        println!(
            "writer: {} rounds of puts acknowledged ({} after a retry), {} failed",
            st.ok, st.retried, st.failed
        );
        Ok(st)
    }
}
