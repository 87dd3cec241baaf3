//! Restoring a group directory from a snapshot alone (`store::restore`): what the
//! restored directory holds, how a log opened on it continues, and what is refused.

mod common;

use std::path::{Path, PathBuf};

use common::entries;
use dt_raft::store::restore::{restore_from_snapshot, RestoreError};
use dt_raft::store::snapshot::{SnapshotDir, SnapshotInfo, SnapshotMeta};
use dt_raft::store::{LogStore, StoreConfig};

fn cfg() -> StoreConfig {
    StoreConfig::small_for_tests()
}

/// A state-machine stream long enough for many 4 KiB blocks.
fn stream() -> Vec<u8> {
    (0..50_000u32).flat_map(|i| (i * 7).to_le_bytes()).collect()
}

/// Saves a snapshot of `stream()` at (term 4, index 500) in `dir` (a backup copy's
/// folder) and returns its metadata file.
fn backup(dir: &Path) -> PathBuf {
    let mut w = SnapshotDir::new(dir, true).create(4096).unwrap();
    for c in stream().chunks(10_000) {
        w.write(c).unwrap();
    }
    let meta = SnapshotMeta {
        last_included_index: 500,
        last_included_term: 4,
        members: vec![1, 2, 3],
        observers: vec![4],
        last_config_change_index: 3,
        ..SnapshotMeta::default()
    };
    w.finish(meta).unwrap().idx_path
}

fn read_stream(s: &SnapshotInfo) -> Vec<u8> {
    let mut r = s.open_reader().unwrap();
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk().unwrap() {
        out.extend(c);
    }
    out
}

#[test]
fn a_restored_directory_is_a_node_that_just_installed_the_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let idx = backup(&d.path().join("backup"));
    let group = d.path().join("data").join("0");
    let r = restore_from_snapshot(&idx, &group, cfg()).unwrap();
    assert_eq!(
        (r.last_included_index, r.last_included_term),
        (500, 4),
        "{r:?}"
    );
    assert_eq!(
        (r.members.clone(), r.observers.clone()),
        (vec![1, 2, 3], vec![4])
    );
    assert_eq!(r.data_bytes, stream().len() as u64);

    // the snapshot, with its metadata, every block checked
    let kept = SnapshotDir::new(&group.join("snapshot"), true)
        .latest_verified()
        .unwrap()
        .expect("a snapshot in the group directory");
    assert_eq!(kept.idx_path, r.snapshot_idx);
    assert_eq!(
        (
            kept.meta.last_included_index,
            kept.meta.last_included_term,
            kept.meta.members.clone(),
            kept.meta.observers.clone(),
            kept.meta.last_config_change_index,
            kept.meta.buffer_size
        ),
        (500, 4, vec![1, 2, 3], vec![4], 3, 4096)
    );
    assert_eq!(read_stream(&kept), stream());

    // the log: empty after (4, 500), term 4, no vote; the next entry is 501, chain
    // checked against the snapshot's term
    let mut log = LogStore::open(&group, cfg()).unwrap();
    assert_eq!(log.init_result(), Some((4, 500)));
    assert_eq!(log.first_index(), 501);
    assert_eq!(log.base_entry(), Some((4, 500)));
    let st = log.persisted_state();
    assert_eq!((st.current_term, st.voted_for), (4, 0), "{st:?}");
    assert!(st.commit_index >= 500, "{st:?}");
    assert!(
        log.append(&entries(501, 501, 5, 3)).is_err(),
        "chain checked"
    );
    log.append(&entries(501, 520, 5, 4)).unwrap();
    log.set_commit_index(520);
    log.sync().unwrap();
    log.close().unwrap();
    drop(log);
    let log = LogStore::open(&group, cfg()).unwrap();
    assert_eq!(log.init_result(), Some((5, 520)));
}

#[test]
fn a_directory_that_holds_anything_is_left_alone() {
    let d = tempfile::tempdir().unwrap();
    let idx = backup(&d.path().join("backup"));
    let group = d.path().join("0");
    std::fs::create_dir_all(&group).unwrap();
    std::fs::write(group.join("raft.status"), b"older data").unwrap();
    match restore_from_snapshot(&idx, &group, cfg()) {
        Err(e @ RestoreError::NotEmpty(_)) => {
            assert!(e.to_string().contains("move the old directory away"), "{e}")
        }
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    let names: Vec<_> = std::fs::read_dir(&group).unwrap().collect();
    assert_eq!(names.len(), 1);
    assert_eq!(
        std::fs::read(group.join("raft.status")).unwrap(),
        b"older data"
    );
}

#[test]
fn a_damaged_or_incomplete_snapshot_is_refused_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let idx = backup(&d.path().join("backup"));
    let data = idx.with_extension("data");
    let good = std::fs::read(&data).unwrap();
    let group = d.path().join("0");
    let refused = |what: &str| match restore_from_snapshot(&idx, &group, cfg()) {
        Err(RestoreError::BadSnapshot(e)) => {
            assert!(!group.exists(), "{what}: nothing written");
            e.to_string()
        }
        other => panic!("{what}: expected BadSnapshot, got {other:?}"),
    };

    // a flipped byte in the third block's payload
    let mut bad = good.clone();
    bad[2 * 4096 + 100] ^= 0x40;
    std::fs::write(&data, &bad).unwrap();
    let e = refused("bad block");
    assert!(
        e.contains(&data.display().to_string()),
        "names the file: {e}"
    );

    // the data file cut short inside a block
    std::fs::write(&data, &good[..good.len() - 10]).unwrap();
    refused("torn data file");

    // no data file beside the metadata file
    std::fs::remove_file(&data).unwrap();
    let e = refused("no data file");
    assert!(e.contains("data file"), "{e}");

    // a metadata file with a bad checksum
    std::fs::write(&data, &good).unwrap();
    let mut m = std::fs::read(&idx).unwrap();
    let n = m.len();
    m[n - 2] ^= 1;
    std::fs::write(&idx, &m).unwrap();
    refused("bad metadata");

    // not a metadata file at all
    let e = match restore_from_snapshot(&data, &group, cfg()) {
        Err(RestoreError::BadSnapshot(e)) => e.to_string(),
        other => panic!("expected BadSnapshot, got {other:?}"),
    };
    assert!(e.contains(".idx"), "{e}");
    assert!(!group.exists());
}

/// Restores an empty-stream snapshot of `meta` into a new directory and returns the
/// refusal's message; nothing may be written.
fn refusal_of(meta: SnapshotMeta) -> String {
    let d = tempfile::tempdir().unwrap();
    let w = SnapshotDir::new(&d.path().join("backup"), true)
        .create(4096)
        .unwrap();
    let idx = w.finish(meta).unwrap().idx_path;
    let group = d.path().join("0");
    let e = match restore_from_snapshot(&idx, &group, cfg()) {
        Err(RestoreError::BadSnapshot(e)) => e.to_string(),
        other => panic!("expected BadSnapshot, got {other:?}"),
    };
    assert!(!group.exists(), "{e}");
    e
}

#[test]
fn a_snapshot_of_nothing_is_refused() {
    let e = refusal_of(SnapshotMeta {
        members: vec![1],
        ..SnapshotMeta::default()
    });
    assert!(e.contains("nothing to restore"), "{e}");
}

#[test]
fn a_bad_block_found_while_copying_into_an_empty_directory_leaves_it_empty() {
    let d = tempfile::tempdir().unwrap();
    let idx = backup(&d.path().join("backup"));
    let data = idx.with_extension("data");
    let mut bad = std::fs::read(&data).unwrap();
    let n = bad.len();
    bad[n - 200] ^= 0x01; // in the last block: the earlier ones are copied first
    std::fs::write(&data, &bad).unwrap();
    let group = d.path().join("0");
    std::fs::create_dir_all(&group).unwrap();
    match restore_from_snapshot(&idx, &group, cfg()) {
        Err(RestoreError::BadSnapshot(_)) => {}
        other => panic!("expected BadSnapshot, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(&group).unwrap().count(), 0);
}

#[test]
fn a_snapshot_at_the_last_index_is_refused() {
    let e = refusal_of(SnapshotMeta {
        last_included_index: u64::MAX,
        last_included_term: 2,
        members: vec![1],
        ..SnapshotMeta::default()
    });
    assert!(e.contains("no index after it"), "{e}");
}
