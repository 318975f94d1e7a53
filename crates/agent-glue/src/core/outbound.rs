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
    ///
    /// A result the model is to take up when idle waits until it is, and every operation
    /// after it waits behind it (`held`, in order: the server receives them in `L`'s order):
    /// see [`release_held`](Self::release_held).
    pub(super) fn route(&mut self, now: Millis, op_id: OpId) {
        if self.link.open_id().is_none() {
            return;
        }
        self.held.push_back(op_id);
        self.release_held(now);
    }

    /// Whether the model, as far as the client can tell, is idle: no model turn open (output
    /// or a tool call without its `turnComplete`), no typed or spoken turn or tool response
    /// awaiting the model's reaction. (A run of audio the server may still be answering is
    /// not waited for: a result then sent cuts that reply off and is answered by its own
    /// turn.)
    pub(super) fn model_idle(&self) -> bool {
        !self.turn.active
            && !self.ledger.tracker.in_tool_turn()
            && !self.ledger.tracker.awaits_answer()
    }

    /// Routes the held operations, oldest first, up to the first result that waits for the
    /// model to be idle while it is not: such a result makes the model busy until its answer,
    /// so they go one at a time, each taken up at once. Operations no longer owed
    /// (superseded, delivered by a plan) leave the hold.
    pub(super) fn release_held(&mut self, now: Millis) {
        while self.link.open_id().is_some() {
            let Some(&op_id) = self.held.front() else {
                return;
            };
            let (live, kind) = match self.ledger.outbox.get(op_id) {
                Some(op) => (
                    op.state.sent_at().is_none() && op.state.is_live(),
                    op.kind.clone(),
                ),
                None => (
                    false,
                    resume_policy::OpKind::GenerateReply { instructions: None },
                ),
            };
            if !live {
                self.held.pop_front();
                continue;
            }
            if !self.caps.turn_complete_ends_interaction
                && self.results_may_go()
                && self.held_results()
            {
                self.release_results(now);
                continue;
            }
            if self.must_wait(&kind) {
                return;
            }
            self.held.pop_front();
            self.route_now(now, op_id);
        }
    }

    /// Whether a result of a non-blocking call is held.
    fn held_results(&self) -> bool {
        self.held.iter().any(|id| self.is_live_result(*id))
    }

    /// Whether `id` is a live result of a non-blocking call.
    fn is_live_result(&self, id: OpId) -> bool {
        self.ledger
            .outbox
            .get(id)
            .is_some_and(|op| is_non_blocking_result(&op.kind) && op.state.is_live())
    }

    /// Whether the held operation `kind` waits. Where a turn completing ends the interaction,
    /// a result to be taken up when idle waits until the model is.
    ///
    /// On extended thinking, which takes no `scheduling` and whose fillers cannot be told
    /// from answers while a call is pending: a typed turn waits while the interaction is in
    /// progress (it is answered after it), and the results of non-blocking calls wait until
    /// every pending call has its final result and the model is quiet (see
    /// [`results_may_go`](Self::results_may_go)); they then go together, in one message,
    /// ahead of what waits behind them, and nothing follows them until their answer has
    /// settled (the server may take them up after a filler, and content sent meanwhile could
    /// land on either side of the answer).
    fn must_wait(&self, kind: &resume_policy::OpKind) -> bool {
        if self.caps.turn_complete_ends_interaction {
            return waits_for_idle(kind) && !self.model_idle();
        }
        if is_non_blocking_result(kind) {
            return !self.results_may_go();
        }
        // Nothing else goes while the interaction is in progress: a filler the model speaks
        // meanwhile could not be placed against it.
        self.interaction_open()
    }

    /// Extended thinking: whether the interaction may be in progress (the model speaking,
    /// a call pending or its results not yet answered, a turn being settled).
    fn interaction_open(&self) -> bool {
        self.interaction_busy
            || self.turn.active
            || self.ledger.tracker.in_tool_turn()
            || self.settling.is_some()
            || self.results_sent.is_some()
            || self.results_answer.is_some()
            || self.calls_pending()
    }

    /// A non-blocking call of the current server session has no final result yet.
    pub(super) fn calls_pending(&self) -> bool {
        self.ledger.tracker.tool_calls().iter().any(|call| {
            !call.blocking
                && call.in_session
                && call.status == resume_policy::ToolCallStatus::Running
        })
    }

    /// Extended thinking: the held results may go. Every pending call has its final result
    /// (the message closes them all, so only a turn completing `IDLE` answers it), no typed
    /// or spoken turn awaits its answer (it may make another call), and the model is quiet.
    fn results_may_go(&self) -> bool {
        !self.turn.active
            && !self.ledger.tracker.in_tool_turn()
            && self.settling.is_none()
            && !self.calls_pending()
            && !self.turn_awaits_answer()
    }

    /// Extended thinking: a typed or spoken turn (not results) awaits its answer.
    pub(super) fn turn_awaits_answer(&self) -> bool {
        self.ledger
            .tracker
            .awaiting()
            .any(|index| !self.result_messages.contains(&index))
    }

    /// Extended thinking: the held results go together, ahead of the operations held before
    /// them, whose items they now precede in `L` too (`L` lists items in the order the
    /// server receives them).
    fn release_results(&mut self, now: Millis) {
        let results: Vec<OpId> = self
            .held
            .iter()
            .copied()
            .filter(|id| self.is_live_result(*id))
            .collect();
        if results.is_empty() {
            return;
        }
        let first_held = self.held.iter().copied().find_map(|id| {
            let op = self.ledger.outbox.get(id)?;
            if results.contains(&id) || op.state.sent_at().is_some() || !op.state.is_live() {
                return None;
            }
            op.kind.item_ids().first().map(|item| (*item).clone())
        });
        if let Some(before) = first_held {
            let items: Vec<ctx_model::ItemId> = results
                .iter()
                .filter_map(|id| self.ledger.outbox.get(*id))
                .flat_map(|op| op.kind.item_ids().into_iter().cloned())
                .collect();
            self.move_unsent_items_before(&items, &before);
        }
        self.held.retain(|id| !results.contains(id));
        self.route_results(now, &results);
    }

    /// Extended thinking: routes `ops` (results of non-blocking calls) and sends those the
    /// policy sends: results for calls the session does not know (a resumed session that
    /// never saw them) first, as history asking for no turn of its own, then all the others
    /// in one `toolResponse`, and `L` shows them in that order. The server answers the
    /// `toolResponse` at once: history sent after it could land on either side of that
    /// answer, and a second `toolResponse` could be answered by a turn of its own.
    fn route_results(&mut self, now: Millis, ops: &[OpId]) {
        let Some(live_id) = self.link.open_id() else {
            return;
        };
        let mut responses = Vec::new();
        let mut sent = Vec::new();
        let mut history = Vec::new();
        for &op_id in ops {
            let Some(op) = self.ledger.outbox.get(op_id).cloned() else {
                continue;
            };
            match self.policy_route(live_id, &op) {
                Route::Send(step) => match step.message {
                    resume_policy::PlannedMessage::ToolResponse { responses: more } => {
                        responses.extend(more);
                        sent.extend(step.ops);
                    }
                    mut message => {
                        // Credited, like the others, only once the interaction is idle. They
                        // ask for no turn of their own (the model takes them up with the
                        // `toolResponse` or the next turn): a turn they started could not be
                        // told from the results' answer or a filler.
                        if let resume_policy::PlannedMessage::ClientContent {
                            turn_complete, ..
                        } = &mut message
                        {
                            *turn_complete = false;
                        }
                        history.push(resume_policy::PlannedSend::new(step.ops, message));
                    }
                },
                route => {
                    let report = match &route {
                        Route::Defer { why } | Route::Report(why) => Some(divergence(&op, *why)),
                        _ => None,
                    };
                    self.apply_route(now, op_id, route, report);
                }
            }
        }
        let first_response = sent
            .first()
            .and_then(|id| self.ledger.outbox.get(*id))
            .and_then(|op| op.kind.item_ids().first().map(|item| (*item).clone()));
        if let Some(before) = first_response {
            // Those of the history results that `L` has after the first result of the
            // `toolResponse` move before it.
            let desired = &self.ledger.desired;
            let place = |id: &ctx_model::ItemId| desired.iter().position(|i| i.id() == id);
            let bound = place(&before);
            let items: Vec<ctx_model::ItemId> = history
                .iter()
                .flat_map(|step| step.ops.iter())
                .filter_map(|id| self.ledger.outbox.get(*id))
                .flat_map(|op| op.kind.item_ids().into_iter().cloned())
                .filter(|id| place(id) > bound)
                .collect();
            self.move_unsent_items_before(&items, &before);
        }
        let first_history = history
            .first()
            .and_then(|step| step.ops.first())
            .and_then(|id| self.ledger.outbox.get(*id))
            .and_then(|op| op.kind.item_ids().first().map(|item| (*item).clone()));
        for step in history {
            if let Some(at) = self.send_step(live_id, step) {
                self.result_messages.insert(at.index);
            }
        }
        let response_sent = !responses.is_empty();
        self.send_results(live_id, &mut responses, &mut sent);
        // The release's first item is the first of the history: a filler settled before
        // the results moves before all of them.
        if let (true, Some(first), Some((_, item))) =
            (response_sent, first_history, self.results_sent.as_mut())
        {
            *item = first;
        }
    }

    /// Sends the gathered `responses` (of the operations `sent`) as one `toolResponse`.
    fn send_results(
        &mut self,
        live_id: resume_policy::ConnectionId,
        responses: &mut Vec<ctx_model::FunctionOutput>,
        sent: &mut Vec<OpId>,
    ) {
        if responses.is_empty() {
            return;
        }
        let step = resume_policy::PlannedSend::new(
            std::mem::take(sent),
            resume_policy::PlannedMessage::ToolResponse {
                responses: std::mem::take(responses),
            },
        );
        self.send_step(live_id, step);
    }

    fn policy_route(
        &self,
        live_id: resume_policy::ConnectionId,
        op: &resume_policy::Operation,
    ) -> Route {
        let ctx = RouteContext {
            connection: live_id,
            capabilities: &self.caps,
            tool_calls: self.ledger.tracker.tool_calls(),
        };
        self.policy.route(&ctx, op)
    }

    fn route_now(&mut self, now: Millis, op_id: OpId) {
        let Some(live_id) = self.link.open_id() else {
            return;
        };
        // The operation is borrowed, not copied: its items may be many (a context update).
        let Some(op) = self.ledger.outbox.get(op_id) else {
            return;
        };
        let route = self.policy_route(live_id, op);
        let report = match &route {
            Route::Defer { why } | Route::Report(why) => Some(divergence(op, *why)),
            _ => None,
        };
        self.apply_route(now, op_id, route, report);
    }

    /// Carries out `route` for the operation `op_id` (`report`: the divergence event a
    /// deferral or report emits).
    fn apply_route(
        &mut self,
        now: Millis,
        op_id: OpId,
        route: Route,
        report: Option<SessionEvent>,
    ) {
        let Some(live_id) = self.link.open_id() else {
            return;
        };
        match route {
            Route::Send(step) => {
                self.send_step(live_id, step);
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
    pub(super) fn record_sent(
        &mut self,
        kind: MessageKind,
        ops: &[OpId],
        items: Vec<Item>,
    ) -> Option<resume_policy::MessagePosition> {
        let counted = self.ledger.tracker.on_sent(kind);
        let at = self.checked("counting a client message", counted)?;
        let marked = self.ledger.outbox.mark_sent(ops, at);
        self.checked("marking operations sent", marked);
        let recorded = self.ledger.sent_items(items, at);
        self.checked("recording sent items in L", recorded);
        Some(at)
    }

    /// Writes `step` on the open connection `live_id` and records it.
    pub(super) fn send_step(
        &mut self,
        live_id: resume_policy::ConnectionId,
        step: resume_policy::PlannedSend,
    ) -> Option<resume_policy::MessagePosition> {
        // Extended thinking: results that close pending calls are credited by the turn that
        // completes `IDLE` next, which proves them processed.
        let results = match &step.message {
            resume_policy::PlannedMessage::ToolResponse { responses }
                if !self.caps.turn_complete_ends_interaction =>
            {
                responses
                    .iter()
                    .find(|o| o.delivery.non_blocking)
                    .map(|o| o.id.clone())
            }
            _ => None,
        };
        let (send, ops) = into_wire_send(
            step,
            &self.ledger,
            self.caps.response_scheduling,
            self.config.session.builtin_tools,
        );
        self.transmit(live_id, send.message);
        let at = self.record_sent(send.kind, &ops, send.items);
        if let (Some(at), Some(first)) = (at, results) {
            self.results_sent = Some((at, first));
            self.result_messages.insert(at.index);
        }
        at
    }
}

/// A result of a non-blocking call.
fn is_non_blocking_result(kind: &resume_policy::OpKind) -> bool {
    matches!(kind, resume_policy::OpKind::ToolResponse { output } if output.delivery.non_blocking)
}

/// A result of a non-blocking call the model is to take up when idle (`WHEN_IDLE`, or no
/// scheduling: the service's default).
fn waits_for_idle(kind: &resume_policy::OpKind) -> bool {
    match kind {
        resume_policy::OpKind::ToolResponse { output } => {
            output.delivery.non_blocking
                && matches!(
                    output.delivery.scheduling,
                    None | Some(ctx_model::Scheduling::WhenIdle)
                )
        }
        _ => false,
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
