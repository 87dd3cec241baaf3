//! Time to live: a temporary value expires by itself (the leader writes its expiry
//! through the Raft log, so every replica drops it at the same point); `update_ttl`
//! extends it; a temporary directory expires with everything under it. Runs against
//! a one-node cluster it starts in this process, or a running one given with
//! `--servers`. The reference's `TtlDemoClient`, `TempValueDemo`, `UpdateTtlDemo` and
//! `TempDirDemo`.
//!
//! ```text
//! cargo run --example ttl -- [--ttl-ms 1000] [--servers "1,127.0.0.1:5001"] [--group 0]
//! ```
//!
//! Ends by itself after about 3 TTLs; an unexpected state is printed as `ttl: <cause>`
//! with exit status 1.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_client::KvClient;
use dt_examples::common::{ensure, main_with, wait_until, DemoResult, TargetArgs};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(name = "ttl", about = "Temporary values and directories that expire")]
pub struct Args {
    /// The TTL of the temporary nodes, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(100..=60_000))]
    pub ttl_ms: i64,
    #[command(flatten)]
    pub target: TargetArgs,
}

fn main() -> ExitCode {
    main_with("ttl", run)
}

fn exists(kv: &KvClient, g: i32, key: &'static str) -> DemoResult<bool> {
    Ok(kv.get(g, key)?.is_some())
}

/// Creates the temporary nodes and watches them expire.
pub fn run(args: &Args) -> DemoResult {
    let target = args.target.open()?;
    let g = target.group;
    let kv = target.client()?;
    let ttl = args.ttl_ms;
    let ttl_d = Duration::from_millis(ttl as u64);

    // A temporary value, and a second one whose TTL is extended before it runs out.
    let t0 = Instant::now();
    kv.put_temp(g, "ttldemo1", "short", ttl)?;
    kv.put_temp(g, "ttldemo2", "extended", ttl)?;
    println!("put_temp ttldemo1 and ttldemo2 with TTL {ttl} ms");
    println!("get ttldemo1 -> exists: {}", exists(&kv, g, "ttldemo1")?);
    std::thread::sleep(ttl_d / 2);
    kv.update_ttl(g, "ttldemo2", ttl * 3)?;
    println!(
        "after {} ms: update_ttl ttldemo2 to {} ms",
        t0.elapsed().as_millis(),
        ttl * 3
    );

    // A temporary directory: its keys go with it.
    kv.make_temp_dir(g, "ttldir", ttl)?;
    kv.put(g, "ttldir.child", "v")?;
    println!("make_temp_dir ttldir with TTL {ttl} ms, put ttldir.child");

    // Allow one TtlManager retry (1 s) of a failed expire submission, as below.
    let gone = wait_until(ttl_d * 3 + Duration::from_secs(1), || {
        !exists(&kv, g, "ttldemo1").unwrap_or(true)
    });
    println!(
        "ttldemo1 expired after about {} ms",
        t0.elapsed().as_millis()
    );
    ensure(gone, "the temporary value expired")?;
    ensure(
        exists(&kv, g, "ttldemo2")?,
        "the extended value is still there",
    )?;
    println!("ttldemo2 is still there (its TTL was extended)");

    // An expiry whose submission failed (e.g. under load) is retried after 1 s
    // (the TtlManager's delay), so allow one retry on top of the TTL.
    let gone = wait_until(ttl_d * 3 + Duration::from_secs(1), || {
        !exists(&kv, g, "ttldir").unwrap_or(true) && !exists(&kv, g, "ttldir.child").unwrap_or(true)
    });
    ensure(gone, "the temporary directory expired with its child")?;
    println!(
        "ttldir and ttldir.child expired after about {} ms",
        t0.elapsed().as_millis()
    );

    let gone = wait_until(ttl_d * 4, || !exists(&kv, g, "ttldemo2").unwrap_or(true));
    ensure(gone, "the extended value expired in the end")?;
    println!(
        "ttldemo2 expired after about {} ms",
        t0.elapsed().as_millis()
    );
    kv.stop(Duration::from_secs(1));
    Ok(())
}
