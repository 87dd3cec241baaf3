//! `PbMessage`: a schema-less view of one message level, for tools, tests and logging.

use bytes::{BufMut, Bytes, BytesMut};

use crate::collect::BytesCollector;
use crate::encode::{self, Encodable};
use crate::error::PbError;
use crate::parser::{Chunk, ParseStatus, PbCallback, PbParser};
use crate::wire::{varint_size, WIRE_FIXED32, WIRE_FIXED64, WIRE_VARINT};

/// The value of one field as it appeared on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbValue {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2 (bytes, string or nested message: the schema decides).
    Bytes(Bytes),
    /// Wire type 5.
    Fixed32(u32),
}

/// One field of a [`PbMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbField {
    /// The field number.
    pub number: u32,
    /// The value.
    pub value: PbValue,
}

/// The fields of one message level, in wire order, with nested messages left as bytes.
///
/// Decoding then encoding a `PbMessage` reproduces input that was encoded with minimal
/// varints (as every Dongting encoder does); a non-minimal varint comes back minimal. Use
/// [`PbMessage::nested`] to look one level deeper.
///
/// ```
/// use bytes::Bytes;
/// use dt_codec::{encode, PbMessage, PbValue};
/// let wire = Bytes::from_static(&[0x08, 0x01, 0x12, 0x01, b'x']);
/// let m = PbMessage::decode(&wire).unwrap();
/// assert_eq!(m.get(1), Some(&PbValue::Varint(1)));
/// assert_eq!(encode::to_bytes(&m), wire);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbMessage {
    /// Fields in wire order.
    pub fields: Vec<PbField>,
}

impl PbMessage {
    /// Decodes a whole message.
    pub fn decode(data: &Bytes) -> Result<PbMessage, PbError> {
        let mut p = PbParser::new(PbMessageCallback::default());
        match p.parse_whole(data)? {
            ParseStatus::Finished => Ok(p.into_callback().take()),
            _ => Err(PbError::Misuse("message callback never rejects")),
        }
    }

    /// The last value of field `number` (last one wins, as for single fields).
    pub fn get(&self, number: u32) -> Option<&PbValue> {
        self.fields
            .iter()
            .rev()
            .find(|f| f.number == number)
            .map(|f| &f.value)
    }

    /// All values of field `number`, in order.
    pub fn get_all(&self, number: u32) -> impl Iterator<Item = &PbValue> {
        self.fields
            .iter()
            .filter(move |f| f.number == number)
            .map(|f| &f.value)
    }

    /// Decodes the length-delimited field `number` as a nested message.
    pub fn nested(&self, number: u32) -> Option<Result<PbMessage, PbError>> {
        match self.get(number)? {
            PbValue::Bytes(b) => Some(PbMessage::decode(b)),
            _ => None,
        }
    }
}

impl Encodable for PbMessage {
    fn encoded_size(&self) -> usize {
        self.fields
            .iter()
            .map(|f| {
                encode::size_tag(f.number)
                    + match &f.value {
                        PbValue::Varint(v) => varint_size(*v),
                        PbValue::Fixed64(_) => 8,
                        PbValue::Fixed32(_) => 4,
                        PbValue::Bytes(b) => varint_size(b.len() as u64) + b.len(),
                    }
            })
            .sum()
    }

    fn encode(&self, out: &mut BytesMut) {
        for f in &self.fields {
            match &f.value {
                PbValue::Varint(v) => {
                    encode::put_tag(out, f.number, WIRE_VARINT);
                    encode::put_varint(out, *v);
                }
                PbValue::Fixed64(v) => {
                    encode::put_tag(out, f.number, WIRE_FIXED64);
                    out.put_u64_le(*v);
                }
                PbValue::Fixed32(v) => {
                    encode::put_tag(out, f.number, WIRE_FIXED32);
                    out.put_u32_le(*v);
                }
                PbValue::Bytes(b) => {
                    encode::put_len_prefix(out, f.number, b.len());
                    out.put_slice(b);
                }
            }
        }
    }
}

/// The callback that builds a [`PbMessage`]; accepts every field.
#[derive(Debug, Default)]
pub struct PbMessageCallback {
    msg: PbMessage,
    collector: BytesCollector,
}

impl PbMessageCallback {
    /// Takes the decoded message out.
    pub fn take(&mut self) -> PbMessage {
        std::mem::take(&mut self.msg)
    }

    fn push(&mut self, number: u32, value: PbValue) {
        self.msg.fields.push(PbField { number, value });
    }
}

impl PbCallback for PbMessageCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.msg.fields.clear();
        self.collector.reset();
        Ok(())
    }
    fn varint(&mut self, field: u32, value: i64) -> Result<(), PbError> {
        self.push(field, PbValue::Varint(value as u64));
        Ok(())
    }
    fn fixed32(&mut self, field: u32, value: u32) -> Result<(), PbError> {
        self.push(field, PbValue::Fixed32(value));
        Ok(())
    }
    fn fixed64(&mut self, field: u32, value: u64) -> Result<(), PbError> {
        self.push(field, PbValue::Fixed64(value));
        Ok(())
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        if let Some(b) = self.collector.push(&chunk) {
            self.push(field, PbValue::Bytes(b));
        }
        Ok(())
    }
}
