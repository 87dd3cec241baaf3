//! Watches: one client watches a key and a directory and prints every event its
//! listener gets while a second client writes. A watch first reports the current
//! state, then each change (by raft index, never backwards); a directory's watch fires
//! when a key under it changes; after `remove_watch` nothing more arrives. Runs
//! against a one-node cluster it starts in this process, or a running one given with
//! `--servers`. The reference's `WatchDemo` / `WatchDemoClient`.
//!
//! ```text
//! cargo run --example watch -- [--servers "1,127.0.0.1:5001"] [--group 0]
//! ```
//!
//! Ends by itself; a missing event is printed as `watch: <cause>` with exit status 1.

use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use clap::Parser;
use dt_client::kv::{WatchEvent, WatchState};
use dt_examples::common::{ensure, main_with, DemoResult, TargetArgs};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "watch",
    about = "Watch a key and a directory while another client writes"
)]
pub struct Args {
    #[command(flatten)]
    pub target: TargetArgs,
}

const KEY: &str = "watchdemo.key1";
const DIR: &str = "watchdemo";

fn main() -> ExitCode {
    main_with("watch", run)
}

fn describe(e: &WatchEvent) -> String {
    let key = String::from_utf8_lossy(&e.key);
    match e.watch_state() {
        Some(WatchState::ValueExists) => format!(
            "{key} = {:?} (raft index {})",
            String::from_utf8_lossy(&e.value),
            e.raft_index
        ),
        Some(WatchState::DirectoryExists) => {
            format!(
                "{key} is a directory, changed at raft index {}",
                e.raft_index
            )
        }
        Some(WatchState::NotExists) => {
            format!("{key} does not exist (raft index {})", e.raft_index)
        }
        None => format!("{key}: unknown state {}", e.state),
    }
}

/// Waits for an event matching `want`; the events before it are consumed.
fn wait_for(
    rx: &Receiver<WatchEvent>,
    what: &str,
    want: impl Fn(&WatchEvent) -> bool,
) -> DemoResult {
    let end = Instant::now() + Duration::from_secs(10);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(e) if want(&e) => return Ok(()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Err(format!("no watch event: {what}").into())
}

/// Sets up the watches, writes from a second client, checks the events.
pub fn run(args: &Args) -> DemoResult {
    let target = args.target.open()?;
    let g = target.group;
    let watcher = target.client()?;
    let writer = target.client()?;

    writer.mkdir(g, DIR)?;
    writer.put(g, KEY, "initial")?;

    // The listener runs on a thread of the watch manager, one event at a time.
    let (tx, rx) = mpsc::channel();
    watcher.watch_manager().set_listener(
        move |e| {
            println!("  event: {}", describe(&e));
            let _ = tx.send(e);
        },
        None,
    );

    println!("watching {KEY}");
    watcher.watch_manager().add_watch(g, &[KEY])?;
    wait_for(&rx, "the key's current state", |e| {
        &e.value[..] == b"initial"
    })?;
    println!("the writer puts {KEY} = v1, then v2");
    writer.put(g, KEY, "v1")?;
    let last = writer.put(g, KEY, "v2")?;
    // Quick successive changes may be coalesced: the last state always arrives.
    wait_for(&rx, "the key's last value", |e| {
        e.raft_index == last && &e.value[..] == b"v2"
    })?;

    println!("watching the directory {DIR}");
    watcher.watch_manager().add_watch(g, &[DIR])?;
    wait_for(&rx, "the directory's state", |e| {
        &e.key[..] == DIR.as_bytes()
    })?;
    println!("the writer puts {DIR}.key2, then removes it");
    writer.put(g, format!("{DIR}.key2"), "k2")?;
    let last = writer.remove(g, format!("{DIR}.key2"))?;
    wait_for(&rx, "the directory's change", |e| {
        &e.key[..] == DIR.as_bytes() && e.raft_index >= last
    })?;

    println!("removing both watches; the writer puts {KEY} = after");
    watcher.watch_manager().remove_watch(g, &[KEY, DIR])?;
    std::thread::sleep(Duration::from_millis(300));
    while rx.try_recv().is_ok() {}
    writer.put(g, KEY, "after")?;
    std::thread::sleep(Duration::from_millis(500));
    let late = rx.try_iter().count();
    println!("events after remove_watch: {late}");
    ensure(late == 0, "no event after remove_watch")?;

    writer.remove(g, KEY)?;
    writer.remove(g, DIR)?;
    watcher.stop(Duration::from_secs(1));
    writer.stop(Duration::from_secs(1));
    Ok(())
}
