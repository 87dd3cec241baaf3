//! Operations of the synchronous `LogStore`.

mod common;

use std::time::{Duration, Instant};

use common::{entries, entry};
use dt_raft::store::{LogStore, StoreConfig, StoreError};

fn cfg() -> StoreConfig {
    StoreConfig::small_for_tests()
}

fn read_all(log: &mut LogStore, from: u64) -> Vec<dt_raft::store::LogItem> {
    let mut out = Vec::new();
    let mut i = from;
    while i <= log.last_index() {
        let b = log.read(i, 7, 3000).unwrap();
        assert!(!b.is_empty());
        i += b.len() as u64;
        out.extend(b);
    }
    out
}

/// Appends `items`, commits and fsyncs them, closes the store and opens it again.
fn append_commit_and_reopen(
    mut log: LogStore,
    dir: &std::path::Path,
    items: &[dt_raft::store::LogItem],
) -> LogStore {
    log.append(items).unwrap();
    log.set_commit_index(items.last().unwrap().index);
    log.sync().unwrap();
    log.close().unwrap();
    drop(log);
    LogStore::open(dir, cfg()).unwrap()
}

#[test]
fn append_read_across_segments_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((0, 0)));
    let e = entries(1, 600, 1, 0);
    for c in e.chunks(13) {
        log.append(c).unwrap();
    }
    log.set_commit_index(600);
    log.sync().unwrap();
    assert!(log.segment_count() > 5, "spans many 16 KiB segments");
    assert_eq!(read_all(&mut log, 1), e);
    log.close().unwrap();
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((1, 600)));
    assert_eq!(log.persist_idx_index(), 600);
    assert_eq!(read_all(&mut log, 1), e);
    // byte limit: always at least one entry
    assert_eq!(log.read(5, 100, 1).unwrap().len(), 1);
}

#[test]
fn entries_read_from_the_files_share_their_block_and_outlive_the_store() {
    let d = tempfile::tempdir().unwrap();
    let log = LogStore::open(d.path(), cfg()).unwrap();
    let e = entries(1, 40, 1, 0);
    let mut log = append_commit_and_reopen(log, d.path(), &e);
    // entries 2 and 3 (no business header, bodies of 74 and 111 bytes) lie one after
    // the other in the first segment: read in one block, their bodies are slices of
    // it, as far apart as entry 2's encoding is long
    let got = log.read(2, 2, 1 << 20).unwrap();
    assert_eq!(got, e[1..3]);
    let gap = got[1].body.as_ptr() as usize - got[0].body.as_ptr() as usize;
    assert_eq!(gap, e[1].encoded_len(), "the bodies were copied");
    log.close().unwrap();
    drop(log);
    drop(d);
    assert_eq!(got, e[1..3], "the block outlives the store and its files");
}

#[test]
fn end_markers_and_small_remainders() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    // encoded size = 46 + body; segment 0: 16046 + 246 = 16292, 92 bytes left (end
    // marker); segment 1: 146 + 16218 = 16364, 20 bytes left (nothing written).
    let mut items = Vec::new();
    for (k, n) in [16000usize, 200, 100, 16172, 100].into_iter().enumerate() {
        let i = k as u64 + 1;
        let mut it = entry(i, 1, if i == 1 { 0 } else { 1 });
        it.item_type = 0;
        it.header = Default::default();
        it.body = vec![i as u8; n].into();
        items.push(it);
    }
    log.append(&items).unwrap();
    log.sync().unwrap();
    let seg0 = std::fs::read(d.path().join("log/00000000000000000000")).unwrap();
    assert_eq!(&seg0[16292..16296], &[0xF1, 0x9A, 0x7B, 0xCB]);
    let seg1 = std::fs::read(d.path().join("log/00000000000000016384")).unwrap();
    assert_eq!(&seg1[16364..], &[0u8; 20]);
    assert_eq!(log.next_item_pos(4).unwrap(), 16384 + 16364);
    assert_eq!(log.next_pos(), 32768 + 146);
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(read_all(&mut log, 1), items);
}

#[test]
fn truncate_then_append() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 300, 1, 0)).unwrap();
    log.set_commit_index(100);
    log.sync().unwrap();
    // committed entries cannot be truncated
    assert!(matches!(
        log.truncate_tail(100),
        Err(StoreError::InvalidArgument(_))
    ));
    log.truncate_tail(201).unwrap();
    assert_eq!(log.last_index(), 200);
    assert_eq!(log.last_term(), 1);
    let new = entries(201, 350, 2, 1);
    log.append(&new).unwrap();
    log.sync().unwrap();
    let all = read_all(&mut log, 1);
    assert_eq!(&all[..200], &entries(1, 200, 1, 0)[..]);
    assert_eq!(&all[200..], &new[..]);
    drop(log);
    // the stale entries of term 1 after the new tail are never resurrected
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((2, 350)));
    assert_eq!(read_all(&mut log, 1)[200..], new[..]);
    // truncate to fewer entries than before, then reopen: the log ends there
    log.truncate_tail(250).unwrap();
    log.sync().unwrap();
    drop(log);
    let log = LogStore::open(d.path(), cfg()).unwrap();
    // Nothing is erased (as in the reference): entries 250.. are still on disk, CRC
    // valid and continue entry 249, so recovery keeps them. That is safe in Raft: they
    // were never overwritten by a conflicting entry and are uncommitted.
    assert_eq!(log.last_index(), 350);
}

#[test]
fn truncate_at_segment_start_continues_previous_segment() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 200, 1, 0)).unwrap();
    log.sync().unwrap();
    // find an entry that starts a segment: its predecessor ended elsewhere
    let mut k = 2;
    loop {
        let start_k = log.next_item_pos(k).unwrap()
            - log.read(k, 1, usize::MAX).unwrap()[0].encoded_len() as u64;
        if start_k.is_multiple_of(16384) {
            break;
        }
        k += 1;
    }
    let end_prev = log.next_item_pos(k - 1).unwrap();
    log.truncate_tail(k).unwrap();
    assert_eq!(log.next_pos(), end_prev);
    let new = entries(k, k + 20, 2, 1);
    log.append(&new).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.last_index(), k + 20);
    assert_eq!(read_all(&mut log, k), new);
}

#[test]
fn append_validation() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 10, 2, 0)).unwrap();
    // gap
    assert!(log.append(&entries(12, 12, 2, 2)).is_err());
    // wrong prev term
    assert!(log.append(&entries(11, 11, 2, 1)).is_err());
    // lower term
    assert!(log.append(&entries(11, 11, 1, 2)).is_err());
    // too large for a segment
    let mut big = entry(11, 2, 2);
    big.body = vec![0u8; 20000].into();
    assert!(log.append(&[big]).is_err());
    assert_eq!(log.last_index(), 10);
    log.append(&entries(11, 11, 3, 2)).unwrap();
}

#[test]
fn match_pos_on_disk_and_cache() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 100, 1, 0)).unwrap();
    log.append(&entries(101, 200, 3, 1)).unwrap();
    log.append(&entries(201, 300, 4, 3)).unwrap();
    log.sync().unwrap();
    assert_eq!(log.find_match_pos(3, 150).unwrap(), Some((3, 150)));
    assert_eq!(log.find_match_pos(2, 150).unwrap(), Some((1, 100)));
    assert_eq!(log.find_match_pos(5, 1000).unwrap(), Some((4, 300)));
    assert_eq!(log.find_match_pos(3, 1000).unwrap(), Some((3, 200)));
    assert_eq!(log.find_match_pos(0, 50).unwrap(), None);
    assert_eq!(log.find_match_pos(4, 200).unwrap(), Some((3, 199)));
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    // after reopen the tail cache is empty: every lookup reads headers from disk
    assert_eq!(log.find_match_pos(3, 150).unwrap(), Some((3, 150)));
    assert_eq!(log.find_match_pos(2, 250).unwrap(), Some((1, 100)));
}

#[test]
fn delete_after_snapshot_honours_delay_and_readers() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 800, 1, 0)).unwrap();
    log.set_commit_index(800);
    log.sync().unwrap();
    log.maybe_flush_index(true).unwrap();
    let segs = log.segment_count();
    log.mark_truncate_by_index(400, Duration::from_millis(200));
    // not yet: delay
    assert_eq!(log.delete_expired(Instant::now()).unwrap(), 0);
    let later = Instant::now() + Duration::from_millis(300);
    let n = log.delete_expired(later).unwrap();
    assert!(n > 0);
    assert_eq!(log.segment_count(), segs - n);
    let first = log.first_index();
    assert!(first <= 400 && first > 1, "first index {first}");
    assert!(log.read(first - 1, 1, 1).is_err());
    assert_eq!(log.read(first, 1, usize::MAX).unwrap()[0].index, first);
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.first_index(), first);
    assert_eq!(log.last_index(), 800);
    assert_eq!(read_all(&mut log, first), entries(first, 800, 1, 1));
    // by timestamp: entries have timestamp 1.7e12 + index
    log.mark_truncate_by_timestamp(1_700_000_000_000 + 700, u64::MAX, Duration::ZERO);
    assert!(log.delete_expired(Instant::now()).unwrap() > 0);
    assert!(log.first_index() > first && log.first_index() <= 700);
}

#[test]
fn install_begin_finish() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 50, 1, 0)).unwrap();
    log.sync().unwrap();
    // with the position to vote with meanwhile (dt only)
    log.begin_install(Some((1, 1000))).unwrap();
    assert!(matches!(
        log.append(&entries(51, 51, 1, 1)),
        Err(StoreError::Installing)
    ));
    drop(log);
    // a crash during the install: the log reports "install needed", the status keeps
    // the position
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), None);
    assert_eq!(log.segment_count(), 0);
    let st = log.persisted_state();
    assert!(st.install_snapshot);
    assert_eq!(st.install_vote, Some((1, 1000)));
    // finish: next entry 1001 at the leader's position 40000 (inside segment 2)
    log.finish_install(1001, 40000).unwrap();
    assert_eq!(log.persisted_state().install_vote, None);
    log.set_prev_term_after_install(5);
    assert!(log.append(&entries(1001, 1001, 6, 4)).is_err());
    let new = entries(1001, 1100, 6, 5);
    let mut log = append_commit_and_reopen(log, d.path(), &new);
    assert_eq!(log.init_result(), Some((6, 1100)));
    assert_eq!(log.first_index(), 1001);
    assert_eq!(read_all(&mut log, 1001), new);
    assert!(!d.path().join("log/00000000000000000000").exists());
}

#[test]
fn install_then_crash_before_anything_persisted_needs_install() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.begin_install(None).unwrap();
    log.finish_install(501, 12345).unwrap();
    drop(log);
    let log = LogStore::open(d.path(), cfg()).unwrap();
    // like the reference: nothing after the snapshot is known durable
    assert_eq!(log.init_result(), None);
}

/// An install that recorded the snapshot's term (`dtFirstValidTerm`) and nothing
/// written after it: the restart finds an empty log after the snapshot's entry (the
/// node goes on from its saved snapshot, or votes with that position), and the next
/// append is chain checked against it. Entries written after it but not yet anchored
/// by the index are read back, chained to the snapshot's entry (the reference says
/// "install needed" there); a torn first one leaves the empty log after the install.
#[test]
fn install_with_term_then_crash_before_anything_persisted_is_an_empty_log_after_it() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.begin_install(None).unwrap();
    log.finish_install_with_term(501, 12345, Some(4)).unwrap();
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((4, 500)));
    assert_eq!(log.first_index(), 501);
    // the match-position search counts the snapshot's entry as the log's
    assert_eq!(log.find_match_pos(5, 600).unwrap(), Some((4, 500)));
    assert!(
        log.append(&entries(501, 501, 5, 3)).is_err(),
        "chain checked"
    );
    log.append(&entries(501, 510, 5, 4)).unwrap();
    assert_eq!(log.find_match_pos(4, 505).unwrap(), Some((4, 500)));
    assert_eq!(log.find_match_pos(3, 505).unwrap(), None);
    assert_eq!(log.find_match_pos(5, 505).unwrap(), Some((5, 505)));
    log.sync().unwrap();
    drop(log);
    // entries 501.. written and synced, nothing committed so no index anchor yet: the
    // scan from firstValidPos finds them
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((5, 510)));
    assert_eq!(log.first_index(), 501);
    assert_eq!(read_all(&mut log, 501), entries(501, 510, 5, 4));
    assert_eq!(log.find_match_pos(4, 505).unwrap(), Some((4, 500)));
    // and the log goes on from there
    log.append(&entries(511, 512, 5, 5)).unwrap();
    log.sync().unwrap();
    drop(log);
    let log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((5, 512)));
}

/// After an install without an index anchor, a torn first entry is not taken, nor
/// what follows it, in its segment or the next: the log is empty after the install.
#[test]
fn install_with_term_then_a_torn_first_entry_is_an_empty_log_after_it() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.begin_install(None).unwrap();
    log.finish_install_with_term(501, 0, Some(4)).unwrap();
    log.append(&entries(501, 640, 5, 4)).unwrap();
    log.sync().unwrap();
    assert!(log.segment_count() > 1, "entries in a second segment too");
    drop(log);
    let seg = d.path().join("log").join(format!("{:020}", 0));
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xff; 8], 8).unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((4, 500)));
    assert_eq!(log.first_index(), 501);
    log.append(&entries(501, 501, 5, 4)).unwrap();
}

#[test]
fn recovery_restores_from_persist_idx_index() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 500, 1, 0)).unwrap();
    log.set_commit_index(300);
    log.sync().unwrap();
    log.maybe_flush_index(true).unwrap();
    assert_eq!(log.persist_idx_index(), 300);
    log.append(&entries(501, 600, 1, 1)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.last_index(), 600);
    assert_eq!(read_all(&mut log, 1).len(), 600);
}

#[test]
fn corrupt_committed_entry_refuses_to_start_with_file_and_offset() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 300, 1, 0)).unwrap();
    log.set_commit_index(300);
    log.sync().unwrap();
    log.close().unwrap();
    // persistIdxIndex is 300 now; lower it to 1 so that recovery scans everything
    let mut sm = dt_raft::store::StatusManager::load(&d.path().join("raft.status"), true).unwrap();
    sm.status.persist_idx_index = 0;
    sm.persist().unwrap();
    let pos = {
        let mut l = LogStore::open(d.path(), cfg()).unwrap();
        l.next_item_pos(149).unwrap()
    };
    let seg = d.path().join(format!("log/{:020}", pos / 16384 * 16384));
    let mut b = std::fs::read(&seg).unwrap();
    b[(pos % 16384) as usize + 50] ^= 0x01; // inside entry 150's body
    std::fs::write(&seg, b).unwrap();
    match LogStore::open(d.path(), cfg()) {
        Err(StoreError::Corrupt {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, seg);
            assert_eq!(offset, pos % 16384);
            assert!(reason.contains("150"), "{reason}");
        }
        other => panic!("expected corruption error, got {other:?}"),
    }
}

#[test]
fn first_commit_after_install_is_flushed_at_once() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.begin_install(None).unwrap();
    log.finish_install(501, 0).unwrap();
    log.append(&entries(501, 505, 2, 0)).unwrap();
    log.set_commit_index(503);
    log.sync().unwrap();
    assert_eq!(log.persist_idx_index(), 503);
    drop(log);
    let log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((2, 505)));
}

#[test]
fn a_fresh_log_waits_for_its_first_index_flush_and_still_recovers() {
    // A log that starts at entry 1 recovers from position 0: its first commit does not
    // make it create (and fsync) an index file at once, as a first commit after an
    // install does (above).
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 5, 1, 0)).unwrap();
    log.set_commit_index(3);
    log.sync().unwrap();
    assert_eq!(log.persist_idx_index(), 0);
    let idx_files = std::fs::read_dir(d.path().join("idx"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(idx_files, 0, "no index file before the first flush is due");
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.init_result(), Some((1, 5)));
    assert_eq!(read_all(&mut log, 1), entries(1, 5, 1, 0));
    // A forced flush (as at close) still writes it.
    log.set_commit_index(5);
    log.maybe_flush_index(true).unwrap();
    assert_eq!(log.persist_idx_index(), 5);
}

#[test]
fn status_commit_index_never_exceeds_the_fsynced_log() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 10, 1, 0)).unwrap();
    log.sync().unwrap();
    // a leader commit beyond what this node holds
    log.set_commit_index(50);
    log.close().unwrap();
    drop(log);
    let sm = dt_raft::store::StatusManager::load(&d.path().join("raft.status"), true).unwrap();
    assert_eq!(sm.status.commit_index, 10);
    let log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.last_index(), 10);
}

#[test]
fn verify_on_start_refuses_a_corrupt_entry_before_the_anchor() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    log.append(&entries(1, 300, 1, 0)).unwrap();
    log.set_commit_index(300);
    log.sync().unwrap();
    log.close().unwrap();
    let pos = log.next_item_pos(99).unwrap();
    drop(log);
    let seg = d.path().join(format!("log/{:020}", pos / 16384 * 16384));
    let mut b = std::fs::read(&seg).unwrap();
    b[(pos % 16384) as usize + 60] ^= 0x04; // body of entry 100, before the anchor (300)
    std::fs::write(&seg, b).unwrap();
    // default: starts (the anchor is after the damage); the read of 100 fails loudly
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert!(matches!(
        log.read(100, 1, usize::MAX),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(log.read(101, 1, usize::MAX).unwrap()[0].index, 101);
    drop(log);
    // verify_on_start: refuses to start, naming file and offset
    let strict = StoreConfig {
        verify_on_start: true,
        ..cfg()
    };
    match LogStore::open(d.path(), strict) {
        Err(StoreError::Corrupt {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, seg);
            assert_eq!(offset, pos % 16384);
            assert!(reason.contains("100"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn an_owned_appends_entry_list_comes_back_empty_for_the_next_append() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(
        log.take_item_list().capacity(),
        0,
        "nothing appended yet: a new list"
    );
    let e = entries(1, 10, 1, 0);
    let w = log.prepare_append_owned(e[..6].to_vec()).unwrap();
    let done = log.plan_write(vec![w], true).run().unwrap();
    log.write_done(done).unwrap();
    let mut list = log.take_item_list();
    assert!(list.is_empty());
    assert!(list.capacity() >= 6, "the appended list, its capacity kept");
    assert_eq!(
        log.take_item_list().capacity(),
        0,
        "taken: the next one is new"
    );
    // the list gathers the next append, which reads back whole
    list.extend_from_slice(&e[6..]);
    let w = log.prepare_append_owned(list).unwrap();
    let done = log.plan_write(vec![w], true).run().unwrap();
    log.write_done(done).unwrap();
    log.sync().unwrap();
    assert_eq!(read_all(&mut log, 1), e);
}

#[test]
fn owned_and_borrowed_batches_encode_alike_and_recycled_buffers_start_clean() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = LogStore::open(da.path(), cfg()).unwrap();
    let mut b = LogStore::open(db.path(), cfg()).unwrap();
    let e = entries(1, 400, 1, 0);
    // Batches of changing sizes, so a recycled (larger) buffer is reused for a smaller
    // batch and any leftover bytes would show.
    let mut from = 0usize;
    for n in [60usize, 3, 41, 1, 90, 7, 120, 2, 76] {
        let items = &e[from..from + n];
        from += n;
        let wa = a.prepare_append(items).unwrap();
        let wb = b.prepare_append_owned(items.to_vec()).unwrap();
        let expect: Vec<u8> = items.iter().flat_map(|it| it.encode()).collect();
        let got_a: Vec<u8> = wa.chunks.iter().flat_map(|c| c.data.clone()).collect();
        let got_b: Vec<u8> = wb.chunks.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(wa.chunks.len(), wb.chunks.len());
        for (x, y) in wa.chunks.iter().zip(wb.chunks.iter()) {
            assert_eq!(x.pos, y.pos);
        }
        assert_eq!(got_a, got_b);
        // Without segment-end markers the chunks are exactly the items' encodings.
        if wa.chunks.len() == 1 {
            assert_eq!(got_a, expect);
        }
        for (log, w) in [(&mut a, wa), (&mut b, wb)] {
            let done = log.plan_write(vec![w], true).run().unwrap();
            log.write_done(done).unwrap();
        }
    }
    a.sync().unwrap();
    b.sync().unwrap();
    assert_eq!(read_all(&mut a, 1), e[..from].to_vec());
    assert_eq!(read_all(&mut b, 1), e[..from].to_vec());
    drop(b);
    let mut b = LogStore::open(db.path(), cfg()).unwrap();
    assert_eq!(b.last_index(), from as u64);
    assert_eq!(read_all(&mut b, 1), e[..from].to_vec());
}

/// Appends one entry at a time with a sync after each until something fails, then
/// `recover()` (space freed, fsyncs healthy again) and keeps trying: a fail-stop store
/// refuses everything after the first failure. Returns the last acknowledged index and
/// the first error.
fn append_until_failure(
    log: &mut LogStore,
    commit: bool,
    recover: impl FnOnce(),
) -> (u64, StoreError) {
    let mut acked = 0;
    let mut first_err = None;
    let mut recover = Some(recover);
    let mut attempts_after = 0;
    let mut i = 1u64;
    while attempts_after < 50 {
        assert!(i < 5000, "nothing ever failed");
        let r = log
            .append(&[entry(i, 1, if i == 1 { 0 } else { 1 })])
            .and_then(|_| log.sync());
        match r {
            Ok(()) => {
                assert!(
                    first_err.is_none(),
                    "entry {i} acknowledged after the write failure {first_err:?}"
                );
                acked = i;
                if commit {
                    log.set_commit_index(i);
                }
                i += 1;
            }
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e);
                    (recover.take().unwrap())();
                } else {
                    assert!(matches!(e, StoreError::Failed { .. }), "{e:?}");
                }
                attempts_after += 1;
                // last_index does not count entries that were never written (the
                // entry whose sync failed was written)
                assert!(
                    log.last_index() <= acked + 1,
                    "{} > {acked} + 1",
                    log.last_index()
                );
                i = log.last_index() + 1;
            }
        }
    }
    (acked, first_err.unwrap())
}

fn assert_acked_survive(dir: &std::path::Path, acked: u64) {
    let mut log = LogStore::open(dir, cfg()).unwrap();
    assert!(
        log.last_index() >= acked,
        "acknowledged up to {acked}, the reopened log ends at {}",
        log.last_index()
    );
    for k in 1..=acked {
        assert_eq!(
            log.read(k, 1, usize::MAX).unwrap()[0],
            entry(k, 1, if k == 1 { 0 } else { 1 })
        );
    }
}

/// A disk that fills up (ENOSPC part-way through a write, through the fault-injecting
/// file layer), then gets space back: the store stays failed and loses nothing it
/// acknowledged. Failed on the old code: appends after the failure were acknowledged
/// and lost on reopen.
#[test]
fn full_disk_is_fail_stop() {
    use dt_raft::store::faults::{DiskFaults, ENOSPC};
    for commit in [false, true] {
        // Several budgets, so that the failure hits log writes, segment creation,
        // index-file creation and status-file writes.
        for space in [3_000u64, 16_500, 17_000, 20_000, 40_000, 41_000] {
            let d = tempfile::tempdir().unwrap();
            let disk = DiskFaults::with_space(space);
            let mut c = cfg();
            c.faults = Some(disk.clone());
            let mut log = LogStore::open(d.path(), c).unwrap();
            let (acked, e) = append_until_failure(&mut log, commit, || disk.set_space(u64::MAX));
            assert_eq!(e.raw_os_error(), Some(ENOSPC), "{e}");
            assert_eq!(e.io_kind(), Some(std::io::ErrorKind::StorageFull));
            match &e {
                StoreError::Failed { cause } => {
                    assert!(matches!(&**cause, StoreError::Io { .. }), "{cause:?}")
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(log.close(), Err(StoreError::Failed { .. })));
            drop(log);
            assert_acked_survive(d.path(), acked);
        }
    }
}

/// An fsync that fails with EIO stops the store even when later fsyncs would succeed
/// (the page cache may have dropped the data). Failed on the old code: the next
/// append and sync were acknowledged.
#[test]
fn failed_fsync_is_fail_stop() {
    use dt_raft::store::faults::{DiskFaults, EIO};
    let d = tempfile::tempdir().unwrap();
    let disk = DiskFaults::healthy();
    let mut c = cfg();
    c.faults = Some(disk.clone());
    let mut log = LogStore::open(d.path(), c).unwrap();
    for i in 1..=20 {
        log.append(&[entry(i, 1, if i == 1 { 0 } else { 1 })])
            .unwrap();
        log.sync().unwrap();
    }
    disk.fail_syncs(Some(EIO));
    log.append(&[entry(21, 1, 1)]).unwrap();
    let e = log.sync().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
    assert!(e.to_string().contains("fdatasync"), "{e}");
    disk.fail_syncs(None);
    assert!(matches!(
        log.append(&[entry(22, 1, 1)]),
        Err(StoreError::Failed { .. })
    ));
    assert!(matches!(log.sync(), Err(StoreError::Failed { .. })));
    drop(log);
    assert_acked_survive(d.path(), 20);
}

/// Two stores on one data directory would both write the segments and map the index
/// files. The second open fails with a typed error naming the directory, in this
/// process and in another one; close and drop release the lock. Failed on the old
/// code: the second open succeeded.
#[test]
fn a_data_directory_has_one_owner() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    match LogStore::open(d.path(), cfg()) {
        Err(e @ StoreError::Locked { .. }) => {
            let StoreError::Locked { dir, .. } = &e else {
                unreachable!()
            };
            assert_eq!(dir, d.path());
            assert!(
                e.to_string().contains(&d.path().display().to_string()),
                "{e}"
            );
        }
        other => panic!("second open: {other:?}"),
    }
    // another process
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_probe_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DT_LOCK_PROBE_DIR", d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PROBE: locked"), "child said: {stdout}");
    log.append(&entries(1, 3, 1, 0)).unwrap();
    log.close().unwrap();
    // closed: released, even before the drop
    let log2 = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log2.last_index(), 3);
    drop(log2);
    drop(log);
    // dropped without close: released
    let log3 = LogStore::open(d.path(), cfg()).unwrap();
    drop(log3);
    LogStore::open(d.path(), cfg()).unwrap();
}

/// Run by `a_data_directory_has_one_owner` in a child process; does nothing otherwise.
#[test]
fn lock_probe_child() {
    let Some(dir) = std::env::var_os("DT_LOCK_PROBE_DIR") else {
        return;
    };
    match LogStore::open(std::path::Path::new(&dir), cfg()) {
        Err(StoreError::Locked { .. }) => println!("PROBE: locked"),
        Err(e) => println!("PROBE: other error {e}"),
        Ok(_) => println!("PROBE: opened"),
    }
}

/// The blocking store persists term and vote durably, and a failure to do so stops it.
#[test]
fn persist_term_vote_is_durable_and_fail_stop() {
    use dt_raft::store::faults::{DiskFaults, EIO};
    let d = tempfile::tempdir().unwrap();
    let disk = DiskFaults::healthy();
    let mut c = cfg();
    c.faults = Some(disk.clone());
    let mut log = LogStore::open(d.path(), c.clone()).unwrap();
    log.persist_term_vote(3, 5).unwrap();
    assert_eq!(log.persisted_state().current_term, 3);
    disk.fail_syncs(Some(EIO));
    let e = log.persist_term_vote(4, 1).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
    disk.fail_syncs(None);
    assert!(matches!(
        log.persist_term_vote(4, 1),
        Err(StoreError::Failed { .. })
    ));
    drop(log);
    let log = LogStore::open(d.path(), cfg()).unwrap();
    let st = log.persisted_state();
    assert_eq!((st.current_term, st.voted_for), (3, 5));
}

/// A bad configuration is refused by `LogStore::open` before any file is touched, with
/// a typed error naming the field. Old code: some fields failed later with an untyped
/// message (a status file name "log" was read as a file, a 1000-byte segment size
/// failed after the directory and status file were set up), others (read block 0)
/// were silently replaced.
#[test]
fn config_is_validated_before_anything_is_touched() {
    type Edit = fn(&mut StoreConfig);
    let cases: Vec<(&str, Edit)> = vec![
        ("log_file_size", |c| c.log_file_size = 1000),
        ("log_file_size", |c| c.log_file_size = 1024),
        ("idx_items_per_file", |c| c.idx_items_per_file = 100),
        ("idx_flush_threshold", |c| c.idx_flush_threshold = 0),
        ("read_block_size", |c| c.read_block_size = 0),
        ("status_file_name", |c| c.status_file_name = "log".into()),
        ("status_file_name", |c| c.status_file_name = "a/b".into()),
        ("status_file_name", |c| {
            c.status_file_name = "dt.lock".into()
        }),
    ];
    for (field, edit) in cases {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("group");
        let mut c = cfg();
        edit(&mut c);
        match LogStore::open(&dir, c.clone()) {
            Err(e @ StoreError::InvalidConfig { .. }) => {
                let StoreError::InvalidConfig { field: f, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(*f, field, "{e}");
                assert!(e.to_string().contains(field), "{e}");
            }
            other => panic!("{field}: {other:?}"),
        }
        assert!(!dir.exists(), "{field}: the directory was created");
        assert!(c.validated().is_err());
    }
    assert!(cfg().validated().is_ok());
    assert!(StoreConfig::default().validate().is_ok());
}

/// Counts the writes to log segments (files directly in the log's directory, not the
/// index or status files).
#[derive(Debug, Default)]
struct SegmentWrites {
    n: std::sync::atomic::AtomicUsize,
}

impl dt_raft::store::faults::FileFaults for SegmentWrites {
    fn before_write(
        &self,
        path: &std::path::Path,
        _len: usize,
    ) -> Result<(), (usize, std::io::Error)> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
            self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn a_write_job_of_many_batches_writes_each_segment_once() {
    let d = tempfile::tempdir().unwrap();
    let counter = std::sync::Arc::new(SegmentWrites::default());
    let mut c = cfg();
    c.faults = Some(counter.clone());
    let mut log = LogStore::open(d.path(), c.clone()).unwrap();
    let seg = c.log_file_size;
    let e = entries(1, 300, 1, 0);
    // Jobs of several batches each, the last ones crossing into the next segments.
    let mut from = 0usize;
    let mut jobs = 0;
    while from < e.len() {
        let mut batches = Vec::new();
        for n in [7usize, 1, 12, 5] {
            let n = n.min(e.len() - from);
            if n == 0 {
                break;
            }
            batches.push(log.prepare_append(&e[from..from + n]).unwrap());
            from += n;
        }
        let segments: std::collections::BTreeSet<u64> = batches
            .iter()
            .flat_map(|b| b.chunks.iter().map(|ch| ch.pos / seg))
            .collect();
        let before = counter.n.load(std::sync::atomic::Ordering::SeqCst);
        let done = log.plan_write(batches, true).run().unwrap();
        log.write_done(done).unwrap();
        let writes = counter.n.load(std::sync::atomic::Ordering::SeqCst) - before;
        // One pwrite per segment touched, however many batches the job carries.
        assert_eq!(writes, segments.len(), "job {jobs}");
        jobs += 1;
    }
    assert!(jobs > 10);
    assert_eq!(read_all(&mut log, 1), e);
    drop(log);
    let mut log = LogStore::open(d.path(), cfg()).unwrap();
    assert_eq!(log.last_index(), e.len() as u64);
    assert_eq!(read_all(&mut log, 1), e);
}
