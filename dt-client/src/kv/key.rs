//! Key and value rules (`wire-protocol.md` §6.3, `dtkv-server.md` §2).
//!
//! Keys are byte strings whose path separator is `.`; the empty key is the root. The
//! server checks keys loosely ([`check_key`] with `full_check = false`: not empty where
//! the root is not allowed, at most [`MAX_KEY_SIZE`] bytes, not starting or ending with
//! `.`); clients (and the server for watch keys) add the full check: no space byte and no
//! empty segment (`..`).

use super::codes::KvCode;

/// The path separator.
pub const SEPARATOR: u8 = b'.';
/// The longest key, in bytes.
pub const MAX_KEY_SIZE: usize = 8192;
/// The longest value, in bytes.
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;
/// The longest TTL, lease or lock wait: 100 × 365 days in milliseconds.
pub const MAX_TTL_MILLIS: i64 = 100 * 365 * 24 * 3600 * 1000;

/// Checks a key: [`KvCode::Success`], [`KvCode::InvalidKey`] or [`KvCode::KeyTooLong`].
///
/// `allow_empty`: the empty key means the root (get, list). `full_check`: also refuse a
/// space byte and an empty segment (the client rule, and the server's rule for watches).
/// The checks run in the reference's order: empty, length, first/last byte, then the full
/// check.
///
/// ```
/// use dt_client::kv::{check_key, KvCode};
/// assert_eq!(check_key(b"a.b", false, true), KvCode::Success);
/// assert_eq!(check_key(b"", true, true), KvCode::Success);
/// assert_eq!(check_key(b"", false, true), KvCode::InvalidKey);
/// assert_eq!(check_key(b".a", false, false), KvCode::InvalidKey);
/// assert_eq!(check_key(b"a..b", false, false), KvCode::Success);
/// assert_eq!(check_key(b"a..b", false, true), KvCode::InvalidKey);
/// ```
pub fn check_key(key: &[u8], allow_empty: bool, full_check: bool) -> KvCode {
    let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
        return if allow_empty {
            KvCode::Success
        } else {
            KvCode::InvalidKey
        };
    };
    if key.len() > MAX_KEY_SIZE {
        return KvCode::KeyTooLong;
    }
    if first == SEPARATOR || last == SEPARATOR {
        return KvCode::InvalidKey;
    }
    if full_check && has_space_or_empty_segment(key) {
        return KvCode::InvalidKey;
    }
    KvCode::Success
}

/// Whether `key` holds a space or two separators in a row. Eight bytes at a time (a
/// client checks every key it sends).
fn has_space_or_empty_segment(key: &[u8]) -> bool {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const ONES: u64 = 0x0101_0101_0101_0101;
    /// 0x80 in exactly the bytes of `w` equal to `b` (no false positives).
    fn eq_mask(w: u64, b: u8) -> u64 {
        let t = w ^ (ONES * b as u64);
        !(((t & LOW7) + LOW7) | t | LOW7)
    }
    let mut chunks = key.chunks_exact(8);
    // Whether the byte before the current word was a separator.
    let mut prev_sep = false;
    for c in chunks.by_ref() {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        if eq_mask(w, b' ') != 0 {
            return true;
        }
        let d = eq_mask(w, SEPARATOR);
        if d & (d << 8) != 0 || (prev_sep && d & 0x80 != 0) {
            return true;
        }
        prev_sep = d >> 63 != 0;
    }
    for &b in chunks.remainder() {
        if b == b' ' {
            return true;
        }
        let sep = b == SEPARATOR;
        if sep && prev_sep {
            return true;
        }
        prev_sep = sep;
    }
    false
}

/// Checks a value as clients must (the server does so only for put and put-temp):
/// [`KvCode::Success`], [`KvCode::InvalidValue`] (empty) or [`KvCode::ValueTooLong`].
pub fn check_value(value: &[u8]) -> KvCode {
    if value.is_empty() {
        KvCode::InvalidValue
    } else if value.len() > MAX_VALUE_SIZE {
        KvCode::ValueTooLong
    } else {
        KvCode::Success
    }
}

/// The position of the last separator, if any.
fn last_sep(key: &[u8]) -> Option<usize> {
    key.iter().rposition(|&b| b == SEPARATOR)
}

/// The parent key: `a.b` for `a.b.c`, the root (empty) for `a` and for the root.
pub fn parent_key(key: &[u8]) -> &[u8] {
    match last_sep(key) {
        Some(i) => &key[..i],
        None => &[],
    }
}

/// The last segment of a key: `c` for `a.b.c`, the key itself when it has no separator.
pub fn key_in_dir(key: &[u8]) -> &[u8] {
    match last_sep(key) {
        Some(i) => &key[i + 1..],
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time rule the word-at-a-time check must agree with.
    fn plain_rule(key: &[u8]) -> bool {
        key.contains(&b' ') || key.windows(2).any(|w| w == [SEPARATOR, SEPARATOR])
    }

    #[test]
    fn word_at_a_time_check_agrees_with_the_plain_rule() {
        // Every placement of spaces and separator pairs around the 8-byte boundaries,
        // among neighbours that differ from them by one bit (0x2F, 0x21, 0xAE, 0x0E).
        let alphabet = [b'a', b'.', b' ', 0x2F, 0x21, 0xAE, 0x0E, b'-'];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 26) as usize;
            let key: Vec<u8> = (0..len)
                .map(|i| {
                    let r = (seed >> (i % 20)) ^ (i as u64).wrapping_mul(0x5851_F42D);
                    // mostly plain letters, so that valid keys come up too
                    if r % 5 < 3 {
                        b'a'
                    } else {
                        alphabet[(r >> 3) as usize % alphabet.len()]
                    }
                })
                .collect();
            assert_eq!(
                has_space_or_empty_segment(&key),
                plain_rule(&key),
                "{key:?}"
            );
        }
        for pos in 0..24 {
            let mut k = vec![b'a'; 24];
            k[pos] = b' ';
            assert!(has_space_or_empty_segment(&k), "space at {pos}");
            if pos < 23 {
                let mut k = vec![b'a'; 24];
                k[pos] = b'.';
                k[pos + 1] = b'.';
                assert!(has_space_or_empty_segment(&k), "separators at {pos}");
                k[pos + 1] = b'a';
                assert!(!has_space_or_empty_segment(&k), "one separator at {pos}");
            }
        }
    }

    #[test]
    fn server_check_is_lax_and_client_check_is_full() {
        assert_eq!(check_key(b"a b", false, false), KvCode::Success);
        assert_eq!(check_key(b"a b", false, true), KvCode::InvalidKey);
        assert_eq!(check_key(b"a.", false, false), KvCode::InvalidKey);
        assert_eq!(check_key(b".", true, false), KvCode::InvalidKey);
        let long = vec![b'k'; MAX_KEY_SIZE + 1];
        assert_eq!(check_key(&long, false, false), KvCode::KeyTooLong);
        // Length is checked before the separator rule.
        let mut long_dot = long.clone();
        long_dot[0] = b'.';
        assert_eq!(check_key(&long_dot, false, false), KvCode::KeyTooLong);
        assert_eq!(
            check_key(&long[..MAX_KEY_SIZE], false, true),
            KvCode::Success
        );
    }

    #[test]
    fn values() {
        assert_eq!(check_value(b""), KvCode::InvalidValue);
        assert_eq!(check_value(&vec![0; MAX_VALUE_SIZE]), KvCode::Success);
        assert_eq!(
            check_value(&vec![0; MAX_VALUE_SIZE + 1]),
            KvCode::ValueTooLong
        );
    }

    #[test]
    fn parents() {
        assert_eq!(parent_key(b"a.b.c"), b"a.b");
        assert_eq!(parent_key(b"a"), b"");
        assert_eq!(parent_key(b""), b"");
        assert_eq!(key_in_dir(b"a.b.c"), b"c");
        assert_eq!(key_in_dir(b"a"), b"a");
        assert_eq!(MAX_TTL_MILLIS, 3_153_600_000_000);
    }
}
