//! The core's reactions to what integration tests cannot provoke through a real server: a
//! ledger step the ledger refuses.

use std::sync::{Arc, Mutex};

use gemini_transport::wire::ServerMessage;
use gemini_transport::{CloseInfo, Endpoint, SecretString};
use resume_policy::{
    DefaultPolicy, OpId, Operation, ResumeContext, ResumePlan, Route, RouteContext,
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
