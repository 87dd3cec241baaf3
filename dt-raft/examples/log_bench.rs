//! Append throughput of `DefaultRaftLog` against the raw limit of the disk, and
//! recovery time of a large log.
//!
//! ```text
//! cargo run --release -p dt-raft --example log_bench -- --dir D [--seconds 5]
//!     [--recovery-mib 1024] [--pipeline 0] [--prefill-kib 4096]
//! ```
//!
//! For each batch size (1, 16, 256 entries of 256-byte bodies, fsync on):
//! * ours: a closed loop of `append(batch)` awaited until durable (fsynced);
//! * raw limit: a closed loop of `pwrite(batch bytes) + fdatasync` into a file
//!   pre-allocated the same way as a segment (sparse: set length), on the same disk;
//! * allocated limit (INFO): the same loop over blocks already allocated (a 64 MiB
//!   file zero-filled first, written round and round), the best the disk does. The log
//!   approaches it by zero-filling its segment ahead of the appends on another thread
//!   (`StoreConfig::prefill_bytes`), paying for those zeros with disk bandwidth;
//! * handoff limit: the raw loop's write + fdatasync done by a second thread that the
//!   caller hands each batch to and waits on (a channel each way; the IO thread lingers
//!   50 us for the next batch, as the log's write lane does). No log code: this is the
//!   floor for any design that keeps file IO off the caller's thread, as dt's
//!   dispatcher threads must.
//!
//! Prints `RESULT batch=<n> entries_per_s=<x> raw_limit_entries_per_s=<y> ratio=<x/y>`
//! per batch size, then `INFO batch=<n> handoff_limit_entries_per_s=<h>
//! handoff_vs_raw=<h/y> ours_vs_handoff=<x/h>` (what the thread handoff alone costs,
//! and how close the log gets to that floor), then the recovery time of a log of
//! `--recovery-mib` MiB.
//! `entries_per_s` is fsync'd entries per second through `DefaultRaftLog`,
//! `raw_limit_entries_per_s` the same bytes written and fdatasync'd by a bare loop; a
//! `ratio` near 1.0 means the log adds little over what the disk allows.
//!
//! If the directory cannot be created or written (missing parent, no permission, disk
//! full) it prints `log_bench: <path>: <cause>` on stderr and exits with status 1; a bad
//! flag exits with status 2 and clap's message.

use std::fmt::Display;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_raft::raft_log::{block_on, DefaultRaftLog, RaftLog, ThreadPoolIo};
use dt_raft::store::{LogItem, LogStore, StoreConfig};

#[derive(Parser)]
#[command(
    name = "log_bench",
    about = "fsync'd append throughput of DefaultRaftLog against the disk's raw limit, and recovery time"
)]
pub struct Args {
    /// Directory on the disk to measure (created; bench files are removed after).
    #[arg(long)]
    dir: PathBuf,
    /// Seconds per measurement (above 0, at most 3600).
    #[arg(long, default_value_t = 5.0, value_parser = seconds, allow_hyphen_values = true)]
    seconds: f64,
    /// Size of the log whose recovery is timed (MiB); 0 skips it.
    #[arg(long, default_value_t = 1024)]
    recovery_mib: u64,
    /// Also measure with this many appends in flight (group commit); 0 skips it.
    #[arg(long, default_value_t = 64)]
    pipeline: usize,
    /// Keep the recovery log on disk (to time a cold-cache open with --recovery-open-only).
    #[arg(long)]
    recovery_keep: bool,
    /// Only time opening an existing recovery log (written by --recovery-keep).
    #[arg(long)]
    recovery_open_only: bool,
    /// Zero-fill the log's segment this many KiB ahead of the appends
    /// (`StoreConfig::prefill_bytes`; 0, the default, leaves it off).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1048576))]
    prefill_kib: u64,
    /// Batch sizes to measure (1 to 65536 entries each).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1u64, 16, 256],
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    batches: Vec<u64>,
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        Ok(_) => Err("must be a number of seconds above 0 and at most 3600".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Prefixes an error with the path it concerns.
fn at<T, E: Display>(path: &Path, r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| format!("{}: {e}", path.display()))
}

const BODY: usize = 256;

fn item(index: u64) -> LogItem {
    LogItem {
        item_type: 0,
        biz_type: 1,
        term: 1,
        prev_log_term: if index == 1 { 0 } else { 1 },
        index,
        timestamp: 1_700_000_000_000,
        header: Default::default(),
        body: vec![(index % 251) as u8; BODY].into(),
    }
}

fn batch(from: u64, n: usize) -> Vec<LogItem> {
    (from..from + n as u64).map(item).collect()
}

/// A batch built from a shared body (as entries decoded from the network would share
/// their frame's buffer), so the bench measures the log, not the allocator.
fn batch_shared(from: u64, n: usize, body: &bytes::Bytes) -> Vec<LogItem> {
    (from..from + n as u64)
        .map(|index| LogItem {
            body: body.clone(),
            header: Default::default(),
            ..item_header(index)
        })
        .collect()
}

fn item_header(index: u64) -> LogItem {
    LogItem {
        item_type: 0,
        biz_type: 1,
        term: 1,
        prev_log_term: if index == 1 { 0 } else { 1 },
        index,
        timestamp: 1_700_000_000_000,
        header: Default::default(),
        body: Default::default(),
    }
}

/// Closed-loop appends on an open log for `secs`; returns (entries, seconds).
fn run_ours(
    log: &DefaultRaftLog,
    next: &mut u64,
    n: usize,
    secs: f64,
    in_flight: usize,
) -> Result<(u64, f64), String> {
    let failed = |e: dt_raft::store::StoreError| format!("append failed: {e}");
    let body = bytes::Bytes::from(vec![7u8; BODY]);
    let batch = |from: u64, n: usize| batch_shared(from, n, &body);
    let start = Instant::now();
    let mut done = 0u64;
    let deadline = Duration::from_secs_f64(secs);
    if in_flight <= 1 {
        while start.elapsed() < deadline {
            block_on(log.append(batch(*next, n))).map_err(failed)?;
            *next += n as u64;
            done += n as u64;
        }
    } else {
        let mut q = std::collections::VecDeque::new();
        while start.elapsed() < deadline {
            while q.len() < in_flight {
                q.push_back(log.append(batch(*next, n)));
                *next += n as u64;
            }
            if let Some(f) = q.pop_front() {
                block_on(f).map_err(failed)?;
            }
            done += n as u64;
        }
        while let Some(f) = q.pop_front() {
            block_on(f).map_err(failed)?;
            done += n as u64;
        }
    }
    assert!(log.persisted_index() >= *next - 1);
    Ok((done, start.elapsed().as_secs_f64()))
}

/// Bytes of the allocated raw loop's file, zero-filled before it is measured.
const ALLOCATED_SPAN: u64 = 64 << 20;

struct Raw {
    f: std::fs::File,
    bytes: Vec<u8>,
    pos: u64,
    /// Written round and round over zero-filled blocks instead of into a sparse file.
    allocated: bool,
}

impl Raw {
    fn new(path: &Path, n: usize) -> Result<Raw, String> {
        Raw::open(path, n, false)
    }

    fn open(path: &Path, n: usize, allocated: bool) -> Result<Raw, String> {
        let f = at(
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path),
        )?;
        if allocated {
            let zeros = vec![0u8; 1 << 20];
            for i in 0..ALLOCATED_SPAN >> 20 {
                at(path, f.write_all_at(&zeros, i << 20))?;
            }
        } else {
            // pre-allocated the same way as a log segment
            at(path, f.set_len(1 << 30))?;
        }
        at(path, f.sync_all())?;
        let mut bytes = Vec::new();
        for it in batch(1, n) {
            it.encode_into(&mut bytes);
        }
        Ok(Raw {
            f,
            bytes,
            pos: 0,
            allocated,
        })
    }

    /// write + fdatasync of the batch bytes in a loop; returns (entries, seconds).
    fn run(&mut self, n: usize, secs: f64) -> Result<(u64, f64), String> {
        let deadline = Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed() < deadline {
            self.step()?;
            done += n as u64;
        }
        Ok((done, start.elapsed().as_secs_f64()))
    }

    /// One write + fdatasync of the batch bytes.
    fn step(&mut self) -> Result<(), String> {
        let failed = |e: std::io::Error| format!("raw write failed: {e}");
        if self.allocated && self.pos + self.bytes.len() as u64 > ALLOCATED_SPAN {
            self.pos = 0;
        }
        if self.pos + self.bytes.len() as u64 > 1 << 30 {
            // Like a log rolling to a new segment: never overwrite blocks that are
            // already allocated (that would skip the allocation cost a log pays).
            self.f.set_len(0).map_err(failed)?;
            self.f.set_len(1 << 30).map_err(failed)?;
            self.f.sync_all().map_err(failed)?;
            self.pos = 0;
        }
        self.f.write_all_at(&self.bytes, self.pos).map_err(failed)?;
        self.f.sync_data().map_err(failed)?;
        self.pos += self.bytes.len() as u64;
        Ok(())
    }
}

/// The raw loop's IO on a second thread: the caller hands it each batch and waits for
/// the answer (see the module documentation, "handoff limit").
struct Handoff {
    tx: Option<crossbeam_channel::Sender<u64>>,
    done: crossbeam_channel::Receiver<Result<(), String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handoff {
    fn new(path: &Path, n: usize) -> Result<Handoff, String> {
        let mut raw = Raw::new(path, n)?;
        let (tx, rx) = crossbeam_channel::unbounded::<u64>();
        let (done_tx, done) = crossbeam_channel::unbounded();
        let thread = std::thread::spawn(move || {
            const LINGER: Duration = Duration::from_micros(50);
            loop {
                let job = match rx.try_recv() {
                    Ok(j) => Ok(j),
                    Err(_) => {
                        let until = Instant::now() + LINGER;
                        while rx.is_empty() && Instant::now() < until {
                            std::thread::yield_now();
                        }
                        rx.recv()
                    }
                };
                let Ok(_) = job else { return };
                let _ = done_tx.send(raw.step());
            }
        });
        Ok(Handoff {
            tx: Some(tx),
            done,
            thread: Some(thread),
        })
    }

    fn run(&mut self, n: usize, secs: f64) -> Result<(u64, f64), String> {
        let deadline = Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut done = 0u64;
        let tx = self.tx.as_ref().ok_or("handoff thread gone")?;
        while start.elapsed() < deadline {
            tx.send(n as u64).map_err(|_| "handoff thread gone")?;
            self.done.recv().map_err(|_| "handoff thread gone")??;
            done += n as u64;
        }
        Ok((done, start.elapsed().as_secs_f64()))
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ours, the raw loop and the handoff loop in alternating short rounds, so that load
/// from other processes on the machine hits them alike (the allocated loop runs beside
/// them). Returns (ours, raw, handoff, pipelined, allocated) rates.
type Rates = (f64, f64, f64, Option<f64>, f64);

fn measure(
    dir: &Path,
    n: usize,
    secs: f64,
    pipeline: usize,
    prefill_kib: u64,
) -> Result<Rates, String> {
    let _ = std::fs::remove_dir_all(dir);
    at(dir, std::fs::create_dir_all(dir))?;
    let mut raw = Raw::new(&dir.join("raw"), n)?;
    let mut alloc = Raw::open(&dir.join("allocated"), n, true)?;
    let (mut ae, mut at_s) = (0u64, 0f64);
    let mut handoff = Handoff::new(&dir.join("handoff"), n)?;
    let log_dir = dir.join("log");
    let cfg = StoreConfig {
        prefill_bytes: prefill_kib << 10,
        ..StoreConfig::default()
    };
    let log = DefaultRaftLog::new(&log_dir, cfg, ThreadPoolIo::new(2));
    at(&log_dir, block_on(log.init()))?;
    let mut next = 1u64;
    run_ours(&log, &mut next, n, 0.2, 1)?; // warm-up
    raw.run(n, 0.2)?;
    handoff.run(n, 0.2)?;
    const ROUNDS: usize = 20;
    let slice = secs / ROUNDS as f64;
    let (mut oe, mut ot, mut re, mut rt, mut he, mut ht) = (0u64, 0f64, 0u64, 0f64, 0u64, 0f64);
    let mut ratios = Vec::new();
    let mut vs_handoff = Vec::new();
    for r in 0..ROUNDS {
        // The handoff loop takes its turn in the middle, ours and raw alternate ends.
        let (a, b, h) = if r % 2 == 0 {
            let x = raw.run(n, slice)?;
            let h = handoff.run(n, slice)?;
            (run_ours(&log, &mut next, n, slice, 1)?, x, h)
        } else {
            let y = run_ours(&log, &mut next, n, slice, 1)?;
            let h = handoff.run(n, slice)?;
            (y, raw.run(n, slice)?, h)
        };
        let z = alloc.run(n, slice)?;
        ae += z.0;
        at_s += z.1;
        ratios.push((a.0 as f64 / a.1) / (b.0 as f64 / b.1));
        vs_handoff.push((a.0 as f64 / a.1) / (h.0 as f64 / h.1));
        oe += a.0;
        ot += a.1;
        re += b.0;
        rt += b.1;
        he += h.0;
        ht += h.1;
    }
    ratios.sort_by(f64::total_cmp);
    vs_handoff.sort_by(f64::total_cmp);
    println!(
        "INFO batch={n} per-round ratios: min={:.3} median={:.3} max={:.3} (ours/handoff: min={:.3} median={:.3} max={:.3})",
        ratios[0],
        ratios[ROUNDS / 2],
        ratios[ROUNDS - 1],
        vs_handoff[0],
        vs_handoff[ROUNDS / 2],
        vs_handoff[ROUNDS - 1]
    );
    let piped = if pipeline > 1 {
        let (e, t) = run_ours(&log, &mut next, n, secs / 2.0, pipeline)?;
        Some(e as f64 / t)
    } else {
        None
    };
    at(&log_dir, block_on(log.close()))?;
    drop(log);
    drop(raw);
    drop(handoff);
    let _ = std::fs::remove_dir_all(dir);
    drop(alloc);
    Ok((
        oe as f64 / ot,
        re as f64 / rt,
        he as f64 / ht,
        piped,
        ae as f64 / at_s,
    ))
}

fn recovery(dir: &Path, mib: u64, keep: bool, open_only: bool) -> Result<(), String> {
    let cfg = StoreConfig {
        sync: false,
        ..StoreConfig::default()
    };
    if open_only {
        let t = Instant::now();
        if !dir.is_dir() {
            return Err(format!(
                "{}: no log to open (write one first with --recovery-keep)",
                dir.display()
            ));
        }
        let log = at(dir, LogStore::open(dir, cfg))?;
        let el = t.elapsed().as_secs_f64();
        let bytes = log.next_pos() as f64;
        println!(
            "RECOVERY entries={} log_mib={:.0} full_scan_s={el:.3} mib_per_s={:.0} (existing log)",
            log.last_index(),
            bytes / 1048576.0,
            bytes / 1048576.0 / el
        );
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    let entry_len = item(1).encoded_len() as u64;
    let total = mib * 1024 * 1024 / entry_len;
    let t = Instant::now();
    {
        let mut log = at(dir, LogStore::open(dir, cfg.clone()))?;
        let mut i = 1;
        while i <= total {
            let n = 1024.min(total - i + 1) as usize;
            at(dir, log.append(&batch(i, n)))?;
            i += n as u64;
        }
        // fsync once at the end; no commit index, so persistIdxIndex stays 0 and
        // recovery has to scan (and CRC-check) the whole log: the worst case.
        for f in log.file_queue().files() {
            at(dir, f.sync_data())?;
        }
    }
    println!(
        "INFO wrote {total} entries ({} MiB) in {:.1} s",
        (total * entry_len) >> 20,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let log = at(dir, LogStore::open(dir, cfg.clone()))?;
    let el = t.elapsed().as_secs_f64();
    assert_eq!(log.last_index(), total);
    println!(
        "RECOVERY log_mib={} entries={total} full_scan_s={el:.3} mib_per_s={:.0} (page cache warm)",
        (total * entry_len) >> 20,
        (total * entry_len) as f64 / 1048576.0 / el
    );
    drop(log);
    if !keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("log_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn run(a: &Args) -> Result<(), String> {
    at(&a.dir, std::fs::create_dir_all(&a.dir))?;
    println!(
        "INFO crc32c hardware={} entry_bytes_on_disk={}",
        dt_raft::store::crc32c::hw_available(),
        item(1).encoded_len()
    );
    for &n in a.batches.iter().filter(|_| !a.recovery_open_only) {
        let n = n as usize;
        let (ours, raw, handoff, piped, allocated) = measure(
            &a.dir.join("append"),
            n,
            a.seconds,
            a.pipeline,
            a.prefill_kib,
        )?;
        let mbps = ours * item(1).encoded_len() as f64 / 1e6;
        println!(
            "RESULT batch={n} entries_per_s={ours:.0} raw_limit_entries_per_s={raw:.0} ratio={:.3} mb_per_s={mbps:.2}",
            ours / raw
        );
        println!(
            "INFO batch={n} handoff_limit_entries_per_s={handoff:.0} handoff_vs_raw={:.3} ours_vs_handoff={:.3}",
            handoff / raw,
            ours / handoff
        );
        println!(
            "INFO batch={n} allocated_limit_entries_per_s={allocated:.0} ours_vs_allocated={:.3}",
            ours / allocated
        );
        if let Some(p) = piped {
            println!(
                "INFO pipelined batch={n} in_flight={} entries_per_s={p:.0} ratio_vs_raw={:.3}",
                a.pipeline,
                p / raw
            );
        }
    }
    if a.recovery_mib > 0 {
        recovery(
            &a.dir.join("recovery"),
            a.recovery_mib,
            a.recovery_keep,
            a.recovery_open_only,
        )?;
    }
    Ok(())
}
