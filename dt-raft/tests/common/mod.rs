//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod tmpfs;

use std::path::Path;

use dt_raft::store::LogItem;

/// Recursively copies `from` into `to` (making files writable).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::write(&dst, std::fs::read(e.path()).unwrap()).unwrap();
        }
    }
}

/// A deterministic entry: body size varies with the index.
pub fn entry(index: u64, term: u32, prev_term: u32) -> LogItem {
    let n = (index * 37 % 300) as usize;
    let body: Vec<u8> = (0..n).map(|k| (index as usize * 7 + k) as u8).collect();
    let header = if index.is_multiple_of(5) {
        vec![index as u8; 3]
    } else {
        Vec::new()
    };
    LogItem {
        item_type: if index.is_multiple_of(11) { 1 } else { 0 },
        biz_type: (index % 100) as u8,
        term,
        prev_log_term: prev_term,
        index,
        timestamp: 1_700_000_000_000 + index as i64,
        header: header.into(),
        body: body.into(),
    }
}

/// Entries `from..=to` all in `term` (prev term of the first = `prev`).
pub fn entries(from: u64, to: u64, term: u32, prev: u32) -> Vec<LogItem> {
    (from..=to)
        .map(|i| entry(i, term, if i == from { prev } else { term }))
        .collect()
}
