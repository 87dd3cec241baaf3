//! Assembling length-delimited fields from chunks.

use bytes::{Bytes, BytesMut};

use crate::parser::Chunk;

/// Collects the chunks of one length-delimited field into [`Bytes`].
///
/// A field that arrived in one piece is returned zero-copy (when the parser was fed
/// `Bytes`); a split field is copied into one buffer. This is the "raw copy" decoder of the
/// reference, usable for any bytes field or whole body.
///
/// ```
/// use dt_codec::{BytesCollector, Chunk};
/// let mut c = BytesCollector::default();
/// assert_eq!(c.push(&Chunk::from_slice(b"ab", 4, 0)), None);
/// assert_eq!(c.push(&Chunk::from_slice(b"cd", 4, 2)).unwrap(), &b"abcd"[..]);
/// ```
#[derive(Debug, Default)]
pub struct BytesCollector {
    buf: BytesMut,
}

impl BytesCollector {
    /// Adds a chunk; returns the whole field once its last chunk arrived.
    pub fn push(&mut self, chunk: &Chunk<'_>) -> Option<Bytes> {
        if chunk.is_whole() {
            return Some(chunk.to_bytes());
        }
        if chunk.is_first() {
            self.buf.clear();
            // Grow with the data actually received (amortized doubling), never with the
            // declared length: a lying length prefix cannot make us allocate ahead of input.
            self.buf
                .reserve(chunk.field_len().min(chunk.as_slice().len() * 2));
        }
        self.buf.extend_from_slice(chunk.as_slice());
        if chunk.is_last() {
            Some(self.buf.split().freeze())
        } else {
            None
        }
    }

    /// Drops any partial field (after a failed message).
    pub fn reset(&mut self) {
        self.buf.clear();
    }
}

/// Decodes UTF-8 the way the reference does: invalid sequences become U+FFFD rather than
/// failing the message.
pub fn utf8_lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
