//! Cross-check against prost, a real protobuf implementation: random messages encoded by
//! prost are parsed by PbParser (whole and randomly fragmented) into the same values, and
//! our encoders produce prost's exact bytes (prost follows the same proto3 omission rules,
//! unpacked repeated fields in declaration order, 10-byte negative int32).

use bytes::{Bytes, BytesMut};
use dt_codec::{
    encode, BytesCollector, Chunk, Encodable, NestedParser, ParseStatus, PbCallback, PbError,
    PbParser,
};
use proptest::prelude::*;
use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct Inner {
    #[prost(int32, tag = "1")]
    a: i32,
    #[prost(bytes = "vec", tag = "2")]
    b: Vec<u8>,
    #[prost(fixed64, tag = "3")]
    c: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Outer {
    #[prost(int32, tag = "1")]
    i32v: i32,
    #[prost(int64, tag = "2")]
    i64v: i64,
    #[prost(uint64, tag = "3")]
    u64v: u64,
    #[prost(bool, tag = "4")]
    flag: bool,
    #[prost(fixed32, tag = "5")]
    f32v: u32,
    #[prost(fixed64, tag = "6")]
    f64v: u64,
    #[prost(sfixed32, tag = "7")]
    sf32: i32,
    #[prost(sfixed64, tag = "8")]
    sf64: i64,
    #[prost(string, tag = "9")]
    s: String,
    #[prost(bytes = "vec", tag = "10")]
    by: Vec<u8>,
    #[prost(message, optional, tag = "11")]
    inner: Option<Inner>,
    #[prost(int32, repeated, packed = "false", tag = "12")]
    ri32: Vec<i32>,
    #[prost(fixed64, repeated, packed = "false", tag = "13")]
    rf64: Vec<u64>,
    #[prost(bytes = "vec", repeated, tag = "14")]
    rbytes: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "15")]
    rinner: Vec<Inner>,
    #[prost(int64, tag = "300000")]
    far: i64,
}

/// `Outer` plus fields our decoder does not know, of every allowed wire type.
#[derive(Clone, PartialEq, prost::Message)]
struct OuterPlus {
    #[prost(int32, tag = "1")]
    i32v: i32,
    #[prost(bytes = "vec", tag = "10")]
    by: Vec<u8>,
    #[prost(uint64, tag = "20")]
    x_varint: u64,
    #[prost(fixed64, tag = "21")]
    x_f64: u64,
    #[prost(bytes = "vec", tag = "22")]
    x_bytes: Vec<u8>,
    #[prost(fixed32, tag = "23")]
    x_f32: u32,
    #[prost(message, optional, tag = "24")]
    x_msg: Option<Inner>,
}

// ---- our side: Encodable + PbCallback for the same schema ----

impl Encodable for Inner {
    fn encoded_size(&self) -> usize {
        encode::size_int32(1, self.a)
            + encode::size_bytes(2, &self.b)
            + encode::size_fixed64(3, self.c)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode::put_int32(out, 1, self.a);
        encode::put_bytes(out, 2, &self.b);
        encode::put_fixed64(out, 3, self.c);
    }
}

struct OurOuter<'a>(&'a Outer);

impl Encodable for OurOuter<'_> {
    fn encoded_size(&self) -> usize {
        let m = self.0;
        encode::size_int32(1, m.i32v)
            + encode::size_int64(2, m.i64v)
            + encode::size_int64(3, m.u64v as i64)
            + encode::size_bool(4, m.flag)
            + encode::size_fixed32(5, m.f32v)
            + encode::size_fixed64(6, m.f64v)
            + encode::size_fixed32(7, m.sf32 as u32)
            + encode::size_fixed64(8, m.sf64 as u64)
            + encode::size_str(9, &m.s)
            + encode::size_bytes(10, &m.by)
            + encode::size_nested(11, m.inner.as_ref())
            + encode::size_repeated_int32(12, &m.ri32)
            + encode::size_repeated_fixed64(13, &m.rf64)
            + encode::size_repeated_bytes(14, &m.rbytes)
            + encode::size_repeated_nested(15, &m.rinner)
            + encode::size_int64(300000, m.far)
    }
    fn encode(&self, out: &mut BytesMut) {
        let m = self.0;
        encode::put_int32(out, 1, m.i32v);
        encode::put_int64(out, 2, m.i64v);
        encode::put_int64(out, 3, m.u64v as i64);
        encode::put_bool(out, 4, m.flag);
        encode::put_fixed32(out, 5, m.f32v);
        encode::put_fixed64(out, 6, m.f64v);
        encode::put_fixed32(out, 7, m.sf32 as u32);
        encode::put_fixed64(out, 8, m.sf64 as u64);
        encode::put_str(out, 9, &m.s);
        encode::put_bytes(out, 10, &m.by);
        encode::put_nested(out, 11, m.inner.as_ref());
        encode::put_repeated_int32(out, 12, &m.ri32);
        encode::put_repeated_fixed64(out, 13, &m.rf64);
        encode::put_repeated_bytes(out, 14, &m.rbytes);
        encode::put_repeated_nested(out, 15, &m.rinner);
        encode::put_int64(out, 300000, m.far);
    }
}

#[derive(Default)]
struct InnerCb {
    v: Inner,
    acc: BytesCollector,
}

impl PbCallback for InnerCb {
    fn begin(&mut self, _len: usize) -> Result<(), PbError> {
        self.v = Inner::default();
        Ok(())
    }
    fn varint(&mut self, f: u32, v: i64) -> Result<(), PbError> {
        if f == 1 {
            self.v.a = v as i32;
        }
        Ok(())
    }
    fn fixed64(&mut self, f: u32, v: u64) -> Result<(), PbError> {
        if f == 3 {
            self.v.c = v;
        }
        Ok(())
    }
    fn bytes(&mut self, f: u32, c: Chunk<'_>) -> Result<(), PbError> {
        if f == 2 {
            if let Some(b) = self.acc.push(&c) {
                self.v.b = b.to_vec();
            }
        }
        Ok(())
    }
}

struct OuterCb {
    v: Outer,
    acc: BytesCollector,
    inner: NestedParser<InnerCb>,
}

impl Default for OuterCb {
    fn default() -> Self {
        OuterCb {
            v: Outer::default(),
            acc: BytesCollector::default(),
            inner: NestedParser::new(InnerCb::default()),
        }
    }
}

impl PbCallback for OuterCb {
    fn varint(&mut self, f: u32, v: i64) -> Result<(), PbError> {
        match f {
            1 => self.v.i32v = v as i32,
            2 => self.v.i64v = v,
            3 => self.v.u64v = v as u64,
            4 => self.v.flag = v != 0,
            12 => self.v.ri32.push(v as i32),
            300000 => self.v.far = v,
            _ => {}
        }
        Ok(())
    }
    fn fixed32(&mut self, f: u32, v: u32) -> Result<(), PbError> {
        match f {
            5 => self.v.f32v = v,
            7 => self.v.sf32 = v as i32,
            _ => {}
        }
        Ok(())
    }
    fn fixed64(&mut self, f: u32, v: u64) -> Result<(), PbError> {
        match f {
            6 => self.v.f64v = v,
            8 => self.v.sf64 = v as i64,
            13 => self.v.rf64.push(v),
            _ => {}
        }
        Ok(())
    }
    fn bytes(&mut self, f: u32, c: Chunk<'_>) -> Result<(), PbError> {
        match f {
            9 | 10 | 14 => {
                if let Some(b) = self.acc.push(&c) {
                    match f {
                        9 => {
                            self.v.s = String::from_utf8(b.to_vec())
                                .map_err(|e| PbError::invalid(e.to_string()))?
                        }
                        10 => self.v.by = b.to_vec(),
                        _ => self.v.rbytes.push(b.to_vec()),
                    }
                }
            }
            11 | 15 => {
                if let Some(s) = self.inner.feed(f, &c)? {
                    assert_eq!(s, ParseStatus::Finished);
                    let v = std::mem::take(&mut self.inner.callback_mut().v);
                    if f == 11 {
                        self.v.inner = Some(v);
                    } else {
                        self.v.rinner.push(v);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn parse_fragmented(data: &Bytes, cuts: &[usize]) -> Result<Outer, PbError> {
    let mut p = PbParser::new(OuterCb::default());
    p.prepare(data.len())?;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(data.len());
    points.sort();
    let mut last = 0;
    let mut status = if data.is_empty() {
        p.feed(data)?.status
    } else {
        ParseStatus::NeedMore
    };
    for c in points {
        if c > last {
            status = p.feed(&data.slice(last..c))?.status;
            last = c;
        }
    }
    assert_eq!(status, ParseStatus::Finished);
    Ok(p.into_callback().v)
}

fn inner_strategy() -> impl Strategy<Value = Inner> {
    (
        any::<i32>(),
        prop::collection::vec(any::<u8>(), 0..20),
        any::<u64>(),
    )
        .prop_map(|(a, b, c)| Inner { a, b, c })
}

fn small<T: Arbitrary + Default + Clone>() -> impl Strategy<Value = T> {
    prop_oneof![Just(T::default()), any::<T>()]
}

fn outer_strategy() -> impl Strategy<Value = Outer> {
    let scalars = (
        small::<i32>(),
        small::<i64>(),
        small::<u64>(),
        any::<bool>(),
        small::<u32>(),
        small::<u64>(),
        small::<i32>(),
        small::<i64>(),
        small::<i64>(),
    );
    let rest = (
        ".{0,12}",
        prop::collection::vec(any::<u8>(), 0..300),
        prop::option::of(inner_strategy()),
        prop::collection::vec(any::<i32>(), 0..5),
        prop::collection::vec(any::<u64>(), 0..4),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..5), 0..4),
        prop::collection::vec(inner_strategy(), 0..3),
    );
    (scalars, rest).prop_map(
        |(
            (i32v, i64v, u64v, flag, f32v, f64v, sf32, sf64, far),
            (s, by, inner, ri32, rf64, rbytes, rinner),
        )| Outer {
            i32v,
            i64v,
            u64v,
            flag,
            f32v,
            f64v,
            sf32,
            sf64,
            s,
            by,
            inner,
            ri32,
            rf64,
            rbytes,
            rinner,
            far,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prost_bytes_parse_to_the_same_values(m in outer_strategy(), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let wire = Bytes::from(m.encode_to_vec());
        prop_assert_eq!(&parse_fragmented(&wire, &[]).unwrap(), &m);
        prop_assert_eq!(&parse_fragmented(&wire, &cuts).unwrap(), &m);
    }

    #[test]
    fn our_encoding_is_prosts_encoding(m in outer_strategy()) {
        let ours = encode::to_bytes(&OurOuter(&m));
        prop_assert_eq!(ours.len(), OurOuter(&m).encoded_size());
        prop_assert_eq!(&ours[..], &m.encode_to_vec()[..]);
        prop_assert_eq!(Outer::decode(ours).unwrap(), m);
    }

    #[test]
    fn unknown_fields_are_skipped(
        i32v in any::<i32>(), by in prop::collection::vec(any::<u8>(), 0..40),
        x_varint in any::<u64>(), x_f64 in any::<u64>(), x_bytes in prop::collection::vec(any::<u8>(), 0..40),
        x_f32 in any::<u32>(), x_msg in prop::option::of(inner_strategy()),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let plus = OuterPlus { i32v, by: by.clone(), x_varint, x_f64, x_bytes, x_f32, x_msg };
        let wire = Bytes::from(plus.encode_to_vec());
        let got = parse_fragmented(&wire, &cuts).unwrap();
        prop_assert_eq!(got, Outer { i32v, by, ..Default::default() });
    }

    #[test]
    fn one_byte_at_a_time(m in outer_strategy()) {
        let wire = Bytes::from(m.encode_to_vec());
        let cuts: Vec<usize> = (1..wire.len()).collect();
        prop_assert_eq!(parse_fragmented(&wire, &cuts).unwrap(), m);
    }
}

/// Varints that overflow their field: prost refuses each, and so must we (whole and
/// byte by byte).
#[test]
fn overflowing_varints_are_refused_like_prost() {
    let mut value = vec![0x10]; // field 2 (int64), a ten-byte varint above 64 bits
    value.extend([0xff; 9]);
    value.push(0x7f);
    let cases: [(&str, Vec<u8>); 3] = [
        // 2^32 + 8: as 32 bits, field 1 varint.
        ("tag", vec![0x88, 0x80, 0x80, 0x80, 0x10, 0x01]),
        // field 10 (bytes) with length 2^32: as 32 bits, empty.
        ("length", vec![0x52, 0x80, 0x80, 0x80, 0x80, 0x10]),
        ("varint value", value),
    ];
    for (what, data) in cases {
        assert!(
            Outer::decode(&data[..]).is_err(),
            "prost accepts the {what}"
        );
        let data = Bytes::from(data);
        let bytewise: Vec<usize> = (1..data.len()).collect();
        for cuts in [&[][..], &bytewise[..]] {
            let got = parse_fragmented(&data, cuts);
            assert!(
                matches!(got, Err(PbError::VarintOverflow { what: w, .. }) if w == what),
                "{what} overflow: {got:?}"
            );
        }
    }
}
