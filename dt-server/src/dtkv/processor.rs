//! What the DtKV request processors decide for each request on the service port, before
//! any IO (`dtkv-server.md` §1, §5.1, §7.1, §8; `wire-protocol.md` §6.4–6.5): decode the
//! body, run the checks that come before the log, and say whether to answer at once,
//! to read under a lease, to submit a write, to sync watches or to report status.

use bytes::Bytes;
use dt_client::kv::{KvBody, KvCode, KvCommands, KvReq, WatchReq};
use dt_codec::{PbError, PbInt};
use dt_net::ProcessInfo;

use super::biz_type::BizType;
use super::response::KvResponse;
use super::tree::KvTree;
use super::validate::check_ttl;
use super::watch_manager::check_watch_req;

/// What to do with a DtKV request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvAction {
    /// Answer at once (a pre-check failed).
    Respond {
        /// The group the request named.
        group_id: i32,
        /// The answer.
        response: KvResponse,
    },
    /// A lease read (GET, BATCH_GET, LIST): when the lease is valid, answer with
    /// [`read`] on the latest state.
    Read {
        /// The command.
        command: i32,
        /// The request.
        req: KvReq,
    },
    /// A write: submit `req` (its owner set to the connection's UUID) to the group's log
    /// with `biz`, and answer with [`KvResponse::write`] once applied.
    Write {
        /// The entry's business type.
        biz: BizType,
        /// The entry's body.
        req: KvReq,
    },
    /// DTKV_SYNC_WATCH passed its checks: hand it to the group's watch manager (in the
    /// DtKV executor) and answer SUCCESS with an empty body.
    SyncWatch(WatchReq),
    /// DTKV_QUERY_STATUS of a group: answer with its Raft status and the connection's
    /// watch count (which refreshes the connection's watch liveness).
    Status {
        /// The group.
        group_id: i32,
    },
}

impl KvAction {
    /// The group the request is for (where to route it).
    pub fn group_id(&self) -> i32 {
        match self {
            KvAction::Respond { group_id, .. } | KvAction::Status { group_id } => *group_id,
            KvAction::Read { req, .. } | KvAction::Write { req, .. } => req.group_id,
            KvAction::SyncWatch(w) => w.group_id,
        }
    }
}

/// Decides what to do with a request of `command` (a client DtKV command) from the
/// connection whose handshake UUID is `owner`. A body that cannot be decoded is an
/// error: the connection must be closed. `None`: not a command a client may send.
pub fn plan(command: i32, body: &Bytes, owner: ProcessInfo) -> Option<Result<KvAction, PbError>> {
    if !KvCommands::is_client_command(command) {
        return None;
    }
    Some(plan0(command, body, owner))
}

fn plan0(command: i32, body: &Bytes, owner: ProcessInfo) -> Result<KvAction, PbError> {
    match command {
        KvCommands::DTKV_SYNC_WATCH => {
            let w = WatchReq::decode(body)?;
            Ok(match check_watch_req(&w) {
                KvCode::Success => KvAction::SyncWatch(w),
                code => KvAction::Respond {
                    group_id: w.group_id,
                    response: KvResponse::rejected(code, ""),
                },
            })
        }
        KvCommands::DTKV_QUERY_STATUS => {
            let mut p = dt_codec::PbParser::new(dt_codec::PbIntCallback::default());
            p.parse_whole(body)?;
            let PbInt(group_id) = PbInt(p.callback().value);
            Ok(KvAction::Status { group_id })
        }
        KvCommands::DTKV_GET | KvCommands::DTKV_BATCH_GET | KvCommands::DTKV_LIST => {
            Ok(KvAction::Read {
                command,
                req: KvReq::decode(body)?,
            })
        }
        _ => {
            let mut req = KvReq::decode(body)?;
            let biz = BizType::of_command(command).expect("a client write command");
            let pre = match biz {
                BizType::PutTempNode
                | BizType::MkTempDir
                | BizType::UpdateTtl
                | BizType::UpdateLockLease => check_ttl(req.ttl_millis, &req.value, false),
                BizType::TryLock => check_ttl(req.ttl_millis, &req.value, true),
                _ => Ok(()),
            };
            if let Err(msg) = pre {
                return Ok(KvAction::Respond {
                    group_id: req.group_id,
                    response: KvResponse::rejected(KvCode::InvalidTtl, msg),
                });
            }
            // The owner of every write is the connection's identity, whatever the
            // client put in the body.
            req.set_owner(owner);
            Ok(KvAction::Write { biz, req })
        }
    }
}

/// Answers a lease read on the latest state.
pub fn read(tree: &KvTree, command: i32, req: &KvReq) -> KvResponse {
    match command {
        KvCommands::DTKV_GET => KvResponse::get(tree.get(&req.key)),
        KvCommands::DTKV_LIST => KvResponse::multi_read(tree.list(&req.key)),
        _ => KvResponse::multi_read(tree.batch_get(&req.keys)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dt_codec::encode;

    const A: ProcessInfo = ProcessInfo { uuid1: 5, uuid2: 6 };

    fn body(r: &KvReq) -> Bytes {
        encode::to_bytes(r)
    }

    #[test]
    fn writes_get_the_connection_owner_whatever_the_body_says() {
        let mut r = KvReq::put(3, "k", "v");
        r.set_owner(ProcessInfo { uuid1: 9, uuid2: 9 });
        match plan(6, &body(&r), A).unwrap().unwrap() {
            KvAction::Write { biz, req } => {
                assert_eq!(biz, BizType::Put);
                assert_eq!(req.owner(), Some(A));
                assert_eq!(req.group_id, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ttl_pre_checks_answer_at_once_with_the_reason() {
        let r = KvReq::put(0, "k", "v");
        let a = plan(80, &body(&r), A).unwrap().unwrap();
        assert_eq!(
            a,
            KvAction::Respond {
                group_id: 0,
                response: KvResponse::rejected(KvCode::InvalidTtl, "ttl must be positive: 0"),
            }
        );
        let a = plan(83, &body(&r.clone().with_ttl(1)), A).unwrap().unwrap();
        assert!(matches!(a, KvAction::Respond { .. }));
        // A plain put with a TTL is not checked (the quirk of the reference).
        let a = plan(6, &body(&r.with_ttl(-5)), A).unwrap().unwrap();
        assert!(matches!(a, KvAction::Write { .. }));
    }

    #[test]
    fn reads_watches_status_and_unknown_commands() {
        let a = plan(5, &Bytes::new(), A).unwrap().unwrap();
        assert_eq!(
            a,
            KvAction::Read {
                command: 5,
                req: KvReq::default()
            }
        );
        let t = KvTree::new();
        let KvAction::Read { command, req } = a else {
            panic!()
        };
        assert_eq!(read(&t, command, &req).biz_code, KvCode::Success);
        let st = plan(79, &Bytes::from_static(&[0x0d, 1, 0, 0, 0]), A)
            .unwrap()
            .unwrap();
        assert_eq!(st, KvAction::Status { group_id: 1 });
        let w = plan(77, &Bytes::new(), A).unwrap().unwrap();
        assert_eq!(w.group_id(), 0);
        assert!(
            matches!(w, KvAction::Respond { response, .. } if response.biz_code == KvCode::ClientReqError)
        );
        assert!(plan(78, &Bytes::new(), A).is_none());
        assert!(plan(85, &Bytes::new(), A).is_none());
        assert!(plan(46, &Bytes::new(), A).is_none());
        // A malformed body closes the connection.
        assert!(plan(6, &Bytes::from_static(&[0x0b]), A).unwrap().is_err());
    }
}
