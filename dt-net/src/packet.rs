//! Packets: the header fields 1–8 plus the body (field 15), [`ReadPacket`] as received and
//! [`WritePacket`] as sent, and the header decoder used on every frame.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use dt_codec::encode::{self, Encodable};
use dt_codec::plain::{PlainFields, PlainValue};
use dt_codec::{BytesCollector, Chunk, PbCallback, PbError, PbParser};

use crate::codes::PacketType;

/// Header field numbers.
pub(crate) mod field {
    pub const TYPE: u32 = 1;
    pub const COMMAND: u32 = 2;
    pub const SEQ: u32 = 3;
    pub const RESP_CODE: u32 = 4;
    pub const BIZ_CODE: u32 = 5;
    pub const MSG: u32 = 6;
    pub const TIMEOUT: u32 = 7;
    pub const EXTRA: u32 = 8;
    pub const BODY: u32 = 15;
}

/// A received packet: the header fields and the raw body (a zero-copy slice of the frame;
/// empty when the packet had no body field).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ReadPacket {
    /// Raw packet type (field 1): 1 request, 2 response, 3 one-way. See [`ReadPacket::kind`].
    pub packet_type: i32,
    /// Command code (field 2).
    pub command: i32,
    /// Sequence number (field 3).
    pub seq: i32,
    /// Response code (field 4), 0 = success.
    pub resp_code: i32,
    /// Business code (field 5).
    pub biz_code: i32,
    /// Message (field 6), empty when absent.
    pub msg: String,
    /// Remaining time budget in nanoseconds (field 7), 0 when absent.
    pub timeout_nanos: i64,
    /// Extra bytes (field 8), e.g. the leader id of NOT_RAFT_LEADER.
    pub extra: Option<Bytes>,
    /// The body bytes (field 15).
    pub body: Bytes,
}

impl ReadPacket {
    /// The packet type as the receiver treats it (anything but 2 and 3 is a request).
    pub fn kind(&self) -> PacketType {
        PacketType::from_code(self.packet_type).unwrap_or(PacketType::Request)
    }

    /// Decodes the body with a fresh callback `C` (from zero bytes when there is no body).
    /// A rejection by the callback is returned as `Err(PbError::Rejected)`.
    pub fn decode_body<C: PbCallback + Default>(&self) -> Result<C, PbError> {
        let mut p = PbParser::new(C::default());
        match p.parse_whole(&self.body)? {
            dt_codec::ParseStatus::Finished => Ok(p.into_callback()),
            dt_codec::ParseStatus::Rejected => Err(PbError::rejected("body rejected")),
            dt_codec::ParseStatus::NeedMore => Err(PbError::invalid("body incomplete")),
        }
    }

    /// Copies the body and the extra bytes out of the frame they were read with when
    /// shorter than `limit`, so that a packet kept after its read (a request handed to an
    /// executor) does not keep the connection's whole read chunk alive.
    pub(crate) fn detach_small(&mut self, limit: usize) {
        if self.body.len() < limit {
            self.body = Bytes::copy_from_slice(&self.body);
        }
        if let Some(e) = &mut self.extra {
            if e.len() < limit {
                *e = Bytes::copy_from_slice(e);
            }
        }
    }

    /// Re-encodes this packet into a frame (used by tests to prove byte-exactness).
    pub fn to_frame(&self) -> Bytes {
        let w = WritePacket {
            packet_type: self.packet_type,
            command: self.command,
            seq: self.seq,
            resp_code: self.resp_code,
            biz_code: self.biz_code,
            msg: self.msg.clone(),
            timeout_nanos: self.timeout_nanos,
            extra: self.extra.clone(),
            body: WriteBody::Bytes(self.body.clone()),
        };
        let mut out = BytesMut::with_capacity(w.frame_size());
        w.encode_frame(&mut out);
        out.freeze()
    }
}

impl fmt::Debug for ReadPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadPacket")
            .field("type", &self.packet_type)
            .field("command", &self.command)
            .field("seq", &self.seq)
            .field("resp_code", &self.resp_code)
            .field("biz_code", &self.biz_code)
            .field("msg", &self.msg)
            .field("timeout_nanos", &self.timeout_nanos)
            .field("extra", &self.extra)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The body of a [`WritePacket`].
#[derive(Default)]
pub enum WriteBody {
    /// No body field.
    #[default]
    Empty,
    /// Already encoded bytes (written as they are; an empty value writes no field).
    Bytes(Bytes),
    /// A message encoded straight into the socket buffer (no field when it encodes to 0
    /// bytes).
    Encodable(Box<dyn Encodable + Send>),
    /// A small message already encoded, held inside the packet ([`WriteBody::of`]).
    Inline(InlineBody),
}

/// Most bytes a [`WriteBody::Inline`] body holds.
pub const INLINE_BODY_MAX: usize = 48;

/// A small encoded body held inside its packet: no heap allocation, so a packet built
/// on one thread (a Raft group's dispatcher) and dropped on another (the IO thread that
/// writes it) costs the allocator nothing.
#[derive(Clone, Copy)]
pub struct InlineBody {
    len: u8,
    buf: [u8; INLINE_BODY_MAX],
}

impl InlineBody {
    /// The encoded bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

thread_local! {
    /// Where [`WriteBody::of`] encodes before copying into the packet (reused: it never
    /// grows past [`INLINE_BODY_MAX`]).
    static INLINE_SCRATCH: std::cell::RefCell<BytesMut> =
        std::cell::RefCell::new(BytesMut::with_capacity(INLINE_BODY_MAX));
}

impl WriteBody {
    /// `m` as a body: encoded now into the packet when it takes at most
    /// [`INLINE_BODY_MAX`] bytes (most responses: a code and an index), else boxed and
    /// encoded straight into the socket buffer later ([`WriteBody::Encodable`]).
    pub fn of<E: Encodable + Send + 'static>(m: E) -> WriteBody {
        let size = m.encoded_size();
        if size == 0 {
            return WriteBody::Empty;
        }
        if size > INLINE_BODY_MAX {
            return WriteBody::Encodable(Box::new(m));
        }
        INLINE_SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.clear();
            m.encode(&mut s);
            let mut body = InlineBody {
                len: 0,
                buf: [0; INLINE_BODY_MAX],
            };
            // encoded_size is the contract's length; guard anyway so a buggy message
            // cannot write past the array
            let n = s.len().min(INLINE_BODY_MAX);
            body.buf[..n].copy_from_slice(&s[..n]);
            body.len = n as u8;
            WriteBody::Inline(body)
        })
    }

    /// A body of already encoded bytes: held inside the packet when they take at most
    /// [`INLINE_BODY_MAX`] bytes (no allocation; what [`WriteBody::of`] makes of a small
    /// message, for a caller that encoded it itself), else copied into
    /// [`WriteBody::Bytes`].
    pub fn copy_of(encoded: &[u8]) -> WriteBody {
        let n = encoded.len();
        if n == 0 {
            return WriteBody::Empty;
        }
        if n > INLINE_BODY_MAX {
            return WriteBody::Bytes(Bytes::copy_from_slice(encoded));
        }
        let mut body = InlineBody {
            len: n as u8,
            buf: [0; INLINE_BODY_MAX],
        };
        body.buf[..n].copy_from_slice(encoded);
        WriteBody::Inline(body)
    }

    /// Encoded size of the body content.
    pub fn len(&self) -> usize {
        match self {
            WriteBody::Empty => 0,
            WriteBody::Bytes(b) => b.len(),
            WriteBody::Encodable(e) => e.encoded_size(),
            WriteBody::Inline(b) => b.len as usize,
        }
    }

    /// Whether the body encodes to nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for WriteBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteBody::Empty => write!(f, "Empty"),
            WriteBody::Bytes(b) => write!(f, "Bytes({})", b.len()),
            WriteBody::Encodable(e) => write!(f, "Encodable({})", e.encoded_size()),
            WriteBody::Inline(b) => write!(f, "Inline({})", b.len),
        }
    }
}

/// A packet to send. The network layer fills `seq` (requests: at serialisation time;
/// responses: from the request), `packet_type`/`command` of responses and `timeout_nanos`
/// of requests (from the deadline, at serialisation time).
#[derive(Debug, Default)]
pub struct WritePacket {
    /// Raw packet type (1, 2, 3).
    pub packet_type: i32,
    /// Command code.
    pub command: i32,
    /// Sequence number.
    pub seq: i32,
    /// Response code.
    pub resp_code: i32,
    /// Business code.
    pub biz_code: i32,
    /// Message (not written when empty).
    pub msg: String,
    /// Timeout in nanoseconds (not written when 0).
    pub timeout_nanos: i64,
    /// Extra bytes (not written when absent or empty).
    pub extra: Option<Bytes>,
    /// The body.
    pub body: WriteBody,
}

impl WritePacket {
    /// A request (or one-way when sent with `send_one_way`) for `command` with a body.
    pub fn request(command: i32, body: WriteBody) -> Self {
        WritePacket {
            packet_type: PacketType::Request.code(),
            command,
            body,
            ..Default::default()
        }
    }

    /// A request with an already encoded body.
    pub fn request_bytes(command: i32, body: Bytes) -> Self {
        Self::request(command, WriteBody::Bytes(body))
    }

    /// A successful response with a body (command and seq are filled by the layer).
    pub fn response(body: WriteBody) -> Self {
        WritePacket {
            packet_type: PacketType::Response.code(),
            body,
            ..Default::default()
        }
    }

    /// An error response with `resp_code` and a message.
    pub fn error(resp_code: i32, msg: impl Into<String>) -> Self {
        WritePacket {
            packet_type: PacketType::Response.code(),
            resp_code,
            msg: msg.into(),
            ..Default::default()
        }
    }

    fn header_size(&self, body_len: usize) -> usize {
        encode::size_int32(field::TYPE, self.packet_type)
            + encode::size_int32(field::COMMAND, self.command)
            + encode::size_fixed32(field::SEQ, self.seq as u32)
            + encode::size_int32(field::RESP_CODE, self.resp_code)
            + encode::size_int32(field::BIZ_CODE, self.biz_code)
            + encode::size_str(field::MSG, &self.msg)
            + encode::size_fixed64(field::TIMEOUT, self.timeout_nanos as u64)
            + self
                .extra
                .as_ref()
                .map_or(0, |e| encode::size_bytes(field::EXTRA, e))
            + if body_len > 0 {
                encode::size_len_field(field::BODY, body_len)
            } else {
                0
            }
    }

    /// Size of the packet without the 4-byte length prefix.
    pub fn packet_size(&self) -> usize {
        self.header_size(self.body.len())
    }

    /// Size of the whole frame (prefix included).
    pub fn frame_size(&self) -> usize {
        4 + self.packet_size()
    }

    /// Appends the frame (length prefix, fields 1..8 in order, body last).
    pub fn encode_frame(&self, out: &mut BytesMut) {
        let body_len = self.body.len();
        let size = self.header_size(body_len);
        out.reserve(size + 4);
        out.put_u32(size as u32);
        encode::put_int32(out, field::TYPE, self.packet_type);
        encode::put_int32(out, field::COMMAND, self.command);
        encode::put_fixed32(out, field::SEQ, self.seq as u32);
        encode::put_int32(out, field::RESP_CODE, self.resp_code);
        encode::put_int32(out, field::BIZ_CODE, self.biz_code);
        encode::put_str(out, field::MSG, &self.msg);
        encode::put_fixed64(out, field::TIMEOUT, self.timeout_nanos as u64);
        if let Some(e) = &self.extra {
            encode::put_bytes(out, field::EXTRA, e);
        }
        if body_len > 0 {
            encode::put_len_prefix(out, field::BODY, body_len);
            match &self.body {
                WriteBody::Empty => {}
                WriteBody::Bytes(b) => out.put_slice(b),
                WriteBody::Encodable(e) => e.encode(out),
                WriteBody::Inline(b) => out.put_slice(b.as_slice()),
            }
        }
    }
}

/// Decodes the header of one packet (fields 1–8 and the body), enforcing the reference's
/// ordering rules: the command must be known (> 0) when the body arrives, nothing may
/// follow the body, and a packet without a positive command is invalid.
#[derive(Debug, Default)]
pub(crate) struct PacketCallback {
    pub pkt: ReadPacket,
    body_seen: bool,
    collector: BytesCollector,
    extra: BytesCollector,
    msg: BytesCollector,
}

impl PacketCallback {
    pub fn take(&mut self) -> ReadPacket {
        std::mem::take(&mut self.pkt)
    }
}

/// The packet of a whole plain frame ([`dt_codec::plain`], without its length prefix)
/// decoded without the streaming parser, when also nothing follows the body and the
/// command is positive: exactly what [`PacketCallback`] makes of it. `None` for anything
/// else (the parser then decodes it, or reports the error).
pub(crate) fn decode_plain(frame: &Bytes) -> Option<ReadPacket> {
    let mut p = ReadPacket::default();
    let mut body_seen = false;
    let mut fields = PlainFields::new(frame);
    while let Some((f, v)) = fields.next_field().ok()? {
        if body_seen {
            return None;
        }
        match (f, v) {
            (_, PlainValue::Varint(v)) => {
                let v = v as i64 as i32;
                match f {
                    field::TYPE => p.packet_type = v,
                    field::COMMAND => p.command = v,
                    field::RESP_CODE => p.resp_code = v,
                    field::BIZ_CODE => p.biz_code = v,
                    _ => {}
                }
            }
            (field::SEQ, PlainValue::Fixed32(v)) => p.seq = v as i32,
            (field::TIMEOUT, PlainValue::Fixed64(v)) => p.timeout_nanos = v as i64,
            (field::BODY, PlainValue::Len(at)) => {
                if p.command <= 0 {
                    return None;
                }
                p.body = frame.slice(at);
                body_seen = true;
            }
            (field::MSG, PlainValue::Len(at)) => {
                p.msg = String::from_utf8_lossy(&frame[at]).into_owned()
            }
            (field::EXTRA, PlainValue::Len(at)) => p.extra = Some(frame.slice(at)),
            _ => {}
        }
    }
    (p.command > 0).then_some(p)
}

impl PbCallback for PacketCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.pkt = ReadPacket::default();
        self.body_seen = false;
        Ok(())
    }

    fn varint(&mut self, f: u32, v: i64) -> Result<(), PbError> {
        if self.body_seen {
            return Err(PbError::invalid("field after body"));
        }
        match f {
            field::TYPE => self.pkt.packet_type = v as i32,
            field::COMMAND => self.pkt.command = v as i32,
            field::RESP_CODE => self.pkt.resp_code = v as i32,
            field::BIZ_CODE => self.pkt.biz_code = v as i32,
            _ => {}
        }
        Ok(())
    }

    fn fixed32(&mut self, f: u32, v: u32) -> Result<(), PbError> {
        if self.body_seen {
            return Err(PbError::invalid("field after body"));
        }
        if f == field::SEQ {
            self.pkt.seq = v as i32;
        }
        Ok(())
    }

    fn fixed64(&mut self, f: u32, v: u64) -> Result<(), PbError> {
        if self.body_seen {
            return Err(PbError::invalid("field after body"));
        }
        if f == field::TIMEOUT {
            self.pkt.timeout_nanos = v as i64;
        }
        Ok(())
    }

    fn bytes(&mut self, f: u32, c: Chunk<'_>) -> Result<(), PbError> {
        if self.body_seen {
            return Err(PbError::invalid("field after body"));
        }
        match f {
            field::BODY => {
                if self.pkt.command <= 0 {
                    return Err(PbError::invalid(format!(
                        "command invalid: {}",
                        self.pkt.command
                    )));
                }
                if let Some(b) = self.collector.push(&c) {
                    self.pkt.body = b;
                    self.body_seen = true;
                }
            }
            field::MSG => {
                if let Some(b) = self.msg.push(&c) {
                    self.pkt.msg = String::from_utf8_lossy(&b).into_owned();
                }
            }
            field::EXTRA => {
                if let Some(b) = self.extra.push(&c) {
                    self.pkt.extra = Some(b);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, success: bool) -> Result<(), PbError> {
        if success && self.pkt.command <= 0 {
            return Err(PbError::invalid(format!(
                "command invalid: {}",
                self.pkt.command
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_are_encoded_into_the_packet_and_large_ones_boxed() {
        use dt_codec::PbInt;
        let small = WriteBody::of(PbInt(300));
        assert!(matches!(small, WriteBody::Inline(_)), "{small:?}");
        assert_eq!(small.len(), PbInt(300).encoded_size());
        let mut a = BytesMut::new();
        let mut b = BytesMut::new();
        let mut p = WritePacket::response(small);
        p.seq = 7;
        p.encode_frame(&mut a);
        let mut q = WritePacket::response(WriteBody::Encodable(Box::new(PbInt(300))));
        q.seq = 7;
        q.encode_frame(&mut b);
        assert_eq!(a, b, "inline and boxed bodies write the same frame");
        assert!(matches!(WriteBody::of(PbInt(0)), WriteBody::Empty));
        let big = WriteBody::of(Bytes::from(vec![1u8; INLINE_BODY_MAX + 1]));
        assert!(matches!(big, WriteBody::Encodable(_)), "{big:?}");
    }

    #[test]
    fn copied_bodies_write_what_they_were_given() {
        let frame = |body: WriteBody| {
            let mut out = BytesMut::new();
            let mut p = WritePacket::response(body);
            p.seq = 3;
            p.encode_frame(&mut out);
            out
        };
        for n in [1, INLINE_BODY_MAX, INLINE_BODY_MAX + 1, 300] {
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let body = WriteBody::copy_of(&data);
            assert_eq!(
                matches!(body, WriteBody::Inline(_)),
                n <= INLINE_BODY_MAX,
                "{body:?}"
            );
            assert_eq!(body.len(), n);
            assert_eq!(
                frame(body),
                frame(WriteBody::Bytes(Bytes::from(data))),
                "{n} bytes"
            );
        }
        assert!(matches!(WriteBody::copy_of(&[]), WriteBody::Empty));
    }

    #[test]
    fn detach_small_copies_out_of_the_frame() {
        let frame = Bytes::from(vec![7u8; 1000]);
        let mut p = ReadPacket {
            body: frame.slice(10..20),
            extra: Some(frame.slice(30..35)),
            ..Default::default()
        };
        let inside = |b: &Bytes| frame.as_ptr_range().contains(&b.as_ptr());
        assert!(inside(&p.body));
        p.detach_small(100);
        assert!(!inside(&p.body) && !inside(p.extra.as_ref().unwrap()));
        assert_eq!(&p.body[..], &[7u8; 10]);
        let mut big = ReadPacket {
            body: frame.slice(0..500),
            ..Default::default()
        };
        big.detach_small(100);
        assert!(inside(&big.body));
    }

    #[test]
    fn encode_decode_round_trip() {
        let w = WritePacket {
            packet_type: 1,
            command: 5,
            seq: 7,
            resp_code: -1,
            biz_code: 3,
            msg: "héllo".into(),
            timeout_nanos: 5_000_000_000,
            extra: Some(Bytes::from_static(b"12")),
            body: WriteBody::Bytes(Bytes::from_static(b"\x08\x01")),
        };
        let mut out = BytesMut::new();
        w.encode_frame(&mut out);
        assert_eq!(out.len(), w.frame_size());
        let frame = out.freeze();
        let mut p = PbParser::new(PacketCallback::default());
        p.parse_whole(&frame.slice(4..)).unwrap();
        let r = p.callback_mut().take();
        assert_eq!(r.command, 5);
        assert_eq!(r.seq, 7);
        assert_eq!(r.resp_code, -1);
        assert_eq!(r.msg, "héllo");
        assert_eq!(r.timeout_nanos, 5_000_000_000);
        assert_eq!(r.body, Bytes::from_static(b"\x08\x01"));
        assert_eq!(r.to_frame(), frame);
    }

    /// `decode_plain` against the streaming parser it stands in for.
    mod plain {
        use super::*;
        use proptest::prelude::*;

        fn parsed(frame: &Bytes) -> Result<ReadPacket, PbError> {
            let mut p = PbParser::new(PacketCallback::default());
            match p.parse_whole(frame)? {
                dt_codec::ParseStatus::Finished => Ok(p.callback_mut().take()),
                s => panic!("{s:?}"),
            }
        }

        use dt_codec::fuzz::field_bytes as field;

        fn arb_field() -> impl Strategy<Value = Vec<u8>> {
            (
                prop::sample::select(vec![0u32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16]),
                prop::sample::select(vec![0u8, 1, 2, 5, 3]),
                any::<u64>().prop_map(|v| v >> (v % 64)),
                prop::collection::vec(any::<u8>(), 0..12),
            )
                .prop_map(|(n, wt, v, d)| field(n, wt, v, &d))
        }

        proptest! {
            #[test]
            fn agrees_with_the_parser_on_fields(
                fields in prop::collection::vec(arb_field(), 0..10),
                cut in 0usize..3,
            ) {
                let mut b: Vec<u8> = fields.concat();
                b.truncate(b.len().saturating_sub(cut));
                let frame = Bytes::from(b);
                if let Some(p) = decode_plain(&frame) {
                    prop_assert_eq!(Ok(p), parsed(&frame));
                }
            }

            #[test]
            fn written_packets_take_it(
                packet_type in 1i32..4,
                command in 1i32..100_000,
                seq in any::<i32>(),
                biz_code in 0i32..1000,
                msg in ".{0,8}",
                timeout_nanos in any::<i64>(),
                extra in prop::option::of(prop::collection::vec(any::<u8>(), 0..6)),
                body in prop::collection::vec(any::<u8>(), 0..300),
            ) {
                let w = WritePacket {
                    packet_type,
                    command,
                    seq,
                    resp_code: 0,
                    biz_code,
                    msg: msg.clone(),
                    timeout_nanos,
                    extra: extra.clone().map(Bytes::from),
                    body: WriteBody::Bytes(Bytes::from(body)),
                };
                let mut out = BytesMut::new();
                w.encode_frame(&mut out);
                let frame = out.freeze().slice(4..);
                let plain = decode_plain(&frame);
                prop_assert!(plain.is_some());
                prop_assert_eq!(Ok(plain.unwrap()), parsed(&frame));
            }
        }
    }
}
