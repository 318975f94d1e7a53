//! (Re)connecting: planning and opening connections, executing a plan once `setup` is
//! complete, failed attempts, and the planned rotations (goAway, configuration restarts) that
//! wait for a turn boundary.

use std::time::Duration;

use gemini_transport::wire::ClientMessage;
use gemini_transport::{CloseClass as WireClass, CloseInfo, CloseInitiator};
use resume_policy::{
    ClientMessageIndex, ConnectMode, ConnectionId, DeliveryState, FatalCause, MessagePosition,
    Millis, OpId, PlanNote, ResumeContext, ResumePlan, Strategy, Trigger,
};
use tracing::info_span;

use super::end::fatal_cause;
use super::{Action, SessionCore, millis};
use crate::events::{ReconnectReason, ReconnectStrategy, Reconnected, SessionEvent};
use crate::session_error::{SessionError, TransportCause};

/// The session's connection.
#[derive(Debug)]
pub(super) enum Link {
    /// None (a reconnect may be pending).
    None,
    /// `setup` sent; the plan runs when `setupComplete` arrives.
    Opening {
        id: ConnectionId,
        plan: Box<ResumePlan>,
        /// The outbox's next operation id when the plan was made: later operations are routed
        /// after the plan.
        planned_before: OpId,
    },
    /// Set up, the plan sent.
    Open { id: ConnectionId },
}

impl Link {
    pub(super) fn id(&self) -> Option<ConnectionId> {
        match self {
            Self::None => None,
            Self::Opening { id, .. } | Self::Open { id } => Some(*id),
        }
    }

    pub(super) fn open_id(&self) -> Option<ConnectionId> {
        match self {
            Self::Open { id } => Some(*id),
            _ => None,
        }
    }
}

/// A pending goAway rotation.
#[derive(Debug)]
pub(super) struct Rotation {
    pub(super) time_left: Duration,
    pub(super) deadline: Millis,
}

/// The age limit of the open connection
/// ([`LiveSessionBuilder::connection_age`](crate::LiveSessionBuilder::connection_age)).
#[derive(Debug)]
pub(super) struct Ageing {
    /// When the connection's dial was ordered: its age counts from here.
    opened: Millis,
    /// From here on, rotate at the first idle point with a fresh handle.
    rotate_at: Millis,
    /// Here, rotate in any case.
    force_at: Millis,
    /// `rotate_at` has passed (then the timer waits for `force_at`).
    due: bool,
}

impl Ageing {
    /// The next time the core must look at the connection's age.
    pub(super) fn deadline(&self) -> Millis {
        if self.due {
            self.force_at
        } else {
            self.rotate_at
        }
    }

    /// Whether the connection is old enough to rotate at an idle point (noted at `now`).
    fn due(&mut self, now: Millis) -> bool {
        self.due |= now >= self.rotate_at;
        self.due
    }

    /// Whether the rotation is forced at `now`.
    pub(super) fn forced(&self, now: Millis) -> bool {
        now >= self.force_at
    }

    /// The connection's age at `now`.
    pub(super) fn age(&self, now: Millis) -> Duration {
        Duration::from_millis(now.since(self.opened).as_millis() as u64)
    }
}

/// A restart for a configuration change (instructions, tools, an edit of delivered items)
/// waiting for a turn boundary with a fresh handle, so that the new connection resumes from a
/// handle that holds everything (nothing replayed) and no tool call is pending across it.
#[derive(Debug)]
pub(super) struct Restart {
    trigger: Trigger,
    /// Set once the model is idle: from then on, the longest wait for a fresh handle.
    pub(super) deadline: Option<Millis>,
}

/// How long an idle session waits for a fresh handle before a configuration restart goes
/// ahead with the handle it has (the policy then replays what that handle does not cover).
const RESTART_HANDLE_GRACE: Duration = Duration::from_secs(1);

/// A reconnect in progress.
#[derive(Debug)]
pub(super) struct Pending {
    trigger: Trigger,
    /// When the old connection ended (the gap starts).
    started: Millis,
    /// When the next step may run.
    pub(super) at: Millis,
    /// The current plan's backoff has been waited.
    waited: bool,
    /// Connection attempts made.
    tries: u32,
    /// When the current attempt was opened.
    opened_at: Millis,
    /// The failure of the previous attempt of the first connect.
    first_failure: Option<SessionError>,
}

impl Pending {
    pub(super) fn new(trigger: Trigger, started: Millis) -> Self {
        Self {
            trigger,
            started,
            at: started,
            waited: false,
            tries: 0,
            opened_at: started,
            first_failure: None,
        }
    }

    /// Whether the first connect ends with `failure` (the attempt that just failed, at `now`)
    /// instead of trying again: the cause would repeat, it is the one the previous attempt
    /// failed with, or another attempt as long as this one would end after `budget`
    /// (counted from the first attempt). Otherwise `failure` is remembered for the next one.
    fn first_connect_ends(
        &mut self,
        now: Millis,
        failure: &SessionError,
        budget: Duration,
    ) -> bool {
        let repeated = self
            .first_failure
            .as_ref()
            .is_some_and(|previous| previous.same_cause(failure));
        let next_would_end = now
            .since(self.started)
            .saturating_add(now.since(self.opened_at));
        if failure.is_deterministic() || repeated || next_would_end > budget {
            return true;
        }
        self.first_failure = Some(failure.clone());
        false
    }
}

impl SessionCore {
    /// One step of a pending (re)connect: plan, wait the plan's backoff (while commands keep
    /// flowing into the outbox), then ask the shell to open a connection.
    pub(super) fn step_pending(&mut self, now: Millis) {
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        let plan = self.make_plan(now, pending.trigger);
        if let Strategy::GiveUp { reason } = plan.strategy {
            // Nothing is dropped silently: what the policy gives up on is reported first.
            let error = SessionError::GaveUp {
                reason,
                attempts: self.attempts.attempt(),
                last: self.last_failure.take().map(Box::new),
            };
            self.end(Some(&plan), error);
            return;
        }
        if !pending.waited && !plan.backoff.is_zero() {
            // Wait first; the plan is made again afterwards, with what was queued meanwhile.
            pending.waited = true;
            pending.at = Millis(now.0.saturating_add(millis(plan.backoff)));
            self.pending = Some(pending);
            return;
        }
        pending.tries += 1;
        pending.opened_at = now;
        let _span = info_span!(
            "connection_attempt",
            attempt = self.attempts.attempt(),
            trigger = ?pending.trigger,
            handle_age_ms = self.ledger.tracker.handle().map(|h| now.since(h.received_at).as_millis() as u64),
            resume = plan.is_resume(),
            seed = plan.seed.as_ref().map_or(0, |s| s.items.len()),
            steps = plan.steps.len(),
        )
        .entered();
        // Saturating: a saved state can name any id (a corrupt one, u64::MAX), never a panic.
        self.next_connection = self.next_connection.saturating_add(1);
        let id = ConnectionId(self.next_connection);
        let handle = match &plan.strategy {
            Strategy::Resume { handle } => Some(handle.expose().to_owned()),
            _ => None,
        };
        let setup = self.config.session.setup(
            self.ledger.instructions.1.as_deref(),
            &self.ledger.tools.1,
            handle.as_deref(),
            plan.transparent,
            plan.history_config,
        );
        self.actions.push_back(Action::Open {
            connection: id,
            setup: ClientMessage::setup(setup),
        });
        self.link = Link::Opening {
            id,
            plan: Box::new(plan),
            planned_before: self.ledger.outbox.next_id(),
        };
        self.pending = Some(pending);
    }

    pub(super) fn make_plan(&mut self, now: Millis, trigger: Trigger) -> ResumePlan {
        let jitter = self.jitter();
        let ctx = ResumeContext::new(
            trigger,
            &self.ledger.outbox,
            &self.ledger.desired,
            self.ledger.mirror.held(),
            &self.caps,
            self.ledger.tracker.tool_calls(),
        )
        .with_handle(
            self.ledger
                .tracker
                .handle()
                .filter(|_| !self.handle_distrusted),
        )
        .with_attempt(self.attempts.attempt())
        .with_now(now)
        .with_jitter(jitter)
        .with_transparent(self.config.session.transparent, false);
        self.policy.plan(&ctx)
    }

    pub(super) fn report_divergences(&mut self, plan: &ResumePlan) {
        for divergence in &plan.undeliverable {
            self.emit(SessionEvent::Divergence {
                operations: divergence.ops.clone(),
                items: divergence.items.clone(),
                calls: divergence.calls.clone(),
                why: divergence.why,
            });
        }
    }

    /// `setupComplete` arrived on `connection`: the plan is executed on it.
    pub fn handle_setup_complete(&mut self, now: Millis, connection: ConnectionId) {
        let Link::Opening { id, .. } = &self.link else {
            return;
        };
        if *id != connection {
            return;
        }
        let Link::Opening {
            id,
            plan,
            planned_before,
        } = std::mem::replace(&mut self.link, Link::Open { id: connection })
        else {
            return;
        };
        let pending = self.pending.take();
        let mode = if plan.is_resume() {
            ConnectMode::Resumed
        } else {
            ConnectMode::Fresh
        };
        if self.ledger.tracker.on_connected(id, mode).is_err() {
            let error = SessionError::Policy {
                detail: "a resume was planned without a handle".to_owned(),
            };
            self.end(None, error);
            return;
        }
        self.last_failure = None;
        if mode == ConnectMode::Fresh {
            // A fresh session holds only what this connection sends: nothing to distrust.
            self.handle_distrusted = false;
        }
        self.ledger.on_connected(id, mode);
        self.reset_interaction();
        self.attempts.on_connected(now);
        let opened = pending.as_ref().map_or(now, |p| p.opened_at);
        self.age = self.config.session.connection_age.map(|limit| Ageing {
            opened,
            rotate_at: Millis(opened.0.saturating_add(millis(limit.rotate_after))),
            force_at: Millis(opened.0.saturating_add(millis(limit.max))),
            due: false,
        });
        self.execute(id, &plan);
        let first = !self.connected_once;
        self.connected_once = true;
        // The first connection (however many attempts it took) is not a reconnect.
        if let Some(pending) = pending.filter(|_| !first) {
            let lost: Vec<OpId> = plan.reported_ops().collect();
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
                gap: Duration::from_millis(now.since(pending.started).as_millis() as u64),
                attempts: pending.tries,
            }));
        }
        self.bump();
        // Operations queued while the connection was being set up.
        let later: Vec<OpId> = self
            .ledger
            .outbox
            .live()
            .filter(|op| op.id >= planned_before && op.state == DeliveryState::Queued)
            .map(|op| op.id)
            .collect();
        for op in later {
            self.route(now, op);
        }
        self.maybe_rotate(now);
    }

    /// Sends `plan`'s seed and steps on the connection `id`, in order.
    fn execute(&mut self, id: ConnectionId, plan: &ResumePlan) {
        // The plan delivers (or reports) every operation owed, held ones included.
        self.held.clear();
        // Superseded and undeliverable operations first: they never reach the wire.
        self.ledger.outbox.record_plan(plan);
        self.report_divergences(plan);
        if plan.notes.contains(&PlanNote::TransparentUnavailable) {
            // The policy notes it on the first connection only (scenario S24).
            self.emit(SessionEvent::Warning(
                "transparent resumption was requested, but this model does not offer it \
                 (Developer API): the session uses basic resumption"
                    .to_owned(),
            ));
        }
        // Delivered by the setup itself.
        let setup_at = MessagePosition::new(id, ClientMessageIndex::SETUP);
        let marked = self.ledger.outbox.mark_sent(&plan.setup_ops, setup_at);
        self.checked("marking the operations setup delivers sent", marked);
        if let Some(seed) = &plan.seed {
            let message = ClientMessage::client_content(
                crate::convert::items_to_contents(&seed.items),
                seed.turn_complete,
            );
            self.transmit(id, message);
            self.record_sent(
                seed.message_kind(plan.history_config),
                &seed.ops,
                seed.items.clone(),
            );
        }
        for step in &plan.steps {
            self.send_step(id, step.clone());
        }
    }

    /// Connection `connection` ended (or could not be opened) with `info`; `cause` is the
    /// transport error behind it, if the shell has one (kept as the
    /// [`source`](std::error::Error::source) of the [`SessionError`] the session may end with).
    ///
    /// A message larger than the client's own limit (1009 closed by this side) is not the
    /// server rejecting the application's input: the session reconnects and replays what is
    /// uncertain, reporting [`ReconnectReason::MessageTooLarge`].
    pub fn handle_closed(
        &mut self,
        now: Millis,
        connection: ConnectionId,
        mut info: CloseInfo,
        cause: Option<TransportCause>,
    ) {
        if self.closed.is_some() {
            return;
        }
        if self.link.id() != Some(connection) {
            // A connection the core already closed (a rotation). An authentication or quota
            // close ends the session all the same: the credential and the quota are the
            // session's, and the next connection would meet them too.
            if info.class == WireClass::AuthOrQuota {
                let failure = SessionError::from_close(&info, cause);
                self.last_failure = Some(failure.clone());
                let cause = fatal_cause(&failure, FatalCause::Auth);
                self.end_fatal(now, cause, failure);
            }
            return;
        }
        let failure = SessionError::from_close(&info, cause);
        if exceeds_client_limit(&info, &failure) {
            info.class = WireClass::Transient;
        }
        self.last_failure = Some(failure.clone());
        let opening = matches!(self.link, Link::Opening { .. });
        if !opening {
            self.lost(now, info, failure);
            return;
        }
        let resumed = matches!(&self.link, Link::Opening { plan, .. } if plan.is_resume());
        self.link = Link::None;
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        let refused_frame = info.initiator == CloseInitiator::Server;
        match (resumed, info.class) {
            (_, WireClass::AuthOrQuota) => {
                let cause = fatal_cause(&failure, FatalCause::Auth);
                self.end_fatal(now, cause, failure);
            }
            (false, WireClass::NeedsDifferentRequest) => {
                // The first request of a new session was refused: it would be again.
                self.end_fatal(now, FatalCause::SetupRejected, failure);
            }
            (true, WireClass::NeedsDifferentRequest | WireClass::Transient) if refused_frame => {
                self.ledger.tracker.discard_handle();
                // Recoverable, but the application should know (scenario S11).
                self.emit(SessionEvent::Warning(format!(
                    "the server refused to resume the session (close code {}); the handle is \
                     dropped and the next connection starts fresh",
                    info.code
                )));
                self.attempts.on_failed();
                pending.trigger = Trigger::RefusedResume { code: info.code };
                pending.waited = false;
                pending.at = now;
                self.pending = Some(pending);
                self.step_pending(now);
            }
            _ if !self.connected_once
                && pending.first_connect_ends(
                    now,
                    &failure,
                    self.config.session.first_connect_budget(),
                ) =>
            {
                // Never connected: a wrong URL, key or server more likely than an outage.
                let cause = fatal_cause(&failure, FatalCause::FirstConnectFailed);
                self.end_fatal(now, cause, failure);
            }
            _ => {
                self.attempts.on_failed();
                pending.trigger = Trigger::AbnormalClose {
                    code: info.code,
                    class: policy_class(info.class, info.code),
                };
                pending.waited = false;
                pending.at = now;
                self.pending = Some(pending);
                self.step_pending(now);
            }
        }
    }

    /// The open connection ended without this side closing it.
    fn lost(&mut self, now: Millis, info: CloseInfo, failure: SessionError) {
        if info.class == WireClass::AuthOrQuota {
            let cause = fatal_cause(&failure, FatalCause::Auth);
            self.end_fatal(now, cause, failure);
            return;
        }
        let trigger = match self.rotation.take() {
            Some(rotation) => Trigger::GoAway {
                time_left: rotation.time_left,
            },
            None => Trigger::AbnormalClose {
                code: info.code,
                class: policy_class(info.class, info.code),
            },
        };
        let reason = match failure {
            SessionError::MessageTooLarge { size, max, .. } => {
                ReconnectReason::MessageTooLarge { size, max }
            }
            _ => ReconnectReason::ConnectionLost {
                code: info.code,
                reason: info.reason,
            },
        };
        self.link = Link::None;
        self.reconnect(now, trigger, reason);
    }

    /// Forgets the current connection (asking the shell to close it if it is still up).
    fn drop_connection(&mut self) {
        if let Some(id) = self.link.id() {
            self.actions.push_back(Action::Close {
                connection: id,
                code: 1000,
                reason: "rotating",
            });
        }
        self.link = Link::None;
        self.age = None;
        self.ledger.tracker.on_disconnected();
        if self.turn.active {
            // The turn was cut off with the connection.
            self.turn.report_cut(&mut self.events);
        }
        self.reset_interaction();
    }

    /// Replaces the connection for `trigger`: emits `Reconnecting`, closes the old socket and
    /// plans the first attempt.
    pub(super) fn reconnect(&mut self, now: Millis, trigger: Trigger, reason: ReconnectReason) {
        if self.pending.is_some() || self.closed.is_some() {
            return;
        }
        self.emit(SessionEvent::Reconnecting { reason });
        self.drop_connection();
        if trigger.is_planned() {
            self.attempts.on_rotated();
        } else {
            let backoff = self.policy.backoff();
            self.attempts.on_lost(now, &backoff);
        }
        self.rotation = None;
        // The plan carries every queued configuration change in its setup.
        self.restart = None;
        self.pending = Some(Pending::new(trigger, now));
        self.step_pending(now);
    }

    /// A forced rotation in the middle of a turn closes it locally as interrupted.
    pub(super) fn force_turn_boundary(&mut self) {
        if self.turn.active {
            self.turn.report_cut(&mut self.events);
            self.turn = Default::default();
        }
    }

    /// Rotates now if a goAway (or a configuration restart) is pending, or the connection is
    /// past its age limit's `rotate_after`, the model is idle and a fresh handle exists. A
    /// configuration restart waits at most [`RESTART_HANDLE_GRACE`] for the handle once the
    /// model is idle. A goAway goes first, then a configuration restart (whose setup the
    /// rotation needs), then the age.
    pub(super) fn maybe_rotate(&mut self, now: Millis) {
        if self.link.open_id().is_none() {
            return;
        }
        let aged = self.age.as_mut().is_some_and(|age| age.due(now));
        if self.rotation.is_none() && self.restart.is_none() && !aged {
            return;
        }
        let idle = !self.turn.active
            && !self.tools_owed
            && !self.owes_tool_response()
            && !self.interaction_busy;
        let fresh = self.ledger.tracker.handle().is_some_and(|h| !h.is_stale());
        if let Some(rotation) = &self.rotation {
            if idle && fresh {
                let time_left = rotation.time_left;
                self.reconnect(
                    now,
                    Trigger::GoAway { time_left },
                    ReconnectReason::GoAway { time_left },
                );
                return;
            }
        }
        if let Some(restart) = self.restart.as_mut() {
            if !idle {
                restart.deadline = None;
                return;
            }
            let deadline = *restart
                .deadline
                .get_or_insert(Millis(now.0 + millis(RESTART_HANDLE_GRACE)));
            if fresh || now >= deadline {
                let trigger = restart.trigger;
                self.reconnect(now, trigger, ReconnectReason::ConfigChange);
            }
            return;
        }
        if aged && idle && fresh {
            self.rotate_for_age(now, false);
        }
    }

    /// Replaces the connection for its age (`forced`: at the maximum, whatever the model is
    /// doing; a turn under way is closed locally as interrupted).
    pub(super) fn rotate_for_age(&mut self, now: Millis, forced: bool) {
        let Some(age) = self.age.as_ref().map(|a| a.age(now)) else {
            return;
        };
        if forced {
            self.force_turn_boundary();
        }
        self.reconnect(
            now,
            Trigger::AgeLimit { age },
            ReconnectReason::ConnectionAge { age, forced },
        );
    }

    /// Queues a configuration restart (merged with one already waiting) and makes it now if
    /// the session is at a turn boundary with a fresh handle.
    pub(super) fn request_restart(&mut self, now: Millis, trigger: Trigger) {
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
        self.maybe_rotate(now);
    }

    /// Whether a tool response sent on the open connection still awaits the model's reaction
    /// (the model continues from it).
    fn owes_tool_response(&self) -> bool {
        self.ledger.tracker.awaits_tool_response()
    }
}

/// Whether the connection ended because a server message exceeded this client's own size
/// limit: the client's doing, not a rejection of anything the client sent.
fn exceeds_client_limit(info: &CloseInfo, failure: &SessionError) -> bool {
    matches!(failure, SessionError::MessageTooLarge { .. })
        || (info.initiator == CloseInitiator::Client
            && info.code == gemini_transport::close::MESSAGE_TOO_BIG)
}

/// The policy's view of a close.
pub(super) fn policy_class(class: WireClass, code: u16) -> resume_policy::CloseClass {
    match class {
        WireClass::AuthOrQuota => resume_policy::CloseClass::Fatal,
        WireClass::NeedsDifferentRequest if code == 1008 => resume_policy::CloseClass::Unsupported,
        WireClass::NeedsDifferentRequest => resume_policy::CloseClass::InvalidPayload,
        _ => resume_policy::CloseClass::Transient,
    }
}

impl SessionCore {
    /// What the core knows of the model's current turn and interaction goes with the
    /// connection: a new one starts with none.
    fn reset_interaction(&mut self) {
        self.turn = Default::default();
        self.tools_owed = false;
        self.interaction_busy = false;
        self.settling = None;
        self.results_sent = None;
        self.results_answer = None;
        self.result_messages.clear();
        self.guessed = false;
    }
}
