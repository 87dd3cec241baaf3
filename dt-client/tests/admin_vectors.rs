//! The admin client's bodies against the recorded reference vectors (wire/raft_admin),
//! and its answers decoded from them.

use bytes::Bytes;
use dt_client::admin::{self, AdminNode};
use dt_common::vectors::unhex;
use serde_json::Value;

fn vectors() -> Option<Vec<Value>> {
    let dir = dt_common::vectors::golden_vectors("admin_vectors")?;
    let text = std::fs::read_to_string(dir.join("wire").join("raft_admin.jsonl")).unwrap();
    Some(
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

fn body(v: &[Value], name: &str) -> Bytes {
    let e = v
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name}"));
    Bytes::from(unhex(e["body_hex"].as_str().unwrap()))
}

#[test]
fn admin_bodies_match_the_reference() {
    let Some(v) = vectors() else { return };
    assert_eq!(
        admin::prepare_change_body(0, &[1, 2, 3], &[], &[2, 3, 4], &[5]),
        body(&v, "admin_prepare_change_req")
    );
    assert_eq!(
        admin::commit_or_abort_body(0, 200),
        body(&v, "admin_commit_change_req")
    );
    assert_eq!(
        admin::commit_or_abort_body(1, 0),
        body(&v, "admin_abort_change_req")
    );
    assert_eq!(
        admin::add_node_body(4, "127.0.0.1", 4004).unwrap(),
        body(&v, "admin_add_node_req")
    );
    assert_eq!(
        admin::add_group_body(2, &[1, 2, 3], &[4]),
        body(&v, "admin_add_group_req")
    );
    assert!(admin::add_node_body(4, "hôte", 1).is_err());
}

#[test]
fn admin_answers_decode() {
    let Some(v) = vectors() else { return };
    let nodes = admin::decode_list_nodes(&body(&v, "admin_list_nodes_resp")).unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(
        nodes[0],
        AdminNode {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 4001
        }
    );
    assert_eq!(nodes[1].port, 4002);
    assert_eq!(
        admin::decode_list_groups(&body(&v, "admin_list_groups_resp")).unwrap(),
        [0, 1, 300]
    );
    assert!(admin::decode_list_nodes(&Bytes::from_static(b"\x12\x05\x08")).is_err());
}
