//! # dt-codec: the Dongting protobuf subset, byte-exact
//!
//! This layer owns the protobuf wire primitives that every dt message is made of, and
//! nothing above them (packet headers live in dt-net, KV and Raft messages in their own
//! crates). It provides:
//!
//! * [`PbParser`]: a streaming, resumable decoder driven by a [`PbCallback`]. Feed it
//!   fragments of any size (one byte at a time, random splits, whole messages); it reports
//!   varints, fixed32/fixed64 values and chunks of length-delimited fields (zero-copy
//!   [`Chunk`]s of the input [`bytes::Bytes`]). Nested messages are parsed with a
//!   [`NestedParser`] bounded by their field length. Malformed input gives a typed
//!   [`PbError`], never a panic, and never an allocation larger than the input.
//! * [`Encodable`] (size, then encode) and the [`encode`] helpers that follow the
//!   reference's rules: zero/empty single fields omitted, nested messages written when
//!   present even if empty, repeated fields unpacked with zeros and empties kept, count
//!   fields before elements, negative `int32` as 10-byte varints, minimal varints.
//! * Ready-made bodies: [`PbInt`], [`PbLong`], [`PbStr`], [`PbBytes`] with their callbacks,
//!   [`BytesCollector`] (raw copy of a field or body) and the schema-less [`PbMessage`].
//!
//! ## Writing a decoder
//!
//! ```
//! use bytes::Bytes;
//! use dt_codec::{BytesCollector, Chunk, ParseStatus, PbCallback, PbError, PbParser};
//!
//! /// KvReq's first three fields: group (int32), key (bytes), value (bytes).
//! #[derive(Default)]
//! struct Put { group: i32, key: Option<Bytes>, value: Option<Bytes>, acc: BytesCollector }
//!
//! impl PbCallback for Put {
//!     fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
//!         if field == 1 { self.group = v as i32; }
//!         Ok(())
//!     }
//!     fn bytes(&mut self, field: u32, c: Chunk<'_>) -> Result<(), PbError> {
//!         let done = self.acc.push(&c);
//!         match field { 2 => self.key = done.or(self.key.take()),
//!                       3 => self.value = done.or(self.value.take()),
//!                       _ => {} }
//!         Ok(())
//!     }
//! }
//!
//! let body = Bytes::from_static(&[0x08, 0x01, 0x12, 0x03, b'a', b'.', b'b', 0x1a, 0x01, b'v']);
//! let mut p = PbParser::new(Put::default());
//! assert_eq!(p.parse_whole(&body).unwrap(), ParseStatus::Finished);
//! assert_eq!(p.callback().group, 1);
//! assert_eq!(p.callback().key.as_deref(), Some(&b"a.b"[..]));
//! ```
//!
//! ## Fuzzing
//!
//! Two drivers check the property in [`fuzz::check_input`], both on the stable toolchain:
//!
//! ```text
//! # 1. Seeded mutation fuzzing, no extra tools needed:
//! cargo run --release -p dt-codec --example fuzz_parser -- --seconds 60
//! #    (or replay files: ... --example fuzz_parser -- path/to/inputs/*)
//!
//! # 2. Coverage-guided AFL++ (cargo install cargo-afl; cargo afl config --build):
//! cd dt-codec/fuzz
//! cargo afl build --release
//! AFL_SKIP_CPUFREQ=1 cargo afl fuzz -i seeds -o out -V 60 target/release/pb_parser_afl
//! ```
//!
//! Property tests (`cargo test -p dt-codec`) cross-check the parser and encoders against
//! `prost`, a real protobuf implementation, including random fragmentation.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod collect;
mod common_bodies;
mod dynamic;
pub mod encode;
mod error;
pub mod fuzz;
mod nested;
mod parser;
pub mod plain;
pub mod wire;

pub use body::PbBody;
pub use collect::{utf8_lossy, BytesCollector};
pub use common_bodies::{
    PbBytes, PbBytesCallback, PbInt, PbIntCallback, PbLong, PbLongCallback, PbStr, PbStrCallback,
};
pub use dynamic::{PbField, PbMessage, PbMessageCallback, PbValue};
pub use encode::Encodable;
pub use error::PbError;
pub use nested::NestedParser;
pub use parser::{Chunk, Fed, ParseStatus, PbCallback, PbParser};
