//! A standalone DtKV server: one node (id 1) running group 0, listening on the
//! reference's demo ports (replicate 4001 for servers and admin, service 5001 for
//! clients), data in `target/dt-examples/standalone` so it survives a restart. Runs
//! until you press Enter, Ctrl-C or send SIGTERM: each is a clean stop (the group
//! saves a snapshot on close, exit status 0), as the `dt-server` binary does; a second
//! Ctrl-C exits at once (status 130). Talk to it with the `standalone_client` example,
//! or any other client example given `--servers`. The reference's
//! `StandaloneDemoServer`.
//!
//! ```text
//! cargo run --example standalone_server -- [--replicate-port 4001] [--service-port 5001]
//!     [--dir target/dt-examples/standalone] [--secs N]
//! cargo run --example standalone_client            # in a second terminal
//! ```
//!
//! A port in use is printed as `standalone_server: <cause>` with exit status 1.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_examples::common::{group, main_with, node_config, server_list, DemoResult, READY_TIMEOUT};
use dt_server::kv_server::{DtKvServer, DtKvServerConfig};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "standalone_server",
    about = "A one-node DtKV server that runs until stopped"
)]
pub struct Args {
    /// Port for servers and admin commands.
    #[arg(long, default_value_t = 4001, value_parser = clap::value_parser!(u16).range(1..))]
    pub replicate_port: u16,
    /// Port for clients.
    #[arg(long, default_value_t = 5001, value_parser = clap::value_parser!(u16).range(1..))]
    pub service_port: u16,
    /// Data directory (kept between runs).
    #[arg(long, default_value = "target/dt-examples/standalone")]
    pub dir: PathBuf,
    /// Stop by itself after this many seconds (0: run until Enter or Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub secs: u64,
}

fn main() -> ExitCode {
    main_with("standalone_server", run_until_stopped)
}

/// Serves until Enter on the terminal, Ctrl-C (SIGINT) or SIGTERM, then stops
/// cleanly; a second Ctrl-C while stopping exits the process at once with status 130.
pub fn run_until_stopped(args: &Args) -> DemoResult {
    let stop = Arc::new(AtomicBool::new(false));
    // Enter on the terminal asks for a clean stop (a closed stdin does not).
    let s = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        if std::io::stdin()
            .lock()
            .read_line(&mut line)
            .is_ok_and(|n| n > 0)
        {
            s.store(true, Ordering::Release);
        }
    });
    // Ctrl-C and SIGTERM too: with the handler installed they no longer kill the
    // process, so the group can save its snapshot and close its files.
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    let signals_handle = signals.handle();
    let s = stop.clone();
    let waiter = std::thread::spawn(move || {
        for sig in signals.forever() {
            if !s.swap(true, Ordering::AcqRel) {
                let name = if sig == SIGINT { "Ctrl-C" } else { "SIGTERM" };
                println!("{name} received: stopping (a second Ctrl-C exits at once)");
            } else if sig == SIGINT {
                eprintln!("standalone_server: second Ctrl-C: exiting without a clean stop");
                std::process::exit(130);
            }
        }
    });
    let r = run_until(args, &|| stop.load(Ordering::Acquire));
    signals_handle.close();
    let _ = waiter.join();
    r
}

/// Starts the server, prints where it listens, and serves until `stop()` is true or
/// `--secs` pass; then stops it.
pub fn run_until(args: &Args, stop: &dyn Fn() -> bool) -> DemoResult {
    let t = Instant::now();
    let servers = server_list(&BTreeMap::from([(1, args.replicate_port)]));
    let cfg = DtKvServerConfig::new(
        node_config(&servers, 1, args.replicate_port, args.service_port),
        vec![group(0, &[1])],
        args.dir.clone(),
    );
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    let server = DtKvServer::new(cfg)?;
    server.start().map_err(|e| {
        format!(
            "cannot start on replicate port {} / service port {}: {e}",
            args.replicate_port, args.service_port
        )
    })?;
    server.wait_group_ready(READY_TIMEOUT)?;
    println!(
        "DtKV server ready in {} ms: node 1, group 0, replicate 127.0.0.1:{}, service 127.0.0.1:{}, data in {}",
        t.elapsed().as_millis(),
        args.replicate_port,
        args.service_port,
        args.dir.display()
    );
    if args.secs == 0 {
        println!("press Enter to stop (or Ctrl-C)");
    }
    let end = (args.secs > 0).then(|| Instant::now() + Duration::from_secs(args.secs));
    while !stop() && end.is_none_or(|e| Instant::now() < e) {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("stopping");
    server.stop(Duration::from_secs(5));
    println!("stopped");
    Ok(())
}
