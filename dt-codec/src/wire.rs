//! Wire types, tags and varint primitives.

/// Protobuf wire type 0: varint.
pub const WIRE_VARINT: u8 = 0;
/// Protobuf wire type 1: 64-bit little-endian.
pub const WIRE_FIXED64: u8 = 1;
/// Protobuf wire type 2: length-delimited.
pub const WIRE_LEN: u8 = 2;
/// Protobuf wire type 5: 32-bit little-endian.
pub const WIRE_FIXED32: u8 = 5;

/// Largest valid field number (2^29 - 1).
pub const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// Maximum bytes of a tag or length varint (32-bit).
pub const MAX_VARINT32_BYTES: usize = 5;
/// Maximum bytes of a value varint (64-bit).
pub const MAX_VARINT64_BYTES: usize = 10;

/// Builds a tag value from a field number and a wire type.
#[inline]
pub const fn tag(field: u32, wire_type: u8) -> u32 {
    (field << 3) | wire_type as u32
}

/// Bytes needed to write `v` as a minimal varint.
#[inline]
pub const fn varint_size(v: u64) -> usize {
    // 1 + floor(bits / 7), with v = 0 taking one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Outcome of decoding a varint from a contiguous slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintRead {
    /// Value and bytes used.
    Done(u64, usize),
    /// The slice ended before the terminating byte (and `max` was not reached).
    Incomplete,
    /// `max` bytes all had the continuation bit.
    TooLong,
    /// The varint ended at its `max`-th byte with bits above the width it encodes (32 bits
    /// for 5 bytes, 64 for 10): its value does not fit.
    Overflow,
}

/// The largest last byte of a `max`-byte varint whose value still fits its width: 4 bits
/// of a 5-byte (32-bit) varint, 1 bit of a 10-byte (64-bit) one.
#[inline]
const fn max_last_byte(max: usize) -> u8 {
    match max {
        MAX_VARINT32_BYTES => 0x0f,
        MAX_VARINT64_BYTES => 0x01,
        _ => 0x7f,
    }
}

/// Decodes a varint of at most `max` bytes from the front of `buf`: 5 for a 32-bit tag or
/// length, 10 for a 64-bit value. A value wider than that is [`VarintRead::Overflow`],
/// never truncated.
#[inline]
pub(crate) fn read_varint(buf: &[u8], max: usize) -> VarintRead {
    // Most tags, lengths and small values fit in one byte.
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            return VarintRead::Done(b as u64, 1);
        }
    }
    let mut v: u64 = 0;
    let n = buf.len().min(max);
    for (i, &b) in buf[..n].iter().enumerate() {
        if i < 10 {
            v |= ((b & 0x7f) as u64) << (7 * i as u32);
        }
        if b & 0x80 == 0 {
            if i + 1 == max && b > max_last_byte(max) {
                return VarintRead::Overflow;
            }
            return VarintRead::Done(v, i + 1);
        }
    }
    if n == max {
        VarintRead::TooLong
    } else {
        VarintRead::Incomplete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(varint_size(0), 1);
        assert_eq!(varint_size(127), 1);
        assert_eq!(varint_size(128), 2);
        assert_eq!(varint_size(16383), 2);
        assert_eq!(varint_size(16384), 3);
        assert_eq!(varint_size(u32::MAX as u64), 5);
        assert_eq!(varint_size(u64::MAX), 10);
        assert_eq!(varint_size(-1i64 as u64), 10);
    }

    #[test]
    fn reads() {
        assert_eq!(read_varint(&[0x00], 10), VarintRead::Done(0, 1));
        assert_eq!(read_varint(&[0x96, 0x01], 10), VarintRead::Done(150, 2));
        assert_eq!(read_varint(&[0x96], 10), VarintRead::Incomplete);
        assert_eq!(read_varint(&[0x80; 5], 5), VarintRead::TooLong);
        assert_eq!(read_varint(&[0x80; 4], 5), VarintRead::Incomplete);
        assert_eq!(
            read_varint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                10
            ),
            VarintRead::Done(u64::MAX, 10)
        );
        assert_eq!(read_varint(&[0x80; 11], 10), VarintRead::TooLong);
    }

    #[test]
    fn overflow_is_not_truncated() {
        // 2^32 - 1 fits 32 bits; 2^32 does not.
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x0f], 5),
            VarintRead::Done(u32::MAX as u64, 5)
        );
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x10], 5),
            VarintRead::Overflow
        );
        // A ten-byte varint's last byte carries bit 63 only.
        let mut v = [0xff; 10];
        for last in [0x02, 0x7f] {
            v[9] = last;
            assert_eq!(read_varint(&v, 10), VarintRead::Overflow);
        }
        // Shorter varints cannot overflow.
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0x7f], 5),
            VarintRead::Done((1 << 28) - 1, 4)
        );
    }

    #[test]
    fn tags() {
        assert_eq!(tag(1, WIRE_VARINT), 0x08);
        assert_eq!(tag(15, WIRE_LEN), 0x7a);
        assert_eq!(tag(16, WIRE_LEN), 0x82);
    }
}
