//! Throughput of the store's CRC32C (`dt_raft::store::crc32c::crc32c`), which checks
//! every entry, index block and snapshot block read back and seals every one written:
//! for buffers of several sizes, how many MB/s one thread checksums, each buffer
//! continuing the checksum of the one before (so that the processor cannot overlap
//! them). One line per size, then `RESULT` with the 16 KiB and 256 KiB figures.
//!
//! `cargo run --release -p dt-raft --example crc_bench -- [--millis 300]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Parser;
use dt_raft::store::crc32c::{hw_available, Crc32c};

#[derive(Parser, Debug)]
struct Args {
    /// Milliseconds measured per size (10 to 60000).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=60000))]
    millis: u64,
}

fn main() {
    let a = Args::parse();
    let sizes = [64usize, 256, 1024, 4096, 16 * 1024, 256 * 1024];
    let data: Vec<u8> = (0..256 * 1024 + 8)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    println!(
        "crc_bench: CRC32C, {} path, {} ms per size",
        if hw_available() { "SSE4.2" } else { "table" },
        a.millis
    );
    let mut results = Vec::new();
    for &size in &sizes {
        // a misaligned start, as entries' bodies are in their read blocks
        let buf = &data[3..3 + size];
        let mut bytes = 0u64;
        let mut crc = Crc32c::new();
        let start = Instant::now();
        let until = start + Duration::from_millis(a.millis);
        while Instant::now() < until {
            for _ in 0..64 {
                crc.update(black_box(buf));
            }
            bytes += 64 * size as u64;
        }
        let mbps = bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
        black_box(crc.finish());
        println!("size {size:>7} B: {mbps:>9.0} MB/s");
        results.push((size, mbps));
    }
    let at = |s: usize| results.iter().find(|r| r.0 == s).map_or(0.0, |r| r.1);
    println!(
        "RESULT mbps_16k={:.0} mbps_256k={:.0}",
        at(16 * 1024),
        at(256 * 1024)
    );
}
