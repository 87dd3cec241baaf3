//! The DtKV snapshot stream (`dtkv-server.md` §9): what a state-machine snapshot
//! produces and what an install consumes. The file framing around it (blocks with
//! lengths and CRCs) belongs to the snapshot manager (`storage.md` §5).
//!
//! The stream is a sequence of records, each an 84-byte big-endian fixed part
//! (indexes, times, flag, TTL owner / raft index / start time / ttl, key and value
//! sizes) followed by the full key and the value. Records may be split across chunks
//! arbitrarily. A reader emits the version each holder had at the snapshot's index, in
//! the map's insertion order, parents before children (the root first).

use std::collections::HashSet;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use dt_client::kv::{parent_key, MAX_KEY_SIZE};
use dt_net::ProcessInfo;

use super::apply::TtlChange;
use super::node::{NodeVersion, TtlInfo};
use super::tree::{HolderId, KvTree, SnapshotId};

/// Size of a record's fixed part.
pub const RECORD_FIXED_LEN: usize = 84;

/// The longest key a record may carry: a key, plus a lock entry's `.` and 32 hex
/// digits.
pub const MAX_RECORD_KEY_LEN: usize = MAX_KEY_SIZE + 33;

/// One node of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Index of the entry that created the node.
    pub create_index: i64,
    /// Its timestamp.
    pub create_time: i64,
    /// Index of the node's last change.
    pub update_index: i64,
    /// Its timestamp.
    pub update_time: i64,
    /// `KvNode` flag bits.
    pub flag: i32,
    /// The TTL, when the node has one (`ttl_millis` > 0 in the record).
    pub ttl: Option<TtlInfo>,
    /// The full key (empty for the root).
    pub key: Bytes,
    /// The value (empty for directories).
    pub value: Bytes,
}

impl SnapshotRecord {
    fn of(key: &Bytes, v: &NodeVersion) -> Self {
        SnapshotRecord {
            create_index: v.create_index,
            create_time: v.create_time,
            update_index: v.update_index,
            update_time: v.update_time,
            flag: v.flag,
            ttl: v.ttl,
            key: key.clone(),
            value: v.data.clone(),
        }
    }

    /// The encoded length.
    pub fn encoded_len(&self) -> usize {
        RECORD_FIXED_LEN + self.key.len() + self.value.len()
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        out.put_i64(self.create_index);
        out.put_i64(self.create_time);
        out.put_i64(self.update_index);
        out.put_i64(self.update_time);
        out.put_i32(self.flag);
        let t = self.ttl.unwrap_or(TtlInfo {
            raft_index: 0,
            owner: ProcessInfo::default(),
            leader_start_millis: 0,
            ttl_millis: 0,
        });
        out.put_u64(t.owner.uuid1);
        out.put_u64(t.owner.uuid2);
        out.put_i64(t.raft_index);
        out.put_i64(t.leader_start_millis);
        out.put_i64(t.ttl_millis);
        out.put_u32(self.key.len() as u32);
        out.put_u32(self.value.len() as u32);
        out.put_slice(&self.key);
        out.put_slice(&self.value);
    }
}

/// Why a snapshot stream could not be read or installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// A record announces a key longer than [`MAX_RECORD_KEY_LEN`].
    KeyTooLong {
        /// The announced size.
        len: u32,
    },
    /// A record announces a value larger than `i32::MAX` bytes.
    ValueTooLong {
        /// The announced size.
        len: u32,
    },
    /// The stream ended inside a record.
    Truncated {
        /// Bytes of the unfinished record received.
        pending: usize,
    },
    /// A record's parent directory was not installed before it (the stream must be
    /// parent-first).
    ParentMissing {
        /// The record's key.
        key: Bytes,
    },
    /// A record's parent exists but is not a directory.
    ParentNotDir {
        /// The record's key.
        key: Bytes,
    },
    /// The same key appeared twice.
    DuplicateKey {
        /// The key.
        key: Bytes,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = |k: &Bytes| String::from_utf8_lossy(k).into_owned();
        match self {
            SnapshotError::KeyTooLong { len } => {
                write!(
                    f,
                    "snapshot record key of {len} bytes exceeds {MAX_RECORD_KEY_LEN}"
                )
            }
            SnapshotError::ValueTooLong { len } => {
                write!(f, "snapshot record value of {len} bytes is too large")
            }
            SnapshotError::Truncated { pending } => write!(
                f,
                "snapshot stream ends inside a record ({pending} bytes of it received)"
            ),
            SnapshotError::ParentMissing { key } => write!(
                f,
                "snapshot record {:?} comes before its parent directory",
                k(key)
            ),
            SnapshotError::ParentNotDir { key } => {
                write!(
                    f,
                    "snapshot record {:?} has a parent that is not a directory",
                    k(key)
                )
            }
            SnapshotError::DuplicateKey { key } => {
                write!(f, "snapshot record {:?} appears twice", k(key))
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Decodes records from chunks of any size. Memory grows only with the bytes actually
/// received (a record's announced sizes are checked, never pre-allocated).
#[derive(Debug, Default)]
pub struct SnapshotDecoder {
    buf: BytesMut,
}

impl SnapshotDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk; complete records are appended to `out`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<SnapshotRecord>,
    ) -> Result<(), SnapshotError> {
        self.buf.extend_from_slice(chunk);
        loop {
            if self.buf.len() < RECORD_FIXED_LEN {
                return Ok(());
            }
            let fixed = &self.buf[..RECORD_FIXED_LEN];
            let key_len = u32::from_be_bytes(fixed[76..80].try_into().expect("4 bytes"));
            let value_len = u32::from_be_bytes(fixed[80..84].try_into().expect("4 bytes"));
            if key_len as usize > MAX_RECORD_KEY_LEN {
                return Err(SnapshotError::KeyTooLong { len: key_len });
            }
            if value_len > i32::MAX as u32 {
                return Err(SnapshotError::ValueTooLong { len: value_len });
            }
            let total = RECORD_FIXED_LEN + key_len as usize + value_len as usize;
            if self.buf.len() < total {
                return Ok(());
            }
            let mut r = self.buf.split_to(total).freeze();
            let create_index = r.get_i64();
            let create_time = r.get_i64();
            let update_index = r.get_i64();
            let update_time = r.get_i64();
            let flag = r.get_i32();
            let owner = ProcessInfo {
                uuid1: r.get_u64(),
                uuid2: r.get_u64(),
            };
            let raft_index = r.get_i64();
            let leader_start_millis = r.get_i64();
            let ttl_millis = r.get_i64();
            r.advance(8);
            let key = r.split_to(key_len as usize);
            out.push(SnapshotRecord {
                create_index,
                create_time,
                update_index,
                update_time,
                flag,
                ttl: (ttl_millis > 0).then_some(TtlInfo {
                    raft_index,
                    owner,
                    leader_start_millis,
                    ttl_millis,
                }),
                key,
                value: r,
            });
        }
    }

    /// Ends the stream: an unfinished record is an error.
    pub fn finish(self) -> Result<(), SnapshotError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Truncated {
                pending: self.buf.len(),
            })
        }
    }
}

/// Reads one open snapshot of a [`KvTree`] as a stream ([`KvTree::snapshot_reader`],
/// [`KvTree::read_snapshot`]).
#[derive(Debug)]
pub struct SnapshotReader {
    id: SnapshotId,
    stack: Vec<HolderId>,
    processed_dirs: HashSet<Bytes>,
    pending: Bytes,
    done: bool,
}

impl SnapshotReader {
    /// The snapshot's last included index.
    pub fn last_included_index(&self) -> i64 {
        self.id.index
    }
}

impl KvTree {
    /// Opens a snapshot at `last_included_index` and a reader of its stream.
    pub fn snapshot_reader(&mut self, last_included_index: i64) -> SnapshotReader {
        SnapshotReader {
            id: self.open_snapshot(last_included_index),
            stack: Vec::new(),
            processed_dirs: HashSet::new(),
            pending: Bytes::new(),
            done: false,
        }
    }

    /// The next at most `max` bytes of the snapshot's stream (a record may be split
    /// between calls); empty when the stream is complete. Writes may be applied between
    /// calls: the reader still sees the state at its index.
    pub fn read_snapshot(&mut self, r: &mut SnapshotReader, max: usize) -> Bytes {
        let max = max.max(1);
        let mut out = BytesMut::new();
        while out.len() < max {
            if r.pending.is_empty() {
                match self.next_record(r) {
                    Some(rec) => {
                        let mut b = BytesMut::with_capacity(rec.encoded_len());
                        rec.encode(&mut b);
                        r.pending = b.freeze();
                    }
                    None => break,
                }
            }
            let n = r.pending.len().min(max - out.len());
            out.extend_from_slice(&r.pending.split_to(n));
        }
        out.freeze()
    }

    /// Closes the reader's snapshot (see [`KvTree::close_snapshot`]).
    pub fn close_snapshot_reader(&mut self, r: SnapshotReader) {
        self.close_snapshot(r.id)
    }

    fn next_record(&mut self, r: &mut SnapshotReader) -> Option<SnapshotRecord> {
        if r.done {
            return None;
        }
        let at = r.id.index;
        loop {
            let (h, v) = if let Some(h) = r.stack.pop() {
                // The ancestors of a node the snapshot sees are directories it sees.
                let Some(v) = self.holders[h].visible_at(at) else {
                    continue;
                };
                (h, v.clone())
            } else {
                let Some(mut h) = self.cursors[r.id.cursor] else {
                    r.done = true;
                    return None;
                };
                self.cursors[r.id.cursor] = self.holders[h].order.next;
                let Some(v) = self.holders[h].visible_at(at) else {
                    continue;
                };
                if v.is_dir() && r.processed_dirs.contains(&self.holders[h].key) {
                    continue;
                }
                let mut v = v.clone();
                while let Some(p) = self.holders[h].parent() {
                    if r.processed_dirs.contains(&self.holders[p].key) {
                        break;
                    }
                    let Some(pv) = self.holders[p].visible_at(at) else {
                        break;
                    };
                    r.stack.push(h);
                    h = p;
                    v = pv.clone();
                }
                (h, v)
            };
            let key = self.holders[h].key.clone();
            if v.is_dir() {
                r.processed_dirs.insert(key.clone());
            }
            return Some(SnapshotRecord::of(&key, &v));
        }
    }

    /// Builds a tree from a snapshot's records (parents first; the record with the
    /// empty key replaces the root). Returns the TTLs the records carry, for the
    /// TtlManager to queue.
    pub fn install(
        records: impl IntoIterator<Item = SnapshotRecord>,
    ) -> Result<(KvTree, Vec<TtlChange>), SnapshotError> {
        let mut t = KvTree::new();
        let mut ttls = Vec::new();
        for rec in records {
            ttls.extend(t.install_record(rec)?);
        }
        Ok((t, ttls))
    }

    /// Adds one record of a snapshot being installed into this (new) tree: the root's
    /// record replaces the root, any other goes under its parent, which must already be
    /// there. Returns the record's TTL, if it has one.
    pub fn install_record(
        &mut self,
        rec: SnapshotRecord,
    ) -> Result<Option<TtlChange>, SnapshotError> {
        let v = NodeVersion {
            create_index: rec.create_index,
            create_time: rec.create_time,
            update_index: rec.update_index,
            update_time: rec.update_time,
            flag: rec.flag,
            data: rec.value,
            removed: false,
            ttl: rec.ttl,
        };
        if rec.key.is_empty() {
            let root = self.root;
            self.holders[root].versions.set_only(v);
            return Ok(None);
        }
        if self.lookup(&rec.key).is_some() {
            return Err(SnapshotError::DuplicateKey { key: rec.key });
        }
        let Some(parent) = self.lookup(parent_key(&rec.key)) else {
            return Err(SnapshotError::ParentMissing { key: rec.key });
        };
        if !self.holders[parent].latest().is_dir() {
            return Err(SnapshotError::ParentNotDir { key: rec.key });
        }
        let ttl = rec.ttl.map(|info| TtlChange::Started {
            key: rec.key.clone(),
            info,
        });
        let h = self.insert_holder(rec.key, Some(parent), v);
        self.add_child(parent, h);
        Ok(ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtkv::BizType;
    use dt_client::kv::{KvReq, LockPayload};

    const A: ProcessInfo = ProcessInfo { uuid1: 7, uuid2: 9 };

    fn apply(t: &mut KvTree, index: i64, biz: BizType, mut req: KvReq) {
        req.set_owner(A);
        t.apply(index, 1000 + index, biz, &req);
    }

    /// A tree with directories, values, a temp dir with a child, a temp value, a lock
    /// with two entries, and re-created keys (holders reused out of order).
    fn sample() -> (KvTree, i64) {
        let mut t = KvTree::new();
        let mut i = 0;
        let mut w = |t: &mut KvTree, biz, req| {
            i += 1;
            apply(t, i, biz, req);
        };
        w(&mut t, BizType::Put, KvReq::put(0, "z", "1"));
        w(&mut t, BizType::Mkdir, KvReq::key(0, "d"));
        w(&mut t, BizType::Put, KvReq::put(0, "d.x", "x"));
        w(
            &mut t,
            BizType::MkTempDir,
            KvReq::key(0, "td").with_ttl(5000),
        );
        w(&mut t, BizType::Put, KvReq::put(0, "td.p", "p"));
        w(
            &mut t,
            BizType::PutTempNode,
            KvReq::put(0, "d.t", "t").with_ttl(7000),
        );
        let lock = LockPayload {
            hold_ttl_millis: 9000,
            lock_id: 1,
            op_id: 2,
        }
        .to_bytes();
        w(
            &mut t,
            BizType::TryLock,
            KvReq::put(0, "lk", lock).with_ttl(100),
        );
        w(&mut t, BizType::Remove, KvReq::key(0, "z"));
        w(&mut t, BizType::Put, KvReq::put(0, "z", "2"));
        w(&mut t, BizType::Mkdir, KvReq::key(0, "d.sub"));
        w(
            &mut t,
            BizType::Put,
            KvReq::put(0, "d.sub.k", vec![0u8, 255, 3]),
        );
        (t, i)
    }

    fn read_all(t: &mut KvTree, r: &mut SnapshotReader, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = t.read_snapshot(r, step);
            if b.is_empty() {
                return out;
            }
            assert!(b.len() <= step.max(1));
            out.extend_from_slice(&b);
        }
    }

    fn decode(bytes: &[u8], split: usize) -> Vec<SnapshotRecord> {
        let mut d = SnapshotDecoder::new();
        let mut out = Vec::new();
        for c in bytes.chunks(split.max(1)) {
            d.feed(c, &mut out).unwrap();
        }
        d.finish().unwrap();
        out
    }

    fn dump(t: &KvTree) -> Vec<(Bytes, NodeVersion, Vec<Bytes>)> {
        let mut out: Vec<_> = t
            .iter_order()
            .map(|h| {
                let x = &t.holders[h];
                let kids = t
                    .children(h)
                    .iter()
                    .map(|&c| t.holders[c].key.clone())
                    .collect();
                (x.key.clone(), x.latest().clone(), kids)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn stream_is_parent_first_with_the_root_first_and_round_trips() {
        let (mut t, last) = sample();
        let mut r = t.snapshot_reader(last);
        let bytes = read_all(&mut t, &mut r, 1 << 20);
        let recs = decode(&bytes, 1 << 20);
        assert_eq!(recs[0].key, Bytes::new());
        let mut seen = HashSet::new();
        for rec in &recs {
            assert!(
                seen.contains(parent_key(&rec.key)) || rec.key.is_empty(),
                "{rec:?}"
            );
            seen.insert(rec.key.clone());
        }
        assert_eq!(recs.len(), t.holder_count());
        let (installed, ttls) = KvTree::install(recs.clone()).unwrap();
        assert_eq!(dump(&installed), dump(&t));
        // d.t, td, and the lock entry carry TTLs.
        assert_eq!(ttls.len(), 3);
        // Checklist 12: re-reading the installed tree gives the same stream.
        let mut installed = installed;
        let mut r2 = installed.snapshot_reader(last);
        assert_eq!(read_all(&mut installed, &mut r2, 7), bytes);
    }

    #[test]
    fn any_chunking_gives_the_same_records() {
        let (mut t, last) = sample();
        let mut r = t.snapshot_reader(last);
        let whole = read_all(&mut t, &mut r, 1 << 20);
        let expected = decode(&whole, whole.len());
        for step in [1, 2, 83, 84, 85, 1000] {
            let mut r = t.snapshot_reader(last);
            let bytes = read_all(&mut t, &mut r, step);
            assert_eq!(bytes, whole, "step {step}");
            assert_eq!(decode(&bytes, step), expected);
            t.close_snapshot_reader(r);
        }
    }

    #[test]
    fn a_reader_sees_its_index_while_writes_go_on() {
        let (mut t, last) = sample();
        let mut reference = t.snapshot_reader(last);
        let expected = read_all(&mut t, &mut reference, 1 << 20);
        let mut r = t.snapshot_reader(last);
        let mut got = t.read_snapshot(&mut r, 100).to_vec();
        // Writes between reads: overwrite, remove, create, remove a whole dir.
        let mut i = last;
        for (biz, req) in [
            (BizType::Put, KvReq::put(0, "z", "3")),
            (BizType::Remove, KvReq::key(0, "d.sub.k")),
            (BizType::Remove, KvReq::key(0, "d.sub")),
            (BizType::Put, KvReq::put(0, "new", "n")),
            (BizType::Remove, KvReq::key(0, "d.x")),
        ] {
            i += 1;
            apply(&mut t, i, biz, req);
            got.extend_from_slice(&t.read_snapshot(&mut r, 100));
        }
        got.extend_from_slice(&read_all(&mut t, &mut r, 100));
        assert_eq!(got, expected);
    }

    #[test]
    fn bad_streams_are_typed_errors() {
        let (mut t, last) = sample();
        let mut r = t.snapshot_reader(last);
        let bytes = read_all(&mut t, &mut r, 1 << 20);
        let mut d = SnapshotDecoder::new();
        let mut out = Vec::new();
        d.feed(&bytes[..bytes.len() - 1], &mut out).unwrap();
        assert!(matches!(d.finish(), Err(SnapshotError::Truncated { .. })));
        // A huge announced key.
        let mut rec = vec![0u8; RECORD_FIXED_LEN];
        rec[76..80].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = SnapshotDecoder::new().feed(&rec, &mut out).unwrap_err();
        assert_eq!(e, SnapshotError::KeyTooLong { len: u32::MAX });
        // A child before its parent; a child of a value; a duplicate.
        let recs = decode(&bytes, 1 << 20);
        let child = recs.iter().find(|r| &r.key[..] == b"d.x").unwrap().clone();
        assert!(matches!(
            KvTree::install(vec![child.clone()]),
            Err(SnapshotError::ParentMissing { .. })
        ));
        let mut z = recs.iter().find(|r| &r.key[..] == b"z").unwrap().clone();
        let mut under_value = child.clone();
        under_value.key = Bytes::from_static(b"z.x");
        assert!(matches!(
            KvTree::install(vec![z.clone(), under_value]),
            Err(SnapshotError::ParentNotDir { .. })
        ));
        z.update_index += 1;
        assert!(matches!(
            KvTree::install(vec![z.clone(), z]),
            Err(SnapshotError::DuplicateKey { .. })
        ));
    }
}
