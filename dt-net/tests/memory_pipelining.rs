//! 200 connections that pipeline pings and never read their responses: with the default
//! limits the server's unsent output stays under `max_write_buffer_bytes` plus one read's
//! worth of responses per connection, and it keeps serving other clients.
//!
//! Asserted: `ServerStats::write_buffered_bytes` ≤ 64 MiB + 200 × 80 KiB at every sample,
//! and the growth of this process's VmRSS (server and these raw clients) ≤ 200 MiB. This
//! test is alone in its binary so that the RSS is the server's.

use std::net::SocketAddr;
use std::time::Duration;

use dt_net::*;

mod common;
use common::*;

const CONNS: usize = 200;
const MIB: usize = 1024 * 1024;

#[test]
fn never_reading_pipeliners_keep_the_server_bounded() {
    let mut server = NioServer::new(NioServerConfig {
        io_threads: 2,
        ..Default::default()
    });
    server.start().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let rss0 = rss_bytes();

    let mut pings = Vec::new();
    for i in 0..64 {
        pings.extend(req_frame(
            1,
            Commands::CMD_PING,
            2 + i,
            60_000_000_000,
            &[9u8; 1024],
        ));
    }
    let mut socks: Vec<_> = (0..CONNS)
        .map(|i| (raw_handshaken(addr, i as u64 + 1), 0usize))
        .collect();
    let write_bound = 64 * MIB + CONNS * 80 * 1024;
    let mut watch = BoundWatch::new("unsent output", write_bound, rss0, 200 * MIB);
    while watch.elapsed() < Duration::from_secs(6) {
        for (s, off) in socks.iter_mut() {
            assert!(
                write_until_blocked(s, &pings, off),
                "the server closed a pipelining connection instead of pausing it"
            );
        }
        watch.sample(server.stats().write_buffered_bytes);
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent: usize = socks.iter().map(|s| s.1).sum();
    println!(
        "peers wrote {} MiB; max unsent output {} MiB, max RSS growth {} MiB",
        sent / MIB,
        watch.max / MIB,
        watch.max_rss / MIB
    );
    assert_eq!(server.stats().connections, CONNS);
    // Another client is still served; the peers' connections close when they go.
    still_serves_then_closes_dropped_peers(&server, addr, socks);
    server.stop(Duration::from_secs(1));
}
