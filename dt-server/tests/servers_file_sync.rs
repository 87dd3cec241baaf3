//! servers.properties synchronisation: the rewritten text, the step-by-step atomic
//! replacement with backups, and what a crash between steps leaves behind.

use dt_server::bootstrap::{
    backup_stamp, parse_servers, render_servers_file, GroupMembers, ServerNode, ServersFileSync,
    MAX_BACKUPS,
};
use dt_server::props::Properties;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn members(m: &[i32], o: &[i32]) -> GroupMembers {
    GroupMembers {
        members: m.iter().copied().collect(),
        observers: o.iter().copied().collect(),
    }
}

fn nodes(list: &[(i32, &str, i32)]) -> Vec<ServerNode> {
    list.iter()
        .map(|&(id, h, p)| ServerNode {
            node_id: id,
            host: h.to_string(),
            port: p,
        })
        .collect()
}

const OLD: &str = "# comment, lost on rewrite\n\
servers = 1,127.0.0.1:4131\n\
group.0.nodeIdOfMembers = 1\n\
group.0.nodeIdOfObservers =\n\
group.0.syncForce = false\n\
group.2.nodeIdOfMembers = 1\n\
group.2.watchTimeoutMillis = 5000\n\
group.x.kept = as is\n\
zz.other = keep me\n";

#[test]
fn rendered_text_is_exact() {
    let old = Properties::parse_str(OLD).unwrap();
    // Node 3 and 2 joined (given out of order); group 2 removed; group 1 added.
    let n = nodes(&[
        (3, "127.0.0.1", 4331),
        (1, "127.0.0.1", 4131),
        (2, "::1", 4231),
    ]);
    let mut groups = BTreeMap::new();
    groups.insert(0, members(&[3, 1, 2], &[]));
    groups.insert(1, members(&[2], &[1, 3]));
    let text = render_servers_file(&old, &n, &groups);
    assert_eq!(
        text,
        "servers = 1,127.0.0.1:4131;2,::1:4231;3,127.0.0.1:4331;\n\
         \n\
         group.0.nodeIdOfMembers = 1,2,3\n\
         group.0.nodeIdOfObservers = \n\
         group.0.syncForce = false\n\
         group.x.kept = as is\n\
         zz.other = keep me\n\
         group.1.nodeIdOfMembers = 2\n\
         group.1.nodeIdOfObservers = 1,3\n"
    );
    // It reads back as a valid servers list with the right members.
    let back = Properties::parse_str(&text).unwrap();
    assert_eq!(
        parse_servers(back.get("servers").unwrap()).unwrap().len(),
        3
    );
    assert_eq!(back.get("group.1.nodeIdOfObservers"), Some("1,3"));
    assert_eq!(back.get("group.2.watchTimeoutMillis"), None);
}

fn setup(dir: &Path) -> ServersFileSync {
    let path = dir.join("servers.properties");
    fs::write(&path, OLD).unwrap();
    ServersFileSync::new(path)
}

fn new_membership() -> (Vec<ServerNode>, BTreeMap<i32, GroupMembers>) {
    let n = nodes(&[(1, "127.0.0.1", 4131), (2, "127.0.0.1", 4231)]);
    let mut g = BTreeMap::new();
    g.insert(0, members(&[1, 2], &[]));
    (n, g)
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

#[test]
fn a_run_replaces_the_file_and_keeps_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let sync = setup(dir.path());
    let (n, g) = new_membership();
    sync.run(&n, &g, t(0)).unwrap();
    let path = dir.path().join("servers.properties");
    let now = fs::read_to_string(&path).unwrap();
    assert!(now.starts_with("servers = 1,127.0.0.1:4131;2,127.0.0.1:4231;\n\n"));
    assert!(now.contains("group.0.nodeIdOfMembers = 1,2\n"));
    assert!(!sync.temp_path().exists());
    let bak = dir
        .path()
        .join(format!("servers.properties.bak.{}", backup_stamp(t(0))));
    assert_eq!(fs::read_to_string(bak).unwrap(), OLD);
}

fn is_old_or_new(path: &Path, new_text: &str) -> bool {
    let s = fs::read_to_string(path).unwrap();
    s == OLD || s == new_text
}

#[test]
fn a_crash_between_steps_leaves_the_old_or_the_new_file() {
    let (n, g) = new_membership();
    let new_text = render_servers_file(&Properties::parse_str(OLD).unwrap(), &n, &g);
    let path_of = |d: &Path| d.join("servers.properties");

    // Crash while writing the temp file: a torn temp file, the original untouched.
    let d = tempfile::tempdir().unwrap();
    let sync = setup(d.path());
    fs::write(sync.temp_path(), &new_text.as_bytes()[..10]).unwrap();
    assert_eq!(fs::read_to_string(path_of(d.path())).unwrap(), OLD);
    // The next run overwrites the torn temp file and completes.
    sync.run(&n, &g, t(1)).unwrap();
    assert_eq!(fs::read_to_string(path_of(d.path())).unwrap(), new_text);

    // Crash after step 1 (temp written and fsynced): old file.
    let d = tempfile::tempdir().unwrap();
    let sync = setup(d.path());
    sync.write_temp(&n, &g).unwrap();
    assert_eq!(fs::read_to_string(sync.temp_path()).unwrap(), new_text);
    assert!(is_old_or_new(&path_of(d.path()), &new_text));
    assert_eq!(fs::read_to_string(path_of(d.path())).unwrap(), OLD);

    // Crash after step 2 (backup made): still the old file, and a backup of it.
    sync.backup(t(2)).unwrap();
    assert_eq!(fs::read_to_string(path_of(d.path())).unwrap(), OLD);
    assert_eq!(fs::read_to_string(sync.backup_path(t(2))).unwrap(), OLD);

    // Step 3: the new file, whole.
    sync.commit().unwrap();
    assert_eq!(fs::read_to_string(path_of(d.path())).unwrap(), new_text);
    assert!(!sync.temp_path().exists());

    // A run whose old file is unreadable fails without touching anything.
    let d = tempfile::tempdir().unwrap();
    let path = path_of(d.path());
    fs::write(&path, "servers = 1,h:1\nbad = \\u12\n").unwrap();
    let sync = ServersFileSync::new(&path);
    assert!(sync.run(&n, &g, t(3)).is_err());
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "servers = 1,h:1\nbad = \\u12\n"
    );
    assert!(!sync.temp_path().exists());
}

#[test]
fn at_most_ten_backups_are_kept_newest_by_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let sync = setup(dir.path());
    // Twelve old backups; their names sort the opposite way to their ages, so only
    // modification times can tell which are newest.
    for i in 0..12u64 {
        let p = dir
            .path()
            .join(format!("servers.properties.bak.{}", 99 - i));
        fs::write(&p, format!("{i}")).unwrap();
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i * 10))
            .unwrap();
    }
    fs::write(dir.path().join("other.bak.1"), "unrelated").unwrap();
    let (n, g) = new_membership();
    sync.run(&n, &g, t(5)).unwrap();
    let mut left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("servers.properties.bak."))
        .collect();
    left.sort();
    assert_eq!(left.len(), MAX_BACKUPS);
    // The nine newest old ones (i = 3..=11, names 88..=96) and the new one survive.
    for i in 3..12u64 {
        assert!(
            left.contains(&format!("servers.properties.bak.{}", 99 - i)),
            "{left:?}"
        );
    }
    assert!(left.contains(&format!("servers.properties.bak.{}", backup_stamp(t(5)))));
    assert!(dir.path().join("other.bak.1").exists());
}

#[test]
fn a_second_run_in_the_same_second_replaces_that_backup() {
    let dir = tempfile::tempdir().unwrap();
    let sync = setup(dir.path());
    let (n, g) = new_membership();
    sync.run(&n, &g, t(7)).unwrap();
    let first = fs::read_to_string(dir.path().join("servers.properties")).unwrap();
    let mut g2 = g.clone();
    g2.insert(4, members(&[2], &[]));
    sync.run(&n, &g2, t(7)).unwrap();
    assert_eq!(fs::read_to_string(sync.backup_path(t(7))).unwrap(), first);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the old keys and the membership, the rewritten file parses back to:
    /// the given servers, the given member sets for live groups, no keys of dead
    /// groups, and every other old key with its value unchanged.
    #[test]
    fn rewrite_reads_back(
        other in proptest::collection::btree_map("[a-z][a-z.= :#!\\\\]{0,6}", "[ -~é\\t]{0,8}", 0..6),
        old_groups in proptest::collection::btree_map(0i32..6, "[a-z]{1,5}", 0..4),
        live in proptest::collection::btree_map(
            0i32..6,
            (proptest::collection::btree_set(1i32..8, 1..4), proptest::collection::btree_set(8i32..10, 0..2)),
            0..4),
        ids in proptest::collection::btree_set(1i32..10, 1..5),
    ) {
        let mut old = Properties::default();
        old.set("servers", "1,h:1");
        for (k, v) in &other {
            if !k.starts_with("group.") && k != "servers" {
                old.set(k.clone(), v.clone());
            }
        }
        for (g, name) in &old_groups {
            old.set(format!("group.{g}.nodeIdOfMembers"), "1");
            old.set(format!("group.{g}.{name}"), format!("v{g}"));
        }
        let n: Vec<ServerNode> = ids.iter().rev().map(|&i| ServerNode {
            node_id: i, host: format!("h{i}"), port: 1000 + i,
        }).collect();
        let groups: BTreeMap<i32, GroupMembers> = live.iter().map(|(g, (m, o))| {
            (*g, GroupMembers { members: m.clone(), observers: o.clone() })
        }).collect();
        let text = render_servers_file(&old, &n, &groups);
        let back = Properties::parse_bytes(text.as_bytes(), None).unwrap();
        let listed = parse_servers(back.get("servers").unwrap()).unwrap();
        prop_assert_eq!(listed.iter().map(|x| x.node_id).collect::<BTreeSet<_>>(), ids.clone());
        prop_assert!(listed.windows(2).all(|w| w[0].node_id < w[1].node_id));
        for (g, m) in &groups {
            let join = |s: &BTreeSet<i32>| s.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
            let (jm, jo) = (join(&m.members), join(&m.observers));
            prop_assert_eq!(back.get(&format!("group.{g}.nodeIdOfMembers")), Some(jm.as_str()));
            prop_assert_eq!(back.get(&format!("group.{g}.nodeIdOfObservers")), Some(jo.as_str()));
        }
        for (key, e) in old.iter() {
            if key == "servers" || key.ends_with(".nodeIdOfMembers") {
                continue;
            }
            let group: Option<i32> = key.strip_prefix("group.")
                .and_then(|r| r.split('.').next())
                .and_then(|g| g.parse().ok());
            match group {
                Some(g) if !groups.contains_key(&g) => prop_assert_eq!(back.get(key), None),
                _ => prop_assert_eq!(back.get(key), Some(e.value.as_str())),
            }
        }
        for (key, _) in back.iter() {
            prop_assert!(key == "servers" || old.get(key).is_some() || key.starts_with("group."));
        }
    }
}
