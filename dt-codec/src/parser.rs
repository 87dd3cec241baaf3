//! `PbParser`: the streaming, resumable, callback-driven protobuf decoder.

use bytes::Bytes;

use crate::error::PbError;
use crate::wire::{
    read_varint, VarintRead, MAX_VARINT32_BYTES, MAX_VARINT64_BYTES, WIRE_FIXED32, WIRE_FIXED64,
    WIRE_LEN, WIRE_VARINT,
};

/// A piece of a length-delimited field, as delivered to [`PbCallback::bytes`].
///
/// A field that lies inside one input fragment arrives as one chunk
/// ([`Chunk::is_whole`]); a field split across fragments arrives as several chunks with
/// increasing [`Chunk::offset`], so large values can be streamed without buffering. When
/// the parser was fed [`Bytes`], [`Chunk::to_bytes`] is zero-copy.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    data: &'a [u8],
    owner: Option<(&'a Bytes, usize)>,
    field_len: usize,
    offset: usize,
}

impl<'a> Chunk<'a> {
    /// A chunk over a plain slice (no zero-copy owner), for tests and adapters.
    pub fn from_slice(data: &'a [u8], field_len: usize, offset: usize) -> Self {
        Chunk {
            data,
            owner: None,
            field_len,
            offset,
        }
    }

    /// The bytes of this chunk.
    #[inline]
    pub fn as_slice(&self) -> &'a [u8] {
        self.data
    }

    /// The bytes of this chunk as [`Bytes`]: a reference-counted slice of the input when
    /// it was fed as `Bytes`, otherwise a copy.
    pub fn to_bytes(&self) -> Bytes {
        match self.owner {
            Some((b, start)) => b.slice(start..start + self.data.len()),
            None => Bytes::copy_from_slice(self.data),
        }
    }

    /// Total length of the field this chunk belongs to.
    #[inline]
    pub fn field_len(&self) -> usize {
        self.field_len
    }

    /// Offset of this chunk within its field.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Whether this is the first chunk of the field.
    #[inline]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Whether this is the last chunk of the field.
    #[inline]
    pub fn is_last(&self) -> bool {
        self.offset + self.data.len() == self.field_len
    }

    /// Whether this chunk is the whole field.
    #[inline]
    pub fn is_whole(&self) -> bool {
        self.is_first() && self.is_last()
    }
}

/// What a message decoder implements: the parser calls it for each field it reads.
///
/// Unknown fields and fields with an unexpected wire type should simply be ignored (the
/// default methods do that). A method returns:
/// * `Ok(())` to continue;
/// * `Err(PbError::Rejected(..))` to discard this message (the rest of its bytes are
///   skipped, [`PbCallback::end`] is called with `false`, the stream stays usable);
/// * any other `Err` to fail fatally (the stream is unusable: close the connection).
pub trait PbCallback {
    /// A message of `len` bytes begins. Reset state here if the callback is reused.
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        let _ = len;
        Ok(())
    }

    /// A varint field (wire type 0). `int32` fields take the low 32 bits (`value as i32`).
    fn varint(&mut self, field: u32, value: i64) -> Result<(), PbError> {
        let _ = (field, value);
        Ok(())
    }

    /// A fixed32 field (wire type 5).
    fn fixed32(&mut self, field: u32, value: u32) -> Result<(), PbError> {
        let _ = (field, value);
        Ok(())
    }

    /// A fixed64 field (wire type 1).
    fn fixed64(&mut self, field: u32, value: u64) -> Result<(), PbError> {
        let _ = (field, value);
        Ok(())
    }

    /// A chunk of a length-delimited field (wire type 2). Called at least once per field,
    /// with an empty chunk for a zero-length field.
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        let _ = (field, chunk);
        Ok(())
    }

    /// The message ended: `success` is false after a rejection or a fatal error. An
    /// `Err(Rejected)` here marks the message as rejected; other errors are fatal.
    fn end(&mut self, success: bool) -> Result<(), PbError> {
        let _ = success;
        Ok(())
    }
}

impl<C: PbCallback + ?Sized> PbCallback for &mut C {
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        (**self).begin(len)
    }
    fn varint(&mut self, field: u32, value: i64) -> Result<(), PbError> {
        (**self).varint(field, value)
    }
    fn fixed32(&mut self, field: u32, value: u32) -> Result<(), PbError> {
        (**self).fixed32(field, value)
    }
    fn fixed64(&mut self, field: u32, value: u64) -> Result<(), PbError> {
        (**self).fixed64(field, value)
    }
    fn bytes(&mut self, field: u32, chunk: Chunk<'_>) -> Result<(), PbError> {
        (**self).bytes(field, chunk)
    }
    fn end(&mut self, success: bool) -> Result<(), PbError> {
        (**self).end(success)
    }
}

/// Where a message stands after a call to [`PbParser::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseStatus {
    /// More bytes of the message are needed.
    NeedMore,
    /// The whole message was decoded and the callback accepted it.
    Finished,
    /// The callback rejected the message; its bytes were skipped.
    Rejected,
}

/// The result of one [`PbParser::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input that belonged to the message and were consumed. Bytes after the
    /// message's end are never consumed.
    pub consumed: usize,
    /// Where the message stands.
    pub status: ParseStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Tag,
    Varint,
    Len,
    Fixed32,
    Fixed64,
    Bytes,
    Skip,
    Done(ParseStatus),
    Failed,
}

/// The streaming protobuf decoder of the Dongting subset.
///
/// Call [`PbParser::prepare`] with the message's exact size (a frame length, a field
/// length), then [`PbParser::feed`] fragments of any size until the status is not
/// [`ParseStatus::NeedMore`]. The parser never reads past the message end, keeps no copy of
/// the input except up to 10 bytes of a split varint or fixed number, and enforces the
/// acceptance rules of `docs/wire-protocol.md` §1: unknown fields of wire types 0/1/2/5 go to the
/// callback (whose defaults ignore them); wire types 3/4/6/7, field number 0, over-long
/// varints, varints overflowing their field (a tag or length above 32 bits, a value above
/// 64 bits), negative lengths and fields running past the message end are fatal
/// [`PbError`]s. Unlike the reference, a fixed32/fixed64 field crossing the message end is
/// detected as [`PbError::Truncated`].
///
/// ```
/// use bytes::Bytes;
/// use dt_codec::{PbCallback, PbError, PbParser, ParseStatus};
///
/// #[derive(Default)]
/// struct Sum(i64);
/// impl PbCallback for Sum {
///     fn varint(&mut self, _field: u32, v: i64) -> Result<(), PbError> {
///         self.0 += v;
///         Ok(())
///     }
/// }
///
/// let msg = Bytes::from_static(&[0x08, 0x96, 0x01, 0x10, 0x02]); // 1: 150, 2: 2
/// let mut p = PbParser::new(Sum::default());
/// p.prepare(msg.len()).unwrap();
/// // Feed in two fragments, splitting the first varint.
/// assert_eq!(p.feed(&msg.slice(..2)).unwrap().status, ParseStatus::NeedMore);
/// assert_eq!(p.feed(&msg.slice(2..)).unwrap().status, ParseStatus::Finished);
/// assert_eq!(p.callback().0, 152);
/// ```
#[derive(Debug)]
pub struct PbParser<C> {
    cb: C,
    state: State,
    size: usize,
    pos: usize,
    field: u32,
    pend: [u8; MAX_VARINT64_BYTES],
    pend_len: usize,
    field_len: usize,
    field_off: usize,
}

impl<C: PbCallback> PbParser<C> {
    /// A parser delivering to `cb`.
    pub fn new(cb: C) -> Self {
        PbParser {
            cb,
            state: State::Idle,
            size: 0,
            pos: 0,
            field: 0,
            pend: [0; MAX_VARINT64_BYTES],
            pend_len: 0,
            field_len: 0,
            field_off: 0,
        }
    }

    /// The callback.
    pub fn callback(&self) -> &C {
        &self.cb
    }

    /// The callback, mutably (to take a decoded result out of it).
    pub fn callback_mut(&mut self) -> &mut C {
        &mut self.cb
    }

    /// Consumes the parser, returning the callback.
    pub fn into_callback(self) -> C {
        self.cb
    }

    /// Bytes of the current message consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Starts a new message of exactly `size` bytes and calls [`PbCallback::begin`].
    /// A message of size 0 finishes at once (its status is available from the next
    /// [`PbParser::feed`], which consumes nothing).
    pub fn prepare(&mut self, size: usize) -> Result<(), PbError> {
        self.size = size;
        self.pos = 0;
        self.pend_len = 0;
        self.field = 0;
        self.state = State::Tag;
        if let Err(e) = self.cb.begin(size) {
            return self.fail_or_skip(e).map(|_| ());
        }
        if size == 0 {
            self.finish(true)?;
        }
        Ok(())
    }

    /// Feeds the next fragment, zero-copy for length-delimited fields.
    pub fn feed(&mut self, data: &Bytes) -> Result<Fed, PbError> {
        self.run(data, Some(data))
    }

    /// Feeds the next fragment from a plain slice (byte fields are copied by callbacks that
    /// keep them).
    pub fn feed_slice(&mut self, data: &[u8]) -> Result<Fed, PbError> {
        self.run(data, None)
    }

    /// Feeds a chunk of an enclosing field (used to parse nested messages), keeping the
    /// chunk's zero-copy owner.
    pub fn feed_chunk(&mut self, chunk: &Chunk<'_>) -> Result<Fed, PbError> {
        match chunk.owner {
            Some((b, start)) => {
                // Present the owner to the run loop with the chunk's start as base.
                self.run_at(b, start, chunk.data.len())
            }
            None => self.run(chunk.data, None),
        }
    }

    /// Parses a whole message held in `data` (size = `data.len()`) in one call.
    pub fn parse_whole(&mut self, data: &Bytes) -> Result<ParseStatus, PbError> {
        self.prepare(data.len())?;
        Ok(self.feed(data)?.status)
    }

    fn run_at(&mut self, owner: &Bytes, start: usize, len: usize) -> Result<Fed, PbError> {
        self.run_inner(&owner[start..start + len], Some((owner, start)))
    }

    fn run(&mut self, data: &[u8], owner: Option<&Bytes>) -> Result<Fed, PbError> {
        self.run_inner(data, owner.map(|b| (b, 0)))
    }

    fn run_inner(&mut self, data: &[u8], owner: Option<(&Bytes, usize)>) -> Result<Fed, PbError> {
        match self.state {
            State::Idle => return Err(PbError::Misuse("feed before prepare")),
            State::Failed => return Err(PbError::Misuse("feed after a fatal error")),
            State::Done(status) => {
                return Ok(Fed {
                    consumed: 0,
                    status,
                })
            }
            _ => {}
        }
        let end = data.len().min(self.size - self.pos);
        let buf = &data[..end];
        let mut i = 0usize;
        let result = self.run_loop(buf, owner, &mut i);
        self.pos += i;
        match result {
            Ok(()) => {}
            // `finish` already told the callback and marked the parser failed.
            Err(e) if self.state == State::Failed => return Err(e),
            Err(e) => {
                self.fail_or_skip(e)?;
                // Rejected: skip the rest of what we have.
                self.pos += end - i;
                i = end;
            }
        }
        if self.state == State::Skip && self.pos == self.size {
            self.finish(false)?;
        }
        let status = match self.state {
            State::Done(s) => s,
            _ => ParseStatus::NeedMore,
        };
        Ok(Fed {
            consumed: i,
            status,
        })
    }

    /// Handles a callback or parse error: rejection turns into skip mode, anything else
    /// fails the parser (after telling the callback).
    fn fail_or_skip(&mut self, e: PbError) -> Result<(), PbError> {
        if e.is_rejection() {
            self.state = State::Skip;
            if self.pos == self.size {
                self.finish(false)?;
            }
            Ok(())
        } else {
            self.state = State::Failed;
            let _ = self.cb.end(false);
            Err(e)
        }
    }

    fn finish(&mut self, success: bool) -> Result<(), PbError> {
        match self.cb.end(success) {
            Ok(()) => {
                self.state = State::Done(if success {
                    ParseStatus::Finished
                } else {
                    ParseStatus::Rejected
                });
                Ok(())
            }
            Err(e) if e.is_rejection() => {
                self.state = State::Done(ParseStatus::Rejected);
                Ok(())
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    /// Reads a varint that may be split across fragments. `Ok(None)`: need more input.
    #[inline]
    fn read_var(&mut self, buf: &[u8], i: &mut usize, max: usize) -> Result<Option<u64>, PbError> {
        if self.pend_len == 0 {
            match read_varint(&buf[*i..], max) {
                VarintRead::Done(v, n) => {
                    *i += n;
                    Ok(Some(v))
                }
                VarintRead::TooLong => Err(PbError::VarintTooLong {
                    max_bytes: max as u8,
                }),
                VarintRead::Overflow => Err(self.overflow(max)),
                VarintRead::Incomplete => {
                    let rest = &buf[*i..];
                    self.pend[..rest.len()].copy_from_slice(rest);
                    self.pend_len = rest.len();
                    *i = buf.len();
                    Ok(None)
                }
            }
        } else {
            while *i < buf.len() {
                let b = buf[*i];
                *i += 1;
                self.pend[self.pend_len] = b;
                self.pend_len += 1;
                if b & 0x80 == 0 {
                    let n = self.pend_len;
                    self.pend_len = 0;
                    return match read_varint(&self.pend[..n], max) {
                        VarintRead::Done(v, _) => Ok(Some(v)),
                        VarintRead::Overflow => Err(self.overflow(max)),
                        _ => Err(PbError::Misuse("varint reassembly")),
                    };
                }
                if self.pend_len == max {
                    return Err(PbError::VarintTooLong {
                        max_bytes: max as u8,
                    });
                }
            }
            Ok(None)
        }
    }

    /// The error for a varint of at most `max` bytes that overflowed in the current state.
    #[cold]
    fn overflow(&self, max: usize) -> PbError {
        let (field, what) = match self.state {
            State::Tag => (0, "tag"),
            State::Len => (self.field, "length"),
            _ => (self.field, "varint value"),
        };
        overflow_error(field, what, max)
    }

    /// Reads `N` fixed bytes that may be split across fragments.
    #[inline]
    fn read_fixed<const N: usize>(&mut self, buf: &[u8], i: &mut usize) -> Option<[u8; N]> {
        let avail = buf.len() - *i;
        if self.pend_len == 0 && avail >= N {
            let mut a = [0u8; N];
            a.copy_from_slice(&buf[*i..*i + N]);
            *i += N;
            return Some(a);
        }
        let take = (N - self.pend_len).min(avail);
        self.pend[self.pend_len..self.pend_len + take].copy_from_slice(&buf[*i..*i + take]);
        self.pend_len += take;
        *i += take;
        if self.pend_len == N {
            self.pend_len = 0;
            let mut a = [0u8; N];
            a.copy_from_slice(&self.pend[..N]);
            Some(a)
        } else {
            None
        }
    }

    /// Decodes fields straight from `buf`, which holds the whole rest of the message (so a
    /// field that does not fit is truncated, never split). Leaves the parser in `Tag` state
    /// at the message end.
    fn run_contiguous(
        &mut self,
        buf: &[u8],
        owner: Option<(&Bytes, usize)>,
        i: &mut usize,
    ) -> Result<(), PbError> {
        let truncated = |field, what| PbError::Truncated { field, what };
        while *i < buf.len() {
            let t = match read_varint(&buf[*i..], MAX_VARINT32_BYTES) {
                VarintRead::Done(v, n) => {
                    *i += n;
                    v as u32
                }
                VarintRead::TooLong => return Err(PbError::VarintTooLong { max_bytes: 5 }),
                VarintRead::Overflow => return Err(overflow_error(0, "tag", MAX_VARINT32_BYTES)),
                VarintRead::Incomplete => return Err(truncated(0, "tag")),
            };
            let wire_type = (t & 7) as u8;
            let field = t >> 3;
            self.field = field;
            if !matches!(
                wire_type,
                WIRE_VARINT | WIRE_FIXED64 | WIRE_LEN | WIRE_FIXED32
            ) {
                return Err(PbError::InvalidWireType { field, wire_type });
            }
            if field == 0 {
                return Err(PbError::FieldNumberZero);
            }
            let rest = &buf[*i..];
            match wire_type {
                WIRE_VARINT => match read_varint(rest, MAX_VARINT64_BYTES) {
                    VarintRead::Done(v, n) => {
                        *i += n;
                        self.cb.varint(field, v as i64)?;
                    }
                    VarintRead::TooLong => return Err(PbError::VarintTooLong { max_bytes: 10 }),
                    VarintRead::Overflow => {
                        return Err(overflow_error(field, "varint value", MAX_VARINT64_BYTES))
                    }
                    VarintRead::Incomplete => return Err(truncated(field, "varint value")),
                },
                WIRE_FIXED64 => {
                    let Some(a) = rest.get(..8) else {
                        return Err(truncated(field, "fixed64 value"));
                    };
                    *i += 8;
                    let v = u64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
                    self.cb.fixed64(field, v)?;
                }
                WIRE_FIXED32 => {
                    let Some(a) = rest.get(..4) else {
                        return Err(truncated(field, "fixed32 value"));
                    };
                    *i += 4;
                    let v = u32::from_le_bytes(a.try_into().unwrap_or([0; 4]));
                    self.cb.fixed32(field, v)?;
                }
                _ => {
                    let (len, n) = match read_varint(rest, MAX_VARINT32_BYTES) {
                        VarintRead::Done(v, n) => (v as u32 as i32, n),
                        VarintRead::TooLong => return Err(PbError::VarintTooLong { max_bytes: 5 }),
                        VarintRead::Overflow => {
                            return Err(overflow_error(field, "length", MAX_VARINT32_BYTES))
                        }
                        VarintRead::Incomplete => return Err(truncated(field, "length")),
                    };
                    if len < 0 {
                        return Err(PbError::NegativeLength { field, len });
                    }
                    let len = len as usize;
                    *i += n;
                    let remaining = buf.len() - *i;
                    if len > remaining {
                        return Err(PbError::LengthOverrun {
                            field,
                            len,
                            remaining,
                        });
                    }
                    let start = *i;
                    *i += len;
                    let chunk = Chunk {
                        data: &buf[start..start + len],
                        owner: owner.map(|(b, s)| (b, s + start)),
                        field_len: len,
                        offset: 0,
                    };
                    self.cb.bytes(field, chunk)?;
                }
            }
        }
        Ok(())
    }

    fn run_loop(
        &mut self,
        buf: &[u8],
        owner: Option<(&Bytes, usize)>,
        i: &mut usize,
    ) -> Result<(), PbError> {
        let base = self.pos;
        loop {
            if self.state == State::Tag
                && self.pend_len == 0
                && base + buf.len() == self.size
                && *i < buf.len()
            {
                // The rest of the message is in this buffer: no field can split.
                self.run_contiguous(buf, owner, i)?;
            }
            let at_end = base + *i == self.size;
            match self.state {
                State::Tag if self.pend_len == 0 && at_end => return self.finish(true),
                State::Skip => {
                    *i = buf.len();
                    return Ok(());
                }
                State::Done(_) | State::Failed | State::Idle => return Ok(()),
                _ => {}
            }
            if *i == buf.len() {
                if at_end {
                    let what = match self.state {
                        State::Tag => "tag",
                        State::Len => "length",
                        State::Varint => "varint value",
                        State::Fixed32 => "fixed32 value",
                        State::Fixed64 => "fixed64 value",
                        _ => "field",
                    };
                    let field = if self.state == State::Tag {
                        0
                    } else {
                        self.field
                    };
                    return Err(PbError::Truncated { field, what });
                }
                return Ok(());
            }
            match self.state {
                State::Tag => {
                    let Some(t) = self.read_var(buf, i, MAX_VARINT32_BYTES)? else {
                        continue;
                    };
                    let t = t as u32;
                    let wire_type = (t & 7) as u8;
                    let field = t >> 3;
                    self.field = field;
                    let remaining = self.size - (base + *i);
                    self.state = match wire_type {
                        WIRE_VARINT => State::Varint,
                        WIRE_FIXED64 => State::Fixed64,
                        WIRE_LEN => State::Len,
                        WIRE_FIXED32 => State::Fixed32,
                        _ => return Err(PbError::InvalidWireType { field, wire_type }),
                    };
                    if field == 0 {
                        return Err(PbError::FieldNumberZero);
                    }
                    let need = match self.state {
                        State::Fixed64 => 8,
                        State::Fixed32 => 4,
                        _ => 1,
                    };
                    if remaining < need {
                        return Err(PbError::Truncated {
                            field,
                            what: match self.state {
                                State::Fixed64 => "fixed64 value",
                                State::Fixed32 => "fixed32 value",
                                State::Len => "length",
                                _ => "varint value",
                            },
                        });
                    }
                }
                State::Varint => {
                    let Some(v) = self.read_var(buf, i, MAX_VARINT64_BYTES)? else {
                        continue;
                    };
                    self.state = State::Tag;
                    self.cb.varint(self.field, v as i64)?;
                }
                State::Fixed32 => {
                    let Some(a) = self.read_fixed::<4>(buf, i) else {
                        continue;
                    };
                    self.state = State::Tag;
                    self.cb.fixed32(self.field, u32::from_le_bytes(a))?;
                }
                State::Fixed64 => {
                    let Some(a) = self.read_fixed::<8>(buf, i) else {
                        continue;
                    };
                    self.state = State::Tag;
                    self.cb.fixed64(self.field, u64::from_le_bytes(a))?;
                }
                State::Len => {
                    let Some(v) = self.read_var(buf, i, MAX_VARINT32_BYTES)? else {
                        continue;
                    };
                    let len = v as u32 as i32;
                    if len < 0 {
                        return Err(PbError::NegativeLength {
                            field: self.field,
                            len,
                        });
                    }
                    let len = len as usize;
                    let remaining = self.size - (base + *i);
                    if len > remaining {
                        return Err(PbError::LengthOverrun {
                            field: self.field,
                            len,
                            remaining,
                        });
                    }
                    if len == 0 {
                        self.state = State::Tag;
                        self.cb.bytes(self.field, Chunk::from_slice(&[], 0, 0))?;
                    } else {
                        self.field_len = len;
                        self.field_off = 0;
                        self.state = State::Bytes;
                    }
                }
                State::Bytes => {
                    let n = (buf.len() - *i).min(self.field_len - self.field_off);
                    let start = *i;
                    *i += n;
                    let chunk = Chunk {
                        data: &buf[start..start + n],
                        owner: owner.map(|(b, s)| (b, s + start)),
                        field_len: self.field_len,
                        offset: self.field_off,
                    };
                    self.field_off += n;
                    if self.field_off == self.field_len {
                        self.state = State::Tag;
                    }
                    self.cb.bytes(self.field, chunk)?;
                }
                State::Idle | State::Skip | State::Done(_) | State::Failed => {
                    return Err(PbError::Misuse("unreachable parser state"))
                }
            }
        }
    }
}

/// A [`PbError::VarintOverflow`] for a varint of at most `max` bytes (5: 32 bits, 10: 64).
#[cold]
fn overflow_error(field: u32, what: &'static str, max: usize) -> PbError {
    PbError::VarintOverflow {
        field,
        what,
        bits: if max == MAX_VARINT32_BYTES { 32 } else { 64 },
    }
}
