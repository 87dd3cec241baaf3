//! The client's side of watches, without the networking (`wire-protocol.md` §6.7.3):
//! which keys of which group this client watches, what it last heard for each, the
//! DTKV_SYNC_WATCH requests that keep the server in step, the answers to the server's
//! pushes, and the queue of events for the application.
//!
//! Guarantees, as the reference client's: an event is delivered for a key only when its
//! raft index is above the last one delivered for that key, so nothing is delivered
//! twice or backwards; several changes may be coalesced into one event (a notification
//! is the key's current state), and an event waiting in the queue is replaced by a
//! newer one for the same key. After a failed sync, or when the client starts using
//! another server ([`WatchClient::server_changed`], which the reference does not do),
//! the next sync is a full one (`sync_all`) carrying every key with its last index, so
//! the new server sends exactly what the client has not seen.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::codes::KvCode;
use super::error::KvError;
use super::key::check_key;
use super::watch::{WatchNotifyReq, WatchNotifyResp, WatchReq, WatchState};

/// A change of a watched key, as delivered to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The group.
    pub group_id: i32,
    /// The raft index of the reported state.
    pub raft_index: i64,
    /// The state (raw; see [`WatchState`]).
    pub state: i32,
    /// The key.
    pub key: Bytes,
    /// The value (state VALUE_EXISTS).
    pub value: Bytes,
}

impl WatchEvent {
    /// The state, when it is one of the three known.
    pub fn watch_state(&self) -> Option<WatchState> {
        WatchState::from_code(self.state)
    }
}

#[derive(Debug, Default)]
struct KeyWatch {
    need_register: bool,
    need_remove: bool,
    raft_index: i64,
    queued: bool,
    event: Option<WatchEvent>,
}

#[derive(Debug, Default)]
struct GroupWatches {
    order: Vec<Bytes>,
    watches: HashMap<Bytes, KeyWatch>,
    need_sync: bool,
    sync_all: bool,
}

impl GroupWatches {
    fn forget(&mut self, key: &Bytes) {
        self.watches.remove(key);
        self.order.retain(|k| k != key);
    }
}

/// The watches of one client, per group.
#[derive(Debug, Default)]
pub struct WatchClient {
    groups: HashMap<i32, GroupWatches>,
    queue: VecDeque<(i32, Bytes)>,
}

fn keys_ok(keys: &[Bytes]) -> Result<(), KvError> {
    for k in keys {
        if check_key(k, false, true) != KvCode::Success {
            return Err(KvError::InvalidArgument(format!(
                "invalid watch key {:?}",
                String::from_utf8_lossy(k)
            )));
        }
    }
    Ok(())
}

impl WatchClient {
    /// No watches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts watching `keys` in `group_id` (keys already watched are kept as they are).
    /// The server may push the keys' current state at once.
    pub fn add_watch(&mut self, group_id: i32, keys: &[Bytes]) -> Result<(), KvError> {
        keys_ok(keys)?;
        let g = self.groups.entry(group_id).or_default();
        for k in keys {
            match g.watches.get(k) {
                Some(w) if !w.need_remove => {}
                _ => {
                    if g.watches.remove(k).is_none() {
                        g.order.push(k.clone());
                    }
                    g.watches.insert(
                        k.clone(),
                        KeyWatch {
                            need_register: true,
                            ..Default::default()
                        },
                    );
                    g.need_sync = true;
                }
            }
        }
        Ok(())
    }

    /// Stops watching `keys` in `group_id`.
    pub fn remove_watch(&mut self, group_id: i32, keys: &[Bytes]) -> Result<(), KvError> {
        keys_ok(keys)?;
        if let Some(g) = self.groups.get_mut(&group_id) {
            for k in keys {
                if let Some(w) = g.watches.get_mut(k) {
                    w.need_remove = true;
                    g.need_sync = true;
                }
            }
        }
        Ok(())
    }

    /// The keys watched in a group (not being removed), in the order they were added.
    pub fn watched(&self, group_id: i32) -> Vec<Bytes> {
        self.groups.get(&group_id).map_or(vec![], |g| {
            g.order
                .iter()
                .filter(|k| !g.watches[*k].need_remove)
                .cloned()
                .collect()
        })
    }

    /// The next DTKV_SYNC_WATCH to send for a group, if its watches changed since the
    /// last one (or a full re-sync is due): new keys with their last index (0 when new),
    /// removed keys with −1; a full sync lists every key. A group left without watches
    /// is forgotten after this request.
    pub fn next_sync(&mut self, group_id: i32) -> Option<WatchReq> {
        let g = self.groups.get_mut(&group_id)?;
        if !g.need_sync {
            return None;
        }
        let mut req = WatchReq {
            group_id,
            sync_all: g.sync_all,
            ..Default::default()
        };
        let order = g.order.clone();
        for k in order {
            let w = g.watches.get_mut(&k).expect("ordered keys are watched");
            if w.need_remove {
                if !g.sync_all {
                    req.keys.push(k.clone());
                    req.known_raft_indexes.push(-1);
                }
                g.forget(&k);
            } else if g.sync_all || w.need_register {
                w.need_register = false;
                req.keys.push(k.clone());
                req.known_raft_indexes.push(w.raft_index);
            }
        }
        g.need_sync = false;
        g.sync_all = false;
        if g.watches.is_empty() {
            self.groups.remove(&group_id);
        }
        Some(req)
    }

    /// A sync request failed: the next one is a full re-sync (possibly to another
    /// server).
    pub fn sync_failed(&mut self, group_id: i32) {
        if let Some(g) = self.groups.get_mut(&group_id) {
            g.need_sync = true;
            g.sync_all = true;
        }
    }

    /// The client now watches the group through another server: re-sync fully, so the
    /// new server knows every key and what the client has already seen.
    pub fn server_changed(&mut self, group_id: i32) {
        self.sync_failed(group_id);
    }

    /// Answers a DTKV_WATCH_NOTIFY_PUSH: REMOVE_ALL_WATCH (no body) when the client has
    /// no watches in the group; else SUCCESS with one result per notification
    /// (REMOVE_WATCH for keys no longer watched). Newer states become events.
    pub fn on_push(&mut self, req: &WatchNotifyReq) -> (KvCode, Option<WatchNotifyResp>) {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return (KvCode::RemoveAllWatch, None);
        };
        if req.notify_list.is_empty() {
            return (KvCode::Success, None);
        }
        let mut results = Vec::with_capacity(req.notify_list.len());
        for n in &req.notify_list {
            match g.watches.get_mut(&n.key).filter(|w| !w.need_remove) {
                None => results.push(KvCode::RemoveWatch.code()),
                Some(w) => {
                    if w.raft_index < n.raft_index {
                        w.raft_index = n.raft_index;
                        w.event = Some(WatchEvent {
                            group_id: req.group_id,
                            raft_index: n.raft_index,
                            state: n.state,
                            key: n.key.clone(),
                            value: n.value.clone(),
                        });
                        if !w.queued {
                            w.queued = true;
                            self.queue.push_back((req.group_id, n.key.clone()));
                        }
                    }
                    results.push(KvCode::Success.code());
                }
            }
        }
        (KvCode::Success, Some(WatchNotifyResp { results }))
    }

    /// The next event for the application, oldest key first (events of keys no longer
    /// watched are dropped).
    pub fn take_event(&mut self) -> Option<WatchEvent> {
        while let Some((group, key)) = self.queue.pop_front() {
            let Some(w) = self
                .groups
                .get_mut(&group)
                .and_then(|g| g.watches.get_mut(&key))
            else {
                continue;
            };
            w.queued = false;
            if w.need_remove {
                w.event = None;
                continue;
            }
            if let Some(e) = w.event.take() {
                return Some(e);
            }
        }
        None
    }

    /// The groups that have watches.
    pub fn groups(&self) -> Vec<i32> {
        let mut g: Vec<i32> = self.groups.keys().copied().collect();
        g.sort_unstable();
        g
    }

    /// Whether an event waits in the queue.
    pub fn has_events(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The sync to send when the client stops: `sync_all` with no keys for every group
    /// that still has watches.
    pub fn remove_all(&mut self) -> Vec<WatchReq> {
        let mut groups: Vec<i32> = self.groups.keys().copied().collect();
        groups.sort();
        self.groups.clear();
        self.queue.clear();
        groups
            .into_iter()
            .map(|group_id| WatchReq {
                group_id,
                sync_all: true,
                ..Default::default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::WatchNotify;

    fn k(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn push(group_id: i32, items: &[(&str, i64)]) -> WatchNotifyReq {
        WatchNotifyReq {
            group_id,
            notify_list: items
                .iter()
                .map(|(key, i)| WatchNotify {
                    raft_index: *i,
                    state: 1,
                    key: k(key),
                    value: k("v"),
                })
                .collect(),
        }
    }

    #[test]
    fn incremental_syncs_then_a_full_one_after_a_failure() {
        let mut c = WatchClient::new();
        c.add_watch(0, &[k("a"), k("b")]).unwrap();
        let r = c.next_sync(0).unwrap();
        assert_eq!(
            (r.sync_all, r.keys.clone(), r.known_raft_indexes.clone()),
            (false, vec![k("a"), k("b")], vec![0, 0])
        );
        assert!(c.next_sync(0).is_none());
        c.on_push(&push(0, &[("a", 7)]));
        c.remove_watch(0, &[k("b")]).unwrap();
        let r = c.next_sync(0).unwrap();
        assert_eq!(
            (r.keys.clone(), r.known_raft_indexes.clone()),
            (vec![k("b")], vec![-1])
        );
        c.add_watch(0, &[k("c")]).unwrap();
        c.sync_failed(0);
        let r = c.next_sync(0).unwrap();
        assert!(r.sync_all);
        assert_eq!(
            (r.keys, r.known_raft_indexes),
            (vec![k("a"), k("c")], vec![7, 0])
        );
        assert!(c.add_watch(0, &[k("a..b")]).is_err());
    }

    #[test]
    fn pushes_give_events_only_for_newer_states() {
        let mut c = WatchClient::new();
        assert_eq!(
            c.on_push(&push(0, &[("a", 1)])),
            (KvCode::RemoveAllWatch, None)
        );
        c.add_watch(0, &[k("a")]).unwrap();
        let (code, resp) = c.on_push(&push(0, &[("a", 5), ("zz", 6)]));
        assert_eq!(
            (code, resp.unwrap().results),
            (KvCode::Success, vec![0, 16])
        );
        // Older or equal: acknowledged, no event; a newer one replaces the queued one.
        c.on_push(&push(0, &[("a", 5)]));
        c.on_push(&push(0, &[("a", 9)]));
        assert_eq!(c.take_event().unwrap().raft_index, 9);
        assert!(c.take_event().is_none());
        // No events for a key once it is being removed.
        c.on_push(&push(0, &[("a", 10)]));
        c.remove_watch(0, &[k("a")]).unwrap();
        assert!(c.take_event().is_none());
        assert_eq!(c.on_push(&push(0, &[])), (KvCode::Success, None));
        c.next_sync(0);
        assert_eq!(c.remove_all(), vec![]);
    }
}
