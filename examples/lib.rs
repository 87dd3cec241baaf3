//! dt's example programs: each file beside this one is a runnable program that shows one
//! way to use dt's crates, with a header comment saying what it shows and how to run it:
//!
//! ```text
//! cargo run --example ping          # an RPC server and a client in one process
//! ```
//!
//! This library holds nothing the programs need; it exists so the folder is one package
//! of the workspace.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
