//! S20–S22: edits of delivered items, instruction changes and tool-set changes.

use agent_glue::{LiveSession, ReconnectReason, ReconnectStrategy, SessionEvent};
use ctx_model::{ChatContext, Message};
use gemini_fake::{Family, ResponseFate};
use gemini_transport::wire::FunctionDeclaration;
use resume_policy::{Backoff, DefaultPolicy, DivergenceReason, EditHandling};
use serde_json::{Value, json};

use crate::common::*;
use crate::runner::{Outcome, PolicyKind, ensure, ensure_eq};
use crate::support::*;

use super::observe::*;

// S20 ------------------------------------------------------------------------------------

/// `L` with its first user message edited and the answer to the second turn removed.
fn edited(session: &LiveSession) -> Result<(ChatContext, u64), String> {
    let (version, mut ctx) = session.snapshot();
    let ids: Vec<_> = ctx.ids().cloned().collect();
    ensure(ids.len() >= 4, || format!("L too short to edit: {ids:?}"))?;
    ctx.replace(Message::user(ids[0].clone(), "one, edited"))
        .map_err(err)?;
    ctx.remove(&ids[3]).map_err(err)?;
    Ok((ctx, version))
}

pub(super) async fn s20(policy: PolicyKind) -> Outcome {
    each_case([Family::Gemini25, Family::Gemini31], |family| {
        s20_reseed(policy, family)
    })
    .await?;
    if policy == PolicyKind::Default {
        s20_report().await?;
    }
    Ok(())
}

/// The default handling: a fresh session seeded from `L` with the edit, as history that asks
/// for no answer (`turnComplete: false` on 2.5; `historyConfig` and `turnComplete: true` on 3.1).
async fn s20_reseed(policy: PolicyKind, family: Family) -> Outcome {
    let server = server(family, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), |b| b).await?;
    watch.barrier(&session, "one").await?;
    watch.barrier(&session, "two").await?;
    let old_session = server.latest_session().map(|s| s.id());
    let (ctx, version) = edited(&session)?;
    let want = l_entries(&ctx);
    session.update_chat_ctx(ctx, version).map_err(err)?;
    let report = watch.reconnected().await?;
    watch.barrier(&session, "three").await?;
    let mut expected = want;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    contexts_are(&server, &session, &expected)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
    ensure(
        watch.events.iter().any(|e| {
            matches!(
                e,
                SessionEvent::Reconnecting {
                    reason: ReconnectReason::ConfigChange
                }
            )
        }),
        || "the reconnect was not for the edit".into(),
    )?;
    let connections = server.connections();
    let fresh = connections.last().ok_or("no connection")?;
    let setup = setup_of(fresh);
    let history = history_in_client_content(&setup);
    ensure_eq("historyConfig", history, family == Family::Gemini31)?;
    let seeds: Vec<Value> = fresh
        .frames_of("clientContent")
        .map(|f| f.json())
        .filter(|j| j.to_string().contains("one, edited"))
        .collect();
    ensure_eq("seeds", seeds.len(), 1)?;
    ensure_eq(
        "the seed's turnComplete",
        asks_for_answer(&seeds[0]),
        history,
    )?;
    // A new server session, and the seed triggered no answer (only the barrier's).
    let seeded = server.latest_session();
    ensure(seeded.as_ref().map(|s| s.id()) != old_session, || {
        "no new server session".into()
    })?;
    ensure_eq(
        "generations of the seeded session",
        seeded.map(|s| s.generations()),
        Some(1),
    )?;
    // The old session never got the edit, and nobody claims it did.
    if let Some(id) = old_session {
        let old = server.session(id).map(|s| from_s(s.context()));
        ensure(
            old.is_some_and(|entries| !entries.iter().any(|e| e.contains("edited"))),
            || "the old session holds the edit".into(),
        )?;
    }
    no_rejections(&server)?;
    watch.reconnects_exactly(1)?;
    close(session).await
}

/// `EditHandling::Report`: the edit is reported and the server keeps what it holds.
async fn s20_report() -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let policy = DefaultPolicy::new(Backoff::default(), EditHandling::Report);
    let (session, mut watch) = open(&server, Box::new(policy), |b| b).await?;
    watch.barrier(&session, "one").await?;
    watch.barrier(&session, "two").await?;
    let before = s_entries(&server);
    let old_session = server.latest_session().map(|s| s.id());
    let (ctx, version) = edited(&session)?;
    let result = session.update_chat_ctx(ctx, version);
    if result.is_ok() {
        watch
            .until("the edit reported", |e| {
                matches!(
                    e,
                    SessionEvent::Divergence {
                        why: DivergenceReason::EditOfDeliveredItem,
                        ..
                    }
                )
            })
            .await?;
    }
    watch.barrier(&session, "three").await?;
    ensure_eq(
        "report: same server session",
        server.latest_session().map(|s| s.id()),
        old_session,
    )?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    ensure_eq(
        "report: S keeps what it holds",
        s_entries(&server),
        expected,
    )?;
    ensure(
        all_frames_mentioning(&server, "one, edited").is_empty(),
        || "report: the edit was sent".into(),
    )?;
    no_rejections(&server)?;
    close(session).await
}

// S21 ------------------------------------------------------------------------------------

pub(super) async fn s21(policy: PolicyKind) -> Outcome {
    s21_on_25(policy).await?;
    s21_on_38(policy).await
}

async fn s21_on_25(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) =
        open(&server, policy.boxed(), |b| b.instructions("Be brief.")).await?;
    watch.barrier(&session, "one").await?;
    let session_id = server.latest_session().map(|s| s.id());
    for (n, text) in [(1usize, "Be verbose."), (2, "Be kind.")] {
        session.update_instructions(text).map_err(err)?;
        let report = watch.reconnected().await.map_err(|e| {
            let held = server
                .latest_session()
                .and_then(|s| s.system_instruction().map(str::to_owned));
            format!("the instruction change never reached the server (it holds {held:?}): {e}")
        })?;
        ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
        watch.barrier(&session, &format!("after {n}")).await?;
        let connections = server.connections();
        ensure_eq("connections", connections.len(), n + 1)?;
        let latest = &connections[n];
        ensure(latest.resumed_from.is_some(), || {
            format!("connection {} did not resume", latest.id)
        })?;
        let setup = setup_of(latest);
        ensure_eq(
            "instruction in the new setup",
            setup_instruction(&setup),
            Some(text.to_owned()),
        )?;
        ensure(setup["setup"].get("historyConfig").is_none(), || {
            "historyConfig on a resume".into()
        })?;
        // No history replay, no instruction turn: only the barrier's turn.
        expect_kinds("frames after the resumed setup", latest, &["clientContent"])?;
        ensure_eq(
            "server instruction",
            server
                .latest_session()
                .and_then(|s| s.system_instruction().map(str::to_owned)),
            Some(text.to_owned()),
        )?;
    }
    ensure_eq(
        "same server session",
        server.latest_session().map(|s| s.id()),
        session_id,
    )?;
    ensure(
        !s_entries(&server).iter().any(|e| e.contains("Be ")),
        || "an instruction turn in S".into(),
    )?;
    l_equals_s(&server, &session)?;
    ensure_eq("generations", generations(&server), 3)?;
    no_rejections(&server)?;
    watch.reconnects_exactly(2)?;
    close(session).await
}

async fn s21_on_38(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini38, |c| c).await;
    let (session, mut watch) =
        open(&server, policy.boxed(), |b| b.instructions("Be brief.")).await?;
    watch.barrier(&session, "one").await?;
    session.update_instructions("Be verbose.").map_err(err)?;
    watch.barrier(&session, "two").await?;
    let connections = server.connections();
    let via_update = connections.len() == 1;
    if via_update {
        let updates: Vec<Value> = connections[0]
            .frames_of("contextUpdate")
            .map(|f| f.json())
            .collect();
        ensure_eq("3.8 contextUpdate frames", updates.len(), 1)?;
        ensure(updates[0].to_string().contains("Be verbose."), || {
            format!("3.8 contextUpdate without the instruction: {}", updates[0])
        })?;
        watch.reconnects_exactly(0)?;
    } else {
        // Routed through a reconnect: the setup carries it, nothing is replayed.
        let latest = &connections[connections.len() - 1];
        ensure_eq(
            "3.8 instruction in the new setup",
            setup_instruction(&setup_of(latest)),
            Some("Be verbose.".to_owned()),
        )?;
        expect_kinds(
            "3.8 frames after the resumed setup",
            latest,
            &["clientContent"],
        )?;
        watch.reconnects_exactly(1)?;
    }
    ensure_eq(
        "3.8 server instruction",
        server
            .latest_session()
            .and_then(|s| s.system_instruction().map(str::to_owned)),
        Some("Be verbose.".to_owned()),
    )?;
    l_equals_s(&server, &session)?;
    no_rejections(&server)?;
    close(session).await
}

// S22 ------------------------------------------------------------------------------------

fn time_tool() -> FunctionDeclaration {
    FunctionDeclaration::new("get_time", "Current time in a city")
}

pub(super) async fn s22(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) =
        open(&server, policy.boxed(), |b| b.tools(vec![weather_tool()])).await?;
    watch.barrier(&session, "one").await?;
    session
        .send_text("what does get_weather say for Paris")
        .map_err(err)?;
    let call = watch
        .until("the tool call", |e| {
            matches!(e, SessionEvent::ToolCall { .. })
        })
        .await?;
    let SessionEvent::ToolCall { call_id, .. } = call else {
        return Err("no tool call".into());
    };
    session
        .update_tools(vec![weather_tool(), time_tool()])
        .map_err(err)?;
    let output = json!({ "sky": "clear" });
    session
        .send_tool_result(call_id.clone(), output.clone())
        .map_err(err)?;
    // The model continues from the result, and the restart happens: in either order (the
    // restart may wait for the turn to end, or carry the result to the new connection).
    let mark = watch.events.len();
    let report = watch.reconnected().await.map_err(|e| {
        let held = server.latest_session().map(|s| s.tools().to_vec());
        format!("the tool change never reached the server (it holds {held:?}): {e}")
    })?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let answered = watch.events[mark..]
        .iter()
        .any(|e| matches!(e, SessionEvent::TurnComplete));
    if !answered {
        watch
            .until("the answer to the result", |e| {
                matches!(e, SessionEvent::TurnComplete)
            })
            .await?;
    }
    let answers = server.latest_session().map(|s| {
        s.answers()
            .iter()
            .filter(|a| a.text.contains("get_weather returned"))
            .count()
    });
    ensure_eq("answers to the result", answers, Some(1))?;
    watch.barrier(&session, "two").await?;
    let connections = server.connections();
    ensure_eq("connections", connections.len(), 2)?;
    let second = &connections[1];
    // The current handle: the newest the first connection received.
    ensure_eq(
        "resumed from",
        second.resumed_from.clone(),
        last_handle_on(&server, 0),
    )?;
    ensure_eq(
        "tools in the new setup",
        setup_tools(&setup_of(second)),
        vec!["get_weather".to_owned(), "get_time".to_owned()],
    )?;
    let snapshot = server.latest_session().ok_or("no server session")?;
    // "one", the question (answered by the call), the continuation, "two".
    ensure_eq("generations", snapshot.generations(), 4)?;
    ensure_eq(
        "tool calls (never run twice)",
        snapshot.tool_calls().len(),
        1,
    )?;
    let responses = all_frames_mentioning(&server, "clear");
    ensure_eq("frames carrying the result", responses.len(), 1)?;
    for response in snapshot.tool_responses() {
        ensure(response.fate == ResponseFate::Accepted, || {
            format!("tool response not accepted: {response:?}")
        })?;
    }
    let entry = format!("response {call_id} get_weather {output}");
    ensure_eq("the result in S", occurrences_in_s(&server, &entry), 1)?;
    l_equals_s(&server, &session)?;
    no_rejections(&server)?;
    watch.reconnects_exactly(1)?;
    close(session).await
}
