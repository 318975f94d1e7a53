//! The connection actor: one task per session that owns the ledger and the connection,
//! executes the policy's plans and turns server frames into events.
//!
//! This module holds the actor, its commands and the run loop; the submodules hold the
//! (re)connects ([`connect`]), the server's frames ([`inbound`]), the delivery of client input
//! on the open connection ([`outbound`]) and the application's edits of the context
//! ([`edits`]).

mod connect;
mod edits;
mod inbound;
mod outbound;

use std::sync::Arc;

use ctx_model::{ChatContext, Item, Message};
use gemini_transport::ConnectionSender;
use gemini_transport::wire::{ClientMessage, ServerMessage};
use resume_policy::{
    Attempts, ConnectionId, MessageKind, Millis, ModelCapabilities, OpKind, ResumePolicy, Trigger,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

use self::connect::{Pending, Restart, Rotation};
use crate::Error;
use crate::config::SessionConfig;
use crate::events::{ReconnectReason, SessionEvent};
use crate::gap::AudioGap;
use crate::ledger::Ledger;

/// What the application asks of the actor.
pub(crate) enum Command {
    Text(String),
    Audio(Vec<u8>),
    AudioStreamEnd,
    ActivityStart,
    ActivityEnd,
    UpdateContext(ChatContext, oneshot::Sender<Result<(), Error>>),
    UpdateInstructions(String),
    UpdateTools(Vec<gemini_transport::wire::FunctionDeclaration>),
    ToolResult {
        call_id: String,
        output: serde_json::Value,
        is_error: bool,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    GenerateReply(Option<String>),
    Interrupt,
    Close(oneshot::Sender<()>),
}

/// A frame (or the end) from the reader task of connection `.0`.
type Incoming = (ConnectionId, Result<ServerMessage, gemini_transport::Error>);

/// The open connection.
struct Live {
    id: ConnectionId,
    sender: ConnectionSender,
    reader: JoinHandle<()>,
}

/// The model turn being received.
#[derive(Default)]
struct ModelTurn {
    active: bool,
    text: String,
    transcript: String,
    user_transcript: String,
}

pub(crate) struct Actor {
    config: Arc<SessionConfig>,
    policy: Arc<dyn ResumePolicy>,
    caps: ModelCapabilities,
    ledger: Ledger,
    live: Option<Live>,
    incoming_tx: mpsc::UnboundedSender<Incoming>,
    incoming_rx: mpsc::UnboundedReceiver<Incoming>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<SessionEvent>,
    context_out: watch::Sender<ChatContext>,
    turn: ModelTurn,
    rotation: Option<Rotation>,
    restart: Option<Restart>,
    attempts: Attempts,
    next_connection: u64,
    epoch_start: Instant,
    jitter_state: u64,
    gap: AudioGap,
    pending: Option<Pending>,
    pending_tools_owed: bool,
    closed: bool,
}

impl Actor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Arc<SessionConfig>,
        policy: Arc<dyn ResumePolicy>,
        caps: ModelCapabilities,
        initial: ChatContext,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<SessionEvent>,
        context_out: watch::Sender<ChatContext>,
    ) -> Self {
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let mut ledger = Ledger::new(
            initial,
            config.transparent && caps.transparent_resumption,
            config.instructions.clone(),
            config.tools.clone(),
        );
        // The initial context is history to seed: queue it as one append.
        let items: Vec<Item> = ledger.desired.items().to_vec();
        // A call without its output came from a process that is gone: nobody will answer it
        // (scenario S16; the policy answers or reports it).
        for call in ledger.desired.pending_calls() {
            ledger.tracker.on_inherited_call(&call.call_id, &call.name);
        }
        if !items.is_empty() {
            ledger.outbox.push(OpKind::Append {
                items,
                turn_complete: false,
            });
        }
        let gap = AudioGap::new(config.audio_gap, config.input_sample_rate);
        Self {
            config,
            policy,
            caps,
            ledger,
            live: None,
            incoming_tx,
            incoming_rx,
            commands,
            events,
            context_out,
            turn: ModelTurn::default(),
            rotation: None,
            restart: None,
            attempts: Attempts::default(),
            next_connection: 0,
            epoch_start: Instant::now(),
            jitter_state: 0x9E37_79B9_7F4A_7C15,
            gap,
            pending: None,
            pending_tools_owed: false,
            closed: false,
        }
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch_start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn jitter(&mut self) -> u64 {
        // xorshift64*: deterministic per session, enough to spread reconnects.
        let mut x = self.jitter_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.jitter_state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn emit(&self, event: SessionEvent) {
        let _ = self.events.send(event);
    }

    fn publish_context(&self) {
        self.context_out.send_replace(self.ledger.desired.clone());
    }

    pub(crate) async fn run(mut self) {
        while !self.closed {
            let deadline = self.rotation.as_ref().map(|r| r.deadline);
            let restart_deadline = self.restart.as_ref().and_then(|r| r.deadline);
            tokio::select! {
                // Server frames already received go first, so that the session acts on new
                // input with the freshest view of the server (a handle that arrived before
                // a message was sent is then known to predate it).
                biased;
                Some((id, frame)) = self.incoming_rx.recv() => {
                    if self.live.as_ref().is_some_and(|live| live.id == id) {
                        self.on_frame(frame).await;
                    }
                }
                command = self.commands.recv() => match command {
                    None => { self.shutdown().await; }
                    Some(command) => {
                        self.on_command(command).await;
                        // Feed everything queued, flush once.
                        while !self.closed {
                            match self.commands.try_recv() {
                                Ok(command) => self.on_command(command).await,
                                Err(_) => break,
                            }
                        }
                        self.flush().await;
                    }
                },
                () = sleep_until(self.pending.as_ref().map(|p| p.at)) => {
                    if let Err(message) = self.attempt().await {
                        self.emit(SessionEvent::Closed {
                            error: Some(format!("gave up reconnecting: {message}")),
                        });
                        self.closed = true;
                    }
                }
                () = sleep_until(restart_deadline) => self.maybe_rotate().await,
                () = sleep_until(deadline) => {
                    if let Some(rotation) = self.rotation.take() {
                        self.force_turn_boundary();
                        self.reconnect(
                            Trigger::GoAway { time_left: rotation.time_left },
                            ReconnectReason::GoAway { time_left: rotation.time_left },
                        ).await;
                    }
                }
            }
        }
    }

    async fn shutdown(&mut self) {
        if let Some(mut live) = self.live.take() {
            let _ = tokio::time::timeout(
                self.config.connect.close_timeout,
                live.sender.close(1000, "session closed"),
            )
            .await;
            live.reader.abort();
        }
        self.emit(SessionEvent::Closed { error: None });
        self.closed = true;
    }

    async fn flush(&mut self) {
        if let Some(live) = self.live.as_mut() {
            if let Err(e) = live.sender.flush().await {
                debug!(error = %e, "flush failed; the reader reports the close");
            }
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Close(done) => {
                self.shutdown().await;
                let _ = done.send(());
            }
            Command::Audio(pcm) => self.audio(pcm).await,
            Command::AudioStreamEnd => {
                self.realtime(ClientMessage::audio_stream_end(), MessageKind::Silent)
                    .await;
            }
            Command::ActivityStart => {
                self.realtime(ClientMessage::activity_start(), MessageKind::Silent)
                    .await;
            }
            // The end of the user's activity starts the model's turn.
            Command::ActivityEnd => {
                self.realtime(ClientMessage::activity_end(), MessageKind::TurnStart)
                    .await;
            }
            Command::Interrupt => {
                if self.turn.active {
                    self.turn.active = false;
                    self.turn.text.clear();
                    self.turn.transcript.clear();
                    self.emit(SessionEvent::Interrupted);
                }
            }
            Command::Text(text) => {
                let id = self.ledger.new_item_id("user");
                let item = Item::from(Message::user(id, text));
                if let Err(e) = self.ledger.desired.push(item.clone()) {
                    self.emit(SessionEvent::Warning(e.to_string()));
                    return;
                }
                let op = self.ledger.outbox.push(OpKind::Append {
                    items: vec![item],
                    turn_complete: true,
                });
                self.publish_context();
                self.route(op).await;
            }
            Command::UpdateContext(context, reply) => {
                let result = self.update_context(context).await;
                let _ = reply.send(result);
            }
            Command::UpdateInstructions(text) => {
                let version = resume_policy::ConfigVersion(self.ledger.instructions.0.0 + 1);
                self.ledger.instructions = (version, Some(text));
                let op = self
                    .ledger
                    .outbox
                    .push(OpKind::InstructionChange { version });
                self.route(op).await;
            }
            Command::UpdateTools(tools) => {
                let version = resume_policy::ConfigVersion(self.ledger.tools.0.0 + 1);
                self.ledger.tools = (version, tools);
                let op = self.ledger.outbox.push(OpKind::ToolSetChange { version });
                self.route(op).await;
            }
            Command::ToolResult {
                call_id,
                output,
                is_error,
                reply,
            } => {
                let result = self.tool_result(call_id, output, is_error).await;
                let _ = reply.send(result);
            }
            Command::GenerateReply(instructions) => {
                let op = self
                    .ledger
                    .outbox
                    .push(OpKind::GenerateReply { instructions });
                self.route(op).await;
            }
        }
    }
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
