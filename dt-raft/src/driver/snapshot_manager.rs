//! The group's snapshot files (raft.md §16.2, storage.md §5): recovery of the newest
//! valid snapshot at init, saving a state-machine snapshot with fsync, retention of
//! `maxKeepSnapshots`.
//!
//! The file work is blocking, so the driver runs it off the dispatcher thread
//! ([`off_thread`]) and awaits the result; this type only holds the settings.
//!
//! Snapshots stream: a save or an install writes its chunks through a
//! [`SnapshotSink`] as they come, and recovery reads through a [`SnapshotSource`], in
//! batches of about [`STREAM_BATCH_BYTES`], so a snapshot is never held whole in memory
//! (the files' case; a [`SnapshotStore`] of one's own takes and gives whole snapshots).
//!
//! A [`SnapshotStore`] of one's own (a simulation's disk) replaces the files:
//! [`SnapshotManager::with_store`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

use crate::sm::SnapshotInfo;
use crate::store::snapshot::{
    SnapshotDir, SnapshotMeta, SnapshotReader, SnapshotWriter, DEFAULT_BUFFER_SIZE,
};

/// How many bytes of a streamed snapshot are handed to (or read from) the files in one
/// trip off the dispatcher thread.
pub const STREAM_BATCH_BYTES: usize = 1 << 20;

/// A snapshot read back from its store: what it covers and its payload in blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedSnapshot {
    /// What the snapshot covers.
    pub info: SnapshotInfo,
    /// The payload, in the order it was saved.
    pub chunks: Vec<Bytes>,
}

/// The future of a [`SnapshotStore`] operation (not `Send`: awaited on the group's
/// dispatcher thread); errors are messages for the log.
pub type SnapshotStoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>>>>;

/// Where a group keeps its saved snapshots, when not in snapshot files (a
/// simulation's disk). Called on the group's dispatcher thread; the futures must not
/// block it.
pub trait SnapshotStore {
    /// The newest complete snapshot, if any (at group init).
    fn recover(&self) -> SnapshotStoreFuture<Option<SavedSnapshot>>;

    /// Saves a snapshot covering `info` with payload `chunks`, durably (a crash before
    /// the future resolves keeps the previous one). Resolves with the last included
    /// index of the oldest snapshot kept: the log may be deleted up to it.
    fn save(&self, info: SnapshotInfo, chunks: Vec<Bytes>) -> SnapshotStoreFuture<u64>;
}

/// The snapshot files of one group (`<data_dir>/snapshot`) and their settings, made
/// by [`RaftFactory::create_snapshot_manager`](crate::sm::RaftFactory::create_snapshot_manager).
/// The group's driver uses it: it recovers the newest valid snapshot at init, saves
/// one every `saveSnapshotSeconds`, after an install and on close, keeps
/// `maxKeepSnapshots`.
#[derive(Clone)]
pub struct SnapshotManager {
    files: Option<SnapshotFiles>,
    store: Option<Rc<dyn SnapshotStore>>,
}

impl std::fmt::Debug for SnapshotManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotManager")
            .field("files", &self.files)
            .field("custom_store", &self.store.is_some())
            .finish()
    }
}

/// The file settings (`Send`: the file work runs off the dispatcher thread).
#[derive(Clone, Debug)]
struct SnapshotFiles {
    dir: PathBuf,
    sync: bool,
    keep: usize,
}

fn to_u32(v: &[i32]) -> Vec<u32> {
    v.iter().filter(|&&x| x > 0).map(|&x| x as u32).collect()
}

fn to_i32(v: &[u32]) -> Vec<i32> {
    v.iter().map(|&x| x as i32).collect()
}

impl SnapshotManager {
    /// The manager of `<data_dir>/snapshot`, fsyncing if `sync`, keeping at most
    /// `max(1, keep)` snapshots.
    pub fn new(data_dir: &std::path::Path, sync: bool, keep: usize) -> Self {
        SnapshotManager {
            files: Some(SnapshotFiles {
                dir: data_dir.join("snapshot"),
                sync,
                keep,
            }),
            store: None,
        }
    }

    /// A manager keeping the snapshots in `store` instead of files.
    pub fn with_store(store: Rc<dyn SnapshotStore>) -> Self {
        SnapshotManager {
            files: None,
            store: Some(store),
        }
    }

    /// Start-up: the newest valid snapshot, to be read through (from the files off
    /// the dispatcher thread, or from the store).
    pub(crate) async fn load(&self) -> Result<Option<SnapshotSource>, String> {
        if let Some(s) = &self.store {
            return Ok(s.recover().await?.map(|saved| SnapshotSource {
                info: saved.info,
                from: SourceFrom::Chunks(saved.chunks.into_iter()),
            }));
        }
        let Some(f) = self.files.clone() else {
            return Ok(None);
        };
        let opened = off_thread("dt-snapshot-load", move || f.open_latest())
            .await
            .ok_or_else(|| "snapshot recovery panicked".to_string())??;
        Ok(opened.map(|(info, reader)| SnapshotSource {
            info,
            from: SourceFrom::Files(Some(reader)),
        }))
    }

    /// Starts saving a snapshot covering `info`: write its payload through the sink,
    /// then [`SnapshotSink::finish`] it (dropped unfinished, nothing is saved).
    pub(crate) async fn begin(&self, info: SnapshotInfo) -> Result<SnapshotSink, String> {
        let target = if let Some(s) = &self.store {
            SinkTarget::Store {
                store: s.clone(),
                chunks: Vec::new(),
            }
        } else if let Some(f) = self.files.clone() {
            let d = f.snapshot_dir();
            let writer = off_thread("dt-snapshot-create", move || d.create(DEFAULT_BUFFER_SIZE))
                .await
                .ok_or_else(|| "snapshot create panicked".to_string())?
                .map_err(|e| format!("creating a snapshot file: {e}"))?;
            SinkTarget::Files {
                files: f,
                writer: Some(writer),
                pending: Vec::new(),
                pending_bytes: 0,
            }
        } else {
            SinkTarget::Nowhere
        };
        Ok(SnapshotSink { info, target })
    }
}

/// A snapshot being saved ([`SnapshotManager::begin`]): its chunks go to the files in
/// batches of [`STREAM_BATCH_BYTES`] as they are written. Dropped unfinished, its
/// partial file is deleted (off the dispatcher thread).
pub(crate) struct SnapshotSink {
    info: SnapshotInfo,
    target: SinkTarget,
}

enum SinkTarget {
    Files {
        files: SnapshotFiles,
        /// `None` only while a batch is being written off the thread (or after a
        /// failure).
        writer: Option<SnapshotWriter>,
        pending: Vec<Bytes>,
        pending_bytes: usize,
    },
    Store {
        store: Rc<dyn SnapshotStore>,
        chunks: Vec<Bytes>,
    },
    Nowhere,
}

impl SnapshotSink {
    /// What the snapshot covers.
    pub(crate) fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    /// Adds the next chunk of the payload.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), String> {
        match &mut self.target {
            SinkTarget::Files {
                pending,
                pending_bytes,
                ..
            } => {
                *pending_bytes += chunk.len();
                pending.push(chunk);
                if *pending_bytes >= STREAM_BATCH_BYTES {
                    self.flush().await?;
                }
                Ok(())
            }
            SinkTarget::Store { chunks, .. } => {
                chunks.push(chunk);
                Ok(())
            }
            SinkTarget::Nowhere => Ok(()),
        }
    }

    /// Writes the pending chunks to the file, off the dispatcher thread.
    async fn flush(&mut self) -> Result<(), String> {
        let SinkTarget::Files {
            writer,
            pending,
            pending_bytes,
            ..
        } = &mut self.target
        else {
            return Ok(());
        };
        let chunks = std::mem::take(pending);
        *pending_bytes = 0;
        let mut w = writer
            .take()
            .ok_or_else(|| "the snapshot file failed earlier".to_string())?;
        let back = off_thread("dt-snapshot-write", move || {
            write_chunks(&mut w, &chunks).map(|()| w)
        })
        .await
        .ok_or_else(|| "snapshot write panicked".to_string())??;
        *writer = Some(back);
        Ok(())
    }

    /// Completes the snapshot durably (a crash before this resolves keeps the previous
    /// one) and keeps `maxKeepSnapshots`. Resolves with the last included index of the
    /// oldest snapshot kept: the log may be deleted up to it. Finishes of one group must
    /// not run at once (each takes the next snapshot id).
    pub(crate) async fn finish(mut self) -> Result<u64, String> {
        let info = self.info.clone();
        match std::mem::replace(&mut self.target, SinkTarget::Nowhere) {
            SinkTarget::Files {
                files,
                writer,
                pending,
                ..
            } => {
                let w = writer.ok_or_else(|| "the snapshot file failed earlier".to_string())?;
                off_thread("dt-snapshot-save", move || files.finish(w, &pending, &info))
                    .await
                    .ok_or_else(|| "snapshot save panicked".to_string())?
            }
            SinkTarget::Store { store, chunks } => store.save(info, chunks).await,
            SinkTarget::Nowhere => Ok(info.last_included_index),
        }
    }
}

impl Drop for SnapshotSink {
    fn drop(&mut self) {
        if let SinkTarget::Files {
            writer: Some(w), ..
        } = std::mem::replace(&mut self.target, SinkTarget::Nowhere)
        {
            // deleting the partial file is file work: not on the dispatcher thread
            let _ = std::thread::Builder::new()
                .name("dt-snapshot-drop".into())
                .spawn(move || drop(w));
        }
    }
}

/// The newest saved snapshot at start-up ([`SnapshotManager::load`]): what it covers,
/// and its payload read in batches.
pub(crate) struct SnapshotSource {
    /// What the snapshot covers.
    pub(crate) info: SnapshotInfo,
    from: SourceFrom,
}

enum SourceFrom {
    /// `None` only while a batch is being read off the thread (or after a failure).
    Files(Option<SnapshotReader>),
    Chunks(std::vec::IntoIter<Bytes>),
}

impl SnapshotSource {
    /// The next chunks of the payload, in order (about [`STREAM_BATCH_BYTES`]); empty
    /// at the end.
    pub(crate) async fn next_batch(&mut self) -> Result<Vec<Bytes>, String> {
        match &mut self.from {
            SourceFrom::Chunks(it) => Ok(it.next().into_iter().collect()),
            SourceFrom::Files(reader) => {
                let mut r = reader
                    .take()
                    .ok_or_else(|| "the snapshot file failed earlier".to_string())?;
                let (r, batch) = off_thread("dt-snapshot-read", move || {
                    let mut batch = Vec::new();
                    let mut bytes = 0;
                    while bytes < STREAM_BATCH_BYTES {
                        match r.next_chunk()? {
                            Some(c) => {
                                bytes += c.len();
                                batch.push(Bytes::from(c));
                            }
                            None => break,
                        }
                    }
                    Ok((r, batch))
                })
                .await
                .ok_or_else(|| "snapshot read panicked".to_string())?
                .map_err(|e: crate::store::StoreError| format!("reading the snapshot: {e}"))?;
                *reader = Some(r);
                Ok(batch)
            }
        }
    }
}

impl SnapshotFiles {
    fn snapshot_dir(&self) -> SnapshotDir {
        SnapshotDir::new(&self.dir, self.sync)
    }

    /// Start-up (blocking): cleans leftovers and opens the newest snapshot whose
    /// metadata and blocks are valid.
    fn open_latest(&self) -> Result<Option<(SnapshotInfo, SnapshotReader)>, String> {
        let d = self.snapshot_dir();
        d.init().map_err(|e| format!("snapshot dir: {e}"))?;
        let Some(s) = d
            .latest_verified()
            .map_err(|e| format!("listing snapshots: {e}"))?
        else {
            return Ok(None);
        };
        let r = s
            .open_reader()
            .map_err(|e| format!("opening snapshot {}: {e}", s.data_path.display()))?;
        let m = &s.meta;
        let info = SnapshotInfo {
            last_included_index: m.last_included_index,
            last_included_term: m.last_included_term,
            members: to_u32(&m.members),
            observers: to_u32(&m.observers),
            prepared_members: to_u32(&m.prepared_members),
            prepared_observers: to_u32(&m.prepared_observers),
            last_config_change_index: m.last_config_change_index,
        };
        Ok(Some((info, r)))
    }

    /// Finishes (blocking) a snapshot covering `info`: the last `pending` chunks are
    /// written, the data file fsynced, then the idx file written atomically; then the
    /// oldest snapshots beyond `maxKeepSnapshots` are deleted. Returns the last
    /// included index of the oldest kept snapshot (the log may be deleted up to it).
    fn finish(
        &self,
        mut w: SnapshotWriter,
        pending: &[Bytes],
        info: &SnapshotInfo,
    ) -> Result<u64, String> {
        write_chunks(&mut w, pending)?;
        let meta = SnapshotMeta {
            last_included_index: info.last_included_index,
            last_included_term: info.last_included_term,
            members: to_i32(&info.members),
            observers: to_i32(&info.observers),
            prepared_members: to_i32(&info.prepared_members),
            prepared_observers: to_i32(&info.prepared_observers),
            last_config_change_index: info.last_config_change_index,
            ..Default::default()
        };
        w.finish(meta)
            .map_err(|e| format!("finishing a snapshot file: {e}"))?;
        let oldest = self
            .snapshot_dir()
            .keep(self.keep)
            .map_err(|e| format!("deleting old snapshots: {e}"))?;
        Ok(oldest.unwrap_or(info.last_included_index))
    }
}

/// Appends `chunks` to a snapshot file being written (blocking).
fn write_chunks(w: &mut SnapshotWriter, chunks: &[Bytes]) -> Result<(), String> {
    chunks
        .iter()
        .try_for_each(|c| w.write(c))
        .map_err(|e| format!("writing a snapshot file: {e}"))
}

/// Runs blocking `f` on a new thread and resolves with its result (`None` if it
/// panicked). The dispatcher thread is not blocked.
pub(crate) async fn off_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = super::oneshot::oneshot();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || tx.send(f()));
    if spawned.is_err() {
        return None;
    }
    rx.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_log::block_on;
    use std::time::{Duration, Instant};

    /// Every field set, so that reading it back checks each one.
    fn info(index: u64) -> SnapshotInfo {
        let sets = crate::core::MemberSets {
            members: vec![1, 2, 3],
            observers: vec![4],
            prepared_members: vec![1, 2, 5],
            prepared_observers: vec![6],
        };
        SnapshotInfo::new(index, 3, &sets, 2)
    }

    fn pending_bytes(sink: &SnapshotSink) -> usize {
        match &sink.target {
            SinkTarget::Files { pending_bytes, .. } => *pending_bytes,
            _ => panic!("not files"),
        }
    }

    fn tmp_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join("snapshot"))
            .map(|d| {
                d.filter(|e| {
                    let n = e.as_ref().unwrap().file_name();
                    n.to_str().unwrap().ends_with(".tmp")
                })
                .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn a_snapshot_streams_to_its_file_in_batches_and_back_in_batches() {
        let d = tempfile::tempdir().unwrap();
        let mgr = SnapshotManager::new(d.path(), false, 2);
        let chunk = 50_000usize;
        let payload: Vec<u8> = (0..chunk * 50).map(|i| (i % 251) as u8).collect();
        block_on(async {
            let mut sink = mgr.begin(info(77)).await.unwrap();
            for c in payload.chunks(chunk) {
                sink.write(Bytes::copy_from_slice(c)).await.unwrap();
                // never more than a batch held in memory
                assert!(pending_bytes(&sink) < STREAM_BATCH_BYTES);
            }
            assert_eq!(tmp_files(d.path()), 1, "written to a partial file");
            assert_eq!(sink.finish().await.unwrap(), 77);
            assert_eq!(tmp_files(d.path()), 0);

            let mut src = mgr.load().await.unwrap().expect("a snapshot");
            assert_eq!(src.info, info(77));
            let mut back = Vec::new();
            let mut batches = 0;
            loop {
                let b = src.next_batch().await.unwrap();
                if b.is_empty() {
                    break;
                }
                let bytes: usize = b.iter().map(Bytes::len).sum();
                assert!(bytes < STREAM_BATCH_BYTES + DEFAULT_BUFFER_SIZE, "{bytes}");
                batches += 1;
                b.iter().for_each(|c| back.extend_from_slice(c));
            }
            assert!(batches >= 3, "{batches} batches");
            assert_eq!(back, payload);
        });
    }

    #[test]
    fn a_sink_dropped_unfinished_leaves_nothing_and_the_previous_snapshot_stays() {
        let d = tempfile::tempdir().unwrap();
        let mgr = SnapshotManager::new(d.path(), true, 2);
        block_on(async {
            let mut first = mgr.begin(info(10)).await.unwrap();
            first.write(Bytes::from_static(b"kept")).await.unwrap();
            first.finish().await.unwrap();
            let mut abandoned = mgr.begin(info(20)).await.unwrap();
            abandoned
                .write(Bytes::from(vec![9u8; STREAM_BATCH_BYTES + 1]))
                .await
                .unwrap();
            assert_eq!(tmp_files(d.path()), 1);
            drop(abandoned);
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while tmp_files(d.path()) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(tmp_files(d.path()), 0, "the partial file is deleted");
        block_on(async {
            let mut src = mgr.load().await.unwrap().expect("a snapshot");
            assert_eq!(src.info.last_included_index, 10);
            assert_eq!(src.next_batch().await.unwrap(), vec![Bytes::from("kept")]);
            assert!(src.next_batch().await.unwrap().is_empty());
        });
    }
}
