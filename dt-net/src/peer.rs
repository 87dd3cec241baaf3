//! Peers of a [`crate::NioClient`]: a remote `host:port` the client keeps a connection to,
//! reconnecting with the reference's back-off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Reconnect back-off after a failed or closed connection, in milliseconds (the last value
/// repeats); a successful handshake resets it.
pub const RECONNECT_BACKOFF_MS: [u64; 7] = [100, 1_000, 5_000, 10_000, 20_000, 30_000, 60_000];

/// Identifies a peer within one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// A remote server the client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its id in this client.
    pub id: PeerId,
    /// Its address.
    pub addr: SocketAddr,
}

/// Connection state of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// No connection; a reconnect is scheduled (or will be made on demand).
    NotConnected,
    /// TCP connect in progress.
    Connecting,
    /// Connected, handshake sent, waiting for its response.
    Handshaking,
    /// Handshake done: requests flow.
    Connected,
}

/// The status table the IO worker updates and callers read.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    map: Mutex<HashMap<PeerId, (Peer, PeerStatus)>>,
    cond: Condvar,
}

impl PeerTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, (Peer, PeerStatus)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, p: Peer) {
        self.lock().insert(p.id, (p, PeerStatus::NotConnected));
    }

    pub fn remove(&self, id: PeerId) -> bool {
        let r = self.lock().remove(&id).is_some();
        self.cond.notify_all();
        r
    }

    pub fn set(&self, id: PeerId, s: PeerStatus) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.1 = s;
        }
        self.cond.notify_all();
    }

    pub fn list(&self) -> Vec<(Peer, PeerStatus)> {
        let mut v: Vec<_> = self.lock().values().copied().collect();
        v.sort_by_key(|e| e.0.id);
        v
    }

    /// Waits until `pred` holds for the table or the timeout passes.
    pub fn wait(
        &self,
        timeout: Duration,
        pred: impl Fn(&HashMap<PeerId, (Peer, PeerStatus)>) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if pred(&g) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            g = self
                .cond
                .wait_timeout(g, end - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A one-multiply hasher for small integer ids (peer ids), instead of SipHash on the
/// per-request routing path.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ *b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Map keyed by [`PeerId`] with [`IdHasher`].
pub(crate) type PeerMap<V> = HashMap<PeerId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Back-off delay before reconnect attempt number `attempt` (0-based).
pub fn backoff(attempt: usize) -> Duration {
    Duration::from_millis(RECONNECT_BACKOFF_MS[attempt.min(RECONNECT_BACKOFF_MS.len() - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_sequence() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(6), Duration::from_secs(60));
        assert_eq!(backoff(100), Duration::from_secs(60));
    }
}
