//! Configuration restarts (instructions, tools on models without `contextUpdate`) wait for a
//! turn boundary with a fresh handle, and for at most a short grace once the model is idle.
//! On paused tokio time (a current-thread runtime): the fake's answer streams, the grace and
//! its measure are virtual time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use agent_glue::{ReconnectReason, ReconnectStrategy, SessionEvent};
use common::*;
use gemini_fake::Family;
use resume_policy::DefaultPolicy;

#[tokio::test(start_paused = true)]
async fn an_instruction_change_mid_turn_waits_for_the_turn_and_its_handle() {
    let server = server(Family::Gemini25, |c| {
        c.with_chunk_interval(Duration::from_millis(20))
    })
    .await;
    let (session, mut events) = session(&server, Box::new(DefaultPolicy::default()), vec![]).await;
    session
        .send_text("a long answer with quite a few words in it")
        .unwrap();
    until(&mut events, "the answer starts", |e| {
        matches!(e, SessionEvent::Text(_))
    })
    .await;
    session.update_instructions("Be brief.").unwrap();
    let seen = until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    // The answer finished before the restart began: nothing was cut off.
    let complete = seen
        .iter()
        .position(|e| matches!(e, SessionEvent::TurnComplete))
        .expect("the turn completed");
    let restarting = seen
        .iter()
        .position(|e| {
            matches!(
                e,
                SessionEvent::Reconnecting {
                    reason: ReconnectReason::ConfigChange
                }
            )
        })
        .expect("a configuration restart");
    assert!(complete < restarting, "{seen:#?}");
    assert!(
        !seen.iter().any(|e| matches!(e, SessionEvent::Interrupted)),
        "{seen:#?}"
    );
    let Some(SessionEvent::Reconnected(report)) = seen.last() else {
        unreachable!()
    };
    assert_eq!(report.strategy, ReconnectStrategy::Resumed);
    // Resumed from the handle issued after the turn: nothing to replay.
    barrier(&session, &mut events, "after").await;
    let connections = server.connections();
    assert_eq!(connections.len(), 2);
    assert_eq!(connections[1].resumed_from, last_handle_on(&server, 0));
    let kinds: Vec<&str> = connections[1].frames.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, ["setup", "clientContent"]);
    assert_eq!(
        server
            .latest_session()
            .and_then(|s| s.system_instruction().map(str::to_owned)),
        Some("Be brief.".to_owned())
    );
    assert_eq!(l_entries(&session.chat_ctx()), s_entries(&server));
    session.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_a_fresh_handle_the_restart_goes_ahead_after_the_grace() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) = session(&server, Box::new(DefaultPolicy::default()), vec![]).await;
    // Only the handle after setupComplete exists; it goes stale when the answer starts.
    server.faults().withhold_handles();
    barrier(&session, &mut events, "one").await;
    let asked = tokio::time::Instant::now();
    session.update_instructions("Be brief.").unwrap();
    until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    server.faults().release_handles();
    // The stale handle lacks the turn: the policy restored it, once.
    barrier(&session, &mut events, "two").await;
    assert_eq!(
        s_entries(&server),
        [
            "user: one",
            "model: echo: one",
            "user: two",
            "model: echo: two"
        ]
    );
    assert_eq!(l_entries(&session.chat_ctx()), s_entries(&server));
    session.close().await.unwrap();
}
