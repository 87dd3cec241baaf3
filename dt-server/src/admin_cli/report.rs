//! Printing a result: the reference's human-readable lines, or one JSON object for
//! scripts.

use serde_json::{json, Value};

use super::exec::Outcome;
use super::exit::AdminError;

/// Java's `Collection.toString` / `Arrays.toString` of ints: `[1, 2, 3]`.
pub fn java_list(ids: &[i32]) -> String {
    let s: Vec<String> = ids.iter().map(i32::to_string).collect();
    format!("[{}]", s.join(", "))
}

/// The lines the reference prints for a successful command (without the progress
/// lines printed while it ran). `local_file_updated` is `Some(false)` when a command
/// that changes the servers left the local servers file as it was: the note follows.
pub fn human(outcome: &Outcome, servers_file: &str, local_file_updated: Option<bool>) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match outcome {
        Outcome::Nodes(nodes) => {
            line("Nodes:".into());
            for n in nodes {
                line(format!(
                    "  Node{{nodeId={}, host=[{},{}]}}",
                    n.node_id, n.host, n.port
                ));
            }
        }
        Outcome::Groups(g) => line(format!("Group IDs: {}", java_list(g))),
        Outcome::Status(s) => {
            line(format!(
                "Raft Status for group {} on node {}:",
                s.group_id, s.node_id
            ));
            line(format!("  Term: {}", s.term));
            line(format!("  Leader ID: {}", s.leader_id));
            line(format!("  Commit Index: {}", s.commit_index));
            line(format!("  Last Applied: {}", s.last_applied));
            line(format!("  Last Log Index: {}", s.last_log_index));
            line(format!(
                "  Last Apply Time To Now (ms): {}",
                s.last_apply_time_to_now_millis
            ));
            line(format!("  Apply Lag (ms): {}", s.apply_lag_millis));
            line(format!("  Init Finished: {}", s.is_init_finished()));
            line(format!("  Init Failed: {}", s.is_init_failed()));
            line(format!("  Group Ready: {}", s.is_group_ready()));
            if s.is_bug() {
                line("  Bug: bug flag is set, search BugLog in server logs".into());
            }
            line(format!("  Members: {}", java_list(&s.members)));
            line(format!("  Observers: {}", java_list(&s.observers)));
            if !s.prepared_members.is_empty() || !s.prepared_observers.is_empty() {
                line(format!(
                    "  Prepared Members: {}",
                    java_list(&s.prepared_members)
                ));
                line(format!(
                    "  Prepared Observers: {}",
                    java_list(&s.prepared_observers)
                ));
            }
            line(format!(
                "  Last Config Change Index: {}",
                s.last_config_change_index
            ));
            if !s.last_error.is_empty() {
                line(format!("  Last Error:\n{}", s.last_error));
            }
        }
        Outcome::Transferred { .. } => line("Transfer leader completed successfully".into()),
        Outcome::Prepared(i) => line(format!("SUCCESS. Prepare index: {i}")),
        Outcome::Committed(i) => line(format!("SUCCESS. Commit index: {i}")),
        Outcome::Aborted(i) => line(format!("SUCCESS. Abort index: {i}")),
        Outcome::GroupAdded => line("Add group completed successfully".into()),
        Outcome::GroupRemoved => line("Remove group completed successfully".into()),
        Outcome::NodeAdded => line("Add node completed successfully".into()),
        Outcome::NodeRemoved => line("Remove node completed successfully".into()),
        Outcome::ConfigSynced => line("Sync config completed successfully".into()),
    }
    if local_file_updated == Some(false) {
        line(String::new());
        line(format!(
            "NOTE: The local config file was not updated: {servers_file}"
        ));
        line("If this file is not on any server node, you need to manually edit it".into());
        line(
            "to reflect the configuration changes (sync-config only works for server-side files)."
                .into(),
        );
    }
    out
}

/// The JSON object for a successful command: `command`, `ok: true`, the result's
/// fields (camelCase, as the reference's messages name them) and, for commands that
/// change the servers, `localConfigUpdated`.
pub fn json_result(command: &str, outcome: &Outcome, local_file_updated: Option<bool>) -> Value {
    let mut v = match outcome {
        Outcome::Nodes(nodes) => json!({
            "nodes": nodes
                .iter()
                .map(|n| json!({"nodeId": n.node_id, "host": n.host, "port": n.port}))
                .collect::<Vec<_>>()
        }),
        Outcome::Groups(g) => json!({ "groupIds": g }),
        Outcome::Status(s) => json!({
            "groupId": s.group_id,
            "nodeId": s.node_id,
            "term": s.term,
            "leaderId": s.leader_id,
            "commitIndex": s.commit_index,
            "lastApplied": s.last_applied,
            "lastLogIndex": s.last_log_index,
            "lastApplyTimeToNowMillis": s.last_apply_time_to_now_millis,
            "applyLagMillis": s.apply_lag_millis,
            "initFinished": s.is_init_finished(),
            "initFailed": s.is_init_failed(),
            "groupReady": s.is_group_ready(),
            "bug": s.is_bug(),
            "members": s.members,
            "observers": s.observers,
            "preparedMembers": s.prepared_members,
            "preparedObservers": s.prepared_observers,
            "lastConfigChangeIndex": s.last_config_change_index,
            "lastError": s.last_error,
        }),
        Outcome::Transferred {
            group_id,
            old_leader,
            new_leader,
        } => json!({"groupId": group_id, "oldLeader": old_leader, "newLeader": new_leader}),
        Outcome::Prepared(i) => json!({ "prepareIndex": i }),
        Outcome::Committed(i) => json!({ "commitIndex": i }),
        Outcome::Aborted(i) => json!({ "abortIndex": i }),
        Outcome::GroupAdded
        | Outcome::GroupRemoved
        | Outcome::NodeAdded
        | Outcome::NodeRemoved
        | Outcome::ConfigSynced => json!({}),
    };
    let obj = v.as_object_mut().expect("an object");
    obj.insert("command".into(), json!(command));
    obj.insert("ok".into(), json!(true));
    if let Some(u) = local_file_updated {
        obj.insert("localConfigUpdated".into(), json!(u));
    }
    v
}

/// The JSON object for a failure: `ok: false`, `exitCode` and `error` (the message).
pub fn json_error(command: Option<&str>, e: &AdminError) -> Value {
    let mut v = json!({ "ok": false, "exitCode": e.exit_code(), "error": e.to_string() });
    if let Some(c) = command {
        v.as_object_mut()
            .expect("an object")
            .insert("command".into(), json!(c));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use dt_client::admin::AdminNode;
    use dt_client::raft::QueryStatus;

    fn status() -> QueryStatus {
        let mut s = QueryStatus {
            group_id: 0,
            node_id: 2,
            term: 3,
            leader_id: 1,
            commit_index: 10,
            last_applied: 9,
            last_apply_time_to_now_millis: 4,
            last_log_index: 11,
            apply_lag_millis: 1,
            members: vec![1, 2, 3],
            observers: vec![],
            last_config_change_index: 5,
            ..Default::default()
        };
        s.set_flag(true, false, true, false);
        s
    }

    #[test]
    fn status_lines_are_the_references() {
        let text = human(&Outcome::Status(Box::new(status())), "f", None);
        let want = "Raft Status for group 0 on node 2:\n  Term: 3\n  Leader ID: 1\n  \
                    Commit Index: 10\n  Last Applied: 9\n  Last Log Index: 11\n  \
                    Last Apply Time To Now (ms): 4\n  Apply Lag (ms): 1\n  \
                    Init Finished: true\n  Init Failed: false\n  Group Ready: true\n  \
                    Members: [1, 2, 3]\n  Observers: []\n  Last Config Change Index: 5\n";
        assert_eq!(text, want);
        let mut s = status();
        s.prepared_members = vec![1, 2, 3, 4];
        s.last_error = "boom".into();
        s.set_flag(true, false, true, true);
        let text = human(&Outcome::Status(Box::new(s)), "f", None);
        assert!(text.contains("  Bug: bug flag is set, search BugLog in server logs\n"));
        assert!(text.contains("  Prepared Members: [1, 2, 3, 4]\n  Prepared Observers: []\n"));
        assert!(text.ends_with("  Last Error:\nboom\n"), "{text}");
    }

    #[test]
    fn other_results() {
        let nodes = vec![
            AdminNode {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 4001,
            },
            AdminNode {
                node_id: 2,
                host: "127.0.0.1".into(),
                port: 4002,
            },
        ];
        assert_eq!(
            human(&Outcome::Nodes(nodes.clone()), "f", None),
            "Nodes:\n  Node{nodeId=1, host=[127.0.0.1,4001]}\n  Node{nodeId=2, host=[127.0.0.1,4002]}\n"
        );
        assert_eq!(
            human(&Outcome::Groups(vec![0, 5]), "f", None),
            "Group IDs: [0, 5]\n"
        );
        assert_eq!(
            human(&Outcome::Prepared(42), "f", None),
            "SUCCESS. Prepare index: 42\n"
        );
        let note = human(
            &Outcome::Committed(43),
            "/etc/servers.properties",
            Some(false),
        );
        assert!(note.starts_with("SUCCESS. Commit index: 43\n\nNOTE: The local config file was not updated: /etc/servers.properties\n"));
        assert_eq!(
            human(&Outcome::NodeAdded, "f", Some(true)),
            "Add node completed successfully\n"
        );
        assert_eq!(
            human(&Outcome::Aborted(44), "f", None),
            "SUCCESS. Abort index: 44\n"
        );

        let j = json_result("list-nodes", &Outcome::Nodes(nodes), None);
        assert_eq!(j["nodes"][1]["port"], 4002);
        assert_eq!(j["command"], "list-nodes");
        assert_eq!(j["ok"], true);
        assert!(j.get("localConfigUpdated").is_none());
        let j = json_result("query-status", &Outcome::Status(Box::new(status())), None);
        assert_eq!(j["leaderId"], 1);
        assert_eq!(j["members"], json!([1, 2, 3]));
        assert_eq!(j["groupReady"], true);
        let j = json_result("commit-change", &Outcome::Committed(7), Some(false));
        assert_eq!(j["commitIndex"], 7);
        assert_eq!(j["localConfigUpdated"], false);
        let j = json_result("add-group", &Outcome::GroupAdded, Some(true));
        assert_eq!(
            j,
            json!({"command": "add-group", "ok": true, "localConfigUpdated": true})
        );
        let e = json_error(Some("list-groups"), &AdminError::ClientInit("bad".into()));
        assert_eq!(e["exitCode"], 103);
        assert_eq!(e["ok"], false);
        assert!(e["error"].as_str().unwrap().contains("bad"));
    }
}
