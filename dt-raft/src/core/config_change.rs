//! Membership change by joint consensus (raft.md §11.2–§11.4): the admin side
//! (prepare / commit / abort on the leader, with the reference's checks and
//! idempotency), the configuration entries and their body encoding, and applying them.
//!
//! The admin methods return the entry to write; the core has already assigned its
//! index like [`RaftCore::propose`] does, and an
//! [`Action::AppendLocal`](super::Action::AppendLocal) of kind
//! [`LocalEntries::Proposal`] follows, so the driver
//! writes these entries exactly like proposals (item type and body from the
//! [`ConfigEntry`]). When the apply fiber reaches such an entry (after all earlier
//! entries are applied) the driver calls [`RaftCore::apply_config_entry`] and then
//! [`RaftCore::on_applied`]. While a leader transfer runs the driver holds these
//! admin calls as it holds proposals.

use std::fmt;

use super::{Index, LocalEntries, MemberSets, NodeId, NotLeader, Proposed, RaftCore, Role};

/// Log item type of a PREPARE entry (`TYPE_PREPARE_CONFIG_CHANGE`).
pub const TYPE_PREPARE_CONFIG_CHANGE: i32 = 2;
/// Log item type of a DROP entry (`TYPE_DROP_CONFIG_CHANGE`, written by abort).
pub const TYPE_DROP_CONFIG_CHANGE: i32 = 3;
/// Log item type of a COMMIT entry (`TYPE_COMMIT_CONFIG_CHANGE`).
pub const TYPE_COMMIT_CONFIG_CHANGE: i32 = 4;

/// How long the leader keeps replicating to a node dropped from the replicate list
/// ("remove legacy", §11.2 step 8).
pub const REMOVE_LEGACY_MS: u64 = 5_000;

/// The body of a PREPARE entry: ASCII `oldMembers;oldObservers;newMembers;newObservers`,
/// each a comma-separated list of ids, possibly empty (e.g. `1,2,3;;2,3,4;`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigBody {
    /// The members when the change was prepared.
    pub old_members: Vec<NodeId>,
    /// The observers when the change was prepared.
    pub old_observers: Vec<NodeId>,
    /// The new members (become `preparedMembers`).
    pub new_members: Vec<NodeId>,
    /// The new observers (become `preparedObservers`).
    pub new_observers: Vec<NodeId>,
}

impl ConfigBody {
    /// Appends the ASCII encoding to `out`. Ids are written in the order held.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        let sets = [
            &self.old_members,
            &self.old_observers,
            &self.new_members,
            &self.new_observers,
        ];
        for (k, set) in sets.iter().enumerate() {
            if k > 0 {
                out.push(b';');
            }
            for (j, id) in set.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(id.to_string().as_bytes());
            }
        }
    }

    /// The ASCII encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode_to(&mut out);
        out
    }

    /// Parses a PREPARE body. Exactly four `;`-separated fields; each id a positive
    /// decimal int32; repeated ids are kept once.
    pub fn parse(body: &[u8]) -> Result<Self, ConfigBodyError> {
        let text = std::str::from_utf8(body).map_err(|_| ConfigBodyError::NotAscii)?;
        let fields: Vec<&str> = text.split(';').collect();
        if fields.len() != 4 {
            return Err(ConfigBodyError::FieldCount(fields.len()));
        }
        Ok(ConfigBody {
            old_members: parse_set(fields[0])?,
            old_observers: parse_set(fields[1])?,
            new_members: parse_set(fields[2])?,
            new_observers: parse_set(fields[3])?,
        })
    }
}

fn parse_set(s: &str) -> Result<Vec<NodeId>, ConfigBodyError> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    for part in s.split(',') {
        let ok = !part.is_empty() && part.len() <= 10 && part.bytes().all(|b| b.is_ascii_digit());
        let id = if ok { part.parse::<u64>().ok() } else { None };
        match id {
            Some(id) if id > 0 && id <= i32::MAX as u64 => {
                let id = id as NodeId;
                if !out.contains(&id) {
                    out.push(id);
                }
            }
            _ => return Err(ConfigBodyError::BadId(part.to_string())),
        }
    }
    Ok(out)
}

/// A PREPARE body that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigBodyError {
    /// The body is not ASCII text.
    NotAscii,
    /// Not exactly four `;`-separated fields (the count found).
    FieldCount(usize),
    /// An id that is not a positive decimal int32.
    BadId(String),
    /// A log item type that is not a configuration entry.
    NotConfigType(i32),
}

impl fmt::Display for ConfigBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigBodyError::NotAscii => write!(f, "config change body is not ASCII"),
            ConfigBodyError::FieldCount(n) => {
                write!(f, "config change body has {n} fields, expected 4")
            }
            ConfigBodyError::BadId(s) => write!(f, "bad node id in config change body: {s:?}"),
            ConfigBodyError::NotConfigType(t) => {
                write!(f, "log item type {t} is not a config change")
            }
        }
    }
}

impl std::error::Error for ConfigBodyError {}

/// One configuration entry of the log (§11.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigEntry {
    /// PREPARE (type 2): enter the joint configuration.
    Prepare(ConfigBody),
    /// DROP (type 3, written by abort): leave the joint configuration, keep the old.
    Drop,
    /// COMMIT (type 4): the prepared sets become the current ones.
    Commit,
}

impl ConfigEntry {
    /// The log item type.
    pub fn item_type(&self) -> i32 {
        match self {
            ConfigEntry::Prepare(_) => TYPE_PREPARE_CONFIG_CHANGE,
            ConfigEntry::Drop => TYPE_DROP_CONFIG_CHANGE,
            ConfigEntry::Commit => TYPE_COMMIT_CONFIG_CHANGE,
        }
    }

    /// The entry body (empty for DROP and COMMIT, which carry none).
    pub fn body(&self) -> Vec<u8> {
        match self {
            ConfigEntry::Prepare(b) => b.to_bytes(),
            _ => Vec::new(),
        }
    }

    /// True for the item types 2, 3 and 4.
    pub fn is_config_type(item_type: i32) -> bool {
        (TYPE_PREPARE_CONFIG_CHANGE..=TYPE_COMMIT_CONFIG_CHANGE).contains(&item_type)
    }

    /// The entry of a log item of `item_type` with `body` (DROP and COMMIT ignore the
    /// body, as the reference does).
    pub fn decode(item_type: i32, body: &[u8]) -> Result<Self, ConfigBodyError> {
        match item_type {
            TYPE_PREPARE_CONFIG_CHANGE => Ok(ConfigEntry::Prepare(ConfigBody::parse(body)?)),
            TYPE_DROP_CONFIG_CHANGE => Ok(ConfigEntry::Drop),
            TYPE_COMMIT_CONFIG_CHANGE => Ok(ConfigEntry::Commit),
            t => Err(ConfigBodyError::NotConfigType(t)),
        }
    }
}

/// A configuration entry the leader has assigned an index to; the driver writes it
/// like a proposal (the [`Action::AppendLocal`](super::Action::AppendLocal) follows) and keeps the admin request
/// until the entry is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProposal {
    /// Where the entry goes (one entry: `proposed.first_index` is its index, the
    /// index the admin response carries).
    pub proposed: Proposed,
    /// The entry to write (item type and body).
    pub entry: ConfigEntry,
}

/// Why an admin membership change was refused (§11.3). `Display` gives the
/// reference's message, which the driver sends as SYS_ERROR (NotLeader as
/// NOT_RAFT_LEADER with the hint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChangeError {
    /// Not the leader; the known leader, if any.
    NotLeader(Option<NodeId>),
    /// "preparedMembers are empty".
    PreparedMembersEmpty,
    /// "node is both member and observer: N" (in the new sets).
    MemberAndObserver(NodeId),
    /// "old members or observers not match": the expected sets differ from the
    /// current members / observers.
    OldSetsMismatch,
    /// "node not exist: N": a new id is not in the node table.
    NodeNotExist(NodeId),
    /// "prepareIndex not match": commit with an index other than
    /// lastConfigChangeIndex.
    PrepareIndexMismatch {
        /// The index the admin sent.
        prepare_index: Index,
        /// The group's lastConfigChangeIndex.
        last_config_change_index: Index,
    },
}

impl fmt::Display for ConfigChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigChangeError::NotLeader(l) => match l {
                Some(id) => write!(f, "not leader, leader is {id}"),
                None => write!(f, "not leader, leader unknown"),
            },
            ConfigChangeError::PreparedMembersEmpty => write!(f, "preparedMembers are empty"),
            ConfigChangeError::MemberAndObserver(id) => {
                write!(f, "node is both member and observer: {id}")
            }
            ConfigChangeError::OldSetsMismatch => {
                write!(f, "old members or observers not match")
            }
            ConfigChangeError::NodeNotExist(id) => write!(f, "node not exist: {id}"),
            ConfigChangeError::PrepareIndexMismatch {
                prepare_index,
                last_config_change_index,
            } => write!(
                f,
                "prepareIndex not match. prepareIndex={prepare_index}, \
                 lastConfigChangeIndex={last_config_change_index}"
            ),
        }
    }
}

impl std::error::Error for ConfigChangeError {}

/// What applying a configuration entry did (see [`RaftCore::apply_config_entry`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigApplied {
    /// The member sets changed (false for a no-op entry or `disable_config_change`).
    /// The driver moves node use counts from the old sets to
    /// [`RaftCore::member_sets`] and raft-pings new members.
    pub changed: bool,
    /// A PREPARE whose old sets differ from the sets current at apply time: the
    /// reference logs an error and applies anyway.
    pub old_sets_mismatch: bool,
    /// A COMMIT that changed the sets: run the server's "persist config" hook.
    pub persist_config: bool,
    /// The admin request that proposed this entry is answered (with the entry's
    /// index) once lastApplied reaches this index: index + 1 for PREPARE (the
    /// prepared members have then caught up past it, §11.3), the index otherwise.
    pub reply_when_applied: Index,
}

/// True if `a` and `b` hold the same ids (order and repeats ignored), as the
/// reference's `Set.equals`.
pub(super) fn same_ids(a: &[NodeId], b: &[NodeId]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// True if the two configurations hold the same ids in each of the four sets.
pub(super) fn same_sets(a: &MemberSets, b: &MemberSets) -> bool {
    same_ids(&a.members, &b.members)
        && same_ids(&a.observers, &b.observers)
        && same_ids(&a.prepared_members, &b.prepared_members)
        && same_ids(&a.prepared_observers, &b.prepared_observers)
}

fn dedup(ids: &[NodeId]) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

impl RaftCore {
    /// lastConfigChangeIndex: the index of the last configuration entry applied (or
    /// the lastIncludedIndex of an installed snapshot, §17 item 16).
    pub fn last_config_change_index(&self) -> Index {
        self.last_config_change_index
    }

    /// §11.4: at start, the configuration stored in the latest snapshot (with its
    /// lastConfigChangeIndex) replaces the static one; replayed configuration entries
    /// then apply on top with [`apply_config_entry`](Self::apply_config_entry).
    /// Honours `disable_config_change` for the sets.
    pub fn restore_config(&mut self, now: u64, sets: MemberSets, last_config_change_index: Index) {
        self.now = self.now.max(now);
        if !self.cfg.disable_config_change {
            self.apply_sets(sets, self.commit_index);
        }
        self.last_config_change_index = last_config_change_index;
    }

    /// RAFT_ADMIN_PREPARE_CHANGE on this node (§11.3): `expected_*` must equal the
    /// current members and observers (as sets), `new_members` must be non-empty and
    /// share no id with `new_observers`, and every new id must satisfy `node_exists`
    /// (the node table). On the leader a PREPARE entry is proposed. A repeated prepare
    /// with the same arguments is accepted: its entry applies as a no-op but moves
    /// lastConfigChangeIndex (the admin must commit with the new index).
    pub fn prepare_config_change(
        &mut self,
        now: u64,
        expected_members: &[NodeId],
        expected_observers: &[NodeId],
        new_members: &[NodeId],
        new_observers: &[NodeId],
        node_exists: impl Fn(NodeId) -> bool,
    ) -> Result<ConfigProposal, ConfigChangeError> {
        self.now = self.now.max(now);
        if new_members.is_empty() {
            return Err(ConfigChangeError::PreparedMembersEmpty);
        }
        if let Some(&id) = new_members.iter().find(|id| new_observers.contains(id)) {
            return Err(ConfigChangeError::MemberAndObserver(id));
        }
        if !same_ids(expected_members, &self.sets.members)
            || !same_ids(expected_observers, &self.sets.observers)
        {
            return Err(ConfigChangeError::OldSetsMismatch);
        }
        if let Some(&id) = new_members
            .iter()
            .chain(new_observers)
            .find(|&&id| id == 0 || !node_exists(id))
        {
            return Err(ConfigChangeError::NodeNotExist(id));
        }
        let entry = ConfigEntry::Prepare(ConfigBody {
            old_members: self.sets.members.clone(),
            old_observers: self.sets.observers.clone(),
            new_members: dedup(new_members),
            new_observers: dedup(new_observers),
        });
        self.propose_config(entry)
    }

    /// RAFT_ADMIN_COMMIT_CHANGE (§11.3): `prepare_index` must be lastConfigChangeIndex
    /// ("prepareIndex not match" otherwise, also for a repeated commit after the first
    /// one was applied); the leader then proposes a COMMIT entry. A repeated commit
    /// before the first is applied proposes a second COMMIT whose apply is a no-op.
    pub fn commit_config_change(
        &mut self,
        now: u64,
        prepare_index: Index,
    ) -> Result<ConfigProposal, ConfigChangeError> {
        self.now = self.now.max(now);
        if prepare_index != self.last_config_change_index {
            return Err(ConfigChangeError::PrepareIndexMismatch {
                prepare_index,
                last_config_change_index: self.last_config_change_index,
            });
        }
        self.propose_config(ConfigEntry::Commit)
    }

    /// RAFT_ADMIN_ABORT_CHANGE (§11.3): the leader always proposes a DROP entry (a
    /// no-op when nothing is prepared).
    pub fn abort_config_change(&mut self, now: u64) -> Result<ConfigProposal, ConfigChangeError> {
        self.now = self.now.max(now);
        self.propose_config(ConfigEntry::Drop)
    }

    fn propose_config(&mut self, entry: ConfigEntry) -> Result<ConfigProposal, ConfigChangeError> {
        let bytes = match &entry {
            ConfigEntry::Prepare(b) => b.to_bytes().len() as u64,
            _ => 0,
        };
        let proposed = self
            .propose_sized(self.now, &[bytes])
            .map_err(|NotLeader { leader }| ConfigChangeError::NotLeader(leader))?;
        Ok(ConfigProposal { proposed, entry })
    }

    /// Applies the configuration entry at `index` (§11.2 "Applying"), called by the
    /// apply fiber once every earlier entry is applied; call
    /// [`on_applied`](Self::on_applied) for `index` afterwards.
    ///
    /// * PREPARE: (members, observers, newMembers, newObservers); old sets that differ
    ///   from the current ones are reported, not refused.
    /// * DROP: (members, observers, ∅, ∅), a no-op when not joint.
    /// * COMMIT: (preparedMembers, preparedObservers, ∅, ∅), a no-op when not joint.
    ///
    /// With `disable_config_change` the sets never change. lastConfigChangeIndex
    /// becomes `index` in every case. The switch itself is
    /// [`apply_member_sets`](Self::apply_member_sets)'s, and on the leader nodes that
    /// leave the replicate list keep being replicated to until they have `index` and
    /// its commit, or [`REMOVE_LEGACY_MS`] pass. On the leader, applying a PREPARE
    /// writes a heartbeat entry so that index + 1 exists (see
    /// [`ConfigApplied::reply_when_applied`]).
    ///
    /// The driver checks that every id is in its node table before calling this (see
    /// [`config_entry_sets`](Self::config_entry_sets)); like the reference, an unknown
    /// id is a fatal error of the group, the entry is not applied.
    pub fn apply_config_entry(
        &mut self,
        now: u64,
        index: Index,
        entry: &ConfigEntry,
    ) -> ConfigApplied {
        self.now = self.now.max(now);
        let mut out = ConfigApplied {
            changed: false,
            old_sets_mismatch: false,
            persist_config: false,
            reply_when_applied: index,
        };
        if let ConfigEntry::Prepare(b) = entry {
            out.old_sets_mismatch = !same_ids(&b.old_members, &self.sets.members)
                || !same_ids(&b.old_observers, &self.sets.observers);
            out.reply_when_applied = index + 1;
        }
        if let Some(sets) = self.config_entry_sets(entry) {
            self.apply_sets(sets, index);
            out.changed = true;
            out.persist_config = matches!(entry, ConfigEntry::Commit);
        }
        self.last_config_change_index = index;
        if matches!(entry, ConfigEntry::Prepare(_))
            && self.role == Role::Leader
            && self.transfer.is_none()
        {
            self.append_local(LocalEntries::Heartbeat, 1);
        }
        out
    }

    /// Tells the core which configuration entries its log holds above lastApplied, in
    /// log order (the driver tracks them as entries are written, truncated and
    /// applied; at start it reads them from the log).
    ///
    /// A configuration takes effect when its entry is applied (§11.2), so a node whose
    /// log holds configuration entries it has not applied (it does not know yet that
    /// they are committed: after a restart, or a lost leader) may be behind the
    /// configuration a leader already committed entries with. Campaigning with its
    /// applied configuration alone, such a node could be elected by a quorum of an
    /// old configuration that no longer overlaps the one in use and lose committed
    /// entries (the whole-cluster simulation found this). So a campaign needs an
    /// elect quorum in the applied configuration and in every configuration the
    /// entries above lastApplied would give in turn (in Raft terms: also in the
    /// latest configuration of its log). The reference campaigns with its applied
    /// configuration only.
    ///
    /// A leader likewise commits (and computes its lease) with an rwQuorum in every
    /// configuration the entries of earlier terms above its lastApplied may give: they
    /// may be committed already, and a leader that restarted or was just elected has
    /// not applied them yet. Its own proposals take effect when applied, as in the
    /// reference.
    ///
    /// The core keeps replication progress for every node these configurations name
    /// ([`Self::replication_targets`]) and a leader replicates to them; nodes none of
    /// them names any more are dropped here on a follower, and on a leader when the
    /// entry that leaves them out is applied ("remove legacy", as for any node that
    /// leaves).
    pub fn set_log_configs(&mut self, entries: Vec<(Index, ConfigEntry)>) {
        self.log_configs = entries;
        self.sync_peers();
    }

    /// The rwQuorum value ([`MemberSets::quorum_value`]) the leader may rely on: the
    /// smallest over the applied configuration and every configuration the entries of
    /// earlier terms above lastApplied may give (see [`Self::set_log_configs`]).
    pub(super) fn leader_quorum_value(&mut self, value: impl Fn(NodeId) -> u64) -> u64 {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut v = self.sets.quorum_value(&value, &mut scratch);
        if !self.cfg.disable_config_change {
            let mut cur = None::<MemberSets>;
            for (i, e) in &self.log_configs {
                if *i >= self.group_ready_index {
                    break;
                }
                let base = cur.as_ref().unwrap_or(&self.sets);
                if let Some(next) = next_sets(base, e) {
                    v = v.min(next.quorum_value(&value, &mut scratch));
                    cur = Some(next);
                }
            }
        }
        self.scratch = scratch;
        v
    }

    /// True if `f` holds for the applied configuration and every configuration the
    /// entries above lastApplied would give (see [`Self::set_log_configs`]).
    pub(super) fn every_possible_config(&self, f: impl Fn(&MemberSets) -> bool) -> bool {
        if !f(&self.sets) {
            return false;
        }
        if self.cfg.disable_config_change {
            return true;
        }
        let mut cur = None::<MemberSets>;
        for (_, e) in &self.log_configs {
            let base = cur.as_ref().unwrap_or(&self.sets);
            if let Some(next) = next_sets(base, e) {
                if !f(&next) {
                    return false;
                }
                cur = Some(next);
            }
        }
        true
    }

    /// Calls `f` for every voter of the configurations of
    /// [`Self::every_possible_config`] (a voter of several, once per configuration).
    pub(super) fn for_each_possible_voter(&self, mut f: impl FnMut(NodeId)) {
        self.for_each_possible_config(|sets| sets.for_each_voter(&mut f));
    }

    /// Calls `f` for the applied configuration and every configuration the entries
    /// above lastApplied would give in turn (see [`Self::set_log_configs`]).
    fn for_each_possible_config(&self, mut f: impl FnMut(&MemberSets)) {
        f(&self.sets);
        if self.cfg.disable_config_change {
            return;
        }
        let mut cur = None::<MemberSets>;
        for (_, e) in &self.log_configs {
            let base = cur.as_ref().unwrap_or(&self.sets);
            if let Some(next) = next_sets(base, e) {
                f(&next);
                cur = Some(next);
            }
        }
    }

    /// The nodes the core keeps replication progress for: the replicate list
    /// ([`MemberSets::replicate_list`]) of the applied configuration and of every
    /// configuration the entries above lastApplied may give, each once, applied ones
    /// first.
    ///
    /// A leader commits with a quorum in the configurations of earlier terms' entries
    /// it has not applied yet ([`Self::set_log_configs`]); it must replicate to their
    /// voters too, or a change that replaces several members at once (1,2,3 → 1,4,5)
    /// stalls for good when the leader changes before the change is applied: the new
    /// leader's applied configuration does not name 4 and 5, yet it needs one of them
    /// to commit anything.
    pub fn replication_targets(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::new();
        self.replication_targets_into(&mut out);
        out
    }

    /// [`replication_targets`](Self::replication_targets) into `out` (cleared first),
    /// so a caller that keeps the vector allocates nothing.
    pub fn replication_targets_into(&self, out: &mut Vec<NodeId>) {
        out.clear();
        self.for_each_replication_target(|id| {
            if !out.contains(&id) {
                out.push(id);
            }
        });
    }

    /// Calls `f` for each id of the replicate list of the applied configuration and
    /// of every configuration the entries above lastApplied may give, in turn (an id
    /// may come more than once); without building a list.
    pub fn for_each_replication_target(&self, mut f: impl FnMut(NodeId)) {
        self.for_each_possible_config(|sets| sets.for_each_replicate(&mut f));
    }

    /// The sets that applying `entry` switches to, or `None` when it changes none of
    /// them (`disable_config_change`, the same sets, DROP or COMMIT outside a joint
    /// configuration). Before [`apply_config_entry`](Self::apply_config_entry) the
    /// driver checks every id of the current and these sets against its node table
    /// (§11.2 "applying a configuration", step 3).
    pub fn config_entry_sets(&self, entry: &ConfigEntry) -> Option<MemberSets> {
        if self.cfg.disable_config_change {
            return None;
        }
        next_sets(&self.sets, entry).filter(|next| !same_sets(next, &self.sets))
    }

    /// Drops the "remove legacy" replications that are done or timed out.
    pub(super) fn check_legacy(&mut self) {
        let now = self.now;
        self.peers.retain(|p| match p.remove_legacy {
            Some((index, deadline)) => {
                !(now >= deadline || (p.match_index >= index && p.rep_commit_acked >= index))
            }
            None => true,
        });
    }
}

/// The sets applying `entry` to `cur` gives (§11.2), `None` when it changes nothing
/// (DROP or COMMIT outside a change).
fn next_sets(cur: &MemberSets, entry: &ConfigEntry) -> Option<MemberSets> {
    match entry {
        ConfigEntry::Prepare(b) => Some(MemberSets {
            members: cur.members.clone(),
            observers: cur.observers.clone(),
            prepared_members: b.new_members.clone(),
            prepared_observers: b.new_observers.clone(),
        }),
        ConfigEntry::Drop if cur.is_joint() => {
            Some(MemberSets::new(cur.members.clone(), cur.observers.clone()))
        }
        ConfigEntry::Commit if cur.is_joint() => Some(MemberSets::new(
            cur.prepared_members.clone(),
            cur.prepared_observers.clone(),
        )),
        _ => None,
    }
}
