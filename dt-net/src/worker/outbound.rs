//! Requests this side sends: routing to a peer or connection, seq numbers, deadlines
//! on the wire, pending requests, and the sweep that times them out (and connect and
//! handshake deadlines, and reconnects).

use dt_common::DtTime;

use super::conn::{Conn, ConnState};
use super::NioWorker;
use crate::codes::PacketType;
use crate::error::NetError;
use crate::packet::{ReadPacket, WritePacket};
use crate::peer::PeerId;
use crate::processor::fire_queue_time;
use crate::queue::{Completion, OutRequest, Target};

pub(super) enum PendingCb {
    User(Completion),
    Handshake,
}

pub(super) struct Pending {
    pub(super) command: i32,
    pub(super) deadline: DtTime,
    pub(super) start_nanos: i64,
    pub(super) permit_bytes: usize,
    pub(super) cb: PendingCb,
}

impl NioWorker {
    pub(super) fn route_request(&mut self, req: OutRequest) {
        fire_queue_time(&*self.cfg.perf, req.start_nanos, self.ts.nano_time);
        match req.target {
            Target::Conn(c) => match self.live_slot(c) {
                Some(slot) => self.send_on(slot, req),
                None => self.fail_req(req, NetError::ConnectionClosed("connection gone".into())),
            },
            Target::Peer(id) => self.send_to_peer(id, req),
            Target::Any => {
                let n = self.peer_order.len();
                if n == 0 {
                    self.fail_req(req, NetError::Connect("no peer configured".into()));
                    return;
                }
                self.rr = self.rr.wrapping_add(1);
                let mut chosen = self.peer_order[self.rr % n];
                for i in 0..n {
                    let id = self.peer_order[(self.rr + i) % n];
                    let ready = self
                        .peers
                        .get(&id)
                        .and_then(|ps| ps.conn)
                        .is_some_and(|slot| {
                            self.conns
                                .get(slot)
                                .is_some_and(|c| c.state == ConnState::Ready)
                        });
                    if ready {
                        chosen = id;
                        break;
                    }
                }
                self.send_to_peer(chosen, req)
            }
        }
    }

    pub(super) fn send_to_peer(&mut self, id: PeerId, req: OutRequest) {
        let Some(ps) = self.peers.get_mut(&id) else {
            self.fail_req(
                req,
                NetError::InvalidArgument(format!("unknown peer {}", id.0)),
            );
            return;
        };
        match ps.conn {
            Some(slot) if self.conns[slot].state != ConnState::Connecting => {
                self.send_on(slot, req)
            }
            Some(_) => ps.waiting.push_back(req),
            None => {
                ps.waiting.push_back(req);
                self.connect_peer(id);
            }
        }
    }

    pub(super) fn send_on(&mut self, slot: usize, req: OutRequest) {
        let OutRequest {
            pkt,
            deadline,
            cb,
            permit_bytes,
            start_nanos,
            ..
        } = req;
        match cb {
            Some(cb) => self.write_request_to(
                slot,
                pkt,
                deadline,
                PendingCb::User(cb),
                permit_bytes,
                start_nanos,
            ),
            None => {
                let mut pkt = pkt;
                pkt.packet_type = PacketType::OneWay.code();
                let c = &mut self.conns[slot];
                let rem = deadline.remaining_nanos(&self.ts);
                if rem <= 0 || pkt.frame_size() > c.max_out_packet {
                    return;
                }
                pkt.seq = next_seq(c);
                pkt.timeout_nanos = rem;
                self.write_packet(slot, &pkt);
            }
        }
    }

    pub(super) fn write_request_to(
        &mut self,
        slot: usize,
        mut pkt: WritePacket,
        deadline: DtTime,
        cb: PendingCb,
        permit_bytes: usize,
        start_nanos: i64,
    ) {
        let rem = deadline.remaining_nanos(&self.ts);
        let c = &mut self.conns[slot];
        let size = pkt.frame_size();
        let err = if rem <= 0 {
            Some(NetError::Timeout {
                what: "request deadline passed before send",
            })
        } else if size > c.max_out_packet {
            Some(NetError::TooLarge {
                size,
                max: c.max_out_packet,
            })
        } else {
            None
        };
        if let Some(e) = err {
            if let PendingCb::User(cb) = cb {
                self.cfg.out_fc.release(permit_bytes);
                run_cb(cb, Err(e));
            }
            return;
        }
        pkt.packet_type = PacketType::Request.code();
        pkt.seq = next_seq(c);
        pkt.timeout_nanos = rem;
        c.pending.insert(
            pkt.seq,
            Pending {
                command: pkt.command,
                deadline,
                start_nanos,
                permit_bytes,
                cb,
            },
        );
        self.write_packet(slot, &pkt);
    }

    pub(super) fn fail_req(&self, req: OutRequest, e: NetError) {
        if let Some(cb) = req.cb {
            self.cfg.out_fc.release(req.permit_bytes);
            run_cb(cb, Err(e));
        }
    }

    pub(super) fn sweep(&mut self) {
        let now = self.ts.nano_time;
        let is_server = self.cfg.server().is_some();
        let mut to_close: Vec<(usize, &'static str)> = Vec::new();
        for (slot, c) in self.conns.iter_mut() {
            match c.state {
                ConnState::Connecting if now >= c.deadline_nanos => {
                    to_close.push((slot, "connect timeout"))
                }
                ConnState::Ready
                    if is_server
                        && c.peer.is_none()
                        && !c.handshaken
                        && now >= c.deadline_nanos =>
                {
                    to_close.push((slot, "handshake timeout"))
                }
                _ => {}
            }
            if c.pending.is_empty() {
                continue;
            }
            self.expired.clear();
            let ts = &self.ts;
            c.pending
                .collect_keys(&mut self.expired, |p| p.deadline.is_expired(ts));
            for seq in self.expired.drain(..) {
                if let Some(p) = c.pending.remove(seq) {
                    match p.cb {
                        PendingCb::Handshake => to_close.push((slot, "handshake response timeout")),
                        PendingCb::User(cb) => {
                            self.cfg.out_fc.release(p.permit_bytes);
                            run_cb(
                                cb,
                                Err(NetError::Timeout {
                                    what: "no response before the deadline",
                                }),
                            );
                        }
                    }
                }
            }
        }
        for (slot, reason) in to_close {
            if self.conns.contains(slot) {
                self.close(slot, reason);
            }
        }
        let mut reconnect = Vec::new();
        let mut timed_out = Vec::new();
        for ps in self.peers.values_mut() {
            while let Some(r) = ps.waiting.front() {
                if r.deadline.is_expired(&self.ts) {
                    timed_out.push(ps.waiting.pop_front().unwrap_or_else(|| unreachable!()));
                } else {
                    break;
                }
            }
            if let Some(t) = ps.next_connect_nanos {
                if now >= t {
                    reconnect.push(ps.peer.id);
                }
            }
        }
        for r in timed_out {
            self.fail_req(
                r,
                NetError::Timeout {
                    what: "not connected before the deadline",
                },
            );
        }
        for id in reconnect {
            self.connect_peer(id);
        }
    }
}

/// Runs a user completion callback on the IO thread; a panic in it is logged and does
/// not take the IO thread down.
pub(super) fn run_cb(cb: Completion, r: Result<ReadPacket, NetError>) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || cb.run(r))).is_err() {
        log::error!("an RPC completion callback panicked");
    }
}

pub(super) fn next_seq(c: &mut Conn) -> i32 {
    let s = c.next_seq;
    c.next_seq = seq_after(s);
    s
}

/// The seq after `s`: 1 … 2^31−1, then wraps to 1 (0 and negatives are never used).
pub(crate) const fn seq_after(s: i32) -> i32 {
    if s == i32::MAX || s < 1 {
        1
    } else {
        s + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_wraps_to_1() {
        assert_eq!(seq_after(1), 2);
        assert_eq!(seq_after(i32::MAX - 1), i32::MAX);
        assert_eq!(seq_after(i32::MAX), 1);
    }
}
