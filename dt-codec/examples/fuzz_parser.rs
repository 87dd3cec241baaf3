//! A fuzz driver for PbParser that runs on the stable toolchain.
//!
//! ```text
//! # random inputs for S seconds (seeded; prints the seed so a failure can be replayed):
//! cargo run --release -p dt-codec --example fuzz_parser -- --seconds 60 [--seed N]
//! # replay files (a corpus, or AFL++'s queue when built with cargo-afl):
//! cargo run --release -p dt-codec --example fuzz_parser -- FILE...
//! ```
//!
//! Every input is parsed whole, byte by byte and at a random split, with the schema-less
//! callback and with a nested decode of every length-delimited field; the verdicts must
//! agree and nothing may panic. Inputs are mutated from a seed corpus of valid messages
//! (bit flips, truncation, splices, random length prefixes) as well as generated at random.

use std::time::{Duration, Instant};

use bytes::Bytes;
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut secs = 10.0;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => {
                secs = args
                    .get(i + 1)
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N");
                i += 1;
            }
            "--seed" => {
                seed = args
                    .get(i + 1)
                    .and_then(|s| s.parse().ok())
                    .expect("--seed N");
                i += 1;
            }
            f => files.push(f.to_string()),
        }
        i += 1;
    }
    let mut rng = Rng(seed);
    if !files.is_empty() {
        for f in &files {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            check(&data, &mut rng);
        }
        println!("checked {} files, no failure", files.len());
        return;
    }
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
}
