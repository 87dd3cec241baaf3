//! [`NioWorker`]: one IO thread with its own mio `Poll`, owning a set of connections
//! (accepted or outgoing). It reads and frames packets, runs handshakes, dispatches
//! requests to processors, matches responses to pending requests, writes coalesced output,
//! and sweeps deadlines. Other threads talk to it only through its command queue plus a
//! mio `Waker`.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use dt_codec::ParseStatus;
use dt_codec::PbParser;
use dt_common::{DtTime, PerfCallback, PerfType, Timestamp};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::codes::{CmdCodes, Commands, PacketType};
use crate::error::NetError;
use crate::flow_control::FlowControl;
use crate::frame::FrameDecoder;
use crate::handshake::{ConfigBody, HandshakeBody, HandshakeCallback, ProcessInfo};
use crate::packet::{ReadPacket, WriteBody, WritePacket};
use crate::peer::{backoff, Peer, PeerId, PeerMap, PeerStatus, PeerTable};
use crate::pending::PendingMap;
use crate::processor::{
    fill_response, fire_queue_time, panic_response, Handled, InPermit, Processors, ReqContext,
};

const WAKER: Token = Token(usize::MAX);
/// The most one read takes from a socket (the worker's scratch buffer).
pub(crate) const READ_CHUNK: usize = 64 * 1024;
const SWEEP_INTERVAL_NANOS: i64 = 50_000_000;

/// Identifies one connection of a server or client (stable while it lives; a closed
/// connection's `ConnRef` never matches a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub(crate) worker: usize,
    pub(crate) slot: usize,
    pub(crate) gen: u64,
}

/// Completion callback of a request.
pub(crate) type RespCallback = Box<dyn FnOnce(Result<ReadPacket, NetError>) + Send>;

/// Receives the results of many requests, told apart by a caller-chosen token: the
/// allocation-free alternative to a boxed callback per request (see
/// [`crate::NioClient::send_request_handler`]). Called on the IO thread; keep it short.
pub trait RpcHandler: Send + Sync + 'static {
    /// The result of the request sent with `token`.
    fn on_result(&self, token: u64, r: Result<ReadPacket, NetError>);
}

/// How a request's result is delivered.
pub(crate) enum Completion {
    Boxed(RespCallback),
    Shared(Arc<dyn RpcHandler>, u64),
    Static(&'static dyn RpcHandler, u64),
}

impl Completion {
    fn run(self, r: Result<ReadPacket, NetError>) {
        match self {
            Completion::Boxed(cb) => cb(r),
            Completion::Shared(h, t) => h.on_result(t, r),
            Completion::Static(h, t) => h.on_result(t, r),
        }
    }

    /// Delivers an error on the calling thread (immediate failures).
    pub fn fail(self, e: NetError) {
        self.run(Err(e))
    }
}

/// Where a request goes.
pub(crate) enum Target {
    Peer(PeerId),
    Any,
    Conn(ConnRef),
}

/// A request on its way to a worker.
pub(crate) struct OutRequest {
    pub target: Target,
    pub pkt: WritePacket,
    pub deadline: DtTime,
    pub cb: Option<Completion>,
    pub permit_bytes: usize,
    pub start_nanos: i64,
}

pub(crate) enum WorkerCmd {
    NewConn {
        stream: TcpStream,
        local_port: u16,
    },
    Respond {
        conn: ConnRef,
        pkt: WritePacket,
        deadline: DtTime,
        enqueued: i64,
        /// Flow-control credit of the request, released once the response is written.
        permit: Option<InPermit>,
    },
    Send(OutRequest),
    AddPeer(Peer),
    RemovePeer(PeerId),
    Stop,
}

/// The cross-thread entry of a worker: a queue and a waker (woken once per batch).
pub(crate) struct WorkerHandle {
    tx: Sender<WorkerCmd>,
    waker: Waker,
    wake_pending: AtomicBool,
    /// What the worker holds, published once per loop iteration.
    pub stats: WorkerStats,
}

/// Gauges of one worker (relaxed; for monitoring and tests).
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub connections: AtomicUsize,
    pub read_buffered: AtomicUsize,
    pub write_buffered: AtomicUsize,
}

impl WorkerHandle {
    /// Queues `cmd`; gives it back when the worker is gone.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, cmd: WorkerCmd) -> Result<(), WorkerCmd> {
        self.tx.send(cmd).map_err(|e| e.0)?;
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        Ok(())
    }

    pub fn send(&self, cmd: WorkerCmd) {
        let _ = self.try_send(cmd);
    }
}

/// Settings shared by the workers of one server or client.
pub(crate) struct WorkerConfig {
    pub name: String,
    pub is_server: bool,
    pub max_packet_size: usize,
    pub max_body_size: usize,
    pub processors: Processors,
    pub in_fc: Arc<FlowControl>,
    pub out_fc: Arc<FlowControl>,
    pub perf: Arc<dyn PerfCallback>,
    pub stopping: Arc<AtomicBool>,
    pub handshake_timeout: Duration,
    pub server_hint: ConfigBody,
    pub auth: Option<crate::server::HandshakeHook>,
    pub client_handshake: HandshakeBody,
    pub connect_timeout: Duration,
    pub write_high_water: usize,
    /// This worker's share of the bytes partial frames may hold (see `charge_read`).
    pub read_budget: usize,
    /// This worker's share of unsent output above which connections that have unsent
    /// output are not read.
    pub write_budget: usize,
    pub peers: Arc<PeerTable>,
    /// Client identity → its most recent connection (server side).
    pub by_uuid: Arc<std::sync::Mutex<HashMap<ProcessInfo, ConnRef>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Handshaking,
    Ready,
}

enum PendingCb {
    User(Completion),
    Handshake,
}

struct Pending {
    command: i32,
    deadline: DtTime,
    start_nanos: i64,
    permit_bytes: usize,
    cb: PendingCb,
}

struct Conn {
    stream: TcpStream,
    gen: u64,
    local_port: u16,
    remote: Option<SocketAddr>,
    peer: Option<PeerId>,
    state: ConnState,
    /// Server: handshake deadline (ns). Client: connect deadline while connecting.
    deadline_nanos: i64,
    handshaken: bool,
    process_info: Option<ProcessInfo>,
    read_buf: BytesMut,
    decoder: FrameDecoder,
    write_buf: BytesMut,
    read_paused: bool,
    /// The peer's FIN (or an error) was reported: read until end of stream, not just
    /// until a short read, or the close is never seen (edge-triggered readiness).
    read_closed: bool,
    /// Bytes of this connection counted in the worker's `read_buffered`.
    in_charge: usize,
    next_seq: i32,
    pending: PendingMap<Pending>,
    max_out_packet: usize,
    closing: bool,
}

struct PeerState {
    peer: Peer,
    conn: Option<usize>,
    waiting: VecDeque<OutRequest>,
    attempt: usize,
    next_connect_nanos: Option<i64>,
}

/// One IO thread.
pub(crate) struct NioWorker {
    idx: usize,
    poll: Poll,
    conns: Slab<Conn>,
    next_gen: u64,
    rx: Receiver<WorkerCmd>,
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
}

impl NioWorker {
    pub fn new(idx: usize, cfg: Arc<WorkerConfig>) -> io::Result<(NioWorker, Arc<WorkerHandle>)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = Arc::new(WorkerHandle {
            tx,
            waker,
            wake_pending: AtomicBool::new(false),
            stats: WorkerStats::default(),
        });
        let ts = Timestamp::now();
        Ok((
            NioWorker {
                idx,
                poll,
                conns: Slab::new(),
                next_gen: 1,
                rx,
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
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_millis(50))) {
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
            for ev in events.iter() {
                let t = ev.token();
                if t == WAKER {
                    continue;
                }
                let slot = t.0;
                if !self.conns.contains(slot) {
                    continue;
                }
                if self.conns[slot].state == ConnState::Connecting {
                    self.on_connect_event(slot);
                    continue;
                }
                if ev.is_read_closed() || ev.is_error() {
                    self.conns[slot].read_closed = true;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.do_read(slot);
                }
                if ev.is_writable() && self.conns.contains(slot) {
                    self.mark_dirty(slot);
                }
            }
            self.drain_cmds();
            self.flush_dirty();
            self.resume_reads();
            if self.ts.nano_time >= self.next_sweep {
                self.next_sweep = self.ts.nano_time + SWEEP_INTERVAL_NANOS;
                self.sweep();
                self.flush_dirty();
            }
            self.publish_stats();
        }
        self.shutdown();
    }

    fn publish_stats(&self) {
        let st = &self.handle.stats;
        st.connections.store(self.conns.len(), Ordering::Relaxed);
        st.read_buffered
            .store(self.read_buffered, Ordering::Relaxed);
        st.write_buffered
            .store(self.write_buffered, Ordering::Relaxed);
    }

    fn drain_cmds(&mut self) {
        // An RMW (not a plain store): it reads the flag a producer set with its own RMW
        // after queueing, so everything queued before that is visible to the drain below.
        self.handle.wake_pending.swap(false, Ordering::AcqRel);
        while let Ok(cmd) = self.rx.try_recv() {
            self.on_cmd(cmd);
            if self.stop {
                return;
            }
        }
    }

    fn on_cmd(&mut self, cmd: WorkerCmd) {
        match cmd {
            WorkerCmd::NewConn { stream, local_port } => self.add_accepted(stream, local_port),
            WorkerCmd::Respond {
                conn,
                pkt,
                deadline,
                enqueued,
                permit,
            } => {
                fire_queue_time(&*self.cfg.perf, enqueued, self.ts.nano_time);
                if !deadline.is_expired(&self.ts) {
                    if let Some(slot) = self.live_slot(conn) {
                        self.write_packet(slot, &pkt);
                    }
                }
                drop(permit);
            }
            WorkerCmd::Send(req) => self.route_request(req),
            WorkerCmd::AddPeer(p) => {
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
            WorkerCmd::RemovePeer(id) => {
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
            WorkerCmd::Stop => self.stop = true,
        }
    }

    fn live_slot(&self, c: ConnRef) -> Option<usize> {
        match self.conns.get(c.slot) {
            Some(conn) if conn.gen == c.gen && !conn.closing => Some(c.slot),
            _ => None,
        }
    }

    fn new_conn(
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
        });
        Ok(slot)
    }

    fn add_accepted(&mut self, stream: TcpStream, local_port: u16) {
        let _ = stream.set_nodelay(true);
        let deadline = self.ts.nano_time + self.cfg.handshake_timeout.as_nanos() as i64;
        if let Err(e) = self.new_conn(stream, local_port, None, ConnState::Ready, deadline) {
            log::warn!(
                "{}: register accepted connection failed: {e}",
                self.cfg.name
            );
        }
    }

    // ---------------------------------------------------------------- reading

    /// Reads what the connection has sent and processes the complete frames, until the
    /// socket is drained, or the connection has to wait for budget (then it is paused and
    /// tried again by [`NioWorker::resume_reads`]).
    fn do_read(&mut self, slot: usize) {
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
    fn may_read(&mut self, slot: usize) -> bool {
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
    fn charge_read(&mut self, slot: usize) -> bool {
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

    fn pause_read(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if !c.read_paused {
            c.read_paused = true;
            self.paused.push(slot);
        }
    }

    /// Tries the paused connections again once budget was freed (output written, a
    /// frame completed, a connection closed).
    fn resume_reads(&mut self) {
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

    fn process_frames(&mut self, slot: usize, packets: &mut u64) -> Result<(), String> {
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
        }
    }

    fn on_packet(&mut self, slot: usize, pkt: ReadPacket) -> Result<(), String> {
        if pkt.body.len() > self.cfg.max_body_size {
            return Err(format!(
                "body of {} bytes exceeds max body size {}",
                pkt.body.len(),
                self.cfg.max_body_size
            ));
        }
        if pkt.packet_type == PacketType::Response.code() {
            self.on_response(slot, pkt);
            return Ok(());
        }
        let one_way = pkt.packet_type == PacketType::OneWay.code();
        let c = &mut self.conns[slot];
        if self.cfg.is_server && c.peer.is_none() && !c.handshaken {
            if pkt.command != Commands::CMD_HANDSHAKE || one_way {
                return Err(format!(
                    "first packet is not a handshake request (type {}, command {})",
                    pkt.packet_type, pkt.command
                ));
            }
            return self.on_handshake_req(slot, pkt);
        }
        if self.cfg.is_server && pkt.command == Commands::CMD_HANDSHAKE {
            // A second handshake is ignored without an answer, as in the reference.
            return Ok(());
        }
        if pkt.timeout_nanos <= 0 {
            return Ok(());
        }
        let deadline = DtTime::from_wire_nanos(self.ts.nano_time, pkt.timeout_nanos);
        if self.cfg.stopping.load(Ordering::Acquire) {
            if !one_way {
                let mut r = WritePacket::error(CmdCodes::STOPPING, "");
                fill_response(&mut r, pkt.command, pkt.seq);
                self.write_packet(slot, &r);
            }
            return Ok(());
        }
        let Some(p) = self.cfg.processors.get(pkt.command).cloned() else {
            if !one_way {
                let mut r = WritePacket::error(
                    CmdCodes::COMMAND_NOT_SUPPORT,
                    format!("command {} not support", pkt.command),
                );
                fill_response(&mut r, pkt.command, pkt.seq);
                self.write_packet(slot, &r);
            }
            return Ok(());
        };
        let c = &self.conns[slot];
        let (command, seq) = (pkt.command, pkt.seq);
        let ctx = ReqContext {
            conn: ConnRef {
                worker: self.idx,
                slot,
                gen: c.gen,
            },
            handle: self.handle.clone(),
            seq,
            command,
            one_way,
            deadline,
            process_info: c.process_info,
            local_port: c.local_port,
            remote: c.remote,
            permit: None,
        };
        let in_fc = &self.cfg.in_fc;
        let handled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.handle(pkt, ctx, in_fc)))
                .unwrap_or_else(|e| Handled::Respond(panic_response(e.as_ref())));
        match handled {
            Handled::Respond(mut r) => {
                if !one_way {
                    fill_response(&mut r, command, seq);
                    self.write_packet(slot, &r);
                }
                Ok(())
            }
            Handled::Nothing => Ok(()),
            Handled::Close(reason) => Err(reason),
        }
    }

    fn on_handshake_req(&mut self, slot: usize, pkt: ReadPacket) -> Result<(), String> {
        let hs = match self.hs_parser.parse_whole(&pkt.body) {
            Ok(ParseStatus::Finished) => self.hs_parser.callback().body,
            Ok(_) => return Err("handshake body rejected".into()),
            Err(e) => return Err(format!("bad handshake: {e}")),
        };
        let pi = match hs.process_info {
            Some(pi) if !pi.is_zero() => pi,
            Some(_) => return Err("handshake with zero process uuid".into()),
            None => return Err("handshake without process info".into()),
        };
        if let Some(auth) = &self.cfg.auth {
            let remote = self.conns[slot].remote;
            if let Err(reason) = auth(&hs, remote) {
                return Err(format!("handshake refused: {reason}"));
            }
        }
        let c = &mut self.conns[slot];
        c.handshaken = true;
        c.process_info = Some(pi);
        let cref = ConnRef {
            worker: self.idx,
            slot,
            gen: c.gen,
        };
        self.cfg
            .by_uuid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pi, cref);
        let body = HandshakeBody::new(None, Some(self.cfg.server_hint));
        let mut r = WritePacket::response(WriteBody::Encodable(Box::new(body)));
        fill_response(&mut r, pkt.command, pkt.seq);
        self.write_packet(slot, &r);
        Ok(())
    }

    fn on_response(&mut self, slot: usize, pkt: ReadPacket) {
        let c = &mut self.conns[slot];
        let Some(p) = c.pending.remove(pkt.seq) else {
            return; // unknown seq (timed out, or not ours): discard
        };
        match p.cb {
            PendingCb::Handshake => {
                if let Err(reason) = self.on_handshake_resp(slot, &pkt) {
                    self.close(slot, &reason);
                }
            }
            PendingCb::User(cb) => {
                self.cfg.out_fc.release(p.permit_bytes);
                if self.cfg.perf.accept(PerfType::RpcLatency) {
                    self.cfg.perf.fire_time(
                        PerfType::RpcLatency,
                        (self.ts.nano_time - p.start_nanos).max(0) as u64,
                        1,
                        pkt.body.len() as u64,
                    );
                }
                let r = if pkt.command != p.command {
                    Err(NetError::Decode(format!(
                        "response command {} does not match request command {}",
                        pkt.command, p.command
                    )))
                } else if pkt.resp_code != CmdCodes::SUCCESS {
                    Err(NetError::Remote {
                        code: pkt.resp_code,
                        msg: pkt.msg,
                    })
                } else {
                    Ok(pkt)
                };
                run_cb(cb, r);
            }
        }
    }

    fn on_handshake_resp(&mut self, slot: usize, pkt: &ReadPacket) -> Result<(), String> {
        if pkt.resp_code != 0 {
            return Err(format!(
                "handshake failed: {} {}",
                CmdCodes::name(pkt.resp_code),
                pkt.msg
            ));
        }
        let hs = match self.hs_parser.parse_whole(&pkt.body) {
            Ok(ParseStatus::Finished) => self.hs_parser.callback().body,
            Ok(_) => return Err("handshake response rejected".into()),
            Err(e) => return Err(format!("bad handshake response: {e}")),
        };
        let Some(hint) = hs.config else {
            return Err("handshake response without config".into());
        };
        let n = self.peers.len().max(1) as i64;
        let c = &mut self.conns[slot];
        if hint.max_packet_size > 0 {
            c.max_out_packet = c.max_out_packet.min(hint.max_packet_size as usize);
        }
        self.cfg.out_fc.apply_hint(
            (hint.max_out_pending as i64).saturating_mul(n),
            hint.max_out_pending_bytes.saturating_mul(n),
        );
        c.state = ConnState::Ready;
        if let Some(id) = c.peer {
            if let Some(ps) = self.peers.get_mut(&id) {
                ps.attempt = 0;
            }
            self.cfg.peers.set(id, PeerStatus::Connected);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- writing

    fn mark_dirty(&mut self, slot: usize) {
        self.dirty.push(slot);
    }

    fn write_packet(&mut self, slot: usize, pkt: &WritePacket) {
        let c = &mut self.conns[slot];
        if c.closing {
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

    fn flush_dirty(&mut self) {
        while let Some(slot) = self.dirty.pop() {
            if self.conns.contains(slot) {
                self.flush(slot);
            }
        }
    }

    fn flush(&mut self, slot: usize) {
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

    // ---------------------------------------------------------------- client side

    fn connect_peer(&mut self, id: PeerId) {
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
        let deadline = self.ts.nano_time + self.cfg.connect_timeout.as_nanos() as i64;
        match self.new_conn(stream, 0, Some(id), ConnState::Connecting, deadline) {
            Ok(slot) => {
                if let Some(ps) = self.peers.get_mut(&id) {
                    ps.conn = Some(slot);
                }
                self.cfg.peers.set(id, PeerStatus::Connecting);
            }
            Err(e) => self.connect_failed(id, &format!("register {addr}: {e}")),
        }
    }

    fn connect_failed(&mut self, id: PeerId, reason: &str) {
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
        self.cfg.peers.set(id, PeerStatus::NotConnected);
        for r in waiting {
            self.fail_req(r, NetError::Connect(reason.to_string()));
        }
    }

    fn on_connect_event(&mut self, slot: usize) {
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
        let deadline = DtTime::from_nanos(self.ts.nano_time, self.cfg.connect_timeout);
        let hs = WritePacket::request(
            Commands::CMD_HANDSHAKE,
            WriteBody::Encodable(Box::new(self.cfg.client_handshake)),
        );
        self.write_request_to(
            slot,
            hs,
            deadline,
            PendingCb::Handshake,
            0,
            self.ts.nano_time,
        );
        if let Some(id) = id {
            self.cfg.peers.set(id, PeerStatus::Handshaking);
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

    fn route_request(&mut self, req: OutRequest) {
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

    fn send_to_peer(&mut self, id: PeerId, req: OutRequest) {
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

    fn send_on(&mut self, slot: usize, req: OutRequest) {
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

    fn write_request_to(
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

    fn fail_req(&self, req: OutRequest, e: NetError) {
        if let Some(cb) = req.cb {
            self.cfg.out_fc.release(req.permit_bytes);
            run_cb(cb, Err(e));
        }
    }

    // ---------------------------------------------------------------- timers, close

    fn sweep(&mut self) {
        let now = self.ts.nano_time;
        let mut to_close: Vec<(usize, &'static str)> = Vec::new();
        for (slot, c) in self.conns.iter_mut() {
            match c.state {
                ConnState::Connecting if now >= c.deadline_nanos => {
                    to_close.push((slot, "connect timeout"))
                }
                ConnState::Ready
                    if self.cfg.is_server
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

    fn close(&mut self, slot: usize, reason: &str) {
        let Some(mut c) = self.conns.try_remove(slot) else {
            return;
        };
        c.closing = true;
        self.read_buffered -= c.in_charge;
        self.write_buffered -= c.write_buf.len();
        self.freed = true;
        if let Some(pi) = c.process_info {
            // As in the reference: closing any connection of a uuid forgets the uuid.
            self.cfg
                .by_uuid
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
        while let Ok(cmd) = self.rx.try_recv() {
            if let WorkerCmd::Send(r) = cmd {
                self.fail_req(r, NetError::Stopped);
            }
        }
    }
}

/// Runs a user completion callback on the IO thread; a panic in it is logged and does
/// not take the IO thread down.
fn run_cb(cb: Completion, r: Result<ReadPacket, NetError>) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || cb.run(r))).is_err() {
        log::error!("an RPC completion callback panicked");
    }
}

fn next_seq(c: &mut Conn) -> i32 {
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
