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
    if full_check {
        let mut prev_sep = false;
        for &b in key {
            if b == b' ' {
                return KvCode::InvalidKey;
            }
            let sep = b == SEPARATOR;
            if sep && prev_sep {
                return KvCode::InvalidKey;
            }
            prev_sep = sep;
        }
    }
    KvCode::Success
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
