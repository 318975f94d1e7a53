//! The server's frames: model content, tool calls and their cancellations, goAway, handle
//! updates, and the end of the connection.

use ctx_model::{FunctionCall as CallItem, Item, Message, Role};
use gemini_transport::CloseClass as WireClass;
use gemini_transport::wire::{PartData, ServerMessage, ServerPayload};
use resume_policy::{
    ClientMessageIndex, HandleUpdate, OpId, ServerReaction, ToolCallStatus, Trigger,
};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::Actor;
use super::connect::{Rotation, policy_class};
use crate::events::{ReconnectReason, SessionEvent, Usage};

impl Actor {
    pub(super) async fn on_frame(&mut self, frame: Result<ServerMessage, gemini_transport::Error>) {
        let message = match frame {
            Ok(message) => message,
            Err(e) if !e.ends_connection() => {
                self.emit(SessionEvent::Warning(format!(
                    "ignored a server frame: {e}"
                )));
                return;
            }
            Err(e) => {
                let (code, reason, class) = match e.close_info() {
                    Some(info) => (info.code, info.reason.clone(), info.class),
                    None => (1006, e.to_string(), e.class()),
                };
                if class == WireClass::AuthOrQuota {
                    self.emit(SessionEvent::Closed {
                        error: Some(format!("connection closed ({code}): {reason}")),
                    });
                    self.closed = true;
                    return;
                }
                let trigger = match self.rotation.take() {
                    Some(rotation) => Trigger::GoAway {
                        time_left: rotation.time_left,
                    },
                    None => Trigger::AbnormalClose {
                        code,
                        class: policy_class(class, code),
                    },
                };
                self.reconnect(trigger, ReconnectReason::ConnectionLost { code, reason })
                    .await;
                return;
            }
        };
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
            ServerPayload::ServerContent(content) => self.on_content(*content).await,
            ServerPayload::ToolCall(gemini_transport::wire::ToolCall { function_calls }) => {
                self.close_model_turn();
                let mut calls = Vec::with_capacity(function_calls.len());
                for call in function_calls {
                    let _ = self.ledger.tracker.on_tool_call(&call.id, &call.name);
                    let id = self.ledger.new_item_id("call");
                    let arguments = serde_json::Value::Object(call.args.clone());
                    let item =
                        CallItem::new(id, call.id.clone(), call.name.clone(), arguments.clone());
                    if let Err(e) = self.ledger.server_item(Item::FunctionCall(item)) {
                        warn!(error = %e, "tool call not recorded");
                    }
                    calls.push((call.id, call.name, arguments));
                }
                self.ledger.tracker.on_reaction(ServerReaction::ToolCall);
                self.pending_tools_owed = true;
                self.publish_context();
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
                for id in &ids {
                    self.ledger
                        .tracker
                        .set_tool_status(id, ToolCallStatus::Cancelled);
                }
                let owed: Vec<OpId> = self
                    .ledger
                    .outbox
                    .live()
                    .filter(|op| {
                        op.kind
                            .call_id()
                            .is_some_and(|c| ids.iter().any(|i| i == c))
                    })
                    .map(|op| op.id)
                    .collect();
                let _ = self.ledger.outbox.supersede(&owed);
                self.emit(SessionEvent::ToolCallCancelled { call_ids: ids });
            }
            ServerPayload::GoAway(gemini_transport::wire::GoAway { time_left }) => {
                let deadline =
                    Instant::now() + time_left.saturating_sub(self.config.go_away_margin);
                self.rotation = Some(Rotation {
                    time_left,
                    deadline,
                });
                self.maybe_rotate().await;
            }
            ServerPayload::SessionResumptionUpdate(
                gemini_transport::wire::SessionResumptionUpdate {
                    new_handle,
                    resumable,
                    last_consumed_client_message_index,
                },
            ) => {
                let update = HandleUpdate {
                    new_handle,
                    resumable,
                    last_consumed: last_consumed_client_message_index.map(ClientMessageIndex),
                };
                let now = self.now();
                let previous = self.ledger.tracker.handle().cloned();
                match self.ledger.tracker.on_handle_update(&update, now) {
                    Ok(Some(record)) if self.uncertain(&record) => {
                        // Content sent on this connection after the last visible reaction
                        // may or may not be in this snapshot: resuming from it would
                        // duplicate or lose that content. Keep the previous handle (all that
                        // came after it is still owed) until a reaction proves more.
                        debug!("handle with uncertain coverage not adopted");
                        self.ledger.tracker.reinstate(previous);
                        self.maybe_rotate().await;
                    }
                    Ok(Some(record)) => {
                        self.ledger.on_handle(&record);
                        self.ledger.outbox.prune();
                        self.maybe_rotate().await;
                    }
                    Ok(None) => {}
                    Err(e) => debug!(error = %e, "handle update ignored"),
                }
            }
            _ => {}
        }
    }

    async fn on_content(&mut self, content: gemini_transport::wire::ServerContent) {
        if let Some(turn) = &content.model_turn {
            self.turn.active = true;
            for part in &turn.parts {
                if part.thought {
                    continue;
                }
                match &part.data {
                    PartData::InlineData(blob) if blob.mime_type.starts_with("audio/") => {
                        let rate = sample_rate(&blob.mime_type).unwrap_or(24_000);
                        self.emit(SessionEvent::Audio {
                            pcm: blob.data.clone(),
                            sample_rate: rate,
                        });
                    }
                    PartData::Text(text) => {
                        self.turn.text.push_str(text);
                        self.emit(SessionEvent::Text(text.clone()));
                    }
                    _ => {}
                }
            }
        }
        if let Some(t) = &content.input_transcription {
            self.turn.user_transcript.push_str(&t.text);
            self.emit(SessionEvent::InputTranscript {
                text: t.text.clone(),
                finished: t.finished,
            });
        }
        if let Some(t) = &content.output_transcription {
            self.turn.active = true;
            self.turn.transcript.push_str(&t.text);
            self.emit(SessionEvent::OutputTranscript {
                text: t.text.clone(),
                finished: t.finished,
            });
        }
        if content.generation_complete {
            self.emit(SessionEvent::GenerationComplete);
        }
        if content.interrupted {
            self.emit(SessionEvent::Interrupted);
        }
        if content.turn_complete {
            self.close_model_turn();
            self.ledger
                .tracker
                .on_reaction(ServerReaction::TurnComplete);
            self.pending_tools_owed = false;
            // The context first, so that an application reacting to the event sees the turn.
            self.publish_context();
            self.emit(SessionEvent::TurnComplete);
            self.maybe_rotate().await;
        }
    }

    /// Records the user's spoken turn and the model's turn (as received so far) in `L` and `S`.
    fn close_model_turn(&mut self) {
        let turn = std::mem::take(&mut self.turn);
        if !turn.user_transcript.trim().is_empty() {
            let id = self.ledger.new_item_id("user");
            let item = Message::user(id, turn.user_transcript.trim()).transcript();
            let _ = self.ledger.server_item(Item::Message(item));
        }
        let (text, spoken) = if turn.text.is_empty() {
            (turn.transcript, true)
        } else {
            (turn.text, false)
        };
        if !text.is_empty() {
            let id = self.ledger.new_item_id("model");
            let mut item = Message::new(id, Role::Model, vec![ctx_model::ContentPart::Text(text)]);
            if spoken {
                item = item.transcript();
            }
            let _ = self.ledger.server_item(Item::Message(item));
        }
    }

    /// Whether client content sent on `record`'s connection lies beyond what the handle
    /// provably holds (items in the mirror, or operations sent and not covered), among the
    /// messages it can hold at all.
    fn uncertain(&self, record: &resume_policy::HandleRecord) -> bool {
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
