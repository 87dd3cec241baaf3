//! The business types of DtKV log entries (`dtkv-server.md` §1.1): which operation a
//! committed `KvReq` performs.

use dt_client::kv::KvCommands;

/// The operation of a DtKV log entry (the entry's `bizType`). Reads (get, list, batch
/// get) and watches never enter the log (their reserved numbers 1, 4, 5, 9, 10 are not
/// used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BizType {
    /// 0, DTKV_PUT.
    Put,
    /// 2, DTKV_REMOVE.
    Remove,
    /// 3, DTKV_MKDIR.
    Mkdir,
    /// 6, DTKV_BATCH_PUT.
    BatchPut,
    /// 7, DTKV_BATCH_REMOVE.
    BatchRemove,
    /// 8, DTKV_CAS.
    Cas,
    /// 11, DTKV_PUT_TEMP_NODE.
    PutTempNode,
    /// 12, DTKV_MAKE_TEMP_DIR.
    MkTempDir,
    /// 13, expiry of a TTL (leader-initiated, no client command).
    Expire,
    /// 14, DTKV_UPDATE_TTL.
    UpdateTtl,
    /// 15, DTKV_TRY_LOCK.
    TryLock,
    /// 16, DTKV_UNLOCK.
    Unlock,
    /// 17, DTKV_UPDATE_LOCK_LEASE.
    UpdateLockLease,
}

impl BizType {
    /// The `bizType` value stored in the log.
    pub const fn code(self) -> u8 {
        match self {
            BizType::Put => 0,
            BizType::Remove => 2,
            BizType::Mkdir => 3,
            BizType::BatchPut => 6,
            BizType::BatchRemove => 7,
            BizType::Cas => 8,
            BizType::PutTempNode => 11,
            BizType::MkTempDir => 12,
            BizType::Expire => 13,
            BizType::UpdateTtl => 14,
            BizType::TryLock => 15,
            BizType::Unlock => 16,
            BizType::UpdateLockLease => 17,
        }
    }

    /// The business type of a stored `bizType`, `None` for the reserved and unknown
    /// values.
    pub const fn from_code(code: u8) -> Option<BizType> {
        Some(match code {
            0 => BizType::Put,
            2 => BizType::Remove,
            3 => BizType::Mkdir,
            6 => BizType::BatchPut,
            7 => BizType::BatchRemove,
            8 => BizType::Cas,
            11 => BizType::PutTempNode,
            12 => BizType::MkTempDir,
            13 => BizType::Expire,
            14 => BizType::UpdateTtl,
            15 => BizType::TryLock,
            16 => BizType::Unlock,
            17 => BizType::UpdateLockLease,
            _ => return None,
        })
    }

    /// The business type a write command goes into the log with; `None` for reads,
    /// watches and server-initiated commands.
    pub const fn of_command(command: i32) -> Option<BizType> {
        Some(match command {
            KvCommands::DTKV_PUT => BizType::Put,
            KvCommands::DTKV_REMOVE => BizType::Remove,
            KvCommands::DTKV_MKDIR => BizType::Mkdir,
            KvCommands::DTKV_BATCH_PUT => BizType::BatchPut,
            KvCommands::DTKV_BATCH_REMOVE => BizType::BatchRemove,
            KvCommands::DTKV_CAS => BizType::Cas,
            KvCommands::DTKV_PUT_TEMP_NODE => BizType::PutTempNode,
            KvCommands::DTKV_MAKE_TEMP_DIR => BizType::MkTempDir,
            KvCommands::DTKV_UPDATE_TTL => BizType::UpdateTtl,
            KvCommands::DTKV_TRY_LOCK => BizType::TryLock,
            KvCommands::DTKV_UNLOCK => BizType::Unlock,
            KvCommands::DTKV_UPDATE_LOCK_LEASE => BizType::UpdateLockLease,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_reserved_are_none() {
        for c in 0..=127u8 {
            if let Some(b) = BizType::from_code(c) {
                assert_eq!(b.code(), c);
            }
        }
        for reserved in [1, 4, 5, 9, 10, 18] {
            assert_eq!(BizType::from_code(reserved), None);
        }
        assert_eq!(BizType::of_command(5), None);
        assert_eq!(BizType::of_command(77), None);
        assert_eq!(BizType::of_command(86), Some(BizType::UpdateLockLease));
        assert_eq!(BizType::of_command(81).unwrap().code(), 12);
    }
}
