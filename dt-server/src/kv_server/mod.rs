//! DtKV on consensus: the [`StateMachine`](dt_raft::sm::StateMachine) binding of
//! [`DtKv`](crate::dtkv::DtKv), the request processors of the service port and the
//! [`DtKvServer`] that assembles a RaftServer with DtKV groups from a configuration.
//!
//! | file | holds |
//! |---|---|
//! | [`state_machine`] | [`DtKvStateMachine`], [`KvGroup`], [`KvOutput`], [`DtKvFactory`] |
//! | [`processor`] | [`KvProcessor`]: gate, plan, lease reads, writes, watches, status |
//! | [`server`] | [`DtKvServer`], [`DtKvServerConfig`], the daemon (TTL expiry, watch dispatch) |
//! | [`stats_log`] | [`StatsLog`]: the server's own perf figures, logged periodically (`perfStatsInterval`) |

pub mod processor;
pub mod server;
pub mod state_machine;
pub mod stats_log;

pub use processor::{kv_packet, query_status_resp, ChannelTable, KvContext, KvProcessor};
pub use server::{
    ttl_round, DtKvServer, DtKvServerConfig, KvGroupConfig, NewGroupConfig, CLIENT_COMMANDS,
};
pub use state_machine::{
    kv_clock, lock_push_req, watch_config_of, ChannelId, DtKvFactory, DtKvStateMachine, KvGroup,
    KvOutput,
};
pub use stats_log::{stats_line, StatsLog, SERVER_STATS, STATS_TARGET};
