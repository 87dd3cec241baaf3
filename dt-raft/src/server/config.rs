//! [`RaftServerConfig`] (`raft.md` §15.1) and the server list it carries
//! (`id,host:port;id,host:port`), with the construction checks of §14.1.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::rpc::RaftNode;
use dt_common::PerfHook;

/// Settings of a [`RaftServer`](super::RaftServer); defaults are the reference's.
///
/// ```
/// use dt_raft::server::RaftServerConfig;
///
/// let cfg = RaftServerConfig {
///     servers: "1,127.0.0.1:4001;2,127.0.0.1:4002;3,127.0.0.1:4003".into(),
///     node_id: 2,
///     replicate_port: 4002,
///     ..Default::default()
/// };
/// let nodes = cfg.validate().unwrap();
/// assert_eq!(nodes.len(), 3);
/// assert_eq!(nodes[1].port, 4002);
/// ```
#[derive(Debug, Clone)]
pub struct RaftServerConfig {
    /// `id,host:port;…`: the replicate addresses of all nodes (required).
    pub servers: String,
    /// The replicate port: server-to-server traffic and admin commands (required, > 0).
    pub replicate_port: u16,
    /// The client port (0 = none).
    pub service_port: u16,
    /// This node's id (required, > 0, present in `servers`).
    pub node_id: i32,
    /// Election timeout, also the base of the lease (15 s).
    pub elect_timeout: Duration,
    /// Timeout of replication, vote and ping RPCs (5 s).
    pub rpc_timeout: Duration,
    /// Connect timeout, used in the self-check wait (2 s).
    pub connect_timeout: Duration,
    /// Idle leader's heartbeat-entry period (2 s).
    pub heartbeat_interval: Duration,
    /// Node ping period (2 s).
    pub ping_interval: Duration,
    /// Ping our own configured address at start (must answer with our own UUID).
    pub check_self: bool,
    /// Threads of the shared blocking-IO pool (max(2 × CPUs, 4)).
    pub block_io_threads: usize,
    /// Group commit of fsyncs across the groups' logs (default true; not a reference
    /// setting): appends of many groups that wait for an fsync at the same time share
    /// one `syncfs` of their file system (Linux 5.8 or later; elsewhere each file is
    /// still `fdatasync`ed), instead of one `fdatasync` per group. Durability is the
    /// same; with many busy groups it saves most of the fsyncs' CPU. Turn it off when
    /// the data directories share a file system with other heavy writers, whose dirty
    /// data a `syncfs` would also have to write.
    pub batch_fsync: bool,
    /// Address both ports are bound on (all interfaces by default, as the reference does).
    /// Not a reference setting.
    pub bind_host: IpAddr,
    /// Period of the raft-ping pass over all groups' members (§3.2; the reference's
    /// fixed 1 s). Not a reference setting.
    pub raft_ping_interval: Duration,
    /// IO threads of the NIO server (not a reference setting; the reference uses its
    /// NioServer default). Default: 1 per 2 cores, at least 1, at most 4.
    pub io_threads: usize,
    /// Cap on the unanswered requests of one client connection on the service port (0 =
    /// none, as in the reference); past it a request is answered FLOW_CONTROL ("max
    /// incoming requests per connection: N") until answers leave (see
    /// `dt_net::NioServerConfig::max_conn_in_requests`). Not a reference setting.
    /// Default [`DEFAULT_MAX_CONN_IN_REQUESTS`]. The replicate port has no cap: one
    /// connection there carries every group's replication between two nodes, bounded
    /// by the groups' own limits.
    pub max_conn_in_requests: u32,
    /// Where the server's network IO threads report their loop (`RpcWorkerSel`: time
    /// in `poll`, `RpcWorkerWork`: the work between polls) and traffic (the reference
    /// gives its NIO server a `DefaultRpcPerf`, which logs the IO threads' usage).
    /// No-op by default. The groups report through their own `RaftGroupConfig::perf`,
    /// which their dispatchers use too.
    pub perf: PerfHook,
}

/// The default [`RaftServerConfig::max_conn_in_requests`]: five times the reference
/// client's 2 000 outstanding requests (so standard clients never meet it), and a fifth
/// of a group's default `maxPendingTasks` (so one connection cannot fill a group's write
/// queue alone).
pub const DEFAULT_MAX_CONN_IN_REQUESTS: u32 = 10_000;

impl Default for RaftServerConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        RaftServerConfig {
            servers: String::new(),
            replicate_port: 0,
            service_port: 0,
            node_id: 0,
            elect_timeout: Duration::from_millis(15_000),
            rpc_timeout: Duration::from_millis(5_000),
            connect_timeout: Duration::from_millis(2_000),
            heartbeat_interval: Duration::from_millis(2_000),
            ping_interval: Duration::from_millis(2_000),
            check_self: true,
            block_io_threads: (cpus * 2).max(4),
            batch_fsync: true,
            bind_host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            io_threads: (cpus / 2).clamp(1, 4),
            raft_ping_interval: Duration::from_millis(1_000),
            max_conn_in_requests: DEFAULT_MAX_CONN_IN_REQUESTS,
            perf: PerfHook::default(),
        }
    }
}

/// A [`RaftServerConfig`] (or a group's membership) that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerConfigError {
    /// `servers` is empty or an entry is not `id,host:port`.
    BadServers {
        /// The offending entry (or the whole string).
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two entries of `servers` have the same id.
    DuplicateNodeId(i32),
    /// Two entries of `servers` have the same `host:port`.
    DuplicateAddress(String),
    /// `node_id` is not positive.
    BadNodeId(i32),
    /// `node_id` is not in `servers`.
    SelfNotInServers(i32),
    /// `replicate_port` is 0.
    NoReplicatePort,
    /// The service port equals the replicate port.
    SamePorts(u16),
    /// A duration that must be positive is zero.
    ZeroDuration(&'static str),
    /// `heartbeat_interval` is not below `elect_timeout` (a leader would lose its
    /// followers between heartbeats).
    HeartbeatNotBelowElectTimeout,
    /// `block_io_threads` or `io_threads` is 0.
    ZeroThreads(&'static str),
    /// Two groups have the same id.
    DuplicateGroupId(i32),
    /// A group's member or observer list cannot be parsed or names an unknown node.
    BadGroupMembers {
        /// The group.
        group_id: i32,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for ServerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerConfigError::BadServers { entry, reason } => {
                write!(f, "bad servers list entry '{entry}': {reason}")
            }
            ServerConfigError::DuplicateNodeId(id) => write!(f, "duplicate server id: {id}"),
            ServerConfigError::DuplicateAddress(a) => write!(f, "duplicate server host: {a}"),
            ServerConfigError::BadNodeId(id) => write!(f, "node id must be positive, got {id}"),
            ServerConfigError::SelfNotInServers(id) => {
                write!(f, "self id not found in servers list: {id}")
            }
            ServerConfigError::NoReplicatePort => write!(f, "replicate port must be positive"),
            ServerConfigError::SamePorts(p) => {
                write!(f, "service port {p} is the replicate port")
            }
            ServerConfigError::ZeroDuration(k) => write!(f, "{k} must be positive"),
            ServerConfigError::HeartbeatNotBelowElectTimeout => {
                write!(f, "heartbeat_interval must be below elect_timeout")
            }
            ServerConfigError::ZeroThreads(k) => write!(f, "{k} must be at least 1"),
            ServerConfigError::DuplicateGroupId(g) => write!(f, "duplicate group id: {g}"),
            ServerConfigError::BadGroupMembers { group_id, reason } => {
                write!(f, "group {group_id}: {reason}")
            }
        }
    }
}

impl std::error::Error for ServerConfigError {}

impl RaftServerConfig {
    /// Runs the construction checks of `raft.md` §14.1 and returns the parsed server
    /// list (in the order given).
    pub fn validate(&self) -> Result<Vec<RaftNode>, ServerConfigError> {
        if self.node_id <= 0 {
            return Err(ServerConfigError::BadNodeId(self.node_id));
        }
        if self.replicate_port == 0 {
            return Err(ServerConfigError::NoReplicatePort);
        }
        if self.service_port == self.replicate_port {
            return Err(ServerConfigError::SamePorts(self.service_port));
        }
        for (k, d) in [
            ("elect_timeout", self.elect_timeout),
            ("rpc_timeout", self.rpc_timeout),
            ("connect_timeout", self.connect_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
            ("ping_interval", self.ping_interval),
            ("raft_ping_interval", self.raft_ping_interval),
        ] {
            if d.is_zero() {
                return Err(ServerConfigError::ZeroDuration(k));
            }
        }
        if self.heartbeat_interval >= self.elect_timeout {
            return Err(ServerConfigError::HeartbeatNotBelowElectTimeout);
        }
        if self.block_io_threads == 0 {
            return Err(ServerConfigError::ZeroThreads("block_io_threads"));
        }
        if self.io_threads == 0 {
            return Err(ServerConfigError::ZeroThreads("io_threads"));
        }
        let nodes = parse_servers(&self.servers)?;
        let mut ids = HashSet::new();
        let mut addrs = HashSet::new();
        for n in &nodes {
            if !ids.insert(n.node_id) {
                return Err(ServerConfigError::DuplicateNodeId(n.node_id));
            }
            if !addrs.insert((n.host.clone(), n.port)) {
                return Err(ServerConfigError::DuplicateAddress(format!(
                    "{}:{}",
                    n.host, n.port
                )));
            }
        }
        if !ids.contains(&self.node_id) {
            return Err(ServerConfigError::SelfNotInServers(self.node_id));
        }
        Ok(nodes)
    }
}

/// Parses a server list `id,host:port;id,host:port` (blank entries skipped, spaces around
/// the id and host allowed), as the reference's `RaftNode.parseServers`. Ids must be
/// positive and ports 1–65535.
pub fn parse_servers(s: &str) -> Result<Vec<RaftNode>, ServerConfigError> {
    let bad = |entry: &str, reason: &str| ServerConfigError::BadServers {
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    for entry in s.split(';') {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((id, hp)) = entry.split_once(',') else {
            return Err(bad(entry, "not 'id,host:port' format"));
        };
        if hp.contains(',') {
            return Err(bad(entry, "not 'id,host:port' format"));
        }
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| bad(entry, "the id is not a number"))?;
        if id <= 0 {
            return Err(bad(entry, "the id must be positive"));
        }
        let (host, port) = parse_host_port(hp).map_err(|r| bad(entry, &r))?;
        out.push(RaftNode {
            node_id: id,
            host,
            port: port as i32,
        });
    }
    if out.is_empty() {
        return Err(bad(s, "servers list is empty"));
    }
    Ok(out)
}

/// Splits `host:port` (the host may be a bracketed IPv6 address).
pub(crate) fn parse_host_port(hp: &str) -> Result<(String, u16), String> {
    let hp = hp.trim();
    let Some((host, port)) = hp.rsplit_once(':') else {
        return Err("not 'host:port' format".into());
    };
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| format!("bad port '{port}'"))?;
    if port == 0 {
        return Err("port 0".into());
    }
    Ok((host.to_string(), port))
}

/// Resolves a node's `host:port` to a socket address (the first one the resolver gives).
pub(crate) fn resolve(host: &str, port: i32) -> Result<SocketAddr, String> {
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("bad port {port}"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

/// Parses a comma-separated id list (`"1,2,3"`; blank = empty) of a group's members or
/// observers: ids must be numbers, unique, and known in `all_ids`.
pub fn parse_member_ids(
    group_id: i32,
    s: &str,
    all_ids: &HashSet<i32>,
) -> Result<Vec<i32>, ServerConfigError> {
    let bad = |reason: String| ServerConfigError::BadGroupMembers { group_id, reason };
    let mut out: Vec<i32> = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for part in s.split(',') {
        let id: i32 = part
            .trim()
            .parse()
            .map_err(|_| bad(format!("bad member id '{part}'")))?;
        if !all_ids.contains(&id) {
            return Err(bad(format!("member id {id} not in server list")));
        }
        if out.contains(&id) {
            return Err(bad(format!("duplicated raft member id {id}")));
        }
        out.push(id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(servers: &str, id: i32, port: u16) -> RaftServerConfig {
        RaftServerConfig {
            servers: servers.into(),
            node_id: id,
            replicate_port: port,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_the_reference_ones() {
        let c = RaftServerConfig::default();
        assert_eq!(c.elect_timeout, Duration::from_secs(15));
        assert_eq!(c.rpc_timeout, Duration::from_secs(5));
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(c.ping_interval, Duration::from_secs(2));
        assert!(c.check_self);
        assert!(c.block_io_threads >= 4);
        assert_eq!(c.service_port, 0);
    }

    #[test]
    fn parses_servers_with_blanks_and_spaces() {
        let v = parse_servers(" 1, 127.0.0.1:4001; ;2,localhost:4002;").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].node_id, v[0].host.as_str(), v[0].port),
            (1, "127.0.0.1", 4001)
        );
        assert_eq!(
            (v[1].node_id, v[1].host.as_str(), v[1].port),
            (2, "localhost", 4002)
        );
        let v6 = parse_servers("3,[::1]:5000").unwrap();
        assert_eq!(v6[0].host, "::1");
    }

    #[test]
    fn bad_server_lists_are_typed_errors() {
        for s in [
            "",
            ";;",
            "1",
            "x,127.0.0.1:1",
            "1,127.0.0.1",
            "1,127.0.0.1:0",
            "1,127.0.0.1:70000",
            "1,2,h:1",
            "-1,h:1",
            "1,:5",
        ] {
            assert!(
                matches!(parse_servers(s), Err(ServerConfigError::BadServers { .. })),
                "{s:?}"
            );
        }
    }

    #[test]
    fn construction_checks() {
        let s = "1,127.0.0.1:4001;2,127.0.0.1:4002";
        assert!(cfg(s, 1, 4001).validate().is_ok());
        assert_eq!(
            cfg(s, 0, 4001).validate(),
            Err(ServerConfigError::BadNodeId(0))
        );
        assert_eq!(
            cfg(s, 1, 0).validate(),
            Err(ServerConfigError::NoReplicatePort)
        );
        assert_eq!(
            cfg(s, 3, 4001).validate(),
            Err(ServerConfigError::SelfNotInServers(3))
        );
        assert_eq!(
            cfg("1,h:1;1,h:2", 1, 1).validate(),
            Err(ServerConfigError::DuplicateNodeId(1))
        );
        assert_eq!(
            cfg("1,h:1;2,h:1", 1, 1).validate(),
            Err(ServerConfigError::DuplicateAddress("h:1".into()))
        );
        let mut c = cfg(s, 1, 4001);
        c.rpc_timeout = Duration::ZERO;
        assert_eq!(
            c.validate(),
            Err(ServerConfigError::ZeroDuration("rpc_timeout"))
        );
        let mut c = cfg(s, 1, 4001);
        c.elect_timeout = c.heartbeat_interval;
        assert_eq!(
            c.validate(),
            Err(ServerConfigError::HeartbeatNotBelowElectTimeout)
        );
        let mut c = cfg(s, 1, 4001);
        c.service_port = 4001;
        assert_eq!(c.validate(), Err(ServerConfigError::SamePorts(4001)));
        let mut c = cfg(s, 1, 4001);
        c.block_io_threads = 0;
        assert!(matches!(
            c.validate(),
            Err(ServerConfigError::ZeroThreads(_))
        ));
    }

    #[test]
    fn member_ids() {
        let all: HashSet<i32> = [1, 2, 3].into();
        assert_eq!(parse_member_ids(1, "1, 2,3", &all).unwrap(), [1, 2, 3]);
        assert!(parse_member_ids(1, " ", &all).unwrap().is_empty());
        assert!(parse_member_ids(1, "1,4", &all).is_err());
        assert!(parse_member_ids(1, "1,1", &all).is_err());
        assert!(parse_member_ids(1, "1,a", &all).is_err());
    }

    #[test]
    fn resolves_addresses() {
        assert_eq!(
            resolve("127.0.0.1", 80).unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert!(resolve("127.0.0.1", 0).is_err());
        assert!(resolve("127.0.0.1", 70000).is_err());
    }
}
