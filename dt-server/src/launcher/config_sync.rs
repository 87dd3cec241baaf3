//! Keeping servers.properties in step with the running server (`dtkv-server.md` §13.7):
//! [`ConfigSync`] rewrites the file from the live node table and group memberships on a
//! [`SequenceRunner`] (serialized, coalesced, retried after 1 s, 10 s, 30 s, then every
//! 60 s), triggered by the Raft server's persist-config hook (node added or removed,
//! group added or removed, a COMMIT config entry applied) and by
//! [`SyncConfigProcessor`], the RAFT_ADMIN_SYNC_CONFIG (56) handler on the replicate
//! port.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use dt_codec::PbError;
use dt_net::{CmdCodes, ReadPacket, ReqContext, ReqProcessor, WritePacket};
use dt_raft::server::RaftServer;

use super::sequence_runner::{SequenceRunner, SYNC_RETRY_DELAYS};
use crate::bootstrap::{GroupMembers, ServerNode, ServersFileSync};

/// What the sync is told: the whole file's new content comes from these.
pub fn live_membership(server: &RaftServer) -> (Vec<ServerNode>, BTreeMap<i32, GroupMembers>) {
    let mut nodes: Vec<ServerNode> = server
        .node_manager()
        .list_nodes()
        .into_iter()
        .map(|n| ServerNode {
            node_id: n.node_id,
            host: n.host,
            port: n.port,
        })
        .collect();
    nodes.sort_by_key(|n| n.node_id);
    let groups = server
        .groups()
        .iter()
        .map(|g| {
            let m = g.member_ids();
            (
                g.group_id(),
                GroupMembers {
                    members: m.members.into_iter().collect(),
                    observers: m.observers.into_iter().collect(),
                },
            )
        })
        .collect();
    (nodes, groups)
}

/// The servers.properties sync of one running server.
#[derive(Debug)]
pub struct ConfigSync {
    runner: SequenceRunner,
    file: PathBuf,
}

impl ConfigSync {
    /// Starts the sync thread for `file`, reading the membership of `server`.
    pub fn start(server: Weak<RaftServer>, file: PathBuf) -> std::io::Result<Arc<ConfigSync>> {
        let sync = ServersFileSync::new(file.clone());
        let path = file.clone();
        let task = move || {
            let Some(server) = server.upgrade() else {
                return Err("servers.properties sync: the server has stopped".to_string());
            };
            let (nodes, groups) = live_membership(&server);
            sync.run(&nodes, &groups, SystemTime::now())
                .map_err(|e| e.to_string())?;
            log::info!(
                "servers.properties sync: {} rewritten ({} nodes, groups {:?})",
                path.display(),
                nodes.len(),
                groups.keys().collect::<Vec<_>>()
            );
            Ok(())
        };
        let runner = SequenceRunner::start("dt-config-sync", task, SYNC_RETRY_DELAYS.to_vec())?;
        Ok(Arc::new(ConfigSync { runner, file }))
    }

    /// The file kept in step.
    pub fn file(&self) -> &PathBuf {
        &self.file
    }

    /// Asks for a rewrite (the persist-config hook); returns at once.
    pub fn request(&self) {
        self.runner.submit();
    }

    /// Asks for a rewrite and answers `reply` once one that started after this call
    /// succeeded, or with the reason when none did within `timeout`.
    pub fn request_with_reply(
        &self,
        timeout: Duration,
        reply: impl FnOnce(Result<(), String>) + Send + 'static,
    ) {
        self.runner.submit_with_reply(timeout, Box::new(reply));
    }

    /// The request number the last successful rewrite covered.
    pub fn finished(&self) -> u64 {
        self.runner.finished()
    }

    /// Stops the sync thread.
    pub fn stop(&self) {
        self.runner.stop();
    }
}

/// The RAFT_ADMIN_SYNC_CONFIG (56) processor: replicate port only (COMMAND_NOT_SUPPORT
/// on the service port); the empty request is answered SUCCESS once a rewrite that
/// started after it succeeded, SYS_ERROR with the reason when none did within the
/// request's timeout. A server started without `-s` (embedded defaults) has no file to
/// rewrite and answers SYS_ERROR saying so.
pub struct SyncConfigProcessor {
    server: Weak<RaftServer>,
    sync: Option<Arc<ConfigSync>>,
}

/// The SYS_ERROR text of a sync-config request to a server without servers.properties.
pub const NO_SERVERS_FILE: &str = "this server was started without -s servers.properties \
     (embedded defaults): there is no file to sync";

impl SyncConfigProcessor {
    /// A processor for `server`, rewriting through `sync` (`None`: no file).
    pub fn new(server: Weak<RaftServer>, sync: Option<Arc<ConfigSync>>) -> Self {
        SyncConfigProcessor { server, sync }
    }
}

impl ReqProcessor for SyncConfigProcessor {
    type Body = ();

    fn decode(&self, _pkt: &ReadPacket) -> Result<(), PbError> {
        Ok(())
    }

    fn process(&self, _pkt: ReadPacket, _body: (), ctx: ReqContext) -> Option<WritePacket> {
        let Some(server) = self.server.upgrade() else {
            return Some(WritePacket::error(CmdCodes::STOPPING, "server stopped"));
        };
        let sp = server.service_port();
        if sp != 0 && ctx.local_port() == sp {
            return Some(WritePacket::error(
                CmdCodes::COMMAND_NOT_SUPPORT,
                "command not supported on this port",
            ));
        }
        let Some(sync) = &self.sync else {
            return Some(WritePacket::error(CmdCodes::SYS_ERROR, NO_SERVERS_FILE));
        };
        let left = ctx.deadline().deadline_nanos() - dt_common::mono_nanos();
        let timeout = Duration::from_nanos(left.max(1_000_000) as u64);
        let resp = ctx.responder();
        sync.request_with_reply(timeout, move |r| {
            resp.respond(match r {
                Ok(()) => WritePacket::response(dt_net::WriteBody::Empty),
                Err(e) => WritePacket::error(CmdCodes::SYS_ERROR, e),
            })
        });
        None
    }
}
