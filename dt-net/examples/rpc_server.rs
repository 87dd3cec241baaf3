//! A server that answers ping until killed.
//!
//! ```text
//! cargo run --release -p dt-net --example rpc_server -- --port 9000 [--io-threads 1] [--count-allocs]
//! ```
//!
//! With `--count-allocs` a counting global allocator reports, once per second, the heap
//! allocations of the whole process divided by the packets it read (the server path's
//! allocations per request in steady state).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dt_common::{PerfCallback, PerfType};
use dt_net::{NioServer, NioServerConfig};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Parser)]
struct Args {
    /// Port to listen on (0 = ephemeral, printed).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// IO worker threads.
    #[arg(long, default_value_t = 1)]
    io_threads: usize,
    /// Report allocations per request every second.
    #[arg(long)]
    count_allocs: bool,
}

#[derive(Default)]
struct PacketCount(AtomicU64);
impl PerfCallback for PacketCount {
    fn accept(&self, t: PerfType) -> bool {
        t == PerfType::RpcRead
    }
    fn fire(&self, _t: PerfType, count: u64, _bytes: u64) {
        self.0.fetch_add(count, Ordering::Relaxed);
    }
}

fn main() {
    let _ = env_logger::try_init();
    let args = Args::parse();
    let counter = Arc::new(PacketCount::default());
    let mut cfg = NioServerConfig {
        ports: vec![args.port],
        io_threads: args.io_threads,
        name: "rpc_server".into(),
        ..Default::default()
    };
    if args.count_allocs {
        cfg.perf = counter.clone();
    }
    let mut server = NioServer::new(cfg);
    server.start().expect("start server");
    println!("rpc_server listening on {:?}", server.local_addrs());
    let (mut last_a, mut last_p) = (ALLOCS.load(Ordering::Relaxed), 0u64);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if args.count_allocs {
            let a = ALLOCS.load(Ordering::Relaxed);
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
