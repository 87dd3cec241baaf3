//! Both sides of the handshake: the server checks the client's request (magics,
//! process uuid, the [`crate::HandshakeHook`]) and answers with its limits hint; the
//! client applies the hint from the response and marks the peer connected.

use dt_codec::ParseStatus;

use dt_common::DtTime;

use super::conn::ConnState;
use super::outbound::PendingCb;
use super::NioWorker;
use crate::codes::{CmdCodes, Commands};
use crate::handshake::HandshakeBody;
use crate::packet::{ReadPacket, WriteBody, WritePacket};
use crate::peer::PeerStatus;
use crate::processor::fill_response;
use crate::queue::ConnRef;

impl NioWorker {
    /// Client: sends the handshake request on a new connection (it takes seq 1); its
    /// response is matched like any other and handled by `on_handshake_resp`.
    pub(super) fn send_handshake(&mut self, slot: usize) {
        let Some(cl) = self.cfg.client() else {
            return;
        };
        let deadline = DtTime::from_nanos(self.ts.nano_time, cl.connect_timeout);
        let hs = WritePacket::request(
            Commands::CMD_HANDSHAKE,
            WriteBody::Encodable(Box::new(cl.handshake)),
        );
        self.write_request_to(
            slot,
            hs,
            deadline,
            PendingCb::Handshake,
            0,
            self.ts.nano_time,
        );
    }

    /// Server: checks a connection's first packet, a handshake request, and answers it
    /// with the limits hint.
    pub(super) fn on_handshake_req(&mut self, slot: usize, pkt: ReadPacket) -> Result<(), String> {
        let cfg = self.cfg.clone();
        let Some(srv) = cfg.server() else {
            return Err("handshake request on a client".into());
        };
        let hs = match self.hs_parser.parse_whole(&pkt.body) {
            Ok(ParseStatus::Finished) => self.hs_parser.callback().body,
            Ok(_) => return Err("handshake body rejected".into()),
            Err(e) => return Err(format!("bad handshake: {e}")),
        };
        let pi = match hs.process_info {
            Some(pi) if !pi.is_zero() => pi,
            Some(_) => return Err("handshake with zero process uuid".into()),
            None => return Err("handshake without process info".into()),
        };
        if let Some(auth) = &srv.auth {
            let remote = self.conns[slot].remote;
            if let Err(reason) = auth(&hs, remote) {
                return Err(format!("handshake refused: {reason}"));
            }
        }
        let c = &mut self.conns[slot];
        c.handshaken = true;
        c.process_info = Some(pi);
        let cref = ConnRef {
            worker: self.idx,
            slot,
            gen: c.gen,
        };
        srv.by_uuid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pi, cref);
        let body = HandshakeBody::new(None, Some(srv.hint));
        let mut r = WritePacket::response(WriteBody::Encodable(Box::new(body)));
        fill_response(&mut r, pkt.command, pkt.seq);
        self.write_packet(slot, &r);
        Ok(())
    }

    /// Client: applies the server's hint from the handshake response; the connection is
    /// ready and its peer connected.
    pub(super) fn on_handshake_resp(
        &mut self,
        slot: usize,
        pkt: &ReadPacket,
    ) -> Result<(), String> {
        if pkt.resp_code != 0 {
            return Err(format!(
                "handshake failed: {} {}",
                CmdCodes::name(pkt.resp_code),
                pkt.msg
            ));
        }
        let hs = match self.hs_parser.parse_whole(&pkt.body) {
            Ok(ParseStatus::Finished) => self.hs_parser.callback().body,
            Ok(_) => return Err("handshake response rejected".into()),
            Err(e) => return Err(format!("bad handshake response: {e}")),
        };
        let Some(hint) = hs.config else {
            return Err("handshake response without config".into());
        };
        let n = self.peers.len().max(1) as i64;
        let c = &mut self.conns[slot];
        if hint.max_packet_size > 0 {
            c.max_out_packet = c.max_out_packet.min(hint.max_packet_size as usize);
        }
        self.cfg.out_fc.apply_hint(
            (hint.max_out_pending as i64).saturating_mul(n),
            hint.max_out_pending_bytes.saturating_mul(n),
        );
        c.state = ConnState::Ready;
        if let Some(id) = c.peer {
            if let Some(ps) = self.peers.get_mut(&id) {
                ps.attempt = 0;
            }
            self.set_peer_status(id, PeerStatus::Connected);
        }
        Ok(())
    }
}
