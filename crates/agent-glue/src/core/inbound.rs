//! The server's messages: model content, tool calls and their cancellations, goAway, handle
//! updates.

use ctx_model::{FunctionCall as CallItem, Item, Message};
use gemini_transport::wire::{PartData, ServerMessage, ServerPayload, VoiceActivityType};
use resume_policy::{
    ClientMessageIndex, ConnectionId, HandleUpdate, Millis, OpId, ServerReaction, ToolCallStatus,
};
use tracing::debug;

use super::connect::Rotation;

/// How long, after the turn taken to answer the results of the pending calls (extended
/// thinking), a next turn that answers nothing shows that the first was a filler: the answer
/// the server deferred behind a filler starts as soon as the filler ends.
const SETTLE_MS: u64 = 2_000;
use super::{SessionCore, millis};
use crate::events::{MAX_TOOL_CALLS_PER_FRAME, SessionEvent, Usage};

impl SessionCore {
    /// A decoded server message on `connection` at `now` (`setupComplete` goes to
    /// [`SessionCore::handle_setup_complete`], which this forwards to).
    pub fn handle_message(
        &mut self,
        now: Millis,
        connection: ConnectionId,
        message: ServerMessage,
    ) {
        if self.closed.is_some() {
            return;
        }
        if let Some(ServerPayload::SetupComplete(done)) = message.payload {
            self.handle_setup_complete(now, connection);
            if let Some(id) = done.session_id {
                if self.link.open_id() == Some(connection) {
                    self.emit(SessionEvent::ServerSessionId(id));
                }
            }
            return;
        }
        if self.link.open_id() != Some(connection) {
            // A frame of a connection that is gone or not set up yet.
            return;
        }
        if let Some(usage) = &message.usage_metadata {
            self.emit(SessionEvent::Usage(Usage::from(usage)));
        }
        let Some(payload) = message.payload else {
            return;
        };
        self.on_payload(now, payload);
        // The model may be idle now: results held for that go.
        self.release_held(now);
    }

    fn on_payload(&mut self, now: Millis, payload: ServerPayload) {
        match payload {
            ServerPayload::ServerContent(content) => self.on_content(now, *content),
            ServerPayload::ToolCall(gemini_transport::wire::ToolCall { function_calls }) => {
                if function_calls.len() > MAX_TOOL_CALLS_PER_FRAME {
                    // Refused whole before anything is recorded: no reaction, no item, one
                    // event (the events of one frame stay bounded).
                    self.emit(SessionEvent::ToolCallsRefused {
                        count: function_calls.len(),
                        max: MAX_TOOL_CALLS_PER_FRAME,
                    });
                    return;
                }
                // The model waits if any of the calls blocks it; else it talks on.
                let blocking = function_calls.iter().any(|c| self.call_blocks(&c.name));
                let unsure = self.guessed || self.match_is_a_guess();
                let anchor = self.reaction(if blocking {
                    ServerReaction::ToolCall
                } else {
                    ServerReaction::NonBlockingToolCall
                });
                // Text before the call is the first part of the turn.
                self.close_model_turn(anchor);
                self.turn.placed_by_guess = unsure;
                let mut placed = Vec::new();
                let mut calls = Vec::with_capacity(function_calls.len());
                for call in function_calls {
                    if self.ledger.tracker.tool_calls().get(&call.id).is_some() {
                        // The same call announced again (a resumed session re-sending it):
                        // the application runs it once.
                        continue;
                    }
                    let observed = self.ledger.tracker.on_tool_call(&call.id, &call.name);
                    self.checked("recording a tool call", observed);
                    self.ledger.tracker.set_tool_blocking(&call.id, blocking);
                    let id = self.ledger.new_item_id("call");
                    let arguments = serde_json::Value::Object(call.args.clone());
                    let item =
                        CallItem::new(id, call.id.clone(), call.name.clone(), arguments.clone());
                    placed.push(item.id.clone());
                    self.place_server_item(Item::FunctionCall(item), anchor, None);
                    calls.push((call.id, call.name, arguments));
                }
                if unsure && !placed.is_empty() {
                    self.guessed = true;
                    self.emit(SessionEvent::Divergence {
                        operations: Vec::new(),
                        items: placed,
                        calls: Vec::new(),
                        why: resume_policy::DivergenceReason::TurnOrderUnknown,
                    });
                }
                // Only a blocking call holds the model (and a rotation) until it is answered.
                self.tools_owed |= blocking;
                for (call_id, name, arguments) in calls {
                    self.emit(SessionEvent::ToolCall {
                        call_id,
                        name,
                        arguments,
                    });
                }
            }
            ServerPayload::ToolCallCancellation(gemini_transport::wire::ToolCallCancellation {
                ids,
            }) => {
                self.turn.cancelled = true;
                for id in &ids {
                    self.ledger
                        .tracker
                        .set_tool_status(id, ToolCallStatus::Cancelled);
                }
                let cancelled: std::collections::HashSet<&str> =
                    ids.iter().map(String::as_str).collect();
                let owed: Vec<OpId> = self
                    .ledger
                    .outbox
                    .live()
                    .filter(|op| op.kind.call_id().is_some_and(|c| cancelled.contains(c)))
                    .map(|op| op.id)
                    .collect();
                // Not sent yet: never sent. Sent already: the server ignores it. Either way the
                // server does not hold the answer, so `L` does not either.
                for op in &owed {
                    if let Some(at) = self.ledger.outbox.get(*op).and_then(|o| o.state.sent_at()) {
                        self.ledger.tracker.ignore(at);
                    }
                }
                let superseded = self.ledger.outbox.supersede(&owed);
                self.checked("superseding results of cancelled calls", superseded);
                self.drop_cancelled_outputs(&ids);
                self.emit(SessionEvent::ToolCallCancelled { call_ids: ids });
            }
            ServerPayload::GoAway(gemini_transport::wire::GoAway { time_left }) => {
                let margin = millis(self.config.session.go_away_margin);
                let deadline = Millis(now.0 + millis(time_left).saturating_sub(margin));
                self.rotation = Some(Rotation {
                    time_left,
                    deadline,
                });
                self.maybe_rotate(now);
            }
            ServerPayload::SessionResumptionUpdate(
                gemini_transport::wire::SessionResumptionUpdate {
                    new_handle,
                    resumable,
                    last_consumed_client_message_index,
                },
            ) => {
                let max = self.config.session.max_handle_bytes;
                if let Some(size) = new_handle.as_ref().map(String::len).filter(|n| *n > max) {
                    // Never stored, never sent back in a `setup`: the session keeps the
                    // handle it had (everything after it is still owed).
                    self.emit(SessionEvent::HandleTooLarge { size, max });
                    return;
                }
                let update = HandleUpdate {
                    new_handle,
                    resumable,
                    last_consumed: last_consumed_client_message_index.map(ClientMessageIndex),
                };
                if resumable {
                    // The server is idle with nothing deferred: a turn taken to answer a
                    // message did, and no answer is still to come.
                    self.settling = None;
                    self.results_answer = None;
                    // `guessed` stays: with a server that reads late, the tracker may see
                    // nothing awaiting because a guess credited what the server has not
                    // processed yet (a handle then says nothing of those messages).
                }
                let previous = self.ledger.tracker.handle().cloned();
                match self.ledger.tracker.on_handle_update(&update, now) {
                    Ok(Some(record)) if self.uncertain(&record) => {
                        // Content sent on this connection after the last visible reaction
                        // may or may not be in this snapshot: resuming from it would
                        // duplicate or lose that content. Keep the previous handle (all that
                        // came after it is still owed) until a reaction proves more.
                        debug!("handle with uncertain coverage not adopted");
                        self.ledger.tracker.reinstate(previous);
                        self.maybe_rotate(now);
                    }
                    Ok(Some(record)) => {
                        self.ledger.on_handle(&record);
                        self.ledger.outbox.prune();
                        self.maybe_rotate(now);
                    }
                    Ok(None) => {}
                    Err(e) => debug!(error = %e, "handle update ignored"),
                }
            }
            ServerPayload::VoiceActivity(activity) => match activity.activity_type {
                VoiceActivityType::ActivityStart => self.emit(SessionEvent::VoiceActivityStart),
                VoiceActivityType::ActivityEnd => self.emit(SessionEvent::VoiceActivityEnd),
                _ => {}
            },
            _ => {}
        }
    }

    /// Whether a call of `name` blocks the model: its declaration's `behavior`, else the
    /// family's default (and on a family that ignores `behavior`, every call blocks).
    pub(super) fn call_blocks(&self, name: &str) -> bool {
        use gemini_transport::wire::Behavior;
        let declared = self
            .ledger
            .tools
            .1
            .iter()
            .find(|tool| tool.name == name)
            .and_then(|tool| match tool.behavior.as_ref() {
                Some(Behavior::Blocking) => Some(true),
                Some(Behavior::NonBlocking) => Some(false),
                _ => None,
            });
        self.caps.call_blocks(declared)
    }

    /// Feeds a reaction to the coverage tracker; returns the client message the reacting
    /// turn answers (where its output goes in `L`).
    fn reaction(&mut self, reaction: ServerReaction) -> ClientMessageIndex {
        self.ledger.tracker.on_reaction(reaction)
    }

    fn on_content(&mut self, now: Millis, mut content: gemini_transport::wire::ServerContent) {
        if let Some(turn) = &mut content.model_turn {
            self.turn.active = true;
            // The frame's text is one event, after its audio, however many parts carry it:
            // the events of one frame stay bounded.
            let mut text_parts: Option<String> = None;
            for part in &mut turn.parts {
                if part.thought {
                    continue;
                }
                match &mut part.data {
                    PartData::InlineData(blob)
                        if blob.mime_type.starts_with("audio/") && !self.turn.muted =>
                    {
                        let rate = sample_rate(&blob.mime_type).unwrap_or(24_000);
                        // Moved out of the decoded frame: the application gets the decoder's
                        // buffer itself.
                        self.emit(SessionEvent::Audio {
                            pcm: std::mem::take(&mut blob.data).into(),
                            sample_rate: rate,
                        });
                    }
                    PartData::Text(text) => {
                        self.turn.text.push_str(text);
                        if !self.turn.muted {
                            text_parts.get_or_insert_with(String::new).push_str(text);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(text) = text_parts {
                self.emit(SessionEvent::Text(text));
            }
        }
        if let Some(t) = &content.input_transcription {
            self.emit(SessionEvent::InputTranscript {
                text: t.text.clone(),
                finished: t.finished,
            });
            if t.finished {
                let ended = self.ledger.tracker.on_spoken_turn();
                if !t.text.trim().is_empty() {
                    // The server holds the spoken turn from the moment it transcribed it.
                    let id = self.ledger.new_item_id("user");
                    let item = Message::user(id.clone(), t.text.trim()).transcript();
                    self.place_server_item(Item::Message(item), ended.end, Some(ended.earliest));
                    if self.guessed {
                        // Where the turn ended is counted against reactions matched by a
                        // guess: the server may hold it before content `L` has before it.
                        self.emit(SessionEvent::Divergence {
                            operations: Vec::new(),
                            items: vec![id],
                            calls: Vec::new(),
                            why: resume_policy::DivergenceReason::TurnOrderUnknown,
                        });
                    }
                }
            }
        }
        if let Some(t) = content.interim_input_transcription.take() {
            self.emit(SessionEvent::InterimInputTranscript { text: t.text });
        }
        if let Some(grounding) = content.grounding_metadata.take() {
            if !self.turn.muted {
                self.emit(SessionEvent::Grounding(grounding));
            }
        }
        if let Some(t) = &content.output_transcription {
            self.turn.active = true;
            self.turn.transcript.push_str(&t.text);
            if !self.turn.muted {
                self.emit(SessionEvent::OutputTranscript {
                    text: t.text.clone(),
                    finished: t.finished,
                });
            }
        }
        if content.generation_complete {
            self.emit(SessionEvent::GenerationComplete);
        }
        if content.interrupted {
            self.turn.interrupted = true;
            self.turn.report_cut(&mut self.events);
        }
        if content.turn_complete {
            let in_progress = matches!(
                content.interaction_status,
                Some(gemini_transport::wire::InteractionStatus::InProgress)
            );
            let before = self.ledger.tracker.reacted_through();
            let continuing = self.ledger.tracker.in_tool_turn();
            let guessed = self.match_is_a_guess() || (continuing && self.turn.placed_by_guess);
            let (anchor, results) = self.turn_anchor(now, in_progress);
            let credited = self
                .ledger
                .tracker
                .reacted_through()
                .filter(|r| Some(*r) != before);
            let answered_nothing = !continuing && credited.is_none();
            // A turn placed while an earlier one was placed by a guess is placed against a
            // count that may run ahead of the server's: a guess too.
            let unsure = self.guessed
                || (answered_nothing && self.unconfirmed_content_after(anchor))
                || (guessed && (credited.is_some() || continuing) && results.is_none());
            let item = self.close_model_turn(anchor);
            if let (true, Some(item), false) =
                (unsure, &item, self.caps.turn_complete_ends_interaction)
            {
                self.guessed = true;
                self.emit(SessionEvent::Divergence {
                    operations: Vec::new(),
                    items: vec![item.clone()],
                    calls: Vec::new(),
                    why: resume_policy::DivergenceReason::TurnOrderUnknown,
                });
            }
            self.settle(now, answered_nothing, item, results);
            self.tools_owed = false;
            self.emit(SessionEvent::TurnComplete);
            if let Some(reason) = content.turn_complete_reason.clone() {
                self.emit(SessionEvent::TurnCompleteReason(reason));
            }
            // Only `IDLE` ends the interaction where the model says (`IN_PROGRESS`: it is
            // still working on the request, and a handle or a rotation now could cut it).
            self.interaction_busy = in_progress;
            if !self.interaction_busy {
                self.count_exact_again();
                self.emit(SessionEvent::Idle);
            }
            self.maybe_rotate(now);
        }
    }

    /// Where the turn that just completed goes in `L`, crediting what it answers: the
    /// tracker's order of reactions, where a turn completing ends the interaction.
    ///
    /// On extended thinking the model also speaks fillers no message asked for while a call
    /// is pending, and a filler cannot be told from an answer by when it comes (the server
    /// may read a message late). So: a turn that completes `IN_PROGRESS` answers a typed or
    /// spoken turn awaiting its answer, in order, if one does (the session sends typed turns
    /// only while the model is idle, and a spoken turn is announced by its transcript before
    /// its answer), and else credits nothing and goes after what is known processed; the
    /// results of the pending calls are credited only by a turn that completes `IDLE`, which
    /// proves them processed (the server closed every call), and it is taken to answer them
    /// (returned: where they were sent, and their first item).
    fn turn_anchor(
        &mut self,
        now: Millis,
        in_progress: bool,
    ) -> (
        ClientMessageIndex,
        Option<(ClientMessageIndex, ctx_model::ItemId)>,
    ) {
        let reaction = self.turn_reaction();
        if self.caps.turn_complete_ends_interaction || self.ledger.tracker.in_tool_turn() {
            return (self.reaction(reaction), None);
        }
        let open = self.link.open_id();
        // A spoken turn whose transcript came first is answered before an answer owed:
        // the user's speech ended while the model owed it.
        let spoken = self.ledger.tracker.spoken_first();
        if let Some((at, _)) = self.results_answer.take_if(|_| !spoken) {
            if Some(at.connection) == open {
                // The answer of results proven processed by the turn before.
                return (
                    self.ledger.tracker.on_unmatched_reaction().max(at.index),
                    None,
                );
            }
        }
        // The first message awaiting an answer is a typed or spoken turn (not results).
        let front = self.ledger.tracker.awaiting().next();
        let turn_first = front.is_some_and(|f| !self.result_messages.contains(&f));
        if in_progress {
            if turn_first {
                return (self.reaction(reaction), None);
            }
            return (self.ledger.tracker.on_unmatched_reaction(), None);
        }
        if !turn_first {
            if let Some((at, first)) = self.results_sent.take() {
                if Some(at.connection) == open {
                    if reaction == ServerReaction::InterruptedTurnComplete {
                        // Cut off by the user's voice: a filler or the answer, and an answer
                        // deferred behind a filler stays owed after the cut. The results are
                        // processed (the calls are closed); their answer may still come.
                        self.ledger.tracker.credit_through(at.index, false);
                        self.results_answer = Some((at, Millis(now.0.saturating_add(SETTLE_MS))));
                        self.guessed = true;
                        return (at.index, None);
                    }
                    let finished = reaction == ServerReaction::TurnComplete;
                    self.ledger.tracker.credit_through(at.index, finished);
                    return (at.index, Some((at.index, first)));
                }
            }
        }
        if self.ledger.tracker.awaiting().next().is_some() {
            let anchor = self.reaction(reaction);
            // `IDLE` also proves every result sent processed (the server closed the calls);
            // their own answer may still come, deferred behind this turn.
            if let Some((at, _)) = self.results_sent.take() {
                if Some(at.connection) == open {
                    self.ledger.tracker.credit_through(at.index, false);
                    self.results_answer = Some((at, Millis(now.0.saturating_add(SETTLE_MS))));
                }
            }
            return (anchor, None);
        }
        (self.ledger.tracker.on_unmatched_reaction(), None)
    }

    /// Whether content sent on the open connection after `anchor` is not yet known processed
    /// (a turn that answers nothing may have started before or after it reached the server).
    fn unconfirmed_content_after(&self, anchor: ClientMessageIndex) -> bool {
        let open = self.link.open_id();
        self.ledger.outbox.live().any(|op| {
            !op.kind.item_ids().is_empty()
                && op
                    .state
                    .sent_at()
                    .is_some_and(|at| Some(at.connection) == open && at.index > anchor)
        })
    }

    /// Extended thinking: whether matching the next reaction in order to the first message
    /// awaiting one is a guess. While the interaction is open (a turn completed
    /// `IN_PROGRESS`, a call has no final result, results await `IDLE`), the model's fillers
    /// cannot be told from answers, so a typed turn or results credited in order may not be
    /// what the turn answered; a spoken turn can (its transcript comes before its answer),
    /// and so can a turn the model is still in (a tool turn).
    fn match_is_a_guess(&self) -> bool {
        !self.caps.turn_complete_ends_interaction
            && !self.ledger.tracker.in_tool_turn()
            && (self.interaction_busy || self.calls_pending() || self.results_sent.is_some())
            && self.ledger.tracker.awaiting().next().is_some()
            && !self.ledger.tracker.spoken_first()
    }

    /// Extended thinking: once a turn completes `IDLE` with every message sent having had its
    /// reaction and no answer owed or being settled, the count of what the server processed
    /// is exact again, and turns are no longer placed by a guess.
    fn count_exact_again(&mut self) {
        if self.ledger.tracker.awaiting().next().is_none()
            && self.results_answer.is_none()
            && self.settling.is_none()
        {
            self.guessed = false;
        }
    }

    /// The reaction a `turnComplete` is, by how the turn ended.
    fn turn_reaction(&self) -> ServerReaction {
        if self.turn.cancelled {
            ServerReaction::CancelledTurnComplete
        } else if self.turn.interrupted {
            ServerReaction::InterruptedTurnComplete
        } else {
            ServerReaction::TurnComplete
        }
    }

    /// Extended thinking: settles the turn taken to answer the results. A filler the model
    /// had started before they were processed also completes `IDLE` once they are (the calls
    /// are closed by then), and their answer, deferred behind it, starts as soon as it ends,
    /// before any resumable handle: a next turn that answers nothing new
    /// (`answered_nothing`) shows that, and the first turn moves before the results, where
    /// the server holds it. A turn that answers something new, a resumable handle (the
    /// server idle with nothing deferred), a new connection or the deadline settle it as it
    /// is. `results`: this turn was taken to answer the results sent at that index (their
    /// first item); it settles next.
    fn settle(
        &mut self,
        now: Millis,
        answered_nothing: bool,
        item: Option<ctx_model::ItemId>,
        results: Option<(ClientMessageIndex, ctx_model::ItemId)>,
    ) {
        if let Some(settling) = self.settling.take() {
            if answered_nothing {
                debug!("a filler completed after the results arrived: moved before them");
                self.move_server_item_before(&settling.item, &settling.before, settling.anchor);
            }
        }
        if let (Some(item), Some((at, before))) = (item, results) {
            self.settling = Some(super::turn::Settling {
                item,
                before,
                anchor: ClientMessageIndex(at.0.saturating_sub(1)),
                deadline: Millis(now.0.saturating_add(SETTLE_MS)),
            });
        }
    }

    /// Whether client content sent on `record`'s connection lies beyond what the handle
    /// provably holds (items in the mirror, or operations sent and not covered), among the
    /// messages it can hold at all.
    fn uncertain(&self, record: &resume_policy::HandleRecord) -> bool {
        // While the interaction is in progress the model may add turns no client message
        // asked for: only `IDLE` is a safe point to trust a handle.
        if self.interaction_busy {
            return true;
        }
        // Where a spoken turn ended is a range of messages, even under exact coverage.
        if self.ledger.mirror.unsure_of_spoken_turns(record) {
            return true;
        }
        if record.coverage.exact {
            return false;
        }
        let bound = self.ledger.tracker.handle_bound();
        self.ledger.mirror.uncertain_under(record, bound)
            || self.ledger.outbox.live().any(|op| {
                op.state.sent_at().is_some_and(|at| {
                    at.connection == record.connection && !record.covers(at) && at.index <= bound
                })
            })
    }
}

/// The sample rate a model audio part's MIME type names (`audio/pcm;rate=24000`).
fn sample_rate(mime: &str) -> Option<u32> {
    // The service's own spelling, on every chunk of model audio: no split, trim or parse.
    if mime == "audio/pcm;rate=24000" {
        return Some(24_000);
    }
    mime.split(';')
        .find_map(|p| p.trim().strip_prefix("rate="))
        .and_then(|r| r.parse().ok())
}

#[cfg(test)]
mod sample_rate_tests {
    use super::sample_rate;

    #[test]
    fn the_rate_of_a_mime_type() {
        assert_eq!(sample_rate("audio/pcm;rate=24000"), Some(24_000));
        assert_eq!(sample_rate("audio/pcm; rate=16000"), Some(16_000));
        assert_eq!(sample_rate("audio/pcm;rate=48000;x=1"), Some(48_000));
        assert_eq!(sample_rate("audio/pcm"), None);
        assert_eq!(sample_rate("audio/pcm;rate=fast"), None);
    }
}
