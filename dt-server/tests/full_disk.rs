//! The operations guide's "Disk full or failing", on the real `dt-server` binary with its
//! data directory on a small tmpfs that fills up under writes: the group stops at the
//! first failed write instead of retrying, the process keeps running and says which file
//! failed, later writes are refused, and after space is freed and the server restarted
//! every acknowledged write is there and new writes go through.
//!
//! Runs when this process may mount a tmpfs (root on Linux), and prints a `SKIPPED` line
//! otherwise.

mod support;

#[path = "../../dt-raft/tests/common/tmpfs.rs"]
mod tmpfs;

use std::time::{Duration, Instant};

use support::{put_until_ok, value_8k, Layout, Server};
use tmpfs::{fill, Tmpfs};

const T: Duration = Duration::from_secs(30);

#[test]
fn a_full_disk_stops_the_group_and_a_restart_after_freeing_space_keeps_every_acknowledged_write() {
    let fs = match Tmpfs::mount("16m") {
        Ok(fs) => fs,
        Err(why) => {
            println!(
                "SKIPPED a_full_disk_stops_the_group_and_a_restart_after_freeing_space_keeps_every_acknowledged_write: no tmpfs to fill ({why})"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(1);
    let data = fs.dir.join("data");
    let f = l.write_node(
        dir.path(),
        1,
        &format!("dataDir = {}\n", data.display()),
        "",
    );
    let mut s = Server::start(&f, "run1.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "k0", "0", T);

    // Leave ~256 KiB: room for some 30 writes of 8 KiB, then the disk is full.
    let filler = fs.dir.join("filler");
    fill(&filler, 256 * 1024);
    let mut acked = Vec::new();
    let mut first_failure = None;
    let end = Instant::now() + T;
    for i in 1..2000u32 {
        match kv.put(0, format!("k{i}"), value_8k(i)) {
            Ok(_) => {
                assert!(
                    first_failure.is_none(),
                    "k{i} acknowledged after an earlier write failed ({first_failure:?})"
                );
                acked.push(i);
            }
            Err(e) => {
                if first_failure.is_none() {
                    first_failure = Some((i, e.to_string()));
                }
                if i > first_failure.as_ref().unwrap().0 + 3 {
                    break;
                }
            }
        }
        assert!(Instant::now() < end, "the disk never filled");
    }
    let (failed_at, err) = first_failure.expect("no write failed on a full disk");
    eprintln!(
        "{} writes acknowledged; k{failed_at} failed: {err}",
        acked.len()
    );
    assert!(
        !acked.is_empty(),
        "nothing acknowledged before the disk filled"
    );

    // Still running, and its log names the failure.
    assert!(s.child.try_wait().unwrap().is_none(), "the server exited");
    let log = s.log_text();
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("No space left on device")
            && l.contains("data/0/log/")),
        "no error line naming the full disk and the log file:\n{log}"
    );
    assert!(
        log.contains("free space or fix the device, then restart"),
        "no advice in the log:\n{log}"
    );

    // Space comes back, but the stopped group must not take writes again until restart.
    std::fs::remove_file(&filler).unwrap();
    assert!(
        kv.put(0, "after-free", "x").is_err(),
        "a write went through after the group stopped"
    );
    kv.stop(Duration::from_secs(1));
    s.terminate();
    let st = s.wait_exit(T);
    eprintln!("exit after the failure: {st:?}");

    // Restart: every acknowledged write is there; new ones go through.
    let mut s = Server::start(&f, "run2.log");
    let kv = put_until_ok(&l.client_servers(), &[1], "probe", "p", T);
    for &i in &acked {
        let got = kv.get(0, format!("k{i}")).unwrap().map(|n| n.data);
        assert_eq!(
            got,
            Some(value_8k(i)),
            "k{i} acknowledged before the disk filled"
        );
    }
    kv.put(0, "k-after-restart", value_8k(0)).unwrap();
    kv.stop(Duration::from_secs(1));
    s.stop_clean();
}
