//! A client that pipelines a large burst of requests gets its first answers while the
//! server is still working through the burst, not after it: the IO worker writes a
//! connection's output between requests once it passes a threshold, and between read
//! chunks. Without that, a backlog crosses client and server as one clump and each side
//! idles while the other works through it (a single benchmark client then left both
//! cores a third idle).
//!
//! Asserted: when the first answer reaches the client, the server has handled fewer
//! than half of the burst's requests.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dt_net::*;

mod common;
use common::*;

const CMD: i32 = 5;
const BURST: usize = 4000;

/// Reads one whole frame (length prefix and body) from a blocking socket.
fn read_frame(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let n = i32::from_be_bytes(len);
    assert!(n >= 0, "bad frame length {n}");
    let mut body = vec![0u8; n as usize];
    s.read_exact(&mut body).unwrap();
    body
}

#[test]
fn answers_to_a_pipelined_burst_start_leaving_before_the_burst_is_handled() {
    let handled = Arc::new(AtomicUsize::new(0));
    let mut server = NioServer::new(NioServerConfig {
        io_threads: 1,
        ..Default::default()
    });
    let h = handled.clone();
    let answer = bytes::Bytes::from(vec![7u8; 1024]);
    server.register(
        CMD,
        FnProcessor(move |_p: &ReadPacket, _c: &ReqContext| {
            h.fetch_add(1, Ordering::SeqCst);
            // Some work per request, so that the burst takes a while to get through.
            let until = Instant::now() + Duration::from_micros(20);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            Some(WritePacket::response(WriteBody::Bytes(answer.clone())))
        }),
    );
    server.start().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();

    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&handshake_frame(0x5151, 7)).unwrap();
    let _handshake_answer = read_frame(&mut s);

    let mut burst = Vec::new();
    for i in 0..BURST {
        burst.extend(req_frame(1, CMD, 2 + i as i32, 60_000_000_000, b"q"));
    }
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&burst).unwrap());

    let _first = read_frame(&mut s);
    let at_first = handled.load(Ordering::SeqCst);
    // The rest still arrives, all of it.
    for _ in 1..BURST {
        read_frame(&mut s);
    }
    writer.join().unwrap();
    println!("requests handled when the first answer arrived: {at_first} of {BURST}");
    assert!(
        at_first < BURST / 2,
        "the first answer arrived only after {at_first} of {BURST} requests were handled"
    );
    assert_eq!(handled.load(Ordering::SeqCst), BURST);
    server.stop(Duration::from_secs(1));
}
