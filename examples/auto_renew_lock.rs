//! Auto-renewing locks: two clients each create an `AutoRenewalLock` on the same key,
//! with a listener that prints when the lock is acquired or lost. The first keeps it
//! well past its lease (it renews every half lease by itself), the second waits; when
//! the first releases it (dropping the object), the second acquires it. Use it for
//! leader election among application instances. Runs against a one-node cluster it
//! starts in this process, or a running one given with `--servers`. The reference's
//! `AutoRenewalLockDemoClient1/2` and `AutoRenewalLockDemo`.
//!
//! ```text
//! cargo run --example auto_renew_lock -- [--lease-ms 1000] [--servers "1,127.0.0.1:5001"] [--group 0]
//! ```
//!
//! Ends by itself after about 4 leases; an unexpected outcome is printed as
//! `auto_renew_lock: <cause>` with exit status 1.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_examples::common::{ensure, main_with, DemoResult, TargetArgs};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(name = "auto_renew_lock", about = "Two auto-renewing locks on one key")]
pub struct Args {
    /// The lease of the locks, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(200..=60_000))]
    pub lease_ms: i64,
    #[command(flatten)]
    pub target: TargetArgs,
}

const KEY: &str = "autolockdemo";

fn main() -> ExitCode {
    main_with("auto_renew_lock", run)
}

/// Runs the two locks.
pub fn run(args: &Args) -> DemoResult {
    let target = args.target.open()?;
    let g = target.group;
    let (client_a, client_b) = (target.client()?, target.client()?);
    let lease = Duration::from_millis(args.lease_ms as u64);
    let t0 = Instant::now();

    // The listener gets true when the lock is acquired, false when it is lost; it runs
    // on a client thread, so it only prints and reports.
    let (tx, rx) = mpsc::channel::<(char, bool)>();
    let listener = |name: char| {
        let tx = tx.clone();
        move |held: bool| {
            let what = if held { "acquired" } else { "lost" };
            println!("{name}: lock {what} at {} ms", t0.elapsed().as_millis());
            let _ = tx.send((name, held));
        }
    };
    let a = client_a.create_auto_renewal_lock(g, KEY, args.lease_ms, listener('A'))?;
    ensure(
        rx.recv_timeout(Duration::from_secs(10)).ok() == Some(('A', true)),
        "A acquires the free lock",
    )?;
    let b = client_b.create_auto_renewal_lock(g, KEY, args.lease_ms, listener('B'))?;

    println!("both locks exist; waiting 3 leases");
    std::thread::sleep(lease * 3);
    ensure(
        a.is_held_by_current_client() && !b.is_held_by_current_client(),
        "A still holds the lock (renewed), B waits",
    )?;
    ensure(rx.try_recv().is_err(), "nothing was lost meanwhile")?;
    println!("A still holds it after 3 leases; B is waiting");

    println!("A releases its lock (drops it)");
    drop(a);
    // A's listener reports the release as a loss, then B's the acquisition.
    let mut b_acquired = false;
    while let Ok(event) = rx.recv_timeout(Duration::from_secs(10)) {
        if event == ('B', true) {
            b_acquired = true;
            break;
        }
    }
    ensure(b_acquired, "B acquires the lock")?;
    ensure(b.is_held_by_current_client(), "B holds it")?;
    drop(b);
    client_a.stop(Duration::from_secs(1));
    client_b.stop(Duration::from_secs(1));
    Ok(())
}
