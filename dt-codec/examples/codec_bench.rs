//! Decode and encode throughput of dt-codec, with prost as a point of comparison.
//!
//! ```text
//! cargo run --release -p dt-codec --example codec_bench [-- --seconds S] [--case NAME]
//! ```
//!
//! Two messages: a typical DtKV put request body (group 1, 16-byte key, 256-byte value)
//! and a message holding one 64 KiB bytes field. Each is decoded whole, decoded in 1 KiB
//! fragments (as bytes arrive from a socket), and encoded; prost (a general-purpose
//! protobuf library) decodes and encodes the same bytes as the yardstick. One line per
//! measurement, `RESULT <case>_<what> msgs_per_s=<x> mb_per_s=<y>`, then one line per
//! message comparing the figures, `SUMMARY <case> decode_vs_prost=.. encode_vs_prost=..
//! fragmented_vs_whole=..`. The program prints what each figure means before it starts.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use dt_codec::{
    encode, BytesCollector, Chunk, Encodable, ParseStatus, PbCallback, PbError, PbParser,
};
use prost::Message;

/// The first fields of DtKV's KvReq.
struct PutReq {
    group: i32,
    key: Bytes,
    value: Bytes,
}

impl Encodable for PutReq {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.group)
            + encode::size_bytes(2, &self.key)
            + encode::size_bytes(3, &self.value)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.group);
        encode::put_bytes(out, 2, &self.key);
        encode::put_bytes(out, 3, &self.value);
    }
}

#[derive(Default)]
struct PutReqCallback {
    group: i32,
    key: Option<Bytes>,
    value: Option<Bytes>,
    acc: BytesCollector,
}

impl PbCallback for PutReqCallback {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.group = 0;
        self.key = None;
        self.value = None;
        Ok(())
    }
    fn varint(&mut self, f: u32, v: i64) -> Result<(), PbError> {
        if f == 1 {
            self.group = v as i32;
        }
        Ok(())
    }
    fn bytes(&mut self, f: u32, c: Chunk<'_>) -> Result<(), PbError> {
        if let Some(b) = self.acc.push(&c) {
            match f {
                2 => self.key = Some(b),
                3 => self.value = Some(b),
                _ => {}
            }
        }
        Ok(())
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProstPut {
    #[prost(int32, tag = "1")]
    group: i32,
    #[prost(bytes = "bytes", tag = "2")]
    key: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    value: Bytes,
}

/// Times `op` for `secs` seconds after a warm-up; prints a RESULT line and returns
/// the operations per second.
fn run(name: &str, bytes_per_op: usize, secs: f64, mut op: impl FnMut()) -> f64 {
    // Warm up, then time batches until the budget is spent.
    for _ in 0..1000 {
        op();
    }
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..1000 {
            op();
        }
        n += 1000;
    }
    let el = start.elapsed().as_secs_f64();
    let ops = n as f64 / el;
    println!(
        "RESULT {name} msgs_per_s={:.0} mb_per_s={:.1}",
        ops,
        ops * bytes_per_op as f64 / 1e6
    );
    ops
}

fn decode_fragmented(p: &mut PbParser<PutReqCallback>, wire: &Bytes, frag: usize) {
    p.prepare(wire.len()).unwrap();
    let mut off = 0;
    let mut st = ParseStatus::NeedMore;
    while off < wire.len() {
        let end = (off + frag).min(wire.len());
        st = p.feed(&wire.slice(off..end)).unwrap().status;
        off = end;
    }
    assert_eq!(st, ParseStatus::Finished);
}

#[derive(Parser)]
#[command(
    name = "codec_bench",
    about = "Decode/encode throughput of dt-codec's protobuf subset, with prost as the yardstick"
)]
struct Args {
    /// Seconds to time each measurement (after a 1000-operation warm-up).
    #[arg(long, default_value_t = 1.0, value_parser = positive_seconds, allow_hyphen_values = true)]
    seconds: f64,
    /// Run only this message case (put_16_256 or bytes_64k); repeat for several.
    #[arg(long, value_parser = ["put_16_256", "bytes_64k"])]
    case: Vec<String>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        Ok(_) => Err("must be a number of seconds above 0 and at most 3600".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The message cases: name, key length, value length, description.
const CASES: [(&str, usize, usize, &str); 2] = [
    (
        "put_16_256",
        16,
        256,
        "a DtKV put request body: group 1, a 16-byte key, a 256-byte value",
    ),
    (
        "bytes_64k",
        0,
        65536,
        "one 64 KiB bytes field: measures bulk payloads, where copying dominates",
    ),
];

fn print_legend(secs: f64) {
    println!("codec_bench: protobuf decode/encode throughput of dt-codec, one thread,");
    println!("with prost (a general-purpose protobuf library) on the same bytes as the yardstick.");
    println!("Each measurement repeats one operation for {secs} s after a warm-up; an operation");
    println!("decodes or encodes one whole message. Higher is better everywhere.");
    println!("  msgs_per_s   messages decoded or encoded per second");
    println!("  mb_per_s     megabytes (10^6 bytes) of encoded message per second");
    println!("  <case>_decode_whole         parse a message held in one buffer");
    println!("  <case>_decode_1k_fragments  parse it fed 1 KiB at a time, as from a socket");
    println!("  <case>_encode               compute its size and write it into a buffer");
    println!("  <case>_prost_decode/encode  the same work done by prost");
    println!("Absolute figures depend on the machine; compare the ratios in the SUMMARY lines.");
    println!();
}

fn main() -> ExitCode {
    let args = Args::parse();
    let secs = args.seconds;
    print_legend(secs);
    for (case, key_len, value_len, what) in CASES {
        if !args.case.is_empty() && !args.case.iter().any(|c| c == case) {
            continue;
        }
        let req = PutReq {
            group: 1,
            key: Bytes::from(vec![b'k'; key_len]),
            value: Bytes::from(vec![7u8; value_len]),
        };
        let wire = encode::to_bytes(&req);
        let n = wire.len();
        println!("case {case}: {what}; {n} bytes encoded");

        let mut p = PbParser::new(PutReqCallback::default());
        let whole = run(&format!("{case}_decode_whole"), n, secs, || {
            assert_eq!(
                p.parse_whole(black_box(&wire)).unwrap(),
                ParseStatus::Finished
            );
            black_box(&p.callback().value);
        });
        let fragmented = run(&format!("{case}_decode_1k_fragments"), n, secs, || {
            decode_fragmented(&mut p, black_box(&wire), 1024);
            black_box(&p.callback().value);
        });
        let mut out = BytesMut::with_capacity(n * 2);
        let enc = run(&format!("{case}_encode"), n, secs, || {
            out.clear();
            let r = black_box(&req);
            out.reserve(r.encoded_size());
            r.encode(&mut out);
            black_box(&out);
        });

        let pm = ProstPut {
            group: 1,
            key: req.key.clone(),
            value: req.value.clone(),
        };
        let prost_dec = run(&format!("{case}_prost_decode"), n, secs, || {
            black_box(ProstPut::decode(black_box(wire.clone())).unwrap());
        });
        let prost_enc = run(&format!("{case}_prost_encode"), n, secs, || {
            out.clear();
            black_box(&pm).encode(&mut out).unwrap();
            black_box(&out);
        });
        println!(
            "SUMMARY {case} decode_vs_prost={:.2} encode_vs_prost={:.2} fragmented_vs_whole={:.2}",
            whole / prost_dec,
            enc / prost_enc,
            fragmented / whole
        );
        println!();
    }
    println!("How to read the SUMMARY lines:");
    println!("  decode_vs_prost, encode_vs_prost: dt-codec's messages per second divided by");
    println!("    prost's; above 1.00 dt-codec is faster. dt-codec must stay at or above about 1");
    println!("    on put_16_256 (the common small request); a drop between two runs on one");
    println!("    machine is a regression.");
    println!("  fragmented_vs_whole: the cost of parsing in 1 KiB pieces (a field split across");
    println!("    pieces is copied once). 1.00 means free; put_16_256 fits in one piece, so");
    println!("    expect close to 1; bytes_64k pays one copy of the field, so expect less.");
    ExitCode::SUCCESS
}
