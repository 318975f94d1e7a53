//! Non-blocking tools and `interactionStatus` (docs/protocol.md section 10.1): S49–S52. On
//! gemini-3.8-live a declaration without `behavior` is `NON_BLOCKING`: after the call the
//! model talks on and completes its turn, and each result is taken up later by a model turn
//! of its own, as its `scheduling` says (`SILENT` only enters the context), with
//! `willContinue: true` marking an interim result. The session applies `WHEN_IDLE` itself
//! (it holds the result, and everything the application sends after it, until the model is
//! idle, then sends it as `INTERRUPT`), so that every answer is matched to what it answers.

use std::time::Duration;

use agent_glue::conduit::Command;
use agent_glue::{ReconnectReason, Scheduling, SessionEvent};
use gemini_fake::{Family, ResponseFate, SimServer};
use gemini_transport::wire::{FunctionDeclaration, ThinkingLevel};
use serde_json::json;
use session_sim::Pair;

use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S49",
            title: "non-blocking call: a result sent while the model talks waits for the turn's end, goes once as INTERRUPT, before what came after it",
            body: s49,
            // Holding and scheduling are the session's, whatever the policy.
            exposes: &[],
        },
        Scenario {
            id: "S50",
            title: "interim and final results of a non-blocking call around a drop: each reaches the server once, in order",
            body: s50,
            exposes: &[],
        },
        Scenario {
            id: "S51",
            title: "a non-blocking result the model answered before the drop is replayed SILENT: answered once",
            body: s51,
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S53",
            title: "extended thinking: a result that reaches the server as a filler starts is answered after it; L puts the filler before the result",
            body: s53,
            exposes: &[],
        },
        Scenario {
            id: "S52",
            title: "extended thinking: a turn completed IN_PROGRESS is not idle; a goAway waits for IDLE",
            body: s52,
            exposes: &[],
        },
    ]
}

#[test]
fn s49_non_blocking_result_waits_for_the_turn() {
    check("S49");
}

#[test]
fn s50_interim_and_final_results_across_a_drop() {
    check("S50");
}

#[test]
fn s51_answered_result_replayed_silent() {
    check("S51");
}

#[test]
fn s52_in_progress_is_not_idle() {
    check("S52");
}

#[test]
fn s53_filler_before_a_late_result() {
    check("S53");
}

/// The user's question that makes the scripted model call `get_weather`.
const ASK_WEATHER: &str = "what is the weather in Paris? get_weather";

/// `get_weather` declared without `behavior`: non-blocking on 3.8.
fn weather() -> FunctionDeclaration {
    FunctionDeclaration::new("get_weather", "Current weather for a city")
}

/// A 3.8 pair with the non-blocking `get_weather`, answers streaming one word per 20 ms.
fn open_38(policy: PolicyKind, family: Family) -> Result<Pair, String> {
    open(family, policy.arc(), |b| {
        let b = b
            .tools(vec![weather()])
            .server(|c| c.with_chunk_interval(Duration::from_millis(20)));
        if family == Family::Gemini38ExtendedThinking {
            b.session(|s| s.thinking_level(ThinkingLevel::Low))
        } else {
            b
        }
    })
}

/// The result of `call_id`, delivered as `scheduling` and `will_continue` say.
fn result(
    pair: &mut Pair,
    call_id: &str,
    output: serde_json::Value,
    scheduling: Option<Scheduling>,
    will_continue: bool,
) -> Outcome {
    pair.command(Command::ToolResult {
        call_id: call_id.to_owned(),
        output,
        is_error: false,
        scheduling,
        will_continue,
    })
    .map(|_| ())
    .map_err(err)
}

/// Every frame of kind `kind` connection `k` received, as raw text.
fn frames(server: &SimServer, k: usize, kind: &str) -> Vec<(u64, String)> {
    server
        .connections()
        .get(k)
        .map(|c| {
            c.frames
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| (f.index, f.raw.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The fates of the responses naming `call_id`, over every server session.
fn fates(server: &SimServer, call_id: &str) -> Vec<ResponseFate> {
    all_sessions(server)
        .iter()
        .flat_map(|s| s.tool_responses().to_vec())
        .filter(|r| r.id == call_id)
        .map(|r| r.fate)
        .collect()
}

/// The model talks on after the call ("working on get_weather"); the application answers at
/// once (`WHEN_IDLE`) and types a follow-up. Neither reaches the server before the model's
/// turn ends; then the result goes, once, as `INTERRUPT`, and the follow-up after it; the
/// model answers each once, and `L` equals the server's context.
fn s49(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, Family::Gemini38)?;
    barrier(&mut pair, "hello")?;
    pair.send_text(ASK_WEATHER).map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    result(
        &mut pair,
        &call_id,
        json!({"temperature": 21}),
        Some(Scheduling::WhenIdle),
        false,
    )?;
    pair.send_text("and thanks").map_err(err)?;
    // The model's turn is still open: nothing went.
    pair.run_for(10);
    ensure_eq(
        "tool responses on the wire while the model talks",
        frames(pair.server(), 0, "toolResponse").len(),
        0,
    )?;
    turn_complete(&mut pair, "the end of the turn that called the tool")?;
    until(&mut pair, "the answer to the follow-up", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })?;
    pair.run_for(2_000);
    let responses = frames(pair.server(), 0, "toolResponse");
    ensure_eq("tool responses on the wire", responses.len(), 1)?;
    let (at, raw) = &responses[0];
    ensure(raw.contains("\"scheduling\":\"INTERRUPT\""), || {
        format!("the result is sent to be answered at once: {raw}")
    })?;
    let follow_up = frames(pair.server(), 0, "clientContent")
        .into_iter()
        .find(|(_, raw)| raw.contains("and thanks"))
        .map(|(index, _)| index)
        .ok_or("the follow-up never reached the server")?;
    ensure(follow_up > *at, || {
        format!("the follow-up (frame {follow_up}) went after the result (frame {at})")
    })?;
    ensure_eq(
        "fates of the result",
        fates(pair.server(), &call_id),
        vec![ResponseFate::Accepted],
    )?;
    answers_once(pair.server())?;
    finish(pair)
}

/// An interim result (`SILENT`, `willContinue`) reaches the server; the connection drops; the
/// final result is sent while the session reconnects. The server gets each once (the interim
/// one is never replayed), the model answers the final one once, and `L` equals `S`.
fn s50(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, Family::Gemini38)?;
    barrier(&mut pair, "hello")?;
    pair.send_text(ASK_WEATHER).map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    turn_complete(&mut pair, "the end of the turn that called the tool")?;
    result(
        &mut pair,
        &call_id,
        json!({"progress": "looking"}),
        Some(Scheduling::Silent),
        true,
    )?;
    barrier(&mut pair, "still there?")?;
    ensure_eq(
        "fates after the interim result",
        fates(pair.server(), &call_id),
        vec![ResponseFate::Interim],
    )?;
    pair.faults().drop_connections();
    reconnecting(&mut pair)?;
    result(&mut pair, &call_id, json!({"temperature": 21}), None, false)?;
    reconnected(&mut pair)?;
    until(&mut pair, "the answer to the final result", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })?;
    pair.run_for(2_000);
    ensure_eq(
        "the interim result in the server's context",
        occurrences_in_s(
            pair.server(),
            &format!("response {call_id} get_weather {{\"progress\":\"looking\"}}"),
        ),
        1,
    )?;
    ensure_eq(
        "the final result in the server's context",
        occurrences_in_s(
            pair.server(),
            &format!("response {call_id} get_weather {{\"temperature\":21}}"),
        ),
        1,
    )?;
    tools_ran_once(&pair)?;
    finish(pair)
}

/// The model answers a non-blocking result while the server withholds handles; the
/// connection closes. The resumed session (from a handle that predates the result) gets the
/// result again, `SILENT`, and the model's answer as history: it does not answer twice.
fn s51(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, Family::Gemini38)?;
    barrier(&mut pair, "hello")?;
    pair.send_text(ASK_WEATHER).map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    turn_complete(&mut pair, "the end of the turn that called the tool")?;
    pair.run_for(50);
    pair.faults().withhold_handles();
    result(&mut pair, &call_id, json!({"temperature": 21}), None, false)?;
    turn_complete(&mut pair, "the answer to the result")?;
    pair.faults().close_connections(1000, "");
    reconnecting(&mut pair)?;
    pair.faults().release_handles();
    reconnected(&mut pair)?;
    pair.run_for(3_000);
    let replayed = frames(pair.server(), 1, "toolResponse");
    for (_, raw) in &replayed {
        ensure(raw.contains("\"scheduling\":\"SILENT\""), || {
            format!("a result answered already goes SILENT: {raw}")
        })?;
    }
    let answers = all_sessions(pair.server())
        .iter()
        .flat_map(|s| s.answers().to_vec())
        .filter(|a| !a.interrupted && a.text.contains("get_weather returned"))
        .count();
    ensure_eq("answers to the result", answers, 1)?;
    finish(pair)
}

/// On extended thinking the turn that calls a tool completes `IN_PROGRESS` (the call is
/// pending); a goAway then does not rotate the connection: the session waits until a turn
/// completes `IDLE` (after the result's answer), then rotates. `Idle` comes only then.
fn s52(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, Family::Gemini38ExtendedThinking)?;
    barrier(&mut pair, "hello")?;
    until(&mut pair, "Idle after the greeting", |e| {
        matches!(e, SessionEvent::Idle)
    })?;
    let idle = |pair: &Pair| {
        pair.events()
            .iter()
            .filter(|(_, e)| matches!(e, SessionEvent::Idle))
            .count()
    };
    let idle_before = idle(&pair);
    pair.send_text(ASK_WEATHER).map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    turn_complete(&mut pair, "the end of the turn that called the tool")?;
    pair.run_for(100);
    ensure_eq(
        "Idle events after a turn completed IN_PROGRESS",
        idle(&pair),
        idle_before,
    )?;
    pair.faults().go_away(Duration::from_secs(30));
    pair.run_for(1_000);
    ensure_eq(
        "rotations while the interaction is in progress",
        reasons(&pair).len(),
        0,
    )?;
    result(&mut pair, &call_id, json!({"temperature": 21}), None, false)?;
    until(&mut pair, "Idle", |e| matches!(e, SessionEvent::Idle))?;
    until(&mut pair, "the rotation", |e| {
        matches!(
            e,
            SessionEvent::Reconnecting {
                reason: ReconnectReason::GoAway { .. }
            }
        )
    })?;
    reconnected(&mut pair)?;
    finish(pair)
}

/// On extended thinking the model speaks a filler three seconds after it went quiet while a
/// call is pending. The result is sent just before the filler starts, as the client sees the
/// model quiet, and reaches the server just after: the server holds the filler before the
/// result and answers the result after the filler. The turn that completes `IDLE` first (the
/// filler) is taken to answer the result; the answer that follows at once, before any
/// resumable handle, shows it was not, and the filler moves before the result: `L` equals the
/// server's context, with nothing reported.
fn s53(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, Family::Gemini38ExtendedThinking)?;
    barrier(&mut pair, "hello")?;
    pair.send_text(ASK_WEATHER).map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    turn_complete(&mut pair, "the end of the turn that called the tool")?;
    // The server completed that turn one latency (5 ms) earlier and speaks a filler 3 s
    // after; the result, sent now, arrives 2 ms after the filler started.
    let filler_at_server = pair.now() - 5 + 3_000;
    pair.run_until_time(filler_at_server - 5 + 2);
    result(&mut pair, &call_id, json!({"temperature": 21}), None, false)?;
    until(&mut pair, "Idle", |e| matches!(e, SessionEvent::Idle))?;
    pair.run_for(3_000);
    ensure_eq(
        "entries of the server's context from the call on",
        s_entries(pair.server())
            .into_iter()
            .skip_while(|e| !e.starts_with("call "))
            .collect::<Vec<_>>(),
        vec![
            format!("call {call_id} get_weather"),
            "model: working on get_weather".to_owned(),
            "model: still working on get_weather".to_owned(),
            format!("response {call_id} get_weather {{\"temperature\":21}}"),
            "model: get_weather returned {\"temperature\":21}".to_owned(),
        ],
    )?;
    ensure_eq(
        "turns reported as placed by a guess",
        divergences(&pair)
            .into_iter()
            .filter(|why| *why == resume_policy::DivergenceReason::TurnOrderUnknown)
            .count(),
        0,
    )?;
    finish(pair)
}
