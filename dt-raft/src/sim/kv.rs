//! The simulation's key-value state machine: `put`, `cas` and `remove` as log
//! entries, `get` served by lease read, on `i64` keys and values.
//!
//! A command is encoded in an entry body as: one op byte (1 put, 2 cas, 3 remove),
//! the key (8 bytes big-endian), then for put the value, for cas a flag byte
//! (bit 0: expected present, bit 1: new present) followed by the present values, and
//! finally the issuing client's operation id (8 bytes) so that two writes of the same
//! value are different entries. Every field is checked when decoded.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes};

use super::history::{Key, Value};

/// A write command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Set `key` to the value.
    Put(Key, Value),
    /// If `key` holds `expected` (`None`: absent), set it to `new` (`None`: delete).
    Cas {
        /// The key.
        key: Key,
        /// Required current value.
        expected: Option<Value>,
        /// New value.
        new: Option<Value>,
    },
    /// Delete `key`.
    Remove(Key),
}

/// Why a body is not a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadCommand(pub &'static str);

impl Command {
    /// The key the command works on.
    pub fn key(&self) -> Key {
        match *self {
            Command::Put(k, _) | Command::Remove(k) | Command::Cas { key: k, .. } => k,
        }
    }

    /// Encodes the command with the client's operation id.
    pub fn encode(&self, op_id: u64) -> Bytes {
        let mut b = Vec::with_capacity(34);
        match *self {
            Command::Put(k, v) => {
                b.put_u8(1);
                b.put_i64(k);
                b.put_i64(v);
            }
            Command::Cas { key, expected, new } => {
                b.put_u8(2);
                b.put_i64(key);
                b.put_u8(u8::from(expected.is_some()) | (u8::from(new.is_some()) << 1));
                if let Some(e) = expected {
                    b.put_i64(e);
                }
                if let Some(n) = new {
                    b.put_i64(n);
                }
            }
            Command::Remove(k) => {
                b.put_u8(3);
                b.put_i64(k);
            }
        }
        b.put_u64(op_id);
        b.into()
    }

    /// Decodes a body written by [`encode`](Self::encode): the command and its op id.
    pub fn decode(b: &[u8]) -> Result<(Command, u64), BadCommand> {
        let mut r = Reader(b);
        let op = r.u8()?;
        let key = r.i64()?;
        let cmd = match op {
            1 => Command::Put(key, r.i64()?),
            2 => {
                let flags = r.u8()?;
                if flags > 3 {
                    return Err(BadCommand("unknown cas flags"));
                }
                let expected = if flags & 1 != 0 { Some(r.i64()?) } else { None };
                let new = if flags & 2 != 0 { Some(r.i64()?) } else { None };
                Command::Cas { key, expected, new }
            }
            3 => Command::Remove(key),
            _ => return Err(BadCommand("unknown op")),
        };
        let id = r.i64()? as u64;
        if !r.0.is_empty() {
            return Err(BadCommand("trailing bytes"));
        }
        Ok((cmd, id))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, BadCommand> {
        let (&v, rest) = self.0.split_first().ok_or(BadCommand("truncated"))?;
        self.0 = rest;
        Ok(v)
    }
    fn i64(&mut self) -> Result<i64, BadCommand> {
        if self.0.len() < 8 {
            return Err(BadCommand("truncated"));
        }
        let (a, rest) = self.0.split_at(8);
        self.0 = rest;
        Ok(i64::from_be_bytes(a.try_into().expect("8 bytes")))
    }
}

/// The state machine: a map from key to value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    map: BTreeMap<Key, Value>,
}

impl Kv {
    /// Applies `cmd`; the boolean result of cas (it set) and remove (it existed),
    /// `true` for put.
    pub fn apply(&mut self, cmd: &Command) -> bool {
        match *cmd {
            Command::Put(k, v) => {
                self.map.insert(k, v);
                true
            }
            Command::Cas { key, expected, new } => {
                if self.map.get(&key).copied() != expected {
                    return false;
                }
                match new {
                    Some(v) => self.map.insert(key, v),
                    None => self.map.remove(&key),
                };
                true
            }
            Command::Remove(k) => self.map.remove(&k).is_some(),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: Key) -> Option<Value> {
        self.map.get(&key).copied()
    }

    /// The snapshot encoding: the number of keys (4 bytes big-endian), then each key
    /// and its value (8 bytes each), in key order.
    pub fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(4 + 16 * self.map.len());
        b.put_u32(self.map.len() as u32);
        for (k, v) in &self.map {
            b.put_i64(*k);
            b.put_i64(*v);
        }
        b.into()
    }

    /// Decodes [`encode`](Self::encode)'s bytes, every count and length checked.
    pub fn decode(b: &[u8]) -> Result<Kv, BadCommand> {
        if b.len() < 4 {
            return Err(BadCommand("snapshot truncated"));
        }
        let n = u32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as usize;
        if (b.len() - 4) != n.checked_mul(16).ok_or(BadCommand("snapshot count"))? {
            return Err(BadCommand("snapshot length does not match its count"));
        }
        let mut r = Reader(&b[4..]);
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let k = r.i64()?;
            if map.insert(k, r.i64()?).is_some() {
                return Err(BadCommand("snapshot repeats a key"));
            }
        }
        Ok(Kv { map })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_bad_bodies_are_refused() {
        let cmds = [
            Command::Put(3, -7),
            Command::Cas {
                key: 1,
                expected: None,
                new: Some(5),
            },
            Command::Cas {
                key: 1,
                expected: Some(5),
                new: None,
            },
            Command::Remove(9),
        ];
        for (i, c) in cmds.iter().enumerate() {
            let b = c.encode(i as u64 + 100);
            assert_eq!(Command::decode(&b), Ok((*c, i as u64 + 100)));
            assert!(Command::decode(&b[..b.len() - 1]).is_err());
        }
        assert_eq!(Command::decode(&[9; 17]), Err(BadCommand("unknown op")));
        assert!(Command::decode(&[]).is_err());
    }

    #[test]
    fn kv_semantics_match_the_history_model() {
        let mut kv = Kv::default();
        assert!(!kv.apply(&Command::Remove(1)));
        assert!(kv.apply(&Command::Cas {
            key: 1,
            expected: None,
            new: Some(2)
        }));
        assert!(!kv.apply(&Command::Cas {
            key: 1,
            expected: Some(3),
            new: Some(4)
        }));
        assert_eq!(kv.get(1), Some(2));
        assert!(kv.apply(&Command::Put(1, 6)));
        assert!(kv.apply(&Command::Remove(1)));
        assert_eq!(kv.get(1), None);
    }

    #[test]
    fn snapshots_round_trip_and_bad_ones_are_refused() {
        let mut kv = Kv::default();
        assert_eq!(Kv::decode(&kv.encode()), Ok(kv.clone()));
        kv.apply(&Command::Put(2, -9));
        kv.apply(&Command::Put(-5, 7));
        let b = kv.encode();
        assert_eq!(b.len(), 4 + 32);
        assert_eq!(Kv::decode(&b), Ok(kv));
        assert!(Kv::decode(&b[..b.len() - 1]).is_err());
        assert!(Kv::decode(&[0, 0, 0]).is_err());
        let mut dup = b.to_vec();
        dup[20..36].copy_from_slice(&b[4..20]);
        assert_eq!(Kv::decode(&dup), Err(BadCommand("snapshot repeats a key")));
    }
}
