//! Planned rotation: S01–S03.

use std::time::Duration;

use agent_glue::{
    LiveSession, LiveSessionBuilder, ReconnectReason, ReconnectStrategy, SessionEvent,
};
use gemini_fake::{ConnectionEnd, FakeServer, Family};

use crate::common::*;
use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S01",
            title: "goAway while idle: resume before the deadline, nothing re-sent",
            body: |p| Box::pin(s01(p)),
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S02",
            title: "goAway during a model turn: rotate at turnComplete, or forced before timeLeft",
            body: |p| Box::pin(s02(p)),
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S03",
            title: "silent server after goAway: the deadline timer still rotates",
            body: |p| Box::pin(s03(p)),
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_go_away_while_idle() {
    check("S01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_go_away_during_a_model_turn() {
    check("S02").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_silent_server_after_go_away() {
    check("S03").await;
}

// ---------------------------------------------------------------------------------------------
// S01

async fn s01(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut seen) = open(&server, policy.boxed(), |b| b).await?;
    for text in ["one", "two"] {
        seen.barrier(&session, text).await?;
    }
    let before = s_entries(&server);
    server.faults().go_away(Duration::from_secs(50));
    let report = seen.reconnected().await?;
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
    seen.barrier(&session, "three").await?;
    let connections = server.connections();
    let second = &connections[1];
    ensure_eq(
        "frames after the resumed setup",
        kinds_after_setup(second),
        vec!["clientContent".to_owned()],
    )?;
    let setup = second.frames[0].json();
    ensure(setup["setup"].get("historyConfig").is_none(), || {
        "historyConfig on a resume".into()
    })?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    contexts_are(&server, &session, &expected)?;
    close(session).await
}

// ---------------------------------------------------------------------------------------------
// S02

/// A user turn whose answer lasts `11 × chunk interval` (one chunk per word).
const LONG: &str = "please tell me a long story about the sea";

async fn s02(policy: PolicyKind) -> Outcome {
    s02_waits_for_turn_complete(policy)
        .await
        .map_err(|e| format!("(waiting rotation) {e}"))?;
    s02_forced_before_time_left(policy)
        .await
        .map_err(|e| format!("(forced rotation) {e}"))
}

/// A 2.5 session (with `tweak`) whose answers stream one word per `chunk`: "one" answered,
/// and the answer to [`LONG`] under way.
async fn s02_long_answer_under_way(
    policy: PolicyKind,
    chunk: Duration,
    tweak: impl FnOnce(LiveSessionBuilder) -> LiveSessionBuilder,
) -> Result<(FakeServer, LiveSession, Seen), String> {
    let server = server(Family::Gemini25, |c| c.with_chunk_interval(chunk)).await;
    let (session, mut seen) = open(&server, fast_policy(policy), tweak).await?;
    seen.barrier(&session, "one").await?;
    session.send_text(LONG).map_err(|e| e.to_string())?;
    seen.until("first chunk of the long answer", |e| {
        matches!(e, SessionEvent::Text(_))
    })
    .await?;
    Ok((server, session, seen))
}

/// After "three" was answered: the long turn and its answer are in `S` once and `L == S`,
/// the latest session generated `generations` answers, nothing ran twice, one reconnect.
async fn s02_ends(
    server: &FakeServer,
    session: LiveSession,
    seen: &mut Seen,
    generations_expected: u32,
) -> Outcome {
    let user_long = format!("user: {LONG}");
    let echo_long = format!("model: echo: {LONG}");
    ends_with(
        server,
        session,
        seen,
        &[
            "user: one",
            "model: echo: one",
            user_long.as_str(),
            echo_long.as_str(),
            "user: three",
            "model: echo: three",
        ],
        generations_expected,
        1,
    )
    .await
}

/// goAway with plenty of time: the rotation waits for `turnComplete` and the handle issued
/// with it, then resumes from that handle with nothing to replay.
async fn s02_waits_for_turn_complete(policy: PolicyKind) -> Outcome {
    let (server, session, mut seen) = s02_long_answer_under_way(policy, ms(20), |b| b).await?;
    server.faults().go_away(Duration::from_secs(50));
    let report = seen.reconnected().await?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let complete = seen
        .events
        .iter()
        .rposition(|e| matches!(e, SessionEvent::TurnComplete));
    let reconnecting = seen.position(|e| matches!(e, SessionEvent::Reconnecting { .. }));
    ensure(
        matches!((complete, reconnecting), (Some(c), Some(r)) if c < r),
        || {
            format!(
                "rotated before the turn completed: {:?}",
                summary(&seen.events)
            )
        },
    )?;
    ensure_eq(
        "Interrupted events",
        seen.count(|e| matches!(e, SessionEvent::Interrupted)),
        0,
    )?;
    // The resume used the handle issued with the long answer's turnComplete.
    ensure(server.latest_session().is_some(), || {
        "no server session".into()
    })?;
    ensure_eq(
        "resumed from",
        server
            .connections()
            .get(1)
            .and_then(|c| c.resumed_from.clone()),
        last_handle_on(&server, 0),
    )?;
    seen.barrier(&session, "three").await?;
    ensure_eq(
        "frames after the resumed setup",
        kinds_after_setup_on(&server, 1),
        vec!["clientContent".to_owned()],
    )?;
    s02_ends(&server, session, &mut seen, 3).await
}

/// goAway with 600 ms left and a 300 ms margin while an answer needs about 700 ms: the timer
/// forces the rotation mid-turn; the turn is closed locally as interrupted, and the user turn
/// ends up in `S` exactly once (answered again on the new connection).
async fn s02_forced_before_time_left(policy: PolicyKind) -> Outcome {
    let (server, session, mut seen) =
        s02_long_answer_under_way(policy, ms(60), |b| b.go_away_margin(ms(300))).await?;
    server.faults().go_away(ms(600));
    let report = seen.reconnected().await?;
    let interrupted = seen.position(|e| matches!(e, SessionEvent::Interrupted));
    let reconnecting = seen.position(|e| matches!(e, SessionEvent::Reconnecting { .. }));
    ensure(
        matches!((interrupted, reconnecting), (Some(i), Some(r)) if i < r),
        || {
            format!(
                "the cut turn was not closed as interrupted before rotating: {:?}",
                summary(&seen.events)
            )
        },
    )?;
    ensure(
        matches!(seen.reasons().first(), Some(ReconnectReason::GoAway { .. })),
        || format!("reasons: {:?}", seen.reasons()),
    )?;
    // The client closed the old socket before the deadline (the fake would close with 1008).
    let old_end = server.connections().first().and_then(|c| c.end.clone());
    ensure(
        matches!(old_end, Some((ConnectionEnd::ClientClose { .. }, _))),
        || format!("old connection ended with {old_end:?}, not by the client"),
    )?;
    ensure(report.gap < ms(1_000), || format!("gap {:?}", report.gap))?;
    // The user turn reaches the resumed session once, and the model answers it there.
    server
        .wait_for(STEP, "the long turn answered on the new connection", |v| {
            v.latest_session().is_some_and(|s| {
                s.answers()
                    .iter()
                    .any(|a| !a.interrupted && a.text == format!("echo: {LONG}"))
            })
        })
        .await
        .map_err(|e| format!("{e}; S = {:?}", s_entries(&server)))?;
    seen.turn_complete("answer to the long turn").await?;
    seen.barrier(&session, "three").await?;
    // one, the cut answer, its replay, three.
    s02_ends(&server, session, &mut seen, 4).await
}

// ---------------------------------------------------------------------------------------------
// S03

/// The model is idle but the session holds no fresh handle (the fake withholds them, so the
/// last turn is covered by none) when goAway arrives, and the server sends nothing after it.
/// Waiting for a fresh handle would wait forever: the deadline timer rotates before
/// `timeLeft` ends, and the turn the handle does not cover is restored exactly once.
async fn s03(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut seen) =
        open(&server, fast_policy(policy), |b| b.go_away_margin(ms(300))).await?;
    seen.barrier(&session, "one").await?;
    server.faults().withhold_handles();
    seen.barrier(&session, "two").await?;
    server.faults().go_away(ms(600));
    // Silence from here on: no frame, no handle. New connections get handles again.
    server.faults().release_handles();
    let report = seen.reconnected().await?;
    ensure(
        matches!(seen.reasons().as_slice(), [ReconnectReason::GoAway { .. }]),
        || format!("reasons: {:?}", seen.reasons()),
    )?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let old_end = server.connections().first().and_then(|c| c.end.clone());
    ensure(
        matches!(old_end, Some((ConnectionEnd::ClientClose { .. }, _))),
        || format!("old connection ended with {old_end:?}, not by the client before the deadline"),
    )?;
    seen.barrier(&session, "three").await?;
    // Restoring "two" and its answer must not ask the model again.
    ends_with(
        &server,
        session,
        &mut seen,
        &[
            "user: one",
            "model: echo: one",
            "user: two",
            "model: echo: two",
            "user: three",
            "model: echo: three",
        ],
        3,
        1,
    )
    .await
}
