//! The handshake body ([`HandshakeBody`]), the client identity ([`ProcessInfo`]) and the
//! limits hint ([`ConfigBody`]).

use bytes::BytesMut;
use dt_codec::encode::{self, Encodable};
use dt_codec::{Chunk, NestedParser, ParseStatus, PbCallback, PbError};

/// Authentication hook a server runs on every handshake request before accepting it,
/// with the client's handshake and address; an `Err` closes the connection with that
/// reason logged.
pub type HandshakeHook = std::sync::Arc<
    dyn Fn(&HandshakeBody, Option<std::net::SocketAddr>) -> Result<(), String> + Send + Sync,
>;

/// First handshake magic (field 1, fixed64).
pub const MAGIC1: u64 = 0xAE10_9045_1C22_DA13;
/// Second handshake magic (field 2, fixed64).
pub const MAGIC2: u64 = 0x1CD7_D1A3_0A61_935F;
/// RPC major version advertised.
pub const MAJOR_VERSION: i32 = 1;
/// RPC minor version advertised.
pub const MINOR_VERSION: i32 = 0;

/// The client process identity: a UUID as two halves (most significant first). It is the
/// client's identity for ownership of temporary nodes and locks; keep it across reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProcessInfo {
    /// Most-significant 64 bits.
    pub uuid1: u64,
    /// Least-significant 64 bits.
    pub uuid2: u64,
}

impl ProcessInfo {
    /// A random version-4 UUID from the OS's randomness (std's hasher keys).
    pub fn random() -> Self {
        let a = random_u64();
        let b = random_u64();
        ProcessInfo {
            uuid1: (a & !0xF000) | 0x4000,
            uuid2: (b & !(0xC0u64 << 56)) | (0x80u64 << 56),
        }
    }

    /// Whether both halves are zero (an invalid identity).
    pub fn is_zero(&self) -> bool {
        self.uuid1 == 0 && self.uuid2 == 0
    }
}

fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(dt_common::mono_nanos() as u64);
    h.finish()
}

impl Encodable for ProcessInfo {
    fn encoded_size(&self) -> usize {
        encode::size_fixed64(1, self.uuid1) + encode::size_fixed64(2, self.uuid2)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_fixed64(out, 1, self.uuid1);
        encode::put_fixed64(out, 2, self.uuid2);
    }
}

/// Limits a side advertises in the handshake (request: its own; response: a hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigBody {
    /// Largest frame the sender accepts.
    pub max_packet_size: i32,
    /// Largest body the sender accepts.
    pub max_body_size: i32,
    /// Sender's limit on concurrently processed incoming requests (request only).
    pub max_in_pending: i32,
    /// Same in bytes (request only).
    pub max_in_pending_bytes: i64,
    /// Outstanding outgoing requests (request: own limit; response: suggestion).
    pub max_out_pending: i32,
    /// Same in bytes.
    pub max_out_pending_bytes: i64,
}

impl Encodable for ConfigBody {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.max_packet_size)
            + encode::size_int32(2, self.max_body_size)
            + encode::size_int32(3, self.max_in_pending)
            + encode::size_int64(4, self.max_in_pending_bytes)
            + encode::size_int32(5, self.max_out_pending)
            + encode::size_int64(6, self.max_out_pending_bytes)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.max_packet_size);
        encode::put_int32(out, 2, self.max_body_size);
        encode::put_int32(out, 3, self.max_in_pending);
        encode::put_int64(out, 4, self.max_in_pending_bytes);
        encode::put_int32(out, 5, self.max_out_pending);
        encode::put_int64(out, 6, self.max_out_pending_bytes);
    }
}

/// The handshake message, request and response (command 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandshakeBody {
    /// Field 1; [`MAGIC1`] (0 = absent).
    pub magic1: u64,
    /// Field 2; [`MAGIC2`] (0 = absent).
    pub magic2: u64,
    /// Field 3.
    pub major_version: i32,
    /// Field 4.
    pub minor_version: i32,
    /// Field 5, required in requests.
    pub process_info: Option<ProcessInfo>,
    /// Field 8, required in responses.
    pub config: Option<ConfigBody>,
}

impl HandshakeBody {
    /// A body with the magics and versions set.
    pub fn new(process_info: Option<ProcessInfo>, config: Option<ConfigBody>) -> Self {
        HandshakeBody {
            magic1: MAGIC1,
            magic2: MAGIC2,
            major_version: MAJOR_VERSION,
            minor_version: MINOR_VERSION,
            process_info,
            config,
        }
    }
}

impl Encodable for HandshakeBody {
    fn encoded_size(&self) -> usize {
        encode::size_fixed64(1, self.magic1)
            + encode::size_fixed64(2, self.magic2)
            + encode::size_int32(3, self.major_version)
            + encode::size_int32(4, self.minor_version)
            + encode::size_nested(5, self.process_info.as_ref())
            + encode::size_nested(8, self.config.as_ref())
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_fixed64(out, 1, self.magic1);
        encode::put_fixed64(out, 2, self.magic2);
        encode::put_int32(out, 3, self.major_version);
        encode::put_int32(out, 4, self.minor_version);
        encode::put_nested(out, 5, self.process_info.as_ref());
        encode::put_nested(out, 8, self.config.as_ref());
    }
}

#[derive(Debug, Default)]
struct ProcessInfoCallback(ProcessInfo);

impl PbCallback for ProcessInfoCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.0 = ProcessInfo::default();
        Ok(())
    }
    fn fixed64(&mut self, f: u32, v: u64) -> Result<(), PbError> {
        match f {
            1 => self.0.uuid1 = v,
            2 => self.0.uuid2 = v,
            _ => {}
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct ConfigCallback(ConfigBody);

impl PbCallback for ConfigCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.0 = ConfigBody::default();
        Ok(())
    }
    fn varint(&mut self, f: u32, v: i64) -> Result<(), PbError> {
        match f {
            1 => self.0.max_packet_size = v as i32,
            2 => self.0.max_body_size = v as i32,
            3 => self.0.max_in_pending = v as i32,
            4 => self.0.max_in_pending_bytes = v,
            5 => self.0.max_out_pending = v as i32,
            6 => self.0.max_out_pending_bytes = v,
            _ => {}
        }
        Ok(())
    }
}

/// Decodes a [`HandshakeBody`]; a magic present with a wrong value is a fatal error, as in
/// the reference.
#[derive(Debug, Default)]
pub struct HandshakeCallback {
    /// The decoded body.
    pub body: HandshakeBody,
    pi: Option<NestedParser<ProcessInfoCallback>>,
    cfg: Option<NestedParser<ConfigCallback>>,
}

impl PbCallback for HandshakeCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.body = HandshakeBody::default();
        Ok(())
    }
    fn varint(&mut self, f: u32, v: i64) -> Result<(), PbError> {
        match f {
            3 => self.body.major_version = v as i32,
            4 => self.body.minor_version = v as i32,
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, f: u32, v: u64) -> Result<(), PbError> {
        match f {
            1 if v != MAGIC1 => Err(PbError::invalid(format!("handshake magic1 error: {v:#x}"))),
            2 if v != MAGIC2 => Err(PbError::invalid(format!("handshake magic2 error: {v:#x}"))),
            1 => {
                self.body.magic1 = v;
                Ok(())
            }
            2 => {
                self.body.magic2 = v;
                Ok(())
            }
            _ => Ok(()),
        }
    }
    fn bytes(&mut self, f: u32, c: Chunk<'_>) -> Result<(), PbError> {
        match f {
            5 => {
                let p = self
                    .pi
                    .get_or_insert_with(|| NestedParser::new(ProcessInfoCallback::default()));
                if p.feed(f, &c)? == Some(ParseStatus::Finished) {
                    self.body.process_info = Some(p.callback().0);
                }
            }
            8 => {
                let p = self
                    .cfg
                    .get_or_insert_with(|| NestedParser::new(ConfigCallback::default()));
                if p.feed(f, &c)? == Some(ParseStatus::Finished) {
                    self.body.config = Some(p.callback().0);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dt_codec::PbParser;

    #[test]
    fn round_trip_and_bad_magic() {
        let h = HandshakeBody::new(
            Some(ProcessInfo {
                uuid1: 0x0123456789ABCDEF,
                uuid2: 0xFEDCBA9876543210,
            }),
            Some(ConfigBody {
                max_packet_size: 5242880,
                ..Default::default()
            }),
        );
        let b = dt_codec::encode::to_bytes(&h);
        let mut p = PbParser::new(HandshakeCallback::default());
        assert_eq!(p.parse_whole(&b).unwrap(), ParseStatus::Finished);
        assert_eq!(p.callback().body, h);
        let mut bad = b.to_vec();
        bad[1] ^= 1;
        let mut p = PbParser::new(HandshakeCallback::default());
        assert!(p.parse_whole(&Bytes::from(bad)).is_err());
        let r = ProcessInfo::random();
        assert!(!r.is_zero());
        assert_eq!((r.uuid1 >> 12) & 0xF, 4);
    }
}
