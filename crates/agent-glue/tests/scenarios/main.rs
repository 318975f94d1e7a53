//! The reconnect scenarios' smoke set over real sockets: a `LiveSession` (the async shell
//! around the core) against an in-process `gemini-fake` on 127.0.0.1, under `DefaultPolicy`.
//!
//! The scenarios themselves (S01–S29, each under the three shipped policies, with the
//! pass/fail table) run on virtual time in `crates/session-sim/tests/scenarios/`, where the
//! same core meets the fake's same session logic in milliseconds. These few prove that the
//! shell and the real wire carry what the core decides: a goAway rotation (S01), a TCP reset
//! and a resume with backoff (S04), a tool result finished while the socket is down (S13), and
//! an instruction change carried by the setup of a new connection (S21). Each checks the
//! server's context against `L`, the frames the new connection received, and the reconnect
//! events. Nothing sleeps: every wait is on an event of the session or a change of the fake's
//! state (with a timeout that only reports a failure).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use agent_glue::{ReconnectReason, ReconnectStrategy, SessionEvent};
use gemini_fake::Family;
use resume_policy::{Backoff, DefaultPolicy, EditHandling, ResumePolicy};
use serde_json::json;

use crate::common::*;
use crate::support::*;

/// `DefaultPolicy` with a short backoff (20 ms base, 200 ms at most).
fn fast_policy() -> Box<dyn ResumePolicy> {
    let mut backoff = Backoff::default();
    backoff.base = ms(20);
    backoff.max = ms(200);
    Box::new(DefaultPolicy::new(backoff, EditHandling::default()))
}

fn passes(outcome: Outcome) {
    if let Err(why) = outcome {
        panic!("{why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_go_away_while_idle() {
    passes(s01().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_abnormal_close_while_idle() {
    passes(s04().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_tool_result_while_disconnected() {
    passes(s13().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s21_instruction_change() {
    passes(s21().await);
}

/// S01: goAway while idle: the session resumes from its fresh handle before the deadline,
/// the old socket closed first, and the new connection carries nothing but the next turn.
async fn s01() -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut seen) = open(&server, fast_policy(), |b| b).await?;
    seen.barrier(&session, "one").await?;
    let before = s_entries(&server);
    server.faults().go_away(Duration::from_secs(50));
    let report = seen.reconnected().await?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    ensure(
        matches!(seen.reasons().as_slice(), [ReconnectReason::GoAway { .. }]),
        || format!("reasons: {:?}", seen.reasons()),
    )?;
    seen.barrier(&session, "two").await?;
    let connections = server.connections();
    ensure_eq("connections", connections.len(), 2)?;
    ensure(connections[1].resumed_from.is_some(), || {
        "the second connection did not resume".into()
    })?;
    ensure(
        setup_of(&connections[1])["setup"]
            .get("historyConfig")
            .is_none(),
        || "historyConfig on a resume".into(),
    )?;
    expect_kinds(
        "frames after the resumed setup",
        &connections[1],
        &["clientContent"],
    )?;
    let mut expected = before;
    expected.extend(strings(&["user: two", "model: echo: two"]));
    ends_with(&server, session, &mut seen, &expected, 2, 1).await
}

/// S04: a TCP reset while idle, on 2.5 and 3.1: resumed with backoff from the newest handle,
/// nothing replayed, the next turn in the family's own frame.
async fn s04() -> Outcome {
    for family in [Family::Gemini25, Family::Gemini31] {
        s04_on(family)
            .await
            .map_err(|e| format!("{family:?}: {e}"))?;
    }
    Ok(())
}

async fn s04_on(family: Family) -> Outcome {
    let server = server(family, |c| c).await;
    let (session, mut seen) = open(&server, fast_policy(), |b| b).await?;
    seen.barrier(&session, "one").await?;
    let handle = last_handle_on(&server, 0);
    server.faults().drop_connections();
    let report = seen.reconnected().await?;
    ensure(
        matches!(
            seen.reasons().as_slice(),
            [ReconnectReason::ConnectionLost { code: 1006, .. }]
        ),
        || format!("reasons: {:?}", seen.reasons()),
    )?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    ensure(report.gap >= ms(15), || {
        format!("no backoff: gap {:?}", report.gap)
    })?;
    ensure_eq(
        "resumed from",
        server
            .connections()
            .get(1)
            .and_then(|c| c.resumed_from.clone()),
        handle,
    )?;
    seen.barrier(&session, "two").await?;
    let kind = match family {
        Family::Gemini31 => "realtimeInput",
        _ => "clientContent",
    };
    expect_kinds(
        "frames after the resumed setup",
        &server.connections()[1],
        &[kind],
    )?;
    let expected = [
        "user: one",
        "model: echo: one",
        "user: two",
        "model: echo: two",
    ];
    ends_with(&server, session, &mut seen, &expected, 2, 1).await
}

/// S13: a tool call arrives, the socket is reset, and the tool finishes while the session
/// reconnects. The newest handle predates the call, so the resumed session does not know
/// it: the result is never sent as an orphan `toolResponse`, it reaches the server once with
/// its call, the model answers it once, and the tool is not run again.
async fn s13() -> Outcome {
    let server = server(Family::Gemini25, |c| c.with_chunk_interval(ms(20))).await;
    let (session, mut seen) =
        open(&server, fast_policy(), |b| b.tools(vec![weather_tool()])).await?;
    seen.barrier(&session, "hello").await?;
    session
        .send_text("what is the weather in Paris? get_weather")
        .map_err(|e| e.to_string())?;
    let call_id = seen.tool_call().await?;
    server.faults().drop_connections();
    seen.until("Reconnecting", |e| {
        matches!(e, SessionEvent::Reconnecting { .. })
    })
    .await?;
    session
        .send_tool_result(call_id.clone(), json!({"temperature": 21}))
        .map_err(|e| e.to_string())?;
    seen.reconnected().await?;
    seen.turn_complete("the answer to the result").await?;
    seen.barrier(&session, "thanks").await?;
    ensure_eq(
        "rejected toolResponses",
        rejected_responses(&server),
        vec![],
    )?;
    ensure_eq("tool calls the model made", calls_issued(&server), 1)?;
    let s = s_entries(&server);
    let results = s
        .iter()
        .filter(|e| e.starts_with(&format!("response {call_id} ")))
        .count();
    ensure_eq("results in S", results, 1)?;
    let answers = s
        .iter()
        .filter(|e| e.starts_with("model: get_weather returned"))
        .count();
    ensure_eq("answers to the result in S", answers, 1)?;
    l_equals_s(&server, &session)?;
    nothing_twice(&server, &seen)?;
    seen.reconnects_exactly(1)?;
    close(session).await
}

/// S21: an instruction change on 2.5 reaches the server through the setup of a resumed
/// connection: no history replay, no instruction turn, the same server session.
async fn s21() -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut seen) = open(&server, fast_policy(), |b| b.instructions("Be brief.")).await?;
    seen.barrier(&session, "one").await?;
    let session_id = server.latest_session().map(|s| s.id());
    session
        .update_instructions("Be verbose.")
        .map_err(|e| e.to_string())?;
    let report = seen.reconnected().await?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    ensure(
        matches!(seen.reasons().as_slice(), [ReconnectReason::ConfigChange]),
        || format!("reasons: {:?}", seen.reasons()),
    )?;
    seen.barrier(&session, "two").await?;
    let connections = server.connections();
    ensure_eq("connections", connections.len(), 2)?;
    ensure_eq(
        "instruction in the new setup",
        setup_instruction(&setup_of(&connections[1])),
        Some("Be verbose.".to_owned()),
    )?;
    expect_kinds(
        "frames after the resumed setup",
        &connections[1],
        &["clientContent"],
    )?;
    ensure_eq(
        "server instruction",
        server
            .latest_session()
            .and_then(|s| s.system_instruction().map(str::to_owned)),
        Some("Be verbose.".to_owned()),
    )?;
    ensure_eq(
        "same server session",
        server.latest_session().map(|s| s.id()),
        session_id,
    )?;
    let expected = [
        "user: one",
        "model: echo: one",
        "user: two",
        "model: echo: two",
    ];
    ends_with(&server, session, &mut seen, &expected, 2, 1).await
}
