//! The DtKV messages (`wire-protocol.md` §6, `dtkv-server.md` §1.2–1.4, §6.6, §7).
//!
//! Each message is a plain struct with the reference's field names, an
//! [`Encodable`](dt_codec::Encodable) encoder following the reference's omission rules
//! (so encodings are byte-exact), and a [`PbCallback`](dt_codec::PbCallback) decoder
//! (`*Callback`) that can be driven by a streaming [`PbParser`](dt_codec::PbParser) or by
//! [`dt_net::ReadPacket::decode_body`], in the style of `dt_raft::rpc`. [`KvBody::decode`]
//! decodes a whole body in one call.
//!
//! | what | file | messages |
//! |---|---|---|
//! | codes | [`codes`] | [`KvCommands`], [`KvCode`] |
//! | keys | [`key`] | [`check_key`], limits, [`parent_key`] |
//! | request | [`req`] | [`KvReq`] (every data command, the log entry body, the lock push) |
//! | response | [`resp`] | [`KvResp`], [`KvResult`], [`KvNode`] |
//! | watches | [`watch`] | [`WatchReq`], [`WatchNotifyReq`], [`WatchNotify`], [`WatchNotifyResp`], [`KvStatusResp`] |
//! | locks | [`lock`] | [`LockPayload`], [`lock_entry_key`] |
//! | batch writes | [`batch`] | [`BatchResult`]: each key's outcome of a batch put or remove |
//! | operations | [`ops`] | request builders with the client checks, response interpretation |
//! | errors | [`error`] | [`KvError`] |
//! | lock client | [`lock_client`] | [`LockClient`]: a lock's state, requests, answers, pushes, lease |
//! | auto-renewing lock | [`auto_renewal`] | [`AutoRenewalLock`] over a [`LockClient`] |
//! | watch client | [`watch_client`] | [`WatchClient`]: keys, syncs, push answers, events |
//!
//! Decoding is bounded: a count read from the wire never makes the decoder allocate more
//! than the body can hold (or than the reference's own limit), and malformed input gives a
//! [`PbError`](dt_codec::PbError), never a panic. Bytes fields are zero-copy slices of the
//! received body when it arrived in one piece.

pub mod auto_renewal;
pub mod batch;
pub mod codes;
pub mod error;
pub mod key;
pub mod lock;
pub mod lock_client;
pub mod ops;
pub mod req;
pub mod resp;
pub mod watch;
pub mod watch_client;

pub use auto_renewal::{AutoRenewalLock, Renewal};
pub use batch::BatchResult;
pub use codes::{KvCode, KvCommands};
pub use error::KvError;
pub use key::{
    check_key, check_value, key_in_dir, parent_key, MAX_KEY_SIZE, MAX_TTL_MILLIS, MAX_VALUE_SIZE,
    SEPARATOR,
};
pub use lock::{lock_entry_key, LockPayload};
pub use lock_client::{LockClient, LockDone, LockRequest, LockStatus, Release};
pub use req::{KvReq, KvReqCallback};
pub use resp::{KvNode, KvNodeCallback, KvResp, KvRespCallback, KvResult, KvResultCallback};
pub use watch::{
    KvStatusResp, KvStatusRespCallback, WatchNotify, WatchNotifyCallback, WatchNotifyReq,
    WatchNotifyReqCallback, WatchNotifyResp, WatchNotifyRespCallback, WatchReq, WatchReqCallback,
    WatchState,
};
pub use watch_client::{WatchClient, WatchEvent};

/// A message body with a decoder callback: dt-codec's [`PbBody`](dt_codec::PbBody)
/// under the name the KV code uses.
pub use dt_codec::PbBody as KvBody;

/// Reads an `int32` field value the reference's way: the low 32 bits of the varint.
#[inline]
pub(crate) fn int32(v: i64) -> i32 {
    v as i32
}

/// How many elements to reserve for a list announced by a count field: never more than
/// the rest of the body could hold (each element takes at least `min_elem` bytes), and
/// never more than a small bound, so a lying count costs nothing.
#[inline]
pub(crate) fn presize(count: i32, body_len: usize, min_elem: usize) -> usize {
    const MAX_PRESIZE: usize = 64;
    (count.max(0) as usize)
        .min(body_len / min_elem.max(1))
        .min(MAX_PRESIZE)
}
