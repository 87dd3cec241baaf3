//! Parsing a nested message from the chunks of its enclosing field.

use crate::error::PbError;
use crate::parser::{Chunk, ParseStatus, PbCallback, PbParser};

/// Parses a nested message delivered as the chunks of a length-delimited field.
///
/// A parent callback owns one `NestedParser` per nested message type and forwards the
/// chunks of the field to it from [`PbCallback::bytes`]; the nested parse is bounded by the
/// field's length and must end exactly there.
///
/// ```
/// use bytes::Bytes;
/// use dt_codec::{Chunk, NestedParser, ParseStatus, PbCallback, PbError, PbIntCallback, PbParser};
///
/// // Outer message: field 2 holds a PbInt {1: fixed32 7}.
/// #[derive(Default)]
/// struct Outer { inner: Option<NestedParser<PbIntCallback>>, value: i32 }
/// impl PbCallback for Outer {
///     fn bytes(&mut self, field: u32, c: Chunk<'_>) -> Result<(), PbError> {
///         if field == 2 {
///             let p = self.inner.get_or_insert_with(|| NestedParser::new(PbIntCallback::default()));
///             if p.feed(field, &c)? == Some(ParseStatus::Finished) {
///                 self.value = p.callback().value;
///             }
///         }
///         Ok(())
///     }
/// }
/// let msg = Bytes::from_static(&[0x12, 0x05, 0x0d, 7, 0, 0, 0]);
/// let mut p = PbParser::new(Outer::default());
/// assert_eq!(p.parse_whole(&msg).unwrap(), ParseStatus::Finished);
/// assert_eq!(p.callback().value, 7);
/// ```
#[derive(Debug)]
pub struct NestedParser<C> {
    parser: PbParser<C>,
}

impl<C: PbCallback> NestedParser<C> {
    /// A nested parser delivering to `cb`.
    pub fn new(cb: C) -> Self {
        NestedParser {
            parser: PbParser::new(cb),
        }
    }

    /// Feeds one chunk of field `field`. Returns `Some(status)` after the field's last
    /// chunk ([`ParseStatus::Finished`] or [`ParseStatus::Rejected`]), `None` before.
    pub fn feed(&mut self, field: u32, chunk: &Chunk<'_>) -> Result<Option<ParseStatus>, PbError> {
        if chunk.is_first() {
            self.parser.prepare(chunk.field_len())?;
        }
        let fed = self.parser.feed_chunk(chunk)?;
        if !chunk.is_last() {
            return Ok(None);
        }
        match fed.status {
            ParseStatus::NeedMore => Err(PbError::NestedIncomplete {
                field,
                len: chunk.field_len(),
            }),
            s => Ok(Some(s)),
        }
    }

    /// The nested callback.
    pub fn callback(&self) -> &C {
        self.parser.callback()
    }

    /// The nested callback, mutably.
    pub fn callback_mut(&mut self) -> &mut C {
        self.parser.callback_mut()
    }
}
