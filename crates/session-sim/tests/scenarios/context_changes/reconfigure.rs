//! S20–S22: edits of delivered items, instruction changes and tool-set changes.

use std::sync::Arc;

use agent_glue::{ReconnectReason, ReconnectStrategy, SessionEvent};
use ctx_model::{ChatContext, Message};
use gemini_fake::{Family, ResponseFate};
use gemini_transport::wire::{Behavior, FunctionDeclaration};
use resume_policy::{Backoff, DefaultPolicy, DivergenceReason, EditHandling};
use serde_json::{Value, json};
use session_sim::Pair;

use crate::runner::{Outcome, PolicyKind, ensure, ensure_eq};
use crate::support::*;

// S20 ------------------------------------------------------------------------------------

/// `L` with its first user message edited and the answer to the second turn removed.
fn edited(pair: &Pair) -> Result<(ChatContext, u64), String> {
    let (version, mut ctx) = pair.snapshot();
    let ids: Vec<_> = ctx.ids().cloned().collect();
    ensure(ids.len() >= 4, || format!("L too short to edit: {ids:?}"))?;
    ctx.replace(Message::user(ids[0].clone(), "one, edited"))
        .map_err(err)?;
    ctx.remove(&ids[3]).map_err(err)?;
    Ok((ctx, version))
}

pub(super) fn s20(policy: PolicyKind) -> Outcome {
    each_case([Family::Gemini25, Family::Gemini31], |family| {
        s20_reseed(policy, family)
    })?;
    if policy == PolicyKind::Default {
        s20_report()?;
    }
    Ok(())
}

/// The default handling: a fresh session seeded from `L` with the edit, as history that asks
/// for no answer (`turnComplete: false` on 2.5; `historyConfig` and `turnComplete: true` on 3.1).
fn s20_reseed(policy: PolicyKind, family: Family) -> Outcome {
    let mut pair = open(family, policy.arc(), |b| b)?;
    barrier(&mut pair, "one")?;
    barrier(&mut pair, "two")?;
    let old_session = pair.server().latest_session().map(|s| s.id());
    let (ctx, version) = edited(&pair)?;
    let want = l_entries(&ctx);
    pair.update_chat_ctx(ctx, version).map_err(err)?;
    let report = reconnected(&mut pair)?;
    barrier(&mut pair, "three")?;
    let mut expected = want;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    contexts_are(&pair, &expected)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
    ensure(
        read(&pair).any(|e| {
            matches!(
                e,
                SessionEvent::Reconnecting {
                    reason: ReconnectReason::ConfigChange
                }
            )
        }),
        || "the reconnect was not for the edit".into(),
    )?;
    let connections = pair.server().connections();
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
    let seeded = pair.server().latest_session();
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
        let old = pair.server().session(id).map(|s| from_s(s.context()));
        ensure(
            old.is_some_and(|entries| !entries.iter().any(|e| e.contains("edited"))),
            || "the old session holds the edit".into(),
        )?;
    }
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

/// `EditHandling::Report`: the edit is reported and the server keeps what it holds.
fn s20_report() -> Outcome {
    let policy = DefaultPolicy::new(Backoff::default(), EditHandling::Report);
    let mut pair = open(Family::Gemini25, Arc::new(policy), |b| b)?;
    barrier(&mut pair, "one")?;
    barrier(&mut pair, "two")?;
    let before = s_entries(pair.server());
    let old_session = pair.server().latest_session().map(|s| s.id());
    let (ctx, version) = edited(&pair)?;
    let result = pair.update_chat_ctx(ctx, version);
    if result.is_ok() {
        until(&mut pair, "the edit reported", |e| {
            matches!(
                e,
                SessionEvent::Divergence {
                    why: DivergenceReason::EditOfDeliveredItem,
                    ..
                }
            )
        })?;
    }
    barrier(&mut pair, "three")?;
    ensure_eq(
        "report: same server session",
        pair.server().latest_session().map(|s| s.id()),
        old_session,
    )?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    ensure_eq(
        "report: S keeps what it holds",
        s_entries(pair.server()),
        expected,
    )?;
    ensure(
        all_frames_mentioning(pair.server(), "one, edited").is_empty(),
        || "report: the edit was sent".into(),
    )?;
    no_rejections(pair.server())?;
    // By design `S` keeps the old text and the removed answer, which `L` no longer holds: the
    // edit was reported, not applied. Everything else of the invariant holds.
    finish_except(pair, &["context"])
}

// S21 ------------------------------------------------------------------------------------

pub(super) fn s21(policy: PolicyKind) -> Outcome {
    s21_on_25(policy)?;
    s21_on_38(policy)
}

/// The instruction the latest server session holds.
fn server_instruction(pair: &Pair) -> Option<String> {
    pair.server()
        .latest_session()
        .and_then(|s| s.system_instruction().map(str::to_owned))
}

fn s21_on_25(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.arc(), |b| {
        b.instructions("Be brief.")
    })?;
    barrier(&mut pair, "one")?;
    let session_id = pair.server().latest_session().map(|s| s.id());
    for (n, text) in [(1usize, "Be verbose."), (2, "Be kind.")] {
        pair.update_instructions(text).map_err(err)?;
        let report = reconnected(&mut pair).map_err(|e| {
            format!(
                "the instruction change never reached the server (it holds {:?}): {e}",
                server_instruction(&pair)
            )
        })?;
        ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
        barrier(&mut pair, &format!("after {n}"))?;
        let connections = pair.server().connections();
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
            server_instruction(&pair),
            Some(text.to_owned()),
        )?;
    }
    ensure_eq(
        "same server session",
        pair.server().latest_session().map(|s| s.id()),
        session_id,
    )?;
    ensure(
        !s_entries(pair.server()).iter().any(|e| e.contains("Be ")),
        || "an instruction turn in S".into(),
    )?;
    l_equals_s(&pair)?;
    ensure_eq("generations", generations(pair.server()), 3)?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 2)?;
    finish(pair)
}

fn s21_on_38(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini38, policy.arc(), |b| {
        b.instructions("Be brief.")
    })?;
    barrier(&mut pair, "one")?;
    pair.update_instructions("Be verbose.").map_err(err)?;
    barrier(&mut pair, "two")?;
    let connections = pair.server().connections();
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
        reconnects_exactly(&mut pair, 0)?;
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
        reconnects_exactly(&mut pair, 1)?;
    }
    ensure_eq(
        "3.8 server instruction",
        server_instruction(&pair),
        Some("Be verbose.".to_owned()),
    )?;
    l_equals_s(&pair)?;
    no_rejections(pair.server())?;
    finish(pair)
}

// S22 ------------------------------------------------------------------------------------

fn time_tool() -> FunctionDeclaration {
    FunctionDeclaration::new("get_time", "Current time in a city").with_behavior(Behavior::Blocking)
}

pub(super) fn s22(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.arc(), |b| {
        b.tools(vec![weather_tool()])
    })?;
    barrier(&mut pair, "one")?;
    pair.send_text("what does get_weather say for Paris")
        .map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    pair.update_tools(vec![weather_tool(), time_tool()])
        .map_err(err)?;
    let output = json!({ "sky": "clear" });
    pair.send_tool_result(&call_id, output.clone())
        .map_err(err)?;
    // The model continues from the result, and the restart happens: in either order (the
    // restart may wait for the turn to end, or carry the result to the new connection).
    let mark = pair.read_events().len();
    let report = reconnected(&mut pair).map_err(|e| {
        let held = pair.server().latest_session().map(|s| s.tools().to_vec());
        format!("the tool change never reached the server (it holds {held:?}): {e}")
    })?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let answered = pair.read_events()[mark..]
        .iter()
        .any(|(_, e)| matches!(e, SessionEvent::TurnComplete));
    if !answered {
        turn_complete(&mut pair, "the answer to the result")?;
    }
    let answers = pair.server().latest_session().map(|s| {
        s.answers()
            .iter()
            .filter(|a| a.text.contains("get_weather returned"))
            .count()
    });
    ensure_eq("answers to the result", answers, Some(1))?;
    barrier(&mut pair, "two")?;
    let connections = pair.server().connections();
    ensure_eq("connections", connections.len(), 2)?;
    let second = &connections[1];
    // The current handle: the newest the first connection received.
    ensure_eq(
        "resumed from",
        second.resumed_from.clone(),
        last_handle_on(pair.server(), 0),
    )?;
    ensure_eq(
        "tools in the new setup",
        setup_tools(&setup_of(second)),
        vec!["get_weather".to_owned(), "get_time".to_owned()],
    )?;
    let snapshot = pair.server().latest_session().ok_or("no server session")?;
    // "one", the question (answered by the call), the continuation, "two".
    ensure_eq("generations", snapshot.generations(), 4)?;
    ensure_eq(
        "tool calls (never run twice)",
        snapshot.tool_calls().len(),
        1,
    )?;
    let responses = all_frames_mentioning(pair.server(), "clear");
    ensure_eq("frames carrying the result", responses.len(), 1)?;
    for response in snapshot.tool_responses() {
        ensure(response.fate == ResponseFate::Accepted, || {
            format!("tool response not accepted: {response:?}")
        })?;
    }
    let entry = format!("response {call_id} get_weather {output}");
    ensure_eq(
        "the result in S",
        occurrences_in_s(pair.server(), &entry),
        1,
    )?;
    l_equals_s(&pair)?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}
