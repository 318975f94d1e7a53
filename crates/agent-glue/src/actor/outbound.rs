//! Client input on the open connection: context operations as the policy routes them,
//! realtime signals, and audio (buffered in the gap while no connection is up).

use gemini_transport::wire::ClientMessage;
use resume_policy::{MessageKind, OpId, Route, RouteContext, Trigger};
use tracing::debug;

use super::Actor;
use crate::events::{ReconnectReason, SessionEvent};
use crate::wire_plan::wire_send;

impl Actor {
    /// Delivers a newly queued operation on the open connection, as the policy routes it.
    /// Without a connection it stays queued for the next plan.
    pub(super) async fn route(&mut self, op_id: OpId) {
        let Some(live_id) = self.live.as_ref().map(|l| l.id) else {
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
                let Some(message) = send.message else {
                    return;
                };
                let Some(live) = self.live.as_mut() else {
                    return;
                };
                if let Err(e) = live.sender.feed(&message).await {
                    debug!(error = %e, "send failed; the operation stays queued");
                    return;
                }
                if let Ok(at) = self.ledger.tracker.on_sent(send.kind) {
                    let _ = self.ledger.outbox.mark_sent(&step.ops, at);
                    self.ledger.sent_items(&send.items, at);
                }
            }
            Route::Defer { why } => self.emit(SessionEvent::Divergence {
                operations: vec![op_id],
                why,
            }),
            Route::Reconnect(Trigger::GoAway { time_left }) => {
                self.reconnect(
                    Trigger::GoAway { time_left },
                    ReconnectReason::GoAway { time_left },
                )
                .await;
            }
            Route::Reconnect(trigger) => self.request_restart(trigger).await,
            Route::Supersede => {
                let _ = self.ledger.outbox.supersede(&[op_id]);
            }
            Route::Report(why) => {
                let _ = self.ledger.outbox.report(&[op_id], why);
                self.emit(SessionEvent::Divergence {
                    operations: vec![op_id],
                    why,
                });
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// Realtime signals are not context operations: sent when a connection is up, dropped
    /// otherwise (the next connection starts without an open user activity).
    pub(super) async fn realtime(&mut self, message: ClientMessage, kind: MessageKind) {
        if let Some(live) = self.live.as_mut() {
            if live.sender.feed(&message).await.is_ok() {
                let _ = self.ledger.tracker.on_sent(kind);
            }
        }
    }

    /// Microphone audio, cut into frames of at most the configured chunk length; the frames
    /// are fed and flushed together by the run loop. Without a connection (or when a write
    /// fails) the rest goes to the gap buffer.
    pub(super) async fn audio(&mut self, pcm: Vec<u8>) {
        let rate = self.config.input_sample_rate;
        let chunk = self.config.audio_chunk_bytes();
        let mut sent = 0;
        if let Some(live) = self.live.as_mut() {
            for frame in pcm.chunks(chunk) {
                if live.sender.feed_audio(frame, rate).await.is_err() {
                    break;
                }
                let _ = self.ledger.tracker.on_sent(MessageKind::Audio);
                sent += frame.len();
            }
        }
        if sent < pcm.len() {
            let rest = if sent == 0 { pcm } else { pcm[sent..].to_vec() };
            self.gap_push(rest);
        }
    }

    fn gap_push(&mut self, pcm: Vec<u8>) {
        if let Some(dropped) = self.gap.push(pcm) {
            self.emit(SessionEvent::AudioDropped { duration: dropped });
        }
    }

    pub(super) async fn flush_gap(&mut self) {
        let chunks = self.gap.take();
        if chunks.is_empty() {
            return;
        }
        for chunk in chunks {
            self.audio(chunk).await;
        }
        self.flush().await;
    }
}
