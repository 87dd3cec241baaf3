//! The extension contracts of a Raft group (raft.md §6.2, §16): what a user implements
//! and what a server is built from.
//!
//! * [`StateMachine`]: executes committed entries in log order ([`ExecEntry`],
//!   [`Exec`]), takes and installs snapshots ([`Snapshot`], [`SnapshotInfo`],
//!   [`SnapshotChunk`]), starts and stops, and may take hints of the entries it will
//!   execute next ([`StateMachine::prepare`]). Read its documentation for the rules an
//!   implementation must follow (thread, order, determinism, failures).
//! * [`RaftInput`], [`RaftCallback`] (or a reusable [`RaftHandler`], see
//!   [`SubmitCallback`]), [`RaftResult`], [`RaftError`]: how a write enters
//!   Raft through [`RaftGroup::submit`](crate::driver::RaftGroup::submit) and how its
//!   outcome comes back.
//! * [`RaftFactory`]: builds each group's state machine and log on the group's thread;
//!   [`DefaultRaftFactory`] uses the file log ([`DefaultRaftLog`](crate::raft_log::DefaultRaftLog)).
//!
//! The driver that calls these contracts is [`crate::driver`].

mod factory;
mod input;
mod snapshot;
mod state_machine;

pub use factory::{store_config, DefaultRaftFactory, RaftFactory};
pub use input::{
    RaftCallback, RaftError, RaftHandler, RaftInput, RaftResponder, RaftResult, SubmitCallback,
};
pub use snapshot::{BytesSnapshot, Snapshot, SnapshotChunk, SnapshotInfo};
pub use state_machine::{Exec, ExecEntry, SmError, SmFuture, StateMachine};
