//! [`NioWorker`]: one IO thread with its own mio `Poll`, owning a set of connections
//! (accepted or outgoing). Other threads talk to it only through its command queue
//! ([`crate::queue`]) plus a mio `Waker`. Its parts:
//!
//! * [`conn`]: connection IO: registering, reading and framing, the read and write
//!   budgets, coalesced writes, closing;
//! * [`inbound`]: what an incoming packet means: requests to processors, responses to
//!   pending requests;
//! * [`handshake`]: both sides of the handshake, and the server's authentication hook;
//! * [`outbound`]: requests this side sends: routing, seq numbers, pending requests and
//!   the deadline sweep;
//! * [`peers`]: a client's peers: connecting, back-off, reconnecting;
//! * this module: the event loop and the command queue's consumer.

mod conn;
mod handshake;
mod inbound;
mod outbound;
mod peers;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dt_codec::PbParser;
use dt_common::{DtTime, PerfCallback, PerfType, Timestamp};
use mio::{Events, Poll, Token, Waker};
use slab::Slab;

use crate::conn_closed::ConnClosedListener;
use crate::error::NetError;
use crate::flow_control::{FlowControl, Permit};
use crate::frame::READ_CHUNK;
use crate::handshake::{ConfigBody, HandshakeBody, HandshakeCallback, HandshakeHook, ProcessInfo};
use crate::packet::WritePacket;
use crate::peer::{PeerId, PeerMap, PeerTable};
use crate::processor::{fire_queue_time, Processors};
use crate::queue::{ConnRef, WorkerCmd, WorkerHandle};

use conn::{Conn, ConnState};
use peers::PeerState;

const WAKER: Token = Token(usize::MAX);

/// Commands' capacity a worker keeps between drains (~200 bytes each).
const MAX_KEPT_CMD_CAPACITY: usize = 4096;
const SWEEP_INTERVAL_NANOS: i64 = 50_000_000;
/// The poll timeout of a worker with nothing that can expire (see
/// [`NioWorker::has_timed_work`]): it wakes for events and commands only, the sweep
/// runs on its first wake-up after this.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Settings shared by the workers of one server or client.
pub(crate) struct WorkerConfig {
    pub name: String,
    /// Whether the workers serve accepted connections or a client's peers, with the
    /// settings only that side has.
    pub side: Side,
    pub max_packet_size: usize,
    pub max_body_size: usize,
    pub processors: Processors,
    pub in_fc: Arc<FlowControl>,
    pub out_fc: Arc<FlowControl>,
    pub perf: Arc<dyn PerfCallback>,
    pub stopping: Arc<AtomicBool>,
    pub write_high_water: usize,
    /// Unsent output above which a connection is closed (its further output dropped).
    pub max_conn_unsent: usize,
    /// This worker's share of the bytes partial frames may hold (see `charge_read`).
    pub read_budget: usize,
    /// This worker's share of unsent output above which connections that have unsent
    /// output are not read.
    pub write_budget: usize,
}

/// The side a worker is on.
pub(crate) enum Side {
    /// A server's worker: accepted connections, which must handshake first.
    Server(ServerSide),
    /// A client's worker: connections to peers, which it opens and handshakes.
    Client(ClientSide),
}

/// Settings of a server's workers.
pub(crate) struct ServerSide {
    /// Connections that have not handshaken within this time are closed.
    pub handshake_timeout: Duration,
    /// The limits hint sent in handshake responses.
    pub hint: ConfigBody,
    /// Authentication of handshake requests.
    pub auth: Option<HandshakeHook>,
    /// Client identity → its most recent connection.
    pub by_uuid: Arc<Mutex<HashMap<ProcessInfo, ConnRef>>>,
    /// Told about every accepted connection that closes.
    pub conn_closed: Vec<ConnClosedListener>,
    /// Per-connection caps on unanswered requests by listening port (0: every other
    /// port); see `NioServerConfig::max_conn_in_requests`.
    pub max_conn_in_requests: Vec<(u16, u32)>,
}

impl ServerSide {
    /// The cap of connections accepted on `port` (`None`: no cap).
    pub fn conn_in_cap(&self, port: u16) -> Option<u32> {
        let exact = self.max_conn_in_requests.iter().find(|(p, _)| *p == port);
        let any = || self.max_conn_in_requests.iter().find(|(p, _)| *p == 0);
        exact.or_else(any).map(|&(_, m)| m).filter(|&m| m > 0)
    }
}

/// Settings of a client's worker.
pub(crate) struct ClientSide {
    /// The handshake request sent on every new connection.
    pub handshake: HandshakeBody,
    /// TCP connect + handshake timeout.
    pub connect_timeout: Duration,
    /// The peers' statuses, shared with the client's API.
    pub peers: Arc<PeerTable>,
}

impl WorkerConfig {
    /// The server's settings, on a server.
    pub fn server(&self) -> Option<&ServerSide> {
        match &self.side {
            Side::Server(s) => Some(s),
            Side::Client(_) => None,
        }
    }

    /// The client's settings, on a client.
    pub fn client(&self) -> Option<&ClientSide> {
        match &self.side {
            Side::Client(c) => Some(c),
            Side::Server(_) => None,
        }
    }
}

/// A worker that ends without its `shutdown` (never run, or a panic) still refuses
/// later commands and fails the requests queued for it.
impl Drop for NioWorker {
    fn drop(&mut self) {
        self.close_queue();
    }
}

/// One IO thread.
pub(crate) struct NioWorker {
    idx: usize,
    poll: Poll,
    conns: Slab<Conn>,
    next_gen: u64,
    /// The commands being handled (swapped with the handle's queue; see
    /// [`WorkerHandle::take_batch`]). Holds the unhandled rest when a `Stop` ends a drain.
    cmd_batch: Vec<WorkerCmd>,
    handle: Arc<WorkerHandle>,
    cfg: Arc<WorkerConfig>,
    ts: Timestamp,
    dirty: Vec<usize>,
    scratch: Vec<u8>,
    peers: PeerMap<PeerState>,
    peer_order: Vec<PeerId>,
    rr: usize,
    next_sweep: i64,
    expired: Vec<i32>,
    hs_parser: PbParser<HandshakeCallback>,
    stop: bool,
    /// Bytes held in read buffers (partial frames) of all connections.
    read_buffered: usize,
    /// Bytes of unsent output of all connections.
    write_buffered: usize,
    /// Connections not read for lack of budget, tried again once something is freed.
    paused: Vec<usize>,
    paused_spare: Vec<usize>,
    /// Budget was freed since the paused connections were last tried.
    freed: bool,
    /// Connections whose unsent output passed `max_conn_unsent`, to close.
    overfull: Vec<usize>,
    /// The gauges last published to `handle.stats`.
    published: (usize, usize, usize),
    /// The events of one poll, each with the generation of the connection it is for
    /// (reused vector; see [`ReadyEvent`]).
    ready: Vec<ReadyEvent>,
    /// Inside [`NioWorker::drain_cmds`]: a read it starts does not drain again.
    draining: bool,
}

/// One poll event, tied to the connection that held its slot when the poll returned:
/// reads drain the command queue between chunks, which may close a connection and give
/// its slot to a new one before the slot's event is handled.
#[derive(Debug, Clone, Copy)]
struct ReadyEvent {
    slot: usize,
    gen: u64,
    readable: bool,
    writable: bool,
    read_closed: bool,
    write_closed: bool,
    error: bool,
}

impl NioWorker {
    pub fn new(idx: usize, cfg: Arc<WorkerConfig>) -> io::Result<(NioWorker, Arc<WorkerHandle>)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let handle = Arc::new(WorkerHandle::new(waker, cfg.perf.clone()));
        let ts = Timestamp::now();
        Ok((
            NioWorker {
                idx,
                poll,
                conns: Slab::new(),
                next_gen: 1,
                cmd_batch: Vec::new(),
                handle: handle.clone(),
                cfg,
                ts,
                dirty: Vec::new(),
                scratch: vec![0u8; READ_CHUNK],
                peers: PeerMap::default(),
                peer_order: Vec::new(),
                rr: 0,
                next_sweep: ts.nano_time + SWEEP_INTERVAL_NANOS,
                expired: Vec::new(),
                hs_parser: PbParser::new(HandshakeCallback::default()),
                stop: false,
                read_buffered: 0,
                write_buffered: 0,
                paused: Vec::new(),
                paused_spare: Vec::new(),
                freed: false,
                overfull: Vec::new(),
                published: (0, 0, 0),
                ready: Vec::new(),
                draining: false,
            },
            handle,
        ))
    }

    /// Runs until a `Stop` command.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.stop {
            let perf_sel = self.cfg.perf.accept(PerfType::RpcWorkerSel);
            let t0 = if perf_sel { dt_common::mono_nanos() } else { 0 };
            // Nothing that can expire (no request, connect or handshake in flight, no
            // peer to reconnect, no read waiting for budget): sleep until woken, up to
            // IDLE_POLL; otherwise wake for the sweep.
            let timeout = if self.has_timed_work() {
                Duration::from_nanos(SWEEP_INTERVAL_NANOS as u64)
            } else {
                IDLE_POLL
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("{} worker {}: poll failed: {e}", self.cfg.name, self.idx);
                    break;
                }
            }
            self.ts.refresh();
            if perf_sel {
                self.cfg.perf.fire_time(
                    PerfType::RpcWorkerSel,
                    (self.ts.nano_time - t0).max(0) as u64,
                    1,
                    0,
                );
            }
            let mut ready = std::mem::take(&mut self.ready);
            for ev in events.iter() {
                let t = ev.token();
                if t == WAKER {
                    continue;
                }
                if let Some(c) = self.conns.get(t.0) {
                    ready.push(ReadyEvent {
                        slot: t.0,
                        gen: c.gen,
                        readable: ev.is_readable(),
                        writable: ev.is_writable(),
                        read_closed: ev.is_read_closed(),
                        write_closed: ev.is_write_closed(),
                        error: ev.is_error(),
                    });
                }
            }
            for ev in ready.drain(..) {
                let slot = ev.slot;
                if !self.is_conn(slot, ev.gen) {
                    continue;
                }
                if self.conns[slot].state == ConnState::Connecting {
                    self.on_connect_event(slot);
                    continue;
                }
                if ev.read_closed || ev.error {
                    let c = &mut self.conns[slot];
                    c.read_closed = true;
                    if c.read_paused && (ev.error || ev.write_closed) {
                        // Reset (or closed both ways) while waiting for budget: reading
                        // would only find the error, so close it now.
                        self.close(slot, "connection reset while not being read");
                        continue;
                    }
                }
                if ev.readable || ev.read_closed || ev.error {
                    self.do_read(slot);
                }
                if ev.writable && self.is_conn(slot, ev.gen) {
                    self.mark_dirty(slot);
                }
            }
            self.ready = ready;
            if !self.stop {
                // (A `Stop` handled by a read's drain leaves the rest to `shutdown`.)
                self.drain_cmds();
            }
            self.close_overfull();
            self.flush_dirty();
            self.resume_reads();
            if self.ts.nano_time >= self.next_sweep {
                self.next_sweep = self.ts.nano_time + SWEEP_INTERVAL_NANOS;
                self.sweep();
                self.flush_dirty();
            }
            self.publish_stats();
            if self.cfg.perf.accept(PerfType::RpcWorkerWork) {
                // from the poll's return to here: the iteration's work
                let work = (dt_common::mono_nanos() - self.ts.nano_time).max(0) as u64;
                self.cfg.perf.fire_time(PerfType::RpcWorkerWork, work, 1, 0);
            }
        }
        self.shutdown();
    }

    /// Whether anything can expire and needs the sweep's 50 ms rhythm: a connection
    /// connecting or (server side) not yet handshaken, a request waiting for its answer
    /// or for its peer's connection, a peer due to reconnect, a read paused for budget.
    /// Everything that starts such a thing runs inside the worker's loop, so the answer
    /// at the end of an iteration holds until the next wake-up.
    fn has_timed_work(&self) -> bool {
        !self.paused.is_empty()
            || self.conns.iter().any(|(_, c)| {
                c.state == ConnState::Connecting
                    || (c.peer.is_none() && !c.handshaken)
                    || !c.pending.is_empty()
            })
            || self
                .peers
                .values()
                .any(|p| !p.waiting.is_empty() || p.next_connect_nanos.is_some())
    }

    /// Stores the gauges that changed since the last call (an unchanged gauge leaves
    /// the shared cache line alone).
    fn publish_stats(&mut self) {
        let now = (self.conns.len(), self.read_buffered, self.write_buffered);
        if now == self.published {
            return;
        }
        self.published = now;
        let st = &self.handle.stats;
        st.connections.store(now.0, Ordering::Relaxed);
        st.read_buffered.store(now.1, Ordering::Relaxed);
        st.write_buffered.store(now.2, Ordering::Relaxed);
    }

    /// Whether `slot` still holds the connection of generation `gen`.
    fn is_conn(&self, slot: usize, gen: u64) -> bool {
        self.conns.get(slot).is_some_and(|c| c.gen == gen)
    }

    fn drain_cmds(&mut self) {
        self.draining = true;
        self.drain_cmds_inner();
        self.draining = false;
    }

    fn drain_cmds_inner(&mut self) {
        self.handle.clear_wake();
        let mut batch = std::mem::take(&mut self.cmd_batch);
        self.handle.take_batch(&mut batch);
        // Commands are handled where they lie: a response (the hot one) is written from
        // its slot and dropped with the batch; moving each ~230-byte command out, and
        // then its packet out of the command, cost two copies per response.
        for i in 0..batch.len() {
            self.on_cmd(&mut batch[i]);
            if self.stop {
                // `shutdown` fails what is left
                self.cmd_batch = batch.drain(i + 1..).collect();
                return;
            }
        }
        batch.clear();
        // A burst may have grown the vector: do not keep a burst's worth for ever.
        if batch.capacity() > MAX_KEPT_CMD_CAPACITY {
            batch = Vec::new();
        }
        self.cmd_batch = batch;
    }

    /// Handles one command in its place in the batch: a response is written from there;
    /// any other command is taken out (leaving a `Stop` that nothing reads again).
    fn on_cmd(&mut self, cmd: &mut WorkerCmd) {
        match cmd {
            WorkerCmd::Respond {
                conn,
                pkt,
                deadline,
                enqueued,
                permit,
            } => self.respond(*conn, pkt, *deadline, *enqueued, permit),
            _ => match std::mem::replace(cmd, WorkerCmd::Stop) {
                WorkerCmd::NewConn { stream, local_port } => self.add_accepted(stream, local_port),
                // Not reached (handled in place above); written out so the match stays
                // exhaustive without a panic.
                WorkerCmd::Respond {
                    conn,
                    pkt,
                    deadline,
                    enqueued,
                    mut permit,
                } => self.respond(conn, &pkt, deadline, enqueued, &mut permit),
                WorkerCmd::Send(req) => self.route_request(req),
                WorkerCmd::AddPeer(p) => self.add_peer(p),
                WorkerCmd::RemovePeer(id) => self.remove_peer(id),
                WorkerCmd::Stop => self.stop = true,
            },
        }
    }

    /// Writes a response unless its deadline passed or its connection is gone, then
    /// gives back the request's flow-control credit.
    fn respond(
        &mut self,
        conn: ConnRef,
        pkt: &WritePacket,
        deadline: DtTime,
        enqueued: i64,
        permit: &mut Option<Permit>,
    ) {
        fire_queue_time(&*self.cfg.perf, enqueued, self.ts.nano_time);
        if !deadline.is_expired(&self.ts) {
            if let Some(slot) = self.live_slot(conn) {
                self.write_packet(slot, pkt);
            }
        }
        drop(permit.take());
    }

    fn live_slot(&self, c: ConnRef) -> Option<usize> {
        match self.conns.get(c.slot) {
            Some(conn) if conn.gen == c.gen && !conn.closing => Some(c.slot),
            _ => None,
        }
    }

    /// Closes the command queue and fails the requests still in it.
    fn close_queue(&mut self) {
        let mut left = std::mem::take(&mut self.cmd_batch);
        left.extend(self.handle.close());
        for cmd in left {
            if let WorkerCmd::Send(r) = cmd {
                self.fail_req(r, NetError::Stopped);
            }
        }
    }

    fn shutdown(&mut self) {
        // Best effort: push out what is buffered, then close everything.
        let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for &s in &slots {
            if self.conns.contains(s) {
                self.flush(s);
            }
        }
        self.stop = true;
        for s in slots {
            self.close(s, "stopped");
        }
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in peers {
            if let Some(mut ps) = self.peers.remove(&id) {
                for r in ps.waiting.drain(..) {
                    self.fail_req(r, NetError::Stopped);
                }
            }
        }
        self.close_queue();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_control::{ConnInFlight, Permit};
    use crate::packet::ReadPacket;
    use crate::queue::{Completion, OutRequest, Target};
    use dt_common::{DtTime, NoopPerfCallback};
    use std::sync::mpsc;

    fn client_worker(out_fc: Arc<FlowControl>) -> (NioWorker, Arc<WorkerHandle>) {
        let cfg = Arc::new(WorkerConfig {
            name: "test".into(),
            side: Side::Client(ClientSide {
                handshake: HandshakeBody::new(None, None),
                connect_timeout: Duration::from_secs(1),
                peers: Arc::new(PeerTable::default()),
            }),
            max_packet_size: 1 << 20,
            max_body_size: 1 << 20,
            processors: Processors::default(),
            in_fc: Arc::new(FlowControl::new("incoming", 0, 0)),
            out_fc,
            perf: Arc::new(NoopPerfCallback),
            stopping: Arc::new(AtomicBool::new(false)),
            write_high_water: 1 << 20,
            max_conn_unsent: usize::MAX,
            read_budget: usize::MAX,
            write_budget: usize::MAX,
        });
        NioWorker::new(0, cfg).expect("worker")
    }

    fn request(tx: mpsc::Sender<Result<ReadPacket, NetError>>) -> WorkerCmd {
        WorkerCmd::Send(OutRequest {
            target: Target::Any,
            pkt: WritePacket::default(),
            deadline: DtTime::from_now(Duration::from_secs(10)),
            cb: Some(Completion::Boxed(Box::new(move |r| {
                let _ = tx.send(r);
            }))),
            permit_bytes: 0,
            start_nanos: 0,
        })
    }

    /// Commands are handled in place in the batch: a response to a connection that is
    /// gone still gives its credit back, and what follows a `Stop` in the same batch is
    /// kept for the shutdown, which fails it (not lost, not run).
    #[test]
    fn a_batch_is_handled_in_place_up_to_a_stop() {
        let (mut w, h) = client_worker(Arc::new(FlowControl::new("outgoing", 0, 0)));
        let in_flight = Arc::new(ConnInFlight::new(4));
        let credit = in_flight.try_take().expect("credit");
        assert_eq!(in_flight.count(), 1);
        let (tx, rx) = mpsc::channel();
        for cmd in [
            WorkerCmd::Respond {
                conn: ConnRef {
                    worker: 0,
                    slot: 7,
                    gen: 1,
                },
                pkt: WritePacket::default(),
                deadline: DtTime::from_now(Duration::from_secs(10)),
                enqueued: 0,
                permit: Some(Permit::conn(credit)),
            },
            request(tx.clone()),
            WorkerCmd::Stop,
            request(tx.clone()),
            request(tx),
        ] {
            assert!(h.try_send(cmd).is_ok());
        }
        w.drain_cmds();
        assert!(w.stop);
        assert_eq!(in_flight.count(), 0, "the response's credit is given back");
        // The request before the stop found no peer and failed at once.
        assert!(matches!(rx.try_recv(), Ok(Err(NetError::Connect(_)))));
        assert!(rx.try_recv().is_err(), "the two after the stop wait");
        assert_eq!(w.cmd_batch.len(), 2);
        w.close_queue();
        for _ in 0..2 {
            assert!(matches!(rx.try_recv(), Ok(Err(NetError::Stopped))));
        }
        assert!(rx.try_recv().is_err());
    }
}
