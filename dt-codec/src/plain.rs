//! [`PlainFields`]: the fields of a whole, commonly shaped message read straight from its
//! bytes, for the hot decoders that try this first and leave everything else (and every
//! error) to [`PbParser`](crate::PbParser).
//!
//! "Plain" means: every tag is one byte with a field number above 0 and wire type 0, 1,
//! 2 or 5; every varint is at most 9 bytes (63 bits, so none can overflow); every length
//! is at most 4 bytes; every field ends inside the message. Anything else is
//! [`NotPlain`], never a panic: the caller then runs the streaming parser, which
//! accepts the rest or reports the error.

use std::ops::Range;

/// The message is not plain: decode it with the streaming parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPlain;

/// One plain field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainValue {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 5.
    Fixed32(u32),
    /// Wire type 2: where the field's bytes are in the message.
    Len(Range<usize>),
}

/// The fields of a plain message, in order.
///
/// ```
/// use dt_codec::plain::{PlainFields, PlainValue};
///
/// // field 1 = 150, field 2 = "ab"
/// let mut f = PlainFields::new(&[0x08, 0x96, 0x01, 0x12, 2, b'a', b'b']);
/// assert_eq!(f.next_field(), Ok(Some((1, PlainValue::Varint(150)))));
/// assert_eq!(f.next_field(), Ok(Some((2, PlainValue::Len(5..7)))));
/// assert_eq!(f.next_field(), Ok(None));
/// ```
#[derive(Debug)]
pub struct PlainFields<'a> {
    b: &'a [u8],
    i: usize,
}

/// A varint of at most 9 bytes at the front of `b`: (value, bytes used).
#[inline]
fn varint9(b: &[u8]) -> Result<(u64, usize), NotPlain> {
    let mut v = 0u64;
    for (i, &x) in b.iter().take(9).enumerate() {
        v |= ((x & 0x7f) as u64) << (7 * i);
        if x < 0x80 {
            return Ok((v, i + 1));
        }
    }
    Err(NotPlain)
}

/// The `N` bytes at `i` in `b`.
#[inline]
fn fixed<const N: usize>(b: &[u8], i: usize) -> Result<[u8; N], NotPlain> {
    b.get(i..i + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(NotPlain)
}

impl<'a> PlainFields<'a> {
    /// The fields of the whole message `b`.
    pub fn new(b: &'a [u8]) -> Self {
        PlainFields { b, i: 0 }
    }

    /// The next field (number, value), `Ok(None)` at the end of the message, or
    /// [`NotPlain`].
    #[inline]
    pub fn next_field(&mut self) -> Result<Option<(u32, PlainValue)>, NotPlain> {
        let b = self.b;
        let Some(&t) = b.get(self.i) else {
            return Ok(None);
        };
        let field = u32::from(t >> 3);
        if t >= 0x80 || field == 0 {
            return Err(NotPlain);
        }
        let mut i = self.i + 1;
        let v = match t & 7 {
            0 => {
                let (v, n) = varint9(&b[i..])?;
                i += n;
                PlainValue::Varint(v)
            }
            1 => {
                let a = fixed::<8>(b, i)?;
                i += 8;
                PlainValue::Fixed64(u64::from_le_bytes(a))
            }
            5 => {
                let a = fixed::<4>(b, i)?;
                i += 4;
                PlainValue::Fixed32(u32::from_le_bytes(a))
            }
            2 => {
                let (len, n) = varint9(&b[i..])?;
                if n > 4 {
                    return Err(NotPlain);
                }
                let start = i + n;
                let end = start + len as usize;
                if end > b.len() {
                    return Err(NotPlain);
                }
                i = end;
                PlainValue::Len(start..end)
            }
            _ => return Err(NotPlain),
        };
        self.i = i;
        Ok(Some((field, v)))
    }

    /// The next field's value when its tag byte is `tag`, else `Ok(None)` without
    /// moving on (also at the end): for a decoder that expects its fields in a fixed
    /// order. Errors as [`PlainFields::next_field`].
    ///
    /// ```
    /// use dt_codec::plain::{PlainFields, PlainValue};
    ///
    /// let mut f = PlainFields::new(&[0x08, 0x96, 0x01, 0x12, 2, b'a', b'b']);
    /// assert_eq!(f.next_if(0x12), Ok(None));
    /// assert_eq!(f.next_if(0x08), Ok(Some(PlainValue::Varint(150))));
    /// assert_eq!(f.next_if(0x12), Ok(Some(PlainValue::Len(5..7))));
    /// assert!(f.at_end());
    /// ```
    #[inline]
    pub fn next_if(&mut self, tag: u8) -> Result<Option<PlainValue>, NotPlain> {
        if self.b.get(self.i) != Some(&tag) {
            return Ok(None);
        }
        Ok(self.next_field()?.map(|(_, v)| v))
    }

    /// Whether every field has been read.
    #[inline]
    pub fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_plain_fields_is_refused_without_panicking() {
        for bad in [
            &[0x80, 0x01][..], // two-byte tag
            &[0x00],           // field 0
            &[0x0B],           // wire type 3
            &[0x08],           // varint cut off
            &[
                0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
            ], // 10 bytes
            &[0x09, 1, 2, 3],  // fixed64 cut off
            &[0x0D, 1, 2],     // fixed32 cut off
            &[0x12, 3, b'a'],  // length past the end
            &[0x12, 0x80, 0x80, 0x80, 0x80, 0x01], // 5-byte length
        ] {
            let mut f = PlainFields::new(bad);
            assert_eq!(f.next_field(), Err(NotPlain), "{bad:?}");
        }
        let mut f = PlainFields::new(&[0x09, 1, 0, 0, 0, 0, 0, 0, 0, 0x15, 7, 0, 0, 0]);
        assert_eq!(f.next_field(), Ok(Some((1, PlainValue::Fixed64(1)))));
        assert_eq!(f.next_field(), Ok(Some((2, PlainValue::Fixed32(7)))));
        assert_eq!(f.next_field(), Ok(None));
    }
}
