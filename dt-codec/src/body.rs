//! [`PbBody`]: a message body type paired with its decoder callback, so a whole body can
//! be decoded in one call while the callback can still be driven piecewise.

use bytes::Bytes;

use crate::{ParseStatus, PbCallback, PbError, PbParser};

/// A message body with a decoder callback.
///
/// The callback can also be driven piecewise (a streaming [`PbParser`], or dt-net's
/// `ReadPacket::decode_body`); [`PbBody::finish`] then turns it into the message and runs
/// the checks that need the whole body. dt-raft's `RpcBody` and dt-client's `KvBody` are
/// this trait.
///
/// ```
/// use bytes::Bytes;
/// use dt_codec::{PbBody, PbError, PbIntCallback};
///
/// struct GroupId(i32);
/// impl PbBody for GroupId {
///     type Callback = PbIntCallback;
///     fn finish(cb: PbIntCallback) -> Result<Self, PbError> {
///         Ok(GroupId(cb.value))
///     }
/// }
/// // Field 1, fixed32 7 (the reference's PbInt encoding).
/// let g = GroupId::decode(&Bytes::from_static(&[0x0D, 7, 0, 0, 0])).unwrap();
/// assert_eq!(g.0, 7);
/// ```
pub trait PbBody: Sized {
    /// The decoder callback.
    type Callback: PbCallback + Default;

    /// The decoded message, once the parser finished the body.
    fn finish(cb: Self::Callback) -> Result<Self, PbError>;

    /// Decodes a whole body (zero-copy for bytes fields). A type may override it with
    /// a faster reading of its common shapes that leaves the rest to
    /// [`PbBody::decode_streaming`].
    fn decode(body: &Bytes) -> Result<Self, PbError> {
        Self::decode_streaming(body)
    }

    /// Decodes a whole body with the streaming parser and [`PbBody::Callback`].
    fn decode_streaming(body: &Bytes) -> Result<Self, PbError> {
        let mut p = PbParser::new(Self::Callback::default());
        match p.parse_whole(body)? {
            ParseStatus::Finished => Self::finish(p.into_callback()),
            ParseStatus::Rejected => Err(PbError::rejected("body rejected")),
            ParseStatus::NeedMore => Err(PbError::Truncated {
                field: 0,
                what: "body",
            }),
        }
    }
}
