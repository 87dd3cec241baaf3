//! A server that answers ping until killed: the far end for `rpc_bench`, `rpc_ping` or the
//! reference's benchmark client.
//!
//! ```text
//! cargo run --release -p dt-net --example rpc_server -- [--bind 127.0.0.1] [--port 9000]
//!     [--io-threads 1] [--count-allocs]
//! ```
//!
//! Once listening it prints one line per listening address, `LISTENING <ip>:<port>` (with
//! `--port 0` the system picks the port; a script reads it from that line), then serves
//! until killed. If it cannot listen (the port is taken, the address is not local) it
//! prints `rpc_server: <cause>` on stderr and exits with status 1; a bad flag exits with
//! status 2 and clap's message.
//!
//! With `--count-allocs` a counting global allocator reports, once per second, the heap
//! allocations of the whole process divided by the packets it read (the server path's
//! allocations per request in steady state).

use std::ffi::OsString;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dt_common::{PerfCallback, PerfType};
use dt_net::{NioServer, NioServerConfig};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Command-line flags.
#[derive(Parser)]
#[command(
    name = "rpc_server",
    about = "A dt-net server that answers ping until killed"
)]
pub struct Args {
    /// Address to listen on (0.0.0.0 for all interfaces).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port to listen on (0 = one the system picks, printed on the LISTENING line).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// IO worker threads (1 to 64).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub io_threads: u16,
    /// Report allocations per request every second.
    #[arg(long)]
    pub count_allocs: bool,
}

/// Counts the packets the server read (through the perf hook).
#[derive(Default)]
pub struct PacketCount(AtomicU64);
impl PerfCallback for PacketCount {
    fn accept(&self, t: PerfType) -> bool {
        t == PerfType::RpcRead
    }
    fn fire(&self, _t: PerfType, count: u64, _bytes: u64) {
        self.0.fetch_add(count, Ordering::Relaxed);
    }
}

fn main() -> ExitCode {
    let _ = env_logger::try_init();
    main_with(std::env::args_os())
}

/// The whole program for the given command line (the first item is the program name).
/// Exits the process with status 2 on a bad flag; returns on failure to listen.
pub fn main_with(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = Args::parse_from(argv);
    let counter = Arc::new(PacketCount::default());
    let server = match start(&args, args.count_allocs.then(|| counter.clone())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rpc_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    for a in server.local_addrs() {
        println!("LISTENING {a}");
    }
    serve(&args, &counter)
}

/// Starts the server the flags describe, counting packets into `counter` if given.
pub fn start(args: &Args, counter: Option<Arc<PacketCount>>) -> Result<NioServer, String> {
    let mut cfg = NioServerConfig {
        ports: vec![args.port],
        bind_host: args.bind,
        io_threads: args.io_threads.into(),
        name: "rpc_server".into(),
        ..Default::default()
    };
    if let Some(c) = counter {
        cfg.perf = c;
    }
    let mut server = NioServer::new(cfg);
    server
        .start()
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.bind, args.port))?;
    Ok(server)
}

/// Serves until the process is killed.
fn serve(args: &Args, counter: &PacketCount) -> ExitCode {
    let (mut last_a, mut last_p) = (counting_alloc::allocations(), 0u64);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if args.count_allocs {
            let a = counting_alloc::allocations();
            let p = counter.0.load(Ordering::Relaxed);
            let (da, dp) = (a - last_a, p - last_p);
            if dp > 0 {
                println!(
                    "requests={dp} allocations={da} allocs_per_request={:.4}",
                    da as f64 / dp as f64
                );
            }
            (last_a, last_p) = (a, p);
        }
    }
}
