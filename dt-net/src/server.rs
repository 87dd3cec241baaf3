//! [`NioServer`]: an acceptor thread plus N IO workers, listening on one or more ports.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_common::{DtTime, NoopPerfCallback, PerfCallback};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::conn_closed::{ConnClosed, ConnClosedListener};
use crate::error::{check_common, check_limit, ConfigError, NetError};
use crate::flow_control::FlowControl;
use crate::handshake::{ConfigBody, HandshakeHook, ProcessInfo};
use crate::packet::{ReadPacket, WritePacket};
use crate::processor::{Processors, ReqProcessor};
use crate::queue::{Completion, ConnRef, OutRequest, Target, WorkerCmd, WorkerHandle};
use crate::rpc_future::{rpc_channel, RpcFuture};
use crate::worker::{NioWorker, ServerSide, Side, WorkerConfig};

/// Settings of a [`NioServer`].
///
/// ## Memory bound
///
/// What a server buffers is bounded server-wide, not only per connection:
///
/// * partial frames: at most [`max_read_buffer_bytes`](Self::max_read_buffer_bytes)
///   (64 MiB), plus 3 bytes per waiting connection;
/// * unsent output: at most [`max_write_buffer_bytes`](Self::max_write_buffer_bytes)
///   (64 MiB) plus, per connection, the responses to one 64 KiB read (a connection with
///   no unsent output is always read; ping answers are about as large as the requests),
///   when processors answer inline; answers that come later from other threads are
///   bounded per connection by [`max_conn_unsent_bytes`](Self::max_conn_unsent_bytes)
///   (64 MiB) plus one packet, above which the connection is closed;
/// * requests handed to executors, until their responses are written:
///   [`max_in_requests`](Self::max_in_requests) and
///   [`max_in_bytes`](Self::max_in_bytes) (512 MiB, the reference's default); bodies
///   under 64 KiB are copied out of the read buffer when handed over, so a held request
///   does not keep a whole read's buffer alive;
/// * a 64 KiB read buffer per IO thread.
///
/// Output buffers grow by doubling, so their allocation can be up to twice the bytes they
/// hold. With the defaults, 200 connections that pipeline pings and never read leave at
/// most 64 MiB + 200 × 64 KiB ≈ 77 MiB unsent (measured: 67 MiB, RSS growth 141 MiB, in
/// `tests/memory_pipelining.rs`), and 50 connections each holding a partial 5 MiB frame
/// hold at most 64 MiB (measured: 62 MiB, RSS growth 72 MiB).
#[derive(Clone)]
pub struct NioServerConfig {
    /// Ports to listen on (0 = an ephemeral port; at least one). The Raft server listens on a replicate
    /// and a service port; processors see the port through [`crate::ReqContext::local_port`].
    pub ports: Vec<u16>,
    /// Address to bind every port on (default 0.0.0.0, all interfaces, as the reference
    /// does; set 127.0.0.1 to accept local connections only).
    pub bind_host: IpAddr,
    /// IO worker threads, 1 to 1024 (default: the number of cores, at most 8).
    pub io_threads: usize,
    /// Name used in thread names and logs.
    pub name: String,
    /// Largest incoming frame accepted (default 5 MiB; 1 to 2^31-1).
    pub max_packet_size: usize,
    /// Largest body accepted (default 4 MiB; 1 to `max_packet_size`), advertised in the
    /// handshake hint.
    pub max_body_size: usize,
    /// Requests concurrently handed to executors and not yet answered (0 = unlimited,
    /// as in the reference; negative is refused; default 100 000); more are answered
    /// `FLOW_CONTROL`.
    pub max_in_requests: i64,
    /// Bytes of those requests (0 = unlimited, negative is refused; default 512 MiB).
    pub max_in_bytes: i64,
    /// Per-connection caps on unanswered requests, by the listening port the connection
    /// came in on: `(port, max)`, port 0 standing for every port not listed, max 0 for
    /// no cap (default: none, as in the reference). A request counts from the moment it
    /// goes to its processor (on the IO thread or an executor) until its answer has been
    /// written (or dropped, or nothing can answer it any more); at `max`, further requests
    /// on that connection are answered `FLOW_CONTROL` ("max incoming requests per
    /// connection: max") until answers leave, and other connections go on being served.
    /// Where [`max_in_requests`](Self::max_in_requests) keeps all clients together from
    /// exhausting the server, this keeps one pipelining client from taking all of it.
    pub max_conn_in_requests: Vec<(u16, u32)>,
    /// Close connections that have not handshaken within this time (default 5 s; must not
    /// be 0).
    pub handshake_timeout: Duration,
    /// Stop reading from a connection whose unsent output exceeds this (default 8 MiB;
    /// must not be 0).
    pub write_high_water: usize,
    /// Close a connection whose unsent output exceeds this (default 64 MiB; at least
    /// `write_high_water`). Stopping reading is not enough when processors answer later
    /// (from another thread): a peer that pipelines small requests for large answers and
    /// never reads gets answers to everything read before its output reached
    /// `write_high_water`. Its further answers are dropped and it is closed.
    pub max_conn_unsent_bytes: usize,
    /// Bytes that partial frames (frames whose first bytes have arrived but not their
    /// last) may hold across the server (default 64 MiB), split evenly among the IO
    /// threads. A frame is charged its full size as soon as its length prefix is read; a
    /// connection whose frame does not fit is not read until another frame completes or a
    /// connection closes. Each thread's share must hold one `max_packet_size` frame plus
    /// one 64 KiB read.
    pub max_read_buffer_bytes: usize,
    /// Unsent output across the server (default 64 MiB), split evenly among the IO
    /// threads: above its share, a thread stops reading the connections that have unsent
    /// output (connections whose peers read their responses go on being served).
    pub max_write_buffer_bytes: usize,
    /// Perf hooks.
    pub perf: Arc<dyn PerfCallback>,
    /// Optional authentication at the handshake.
    pub auth: Option<HandshakeHook>,
    /// Told about every accepted connection that closes (see [`ConnClosedListener`];
    /// also [`NioServer::add_conn_closed_listener`]). Default: none.
    pub conn_closed: Vec<ConnClosedListener>,
}

impl Default for NioServerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        NioServerConfig {
            ports: vec![0],
            bind_host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            io_threads: cores.clamp(1, 8),
            name: "NioServer".into(),
            max_packet_size: 5 * 1024 * 1024,
            max_body_size: 4 * 1024 * 1024,
            max_in_requests: 100_000,
            max_in_bytes: 512 * 1024 * 1024,
            max_conn_in_requests: Vec::new(),
            handshake_timeout: Duration::from_secs(5),
            write_high_water: 8 * 1024 * 1024,
            max_conn_unsent_bytes: 64 * 1024 * 1024,
            max_read_buffer_bytes: 64 * 1024 * 1024,
            max_write_buffer_bytes: 64 * 1024 * 1024,
            perf: Arc::new(NoopPerfCallback),
            auth: None,
            conn_closed: Vec::new(),
        }
    }
}

impl NioServerConfig {
    /// Checks that the settings can work; [`NioServer::start`] calls it and returns its
    /// error as [`NetError::Config`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_common(
            &self.name,
            self.max_packet_size,
            self.max_body_size,
            self.write_high_water,
        )?;
        if self.ports.is_empty() {
            return Err(ConfigError::new("ports", "no port to listen on"));
        }
        if self.io_threads == 0 || self.io_threads > 1024 {
            return Err(ConfigError::new(
                "io_threads",
                format!("{} is not in 1..=1024", self.io_threads),
            ));
        }
        if self.max_conn_unsent_bytes < self.write_high_water {
            return Err(ConfigError::new(
                "max_conn_unsent_bytes",
                format!(
                    "{} is below write_high_water ({}): connections would be closed \
                     before they stop being read",
                    self.max_conn_unsent_bytes, self.write_high_water
                ),
            ));
        }
        check_limit("max_in_requests", self.max_in_requests)?;
        check_limit("max_in_bytes", self.max_in_bytes)?;
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::new(
                "handshake_timeout",
                "0 would close every connection before its handshake",
            ));
        }
        let need = self.max_packet_size + crate::frame::READ_CHUNK;
        if self.max_read_buffer_bytes / self.io_threads < need {
            return Err(ConfigError::new(
                "max_read_buffer_bytes",
                format!(
                    "{} split among {} IO threads leaves less than one max_packet_size \
                     frame plus one 64 KiB read ({need} bytes) per thread",
                    self.max_read_buffer_bytes, self.io_threads
                ),
            ));
        }
        if self.max_write_buffer_bytes < self.io_threads {
            return Err(ConfigError::new(
                "max_write_buffer_bytes",
                format!(
                    "{} leaves no output budget to some of the {} IO threads",
                    self.max_write_buffer_bytes, self.io_threads
                ),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for NioServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NioServerConfig")
            .field("ports", &self.ports)
            .field("io_threads", &self.io_threads)
            .field("max_packet_size", &self.max_packet_size)
            .finish_non_exhaustive()
    }
}

/// A snapshot of what a [`NioServer`] holds (see [`NioServer::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Open connections.
    pub connections: usize,
    /// Bytes of the read-buffer budget in use: partial frames being assembled.
    pub read_buffered_bytes: usize,
    /// Bytes of responses (and pushed requests) not yet written to the sockets.
    pub write_buffered_bytes: usize,
    /// Requests handed to executors and not yet answered.
    pub in_requests: i64,
    /// Their bytes.
    pub in_bytes: i64,
}

struct Running {
    workers: Vec<Arc<WorkerHandle>>,
    threads: Vec<JoinHandle<()>>,
    acceptor: Option<JoinHandle<()>>,
    acceptor_stop: Arc<AtomicBool>,
    acceptor_waker: Arc<Waker>,
    addrs: Vec<SocketAddr>,
}

/// The RPC server: accepts connections, runs handshakes, dispatches requests to the
/// processors registered by command code, answers ping, unknown commands
/// (COMMAND_NOT_SUPPORT) and requests during shutdown (STOPPING).
pub struct NioServer {
    cfg: NioServerConfig,
    processors: Processors,
    stopping: Arc<AtomicBool>,
    in_fc: Arc<FlowControl>,
    by_uuid: Arc<Mutex<HashMap<ProcessInfo, ConnRef>>>,
    running: Mutex<Option<Running>>,
}

impl NioServer {
    /// A server with the ping processor registered; call [`NioServer::start`] after
    /// registering processors.
    pub fn new(cfg: NioServerConfig) -> Self {
        let in_fc = Arc::new(FlowControl::new(
            "incoming",
            cfg.max_in_requests,
            cfg.max_in_bytes,
        ));
        NioServer {
            cfg,
            processors: Processors::with_ping(),
            stopping: Arc::new(AtomicBool::new(false)),
            in_fc,
            by_uuid: Arc::default(),
            running: Mutex::new(None),
        }
    }

    /// Registers the processor of `command` (before `start`).
    pub fn register<P: ReqProcessor>(&mut self, command: i32, p: P) {
        self.processors.register(command, p);
    }

    /// Adds a connection-closed listener (before `start`; see [`ConnClosedListener`]):
    /// `f` runs on the IO thread once for every accepted connection that closes, and
    /// must not block.
    pub fn add_conn_closed_listener(
        &mut self,
        f: impl Fn(&ConnClosed<'_>) + Send + Sync + 'static,
    ) {
        self.cfg.conn_closed.push(Arc::new(f));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds the ports and starts the acceptor and the IO workers.
    pub fn start(&mut self) -> Result<(), NetError> {
        if self.lock().is_some() {
            return Err(NetError::InvalidArgument("server already started".into()));
        }
        self.cfg.validate()?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for &port in &self.cfg.ports {
            let l = std::net::TcpListener::bind(SocketAddr::new(self.cfg.bind_host, port))?;
            l.set_nonblocking(true)?;
            addrs.push(l.local_addr()?);
            listeners.push(TcpListener::from_std(l));
        }
        let hint = ConfigBody {
            max_packet_size: self.cfg.max_packet_size.min(i32::MAX as usize) as i32,
            max_body_size: self.cfg.max_body_size.min(i32::MAX as usize) as i32,
            max_in_pending: 0,
            max_in_pending_bytes: 0,
            max_out_pending: (self.cfg.max_in_requests >> 3).min(i32::MAX as i64) as i32,
            max_out_pending_bytes: self.cfg.max_in_bytes >> 3,
        };
        let wcfg = Arc::new(WorkerConfig {
            name: self.cfg.name.clone(),
            side: Side::Server(ServerSide {
                handshake_timeout: self.cfg.handshake_timeout,
                hint,
                auth: self.cfg.auth.clone(),
                by_uuid: self.by_uuid.clone(),
                conn_closed: self.cfg.conn_closed.clone(),
                max_conn_in_requests: self.cfg.max_conn_in_requests.clone(),
            }),
            max_packet_size: self.cfg.max_packet_size,
            max_body_size: self.cfg.max_body_size,
            processors: self.processors.clone(),
            in_fc: self.in_fc.clone(),
            out_fc: Arc::new(FlowControl::new("outgoing", 0, 0)),
            perf: self.cfg.perf.clone(),
            stopping: self.stopping.clone(),
            write_high_water: self.cfg.write_high_water,
            max_conn_unsent: self.cfg.max_conn_unsent_bytes,
            read_budget: self.cfg.max_read_buffer_bytes / self.cfg.io_threads,
            write_budget: self.cfg.max_write_buffer_bytes / self.cfg.io_threads,
        });
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        for i in 0..self.cfg.io_threads {
            let (w, h) = NioWorker::new(i, wcfg.clone())?;
            workers.push(h);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{}-io-{i}", self.cfg.name))
                    .spawn(move || w.run())?,
            );
        }
        let poll = Poll::new()?;
        let n = listeners.len();
        let acceptor_waker = Arc::new(Waker::new(poll.registry(), Token(n))?);
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(l, Token(i), Interest::READABLE)?;
        }
        let acceptor_stop = Arc::new(AtomicBool::new(false));
        let stop2 = acceptor_stop.clone();
        let ws = workers.clone();
        let name = self.cfg.name.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("{}-accept", self.cfg.name))
            .spawn(move || accept_loop(poll, listeners, ws, stop2, name))?;
        *self.lock() = Some(Running {
            workers,
            threads,
            acceptor: Some(acceptor),
            acceptor_stop,
            acceptor_waker,
            addrs,
        });
        Ok(())
    }

    /// The bound addresses, in the order of `ports`.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.lock()
            .as_ref()
            .map(|r| r.addrs.clone())
            .unwrap_or_default()
    }

    /// The first bound port.
    pub fn port(&self) -> u16 {
        self.local_addrs().first().map_or(0, |a| a.port())
    }

    /// Sends a request to a connected client (server push), e.g. to the connection a
    /// processor saw in [`crate::ReqContext::conn`]; `cb` gets the response or the error.
    pub fn send_request_cb(
        &self,
        conn: ConnRef,
        pkt: WritePacket,
        timeout: Duration,
        cb: impl FnOnce(Result<ReadPacket, NetError>) + Send + 'static,
    ) {
        let g = self.lock();
        let Some(r) = g.as_ref() else {
            cb(Err(NetError::Stopped));
            return;
        };
        let Some(h) = r.workers.get(conn.worker) else {
            cb(Err(NetError::InvalidArgument("bad connection".into())));
            return;
        };
        let start = dt_common::mono_nanos();
        let req = OutRequest {
            target: Target::Conn(conn),
            pkt,
            deadline: DtTime::from_nanos(start, timeout),
            cb: Some(Completion::Boxed(Box::new(cb))),
            permit_bytes: 0,
            start_nanos: start,
        };
        if let Err(WorkerCmd::Send(req)) = h.try_send(WorkerCmd::Send(req)) {
            if let Some(cb) = req.cb {
                cb.fail(NetError::Stopped);
            }
        }
    }

    /// Sends a one-way request to a connected client (e.g. a lock push); no response is
    /// expected. Errors are only local ones (stopped, unknown worker).
    pub fn send_one_way(
        &self,
        conn: ConnRef,
        pkt: WritePacket,
        timeout: Duration,
    ) -> Result<(), NetError> {
        let g = self.lock();
        let r = g.as_ref().ok_or(NetError::Stopped)?;
        let h = r
            .workers
            .get(conn.worker)
            .ok_or_else(|| NetError::InvalidArgument("bad connection".into()))?;
        let start = dt_common::mono_nanos();
        h.try_send(WorkerCmd::Send(OutRequest {
            target: Target::Conn(conn),
            pkt,
            deadline: DtTime::from_nanos(start, timeout),
            cb: None,
            permit_bytes: 0,
            start_nanos: start,
        }))
        .map_err(|_| NetError::Stopped)
    }

    /// [`NioServer::send_request_cb`] as a future.
    pub fn send_request(
        &self,
        conn: ConnRef,
        pkt: WritePacket,
        timeout: Duration,
    ) -> RpcFuture<ReadPacket> {
        let (p, f) = rpc_channel();
        self.send_request_cb(conn, pkt, timeout, move |r| p.complete(r));
        f
    }

    /// The most recent live connection of the client with this identity (the handshake
    /// UUID), e.g. to push lock or watch notifications to it.
    pub fn conn_of(&self, pi: ProcessInfo) -> Option<ConnRef> {
        self.by_uuid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pi)
            .copied()
    }

    /// What the server holds now, summed over its IO workers (gauges, updated by each
    /// worker once per loop iteration, so at most one iteration old).
    pub fn stats(&self) -> ServerStats {
        let g = self.lock();
        let mut st = ServerStats {
            in_requests: self.in_fc.pending_requests(),
            in_bytes: self.in_fc.pending_bytes(),
            ..Default::default()
        };
        for w in g.iter().flat_map(|r| r.workers.iter()) {
            st.connections += w.stats.connections.load(Ordering::Relaxed);
            st.read_buffered_bytes += w.stats.read_buffered.load(Ordering::Relaxed);
            st.write_buffered_bytes += w.stats.write_buffered.load(Ordering::Relaxed);
        }
        st
    }

    /// Whether `stop` has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Graceful stop: stop accepting, answer new requests STOPPING, wait up to `timeout`
    /// for requests handed to executors to finish, then close every connection and join
    /// all threads.
    pub fn stop(&self, timeout: Duration) {
        let Some(mut r) = self.lock().take() else {
            return;
        };
        self.stopping.store(true, Ordering::Release);
        r.acceptor_stop.store(true, Ordering::Release);
        let _ = r.acceptor_waker.wake();
        if let Some(a) = r.acceptor.take() {
            let _ = a.join();
        }
        let end = Instant::now() + timeout;
        while self.in_fc.pending_requests() > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(2));
        }
        for w in &r.workers {
            w.send(WorkerCmd::Stop);
        }
        for t in r.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for NioServer {
    fn drop(&mut self) {
        self.stop(Duration::from_millis(0));
    }
}

impl std::fmt::Debug for NioServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NioServer({:?})", self.local_addrs())
    }
}

fn accept_loop(
    mut poll: Poll,
    listeners: Vec<TcpListener>,
    workers: Vec<Arc<WorkerHandle>>,
    stop: Arc<AtomicBool>,
    name: String,
) {
    let mut events = Events::with_capacity(64);
    let mut rr = 0usize;
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(200))) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("{name}: accept poll failed: {e}");
            return;
        }
        for ev in events.iter() {
            let Some(l) = listeners.get(ev.token().0) else {
                continue;
            };
            let local_port = l.local_addr().map_or(0, |a| a.port());
            loop {
                match l.accept() {
                    Ok((s, _)) => {
                        let w = &workers[rr % workers.len()];
                        rr = rr.wrapping_add(1);
                        w.send(WorkerCmd::NewConn {
                            stream: s,
                            local_port,
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // e.g. EMFILE: log and back off a little, keep serving.
                        log::warn!("{name}: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
    }
}
