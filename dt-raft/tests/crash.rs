//! Crash tests: write a workload, then on copies of the data directory cut the log at
//! many byte offsets (everything written after the cut is lost, as in a crash) and
//! flip bytes in log, index and status files. Reopening must never panic, never lose
//! an entry that was committed and fsynced, and never return anything but the
//! original entries (or a typed error).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::entries;
use dt_raft::store::{LogItem, LogStore, StoreConfig, StoreError};

const SEG: u64 = 16384;
const COMMITTED: u64 = 200;
const FSYNCED: u64 = 260;
const WRITTEN: u64 = 330;

fn cfg() -> StoreConfig {
    // The crashes are simulated by editing files, so fsync adds nothing but time.
    StoreConfig {
        sync: false,
        ..StoreConfig::small_for_tests()
    }
}

struct Workload {
    _dir: tempfile::TempDir,
    files: BTreeMap<PathBuf, Vec<u8>>,
    items: BTreeMap<u64, LogItem>,
    /// Older versions of raft.status (as a crash between index flushes leaves them).
    old_status: Vec<Vec<u8>>,
    /// Absolute start and end position of every final entry.
    spans: BTreeMap<u64, (u64, u64)>,
}

fn workload() -> Workload {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut log = LogStore::open(&path, cfg()).unwrap();
    let mut items = BTreeMap::new();
    let mut old_status = Vec::new();
    let first = entries(1, 200, 1, 0);
    for (k, c) in first.chunks(10).enumerate() {
        log.append(c).unwrap();
        log.sync().unwrap();
        if k % 4 == 3 {
            log.set_commit_index(c.last().unwrap().index.min(150));
            log.maybe_flush_index(true).unwrap();
            old_status.push(std::fs::read(path.join("raft.status")).unwrap());
        }
    }
    log.set_commit_index(150);
    log.maybe_flush_index(true).unwrap();
    // a conflict: entries 181.. are replaced by term 2 (stale bytes stay on disk)
    log.truncate_tail(181).unwrap();
    let second = entries(181, FSYNCED, 2, 1);
    log.append(&second).unwrap();
    log.sync().unwrap();
    log.set_commit_index(COMMITTED);
    log.maybe_flush_index(true).unwrap();
    assert_eq!(log.persist_idx_index(), COMMITTED);
    // written but never fsynced: a crash may lose any suffix of these bytes
    let third = entries(FSYNCED + 1, WRITTEN, 2, 2);
    log.append(&third).unwrap();
    for it in first.into_iter().take(180).chain(second).chain(third) {
        items.insert(it.index, it);
    }
    let mut spans = BTreeMap::new();
    for i in 1..=WRITTEN {
        let end = log.next_item_pos(i).unwrap();
        spans.insert(i, (end - items[&i].encoded_len() as u64, end));
    }
    drop(log);
    let mut files = BTreeMap::new();
    collect(&path, &path, &mut files);
    Workload {
        _dir: dir,
        old_status,
        files,
        items,
        spans,
    }
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            collect(root, &e.path(), out);
        } else {
            out.insert(
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
}

fn materialize(w: &Workload, dst: &Path, edit: impl FnOnce(&mut BTreeMap<PathBuf, Vec<u8>>)) {
    let _ = std::fs::remove_dir_all(dst);
    let mut files = w.files.clone();
    edit(&mut files);
    for (rel, data) in files {
        let p = dst.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

/// Opens `dir` and checks the invariants. Returns the recovered last index, or `None`
/// if the store refused to open with a typed corruption error.
fn check(w: &Workload, dir: &Path, must_keep: u64, what: &str) -> Option<u64> {
    let mut log = match LogStore::open(dir, cfg()) {
        Ok(l) => l,
        Err(
            e @ (StoreError::Corrupt { .. }
            | StoreError::BadLayout { .. }
            | StoreError::BadFileSize { .. }),
        ) => {
            let _ = e.to_string();
            return None;
        }
        Err(e) => panic!("{what}: untyped failure {e}"),
    };
    let last = log.last_index();
    assert!(
        last >= must_keep,
        "{what}: lost entries {}..={must_keep}",
        last + 1
    );
    assert!(last <= WRITTEN, "{what}: invented entries up to {last}");
    // Read everything in long runs; step over an unreadable entry one at a time.
    let mut i = log.first_index();
    while i <= last {
        match log.read(i, usize::MAX, usize::MAX) {
            Ok(v) => {
                for it in &v {
                    assert_eq!(
                        *it, w.items[&it.index],
                        "{what}: entry {} differs",
                        it.index
                    );
                }
                assert_eq!(v[0].index, i);
                i += v.len() as u64;
            }
            Err(StoreError::Corrupt { .. } | StoreError::NotFound { .. }) => {
                // only entries before the recovery anchor are not verified at start-up
                assert!(
                    i < COMMITTED,
                    "{what}: entry {i} after the anchor unreadable"
                );
                i += 1;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
    Some(last)
}

fn seg_rel(pos: u64) -> PathBuf {
    PathBuf::from("log").join(format!("{:020}", pos / SEG * SEG))
}

/// Loses every byte at position ≥ x (zeroes; the last file may instead be shortened).
fn cut_at(files: &mut BTreeMap<PathBuf, Vec<u8>>, x: u64, shorten_last: bool) {
    let last_seg = files
        .keys()
        .filter(|k| k.starts_with("log"))
        .max()
        .cloned()
        .unwrap();
    for (rel, data) in files.iter_mut() {
        let Ok(rest) = rel.strip_prefix("log") else {
            continue;
        };
        let start: u64 = rest.to_str().unwrap().parse().unwrap();
        if start + SEG <= x {
            continue;
        }
        let from = x.saturating_sub(start) as usize;
        if shorten_last && *rel == last_seg {
            data.truncate(from);
        } else {
            data[from..].fill(0);
        }
    }
}

/// Offsets to test around `[lo, hi)`: every byte near entry starts and ends (headers,
/// CRC fields), a stride elsewhere.
fn offsets(w: &Workload, lo: u64, hi: u64, stride: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for &(s, e) in w.spans.values() {
        // header start (lengths), type/term bytes, the header CRC, the part CRC at
        // the end, and the bytes right before the next item
        for y in (s..s + 4)
            .chain(s + 12..s + 15)
            .chain(s + 36..s + 43)
            .chain(e.saturating_sub(4)..e + 1)
        {
            if y >= lo && y < hi {
                v.push(y);
            }
        }
    }
    let mut x = lo;
    while x < hi {
        v.push(x);
        x += stride;
    }
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn cuts_in_the_unsynced_tail_lose_only_unsynced_entries() {
    let w = workload();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("d");
    let lo = w.spans[&(FSYNCED + 1)].0;
    let hi = w.spans[&WRITTEN].1 + 64;
    let offs = offsets(&w, lo, hi, 13);
    let mut n = 0;
    for (k, &x) in offs.iter().enumerate() {
        let shorten = k % 3 == 0;
        materialize(&w, &dst, |f| cut_at(f, x, shorten));
        let what = format!("cut at {x} (shorten={shorten})");
        let last =
            check(&w, &dst, FSYNCED, &what).unwrap_or_else(|| panic!("{what}: refused to open"));
        // exactly the entries that end before the cut survive
        let expect = w
            .spans
            .iter()
            .filter(|(_, &(_, e))| e <= x)
            .map(|(&i, _)| i)
            .max()
            .unwrap();
        assert_eq!(last, expect, "{what}");
        // and appending continues correctly after a torn tail
        if k % 25 == 0 {
            let mut log = LogStore::open(&dst, cfg()).unwrap();
            let next = entries(last + 1, last + 5, 3, 2);
            log.append(&next).unwrap();
            log.sync().unwrap();
            drop(log);
            let mut log = LogStore::open(&dst, cfg()).unwrap();
            assert_eq!(log.last_index(), last + 5, "{what}");
            assert_eq!(log.read(last + 1, 10, usize::MAX).unwrap(), next);
        }
        n += 1;
    }
    eprintln!("{n} cut offsets checked");
}

#[test]
fn cuts_before_committed_entries_refuse_to_start() {
    let w = workload();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("d");
    // cut inside the committed region after the anchor cannot happen (the anchor is
    // the last committed entry); cut inside uncommitted-but-fsynced entries and just
    // inside the anchor entry itself
    let anchor = w.spans[&COMMITTED];
    for x in anchor.0..anchor.1 {
        materialize(&w, &dst, |f| cut_at(f, x, false));
        assert_eq!(
            check(&w, &dst, COMMITTED, &format!("cut {x}")),
            None,
            "cut at {x} accepted"
        );
    }
    let lo = anchor.1;
    let hi = w.spans[&FSYNCED].1;
    for x in offsets(&w, lo, hi, 97) {
        materialize(&w, &dst, |f| cut_at(f, x, false));
        let last = check(&w, &dst, COMMITTED, &format!("cut {x}"));
        assert!(last.is_some_and(|l| l >= COMMITTED));
    }
}

#[test]
fn byte_flips_never_return_garbage_or_lose_committed_entries() {
    let w = workload();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("d");
    let end = w.spans[&WRITTEN].1 + 64;
    let mut cases = 0;
    let mut refused = 0;
    // log files: every byte near item boundaries in the last part of the log, a
    // stride elsewhere
    let dense_from = w.spans[&(COMMITTED - 5)].0;
    let mut offs = offsets(&w, dense_from, end, 23);
    let mut x = 0;
    while x < dense_from {
        offs.push(x);
        x += 97;
    }
    for (k, &x) in offs.iter().enumerate() {
        {
            let bit = if k % 2 == 0 { 0x01u8 } else { 0x80 };
            materialize(&w, &dst, |f| {
                let rel = seg_rel(x);
                if let Some(d) = f.get_mut(&rel) {
                    d[(x % SEG) as usize] ^= bit;
                }
            });
            // entries after the flip may be lost only if not committed
            if check(&w, &dst, COMMITTED, &format!("flip log {x}/{bit}")).is_none() {
                refused += 1;
            }
            cases += 1;
        }
    }
    // index and status files
    let others: Vec<(PathBuf, usize)> = w
        .files
        .iter()
        .filter(|(k, _)| !k.starts_with("log"))
        .map(|(k, v)| (k.clone(), v.len()))
        .collect();
    for (rel, len) in others {
        let stride = if rel.starts_with("idx") { 7 } else { 1 };
        let mut y = 0;
        while y < len {
            materialize(&w, &dst, |f| f.get_mut(&rel).unwrap()[y] ^= 0x10);
            if check(&w, &dst, COMMITTED, &format!("flip {} {y}", rel.display())).is_none() {
                refused += 1;
            }
            cases += 1;
            y += stride;
        }
    }
    eprintln!("{cases} flip cases checked, {refused} refused to open with a typed error");
}

/// The status file lags the log (its persistIdxIndex and commitIndex are older, as
/// after a crash between index flushes): recovery restores from the older anchor and
/// still finds every fsynced entry.
#[test]
fn stale_status_file_recovers_everything_fsynced() {
    let w = workload();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("d");
    assert!(w.old_status.len() >= 3);
    for (k, st) in w.old_status.iter().enumerate() {
        materialize(&w, &dst, |f| {
            f.insert(PathBuf::from("raft.status"), st.clone());
        });
        let last = check(&w, &dst, FSYNCED, &format!("old status {k}"));
        assert_eq!(last, Some(WRITTEN), "old status {k}");
    }
}

/// With `verify_on_start`, a store that opens has every entry readable and intact: a
/// flipped byte anywhere in the log either refuses the start or is in a part of the
/// log that was not needed (torn, uncommitted tail).
#[test]
fn byte_flips_with_verify_on_start() {
    let w = workload();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("d");
    let strict = StoreConfig {
        verify_on_start: true,
        ..cfg()
    };
    let end = w.spans[&WRITTEN].1;
    let mut x = 0;
    let (mut cases, mut refused) = (0, 0);
    while x < end {
        materialize(&w, &dst, |f| {
            if let Some(d) = f.get_mut(&seg_rel(x)) {
                d[(x % SEG) as usize] ^= 0x08;
            }
        });
        match LogStore::open(&dst, strict.clone()) {
            Ok(mut log) => {
                assert!(
                    log.last_index() >= COMMITTED,
                    "flip {x}: lost committed entries"
                );
                let mut i = 1;
                let mut got = Vec::new();
                while i <= log.last_index() {
                    let b = log.read(i, usize::MAX, usize::MAX).unwrap_or_else(|e| {
                        panic!("flip {x}: verified log unreadable at {i}: {e}")
                    });
                    i += b.len() as u64;
                    got.extend(b);
                }
                for it in got {
                    assert_eq!(it, w.items[&it.index], "flip {x}");
                }
            }
            Err(StoreError::Corrupt { .. }) => refused += 1,
            Err(e) => panic!("flip {x}: {e}"),
        }
        cases += 1;
        x += 53;
    }
    eprintln!("{cases} flips with verify_on_start, {refused} refused");
}

/// After an install (with the snapshot's term recorded), entries written since and not
/// yet anchored by an index entry: a crash at any byte keeps exactly the entries that
/// end before it, chained to the snapshot's entry, or an empty log after the install;
/// the older log the install deleted never comes back, and appends continue.
#[test]
fn cuts_after_an_install_keep_the_entries_written_since_that_end_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut log = LogStore::open(&path, cfg()).unwrap();
    log.append(&entries(1, 40, 1, 0)).unwrap();
    log.sync().unwrap();
    log.begin_install(None).unwrap();
    let start = 3 * SEG + 1000;
    log.finish_install_with_term(501, start, Some(4)).unwrap();
    let after = entries(501, 640, 5, 4);
    for c in after.chunks(10) {
        log.append(c).unwrap();
        log.sync().unwrap();
    }
    let mut spans = BTreeMap::new();
    for it in &after {
        let end = log.next_item_pos(it.index).unwrap();
        spans.insert(it.index, (end - it.encoded_len() as u64, end));
    }
    assert_eq!(
        log.persist_idx_index(),
        500,
        "nothing anchored after the install"
    );
    drop(log);
    let mut files = BTreeMap::new();
    collect(&path, &path, &mut files);
    assert!(
        files.keys().filter(|k| k.starts_with("log")).count() > 1,
        "the entries span segments"
    );
    let w = Workload {
        _dir: dir,
        old_status: Vec::new(),
        files,
        items: after.iter().map(|i| (i.index, i.clone())).collect(),
        spans,
    };
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("d");
    let hi = w.spans[&640].1 + 64;
    let offs = offsets(&w, start, hi, 11);
    for (k, &x) in offs.iter().enumerate() {
        let shorten = k % 3 == 0;
        materialize(&w, &dst, |f| cut_at(f, x, shorten));
        let what = format!("cut at {x} (shorten={shorten})");
        let mut log = LogStore::open(&dst, cfg()).unwrap_or_else(|e| panic!("{what}: {e}"));
        // the entries before the cut, and one the cut only "zeroes" where it was zero
        let expect = w
            .spans
            .iter()
            .take_while(|(_, &(b, e))| e <= x || untouched_by_cut(&w, b.max(x), e))
            .map(|(&i, _)| i)
            .last()
            .unwrap_or(500);
        let term = if expect == 500 { 4 } else { 5 };
        assert_eq!(log.init_result(), Some((term, expect)), "{what}");
        assert_eq!(log.first_index(), 501, "{what}");
        if expect > 500 {
            let got = log.read(501, usize::MAX, usize::MAX).unwrap();
            let want: Vec<_> = (501..=expect).map(|i| w.items[&i].clone()).collect();
            assert_eq!(got, want, "{what}");
        }
        if k % 20 == 0 {
            let next = entries(expect + 1, expect + 3, 6, term);
            log.append(&next).unwrap();
            log.sync().unwrap();
            drop(log);
            let mut log = LogStore::open(&dst, cfg()).unwrap();
            assert_eq!(log.init_result(), Some((6, expect + 3)), "{what}");
            assert_eq!(
                log.read(expect + 1, 10, usize::MAX).unwrap(),
                next,
                "{what}"
            );
        }
    }
    eprintln!("{} cut offsets checked", offs.len());
}

/// Whether bytes `from..to` of the log (within one segment) were zero before a cut, so
/// that zeroing them changed nothing.
fn untouched_by_cut(w: &Workload, from: u64, to: u64) -> bool {
    let data = &w.files[&seg_rel(from)];
    let base = from / SEG * SEG;
    data[(from - base) as usize..(to - base) as usize]
        .iter()
        .all(|&b| b == 0)
}
