//! The operations guide's "Lost quorum" (docs/operations.md), on three `dt-server`
//! processes under a sequential writer: with two of three members killed the survivor
//! reports no leader, its term stays put (pre-votes fail), and no write is answered;
//! once one member is restarted on its data directory the group recovers by itself, the
//! writer goes on, and every write answered before, during and after is there.

mod support;

use std::time::{Duration, Instant};

use support::{
    check_written, put_until_ok, start_all, status, wait_until, Layout, SeqWriter, Server,
};

const T: Duration = Duration::from_secs(30);

#[test]
fn a_group_without_a_majority_stops_answering_and_recovers_when_a_member_returns() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(3);
    let files = l.write_all(dir.path(), "");
    let admin_file = &files[0].servers;
    let mut nodes = start_all(&files, "run.log");
    let kv = put_until_ok(&l.client_servers(), &l.ids(), "k0", "0", T);
    let writer = SeqWriter::start(kv);
    writer.wait_progress(20, "the writer to start", T);

    // Two members die (the leader among them); node `survivor` is left alone.
    let leader = status(admin_file, 1, 0)["leaderId"].as_i64().unwrap() as i32;
    let survivor = if leader == 3 { 1 } else { 3 };
    for id in l.ids().into_iter().filter(|&id| id != survivor) {
        nodes[id as usize - 1].kill();
    }
    wait_until("the survivor to report no leader", T, || {
        status(admin_file, survivor, 0)["leaderId"] == 0
    });
    // No majority: no write is answered, and the survivor's term does not climb (its
    // pre-votes fail, so it never starts an election). electTimeout is 1 s here.
    let term = status(admin_file, survivor, 0)["term"].clone();
    assert!(term.as_i64().is_some_and(|t| t > 0), "term: {term}");
    let acked = writer.acked();
    let until = Instant::now() + Duration::from_millis(3000);
    while Instant::now() < until {
        let s = status(admin_file, survivor, 0);
        assert_eq!(
            s["term"], term,
            "the survivor's term moved without a majority"
        );
        assert_eq!(s["leaderId"], 0, "{s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        writer.acked(),
        acked,
        "a write was answered without a majority"
    );
    assert!(writer.failures() > 0, "the writer saw no failure");

    // One member comes back on its data directory: the group recovers by itself.
    let back = if survivor == 1 { 2 } else { 1 };
    nodes[back as usize - 1] = Server::start(&files[back as usize - 1], "run2.log");
    writer.wait_progress(20, "writes after a member returned", T);
    let last = writer.stop();

    check_written(&l, last);
    for id in [survivor, back] {
        let n = &mut nodes[id as usize - 1];
        n.stop_clean();
    }
}
