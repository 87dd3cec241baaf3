//! Connection IO: registering sockets, reading and framing, the read budget (partial
//! frames) and the write budget (unsent output), coalesced writes, closing.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use dt_common::PerfType;
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::outbound::{run_cb, Pending, PendingCb};
use super::NioWorker;
use crate::conn_closed::{notify, ConnClosed};
use crate::error::NetError;
use crate::flow_control::ConnInFlight;
use crate::frame::{FrameDecoder, READ_CHUNK};
use crate::handshake::ProcessInfo;
use crate::packet::WritePacket;
use crate::peer::PeerId;
use crate::pending::PendingMap;
use crate::queue::ConnRef;

/// Output of one connection past which it is written at once, between the requests of one
/// read (so the answers to a burst start leaving before the burst is processed).
const EAGER_FLUSH: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnState {
    Connecting,
    Handshaking,
    Ready,
}

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) gen: u64,
    pub(super) local_port: u16,
    pub(super) remote: Option<SocketAddr>,
    pub(super) peer: Option<PeerId>,
    pub(super) state: ConnState,
    /// Server: handshake deadline (ns). Client: connect deadline while connecting.
    pub(super) deadline_nanos: i64,
    pub(super) handshaken: bool,
    pub(super) process_info: Option<ProcessInfo>,
    pub(super) read_buf: BytesMut,
    pub(super) decoder: FrameDecoder,
    pub(super) write_buf: BytesMut,
    pub(super) read_paused: bool,
    /// The peer's FIN (or an error) was reported: read until end of stream, not just
    /// until a short read, or the close is never seen (edge-triggered readiness).
    pub(super) read_closed: bool,
    /// Bytes of this connection counted in the worker's `read_buffered`.
    pub(super) in_charge: usize,
    pub(super) next_seq: i32,
    pub(super) pending: PendingMap<Pending>,
    pub(super) max_out_packet: usize,
    pub(super) closing: bool,
    /// Its unsent output passed `max_conn_unsent`: nothing more is written, it is
    /// closed at the end of the loop iteration.
    pub(super) overfull: bool,
    /// Its unanswered requests, when its port has a cap.
    pub(super) in_flight: Option<Arc<ConnInFlight>>,
}

impl NioWorker {
    pub(super) fn new_conn(
        &mut self,
        stream: TcpStream,
        local_port: u16,
        peer: Option<PeerId>,
        state: ConnState,
        deadline_nanos: i64,
    ) -> io::Result<usize> {
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        let mut stream = stream;
        self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let gen = self.next_gen;
        self.next_gen += 1;
        let remote = stream.peer_addr().ok();
        entry.insert(Conn {
            stream,
            gen,
            local_port,
            remote,
            peer,
            state,
            deadline_nanos,
            handshaken: false,
            process_info: None,
            read_buf: BytesMut::new(),
            decoder: FrameDecoder::new(self.cfg.max_packet_size),
            write_buf: BytesMut::new(),
            read_paused: false,
            read_closed: false,
            in_charge: 0,
            next_seq: 1,
            pending: PendingMap::new(),
            max_out_packet: self.cfg.max_packet_size,
            closing: false,
            overfull: false,
            in_flight: None,
        });
        Ok(slot)
    }

    pub(super) fn add_accepted(&mut self, stream: TcpStream, local_port: u16) {
        let _ = stream.set_nodelay(true);
        let timeout = self
            .cfg
            .server()
            .map_or(Duration::ZERO, |s| s.handshake_timeout);
        let deadline = self.ts.nano_time + timeout.as_nanos() as i64;
        let cap = self.cfg.server().and_then(|s| s.conn_in_cap(local_port));
        match self.new_conn(stream, local_port, None, ConnState::Ready, deadline) {
            Ok(slot) => {
                self.conns[slot].in_flight = cap.map(|m| Arc::new(ConnInFlight::new(m)));
            }
            Err(e) => log::warn!(
                "{}: register accepted connection failed: {e}",
                self.cfg.name
            ),
        }
    }

    /// Reads what the connection has sent and processes the complete frames, until the
    /// socket is drained, or the connection has to wait for budget (then it is paused and
    /// tried again by [`NioWorker::resume_reads`]). Between chunks it handles the command
    /// queue and writes pending output.
    pub(super) fn do_read(&mut self, slot: usize) {
        let gen = self.conns[slot].gen;
        loop {
            if !self.may_read(slot) {
                self.pause_read(slot);
                return;
            }
            let room = self.cfg.read_budget.saturating_sub(self.read_buffered);
            let c = &mut self.conns[slot];
            let l = c.read_buf.len();
            let want = match c.decoder.needed(&c.read_buf) {
                // A frame whose size is known (and charged): read no further than its end.
                Some(n) if n > l => (n - l).min(READ_CHUNK),
                // Between frames: a chunk while the budget has room for what it may leave
                // behind; else only the next length prefix, so that the frame is charged
                // before its body is read.
                _ if l >= 4 || room >= READ_CHUNK => READ_CHUNK,
                _ => 4 - l,
            };
            match c.stream.read(&mut self.scratch[..want]) {
                Ok(0) => {
                    self.close(slot, "closed by peer");
                    return;
                }
                Ok(n) => {
                    c.read_buf.extend_from_slice(&self.scratch[..n]);
                    let mut packets = 0u64;
                    if let Err(reason) = self.process_frames(slot, &mut packets) {
                        self.close(slot, &reason);
                        return;
                    }
                    if self.cfg.perf.accept(PerfType::RpcRead) {
                        self.cfg.perf.fire(PerfType::RpcRead, packets, n as u64);
                    }
                    if !self.conns.contains(slot) {
                        return;
                    }
                    if !self.charge_read(slot) {
                        self.pause_read(slot);
                        return;
                    }
                    // What this chunk produced and what other threads queued meanwhile
                    // (a client's new requests, answers from executors) go out now, not
                    // once the socket is drained: a large backlog read in one go would
                    // otherwise move through client and server as one clump, each side
                    // idle while the other works through it.
                    // (Not inside a drain, nor once a `Stop` ended one: what is left
                    // then is for `shutdown`.)
                    if !self.draining && !self.stop {
                        self.drain_cmds();
                    }
                    self.flush_dirty();
                    if !self.is_conn(slot, gen) {
                        return;
                    }
                    // A short read drained the socket, unless the peer also closed:
                    // then read on to the end of stream.
                    if n < want && !self.conns[slot].read_closed {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(slot, &format!("read error: {e}"));
                    return;
                }
            }
        }
    }

    /// Whether the connection may be read now: its peer reads its responses (unsent
    /// output within `write_high_water`, and within the worker's output budget unless it
    /// has none), and its partial frame fits the read budget.
    pub(super) fn may_read(&mut self, slot: usize) -> bool {
        let out = self.conns[slot].write_buf.len();
        if out > self.cfg.write_high_water
            || (out > 0 && self.write_buffered > self.cfg.write_budget)
        {
            return false;
        }
        self.charge_read(slot)
    }

    /// Charges the connection's partial frame to the worker's read budget: the whole
    /// frame as soon as its length prefix is in (so the body is read into one buffer of
    /// that size and the budget holds however slowly it arrives), else the bytes held.
    /// False when the frame does not fit next to the others: the connection waits, holding
    /// only what it has read so far. A frame always fits when no other one is charged.
    pub(super) fn charge_read(&mut self, slot: usize) -> bool {
        let c = &mut self.conns[slot];
        let l = c.read_buf.len();
        let want = match c.decoder.needed(&c.read_buf) {
            Some(n) if n > l => n,
            _ => l,
        };
        if want == c.in_charge {
            return true;
        }
        let others = self.read_buffered - c.in_charge;
        let fits = want < c.in_charge || others == 0 || others + want <= self.cfg.read_budget;
        let charge = if fits { want } else { l };
        if charge < c.in_charge {
            self.freed = true;
        }
        self.read_buffered = others + charge;
        c.in_charge = charge;
        if fits && want > l {
            c.read_buf.reserve(want - l);
        }
        fits
    }

    pub(super) fn pause_read(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if !c.read_paused {
            c.read_paused = true;
            self.paused.push(slot);
        }
    }

    /// Tries the paused connections again once budget was freed (output written, a
    /// frame completed, a connection closed).
    pub(super) fn resume_reads(&mut self) {
        if !self.freed || self.paused.is_empty() {
            return;
        }
        self.freed = false;
        let mut list = std::mem::take(&mut self.paused_spare);
        std::mem::swap(&mut list, &mut self.paused);
        for &slot in &list {
            if let Some(c) = self.conns.get_mut(slot) {
                if c.read_paused {
                    c.read_paused = false;
                    self.do_read(slot);
                }
            }
        }
        list.clear();
        self.paused_spare = list;
        self.flush_dirty();
    }

    pub(super) fn process_frames(&mut self, slot: usize, packets: &mut u64) -> Result<(), String> {
        loop {
            let c = match self.conns.get_mut(slot) {
                Some(c) if !c.closing => c,
                _ => return Ok(()),
            };
            let pkt = match c.decoder.decode(&mut c.read_buf) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            *packets += 1;
            self.on_packet(slot, pkt)?;
            // Answers leave while the rest of the input is processed: a burst of small
            // requests would otherwise reach its client as one late clump.
            if self
                .conns
                .get(slot)
                .is_some_and(|c| c.write_buf.len() >= EAGER_FLUSH)
            {
                self.flush(slot);
            }
        }
    }

    /// Closes the connections whose unsent output passed `max_conn_unsent` (deferred to
    /// here so that no caller of `write_packet` loses its connection under it).
    pub(super) fn close_overfull(&mut self) {
        while let Some(slot) = self.overfull.pop() {
            if self.conns.get(slot).is_some_and(|c| c.overfull) {
                let limit = self.cfg.max_conn_unsent;
                self.close(
                    slot,
                    &format!("more than {limit} bytes of output unsent: the peer does not read"),
                );
            }
        }
    }

    pub(super) fn mark_dirty(&mut self, slot: usize) {
        self.dirty.push(slot);
    }

    pub(super) fn write_packet(&mut self, slot: usize, pkt: &WritePacket) {
        let c = &mut self.conns[slot];
        if c.closing || c.overfull {
            return;
        }
        if c.write_buf.len() > self.cfg.max_conn_unsent {
            c.overfull = true;
            self.overfull.push(slot);
            return;
        }
        let before = c.write_buf.len();
        pkt.encode_frame(&mut c.write_buf);
        self.write_buffered += c.write_buf.len() - before;
        let was_empty = before == 0;
        if self.cfg.perf.accept(PerfType::RpcWrite) {
            self.cfg
                .perf
                .fire(PerfType::RpcWrite, 1, pkt.frame_size() as u64);
        }
        if was_empty {
            self.dirty.push(slot);
        }
    }

    pub(super) fn flush_dirty(&mut self) {
        while let Some(slot) = self.dirty.pop() {
            if self.conns.contains(slot) {
                self.flush(slot);
            }
        }
    }

    pub(super) fn flush(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.state == ConnState::Connecting {
            return;
        }
        while !c.write_buf.is_empty() {
            match c.stream.write(&c.write_buf) {
                Ok(0) => {
                    self.close(slot, "write returned 0");
                    return;
                }
                Ok(n) => {
                    c.write_buf.advance(n);
                    self.write_buffered -= n;
                    self.freed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(slot, &format!("write error: {e}"));
                    return;
                }
            }
        }
        if c.write_buf.is_empty() {
            c.write_buf.clear();
            if c.write_buf.capacity() > 4 * 1024 * 1024 {
                c.write_buf = BytesMut::new();
            }
        }
    }

    pub(super) fn close(&mut self, slot: usize, reason: &str) {
        let Some(mut c) = self.conns.try_remove(slot) else {
            return;
        };
        c.closing = true;
        self.read_buffered -= c.in_charge;
        self.write_buffered -= c.write_buf.len();
        self.freed = true;
        if let (Some(pi), Some(srv)) = (c.process_info, self.cfg.server()) {
            // As in the reference: closing any connection of a uuid forgets the uuid.
            srv.by_uuid
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pi);
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        let level = if reason == "closed by peer" || reason == "peer removed" {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "{}: connection {:?} closed: {reason}",
            self.cfg.name,
            c.remote
        );
        let stopping = self.stop;
        for p in c.pending.drain_all() {
            if let PendingCb::User(cb) = p.cb {
                self.cfg.out_fc.release(p.permit_bytes);
                run_cb(
                    cb,
                    Err(if stopping {
                        NetError::Stopped
                    } else {
                        NetError::ConnectionClosed(reason.to_string())
                    }),
                );
            }
        }
        if let Some(id) = c.peer {
            if self.peers.contains_key(&id) && !stopping {
                self.connect_failed(id, reason);
            }
        }
        if let Some(srv) = self.cfg.server() {
            if !srv.conn_closed.is_empty() {
                let ev = ConnClosed {
                    conn: ConnRef {
                        worker: self.idx,
                        slot,
                        gen: c.gen,
                    },
                    local_port: c.local_port,
                    remote: c.remote,
                    process_info: c.process_info,
                    reason,
                };
                notify(&srv.conn_closed, &ev);
            }
        }
    }
}
