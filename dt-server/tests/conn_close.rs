//! A closed client connection's watches and channel id go promptly (the server's
//! connection-closed hook), not after the 120 s watch timeout; the channel table does
//! not grow with connections that come and go.

mod net_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::kv::{KvCommands, WatchReq};
use dt_codec::{encode, PbInt};
use dt_net::ProcessInfo;
use net_support::*;

fn sync_watch(key: &str) -> Bytes {
    encode::to_bytes(&WatchReq {
        group_id: GROUP,
        sync_all: false,
        known_raft_indexes: vec![0],
        keys: vec![Bytes::copy_from_slice(key.as_bytes())],
    })
}

fn watch_channels(n: &OneNode) -> usize {
    n.server
        .kv_group(GROUP)
        .unwrap()
        .lock()
        .watch_channel_count()
}

#[test]
fn a_closed_connections_watches_go_within_500_ms() {
    let dir = tempfile::tempdir().unwrap();
    let n = one_node(dir.path());
    let pi = |i| ProcessInfo {
        uuid1: 0xabc,
        uuid2: i,
    };
    let mut a = Raw::handshaken(n.service, pi(1));
    let mut b = Raw::handshaken(n.service, pi(2));
    for (c, key) in [(&mut a, "wa"), (&mut b, "wb")] {
        let r = c
            .call(KvCommands::DTKV_SYNC_WATCH, sync_watch(key))
            .unwrap();
        assert_eq!((r.resp_code, r.biz_code), (0, 0), "{}", r.msg);
    }
    assert_eq!(watch_channels(&n), 2);
    assert_eq!(n.server.watch_channel_count(), 2);
    drop(a);
    let t0 = Instant::now();
    assert!(
        eventually(Duration::from_millis(500), || watch_channels(&n) == 1
            && n.server.watch_channel_count() == 1),
        "watch of the closed connection still there after 500 ms"
    );
    eprintln!("watch dropped {:?} after the close", t0.elapsed());
    // The other connection's watch is untouched and it is still served.
    let r = b
        .call(
            KvCommands::DTKV_QUERY_STATUS,
            encode::to_bytes(&PbInt(GROUP)),
        )
        .unwrap();
    assert_eq!(r.resp_code, 0);
    let st = <dt_client::kv::KvStatusResp as dt_client::kv::KvBody>::decode(&r.body).unwrap();
    assert_eq!(st.watch_count, 1);
    n.server.stop(Duration::from_secs(2));
}

#[test]
fn channel_table_does_not_grow_over_1000_connections() {
    let dir = tempfile::tempdir().unwrap();
    let n = one_node(dir.path());
    let status = encode::to_bytes(&PbInt(GROUP));
    let mut peak = 0;
    for i in 0..1000u64 {
        let mut c = Raw::handshaken(
            n.service,
            ProcessInfo {
                uuid1: 0xdef,
                uuid2: i + 1,
            },
        );
        // Every tenth one also watches a key; the others only ask for the status
        // (which gives the connection a channel id as well).
        if i % 10 == 0 {
            let r = c
                .call(KvCommands::DTKV_SYNC_WATCH, sync_watch("k"))
                .unwrap();
            assert_eq!(r.biz_code, 0);
        }
        let r = c
            .call(KvCommands::DTKV_QUERY_STATUS, status.clone())
            .unwrap();
        assert_eq!(r.resp_code, 0);
        peak = peak.max(n.server.watch_channel_count());
        drop(c);
    }
    // Closes are seen asynchronously: a few may be pending at any moment, never a
    // number that grows with the connections.
    assert!(peak <= 20, "channel table reached {peak} entries");
    assert!(
        eventually(Duration::from_millis(500), || n
            .server
            .watch_channel_count()
            == 0
            && watch_channels(&n) == 0),
        "table {} entries, {} watch channels after all closed",
        n.server.watch_channel_count(),
        watch_channels(&n)
    );
    n.server.stop(Duration::from_secs(2));
}
