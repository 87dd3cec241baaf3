//! [`NioClient`]: connections to a changing set of peers, handshake, reconnect with
//! back-off, pipelined requests with deadlines and flow control, and processors for
//! requests the servers push.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dt_common::{DtTime, NoopPerfCallback, PerfCallback};

use crate::error::{check_common, check_limit, ConfigError, NetError};
use crate::flow_control::FlowControl;
use crate::handshake::{ConfigBody, HandshakeBody, ProcessInfo};
use crate::packet::{ReadPacket, WritePacket};
use crate::peer::{Peer, PeerId, PeerStatus, PeerStatusView, PeerTable};
use crate::processor::{Processors, ReqProcessor};
use crate::queue::{Completion, OutRequest, RpcHandler, Target, WorkerCmd, WorkerHandle};
use crate::rpc_future::{rpc_channel, RpcFuture};
use crate::worker::{ClientSide, NioWorker, Side, WorkerConfig};

/// Settings of a [`NioClient`] (defaults are the reference's).
#[derive(Clone)]
pub struct NioClientConfig {
    /// Peers to connect to at start.
    pub peers: Vec<SocketAddr>,
    /// Name for the IO thread and logs.
    pub name: String,
    /// This process's identity, sent in every handshake (random by default; keep it to
    /// keep ownership of locks and temporary nodes across reconnects).
    pub process_info: ProcessInfo,
    /// Largest incoming frame accepted (5 MiB; 1 to 2^31-1).
    pub max_packet_size: usize,
    /// Largest body (4 MiB; 1 to `max_packet_size`).
    pub max_body_size: usize,
    /// Outstanding requests allowed (2 000); more fail with [`NetError::FlowControl`].
    /// For this and the three limits below, 0 means unlimited (as in the reference) and a
    /// negative value is refused by `start`.
    pub max_out_requests: i64,
    /// Outstanding request bytes allowed (32 MiB).
    pub max_out_bytes: i64,
    /// Server-pushed requests handed to executors at once (100).
    pub max_in_requests: i64,
    /// Their bytes (32 MiB).
    pub max_in_bytes: i64,
    /// TCP connect + handshake timeout (3 s; must not be 0).
    pub connect_timeout: Duration,
    /// Unsent output above which reading from a connection pauses (8 MiB; must not be 0).
    pub write_high_water: usize,
    /// Perf hooks.
    pub perf: Arc<dyn PerfCallback>,
}

impl Default for NioClientConfig {
    fn default() -> Self {
        NioClientConfig {
            peers: Vec::new(),
            name: "NioClient".into(),
            process_info: ProcessInfo::random(),
            max_packet_size: 5 * 1024 * 1024,
            max_body_size: 4 * 1024 * 1024,
            max_out_requests: 2_000,
            max_out_bytes: 32 * 1024 * 1024,
            max_in_requests: 100,
            max_in_bytes: 32 * 1024 * 1024,
            connect_timeout: Duration::from_secs(3),
            write_high_water: 8 * 1024 * 1024,
            perf: Arc::new(NoopPerfCallback),
        }
    }
}

impl NioClientConfig {
    /// Checks that the settings can work; [`NioClient::start`] calls it and returns its
    /// error as [`NetError::Config`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_common(
            &self.name,
            self.max_packet_size,
            self.max_body_size,
            self.write_high_water,
        )?;
        check_limit("max_out_requests", self.max_out_requests)?;
        check_limit("max_out_bytes", self.max_out_bytes)?;
        check_limit("max_in_requests", self.max_in_requests)?;
        check_limit("max_in_bytes", self.max_in_bytes)?;
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "0 would fail every connection attempt",
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for NioClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NioClientConfig")
            .field("peers", &self.peers)
            .field("max_out_requests", &self.max_out_requests)
            .finish_non_exhaustive()
    }
}

struct Running {
    thread: Option<JoinHandle<()>>,
}

/// The RPC client. One IO thread; all methods take `&self` and may be called from any
/// thread (share it in an `Arc`).
pub struct NioClient {
    cfg: NioClientConfig,
    processors: Processors,
    peers: Arc<PeerTable>,
    next_peer: AtomicU32,
    out_fc: Arc<FlowControl>,
    stopping: Arc<AtomicBool>,
    handle: OnceLock<Arc<WorkerHandle>>,
    running: Mutex<Option<Running>>,
}

impl NioClient {
    /// A client with the ping processor registered (for server-pushed pings).
    pub fn new(cfg: NioClientConfig) -> Self {
        let out_fc = Arc::new(FlowControl::new(
            "outgoing",
            cfg.max_out_requests,
            cfg.max_out_bytes,
        ));
        NioClient {
            cfg,
            processors: Processors::with_ping(),
            peers: Arc::new(PeerTable::default()),
            next_peer: AtomicU32::new(1),
            out_fc,
            stopping: Arc::new(AtomicBool::new(false)),
            handle: OnceLock::new(),
            running: Mutex::new(None),
        }
    }

    /// Registers a processor for requests pushed by servers (before `start`).
    pub fn register<P: ReqProcessor>(&mut self, command: i32, p: P) {
        self.processors.register(command, p);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the IO thread and connects to the configured peers.
    pub fn start(&mut self) -> Result<(), NetError> {
        if self.handle.get().is_some() {
            return Err(NetError::InvalidArgument("client already started".into()));
        }
        self.cfg.validate()?;
        let own = ConfigBody {
            max_packet_size: self.cfg.max_packet_size.min(i32::MAX as usize) as i32,
            max_body_size: self.cfg.max_body_size.min(i32::MAX as usize) as i32,
            max_in_pending: self.cfg.max_in_requests.min(i32::MAX as i64) as i32,
            max_in_pending_bytes: self.cfg.max_in_bytes,
            max_out_pending: self.cfg.max_out_requests.min(i32::MAX as i64) as i32,
            max_out_pending_bytes: self.cfg.max_out_bytes,
        };
        let wcfg = Arc::new(WorkerConfig {
            name: self.cfg.name.clone(),
            side: Side::Client(ClientSide {
                handshake: HandshakeBody::new(Some(self.cfg.process_info), Some(own)),
                connect_timeout: self.cfg.connect_timeout,
                peers: self.peers.clone(),
            }),
            max_packet_size: self.cfg.max_packet_size,
            max_body_size: self.cfg.max_body_size,
            processors: self.processors.clone(),
            in_fc: Arc::new(FlowControl::new(
                "incoming",
                self.cfg.max_in_requests,
                self.cfg.max_in_bytes,
            )),
            out_fc: self.out_fc.clone(),
            perf: self.cfg.perf.clone(),
            stopping: self.stopping.clone(),
            write_high_water: self.cfg.write_high_water,
            // A client's own requests are bounded by its flow control.
            max_conn_unsent: usize::MAX,
            // One connection per peer, each bounded by max_packet_size and
            // write_high_water: no worker-wide budgets on the client.
            read_budget: usize::MAX,
            write_budget: usize::MAX,
        });
        let (w, handle) = NioWorker::new(0, wcfg)?;
        let thread = std::thread::Builder::new()
            .name(format!("{}-io", self.cfg.name))
            .spawn(move || w.run())?;
        let _ = self.handle.set(handle);
        *self.lock() = Some(Running {
            thread: Some(thread),
        });
        for a in self.cfg.peers.clone() {
            self.add_peer(a)?;
        }
        Ok(())
    }

    fn handle(&self) -> Option<&Arc<WorkerHandle>> {
        self.handle.get()
    }

    /// Adds a peer and starts connecting to it.
    pub fn add_peer(&self, addr: SocketAddr) -> Result<Peer, NetError> {
        let h = self.handle().ok_or(NetError::Stopped)?;
        let p = Peer {
            id: PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed)),
            addr,
        };
        self.peers.insert(p);
        h.try_send(WorkerCmd::AddPeer(p))
            .map_err(|_| NetError::Stopped)?;
        Ok(p)
    }

    /// Removes a peer: closes its connection and fails its outstanding requests.
    pub fn remove_peer(&self, id: PeerId) -> Result<(), NetError> {
        if !self.peers.remove(id) {
            return Err(NetError::InvalidArgument(format!("unknown peer {}", id.0)));
        }
        let h = self.handle().ok_or(NetError::Stopped)?;
        h.try_send(WorkerCmd::RemovePeer(id))
            .map_err(|_| NetError::Stopped)
    }

    /// The peers and their connection status.
    pub fn peers(&self) -> Vec<(Peer, PeerStatus)> {
        self.peers.list()
    }

    /// A live view of one peer's connection status that reads without locking the
    /// peer table (keep it next to the [`PeerId`] to check a peer per request); `None`
    /// for an unknown peer.
    pub fn peer_status_view(&self, id: PeerId) -> Option<PeerStatusView> {
        self.peers.view(id)
    }

    /// This client's identity.
    pub fn process_info(&self) -> ProcessInfo {
        self.cfg.process_info
    }

    /// Waits until every peer has completed its handshake (true) or `timeout` passes.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        self.peers.wait(timeout, |m| {
            !m.is_empty() && m.values().all(|e| e.1 == PeerStatus::Connected)
        })
    }

    /// Outstanding requests (for flow control and tests).
    pub fn pending_requests(&self) -> i64 {
        self.out_fc.pending_requests()
    }

    /// Sends a request to `peer` (or any connected peer when `None`); `cb` is called once
    /// with the response (resp_code 0) or the error, on the IO thread (or on the calling
    /// thread for immediate failures such as [`NetError::FlowControl`]). Keep `cb` short.
    pub fn send_request_cb(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
        cb: impl FnOnce(Result<ReadPacket, NetError>) + Send + 'static,
    ) {
        self.submit(peer, pkt, timeout, Completion::Boxed(Box::new(cb)));
    }

    /// Like [`NioClient::send_request_cb`], but a response with a non-zero `resp_code` is
    /// delivered as `Ok(packet)` instead of [`NetError::Remote`], so the caller can read
    /// its `msg` and `extra` (the leader hint of NOT_RAFT_LEADER). Transport failures are
    /// still errors.
    pub fn send_request_raw_cb(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
        cb: impl FnOnce(Result<ReadPacket, NetError>) + Send + 'static,
    ) {
        self.submit(peer, pkt, timeout, Completion::Raw(Box::new(cb)));
    }

    /// Like [`NioClient::send_request_cb`], but the result goes to `handler` with `token`:
    /// no allocation per request (pipelines that send many requests, e.g. replication).
    pub fn send_request_handler(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
        handler: &Arc<dyn RpcHandler>,
        token: u64,
    ) {
        self.submit(
            peer,
            pkt,
            timeout,
            Completion::Shared(handler.clone(), token),
        );
    }

    /// [`NioClient::send_request_handler`] delivering a response with a non-zero
    /// `resp_code` as it came (`Ok`), as [`NioClient::send_request_raw_cb`] does.
    pub fn send_request_handler_raw(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
        handler: &Arc<dyn RpcHandler>,
        token: u64,
    ) {
        let c = Completion::SharedRaw(handler.clone(), token);
        self.submit(peer, pkt, timeout, c);
    }

    /// [`NioClient::send_request_handler_raw`] with `timeout` counted from `now`, a
    /// clock reading the caller has just taken (saves reading the clock again).
    pub fn send_request_handler_raw_at(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        now: Instant,
        timeout: Duration,
        handler: &Arc<dyn RpcHandler>,
        token: u64,
    ) {
        let c = Completion::SharedRaw(handler.clone(), token);
        self.submit_at(peer, pkt, dt_common::mono_nanos_at(now), timeout, c);
    }

    /// Like [`NioClient::send_request_handler`] with a handler that lives for the whole
    /// program (no reference counting at all).
    pub fn send_request_static(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
        handler: &'static dyn RpcHandler,
        token: u64,
    ) {
        self.submit(peer, pkt, timeout, Completion::Static(handler, token));
    }

    fn submit(&self, peer: Option<PeerId>, pkt: WritePacket, timeout: Duration, cb: Completion) {
        self.submit_at(peer, pkt, dt_common::mono_nanos(), timeout, cb)
    }

    /// Queues a request whose `timeout` runs from `start` ([`dt_common::mono_nanos`]).
    fn submit_at(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        start: i64,
        timeout: Duration,
        cb: Completion,
    ) {
        if self.stopping.load(Ordering::Acquire) {
            cb.fail(NetError::Stopped);
            return;
        }
        let size = pkt.frame_size();
        if pkt.body.len() > self.cfg.max_body_size {
            cb.fail(NetError::TooLarge {
                size: pkt.body.len(),
                max: self.cfg.max_body_size,
            });
            return;
        }
        if let Err(e) = self.out_fc.acquire(size) {
            cb.fail(e);
            return;
        }
        let Some(h) = self.handle() else {
            self.out_fc.release(size);
            cb.fail(NetError::Stopped);
            return;
        };
        let req = OutRequest {
            target: peer.map_or(Target::Any, Target::Peer),
            pkt,
            deadline: DtTime::from_nanos(start, timeout),
            cb: Some(cb),
            permit_bytes: size,
            start_nanos: start,
        };
        if let Err(WorkerCmd::Send(req)) = h.try_send(WorkerCmd::Send(req)) {
            self.out_fc.release(size);
            if let Some(cb) = req.cb {
                cb.fail(NetError::Stopped);
            }
        }
    }

    /// Sends a request; the result is a future (await it anywhere, or `.wait()`).
    pub fn send_request(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
    ) -> RpcFuture<ReadPacket> {
        let (p, f) = rpc_channel();
        self.send_request_cb(peer, pkt, timeout, move |r| p.complete(r));
        f
    }

    /// Sends a request and decodes the response body with `decode` on the IO thread (the
    /// decoder is chosen by the pending request).
    pub fn call<T: Send + 'static>(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
        decode: impl FnOnce(ReadPacket) -> Result<T, NetError> + Send + 'static,
    ) -> RpcFuture<T> {
        let (p, f) = rpc_channel();
        self.send_request_cb(peer, pkt, timeout, move |r| p.complete(r.and_then(decode)));
        f
    }

    /// Sends a request and blocks for the response.
    pub fn send_request_sync(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
    ) -> Result<ReadPacket, NetError> {
        self.send_request(peer, pkt, timeout).wait()
    }

    /// Sends a one-way request (no response); errors are only local ones.
    pub fn send_one_way(
        &self,
        peer: Option<PeerId>,
        pkt: WritePacket,
        timeout: Duration,
    ) -> Result<(), NetError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(NetError::Stopped);
        }
        let h = self.handle().ok_or(NetError::Stopped)?;
        let start = dt_common::mono_nanos();
        h.try_send(WorkerCmd::Send(OutRequest {
            target: peer.map_or(Target::Any, Target::Peer),
            pkt,
            deadline: DtTime::from_nanos(start, timeout),
            cb: None,
            permit_bytes: 0,
            start_nanos: start,
        }))
        .map_err(|_| NetError::Stopped)
    }

    /// Graceful stop: new requests fail with [`NetError::Stopped`], outstanding ones get up
    /// to `timeout` to complete, the rest fail with [`NetError::Stopped`]; the IO thread is
    /// joined.
    pub fn stop(&self, timeout: Duration) {
        self.stopping.store(true, Ordering::Release);
        let Some(mut r) = self.lock().take() else {
            return;
        };
        let end = Instant::now() + timeout;
        while self.out_fc.pending_requests() > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(h) = self.handle() {
            h.send(WorkerCmd::Stop);
        }
        if let Some(t) = r.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NioClient {
    fn drop(&mut self) {
        self.stop(Duration::from_millis(0));
    }
}

impl std::fmt::Debug for NioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NioClient({:?})", self.peers())
    }
}
