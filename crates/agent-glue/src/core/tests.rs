//! The core's reactions to what integration tests cannot provoke through a real server: a
//! ledger step the ledger refuses, and fatal ends planned by policies of every kind.

use std::sync::{Arc, Mutex};

use gemini_transport::wire::ServerMessage;
use gemini_transport::{CloseInfo, Endpoint, SecretString};
use resume_policy::{
    DefaultPolicy, DivergenceReason, FatalCause, OpId, Operation, ResumeContext, ResumePlan, Route,
    RouteContext, Strategy, Trigger,
};

use super::*;
use crate::LiveSessionBuilder;

const MODEL: &str = "gemini-2.5-flash-native-audio-preview-12-2025";

/// The default policy, except that its first plan claims `setup` delivers an operation the
/// outbox never held (a custom policy's bug); it records whether each plan was offered a
/// handle.
struct ClaimsUnknownOp {
    offered: Arc<Mutex<Vec<bool>>>,
}

impl ResumePolicy for ClaimsUnknownOp {
    fn plan(&self, ctx: &ResumeContext<'_>) -> ResumePlan {
        let mut offered = self.offered.lock().unwrap();
        offered.push(ctx.handle.is_some());
        let mut plan = DefaultPolicy::default().plan(ctx);
        if offered.len() == 1 {
            plan.setup_ops.push(OpId(99));
        }
        plan
    }

    fn route(&self, ctx: &RouteContext<'_>, op: &Operation) -> Route {
        DefaultPolicy::default().route(ctx, op)
    }
}

fn message(json: &str) -> ServerMessage {
    ServerMessage::from_json(json.as_bytes()).unwrap()
}

/// Runs timers until the core asks for a connection, and completes its setup at `now`.
fn open(core: &mut SessionCore, mut now: Millis) -> ConnectionId {
    loop {
        while let Some(action) = core.poll_action() {
            if let Action::Open { connection, .. } = action {
                core.handle_setup_complete(now, connection);
                return connection;
            }
        }
        now = core.poll_timeout().expect("a reconnect is pending");
        core.handle_timeout(now);
    }
}

/// A user turn answered on `connection`, then a resumable handle.
fn exchange(core: &mut SessionCore, connection: ConnectionId, now: Millis) {
    core.command(now, Command::Text("hello".to_owned()))
        .unwrap();
    core.handle_message(
        now,
        connection,
        message(r#"{"serverContent":{"turnComplete":true}}"#),
    );
    core.handle_message(
        now,
        connection,
        message(r#"{"sessionResumptionUpdate":{"newHandle":"h","resumable":true}}"#),
    );
    assert!(
        core.ledger.tracker.handle().is_some(),
        "the handle is adopted"
    );
}

fn broken(core: &mut SessionCore) -> Vec<String> {
    std::iter::from_fn(|| core.poll_event())
        .filter_map(|event| match event {
            SessionEvent::InvariantBroken { what } => Some(what),
            _ => None,
        })
        .collect()
}

#[test]
fn a_refused_ledger_step_is_reported_once_and_the_next_session_starts_fresh() {
    let offered = Arc::new(Mutex::new(Vec::new()));
    let policy = ClaimsUnknownOp {
        offered: Arc::clone(&offered),
    };
    let mut core = LiveSessionBuilder::new(Endpoint::api_key(SecretString::from("k")), MODEL)
        .policy(Box::new(policy))
        .into_core(Millis(0), 7)
        .unwrap();
    let first = open(&mut core, Millis(0));
    let what = broken(&mut core);
    assert_eq!(what.len(), 1, "one event per occurrence: {what:?}");
    assert!(what[0].contains("op99"), "{what:?}");
    assert!(core.closed().is_none(), "the session goes on");

    // The handle adopted afterwards is not offered to the next plan: it starts fresh.
    exchange(&mut core, first, Millis(10));
    let lost = CloseInfo::abnormal("connection reset", false);
    core.handle_closed(Millis(20), first, lost.clone(), None);
    let second = open(&mut core, Millis(20));
    let plans = offered.lock().unwrap().clone();
    assert!(
        plans.len() > 1 && plans[1..].iter().all(|handle| !handle),
        "{plans:?}"
    );
    assert!(broken(&mut core).is_empty());

    // Once a fresh session is set up, its handles are trusted again.
    exchange(&mut core, second, Millis(30));
    let before = offered.lock().unwrap().len();
    core.handle_closed(Millis(40), second, lost, None);
    open(&mut core, Millis(40));
    assert!(
        offered.lock().unwrap()[before..]
            .iter()
            .all(|handle| *handle)
    );
}

/// The default policy (or, with `retry`, one that never gives up: it turns every give-up
/// into a fresh session), recording the trigger of every plan.
struct Recording {
    retry: bool,
    triggers: Arc<Mutex<Vec<Trigger>>>,
}

impl ResumePolicy for Recording {
    fn plan(&self, ctx: &ResumeContext<'_>) -> ResumePlan {
        self.triggers.lock().unwrap().push(ctx.trigger);
        let mut plan = DefaultPolicy::default().plan(ctx);
        if self.retry && plan.is_give_up() {
            plan = ResumePlan::new(Strategy::Fresh);
        }
        plan
    }

    fn route(&self, ctx: &RouteContext<'_>, op: &Operation) -> Route {
        DefaultPolicy::default().route(ctx, op)
    }
}

fn recording(retry: bool) -> (SessionCore, Arc<Mutex<Vec<Trigger>>>) {
    let triggers = Arc::new(Mutex::new(Vec::new()));
    let policy = Recording {
        retry,
        triggers: Arc::clone(&triggers),
    };
    let core = LiveSessionBuilder::new(Endpoint::api_key(SecretString::from("k")), MODEL)
        .policy(Box::new(policy))
        .into_core(Millis(0), 7)
        .unwrap();
    (core, triggers)
}

/// Connects, lets the model call `book`, and loses the connection (1006): the session is
/// reconnecting, and the dial of the next connection is pending.
fn reconnecting_with_a_tool_call(core: &mut SessionCore) -> ConnectionId {
    let first = open(core, Millis(0));
    core.handle_message(
        Millis(10),
        first,
        message(r#"{"toolCall":{"functionCalls":[{"id":"call-1","name":"book","args":{}}]}}"#),
    );
    let lost = CloseInfo::abnormal("connection reset", false);
    core.handle_closed(Millis(20), first, lost, None);
    loop {
        while let Some(action) = core.poll_action() {
            if let Action::Open { connection, .. } = action {
                return connection;
            }
        }
        let at = core.poll_timeout().expect("a reconnect is pending");
        core.handle_timeout(at);
    }
}

/// The close the shell reports for an upgrade refused with HTTP `status`.
fn refused_upgrade(status: u16) -> (CloseInfo, crate::TransportCause) {
    let error = gemini_transport::Error::Handshake {
        authority: "127.0.0.1:1".to_owned(),
        status: Some(status),
        detail: "refused".to_owned(),
    };
    let mut info = CloseInfo::abnormal(error.to_string(), false);
    info.class = error.class();
    (info, Arc::new(error))
}

#[test]
fn an_auth_failure_ends_through_the_policy_and_reports_what_was_owed() {
    let (mut core, triggers) = recording(false);
    let dialing = reconnecting_with_a_tool_call(&mut core);
    // While reconnecting, the tool's result and a user turn are queued.
    let result = core
        .command(
            Millis(30),
            Command::ToolResult {
                call_id: "call-1".to_owned(),
                output: serde_json::json!({ "booked": true }),
                is_error: false,
                scheduling: None,
                will_continue: false,
            },
        )
        .unwrap();
    let append = core
        .command(Millis(30), Command::Text("and a taxi".to_owned()))
        .unwrap();
    std::iter::from_fn(|| core.poll_event()).for_each(drop);

    let (info, cause) = refused_upgrade(401);
    core.handle_closed(Millis(40), dialing, info, Some(cause));

    assert_eq!(
        triggers.lock().unwrap().last(),
        Some(&Trigger::Fatal {
            cause: FatalCause::Auth
        }),
        "the end is planned by the policy"
    );
    let events: Vec<SessionEvent> = std::iter::from_fn(|| core.poll_event()).collect();
    let owed: Vec<OpId> = [result.op, append.op].into_iter().flatten().collect();
    assert!(
        events.iter().any(|event| matches!(
            event,
            SessionEvent::Divergence { operations, calls, why: DivergenceReason::GaveUp, .. }
                if owed.iter().all(|op| operations.contains(op))
                    && calls == &["call-1".to_owned()]
        )),
        "{events:#?}"
    );
    assert!(
        matches!(
            events.last(),
            Some(SessionEvent::Closed {
                error: Some(SessionError::Auth {
                    status: Some(401),
                    ..
                })
            })
        ),
        "{events:#?}"
    );
    assert!(std::iter::from_fn(|| core.poll_action()).all(|a| !matches!(a, Action::Open { .. })));
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn a_policy_that_retries_cannot_turn_a_fatal_end_into_a_loop() {
    let (mut core, triggers) = recording(true);
    let first = open(&mut core, Millis(0));
    core.command(Millis(10), Command::Text("hello".to_owned()))
        .unwrap();
    std::iter::from_fn(|| core.poll_event()).for_each(drop);
    let quota = CloseInfo::from_server(1011, "You exceeded your current quota", false);
    core.handle_closed(Millis(20), first, quota, None);

    assert_eq!(
        triggers.lock().unwrap().last(),
        Some(&Trigger::Fatal {
            cause: FatalCause::Quota
        })
    );
    let events: Vec<SessionEvent> = std::iter::from_fn(|| core.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Warning(w) if w.contains("no retry fixes"))),
        "{events:#?}"
    );
    // What the retrying plan left live is reported all the same.
    assert!(
        events.iter().any(|e| matches!(
            e,
            SessionEvent::Divergence { operations, why: DivergenceReason::GaveUp, .. }
                if !operations.is_empty()
        )),
        "{events:#?}"
    );
    assert!(
        matches!(
            events.last(),
            Some(SessionEvent::Closed {
                error: Some(SessionError::Quota { .. })
            })
        ),
        "{events:#?}"
    );
    assert!(std::iter::from_fn(|| core.poll_action()).all(|a| !matches!(a, Action::Open { .. })));
    assert_eq!(core.poll_timeout(), None);
    assert!(
        core.command(Millis(30), Command::Text("retry?".to_owned()))
            .is_err()
    );
}

#[test]
fn a_rejected_first_setup_ends_through_the_policy() {
    let (mut core, triggers) = recording(false);
    let Some(Action::Open { connection, .. }) = core.poll_action() else {
        panic!("the first connection is asked for at once");
    };
    let rejected = CloseInfo::from_server(1007, "Request contains an invalid argument.", false);
    core.handle_closed(Millis(5), connection, rejected, None);
    assert_eq!(
        triggers.lock().unwrap().last(),
        Some(&Trigger::Fatal {
            cause: FatalCause::SetupRejected
        })
    );
    let events: Vec<SessionEvent> = std::iter::from_fn(|| core.poll_event()).collect();
    assert!(
        matches!(
            events.last(),
            Some(SessionEvent::Closed {
                error: Some(SessionError::RejectedPayload { code: 1007, .. })
            })
        ),
        "{events:#?}"
    );
}

const MINUTE: u64 = 60_000;

/// The events the core emitted so far.
fn events(core: &mut SessionCore) -> Vec<SessionEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// The reasons of the `Reconnecting` events among `events`.
fn reconnect_reasons(events: &[SessionEvent]) -> Vec<crate::ReconnectReason> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Reconnecting { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// A core with the default connection age, connected at 0 with a fresh handle at 10 ms.
fn aged_core() -> (SessionCore, ConnectionId) {
    let mut core = LiveSessionBuilder::new(Endpoint::api_key(SecretString::from("k")), MODEL)
        .into_core(Millis(0), 7)
        .unwrap();
    let first = open(&mut core, Millis(0));
    exchange(&mut core, first, Millis(10));
    events(&mut core);
    (core, first)
}

#[test]
fn an_idle_connection_is_rotated_at_its_age() {
    let (mut core, first) = aged_core();
    // The timer is the age: nothing else is pending.
    assert_eq!(core.poll_timeout(), Some(Millis(45 * MINUTE)));
    core.handle_timeout(Millis(45 * MINUTE - 1));
    assert!(events(&mut core).is_empty());
    core.handle_timeout(Millis(45 * MINUTE));
    assert_eq!(
        reconnect_reasons(&events(&mut core)),
        [crate::ReconnectReason::ConnectionAge {
            age: Duration::from_secs(45 * 60),
            forced: false,
        }]
    );
    let actions: Vec<Action> = std::iter::from_fn(|| core.poll_action()).collect();
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Close { connection, .. }, Action::Open { setup, .. }]
                if *connection == first && format!("{setup:?}").contains("handle: Some(\"h\")")
        ),
        "{actions:?}"
    );
}

#[test]
fn a_busy_connection_rotates_at_its_idle_point_or_is_forced_at_the_maximum() {
    let model_speaks = r#"{"serverContent":{"modelTurn":{"parts":[{"text":"a"}]}}}"#;
    // While the model answers, the server's updates are not resumable (the handle is stale).
    let not_resumable = r#"{"sessionResumptionUpdate":{}}"#;
    // Busy at 45:00, idle at 46:00 with a fresh handle: rotated then, not forced.
    let (mut core, first) = aged_core();
    core.command(Millis(44 * MINUTE), Command::Text("long".to_owned()))
        .unwrap();
    core.handle_message(Millis(44 * MINUTE), first, message(model_speaks));
    core.handle_message(Millis(44 * MINUTE), first, message(not_resumable));
    core.handle_timeout(Millis(45 * MINUTE));
    assert!(reconnect_reasons(&events(&mut core)).is_empty());
    assert_eq!(core.poll_timeout(), Some(Millis(50 * MINUTE)));
    core.handle_message(
        Millis(46 * MINUTE),
        first,
        message(r#"{"serverContent":{"turnComplete":true}}"#),
    );
    // The turn is over, but the handle predates it: wait for the one issued after it.
    assert!(reconnect_reasons(&events(&mut core)).is_empty());
    core.handle_message(
        Millis(46 * MINUTE),
        first,
        message(r#"{"sessionResumptionUpdate":{"newHandle":"h2","resumable":true}}"#),
    );
    assert_eq!(
        reconnect_reasons(&events(&mut core)),
        [crate::ReconnectReason::ConnectionAge {
            age: Duration::from_secs(46 * 60),
            forced: false,
        }]
    );

    // Busy until 50:00: forced, the turn closed locally as interrupted first.
    let (mut core, first) = aged_core();
    core.command(Millis(44 * MINUTE), Command::Text("long".to_owned()))
        .unwrap();
    core.handle_message(Millis(44 * MINUTE), first, message(model_speaks));
    core.handle_timeout(Millis(45 * MINUTE));
    core.handle_timeout(Millis(50 * MINUTE));
    let seen = events(&mut core);
    let interrupted = seen
        .iter()
        .position(|e| matches!(e, SessionEvent::Interrupted));
    let reconnecting = seen
        .iter()
        .position(|e| matches!(e, SessionEvent::Reconnecting { .. }));
    assert!(
        matches!((interrupted, reconnecting), (Some(i), Some(r)) if i < r),
        "{seen:?}"
    );
    assert_eq!(
        reconnect_reasons(&seen),
        [crate::ReconnectReason::ConnectionAge {
            age: Duration::from_secs(50 * 60),
            forced: true,
        }]
    );
}

#[test]
fn without_an_age_limit_nothing_is_armed() {
    let mut core = LiveSessionBuilder::new(Endpoint::api_key(SecretString::from("k")), MODEL)
        .connection_age(None)
        .into_core(Millis(0), 7)
        .unwrap();
    let first = open(&mut core, Millis(0));
    exchange(&mut core, first, Millis(10));
    assert_eq!(core.poll_timeout(), None);
    core.handle_timeout(Millis(24 * 60 * MINUTE));
    assert!(reconnect_reasons(&events(&mut core)).is_empty());
}

/// The close the shell reports for a dial whose credential source failed.
fn credential_failure(permanent: bool) -> (CloseInfo, crate::TransportCause) {
    let cause = std::io::Error::other("backend unavailable");
    let error = gemini_transport::Error::Credential(if permanent {
        gemini_transport::CredentialError::permanent(cause)
    } else {
        gemini_transport::CredentialError::transient(cause)
    });
    let mut info = CloseInfo::abnormal(error.to_string(), false);
    info.class = error.class();
    (info, Arc::new(error))
}

#[test]
fn a_transient_credential_failure_is_retried_and_a_permanent_one_ends_through_the_policy() {
    // Transient: the dial is retried with backoff, and the session goes on.
    let (mut core, triggers) = recording(false);
    let dialing = reconnecting_with_a_tool_call(&mut core);
    let (info, cause) = credential_failure(false);
    core.handle_closed(Millis(30), dialing, info, Some(cause));
    assert!(core.closed().is_none());
    let again = open(&mut core, Millis(30));
    assert_ne!(again, dialing);
    assert!(matches!(
        triggers.lock().unwrap().last(),
        Some(Trigger::AbnormalClose { .. })
    ));

    // Permanent: the policy plans the end as an authentication failure, then `Closed`.
    let (mut core, triggers) = recording(false);
    let dialing = reconnecting_with_a_tool_call(&mut core);
    let (info, cause) = credential_failure(true);
    core.handle_closed(Millis(30), dialing, info, Some(cause));
    assert_eq!(
        triggers.lock().unwrap().last(),
        Some(&Trigger::Fatal {
            cause: FatalCause::Auth
        })
    );
    assert!(matches!(
        core.closed(),
        Some(Some(SessionError::Credential {
            permanent: true,
            ..
        }))
    ));
    let seen = events(&mut core);
    assert!(
        seen.iter().any(|e| matches!(
            e,
            SessionEvent::Divergence {
                why: DivergenceReason::GaveUp,
                ..
            }
        )),
        "what was owed is reported: {seen:?}"
    );
    assert!(matches!(
        seen.last(),
        Some(SessionEvent::Closed { error: Some(_) })
    ));
}
