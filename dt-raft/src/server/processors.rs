//! The request processors of the Raft server (`raft.md` §2, §3, §14.4–14.6), registered
//! on its one NioServer by command code, and the port rules they enforce.
//!
//! * Group commands (APPEND, VOTE, INSTALL_SNAPSHOT, RAFT_PING, TRANSFER_LEADER,
//!   QUERY_STATUS, ADMIN_TRANSFER_LEADER, PREPARE/COMMIT/ABORT_CHANGE) are decoded on the
//!   IO thread, checked (port, server readiness on the service port, group exists, group
//!   initialised, group not stopping) and handed to the group ([`ServerGroup::deliver`]);
//!   RAFT_PING is answered on the IO thread from the group's membership.
//! * NODE_PING is answered on the IO thread from the node table.
//! * The node and group admin commands (50–55) run on the server's one business thread.
//!
//! A body that cannot be decoded closes its connection (the reference's NIO worker does the
//! same); other connections, and the server, keep serving.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dt_codec::PbError;
use dt_net::{CmdCodes, ReadPacket, ReqContext, ReqProcessor, RunOn, WriteBody, WritePacket};

use super::group::{GroupRef, GroupState, ServerGroup};
use super::group_table::GroupTable;
use super::inbound::{decode_int, GroupRequest};
use super::node::NodeManager;
use crate::rpc::{
    AdminAddGroupReq, AdminAddNodeReq, AdminListGroupsResp, AdminListNodesResp, NodePing,
    RaftCommands, RaftNode, RaftPing, RpcBody,
};

/// Runtime group creation and removal (ADMIN_ADD_GROUP / ADMIN_REMOVE_GROUP); provided by
/// the server once it has a group factory.
pub trait GroupAdmin: Send + Sync + 'static {
    /// Creates, registers and starts a group; returns once it started (not once ready).
    fn add_group(&self, req: &AdminAddGroupReq) -> Result<(), String>;
    /// Starts stopping a group (idempotent: unknown or stopping groups succeed); returns
    /// at once, the group leaves the table when it has stopped.
    fn remove_group(&self, group_id: i32, timeout: Duration) -> Result<(), String>;
}

/// State shared by the server and its processors.
pub(crate) struct Shared {
    pub node_id: i32,
    /// The bound service port (0 = none), known after the NioServer started.
    pub service_port: AtomicU32,
    pub group_ready: AtomicBool,
    pub stopping: AtomicBool,
    pub groups: GroupTable<dyn ServerGroup>,
    pub nodes: NodeManager,
    pub group_admin: std::sync::OnceLock<Arc<dyn GroupAdmin>>,
    /// Run after the node or group set changed (the reference's persist-config task).
    pub persist_config: std::sync::OnceLock<Arc<dyn Fn() + Send + Sync>>,
    /// The membership sets counted in the nodes' use counts, per group.
    pub counted: std::sync::Mutex<std::collections::HashMap<i32, super::group::MemberIds>>,
}

impl Shared {
    /// The state of node `node_id` over `nodes`, before the server starts: no service
    /// port, no group, not ready, not stopping, no hooks.
    pub fn new(node_id: i32, nodes: NodeManager) -> Self {
        Shared {
            node_id,
            service_port: AtomicU32::new(0),
            group_ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            groups: GroupTable::default(),
            nodes,
            group_admin: std::sync::OnceLock::new(),
            counted: Default::default(),
            persist_config: std::sync::OnceLock::new(),
        }
    }

    /// Runs the persist-config hook, if any.
    pub fn run_persist_config(&self) {
        if let Some(h) = self.persist_config.get() {
            h();
        }
    }

    /// Brings the nodes' use counts of a group in line with its current sets (after a
    /// membership change); `None` removes the group's counts. Returns whether the counts follow
    /// `now` afterwards (false: a set names an unknown node, the old counts stay).
    pub fn sync_use_counts(&self, group_id: i32, now: Option<&super::group::MemberIds>) -> bool {
        let mut c = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        let old = c.get(&group_id);
        if old.map(|o| Some(o) == now).unwrap_or(now.is_none()) {
            return true;
        }
        if let Some(n) = now {
            if self.nodes.add_use(&n.sets(), 1).is_err() {
                // A set names a node we do not know: keep the old counts.
                log::warn!("group {group_id}: membership names an unknown node: {n:?}");
                return false;
            }
        }
        if let Some(o) = c.remove(&group_id) {
            let _ = self.nodes.add_use(&o.sets(), -1);
        }
        if let Some(n) = now {
            c.insert(group_id, n.clone());
        }
        true
    }

    fn on_service_port(&self, ctx: &ReqContext) -> bool {
        let sp = self.service_port.load(Ordering::Acquire);
        sp != 0 && u32::from(ctx.local_port()) == sp
    }
}

/// Where a command is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortRule {
    /// Replicate port only.
    Replicate,
    /// Both ports.
    Both,
}

fn wrong_port(cmd: i32, ctx: &ReqContext) -> WritePacket {
    log::info!(
        "command not supported on this port: cmd={cmd}, port={}, remote={:?}",
        ctx.local_port(),
        ctx.remote_addr()
    );
    WritePacket::error(
        CmdCodes::COMMAND_NOT_SUPPORT,
        "command not supported on this port",
    )
}

/// The port rule of a command (`raft.md` §2).
pub(crate) fn port_rule(command: i32) -> PortRule {
    if command == RaftCommands::RAFT_QUERY_STATUS {
        PortRule::Both
    } else {
        PortRule::Replicate
    }
}

/// The group commands' processor (one instance per command code).
pub(crate) struct GroupProcessor {
    pub shared: Arc<Shared>,
}

impl ReqProcessor for GroupProcessor {
    type Body = GroupRequest;

    fn decode(&self, pkt: &ReadPacket) -> Result<GroupRequest, PbError> {
        GroupRequest::decode(pkt.command, &pkt.body)
            .unwrap_or_else(|| Err(PbError::invalid("not a group command")))
    }

    fn process(&self, pkt: ReadPacket, req: GroupRequest, ctx: ReqContext) -> Option<WritePacket> {
        let sh = &self.shared;
        let service = sh.on_service_port(&ctx);
        if service && port_rule(pkt.command) == PortRule::Replicate {
            return Some(wrong_port(pkt.command, &ctx));
        }
        if service {
            if !sh.group_ready.load(Ordering::Acquire) {
                return Some(WritePacket::error(
                    CmdCodes::NOT_INIT,
                    "raft server not ready",
                ));
            }
            if sh.stopping.load(Ordering::Acquire) {
                return Some(WritePacket::error(
                    CmdCodes::STOPPING,
                    "raft server shutdown",
                ));
            }
        }
        let gid = req.group_id();
        let Some(g) = sh.groups.get(gid) else {
            log::warn!("raft group not found: {gid} (command {})", pkt.command);
            return Some(WritePacket::error(
                CmdCodes::RAFT_GROUP_NOT_FOUND,
                format!("raft group not found: {gid}"),
            ));
        };
        match g.state() {
            GroupState::NotInit if pkt.command != RaftCommands::RAFT_QUERY_STATUS => {
                return Some(WritePacket::error(
                    CmdCodes::RAFT_GROUP_NOT_INIT,
                    format!("raft group not initialized: {gid}"),
                ));
            }
            GroupState::Stopping => {
                return Some(WritePacket::error(
                    CmdCodes::RAFT_GROUP_STOPPED,
                    format!("raft group is stopped: {gid}"),
                ));
            }
            _ => {}
        }
        if let GroupRequest::RaftPing(_) = req {
            return Some(raft_ping_answer(sh, &g));
        }
        g.deliver(req, ctx)
    }
}

/// Formats a set of node ids as the reference's server list (`id,host:port;` each).
fn format_ids(nodes: &NodeManager, ids: &[i32]) -> String {
    let mut s = String::new();
    for id in ids {
        if let Some(n) = nodes.node(*id) {
            s.push_str(&format!("{},{}:{};", n.node_id, n.host, n.port));
        }
    }
    s
}

/// The RAFT_PING body this node sends or answers for a group: its id and its four lists.
pub(crate) fn raft_ping_body(sh: &Shared, g: &GroupRef) -> RaftPing {
    let m = g.member_ids();
    RaftPing {
        group_id: g.group_id(),
        node_id: sh.node_id,
        members: format_ids(&sh.nodes, &m.members),
        observers: format_ids(&sh.nodes, &m.observers),
        prepared_members: format_ids(&sh.nodes, &m.prepared_members),
        prepared_observers: format_ids(&sh.nodes, &m.prepared_observers),
    }
}

fn raft_ping_answer(sh: &Shared, g: &GroupRef) -> WritePacket {
    WritePacket::response(WriteBody::Encodable(Box::new(raft_ping_body(sh, g))))
}

/// NODE_PING (40), answered on the IO thread.
pub(crate) struct NodePingProcessor {
    pub shared: Arc<Shared>,
}

impl ReqProcessor for NodePingProcessor {
    type Body = NodePing;

    fn decode(&self, pkt: &ReadPacket) -> Result<NodePing, PbError> {
        NodePing::decode(&pkt.body)
    }

    fn process(&self, pkt: ReadPacket, req: NodePing, ctx: ReqContext) -> Option<WritePacket> {
        if self.shared.on_service_port(&ctx) {
            return Some(wrong_port(pkt.command, &ctx));
        }
        Some(match self.shared.nodes.answer_ping(&req) {
            Ok(resp) => WritePacket::response(WriteBody::Encodable(Box::new(resp))),
            Err(msg) => WritePacket::error(CmdCodes::SYS_ERROR, msg),
        })
    }
}

/// A decoded admin request of commands 50–55.
#[derive(Debug)]
pub(crate) enum AdminReq {
    AddNode(AdminAddNodeReq),
    RemoveNode(i32),
    AddGroup(AdminAddGroupReq),
    RemoveGroup(i32),
    ListNodes,
    ListGroups,
}

/// Commands 50–55, run on the server's business thread.
pub(crate) struct AdminProcessor {
    pub shared: Arc<Shared>,
    pub biz: Arc<dyn dt_net::Executor>,
}

impl ReqProcessor for AdminProcessor {
    type Body = AdminReq;

    fn run_on(&self) -> RunOn {
        RunOn::Executor(self.biz.clone())
    }

    fn decode(&self, pkt: &ReadPacket) -> Result<AdminReq, PbError> {
        Ok(match pkt.command {
            RaftCommands::RAFT_ADMIN_ADD_NODE => {
                AdminReq::AddNode(AdminAddNodeReq::decode(&pkt.body)?)
            }
            RaftCommands::RAFT_ADMIN_REMOVE_NODE => AdminReq::RemoveNode(decode_int(&pkt.body)?),
            RaftCommands::RAFT_ADMIN_ADD_GROUP => {
                AdminReq::AddGroup(AdminAddGroupReq::decode(&pkt.body)?)
            }
            RaftCommands::RAFT_ADMIN_REMOVE_GROUP => AdminReq::RemoveGroup(decode_int(&pkt.body)?),
            RaftCommands::RAFT_ADMIN_LIST_NODES => AdminReq::ListNodes,
            RaftCommands::RAFT_ADMIN_LIST_GROUPS => AdminReq::ListGroups,
            c => return Err(PbError::invalid(format!("bad admin command {c}"))),
        })
    }

    fn process(&self, pkt: ReadPacket, req: AdminReq, ctx: ReqContext) -> Option<WritePacket> {
        let sh = &self.shared;
        if sh.on_service_port(&ctx) {
            return Some(wrong_port(pkt.command, &ctx));
        }
        let result = |r: Result<(), String>| match r {
            Ok(()) => WritePacket::response(WriteBody::Empty),
            Err(msg) => WritePacket::error(CmdCodes::SYS_ERROR, msg),
        };
        Some(match req {
            AdminReq::AddNode(r) => {
                let node = RaftNode {
                    node_id: r.node_id,
                    host: r.host,
                    port: r.port,
                };
                let res = sh.nodes.add_node(node).map_err(|e| e.to_string());
                log::info!("add node {}: {res:?}", r.node_id);
                if res.is_ok() {
                    sh.run_persist_config();
                }
                result(res)
            }
            AdminReq::RemoveNode(id) => {
                let res = sh.nodes.remove_node(id).map_err(|e| e.to_string());
                log::info!("remove node {id}: {res:?}");
                if res.is_ok() {
                    sh.run_persist_config();
                }
                result(res)
            }
            AdminReq::AddGroup(r) => result(match sh.group_admin.get() {
                Some(a) => a.add_group(&r),
                None => Err("add group is not supported by this server".into()),
            }),
            AdminReq::RemoveGroup(id) => {
                let left = ctx.deadline().deadline_nanos() - dt_common::mono_nanos();
                let timeout = Duration::from_nanos(left.max(1_000_000) as u64);
                result(match sh.group_admin.get() {
                    Some(a) => a.remove_group(id, timeout),
                    None => Err("remove group is not supported by this server".into()),
                })
            }
            AdminReq::ListNodes => {
                WritePacket::response(WriteBody::Encodable(Box::new(AdminListNodesResp {
                    nodes: sh.nodes.list_nodes(),
                })))
            }
            AdminReq::ListGroups => {
                WritePacket::response(WriteBody::Encodable(Box::new(AdminListGroupsResp {
                    group_ids: sh.groups.ids(),
                })))
            }
        })
    }
}
