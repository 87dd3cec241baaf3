//! Damaged index and status files are reported as what they are: an error naming the
//! index file and the entry whose position is wrong (not a log-segment problem), and a
//! status file whose values do not fit the log is refused at open (not opened into a
//! state where every read fails).

mod common;

use std::path::{Path, PathBuf};

use common::{entries, entry};
use dt_raft::store::{LogStore, StatusManager, StoreConfig, StoreError};

fn cfg() -> StoreConfig {
    StoreConfig::small_for_tests()
}

/// 600 entries (256 per index file: entry 600 is in the third one), all committed,
/// flushed and closed: `persistIdxIndex` = 600.
fn build(dir: &Path) {
    let mut log = LogStore::open(dir, cfg()).unwrap();
    for c in entries(1, 600, 1, 0).chunks(20) {
        log.append(c).unwrap();
    }
    log.set_commit_index(600);
    log.sync().unwrap();
    log.close().unwrap();
    assert_eq!(log.persist_idx_index(), 600);
}

/// The index file holding entry `index` and the entry's offset in it.
fn idx_entry(dir: &Path, index: u64) -> (PathBuf, u64) {
    let per_file = cfg().idx_items_per_file;
    let start = index / per_file * per_file * 8;
    (
        dir.join("idx").join(format!("{start:020}")),
        index * 8 - start,
    )
}

fn flip(file: &Path, offset: u64, mask: u8) {
    let mut b = std::fs::read(file).unwrap();
    b[offset as usize] ^= mask;
    std::fs::write(file, b).unwrap();
}

/// The error must be about `file` (at `offset`) and mention entry `index`.
fn assert_names(e: &StoreError, file: &Path, offset: u64, index: u64) {
    match e {
        StoreError::Corrupt {
            file: f,
            offset: o,
            reason,
        } => {
            assert_eq!(f, file, "{e}");
            assert_eq!(*o, offset, "{e}");
            assert!(reason.contains(&format!("entry {index}")), "{e}");
        }
        other => panic!("expected Corrupt naming {}, got {other}", file.display()),
    }
}

/// A flipped high byte in the recovery anchor's index entry: the position is far past
/// the log. Old code: "bad file layout in .../log: no log segment holds position".
#[test]
fn anchor_index_entry_far_off() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let (file, off) = idx_entry(d.path(), 600);
    flip(&file, off + 2, 0x40);
    let e = LogStore::open(d.path(), cfg()).unwrap_err();
    assert_names(&e, &file, off, 600);
}

/// A flipped low byte in the recovery anchor's index entry: the position lands inside
/// another item. Old code: a header crc mismatch in `log/...`.
#[test]
fn anchor_index_entry_slightly_off() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let (file, off) = idx_entry(d.path(), 600);
    flip(&file, off + 7, 0x08);
    let e = LogStore::open(d.path(), cfg()).unwrap_err();
    assert_names(&e, &file, off, 600);
}

/// A flipped byte in the index entry of an older entry: the open succeeds (recovery
/// only uses the anchor), and the read of that entry names the index file. Old code:
/// "log segment for position ... was deleted", or a crc mismatch in `log/...`.
#[test]
fn read_through_a_damaged_index_entry() {
    for (byte, mask) in [(2u64, 0x40u8), (7, 0x08), (7, 0x02), (6, 0x01)] {
        let d = tempfile::tempdir().unwrap();
        build(d.path());
        let (file, off) = idx_entry(d.path(), 100);
        flip(&file, off + byte, mask);
        let mut log = LogStore::open(d.path(), cfg()).unwrap();
        // entries around it are fine
        assert_eq!(log.read(99, 1, usize::MAX).unwrap()[0], entry(99, 1, 1));
        assert_eq!(log.read(101, 1, usize::MAX).unwrap()[0], entry(101, 1, 1));
        let e = log.read(100, 1, usize::MAX).unwrap_err();
        assert_names(&e, &file, off, 100);
        // a sequential read passing entry 100 does not need its index entry
        let got = log.read(95, 10, usize::MAX).unwrap();
        assert_eq!(got, entries(95, 104, 1, 1));
        let e = log.term_at(100).unwrap_err();
        assert_names(&e, &file, off, 100);
    }
}

fn rewrite_status(dir: &Path, f: impl FnOnce(&mut dt_raft::store::RaftStatus)) -> PathBuf {
    let path = dir.join("raft.status");
    let mut sm = StatusManager::load(&path, true).unwrap();
    f(&mut sm.status);
    sm.persist().unwrap();
    path
}

fn assert_status_refused(e: &StoreError, status: &Path, key: &str) {
    let text = e.to_string();
    assert!(text.contains(&status.display().to_string()), "{text}");
    assert!(text.contains(key), "{text}");
}

/// A status file with a valid checksum but `firstValidPos` past the end of the log.
/// Old code: opened, and every read failed ("the log holds entries 601..=600").
#[test]
fn status_first_valid_pos_past_the_log() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let st = rewrite_status(d.path(), |s| s.first_valid_pos = 1 << 40);
    let e = LogStore::open(d.path(), cfg()).unwrap_err();
    assert_status_refused(&e, &st, "firstValidPos");
}

/// `firstValidPos` inside the log but not where the log starts. Old code: a crc error
/// in a log segment, or an open log missing its first entries.
#[test]
fn status_first_valid_pos_inside_the_log() {
    let anchor_pos = |dir: &Path| {
        let (file, off) = idx_entry(dir, 600);
        let b = std::fs::read(file).unwrap();
        u64::from_be_bytes(b[off as usize..off as usize + 8].try_into().unwrap())
    };
    // (firstValidIndex, firstValidPos): with index 1 the log starts at 0; in the middle
    // of an item; at another entry's item; after the recovery anchor.
    type Case = (u64, fn(u64) -> u64);
    let cases: [Case; 4] = [
        (1, |_| 5 * 16 * 1024 + 100),
        (100, |_| 5 * 16 * 1024 + 100),
        (100, |_| 0),
        (100, |anchor| anchor + 10),
    ];
    for (fvi, fvp) in cases {
        let d = tempfile::tempdir().unwrap();
        build(d.path());
        let anchor = anchor_pos(d.path());
        let st = rewrite_status(d.path(), |s| {
            s.first_valid_index = fvi;
            s.first_valid_pos = fvp(anchor);
        });
        let e = LogStore::open(d.path(), cfg()).unwrap_err();
        assert_status_refused(&e, &st, "firstValidPos");
    }
}

/// `persistIdxIndex` above `commitIndex`: only committed entries are ever flushed to
/// the index files, so one of the two is wrong.
#[test]
fn status_persist_index_above_commit_index() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let st = rewrite_status(d.path(), |s| s.commit_index = 300);
    let e = LogStore::open(d.path(), cfg()).unwrap_err();
    assert_status_refused(&e, &st, "persistIdxIndex");
}

/// `commitIndex` far beyond the log: refused, and the message names the status file
/// too (either it or the log is wrong).
#[test]
fn status_commit_index_beyond_the_log() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let st = rewrite_status(d.path(), |s| s.commit_index = 60_000);
    let e = LogStore::open(d.path(), cfg()).unwrap_err();
    assert_status_refused(&e, &st, "commitIndex");
}

/// `firstValidIndex` 0 is not a Raft index.
#[test]
fn status_first_valid_index_zero() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let st = rewrite_status(d.path(), |s| s.first_valid_index = 0);
    let e = LogStore::open(d.path(), cfg()).unwrap_err();
    assert_status_refused(&e, &st, "firstValidIndex");
}
