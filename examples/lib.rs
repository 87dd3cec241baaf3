//! dt's example programs: each file beside this one is a runnable program that shows one
//! way to use dt's crates, with a header comment saying what it shows and how to run it:
//!
//! ```text
//! cargo run --example ping              # an RPC server and a client in one process
//! cargo run --example embedded_cluster  # three DtKV nodes and a client in one process
//! cargo run --example kv_ops            # every DtKV operation
//! ```
//!
//! The list, with what each shows, is in `docs/examples.md`. This library holds what
//! the programs share ([`common`]: nodes on loopback, flags, error reporting). It also
//! compiles and runs the code examples of the guides in `docs/` as doctests, so that
//! `cargo test --workspace` catches a guide that no longer matches the API.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod common;

/// Includes a guide from `docs/` so its Rust code blocks run as doctests.
macro_rules! guide {
    ($name:ident, $file:literal) => {
        #[cfg(doctest)]
        #[doc = include_str!(concat!("../docs/", $file))]
        pub struct $name;
    };
}

guide!(DtCommonGuide, "dt-common.md");
guide!(DtCodecGuide, "dt-codec.md");
guide!(DtNetGuide, "dt-net.md");
guide!(DtFiberGuide, "dt-fiber.md");
guide!(DtRaftGuide, "dt-raft.md");
guide!(DtClientGuide, "dt-client.md");
guide!(DtServerGuide, "dt-server.md");
guide!(UserGuide, "user-guide.md");
guide!(OperationsGuide, "operations.md");
guide!(AdminCliGuide, "admin-cli.md");
guide!(BenchCliGuide, "bench-cli.md");
