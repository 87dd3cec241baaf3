//! Every DtKV operation of `KvClient`, each printed with its result: put, get,
//! mkdir, list, batch put / get / remove, compare-and-set (update, create if absent,
//! remove if equal), remove, and the three ways to call any operation (blocking, a
//! future, a callback). Runs against a one-node cluster it starts in this process, or
//! a running one given with `--servers`. The reference's `SimpleDemo`, `BatchDemo`
//! and `CasDemo`.
//!
//! ```text
//! cargo run --example kv_ops -- [--servers "1,127.0.0.1:5001"] [--group 0]
//! ```
//!
//! Ends by itself (it removes the keys it wrote); any unexpected answer is printed as
//! `kv_ops: <cause>` with exit status 1.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use dt_client::kv::{KvCode, KvError, KvNode};
use dt_examples::common::{ensure, main_with, DemoResult, TargetArgs};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(name = "kv_ops", about = "Every DtKV operation, one by one")]
pub struct Args {
    #[command(flatten)]
    pub target: TargetArgs,
}

fn main() -> ExitCode {
    main_with("kv_ops", run)
}

fn text(n: &Option<KvNode>) -> String {
    match n {
        Some(n) => format!("{:?}", String::from_utf8_lossy(&n.data)),
        None => "(absent)".into(),
    }
}

fn codes(codes: &[KvCode]) -> String {
    let names: Vec<&str> = codes.iter().map(|c| c.name()).collect();
    names.join(", ")
}

/// Runs each operation once and checks its answer.
pub fn run(args: &Args) -> DemoResult {
    let target = args.target.open()?;
    let g = target.group;
    let kv = target.client()?;

    // Keys are dot-separated paths; a directory holds keys.
    kv.remove(g, "demo.kv.a").ok();
    let index = kv.mkdir(g, "demo")?;
    kv.mkdir(g, "demo.kv")?;
    println!("mkdir demo, demo.kv (raft index {index}; an existing directory is fine)");

    let index = kv.put(g, "demo.kv.a", "1")?;
    println!("put demo.kv.a = 1 at raft index {index}");
    let a = kv.get(g, "demo.kv.a")?;
    println!("get demo.kv.a -> {}", text(&a));
    let node = a.ok_or("demo.kv.a missing")?;
    println!(
        "  created at index {}, updated at index {}",
        node.create_index, node.update_index
    );
    ensure(&node.data[..] == b"1", "get returns the put value")?;
    println!("get demo.kv.none -> {}", text(&kv.get(g, "demo.kv.none")?));

    // Batches: one raft entry for all keys.
    let keys: Vec<Bytes> = ["demo.kv.b", "demo.kv.c", "demo.kv.d"]
        .map(Bytes::from)
        .to_vec();
    let values: Vec<Bytes> = ["2", "3", "4"].map(Bytes::from).to_vec();
    let done = kv.batch_put(g, keys.clone(), values)?;
    println!(
        "batch_put b, c, d at raft index {} -> {}",
        done.raft_index,
        codes(&done.codes)
    );
    ensure(done.all_succeeded(), "batch_put writes every key")?;
    // Each key of a batch is judged on its own: one under a missing directory is not
    // written, the others are.
    let mixed = kv.batch_put(
        g,
        vec!["demo.kv.e".into(), "demo.none.x".into()],
        vec!["5".into(), "6".into()],
    )?;
    println!(
        "batch_put demo.kv.e, demo.none.x -> {}",
        codes(&mixed.codes)
    );
    ensure(
        mixed.failures().eq([(1, KvCode::ParentDirNotExists)]),
        "a batch key under a missing directory fails alone",
    )?;
    kv.remove(g, "demo.kv.e")?;
    let got = kv.batch_get(g, keys.clone())?;
    let shown: Vec<String> = got.iter().map(text).collect();
    println!("batch_get b, c, d -> {}", shown.join(", "));
    ensure(got.iter().all(Option::is_some), "batch_get finds every key")?;

    let mut names: Vec<String> = kv
        .list(g, "demo.kv")?
        .iter()
        .map(|c| String::from_utf8_lossy(&c.key_in_dir).into_owned())
        .collect();
    names.sort();
    println!("list demo.kv -> {names:?}");
    ensure(names == ["a", "b", "c", "d"], "list shows the four keys")?;

    let removed = kv.batch_remove(g, keys[1..].to_vec())?;
    ensure(removed.all_succeeded(), "batch_remove removes c and d")?;
    println!(
        "batch_remove c, d -> {}; b is {}",
        codes(&removed.codes),
        text(&kv.get(g, "demo.kv.b")?)
    );

    // Compare-and-set: the new value only if the current one is the expected one.
    let swapped = kv.compare_and_set(g, "demo.kv.a", "1", "10")?;
    println!("cas demo.kv.a 1 -> 10: {swapped}");
    ensure(swapped, "cas with the right expectation")?;
    let swapped = kv.compare_and_set(g, "demo.kv.a", "1", "11")?;
    println!("cas demo.kv.a 1 -> 11: {swapped} (it is 10 now)");
    ensure(!swapped, "cas with a stale expectation fails")?;
    let created = kv.compare_and_set(g, "demo.kv.e", "", "new")?;
    println!("cas demo.kv.e absent -> new (empty expectation: create if absent): {created}");
    let removed = kv.compare_and_set(g, "demo.kv.e", "new", "")?;
    println!("cas demo.kv.e new -> absent (empty value: remove if equal): {removed}");
    ensure(created && removed, "cas creates and removes")?;

    // The same operation three ways: blocking (above), a future, a callback.
    let future = kv.put_async(g, "demo.kv.f", "future");
    println!("put_async demo.kv.f -> raft index {}", future.wait()?);
    let (tx, rx) = mpsc::channel();
    kv.get_cb(g, "demo.kv.f", move |r| {
        let _ = tx.send(r);
    });
    let f = rx.recv_timeout(Duration::from_secs(10))??;
    println!(
        "get_cb demo.kv.f -> {} (in a callback on the client's thread)",
        text(&f)
    );

    // Refusals: a bad key is refused locally, a non-empty directory by the server.
    match kv.put(g, "demo..bad", "v") {
        Err(KvError::InvalidArgument(m)) => println!("put demo..bad refused locally: {m}"),
        other => return Err(format!("bad key accepted: {other:?}").into()),
    }
    match kv.remove(g, "demo.kv") {
        Err(e) => println!("remove demo.kv (not empty) refused: {e}"),
        Ok(_) => return Err("a non-empty directory was removed".into()),
    }

    for k in ["demo.kv.a", "demo.kv.b", "demo.kv.f", "demo.kv"] {
        kv.remove(g, k)?;
    }
    println!(
        "removed demo.kv and its keys: get demo.kv -> {}",
        text(&kv.get(g, "demo.kv")?)
    );
    let _ = kv.remove(g, "demo"); // fails if something else lives under "demo"
    kv.stop(Duration::from_secs(1));
    Ok(())
}
