//! [`ReadBlock`]: a buffer that log reads fill from a segment file, kept for reuse.
//!
//! Entries read from the files are slices of the block they were read into (no copy
//! per entry, see [`LogHeader::decode_parts_shared`](super::log_item::LogHeader::decode_parts_shared)).
//! When the last slice of a block is dropped, its buffer goes back to a process-wide
//! [`ReadPool`], so that a long read (the replay of the log at start, a follower
//! catching up) fills the same memory again instead of having fresh pages mapped and
//! zeroed for every block. Replaying a 2.6 GiB log (16 KiB values) took 3.0–3.9 s
//! with a fresh buffer per block and a copy per entry, 2.1 s with the allocator told
//! never to give memory back, and 1.3–1.8 s with this pool (and the apply loop
//! reading ahead).

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// Idle bytes the process-wide pool keeps: the blocks of the reads one replay has in
/// flight (the apply loop reads one batch ahead of the one it executes).
pub(crate) const KEEP_BYTES: usize = 8 << 20;
/// A buffer larger than this (a block stretched to hold one large entry) is not kept.
pub(crate) const KEEP_MAX_ONE: usize = 1 << 20;

/// Idle read buffers, at most `keep` bytes of them.
pub(crate) struct ReadPool {
    state: Mutex<Idle>,
    keep: usize,
}

struct Idle {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

/// The pool every log read of the process uses.
pub(crate) static READ_POOL: ReadPool = ReadPool::new(KEEP_BYTES);

impl ReadPool {
    /// An empty pool keeping at most `keep` idle bytes.
    pub(crate) const fn new(keep: usize) -> ReadPool {
        ReadPool {
            state: Mutex::new(Idle {
                bufs: Vec::new(),
                bytes: 0,
            }),
            keep,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Idle> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A block of `len` bytes whose contents are whatever its last use left; it comes
    /// back to this pool when dropped. A kept buffer large enough is preferred; else the
    /// newest one grows.
    pub(crate) fn take(&'static self, len: usize) -> ReadBlock {
        let reused = {
            let mut idle = self.idle();
            let at = idle.bufs.iter().rposition(|b| b.len() >= len);
            let b = match at {
                Some(i) => Some(idle.bufs.swap_remove(i)),
                None => idle.bufs.pop(),
            };
            if let Some(b) = &b {
                idle.bytes -= b.len();
            }
            b
        };
        let mut data = reused.unwrap_or_default();
        if data.len() < len {
            data.resize(len, 0);
        }
        ReadBlock {
            data,
            len,
            pool: self,
        }
    }

    fn give_back(&self, data: Vec<u8>) {
        let n = data.len();
        if n == 0 || n > KEEP_MAX_ONE {
            return;
        }
        let mut idle = self.idle();
        if idle.bytes + n <= self.keep {
            idle.bytes += n;
            idle.bufs.push(data);
        }
    }

    /// Idle bytes held.
    #[cfg(test)]
    pub(crate) fn idle_bytes(&self) -> usize {
        self.idle().bytes
    }
}

/// A buffer of `len` bytes to read into, from a [`ReadPool`] and back to it when
/// dropped.
pub(crate) struct ReadBlock {
    /// Initialised bytes, at least `len` of them (a kept buffer keeps its length, so
    /// it is not zeroed again when reused).
    data: Vec<u8>,
    len: usize,
    pool: &'static ReadPool,
}

impl ReadBlock {
    /// The block's bytes, to fill.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data[..self.len]
    }

    /// The filled block, to slice entries from; the buffer goes back to its pool once
    /// the last slice is dropped.
    pub(crate) fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for ReadBlock {
    fn as_ref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl Drop for ReadBlock {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(keep: usize) -> &'static ReadPool {
        Box::leak(Box::new(ReadPool::new(keep)))
    }

    #[test]
    fn a_block_comes_back_when_its_last_slice_is_dropped() {
        let p = pool(1 << 20);
        let mut b = p.take(100);
        b.as_mut_slice().copy_from_slice(&[7u8; 100]);
        let bytes = b.into_bytes();
        let part = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(p.idle_bytes(), 0, "a slice still holds it");
        assert_eq!(&part[..], &[7u8; 10]);
        drop(part);
        assert_eq!(p.idle_bytes(), 100);
        // reused, not zeroed again, and counted out of the pool
        let b = p.take(60);
        assert_eq!(p.idle_bytes(), 0);
        assert_eq!(b.as_ref(), &[7u8; 60]);
        drop(b);
        assert_eq!(p.idle_bytes(), 100, "the whole buffer goes back");
        // a larger request grows the kept buffer
        let b = p.take(300);
        assert_eq!(b.as_ref().len(), 300);
        assert_eq!(&b.as_ref()[..100], &[7u8; 100]);
        assert_eq!(&b.as_ref()[100..], &[0u8; 200]);
    }

    #[test]
    fn the_pool_keeps_at_most_its_bytes_and_no_oversized_buffer() {
        let p = pool(250);
        let (a, b, c) = (p.take(100), p.take(100), p.take(100));
        drop((a, b, c));
        assert_eq!(p.idle_bytes(), 200, "the third would pass 250");
        let p = pool(usize::MAX);
        drop(p.take(KEEP_MAX_ONE + 1));
        assert_eq!(p.idle_bytes(), 0);
        drop(p.take(KEEP_MAX_ONE));
        assert_eq!(p.idle_bytes(), KEEP_MAX_ONE);
    }

    #[test]
    fn a_kept_buffer_large_enough_is_taken_before_a_newer_small_one() {
        let p = pool(1 << 20);
        let (big, small) = (p.take(1000), p.take(10));
        drop((big, small));
        let b = p.take(500);
        assert_eq!(p.idle_bytes(), 10, "the 1000-byte buffer served it");
        drop(b);
    }
}
