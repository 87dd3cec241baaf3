//! Incoming packets: a request goes to the processor of its command (after the
//! server's first-packet rule), a response to the request it answers.

use std::sync::atomic::Ordering;

use dt_common::{DtTime, PerfType};

use super::outbound::{run_cb, PendingCb};
use super::NioWorker;
use crate::codes::{CmdCodes, Commands, PacketType};
use crate::error::NetError;
use crate::packet::{ReadPacket, WritePacket};
use crate::processor::{fill_response, panic_response, Handled, ReqContext};
use crate::queue::ConnRef;

impl NioWorker {
    pub(super) fn on_packet(&mut self, slot: usize, pkt: ReadPacket) -> Result<(), String> {
        if pkt.body.len() > self.cfg.max_body_size {
            return Err(format!(
                "body of {} bytes exceeds max body size {}",
                pkt.body.len(),
                self.cfg.max_body_size
            ));
        }
        if pkt.packet_type == PacketType::Response.code() {
            self.on_response(slot, pkt);
            return Ok(());
        }
        let one_way = pkt.packet_type == PacketType::OneWay.code();
        let c = &mut self.conns[slot];
        let is_server = self.cfg.server().is_some();
        if is_server && !c.handshaken {
            if pkt.command != Commands::CMD_HANDSHAKE || one_way {
                return Err(format!(
                    "first packet is not a handshake request (type {}, command {})",
                    pkt.packet_type, pkt.command
                ));
            }
            return self.on_handshake_req(slot, pkt);
        }
        if is_server && pkt.command == Commands::CMD_HANDSHAKE {
            // A second handshake is ignored without an answer, as in the reference.
            return Ok(());
        }
        if pkt.timeout_nanos <= 0 {
            return Ok(());
        }
        let deadline = DtTime::from_wire_nanos(self.ts.nano_time, pkt.timeout_nanos);
        if self.cfg.stopping.load(Ordering::Acquire) {
            if !one_way {
                let mut r = WritePacket::error(CmdCodes::STOPPING, "");
                fill_response(&mut r, pkt.command, pkt.seq);
                self.write_packet(slot, &r);
            }
            return Ok(());
        }
        let Some(p) = self.cfg.processors.get(pkt.command).cloned() else {
            if !one_way {
                let mut r = WritePacket::error(
                    CmdCodes::COMMAND_NOT_SUPPORT,
                    format!("command {} not support", pkt.command),
                );
                fill_response(&mut r, pkt.command, pkt.seq);
                self.write_packet(slot, &r);
            }
            return Ok(());
        };
        let c = &self.conns[slot];
        let (command, seq) = (pkt.command, pkt.seq);
        // The connection's cap on unanswered requests.
        let credit = match &c.in_flight {
            None => None,
            Some(f) => match f.try_take() {
                Some(credit) => Some(credit),
                None => {
                    if !one_way {
                        let mut r = WritePacket::error(
                            CmdCodes::FLOW_CONTROL,
                            format!("max incoming requests per connection: {}", f.max()),
                        );
                        fill_response(&mut r, command, seq);
                        self.write_packet(slot, &r);
                    }
                    return Ok(());
                }
            },
        };
        let ctx = ReqContext {
            conn: ConnRef {
                worker: self.idx,
                slot,
                gen: c.gen,
            },
            handle: self.handle.clone(),
            seq,
            command,
            one_way,
            deadline,
            process_info: c.process_info,
            local_port: c.local_port,
            remote: c.remote,
            permit: None,
        };
        let in_fc = &self.cfg.in_fc;
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.handle(pkt, ctx, in_fc, credit)
        }))
        .unwrap_or_else(|e| Handled::Respond(panic_response(e.as_ref())));
        match handled {
            Handled::Respond(mut r) => {
                if !one_way {
                    fill_response(&mut r, command, seq);
                    self.write_packet(slot, &r);
                }
                Ok(())
            }
            Handled::Nothing => Ok(()),
            Handled::Close(reason) => Err(reason),
        }
    }

    pub(super) fn on_response(&mut self, slot: usize, pkt: ReadPacket) {
        let c = &mut self.conns[slot];
        let Some(p) = c.pending.remove(pkt.seq) else {
            return; // unknown seq (timed out, or not ours): discard
        };
        match p.cb {
            PendingCb::Handshake => {
                if let Err(reason) = self.on_handshake_resp(slot, &pkt) {
                    self.close(slot, &reason);
                }
            }
            PendingCb::User(cb) => {
                self.cfg.out_fc.release(p.permit_bytes);
                if self.cfg.perf.accept(PerfType::RpcLatency) {
                    self.cfg.perf.fire_time(
                        PerfType::RpcLatency,
                        (self.ts.nano_time - p.start_nanos).max(0) as u64,
                        1,
                        pkt.body.len() as u64,
                    );
                }
                let r = if pkt.command != p.command {
                    Err(NetError::Decode(format!(
                        "response command {} does not match request command {}",
                        pkt.command, p.command
                    )))
                } else if pkt.resp_code != CmdCodes::SUCCESS && !cb.is_raw() {
                    Err(NetError::Remote {
                        code: pkt.resp_code,
                        msg: pkt.msg,
                    })
                } else {
                    Ok(pkt)
                };
                run_cb(cb, r);
            }
        }
    }
}
