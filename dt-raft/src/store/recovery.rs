//! Crash recovery of the log at start-up (`docs/storage-format.md` §6).
//!
//! The scan starts at the recovery anchor (`persistIdxIndex`, through its index entry)
//! and walks the items forward, checking header CRC, the index/term chain and the part
//! CRCs. The first item that fails ends the log: that is a torn (or stale) tail, and the
//! next append overwrites it. Nothing on disk is erased.
//!
//! Unlike the reference, a break at or before the `commitIndex` recorded in the status
//! file is not silently accepted: it means data known to be committed is unreadable, so
//! recovery fails with [`StoreError::Corrupt`] naming the file and offset of the bad
//! item (the reference fails later, at group init, without saying where).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::error::{StoreError, StoreResult};
use super::file_queue::{DtFile, FileQueue};
use super::index_file::IdxFileQueue;
use super::log_item::{HeaderCheck, LogHeader, ITEM_HEADER_SIZE};
use super::reader::{blame_index_entry, BlockReader};
use super::status::RaftStatus;

/// Index, term and timestamp of the first item of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegFirst {
    /// Raft index of the segment's first item.
    pub index: u64,
    /// Its term.
    pub term: u32,
    /// Its timestamp (ms).
    pub timestamp: i64,
}

/// What recovery found.
#[derive(Debug)]
pub enum Recovered {
    /// The log cannot be used (install in progress, or nothing usable after an
    /// install): the node needs a snapshot install from the leader.
    NoLog,
    /// The log as far as it is valid.
    Log {
        /// Last valid index (0 for an empty log).
        last_index: u64,
        /// Its term (0 for an empty log).
        last_term: u32,
        /// Where the next item goes.
        next_pos: u64,
        /// The first index whose position is in `positions`.
        restore_index: u64,
        /// Positions of items `restore_index..=last_index` (for the index cache).
        positions: Vec<u64>,
        /// First item of each segment that has one (segments past the end excluded).
        firsts: BTreeMap<u64, SegFirst>,
    },
}

/// Runs recovery over the opened log and index files. `status_path` is the file `st`
/// was read from (named in errors about its values).
///
/// Before the scan, the status values are checked against each other and the log: a
/// status file with a valid checksum but values that cannot describe this log
/// (`firstValidIndex` 0, `persistIdxIndex` above `commitIndex`, `firstValidPos` past
/// the log or not at an item) is refused with an error naming the file and the key,
/// instead of opening a log whose every read fails. A recovery anchor whose index
/// entry is damaged is reported naming the index file and the entry.
pub fn recover(
    log: &mut FileQueue,
    idx: &mut IdxFileQueue,
    st: &RaftStatus,
    status_path: &Path,
    block: usize,
) -> StoreResult<Recovered> {
    let bad_status = |why: String| {
        StoreError::corrupt(
            status_path,
            0,
            format!("the status file's values do not fit the log: {why}"),
        )
    };
    if st.first_valid_index == 0 {
        return Err(bad_status(
            "firstValidIndex is 0, but Raft indexes start at 1".into(),
        ));
    }
    if st.install_snapshot {
        return Ok(Recovered::NoLog);
    }
    if st.persist_idx_index > st.commit_index {
        return Err(bad_status(format!(
            "persistIdxIndex {} is above commitIndex {}, but only committed entries are \
             flushed to the index files",
            st.persist_idx_index, st.commit_index
        )));
    }
    if st.first_valid_index == 1 && st.first_valid_pos != 0 {
        return Err(bad_status(format!(
            "firstValidPos is {} with firstValidIndex 1, but a log that starts at entry 1 \
             starts at position 0",
            st.first_valid_pos
        )));
    }
    if let (Some(first), Some(end)) = (log.first_start(), log.end()) {
        if st.first_valid_pos >= end {
            return Err(bad_status(format!(
                "firstValidPos {} is past the end of the log (the segments in {} cover \
                 positions {first}..{end})",
                st.first_valid_pos,
                log.dir().display()
            )));
        }
    }
    let seg_size = log.file_size();
    let first_index = idx
        .first_index_covered()
        .unwrap_or(0)
        .max(st.first_valid_index);
    let mut restore_index = st.persist_idx_index.max(first_index);
    // after an install, with the anchor still at firstValidIndex: "no log" (the
    // reference's rule), unless the install recorded the term of the entry before (dt's
    // firstValidTerm): then the log after that entry, read from firstValidPos
    let mut empty_after_install = None;
    let restore_pos = if restore_index <= 1 {
        restore_index = 1;
        st.first_valid_pos
    } else if restore_index == st.first_valid_index {
        match st.first_valid_term {
            Some(t) => {
                empty_after_install = Some(t);
                st.first_valid_pos
            }
            None => return Ok(Recovered::NoLog),
        }
    } else {
        match idx.read_file_entry(restore_index)? {
            Some(p) => {
                check_anchor(log, idx, restore_index, p)?;
                if p < st.first_valid_pos {
                    return Err(bad_status(format!(
                        "firstValidPos {} is after the position {p} of the recovery anchor \
                         (entry {restore_index}, persistIdxIndex)",
                        st.first_valid_pos
                    )));
                }
                p
            }
            None => {
                return Err(StoreError::BadLayout {
                    dir: idx_dir_hint(log),
                    reason: format!(
                        "no index file holds the recovery anchor persistIdxIndex={restore_index}"
                    ),
                })
            }
        }
    };

    // 1. The first item of every segment.
    let mut firsts = BTreeMap::new();
    let files: Vec<_> = log.files().cloned().collect();
    for f in &files {
        if f.start + seg_size <= st.first_valid_pos {
            continue;
        }
        let off = st.first_valid_pos.saturating_sub(f.start);
        if seg_size - off < ITEM_HEADER_SIZE as u64 {
            continue;
        }
        let mut r = BlockReader::new(f.clone(), seg_size, ITEM_HEADER_SIZE);
        match r.header(off)? {
            // The segment holding firstValidPos starts with entry firstValidIndex there.
            HeaderCheck::Item(h)
                if f.start <= st.first_valid_pos && h.index != st.first_valid_index =>
            {
                return Err(bad_status(format!(
                    "firstValidPos {} (offset {off} of {}) holds entry {}, not \
                     firstValidIndex {}",
                    st.first_valid_pos,
                    f.path.display(),
                    h.index,
                    st.first_valid_index
                )));
            }
            HeaderCheck::Item(h) => {
                firsts.insert(
                    f.start,
                    SegFirst {
                        index: h.index,
                        term: h.term,
                        timestamp: h.timestamp,
                    },
                );
            }
            HeaderCheck::EndMarker => {}
            HeaderCheck::BadCrc => {
                if off > 0 && f.start + seg_size <= restore_pos {
                    return Err(bad_status(format!(
                        "firstValidPos {} (offset {off} of {}) is not the start of an \
                         item, and the recovery anchor is after it",
                        st.first_valid_pos,
                        f.path.display(),
                    )));
                }
                if f.start + seg_size <= restore_pos {
                    return Err(StoreError::corrupt(
                        &f.path,
                        off,
                        "first item header of a segment before the recovery anchor has a bad crc",
                    ));
                }
            }
            HeaderCheck::Invalid(w) => return Err(StoreError::corrupt(&f.path, off, w)),
        }
    }

    let empty_log_after_install = |last_term: u32, firsts| Recovered::Log {
        last_index: st.first_valid_index - 1,
        last_term,
        next_pos: st.first_valid_pos,
        restore_index: st.first_valid_index,
        positions: Vec::new(),
        firsts,
    };
    if let Some(last_term) = empty_after_install {
        if !firsts.values().any(|f| f.index >= st.first_valid_index) {
            return Ok(empty_log_after_install(last_term, firsts));
        }
        // Entries written after the install that no index entry anchors yet: the scan
        // below reads them from firstValidPos, each chained to the one before and the
        // first to the snapshot's entry (the install deleted every older file, so
        // what is there was written after it). The reference says "no log" here.
    }

    // 2. Scan forward from the anchor (after an install without an anchor: from
    //    firstValidPos, chained to the snapshot's entry).
    let mut pos = restore_pos;
    let mut expect = restore_index;
    let mut prev_term: Option<u32> = empty_after_install;
    let mut positions = Vec::new();
    let mut reader: Option<BlockReader> = None;
    let mut stop: Option<(std::path::PathBuf, u64, String)> = None;
    loop {
        let Some(f) = log.get(pos) else { break };
        let off = pos - f.start;
        let r = reader_for(&mut reader, &f, seg_size, block);
        if seg_size - off < ITEM_HEADER_SIZE as u64 {
            pos = f.start + seg_size;
            continue;
        }
        let why = match r.header(off)? {
            HeaderCheck::EndMarker => {
                pos = f.start + seg_size;
                continue;
            }
            HeaderCheck::Invalid(w) => return Err(StoreError::corrupt(&f.path, off, w)),
            HeaderCheck::BadCrc => "header crc mismatch (torn or unwritten)".to_string(),
            HeaderCheck::Item(h) => {
                let chain = match prev_term {
                    None => h.index == expect,
                    Some(t) => h.index == expect && h.prev_log_term == t && h.term >= t,
                };
                if !chain {
                    if prev_term.is_none() && restore_index > 1 {
                        return Err(StoreError::corrupt(
                            &f.path,
                            off,
                            format!(
                                "the recovery anchor's index entry points at entry {}, expected {expect}",
                                h.index
                            ),
                        ));
                    }
                    format!(
                        "entry {} (term {}, prev term {}) does not continue entry {} (term {:?})",
                        h.index,
                        h.term,
                        h.prev_log_term,
                        expect - 1,
                        prev_term
                    )
                } else {
                    let tl = h.total_len as usize;
                    let rest = r.bytes(off + ITEM_HEADER_SIZE as u64, tl - ITEM_HEADER_SIZE)?;
                    match h.check_parts(rest) {
                        Ok(_) => {
                            positions.push(pos);
                            prev_term = Some(h.term);
                            expect += 1;
                            pos += tl as u64;
                            continue;
                        }
                        Err(w) => w.to_string(),
                    }
                }
            }
        };
        stop = Some((f.path.clone(), off, why));
        break;
    }

    let last_index = expect - 1;
    if let (Some(last_term), true) = (empty_after_install, positions.is_empty()) {
        // the first entry after the install is torn: none survived (what later
        // segments hold is past the end of the log)
        firsts.retain(|_, fi| fi.index < st.first_valid_index);
        return Ok(empty_log_after_install(last_term, firsts));
    }
    if restore_index > 1 && positions.is_empty() {
        let (file, off, why) =
            stop.unwrap_or((log.dir().to_path_buf(), restore_pos, "missing".into()));
        return Err(StoreError::corrupt(
            file,
            off,
            format!("recovery anchor entry {restore_index} (persistIdxIndex) is unreadable: {why}"),
        ));
    }
    if st.commit_index > last_index {
        let (file, off, why) =
            stop.unwrap_or((log.dir().to_path_buf(), pos, "log ends here".into()));
        return Err(StoreError::corrupt(
            file,
            off,
            format!(
                "entry {expect} is unreadable ({why}) but the status file {} says entries up \
                 to commitIndex {} are committed (the log lost committed entries, or the \
                 status file is wrong)",
                status_path.display(),
                st.commit_index
            ),
        ));
    }

    // 3. Forget first-item info of segments at or past the end of the log.
    let end_seg = pos & !(seg_size - 1);
    firsts.retain(|&start, fi| start < end_seg || (start == end_seg && fi.index < expect));

    // 4. An empty first segment (after an install) is dropped when others follow.
    if log.len() > 1 {
        let first = log.first_start().expect("non-empty");
        if !firsts.contains_key(&first) && pos >= first + seg_size && !log.first_in_use() {
            log.delete_first()?;
        }
    }

    Ok(Recovered::Log {
        last_index,
        last_term: prev_term.unwrap_or(0),
        next_pos: pos,
        restore_index,
        positions,
        firsts,
    })
}

/// The block reader for segment `f`, reusing `reader` while the scan stays in the same
/// segment.
fn reader_for<'a>(
    reader: &'a mut Option<BlockReader>,
    f: &Arc<DtFile>,
    seg_size: u64,
    block: usize,
) -> &'a mut BlockReader {
    if reader.as_ref().is_some_and(|r| r.file.start != f.start) {
        *reader = None;
    }
    reader.get_or_insert_with(|| BlockReader::new(f.clone(), seg_size, block))
}

/// Checks that the recovery anchor's index entry (entry `index` at `pos`) points at
/// that entry; a damaged entry is reported naming the index file.
fn check_anchor(log: &FileQueue, idx: &mut IdxFileQueue, index: u64, pos: u64) -> StoreResult<()> {
    let ok = log.get(pos).is_some_and(|f| {
        let room = f.start + log.file_size() - pos;
        let mut b = [0u8; ITEM_HEADER_SIZE];
        room >= ITEM_HEADER_SIZE as u64
            && f.read_exact_at(&mut b, pos - f.start).is_ok()
            && matches!(LogHeader::parse(&b, room), HeaderCheck::Item(h) if h.index == index)
    });
    if ok {
        return Ok(());
    }
    match idx.entry_ref(index, pos) {
        Some(at) => match blame_index_entry(log, &at, false) {
            Some(e) => Err(e),
            // The index entry may be right: the scan reports the damaged item.
            None => Ok(()),
        },
        None => Ok(()),
    }
}

fn idx_dir_hint(log: &FileQueue) -> std::path::PathBuf {
    log.dir()
        .parent()
        .map(|p| p.join("idx"))
        .unwrap_or_else(|| log.dir().to_path_buf())
}

/// Verifies entries `first_index..until` starting at absolute position `pos`: every
/// header, part CRC and the index/term chain. Any violation is
/// [`StoreError::Corrupt`] naming file and offset.
pub fn verify_prefix(
    log: &FileQueue,
    mut pos: u64,
    first_index: u64,
    until: u64,
    block: usize,
) -> StoreResult<()> {
    let seg_size = log.file_size();
    let mut expect = first_index;
    let mut prev_term: Option<u32> = None;
    let mut reader: Option<BlockReader> = None;
    while expect < until {
        let f = log.get(pos).ok_or_else(|| StoreError::BadLayout {
            dir: log.dir().to_path_buf(),
            reason: format!("entry {expect} at position {pos} is past the last segment"),
        })?;
        let off = pos - f.start;
        let r = reader_for(&mut reader, &f, seg_size, block);
        if seg_size - off < ITEM_HEADER_SIZE as u64 {
            pos = f.start + seg_size;
            continue;
        }
        match r.header(off)? {
            HeaderCheck::EndMarker => pos = f.start + seg_size,
            HeaderCheck::BadCrc => {
                return Err(StoreError::corrupt(
                    &f.path,
                    off,
                    format!("entry {expect}: header crc mismatch"),
                ))
            }
            HeaderCheck::Invalid(w) => return Err(StoreError::corrupt(&f.path, off, w)),
            HeaderCheck::Item(h) => {
                let chain = h.index == expect
                    && prev_term.is_none_or(|t| h.prev_log_term == t && h.term >= t);
                if !chain {
                    return Err(StoreError::corrupt(
                        &f.path,
                        off,
                        format!(
                            "entry {} (term {}) breaks the chain at {expect}",
                            h.index, h.term
                        ),
                    ));
                }
                let tl = h.total_len as usize;
                let rest = r.bytes(off + ITEM_HEADER_SIZE as u64, tl - ITEM_HEADER_SIZE)?;
                h.check_parts(rest).map_err(|w| {
                    StoreError::corrupt(&f.path, off, format!("entry {expect}: {w}"))
                })?;
                prev_term = Some(h.term);
                expect += 1;
                pos += tl as u64;
            }
        }
    }
    Ok(())
}
