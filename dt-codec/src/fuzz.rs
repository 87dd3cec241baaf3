//! The property every fuzz driver of this crate checks, shared by the stable random driver
//! (`examples/fuzz_parser.rs`) and the AFL++ target (`fuzz/`).

use bytes::Bytes;

use crate::dynamic::{PbMessage, PbMessageCallback};
use crate::encode;
use crate::parser::PbParser;
use crate::PbValue;

fn parse_split(data: &Bytes, cuts: &[usize]) -> Result<PbMessage, String> {
    let mut p = PbParser::new(PbMessageCallback::default());
    p.prepare(data.len()).map_err(|e| e.to_string())?;
    if data.is_empty() {
        p.feed(data).map_err(|e| e.to_string())?;
    }
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        if c > last && c <= data.len() {
            p.feed(&data.slice(last..c)).map_err(|e| e.to_string())?;
            last = c;
        }
    }
    Ok(p.callback_mut().take())
}

/// Checks one input: parsing it whole, one byte at a time and split at `split` give the
/// same verdict; a message that decodes re-encodes to bytes that decode to the same
/// message; every length-delimited field can be tried as a nested message. Panics (the
/// fuzzer's signal) when a property fails; a parser panic is itself a failure.
pub fn check_input(data: &[u8], split: usize) {
    let data = Bytes::copy_from_slice(data);
    let whole = parse_split(&data, &[]);
    let bytewise: Vec<usize> = (1..data.len()).collect();
    assert_eq!(whole, parse_split(&data, &bytewise), "byte-by-byte differs");
    let cut = split % (data.len() + 1);
    assert_eq!(whole, parse_split(&data, &[cut]), "split at {cut} differs");
    if let Ok(m) = whole {
        let re = encode::to_bytes(&m);
        assert_eq!(
            PbMessage::decode(&re).as_ref(),
            Ok(&m),
            "re-encoding changed the message"
        );
        for f in &m.fields {
            if let PbValue::Bytes(b) = &f.value {
                let _ = PbMessage::decode(b);
            }
        }
    }
}

/// One field of a message, for property tests of decoders: field `num` with wire type
/// `wire_type` and a payload of its kind (`v` for numbers, `data` for a
/// length-delimited field; nothing for the wire types the format refuses, 3, 4, 6, 7).
///
/// ```
/// use dt_codec::fuzz::field_bytes;
/// assert_eq!(field_bytes(1, 0, 150, &[]), [0x08, 0x96, 0x01]);
/// assert_eq!(field_bytes(2, 2, 0, b"ab"), [0x12, 2, b'a', b'b']);
/// ```
pub fn field_bytes(num: u32, wire_type: u8, v: u64, data: &[u8]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    encode::put_varint(&mut out, ((num << 3) | wire_type as u32) as u64);
    match wire_type {
        0 => encode::put_varint(&mut out, v),
        1 => out.extend_from_slice(&v.to_le_bytes()),
        5 => out.extend_from_slice(&(v as u32).to_le_bytes()),
        2 => {
            encode::put_varint(&mut out, data.len() as u64);
            out.extend_from_slice(data);
        }
        _ => {}
    }
    out.to_vec()
}
