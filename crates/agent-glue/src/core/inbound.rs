//! The server's messages: model content, tool calls and their cancellations, goAway, handle
//! updates.

use ctx_model::{FunctionCall as CallItem, Item, Message};
use gemini_transport::wire::{PartData, ServerMessage, ServerPayload};
use resume_policy::{
    ClientMessageIndex, ConnectionId, HandleUpdate, Millis, OpId, ServerReaction, ToolCallStatus,
};
use tracing::debug;

use super::connect::Rotation;
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
        if matches!(message.payload, Some(ServerPayload::SetupComplete(_))) {
            self.handle_setup_complete(now, connection);
            return;
        }
        if self.link.open_id() != Some(connection) {
            // A frame of a connection that is gone or not set up yet.
            return;
        }
        if let Some(usage) = &message.usage_metadata {
            self.emit(SessionEvent::Usage(Usage {
                prompt_tokens: usage.prompt_token_count,
                response_tokens: usage.response_tokens(),
                total_tokens: usage.total_token_count,
            }));
        }
        let Some(payload) = message.payload else {
            return;
        };
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
                let anchor = self.reaction(ServerReaction::ToolCall);
                // Text before the call is the first part of the turn.
                self.close_model_turn(anchor);
                let mut calls = Vec::with_capacity(function_calls.len());
                for call in function_calls {
                    if self.ledger.tracker.tool_calls().get(&call.id).is_some() {
                        // The same call announced again (a resumed session re-sending it):
                        // the application runs it once.
                        continue;
                    }
                    let observed = self.ledger.tracker.on_tool_call(&call.id, &call.name);
                    self.checked("recording a tool call", observed);
                    let id = self.ledger.new_item_id("call");
                    let arguments = serde_json::Value::Object(call.args.clone());
                    let item =
                        CallItem::new(id, call.id.clone(), call.name.clone(), arguments.clone());
                    self.place_server_item(Item::FunctionCall(item), anchor, None);
                    calls.push((call.id, call.name, arguments));
                }
                self.tools_owed = true;
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
            _ => {}
        }
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
                    let item = Message::user(id, t.text.trim()).transcript();
                    self.place_server_item(Item::Message(item), ended.end, Some(ended.earliest));
                }
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
            let reaction = if self.turn.cancelled {
                ServerReaction::CancelledTurnComplete
            } else if self.turn.interrupted {
                ServerReaction::InterruptedTurnComplete
            } else {
                ServerReaction::TurnComplete
            };
            let anchor = self.reaction(reaction);
            self.close_model_turn(anchor);
            self.tools_owed = false;
            self.emit(SessionEvent::TurnComplete);
            self.maybe_rotate(now);
        }
    }

    /// Whether client content sent on `record`'s connection lies beyond what the handle
    /// provably holds (items in the mirror, or operations sent and not covered), among the
    /// messages it can hold at all.
    fn uncertain(&self, record: &resume_policy::HandleRecord) -> bool {
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

fn sample_rate(mime: &str) -> Option<u32> {
    mime.split(';')
        .find_map(|p| p.trim().strip_prefix("rate="))
        .and_then(|r| r.parse().ok())
}
