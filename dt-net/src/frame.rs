//! Framing: a 4-byte big-endian length (excluding itself) followed by the packet.
//!
//! [`FrameDecoder`] cuts complete frames out of a connection's read buffer (a frame may
//! span many reads, one read may hold many frames) and decodes each packet header with
//! dt-codec's [`PbParser`]. The body stays a zero-copy slice of the frame.

use std::fmt;

use bytes::{Buf, BytesMut};
use dt_codec::{ParseStatus, PbError, PbParser};

use crate::packet::{PacketCallback, ReadPacket};

/// The most an IO worker reads from a socket at once (its scratch buffer): frames that
/// arrive whole within one read share that read's buffer; longer ones get a buffer of
/// their own.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Why a byte stream is not a valid sequence of frames. Always fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is negative.
    NegativeLength(i32),
    /// The length prefix exceeds the receiver's maximum packet size.
    TooLarge {
        /// Declared length.
        len: usize,
        /// The receiver's `max_packet_size`.
        max: usize,
    },
    /// The packet is not a valid packet (bad protobuf, field after body, no command ...).
    BadPacket(PbError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NegativeLength(n) => write!(f, "negative frame length {n}"),
            FrameError::TooLarge { len, max } => {
                write!(f, "frame length {len} exceeds max packet size {max}")
            }
            FrameError::BadPacket(e) => write!(f, "bad packet: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Cuts frames out of a read buffer and decodes their headers.
#[derive(Debug)]
pub struct FrameDecoder {
    parser: PbParser<PacketCallback>,
    max_packet_size: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_packet_size`.
    pub fn new(max_packet_size: usize) -> Self {
        FrameDecoder {
            parser: PbParser::new(PacketCallback::default()),
            max_packet_size,
        }
    }

    /// The receiver limit.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// How many bytes the next frame needs in total (prefix included), once its prefix is
    /// in `buf` and valid; lets the reader reserve exactly.
    pub fn needed(&self, buf: &[u8]) -> Option<usize> {
        if buf.len() < 4 {
            return None;
        }
        let n = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if n < 0 || n as usize > self.max_packet_size {
            return None;
        }
        Some(4 + n as usize)
    }

    /// Takes the next complete frame off the front of `buf` and decodes it. `Ok(None)`
    /// means more bytes are needed (the length prefix is checked as soon as it is there).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ReadPacket>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let n = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if n < 0 {
            return Err(FrameError::NegativeLength(n));
        }
        let n = n as usize;
        if n > self.max_packet_size {
            return Err(FrameError::TooLarge {
                len: n,
                max: self.max_packet_size,
            });
        }
        if buf.len() < 4 + n {
            return Ok(None);
        }
        buf.advance(4);
        let frame = buf.split_to(n).freeze();
        if let Some(p) = crate::packet::decode_plain(&frame) {
            return Ok(Some(p));
        }
        let status = self
            .parser
            .parse_whole(&frame)
            .map_err(FrameError::BadPacket)?;
        match status {
            ParseStatus::Finished => Ok(Some(self.parser.callback_mut().take())),
            // The header callback never rejects; keep the stream consistent anyway.
            _ => Err(FrameError::BadPacket(PbError::invalid("packet incomplete"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{WriteBody, WritePacket};
    use bytes::Bytes;

    #[test]
    fn frames_split_and_coalesced() {
        let mut out = BytesMut::new();
        for seq in 1..=3 {
            let w = WritePacket {
                packet_type: 1,
                command: 1,
                seq,
                timeout_nanos: 1,
                body: WriteBody::Bytes(Bytes::from_static(b"abc")),
                ..Default::default()
            };
            w.encode_frame(&mut out);
        }
        let all = out.freeze();
        let mut d = FrameDecoder::new(1024);
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for b in all.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(p) = d.decode(&mut buf).unwrap() {
                got.push(p.seq);
            }
        }
        assert_eq!(got, vec![1, 2, 3]);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_lengths() {
        let mut d = FrameDecoder::new(10);
        let mut b = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(d.decode(&mut b), Err(FrameError::NegativeLength(-1)));
        let mut b = BytesMut::from(&[0, 0, 0, 11][..]);
        assert!(matches!(d.decode(&mut b), Err(FrameError::TooLarge { .. })));
        let mut b = BytesMut::from(&[0, 0, 0, 0][..]);
        assert!(matches!(d.decode(&mut b), Err(FrameError::BadPacket(_))));
    }
}
