//! Client input on the open connection: context operations as the policy routes them, and
//! realtime signals.

use gemini_transport::wire::ClientMessage;
use resume_policy::{MessageKind, Millis, OpId, Route, RouteContext, Trigger};

use super::SessionCore;
use crate::events::{ReconnectReason, SessionEvent};
use crate::wire_plan::wire_send;

impl SessionCore {
    /// Delivers a newly queued operation on the open connection, as the policy routes it.
    /// Without an open connection it stays queued for the next plan.
    pub(super) fn route(&mut self, now: Millis, op_id: OpId) {
        let Some(live_id) = self.link.open_id() else {
            return;
        };
        let Some(op) = self.ledger.outbox.get(op_id).cloned() else {
            return;
        };
        let route = {
            let ctx = RouteContext {
                connection: live_id,
                capabilities: &self.caps,
                tool_calls: self.ledger.tracker.tool_calls(),
            };
            self.policy.route(&ctx, &op)
        };
        match route {
            Route::Send(step) => {
                let send = wire_send(&step, &self.ledger);
                self.transmit(live_id, send.message);
                if let Ok(at) = self.ledger.tracker.on_sent(send.kind) {
                    let _ = self.ledger.outbox.mark_sent(&step.ops, at);
                    self.ledger.sent_items(&send.items, at);
                }
            }
            Route::Defer { why } => {
                self.deferred.insert(op_id);
                self.emit(divergence(&op, why));
            }
            Route::Reconnect(Trigger::GoAway { time_left }) => {
                self.reconnect(
                    now,
                    Trigger::GoAway { time_left },
                    ReconnectReason::GoAway { time_left },
                );
            }
            Route::Reconnect(trigger) => self.request_restart(now, trigger),
            Route::Supersede => {
                let _ = self.ledger.outbox.supersede(&[op_id]);
            }
            Route::Report(why) => {
                let _ = self.ledger.outbox.report(&[op_id], why);
                self.emit(divergence(&op, why));
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// Realtime signals are not context operations: sent when a connection is up, dropped
    /// otherwise (the next connection starts without an open user activity).
    pub(super) fn realtime(&mut self, message: ClientMessage, kind: MessageKind) {
        if let Some(id) = self.link.open_id() {
            self.transmit(id, message);
            let _ = self.ledger.tracker.on_sent(kind);
        }
    }
}

/// The event reporting that `op` cannot reach the model as asked, naming its items and call.
fn divergence(op: &resume_policy::Operation, why: resume_policy::DivergenceReason) -> SessionEvent {
    SessionEvent::Divergence {
        operations: vec![op.id],
        items: op.kind.item_ids().into_iter().cloned().collect(),
        calls: op.kind.call_id().map(str::to_owned).into_iter().collect(),
        why,
    }
}
