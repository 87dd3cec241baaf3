//! The server's configuration files and start-up rules (the reference's dist
//! `Bootstrap`), without the running server.
//!
//! * [`parse_args`] reads `-c <config.properties> -s <servers.properties>`.
//! * [`BootConfig::load`] reads both files and builds the typed configuration:
//!   [`ServerConfig`] from config.properties, `servers` from servers.properties, one
//!   [`GroupConfig`] per `group.<id>.` group with config.properties applied first and
//!   `group.<id>.*` second, and each group's data directory `<dataDir>/<id>`
//!   created and probed. [`BootConfig::check_start`] then makes the checks the Raft
//!   server makes and reads each group's DtKV options ([`KvConfig`], from
//!   `group.<id>.*` only), where the reference reads them.
//!   Every failure is a [`BootstrapError`] whose [`BootstrapError::exit_code`] is the
//!   reference's (101–106, [`ExitCode`]).
//! * [`ClientConfig`] reads client.properties for the client tools.
//! * [`ServersFileSync`] rewrites servers.properties from the live membership,
//!   crash-safely and with backups.
//! * [`embedded_defaults`] is the configuration of `dt-server` run without arguments.
//!
//! ```
//! use dt_server::bootstrap::{BootConfig, DataDirCheck};
//! use dt_server::props::{Properties, VarSource};
//!
//! let config = Properties::parse_str("nodeId = 1\ndataDir = ${DATA_DIR:./data}\n").unwrap();
//! let servers = Properties::parse_str(
//!     "servers = 1,127.0.0.1:9331\ngroup.0.nodeIdOfMembers = 1\ngroup.0.syncForce = false\n",
//! )
//! .unwrap();
//! let vars = VarSource::fixed([("DATA_DIR", "/srv/dt")]);
//! let mut cfg = BootConfig::from_properties(config, servers, "servers.properties".into(), vars,
//!     DataDirCheck::Skip).unwrap();
//! assert_eq!(cfg.server.service_port, 9332);
//! assert_eq!(cfg.groups[0].data_dir, "/srv/dt/0");
//! assert!(!cfg.groups[0].sync_force);
//! cfg.check_start().unwrap();
//! ```

mod client;
mod config;
mod defaults;
mod exit;
mod loader;
mod servers;
mod sync;

pub use client::{ClientConfig, ClientConfigError};
pub use config::{
    default_block_io_threads, GroupConfig, KeyDoc, KvConfig, ServerConfig, DEFAULT_REPLICATE_PORT,
    DEFAULT_SERVICE_PORT,
};
pub use defaults::embedded_defaults;
pub use exit::{BootstrapError, ExitCode, StartProblem};
pub use loader::{
    check_start, ensure_data_dir, parse_args, parse_group_ids, BootConfig, BootstrapArgs,
    DataDirCheck, GROUP_PREFIX,
};
pub use servers::{check_unique, format_servers, parse_member_ids, parse_servers, ServerNode};
pub use sync::{
    backup_stamp, render_servers_file, GroupMembers, ServersFileSync, SyncError, MAX_BACKUPS,
};
