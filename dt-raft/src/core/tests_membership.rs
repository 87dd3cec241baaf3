//! Unit tests of joint-consensus membership change (raft.md §11) with explicit time.

use super::config_change::REMOVE_LEGACY_MS;
use super::tests::*;
use super::*;

/// Leader side: persists everything locally and answers every append sent to
/// `acks` with success until nothing more is sent; returns all actions seen.
pub(super) fn settle(c: &mut RaftCore, now: u64, acks: &[NodeId]) -> Vec<Action> {
    let mut all = Vec::new();
    for _ in 0..100 {
        c.on_log_persisted(now, c.last_log_index());
        let acts = take(c);
        let sends: Vec<_> = sent_appends(&acts)
            .into_iter()
            .filter(|(to, _)| acks.contains(to))
            .collect();
        all.extend(acts);
        if sends.is_empty() {
            return all;
        }
        for (to, m) in sends {
            c.handle_append_resp(now, to, &m, &ok(c.term()));
        }
    }
    panic!("replication does not settle");
}

fn all_nodes(id: NodeId) -> bool {
    (1..=9).contains(&id)
}

/// A leader of 1..=3 with everything committed and applied.
pub(super) fn leader3() -> (RaftCore, u64) {
    let mut c = node(1, 3, 0, 0, 0);
    let now = elect(&mut c, &[2, 3]);
    settle(&mut c, now, &[2, 3]);
    c.on_applied(now, c.commit_index());
    (c, now)
}

fn apply_all(c: &mut RaftCore, now: u64, entries: &[(Index, ConfigEntry)]) {
    for (i, e) in entries {
        c.apply_config_entry(now, *i, e);
        c.on_applied(now, *i);
    }
}

#[test]
fn s11_2_prepare_body_is_ascii_sets_and_parses_back() {
    let b = ConfigBody {
        old_members: vec![1, 2, 3],
        old_observers: vec![],
        new_members: vec![2, 3, 4],
        new_observers: vec![],
    };
    assert_eq!(b.to_bytes(), b"1,2,3;;2,3,4;");
    assert_eq!(ConfigBody::parse(b"1,2,3;;2,3,4;").unwrap(), b);
    let b = ConfigBody::parse(b";7;1;2147483647").unwrap();
    assert_eq!(b.old_observers, vec![7]);
    assert_eq!(b.new_observers, vec![2_147_483_647]);
    assert_eq!(
        ConfigBody::parse(b"1,1,2;;;").unwrap().old_members,
        vec![1, 2]
    );
}

#[test]
fn s11_2_bad_prepare_bodies_are_refused_without_panic() {
    use ConfigBodyError::*;
    let e = |b: &[u8]| ConfigBody::parse(b).unwrap_err();
    assert_eq!(e(b"1,2;;3"), FieldCount(3));
    assert_eq!(e(b"1;;;;"), FieldCount(5));
    assert_eq!(e(b""), FieldCount(1));
    assert_eq!(e(b"0;;1;"), BadId("0".into()));
    assert_eq!(e(b"-1;;1;"), BadId("-1".into()));
    assert_eq!(e(b"2147483648;;1;"), BadId("2147483648".into()));
    assert_eq!(e(b"1,,2;;1;"), BadId("".into()));
    assert_eq!(e(b" 1;;1;"), BadId(" 1".into()));
    assert_eq!(
        e(b"99999999999999999999;;1;"),
        BadId("99999999999999999999".into())
    );
    assert_eq!(e(&[0xff, b';', b';', b';']), NotAscii);
    assert_eq!(ConfigEntry::decode(0, b"").unwrap_err(), NotConfigType(0));
    assert_eq!(ConfigEntry::decode(3, b"junk").unwrap(), ConfigEntry::Drop);
    assert_eq!(ConfigEntry::decode(4, b"").unwrap(), ConfigEntry::Commit);
}

#[test]
fn s11_3_prepare_checks_come_in_the_references_order() {
    let (mut c, now) = leader3();
    let p = |c: &mut RaftCore, old: &[NodeId], new: &[NodeId], obs: &[NodeId]| {
        c.prepare_config_change(now, old, &[], new, obs, |id| id <= 5)
    };
    use ConfigChangeError::*;
    assert_eq!(p(&mut c, &[1, 2, 3], &[], &[4]), Err(PreparedMembersEmpty));
    assert_eq!(
        p(&mut c, &[1, 2, 3], &[1, 4], &[4]),
        Err(MemberAndObserver(4))
    );
    assert_eq!(p(&mut c, &[1, 2], &[1, 2, 4], &[]), Err(OldSetsMismatch));
    assert_eq!(
        p(&mut c, &[1, 2, 3, 4], &[1, 2, 4], &[]),
        Err(OldSetsMismatch)
    );
    assert_eq!(p(&mut c, &[1, 2, 3], &[1, 2, 6], &[]), Err(NodeNotExist(6)));
    assert_eq!(p(&mut c, &[1, 2, 3], &[1, 2], &[0]), Err(NodeNotExist(0)));
    assert_eq!(
        NodeNotExist(6).to_string(),
        "node not exist: 6",
        "messages are the reference's"
    );
    assert!(take(&mut c).is_empty(), "a refused prepare writes nothing");
    // the expected sets are compared as sets
    let prop = p(&mut c, &[3, 1, 2], &[1, 2, 4], &[5]).unwrap();
    assert_eq!(prop.proposed.first_index, c.last_log_index());
    assert_eq!(prop.entry.item_type(), 2);
    assert_eq!(prop.entry.body(), b"1,2,3;;1,2,4;5");
    let acts = take(&mut c);
    assert!(acts.contains(&Action::AppendLocal {
        kind: LocalEntries::Proposal,
        first_index: prop.proposed.first_index,
        last_index: prop.proposed.first_index,
        term: c.term(),
        prev_log_term: prop.proposed.prev_log_term,
    }));
}

#[test]
fn s11_3_non_leaders_answer_not_leader_with_the_hint() {
    let mut f = node(2, 3, 1, 0, 0);
    f.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[]));
    let e = f.prepare_config_change(T0, &[1, 2, 3], &[], &[1, 2], &[], all_nodes);
    assert_eq!(e, Err(ConfigChangeError::NotLeader(Some(1))));
    assert_eq!(
        f.abort_config_change(T0),
        Err(ConfigChangeError::NotLeader(Some(1)))
    );
    assert_eq!(
        f.commit_config_change(T0, 0),
        Err(ConfigChangeError::NotLeader(Some(1)))
    );
}

#[test]
fn s11_3_prepare_then_commit_moves_to_the_new_sets() {
    let (mut c, now) = leader3();
    let prep = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2, 4], &[], all_nodes)
        .unwrap();
    let pi = prep.proposed.first_index;
    settle(&mut c, now, &[2, 3]);
    assert_eq!(
        c.commit_index(),
        pi,
        "joint only once applied: old quorum commits"
    );
    let applied = c.apply_config_entry(now, pi, &prep.entry);
    assert!(applied.changed && !applied.persist_config && !applied.old_sets_mismatch);
    assert_eq!(
        applied.reply_when_applied,
        pi + 1,
        "prepare replies after index + 1"
    );
    assert_eq!(c.member_sets(), &joint(&[1, 2, 3], &[1, 2, 4]));
    assert_eq!(c.last_config_change_index(), pi);
    // the leader writes a heartbeat so that index + 1 exists
    let acts = take(&mut c);
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::AppendLocal { kind: LocalEntries::Heartbeat, first_index, .. } if *first_index == pi + 1
    )));
    c.on_applied(now, pi);
    // commit needs the index of the last config change
    let wrong = c.commit_config_change(now, pi - 1).unwrap_err();
    assert_eq!(
        wrong.to_string(),
        format!(
            "prepareIndex not match. prepareIndex={}, lastConfigChangeIndex={pi}",
            pi - 1
        )
    );
    let com = c.commit_config_change(now, pi).unwrap();
    assert_eq!(com.entry, ConfigEntry::Commit);
    assert!(com.entry.body().is_empty());
    let ci = com.proposed.first_index;
    assert_eq!(ci, pi + 2);
    c.set_member_ready(now, 4, true);
    settle(&mut c, now, &[2, 3, 4]);
    assert_eq!(c.commit_index(), ci);
    let applied = c.apply_config_entry(now, ci, &com.entry);
    assert!(applied.changed && applied.persist_config);
    assert_eq!(applied.reply_when_applied, ci);
    assert_eq!(c.member_sets(), &MemberSets::new(vec![1, 2, 4], vec![]));
    assert_eq!(c.last_config_change_index(), ci);
    // a repeated commit after the first was applied fails
    assert!(matches!(
        c.commit_config_change(now, pi),
        Err(ConfigChangeError::PrepareIndexMismatch { .. })
    ));
}

#[test]
fn s11_3_a_repeated_prepare_applies_as_a_noop_and_moves_the_index() {
    let (mut c, now) = leader3();
    let a = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2, 4], &[], all_nodes)
        .unwrap();
    let b = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2, 4], &[], all_nodes)
        .unwrap();
    assert_eq!(a.entry, b.entry);
    let ra = c.apply_config_entry(now, a.proposed.first_index, &a.entry);
    let rb = c.apply_config_entry(now, b.proposed.first_index, &b.entry);
    assert!(ra.changed && !rb.changed);
    assert_eq!(c.last_config_change_index(), b.proposed.first_index);
    assert!(c.commit_config_change(now, a.proposed.first_index).is_err());
    assert!(c.commit_config_change(now, b.proposed.first_index).is_ok());
}

#[test]
fn s11_3_commit_twice_before_apply_is_harmless_and_abort_is_idempotent() {
    let (mut c, now) = leader3();
    let p = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2], &[], all_nodes)
        .unwrap();
    apply_all(&mut c, now, &[(p.proposed.first_index, p.entry.clone())]);
    let c1 = c.commit_config_change(now, p.proposed.first_index).unwrap();
    let c2 = c.commit_config_change(now, p.proposed.first_index).unwrap();
    assert!(
        c.apply_config_entry(now, c1.proposed.first_index, &c1.entry)
            .changed
    );
    assert!(
        !c.apply_config_entry(now, c2.proposed.first_index, &c2.entry)
            .changed
    );
    assert_eq!(c.member_sets(), &MemberSets::new(vec![1, 2], vec![]));
    assert_eq!(c.last_config_change_index(), c2.proposed.first_index);

    // abort: prepare again (2 -> 2 + observer 3), then drop it, twice
    let p = c
        .prepare_config_change(now, &[2, 1], &[], &[1, 2], &[3], all_nodes)
        .unwrap();
    apply_all(&mut c, now, &[(p.proposed.first_index, p.entry.clone())]);
    assert!(c.member_sets().is_joint());
    let d1 = c.abort_config_change(now).unwrap();
    let d2 = c.abort_config_change(now).unwrap();
    assert_eq!(d1.entry, ConfigEntry::Drop);
    assert!(
        c.apply_config_entry(now, d1.proposed.first_index, &d1.entry)
            .changed
    );
    assert!(
        !c.apply_config_entry(now, d2.proposed.first_index, &d2.entry)
            .changed
    );
    assert_eq!(c.member_sets(), &MemberSets::new(vec![1, 2], vec![]));
    assert_eq!(c.last_config_change_index(), d2.proposed.first_index);
}

#[test]
fn s11_2_a_prepare_with_other_old_sets_is_applied_and_reported() {
    let mut f = node(2, 3, 1, 0, 0);
    let body = ConfigBody::parse(b"1,2;;1,2,3,4;").unwrap();
    let r = f.apply_config_entry(T0, 5, &ConfigEntry::Prepare(body));
    assert!(r.old_sets_mismatch && r.changed);
    assert_eq!(f.member_sets(), &joint(&[1, 2, 3], &[1, 2, 3, 4]));
    // a follower writes no heartbeat for it
    assert!(!take(&mut f)
        .iter()
        .any(|a| matches!(a, Action::AppendLocal { .. })));
}

#[test]
fn s11_2_disable_config_change_keeps_the_sets_but_moves_the_index() {
    let mut cfg = cfg(2, 3);
    cfg.disable_config_change = true;
    let mut f = RaftCore::new(cfg, 2, T0, 1, 0, 0, 0, 0).unwrap();
    let body = ConfigBody::parse(b"1,2,3;;1,2;").unwrap();
    let r = f.apply_config_entry(T0, 9, &ConfigEntry::Prepare(body));
    assert!(!r.changed);
    assert_eq!(f.member_sets(), &MemberSets::new(vec![1, 2, 3], vec![]));
    assert_eq!(f.last_config_change_index(), 9);
    f.restore_config(T0, MemberSets::new(vec![2], vec![]), 12);
    assert_eq!(f.member_sets(), &MemberSets::new(vec![1, 2, 3], vec![]));
    assert_eq!(f.last_config_change_index(), 12);
}

#[test]
fn s11_2_config_entry_sets_are_what_the_apply_switches_to() {
    // The driver checks these ids against its node table before the apply (step 3).
    let mut f = RaftCore::new(cfg(2, 3), 2, T0, 1, 0, 0, 0, 0).unwrap();
    let prepare = ConfigEntry::Prepare(ConfigBody::parse(b"1,2,3;;1,2,3;4").unwrap());
    let joint = MemberSets {
        members: vec![1, 2, 3],
        observers: vec![],
        prepared_members: vec![1, 2, 3],
        prepared_observers: vec![4],
    };
    // DROP and COMMIT outside a joint configuration change nothing
    assert_eq!(f.config_entry_sets(&ConfigEntry::Drop), None);
    assert_eq!(f.config_entry_sets(&ConfigEntry::Commit), None);
    assert_eq!(f.config_entry_sets(&prepare), Some(joint.clone()));
    // asking changes nothing; the apply switches to exactly those sets
    assert_eq!(f.member_sets(), &MemberSets::new(vec![1, 2, 3], vec![]));
    assert!(f.apply_config_entry(T0, 5, &prepare).changed);
    assert_eq!(f.member_sets(), &joint);
    // the same prepare again: no change
    assert_eq!(f.config_entry_sets(&prepare), None);
    assert_eq!(
        f.config_entry_sets(&ConfigEntry::Commit),
        Some(MemberSets::new(vec![1, 2, 3], vec![4]))
    );
    assert_eq!(
        f.config_entry_sets(&ConfigEntry::Drop),
        Some(MemberSets::new(vec![1, 2, 3], vec![]))
    );
    // disabled: never any sets to check
    let mut c = cfg(2, 3);
    c.disable_config_change = true;
    let g = RaftCore::new(c, 2, T0, 1, 0, 0, 0, 0).unwrap();
    assert_eq!(g.config_entry_sets(&prepare), None);
}

#[test]
fn s11_4_the_snapshot_configuration_replaces_the_static_one() {
    let mut f = node(3, 3, 1, 0, 0);
    assert_eq!(f.role(), Role::Follower);
    let snap = MemberSets {
        members: vec![1, 2, 4],
        observers: vec![3],
        prepared_members: vec![],
        prepared_observers: vec![],
    };
    f.restore_config(T0, snap.clone(), 40);
    assert_eq!(f.member_sets(), &snap);
    assert_eq!(f.role(), Role::Observer);
    assert_eq!(f.last_config_change_index(), 40);
    assert_eq!(f.status(T0).last_config_change_index, 40);
}

#[test]
fn s17_13_prepared_observers_are_not_replicated_to_until_commit() {
    let (mut c, now) = leader3();
    let p = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2, 3], &[5], all_nodes)
        .unwrap();
    settle(&mut c, now, &[2, 3]);
    apply_all(&mut c, now, &[(p.proposed.first_index, p.entry.clone())]);
    assert!(
        c.progress(5).is_none(),
        "no replication state for a prepared observer"
    );
    c.set_member_ready(now, 5, true);
    c.propose(now, 3).unwrap();
    let acts = settle(&mut c, now, &[2, 3]);
    assert!(sent_appends(&acts).iter().all(|(to, _)| *to != 5));
    let com = c.commit_config_change(now, p.proposed.first_index).unwrap();
    settle(&mut c, now, &[2, 3]);
    apply_all(
        &mut c,
        now,
        &[(com.proposed.first_index, com.entry.clone())],
    );
    assert_eq!(c.member_sets().observers, vec![5]);
    c.set_member_ready(now, 5, true);
    c.propose(now, 1).unwrap();
    let sends = sent_appends(&take(&mut c));
    assert!(
        sends.iter().any(|(to, _)| *to == 5),
        "observer 5 replicated to"
    );
}

#[test]
fn s11_2_a_removed_node_is_replicated_to_until_it_has_the_change() {
    let (mut c, now) = leader3();
    let p = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2], &[], all_nodes)
        .unwrap();
    settle(&mut c, now, &[2, 3]);
    apply_all(&mut c, now, &[(p.proposed.first_index, p.entry.clone())]);
    let com = c.commit_config_change(now, p.proposed.first_index).unwrap();
    let ci = com.proposed.first_index;
    // node 3 is slow: only 2 acknowledges before the commit entry applies
    let late: Vec<_> = sent_appends(&settle(&mut c, now, &[2]))
        .into_iter()
        .filter(|s| s.0 == 3)
        .collect();
    assert_eq!(c.commit_index(), ci);
    c.apply_config_entry(now, ci, &com.entry);
    assert_eq!(c.member_sets(), &MemberSets::new(vec![1, 2], vec![]));
    let legacy = c.progress(3).expect("3 still replicated to");
    assert_eq!(legacy.remove_legacy, Some((ci, now + REMOVE_LEGACY_MS)));
    // 3 answers, catches up with the commit entry and its commit: replication stops
    for (to, m) in late {
        c.handle_append_resp(now, to, &m, &ok(c.term()));
    }
    let acts = settle(&mut c, now, &[3]);
    assert!(sent_appends(&acts).iter().any(|(to, _)| *to == 3));
    assert!(c.progress(3).is_none(), "legacy replication finished");
    assert_eq!(c.role(), Role::Leader);
}

#[test]
fn s11_2_legacy_replication_gives_up_after_five_seconds() {
    let (mut c, now) = leader3();
    let p = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2], &[], all_nodes)
        .unwrap();
    settle(&mut c, now, &[2, 3]);
    apply_all(&mut c, now, &[(p.proposed.first_index, p.entry.clone())]);
    let com = c.commit_config_change(now, p.proposed.first_index).unwrap();
    settle(&mut c, now, &[2]);
    c.apply_config_entry(now, com.proposed.first_index, &com.entry);
    assert!(c.progress(3).is_some());
    assert!(c.next_deadline() <= now + REMOVE_LEGACY_MS);
    // 3 never answers; 2 keeps the leader committing heartbeats
    let mut t = now;
    while t + 100 < now + REMOVE_LEGACY_MS {
        t += 100;
        c.tick(t);
        settle(&mut c, t, &[2]);
    }
    assert!(c.progress(3).is_some());
    c.tick(now + REMOVE_LEGACY_MS);
    assert!(c.progress(3).is_none(), "legacy replication timed out");
    assert_eq!(c.role(), Role::Leader);
}

#[test]
fn s11_2_joint_prepare_on_leader_needs_the_new_members_for_commit() {
    let (mut c, now) = leader3();
    let p = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 4, 5], &[], all_nodes)
        .unwrap();
    settle(&mut c, now, &[2, 3]);
    apply_all(&mut c, now, &[(p.proposed.first_index, p.entry.clone())]);
    let before = c.commit_index();
    c.propose(now, 1).unwrap();
    settle(&mut c, now, &[2, 3]);
    assert_eq!(
        c.commit_index(),
        before,
        "old quorum alone no longer commits"
    );
    c.set_member_ready(now, 4, true);
    settle(&mut c, now, &[4]);
    assert_eq!(
        c.commit_index(),
        c.last_log_index(),
        "1 and 4 are a quorum of 1,4,5"
    );
}

#[test]
fn s11_7_an_observer_follows_appends_but_never_campaigns() {
    let mut cfg = cfg(4, 3);
    cfg.observers = vec![4];
    let mut o = RaftCore::new(cfg, 4, T0, 1, 0, 0, 0, 0).unwrap();
    assert_eq!(o.role(), Role::Observer);
    o.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[1, 1]));
    o.on_log_persisted(T0, 2);
    let acts = take(&mut o);
    assert_eq!(
        append_replies(&acts),
        vec![(1, ok(1))],
        "acked like a follower"
    );
    assert_eq!(o.leader(), Some(1));
    o.on_applied(T0, 0);
    o.handle_append(T0, 2, &req(1, 1, (2, 1), 2, &[]));
    o.on_applied(T0, 2);
    assert!(o.group_ready(), "group ready like a follower");
    // an election timeout only forgets the leader
    let (_, acts) = time_out(&mut o, T0);
    assert!(sent_votes(&acts).is_empty());
    assert_eq!((o.role(), o.leader(), o.term()), (Role::Observer, None, 1));
    // promoted by a committed change, it becomes a follower
    o.apply_config_entry(
        T0,
        3,
        &ConfigEntry::Prepare(ConfigBody::parse(b"1,2,3;4;1,2,3,4;").unwrap()),
    );
    assert_eq!(o.role(), Role::Follower);
}

/// A change's new member (role none: its applied configuration does not name it) with
/// the change's PREPARE in its log, not applied, campaigns after an election timeout:
/// the old members may all have shorter logs than the new ones and refuse each other,
/// so without it the group elects no one again (the simulation's seed 902 with
/// membership changes). It still needs a quorum of the old members and of the joint
/// configuration.
#[test]
fn s11_a_new_member_with_the_change_in_its_log_campaigns() {
    let mut c = node(4, 3, 1, 31, 1);
    assert_eq!(c.role(), Role::None);
    let (_, acts) = time_out(&mut c, T0);
    assert!(
        sent_votes(&acts).is_empty(),
        "in no configuration: no campaign"
    );
    c.set_log_configs(vec![(25, prepare(&[1, 2, 3], &[], &[1, 4, 5], &[]))]);
    c.drain_actions();
    let (now, acts) = time_out(&mut c, T0 + 5_000);
    let pre = sent_votes(&acts);
    let to: Vec<NodeId> = pre.iter().map(|(t, _)| *t).collect();
    assert_eq!(to, vec![1, 2, 3, 5]);
    // node 5 alone: a quorum of {1, 4, 5}, not of {1, 2, 3}
    let msg = |id| pre.iter().find(|(t, _)| *t == id).unwrap().1;
    c.handle_vote_resp(now, 5, &msg(5), &granted(c.term()));
    assert_ne!(c.role(), Role::Candidate);
    c.handle_vote_resp(now, 2, &msg(2), &granted(c.term()));
    assert_ne!(c.role(), Role::Candidate, "{{1,2,3}} needs two");
    c.handle_vote_resp(now, 1, &msg(1), &granted(c.term()));
    assert_eq!(c.role(), Role::Candidate);
}

fn prepare(old: &[NodeId], old_obs: &[NodeId], new: &[NodeId], new_obs: &[NodeId]) -> ConfigEntry {
    ConfigEntry::Prepare(ConfigBody {
        old_members: old.to_vec(),
        old_observers: old_obs.to_vec(),
        new_members: new.to_vec(),
        new_observers: new_obs.to_vec(),
    })
}

/// Whether node 4 (applied sets 1,2,4 + observer 3; its log holds `log_configs`
/// above lastApplied) becomes a candidate with the pre-votes of `grant`.
fn campaigns_with(log_configs: Vec<(Index, ConfigEntry)>, grant: &[NodeId]) -> (bool, Vec<NodeId>) {
    let mut c = node(4, 4, 1, 30, 1);
    c.restore_config(T0, MemberSets::new(vec![1, 2, 4], vec![3]), 16);
    c.set_log_configs(log_configs);
    c.drain_actions();
    let (now, acts) = time_out(&mut c, T0);
    let pre = sent_votes(&acts);
    let to: Vec<NodeId> = pre.iter().map(|(t, _)| *t).collect();
    for (t, msg) in &pre {
        if grant.contains(t) {
            c.handle_vote_resp(now, *t, msg, &granted(c.term()));
        }
    }
    (c.role() == Role::Candidate, to)
}

/// The simulation's seeds 3334 and 5392 (with membership changes): a node restarted
/// with configuration entries in its log it had not applied (their commit unknown to
/// it) campaigned with its older applied configuration, was elected by a quorum of it
/// that the configuration in use no longer overlapped, and lost committed entries.
#[test]
fn s11_a_campaign_needs_a_quorum_in_every_configuration_its_log_may_give() {
    let later = vec![
        (18, prepare(&[1, 2, 4], &[3], &[1, 2, 3, 4], &[])),
        (22, ConfigEntry::Commit),
    ];
    // the applied configuration alone: node 1's grant is a quorum of {1, 2, 4}
    let (won, to) = campaigns_with(Vec::new(), &[1]);
    assert!(won);
    assert_eq!(to, vec![1, 2], "only the applied configuration's voters");
    // with the entries: {1, 2, 3, 4} needs three grants, and node 3 is asked too
    let (won, to) = campaigns_with(later.clone(), &[1]);
    assert!(!won, "a quorum of the old configuration only");
    assert_eq!(to, vec![1, 2, 3]);
    assert!(campaigns_with(later.clone(), &[1, 3]).0);
    // a DROP after the PREPARE: both the joint and the old configuration count
    let dropped = vec![
        (18, prepare(&[1, 2, 4], &[3], &[3, 4], &[])),
        (19, ConfigEntry::Drop),
    ];
    assert!(!campaigns_with(dropped.clone(), &[1]).0, "joint: 3 too");
    assert!(!campaigns_with(dropped.clone(), &[3]).0, "and 1 or 2");
    assert!(campaigns_with(dropped, &[1, 3]).0);
}

/// The simulation's seed 10092 (5 nodes, membership changes): a leader elected with
/// configuration entries of earlier terms above its lastApplied committed with the
/// rwQuorum of its older applied configuration, which a later leader's quorum of the
/// newer configuration did not overlap.
#[test]
fn s11_a_leader_commits_with_a_quorum_in_every_configuration_of_earlier_terms() {
    let run = |log_configs: Vec<(Index, ConfigEntry)>, acks: &[NodeId]| {
        let mut c = node(1, 4, 1, 6, 1);
        c.set_log_configs(log_configs);
        let now = elect(&mut c, &[3, 4]);
        settle(&mut c, now, acks);
        c.commit_index()
    };
    // applied {1,2,3,4}: rwQuorum 2, so node 3's copy commits the new term's entry
    assert_eq!(run(Vec::new(), &[3]), 7);
    // the log's earlier entries move to {1,2,4} (3 an observer): 3 does not count
    let later = vec![
        (5, prepare(&[1, 2, 3, 4], &[], &[1, 2, 4], &[3])),
        (6, ConfigEntry::Commit),
    ];
    assert_eq!(run(later.clone(), &[3]), 0);
    assert_eq!(run(later.clone(), &[2, 3]), 7);
    // entries of the leader's own term take effect when applied, as in the reference
    let own = vec![(7, prepare(&[1, 2, 3, 4], &[], &[1, 2, 4], &[3]))];
    assert_eq!(run(own, &[3]), 7);
}

/// A change replacing two of three members (1,2,3 → 1,4,5) whose PREPARE, of an
/// earlier term, the new leader 2 has not applied: it commits only with a quorum of
/// 1,4,5 too, so it must replicate to 4 and 5, which its applied configuration does
/// not name. Without that the group stalled for good.
#[test]
fn s11_a_new_leader_replicates_to_the_voters_of_an_unapplied_earlier_configuration() {
    let mut c = node(2, 3, 1, 6, 1);
    c.set_member_ready(T0, 4, true);
    c.set_member_ready(T0, 5, true);
    c.set_log_configs(vec![(5, prepare(&[1, 2, 3], &[], &[1, 4, 5], &[]))]);
    c.drain_actions();
    assert!(c.progress(4).is_some() && c.progress(5).is_some());
    let now = elect(&mut c, &[1, 4]);
    assert_eq!(c.role(), Role::Leader);
    // the old configuration alone does not commit the new term's entry
    let acts = settle(&mut c, now, &[1, 3]);
    let sent = sent_appends(&acts);
    let to: Vec<NodeId> = sent.iter().map(|a| a.0).collect();
    assert!(to.contains(&4) && to.contains(&5), "appends to {to:?}");
    assert_eq!(c.commit_index(), 0);
    // 4's copy completes the quorum of 1,4,5
    for (_, m) in sent.iter().filter(|a| a.0 == 4) {
        c.handle_append_resp(now, 4, m, &ok(c.term()));
    }
    settle(&mut c, now, &[1, 3, 4]);
    assert_eq!(c.commit_index(), c.last_log_index());
    assert_eq!(c.last_log_index(), 7);
    // the PREPARE is applied (the driver first drops it from the log's entries):
    // 4 and 5 keep their progress
    c.set_log_configs(Vec::new());
    let m4 = c.progress(4).map(|p| p.match_index);
    assert_eq!(m4, Some(7));
    c.apply_config_entry(now, 5, &prepare(&[1, 2, 3], &[], &[1, 4, 5], &[]));
    c.on_applied(now, 7);
    assert_eq!(c.progress(4).map(|p| p.match_index), m4);
    // the COMMIT is applied: 2 and 3 leave (3 kept for a while as remove legacy)
    let p = c.commit_config_change(now, 5).unwrap();
    settle(&mut c, now, &[1, 3, 4]);
    apply_all(&mut c, now, &[(p.proposed.first_index, p.entry)]);
    assert_eq!(c.member_sets().members, vec![1, 4, 5]);
    assert_eq!(c.role(), Role::None, "2 left the group");
    assert!(c.progress(5).is_some());
}

/// Without the fix's replication the new leader's heartbeat entry sat uncommitted:
/// the same scenario with 4 and 5 never answering shows the commit needs them.
#[test]
fn s11_an_unapplied_earlier_configuration_needs_its_own_quorum_to_commit() {
    let mut c = node(2, 3, 1, 6, 1);
    c.set_log_configs(vec![(5, prepare(&[1, 2, 3], &[], &[1, 4, 5], &[]))]);
    c.drain_actions();
    let now = elect(&mut c, &[1, 3, 4]);
    settle(&mut c, now, &[1, 3]);
    assert_eq!(c.commit_index(), 0, "1,2,3 alone is no quorum of 1,4,5");
    // 4 and 5 had no verdict: not replicated to until the driver says they are ready
    assert!(c.progress(4).is_some_and(|p| !p.ready));
    c.set_member_ready(now, 5, true);
    settle(&mut c, now, &[5]);
    assert_eq!(c.commit_index(), c.last_log_index());
}

/// A readiness verdict for a node in no configuration is kept: when a change brings
/// the node in, the leader replicates to it at once (the simulation marks every node
/// ready at start; a joining node used to wait for the leader's restart).
#[test]
fn s3_2_a_verdict_given_before_a_node_joins_applies_when_it_joins() {
    let (mut c, now) = leader3();
    c.set_member_ready(now, 4, true);
    assert!(c.progress(4).is_none());
    let p = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2, 3, 4], &[], all_nodes)
        .unwrap();
    settle(&mut c, now, &[2, 3]);
    let acts = take(&mut c);
    drop(acts);
    c.apply_config_entry(now, p.proposed.first_index, &p.entry);
    let acts = take(&mut c);
    let to: Vec<NodeId> = sent_appends(&acts).iter().map(|a| a.0).collect();
    assert!(to.contains(&4), "appends to {to:?}");
    assert!(c.progress(4).is_some_and(|p| p.ready));
}

/// A follower keeps progress (readiness) for the nodes of its log's configurations
/// and forgets them when the entries naming them go (truncated).
#[test]
fn s11_a_follower_forgets_nodes_no_configuration_names_any_more() {
    let mut c = node(3, 3, 1, 6, 1);
    c.set_log_configs(vec![(5, prepare(&[1, 2, 3], &[], &[1, 4], &[6]))]);
    assert!(c.progress(4).is_some());
    assert!(
        c.progress(6).is_none(),
        "a prepared observer is not replicated to"
    );
    c.set_log_configs(vec![
        (5, prepare(&[1, 2, 3], &[], &[1, 4], &[6])),
        (6, ConfigEntry::Commit),
    ]);
    assert!(c.progress(6).is_some(), "an observer once committed");
    c.set_log_configs(Vec::new());
    assert!(c.progress(4).is_none() && c.progress(6).is_none());
    assert!(c.progress(1).is_some() && c.progress(3).is_some());
}

/// The simulation's seeds 17 and 37 (3 nodes, membership changes, two spares): a
/// leader was lost in the middle of a change. In 17, {3,5} → {1,3,4,5} was written on
/// 1, 3, 4 and 5; 1 and 4, members only of the change, refused every vote ("not
/// member", they had not applied it), and 3 needed one of them. In 37, the candidate
/// 4 was a member only of a change that 3 and 5, which it needed, had not received
/// ("unknown member"). Either way no leader for good. Like Raft, a node now votes
/// whatever configuration it knows (the candidate counts the votes of its
/// configurations) and takes appends from the leader of a term whoever it is.
#[test]
fn s11_a_node_votes_and_follows_whatever_configuration_it_knows() {
    let vote = |candidate: NodeId| VoteReq {
        term: 2,
        candidate_id: candidate,
        last_log_index: 9,
        last_log_term: 1,
        pre_vote: false,
    };
    // 4 is in no configuration it knows (role none)
    let mut c = node(4, 4, 1, 6, 1);
    c.restore_config(T0, MemberSets::new(vec![1, 2, 3], vec![]), 0);
    assert_eq!(c.role(), Role::None);
    c.drain_actions();
    c.handle_vote(T0, 1, &vote(1));
    c.on_status_saved(T0, 2, 1);
    let r = vote_replies(&take(&mut c));
    assert!(r[0].1.is_ok_and(|v| v.vote_granted), "{r:?}");
    assert_eq!((c.voted_for(), c.role()), (1, Role::None));
    // the log rule still holds: a shorter log gets no vote
    let mut short = vote(2);
    short.term = 3;
    short.last_log_index = 5;
    c.handle_vote(T0, 2, &short);
    c.on_status_saved(T0, 3, 0);
    let r = vote_replies(&take(&mut c));
    assert!(r[0].1.is_ok_and(|v| !v.vote_granted), "{r:?}");
    // a candidate this node knows as no member
    let mut f = node(2, 3, 1, 6, 1);
    f.handle_vote(T0 + 1, 3, &vote(4));
    f.on_status_saved(T0 + 1, 2, 4);
    let r = vote_replies(&take(&mut f));
    assert!(r[0].1.is_ok_and(|v| v.vote_granted), "{r:?}");
    // and its appends once it leads
    f.handle_append(T0 + 2, 4, &req(2, 4, (6, 1), 0, &[2]));
    f.on_log_persisted(T0 + 2, 7);
    assert_eq!(append_replies(&take(&mut f)), vec![(4, ok(2))]);
    assert_eq!(f.leader(), Some(4));
}
