//! Fiber runtime benchmarks, mirroring the reference's `bench/fiber` programs.
//!
//! Run: `cargo run --release -p dt-fiber --example fiber_bench [-- <case>...]`
//! Prints one line per case: `RESULT <case> <ops/s>`, operations per second, higher is
//! better (one operation = one fiber run, one channel item, one signal, one yield: see
//! each case). A case name it does not know is refused with the list of cases (status 2);
//! a dispatcher that cannot start is reported as `fiber_bench: <cause>` (status 1).
//!
//! Cases:
//! * `create_fiber`: another thread fires fibers into a group (each just counts);
//!   mirrors `CreateFiberTest`.
//! * `create_fiber_in_group`: a fiber spawns fibers in its own group.
//! * `spawn_and_take`: a producer offers to a channel and spawns a consumer fiber that
//!   takes it, then yields; mirrors `FiberTest`.
//! * `channel_in_group`: 10 producers offer and yield, 10 consumers take; mirrors
//!   `FiberChannelTest`.
//! * `channel_ping_pong`: two fibers bounce a token through two channels.
//! * `channel_cross_thread`: one thread offers through a `ChannelSender`, one fiber
//!   takes; mirrors `ChannelCrossThreadTest`.
//! * `condition_signal_wait`: 10 pairs of fibers alternate through two conditions.
//! * `yield_loop`: one fiber yields in a loop: the cost of one dispatcher round.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_fiber::{yield_now, Dispatcher, DispatcherConfig, FiberCondition, GroupHandle};

const WARMUP: Duration = Duration::from_millis(300);
const TEST: Duration = Duration::from_millis(1000);

/// A counter written by the dispatcher thread only, read by the bench thread.
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn inc(&self) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Env {
    d: Dispatcher,
    g: GroupHandle,
    /// Leaked so fibers reference it without reference counting (as the reference's
    /// frames reference their benchmark object).
    count: &'static Counter,
    running: Arc<AtomicBool>,
}

fn env(name: &str) -> Result<Env, String> {
    let d = Dispatcher::start(DispatcherConfig::new(format!("bench-{name}")))
        .map_err(|e| format!("cannot start a dispatcher: {e}"))?;
    let g = d
        .start_group(name)
        .map_err(|e| format!("cannot start a fiber group: {e}"))?;
    Ok(Env {
        d,
        g,
        count: Box::leak(Box::default()),
        running: Arc::new(AtomicBool::new(true)),
    })
}

/// Warms up, then measures the counter over the test window.
fn measure(e: Env) -> f64 {
    std::thread::sleep(WARMUP);
    let (c0, t0) = (e.count.get(), Instant::now());
    std::thread::sleep(TEST);
    let (c1, t1) = (e.count.get(), Instant::now());
    e.running.store(false, Ordering::Relaxed);
    let _ = e.g.request_shutdown();
    let r = e.d.stop(Duration::from_secs(3));
    if !r.stopped {
        eprintln!("warning: dispatcher did not stop: {r:?}");
    }
    if std::env::var_os("FIBER_BENCH_COUNT").is_some() {
        // Total operations since the start, for instruction counts per operation.
        eprintln!("COUNT {}", e.count.get());
    }
    (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
}

fn create_fiber() -> Result<f64, String> {
    // Like the reference: fire a fixed number of fibers from this thread and time until
    // the last one ran.
    const LOOP: u64 = 2_000_000;
    let e = env("create_fiber")?;
    let start = Instant::now();
    for _ in 0..LOOP {
        let c = e.count;
        e.g.fire_fiber("worker", move || async move { c.inc() })
            .map_err(|e| e.to_string())?;
    }
    while e.count.get() < LOOP {
        std::thread::yield_now();
    }
    let secs = start.elapsed().as_secs_f64();
    e.d.stop(Duration::from_secs(3));
    Ok(LOOP as f64 / secs)
}

fn create_fiber_in_group() -> Result<f64, String> {
    let e = env("create_fiber_in_group")?;
    let (c, r) = (e.count, e.running.clone());
    e.g.execute(move |g| {
        let g2 = g.clone();
        g.spawn("master", async move {
            while r.load(Ordering::Relaxed) {
                for _ in 0..1000 {
                    let _ = g2.spawn("worker", async move { c.inc() });
                }
                yield_now().await;
            }
        })
        .expect("spawn");
    })
    .map_err(|e| e.to_string())?;
    Ok(measure(e))
}

fn spawn_and_take() -> Result<f64, String> {
    let e = env("spawn_and_take")?;
    let (c, r) = (e.count, e.running.clone());
    e.g.execute(move |g| {
        let ch = g.new_channel::<u64>();
        let g2 = g.clone();
        g.spawn("producer", async move {
            while r.load(Ordering::Relaxed) {
                ch.offer(1);
                let ch = ch.clone();
                let _ = g2.spawn("consumer", async move {
                    if ch.take().await.is_ok() {
                        c.inc();
                    }
                });
                yield_now().await;
            }
        })
        .expect("spawn");
    })
    .map_err(|e| e.to_string())?;
    Ok(measure(e))
}

fn channel_in_group() -> Result<f64, String> {
    let e = env("channel_in_group")?;
    let (c, r) = (e.count, e.running.clone());
    e.g.execute(move |g| {
        let ch = g.new_channel::<u64>();
        for _ in 0..10 {
            let (ch1, r1) = (ch.clone(), r.clone());
            g.spawn("producer", async move {
                while r1.load(Ordering::Relaxed) {
                    ch1.offer(1);
                    yield_now().await;
                }
            })
            .expect("spawn");
            let (ch2, c2) = (ch.clone(), c);
            g.spawn_with(
                dt_fiber::FiberOptions::new("consumer").daemon(),
                async move {
                    while ch2.take().await.is_ok() {
                        c2.inc();
                    }
                },
            )
            .expect("spawn");
        }
    })
    .map_err(|e| e.to_string())?;
    Ok(measure(e))
}

fn channel_ping_pong() -> Result<f64, String> {
    let e = env("channel_ping_pong")?;
    let (c, r) = (e.count, e.running.clone());
    e.g.execute(move |g| {
        let (a, b) = (g.new_channel::<u64>(), g.new_channel::<u64>());
        let (a2, b2, r2) = (a.clone(), b.clone(), r.clone());
        g.spawn("ping", async move {
            a2.offer(0);
            while r2.load(Ordering::Relaxed) {
                match b2.take().await {
                    Ok(v) => {
                        c.inc();
                        a2.offer(v + 1);
                    }
                    Err(_) => return,
                }
            }
        })
        .expect("spawn");
        g.spawn_with(dt_fiber::FiberOptions::new("pong").daemon(), async move {
            while let Ok(v) = a.take().await {
                b.offer(v + 1);
            }
        })
        .expect("spawn");
    })
    .map_err(|e| e.to_string())?;
    Ok(measure(e))
}

fn channel_cross_thread() -> Result<f64, String> {
    let e = env("channel_cross_thread")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let c = e.count;
    e.g.execute(move |g| {
        let ch = g.new_channel::<u64>();
        tx.send(ch.sender()).expect("send");
        g.spawn_with(
            dt_fiber::FiberOptions::new("consumer").daemon(),
            async move {
                while ch.take().await.is_ok() {
                    c.inc();
                }
            },
        )
        .expect("spawn");
    })
    .map_err(|e| e.to_string())?;
    let sender = rx
        .recv()
        .map_err(|_| "the consumer fiber did not start".to_string())?;
    let (r, c) = (e.running.clone(), e.count);
    let producer = std::thread::spawn(move || {
        let mut sent = 0u64;
        while r.load(Ordering::Relaxed) {
            for _ in 0..256 {
                if sender.offer(sent).is_err() {
                    return;
                }
                sent += 1;
            }
            // Bound the backlog so memory stays flat if the consumer falls behind.
            while sent - c.get() > 1_000_000 && r.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
        }
    });
    let ops = measure(e);
    let _ = producer.join();
    Ok(ops)
}

fn condition_signal_wait() -> Result<f64, String> {
    let e = env("condition_signal_wait")?;
    let (c, r) = (e.count, e.running.clone());
    e.g.execute(move |g| {
        for _ in 0..10 {
            let (ping, pong) = (FiberCondition::new("ping"), FiberCondition::new("pong"));
            let (p1, q1, c1, r1) = (ping.clone(), pong.clone(), c, r.clone());
            g.spawn("a", async move {
                while r1.load(Ordering::Relaxed) {
                    q1.signal();
                    if p1.wait().await.is_err() {
                        return;
                    }
                    c1.inc();
                }
                q1.signal();
            })
            .expect("spawn");
            g.spawn_with(dt_fiber::FiberOptions::new("b").daemon(), async move {
                loop {
                    ping.signal();
                    if pong.wait().await.is_err() {
                        return;
                    }
                }
            })
            .expect("spawn");
        }
    })
    .map_err(|e| e.to_string())?;
    Ok(measure(e))
}

fn yield_loop() -> Result<f64, String> {
    let e = env("yield_loop")?;
    let (c, r) = (e.count, e.running.clone());
    e.g.execute(move |g| {
        g.spawn("yielder", async move {
            while r.load(Ordering::Relaxed) {
                c.inc();
                yield_now().await;
            }
        })
        .expect("spawn");
    })
    .map_err(|e| e.to_string())?;
    Ok(measure(e))
}

type Case = (&'static str, fn() -> Result<f64, String>);

const CASES: [Case; 8] = [
    ("create_fiber", create_fiber),
    ("create_fiber_in_group", create_fiber_in_group),
    ("spawn_and_take", spawn_and_take),
    ("channel_in_group", channel_in_group),
    ("channel_ping_pong", channel_ping_pong),
    ("channel_cross_thread", channel_cross_thread),
    ("condition_signal_wait", condition_signal_wait),
    ("yield_loop", yield_loop),
];

#[derive(Parser)]
#[command(
    name = "fiber_bench",
    about = "Throughput of dt-fiber's dispatcher, fibers and primitives (RESULT <case> <ops/s>)"
)]
struct Args {
    /// Cases to run (default: all); they run in the order of the list of possible values.
    #[arg(value_parser = CASES.map(|c| c.0))]
    cases: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    for (name, f) in CASES {
        if args.cases.is_empty() || args.cases.iter().any(|w| w == name) {
            match f() {
                Ok(ops) => println!("RESULT {name} {ops:.0}"),
                Err(e) => {
                    eprintln!("fiber_bench: {name}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
