//! `LogItem` (a Raft log entry) and its on-disk encoding: the 42-byte item header, the
//! optional business header and body each followed by a CRC32C, and the end-of-segment
//! marker (`docs/storage-format.md` §2).

use std::ops::Range;

use bytes::{BufMut, Bytes};

use super::crc32c::crc32c;

/// Size of the fixed item header.
pub const ITEM_HEADER_SIZE: usize = 42;
/// `totalLen` value of an end-of-segment marker.
pub const END_MAGIC: u32 = 0xF19A_7BCB;

/// Type code of a normal (state machine) entry.
pub const TYPE_NORMAL: u8 = 0;
/// Type code of a heartbeat (no-op) entry.
pub const TYPE_HEARTBEAT: u8 = 1;
/// Type code of a prepare-config-change entry.
pub const TYPE_PREPARE_CONFIG_CHANGE: u8 = 2;
/// Type code of a drop-config-change entry.
pub const TYPE_DROP_CONFIG_CHANGE: u8 = 3;
/// Type code of a commit-config-change entry.
pub const TYPE_COMMIT_CONFIG_CHANGE: u8 = 4;
/// Type code of a linearizable log read; only its header is stored.
pub const TYPE_LOG_READ: u8 = 5;

/// One Raft log entry.
///
/// `header` and `body` hold the encoded business bytes exactly as they travel in
/// AppendEntries; an empty value is not stored on disk (and reads back empty).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LogItem {
    /// Entry type (`TYPE_*`).
    pub item_type: u8,
    /// State-machine operation code, 0–127.
    pub biz_type: u8,
    /// Term of the entry.
    pub term: u32,
    /// Term of entry `index - 1` (0 for index 1).
    pub prev_log_term: u32,
    /// Raft index.
    pub index: u64,
    /// Leader wall-clock milliseconds when the entry was created.
    pub timestamp: i64,
    /// Business header bytes (may be empty).
    pub header: Bytes,
    /// Business body bytes (may be empty).
    pub body: Bytes,
}

impl LogItem {
    /// The number of bytes this item occupies on disk.
    pub fn encoded_len(&self) -> usize {
        if self.item_type == TYPE_LOG_READ {
            ITEM_HEADER_SIZE
        } else {
            total_len(self.header.len(), self.body.len())
        }
    }

    /// Appends the on-disk encoding of this item to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let read = self.item_type == TYPE_LOG_READ;
        let (hl, bl) = if read {
            (0, 0)
        } else {
            (self.header.len(), self.body.len())
        };
        out.reserve(total_len(hl, bl));
        // the fixed header is built in place, then appended at once
        let mut h = [0u8; ITEM_HEADER_SIZE];
        h[0..4].copy_from_slice(&(total_len(hl, bl) as u32).to_be_bytes());
        h[4..8].copy_from_slice(&(hl as u32).to_be_bytes());
        h[8..12].copy_from_slice(&(bl as u32).to_be_bytes());
        h[12] = self.item_type;
        h[13] = self.biz_type;
        h[14..18].copy_from_slice(&self.term.to_be_bytes());
        h[18..22].copy_from_slice(&self.prev_log_term.to_be_bytes());
        h[22..30].copy_from_slice(&self.index.to_be_bytes());
        h[30..38].copy_from_slice(&self.timestamp.to_be_bytes());
        let crc = crc32c(&h[..ITEM_HEADER_SIZE - 4]);
        h[38..42].copy_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&h);
        if hl > 0 {
            out.extend_from_slice(&self.header);
            out.put_u32(crc32c(&self.header));
        }
        if bl > 0 {
            out.extend_from_slice(&self.body);
            out.put_u32(crc32c(&self.body));
        }
    }

    /// The on-disk encoding of this item.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut v);
        v
    }
}

/// `totalLen` of an item with the given business header and body lengths.
pub fn total_len(header_len: usize, body_len: usize) -> usize {
    ITEM_HEADER_SIZE
        + if header_len > 0 { header_len + 4 } else { 0 }
        + if body_len > 0 { body_len + 4 } else { 0 }
}

/// Appends an end-of-segment marker (42 bytes) to `out`.
pub fn encode_end_marker(out: &mut Vec<u8>) {
    let start = out.len();
    out.put_u32(END_MAGIC);
    out.extend_from_slice(&[0u8; ITEM_HEADER_SIZE - 8]);
    let crc = crc32c(&out[start..start + ITEM_HEADER_SIZE - 4]);
    out.put_u32(crc);
}

/// A decoded fixed item header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogHeader {
    /// Total item length (or [`END_MAGIC`]).
    pub total_len: u32,
    /// Business header length.
    pub header_len: u32,
    /// Body length.
    pub body_len: u32,
    /// Entry type.
    pub item_type: u8,
    /// Business type.
    pub biz_type: u8,
    /// Term.
    pub term: u32,
    /// Previous entry's term.
    pub prev_log_term: u32,
    /// Raft index.
    pub index: u64,
    /// Leader timestamp (ms).
    pub timestamp: i64,
}

/// The result of looking at 42 bytes where an item header is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderCheck {
    /// CRC failed: torn or never-written bytes (or corruption).
    BadCrc,
    /// A valid end-of-segment marker.
    EndMarker,
    /// A CRC-valid header whose fields are impossible; the string says which check.
    Invalid(&'static str),
    /// A valid item header.
    Item(LogHeader),
}

impl LogHeader {
    /// Decodes and validates a header. `room` is the number of bytes from the header's
    /// start to the end of its segment (the item must fit there).
    pub fn parse(b: &[u8; ITEM_HEADER_SIZE], room: u64) -> HeaderCheck {
        let be32 = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let be64 = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_be_bytes(a)
        };
        let crc = be32(38);
        if crc32c(&b[..38]) != crc {
            return HeaderCheck::BadCrc;
        }
        let h = LogHeader {
            total_len: be32(0),
            header_len: be32(4),
            body_len: be32(8),
            item_type: b[12],
            biz_type: b[13],
            term: be32(14),
            prev_log_term: be32(18),
            index: be64(22),
            timestamp: be64(30) as i64,
        };
        if h.total_len == END_MAGIC {
            return HeaderCheck::EndMarker;
        }
        // The reference stores these as signed Java ints/bytes: negatives are invalid.
        if h.item_type > 127 {
            return HeaderCheck::Invalid("negative item type");
        }
        if h.total_len == 0 || h.total_len > i32::MAX as u32 {
            return HeaderCheck::Invalid("bad totalLen");
        }
        if h.header_len > i32::MAX as u32 || h.body_len > i32::MAX as u32 {
            return HeaderCheck::Invalid("negative part length");
        }
        let expect = total_len(h.header_len as usize, h.body_len as usize) as u64;
        if expect != h.total_len as u64 {
            return HeaderCheck::Invalid("totalLen does not match part lengths");
        }
        if expect > room {
            return HeaderCheck::Invalid("item extends past the end of its segment");
        }
        HeaderCheck::Item(h)
    }

    /// Where the business header and body lie in `rest`, the `total_len - 42` bytes
    /// after the header, with both parts' CRCs checked. `Err(what)` on a mismatch.
    fn part_ranges(&self, rest: &[u8]) -> Result<(Range<usize>, Range<usize>), &'static str> {
        let hl = self.header_len as usize;
        let bl = self.body_len as usize;
        if rest.len() != (self.total_len as usize).saturating_sub(ITEM_HEADER_SIZE) {
            return Err("item bytes do not match its totalLen");
        }
        // `parse` checks this too; a header built by hand may not have been parsed,
        // and the slicing below relies on it
        if total_len(hl, bl) != ITEM_HEADER_SIZE + rest.len() {
            return Err("part lengths do not match totalLen");
        }
        let crc_at = |at: usize| u32::from_be_bytes(rest[at..at + 4].try_into().expect("4 bytes"));
        let mut off = 0;
        let mut header = 0..0;
        if hl > 0 {
            if crc32c(&rest[..hl]) != crc_at(hl) {
                return Err("business header crc mismatch");
            }
            header = 0..hl;
            off = hl + 4;
        }
        let mut body = 0..0;
        if bl > 0 {
            if crc32c(&rest[off..off + bl]) != crc_at(off + bl) {
                return Err("body crc mismatch");
            }
            body = off..off + bl;
        }
        Ok((header, body))
    }

    /// Checks the parts' CRCs of an item whose header is `self` (`rest` as in
    /// [`decode_parts`](Self::decode_parts)) without copying them.
    pub fn check_parts(&self, rest: &[u8]) -> Result<(), &'static str> {
        self.part_ranges(rest).map(|_| ())
    }

    /// Decodes the parts of an item whose header is `self`; `rest` holds the
    /// `total_len - 42` bytes after the header. The parts are copied. Returns
    /// `Err(what)` on a CRC mismatch.
    pub fn decode_parts(&self, rest: &[u8]) -> Result<LogItem, &'static str> {
        let (h, b) = self.part_ranges(rest)?;
        Ok(self.item(
            Bytes::copy_from_slice(&rest[h]),
            Bytes::copy_from_slice(&rest[b]),
        ))
    }

    /// As [`decode_parts`](Self::decode_parts), with the parts slices of `rest` (no
    /// copy; they keep `rest`'s buffer alive).
    pub fn decode_parts_shared(&self, rest: &Bytes) -> Result<LogItem, &'static str> {
        let (h, b) = self.part_ranges(rest)?;
        Ok(self.item(rest.slice(h), rest.slice(b)))
    }

    fn item(&self, header: Bytes, body: Bytes) -> LogItem {
        LogItem {
            item_type: self.item_type,
            biz_type: self.biz_type,
            term: self.term,
            prev_log_term: self.prev_log_term,
            index: self.index,
            timestamp: self.timestamp,
            header,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(hl: usize, bl: usize) -> LogItem {
        LogItem {
            item_type: TYPE_NORMAL,
            biz_type: 7,
            term: 3,
            prev_log_term: 2,
            index: 0x0102_0304_0506,
            timestamp: 1_700_000_000_000,
            header: Bytes::from(vec![0xAB; hl]),
            body: Bytes::from(vec![0xCD; bl]),
        }
    }

    #[test]
    fn header_layout_is_big_endian_and_crc_covers_38_bytes() {
        let e = item(0, 5).encode();
        assert_eq!(e.len(), 42 + 5 + 4);
        assert_eq!(&e[0..4], &(51u32).to_be_bytes());
        assert_eq!(&e[4..8], &[0, 0, 0, 0]);
        assert_eq!(&e[8..12], &5u32.to_be_bytes());
        assert_eq!(e[12], 0);
        assert_eq!(e[13], 7);
        assert_eq!(&e[14..18], &3u32.to_be_bytes());
        assert_eq!(&e[18..22], &2u32.to_be_bytes());
        assert_eq!(&e[22..30], &0x0102_0304_0506u64.to_be_bytes());
        assert_eq!(&e[30..38], &1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&e[38..42], &crc32c(&e[..38]).to_be_bytes());
        assert_eq!(&e[47..51], &crc32c(&[0xCD; 5]).to_be_bytes());
    }

    #[test]
    fn round_trip_all_part_combinations() {
        for (hl, bl) in [(0, 0), (3, 0), (0, 9), (4, 100)] {
            let it = item(hl, bl);
            let e = it.encode();
            assert_eq!(e.len(), it.encoded_len());
            let hb: [u8; 42] = e[..42].try_into().unwrap();
            let HeaderCheck::Item(h) = LogHeader::parse(&hb, e.len() as u64) else {
                panic!()
            };
            assert_eq!(h.total_len as usize, e.len());
            assert_eq!(h.decode_parts(&e[42..]).unwrap(), it);
            assert_eq!(h.check_parts(&e[42..]), Ok(()));
            // the shared decoding gives the same item, its parts inside `rest`
            let rest = Bytes::copy_from_slice(&e[42..]);
            let shared = h.decode_parts_shared(&rest).unwrap();
            assert_eq!(shared, it);
            let inside = |b: &Bytes| {
                b.is_empty() || {
                    let (start, p) = (rest.as_ptr() as usize, b.as_ptr() as usize);
                    p >= start && p + b.len() <= start + rest.len()
                }
            };
            assert!(inside(&shared.header) && inside(&shared.body), "not copied");
        }
    }

    #[test]
    fn bytes_that_do_not_match_total_len_are_an_error_not_a_panic() {
        let e = item(4, 100).encode();
        let hb: [u8; 42] = e[..42].try_into().unwrap();
        let HeaderCheck::Item(h) = LogHeader::parse(&hb, e.len() as u64) else {
            panic!()
        };
        for rest in [&e[42..e.len() - 1], &e[43..e.len() - 50], &[][..]] {
            let what = "item bytes do not match its totalLen";
            assert_eq!(h.check_parts(rest), Err(what));
            assert_eq!(h.decode_parts(rest).unwrap_err(), what);
            let shared = Bytes::copy_from_slice(rest);
            assert_eq!(h.decode_parts_shared(&shared).unwrap_err(), what);
        }
    }

    #[test]
    fn a_header_whose_parts_do_not_add_up_is_an_error_not_a_panic() {
        let e = item(4, 100).encode();
        let hb: [u8; 42] = e[..42].try_into().unwrap();
        let HeaderCheck::Item(mut h) = LogHeader::parse(&hb, e.len() as u64) else {
            panic!()
        };
        // built by hand, never parsed: a body longer than the bytes hold
        h.body_len += 10;
        let rest = Bytes::copy_from_slice(&e[42..]);
        let what = "part lengths do not match totalLen";
        assert_eq!(h.check_parts(&rest), Err(what));
        assert_eq!(h.decode_parts(&rest).unwrap_err(), what);
        assert_eq!(h.decode_parts_shared(&rest).unwrap_err(), what);
    }

    #[test]
    fn every_decoding_refuses_a_flipped_part() {
        let it = item(4, 100);
        let e = it.encode();
        let hb: [u8; 42] = e[..42].try_into().unwrap();
        let HeaderCheck::Item(h) = LogHeader::parse(&hb, e.len() as u64) else {
            panic!()
        };
        // a byte of the business header, of its CRC, of the body, of the body's CRC
        for (at, what) in [
            (42, "business header crc mismatch"),
            (42 + 5, "business header crc mismatch"),
            (42 + 8 + 50, "body crc mismatch"),
            (e.len() - 1, "body crc mismatch"),
        ] {
            let mut bad = e.clone();
            bad[at] ^= 0x10;
            let rest = Bytes::copy_from_slice(&bad[42..]);
            assert_eq!(h.check_parts(&rest), Err(what), "byte {at}");
            assert_eq!(h.decode_parts(&rest).unwrap_err(), what);
            assert_eq!(h.decode_parts_shared(&rest).unwrap_err(), what);
        }
    }

    #[test]
    fn log_read_stores_header_only() {
        let mut it = item(3, 10);
        it.item_type = TYPE_LOG_READ;
        let e = it.encode();
        assert_eq!(e.len(), 42);
        assert_eq!(&e[4..12], &[0u8; 8]);
    }

    #[test]
    fn end_marker() {
        let mut v = Vec::new();
        encode_end_marker(&mut v);
        assert_eq!(&v[..4], &[0xF1, 0x9A, 0x7B, 0xCB]);
        assert!(v[4..38].iter().all(|&b| b == 0));
        let hb: [u8; 42] = v[..].try_into().unwrap();
        assert_eq!(LogHeader::parse(&hb, 42), HeaderCheck::EndMarker);
    }

    #[test]
    fn invalid_headers_detected() {
        let e = item(0, 5).encode();
        let hb: [u8; 42] = e[..42].try_into().unwrap();
        // does not fit
        assert!(matches!(LogHeader::parse(&hb, 50), HeaderCheck::Invalid(_)));
        // zero bytes are a bad crc
        assert_eq!(LogHeader::parse(&[0u8; 42], 100), HeaderCheck::BadCrc);
        // bit flip
        let mut f = hb;
        f[20] ^= 1;
        assert_eq!(LogHeader::parse(&f, 100), HeaderCheck::BadCrc);
        // crc-valid but wrong totalLen
        let mut g = hb;
        g[3] = 60;
        let c = crc32c(&g[..38]);
        g[38..].copy_from_slice(&c.to_be_bytes());
        assert!(matches!(LogHeader::parse(&g, 100), HeaderCheck::Invalid(_)));
        // body crc
        let mut e2 = e.clone();
        e2[44] ^= 0xFF;
        let HeaderCheck::Item(h) = LogHeader::parse(&hb, 100) else {
            panic!()
        };
        assert!(h.decode_parts(&e2[42..]).is_err());
    }
}
