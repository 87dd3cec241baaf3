//! [`KvClient`]: every DtKV operation over a [`RaftClient`], in three idioms.
//!
//! Each operation `op` comes as
//! * `op(..)`: blocking, returns the result;
//! * `op_async(..)`: returns a [`KvFuture`], a `std::future::Future` any executor can
//!   await (the client's own threads complete it: no runtime needed), or `.wait()`;
//! * `op_cb(.., cb)`: calls `cb` once with the result, on the client's network thread
//!   (or the calling thread for an immediate failure): keep it short, never block in it.
//!
//! Requests are checked locally first (the reference client's key, value, TTL and batch
//! rules: `KvError::InvalidArgument`, nothing sent), go to the group's leader with the
//! retry policy of [`RaftClient`], and have the client's deadline
//! ([`RaftClientConfig::rpc_timeout`], 5 s by default). When the client's outbound limit
//! is reached, a request waits for a permit until its deadline, then fails with
//! `KvError::Net(NetError::FlowControl)`.

use std::time::Duration;

use bytes::Bytes;
use dt_codec::encode;

use crate::future::{kv_channel, KvFuture};
use crate::kv::{ops, BatchResult, KvCode, KvError, KvNode, KvResp, KvResult};
use crate::lock_manager::{AutoRenewalLock, DistributedLock, LockManager};
use crate::raft::{RaftClient, RaftClientConfig, RaftNode};
use crate::watch_manager::WatchManager;

/// Settings of a [`KvClient`].
#[derive(Debug, Clone, Default)]
pub struct KvClientConfig {
    /// The Raft client's settings (deadline, outbound limits, network).
    pub raft: RaftClientConfig,
}

/// A DtKV client: the data operations, watches ([`KvClient::watch_manager`]) and
/// locks, over one [`RaftClient`].
///
/// ```no_run
/// use dt_client::KvClient;
///
/// // A reference (or dt) DtKV server with group 0 on node 1.
/// let kv = KvClient::connect("1,127.0.0.1:5001", &[(0, &[1])]).unwrap();
/// kv.put(0, "cfg.db", "pg://").unwrap();
/// let node = kv.get(0, "cfg.db").unwrap().unwrap();
/// assert_eq!(&node.data[..], b"pg://");
/// assert!(kv.compare_and_set(0, "cfg.db", "pg://", "mysql://").unwrap());
/// ```
pub struct KvClient {
    raft: RaftClient,
    watch: WatchManager,
    locks: LockManager,
}

impl std::fmt::Debug for KvClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KvClient({:?})", self.raft)
    }
}

/// How an operation reads its response: the business code and what the op needs of
/// the body ([`ops::interpret`], [`ops::interpret_index`]).
type Interpret<R> = fn(i32, &dt_net::ReadPacket) -> Result<(KvCode, R), KvError>;

macro_rules! kv_op {
    (
        $(#[doc = $doc:expr])*
        $name:ident, $name_async:ident, $name_cb:ident,
        ( $($arg:ident : $ty:ty),* ) -> $out:ty,
        $build:expr, $exec:ident, $map:expr
    ) => {
        $(#[doc = $doc])*
        ///
        /// Blocking; see also the `_async` and `_cb` forms.
        pub fn $name(&self, group_id: i32, $($arg: $ty),*) -> Result<$out, KvError> {
            self.$name_async(group_id, $($arg),*).wait()
        }

        $(#[doc = $doc])*
        ///
        /// As a future (await it on any executor, or `.wait()`).
        pub fn $name_async(&self, group_id: i32, $($arg: $ty),*) -> KvFuture<$out> {
            let (p, f) = kv_channel();
            self.$name_cb(group_id, $($arg,)* move |r| p.complete(r));
            f
        }

        $(#[doc = $doc])*
        ///
        /// With a callback, called once on the client's network thread (keep it short).
        pub fn $name_cb(
            &self,
            group_id: i32,
            $($arg: $ty,)*
            cb: impl FnOnce(Result<$out, KvError>) + Send + 'static,
        ) {
            #[allow(clippy::redundant_closure_call)]
            let req = ($build)(group_id, $($arg),*);
            self.$exec(req, $map, cb);
        }
    };
}

impl KvClient {
    /// Starts a client with no servers yet (add them through [`KvClient::raft`]).
    pub fn new(cfg: KvClientConfig) -> Result<KvClient, KvError> {
        let (watch, register_watch) = WatchManager::prepare();
        let (locks, register_lock) = LockManager::prepare();
        let raft = RaftClient::with_processors(cfg.raft, |nio| {
            register_watch(nio);
            register_lock(nio);
        })?;
        watch.attach(&raft);
        locks.attach(&raft);
        Ok(KvClient { raft, watch, locks })
    }

    /// A client with the default settings for the given servers
    /// (`"1,host:port;2,host:port"`, service ports) and groups (id, member node ids).
    pub fn connect(servers: &str, groups: &[(i32, &[i32])]) -> Result<KvClient, KvError> {
        let c = KvClient::new(KvClientConfig::default())?;
        c.raft
            .add_or_update_nodes(&RaftNode::parse_list(servers)?)?;
        for (g, members) in groups {
            c.raft.add_or_update_group(*g, members)?;
        }
        Ok(c)
    }

    /// The Raft client underneath (nodes, groups, leaders).
    pub fn raft(&self) -> &RaftClient {
        &self.raft
    }

    /// The watch manager of this client.
    pub fn watch_manager(&self) -> &WatchManager {
        &self.watch
    }

    /// The lock manager of this client.
    pub fn lock_manager(&self) -> &LockManager {
        &self.locks
    }

    /// A distributed lock object for `key` in `group_id` (see [`DistributedLock`]).
    pub fn create_lock(
        &self,
        group_id: i32,
        key: impl Into<Bytes>,
    ) -> Result<DistributedLock, KvError> {
        self.locks.create_lock(group_id, key)
    }

    /// An auto-renewing lock (see [`LockManager::create_auto_renewal_lock`]).
    pub fn create_auto_renewal_lock(
        &self,
        group_id: i32,
        key: impl Into<Bytes>,
        lease_millis: i64,
        listener: impl Fn(bool) + Send + Sync + 'static,
    ) -> Result<AutoRenewalLock, KvError> {
        self.locks
            .create_auto_renewal_lock(group_id, key, lease_millis, listener)
    }

    /// Stops the client: watches are removed from the servers (best effort, within
    /// `timeout`), outstanding requests get the rest of `timeout`.
    pub fn stop(&self, timeout: Duration) {
        self.watch.stop(&self.raft, timeout);
        self.raft.stop(timeout);
    }

    /// Sends `req` and answers `cb` with `map` of the response as `interpret` reads it.
    fn send_op<R: 'static, T: Send + 'static>(
        &self,
        req: Result<ops::KvRequest, KvError>,
        interpret: Interpret<R>,
        map: impl FnOnce(KvCode, R) -> T + Send + 'static,
        cb: impl FnOnce(Result<T, KvError>) + Send + 'static,
    ) {
        let (command, req) = match req {
            Ok(r) => r,
            Err(e) => return cb(Err(e)),
        };
        let group_id = req.group_id;
        // In flight only until answered: a pooled buffer, no allocation per request.
        let body = encode::to_bytes_pooled(&req);
        self.raft
            .send_request(group_id, command, body, self.raft.rpc_timeout(), move |r| {
                cb(r.and_then(|p| interpret(command, &p))
                    .map(|(code, v)| map(code, v)))
            });
    }

    /// An operation whose answer is read whole ([`ops::interpret`]).
    fn exec<T: Send + 'static>(
        &self,
        req: Result<ops::KvRequest, KvError>,
        map: impl FnOnce(KvCode, KvResp) -> T + Send + 'static,
        cb: impl FnOnce(Result<T, KvError>) + Send + 'static,
    ) {
        self.send_op(req, ops::interpret, map, cb)
    }

    /// DTKV_GET: only the node is read from the answer ([`ops::interpret_get`]).
    fn exec_get<T: Send + 'static>(
        &self,
        req: Result<ops::KvRequest, KvError>,
        map: impl FnOnce(KvCode, Option<KvNode>) -> T + Send + 'static,
        cb: impl FnOnce(Result<T, KvError>) + Send + 'static,
    ) {
        self.send_op(req, ops::interpret_get, map, cb)
    }

    /// A batch operation: its answer read whole and turned into the result by `map`,
    /// given the command and the number of keys asked (the `ops::batch_*_result`
    /// functions check there is one result per key, [`ops::check_result_count`]).
    fn exec_batch<T: Send + 'static>(
        &self,
        req: Result<ops::KvRequest, KvError>,
        map: fn(i32, KvResp, usize) -> Result<T, KvError>,
        cb: impl FnOnce(Result<T, KvError>) + Send + 'static,
    ) {
        let (command, keys) = req.as_ref().map_or((0, 0), |(c, r)| (*c, r.keys.len()));
        self.send_op(
            req,
            ops::interpret,
            |_, resp| resp,
            move |r: Result<KvResp, KvError>| cb(r.and_then(|resp| map(command, resp, keys))),
        )
    }

    /// An operation answered with a code and a raft index only
    /// ([`ops::interpret_index`]).
    fn exec_index<T: Send + 'static>(
        &self,
        req: Result<ops::KvRequest, KvError>,
        map: impl FnOnce(KvCode, i64) -> T + Send + 'static,
        cb: impl FnOnce(Result<T, KvError>) + Send + 'static,
    ) {
        self.send_op(req, ops::interpret_index, map, cb)
    }

    kv_op!(
        /// DTKV_GET: the node at `key` (the empty key is the root), `None` when absent.
        get, get_async, get_cb,
        (key: impl Into<Bytes>) -> Option<KvNode>,
        |g, key| ops::get(g, key), exec_get, |_, node| node
    );

    kv_op!(
        /// DTKV_BATCH_GET: one node per key, in order, `None` for a missing key.
        batch_get, batch_get_async, batch_get_cb,
        (keys: Vec<Bytes>) -> Vec<Option<KvNode>>,
        ops::batch_get, exec_batch, ops::batch_get_result
    );

    kv_op!(
        /// DTKV_LIST: the children of directory `key` (each with `key_in_dir` and
        /// node); NOT_FOUND / PARENT_NOT_DIR are errors.
        list, list_async, list_cb,
        (key: impl Into<Bytes>) -> Vec<KvResult>,
        |g, key| ops::list(g, key), exec, |_, r| ops::list_children(r)
    );

    kv_op!(
        /// DTKV_PUT: sets a value (non-empty, ≤ 1 MiB); returns the raft index of the
        /// write.
        put, put_async, put_cb,
        (key: impl Into<Bytes>, value: impl Into<Bytes>) -> i64,
        |g, k, v| ops::put(g, k, v), exec_index, |_, index| index
    );

    kv_op!(
        /// DTKV_REMOVE: removes a value or an empty directory (absent is fine);
        /// returns the raft index.
        remove, remove_async, remove_cb,
        (key: impl Into<Bytes>) -> i64,
        |g, k| ops::remove(g, k), exec_index, |_, index| index
    );

    kv_op!(
        /// DTKV_MKDIR: creates a directory (existing is fine); returns the raft index.
        mkdir, mkdir_async, mkdir_cb,
        (key: impl Into<Bytes>) -> i64,
        |g, k| ops::mkdir(g, k), exec_index, |_, index| index
    );

    kv_op!(
        /// DTKV_BATCH_PUT: sets several values in one raft entry. Each key is judged on
        /// its own, as a put would be: check the [`BatchResult`] (`all_succeeded`,
        /// `failures`), since a key under a missing directory, for one, is not written
        /// while the others are.
        batch_put, batch_put_async, batch_put_cb,
        (keys: Vec<Bytes>, values: Vec<Bytes>) -> BatchResult,
        ops::batch_put, exec_batch, ops::batch_write_result
    );

    kv_op!(
        /// DTKV_BATCH_REMOVE: removes several keys in one raft entry. Each key is judged
        /// on its own, as a remove would be (an absent key counts as done): check the
        /// [`BatchResult`].
        batch_remove, batch_remove_async, batch_remove_cb,
        (keys: Vec<Bytes>) -> BatchResult,
        ops::batch_remove, exec_batch, ops::batch_write_result
    );

    kv_op!(
        /// DTKV_CAS: sets `value` if the current value is `expect` (empty `expect`:
        /// the key must be absent; empty `value`: remove); true when it was done.
        compare_and_set, compare_and_set_async, compare_and_set_cb,
        (key: impl Into<Bytes>, expect: impl Into<Bytes>, value: impl Into<Bytes>) -> bool,
        |g, k, e, v| ops::compare_and_set(g, k, e, v), exec_index, |c, _| ops::cas_done(c)
    );

    kv_op!(
        /// DTKV_PUT_TEMP_NODE: a value owned by this client that expires after
        /// `ttl_millis` unless renewed ([`KvClient::update_ttl`]); returns the raft
        /// index.
        put_temp, put_temp_async, put_temp_cb,
        (key: impl Into<Bytes>, value: impl Into<Bytes>, ttl_millis: i64) -> i64,
        |g, k, v, t| ops::put_temp(g, k, v, t), exec_index, |_, index| index
    );

    kv_op!(
        /// DTKV_MAKE_TEMP_DIR: a directory owned by this client, removed with its
        /// content after `ttl_millis` unless renewed; returns the raft index.
        make_temp_dir, make_temp_dir_async, make_temp_dir_cb,
        (key: impl Into<Bytes>, ttl_millis: i64) -> i64,
        |g, k, t| ops::make_temp_dir(g, k, t), exec_index, |_, index| index
    );

    kv_op!(
        /// DTKV_UPDATE_TTL: restarts the TTL of this client's temporary node or
        /// directory; returns the raft index.
        update_ttl, update_ttl_async, update_ttl_cb,
        (key: impl Into<Bytes>, ttl_millis: i64) -> i64,
        |g, k, t| ops::update_ttl(g, k, t), exec_index, |_, index| index
    );
}
