//! The server's watch manager (`dtkv-server.md` §7, `wire-protocol.md` §6.7): per
//! connection ("channel") registrations from DTKV_SYNC_WATCH, the holders that tie
//! watches to keys, and the dispatch of DTKV_WATCH_NOTIFY_PUSH with batching, one push
//! in flight per channel, retries and liveness.
//!
//! IO-free: the caller passes time (local monotonic nanoseconds), sends the [`Push`]es
//! this returns on the channel's connection, and reports each push's outcome with
//! [`WatchManager::push_result`]. The tree reports the changes of watched keys in
//! [`ApplyOutcome::watch_events`](super::ApplyOutcome), to be fed to
//! [`WatchManager::after_apply`].
//!
//! Watches are kept per watched key (the reference keeps them on the key's node
//! holder, or on a chain of placeholders under the nearest existing ancestor; the
//! notifications are the same): a notification reports the key's current state: its
//! update index and value or directory state when it exists, else the index it was
//! removed at (for a key that did not exist when first watched: the update index of its
//! nearest existing ancestor then). It is sent only when that index is above what the
//! channel was last told. Differences from the reference, on purpose: re-registering a
//! key with index 0 replaces the channel's watch instead of adding a second one (the
//! reference then pushes the key twice), and a missing key's remembered removal index
//! is forgotten once no watch needs it (a new watch then starts from its ancestor's
//! index, which is never lower).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;

use bytes::Bytes;
use dt_client::kv::{check_key, KvCode, WatchNotify, WatchNotifyReq, WatchReq, WatchState};
use dt_net::CmdCodes;

use super::tree::{KvTree, WatchView};

/// The watch manager's settings (`KvServerConfig`).
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Changed keys expanded, and channels pushed to, per dispatch round (100).
    pub max_batch: usize,
    /// A push holds notifications until their key + value bytes pass this (81 920; the
    /// item crossing it is included).
    pub max_req_bytes: usize,
    /// Retry delays after consecutive failed pushes (1 s, 10 s, 30 s, then 60 s).
    pub retry_nanos: Vec<i64>,
    /// A channel without activity for this long loses its watches (120 s).
    pub timeout_nanos: i64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            max_batch: 100,
            max_req_bytes: 81_920,
            retry_nanos: vec![1, 10, 30, 60]
                .into_iter()
                .map(|s: i64| s * 1_000_000_000)
                .collect(),
            timeout_nanos: 120_000_000_000,
        }
    }
}

/// Checks a DTKV_SYNC_WATCH request before it is processed: CLIENT_REQ_ERROR when it
/// lists no keys without `sync_all`, INVALID_KEY when a key fails the full key check.
pub fn check_watch_req(req: &WatchReq) -> KvCode {
    if !req.sync_all && req.keys.is_empty() {
        return KvCode::ClientReqError;
    }
    if req
        .keys
        .iter()
        .any(|k| check_key(k, false, true) != KvCode::Success)
    {
        return KvCode::InvalidKey;
    }
    KvCode::Success
}

/// A push to send to a channel (DTKV_WATCH_NOTIFY_PUSH, 5 s timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push<C> {
    /// The channel to send it on.
    pub channel: C,
    /// The request body.
    pub req: WatchNotifyReq,
    /// What to hand back to [`WatchManager::push_result`].
    pub token: PushToken,
}

/// Identifies a push's watches for its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushToken {
    epoch: u64,
    watches: Vec<(Bytes, u64)>,
    fire_next: bool,
}

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The client answered (`resp_code` SUCCESS): its `biz_code` and per-item results
    /// (missing trailing results count as SUCCESS, as in the reference).
    Answered {
        /// The response's `biz_code`.
        biz_code: KvCode,
        /// The decoded `WatchNotifyResp` results.
        results: Vec<i32>,
    },
    /// The push failed: an error response code, or `None` for a timeout or a transport
    /// error.
    Failed {
        /// The response code, when the peer answered with one.
        resp_code: Option<i32>,
    },
}

#[derive(Debug)]
struct ChannelWatch {
    gen: u64,
    notified: i64,
    notified_pending: i64,
    pending: bool,
    remove_after_sync_all: bool,
}

#[derive(Debug)]
struct ChannelInfo {
    watches: HashMap<Bytes, ChannelWatch>,
    need_notify: VecDeque<Bytes>,
    need_notify_set: HashSet<Bytes>,
    pending: bool,
    last_active: i64,
    retry_at: Option<(i64, u64)>,
    fail_count: usize,
    active_stamp: u64,
    in_need_notify_channels: bool,
}

impl ChannelInfo {
    fn add_need_notify(&mut self, key: &Bytes) {
        if self.need_notify_set.insert(key.clone()) {
            self.need_notify.push_back(key.clone());
        }
    }
}

#[derive(Debug)]
struct WatchHolder<C> {
    last_remove_index: i64,
    channels: Vec<C>,
    waiting_dispatch: bool,
}

/// The watches of one group, for channels identified by `C` (a connection id).
#[derive(Debug)]
pub struct WatchManager<C> {
    cfg: WatchConfig,
    group_id: i32,
    epoch: u64,
    gen: u64,
    stamp: u64,
    holders: HashMap<Bytes, WatchHolder<C>>,
    need_dispatch: VecDeque<Bytes>,
    channels: HashMap<C, ChannelInfo>,
    need_notify_channels: VecDeque<C>,
    retry: BTreeSet<(i64, u64, C)>,
    active: BTreeMap<u64, C>,
}

impl<C: Copy + Eq + Hash + Ord + std::fmt::Debug> WatchManager<C> {
    /// A manager for group `group_id`.
    pub fn new(group_id: i32, cfg: WatchConfig) -> Self {
        WatchManager {
            cfg,
            group_id,
            epoch: 0,
            gen: 0,
            stamp: 0,
            holders: HashMap::new(),
            need_dispatch: VecDeque::new(),
            channels: HashMap::new(),
            need_notify_channels: VecDeque::new(),
            retry: BTreeSet::new(),
            active: BTreeMap::new(),
        }
    }

    /// Forgets every watch (a snapshot is being installed: clients find out through
    /// the watch count of DTKV_QUERY_STATUS and re-sync). Results of pushes sent before
    /// are ignored.
    pub fn reset(&mut self) {
        let cfg = self.cfg.clone();
        let epoch = self.epoch + 1;
        *self = WatchManager::new(self.group_id, cfg);
        self.epoch = epoch;
    }

    /// The keys with watches (tests compare them with the tree's watched set).
    #[cfg(test)]
    pub(crate) fn watched_keys(&self) -> HashSet<Bytes> {
        self.holders.keys().cloned().collect()
    }

    /// Number of channels with watches.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The number of watches `channel` has; refreshes its liveness (DTKV_QUERY_STATUS).
    pub fn watch_count(&mut self, channel: C, now: i64) -> i32 {
        let Some(ci) = self.channels.get_mut(&channel) else {
            return 0;
        };
        ci.last_active = now;
        let n = ci.watches.len() as i32;
        self.touch_active(channel);
        n
    }

    fn touch_active(&mut self, c: C) {
        let ci = self.channels.get_mut(&c).expect("known channel");
        self.active.remove(&ci.active_stamp);
        self.stamp += 1;
        ci.active_stamp = self.stamp;
        self.active.insert(self.stamp, c);
    }

    fn want_notify(&mut self, c: C) {
        let ci = self.channels.get_mut(&c).expect("known channel");
        if ci.fail_count == 0 && !ci.pending && !ci.in_need_notify_channels {
            ci.in_need_notify_channels = true;
            self.need_notify_channels.push_back(c);
        }
    }

    fn holder_for(&mut self, tree: &mut KvTree, key: &Bytes) -> &mut WatchHolder<C> {
        if !self.holders.contains_key(key) {
            let last_remove_index = match tree.watch_view(key) {
                WatchView::Exists { .. } => 0,
                WatchView::Missing {
                    ancestor_update_index,
                } => ancestor_update_index,
            };
            tree.set_watched(key, true);
            self.holders.insert(
                key.clone(),
                WatchHolder {
                    last_remove_index,
                    channels: Vec::new(),
                    waiting_dispatch: false,
                },
            );
        }
        self.holders.get_mut(key).expect("inserted")
    }

    fn unhold(&mut self, tree: &mut KvTree, key: &Bytes, c: C) {
        if let Some(h) = self.holders.get_mut(key) {
            h.channels.retain(|&x| x != c);
            if h.channels.is_empty() {
                self.holders.remove(key);
                tree.set_watched(key, false);
            }
        }
    }

    /// DTKV_SYNC_WATCH from `channel` (after [`check_watch_req`]): per key, an index
    /// ≥ 0 registers or refreshes (0: a fresh watch), a negative one removes; with
    /// `sync_all` the list is the channel's whole watch set.
    pub fn sync(&mut self, tree: &mut KvTree, channel: C, req: &WatchReq, now: i64) {
        if req.sync_all && req.keys.is_empty() {
            self.remove_channel(tree, channel);
            return;
        }
        self.channels.entry(channel).or_insert_with(|| ChannelInfo {
            watches: HashMap::new(),
            need_notify: VecDeque::new(),
            need_notify_set: HashSet::new(),
            pending: false,
            last_active: now,
            retry_at: None,
            fail_count: 0,
            active_stamp: 0,
            in_need_notify_channels: false,
        });
        self.touch_active(channel);
        if req.sync_all {
            let ci = self.channels.get_mut(&channel).expect("present");
            for w in ci.watches.values_mut() {
                w.remove_after_sync_all = true;
            }
        }
        for (i, key) in req.keys.iter().enumerate() {
            let known = req.known_raft_indexes.get(i).copied().unwrap_or(0);
            if known < 0 {
                let removed = self
                    .channels
                    .get_mut(&channel)
                    .expect("present")
                    .watches
                    .remove(key);
                if removed.is_some() {
                    self.unhold(tree, key, channel);
                }
                continue;
            }
            let fresh = {
                let ci = &self.channels[&channel];
                known == 0 || !ci.watches.contains_key(key)
            };
            if fresh {
                self.gen += 1;
                let gen = self.gen;
                let h = self.holder_for(tree, key);
                if !h.channels.contains(&channel) {
                    h.channels.push(channel);
                }
                let ci = self.channels.get_mut(&channel).expect("present");
                ci.watches.insert(
                    key.clone(),
                    ChannelWatch {
                        gen,
                        notified: known,
                        notified_pending: known,
                        pending: false,
                        remove_after_sync_all: false,
                    },
                );
            } else {
                let ci = self.channels.get_mut(&channel).expect("present");
                let w = ci.watches.get_mut(key).expect("present");
                w.notified = known;
                w.remove_after_sync_all = false;
                if w.pending {
                    continue;
                }
            }
            self.channels
                .get_mut(&channel)
                .expect("present")
                .add_need_notify(key);
            self.want_notify(channel);
        }
        if req.sync_all {
            let ci = self.channels.get_mut(&channel).expect("present");
            let stale: Vec<Bytes> = ci
                .watches
                .iter()
                .filter(|(_, w)| w.remove_after_sync_all)
                .map(|(k, _)| k.clone())
                .collect();
            for k in stale {
                self.channels
                    .get_mut(&channel)
                    .expect("present")
                    .watches
                    .remove(&k);
                self.unhold(tree, &k, channel);
            }
        }
        if self.channels[&channel].watches.is_empty() {
            self.remove_channel(tree, channel);
        }
    }

    /// Drops a channel and its watches (closed connection, timeout, or a failure that
    /// says the client does not want them).
    pub fn remove_channel(&mut self, tree: &mut KvTree, channel: C) {
        let Some(ci) = self.channels.remove(&channel) else {
            return;
        };
        if let Some((t, s)) = ci.retry_at {
            self.retry.remove(&(t, s, channel));
        }
        self.active.remove(&ci.active_stamp);
        for k in ci.watches.keys() {
            self.unhold(tree, k, channel);
        }
    }

    /// Learns the watched keys an applied entry changed (`index` is the entry's).
    pub fn after_apply(&mut self, events: &[(Bytes, bool)], index: i64) {
        for (key, removed) in events {
            if let Some(h) = self.holders.get_mut(key) {
                if *removed {
                    h.last_remove_index = index;
                }
                if !h.waiting_dispatch {
                    h.waiting_dispatch = true;
                    self.need_dispatch.push_back(key.clone());
                }
            }
        }
    }

    /// One dispatch round (every 500 ms, or at once again when it returns `false`):
    /// changed keys go to their channels, idle channels get a push, channels whose
    /// retry time came get one. Returns the pushes to send and whether the round
    /// finished its work.
    pub fn dispatch(&mut self, tree: &KvTree, now: i64) -> (Vec<Push<C>>, bool) {
        let mut done = true;
        let mut out = Vec::new();
        let batch = self.cfg.max_batch;
        let mut n = 0;
        while let Some(key) = self.need_dispatch.front().cloned() {
            n += 1;
            if n > batch {
                done = false;
                break;
            }
            self.need_dispatch.pop_front();
            let Some(h) = self.holders.get_mut(&key) else {
                continue;
            };
            h.waiting_dispatch = false;
            for c in h.channels.clone() {
                let Some(ci) = self.channels.get_mut(&c) else {
                    continue;
                };
                if ci.watches.get(&key).is_none_or(|w| w.pending) {
                    continue;
                }
                ci.add_need_notify(&key);
                self.want_notify(c);
            }
        }
        let mut list = Vec::new();
        let mut n = 0;
        while let Some(&c) = self.need_notify_channels.front() {
            if let Some(ci) = self.channels.get_mut(&c) {
                if ci.in_need_notify_channels && ci.fail_count == 0 {
                    if n + 1 > batch {
                        done = false;
                        break;
                    }
                    n += 1;
                    list.push(c);
                }
                ci.in_need_notify_channels = false;
            }
            self.need_notify_channels.pop_front();
        }
        for c in list {
            self.push_notify(tree, c, now, &mut out);
        }
        let mut n = 0;
        while let Some(&(t, s, c)) = self.retry.first() {
            if t - now > 0 {
                break;
            }
            n += 1;
            if n > batch {
                done = false;
                break;
            }
            self.retry.remove(&(t, s, c));
            if let Some(ci) = self.channels.get_mut(&c) {
                ci.retry_at = None;
            }
            self.push_notify(tree, c, now, &mut out);
        }
        (out, done)
    }

    fn create_notify(
        tree: &KvTree,
        key: &Bytes,
        w: &mut ChannelWatch,
        lri: i64,
    ) -> Option<WatchNotify> {
        let (index, state, value) = match tree.watch_view(key) {
            WatchView::Exists {
                update_index,
                dir,
                data,
            } => {
                if dir {
                    (update_index, WatchState::DirectoryExists, Bytes::new())
                } else {
                    (update_index, WatchState::ValueExists, data)
                }
            }
            WatchView::Missing { .. } => (lri, WatchState::NotExists, Bytes::new()),
        };
        if w.notified >= index {
            return None;
        }
        w.notified_pending = index;
        Some(WatchNotify {
            raft_index: index,
            state: state.code(),
            key: key.clone(),
            value,
        })
    }

    fn push_notify(&mut self, tree: &KvTree, c: C, now: i64, out: &mut Vec<Push<C>>) {
        let _ = now;
        let max = self.cfg.max_req_bytes;
        let Some(ci) = self.channels.get_mut(&c) else {
            return;
        };
        let mut items = Vec::new();
        let mut watches = Vec::new();
        let mut bytes = 0;
        while let Some(key) = ci.need_notify.pop_front() {
            ci.need_notify_set.remove(&key);
            let Some(w) = ci.watches.get_mut(&key) else {
                continue;
            };
            if w.pending {
                continue;
            }
            let lri = self.holders.get(&key).map_or(0, |h| h.last_remove_index);
            if let Some(n) = Self::create_notify(tree, &key, w, lri) {
                w.pending = true;
                bytes += n.key.len() + n.value.len();
                watches.push((key, w.gen));
                items.push(n);
                if bytes > max {
                    break;
                }
            }
        }
        if items.is_empty() {
            ci.pending = false;
            return;
        }
        ci.pending = true;
        out.push(Push {
            channel: c,
            req: WatchNotifyReq {
                group_id: self.group_id,
                notify_list: items,
            },
            token: PushToken {
                epoch: self.epoch,
                watches,
                fire_next: !ci.need_notify.is_empty(),
            },
        });
    }

    fn retry_later(&mut self, c: C, token: &PushToken, now: i64) {
        let Some(ci) = self.channels.get_mut(&c) else {
            return;
        };
        ci.fail_count += 1;
        let delays = &self.cfg.retry_nanos;
        let d = delays[(ci.fail_count - 1).min(delays.len() - 1)];
        if let Some((t, s)) = ci.retry_at.take() {
            self.retry.remove(&(t, s, c));
        }
        self.stamp += 1;
        ci.retry_at = Some((now + d, self.stamp));
        self.retry.insert((now + d, self.stamp, c));
        for (k, _) in &token.watches {
            ci.add_need_notify(k);
        }
    }

    /// The outcome of a push: records what the client acknowledged, drops what it no
    /// longer watches, retries failures with back-off, and may send the rest at once
    /// (returned).
    pub fn push_result(
        &mut self,
        tree: &mut KvTree,
        channel: C,
        token: &PushToken,
        outcome: PushOutcome,
        now: i64,
    ) -> Vec<Push<C>> {
        let mut out = Vec::new();
        if token.epoch != self.epoch {
            return out;
        }
        let Some(ci) = self.channels.get_mut(&channel) else {
            return out;
        };
        ci.pending = false;
        for (k, gen) in &token.watches {
            if let Some(w) = ci.watches.get_mut(k).filter(|w| w.gen == *gen) {
                w.pending = false;
            }
        }
        let (biz_code, mut results) = match outcome {
            PushOutcome::Failed { resp_code } => {
                if matches!(
                    resp_code,
                    Some(
                        CmdCodes::CLIENT_ERROR | CmdCodes::STOPPING | CmdCodes::COMMAND_NOT_SUPPORT
                    )
                ) {
                    self.remove_channel(tree, channel);
                } else {
                    self.retry_later(channel, token, now);
                }
                return out;
            }
            PushOutcome::Answered { biz_code, results } => (biz_code, results),
        };
        match biz_code {
            KvCode::Success => {}
            KvCode::RemoveAllWatch => {
                self.remove_channel(tree, channel);
                return out;
            }
            _ => {
                self.retry_later(channel, token, now);
                return out;
            }
        }
        if results.len() > token.watches.len() {
            self.remove_channel(tree, channel);
            return out;
        }
        results.resize(token.watches.len(), KvCode::Success.code());
        let mut failed = false;
        for ((key, gen), code) in token.watches.iter().zip(results) {
            let ci = self.channels.get_mut(&channel).expect("present");
            let Some(w) = ci.watches.get_mut(key).filter(|w| w.gen == *gen) else {
                continue;
            };
            match KvCode::from_code(code) {
                KvCode::RemoveWatch => {
                    ci.watches.remove(key);
                    self.unhold(tree, key, channel);
                }
                KvCode::Success => {
                    w.notified = w.notified.max(w.notified_pending);
                    // Re-checked at the next push: changes during this one are sent.
                    ci.add_need_notify(key);
                }
                _ => failed = true,
            }
        }
        if failed {
            self.retry_later(channel, token, now);
            return out;
        }
        let ci = self.channels.get_mut(&channel).expect("present");
        ci.fail_count = 0;
        ci.last_active = now;
        if ci.watches.is_empty() {
            self.remove_channel(tree, channel);
        } else if token.fire_next {
            self.push_notify(tree, channel, now, &mut out);
        } else if !ci.need_notify.is_empty() {
            self.want_notify(channel);
        }
        out
    }

    /// Drops the channels inactive for longer than the timeout, from the least
    /// recently active (as the reference, the scan stops at the first live one).
    pub fn clean_timeouts(&mut self, tree: &mut KvTree, now: i64) {
        while let Some((_, &c)) = self.active.first_key_value() {
            if now - self.channels[&c].last_active > self.cfg.timeout_nanos {
                self.remove_channel(tree, c);
            } else {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtkv::BizType;
    use dt_client::kv::KvReq;

    const S: i64 = 1_000_000_000;

    struct Node {
        tree: KvTree,
        wm: WatchManager<u32>,
        index: i64,
    }

    impl Node {
        fn new() -> Self {
            Node {
                tree: KvTree::new(),
                wm: WatchManager::new(0, WatchConfig::default()),
                index: 0,
            }
        }

        fn write(&mut self, biz: BizType, req: KvReq) {
            self.index += 1;
            let out = self.tree.apply(self.index, 0, biz, &req);
            self.wm.after_apply(&out.watch_events, self.index);
        }

        fn put(&mut self, k: &str, v: &str) {
            self.write(BizType::Put, KvReq::put(0, k.to_string(), v.to_string()));
        }

        fn watch(&mut self, c: u32, keys: &[(&str, i64)], sync_all: bool, now: i64) {
            let req = WatchReq {
                group_id: 0,
                sync_all,
                known_raft_indexes: keys.iter().map(|k| k.1).collect(),
                keys: keys.iter().map(|k| Bytes::from(k.0.to_string())).collect(),
            };
            assert!(sync_all || check_watch_req(&req) == KvCode::Success);
            self.wm.sync(&mut self.tree, c, &req, now);
        }

        fn dispatch(&mut self, now: i64) -> Vec<Push<u32>> {
            self.wm.dispatch(&self.tree, now).0
        }

        fn ack(&mut self, p: &Push<u32>, now: i64) -> Vec<Push<u32>> {
            let n = p.req.notify_list.len();
            let outcome = PushOutcome::Answered {
                biz_code: KvCode::Success,
                results: vec![0; n],
            };
            self.wm
                .push_result(&mut self.tree, p.channel, &p.token, outcome, now)
        }
    }

    fn items(p: &Push<u32>) -> Vec<(String, i64, i32)> {
        p.req
            .notify_list
            .iter()
            .map(|n| {
                (
                    String::from_utf8(n.key.to_vec()).unwrap(),
                    n.raft_index,
                    n.state,
                )
            })
            .collect()
    }

    #[test]
    fn watch_req_checks() {
        let mut r = WatchReq::default();
        assert_eq!(check_watch_req(&r), KvCode::ClientReqError);
        r.sync_all = true;
        assert_eq!(check_watch_req(&r), KvCode::Success);
        r.keys = vec![Bytes::from("a..b")];
        assert_eq!(check_watch_req(&r), KvCode::InvalidKey);
        r.keys = vec![Bytes::new()];
        assert_eq!(check_watch_req(&r), KvCode::InvalidKey);
    }

    /// Checklist 10: notifications carry state; a directory watch fires for any
    /// descendant; one push in flight per channel.
    #[test]
    fn notifications_report_state_and_directories_see_their_subtree() {
        let mut n = Node::new();
        n.write(BizType::Mkdir, KvReq::key(0, "d"));
        n.put("k", "v1");
        n.watch(1, &[("k", 0), ("d", 0)], false, 0);
        let p = n.dispatch(0).remove(0);
        assert_eq!(items(&p), [("k".into(), 2, 1), ("d".into(), 1, 2)]);
        // While the push is in flight, changes wait.
        n.put("k", "v2");
        n.put("k", "v3");
        n.put("d.x", "1");
        assert!(n.dispatch(1).is_empty());
        assert!(n.ack(&p, 2).is_empty());
        let p = n.dispatch(3).remove(0);
        // Coalesced: the current state only.
        assert_eq!(items(&p), [("k".into(), 4, 1), ("d".into(), 5, 2)]);
        assert_eq!(&p.req.notify_list[0].value[..], b"v3");
    }

    #[test]
    fn missing_keys_report_not_exists_with_the_removal_index() {
        let mut n = Node::new();
        // A never-existing key under an unchanged empty root: no initial notification.
        n.watch(1, &[("a", 0)], false, 0);
        assert!(n.dispatch(0).is_empty());
        n.put("a", "x"); // 1
        let p = n.dispatch(0).remove(0);
        assert_eq!(items(&p), [("a".into(), 1, 1)]);
        n.ack(&p, 0);
        n.dispatch(0);
        n.write(BizType::Remove, KvReq::key(0, "a")); // 2
        let p = n.dispatch(0).remove(0);
        assert_eq!(items(&p), [("a".into(), 2, 0)]);
        // A missing key watched later starts from its nearest ancestor's index.
        n.put("b", "y"); // 3
        n.watch(2, &[("zz.q", 0)], false, 0);
        let p = n.dispatch(0).remove(0);
        assert_eq!((p.channel, items(&p)), (2, vec![("zz.q".into(), 3, 0)]));
    }

    #[test]
    fn known_indexes_and_unregistering() {
        let mut n = Node::new();
        n.put("k", "v"); // 1
        n.watch(1, &[("k", 1)], false, 0);
        assert!(n.dispatch(0).is_empty(), "the client knows index 1");
        n.watch(1, &[("k", -1)], false, 0);
        assert_eq!(
            n.wm.channel_count(),
            0,
            "no watches left: channel forgotten"
        );
        assert!(n.tree.watched.is_empty());
        n.put("k", "w");
        assert!(n.dispatch(0).is_empty());
    }

    #[test]
    fn sync_all_replaces_the_watch_set() {
        let mut n = Node::new();
        n.watch(1, &[("a", 0), ("b", 0)], false, 0);
        n.watch(1, &[("b", 0), ("c", 0)], true, 0);
        assert_eq!(n.wm.watch_count(1, 0), 2);
        assert!(!n.tree.watched.contains(&Bytes::from("a")));
        n.watch(1, &[], true, 0);
        assert_eq!(n.wm.watch_count(1, 0), 0);
        assert!(n.tree.watched.is_empty());
    }

    #[test]
    fn failures_retry_with_back_off_and_some_drop_the_channel() {
        let mut n = Node::new();
        n.put("k", "v");
        n.watch(1, &[("k", 0)], false, 0);
        let p = n.dispatch(0).remove(0);
        let fail = PushOutcome::Failed { resp_code: None };
        n.wm.push_result(&mut n.tree, 1, &p.token, fail.clone(), 0);
        assert!(n.dispatch(S - 1).is_empty());
        let p = n.dispatch(S).remove(0);
        n.wm.push_result(&mut n.tree, 1, &p.token, fail, S);
        assert!(n.dispatch(S + 9 * S).is_empty(), "second delay is 10 s");
        let p = n.dispatch(11 * S).remove(0);
        assert_eq!(items(&p), [("k".into(), 1, 1)]);
        // A per-item failure code retries too; success resets the count.
        let bad = PushOutcome::Answered {
            biz_code: KvCode::Success,
            results: vec![KvCode::Error.code()],
        };
        n.wm.push_result(&mut n.tree, 1, &p.token, bad, 11 * S);
        assert!(
            n.dispatch(11 * S + 29 * S).is_empty(),
            "third delay is 30 s"
        );
        let p = n.dispatch(41 * S).remove(0);
        n.ack(&p, 41 * S);
        // COMMAND_NOT_SUPPORT drops the channel.
        n.put("k", "w");
        let p = n.dispatch(42 * S).remove(0);
        let ns = PushOutcome::Failed {
            resp_code: Some(CmdCodes::COMMAND_NOT_SUPPORT),
        };
        n.wm.push_result(&mut n.tree, 1, &p.token, ns, 42 * S);
        assert_eq!(n.wm.channel_count(), 0);
    }

    #[test]
    fn client_answers_remove_watch_remove_all_and_count_mismatch() {
        let mut n = Node::new();
        n.put("a", "1");
        n.put("b", "2");
        n.watch(1, &[("a", 0), ("b", 0)], false, 0);
        let p = n.dispatch(0).remove(0);
        let r = PushOutcome::Answered {
            biz_code: KvCode::Success,
            results: vec![KvCode::RemoveWatch.code(), 0],
        };
        n.wm.push_result(&mut n.tree, 1, &p.token, r, 0);
        assert_eq!(n.wm.watch_count(1, 0), 1);
        n.put("b", "3");
        let p = n.dispatch(0).remove(0);
        let r = PushOutcome::Answered {
            biz_code: KvCode::Success,
            results: vec![0, 0],
        };
        n.wm.push_result(&mut n.tree, 1, &p.token, r, 0);
        assert_eq!(n.wm.channel_count(), 0, "more results than items");
        n.watch(2, &[("a", 0)], false, 0);
        let p = n.dispatch(0).remove(0);
        let r = PushOutcome::Answered {
            biz_code: KvCode::RemoveAllWatch,
            results: vec![],
        };
        n.wm.push_result(&mut n.tree, 2, &p.token, r, 0);
        assert_eq!(n.wm.channel_count(), 0);
    }

    #[test]
    fn a_push_stops_after_the_byte_limit_and_the_rest_follows_at_once() {
        let mut n = Node::new();
        n.wm.cfg.max_req_bytes = 10;
        for k in ["k1", "k2", "k3"] {
            n.put(k, "12345");
        }
        n.watch(1, &[("k1", 0), ("k2", 0), ("k3", 0)], false, 0);
        let p = n.dispatch(0).remove(0);
        // 7 bytes, then 14 > 10: the item crossing the limit is included.
        assert_eq!(p.req.notify_list.len(), 2);
        let next = n.ack(&p, 0);
        assert_eq!(items(&next[0]), [("k3".into(), 3, 1)]);
    }

    #[test]
    fn inactive_channels_time_out_and_status_queries_keep_them() {
        let mut n = Node::new();
        n.watch(1, &[("a", 0)], false, 0);
        n.watch(2, &[("a", 0)], false, 0);
        assert_eq!(n.wm.watch_count(2, 100 * S), 1);
        n.wm.clean_timeouts(&mut n.tree, 121 * S);
        assert_eq!(n.wm.watch_count(1, 121 * S), 0);
        assert_eq!(n.wm.watch_count(2, 121 * S), 1);
    }

    #[test]
    fn reset_forgets_everything_and_ignores_old_results() {
        let mut n = Node::new();
        n.put("a", "1");
        n.watch(1, &[("a", 0)], false, 0);
        let p = n.dispatch(0).remove(0);
        n.wm.reset();
        assert!(n.ack(&p, 0).is_empty());
        assert_eq!(n.wm.channel_count(), 0);
    }

    #[test]
    fn expiry_of_a_temp_dir_notifies_watches_below_it() {
        let mut n = Node::new();
        let mut td = KvReq::key(0, "td").with_ttl(10);
        td.set_owner(dt_net::ProcessInfo { uuid1: 1, uuid2: 1 });
        n.write(BizType::MkTempDir, td); // 1
        n.put("td.x", "v"); // 2
        n.watch(1, &[("td.x", 2)], false, 0);
        assert!(n.dispatch(0).is_empty());
        let mut ex = KvReq::key(0, "td");
        ex.ttl_millis = 1;
        n.write(BizType::Expire, ex); // 3
        let p = n.dispatch(0).remove(0);
        assert_eq!(items(&p), [("td.x".into(), 3, 0)]);
    }
}
