//! The server configuration files: the shipped conf/ sets load and agree with the
//! embedded defaults, each bad file or argument gives the reference's exit code, and
//! per-group overrides apply in the reference's order.

use dt_server::bootstrap::{
    embedded_defaults, parse_args, BootConfig, BootstrapArgs, BootstrapError, ClientConfig,
    DataDirCheck, StartProblem,
};
use dt_server::props::{Properties, VarSource};
use std::path::{Path, PathBuf};

fn repo_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf")
}

fn no_vars() -> VarSource {
    VarSource::fixed::<[(&str, &str); 0], &str, &str>([])
}

fn load_files(c: &Path, s: &Path, vars: VarSource) -> Result<BootConfig, BootstrapError> {
    BootConfig::load(
        &BootstrapArgs {
            config_file: c.to_path_buf(),
            servers_file: s.to_path_buf(),
        },
        vars,
        DataDirCheck::Skip,
    )
}

#[test]
fn shipped_single_node_conf_equals_embedded_defaults() {
    let conf = repo_conf();
    let mut cfg = load_files(
        &conf.join("config.properties"),
        &conf.join("servers.properties"),
        no_vars(),
    )
    .unwrap();
    assert_eq!(cfg.server.node_id, 1);
    assert_eq!(cfg.server.replicate_port, 9331);
    assert_eq!(cfg.server.service_port, 9332);
    assert_eq!(cfg.server.servers, "1,127.0.0.1:9331");
    assert_eq!(cfg.groups.len(), 1);
    assert_eq!(cfg.groups[0].group_id, 0);
    assert_eq!(cfg.groups[0].data_dir, "./data/0");
    assert_eq!(cfg.groups[0].node_id_of_members, "1");
    assert!(cfg.groups[0].sync_force);
    let nodes = cfg.check_start().unwrap();
    assert_eq!(nodes.len(), 1);

    let (server, groups) = embedded_defaults();
    assert_eq!(cfg.server, server);
    assert_eq!(cfg.groups, groups);

    let client = ClientConfig::load(&conf.join("client.properties")).unwrap();
    assert_eq!(client.nodes.len(), 1);
    assert_eq!(client.nodes[0].port, server.service_port);
    assert_eq!(client.nodes[0].host, "127.0.0.1");
}

#[test]
fn shipped_conf_follows_data_dir_variable() {
    let conf = repo_conf();
    let cfg = load_files(
        &conf.join("config.properties"),
        &conf.join("servers.properties"),
        VarSource::fixed([("DATA_DIR", "/srv/dt/data")]),
    )
    .unwrap();
    assert_eq!(cfg.groups[0].data_dir, "/srv/dt/data/0");
}

#[test]
fn shipped_three_node_conf_loads_and_agrees() {
    let dir = repo_conf().join("cluster-3");
    let client = ClientConfig::load(&dir.join("client.properties")).unwrap();
    assert_eq!(client.nodes.len(), 3);
    let mut first_servers = None;
    for n in 1..=3 {
        let node = dir.join(format!("node{n}"));
        let mut cfg = load_files(
            &node.join("config.properties"),
            &node.join("servers.properties"),
            no_vars(),
        )
        .unwrap();
        assert_eq!(cfg.server.node_id, n);
        let nodes = cfg.check_start().unwrap();
        assert_eq!(nodes.len(), 3);
        // This node's replicate port is the one the servers list gives it.
        let me = nodes.iter().find(|x| x.node_id == n).unwrap();
        assert_eq!(me.port, cfg.server.replicate_port);
        // The client list points at this node's service port.
        let c = client.nodes.iter().find(|x| x.node_id == n).unwrap();
        assert_eq!(c.port, cfg.server.service_port);
        assert_eq!(cfg.groups.len(), 1);
        assert_eq!(cfg.groups[0].node_id_of_members, "1,2,3");
        assert_eq!(cfg.groups[0].data_dir, format!("./data/node{n}/0"));
        match &first_servers {
            None => first_servers = Some(cfg.server.servers.clone()),
            Some(s) => assert_eq!(s, &cfg.server.servers),
        }
    }
}

#[test]
fn command_line_errors_are_101() {
    let e = parse_args(&["-s", "s.properties"]).unwrap_err();
    assert_eq!(e.exit_code(), 101);
    assert!(e.to_string().contains("-c"), "{e}");
    let e = parse_args(&["-c", "c.properties"]).unwrap_err();
    assert_eq!(e.exit_code(), 101);
    assert!(e.to_string().contains("-s"), "{e}");
    let e = parse_args(&["-c", "c", "-s"]).unwrap_err();
    assert!(matches!(e, BootstrapError::MissingOptionValue("-s")));
    let a = parse_args(&["x", "-s", "b", "-c", "a", "-c", "z"]).unwrap();
    assert_eq!(a.config_file, PathBuf::from("a"));
    assert_eq!(a.servers_file, PathBuf::from("b"));
}

/// Writes both files into a fresh directory and loads them with data dir checks on.
fn run(config: &str, servers: &str) -> (tempfile::TempDir, Result<BootConfig, BootstrapError>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A plain file inside the data root, for the bad data directory case.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("file"), b"not a directory").unwrap();
    let config = config.replace("@DATA@", data.to_str().unwrap());
    std::fs::write(dir.path().join("config.properties"), config).unwrap();
    std::fs::write(dir.path().join("servers.properties"), servers).unwrap();
    let args = BootstrapArgs {
        config_file: dir.path().join("config.properties"),
        servers_file: dir.path().join("servers.properties"),
    };
    let r = BootConfig::load(&args, no_vars(), DataDirCheck::CreateAndProbe)
        .and_then(|mut c| c.check_start().map(|_| c));
    (dir, r)
}

const OK_CONFIG: &str = "nodeId = 1\ndataDir = @DATA@\n";
const OK_SERVERS: &str =
    "servers = 1,127.0.0.1:9331;2,127.0.0.1:9341\ngroup.0.nodeIdOfMembers = 1,2\n";

#[test]
fn a_good_pair_creates_group_dirs() {
    let (dir, r) = run(
        OK_CONFIG,
        &format!("{OK_SERVERS}group.5.nodeIdOfMembers = 2\n"),
    );
    let cfg = r.unwrap();
    assert_eq!(
        cfg.groups.iter().map(|g| g.group_id).collect::<Vec<_>>(),
        vec![0, 5]
    );
    assert!(dir.path().join("data/0").is_dir());
    assert!(dir.path().join("data/5").is_dir());
    assert!(!dir.path().join("data/0/check").exists());
}

#[test]
fn each_bad_file_gives_its_exit_code() {
    // (what, config.properties, servers.properties, exit code, text in the message)
    let cases: &[(&str, &str, &str, i32, &str)] = &[
        (
            "malformed escape",
            "nodeId = \\u12x4\n",
            OK_SERVERS,
            102,
            "config.properties:1: key 'nodeId'",
        ),
        (
            "bad int",
            "nodeId = one\ndataDir=@DATA@\n",
            OK_SERVERS,
            104,
            "key 'nodeId' value 'one'",
        ),
        (
            "bad bool",
            "nodeId=1\nsyncForce = maybe\ndataDir=@DATA@\n",
            OK_SERVERS,
            104,
            "true or false",
        ),
        (
            "bad array",
            "nodeId=1\nioRetryInterval = 1,,2\ndataDir=@DATA@\n",
            OK_SERVERS,
            104,
            "ioRetryInterval",
        ),
        (
            "unresolved variable",
            "nodeId=1\ndataDir = ${NO_SUCH_VAR_X}\n",
            OK_SERVERS,
            104,
            "NO_SUCH_VAR_X",
        ),
        (
            "ignored servers still resolved",
            "nodeId=1\nservers=${NO_SUCH_VAR_Y}\ndataDir=@DATA@\n",
            OK_SERVERS,
            104,
            "NO_SUCH_VAR_Y",
        ),
        (
            "bad group value",
            OK_CONFIG,
            "servers=1,h:1\ngroup.0.nodeIdOfMembers=1\ngroup.0.maxKeepSnapshots = x\n",
            104,
            "group.0.maxKeepSnapshots",
        ),
        (
            "bad kv value",
            OK_CONFIG,
            "servers=1,h:1\ngroup.0.nodeIdOfMembers=1\ngroup.0.watchTimeoutMillis = soon\n",
            104,
            "group.0.watchTimeoutMillis",
        ),
        (
            "no servers",
            OK_CONFIG,
            "group.0.nodeIdOfMembers = 1\n",
            105,
            "servers property is required",
        ),
        ("no groups", OK_CONFIG, "servers = 1,h:1\n", 105, "no group"),
        (
            "group key without name",
            OK_CONFIG,
            "servers=1,h:1\ngroup.0=1\n",
            105,
            "group.0",
        ),
        (
            "empty group id",
            OK_CONFIG,
            "servers=1,h:1\ngroup..x=1\n",
            105,
            "group..x",
        ),
        (
            "non-numeric group id",
            OK_CONFIG,
            "servers=1,h:1\ngroup.a.nodeIdOfMembers=1\n",
            105,
            "servers.properties:2",
        ),
        (
            "group without members",
            OK_CONFIG,
            "servers=1,h:1\ngroup.0.nodeIdOfMembers=1\ngroup.1.syncForce=false\n",
            105,
            "group.1.nodeIdOfMembers",
        ),
        (
            "empty members",
            OK_CONFIG,
            "servers=1,h:1\ngroup.0.nodeIdOfMembers=   \n",
            105,
            "group 0",
        ),
        (
            "data dir is a file",
            "nodeId=1\ndataDir=@DATA@/file\n",
            OK_SERVERS,
            103,
            "cannot create it",
        ),
        ("no nodeId", "dataDir=@DATA@\n", OK_SERVERS, 106, "nodeId"),
        (
            "negative port",
            "nodeId=1\nreplicatePort=-1\ndataDir=@DATA@\n",
            OK_SERVERS,
            106,
            "replicatePort",
        ),
        (
            "self not listed",
            "nodeId=3\ndataDir=@DATA@\n",
            OK_SERVERS,
            106,
            "not in the servers list",
        ),
        (
            "empty servers",
            OK_CONFIG,
            "servers=\ngroup.0.nodeIdOfMembers=1\n",
            106,
            "not in the servers list",
        ),
        (
            "bad servers",
            OK_CONFIG,
            "servers=1,h\ngroup.0.nodeIdOfMembers=1\n",
            106,
            "bad servers list",
        ),
        (
            "duplicate host",
            OK_CONFIG,
            "servers=1,h:1;2,h:1\ngroup.0.nodeIdOfMembers=1\n",
            106,
            "duplicate server host",
        ),
        (
            "unknown member",
            OK_CONFIG,
            "servers=1,h:1\ngroup.0.nodeIdOfMembers=1,9\n",
            106,
            "9 is not in the servers list",
        ),
        (
            "no member",
            OK_CONFIG,
            "servers=1,h:1\ngroup.0.nodeIdOfMembers=,\n",
            106,
            "lists no node",
        ),
        (
            "member is observer",
            OK_CONFIG,
            "servers=1,h:1;2,h:2\ngroup.0.nodeIdOfMembers=1,2\ngroup.0.nodeIdOfObservers=2\n",
            106,
            "both member and observer",
        ),
        (
            "log file size",
            "nodeId=1\nlogFileSize=1000\ndataDir=@DATA@\n",
            OK_SERVERS,
            106,
            "logFileSize must be a power of two",
        ),
        (
            "dispatcher CPUs not a list",
            "nodeId=1\ndispatcherCpus=first\ndataDir=@DATA@\n",
            OK_SERVERS,
            106,
            "dispatcherCpus: 'first' is not a CPU number",
        ),
        (
            "dispatcher CPUs beyond the machine",
            "nodeId=1\ndispatcherCpus=1023\ndataDir=@DATA@\n",
            OK_SERVERS,
            106,
            "dispatcherCpus: CPU 1023 is not available to this process",
        ),
    ];
    for (what, config, servers, code, text) in cases {
        let (_dir, r) = run(config, servers);
        let e = r.err().unwrap_or_else(|| panic!("{what}: loaded"));
        assert_eq!(e.exit_code(), *code, "{what}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(text), "{what}: '{msg}' lacks '{text}'");
    }
}

#[test]
fn missing_file_is_102() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.properties"), "nodeId=1\n").unwrap();
    let args = BootstrapArgs {
        config_file: dir.path().join("c.properties"),
        servers_file: dir.path().join("nope.properties"),
    };
    let e = BootConfig::load(&args, no_vars(), DataDirCheck::Skip).unwrap_err();
    assert_eq!(e.exit_code(), 102);
    assert!(e.to_string().contains("nope.properties"), "{e}");
}

#[test]
fn groups_are_checked_in_order_dir_before_next_groups_values() {
    // Group 0's directory is bad and group 1 has a bad value: the reference checks
    // group 0 completely (values, then directory) before group 1, so 103.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("0"), b"a file where group 0's directory goes").unwrap();
    std::fs::write(
        dir.path().join("c.properties"),
        format!("nodeId=1\ndataDir={}\n", data.display()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("s.properties"),
        "servers=1,h:1\ngroup.0.nodeIdOfMembers=1\ngroup.1.nodeIdOfMembers=1\ngroup.1.syncForce=bad\n",
    )
    .unwrap();
    let args = BootstrapArgs {
        config_file: dir.path().join("c.properties"),
        servers_file: dir.path().join("s.properties"),
    };
    let e = BootConfig::load(&args, no_vars(), DataDirCheck::CreateAndProbe).unwrap_err();
    assert_eq!(e.exit_code(), 103, "{e}");
    // Without directory checks the value error of group 1 shows.
    let e = BootConfig::load(&args, no_vars(), DataDirCheck::Skip).unwrap_err();
    assert_eq!(e.exit_code(), 104, "{e}");
}

#[test]
fn group_overrides_apply_after_config_properties() {
    let config = Properties::parse_str(
        "nodeId=1\nsyncForce=false\nmaxKeepSnapshots=5\nwatchTimeoutMillis=1\nelectTimeout=3000\n\
         ioRetryInterval=10,20\ngroupId=9\nnodeIdOfMembers=7\n",
    )
    .unwrap();
    let servers = Properties::parse_str(
        "servers=1,h:1;2,h:2\ngroup.0.nodeIdOfMembers=1\ngroup.1.nodeIdOfMembers = 1,2\n\
         group.1.nodeIdOfObservers=\ngroup.1.syncForce = TRUE\ngroup.1.watchTimeoutMillis=90000\n\
         group.1.dataDir=/g1\ngroup.1.useSeparateExecutor=true\ngroup.1.loadFactor=0.5\n",
    )
    .unwrap();
    let cfg =
        BootConfig::from_properties(config, servers, "s".into(), no_vars(), DataDirCheck::Skip)
            .unwrap();
    let (g0, g1) = (&cfg.groups[0], &cfg.groups[1]);
    assert_eq!(cfg.server.elect_timeout, 3000);
    assert!(!g0.sync_force);
    assert!(g1.sync_force);
    assert_eq!(g0.max_keep_snapshots, 5);
    assert_eq!(g1.max_keep_snapshots, 5);
    assert_eq!(g0.io_retry_interval, vec![10, 20]);
    assert_eq!(g0.data_dir, "./data/0");
    assert_eq!(g1.data_dir, "/g1/1");
    // DtKV options come only from group.<id>.* keys; loadFactor is never read.
    assert_eq!(g0.kv.watch_timeout_millis, 120_000);
    assert_eq!(g1.kv.watch_timeout_millis, 90_000);
    assert!(g1.kv.use_separate_executor);
    assert_eq!(g1.kv.load_factor, 0.75);
    // The group id and member lists never come from value keys.
    assert_eq!(g0.group_id, 0);
    assert_eq!(g0.node_id_of_members, "1");
    assert_eq!(g1.node_id_of_members, "1,2");
    assert_eq!(g1.node_id_of_observers.as_deref(), Some(""));
    assert_eq!(g0.node_id_of_observers, None);

    // A group added at runtime is built the same way.
    let g7 = cfg
        .create_group_config(7, "2", None, DataDirCheck::Skip)
        .unwrap();
    assert!(!g7.sync_force);
    assert_eq!(g7.max_keep_snapshots, 5);
    assert_eq!(g7.data_dir, "./data/7");
    assert_eq!(cfg.read_kv_config(7).unwrap(), Default::default());
    assert_eq!(cfg.read_kv_config(1).unwrap().watch_timeout_millis, 90_000);
}

#[test]
fn start_checks_name_the_problem() {
    let config = Properties::parse_str("nodeId=2\n").unwrap();
    let servers =
        Properties::parse_str("servers=1,h:1;2,h:2\ngroup.3.nodeIdOfMembers=1,1\n").unwrap();
    let mut cfg =
        BootConfig::from_properties(config, servers, "s".into(), no_vars(), DataDirCheck::Skip)
            .unwrap();
    match cfg.check_start() {
        Err(BootstrapError::Start(StartProblem::DuplicateMember {
            group_id: 3,
            node_id: 1,
        })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn configuration_page_lists_every_key() {
    use dt_server::bootstrap::{GroupConfig, KvConfig, ServerConfig};
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let all = ServerConfig::KEYS
        .iter()
        .chain(GroupConfig::KEYS)
        .chain(KvConfig::KEYS);
    let mut n = 0;
    for k in all {
        let cell = format!("| `{}` | {} |", k.key, k.default);
        assert!(
            page.contains(&cell),
            "docs/configuration.md lacks the row for {}",
            k.key
        );
        n += 1;
    }
    assert_eq!(n, 51);
    for k in [
        "servers",
        "group.<id>.nodeIdOfMembers",
        "group.<id>.nodeIdOfObservers",
    ] {
        assert!(page.contains(&format!("`{k}`")), "{k}");
    }
}

#[test]
fn operations_page_defaults_agree_with_the_keys() {
    use dt_server::bootstrap::{GroupConfig, KvConfig, ServerConfig};
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .unwrap();
    let keys: Vec<_> = ServerConfig::KEYS
        .iter()
        .chain(GroupConfig::KEYS)
        .chain(KvConfig::KEYS)
        .collect();
    let first_token = |s: &str| {
        s.replace('`', "")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches(',')
            .to_string()
    };
    let mut checked = 0;
    for line in page.lines() {
        // Rows of the tuning table: | `key` | default ... | when to change it |
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let key = cells[1].trim_matches('`');
        let Some(doc) = keys.iter().find(|k| k.key == key) else {
            continue;
        };
        assert_eq!(
            first_token(cells[2]),
            first_token(doc.default),
            "docs/operations.md gives {key} a default that differs from the code's"
        );
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} key rows found in docs/operations.md"
    );
}
