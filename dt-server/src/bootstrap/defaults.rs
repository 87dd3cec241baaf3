//! The embedded defaults: what `dt-server` runs with when given no arguments.
//!
//! One node (id 1) serving group 0 alone, replicate port 9331 and service port 9332 on
//! 127.0.0.1, data under `./data` (group 0 in `./data/0`), every other key at its
//! default. The same values as the shipped `conf/config.properties` +
//! `conf/servers.properties` with `DATA_DIR` unset.

use super::config::{GroupConfig, ServerConfig, DEFAULT_REPLICATE_PORT, DEFAULT_SERVICE_PORT};

/// The embedded single-node configuration (no file is read or written; the data
/// directory is not created).
pub fn embedded_defaults() -> (ServerConfig, Vec<GroupConfig>) {
    let server = ServerConfig {
        servers: format!("1,127.0.0.1:{DEFAULT_REPLICATE_PORT}"),
        replicate_port: DEFAULT_REPLICATE_PORT,
        service_port: DEFAULT_SERVICE_PORT,
        node_id: 1,
        ..ServerConfig::default()
    };
    let mut group = GroupConfig::new(0, "1", Some(""));
    group.data_dir = "./data/0".to_string();
    (server, vec![group])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::check_start;

    #[test]
    fn embedded_defaults_are_one_node_on_loopback() {
        let (server, groups) = embedded_defaults();
        assert_eq!(server.node_id, 1);
        assert_eq!(server.replicate_port, 9331);
        assert_eq!(server.service_port, 9332);
        assert_eq!(server.elect_timeout, 15_000);
        assert!(server.check_self);
        assert!(server.block_io_threads >= 4);
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.group_id, 0);
        assert_eq!(g.node_id_of_members, "1");
        assert_eq!(g.data_dir, "./data/0");
        assert!(g.sync_force);
        assert_eq!(g.max_keep_snapshots, 2);
        let nodes = check_start(&server, &groups).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].host, "127.0.0.1");
        assert_eq!(nodes[0].port, 9331);
    }
}
