//! (Re)connecting: the first connection, planning and executing a pending reconnect on a new
//! connection, dropping the old one, and the planned rotations (goAway, configuration
//! restarts) that wait for a turn boundary.

use std::time::Duration;

use gemini_transport::wire::ClientMessage;
use gemini_transport::{CloseClass as WireClass, Connection};
use resume_policy::{
    Backoff, ClientMessageIndex, ConnectMode, ConnectionId, DeliveryState, MessagePosition, OpId,
    OpKind, ResumeContext, ResumePlan, Strategy, Trigger,
};
use tokio::time::Instant;
use tracing::{Instrument, info_span};

use super::{Actor, Live, ModelTurn};
use crate::Error;
use crate::events::{ReconnectReason, ReconnectStrategy, Reconnected, SessionEvent};
use crate::wire_plan::wire_send;

/// A pending goAway rotation.
pub(super) struct Rotation {
    pub(super) time_left: Duration,
    pub(super) deadline: Instant,
}

/// A restart for a configuration change (instructions, tools, an edit of delivered items)
/// waiting for a turn boundary with a fresh handle, so that the new connection resumes from a
/// handle that holds everything (nothing replayed) and no tool call is pending across it.
pub(super) struct Restart {
    trigger: Trigger,
    /// Set once the model is idle: from then on, the longest wait for a fresh handle.
    pub(super) deadline: Option<Instant>,
}

/// How long an idle session waits for a fresh handle before a configuration restart goes
/// ahead with the handle it has (the policy then replays what that handle does not cover).
const RESTART_HANDLE_GRACE: Duration = Duration::from_secs(1);

/// A reconnect in progress.
pub(super) struct Pending {
    trigger: Trigger,
    /// When the old connection ended (the gap starts).
    started: Instant,
    /// When the next step may run.
    pub(super) at: Instant,
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

impl Actor {
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
    pub(super) async fn attempt(&mut self) -> Result<(), String> {
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
    pub(super) async fn reconnect(&mut self, trigger: Trigger, reason: ReconnectReason) {
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

    /// A forced rotation in the middle of a turn closes it locally as interrupted.
    pub(super) fn force_turn_boundary(&mut self) {
        if self.turn.active {
            self.turn = ModelTurn::default();
            self.emit(SessionEvent::Interrupted);
        }
    }

    /// Rotates now if a goAway (or a configuration restart) is pending, the model is idle and
    /// a fresh handle exists. A configuration restart waits at most
    /// [`RESTART_HANDLE_GRACE`] for the handle once the model is idle.
    pub(super) async fn maybe_rotate(&mut self) {
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
    pub(super) async fn request_restart(&mut self, trigger: Trigger) {
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

    fn owes_tool_response(&self) -> bool {
        self.ledger.outbox.live().any(|op| {
            matches!(op.kind, OpKind::ToolResponse { .. })
                && matches!(op.state, DeliveryState::Sent { .. })
        })
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

pub(super) fn policy_class(class: WireClass, code: u16) -> resume_policy::CloseClass {
    match class {
        WireClass::AuthOrQuota => resume_policy::CloseClass::Fatal,
        WireClass::NeedsDifferentRequest if code == 1008 => resume_policy::CloseClass::Unsupported,
        WireClass::NeedsDifferentRequest => resume_policy::CloseClass::InvalidPayload,
        _ => resume_policy::CloseClass::Transient,
    }
}
