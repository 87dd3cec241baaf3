//! Distributed locks: two clients contend for one lock. A takes it; B's try-lock
//! without waiting fails; B then waits and gets the lock the moment A unlocks (the
//! server pushes it), with a larger fencing token. Finally B holds the lock with a
//! short lease and never unlocks, like a crashed holder: A waits and gets it when the
//! lease runs out. Runs against a one-node cluster it starts in this process, or a
//! running one given with `--servers`. The reference's `LockDemoClient` and
//! `DistributedLockDemo`.
//!
//! ```text
//! cargo run --example lock -- [--lease-ms 1000] [--servers "1,127.0.0.1:5001"] [--group 0]
//! ```
//!
//! Ends by itself; an unexpected outcome is printed as `lock: <cause>` with exit
//! status 1.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_examples::common::{ensure, main_with, wait_until, DemoResult, TargetArgs};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(name = "lock", about = "Two clients contend for a distributed lock")]
pub struct Args {
    /// The lease of the "crashed" holder at the end, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(100..=60_000))]
    pub lease_ms: i64,
    #[command(flatten)]
    pub target: TargetArgs,
}

const KEY: &str = "lockdemo";

fn main() -> ExitCode {
    main_with("lock", run)
}

/// Runs the contention scenario.
pub fn run(args: &Args) -> DemoResult {
    let target = args.target.open()?;
    let g = target.group;
    let (client_a, client_b) = (target.client()?, target.client()?);
    // One lock object per client and key.
    let a = client_a.create_lock(g, KEY)?;
    let b = client_b.create_lock(g, KEY)?;

    // try_lock(lease, wait): both in milliseconds.
    ensure(a.try_lock(30_000, 0)?, "A takes the free lock")?;
    let token_a = a.fencing_token();
    println!(
        "A: locked, fencing token {token_a:?}, lease left {} ms",
        a.lease_rest_millis()
    );
    ensure(!b.try_lock(30_000, 0)?, "B cannot take a held lock")?;
    println!("B: try_lock without waiting -> false (A holds it)");

    let t = Instant::now();
    let waiting = b.try_lock_async(30_000, 10_000);
    std::thread::sleep(Duration::from_millis(300));
    ensure(!waiting.is_done(), "B waits")?;
    println!("B: waiting up to 10 s; A renews its lease, works, then unlocks");
    a.update_lease(30_000)?;
    a.unlock()?;
    ensure(waiting.wait()?, "B gets the lock after A's unlock")?;
    println!(
        "B: locked {} ms after it started waiting",
        t.elapsed().as_millis()
    );
    ensure(
        b.is_held_by_current_client() && !a.is_held_by_current_client(),
        "only B holds it",
    )?;
    // The token (the raft index of B's lock entry) grows with every new holder: a
    // protected resource can refuse a stale holder's writes.
    // (B learned of the hand-over by a push; its token arrives with the lock's state.)
    wait_until(Duration::from_secs(5), || b.fencing_token().is_some());
    let token_b = b.fencing_token();
    println!("B: fencing token {token_b:?} (A's was {token_a:?})");
    ensure(
        matches!((token_a, token_b), (Some(x), Some(y)) if y > x),
        "the fencing token grows",
    )?;
    b.unlock()?;

    // A holder that stops renewing loses the lock when its lease ends.
    ensure(b.try_lock(args.lease_ms, 0)?, "B takes the lock again")?;
    println!(
        "B: locked with a {} ms lease, and never unlocks",
        args.lease_ms
    );
    let t = Instant::now();
    ensure(
        a.try_lock(30_000, args.lease_ms * 5)?,
        "A gets it after B's lease",
    )?;
    println!(
        "A: locked after {} ms, when B's lease ran out; B holds it: {}",
        t.elapsed().as_millis(),
        b.is_held_by_current_client()
    );
    a.unlock()?;
    drop((a, b));
    client_a.stop(Duration::from_secs(1));
    client_b.stop(Duration::from_secs(1));
    Ok(())
}
