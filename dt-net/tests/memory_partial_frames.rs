//! 50 connections that each send all but the last bytes of a maximum-size frame (5 MiB)
//! and stop: with the default limits the server holds at most `max_read_buffer_bytes` of
//! partial frames (the other connections wait, unread), and keeps serving other clients.
//!
//! Asserted: `ServerStats::read_buffered_bytes` ≤ 64 MiB + 4 bytes per connection at
//! every sample, and the growth of this process's VmRSS ≤ 100 MiB (50 partial frames
//! buffered would be 250 MiB). Alone in its binary so that the RSS is the server's.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dt_net::*;

mod common;
use common::*;

const CONNS: usize = 50;
const MIB: usize = 1024 * 1024;

#[test]
fn partial_max_size_frames_keep_the_server_bounded() {
    let mut server = NioServer::new(NioServerConfig {
        io_threads: 2,
        ..Default::default()
    });
    server.start().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let rss0 = rss_bytes();

    // A ping frame of exactly the maximum packet size, minus its last KiB.
    let body = vec![3u8; 5 * MIB - 64];
    let mut frame = req_frame(1, Commands::CMD_PING, 2, 60_000_000_000, &body);
    let len = frame.len() - 4;
    assert!(len <= 5 * MIB, "{len}");
    frame.truncate(frame.len() - 1024);
    let mut socks: Vec<_> = (0..CONNS)
        .map(|i| (raw_handshaken(addr, i as u64 + 1), 0usize))
        .collect();
    let read_bound = 64 * MIB + 4 * CONNS;
    let mut watch = BoundWatch::new("partial frames hold", read_bound, rss0, 100 * MIB);
    let mut idle_since = Instant::now();
    while watch.elapsed() < Duration::from_secs(8) {
        let mut progress = false;
        for (s, off) in socks.iter_mut() {
            if *off >= frame.len() {
                continue;
            }
            let before = *off;
            match std::io::Write::write(s, &frame[*off..]) {
                Ok(n) => *off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("server closed a connection with a partial frame: {e}"),
            }
            progress |= *off > before;
        }
        watch.sample(server.stats().read_buffered_bytes);
        if progress {
            idle_since = Instant::now();
        } else if idle_since.elapsed() > Duration::from_millis(1500) {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let sent: usize = socks.iter().map(|s| s.1).sum();
    println!(
        "peers wrote {} MiB in {:?}; max partial frames held {} MiB, max RSS growth {} MiB",
        sent / MIB,
        watch.elapsed(),
        watch.max / MIB,
        watch.max_rss / MIB
    );
    // Another client is still served; the peers' connections close when they go.
    still_serves_then_closes_dropped_peers(&server, addr, socks);
    assert_eq!(server.stats().read_buffered_bytes, 0);
    server.stop(Duration::from_secs(1));
}
