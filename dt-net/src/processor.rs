//! Request processors ([`ReqProcessor`]), registered by command code, and where they run
//! ([`RunOn`]): inline on the IO thread, or on an [`Executor`] the caller supplies.

use std::net::SocketAddr;
use std::sync::Arc;

use dt_codec::PbError;
use dt_common::{DtTime, PerfCallback, PerfType};
pub use dt_common::{Executor, Task};

use crate::codes::{CmdCodes, PacketType};
use crate::error::NetError;
use crate::flow_control::{ConnCredit, FlowControl, Permit};
use crate::handshake::ProcessInfo;
use crate::packet::{ReadPacket, WriteBody, WritePacket};
use crate::queue::{ConnRef, WorkerCmd, WorkerHandle};

/// Where a processor's [`ReqProcessor::process`] runs.
#[derive(Clone)]
pub enum RunOn {
    /// On the IO thread, in arrival order (cheap, non-blocking work: ping, handshake).
    IoThread,
    /// Handed off to an executor; the body is decoded on the IO thread first.
    ///
    /// [`Executor`] is `dt_common::Executor`, the one executor trait of dt: a thread pool
    /// implements it, and so does a fiber group (dt-fiber), which is how a processor hands
    /// its requests to the fibers of a Raft group or the KV state machine: `process` then
    /// runs on the group's thread, and answers at once or later through a [`Responder`].
    /// A refused task (`Err`) is answered `FLOW_CONTROL`.
    Executor(Arc<dyn Executor>),
}

impl std::fmt::Debug for RunOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunOn::IoThread => write!(f, "IoThread"),
            RunOn::Executor(_) => write!(f, "Executor"),
        }
    }
}

/// Handles the requests of one command.
///
/// [`ReqProcessor::decode`] always runs on the IO thread (the decoder chosen by command);
/// `Err(PbError::Rejected)` drops the request silently, any other error closes the
/// connection (a body that cannot be decoded). [`ReqProcessor::process`] runs where
/// [`ReqProcessor::run_on`] says; it returns the response, or `None` when it answers later
/// through [`ReqContext::responder`] (or never, for one-way requests).
pub trait ReqProcessor: Send + Sync + 'static {
    /// The decoded body type.
    type Body: Send + 'static;

    /// Where `process` runs. Default: the IO thread.
    fn run_on(&self) -> RunOn {
        RunOn::IoThread
    }

    /// Decodes the request body.
    fn decode(&self, pkt: &ReadPacket) -> Result<Self::Body, PbError>;

    /// Processes one request.
    fn process(&self, pkt: ReadPacket, body: Self::Body, ctx: ReqContext) -> Option<WritePacket>;
}

/// Echo processor for `CMD_PING`: the response body is the request body.
#[derive(Debug, Default)]
pub struct PingProcessor;

impl ReqProcessor for PingProcessor {
    type Body = ();
    fn decode(&self, _pkt: &ReadPacket) -> Result<(), PbError> {
        Ok(())
    }
    fn process(&self, pkt: ReadPacket, _b: (), _ctx: ReqContext) -> Option<WritePacket> {
        Some(WritePacket::response(WriteBody::Bytes(pkt.body)))
    }
}

/// What a request knows about where it came from, and how to answer it.
pub struct ReqContext {
    pub(crate) conn: ConnRef,
    pub(crate) handle: Arc<WorkerHandle>,
    pub(crate) seq: i32,
    pub(crate) command: i32,
    pub(crate) one_way: bool,
    pub(crate) deadline: DtTime,
    pub(crate) process_info: Option<ProcessInfo>,
    pub(crate) local_port: u16,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) permit: Option<Permit>,
}

impl ReqContext {
    /// The client's identity from its handshake (`None` on client-side connections).
    pub fn process_info(&self) -> Option<ProcessInfo> {
        self.process_info
    }
    /// The request's deadline (from header field 7).
    pub fn deadline(&self) -> DtTime {
        self.deadline
    }
    /// The local port the connection came in on (replicate vs service port).
    pub fn local_port(&self) -> u16 {
        self.local_port
    }
    /// The remote address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote
    }
    /// The request's seq.
    pub fn seq(&self) -> i32 {
        self.seq
    }
    /// The request's command.
    pub fn command(&self) -> i32 {
        self.command
    }
    /// Whether the request is one-way (never answered).
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }
    /// The connection, to send requests back to this peer (server push).
    pub fn conn(&self) -> ConnRef {
        self.conn
    }
    /// A handle to answer later, from any thread.
    pub fn responder(self) -> Responder {
        Responder {
            to: Some(self.reply_to()),
        }
    }

    /// What answering needs of the context (the rest is dropped here).
    fn reply_to(self) -> ReplyTo {
        ReplyTo {
            conn: self.conn,
            handle: self.handle,
            seq: self.seq,
            command: self.command,
            one_way: self.one_way,
            deadline: self.deadline,
            permit: self.permit,
        }
    }
}

/// The part of a [`ReqContext`] an answer needs: where it goes, and the request's
/// credit. Kept apart so that a [`Responder`], which travels with a request through a
/// Raft group's queues, is half the context's size.
struct ReplyTo {
    conn: ConnRef,
    handle: Arc<WorkerHandle>,
    seq: i32,
    command: i32,
    one_way: bool,
    deadline: DtTime,
    permit: Option<Permit>,
}

/// Answers one request from any thread; the response goes back to the connection's IO
/// worker through its queue and waker.
///
/// A request handed to an executor holds incoming flow-control credit
/// ([`crate::NioServerConfig::max_in_requests`] / `max_in_bytes`) until its response has
/// left: been written into the connection's output buffer by the IO worker (or been
/// dropped there because the deadline passed or the connection is gone). Dropping a
/// `Responder` unanswered releases the credit (once `process` has returned too) and sends
/// nothing (the requester will time out).
pub struct Responder {
    to: Option<ReplyTo>,
}

impl Responder {
    /// Sends `resp` (type, command and seq are filled in). Responses to one-way requests
    /// are dropped; responses after the deadline are dropped by the worker.
    pub fn respond(mut self, resp: WritePacket) {
        if let Some(to) = self.to.take() {
            send_response(to, resp);
        }
    }
}

pub(crate) fn fill_response(resp: &mut WritePacket, command: i32, seq: i32) {
    resp.packet_type = PacketType::Response.code();
    resp.command = command;
    resp.seq = seq;
    resp.timeout_nanos = 0;
}

fn send_response(ctx: ReplyTo, mut resp: WritePacket) {
    if ctx.one_way {
        return;
    }
    fill_response(&mut resp, ctx.command, ctx.seq);
    // The permit travels with the response; the worker drops it once the response is
    // written (or discarded).
    ctx.handle.send(WorkerCmd::Respond {
        conn: ctx.conn,
        pkt: resp,
        deadline: ctx.deadline,
        enqueued: if ctx.handle.perf.accept(PerfType::RpcWorkerQueue) {
            dt_common::mono_nanos()
        } else {
            0
        },
        permit: ctx.permit,
    });
}

/// The SYS_ERROR answer to a processor that panicked (the reference answers an uncaught
/// exception with SYS_ERROR and its text).
pub(crate) fn panic_response(e: &(dyn std::any::Any + Send)) -> WritePacket {
    let msg = e
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "processor panicked".into());
    log::warn!("request processor panicked: {msg}");
    WritePacket::error(CmdCodes::SYS_ERROR, msg)
}

/// What the worker must do after handing a request to its processor.
pub(crate) enum Handled {
    Respond(WritePacket),
    Nothing,
    Close(String),
}

pub(crate) trait ErasedProcessor: Send + Sync {
    /// `conn` is the request's unit of its connection's cap, if the connection has one:
    /// it stays with the request until it is answered.
    fn handle(
        &self,
        pkt: ReadPacket,
        ctx: ReqContext,
        in_fc: &Arc<FlowControl>,
        conn: Option<ConnCredit>,
    ) -> Handled;
}

struct Erased<P>(Arc<P>);

impl<P: ReqProcessor> ErasedProcessor for Erased<P> {
    fn handle(
        &self,
        mut pkt: ReadPacket,
        mut ctx: ReqContext,
        in_fc: &Arc<FlowControl>,
        conn: Option<ConnCredit>,
    ) -> Handled {
        let run_on = self.0.run_on();
        if let RunOn::Executor(_) = run_on {
            // Kept beyond this read: don't let a small body keep the whole read chunk
            // alive (bodies this size or larger were read into a buffer of their own).
            pkt.detach_small(crate::frame::READ_CHUNK);
        }
        let body = match self.0.decode(&pkt) {
            Ok(b) => b,
            Err(e) if e.is_rejection() => return Handled::Nothing,
            Err(e) => {
                return Handled::Close(format!(
                    "body of command {} failed to decode: {e}",
                    pkt.command
                ))
            }
        };
        match run_on {
            RunOn::IoThread => {
                // Held by the context (and a Responder made of it) until answered.
                ctx.permit = conn.map(Permit::conn);
                match self.0.process(pkt, body, ctx) {
                    Some(r) => Handled::Respond(r),
                    None => Handled::Nothing,
                }
            }
            RunOn::Executor(ex) => {
                let bytes = pkt.body.len();
                if let Err(e) = in_fc.acquire(bytes) {
                    return Handled::Respond(WritePacket::error(
                        CmdCodes::FLOW_CONTROL,
                        match e {
                            NetError::FlowControl { what } => what,
                            other => other.to_string(),
                        },
                    ));
                }
                ctx.permit = Some(Permit::new(Some((in_fc.clone(), bytes)), conn));
                let p = self.0.clone();
                let task = Box::new(move || {
                    // Expired while queued: drop it, as the reference does (no response).
                    if ctx.deadline.is_expired_now() {
                        return;
                    }
                    let ctx2 = ReqContext {
                        conn: ctx.conn,
                        handle: ctx.handle.clone(),
                        seq: ctx.seq,
                        command: ctx.command,
                        one_way: ctx.one_way,
                        deadline: ctx.deadline,
                        process_info: ctx.process_info,
                        local_port: ctx.local_port,
                        remote: ctx.remote,
                        permit: ctx.permit.clone(),
                    };
                    // Both `ctx` (for a response returned by `process`) and `ctx2` (for a
                    // Responder that answers later) hold the permit.
                    let mut holder = Some(ctx);
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        p.process(pkt, body, ctx2)
                    }))
                    .unwrap_or_else(|e| Some(panic_response(e.as_ref())));
                    if let (Some(r), Some(ctx)) = (r, holder.take()) {
                        send_response(ctx.reply_to(), r);
                    }
                });
                match ex.execute(task) {
                    Ok(()) => Handled::Nothing,
                    Err(_) => Handled::Respond(WritePacket::error(
                        CmdCodes::FLOW_CONTROL,
                        "executor rejected the request",
                    )),
                }
            }
        }
    }
}

/// Processors by command code.
///
/// Looked up for every request: an [`IdHashMap`](dt_common::IdHashMap) (the keys are the
/// registered codes; a peer's command only looks one up).
#[derive(Clone, Default)]
pub struct Processors {
    map: dt_common::IdHashMap<i32, Arc<dyn ErasedProcessor>>,
}

impl Processors {
    /// A registry with the ping echo registered.
    pub fn with_ping() -> Self {
        let mut p = Processors::default();
        p.register(crate::codes::Commands::CMD_PING, PingProcessor);
        p
    }

    /// Registers `p` for `command` (replacing an earlier one).
    pub fn register<P: ReqProcessor>(&mut self, command: i32, p: P) {
        self.map.insert(command, Arc::new(Erased(Arc::new(p))));
    }

    pub(crate) fn get(&self, command: i32) -> Option<&Arc<dyn ErasedProcessor>> {
        self.map.get(&command)
    }
}

impl std::fmt::Debug for Processors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut k: Vec<_> = self.map.keys().collect();
        k.sort();
        write!(f, "Processors{k:?}")
    }
}

/// A processor built from a closure running on the IO thread, with the raw body.
pub struct FnProcessor<F>(pub F);

impl<F> ReqProcessor for FnProcessor<F>
where
    F: Fn(&ReadPacket, &ReqContext) -> Option<WritePacket> + Send + Sync + 'static,
{
    type Body = ();
    fn decode(&self, _pkt: &ReadPacket) -> Result<(), PbError> {
        Ok(())
    }
    fn process(&self, pkt: ReadPacket, _b: (), ctx: ReqContext) -> Option<WritePacket> {
        (self.0)(&pkt, &ctx)
    }
}

pub(crate) fn fire_queue_time(perf: &dyn PerfCallback, enqueued: i64, now: i64) {
    if perf.accept(PerfType::RpcWorkerQueue) {
        perf.fire_time(
            PerfType::RpcWorkerQueue,
            (now - enqueued).max(0) as u64,
            1,
            0,
        );
    }
}
