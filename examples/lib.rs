//! dt's example programs: each file beside this one is a runnable program that shows one
//! way to use dt's crates, with a header comment saying what it shows and how to run it:
//!
//! ```text
//! cargo run --example ping          # an RPC server and a client in one process
//! ```
//!
//! This library holds nothing the programs need; it exists so the folder is one package
//! of the workspace. It also compiles and runs the code examples of the guides in `docs/`
//! as doctests, so that `cargo test --workspace` catches a guide that no longer matches
//! the API.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
