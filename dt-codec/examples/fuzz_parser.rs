//! A fuzz driver for PbParser that runs on the stable toolchain.
//!
//! ```text
//! # random inputs for S seconds (seeded; prints the seed so a failure can be replayed):
//! cargo run --release -p dt-codec --example fuzz_parser -- --seconds 60 [--seed N]
//! # replay files or directories of files (a corpus, or AFL++'s queue):
//! cargo run --release -p dt-codec --example fuzz_parser -- PATH...
//! ```
//!
//! Every input is parsed whole, byte by byte and at a random split, with the schema-less
//! callback and with a nested decode of every length-delimited field; the verdicts must
//! agree and nothing may panic. Inputs are mutated from a seed corpus of valid messages
//! (bit flips, truncation, splices, random length prefixes) as well as generated at random.
//!
//! A path that cannot be read is reported (`fuzz_parser: <path>: <cause>`) and the program
//! exits with status 1, as it does when a replayed file fails. A failing random input
//! panics with the property that broke; the `--seed` printed first replays it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use dt_codec::{encode, PbMessage};

/// xorshift64*: a tiny deterministic generator so runs can be replayed from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn check(data: &[u8], rng: &mut Rng) {
    let split = rng.below(data.len() + 1);
    dt_codec::fuzz::check_input(data, split);
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        vec![0x08, 0x01, 0x12, 0x03, b'a', b'.', b'b', 0x1a, 0x01, b'v'],
        vec![0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x15, 1, 2, 3, 4],
        vec![0x10, 0x01, 0x1a, 0x02, 0x08, 0x03],
        vec![0x7a, 0x05, 0x0d, 0x01, 0x00, 0x00, 0x00],
        vec![
            0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
    ]
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let n = rng.below(v.len());
                v.truncate(n);
            }
            2 => {
                let other = &corpus[rng.below(corpus.len())];
                let at = rng.below(v.len() + 1);
                v.splice(at..at, other.iter().copied());
            }
            3 => {
                let at = rng.below(v.len() + 1);
                v.insert(at, rng.next() as u8);
            }
            4 => {
                // A random length prefix somewhere.
                let at = rng.below(v.len() + 1);
                let mut p = vec![0x12];
                encode::put_varint(&mut p, rng.next() >> rng.below(64));
                v.splice(at..at, p);
            }
            _ => {
                let n = rng.below(32);
                v = (0..n).map(|_| rng.next() as u8).collect();
            }
        }
    }
    v
}

#[derive(Parser)]
#[command(
    name = "fuzz_parser",
    about = "Seeded fuzzing of dt-codec's PbParser, or replay of input files"
)]
pub struct Args {
    /// Seconds of random inputs (ignored when paths are given).
    #[arg(long, default_value_t = 10.0, value_parser = seconds, allow_hyphen_values = true)]
    seconds: f64,
    /// Seed of the input generator (default: from the clock; printed so a run replays).
    #[arg(long)]
    seed: Option<u64>,
    /// Input files, or directories whose files are all checked, instead of random inputs.
    paths: Vec<PathBuf>,
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a number of seconds, 0 or more".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The files named on the command line, directories expanded one level.
pub fn input_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut inside = Vec::new();
            for entry in rd {
                let entry = entry.map_err(|e| format!("{}: {e}", p.display()))?;
                if entry.path().is_file() {
                    inside.push(entry.path());
                }
            }
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn replay(files: &[PathBuf], rng: &mut Rng) -> Result<(), String> {
    for f in files {
        let data = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        // A failing input panics with the broken property (printed above); name the file.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data, rng))).is_err() {
            return Err(format!("{}: the parser failed this input", f.display()));
        }
    }
    println!("checked {} files, no failure", files.len());
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    }) | 1;
    let mut rng = Rng(seed);
    if !args.paths.is_empty() {
        let done = input_files(&args.paths).and_then(|files| {
            if files.is_empty() {
                Err("no input files in the given directories".into())
            } else {
                replay(&files, &mut rng)
            }
        });
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fuzz_parser: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let secs = args.seconds;
    println!("fuzzing for {secs} s with --seed {seed}");
    let mut corpus = seeds();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let input = mutate(&mut rng, &corpus);
            check(&input, &mut rng);
            if corpus.len() < 4096 && PbMessage::decode(&Bytes::copy_from_slice(&input)).is_ok() {
                corpus.push(input);
            }
            n += 1;
        }
    }
    println!("RESULT fuzz_inputs={n} corpus={} failures=0", corpus.len());
    ExitCode::SUCCESS
}
