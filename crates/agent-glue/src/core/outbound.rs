//! Client input on the open connection: context operations as the policy routes them, and
//! realtime signals.

use ctx_model::Item;
use gemini_transport::wire::ClientMessage;
use resume_policy::{MessageKind, Millis, OpId, Route, RouteContext, Trigger};

use super::SessionCore;
use crate::events::{ReconnectReason, SessionEvent};
use crate::wire_plan::into_wire_send;

impl SessionCore {
    /// Delivers a newly queued operation on the open connection, as the policy routes it.
    /// Without an open connection it stays queued for the next plan.
    pub(super) fn route(&mut self, now: Millis, op_id: OpId) {
        let Some(live_id) = self.link.open_id() else {
            return;
        };
        // The operation is borrowed, not copied: its items may be many (a context update).
        let Some(op) = self.ledger.outbox.get(op_id) else {
            return;
        };
        let route = {
            let ctx = RouteContext {
                connection: live_id,
                capabilities: &self.caps,
                tool_calls: self.ledger.tracker.tool_calls(),
            };
            self.policy.route(&ctx, op)
        };
        let report = match &route {
            Route::Defer { why } | Route::Report(why) => Some(divergence(op, *why)),
            _ => None,
        };
        match route {
            Route::Send(step) => {
                let (send, ops) = into_wire_send(step, &self.ledger);
                self.transmit(live_id, send.message);
                self.record_sent(send.kind, &ops, send.items);
            }
            Route::Defer { .. } => {
                self.deferred.insert(op_id);
                self.emit_report(report);
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
                let superseded = self.ledger.outbox.supersede(&[op_id]);
                self.checked("superseding a routed operation", superseded);
            }
            Route::Report(why) => {
                let reported = self.ledger.outbox.report(&[op_id], why);
                self.checked("reporting a routed operation", reported);
                self.emit_report(report);
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
            let counted = self.ledger.tracker.on_sent(kind);
            self.checked("counting a realtime signal", counted);
        }
    }

    /// A message of `kind` carrying `ops` and `items` was queued for the open connection: it
    /// is counted, its operations are marked sent at its position, and its items recorded in
    /// `L` and `S`.
    pub(super) fn record_sent(&mut self, kind: MessageKind, ops: &[OpId], items: Vec<Item>) {
        let counted = self.ledger.tracker.on_sent(kind);
        let Some(at) = self.checked("counting a client message", counted) else {
            return;
        };
        let marked = self.ledger.outbox.mark_sent(ops, at);
        self.checked("marking operations sent", marked);
        let recorded = self.ledger.sent_items(items, at);
        self.checked("recording sent items in L", recorded);
    }
}

impl SessionCore {
    fn emit_report(&mut self, report: Option<SessionEvent>) {
        if let Some(event) = report {
            self.emit(event);
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
