//! Decode and encode throughput of dt-codec, with prost as a point of comparison.
//!
//! `cargo run --release -p dt-codec --example codec_bench [-- --seconds S]`
//!
//! Cases: a typical DtKV put request body (group 1, 16-byte key, 256-byte value) and a
//! message holding one 64 KiB bytes field, each decoded whole, decoded in 1 KiB fragments
//! (as from a socket), and encoded. Prints one line per case:
//! `RESULT <case> msgs_per_s=<x> mb_per_s=<y>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
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

fn run(name: &str, bytes_per_op: usize, secs: f64, mut op: impl FnMut()) {
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

fn main() {
    let mut secs = 1.0;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        secs = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(secs);
    }

    for (case, key_len, value_len) in [("put_16_256", 16usize, 256usize), ("bytes_64k", 0, 65536)] {
        let req = PutReq {
            group: 1,
            key: Bytes::from(vec![b'k'; key_len]),
            value: Bytes::from(vec![7u8; value_len]),
        };
        let wire = encode::to_bytes(&req);
        let n = wire.len();

        let mut p = PbParser::new(PutReqCallback::default());
        run(&format!("{case}_decode_whole"), n, secs, || {
            assert_eq!(
                p.parse_whole(black_box(&wire)).unwrap(),
                ParseStatus::Finished
            );
            black_box(&p.callback().value);
        });
        run(&format!("{case}_decode_1k_fragments"), n, secs, || {
            decode_fragmented(&mut p, black_box(&wire), 1024);
            black_box(&p.callback().value);
        });
        let mut out = BytesMut::with_capacity(n * 2);
        run(&format!("{case}_encode"), n, secs, || {
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
        run(&format!("{case}_prost_decode"), n, secs, || {
            black_box(ProstPut::decode(black_box(wire.clone())).unwrap());
        });
        run(&format!("{case}_prost_encode"), n, secs, || {
            out.clear();
            black_box(&pm).encode(&mut out).unwrap();
            black_box(&out);
        });
    }
}
