//! The distributed lock's wire conventions (`wire-protocol.md` §6.8,
//! `dtkv-server.md` §6.1): the 16-byte payload a client sends with TRY_LOCK (and gets
//! back in the lock push), and the key of a contender's entry under the lock directory.

use bytes::Bytes;
use dt_net::ProcessInfo;

use super::key::SEPARATOR;

/// The TRY_LOCK value of the reference client, 16 bytes big-endian: the hold lease (the
/// only part the server reads), the client's lock id and its operation id.
///
/// ```
/// use dt_client::kv::LockPayload;
/// let p = LockPayload { hold_ttl_millis: 60_000, lock_id: 1, op_id: 1 };
/// let b = p.to_bytes();
/// assert_eq!(&b[..], &[0, 0, 0, 0, 0, 0, 0xea, 0x60, 0, 0, 0, 1, 0, 0, 0, 1]);
/// assert_eq!(LockPayload::parse(&b), Some(p));
/// assert_eq!(LockPayload::hold_ttl(&b[..8]), Some(60_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockPayload {
    /// The lease the holder gets, in ms (bytes 0–7).
    pub hold_ttl_millis: i64,
    /// The client-local id of the lock object (bytes 8–11).
    pub lock_id: i32,
    /// The client-local operation counter of that lock object (bytes 12–15).
    pub op_id: i32,
}

impl LockPayload {
    /// The encoded length.
    pub const LEN: usize = 16;

    /// Encodes the payload.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = Vec::with_capacity(Self::LEN);
        b.extend_from_slice(&self.hold_ttl_millis.to_be_bytes());
        b.extend_from_slice(&self.lock_id.to_be_bytes());
        b.extend_from_slice(&self.op_id.to_be_bytes());
        b.into()
    }

    /// Decodes a payload; `None` when shorter than 16 bytes (the reference client ignores
    /// such a push).
    pub fn parse(b: &[u8]) -> Option<LockPayload> {
        if b.len() < Self::LEN {
            return None;
        }
        Some(LockPayload {
            hold_ttl_millis: i64::from_be_bytes(b[0..8].try_into().ok()?),
            lock_id: i32::from_be_bytes(b[8..12].try_into().ok()?),
            op_id: i32::from_be_bytes(b[12..16].try_into().ok()?),
        })
    }

    /// The hold lease as the server reads it: the first 8 bytes, big-endian; `None` when
    /// the value is shorter.
    pub fn hold_ttl(value: &[u8]) -> Option<i64> {
        Some(i64::from_be_bytes(value.get(0..8)?.try_into().ok()?))
    }
}

/// The key of `owner`'s entry under the lock directory `lock_key`:
/// `<lock_key>.<32 lowercase hex digits>` (the UUID's high half, then its low half).
///
/// ```
/// use dt_client::kv::lock_entry_key;
/// use dt_net::ProcessInfo;
/// let o = ProcessInfo { uuid1: 0x0123456789abcdef, uuid2: 0xfedcba9876543210 };
/// assert_eq!(&lock_entry_key(b"lk", o)[..], b"lk.0123456789abcdeffedcba9876543210");
/// ```
pub fn lock_entry_key(lock_key: &[u8], owner: ProcessInfo) -> Bytes {
    let mut k = Vec::with_capacity(lock_key.len() + 33);
    k.extend_from_slice(lock_key);
    k.push(SEPARATOR);
    k.extend_from_slice(format!("{:016x}{:016x}", owner.uuid1, owner.uuid2).as_bytes());
    k.into()
}
