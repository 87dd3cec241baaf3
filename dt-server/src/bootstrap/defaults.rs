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
