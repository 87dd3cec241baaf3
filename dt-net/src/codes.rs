//! Wire constants: packet types, command codes ([`Commands`]) and response codes
//! ([`CmdCodes`]), numbered as in the reference.

/// Packet type (header field 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// A request: the receiver answers with exactly one response (unless dropped).
    Request,
    /// A response to a request with the same seq and command.
    Response,
    /// A request without response.
    OneWay,
}

impl PacketType {
    /// The wire value (1, 2 or 3).
    pub const fn code(self) -> i32 {
        match self {
            PacketType::Request => 1,
            PacketType::Response => 2,
            PacketType::OneWay => 3,
        }
    }

    /// Maps a wire value; any value other than 2 and 3 is treated as a request, as the
    /// reference does (`None` only for 0, i.e. "absent").
    pub const fn from_code(v: i32) -> Option<PacketType> {
        match v {
            0 => None,
            2 => Some(PacketType::Response),
            3 => Some(PacketType::OneWay),
            _ => Some(PacketType::Request),
        }
    }
}

/// Command codes (header field 2), the reference's `Commands`.
#[derive(Debug)]
pub struct Commands;

impl Commands {
    /// Echo of the request body, handled by servers and clients.
    pub const CMD_PING: i32 = 1;
    /// Connection handshake, the first packet of every connection.
    pub const CMD_HANDSHAKE: i32 = 2;
    /// Reserved, handled nowhere (answered COMMAND_NOT_SUPPORT).
    pub const CMD_HEARTBEAT: i32 = 3;
    /// Raft log replication.
    pub const RAFT_APPEND_ENTRIES: i32 = 4;
    /// DtKV get.
    pub const DTKV_GET: i32 = 5;
    /// DtKV put.
    pub const DTKV_PUT: i32 = 6;
    /// Server-to-server node ping.
    pub const NODE_PING: i32 = 40;
    /// Per-group Raft ping.
    pub const RAFT_PING: i32 = 41;
    /// Vote and pre-vote.
    pub const RAFT_REQUEST_VOTE: i32 = 42;
    /// Snapshot installation.
    pub const RAFT_INSTALL_SNAPSHOT: i32 = 43;
    /// Admin: transfer leadership (to the old leader).
    pub const RAFT_ADMIN_TRANSFER_LEADER: i32 = 44;
    /// Old leader to new leader.
    pub const RAFT_TRANSFER_LEADER: i32 = 45;
    /// Group status query (leader discovery).
    pub const RAFT_QUERY_STATUS: i32 = 46;
}

/// Response codes (header field 4), the reference's `CmdCodes`.
#[derive(Debug)]
pub struct CmdCodes;

impl CmdCodes {
    /// Processed; look at `biz_code` and the body.
    pub const SUCCESS: i32 = 0;
    /// The request was malformed for its processor.
    pub const CLIENT_ERROR: i32 = 1;
    /// A processor failed.
    pub const SYS_ERROR: i32 = 2;
    /// No processor for the command (or not on this port).
    pub const COMMAND_NOT_SUPPORT: i32 = 3;
    /// The server is not ready.
    pub const NOT_INIT: i32 = 4;
    /// The server is stopping.
    pub const STOPPING: i32 = 5;
    /// Overload.
    pub const FLOW_CONTROL: i32 = 6;
    /// Not the Raft leader; `extra` may hold the leader id.
    pub const NOT_RAFT_LEADER: i32 = 7;
    /// Unknown Raft group.
    pub const RAFT_GROUP_NOT_FOUND: i32 = 8;
    /// Raft group stopping or stopped.
    pub const RAFT_GROUP_STOPPED: i32 = 9;
    /// Raft group not initialised yet.
    pub const RAFT_GROUP_NOT_INIT: i32 = 10;

    /// The reference's name of a code, for messages and logs.
    pub fn name(code: i32) -> &'static str {
        match code {
            0 => "SUCCESS",
            1 => "CLIENT_ERROR",
            2 => "SYS_ERROR",
            3 => "COMMAND_NOT_SUPPORT",
            4 => "NOT_INIT",
            5 => "STOPPING",
            6 => "FLOW_CONTROL",
            7 => "NOT_RAFT_LEADER",
            8 => "RAFT_GROUP_NOT_FOUND",
            9 => "RAFT_GROUP_STOPPED",
            10 => "RAFT_GROUP_NOT_INIT",
            _ => "UNKNOWN",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_type_codes() {
        for t in [
            PacketType::Request,
            PacketType::Response,
            PacketType::OneWay,
        ] {
            assert_eq!(PacketType::from_code(t.code()), Some(t));
        }
        assert_eq!(PacketType::from_code(0), None);
        assert_eq!(PacketType::from_code(7), Some(PacketType::Request));
        assert_eq!(CmdCodes::name(3), "COMMAND_NOT_SUPPORT");
    }
}
