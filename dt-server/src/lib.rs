//! # dt-server: the DtKV state machine (library part)
//!
//! This crate owns the server side of DtKV. Its first module, `dtkv`, is being built:
//! the key tree, versions, MVCC and the apply-time semantics of every command, as a
//! plain, IO-free data model.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
