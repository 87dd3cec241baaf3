//! The parser's acceptance rules, fragmentation and callback control, against hand-made
//! inputs (the golden-vector tests cover the reference's own verdicts).

use bytes::Bytes;
use dt_codec::{
    Chunk, ParseStatus, PbCallback, PbError, PbMessage, PbMessageCallback, PbParser, PbValue,
};

/// Parses `data` split at the given cut points; returns the message or the error.
fn parse_split(data: &[u8], cuts: &[usize]) -> Result<(ParseStatus, PbMessage), PbError> {
    let data = Bytes::copy_from_slice(data);
    let mut p = PbParser::new(PbMessageCallback::default());
    p.prepare(data.len())?;
    let mut last = 0;
    let mut status = if data.is_empty() {
        p.feed(&data)?.status
    } else {
        ParseStatus::NeedMore
    };
    let mut points: Vec<usize> = cuts.iter().copied().filter(|&c| c < data.len()).collect();
    points.push(data.len());
    for c in points {
        if c <= last {
            continue;
        }
        let fed = p.feed(&data.slice(last..c))?;
        assert_eq!(fed.consumed, c - last);
        status = fed.status;
        last = c;
    }
    Ok((status, p.callback_mut().take()))
}

fn all_ways(data: &[u8]) -> Result<(ParseStatus, PbMessage), PbError> {
    let whole = parse_split(data, &[]);
    let each: Vec<usize> = (1..data.len()).collect();
    let bytewise = parse_split(data, &each);
    assert_eq!(whole, bytewise, "byte-by-byte differs for {data:02x?}");
    for c in 1..data.len() {
        assert_eq!(whole, parse_split(data, &[c]), "split at {c}");
    }
    whole
}

#[test]
fn invalid_wire_types_are_fatal() {
    for (bytes, wt) in [
        (&[0x0b, 0x01][..], 3),
        (&[0x0c][..], 4),
        (&[0x0e, 1][..], 6),
        (&[0x0f, 1][..], 7),
    ] {
        assert_eq!(
            all_ways(bytes),
            Err(PbError::InvalidWireType {
                field: 1,
                wire_type: wt
            })
        );
    }
    // After a valid field too.
    assert!(matches!(
        all_ways(&[0x08, 0x01, 0x13]),
        Err(PbError::InvalidWireType {
            field: 2,
            wire_type: 3
        })
    ));
}

#[test]
fn field_zero_is_fatal() {
    assert_eq!(all_ways(&[0x00, 0x01]), Err(PbError::FieldNumberZero));
    assert_eq!(all_ways(&[0x02, 0x01, 0x61]), Err(PbError::FieldNumberZero));
}

#[test]
fn overlong_varints_are_fatal() {
    assert_eq!(
        all_ways(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x01]),
        Err(PbError::VarintTooLong { max_bytes: 5 })
    );
    let mut v = vec![0x08];
    v.extend([0x80; 10]);
    v.push(0x01);
    assert_eq!(all_ways(&v), Err(PbError::VarintTooLong { max_bytes: 10 }));
    // Exactly 10 bytes is fine: -1 as int64.
    let (_, m) = all_ways(&[
        0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ])
    .unwrap();
    assert_eq!(m.get(7), Some(&PbValue::Varint(u64::MAX)));
}

#[test]
fn lengths_are_checked() {
    assert_eq!(
        all_ways(&[0x12, 0x05, 0x61, 0x62]),
        Err(PbError::LengthOverrun {
            field: 2,
            len: 5,
            remaining: 2
        })
    );
    assert_eq!(
        all_ways(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x07]),
        Err(PbError::LengthOverrun {
            field: 2,
            len: i32::MAX as usize,
            remaining: 0
        })
    );
    assert_eq!(
        all_ways(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(PbError::NegativeLength { field: 2, len: -1 })
    );
}

#[test]
fn truncation_is_detected_at_message_end() {
    assert!(matches!(
        all_ways(&[0x08, 0x80]),
        Err(PbError::Truncated { field: 1, .. })
    ));
    assert!(matches!(
        all_ways(&[0x80]),
        Err(PbError::Truncated {
            field: 0,
            what: "tag"
        })
    ));
    // The reference misses these two (erratum 3); we do not.
    assert!(matches!(
        all_ways(&[0x09, 1, 2, 3, 4]),
        Err(PbError::Truncated {
            field: 1,
            what: "fixed64 value"
        })
    ));
    assert!(matches!(
        all_ways(&[0x0d, 1, 2]),
        Err(PbError::Truncated {
            field: 1,
            what: "fixed32 value"
        })
    ));
    assert!(matches!(
        all_ways(&[0x12]),
        Err(PbError::Truncated { field: 2, .. })
    ));
}

#[test]
fn unknown_fields_of_every_allowed_type_are_delivered() {
    let data = [
        0x12, 0x01, 0x61, // 2: "a"
        0x58, 0x96, 0x01, // 11: 150
        0x61, 1, 2, 3, 4, 5, 6, 7, 8, // 12: fixed64
        0x6a, 0x03, 0x78, 0x78, 0x78, // 13: "xxx"
        0x75, 4, 3, 2, 1, // 14: fixed32
        0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01, // 536870911: 1
    ];
    let (s, m) = all_ways(&data).unwrap();
    assert_eq!(s, ParseStatus::Finished);
    assert_eq!(m.fields.len(), 6);
    assert_eq!(m.get(12), Some(&PbValue::Fixed64(0x0807060504030201)));
    assert_eq!(m.get(14), Some(&PbValue::Fixed32(0x01020304)));
    assert_eq!(m.get(536_870_911), Some(&PbValue::Varint(1)));
    assert_eq!(dt_codec::encode::to_bytes(&m), &data[..]);
}

#[test]
fn non_minimal_encodings_are_accepted() {
    let (_, m) = all_ways(&[0x88, 0x80, 0x80, 0x80, 0x00, 0x05]).unwrap();
    assert_eq!(m.get(1), Some(&PbValue::Varint(5)));
    let (_, m) = all_ways(&[0x08, 0x81, 0x80, 0x80, 0x80, 0x00]).unwrap();
    assert_eq!(m.get(1), Some(&PbValue::Varint(1)));
}

#[test]
fn empty_message_and_empty_fields() {
    let (s, m) = all_ways(&[]).unwrap();
    assert_eq!(s, ParseStatus::Finished);
    assert!(m.fields.is_empty());
    let (_, m) = all_ways(&[0x12, 0x00]).unwrap();
    assert_eq!(m.get(2), Some(&PbValue::Bytes(Bytes::new())));
}

#[test]
fn bytes_beyond_the_message_are_not_consumed() {
    let data = Bytes::from_static(&[0x08, 0x01, 0xff, 0xff]);
    let mut p = PbParser::new(PbMessageCallback::default());
    p.prepare(2).unwrap();
    let fed = p.feed(&data).unwrap();
    assert_eq!(fed.consumed, 2);
    assert_eq!(fed.status, ParseStatus::Finished);
    // Further feeding does nothing.
    assert_eq!(p.feed(&data).unwrap().consumed, 0);
}

#[test]
fn parser_is_reusable_and_refuses_misuse() {
    let mut p = PbParser::new(PbMessageCallback::default());
    assert!(matches!(p.feed(&Bytes::new()), Err(PbError::Misuse(_))));
    assert!(p.parse_whole(&Bytes::from_static(&[0x0b])).is_err());
    assert!(matches!(
        p.feed(&Bytes::from_static(&[0x08])),
        Err(PbError::Misuse(_))
    ));
    assert_eq!(
        p.parse_whole(&Bytes::from_static(&[0x08, 0x02])).unwrap(),
        ParseStatus::Finished
    );
    assert_eq!(p.callback_mut().take().get(1), Some(&PbValue::Varint(2)));
}

/// Records the callback sequence and rejects or fails on demand.
#[derive(Default)]
struct Script {
    log: Vec<String>,
    reject_field: Option<u32>,
    fail_field: Option<u32>,
}

impl Script {
    fn check(&mut self, field: u32) -> Result<(), PbError> {
        if self.reject_field == Some(field) {
            return Err(PbError::rejected("no"));
        }
        if self.fail_field == Some(field) {
            return Err(PbError::invalid("bad"));
        }
        Ok(())
    }
}

impl PbCallback for Script {
    fn begin(&mut self, len: usize) -> Result<(), PbError> {
        self.log.push(format!("begin {len}"));
        Ok(())
    }
    fn varint(&mut self, field: u32, v: i64) -> Result<(), PbError> {
        self.log.push(format!("v {field} {v}"));
        self.check(field)
    }
    fn bytes(&mut self, field: u32, c: Chunk<'_>) -> Result<(), PbError> {
        self.log.push(format!(
            "b {field} {:?} {}/{}",
            c.as_slice(),
            c.offset(),
            c.field_len()
        ));
        self.check(field)
    }
    fn end(&mut self, ok: bool) -> Result<(), PbError> {
        self.log.push(format!("end {ok}"));
        Ok(())
    }
}

#[test]
fn rejection_skips_the_rest_and_keeps_the_stream() {
    let data = Bytes::from_static(&[0x08, 0x01, 0x10, 0x02, 0x18, 0x03]);
    let mut p = PbParser::new(Script {
        reject_field: Some(2),
        ..Default::default()
    });
    p.prepare(data.len()).unwrap();
    let fed = p.feed(&data.slice(..3)).unwrap();
    assert_eq!(fed.status, ParseStatus::NeedMore);
    let fed = p.feed(&data.slice(3..)).unwrap();
    assert_eq!(fed.status, ParseStatus::Rejected);
    assert_eq!(fed.consumed, 3);
    assert_eq!(p.callback().log, ["begin 6", "v 1 1", "v 2 2", "end false"]);
}

#[test]
fn callback_failure_is_fatal_and_ends_once() {
    let data = Bytes::from_static(&[0x08, 0x01, 0x10, 0x02]);
    let mut p = PbParser::new(Script {
        fail_field: Some(1),
        ..Default::default()
    });
    assert_eq!(p.parse_whole(&data), Err(PbError::invalid("bad")));
    assert_eq!(p.callback().log, ["begin 4", "v 1 1", "end false"]);
}

#[test]
fn split_bytes_field_arrives_in_chunks_with_offsets() {
    let data = Bytes::from_static(&[0x12, 0x04, b'a', b'b', b'c', b'd']);
    let mut p = PbParser::new(Script::default());
    p.prepare(data.len()).unwrap();
    p.feed(&data.slice(..3)).unwrap();
    p.feed(&data.slice(3..5)).unwrap();
    assert_eq!(
        p.feed(&data.slice(5..)).unwrap().status,
        ParseStatus::Finished
    );
    assert_eq!(
        p.callback().log,
        [
            "begin 6",
            "b 2 [97] 0/4",
            "b 2 [98, 99] 1/4",
            "b 2 [100] 3/4",
            "end true"
        ]
    );
}

#[test]
fn whole_field_is_zero_copy() {
    struct Keep(Option<Bytes>);
    impl PbCallback for Keep {
        fn bytes(&mut self, _f: u32, c: Chunk<'_>) -> Result<(), PbError> {
            assert!(c.is_whole());
            self.0 = Some(c.to_bytes());
            Ok(())
        }
    }
    let data = Bytes::from(vec![0x12, 0x03, b'x', b'y', b'z']);
    let mut p = PbParser::new(Keep(None));
    p.parse_whole(&data).unwrap();
    let got = p.into_callback().0.unwrap();
    assert_eq!(got, &b"xyz"[..]);
    assert_eq!(
        got.as_ptr(),
        data[2..].as_ptr(),
        "must share the input buffer"
    );
}

#[test]
fn huge_declared_lengths_do_not_allocate() {
    // A 2 GiB frame size with a field declaring 1 GiB, fed 3 bytes: only the bytes given
    // are held (checked by the collector growing with input).
    let mut p = PbParser::new(PbMessageCallback::default());
    p.prepare(i32::MAX as usize).unwrap();
    let fed = p
        .feed(&Bytes::from_static(&[
            0x12, 0x80, 0x80, 0x80, 0x80, 0x04, 1, 2, 3,
        ]))
        .unwrap();
    assert_eq!(fed.status, ParseStatus::NeedMore);
    assert_eq!(fed.consumed, 9);
}

#[test]
fn varints_overflowing_their_field_are_fatal() {
    // Tag 2^32 + 8: truncated to 32 bits it would read as field 1, varint.
    let tag = [0x88, 0x80, 0x80, 0x80, 0x10, 0x01];
    // Field 2 with length 2^32: truncated to 32 bits it would read as an empty field.
    let len = [0x12, 0x80, 0x80, 0x80, 0x80, 0x10];
    // Field 1 with a ten-byte varint whose last byte is 0x7f: bits 64.. are set.
    let mut value = vec![0x08];
    value.extend([0xff; 9]);
    value.push(0x7f);
    let overflow = |field, what, bits| PbError::VarintOverflow { field, what, bits };
    assert_eq!(all_ways(&tag), Err(overflow(0, "tag", 32)));
    assert_eq!(all_ways(&len), Err(overflow(2, "length", 32)));
    assert_eq!(all_ways(&value), Err(overflow(1, "varint value", 64)));
    assert_eq!(
        overflow(2, "length", 32).to_string(),
        "varint length of field 2 overflows 32 bits"
    );
    // The largest values that fit are accepted: tag 2^32 - 1 is field 2^29 - 1 with wire
    // type 7 (refused for its wire type, not its size); u64::MAX is fine.
    assert_eq!(
        all_ways(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(PbError::InvalidWireType {
            field: (1 << 29) - 1,
            wire_type: 7
        })
    );
    let mut max = vec![0x08];
    max.extend([0xff; 9]);
    max.push(0x01);
    assert_eq!(
        all_ways(&max).unwrap().1.get(1),
        Some(&PbValue::Varint(u64::MAX))
    );
}

/// The fuzz seeds (the AFL corpus in `fuzz/seeds`) pass the fuzz property, and the
/// overflow seeds are refused for their overflow.
#[test]
fn fuzz_seeds_hold_the_fuzz_property() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        for split in 0..=data.len() {
            dt_codec::fuzz::check_input(&data, split);
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("_overflow") {
            seen += 1;
            assert!(
                matches!(all_ways(&data), Err(PbError::VarintOverflow { .. })),
                "{name}"
            );
        }
    }
    assert_eq!(seen, 3, "overflow seeds in {}", dir.display());
}
