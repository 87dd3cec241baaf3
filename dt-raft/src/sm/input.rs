//! How requests enter Raft (raft.md §6.2): [`RaftInput`], the caller's
//! [`RaftCallback`], and the errors a caller can match on ([`RaftError`]).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use dt_net::Responder;

use super::state_machine::SmError;
use crate::core::{ConfigChangeError, Index, NodeId, TransferError};

/// A state-machine input submitted to the leader with
/// [`RaftGroup::submit`](crate::driver::RaftGroup::submit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftInput {
    /// The state-machine operation code, 0–127 (larger values are refused).
    pub biz_type: u8,
    /// Business header bytes (may be empty).
    pub header: Bytes,
    /// Business body bytes (may be empty).
    pub body: Bytes,
    /// Give up if the entry was not created within this time after the group received
    /// the input (measured on the group's clock, so virtual time in a simulation).
    /// Once the entry has an index it is never withdrawn.
    pub timeout: Option<Duration>,
    /// A read-only input: written as a LOG_READ entry (only its header is stored) and
    /// executed only on this node once committed (a linearizable read through the log).
    pub read_only: bool,
}

impl RaftInput {
    /// A write input with `biz_type` and `body`.
    pub fn new(biz_type: u8, body: impl Into<Bytes>) -> Self {
        RaftInput {
            biz_type,
            body: body.into(),
            ..Default::default()
        }
    }

    /// Flow-control size: header plus body bytes.
    pub fn size(&self) -> usize {
        self.header.len() + self.body.len()
    }
}

/// Why a Raft operation failed. Every public operation of a group reports one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftError {
    /// This node is not the leader (or stopped being it before the entry was
    /// applied); `leader` is the known leader to retry with, if any.
    NotLeader {
        /// The leader hint.
        leader: Option<NodeId>,
    },
    /// The deadline passed before the operation could be done.
    Timeout,
    /// Too many unapplied entries on the leader (maxPendingTasks / maxPendingTaskBytes).
    FlowControl {
        /// Unapplied entries.
        pending_tasks: usize,
        /// Their bytes.
        pending_bytes: usize,
    },
    /// The entry was removed from the log by a new leader before it was committed.
    LogTruncated,
    /// The group is stopping or stopped.
    Stopped,
    /// The group has not finished its init (or failed it).
    NotInitialized(String),
    /// The input is invalid (e.g. bizType above 127); nothing was written.
    InvalidInput(String),
    /// The state machine failed a read-only entry (write failures stop the group).
    StateMachine(SmError),
    /// A leader transfer failed.
    Transfer(TransferError),
    /// The log or status file failed; the group has stopped (fail-stop).
    Storage(String),
    /// The group's dispatcher refused the request (it has stopped).
    Rejected(String),
    /// A membership change was refused (raft.md §11.3; the text is the reference's).
    ConfigChange(ConfigChangeError),
}

impl fmt::Display for RaftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaftError::NotLeader { leader: Some(l) } => write!(f, "not leader, leader is {l}"),
            RaftError::NotLeader { leader: None } => f.write_str("not leader, leader unknown"),
            RaftError::Timeout => f.write_str("raft operation timed out"),
            RaftError::FlowControl {
                pending_tasks,
                pending_bytes,
            } => write!(
                f,
                "flow control: {pending_tasks} unapplied entries ({pending_bytes} bytes) on the leader"
            ),
            RaftError::LogTruncated => f.write_str("raft log truncated"),
            RaftError::Stopped => f.write_str("raft group is stopping"),
            RaftError::NotInitialized(m) => write!(f, "raft group not initialized: {m}"),
            RaftError::InvalidInput(m) => write!(f, "invalid raft input: {m}"),
            RaftError::StateMachine(e) => write!(f, "{e}"),
            RaftError::Transfer(e) => write!(f, "leader transfer failed: {e:?}"),
            RaftError::Storage(m) => write!(f, "raft storage failed: {m}"),
            RaftError::Rejected(m) => write!(f, "raft request rejected: {m}"),
            RaftError::ConfigChange(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RaftError {}

/// The outcome of a submitted input: its index and the state machine's output.
pub type RaftResult<O> = Result<(Index, O), RaftError>;

/// The caller's callback for [`RaftGroup::submit`](crate::driver::RaftGroup::submit).
///
/// Called exactly once: on success after the entry was committed and its `exec`
/// completed, or on failure; it runs on the group's dispatcher thread (a refused
/// submission calls it on the caller's thread) and must not block. A panic in it is
/// caught and logged.
pub type RaftCallback<O> = Box<dyn FnOnce(RaftResult<O>) + Send>;

/// A reusable receiver of write outcomes, for
/// [`RaftGroup::submit_to`](crate::driver::RaftGroup::submit_to): one object, shared
/// through an `Arc`, completes many writes, each named by the token its caller chose
/// (a slab key, a request id, a start time). Submitting with it allocates nothing per
/// write, where [`RaftGroup::submit`](crate::driver::RaftGroup::submit) boxes its
/// closure.
///
/// [`RaftHandler::done`] is called exactly once per submitted write, with the same
/// rules as a [`RaftCallback`]: on the group's dispatcher thread (a refused submission
/// on the caller's thread), must not block, a panic is caught and logged.
pub trait RaftHandler<O>: Send + Sync {
    /// The outcome of the write submitted with `token`.
    fn done(&self, token: u64, result: RaftResult<O>);
}

/// A reusable completer of writes that came in as network requests, for
/// [`RaftGroup::submit_respond`](crate::driver::RaftGroup::submit_respond): one object,
/// shared through an `Arc`, turns each write's outcome into the answer to its request
/// and sends it with the request's [`Responder`], which travels with the write by value.
///
/// This is [`RaftHandler`] for a request processor: nothing is allocated per write. A
/// boxed closure per write is allocated on the network thread that submits it and freed
/// on the group's dispatcher thread that completes it, and under load that stream of
/// frees into another thread's heap kept the allocator's lock contended between the two
/// threads (thousands of futex calls a second at 300k DtKV puts/s).
///
/// [`RaftResponder::done`] is called exactly once per submitted write, with the same
/// rules as a [`RaftCallback`]: on the group's dispatcher thread (a refused submission
/// on the caller's thread), must not block, a panic is caught and logged.
pub trait RaftResponder<O>: Send + Sync {
    /// The outcome of a write; answer its request with `responder`. `mark` is the value
    /// the write was submitted with (the caller's own: a perf start time, a token).
    fn done(&self, result: RaftResult<O>, responder: Responder, mark: u64);
}

/// How the caller of one submitted write is completed: its boxed closure, a shared
/// [`RaftHandler`] with the caller's token, or a shared [`RaftResponder`] with the
/// request's [`Responder`] and the caller's mark.
pub enum SubmitCallback<O> {
    /// [`RaftGroup::submit`](crate::driver::RaftGroup::submit)'s closure.
    Boxed(RaftCallback<O>),
    /// [`RaftGroup::submit_to`](crate::driver::RaftGroup::submit_to)'s handler and token.
    Handler(std::sync::Arc<dyn RaftHandler<O>>, u64),
    /// [`RaftGroup::submit_respond`](crate::driver::RaftGroup::submit_respond)'s
    /// responder, the request's [`Responder`] and the caller's mark.
    Respond(std::sync::Arc<dyn RaftResponder<O>>, Responder, u64),
}

impl<O> SubmitCallback<O> {
    /// Completes the caller with `result` (consumes the callback: called once).
    pub fn complete(self, result: RaftResult<O>) {
        match self {
            SubmitCallback::Boxed(f) => f(result),
            SubmitCallback::Handler(h, token) => h.done(token, result),
            SubmitCallback::Respond(h, responder, mark) => h.done(result, responder, mark),
        }
    }
}

impl<O> std::fmt::Debug for SubmitCallback<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitCallback::Boxed(_) => f.write_str("SubmitCallback::Boxed"),
            SubmitCallback::Handler(_, t) => write!(f, "SubmitCallback::Handler(token {t})"),
            SubmitCallback::Respond(..) => f.write_str("SubmitCallback::Respond"),
        }
    }
}
