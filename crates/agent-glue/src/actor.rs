//! The connection actor: one task per session that owns the ledger and the connection,
//! executes the policy's plans and turns server frames into events.

use std::sync::Arc;
use std::time::Duration;

use ctx_model::{ChatContext, FunctionCall as CallItem, Item, Message, Role};
use gemini_transport::wire::{ClientMessage, PartData, ServerMessage, ServerPayload};
use gemini_transport::{CloseClass as WireClass, Connection, ConnectionSender};
use resume_policy::{
    Attempts, Backoff, ClientMessageIndex, ConnectMode, ConnectionId, DeliveryState, HandleUpdate,
    MessageKind, MessagePosition, Millis, ModelCapabilities, OpId, OpKind, ResumeContext,
    ResumePlan, ResumePolicy, Route, RouteContext, ServerReaction, Strategy, ToolCallStatus,
    Trigger,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span, warn};

use crate::Error;
use crate::config::SessionConfig;
use crate::events::{ReconnectReason, ReconnectStrategy, Reconnected, SessionEvent, Usage};
use crate::gap::AudioGap;
use crate::ledger::Ledger;
use crate::wire_plan::wire_send;

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

/// A pending goAway rotation.
struct Rotation {
    time_left: Duration,
    deadline: Instant,
}

/// A restart for a configuration change (instructions, tools, an edit of delivered items)
/// waiting for a turn boundary with a fresh handle, so that the new connection resumes from a
/// handle that holds everything (nothing replayed) and no tool call is pending across it.
struct Restart {
    trigger: Trigger,
    /// Set once the model is idle: from then on, the longest wait for a fresh handle.
    deadline: Option<Instant>,
}

/// How long an idle session waits for a fresh handle before a configuration restart goes
/// ahead with the handle it has (the policy then replays what that handle does not cover).
const RESTART_HANDLE_GRACE: Duration = Duration::from_secs(1);

/// A reconnect in progress.
struct Pending {
    trigger: Trigger,
    /// When the old connection ended (the gap starts).
    started: Instant,
    /// When the next step may run.
    at: Instant,
    /// The current plan's backoff has been waited.
    waited: bool,
    /// Connection attempts made.
    tries: u32,
}

impl Pending {
    fn new(trigger: Trigger, started: Instant) -> Self {
        Self {
            trigger,
            started,
            at: started,
            waited: false,
            tries: 0,
        }
    }
}

/// How a connection attempt failed.
enum OpenError {
    /// The dial or the handshake failed, or the connection dropped while the plan was sent.
    Lost {
        code: u16,
        class: resume_policy::CloseClass,
    },
    /// The server closed the resumed setup.
    Refused { code: u16 },
    /// Retrying cannot help.
    Fatal(String),
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
            ChatContext::new(),
            config.transparent && caps.transparent_resumption,
            config.instructions.clone(),
            config.tools.clone(),
        );
        // The initial context is history to seed: queue it as one append.
        let items: Vec<Item> = initial.items().to_vec();
        // A call without its output came from a process that is gone: nobody will answer it
        // (scenario S16; the policy answers or reports it).
        for call in initial.pending_calls() {
            ledger.tracker.on_inherited_call(&call.call_id, &call.name);
        }
        ledger.desired = initial;
        if !items.is_empty() {
            ledger.push_op(OpKind::Append {
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

    /// The first connection; `connect()` waits for this.
    pub(crate) async fn first_connect(&mut self) -> Result<(), Error> {
        self.pending = Some(Pending::new(Trigger::FirstConnect, Instant::now()));
        while let Some(pending) = &self.pending {
            tokio::time::sleep_until(pending.at).await;
            if let Err(message) = self.attempt().await {
                return Err(Error::GaveUp(message));
            }
        }
        Ok(())
    }

    /// One step of a pending (re)connect: plan, wait the plan's backoff (while commands keep
    /// flowing into the outbox), then open a connection and execute the plan. On success the
    /// pending reconnect is done; on failure the next step is scheduled. `Err` when the policy
    /// gives up or retrying cannot help.
    async fn attempt(&mut self) -> Result<(), String> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(());
        };
        let jitter = self.jitter();
        let now = self.now();
        let plan = {
            let ctx = ResumeContext::new(
                pending.trigger,
                &self.ledger.outbox,
                &self.ledger.desired,
                self.ledger.mirror.held(),
                &self.caps,
                self.ledger.tracker.tool_calls(),
            )
            .with_handle(self.ledger.tracker.handle())
            .with_attempt(self.attempts.attempt())
            .with_now(now)
            .with_jitter(jitter)
            .with_transparent(self.config.transparent, false);
            self.policy.plan(&ctx)
        };
        if let Strategy::GiveUp { reason } = &plan.strategy {
            // Nothing is dropped silently: what the policy gives up on is reported first.
            self.ledger.outbox.record_plan(&plan);
            for divergence in &plan.undeliverable {
                self.emit(SessionEvent::Divergence {
                    operations: divergence.ops.clone(),
                    why: divergence.why,
                });
            }
            return Err(format!("{reason:?}"));
        }
        if !pending.waited && !plan.backoff.is_zero() {
            // Wait first; the plan is made again afterwards, with what was queued meanwhile.
            pending.waited = true;
            pending.at = Instant::now() + plan.backoff;
            self.pending = Some(pending);
            return Ok(());
        }
        pending.tries += 1;
        let span = info_span!(
            "connection_attempt",
            attempt = self.attempts.attempt(),
            trigger = ?pending.trigger,
            handle_age_ms = self
                .ledger
                .tracker
                .handle()
                .map(|h| now.since(h.received_at).as_millis() as u64),
            resume = plan.is_resume(),
            seed = plan.seed.as_ref().map_or(0, |s| s.items.len()),
            steps = plan.steps.len(),
        );
        match self.open(&plan).instrument(span).await {
            Ok(()) => {
                self.attempts.on_connected(self.now());
                if pending.trigger != Trigger::FirstConnect {
                    let lost: Vec<OpId> = plan
                        .undeliverable
                        .iter()
                        .flat_map(|d| d.ops.iter().copied())
                        .collect();
                    self.emit(SessionEvent::Reconnected(Reconnected {
                        strategy: if plan.is_resume() {
                            ReconnectStrategy::Resumed
                        } else {
                            ReconnectStrategy::Fresh
                        },
                        state_restored: plan.undeliverable.is_empty(),
                        replayed: plan.delivered_ops().collect(),
                        uncertain: plan.uncertain.clone(),
                        lost,
                        gap: pending.started.elapsed(),
                        attempts: pending.tries,
                    }));
                }
                self.flush_gap().await;
                Ok(())
            }
            Err(OpenError::Fatal(message)) => Err(message),
            Err(OpenError::Refused { code }) => {
                self.ledger.tracker.discard_handle();
                // Recoverable, but the application should know (scenario S11).
                self.emit(SessionEvent::Warning(format!(
                    "the server refused to resume the session (close code {code}); \
                     the handle is dropped and the next connection starts fresh"
                )));
                self.retry(pending, Trigger::RefusedResume { code });
                Ok(())
            }
            Err(OpenError::Lost { code, class }) => {
                self.retry(pending, Trigger::AbnormalClose { code, class });
                Ok(())
            }
        }
    }

    /// Schedules the next attempt of `pending` for `trigger`, at once (the next plan's backoff
    /// applies).
    fn retry(&mut self, mut pending: Pending, trigger: Trigger) {
        self.attempts.on_failed();
        pending.trigger = trigger;
        pending.waited = false;
        pending.at = Instant::now();
        self.pending = Some(pending);
    }

    /// Opens one connection and executes `plan` on it.
    async fn open(&mut self, plan: &ResumePlan) -> Result<(), OpenError> {
        let mut conn = Connection::connect(&self.config.endpoint, &self.config.connect)
            .await
            .map_err(|e| lost_from(&e))?;
        let handle = match &plan.strategy {
            Strategy::Resume { handle } => Some(handle.expose().to_owned()),
            _ => None,
        };
        let setup = self.config.setup(
            self.ledger.instructions.1.as_deref(),
            &self.ledger.tools.1,
            handle.as_deref(),
            plan.transparent,
            plan.history_config,
        );
        if let Err(e) = conn.setup(&ClientMessage::setup(setup)).await {
            let code = e.close_info().map_or(1006, |info| info.code);
            return Err(match (handle.is_some(), e.class()) {
                (_, WireClass::AuthOrQuota) => OpenError::Fatal(e.to_string()),
                (true, WireClass::NeedsDifferentRequest | WireClass::Transient)
                    if e.close_info().is_some() =>
                {
                    OpenError::Refused { code }
                }
                (false, WireClass::NeedsDifferentRequest) => OpenError::Fatal(e.to_string()),
                _ => lost_from(&e),
            });
        }
        self.next_connection += 1;
        let id = ConnectionId(self.next_connection);
        let mode = if handle.is_some() {
            ConnectMode::Resumed
        } else {
            ConnectMode::Fresh
        };
        if self.ledger.tracker.on_connected(id, mode).is_err() {
            return Err(OpenError::Fatal("resume without a handle".to_owned()));
        }
        self.ledger.on_connected(id, mode);
        let setup_at = MessagePosition::new(id, ClientMessageIndex::SETUP);
        let (mut sender, mut receiver) = conn.split();
        // Superseded and undeliverable operations first: they never reach the wire.
        self.ledger.outbox.record_plan(plan);
        for divergence in &plan.undeliverable {
            self.emit(SessionEvent::Divergence {
                operations: divergence.ops.clone(),
                why: divergence.why,
            });
        }
        let result: Result<(), gemini_transport::Error> = async {
            if let Some(seed) = &plan.seed {
                let message = ClientMessage::client_content(
                    crate::convert::items_to_contents(&seed.items),
                    seed.turn_complete,
                );
                sender.feed(&message).await?;
                let kind = seed.message_kind(plan.history_config);
                if let Ok(at) = self.ledger.tracker.on_sent(kind) {
                    let _ = self.ledger.outbox.mark_sent(&seed.ops, at);
                    self.ledger.sent_items(&seed.items, at);
                }
            }
            for step in &plan.steps {
                let send = wire_send(step, &self.ledger);
                match send.message {
                    Some(message) => {
                        sender.feed(&message).await?;
                        if let Ok(at) = self.ledger.tracker.on_sent(send.kind) {
                            let _ = self.ledger.outbox.mark_sent(&step.ops, at);
                            self.ledger.sent_items(&send.items, at);
                        }
                    }
                    None => {
                        // Delivered by the setup itself.
                        let _ = self.ledger.outbox.mark_sent(&step.ops, setup_at);
                    }
                }
            }
            sender.flush().await
        }
        .await;
        let reader = {
            let tx = self.incoming_tx.clone();
            tokio::spawn(async move {
                loop {
                    let frame = receiver.recv().await;
                    let ends = frame.as_ref().err().is_some_and(|e| e.ends_connection());
                    if tx.send((id, frame)).is_err() || ends {
                        break;
                    }
                }
            })
        };
        self.live = Some(Live { id, sender, reader });
        self.turn = ModelTurn::default();
        if let Err(e) = result {
            self.drop_connection().await;
            return Err(lost_from(&e));
        }
        self.publish_context();
        Ok(())
    }

    /// Forgets the open connection (closing it if it is still up) and rolls the mirror back.
    async fn drop_connection(&mut self) {
        if let Some(mut live) = self.live.take() {
            // Never two sockets: the old one is closed (the server's close answered, or the
            // close timeout passed) before a new one is dialed.
            let wait = self.config.connect.close_timeout;
            let _ = tokio::time::timeout(wait, live.sender.close(1000, "rotating")).await;
            if tokio::time::timeout(wait, &mut live.reader).await.is_err() {
                live.reader.abort();
            }
        }
        // Frames of the old connection still queued are stale now.
        while self.incoming_rx.try_recv().is_ok() {}
        // The mirror's held part is what a resumed session will hold; nothing to roll back.
        self.ledger.tracker.on_disconnected();
        if self.turn.active {
            // The turn was cut off with the connection.
            self.emit(SessionEvent::Interrupted);
        }
        self.turn = ModelTurn::default();
    }

    /// Replaces the connection for `trigger`: emits `Reconnecting`, closes the old socket and
    /// schedules the first attempt (made by the run loop, which keeps taking commands).
    async fn reconnect(&mut self, trigger: Trigger, reason: ReconnectReason) {
        if self.pending.is_some() {
            return;
        }
        self.emit(SessionEvent::Reconnecting { reason });
        let started = Instant::now();
        self.drop_connection().await;
        if trigger.is_planned() {
            self.attempts.on_rotated();
        } else {
            self.attempts.on_lost(self.now(), &Backoff::default());
        }
        self.rotation = None;
        // The plan carries every queued configuration change in its setup.
        self.restart = None;
        self.pending = Some(Pending::new(trigger, started));
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
                let op = self.ledger.push_op(OpKind::Append {
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
                let op = self.ledger.push_op(OpKind::InstructionChange { version });
                self.route(op).await;
            }
            Command::UpdateTools(tools) => {
                let version = resume_policy::ConfigVersion(self.ledger.tools.0.0 + 1);
                self.ledger.tools = (version, tools);
                let op = self.ledger.push_op(OpKind::ToolSetChange { version });
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
                let op = self.ledger.push_op(OpKind::GenerateReply { instructions });
                self.route(op).await;
            }
        }
    }

    async fn tool_result(
        &mut self,
        call_id: String,
        output: serde_json::Value,
        is_error: bool,
    ) -> Result<(), Error> {
        let Some(call) = self
            .ledger
            .desired
            .iter()
            .find_map(|item| item.as_function_call().filter(|c| c.call_id == call_id))
            .cloned()
        else {
            return Err(Error::InvalidArgument(format!(
                "no tool call with id {call_id:?}"
            )));
        };
        let answered = self.ledger.desired.iter().any(|item| {
            item.as_function_output()
                .is_some_and(|o| o.call_id == call_id)
        });
        if answered {
            return Err(Error::InvalidArgument(format!(
                "tool call {call_id:?} was already answered"
            )));
        }
        if self.ledger.tracker.tool_calls().is_cancelled(&call_id) {
            // The server withdrew the call: its result reaches no connection, and `L` does
            // not claim an answer the model never got (scenario S15).
            debug!(call_id, "result of a cancelled tool call dropped");
            return Ok(());
        }
        let id = self.ledger.new_item_id("output");
        let item = if is_error {
            ctx_model::FunctionOutput::error(id, call_id.clone(), call.name.clone(), output)
        } else {
            ctx_model::FunctionOutput::new(id, call_id.clone(), call.name.clone(), output)
        };
        self.ledger
            .desired
            .push(Item::FunctionOutput(item.clone()))?;
        self.ledger
            .tracker
            .set_tool_status(&call_id, ToolCallStatus::Answered);
        let op = self.ledger.push_op(OpKind::ToolResponse { output: item });
        self.publish_context();
        self.route(op).await;
        Ok(())
    }

    async fn update_context(&mut self, context: ChatContext) -> Result<(), Error> {
        let diff = ctx_model::diff(&self.ledger.desired, &context);
        if diff.is_empty() {
            return Ok(());
        }
        let appended: Vec<Item> = diff.appended().to_vec();
        let rewrite = diff.classify() == ctx_model::DiffKind::Rewrite;
        self.ledger.desired = context;
        self.publish_context();
        let mut ops = Vec::new();
        if !appended.is_empty() {
            ops.push(self.ledger.push_op(OpKind::Append {
                items: appended,
                turn_complete: false,
            }));
        }
        if rewrite {
            // Edits of items the server holds: the policy decides at the next connection
            // (reseed or report); make that connection at the next turn boundary.
            if self.live.is_some() {
                self.request_restart(Trigger::ConfigChange {
                    instructions: false,
                    tools: false,
                })
                .await;
                return Ok(());
            }
        }
        for op in ops {
            self.route(op).await;
        }
        Ok(())
    }

    /// Delivers a newly queued operation on the open connection, as the policy routes it.
    /// Without a connection it stays queued for the next plan.
    async fn route(&mut self, op_id: OpId) {
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
    async fn realtime(&mut self, message: ClientMessage, kind: MessageKind) {
        if let Some(live) = self.live.as_mut() {
            if live.sender.feed(&message).await.is_ok() {
                let _ = self.ledger.tracker.on_sent(kind);
            }
        }
    }

    async fn audio(&mut self, pcm: Vec<u8>) {
        let rate = self.config.input_sample_rate;
        match self.live.as_mut() {
            Some(live) => {
                if live.sender.feed_audio(&pcm, rate).await.is_ok() {
                    let _ = self.ledger.tracker.on_sent(MessageKind::Audio);
                } else {
                    self.gap_push(pcm);
                }
            }
            None => self.gap_push(pcm),
        }
    }

    fn gap_push(&mut self, pcm: Vec<u8>) {
        if let Some(dropped) = self.gap.push(pcm) {
            self.emit(SessionEvent::AudioDropped { duration: dropped });
        }
    }

    async fn flush_gap(&mut self) {
        let chunks = self.gap.take();
        if chunks.is_empty() {
            return;
        }
        for chunk in chunks {
            self.audio(chunk).await;
        }
        self.flush().await;
    }

    async fn on_frame(&mut self, frame: Result<ServerMessage, gemini_transport::Error>) {
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

    /// A forced rotation in the middle of a turn closes it locally as interrupted.
    fn force_turn_boundary(&mut self) {
        if self.turn.active {
            self.turn = ModelTurn::default();
            self.emit(SessionEvent::Interrupted);
        }
    }

    /// Rotates now if a goAway (or a configuration restart) is pending, the model is idle and
    /// a fresh handle exists. A configuration restart waits at most
    /// [`RESTART_HANDLE_GRACE`] for the handle once the model is idle.
    async fn maybe_rotate(&mut self) {
        if self.rotation.is_none() && self.restart.is_none() {
            return;
        }
        let idle = !self.turn.active && !self.pending_tools_owed && !self.owes_tool_response();
        let fresh = self.ledger.tracker.handle().is_some_and(|h| !h.is_stale());
        if let Some(rotation) = &self.rotation {
            if idle && fresh {
                let time_left = rotation.time_left;
                self.reconnect(
                    Trigger::GoAway { time_left },
                    ReconnectReason::GoAway { time_left },
                )
                .await;
                return;
            }
        }
        let Some(restart) = self.restart.as_mut() else {
            return;
        };
        if !idle {
            restart.deadline = None;
            return;
        }
        let now = Instant::now();
        let deadline = *restart.deadline.get_or_insert(now + RESTART_HANDLE_GRACE);
        if fresh || now >= deadline {
            let trigger = restart.trigger;
            self.reconnect(trigger, ReconnectReason::ConfigChange).await;
        }
    }

    /// Queues a configuration restart (merged with one already waiting) and makes it now if
    /// the session is at a turn boundary with a fresh handle.
    async fn request_restart(&mut self, trigger: Trigger) {
        let trigger = match (self.restart.as_ref().map(|r| r.trigger), trigger) {
            (
                Some(Trigger::ConfigChange {
                    instructions: a,
                    tools: b,
                }),
                Trigger::ConfigChange {
                    instructions: c,
                    tools: d,
                },
            ) => Trigger::ConfigChange {
                instructions: a || c,
                tools: b || d,
            },
            (_, trigger) => trigger,
        };
        let deadline = self.restart.as_ref().and_then(|r| r.deadline);
        self.restart = Some(Restart { trigger, deadline });
        self.maybe_rotate().await;
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

    fn owes_tool_response(&self) -> bool {
        self.ledger.outbox.live().any(|op| {
            matches!(op.kind, OpKind::ToolResponse { .. })
                && matches!(op.state, DeliveryState::Sent { .. })
        })
    }
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn lost_from(e: &gemini_transport::Error) -> OpenError {
    let code = e.close_info().map_or(1006, |info| info.code);
    match e.class() {
        WireClass::AuthOrQuota => OpenError::Fatal(e.to_string()),
        class => OpenError::Lost {
            code,
            class: policy_class(class, code),
        },
    }
}

fn policy_class(class: WireClass, code: u16) -> resume_policy::CloseClass {
    match class {
        WireClass::AuthOrQuota => resume_policy::CloseClass::Fatal,
        WireClass::NeedsDifferentRequest if code == 1008 => resume_policy::CloseClass::Unsupported,
        WireClass::NeedsDifferentRequest => resume_policy::CloseClass::InvalidPayload,
        _ => resume_policy::CloseClass::Transient,
    }
}

fn sample_rate(mime: &str) -> Option<u32> {
    mime.split(';')
        .find_map(|p| p.trim().strip_prefix("rate="))
        .and_then(|r| r.parse().ok())
}
