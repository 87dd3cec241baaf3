//! Sequential, block-buffered reading of log items from segment files (used by
//! recovery and by log iteration).

use std::sync::Arc;

use bytes::Bytes;

use super::error::{StoreError, StoreResult};
use super::file_queue::{DtFile, FileQueue};
use super::index_file::IndexEntryRef;
use super::log_item::{HeaderCheck, LogHeader, LogItem, ITEM_HEADER_SIZE};
use super::read_pool::READ_POOL;

/// Reads byte ranges of one segment through a block of `block` bytes (from the
/// [`READ_POOL`]); entries can be sliced out of it without a copy.
pub(crate) struct BlockReader {
    pub(crate) file: Arc<DtFile>,
    seg_size: u64,
    buf: Bytes,
    buf_off: u64,
    block: usize,
}

impl BlockReader {
    pub(crate) fn new(file: Arc<DtFile>, seg_size: u64, block: usize) -> Self {
        BlockReader {
            file,
            seg_size,
            buf: Bytes::new(),
            buf_off: 0,
            block: block.max(ITEM_HEADER_SIZE),
        }
    }

    /// Bytes `[off, off + len)` of the segment; the range must lie inside it.
    pub(crate) fn bytes(&mut self, off: u64, len: usize) -> StoreResult<&[u8]> {
        let s = self.load(off, len)?;
        Ok(&self.buf[s..s + len])
    }

    /// As [`bytes`](Self::bytes), as a slice of the block (no copy; it keeps the
    /// block's buffer from going back to the pool while it lives).
    pub(crate) fn shared(&mut self, off: u64, len: usize) -> StoreResult<Bytes> {
        let s = self.load(off, len)?;
        Ok(self.buf.slice(s..s + len))
    }

    /// Reads a block holding `[off, off + len)` unless the current one does; returns
    /// where `off` is in it.
    fn load(&mut self, off: u64, len: usize) -> StoreResult<usize> {
        if off
            .checked_add(len as u64)
            .is_none_or(|end| end > self.seg_size)
        {
            return Err(StoreError::corrupt(
                &self.file.path,
                off,
                format!("read of {len} bytes runs past the end of the segment"),
            ));
        }
        let have = off >= self.buf_off && off + len as u64 <= self.buf_off + self.buf.len() as u64;
        if !have {
            // the old block first: it may go back to the pool for this read
            self.buf = Bytes::new();
            let n = (len.max(self.block) as u64).min(self.seg_size - off) as usize;
            let mut b = READ_POOL.take(n);
            self.file.read_exact_at(b.as_mut_slice(), off)?;
            self.buf = b.into_bytes();
            self.buf_off = off;
        }
        Ok((off - self.buf_off) as usize)
    }

    /// Parses the header at `off` (the caller checked that 42 bytes remain).
    pub(crate) fn header(&mut self, off: u64) -> StoreResult<HeaderCheck> {
        let room = self.seg_size - off;
        let b: [u8; ITEM_HEADER_SIZE] = self
            .bytes(off, ITEM_HEADER_SIZE)?
            .try_into()
            .expect("42 bytes");
        Ok(LogHeader::parse(&b, room))
    }
}

/// Reads up to `max_count` consecutive items starting with item `index` at absolute
/// position `pos`, stopping early when the encoded bytes would pass `bytes_limit`
/// (at least one item is always returned) or at `stop_before` (exclusive index).
/// Every CRC and the index sequence are verified; a mismatch is
/// [`StoreError::Corrupt`].
pub fn read_items(
    files: &FileQueue,
    mut pos: u64,
    index: u64,
    max_count: usize,
    bytes_limit: usize,
    stop_before: u64,
    block: usize,
) -> StoreResult<Vec<LogItem>> {
    let seg_size = files.file_size();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut expect = index;
    let mut reader: Option<BlockReader> = None;
    while out.len() < max_count && expect < stop_before {
        let seg_start = pos & !(seg_size - 1);
        if reader.as_ref().is_none_or(|r| r.file.start != seg_start) {
            let f = files.get(pos).ok_or_else(|| StoreError::NotFound {
                index: expect,
                reason: format!("log segment for position {pos} was deleted"),
            })?;
            reader = Some(BlockReader::new(f, seg_size, block));
        }
        let r = reader.as_mut().expect("set");
        let off = pos - seg_start;
        if seg_size - off < ITEM_HEADER_SIZE as u64 {
            pos = seg_start + seg_size;
            continue;
        }
        match r.header(off)? {
            HeaderCheck::EndMarker => {
                pos = seg_start + seg_size;
            }
            HeaderCheck::BadCrc => {
                return Err(StoreError::corrupt(
                    &r.file.path,
                    off,
                    format!("header crc mismatch reading entry {expect}"),
                ))
            }
            HeaderCheck::Invalid(why) => return Err(StoreError::corrupt(&r.file.path, off, why)),
            HeaderCheck::Item(h) => {
                if h.index != expect {
                    return Err(StoreError::corrupt(
                        &r.file.path,
                        off,
                        format!("expected entry {expect}, found {}", h.index),
                    ));
                }
                let tl = h.total_len as usize;
                if !out.is_empty() && bytes + tl > bytes_limit {
                    break;
                }
                let rest = r.shared(off + ITEM_HEADER_SIZE as u64, tl - ITEM_HEADER_SIZE)?;
                let item = h
                    .decode_parts_shared(&rest)
                    .map_err(|why| StoreError::corrupt(&r.file.path, off, why))?;
                out.push(item);
                bytes += tl;
                pos += tl as u64;
                expect += 1;
            }
        }
    }
    Ok(out)
}

/// Reads the header of the item `index` at `pos` and returns it (for term lookups and
/// next-position computation). The index must match.
pub fn read_header_at(files: &FileQueue, pos: u64, index: u64) -> StoreResult<LogHeader> {
    let f = files.get(pos).ok_or_else(|| StoreError::NotFound {
        index,
        reason: format!("log segment for position {pos} was deleted"),
    })?;
    let seg_size = files.file_size();
    let off = pos - f.start;
    if seg_size - off < ITEM_HEADER_SIZE as u64 {
        return Err(StoreError::corrupt(
            &f.path,
            off,
            "index entry points at a segment tail",
        ));
    }
    let mut b = [0u8; ITEM_HEADER_SIZE];
    f.read_exact_at(&mut b, off)?;
    match LogHeader::parse(&b, seg_size - off) {
        HeaderCheck::Item(h) if h.index == index => Ok(h),
        HeaderCheck::Item(h) => Err(StoreError::corrupt(
            &f.path,
            off,
            format!("expected entry {index}, found {}", h.index),
        )),
        HeaderCheck::BadCrc => Err(StoreError::corrupt(&f.path, off, "header crc mismatch")),
        HeaderCheck::EndMarker => Err(StoreError::corrupt(
            &f.path,
            off,
            "index entry points at an end marker",
        )),
        HeaderCheck::Invalid(w) => Err(StoreError::corrupt(&f.path, off, w)),
    }
}

/// Decides whether a failed read of item `at.index` at `at.pos`, a position read from
/// an index file, is the index entry's fault. `Some` (an error naming the index file
/// and the entry) when the log shows the entry is elsewhere, or no segment could ever
/// have held the position; `None` when the index entry looks right (the segment is
/// then the damaged one) or nothing can be told.
///
/// `deletions_possible`: segments may have been deleted since the position was read (a
/// position before the first segment is then not suspicious).
pub(crate) fn blame_index_entry(
    q: &FileQueue,
    at: &IndexEntryRef,
    deletions_possible: bool,
) -> Option<StoreError> {
    let seg_size = q.file_size();
    if q.get(at.pos).is_none() {
        if deletions_possible && q.first_start().is_some_and(|s| at.pos < s) {
            return None;
        }
        let cover = match (q.first_start(), q.end()) {
            (Some(a), Some(b)) => format!("the log segments cover positions {a}..{b}"),
            _ => "there are no log segments".to_string(),
        };
        return Some(at.corrupt(format_args!(
            "no log segment holds that position ({cover}; if segment files were removed, \
             the index file may be right)"
        )));
    }
    // Where entry `index` must be: right after entry `index - 1`.
    let prev_pos = at.prev_pos?;
    let prev = match header_in(q, prev_pos)? {
        HeaderCheck::Item(h) if h.index + 1 == at.index => h,
        _ => return None,
    };
    let next_seg = |p: u64| (p & !(seg_size - 1)) + seg_size;
    let mut expect = prev_pos + prev.total_len as u64;
    if matches!(header_in(q, expect), None | Some(HeaderCheck::EndMarker)) {
        // Too little room left in the segment, or an end marker: the next segment.
        expect = next_seg(expect);
    }
    if expect == at.pos {
        return None;
    }
    match header_in(q, expect)? {
        HeaderCheck::Item(h) if h.index == at.index => Some(at.corrupt(format_args!(
            "entry {} is at position {expect} (right after entry {} at {prev_pos})",
            at.index,
            at.index - 1
        ))),
        _ => None,
    }
}

/// The header at absolute position `pos` (`None` when no segment holds it, fewer than
/// 42 bytes remain in the segment, or the read fails).
fn header_in(q: &FileQueue, pos: u64) -> Option<HeaderCheck> {
    let f = q.get(pos)?;
    let room = f.start + q.file_size() - pos;
    if room < ITEM_HEADER_SIZE as u64 {
        return None;
    }
    let mut b = [0u8; ITEM_HEADER_SIZE];
    f.read_exact_at(&mut b, pos - f.start).ok()?;
    Some(LogHeader::parse(&b, room))
}
