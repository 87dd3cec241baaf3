//! A client that pipelines reads of a large value and never reads its responses: the
//! server's memory for it must stay bounded and other clients go on being served.
//! Stopping reading it is not enough here: lease reads are answered later from the
//! group's thread, so every GET read before the output reached the high-water mark
//! (over 100 000 of them) would still be answered with 512 KiB each (RSS grew by 500
//! MiB in 4 s before the fix); the server closes it once its unsent output passes
//! `max_conn_unsent_bytes`.

mod net_support;

use std::io::Write;
use std::time::{Duration, Instant};

use dt_client::kv::{KvCommands, KvReq};
use dt_codec::encode;
use dt_net::ProcessInfo;
use net_support::*;

/// The resident set size of this process (VmRSS), in bytes.
fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn pipelined_large_reads_never_read_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let n = one_node(dir.path());
    let pi = |i| ProcessInfo {
        uuid1: 0x7e,
        uuid2: i,
    };
    let mut good = Raw::handshaken(n.service, pi(1));
    let value = vec![b'x'; 512 * 1024];
    let r = good
        .call(
            KvCommands::DTKV_PUT,
            encode::to_bytes(&KvReq::put(GROUP, "big", value)),
        )
        .unwrap();
    assert_eq!((r.resp_code, r.biz_code), (0, 0));

    let base = rss_bytes();
    let mut bad = Raw::handshaken(n.service, pi(2));
    bad.s.set_nonblocking(true).unwrap();
    let get = encode::to_bytes(&KvReq::key(GROUP, "big"));
    let mut batch = Vec::new();
    for seq in 2..1002 {
        batch.extend(frame(KvCommands::DTKV_GET, seq, get.clone()));
    }
    let (mut sent, mut peak) = (0usize, 0usize);
    let mut off = 0usize;
    let end = Instant::now() + Duration::from_secs(4);
    let mut good_slowest = Duration::ZERO;
    while Instant::now() < end {
        while let Ok(k) = bad.s.write(&batch[off..]) {
            sent += k;
            off = (off + k) % batch.len();
        }
        peak = peak.max(rss_bytes());
        let t0 = Instant::now();
        let r = good
            .call(
                KvCommands::DTKV_GET,
                encode::to_bytes(&KvReq::key(GROUP, "nothing")),
            )
            .expect("good client answered");
        assert_eq!(
            r.resp_code, 0,
            "the good client's GET was answered {:?}",
            r.msg
        );
        good_slowest = good_slowest.max(t0.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let growth = peak.saturating_sub(base);
    eprintln!(
        "sent {} KiB of GETs ({} requests); RSS growth {} MiB; good client slowest {good_slowest:?}",
        sent / 1024,
        sent / (batch.len() / 1000),
        growth >> 20
    );
    assert!(growth < 400 << 20, "RSS grew by {} MiB", growth >> 20);
    // It was closed (not merely paused): what it can still read ends.
    bad.s.set_nonblocking(false).unwrap();
    assert!(
        bad.closed_within(Duration::from_secs(10)),
        "the server kept the connection that never reads"
    );
    drop(bad);
    n.server.stop(Duration::from_secs(2));
}
