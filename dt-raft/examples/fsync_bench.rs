//! How many `fdatasync`s per second the disk sustains with many files synced at once:
//! the physical ceiling of a multi-raft server whose groups each keep their own log
//! files (every group's replication round ends in its own fsync).
//!
//! ```text
//! cargo run --release -p dt-raft --example fsync_bench -- [--dir D] [--seconds 3]
//!     [--threads 1 2 4 8 16 32 64] [--bytes 4096] [--sparse]
//! ```
//!
//! For each thread count T: T threads, each with its own file (zero-filled and synced
//! first, as the log's prefill leaves a segment; `--sparse`: only its length set, as a
//! segment is made), loop `pwrite(--bytes) + fdatasync` at
//! increasing offsets (wrapping round the file). Prints
//! `RESULT threads=<T> fsyncs_per_s=<x> per_thread=<y> p50_us=<a> p99_us=<b>
//! cpu_us_per_fsync=<c>` (the process's user + system CPU per fsync).
//!
//! `--batched`: each thread's file is a log segment and its fsync goes through one
//! shared [`FsyncBatcher`] (what a RaftServer's groups share): the threads waiting at
//! once share a `syncfs`. The line then also says `rounds=<r> syncfs=<s>`.
//!
//! A bad flag exits with status 2 (clap's message); a file that cannot be created or
//! written prints `fsync_bench: <path>: <cause>` and exits with status 1.

#[path = "support/mod.rs"]
mod support;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_raft::raft_log::ThreadPoolIo;
use dt_raft::store::file_queue::FileQueue;
use dt_raft::store::fsync_batcher::FsyncBatcher;
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(
    name = "fsync_bench",
    about = "fdatasync/s of the disk with T files synced concurrently"
)]
struct Args {
    /// Directory on the disk to measure (default: a fresh one under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds per thread count (1 to 600).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Thread counts to measure (1 to 512 each).
    #[arg(long, num_args = 1.., default_values_t = [1u64, 2, 4, 8, 16, 32, 64],
          value_parser = clap::value_parser!(u64).range(1..=512))]
    threads: Vec<u64>,
    /// Bytes written before each fdatasync (1 to 1 MiB).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    bytes: u64,
    /// Leave the files sparse (`set_len`, as a log segment is made) instead of
    /// zero-filling them: each fdatasync then also writes the blocks' allocation.
    #[arg(long)]
    sparse: bool,
    /// Sync through one shared `FsyncBatcher` (group commit, `syncfs`) instead of an
    /// `fdatasync` per thread.
    #[arg(long)]
    batched: bool,
}

/// Size of each thread's file: written round and round.
const FILE_SIZE: u64 = 4 << 20;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fsync_bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let (dir, _tmp) = support::work_dir(args.dir.as_deref(), "fsync_bench")?;
    let max = args.threads.iter().copied().max().unwrap_or(1);
    let paths: Vec<PathBuf> = (0..max).map(|k| dir.join(format!("f{k}"))).collect();
    for p in &paths {
        prepare(p, args.sparse).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    for &t in &args.threads {
        if args.batched {
            measure_batched(&dir, t as usize, args)?;
        } else {
            measure(&paths[..t as usize], args)?;
        }
    }
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

fn prepare(p: &Path, sparse: bool) -> std::io::Result<()> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(p)?;
    if sparse {
        f.set_len(FILE_SIZE)?;
    } else {
        f.write_all_at(&vec![0u8; FILE_SIZE as usize], 0)?;
    }
    f.sync_all()
}

fn measure(paths: &[PathBuf], args: &Args) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for p in paths {
        let (p, stop, bytes) = (p.clone(), stop.clone(), args.bytes);
        handles.push(std::thread::spawn(
            move || -> Result<Histogram<u64>, String> {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                let buf = vec![b'x'; bytes as usize];
                let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds");
                let mut pos = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if pos + bytes > FILE_SIZE {
                        pos = 0;
                    }
                    let t0 = Instant::now();
                    f.write_all_at(&buf, pos)
                        .and_then(|_| f.sync_data())
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                    let _ = h.record((t0.elapsed().as_micros() as u64).max(1));
                    pos += bytes;
                }
                Ok(h)
            },
        ));
    }
    let (all, secs, cpu) = collect(handles, &stop, args.seconds)?;
    print_result(paths.len(), &all, secs, cpu, "");
    Ok(())
}

type Worker = std::thread::JoinHandle<Result<Histogram<u64>, String>>;

/// Lets the workers run for `seconds`, stops them and merges their latencies; also
/// returns the wall time and the process CPU time of the window.
fn collect(
    handles: Vec<Worker>,
    stop: &AtomicBool,
    seconds: u64,
) -> Result<(Histogram<u64>, f64, f64), String> {
    let c0 = support::process_cpu().ok_or("cannot read /proc/self/stat")?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for h in handles {
        let h = h.join().map_err(|_| "a thread panicked".to_string())??;
        all.add(&h).map_err(|e| e.to_string())?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = support::process_cpu().ok_or("cannot read /proc/self/stat")? - c0;
    Ok((all, secs, cpu.as_secs_f64()))
}

fn print_result(threads: usize, all: &Histogram<u64>, secs: f64, cpu: f64, extra: &str) {
    let n = all.len() as f64;
    println!(
        "RESULT threads={} fsyncs_per_s={:.0} per_thread={:.0} p50_us={} p99_us={} \
         cpu_us_per_fsync={:.1}{extra}",
        threads,
        n / secs,
        n / secs / threads as f64,
        all.value_at_quantile(0.5),
        all.value_at_quantile(0.99),
        cpu * 1e6 / n.max(1.0)
    );
}

/// `--batched`: each thread writes its own log segment and waits for the shared
/// batcher to make it durable.
fn measure_batched(dir: &Path, threads: usize, args: &Args) -> Result<(), String> {
    let batcher = FsyncBatcher::new(ThreadPoolIo::new(threads.max(2)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<Worker> = Vec::new();
    for k in 0..threads {
        let qdir = dir.join(format!("b{threads}-{k}"));
        let q = FileQueue::open(&qdir, FILE_SIZE, true).map_err(|e| e.to_string())?;
        let f = match q.get(0) {
            Some(f) => f,
            None => q.maker().create(0).map_err(|e| e.to_string())?,
        };
        if !args.sparse {
            f.write_all_at(&vec![0u8; FILE_SIZE as usize], 0)
                .and_then(|_| f.sync_data())
                .map_err(|e| e.to_string())?;
        }
        let (stop, bytes, batcher) = (stop.clone(), args.bytes, batcher.clone());
        handles.push(std::thread::spawn(move || {
            let buf = vec![b'x'; bytes as usize];
            let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut pos = 0u64;
            let (tx, rx) = std::sync::mpsc::channel();
            while !stop.load(Ordering::Relaxed) {
                if pos + bytes > FILE_SIZE {
                    pos = 0;
                }
                let t0 = Instant::now();
                f.write_all_at(&buf, pos).map_err(|e| e.to_string())?;
                let tx = tx.clone();
                batcher.sync(
                    vec![f.clone()],
                    Box::new(move |r| {
                        let _ = tx.send(r);
                    }),
                );
                rx.recv()
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let _ = h.record((t0.elapsed().as_micros() as u64).max(1));
                pos += bytes;
            }
            Ok(h)
        }));
    }
    let s0 = batcher.stats();
    let (all, secs, cpu) = collect(handles, &stop, args.seconds)?;
    let s = batcher.stats();
    let extra = format!(
        " rounds={} syncfs={}",
        s.rounds - s0.rounds,
        s.syncfs_calls - s0.syncfs_calls
    );
    print_result(threads, &all, secs, cpu, &extra);
    Ok(())
}
