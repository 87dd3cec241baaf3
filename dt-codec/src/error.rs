//! Decoding errors.

use std::fmt;

/// Why a protobuf message could not be decoded.
///
/// Every variant except [`PbError::Rejected`] is fatal for the stream it came from: the
/// network layer closes the connection, the log reader refuses the record. `Rejected` is
/// what a callback returns to discard one message without failing the stream (the
/// reference's "callback returned false").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PbError {
    /// A tag carried wire type 3, 4, 6 or 7 (groups and undefined types are not supported).
    InvalidWireType {
        /// The field number in the tag.
        field: u32,
        /// The wire type in the tag.
        wire_type: u8,
    },
    /// A tag carried field number 0.
    FieldNumberZero,
    /// A varint had more continuation bytes than allowed (5 for tags and lengths, 10 for
    /// values).
    VarintTooLong {
        /// The maximum number of bytes for this kind of varint.
        max_bytes: u8,
    },
    /// A varint's value does not fit its field: a tag or a length above 32 bits, or a
    /// ten-byte value varint above 64 bits (its last byte over 1). Truncating it would
    /// silently read a different message, so it is fatal, as in prost.
    VarintOverflow {
        /// The field being read (0 while reading a tag).
        field: u32,
        /// What overflowed: `"tag"`, `"length"` or `"varint value"`.
        what: &'static str,
        /// The width it overflowed: 32 or 64 bits.
        bits: u8,
    },
    /// A length prefix decoded to a negative 32-bit number.
    NegativeLength {
        /// The field whose length is negative.
        field: u32,
        /// The decoded length.
        len: i32,
    },
    /// A length-delimited field claims more bytes than remain in its message.
    LengthOverrun {
        /// The field.
        field: u32,
        /// The declared length.
        len: usize,
        /// Bytes left in the enclosing message after the length prefix.
        remaining: usize,
    },
    /// The message ends in the middle of a field (a tag, a varint or a fixed number).
    Truncated {
        /// The field being read (0 while reading a tag).
        field: u32,
        /// What was being read.
        what: &'static str,
    },
    /// A nested message did not consume exactly its field's length.
    NestedIncomplete {
        /// The field holding the nested message.
        field: u32,
        /// The nested message's declared length.
        len: usize,
    },
    /// A callback found the content invalid (a fatal error).
    Invalid(String),
    /// A callback rejected the message; it is skipped, the stream stays usable.
    Rejected(String),
    /// The parser was used wrongly (fed before `prepare`, or after a fatal error).
    Misuse(&'static str),
}

impl PbError {
    /// A fatal error raised by a callback.
    pub fn invalid(msg: impl Into<String>) -> Self {
        PbError::Invalid(msg.into())
    }

    /// A non-fatal rejection of the current message, raised by a callback.
    pub fn rejected(msg: impl Into<String>) -> Self {
        PbError::Rejected(msg.into())
    }

    /// Whether this error only discards the current message (see [`PbError::Rejected`]).
    pub fn is_rejection(&self) -> bool {
        matches!(self, PbError::Rejected(_))
    }
}

impl fmt::Display for PbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PbError::InvalidWireType { field, wire_type } => write!(
                f,
                "unsupported protobuf wire type {wire_type} on field {field} (only 0, 1, 2, 5 are allowed)"
            ),
            PbError::FieldNumberZero => write!(f, "protobuf field number 0 is invalid"),
            PbError::VarintTooLong { max_bytes } => {
                write!(f, "varint longer than {max_bytes} bytes")
            }
            PbError::VarintOverflow {
                field: 0,
                what: "tag",
                bits,
            } => write!(f, "varint tag overflows {bits} bits"),
            PbError::VarintOverflow { field, what, bits } => {
                write!(f, "varint {what} of field {field} overflows {bits} bits")
            }
            PbError::NegativeLength { field, len } => {
                write!(f, "negative length {len} on field {field}")
            }
            PbError::LengthOverrun {
                field,
                len,
                remaining,
            } => write!(
                f,
                "field {field} declares {len} bytes but only {remaining} remain in the message"
            ),
            PbError::Truncated { field, what } => {
                write!(f, "message ends inside the {what} of field {field}")
            }
            PbError::NestedIncomplete { field, len } => write!(
                f,
                "nested message in field {field} did not end at its declared length {len}"
            ),
            PbError::Invalid(m) => write!(f, "invalid message: {m}"),
            PbError::Rejected(m) => write!(f, "message rejected: {m}"),
            PbError::Misuse(m) => write!(f, "parser misuse: {m}"),
        }
    }
}

impl std::error::Error for PbError {}
