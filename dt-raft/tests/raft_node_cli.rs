//! The `raft_node` example refuses bad flags and reports a node missing from the server
//! list. Its source is compiled into this test.

use clap::Parser;

#[allow(dead_code)]
#[path = "../examples/raft_node.rs"]
mod raft_node;

#[test]
fn bad_flags_are_refused() {
    for bad in [
        &["--bogus"][..],
        &[],
        &["--servers", "1,127.0.0.1:1", "--dir", "/tmp/x"],
        &[
            "--servers",
            "1,127.0.0.1:1",
            "--node-id",
            "0",
            "--dir",
            "/tmp/x",
        ],
        &[
            "--servers",
            "1,127.0.0.1:1",
            "--node-id",
            "1",
            "--dir",
            "/tmp/x",
            "--members",
            "a",
        ],
    ] {
        let argv = std::iter::once("raft_node").chain(bad.iter().copied());
        assert!(
            raft_node::Args::try_parse_from(argv).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn a_node_not_in_the_server_list_is_reported() {
    let args = raft_node::Args::try_parse_from([
        "raft_node",
        "--servers",
        "1,127.0.0.1:1",
        "--node-id",
        "2",
        "--dir",
        "/tmp/x",
    ])
    .unwrap();
    let err = raft_node::run(&args).unwrap_err();
    assert_eq!(err, "node 2 is not in --servers");
    let args = raft_node::Args::try_parse_from([
        "raft_node",
        "--servers",
        "1;",
        "--node-id",
        "1",
        "--dir",
        "/tmp/x",
    ])
    .unwrap();
    assert!(raft_node::run(&args)
        .unwrap_err()
        .contains("not 'id,host:port' format"));
}
