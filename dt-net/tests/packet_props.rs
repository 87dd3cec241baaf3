//! Property tests: any header encodes to a frame that decodes to the same packet, however
//! the stream is fragmented; and a server answers requests written in random fragments.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use dt_net::*;
use proptest::prelude::*;

fn arb_packet() -> impl Strategy<Value = ReadPacket> {
    (
        1..4i32,
        1..i32::MAX,
        any::<i32>(),
        any::<i32>(),
        any::<i32>(),
        proptest::option::of("[a-zA-Z0-9 é]{0,20}"),
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..10)),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(t, cmd, seq, rc, bc, msg, to, extra, body)| ReadPacket {
            packet_type: t,
            command: cmd,
            seq,
            resp_code: rc,
            biz_code: bc,
            msg: msg.unwrap_or_default(),
            timeout_nanos: to,
            extra: extra.map(Bytes::from),
            body: Bytes::from(body),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn header_round_trip_any_fragmentation(
        pkts in proptest::collection::vec(arb_packet(), 1..5),
        cuts in proptest::collection::vec(1usize..64, 1..50),
    ) {
        let mut stream = Vec::new();
        for p in &pkts {
            stream.extend_from_slice(&p.to_frame());
        }
        let mut d = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let n = cuts[i % cuts.len()].min(stream.len() - pos);
            i += 1;
            buf.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            while let Some(p) = d.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        prop_assert_eq!(got, pkts);
    }
}

#[test]
fn server_answers_requests_written_in_random_fragments() {
    let mut s = NioServer::new(NioServerConfig {
        io_threads: 1,
        ..Default::default()
    });
    s.start().unwrap();
    let mut stream = handshake_frame(9, 9);
    for seq in 2..40 {
        stream.extend_from_slice(&req_frame(
            1,
            1,
            seq,
            5_000_000_000,
            &vec![seq as u8; seq as usize * 7],
        ));
    }
    let mut c = TcpStream::connect(("127.0.0.1", s.port())).unwrap();
    c.set_nodelay(true).unwrap();
    let mut x = 7u64;
    let mut pos = 0;
    while pos < stream.len() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (1 + (x >> 33) as usize % 50).min(stream.len() - pos);
        c.write_all(&stream[pos..pos + n]).unwrap();
        pos += n;
        if x.is_multiple_of(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let obs = read_for(&mut c, Duration::from_millis(500));
    assert!(!obs.closed);
    assert_eq!(obs.frames.len(), 39);
    for (i, (p, _)) in obs.frames.iter().skip(1).enumerate() {
        let seq = i as i32 + 2;
        assert_eq!(p.seq, seq);
        assert_eq!(&p.body[..], &vec![seq as u8; seq as usize * 7][..]);
    }
    s.stop(Duration::from_secs(1));
}
