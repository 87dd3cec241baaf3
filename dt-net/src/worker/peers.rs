//! A client's peers: connecting (with a timeout), back-off after a failure, the
//! reconnect schedule, and requests waiting for a connection.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use mio::net::TcpStream;

use super::conn::ConnState;
use super::NioWorker;
use crate::error::NetError;
use crate::peer::{backoff, Peer, PeerId, PeerStatus};
use crate::queue::OutRequest;

pub(super) struct PeerState {
    pub(super) peer: Peer,
    pub(super) conn: Option<usize>,
    pub(super) waiting: VecDeque<OutRequest>,
    pub(super) attempt: usize,
    pub(super) next_connect_nanos: Option<i64>,
}

impl NioWorker {
    /// Publishes a peer's status to the client's API.
    pub(super) fn set_peer_status(&self, id: PeerId, st: PeerStatus) {
        if let Some(cl) = self.cfg.client() {
            cl.peers.set(id, st);
        }
    }

    pub(super) fn add_peer(&mut self, p: Peer) {
        self.peers.insert(
            p.id,
            PeerState {
                peer: p,
                conn: None,
                waiting: VecDeque::new(),
                attempt: 0,
                next_connect_nanos: None,
            },
        );
        self.peer_order.push(p.id);
        self.connect_peer(p.id);
    }

    pub(super) fn remove_peer(&mut self, id: PeerId) {
        self.peer_order.retain(|p| *p != id);
        if let Some(mut ps) = self.peers.remove(&id) {
            for r in ps.waiting.drain(..) {
                self.fail_req(r, NetError::ConnectionClosed("peer removed".into()));
            }
            if let Some(slot) = ps.conn {
                self.close(slot, "peer removed");
            }
        }
    }

    pub(super) fn connect_peer(&mut self, id: PeerId) {
        let Some(ps) = self.peers.get_mut(&id) else {
            return;
        };
        if ps.conn.is_some() {
            return;
        }
        ps.next_connect_nanos = None;
        let addr = ps.peer.addr;
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                self.connect_failed(id, &format!("connect {addr}: {e}"));
                return;
            }
        };
        let timeout = self
            .cfg
            .client()
            .map_or(Duration::ZERO, |c| c.connect_timeout);
        let deadline = self.ts.nano_time + timeout.as_nanos() as i64;
        match self.new_conn(stream, 0, Some(id), ConnState::Connecting, deadline) {
            Ok(slot) => {
                if let Some(ps) = self.peers.get_mut(&id) {
                    ps.conn = Some(slot);
                }
                self.set_peer_status(id, PeerStatus::Connecting);
            }
            Err(e) => self.connect_failed(id, &format!("register {addr}: {e}")),
        }
    }

    pub(super) fn connect_failed(&mut self, id: PeerId, reason: &str) {
        let now = self.ts.nano_time;
        let Some(ps) = self.peers.get_mut(&id) else {
            return;
        };
        ps.conn = None;
        let delay = backoff(ps.attempt);
        ps.attempt += 1;
        ps.next_connect_nanos = Some(now + delay.as_nanos() as i64);
        let waiting: Vec<OutRequest> = ps.waiting.drain(..).collect();
        log::info!(
            "{}: peer {} ({}) not connected: {reason}; retry in {:?}",
            self.cfg.name,
            id.0,
            ps.peer.addr,
            delay
        );
        self.set_peer_status(id, PeerStatus::NotConnected);
        // `NetError::Connect` says "connect failed" itself.
        let why = reason.strip_prefix("connect failed: ").unwrap_or(reason);
        for r in waiting {
            self.fail_req(r, NetError::Connect(why.to_string()));
        }
    }

    pub(super) fn on_connect_event(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        match c.stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                self.close(slot, &format!("connect failed: {e}"));
                return;
            }
        }
        match c.stream.peer_addr() {
            Ok(a) => c.remote = Some(a),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // not yet
            Err(e) => {
                self.close(slot, &format!("connect failed: {e}"));
                return;
            }
        }
        let _ = c.stream.set_nodelay(true);
        c.state = ConnState::Handshaking;
        let id = c.peer;
        // Handshake first (seq 1), then everything queued meanwhile (pipelining).
        self.send_handshake(slot);
        if let Some(id) = id {
            self.set_peer_status(id, PeerStatus::Handshaking);
            let waiting: Vec<OutRequest> = match self.peers.get_mut(&id) {
                Some(ps) => ps.waiting.drain(..).collect(),
                None => Vec::new(),
            };
            for r in waiting {
                self.send_on(slot, r);
            }
        }
        self.do_read(slot);
    }
}
