//! Ready-made message types and callbacks for the common bodies: `PbInt`, `PbLong`,
//! `PbStr`, `PbBytes` (each a message with one field numbered 1).

use bytes::{Bytes, BytesMut};

use crate::collect::{utf8_lossy, BytesCollector};
use crate::encode::{self, Encodable};
use crate::error::PbError;
use crate::parser::{Chunk, PbCallback};

/// A message `{1: fixed32}` carrying an `i32` (a group id, a node id). Zero encodes to an
/// empty message. Note the field is fixed32, not varint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PbInt(pub i32);

impl Encodable for PbInt {
    fn encoded_size(&self) -> usize {
        encode::size_fixed32(1, self.0 as u32)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_fixed32(out, 1, self.0 as u32)
    }
}

/// Decodes [`PbInt`]: field 1 as fixed32; a varint field 1 is ignored as in the reference.
#[derive(Debug, Default)]
pub struct PbIntCallback {
    /// The decoded value (0 when absent).
    pub value: i32,
}

impl PbCallback for PbIntCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.value = 0;
        Ok(())
    }
    fn fixed32(&mut self, field: u32, value: u32) -> Result<(), PbError> {
        if field == 1 {
            self.value = value as i32;
        }
        Ok(())
    }
}

/// A message `{1: fixed64}` carrying an `i64` (a raft index). Zero encodes to nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PbLong(pub i64);

impl Encodable for PbLong {
    fn encoded_size(&self) -> usize {
        encode::size_fixed64(1, self.0 as u64)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_fixed64(out, 1, self.0 as u64)
    }
}

/// Decodes [`PbLong`].
#[derive(Debug, Default)]
pub struct PbLongCallback {
    /// The decoded value (0 when absent).
    pub value: i64,
}

impl PbCallback for PbLongCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.value = 0;
        Ok(())
    }
    fn fixed64(&mut self, field: u32, value: u64) -> Result<(), PbError> {
        if field == 1 {
            self.value = value as i64;
        }
        Ok(())
    }
}

/// A message `{1: string}`. An empty string encodes to nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbStr(pub String);

impl Encodable for PbStr {
    fn encoded_size(&self) -> usize {
        encode::size_str(1, &self.0)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_str(out, 1, &self.0)
    }
}

/// Decodes [`PbStr`] (invalid UTF-8 is replaced, as the reference does).
#[derive(Debug, Default)]
pub struct PbStrCallback {
    collector: BytesCollector,
    /// The decoded value (empty when absent).
    pub value: String,
}

impl PbCallback for PbStrCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.value.clear();
        self.collector.reset();
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 1 {
            if let Some(b) = self.collector.push(&chunk) {
                self.value = utf8_lossy(&b);
            }
        }
        Ok(())
    }
}

/// A message `{1: bytes}`. Empty bytes encode to nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbBytes(pub Bytes);

impl Encodable for PbBytes {
    fn encoded_size(&self) -> usize {
        encode::size_bytes(1, &self.0)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_bytes(out, 1, &self.0)
    }
}

/// Decodes [`PbBytes`]; zero-copy when the field arrived in one fragment.
#[derive(Debug, Default)]
pub struct PbBytesCallback {
    collector: BytesCollector,
    /// The decoded value (`None` when absent).
    pub value: Option<Bytes>,
}

impl PbCallback for PbBytesCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.value = None;
        self.collector.reset();
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if field == 1 {
            if let Some(b) = self.collector.push(&chunk) {
                self.value = Some(b);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{ParseStatus, PbParser};

    fn parse<C: PbCallback>(cb: C, data: &[u8]) -> C {
        let mut p = PbParser::new(cb);
        assert_eq!(
            p.parse_whole(&Bytes::copy_from_slice(data)).unwrap(),
            ParseStatus::Finished
        );
        p.into_callback()
    }

    #[test]
    fn pb_int_round_trip_and_varint_ignored() {
        let b = encode::to_bytes(&PbInt(5));
        assert_eq!(&b[..], &[0x0d, 5, 0, 0, 0]);
        assert_eq!(parse(PbIntCallback::default(), &b).value, 5);
        assert_eq!(parse(PbIntCallback::default(), &[0x08, 0x05]).value, 0);
        assert!(encode::to_bytes(&PbInt(0)).is_empty());
        assert_eq!(parse(PbIntCallback::default(), &[]).value, 0);
        let b = encode::to_bytes(&PbInt(-3));
        assert_eq!(parse(PbIntCallback::default(), &b).value, -3);
    }

    #[test]
    fn pb_long_str_bytes_round_trip() {
        let b = encode::to_bytes(&PbLong(-42));
        assert_eq!(parse(PbLongCallback::default(), &b).value, -42);
        let b = encode::to_bytes(&PbStr("héllo".into()));
        assert_eq!(parse(PbStrCallback::default(), &b).value, "héllo");
        let b = encode::to_bytes(&PbBytes(Bytes::from_static(b"\x00\x01")));
        assert_eq!(
            parse(PbBytesCallback::default(), &b).value.unwrap(),
            &b"\x00\x01"[..]
        );
        assert_eq!(parse(PbBytesCallback::default(), &[]).value, None);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let v = parse(PbStrCallback::default(), &[0x0a, 0x02, 0xff, b'a']).value;
        assert_eq!(v, "\u{fffd}a");
    }
}
