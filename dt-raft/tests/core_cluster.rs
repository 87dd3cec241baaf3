//! Several sans-IO RaftCores in one process, with explicit virtual time, a lossy
//! network and in-memory logs: elects a single leader per term, commits entries
//! under message loss, and never disagrees on a committed entry.

use std::collections::{HashMap, VecDeque};

use dt_raft::core::{
    Action, AppendReq, AppendResp, AppendSend, ConfigEntry, CoreConfig, EntryMeta, Index,
    InstallStart, MatchSearch, NodeId, RaftCore, ReqId, Role, Term, TransferReq, VoteResp,
    VoteSend, XorShift,
};

const ELECT: u64 = 1000;
const RPC_TIMEOUT: u64 = 200;

enum Msg {
    Vote(VoteSend),
    VoteResp(VoteSend, VoteResp),
    Append(u64, AppendSend, AppendReq),
    AppendResp(u64, AppendSend, AppendResp),
    Transfer(TransferReq),
}

struct Envelope {
    at: u64,
    seq: u64,
    from: NodeId,
    to: NodeId,
    msg: Msg,
}

enum Pending {
    Vote(NodeId, VoteSend),
    Append(NodeId, u64, AppendSend, AppendReq),
}

enum Io {
    Persisted(Index),
    Status(Term, NodeId),
}

struct Node {
    core: RaftCore,
    log: Vec<Term>,
    reqs: HashMap<ReqId, Pending>,
    io: VecDeque<(u64, Io)>,
    applied: Index,
}

struct Cluster {
    nodes: Vec<Node>,
    net: Vec<Envelope>,
    rng: XorShift,
    now: u64,
    loss_pct: u64,
    isolated: Option<NodeId>,
    next_id: u64,
    /// rpc id -> (leader, peer, send, deadline)
    rpcs: HashMap<u64, (NodeId, NodeId, AppendSend, u64)>,
    leaders: HashMap<Term, NodeId>,
    committed: Vec<Term>,
    /// (follower searches, leader searches, truncations, installs)
    stats: (u32, u32, u32, u32),
    /// Deliver each link's messages in send order (like one TCP connection).
    fifo: bool,
    /// (transfers the target accepted, transfers failed on the old leader)
    transfers: (u32, u32),
    link_at: HashMap<(NodeId, NodeId), u64>,
    /// Configuration entries, by (term, index): unique cluster-wide by log matching.
    ops: HashMap<(Term, Index), ConfigEntry>,
}

#[derive(Clone)]
enum Op {
    Prepare(Vec<NodeId>),
    Commit,
}

impl Cluster {
    fn new(n: u32, seed: u64, loss_pct: u64) -> Self {
        Self::with_members(n, n, seed, loss_pct)
    }

    /// `n` nodes of which 1..=m are the initial members (the others are in no set).
    fn with_members(n: u32, m: u32, seed: u64, loss_pct: u64) -> Self {
        let now = 1_000;
        let nodes = (1..=n)
            .map(|id| {
                let mut c = CoreConfig::new(id, (1..=m).collect());
                c.elect_timeout_ms = ELECT;
                c.heartbeat_interval_ms = 300;
                c.max_replicate_items = 50;
                c.replicate_retry_ms = 100;
                let mut core = RaftCore::new(c, seed * 31 + id as u64, now, 0, 0, 0, 0, 0).unwrap();
                for p in 1..=n {
                    core.set_member_ready(now, p, true);
                }
                core.drain_actions().for_each(drop);
                Node {
                    core,
                    log: Vec::new(),
                    reqs: HashMap::new(),
                    io: VecDeque::new(),
                    applied: 0,
                }
            })
            .collect();
        Cluster {
            nodes,
            net: Vec::new(),
            rng: XorShift::new(seed),
            now,
            loss_pct,
            isolated: None,
            next_id: 1,
            rpcs: HashMap::new(),
            leaders: HashMap::new(),
            committed: Vec::new(),
            stats: (0, 0, 0, 0),
            fifo: false,
            transfers: (0, 0),
            link_at: HashMap::new(),
            ops: HashMap::new(),
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        if self.isolated == Some(from) || self.isolated == Some(to) {
            return;
        }
        if self.rng.range(0, 99) < self.loss_pct {
            return;
        }
        let mut at = self.now + self.rng.range(1, 10);
        if self.fifo {
            let last = self.link_at.entry((from, to)).or_insert(0);
            at = at.max(*last);
            *last = at;
        }
        let seq = self.next_id;
        self.next_id += 1;
        self.net.push(Envelope {
            at,
            seq,
            from,
            to,
            msg,
        });
    }

    fn io(&mut self, id: NodeId, io: Io) {
        let delay = self.rng.range(1, 5);
        let now = self.now;
        let q = &mut self.node(id).io;
        let at = q.back().map_or(now + delay, |b| b.0.max(now + delay));
        q.push_back((at, io));
    }

    /// Executes the actions of node `id` until it produces none.
    fn run_actions(&mut self, id: NodeId) {
        loop {
            let acts: Vec<Action> = self.node(id).core.drain_actions().collect();
            if acts.is_empty() {
                return;
            }
            for a in acts {
                self.exec(id, a);
            }
        }
    }

    fn exec(&mut self, id: NodeId, a: Action) {
        let now = self.now;
        match a {
            Action::SaveStatus {
                term, voted_for, ..
            } => self.io(id, Io::Status(term, voted_for)),
            Action::AppendLocal {
                first_index,
                last_index,
                term,
                ..
            } => {
                let n = self.node(id);
                assert_eq!(n.log.len() as u64 + 1, first_index);
                for _ in first_index..=last_index {
                    n.log.push(term);
                }
                self.io(id, Io::Persisted(last_index));
            }
            Action::AppendReceived {
                req,
                truncate_after,
                first_index,
                last_index,
            } => {
                let n = &mut self.nodes[id as usize - 1];
                let Some(Pending::Append(_, _, _, r)) = n.reqs.get(&req) else {
                    panic!("unknown request {req}");
                };
                let entries: Vec<EntryMeta> = r.entries.clone();
                if let Some(t) = truncate_after {
                    self.stats.2 += u32::from(t < n.log.len() as u64);
                    assert!(t >= n.applied, "truncating applied entries");
                    n.log.truncate(t as usize);
                }
                assert_eq!(n.log.len() as u64 + 1, first_index);
                for e in entries {
                    if e.index >= first_index && e.index <= last_index {
                        n.log.push(e.term);
                    }
                }
                self.io(id, Io::Persisted(last_index));
            }
            Action::SendVote { to, msg } => self.send(id, to, Msg::Vote(msg)),
            Action::SendAppend { to, msg } => {
                let n = self.node(id);
                let req = if msg.count == 0 {
                    AppendReq {
                        term: msg.term,
                        leader_id: id,
                        leader_commit: msg.leader_commit,
                        ..Default::default()
                    }
                } else {
                    let first = msg.first_index;
                    let prev_log_term = if first > 1 {
                        n.log[first as usize - 2]
                    } else {
                        0
                    };
                    AppendReq {
                        term: msg.term,
                        leader_id: id,
                        prev_log_index: first - 1,
                        prev_log_term,
                        leader_commit: msg.leader_commit,
                        entries: (first..first + msg.count)
                            .map(|i| EntryMeta {
                                index: i,
                                term: n.log[i as usize - 1],
                            })
                            .collect(),
                    }
                };
                let rpc = self.next_id;
                self.next_id += 1;
                self.rpcs.insert(rpc, (id, to, msg, now + RPC_TIMEOUT));
                self.send(id, to, Msg::Append(rpc, msg, req));
            }
            Action::ReplyVote { req, resp } => {
                if let Some(Pending::Vote(from, send)) = self.node(id).reqs.remove(&req) {
                    if let Ok(resp) = resp {
                        self.send(id, from, Msg::VoteResp(send, resp));
                    }
                }
            }
            Action::ReplyAppend { req, resp } => {
                if let Some(Pending::Append(from, rpc, send, _)) = self.node(id).reqs.remove(&req) {
                    self.send(id, from, Msg::AppendResp(rpc, send, resp));
                }
            }
            Action::FindMatchPos {
                search,
                suggest_term,
                suggest_index,
            } => {
                match search {
                    MatchSearch::Follower { .. } => self.stats.0 += 1,
                    MatchSearch::Leader { .. } => self.stats.1 += 1,
                }
                let n = self.node(id);
                let found = find_match(&n.log, suggest_term, suggest_index);
                match search {
                    MatchSearch::Follower { req } => n.core.on_follower_match_pos(now, req, found),
                    MatchSearch::Leader { peer, epoch } => {
                        n.core.on_leader_match_pos(now, peer, epoch, found)
                    }
                }
            }
            Action::StartInstallSnapshot { to, start } => {
                self.stats.3 += 1;
                self.install(id, to, start)
            }
            Action::Apply { commit_index } => {
                let n = &mut self.nodes[id as usize - 1];
                let mut config: Vec<(Index, ConfigEntry)> = Vec::new();
                for i in n.applied + 1..=commit_index {
                    let t = n.log[i as usize - 1];
                    if let Some(e) = self.ops.get(&(t, i)) {
                        config.push((i, e.clone()));
                    }
                    if let Some(&c) = self.committed.get(i as usize - 1) {
                        assert_eq!(c, t, "node {id} applies term {t} at {i}, committed was {c}");
                    } else {
                        assert_eq!(self.committed.len() as u64 + 1, i);
                        self.committed.push(t);
                    }
                }
                n.applied = n.applied.max(commit_index);
                // (a real apply fiber applies a config entry in order, between entries)
                for (i, e) in config {
                    n.core.apply_config_entry(now, i, &e);
                }
                n.core.on_applied(now, commit_index);
                // every node of the cluster answers raft pings
                for p in 1..=self.nodes.len() as NodeId {
                    self.nodes[id as usize - 1]
                        .core
                        .set_member_ready(now, p, true);
                }
            }
            Action::RoleChanged { role, term, .. } => {
                if role == Role::Leader {
                    // elections give one leader per term; a transfer hands a term over,
                    // but never to a second leader while the first still leads
                    if let Some(prev) = self.leaders.insert(term, id) {
                        let still = self.node(prev).core.role() == Role::Leader;
                        assert!(!still, "two leaders in term {term}: {prev} and {id}");
                    }
                }
            }
            Action::FailPendingTasks { .. } => {}
            Action::CheckTransferTarget { .. } => {
                // every node has the same configuration here
                self.node(id).core.on_transfer_target_checked(now, true);
            }
            Action::SendTransferLeader { to, req } => self.send(id, to, Msg::Transfer(req)),
            Action::TransferFailed { .. } => self.transfers.1 += 1,
            Action::ReplyTransfer { result, .. } => {
                if result.is_ok() {
                    self.transfers.0 += 1;
                }
            }
            Action::BeginInstallSnapshot { .. }
            | Action::InstallSnapshotData { .. }
            | Action::FinishInstallSnapshot { .. } => {
                unreachable!("installs are shortcut here, no install requests are sent")
            }
        }
    }

    /// A shortcut for the install stream: the follower adopts the leader's applied
    /// prefix at once.
    fn install(&mut self, leader: NodeId, to: NodeId, start: InstallStart) {
        let now = self.now;
        let l = self.node(leader);
        let c = l.applied;
        let prefix: Vec<Term> = l.log[..c as usize].to_vec();
        let f = self.node(to);
        if f.core.commit_index() > c {
            // the leader will learn more first; the core retries after a failure
            self.node(leader).core.handle_install_error(now, to, &start);
            return;
        }
        f.log = prefix;
        f.io.retain(|e| matches!(e.1, Io::Status(..)));
        let term = f.log.last().copied().unwrap_or(0);
        f.core.on_install_finished(now, c, term);
        let sets = self.node(leader).core.member_sets().clone();
        let count = self.nodes.len() as NodeId;
        let f = self.node(to);
        f.core.apply_member_sets(now, sets);
        for p in 1..=count {
            f.core.set_member_ready(now, p, true);
        }
        f.applied = c;
        self.run_actions(to);
        self.node(leader).core.on_snapshot_installed(now, to, c);
    }

    fn deliver(&mut self, e: Envelope) {
        let now = self.now;
        let id = self.next_id;
        self.next_id += 1;
        let from = e.from;
        let n = self.node(e.to);
        match e.msg {
            Msg::Vote(send) => {
                n.reqs.insert(id, Pending::Vote(from, send));
                n.core.handle_vote(now, id, &send.req);
            }
            Msg::VoteResp(send, resp) => n.core.handle_vote_resp(now, from, &send, &resp),
            Msg::Append(rpc, send, req) => {
                n.reqs
                    .insert(id, Pending::Append(from, rpc, send, req.clone()));
                n.core.handle_append(now, id, &req);
            }
            Msg::Transfer(req) => n.core.handle_transfer_leader(now, id, &req),
            Msg::AppendResp(rpc, send, resp) => {
                if self.rpcs.remove(&rpc).is_some() {
                    self.node(e.to)
                        .core
                        .handle_append_resp(now, from, &send, &resp);
                }
            }
        }
        self.run_actions(e.to);
    }

    fn step(&mut self) {
        self.now += 1;
        let now = self.now;
        let ids: Vec<NodeId> = (1..=self.nodes.len() as NodeId).collect();
        for &id in &ids {
            while self.node(id).io.front().is_some_and(|e| e.0 <= now) {
                let (_, io) = self.node(id).io.pop_front().unwrap();
                let core = &mut self.node(id).core;
                match io {
                    Io::Persisted(i) => core.on_log_persisted(now, i),
                    Io::Status(t, v) => core.on_status_saved(now, t, v),
                }
                self.run_actions(id);
            }
        }
        let mut due: Vec<Envelope> = Vec::new();
        let mut k = 0;
        while k < self.net.len() {
            if self.net[k].at <= now {
                due.push(self.net.swap_remove(k));
            } else {
                k += 1;
            }
        }
        due.sort_by_key(|e| (e.at, e.seq));
        for e in due {
            self.deliver(e);
        }
        let expired: Vec<u64> = self
            .rpcs
            .iter()
            .filter(|r| r.1 .3 <= now)
            .map(|r| *r.0)
            .collect();
        for rpc in expired {
            if let Some((leader, peer, send, _)) = self.rpcs.remove(&rpc) {
                self.node(leader).core.handle_append_error(now, peer, &send);
                self.run_actions(leader);
            }
        }
        for &id in &ids {
            if self.node(id).core.next_deadline() <= now {
                self.node(id).core.tick(now);
                self.run_actions(id);
            }
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.core.role() == Role::Leader)
            .map(|n| n.core.node_id())
            .collect()
    }

    fn propose(&mut self) -> bool {
        let now = self.now;
        let Some(&l) = self.leaders().first() else {
            return false;
        };
        let ok = self.node(l).core.propose(now, 1).is_ok();
        self.run_actions(l);
        ok
    }
}

/// The last entry (t, i) of `log` with i ≤ min(sI, len) that is valid for the
/// suggestion: (t ≤ sT and i < sI) or (t, i) = (sT, sI) (raft.md §7.5).
fn find_match(log: &[Term], st: Term, si: Index) -> Option<(Term, Index)> {
    let top = si.min(log.len() as u64);
    (1..=top).rev().find_map(|i| {
        let t = log[i as usize - 1];
        ((t <= st && i < si) || (t == st && i == si)).then_some((t, i))
    })
}

#[test]
fn three_nodes_elect_one_leader_and_commit() {
    let mut c = Cluster::new(3, 1, 0);
    c.run(3 * ELECT);
    assert_eq!(c.leaders().len(), 1, "one leader");
    for _ in 0..20 {
        assert!(c.propose());
        c.run(5);
    }
    c.run(500);
    let last = c.nodes[0].core.last_log_index();
    assert!(last >= 21);
    for n in &c.nodes {
        assert_eq!(n.applied, last, "node {} applied all", n.core.node_id());
        assert_eq!(n.log, c.nodes[0].log);
    }
}

#[test]
fn five_nodes_commit_under_message_loss_and_agree() {
    for seed in 1..=4 {
        let mut c = Cluster::new(5, seed, 15);
        let mut accepted = 0;
        for _ in 0..600 {
            if c.propose() {
                accepted += 1;
            }
            c.run(50);
        }
        // heal and let everybody catch up
        c.loss_pct = 0;
        c.run(5 * ELECT);
        let leaders = c.leaders();
        assert_eq!(leaders.len(), 1, "seed {seed}");
        c.propose();
        c.run(ELECT);
        let commit = c.node(leaders[0]).core.commit_index();
        eprintln!(
            "seed {seed}: {} terms with a leader, {accepted} accepted, commit {commit}",
            c.leaders.len()
        );
        assert!(
            accepted > 300,
            "seed {seed}: only {accepted} proposals accepted"
        );
        assert!(commit > 300, "seed {seed}: commit {commit}");
        for n in &c.nodes {
            assert_eq!(n.applied, commit, "seed {seed}: node {}", n.core.node_id());
        }
    }
}

#[test]
fn isolated_leader_steps_down_and_the_rest_elect_a_new_one() {
    let mut c = Cluster::new(3, 7, 0);
    c.run(3 * ELECT);
    let old = c.leaders()[0];
    let old_term = c.node(old).core.term();
    c.propose();
    c.run(100);
    c.isolated = Some(old);
    c.run(3 * ELECT);
    assert_eq!(
        c.node(old).core.role(),
        Role::Follower,
        "stepped down (§17 item 3)"
    );
    assert_eq!(c.node(old).core.term(), old_term, "without a term change");
    let new = c.leaders();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
    for _ in 0..5 {
        c.propose();
        c.run(20);
    }
    c.isolated = None;
    c.run(2 * ELECT);
    assert_eq!(
        c.leaders(),
        new,
        "the old leader's pre-votes do not disturb"
    );
    let commit = c.node(new[0]).core.commit_index();
    for n in &c.nodes {
        assert_eq!(n.applied, commit);
    }
}

#[test]
fn chaos_partitions_and_heavy_loss_keep_committed_entries_agreed() {
    for seed in 1..=6 {
        let mut c = Cluster::new(5, 100 + seed, 30);
        let mut rng = XorShift::new(seed);
        for round in 0..40 {
            c.isolated = match rng.range(0, 2) {
                0 => None,
                1 => c.leaders().first().copied(),
                _ => Some(rng.range(1, 5) as NodeId),
            };
            for _ in 0..rng.range(10, 60) {
                c.propose();
                c.run(rng.range(10, 80));
            }
            let _ = round;
        }
        c.isolated = None;
        c.loss_pct = 0;
        c.run(5 * ELECT);
        let leaders = c.leaders();
        assert_eq!(leaders.len(), 1, "seed {seed}");
        c.propose();
        c.run(ELECT);
        let commit = c.node(leaders[0]).core.commit_index();
        eprintln!(
            "seed {seed}: {} terms with a leader, commit {commit}, (follower searches, leader searches, truncations, installs) {:?}",
            c.leaders.len(),
            c.stats
        );
        assert!(
            c.leaders.len() > 3,
            "seed {seed}: leadership should have moved"
        );
        for n in &c.nodes {
            assert_eq!(n.applied, commit, "seed {seed}: node {}", n.core.node_id());
            assert_eq!(n.log[..commit as usize], c.committed[..commit as usize]);
        }
    }
}

#[test]
fn s17_9_on_in_order_links_replication_needs_no_search() {
    for seed in 1..=3 {
        let mut c = Cluster::new(3, 200 + seed, 0);
        c.fifo = true;
        c.run(3 * ELECT);
        for _ in 0..300 {
            c.propose();
            c.run(3);
        }
        c.run(ELECT);
        assert_eq!(c.leaders.len(), 1);
        assert_eq!(c.stats, (0, 0, 0, 0), "seed {seed}");
        let l = c.leaders()[0];
        let commit = c.node(l).core.commit_index();
        assert!(commit > 300);
        for n in &c.nodes {
            assert_eq!(n.applied, commit);
        }
    }
}

#[test]
fn s17_12_leadership_moves_by_transfer_while_writes_run_and_keeps_the_term() {
    let mut c = Cluster::new(3, 11, 0);
    c.fifo = true;
    c.run(3 * ELECT);
    let mut rng = XorShift::new(5);
    for round in 0..10 {
        let old = c.leaders()[0];
        let term = c.node(old).core.term();
        let target = loop {
            let t = rng.range(1, 3) as NodeId;
            if t != old {
                break t;
            }
        };
        let now = c.now;
        c.node(old)
            .core
            .start_transfer(now, target, now + 2000)
            .unwrap();
        c.run_actions(old);
        for _ in 0..40 {
            // the driver holds proposals while the transfer runs
            if !c.nodes.iter().any(|n| n.core.transfer_in_progress()) {
                c.propose();
            }
            c.run(5);
        }
        assert_eq!(c.leaders(), vec![target], "round {round}");
        assert_eq!(c.node(target).core.term(), term, "round {round}: same term");
    }
    assert_eq!(c.transfers, (10, 0));
    c.run(ELECT);
    let commit = c.node(c.leaders()[0]).core.commit_index();
    assert!(commit > 300);
    for n in &c.nodes {
        assert_eq!(n.applied, commit);
    }
}

impl Cluster {
    fn propose_op(&mut self, op: Op) -> bool {
        let now = self.now;
        let Some(&l) = self.leaders().first() else {
            return false;
        };
        let core = &mut self.node(l).core;
        let sets = core.member_sets().clone();
        let r = match op {
            Op::Prepare(new) => {
                core.prepare_config_change(now, &sets.members, &sets.observers, &new, &[], |_| true)
            }
            Op::Commit => {
                let index = core.last_config_change_index();
                core.commit_config_change(now, index)
            }
        };
        let Ok(p) = r else {
            return false;
        };
        self.ops
            .insert((p.proposed.term, p.proposed.first_index), p.entry);
        self.run_actions(l);
        true
    }

    fn run_with_writes(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.propose();
            self.run(10);
        }
    }

    fn members_of(&self, id: NodeId) -> Vec<NodeId> {
        let s = self.nodes[id as usize - 1].core.member_sets();
        let mut m = s.members.clone();
        m.sort();
        assert!(s.prepared_members.is_empty(), "node {id} still joint");
        m
    }
}

#[test]
fn s11_membership_change_3_to_5_and_back_while_writes_run() {
    for seed in 1..=3 {
        let mut c = Cluster::with_members(5, 3, 300 + seed, 5);
        c.run(3 * ELECT);
        c.run_with_writes(500);
        assert!(c.propose_op(Op::Prepare(vec![1, 2, 3, 4, 5])));
        c.run_with_writes(500);
        assert!(c.propose_op(Op::Commit));
        c.run_with_writes(2000);
        for id in 1..=5 {
            assert_eq!(
                c.members_of(id),
                vec![1, 2, 3, 4, 5],
                "seed {seed} node {id}"
            );
        }
        let before = c.leaders.len();
        assert!(c.propose_op(Op::Prepare(vec![3, 4, 5])));
        c.run_with_writes(500);
        assert!(c.propose_op(Op::Commit));
        c.run_with_writes(4 * ELECT);
        c.loss_pct = 0;
        c.run_with_writes(2 * ELECT);
        c.run(ELECT);
        let leaders = c.leaders();
        assert_eq!(leaders.len(), 1, "seed {seed}");
        assert!(
            [3, 4, 5].contains(&leaders[0]),
            "seed {seed}: leader {leaders:?}"
        );
        let commit = c.node(leaders[0]).core.commit_index();
        for id in 3..=5 {
            assert_eq!(c.members_of(id), vec![3, 4, 5]);
            assert_eq!(
                c.nodes[id as usize - 1].applied,
                commit,
                "seed {seed} node {id}"
            );
        }
        // The leader keeps replicating to the removed nodes ("remove legacy") until
        // they have the COMMIT entry and its commit: they apply it and become `none`.
        for id in [1, 2] {
            let n = &c.nodes[id as usize - 1];
            assert_eq!(n.core.role(), Role::None, "seed {seed}: removed node {id}");
            assert!(!n.core.member_sets().is_joint());
        }
        eprintln!(
            "seed {seed}: commit {commit}, leaders in {} terms ({} before the shrink), stats {:?}",
            c.leaders.len(),
            before,
            c.stats
        );
    }
}
