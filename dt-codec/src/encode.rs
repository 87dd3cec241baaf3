//! `Encodable` and the encoding helpers that follow the reference's rules.
//!
//! The rules (`docs/wire-protocol.md` §1): fields in ascending number order; single scalars,
//! strings and bytes omitted when zero/empty; single nested messages written whenever
//! present, even empty (`tag 00`); repeated fields never packed and written element by
//! element including zeros and empty elements; count fields before their elements;
//! negative `int32` sign-extended to a 10-byte varint; minimal varints; little-endian
//! fixed numbers. The `size_*` functions mirror the `put_*` functions exactly, so
//! [`Encodable::encoded_size`] can be computed before encoding.

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::{tag, varint_size, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT};

/// A message that can be encoded: size first, then bytes.
///
/// `encode` must write exactly `encoded_size()` bytes. Implementations use the `put_*`
/// helpers of this module, which follow the reference's omission and ordering rules.
///
/// ```
/// use bytes::BytesMut;
/// use dt_codec::{encode, Encodable};
///
/// struct KeyValue<'a> { group: i32, key: &'a [u8], value: &'a [u8] }
/// impl Encodable for KeyValue<'_> {
///     fn encoded_size(&self) -> usize {
///         encode::size_int32(1, self.group)
///             + encode::size_bytes(2, self.key)
///             + encode::size_bytes(3, self.value)
///     }
///     fn encode(&self, out: &mut BytesMut) {
///         encode::put_int32(out, 1, self.group);
///         encode::put_bytes(out, 2, self.key);
///         encode::put_bytes(out, 3, self.value);
///     }
/// }
///
/// let m = KeyValue { group: 0, key: b"a.b", value: b"v" };
/// let bytes = encode::to_bytes(&m);
/// assert_eq!(&bytes[..], &[0x12, 3, b'a', b'.', b'b', 0x1a, 1, b'v']);
/// ```
pub trait Encodable {
    /// Exact number of bytes `encode` writes.
    fn encoded_size(&self) -> usize;
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut BytesMut);
}

impl<T: Encodable + ?Sized> Encodable for &T {
    fn encoded_size(&self) -> usize {
        (**self).encoded_size()
    }
    fn encode(&self, out: &mut BytesMut) {
        (**self).encode(out)
    }
}

impl Encodable for [u8] {
    /// Raw bytes encode as themselves (a body that is already encoded, a ping payload).
    fn encoded_size(&self) -> usize {
        self.len()
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_slice(self)
    }
}

impl Encodable for Bytes {
    fn encoded_size(&self) -> usize {
        self.len()
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_slice(self)
    }
}

/// Encodes `m` into a new buffer of exactly its size.
pub fn to_bytes(m: &(impl Encodable + ?Sized)) -> Bytes {
    let size = m.encoded_size();
    let mut out = BytesMut::with_capacity(size);
    m.encode(&mut out);
    debug_assert_eq!(out.len(), size, "encoded_size disagrees with encode");
    out.freeze()
}

/// Messages up to this size go to [`to_bytes_pooled`]'s per-thread chunks.
pub const POOLED_MAX: usize = 4096;
/// Size of one per-thread chunk of [`to_bytes_pooled`].
const POOL_CHUNK: usize = 64 * 1024;

thread_local! {
    static POOL: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// [`to_bytes`] for small, short-lived messages (requests in flight): `m` is encoded
/// into the free end of a 64 KiB chunk kept per thread, and the result shares that
/// chunk. So encoding allocates once per chunk, not once per message; a clone of the
/// result (kept for a re-send) only counts a reference, and the last of a chunk's
/// messages to be dropped (on any thread) frees it. A message above [`POOLED_MAX`]
/// bytes gets its own buffer, as [`to_bytes`] does. A chunk stays allocated while any
/// message in it is alive: keep the result no longer than the request needs it.
///
/// ```
/// use dt_codec::encode::{to_bytes, to_bytes_pooled};
///
/// let a = to_bytes_pooled(&b"first"[..]);
/// let b = to_bytes_pooled(&b"second"[..]);
/// assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
/// assert_eq!(a, to_bytes(&b"first"[..]));
/// ```
pub fn to_bytes_pooled(m: &(impl Encodable + ?Sized)) -> Bytes {
    let size = m.encoded_size();
    if size > POOLED_MAX {
        return to_bytes(m);
    }
    POOL.with(|p| {
        let mut buf = p.borrow_mut();
        if buf.capacity() < size {
            // The previous chunk lives on in the messages cut from it.
            *buf = BytesMut::with_capacity(POOL_CHUNK);
        }
        m.encode(&mut buf);
        debug_assert_eq!(buf.len(), size, "encoded_size disagrees with encode");
        buf.split().freeze()
    })
}

// ---- primitives ----

/// Appends `v` as a minimal varint.
#[inline]
pub fn put_varint(out: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Appends a tag.
#[inline]
pub fn put_tag(out: &mut impl BufMut, field: u32, wire_type: u8) {
    put_varint(out, tag(field, wire_type) as u64);
}

/// Size of a tag.
#[inline]
pub const fn size_tag(field: u32) -> usize {
    varint_size(tag(field, 0) as u64)
}

/// Varint size of an `int32` (negative values take 10 bytes).
#[inline]
pub const fn size_int32_value(v: i32) -> usize {
    varint_size(v as i64 as u64)
}

// ---- single fields (omitted when zero / empty) ----

/// Size of a single `int32` field (0 when `v == 0`).
#[inline]
pub const fn size_int32(field: u32, v: i32) -> usize {
    if v == 0 {
        0
    } else {
        size_tag(field) + size_int32_value(v)
    }
}

/// Writes a single `int32` field unless `v == 0`.
#[inline]
pub fn put_int32(out: &mut impl BufMut, field: u32, v: i32) {
    if v != 0 {
        put_tag(out, field, WIRE_VARINT);
        put_varint(out, v as i64 as u64);
    }
}

/// Size of a single `int64` field (0 when `v == 0`).
#[inline]
pub const fn size_int64(field: u32, v: i64) -> usize {
    if v == 0 {
        0
    } else {
        size_tag(field) + varint_size(v as u64)
    }
}

/// Writes a single `int64` field unless `v == 0`.
#[inline]
pub fn put_int64(out: &mut impl BufMut, field: u32, v: i64) {
    if v != 0 {
        put_tag(out, field, WIRE_VARINT);
        put_varint(out, v as u64);
    }
}

/// Size of a `bool` field (written as `int32` 1, omitted when false).
#[inline]
pub const fn size_bool(field: u32, v: bool) -> usize {
    size_int32(field, v as i32)
}

/// Writes a `bool` field (as `int32` 1) unless false.
#[inline]
pub fn put_bool(out: &mut impl BufMut, field: u32, v: bool) {
    put_int32(out, field, v as i32)
}

/// Size of a single `fixed32` field (0 when `v == 0`).
#[inline]
pub const fn size_fixed32(field: u32, v: u32) -> usize {
    if v == 0 {
        0
    } else {
        size_tag(field) + 4
    }
}

/// Writes a single `fixed32` field unless `v == 0`.
#[inline]
pub fn put_fixed32(out: &mut impl BufMut, field: u32, v: u32) {
    if v != 0 {
        put_tag(out, field, WIRE_FIXED32);
        out.put_u32_le(v);
    }
}

/// Size of a single `fixed64` field (0 when `v == 0`).
#[inline]
pub const fn size_fixed64(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        size_tag(field) + 8
    }
}

/// Writes a single `fixed64` field unless `v == 0`.
#[inline]
pub fn put_fixed64(out: &mut impl BufMut, field: u32, v: u64) {
    if v != 0 {
        put_tag(out, field, WIRE_FIXED64);
        out.put_u64_le(v);
    }
}

/// Size of a length-delimited field carrying `len` bytes, always written.
#[inline]
pub const fn size_len_field(field: u32, len: usize) -> usize {
    size_tag(field) + varint_size(len as u64) + len
}

/// Size of a single `bytes` field (0 when empty).
#[inline]
pub const fn size_bytes(field: u32, v: &[u8]) -> usize {
    if v.is_empty() {
        0
    } else {
        size_len_field(field, v.len())
    }
}

/// Writes a single `bytes` field unless empty.
#[inline]
pub fn put_bytes(out: &mut impl BufMut, field: u32, v: &[u8]) {
    if !v.is_empty() {
        put_len_prefix(out, field, v.len());
        out.put_slice(v);
    }
}

/// Size of a single `string` field (0 when empty).
#[inline]
pub const fn size_str(field: u32, v: &str) -> usize {
    size_bytes(field, v.as_bytes())
}

/// Writes a single `string` field unless empty.
#[inline]
pub fn put_str(out: &mut impl BufMut, field: u32, v: &str) {
    put_bytes(out, field, v.as_bytes())
}

/// Writes the tag and length prefix of a length-delimited field; the caller appends
/// exactly `len` bytes.
#[inline]
pub fn put_len_prefix(out: &mut impl BufMut, field: u32, len: usize) {
    put_tag(out, field, WIRE_LEN);
    put_varint(out, len as u64);
}

/// Size of a single nested message field: written whenever present, even if empty.
#[inline]
pub fn size_nested(field: u32, m: Option<&(impl Encodable + ?Sized)>) -> usize {
    match m {
        Some(m) => size_len_field(field, m.encoded_size()),
        None => 0,
    }
}

/// Writes a single nested message field when present (even if it encodes to nothing:
/// `tag 00`).
#[inline]
pub fn put_nested(out: &mut BytesMut, field: u32, m: Option<&(impl Encodable + ?Sized)>) {
    if let Some(m) = m {
        put_len_prefix(out, field, m.encoded_size());
        m.encode(out);
    }
}

// ---- repeated fields (never packed; every element written) ----

/// Size of a repeated `int32` field (zeros included).
pub fn size_repeated_int32(field: u32, v: &[i32]) -> usize {
    v.iter()
        .map(|&x| size_tag(field) + size_int32_value(x))
        .sum()
}

/// Writes a repeated `int32` field, one tag per element, zeros included.
pub fn put_repeated_int32(out: &mut impl BufMut, field: u32, v: &[i32]) {
    for &x in v {
        put_tag(out, field, WIRE_VARINT);
        put_varint(out, x as i64 as u64);
    }
}

/// Size of a repeated `int64` field (zeros included).
pub fn size_repeated_int64(field: u32, v: &[i64]) -> usize {
    v.iter()
        .map(|&x| size_tag(field) + varint_size(x as u64))
        .sum()
}

/// Writes a repeated `int64` field, zeros included.
pub fn put_repeated_int64(out: &mut impl BufMut, field: u32, v: &[i64]) {
    for &x in v {
        put_tag(out, field, WIRE_VARINT);
        put_varint(out, x as u64);
    }
}

/// Size of a repeated `fixed32` field (zeros included).
pub fn size_repeated_fixed32(field: u32, v: &[u32]) -> usize {
    v.len() * (size_tag(field) + 4)
}

/// Writes a repeated `fixed32` field, zeros included.
pub fn put_repeated_fixed32(out: &mut impl BufMut, field: u32, v: &[u32]) {
    for &x in v {
        put_tag(out, field, WIRE_FIXED32);
        out.put_u32_le(x);
    }
}

/// Size of a repeated `fixed64` field (zeros included).
pub fn size_repeated_fixed64(field: u32, v: &[u64]) -> usize {
    v.len() * (size_tag(field) + 8)
}

/// Writes a repeated `fixed64` field, zeros included.
pub fn put_repeated_fixed64(out: &mut impl BufMut, field: u32, v: &[u64]) {
    for &x in v {
        put_tag(out, field, WIRE_FIXED64);
        out.put_u64_le(x);
    }
}

/// Size of a repeated `bytes` field (empty elements included as `tag 00`).
pub fn size_repeated_bytes<T: AsRef<[u8]>>(field: u32, v: &[T]) -> usize {
    v.iter()
        .map(|x| size_len_field(field, x.as_ref().len()))
        .sum()
}

/// Writes a repeated `bytes` field, empty elements included as `tag 00`.
pub fn put_repeated_bytes<T: AsRef<[u8]>>(out: &mut impl BufMut, field: u32, v: &[T]) {
    for x in v {
        let x = x.as_ref();
        put_len_prefix(out, field, x.len());
        out.put_slice(x);
    }
}

/// Size of a repeated nested-message field (empty messages included as `tag 00`).
pub fn size_repeated_nested<T: Encodable>(field: u32, v: &[T]) -> usize {
    v.iter()
        .map(|m| size_len_field(field, m.encoded_size()))
        .sum()
}

/// Writes a repeated nested-message field, empty messages included as `tag 00`.
pub fn put_repeated_nested<T: Encodable>(out: &mut BytesMut, field: u32, v: &[T]) {
    for m in v {
        put_len_prefix(out, field, m.encoded_size());
        m.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_messages_equal_their_own_encoding_across_chunks_and_threads() {
        // Sizes that cross several 64 KiB chunk boundaries at uneven points.
        let msgs: Vec<Vec<u8>> = (0..3000)
            .map(|i| vec![(i % 251) as u8; (i * 37) % 700])
            .collect();
        let pooled: Vec<Bytes> = msgs.iter().map(|m| to_bytes_pooled(&m[..])).collect();
        for (m, p) in msgs.iter().zip(&pooled) {
            assert_eq!(&p[..], &m[..]);
        }
        // Clones share, drops on another thread leave the rest intact.
        let (keep, give): (Vec<_>, Vec<_>) = pooled
            .iter()
            .cloned()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        std::thread::spawn(move || drop(give)).join().unwrap();
        drop(pooled);
        for (i, p) in keep {
            assert_eq!(&p[..], &msgs[i][..]);
        }
        // Above POOLED_MAX: its own buffer, same bytes.
        let big = vec![7u8; POOLED_MAX + 1];
        assert_eq!(&to_bytes_pooled(&big[..])[..], &big[..]);
        let empty: &[u8] = &[];
        assert!(to_bytes_pooled(empty).is_empty());
    }

    fn enc(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut b = BytesMut::new();
        f(&mut b);
        b.to_vec()
    }

    #[test]
    fn omission_rules() {
        assert!(enc(|b| put_int32(b, 1, 0)).is_empty());
        assert!(enc(|b| put_int64(b, 1, 0)).is_empty());
        assert!(enc(|b| put_fixed32(b, 1, 0)).is_empty());
        assert!(enc(|b| put_fixed64(b, 1, 0)).is_empty());
        assert!(enc(|b| put_bytes(b, 1, b"")).is_empty());
        assert!(enc(|b| put_str(b, 1, "")).is_empty());
        assert!(enc(|b| put_bool(b, 1, false)).is_empty());
        assert_eq!(enc(|b| put_bool(b, 1, true)), [0x08, 0x01]);
        // Present-but-empty nested message: tag 00.
        assert_eq!(enc(|b| put_nested(b, 3, Some(&b""[..]))), [0x1a, 0x00]);
        assert!(enc(|b| put_nested(b, 3, None::<&[u8]>)).is_empty());
        // Repeated keep zeros and empties.
        assert_eq!(
            enc(|b| put_repeated_int32(b, 1, &[0, 1])),
            [0x08, 0x00, 0x08, 0x01]
        );
        assert_eq!(
            enc(|b| put_repeated_bytes(b, 9, &[&b""[..], b"a"])),
            [0x4a, 0x00, 0x4a, 0x01, b'a']
        );
        assert_eq!(
            enc(|b| put_repeated_fixed32(b, 11, &[1, 0])),
            [0x5d, 1, 0, 0, 0, 0x5d, 0, 0, 0, 0]
        );
    }

    #[test]
    fn negative_int32_is_ten_bytes() {
        let v = enc(|b| put_int32(b, 4, -1));
        assert_eq!(
            v,
            [0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(size_int32(4, -1), 11);
        assert_eq!(size_int32(4, i32::MIN), 11);
    }

    #[test]
    fn sizes_match_encodings() {
        let cases: Vec<(usize, Vec<u8>)> = vec![
            (size_int32(16, 300), enc(|b| put_int32(b, 16, 300))),
            (size_int32(1, i32::MAX), enc(|b| put_int32(b, 1, i32::MAX))),
            (size_int64(2, i64::MIN), enc(|b| put_int64(b, 2, i64::MIN))),
            (size_int64(2, i64::MAX), enc(|b| put_int64(b, 2, i64::MAX))),
            (size_fixed64(15, 7), enc(|b| put_fixed64(b, 15, 7))),
            (
                size_fixed32(536_870_911, 7),
                enc(|b| put_fixed32(b, 536_870_911, 7)),
            ),
            (
                size_bytes(2, &[7; 200]),
                enc(|b| put_bytes(b, 2, &[7; 200])),
            ),
            (
                size_repeated_int64(3, &[0, -1, 5]),
                enc(|b| put_repeated_int64(b, 3, &[0, -1, 5])),
            ),
            (
                size_repeated_fixed64(3, &[0, 9]),
                enc(|b| put_repeated_fixed64(b, 3, &[0, 9])),
            ),
        ];
        for (size, bytes) in cases {
            assert_eq!(size, bytes.len(), "{bytes:02x?}");
        }
    }

    #[test]
    fn spec_example_put_body() {
        // The reference's DtKV put body: KvReq key "a.b", value "v", group 1.
        let v = enc(|b| {
            put_int32(b, 1, 1);
            put_bytes(b, 2, b"a.b");
            put_bytes(b, 3, b"v");
        });
        assert_eq!(
            v,
            [0x08, 0x01, 0x12, 0x03, 0x61, 0x2e, 0x62, 0x1a, 0x01, 0x76]
        );
    }
}
