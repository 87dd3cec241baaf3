//! Peers of a [`crate::NioClient`]: a remote `host:port` the client keeps a connection to,
//! reconnecting with the reference's back-off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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

impl PeerStatus {
    const fn to_u8(self) -> u8 {
        match self {
            PeerStatus::NotConnected => 0,
            PeerStatus::Connecting => 1,
            PeerStatus::Handshaking => 2,
            PeerStatus::Connected => 3,
        }
    }

    const fn from_u8(v: u8) -> PeerStatus {
        match v {
            1 => PeerStatus::Connecting,
            2 => PeerStatus::Handshaking,
            3 => PeerStatus::Connected,
            _ => PeerStatus::NotConnected,
        }
    }
}

/// A live view of one peer's connection status, read with one atomic load: no lock of
/// the client's peer table and no allocation, for per-request routing (see
/// [`crate::NioClient::peer_status_view`]). Once the peer is removed it reads
/// [`PeerStatus::NotConnected`].
#[derive(Debug, Clone)]
pub struct PeerStatusView(Arc<AtomicU8>);

impl PeerStatusView {
    fn new() -> Self {
        PeerStatusView(Arc::new(AtomicU8::new(PeerStatus::NotConnected.to_u8())))
    }

    fn set(&self, s: PeerStatus) {
        self.0.store(s.to_u8(), Ordering::Release);
    }

    /// The status now.
    pub fn get(&self) -> PeerStatus {
        PeerStatus::from_u8(self.0.load(Ordering::Acquire))
    }

    /// Whether the handshake is done and requests flow.
    pub fn is_connected(&self) -> bool {
        self.get() == PeerStatus::Connected
    }
}

/// The status table the IO worker updates and callers read.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    map: Mutex<HashMap<PeerId, (Peer, PeerStatus)>>,
    /// The same statuses, readable without the lock (a view per peer).
    views: Mutex<HashMap<PeerId, PeerStatusView>>,
    cond: Condvar,
}

impl PeerTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, (Peer, PeerStatus)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn views(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, PeerStatusView>> {
        self.views.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, p: Peer) {
        let mut m = self.lock();
        m.insert(p.id, (p, PeerStatus::NotConnected));
        self.views().insert(p.id, PeerStatusView::new());
    }

    pub fn remove(&self, id: PeerId) -> bool {
        let r = {
            let mut m = self.lock();
            if let Some(v) = self.views().remove(&id) {
                v.set(PeerStatus::NotConnected);
            }
            m.remove(&id).is_some()
        };
        self.cond.notify_all();
        r
    }

    pub fn set(&self, id: PeerId, s: PeerStatus) {
        {
            let mut m = self.lock();
            if let Some(e) = m.get_mut(&id) {
                e.1 = s;
                if let Some(v) = self.views().get(&id) {
                    v.set(s);
                }
            }
        }
        self.cond.notify_all();
    }

    /// The lock-free view of a peer's status.
    pub fn view(&self, id: PeerId) -> Option<PeerStatusView> {
        self.views().get(&id).cloned()
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

/// Map keyed by [`PeerId`], hashed with [`dt_common::IdHasher`].
pub(crate) type PeerMap<V> = dt_common::IdHashMap<PeerId, V>;

/// Back-off delay before reconnect attempt number `attempt` (0-based).
pub fn backoff(attempt: usize) -> Duration {
    Duration::from_millis(RECONNECT_BACKOFF_MS[attempt.min(RECONNECT_BACKOFF_MS.len() - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_view_follows_the_table() {
        let t = PeerTable::default();
        let p = Peer {
            id: PeerId(7),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        t.insert(p);
        let v = t.view(p.id).unwrap();
        assert_eq!(v.get(), PeerStatus::NotConnected);
        for s in [
            PeerStatus::Connecting,
            PeerStatus::Handshaking,
            PeerStatus::Connected,
            PeerStatus::NotConnected,
            PeerStatus::Connected,
        ] {
            t.set(p.id, s);
            assert_eq!(v.get(), s);
            assert_eq!(t.list()[0].1, s);
        }
        assert!(v.is_connected());
        assert!(t.remove(p.id));
        assert_eq!(v.get(), PeerStatus::NotConnected);
        assert!(t.view(p.id).is_none());
        t.set(p.id, PeerStatus::Connected); // unknown peer: no effect
        assert!(!v.is_connected());
    }

    #[test]
    fn backoff_sequence() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(6), Duration::from_secs(60));
        assert_eq!(backoff(100), Duration::from_secs(60));
    }
}
