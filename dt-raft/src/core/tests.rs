//! Unit tests of the core with explicit time and message sequences. Names cite the
//! spec section (`s5_4_...`) or the §17 checklist item (`s17_6_...`) they prove.

use super::*;

pub(super) const ELECT: u64 = 1000;
pub(super) const T0: u64 = 10_000;

pub(crate) fn cfg(id: NodeId, n: u32) -> CoreConfig {
    let mut c = CoreConfig::new(id, (1..=n).collect());
    c.elect_timeout_ms = ELECT;
    c.heartbeat_interval_ms = 300;
    c.max_replicate_items = 100;
    c
}

/// A core of node `id` in a group of `n`, all peers ready, log (last, last_term).
pub(super) fn node(id: NodeId, n: u32, term: Term, last: Index, last_term: Term) -> RaftCore {
    let mut c = RaftCore::new(cfg(id, n), id as u64, T0, term, 0, last, last_term, 0).unwrap();
    for p in 1..=n {
        c.set_member_ready(T0, p, true);
    }
    c.drain_actions();
    c
}

pub(super) fn take(c: &mut RaftCore) -> Vec<Action> {
    c.drain_actions().collect()
}

pub(super) fn sent_votes(acts: &[Action]) -> Vec<(NodeId, VoteSend)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::SendVote { to, msg } => Some((*to, *msg)),
            _ => None,
        })
        .collect()
}

pub(super) fn sent_appends(acts: &[Action]) -> Vec<(NodeId, AppendSend)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::SendAppend { to, msg } => Some((*to, *msg)),
            _ => None,
        })
        .collect()
}

pub(super) fn append_replies(acts: &[Action]) -> Vec<(ReqId, AppendResp)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::ReplyAppend { req, resp } => Some((*req, *resp)),
            _ => None,
        })
        .collect()
}

pub(super) fn installs(acts: &[Action]) -> Vec<NodeId> {
    acts.iter()
        .filter_map(|a| match a {
            Action::StartInstallSnapshot { to, .. } => Some(*to),
            _ => None,
        })
        .collect()
}

pub(super) fn vote_replies(acts: &[Action]) -> Vec<(ReqId, Result<VoteResp, VoteRefused>)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::ReplyVote { req, resp } => Some((*req, *resp)),
            _ => None,
        })
        .collect()
}

pub(super) fn granted(term: Term) -> VoteResp {
    VoteResp {
        term,
        vote_granted: true,
    }
}

/// Runs the election clock past the timeout; returns the time and the actions.
pub(super) fn time_out(c: &mut RaftCore, from: u64) -> (u64, Vec<Action>) {
    let now = from + ELECT + 701;
    c.tick(now);
    (now, take(c))
}

/// Makes `c` leader with the votes of `voters` (not self); returns the time.
pub(super) fn elect(c: &mut RaftCore, voters: &[NodeId]) -> u64 {
    let (now, acts) = time_out(c, T0);
    let pre = sent_votes(&acts);
    for (to, msg) in &pre {
        if voters.contains(to) {
            c.handle_vote_resp(now, *to, msg, &granted(c.term()));
        }
    }
    assert_eq!(c.role(), Role::Candidate);
    c.drain_actions();
    c.on_status_saved(now, c.term(), c.node_id());
    let votes = sent_votes(&take(c));
    for (to, msg) in &votes {
        if voters.contains(to) {
            c.handle_vote_resp(now, *to, msg, &granted(c.term()));
        }
    }
    assert_eq!(c.role(), Role::Leader);
    now
}

pub(super) fn req(
    term: Term,
    leader: NodeId,
    prev: (Index, Term),
    commit: Index,
    terms: &[Term],
) -> AppendReq {
    AppendReq {
        term,
        leader_id: leader,
        prev_log_index: prev.0,
        prev_log_term: prev.1,
        leader_commit: commit,
        entries: terms
            .iter()
            .enumerate()
            .map(|(k, t)| EntryMeta {
                index: prev.0 + 1 + k as u64,
                term: *t,
            })
            .collect(),
    }
}

pub(super) fn ok(term: Term) -> AppendResp {
    AppendResp::new(term, AppendCode::Success)
}

// ---------------------------------------------------------------- election

#[test]
fn s5_1_election_timeout_is_randomized_by_the_seeded_rng() {
    let mut deadlines = Vec::new();
    for seed in 1..6u64 {
        let mut c = RaftCore::new(cfg(1, 3), seed, T0, 0, 0, 0, 0, 0).unwrap();
        c.tick(T0 + 100); // first check (1-30 ms) only schedules the next one
        let d = c.next_deadline();
        assert!((T0 + ELECT + 10..=T0 + ELECT + 700).contains(&d), "{d}");
        deadlines.push(d);
        // same seed, same deadline
        let mut c2 = RaftCore::new(cfg(1, 3), seed, T0, 0, 0, 0, 0, 0).unwrap();
        c2.tick(T0 + 100);
        assert_eq!(c2.next_deadline(), d);
    }
    deadlines.dedup();
    assert!(
        deadlines.len() > 1,
        "different seeds give different timeouts"
    );
}

#[test]
fn s5_2_pre_vote_carries_current_term_and_goes_only_to_ready_voters() {
    let mut c = node(1, 3, 4, 7, 4);
    c.set_member_ready(T0, 3, false);
    let (_, acts) = time_out(&mut c, T0);
    let pre = sent_votes(&acts);
    assert_eq!(pre.len(), 1);
    let (to, msg) = pre[0];
    assert_eq!(to, 2);
    assert!(msg.req.pre_vote);
    assert_eq!(msg.req.term, 4, "pre-vote uses the current term");
    assert_eq!((msg.req.last_log_index, msg.req.last_log_term), (7, 4));
    assert_eq!(c.term(), 4, "a pre-vote does not raise the own term");
    assert_eq!(c.role(), Role::Follower);
}

#[test]
fn s5_2_no_pre_vote_without_an_elect_quorum_of_ready_members() {
    let mut c = node(1, 3, 1, 0, 0);
    c.set_member_ready(T0, 2, false);
    c.set_member_ready(T0, 3, false);
    let (_, acts) = time_out(&mut c, T0);
    assert!(sent_votes(&acts).is_empty());
}

#[test]
fn s5_1_no_campaign_while_the_local_write_or_apply_is_behind() {
    let mut c = node(1, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 2, (0, 0), 0, &[1]));
    c.drain_actions();
    // entry 1 accepted but not persisted: the follower must not campaign
    let now = T0 + 5 * ELECT;
    c.tick(now);
    assert!(sent_votes(&take(&mut c)).is_empty());
    c.on_log_persisted(now, 1);
    c.drain_actions();
    c.tick(now + ELECT + 701);
    assert!(!sent_votes(&take(&mut c)).is_empty());
}

#[test]
fn s5_5_pre_vote_success_makes_a_candidate_that_persists_before_sending_votes() {
    let mut c = node(1, 3, 2, 5, 2);
    c.set_member_ready(T0, 3, false);
    let (now, acts) = time_out(&mut c, T0);
    let (to, msg) = sent_votes(&acts)[0];
    c.handle_vote_resp(now, to, &msg, &granted(2));
    let acts = take(&mut c);
    assert_eq!(c.role(), Role::Candidate);
    assert_eq!((c.term(), c.voted_for()), (3, 1));
    assert!(acts.contains(&Action::SaveStatus {
        term: 3,
        voted_for: 1,
        commit_index: 0
    }));
    assert!(
        sent_votes(&acts).is_empty(),
        "votes wait for the status file"
    );
    c.on_status_saved(now, 3, 1);
    let votes = sent_votes(&take(&mut c));
    // every voter, ready or not
    let mut to: Vec<_> = votes.iter().map(|v| v.0).collect();
    to.sort();
    assert_eq!(to, vec![2, 3]);
    assert!(votes.iter().all(|v| !v.1.req.pre_vote && v.1.req.term == 3));
}

#[test]
fn s5_5_late_answers_of_an_old_round_are_ignored() {
    let mut c = node(1, 5, 1, 0, 0);
    let (now, acts) = time_out(&mut c, T0);
    let pre = sent_votes(&acts);
    c.handle_vote_resp(now, pre[0].0, &pre[0].1, &granted(1));
    c.handle_vote_resp(now, pre[1].0, &pre[1].1, &granted(1));
    assert_eq!(c.role(), Role::Candidate);
    c.on_status_saved(now, 2, 1);
    c.drain_actions();
    // a late pre-vote grant is not a vote
    c.handle_vote_resp(now, pre[2].0, &pre[2].1, &granted(2));
    c.handle_vote_resp(now, pre[3].0, &pre[3].1, &granted(2));
    assert_eq!(c.role(), Role::Candidate);
}

#[test]
fn s5_6_vote_success_makes_leader_whose_first_entry_is_a_heartbeat() {
    let mut c = node(1, 3, 2, 5, 2);
    let now = elect(&mut c, &[2]);
    let acts = take(&mut c);
    let _ = now;
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.term(), 3);
    assert!(acts.contains(&Action::AppendLocal {
        kind: LocalEntries::Heartbeat,
        first_index: 6,
        last_index: 6,
        term: 3,
        prev_log_term: 2
    }));
    for p in [2, 3] {
        assert_eq!(c.progress(p).unwrap().next_index, 7, "after the heartbeat");
    }
}

#[test]
fn s5_single_member_group_elects_itself() {
    let mut c = node(1, 1, 0, 0, 0);
    let (now, _) = time_out(&mut c, T0);
    assert_eq!(c.role(), Role::Candidate);
    c.on_status_saved(now, 1, 1);
    assert_eq!(c.role(), Role::Leader);
    c.on_log_persisted(now, 1);
    assert_eq!(c.commit_index(), 1);
}

#[test]
fn s5_1_a_sole_voter_campaigns_at_its_first_check_others_wait_a_timeout() {
    // The reference starts lastElectTime a day back; a group whose only voter is this
    // node is not held back by the leader-stickiness window, so it campaigns at once.
    let mut c = node(1, 1, 3, 0, 0);
    c.tick(T0); // no 1-30 ms jitter either: there is no rival candidate
    assert_eq!(c.role(), Role::Candidate, "no election timeout to wait for");
    c.on_status_saved(T0, 4, 1);
    assert_eq!(c.role(), Role::Leader);
    // With three voters the first check only schedules the next one.
    let mut c = node(1, 3, 3, 0, 0);
    c.tick(T0 + 31);
    assert!(sent_votes(&take(&mut c)).is_empty());
    assert_eq!(c.role(), Role::Follower);
}

#[test]
fn s17_4_higher_pre_vote_term_still_raises_the_receivers_term() {
    let mut c = node(2, 3, 3, 0, 0);
    let v = VoteReq {
        term: 5,
        candidate_id: 1,
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: true,
    };
    c.handle_vote(T0, 9, &v);
    let acts = take(&mut c);
    assert_eq!(c.term(), 5);
    assert!(acts.contains(&Action::SaveStatus {
        term: 5,
        voted_for: 0,
        commit_index: 0
    }));
    assert_eq!(vote_replies(&acts), vec![(9, Ok(granted(5)))]);
    assert_eq!(c.voted_for(), 0, "a pre-vote grant is not a vote");
}

#[test]
fn s17_5_only_a_leader_wants_a_strictly_longer_log_for_a_pre_vote() {
    let pre = |term| VoteReq {
        term,
        candidate_id: 2,
        last_log_index: 1,
        last_log_term: 1,
        pre_vote: true,
    };
    // a follower with the same log grants
    let mut f = node(3, 3, 1, 1, 1);
    f.handle_vote(T0, 1, &pre(1));
    assert_eq!(vote_replies(&take(&mut f))[0].1, Ok(granted(1)));
    // a leader with the same log (before its heartbeat) refuses
    let mut l = node(1, 3, 0, 0, 0);
    let now = elect(&mut l, &[3]);
    l.drain_actions();
    // the leader's log is (1, 1) now: its heartbeat
    l.handle_vote(now, 1, &pre(1));
    let r = vote_replies(&take(&mut l));
    assert!(!r[0].1.unwrap().vote_granted);
    let mut longer = pre(1);
    longer.last_log_index = 2;
    l.handle_vote(now, 2, &longer);
    assert!(vote_replies(&take(&mut l))[0].1.unwrap().vote_granted);
}

#[test]
fn s17_6_granted_vote_is_replied_only_after_the_status_is_saved() {
    let mut c = node(2, 3, 1, 0, 0);
    let v = VoteReq {
        term: 2,
        candidate_id: 1,
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: false,
    };
    c.handle_vote(T0, 7, &v);
    let acts = take(&mut c);
    assert!(vote_replies(&acts).is_empty());
    assert_eq!(
        acts.last(),
        Some(&Action::SaveStatus {
            term: 2,
            voted_for: 1,
            commit_index: 0
        })
    );
    c.on_status_saved(T0 + 1, 2, 0); // the term raise alone is not enough
    assert!(vote_replies(&take(&mut c)).is_empty());
    c.on_status_saved(T0 + 2, 2, 1);
    assert_eq!(vote_replies(&take(&mut c)), vec![(7, Ok(granted(2)))]);
}

#[test]
fn s17_6_no_vote_reply_when_the_term_moved_before_the_save() {
    let mut c = node(2, 3, 1, 0, 0);
    let v = VoteReq {
        term: 2,
        candidate_id: 1,
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: false,
    };
    c.handle_vote(T0, 7, &v);
    c.handle_append(T0, 8, &req(3, 3, (0, 0), 0, &[]));
    c.on_status_saved(T0 + 1, 2, 1);
    c.on_status_saved(T0 + 1, 3, 0);
    let acts = take(&mut c);
    assert!(vote_replies(&acts).is_empty());
    assert_eq!(append_replies(&acts), vec![(8, ok(3))]);
}

#[test]
fn s5_4_one_vote_per_term_and_only_for_a_log_at_least_as_new() {
    let mut c = node(3, 3, 1, 5, 1);
    let vote = |cand, idx, t| VoteReq {
        term: 2,
        candidate_id: cand,
        last_log_index: idx,
        last_log_term: t,
        pre_vote: false,
    };
    c.handle_vote(T0, 1, &vote(1, 4, 1)); // shorter log
    assert!(!vote_replies(&take(&mut c))[0].1.unwrap().vote_granted);
    c.handle_vote(T0, 2, &vote(1, 5, 1));
    c.on_status_saved(T0, 2, 1);
    assert!(vote_replies(&take(&mut c))[0].1.unwrap().vote_granted);
    c.handle_vote(T0, 3, &vote(2, 9, 1)); // already voted for 1
    assert!(!vote_replies(&take(&mut c))[0].1.unwrap().vote_granted);
    c.handle_vote(T0, 4, &vote(1, 5, 1)); // the same candidate again
    c.on_status_saved(T0, 2, 1);
    assert!(vote_replies(&take(&mut c))[0].1.unwrap().vote_granted);
}

#[test]
fn s5_4_unknown_candidates_and_observers_get_votes_but_observers_never_campaign() {
    // a deliberate difference: the reference refuses both ("unknown member", "not
    // members"); the candidate's count decides (see the module docs)
    let mut c = node(2, 3, 1, 0, 0);
    let mut v = VoteReq {
        term: 2,
        candidate_id: 9,
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: false,
    };
    c.handle_vote(T0, 1, &v);
    c.on_status_saved(T0, 2, 9);
    assert!(vote_replies(&take(&mut c))[0].1.unwrap().vote_granted);
    let mut oc = cfg(4, 3);
    oc.observers = vec![4];
    let mut o = RaftCore::new(oc, 1, T0, 1, 0, 0, 0, 0).unwrap();
    assert_eq!(o.role(), Role::Observer);
    v.candidate_id = 1;
    o.handle_vote(T0, 2, &v);
    o.on_status_saved(T0, 2, 1);
    assert!(vote_replies(&take(&mut o))[0].1.unwrap().vote_granted);
    assert_eq!((o.term(), o.role()), (2, Role::Observer));
    // observers never campaign
    o.tick(T0 + 10 * ELECT);
    assert!(sent_votes(&take(&mut o)).is_empty());
}

#[test]
fn s5_4_real_vote_waits_for_the_local_write() {
    let mut c = node(2, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[1, 1]));
    c.drain_actions();
    let v = VoteReq {
        term: 2,
        candidate_id: 3,
        last_log_index: 1,
        last_log_term: 1,
        pre_vote: false,
    };
    c.handle_vote(T0, 5, &v);
    assert!(vote_replies(&take(&mut c)).is_empty());
    assert_eq!(c.term(), 2, "the term is raised before waiting (rule 3)");
    c.on_log_persisted(T0, 2);
    let acts = take(&mut c);
    assert_eq!(c.term(), 2);
    // candidate's log (1,1) is shorter than ours (2,1): refused after re-running checks
    assert!(!vote_replies(&acts)[0].1.unwrap().vote_granted);
}

// ---------------------------------------------------------------- replication

#[test]
fn s17_9_first_append_of_an_epoch_carries_one_entry_then_pipelines() {
    let mut c = node(1, 3, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let acts = take(&mut c);
    let first = sent_appends(&acts);
    assert_eq!(first.len(), 2);
    assert!(first
        .iter()
        .all(|(_, m)| m.count == 1 && m.first_index == 1));
    c.propose(now, 5).unwrap();
    assert!(
        sent_appends(&take(&mut c)).is_empty(),
        "probing waits for the first ack"
    );
    let (to, m) = first[0];
    c.handle_append_resp(now + 1, to, &m, &ok(1));
    let next = sent_appends(&take(&mut c));
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].1.first_index, next[0].1.count), (2, 5));
    c.propose(now + 2, 3).unwrap();
    let more = sent_appends(&take(&mut c));
    let to_peer: Vec<_> = more.iter().filter(|(p, _)| *p == to).collect();
    assert_eq!(
        (to_peer[0].1.first_index, to_peer[0].1.count),
        (7, 3),
        "pipelined"
    );
    assert_eq!(c.progress(to).unwrap().pending_items, 8);
}

#[test]
fn s7_4_window_limits_entries_in_flight() {
    let mut c = node(1, 2, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let (_, m) = sent_appends(&take(&mut c))[0];
    c.handle_append_resp(now, 2, &m, &ok(1));
    c.propose(now, 250).unwrap();
    let sends = sent_appends(&take(&mut c));
    let total: u64 = sends.iter().map(|s| s.1.count).sum();
    assert_eq!(total, 100, "max_replicate_items");
    c.handle_append_resp(now, 2, &sends[0].1, &ok(1));
    let sends = sent_appends(&take(&mut c));
    assert_eq!(sends[0].1.count, 100);
}

#[test]
fn s17_8_next_index_is_never_decremented_but_found_by_the_two_sided_search() {
    let mut c = node(1, 3, 3, 20, 3);
    let now = elect(&mut c, &[2]);
    let acts = take(&mut c);
    let (to, m) = sent_appends(&acts).into_iter().find(|s| s.0 == 3).unwrap();
    assert_eq!(m.first_index, 21);
    let mut resp = AppendResp::new(4, AppendCode::LogNotMatch);
    resp.suggest_term = 2;
    resp.suggest_index = 12;
    c.handle_append_resp(now, to, &m, &resp);
    let acts = take(&mut c);
    assert_eq!(c.progress(3).unwrap().next_index, 22, "not decremented");
    let epoch = c.progress(3).unwrap().epoch;
    assert!(acts.contains(&Action::FindMatchPos {
        search: MatchSearch::Leader { peer: 3, epoch },
        suggest_term: 2,
        suggest_index: 12
    }));
    assert!(sent_appends(&acts).is_empty());
    c.on_leader_match_pos(now, 3, epoch, Some((2, 10)));
    let sends = sent_appends(&take(&mut c));
    assert_eq!(
        (sends[0].1.first_index, sends[0].1.count),
        (11, 1),
        "probe again"
    );
}

#[test]
fn s17_8_suggestion_zero_means_install_snapshot() {
    let mut c = node(1, 3, 1, 5, 1);
    let now = elect(&mut c, &[2]);
    let (to, m) = sent_appends(&take(&mut c))[0];
    let resp = AppendResp::new(2, AppendCode::LogNotMatch);
    c.handle_append_resp(now, to, &m, &resp);
    assert!(installs(&take(&mut c)).contains(&to));
    assert!(c.progress(to).unwrap().install_snapshot);
    // and a search that finds nothing too
    let (to, m) = (
        3,
        AppendSend {
            epoch: c.progress(3).unwrap().epoch,
            ..m
        },
    );
    let mut resp = AppendResp::new(2, AppendCode::LogNotMatch);
    resp.suggest_term = 1;
    resp.suggest_index = 1;
    c.handle_append_resp(now, to, &m, &resp);
    let epoch = c.progress(3).unwrap().epoch;
    c.drain_actions();
    c.on_leader_match_pos(now, 3, epoch, None);
    assert_eq!(installs(&take(&mut c)), vec![3]);
}

#[test]
fn s7_4_rpc_error_stops_replication_without_rolling_back_next_index() {
    let mut c = node(1, 2, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let (_, m) = sent_appends(&take(&mut c))[0];
    c.handle_append_resp(now, 2, &m, &ok(1));
    c.propose(now, 4).unwrap();
    let (_, m2) = sent_appends(&take(&mut c))[0];
    c.handle_append_error(now + 1, 2, &m2);
    assert_eq!(c.progress(2).unwrap().next_index, 6);
    // the late success of the old epoch is ignored
    c.handle_append_resp(now + 2, 2, &m2, &ok(1));
    assert_eq!(c.progress(2).unwrap().match_index, 1);
    c.tick(now + 500);
    assert!(
        sent_appends(&take(&mut c)).is_empty(),
        "waits the retry interval"
    );
    c.tick(now + 1001);
    let s = sent_appends(&take(&mut c));
    assert_eq!(
        (s[0].1.first_index, s[0].1.count),
        (6, 1),
        "probing from nextIndex"
    );
}

#[test]
fn s17_2_idle_leader_writes_heartbeat_entries_and_empty_appends_carry_commit() {
    let mut c = node(1, 2, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let (_, m) = sent_appends(&take(&mut c))[0];
    c.on_log_persisted(now, 1);
    c.handle_append_resp(now, 2, &m, &ok(1));
    assert_eq!(c.commit_index(), 1);
    let acts = take(&mut c);
    let empty = sent_appends(&acts);
    assert_eq!(empty.len(), 1);
    assert_eq!((empty[0].1.count, empty[0].1.leader_commit), (0, 1));
    c.tick(now + 299);
    assert!(take(&mut c)
        .iter()
        .all(|a| !matches!(a, Action::AppendLocal { .. })));
    c.tick(now + 300);
    assert!(take(&mut c).contains(&Action::AppendLocal {
        kind: LocalEntries::Heartbeat,
        first_index: 2,
        last_index: 2,
        term: 1,
        prev_log_term: 1
    }));
}

#[test]
fn aligned_heartbeats_fire_on_the_quarter_interval_grid() {
    let mut c0 = cfg(1, 2);
    c0.align_heartbeats = true;
    let mut c = RaftCore::new(c0, 1, T0, 0, 0, 0, 0, 0).unwrap();
    c.set_member_ready(T0, 2, true);
    c.drain_actions();
    let now = elect(&mut c, &[2]);
    let (_, m) = sent_appends(&take(&mut c))[0];
    c.on_log_persisted(now, 1);
    c.handle_append_resp(now, 2, &m, &ok(1));
    take(&mut c);
    // the grid is 300 / 4 = 75 ms; due = now + 300 rounded up to it
    let due = (now + 300).div_ceil(75) * 75;
    assert_eq!(
        c.next_deadline(),
        due,
        "the ticker sleeps until the grid point"
    );
    assert!(due >= now + 300 && due < now + 300 + 75);
    if due > now + 300 {
        c.tick(due - 1);
        assert!(take(&mut c)
            .iter()
            .all(|a| !matches!(a, Action::AppendLocal { .. })));
    }
    c.tick(due);
    assert!(take(&mut c).iter().any(|a| matches!(
        a,
        Action::AppendLocal {
            kind: LocalEntries::Heartbeat,
            ..
        }
    )));
    // the next one is a whole interval later, on the grid again
    let next = (due + 300).div_ceil(75) * 75;
    assert_eq!(next, due + 300);
    assert_eq!(c.next_deadline(), next);
}

#[test]
fn propose_on_a_follower_is_refused_with_the_leader_hint() {
    let mut c = node(2, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 3, (0, 0), 0, &[]));
    assert_eq!(c.propose(T0, 1), Err(NotLeader { leader: Some(3) }));
}

// ---------------------------------------------------------------- receiver

#[test]
fn s17_7_append_replies_wait_for_persistence_and_are_released_in_order() {
    let mut c = node(2, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[1, 1]));
    c.handle_append(T0, 2, &req(1, 1, (2, 1), 0, &[1]));
    c.handle_append(T0, 3, &req(1, 1, (3, 1), 0, &[1, 1]));
    let acts = take(&mut c);
    assert!(append_replies(&acts).is_empty());
    assert_eq!(
        acts.iter()
            .filter(|a| matches!(a, Action::AppendReceived { .. }))
            .count(),
        3
    );
    c.on_log_persisted(T0, 3);
    assert_eq!(append_replies(&take(&mut c)), vec![(1, ok(1)), (2, ok(1))]);
    c.on_log_persisted(T0, 5);
    assert_eq!(append_replies(&take(&mut c)), vec![(3, ok(1))]);
}

#[test]
fn handled_append_requests_give_their_entry_lists_back_for_reuse() {
    let mut c = node(2, 3, 1, 0, 0);
    // nothing handled yet: a new, empty list
    assert_eq!(c.spare_entries().capacity(), 0);
    c.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[1, 1, 1]));
    let spare = c.spare_entries();
    assert!(spare.is_empty());
    assert!(
        spare.capacity() >= 3,
        "the handled request's list comes back"
    );
    // taken: the next one is new again
    assert_eq!(c.spare_entries().capacity(), 0);
    // a request that waits (here: behind one waiting for its term to be saved) keeps
    // its list until it is handled
    c.handle_append(T0, 2, &req(2, 1, (3, 1), 0, &[2]));
    c.handle_append(T0, 3, &req(2, 1, (4, 2), 0, &[2, 2]));
    assert_eq!(c.spare_entries().capacity(), 0);
    c.on_status_saved(T0, 2, 0);
    assert!(c.spare_entries().capacity() >= 1);
}

#[test]
fn s7_3_deferred_replies_of_an_old_term_are_dropped() {
    let mut c = node(2, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[1]));
    c.handle_append(T0, 2, &req(2, 3, (1, 1), 0, &[]));
    c.on_status_saved(T0, 2, 0);
    let acts = take(&mut c);
    assert_eq!(append_replies(&acts), vec![(2, ok(2))]);
    c.on_log_persisted(T0, 1);
    assert!(append_replies(&take(&mut c)).is_empty());
}

#[test]
fn s7_3_higher_term_waits_for_the_status_file_and_queues_later_requests() {
    let mut c = node(2, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(3, 1, (0, 0), 0, &[3]));
    c.handle_append(T0, 2, &req(3, 1, (1, 3), 0, &[3]));
    let acts = take(&mut c);
    assert_eq!(c.term(), 3);
    assert!(acts
        .iter()
        .all(|a| !matches!(a, Action::AppendReceived { .. })));
    assert_eq!(c.queued_appends(), 2);
    c.on_status_saved(T0, 3, 0);
    let acts = take(&mut c);
    assert_eq!(
        acts.iter()
            .filter(|a| matches!(a, Action::AppendReceived { .. }))
            .count(),
        2
    );
    assert_eq!(c.leader(), Some(1));
}

#[test]
fn s7_3_small_term_is_rejected_an_unknown_sender_accepted() {
    let mut c = node(2, 3, 5, 0, 0);
    c.handle_append(T0, 1, &req(4, 1, (0, 0), 0, &[4]));
    assert_eq!(
        append_replies(&take(&mut c)),
        vec![(1, AppendResp::new(5, AppendCode::ReqError))]
    );
    // a sender in no configuration this node knows is the term's leader all the same
    // (a deliberate difference: the reference answers NOT_MEMBER_IN_GROUP)
    c.handle_append(T0, 2, &req(5, 9, (0, 0), 0, &[5]));
    c.on_log_persisted(T0, 1);
    assert_eq!(append_replies(&take(&mut c)), vec![(2, ok(5))]);
    assert_eq!(c.leader(), Some(9));
    // a leader receiving an append of its own term
    let mut l = node(1, 3, 0, 0, 0);
    let now = elect(&mut l, &[2]);
    l.drain_actions();
    l.handle_append(now, 3, &req(1, 2, (0, 0), 0, &[]));
    assert_eq!(
        append_replies(&take(&mut l))[0].1.code,
        AppendCode::ReqError
    );
    assert_eq!(l.role(), Role::Leader);
}

#[test]
fn s7_3_malformed_entries_are_rejected_without_panic() {
    let mut c = node(2, 3, 1, 0, 0);
    let mut r = req(1, 1, (0, 0), 0, &[1, 1]);
    r.entries[1].index = 7; // gap
    c.handle_append(T0, 1, &r);
    let mut r2 = req(1, 1, (0, 0), 0, &[1]);
    r2.entries[0].term = 9; // above the leader's term
    c.handle_append(T0, 2, &r2);
    let mut r3 = req(1, 1, (0, 0), 0, &[1]);
    r3.prev_log_index = u64::MAX;
    r3.entries[0].index = 0;
    c.handle_append(T0, 3, &r3);
    let codes: Vec<_> = append_replies(&take(&mut c))
        .iter()
        .map(|r| r.1.code)
        .collect();
    assert_eq!(codes, vec![AppendCode::ReqError; 3]);
    assert_eq!(c.last_log_index(), 0);
}

#[test]
fn s7_5_mismatch_runs_the_follower_search_and_suggests_its_match() {
    // follower log: 1..=5 in term 1, 6..=8 in term 2
    let mut c = node(2, 3, 2, 8, 2);
    c.handle_append(T0, 1, &req(3, 1, (9, 3), 0, &[3]));
    c.on_status_saved(T0, 3, 0);
    let acts = take(&mut c);
    assert!(acts.contains(&Action::FindMatchPos {
        search: MatchSearch::Follower { req: 1 },
        suggest_term: 3,
        suggest_index: 9
    }));
    c.handle_append(T0, 2, &req(3, 1, (10, 3), 0, &[3]));
    assert_eq!(c.queued_appends(), 2);
    c.on_follower_match_pos(T0, 1, Some((2, 8)));
    let acts = take(&mut c);
    let r = append_replies(&acts);
    assert_eq!(r[0].0, 1);
    assert_eq!(
        (r[0].1.code, r[0].1.suggest_term, r[0].1.suggest_index),
        (AppendCode::LogNotMatch, 2, 8)
    );
    // the next queued request runs its own search
    assert!(acts.contains(&Action::FindMatchPos {
        search: MatchSearch::Follower { req: 2 },
        suggest_term: 3,
        suggest_index: 10
    }));
    c.on_follower_match_pos(T0, 2, None);
    let r = append_replies(&take(&mut c));
    assert_eq!(
        (r[0].1.code, r[0].1.suggest_index),
        (AppendCode::LogNotMatch, 0)
    );
}

#[test]
fn s7_3_exact_match_truncates_after_the_local_write_finished() {
    let mut c = node(2, 3, 2, 8, 2);
    // an unpersisted entry 9 of term 2
    c.handle_append(T0, 1, &req(2, 1, (8, 2), 0, &[2]));
    c.drain_actions();
    // new leader of term 3 whose log diverges after 6
    c.handle_append(T0, 2, &req(3, 3, (6, 2), 0, &[3, 3]));
    c.on_status_saved(T0, 3, 0);
    c.drain_actions();
    c.on_follower_match_pos(T0, 2, Some((2, 6)));
    let acts = take(&mut c);
    assert!(
        acts.iter()
            .all(|a| !matches!(a, Action::AppendReceived { .. })),
        "waits for entry 9 to be written"
    );
    c.on_log_persisted(T0, 9);
    // all checks run again after the wait, the search too
    assert_eq!(
        take(&mut c),
        vec![Action::FindMatchPos {
            search: MatchSearch::Follower { req: 2 },
            suggest_term: 2,
            suggest_index: 6
        }]
    );
    c.on_follower_match_pos(T0, 2, Some((2, 6)));
    let acts = take(&mut c);
    assert!(acts.contains(&Action::AppendReceived {
        req: 2,
        truncate_after: Some(6),
        first_index: 7,
        last_index: 8
    }));
    assert_eq!((c.last_log_index(), c.last_log_term()), (8, 3));
    assert!(
        append_replies(&acts).is_empty(),
        "the old term's reply is dropped"
    );
    c.on_log_persisted(T0, 8);
    assert_eq!(append_replies(&take(&mut c)), vec![(2, ok(3))]);
}

/// A follower whose log starts right after its commit index (an installed snapshot,
/// entries of an old leader after it): the new leader's entries continue the
/// committed entry, which the log no longer holds, so the search finds nothing; the
/// committed entry is the leader's, so it is a match and the uncommitted tail goes,
/// instead of LOG_NOT_MATCH (0, 0), which asks for an install (the whole-cluster
/// simulation ended stalled when the leader's snapshot was older than the follower's
/// commit index, which the follower refuses).
#[test]
fn s7_3_no_match_at_the_commit_index_matches_the_committed_entry() {
    let mut c = node(2, 3, 2, 8, 2);
    c.handle_append(T0, 1, &req(2, 1, (8, 2), 5, &[]));
    assert_eq!(c.commit_index(), 5);
    c.drain_actions();
    // new leader of term 3: its entry 6 (term 3) after the committed entry 5 (term 1)
    c.handle_append(T0 + 10, 2, &req(3, 3, (5, 1), 5, &[3]));
    c.on_status_saved(T0 + 10, 3, 0);
    c.drain_actions();
    c.on_follower_match_pos(T0 + 10, 2, None);
    let acts = take(&mut c);
    assert!(
        acts.contains(&Action::AppendReceived {
            req: 2,
            truncate_after: Some(5),
            first_index: 6,
            last_index: 6
        }),
        "{acts:?}"
    );
    assert_eq!((c.last_log_index(), c.last_log_term()), (6, 3));
    c.on_log_persisted(T0 + 20, 6);
    assert_eq!(append_replies(&take(&mut c)), vec![(2, ok(3))]);
}

/// Nothing found above the commit index is still LOG_NOT_MATCH (0, 0): the leader
/// installs a snapshot.
#[test]
fn s7_3_no_match_above_the_commit_index_asks_for_an_install() {
    let mut c = node(2, 3, 2, 8, 2);
    c.handle_append(T0, 1, &req(2, 1, (8, 2), 5, &[]));
    c.drain_actions();
    c.handle_append(T0 + 10, 2, &req(3, 3, (7, 3), 5, &[3]));
    c.on_status_saved(T0 + 10, 3, 0);
    c.drain_actions();
    c.on_follower_match_pos(T0 + 10, 2, None);
    let r = append_replies(&take(&mut c));
    assert_eq!(
        (r[0].1.code, r[0].1.suggest_index),
        (AppendCode::LogNotMatch, 0)
    );
    assert_eq!(c.last_log_index(), 8);
}

#[test]
fn s7_3_never_truncates_below_commit() {
    let mut c = node(2, 3, 2, 8, 2);
    c.handle_append(T0, 1, &req(2, 1, (8, 2), 8, &[]));
    assert_eq!(c.commit_index(), 8);
    c.handle_append(T0, 2, &req(3, 3, (5, 1), 8, &[3]));
    c.on_status_saved(T0, 3, 0);
    c.drain_actions();
    c.on_follower_match_pos(T0, 2, Some((1, 5)));
    let acts = take(&mut c);
    assert_eq!(
        append_replies(&acts)[0].1.code,
        AppendCode::PrevLogIndexLessThanLocalCommit
    );
    assert_eq!(c.last_log_index(), 8);
}

#[test]
fn s7_3_a_duplicated_request_of_the_same_term_never_truncates() {
    let mut c = node(2, 3, 1, 0, 0);
    let r1 = req(1, 1, (0, 0), 0, &[1, 1]);
    let r2 = req(1, 1, (2, 1), 0, &[1, 1]);
    c.handle_append(T0, 1, &r1);
    c.handle_append(T0, 2, &r2);
    c.handle_append(T0, 3, &r1); // duplicate, overlapping
    let acts = take(&mut c);
    assert_eq!(
        acts.iter()
            .filter(|a| matches!(a, Action::AppendReceived { .. }))
            .count(),
        2
    );
    assert_eq!(c.last_log_index(), 4);
    c.on_log_persisted(T0, 4);
    let ids: Vec<_> = append_replies(&take(&mut c)).iter().map(|r| r.0).collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

// ---------------------------------------------------------------- commit

#[test]
fn s17_10_leader_commits_only_entries_of_its_own_term() {
    // an old-term entry 1..=3 is on the leader but its term's commit is unknown
    let mut c = node(1, 3, 1, 3, 1);
    let now = elect(&mut c, &[2]);
    let sends = sent_appends(&take(&mut c));
    let (_, m) = sends.into_iter().find(|s| s.0 == 2).unwrap();
    assert_eq!(m.first_index, 4);
    // peer 2 had 1..=3; suppose it acked only up to 3 (an old entry) via a search
    c.on_log_persisted(now, 3);
    assert_eq!(c.commit_index(), 0);
    c.handle_append_resp(
        now,
        2,
        &AppendSend {
            first_index: 3,
            count: 1,
            ..m
        },
        &ok(2),
    );
    assert_eq!(
        c.commit_index(),
        0,
        "index 3 is of term 1: not committed by itself"
    );
    c.on_log_persisted(now, 4);
    c.handle_append_resp(now, 2, &m, &ok(2));
    assert_eq!(
        c.commit_index(),
        4,
        "the own-term heartbeat commits everything before"
    );
    assert!(take(&mut c).contains(&Action::Apply { commit_index: 4 }));
}

#[test]
fn s8_1_leader_commits_only_what_it_persisted_itself() {
    let mut c = node(1, 3, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let sends = sent_appends(&take(&mut c));
    for (to, m) in sends {
        c.handle_append_resp(now, to, &m, &ok(1));
    }
    assert_eq!(c.commit_index(), 0, "own write not done");
    c.on_log_persisted(now, 1);
    assert_eq!(c.commit_index(), 1);
}

#[test]
fn s17_1_four_members_commit_with_two_copies() {
    let mut c = node(1, 4, 0, 0, 0);
    let now = elect(&mut c, &[2, 3]);
    let (to, m) = sent_appends(&take(&mut c))[0];
    c.on_log_persisted(now, 1);
    assert_eq!(c.commit_index(), 0);
    c.handle_append_resp(now, to, &m, &ok(1));
    assert_eq!(c.commit_index(), 1, "rwQuorum(4) = 2");
}

#[test]
fn s8_2_follower_commit_is_min_of_leader_commit_and_persisted() {
    let mut c = node(2, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 1, (0, 0), 3, &[1, 1, 1, 1]));
    assert_eq!(c.commit_index(), 0);
    c.on_log_persisted(T0, 2);
    assert_eq!(c.commit_index(), 2);
    assert!(take(&mut c).contains(&Action::Apply { commit_index: 2 }));
    c.on_log_persisted(T0, 4);
    assert_eq!(c.commit_index(), 3);
    c.handle_append(T0, 2, &req(1, 1, (0, 0), 4, &[]));
    assert_eq!(c.commit_index(), 4);
}

#[test]
fn s8_5_group_ready_when_the_first_entry_of_the_term_is_applied() {
    let mut c = node(1, 3, 1, 3, 1);
    let now = elect(&mut c, &[2]);
    c.on_applied(now, 3);
    assert!(!c.group_ready());
    c.on_applied(now, 4);
    assert!(c.group_ready());
    let mut f = node(2, 3, 1, 0, 0);
    f.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[1, 1]));
    f.on_applied(T0, 1);
    assert!(f.group_ready());
}

// ---------------------------------------------------------------- lease

#[test]
fn s9_lease_starts_at_the_quorum_confirmed_send_time() {
    let mut c = node(1, 3, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    // peer 2 granted the vote at `now`: lease from there (self too)
    assert_eq!(c.lease_start(), now);
    assert_eq!(c.lease_end(), now + ELECT - 100);
    assert_eq!(c.lease_read(now), Err(LeaseError::NotReady));
    c.on_log_persisted(now, 1);
    let (to, m) = sent_appends(&take(&mut c))[0];
    c.handle_append_resp(now + 50, to, &m, &ok(1));
    c.on_applied(now + 50, 1);
    assert_eq!(c.lease_read(now + 50), Ok(()));
    assert!(c.is_leader(now + ELECT - 101));
    assert_eq!(c.lease_read(now + ELECT - 100), Err(LeaseError::Expired(0)));
    assert!(!c.is_leader(now + ELECT - 100));
    // a later ack with an older send time does not move the lease back
    let mut f = node(2, 3, 1, 0, 0);
    assert_eq!(f.lease_read(T0), Err(LeaseError::NotLeader(None)));
}

#[test]
fn s9_lease_delta_is_clamped() {
    let mut c = RaftCore::new(CoreConfig::new(1, vec![1]), 1, T0, 0, 0, 0, 0, 0).unwrap();
    c.tick(T0 + 15_000 + 701);
    c.on_status_saved(T0 + 15_701, 1, 1);
    assert_eq!(c.role(), Role::Leader);
    c.on_log_persisted(T0 + 15_701, 1);
    // 15 000 ms timeout: delta 500 → 14.5 s
    assert_eq!(c.lease_end() - c.lease_start(), 14_500);
}

#[test]
fn s17_3_leader_steps_down_after_elect_timeout_without_commit() {
    let mut c = node(1, 3, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    c.on_log_persisted(now, 1);
    c.drain_actions();
    // nobody acks: no commit, no refresh of the election timer
    let mut t = now;
    while t < now + ELECT + 701 {
        t += 100;
        c.tick(t);
        c.on_log_persisted(t, c.last_log_index());
    }
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.term(), 1, "step-down keeps the term");
    assert_eq!(c.leader(), None);
    let acts = take(&mut c);
    assert!(
        acts.iter()
            .all(|a| !matches!(a, Action::FailPendingTasks { .. })),
        "no term change: pending tasks are not failed"
    );
}

#[test]
fn s17_3_a_leader_that_keeps_committing_stays() {
    let mut c = node(1, 3, 0, 0, 0);
    let mut now = elect(&mut c, &[2]);
    let (to, m) = sent_appends(&take(&mut c))[0];
    c.on_log_persisted(now, 1);
    c.handle_append_resp(now, to, &m, &ok(1));
    for _ in 0..30 {
        now += 100;
        c.tick(now);
        c.on_log_persisted(now, c.last_log_index());
        for (p, m) in sent_appends(&take(&mut c)) {
            if p == to {
                c.handle_append_resp(now, p, &m, &ok(1));
            }
        }
    }
    assert_eq!(c.role(), Role::Leader);
    assert!(c.commit_index() > 5);
}

#[test]
fn s17_19_leader_seeing_a_higher_term_fails_pending_tasks() {
    let mut c = node(1, 3, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let (to, m) = sent_appends(&take(&mut c))[0];
    c.handle_append_resp(now, to, &m, &AppendResp::new(5, AppendCode::ReqError));
    let acts = take(&mut c);
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.term(), 5);
    assert!(acts.contains(&Action::FailPendingTasks { leader: None }));
}

// ---------------------------------------------------------------- bad peer input

#[test]
fn a_peer_pushing_the_term_to_its_maximum_cannot_make_us_overflow() {
    let mut c = node(2, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(Term::MAX, 1, (0, 0), 0, &[]));
    c.on_status_saved(T0, Term::MAX, 0);
    assert_eq!(c.term(), Term::MAX);
    c.drain_actions();
    // the election timer runs out: no campaign (term + 1 does not exist)
    c.tick(T0 + 10 * ELECT);
    c.tick(T0 + 20 * ELECT);
    assert!(sent_votes(&take(&mut c)).is_empty());
}

#[test]
fn nonsense_positions_from_a_peer_are_rejected_or_clamped() {
    // prevLogTerm without a prevLogIndex
    let mut c = node(2, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 1, (0, 7), 0, &[]));
    c.drain_actions();
    let mut r = req(1, 1, (0, 0), 0, &[1]);
    r.prev_log_term = 1;
    c.handle_append(T0, 2, &r);
    assert_eq!(
        append_replies(&take(&mut c))[0].1.code,
        AppendCode::ReqError
    );
    // a leader given an absurd suggestion never moves nextIndex past its log
    let mut l = node(1, 3, 1, 4, 1);
    let now = elect(&mut l, &[2]);
    let (to, m) = sent_appends(&take(&mut l))[0];
    let mut resp = AppendResp::new(2, AppendCode::LogNotMatch);
    resp.suggest_term = Term::MAX;
    resp.suggest_index = Index::MAX;
    l.handle_append_resp(now, to, &m, &resp);
    let epoch = l.progress(to).unwrap().epoch;
    l.on_leader_match_pos(now, to, epoch, Some((Term::MAX, Index::MAX)));
    assert_eq!(l.progress(to).unwrap().next_index, 6);
    // a response for an unknown peer or a wrong epoch is ignored
    l.handle_append_resp(now, 77, &m, &ok(2));
    l.handle_append_resp(now, to, &m, &ok(2));
    assert_eq!(l.progress(to).unwrap().match_index, 0);
}

#[test]
fn s7_4_an_out_of_order_success_restarts_replication() {
    let mut c = node(1, 2, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let (_, m1) = sent_appends(&take(&mut c))[0];
    c.handle_append_resp(now, 2, &m1, &ok(1));
    c.propose(now, 2).unwrap();
    let (_, m2) = sent_appends(&take(&mut c))[0];
    c.propose(now, 2).unwrap();
    let (_, m3) = sent_appends(&take(&mut c))[0];
    c.handle_append_resp(now, 2, &m3, &ok(1));
    assert_eq!(c.progress(2).unwrap().match_index, 5);
    let epoch = c.progress(2).unwrap().epoch;
    // the earlier one arrives later: "append miss order"
    c.handle_append_resp(now, 2, &m2, &ok(1));
    assert_eq!(c.progress(2).unwrap().epoch, epoch + 1);
    assert_eq!(c.progress(2).unwrap().match_index, 5, "never goes back");
}

#[test]
fn s11_7_observer_acks_are_never_counted_for_commit() {
    let mut oc = cfg(1, 2);
    oc.observers = vec![3];
    let mut c = RaftCore::new(oc, 1, T0, 0, 0, 0, 0, 0).unwrap();
    for p in 1..=3 {
        c.set_member_ready(T0, p, true);
    }
    c.drain_actions();
    let now = elect(&mut c, &[2]);
    let sends = sent_appends(&take(&mut c));
    assert!(
        sends.iter().any(|s| s.0 == 3),
        "observers are replicated to"
    );
    c.on_log_persisted(now, 1);
    let (_, m) = sends.iter().find(|s| s.0 == 3).copied().unwrap();
    c.handle_append_resp(now, 3, &m, &ok(1));
    assert_eq!(c.progress(3).unwrap().match_index, 1);
    assert_eq!(
        c.commit_index(),
        0,
        "2 members: rwQuorum 2, the observer does not count"
    );
    let (_, m) = sends.iter().find(|s| s.0 == 2).copied().unwrap();
    c.handle_append_resp(now, 2, &m, &ok(1));
    assert_eq!(c.commit_index(), 1);
}

#[test]
fn s5_5_vote_responses_count_only_for_a_candidate_and_once_per_node() {
    let mut c = node(1, 5, 0, 0, 0);
    let (now, acts) = time_out(&mut c, T0);
    let pre = sent_votes(&acts);
    c.handle_vote_resp(now, pre[0].0, &pre[0].1, &granted(0));
    c.handle_vote_resp(now, pre[0].0, &pre[0].1, &granted(0));
    assert_eq!(c.role(), Role::Follower, "one node counts once");
    c.handle_vote_resp(now, pre[1].0, &pre[1].1, &granted(0));
    assert_eq!(c.role(), Role::Candidate);
    c.on_status_saved(now, 1, 1);
    let votes = sent_votes(&take(&mut c));
    // a higher term in a refusal ends the candidacy
    let refuse = VoteResp {
        term: 4,
        vote_granted: false,
    };
    c.handle_vote_resp(now, votes[0].0, &votes[0].1, &refuse);
    assert_eq!((c.role(), c.term()), (Role::Follower, 4));
    c.handle_vote_resp(now, votes[1].0, &votes[1].1, &granted(1));
    c.handle_vote_resp(now, votes[2].0, &votes[2].1, &granted(1));
    assert_eq!(c.role(), Role::Follower, "late votes of a cancelled round");
}

#[test]
fn s5_1_a_vote_round_that_does_not_finish_in_time_is_cancelled_and_retried() {
    let mut c = node(1, 3, 0, 0, 0);
    let (now, acts) = time_out(&mut c, T0);
    let first = sent_votes(&acts);
    assert_eq!(first.len(), 2);
    // nobody answers
    let (now2, acts) = time_out(&mut c, now);
    let second = sent_votes(&acts);
    assert_eq!(second.len(), 2);
    assert!(second[0].1.round > first[0].1.round);
    c.handle_vote_resp(now2, first[0].0, &first[0].1, &granted(0));
    assert_eq!(
        c.role(),
        Role::Follower,
        "the old round's answer is ignored"
    );
}

#[test]
fn s5_1_no_campaign_while_apply_lags_behind_commit() {
    let mut c = node(1, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 2, (0, 0), 1, &[1]));
    c.on_log_persisted(T0, 1);
    assert_eq!(c.commit_index(), 1);
    c.drain_actions();
    c.tick(T0 + 5 * ELECT);
    assert!(
        sent_votes(&take(&mut c)).is_empty(),
        "entry 1 is not applied yet"
    );
    c.on_applied(T0 + 5 * ELECT, 1);
    c.tick(T0 + 7 * ELECT);
    assert!(!sent_votes(&take(&mut c)).is_empty());
}

#[test]
fn s7_3_a_candidate_hearing_the_leader_of_its_term_becomes_its_follower() {
    let mut c = node(1, 3, 0, 0, 0);
    let (now, acts) = time_out(&mut c, T0);
    let (to, msg) = sent_votes(&acts)[0];
    c.handle_vote_resp(now, to, &msg, &granted(0));
    assert_eq!(c.role(), Role::Candidate);
    c.on_status_saved(now, 1, 1);
    c.drain_actions();
    // node 2 won term 1 first
    c.handle_append(now + 1, 5, &req(1, 2, (0, 0), 0, &[1]));
    assert_eq!(
        (c.role(), c.leader(), c.term()),
        (Role::Follower, Some(2), 1)
    );
    c.on_log_persisted(now + 2, 1);
    assert_eq!(append_replies(&take(&mut c)), vec![(5, ok(1))]);
}

// ---------------------------------------------------------------- transfer

/// A leader (node 1 of 3) with entry 1 committed and acked by node 2 only.
pub(super) fn leader_with_commit() -> (RaftCore, u64, AppendSend) {
    let mut c = node(1, 3, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let (_, m) = sent_appends(&take(&mut c))
        .into_iter()
        .find(|s| s.0 == 2)
        .unwrap();
    c.on_log_persisted(now, 1);
    c.handle_append_resp(now, 2, &m, &ok(1));
    c.drain_actions();
    (c, now, m)
}

#[test]
fn s10_2_transfer_waits_for_the_target_to_catch_up_then_checks_its_config() {
    let (mut c, now, _) = leader_with_commit();
    assert_eq!(
        c.start_transfer(now, 9, now + 500),
        Err(TransferError::NodeNotFound)
    );
    // node 3 has nothing yet
    c.start_transfer(now, 3, now + 500).unwrap();
    assert_eq!(
        c.start_transfer(now, 3, now + 500),
        Err(TransferError::InProgress)
    );
    assert!(take(&mut c)
        .iter()
        .all(|a| !matches!(a, Action::CheckTransferTarget { .. })));
    // no heartbeat entries while transferring
    c.tick(now + 400);
    assert!(take(&mut c)
        .iter()
        .all(|a| !matches!(a, Action::AppendLocal { .. })));
    let m3 = AppendSend {
        term: 1,
        leader_id: 1,
        first_index: 1,
        count: 1,
        leader_commit: 0,
        epoch: c.progress(3).unwrap().epoch,
        sent_at: now,
    };
    c.handle_append_resp(now + 401, 3, &m3, &ok(1));
    assert!(take(&mut c).contains(&Action::CheckTransferTarget { to: 3 }));
    c.on_transfer_target_checked(now + 402, true);
    let acts = take(&mut c);
    assert!(acts.contains(&Action::SendTransferLeader {
        to: 3,
        req: TransferReq {
            term: 1,
            old_leader_id: 1,
            new_leader_id: 3,
            log_index: 1
        }
    }));
    // §17 item 18: stepped down before asking, same term, tasks not failed
    assert_eq!(
        (c.role(), c.term(), c.leader()),
        (Role::Follower, 1, Some(3))
    );
    assert!(acts
        .iter()
        .all(|a| !matches!(a, Action::FailPendingTasks { .. })));
}

#[test]
fn s10_2_transfer_fails_on_timeout_or_config_mismatch_and_keeps_leading() {
    let (mut c, now, _) = leader_with_commit();
    c.start_transfer(now, 3, now + 100).unwrap();
    c.tick(now + 100);
    assert!(take(&mut c).contains(&Action::TransferFailed {
        error: TransferError::Timeout
    }));
    assert_eq!(c.role(), Role::Leader);
    c.start_transfer(now + 101, 2, now + 1000).unwrap();
    assert!(take(&mut c).contains(&Action::CheckTransferTarget { to: 2 }));
    c.on_transfer_target_checked(now + 102, false);
    assert!(take(&mut c).contains(&Action::TransferFailed {
        error: TransferError::ConfigNotMatch
    }));
    assert_eq!(c.role(), Role::Leader);
    assert!(!c.transfer_in_progress());
}

#[test]
fn s17_12_transfer_keeps_the_term_on_the_new_leader() {
    let mut t = node(2, 3, 0, 0, 0);
    t.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[1]));
    t.on_status_saved(T0, 1, 0);
    t.on_log_persisted(T0, 1);
    t.drain_actions();
    let voted = t.voted_for();
    let mut r = TransferReq {
        term: 1,
        old_leader_id: 1,
        new_leader_id: 2,
        log_index: 2,
    };
    t.handle_transfer_leader(T0, 7, &r);
    assert_eq!(
        take(&mut t),
        vec![Action::ReplyTransfer {
            req: 7,
            result: Err(TransferError::Refused)
        }],
        "log index must match"
    );
    r.log_index = 1;
    t.handle_transfer_leader(T0, 8, &r);
    let acts = take(&mut t);
    assert_eq!(
        (t.role(), t.term(), t.voted_for()),
        (Role::Leader, 1, voted)
    );
    assert_eq!(t.commit_index(), 1);
    assert!(acts.contains(&Action::Apply { commit_index: 1 }));
    assert!(acts.contains(&Action::AppendLocal {
        kind: LocalEntries::Heartbeat,
        first_index: 2,
        last_index: 2,
        term: 1,
        prev_log_term: 1
    }));
    assert!(acts.contains(&Action::ReplyTransfer {
        req: 8,
        result: Ok(())
    }));
}

#[test]
fn s4_a_term_change_aborts_a_pending_transfer() {
    let (mut c, now, m) = leader_with_commit();
    c.start_transfer(now, 3, now + 1000).unwrap();
    c.handle_append_resp(now, 2, &m, &AppendResp::new(3, AppendCode::ReqError));
    let acts = take(&mut c);
    assert!(acts.contains(&Action::TransferFailed {
        error: TransferError::NotLeader(None)
    }));
    assert!(!c.transfer_in_progress());
}

// ---------------------------------------------------------------- membership

pub(super) fn joint(members: &[NodeId], prepared: &[NodeId]) -> MemberSets {
    MemberSets {
        members: members.to_vec(),
        observers: vec![],
        prepared_members: prepared.to_vec(),
        prepared_observers: vec![],
    }
}

#[test]
fn s11_1_joint_leader_commits_only_with_both_rw_quorums() {
    let (mut c, now, _) = leader_with_commit();
    c.apply_member_sets(now, joint(&[1, 2, 3], &[1, 4, 5]));
    for p in [4, 5] {
        assert_eq!(
            c.progress(p).unwrap().next_index,
            2,
            "new members start at last+1"
        );
        c.set_member_ready(now, p, true);
    }
    c.drain_actions();
    c.propose(now, 1).unwrap();
    c.on_log_persisted(now, 2);
    let sends = sent_appends(&take(&mut c));
    let to = |p: NodeId| sends.iter().find(|s| s.0 == p).unwrap().1;
    c.handle_append_resp(now, 2, &to(2), &ok(1));
    assert_eq!(
        c.commit_index(),
        1,
        "old config has a quorum, the new one not"
    );
    // node 4 is probing from index 2
    assert_eq!((to(4).first_index, to(4).count), (2, 1));
    c.handle_append_resp(now, 4, &to(4), &ok(1));
    assert_eq!(c.commit_index(), 2);
}

#[test]
fn s11_1_joint_election_needs_both_elect_quorums() {
    let mut c = node(1, 5, 0, 0, 0);
    c.apply_member_sets(T0, joint(&[1, 2, 3], &[3, 4, 5]));
    for p in 1..=5 {
        c.set_member_ready(T0, p, true);
    }
    c.drain_actions();
    let (now, acts) = time_out(&mut c, T0);
    let pre = sent_votes(&acts);
    assert_eq!(pre.len(), 4, "pre-votes go to both sets");
    let grant = |c: &mut RaftCore, p: NodeId| {
        let m = pre.iter().find(|v| v.0 == p).unwrap().1;
        c.handle_vote_resp(now, p, &m, &granted(0));
    };
    grant(&mut c, 2);
    grant(&mut c, 3);
    assert_eq!(c.role(), Role::Follower, "new config: only 3 of 3,4,5");
    grant(&mut c, 4);
    assert_eq!(c.role(), Role::Candidate);
}

#[test]
fn s17_14_a_removed_leader_becomes_none_when_the_commit_is_applied() {
    let (mut c, now, _) = leader_with_commit();
    c.apply_member_sets(now, joint(&[1, 2, 3], &[2, 3, 4]));
    assert_eq!(c.role(), Role::Leader, "still leading while joint");
    c.drain_actions();
    c.apply_member_sets(now, MemberSets::new(vec![2, 3, 4], vec![]));
    assert_eq!((c.role(), c.leader()), (Role::None, None));
    assert!(take(&mut c).contains(&Action::RoleChanged {
        role: Role::None,
        term: 1,
        leader: None
    }));
    assert!(c.progress(1).is_none());
    // a none node never campaigns
    c.tick(now + 10 * ELECT);
    assert!(sent_votes(&take(&mut c)).is_empty());
}

#[test]
fn s11_2_membership_decides_the_role_and_forgets_a_removed_leader() {
    let mut c = node(3, 3, 1, 0, 0);
    c.handle_append(T0, 1, &req(1, 1, (0, 0), 0, &[]));
    assert_eq!(c.leader(), Some(1));
    let mut s = MemberSets::new(vec![1, 2], vec![3]);
    c.apply_member_sets(T0, s.clone());
    assert_eq!((c.role(), c.leader()), (Role::Observer, None));
    s.members = vec![2, 3];
    s.observers = vec![];
    c.apply_member_sets(T0, s);
    assert_eq!(c.role(), Role::Follower);
}

#[test]
fn s6_3_a_non_leader_may_drop_every_applied_entry_from_the_tail() {
    let mut c = node(1, 3, 0, 0, 0);
    assert_eq!(
        c.tail_droppable_upto(0),
        Index::MAX,
        "a follower's cache serves only its own apply"
    );
    let now = elect(&mut c, &[2]);
    assert_eq!(c.role(), Role::Leader);
    assert_eq!(
        c.tail_droppable_upto(0),
        0,
        "no peer holds the first entry yet"
    );
    for (to, m) in sent_appends(&take(&mut c)) {
        c.handle_append_resp(now, to, &m, &ok(1));
    }
    assert_eq!(c.tail_droppable_upto(0), 1, "both peers hold it");
    assert_eq!(c.tail_droppable_upto(0), c.replicated_to_all(0));
    // it loses its quorum and steps down: its cache no longer serves any peer
    let mut t = now;
    while c.role() == Role::Leader && t < now + 10 * ELECT {
        t += 100;
        c.tick(t);
    }
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.tail_droppable_upto(0), Index::MAX);
}

#[test]
fn s6_3_a_peer_the_leader_does_not_replicate_to_holds_no_entries_in_the_tail() {
    let mut c = node(1, 3, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    for (to, m) in sent_appends(&take(&mut c)) {
        c.handle_append_resp(now, to, &m, &ok(1));
    }
    assert_eq!(
        c.replicated_to_all(0),
        1,
        "both followers hold the first entry"
    );
    c.propose(now, 3).unwrap();
    for (to, m) in sent_appends(&take(&mut c)) {
        if to == 2 {
            c.handle_append_resp(now, to, &m, &ok(1));
        }
    }
    assert_eq!(
        c.replicated_to_all(0),
        1,
        "3 is reachable and still lacks 2..=4"
    );
    // 3 goes down: what it lacks is read from the log when it comes back
    c.set_member_ready(now, 3, false);
    assert_eq!(c.replicated_to_all(0), 4);
    // back: replication restarts and it counts again
    c.set_member_ready(now, 3, true);
    assert_eq!(c.replicated_to_all(0), 1);
    // its replication stops after an error: it does not count until it restarts
    c.drain_actions();
    c.propose(now, 1).unwrap();
    let (_, m) = sent_appends(&take(&mut c))
        .into_iter()
        .find(|(to, _)| *to == 3)
        .expect("an append to 3");
    c.handle_append_error(now, 3, &m);
    assert_eq!(c.replicated_to_all(0), 4, "2 holds 1..=4, not 5");
    c.set_member_ready(now, 3, false);
    c.set_member_ready(now, 3, true);
    assert_eq!(c.replicated_to_all(0), 1);
    // 3 lacks 2, which the caller no longer holds in memory: it reads the log
    assert_eq!(c.replicated_to_all(3), 4);
    assert_eq!(c.replicated_to_all(2), 1, "3 still reads from memory");
    c.set_member_ready(now, 2, false);
    c.set_member_ready(now, 3, false);
    assert_eq!(c.replicated_to_all(0), Index::MAX, "nobody reachable");
}

#[test]
fn s12_a_peer_whose_next_entries_were_deleted_gets_an_install() {
    let mut c = node(1, 2, 0, 0, 0);
    let now = elect(&mut c, &[2]);
    let (_, m) = sent_appends(&take(&mut c))[0];
    // a stale append (another epoch) changes nothing
    let stale = AppendSend {
        epoch: m.epoch + 1,
        ..m
    };
    c.on_entries_gone(now, 2, &stale);
    assert!(!c.progress(2).unwrap().install_snapshot);
    c.on_entries_gone(now, 2, &m);
    assert!(c.progress(2).unwrap().install_snapshot);
    assert_eq!(installs(&take(&mut c)), vec![2]);
}
