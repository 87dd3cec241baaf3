//! The operations guide's rolling restart ("Upgrades and restarts" in docs/operations.md)
//! on three `dt-server` processes while a client keeps writing: each follower in turn is
//! stopped with SIGTERM, started again and waited for (group ready, caught up), then the
//! leadership moves to a follower with `dt-admin transfer-leader` and the old leader is
//! restarted last. The writer keeps making progress through every step, and every write
//! it was answered is there at the end.

mod support;

use std::time::Duration;

use support::{
    check_written, ok, put_until_ok, start_all, status, stop_all, try_status, wait_until, Layout,
    NodeFiles, SeqWriter, Server,
};

const T: Duration = Duration::from_secs(30);

/// Stops node `i` with SIGTERM (exit 0 required), starts it again from its files and
/// waits until it reports group 0 ready, a leader, and applied up to the commit index
/// `leader` reported after the restart.
fn restart(nodes: &mut [Server], files: &[NodeFiles], i: usize, leader: i32, round: usize) {
    let admin_file = &files[0].servers;
    nodes[i].stop_clean();
    nodes[i] = Server::start(&files[i], &format!("run{round}.log"));
    let id = i as i32 + 1;
    let commit = status(admin_file, leader, 0)["commitIndex"]
        .as_i64()
        .unwrap();
    wait_until("the restarted node to catch up", T, || {
        try_status(admin_file, id, 0).is_some_and(|j| {
            j["groupReady"] == true
                && j["leaderId"].as_i64().unwrap_or(0) > 0
                && j["lastApplied"].as_i64().unwrap_or(0) >= commit
        })
    });
}

#[test]
fn a_rolling_restart_under_writes_loses_nothing_and_never_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(3);
    let files = l.write_all(dir.path(), "");
    let admin_file = &files[0].servers;
    let mut nodes = start_all(&files, "run0.log");

    // The writer: k1, k2, ... one after another.
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "k0", "0", T);
    let writer = SeqWriter::start(kv);
    let progress = |what: &str| writer.wait_progress(20, what, T);
    progress("the writer to start");

    // 1.-3. Each follower in turn.
    let leader = status(admin_file, 1, 0)["leaderId"].as_i64().unwrap() as i32;
    let followers: Vec<i32> = l.ids().into_iter().filter(|&n| n != leader).collect();
    for (round, &f) in followers.iter().enumerate() {
        restart(&mut nodes, &files, f as usize - 1, leader, round + 1);
        progress("writes after a follower's restart");
    }
    // 4. The leader last, after moving the leadership to a follower.
    let to = followers[0];
    let r = ok(
        admin_file,
        &[
            "transfer-leader",
            "--group-id",
            "0",
            "--old-leader",
            &leader.to_string(),
            "--new-leader",
            &to.to_string(),
        ],
    );
    assert!(
        r.out.contains("Transfer leader completed successfully"),
        "{}",
        r.out
    );
    wait_until("the new leader", T, || {
        status(admin_file, to, 0)["leaderId"] == to
    });
    restart(&mut nodes, &files, leader as usize - 1, to, 3);
    progress("writes after the old leader's restart");

    let failures = writer.failures();
    let last = writer.stop();
    eprintln!("{last} writes answered, {failures} failed attempts, during the rolling restart");

    // Every answered write is there, read through a fresh client.
    check_written(&l, last);
    stop_all(&mut nodes);
}
