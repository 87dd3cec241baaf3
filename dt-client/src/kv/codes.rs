//! The DtKV command codes (packet header field 2) and business codes (`biz_code`,
//! `wire-protocol.md` §4.1, §6.2; `dtkv-server.md` §1.1, §1.4).

use dt_net::Commands;

/// The DtKV command codes, the reference's `Commands.DTKV_*` (those dt-net already names
/// are taken from its [`Commands`], one source per code).
#[derive(Debug)]
pub struct KvCommands;

impl KvCommands {
    /// Get one key (lease read): [`KvReq`](super::KvReq) / [`KvResp`](super::KvResp).
    pub const DTKV_GET: i32 = Commands::DTKV_GET;
    /// Put one value (Raft write).
    pub const DTKV_PUT: i32 = Commands::DTKV_PUT;
    /// Remove a value or an empty directory.
    pub const DTKV_REMOVE: i32 = 70;
    /// Create a directory.
    pub const DTKV_MKDIR: i32 = 71;
    /// List a directory's children (lease read).
    pub const DTKV_LIST: i32 = 72;
    /// Get several keys (lease read).
    pub const DTKV_BATCH_GET: i32 = 73;
    /// Put several values in one log entry.
    pub const DTKV_BATCH_PUT: i32 = 74;
    /// Remove several keys in one log entry.
    pub const DTKV_BATCH_REMOVE: i32 = 75;
    /// Compare and set.
    pub const DTKV_CAS: i32 = 76;
    /// Register, refresh or remove watches: [`WatchReq`](super::WatchReq), empty response.
    pub const DTKV_SYNC_WATCH: i32 = 77;
    /// Server → client watch notifications: [`WatchNotifyReq`](super::WatchNotifyReq) /
    /// [`WatchNotifyResp`](super::WatchNotifyResp).
    pub const DTKV_WATCH_NOTIFY_PUSH: i32 = 78;
    /// Status and watch heartbeat: group id as [`PbInt`](dt_codec::PbInt) /
    /// [`KvStatusResp`](super::KvStatusResp).
    pub const DTKV_QUERY_STATUS: i32 = 79;
    /// Put a temporary value with a TTL.
    pub const DTKV_PUT_TEMP_NODE: i32 = 80;
    /// Create a temporary directory with a TTL.
    pub const DTKV_MAKE_TEMP_DIR: i32 = 81;
    /// Restart the TTL of one's own temporary node.
    pub const DTKV_UPDATE_TTL: i32 = 82;
    /// Acquire (or queue for) a distributed lock.
    pub const DTKV_TRY_LOCK: i32 = 83;
    /// Release a lock (or leave its queue).
    pub const DTKV_UNLOCK: i32 = 84;
    /// Server → client one-way: the lock was handed over to this client
    /// ([`KvReq`](super::KvReq) body).
    pub const DTKV_LOCK_PUSH: i32 = 85;
    /// Restart the lease of a held lock.
    pub const DTKV_UPDATE_LOCK_LEASE: i32 = 86;

    /// The reference's name of a DtKV command code, `None` for other codes.
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            5 => "DTKV_GET",
            6 => "DTKV_PUT",
            70 => "DTKV_REMOVE",
            71 => "DTKV_MKDIR",
            72 => "DTKV_LIST",
            73 => "DTKV_BATCH_GET",
            74 => "DTKV_BATCH_PUT",
            75 => "DTKV_BATCH_REMOVE",
            76 => "DTKV_CAS",
            77 => "DTKV_SYNC_WATCH",
            78 => "DTKV_WATCH_NOTIFY_PUSH",
            79 => "DTKV_QUERY_STATUS",
            80 => "DTKV_PUT_TEMP_NODE",
            81 => "DTKV_MAKE_TEMP_DIR",
            82 => "DTKV_UPDATE_TTL",
            83 => "DTKV_TRY_LOCK",
            84 => "DTKV_UNLOCK",
            85 => "DTKV_LOCK_PUSH",
            86 => "DTKV_UPDATE_LOCK_LEASE",
            _ => return None,
        })
    }

    /// Whether `code` is a DtKV command a client sends on the service port (5, 6, 70–77,
    /// 79–84, 86: not the server-initiated 78 and 85).
    pub fn is_client_command(code: i32) -> bool {
        matches!(code, 5 | 6 | 70..=77 | 79..=84 | 86)
    }
}

macro_rules! kv_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal; )*) => {
        /// A DtKV business code (`KvCodes` of the reference): the `biz_code` of a DtKV
        /// response packet and of each [`KvResult`](super::KvResult).
        ///
        /// A code this version does not know decodes to [`KvCode::Unknown`] and encodes
        /// back to the same number, so nothing is lost in transit.
        ///
        /// ```
        /// use dt_client::kv::KvCode;
        /// assert_eq!(KvCode::from_code(14), KvCode::CasMismatch);
        /// assert_eq!(KvCode::CasMismatch.code(), 14);
        /// assert_eq!(KvCode::CasMismatch.name(), "CAS_MISMATCH");
        /// assert_eq!(KvCode::from_code(99), KvCode::Unknown(99));
        /// assert_eq!(KvCode::Unknown(99).code(), 99);
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum KvCode {
            $( $(#[$doc])* $variant, )*
            /// A code outside the reference's table, kept as received.
            Unknown(i32),
        }

        impl KvCode {
            /// The wire value.
            pub const fn code(self) -> i32 {
                match self {
                    $( KvCode::$variant => $code, )*
                    KvCode::Unknown(c) => c,
                }
            }

            /// The code for a wire value ([`KvCode::Unknown`] when not in the table).
            pub const fn from_code(code: i32) -> KvCode {
                match code {
                    $( $code => KvCode::$variant, )*
                    c => KvCode::Unknown(c),
                }
            }

            /// The reference's name (`"UNKNOWN"` for unknown codes).
            pub const fn name(self) -> &'static str {
                match self {
                    $( KvCode::$variant => $name, )*
                    KvCode::Unknown(_) => "UNKNOWN",
                }
            }
        }
    };
}

kv_codes! {
    /// 0: success.
    #[default]
    Success = 0, "SUCCESS";
    /// 1: generic error (defined, not produced by the 0.8 server).
    Error = 1, "ERROR";
    /// 2: the key does not exist.
    NotFound = 2, "NOT_FOUND";
    /// 3: a put replaced an existing value (a success).
    SuccessOverwrite = 3, "SUCCESS_OVERWRITE";
    /// 4: the directory already exists (a success for mkdir), or a put hit a directory.
    DirExists = 4, "DIR_EXISTS";
    /// 5: mkdir on a key that holds a value.
    ValueExists = 5, "VALUE_EXISTS";
    /// 6: the parent is a value node; list of a value node.
    ParentNotDir = 6, "PARENT_NOT_DIR";
    /// 7: empty (where not allowed) or malformed key; batch without keys.
    InvalidKey = 7, "INVALID_KEY";
    /// 8: empty value; CAS with both values empty; batch value count mismatch.
    InvalidValue = 8, "INVALID_VALUE";
    /// 9: the parent directory does not exist (no implicit `mkdir -p`).
    ParentDirNotExists = 9, "PARENT_DIR_NOT_EXISTS";
    /// 10: remove of a non-empty directory.
    HasChildren = 10, "HAS_CHILDREN";
    /// 11: key longer than 8 192 bytes.
    KeyTooLong = 11, "KEY_TOO_LONG";
    /// 12: value longer than 1 MiB.
    ValueTooLong = 12, "VALUE_TOO_LONG";
    /// 13: the node is installing a snapshot.
    InstallSnapshot = 13, "INSTALL_SNAPSHOT";
    /// 14: the compare-and-set condition was false.
    CasMismatch = 14, "CAS_MISMATCH";
    /// 15: malformed watch request.
    ClientReqError = 15, "CLIENT_REQ_ERROR";
    /// 16: (watch push result) the client no longer watches this key.
    RemoveWatch = 16, "REMOVE_WATCH";
    /// 17: (watch push response) the client has no watches for this group.
    RemoveAllWatch = 17, "REMOVE_ALL_WATCH";
    /// 18: temporary node owned by another client.
    NotOwner = 18, "NOT_OWNER";
    /// 19: temp command on a non-temporary node.
    NotTempNode = 19, "NOT_TEMP_NODE";
    /// 20: plain write on a temporary node.
    IsTempNode = 20, "IS_TEMP_NODE";
    /// 21: TTL / lease argument out of range.
    InvalidTtl = 21, "INVALID_TTL";
    /// 22: expiry of a node whose TTL was restarted (internal).
    TtlIndexMismatch = 22, "TTL_INDEX_MISMATCH";
    /// 23: temp node, temp dir or lock below a temporary directory.
    UnderTempDir = 23, "UNDER_TEMP_DIR";
    /// 24: child of a lock directory.
    ParentIsLock = 24, "PARENT_IS_LOCK";
    /// 25: lock command on a key that is not a lock directory.
    NotLockNode = 25, "NOT_LOCK_NODE";
    /// 26: plain write or remove on a lock node.
    IsLockNode = 26, "IS_LOCK_NODE";
    /// 27: try-lock by the holder (lease renewed).
    LockBySelf = 27, "LOCK_BY_SELF";
    /// 28: the lock is held by another client.
    LockByOther = 28, "LOCK_BY_OTHER";
}

impl From<i32> for KvCode {
    fn from(code: i32) -> Self {
        KvCode::from_code(code)
    }
}

impl From<KvCode> for i32 {
    fn from(code: KvCode) -> Self {
        code.code()
    }
}

impl std::fmt::Display for KvCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvCode::Unknown(c) => write!(f, "UNKNOWN({c})"),
            k => write!(f, "{}({})", k.name(), k.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_named() {
        for c in 0..=28 {
            let k = KvCode::from_code(c);
            assert!(!matches!(k, KvCode::Unknown(_)), "{c}");
            assert_eq!(k.code(), c);
            assert_ne!(k.name(), "UNKNOWN");
        }
        for c in [-1, 29, i32::MAX, i32::MIN] {
            assert_eq!(KvCode::from_code(c), KvCode::Unknown(c));
            assert_eq!(KvCode::from_code(c).code(), c);
        }
        assert_eq!(KvCode::LockByOther.to_string(), "LOCK_BY_OTHER(28)");
    }

    #[test]
    fn command_codes() {
        assert_eq!(KvCommands::DTKV_GET, 5);
        assert_eq!(KvCommands::DTKV_PUT, 6);
        for c in [5, 6].into_iter().chain(70..=86) {
            assert!(KvCommands::name(c).is_some(), "{c}");
        }
        assert!(KvCommands::name(46).is_none());
        assert!(!KvCommands::is_client_command(78));
        assert!(!KvCommands::is_client_command(85));
        assert!(KvCommands::is_client_command(86));
    }
}
