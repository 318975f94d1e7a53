//! Planned rotation: S01–S03.

use std::time::Duration;

use agent_glue::{ReconnectStrategy, SessionEvent};
use gemini_fake::Family;

use crate::common::*;
use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        id: "S01",
        title: "goAway while idle: resume before the deadline, nothing re-sent",
        body: |p| Box::pin(s01(p)),
        exposes: &[PolicyKind::ReplayAlways],
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_go_away_while_idle() {
    check(scenarios().remove(0)).await;
}

async fn s01(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) = session(&server, policy.boxed(), vec![]).await;
    for text in ["one", "two"] {
        session.send_text(text).map_err(|e| e.to_string())?;
        until(&mut events, "turn complete", |e| {
            matches!(e, SessionEvent::TurnComplete)
        })
        .await;
    }
    let before = s_entries(&server);
    server.faults().go_away(Duration::from_secs(50));
    let seen = until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    let Some(SessionEvent::Reconnected(report)) = seen.last() else {
        return Err("no Reconnected event".into());
    };
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    // The old socket is closed (the fake records the end a moment after the client sends it).
    server
        .wait_for(WAIT, "old socket closed", |v| {
            v.connections().first().is_some_and(|c| c.end.is_some())
        })
        .await
        .map_err(|e| e.to_string())?;
    // The new connection carries a handle and nothing after its setup.
    let connections = server.connections();
    ensure_eq("connections", connections.len(), 2)?;
    let second = &connections[1];
    ensure(second.resumed_from.is_some(), || {
        "second connection did not resume".into()
    })?;
    ensure_eq(
        "sockets open at once",
        server.latest_session().map(|s| s.overlaps()),
        Some(0),
    )?;
    barrier(&session, &mut events, "three").await;
    let connections = server.connections();
    let second = &connections[1];
    let after_setup: Vec<String> = second
        .frames
        .iter()
        .skip(1)
        .map(|f| f.kind.to_string())
        .collect();
    ensure_eq(
        "frames after the resumed setup",
        after_setup,
        vec!["clientContent".to_owned()],
    )?;
    let setup = second.frames[0].json();
    ensure(setup["setup"].get("historyConfig").is_none(), || {
        "historyConfig on a resume".into()
    })?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    ensure_eq("S", s_entries(&server), expected.clone())?;
    ensure_eq("L == S", l_entries(&session.chat_ctx()), expected)?;
    session.close().await.map_err(|e| e.to_string())
}
