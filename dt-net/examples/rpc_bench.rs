//! RPC benchmark like the reference's: pings with a body, one client, many in flight.
//!
//! ```text
//! cargo run --release -p dt-net --example rpc_bench -- --addr 127.0.0.1:9000 --seconds 10 \
//!     --body-size 128 --max-pending 1000 [--sync --threads 4]
//! ```
//!
//! Prints one line per second and a final `RESULT ops_per_s=.. p50_us=.. p99_us=..
//! p999_us=.. max_us=..` (hdrhistogram, microseconds, measured after the warm-up),
//! preceded by the client process's heap allocations per request (counting allocator).
//!
//! If the client cannot start or connect within 5 s it prints `rpc_bench: <cause>` on
//! stderr and exits with status 1; a bad flag exits with status 2 and clap's message.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use dt_net::{Commands, NetError, NioClient, NioClientConfig, ReadPacket, RpcHandler, WritePacket};
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(
    name = "rpc_bench",
    about = "Ping benchmark of dt-net's client against a server (rpc_server or the reference's)"
)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: std::net::SocketAddr,
    /// Measured seconds (1 to 86400).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86400))]
    seconds: u64,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=3600))]
    warmup: u64,
    /// Ping body size in bytes (at most 4 MiB, the server's default body limit).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(0..=4 << 20))]
    body_size: u64,
    /// Requests in flight (async mode).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_pending: u64,
    /// Blocking calls from `--threads` threads instead of async.
    #[arg(long)]
    sync: bool,
    /// Threads in sync mode.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: u64,
    /// Async mode with one boxed callback per request instead of the shared handler.
    #[arg(long)]
    boxed: bool,
    /// Per-request timeout in ms.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

struct Handler {
    stats: &'static Stats,
    window: &'static Window,
    base: Instant,
}

impl RpcHandler for Handler {
    fn on_result(&self, t0: u64, r: Result<ReadPacket, NetError>) {
        let us = (self.base.elapsed().as_nanos() as u64).saturating_sub(t0) / 1000;
        self.stats.record(us, r.is_ok());
        let w = self.window;
        if w.inflight.fetch_sub(1, Ordering::AcqRel) - 1 == w.low {
            let _g = w.lock.lock().unwrap();
            w.cond.notify_one();
        }
    }
}

struct Window {
    inflight: AtomicU64,
    lock: Mutex<()>,
    cond: Condvar,
    low: u64,
}

struct Stats {
    hist: Mutex<(Histogram<u64>, Histogram<u64>)>,
    ops: AtomicU64,
    errors: AtomicU64,
    measuring: AtomicBool,
}

impl Stats {
    fn record(&self, us: u64, ok: bool) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        if ok {
            self.ops.fetch_add(1, Ordering::Relaxed);
            let mut h = self.hist.lock().unwrap();
            if !self.measuring.load(Ordering::Relaxed) {
                return;
            }
            let v = us.max(1);
            let _ = h.0.record(v);
            let _ = h.1.record(v);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() -> ExitCode {
    let _ = env_logger::try_init();
    let a = Args::parse();
    let mut client = NioClient::new(NioClientConfig {
        peers: vec![a.addr],
        max_out_requests: (a.max_pending.max(a.threads) as i64).max(2000),
        ..Default::default()
    });
    if let Err(e) = client.start() {
        eprintln!("rpc_bench: cannot start the client: {e}");
        return ExitCode::FAILURE;
    }
    if !client.wait_connected(Duration::from_secs(5)) {
        eprintln!(
            "rpc_bench: cannot connect to {} within 5 s (is a server listening there?)",
            a.addr
        );
        client.stop(Duration::from_secs(1));
        return ExitCode::FAILURE;
    }
    let client = Arc::new(client);
    let body: Bytes = (0..a.body_size as usize)
        .map(|i| (i * 31 + 7) as u8)
        .collect::<Vec<_>>()
        .into();
    let stats: &'static Stats = Box::leak(Box::new(Stats {
        hist: Mutex::new((
            Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
            Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        )),
        ops: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let timeout = Duration::from_millis(a.timeout_ms);
    let mut drivers = Vec::new();
    if a.sync {
        for _ in 0..a.threads.max(1) {
            let (c, s, st, b) = (client.clone(), stats, stop.clone(), body.clone());
            drivers.push(std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let r = c.send_request_sync(
                        None,
                        WritePacket::request_bytes(Commands::CMD_PING, b.clone()),
                        timeout,
                    );
                    s.record(t0.elapsed().as_micros() as u64, r.is_ok());
                }
            }));
        }
    } else {
        let (c, s, st, b) = (client.clone(), stats, stop.clone(), body.clone());
        let max = a.max_pending as usize;
        let boxed = a.boxed;
        // In-flight window: the driver refills up to `max`, then sleeps until half of the
        // window came back (one wake-up per max/2 responses instead of one per response).
        let window: &'static Window = Box::leak(Box::new(Window {
            inflight: AtomicU64::new(0),
            lock: Mutex::new(()),
            cond: Condvar::new(),
            low: (max / 2) as u64,
        }));
        // One handler for all requests; the token is the send time (no allocation and
        // no reference counting per request).
        let handler: &'static Handler = Box::leak(Box::new(Handler {
            stats: s,
            window,
            base: Instant::now(),
        }));
        drivers.push(std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                while window.inflight.load(Ordering::Acquire) < max as u64 {
                    window.inflight.fetch_add(1, Ordering::AcqRel);
                    let t0 = handler.base.elapsed().as_nanos() as u64;
                    let req = WritePacket::request_bytes(Commands::CMD_PING, b.clone());
                    if boxed {
                        c.send_request_cb(None, req, timeout, move |r| handler.on_result(t0, r));
                    } else {
                        c.send_request_static(None, req, timeout, handler, t0);
                    }
                }
                let g = window.lock.lock().unwrap();
                if window.inflight.load(Ordering::Acquire) > window.low {
                    let _ = window.cond.wait_timeout(g, Duration::from_millis(10));
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(a.warmup));
    stats.measuring.store(true, Ordering::Relaxed);
    let allocs0 = counting_alloc::allocations();
    let start = Instant::now();
    let mut last_ops = 0;
    for sec in 1..=a.seconds {
        let target = start + Duration::from_secs(sec);
        std::thread::sleep(target.saturating_duration_since(Instant::now()));
        let ops = stats.ops.load(Ordering::Relaxed);
        let mut h = stats.hist.lock().unwrap();
        println!(
            "sec={sec} ops_per_s={} p50_us={} p99_us={} p999_us={} max_us={} errors={}",
            ops - last_ops,
            h.1.value_at_quantile(0.5),
            h.1.value_at_quantile(0.99),
            h.1.value_at_quantile(0.999),
            h.1.max(),
            stats.errors.load(Ordering::Relaxed)
        );
        h.1.reset();
        last_ops = ops;
    }
    stats.measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let allocs = counting_alloc::allocations() - allocs0;
    stop.store(true, Ordering::Relaxed);
    for d in drivers {
        let _ = d.join();
    }
    let ops = stats.ops.load(Ordering::Relaxed);
    println!(
        "CLIENT allocations={allocs} allocs_per_request={:.4}",
        allocs as f64 / ops.max(1) as f64
    );
    {
        // Not held across client.stop(): late callbacks may still record.
        let h = stats.hist.lock().unwrap();
        println!(
            "RESULT ops_per_s={:.0} p50_us={} p99_us={} p999_us={} max_us={}",
            ops as f64 / elapsed,
            h.0.value_at_quantile(0.5),
            h.0.value_at_quantile(0.99),
            h.0.value_at_quantile(0.999),
            h.0.max()
        );
    }
    client.stop(Duration::from_secs(2));
    ExitCode::SUCCESS
}
