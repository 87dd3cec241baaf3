//! Unit tests of the replication limits (raft.md §7.4, §15.2), query status (§13)
//! and the remaining core items of the §17 checklist.

use super::status::APPLY_LAG_UNKNOWN_MS;
use super::tests::*;
use super::tests_membership::{leader3, settle};
use super::*;

/// Leader 1 of {1, 2} with `cfg` changes, whose peer 2 has acknowledged the first
/// entry of the term (pipelining on).
fn leader2(f: impl Fn(&mut CoreConfig), last: Index) -> (RaftCore, u64) {
    let mut cfg = cfg(1, 2);
    f(&mut cfg);
    let mut c = RaftCore::new(cfg, 1, T0, 1, 0, last, 1, 0).unwrap();
    c.set_member_ready(T0, 2, true);
    let now = elect(&mut c, &[2]);
    settle(&mut c, now, &[2]);
    (c, now)
}

fn counts(acts: &[Action], to: NodeId) -> Vec<u64> {
    sent_appends(acts)
        .into_iter()
        .filter(|s| s.0 == to && s.1.count > 0)
        .map(|s| s.1.count)
        .collect()
}

#[test]
fn s15_2_single_replicate_limit_cuts_appends_by_bytes() {
    let (mut c, now) = leader2(|c| c.single_replicate_limit = 1000, 0);
    c.propose_sized(now, &[400, 400, 400, 1500, 10]).unwrap();
    let acts = take(&mut c);
    // 400+400 (a third would pass 1000), 400 (1500 would), 1500 alone, 10
    assert_eq!(counts(&acts, 2), vec![2, 1, 1, 1]);
    assert_eq!(c.progress(2).unwrap().pending_bytes, 2710);
}

#[test]
fn s15_2_max_replicate_bytes_bounds_the_bytes_in_flight() {
    let (mut c, now) = leader2(
        |c| {
            c.single_replicate_limit = 600;
            c.max_replicate_bytes = 1000;
        },
        0,
    );
    c.propose_sized(now, &[500; 5]).unwrap();
    let sends: Vec<_> = sent_appends(&take(&mut c))
        .into_iter()
        .filter(|s| s.1.count > 0)
        .collect();
    assert_eq!(sends.len(), 2, "stops at 1000 bytes in flight");
    assert_eq!(c.progress(2).unwrap().pending_bytes, 1000);
    c.on_log_persisted(now, c.last_log_index());
    c.handle_append_resp(now, 2, &sends[0].1, &ok(c.term()));
    assert_eq!(counts(&take(&mut c), 2), vec![1], "one more after an ack");
    assert_eq!(c.progress(2).unwrap().pending_bytes, 1000);
}

#[test]
fn s7_4_item_window_and_silly_window() {
    let (mut c, now) = leader2(|c| c.max_replicate_items = 10, 0);
    c.propose(now, 25).unwrap();
    let sends: Vec<_> = sent_appends(&take(&mut c));
    assert_eq!(counts(&sends_to_acts(&sends), 2), vec![10]);
    c.on_log_persisted(now, c.last_log_index());
    // one item back leaves a window of 1 = 10%: silly, wait
    let mut part = sends[0].1;
    part.count = 1;
    let mut acts = Vec::new();
    c.handle_append_resp(now, 2, &part, &ok(c.term()));
    acts.extend(take(&mut c));
    assert!(counts(&acts, 2).is_empty(), "silly window");
}

fn sends_to_acts(s: &[(NodeId, AppendSend)]) -> Vec<Action> {
    s.iter()
        .map(|(to, msg)| Action::SendAppend { to: *to, msg: *msg })
        .collect()
}

#[test]
fn s7_4_entries_read_from_the_log_go_at_most_1024_per_append() {
    let mut cfg = cfg(1, 2);
    cfg.max_replicate_items = 20_000;
    let mut c = RaftCore::new(cfg, 1, T0, 1, 0, 3000, 1, 0).unwrap();
    c.set_member_ready(T0, 2, true);
    let now = elect(&mut c, &[2]);
    c.on_log_persisted(now, c.last_log_index());
    // 2 has only the first 10 entries: the searches agree on (1, 10)
    let (_, m) = sent_appends(&take(&mut c))[0];
    let mut resp = AppendResp::new(c.term(), AppendCode::LogNotMatch);
    resp.suggest_term = 1;
    resp.suggest_index = 10;
    c.handle_append_resp(now, 2, &m, &resp);
    let epoch = c.progress(2).unwrap().epoch;
    c.on_leader_match_pos(now, 2, epoch, Some((1, 10)));
    let (_, probe) = sent_appends(&take(&mut c))[0];
    assert_eq!((probe.first_index, probe.count), (11, 1));
    c.handle_append_resp(now, 2, &probe, &ok(c.term()));
    let n = counts(&take(&mut c), 2);
    assert_eq!(n[0], 1024, "old entries come from the log");
    assert!(n.iter().all(|&k| k <= 1024));
    assert_eq!(n.iter().sum::<u64>(), c.last_log_index() - 11);
}

#[test]
fn s13_status_has_every_field_query_status_needs() {
    let (mut c, now) = leader3();
    let s = c.status(now + 70);
    assert_eq!((s.node_id, s.role, s.term), (1, Role::Leader, 1));
    assert_eq!(s.leader_id, Some(1));
    assert_eq!(s.commit_index, c.commit_index());
    assert_eq!(s.last_applied, c.commit_index());
    assert_eq!(s.last_log_index, c.last_log_index());
    assert_eq!(s.last_apply_time_to_now_ms, 70);
    assert_eq!(s.sets, MemberSets::new(vec![1, 2, 3], vec![]));
    assert_eq!(s.last_config_change_index, 0);
    assert!(s.group_ready && !s.installing_snapshot);
    let p = c
        .prepare_config_change(now, &[1, 2, 3], &[], &[1, 2], &[3], |_| true)
        .unwrap();
    c.apply_config_entry(now, p.proposed.first_index, &p.entry);
    let s = c.status(now);
    assert_eq!(s.sets.prepared_observers, vec![3]);
    assert_eq!(s.last_config_change_index, p.proposed.first_index);
    assert_eq!(s.last_log_index, p.proposed.first_index + 1);
}

#[test]
fn s13_apply_lag_is_sampled_per_second_and_unknown_after_a_reset() {
    let c = node(1, 3, 0, 0, 0);
    assert_eq!(c.status(T0).apply_lag_ms, 0, "0 initially");
    let (mut c, now) = leader3();
    // leader3 committed and applied at the same instant
    assert_eq!(c.status(now).apply_lag_ms, 0);
    c.propose(now + 2000, 1).unwrap();
    settle(&mut c, now + 2000, &[2, 3]);
    c.on_applied(now + 2030, c.commit_index());
    assert_eq!(c.status(now + 2030).apply_lag_ms, 30);
    // within the same second no new sample: the lag stays
    c.propose(now + 2100, 1).unwrap();
    settle(&mut c, now + 2100, &[2, 3]);
    c.on_applied(now + 2900, c.commit_index());
    assert_eq!(c.status(now + 2900).apply_lag_ms, 30);
    // a higher term resets it to one day
    let m = AppendSend {
        term: 1,
        leader_id: 1,
        first_index: 1,
        count: 0,
        leader_commit: 0,
        epoch: 0,
        sent_at: 0,
    };
    c.handle_append_resp(now + 3000, 2, &m, &AppendResp::new(5, AppendCode::ReqError));
    assert_eq!(c.status(now + 3000).apply_lag_ms, APPLY_LAG_UNKNOWN_MS);
}

#[test]
fn s17_18_a_failed_transfer_leaves_the_group_leaderless_until_the_next_election() {
    let (mut c, now, m) = leader_with_commit();
    c.on_applied(now, c.commit_index());
    c.start_transfer(now, 2, now + 1000).unwrap();
    c.handle_append_resp(now, 2, &m, &ok(1));
    let acts = take(&mut c);
    if !acts.contains(&Action::CheckTransferTarget { to: 2 }) {
        panic!("target caught up: {acts:?}");
    }
    c.on_transfer_target_checked(now, true);
    assert!(take(&mut c)
        .iter()
        .any(|a| matches!(a, Action::SendTransferLeader { to: 2, .. })));
    // the target refuses (the admin gets its error); the old leader already stepped
    // down and does not take the leadership back
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(
        c.propose(now + 10, 1).map(|_| ()),
        Err(NotLeader { leader: Some(2) })
    );
    c.tick(now + ELECT / 2);
    assert_eq!(c.role(), Role::Follower);
    assert!(sent_votes(&take(&mut c)).is_empty());
    // the next election timeout starts a new election
    let (_, acts) = time_out(&mut c, now);
    assert!(!sent_votes(&acts).is_empty(), "pre-vote after the timeout");
}

#[test]
fn s17_20_last_log_index_is_the_last_accepted_entry() {
    let (mut c, now) = leader3();
    let last = c.last_log_index();
    let p = c.propose(now, 3).unwrap();
    assert_eq!(p.first_index, last + 1);
    assert_eq!(c.last_log_index(), last + 3);
    c.propose(now, 0).unwrap();
    assert_eq!(c.last_log_index(), last + 3);
    let q = c.propose_sized(now, &[1, 2]).unwrap();
    assert_eq!(q.first_index, last + 4);
    assert_eq!(c.last_log_index(), last + 5);
    // a refused proposal assigns nothing
    let mut f = node(2, 3, 1, 0, 0);
    assert!(f.propose(now, 2).is_err());
    assert_eq!(f.last_log_index(), 0);
}

/// Leader 1 of {1, 2} coalescing appends below 32, with one append of one entry in
/// flight to 2 (returned).
fn coalescing_leader() -> (RaftCore, u64, AppendSend) {
    let (mut c, now) = leader2(|c| c.coalesce_appends_below = 32, 0);
    c.propose(now, 1).unwrap();
    let first = sent_appends(&take(&mut c));
    assert_eq!(
        counts(&sends_to_acts(&first), 2),
        vec![1],
        "nothing in flight: at once"
    );
    (c, now, first[0].1)
}

#[test]
fn small_appends_wait_for_the_response_in_flight_then_go_together() {
    let (mut c, now, first) = coalescing_leader();
    c.propose(now, 1).unwrap();
    c.propose(now, 5).unwrap();
    let held = counts(&take(&mut c), 2);
    assert!(held.is_empty(), "6 entries behind an append in flight wait");
    c.on_log_persisted(now, c.last_log_index());
    c.handle_append_resp(now, 2, &first, &ok(c.term()));
    assert_eq!(
        counts(&take(&mut c), 2),
        vec![6],
        "then go out as one append"
    );
}

#[test]
fn a_backlog_at_the_coalescing_threshold_is_pipelined() {
    let (mut c, now, _) = coalescing_leader();
    c.propose(now, 31).unwrap();
    assert!(counts(&take(&mut c), 2).is_empty(), "31 < 32 waits");
    c.propose(now, 1).unwrap();
    let sent = counts(&take(&mut c), 2);
    assert_eq!(sent, vec![32], "32 go at once, behind the append in flight");
}

#[test]
fn coalescing_off_sends_each_proposal_at_once_like_the_reference() {
    let (mut c, now) = leader2(|c| c.coalesce_appends_below = 0, 0);
    c.propose(now, 1).unwrap();
    c.propose(now, 1).unwrap();
    c.propose(now, 5).unwrap();
    assert_eq!(counts(&take(&mut c), 2), vec![1, 1, 5]);
}
