//! Tool calls across reconnects: S13–S16.

use std::time::Duration;

use agent_glue::SessionEvent;
use gemini_fake::{Family, SimServer};
use serde_json::json;

use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S13",
            title: "tool result completes while disconnected: delivered once, no orphan, no re-run",
            body: s13,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S14",
            title: "tool result queued while a restart is pending: carried over, delivered once",
            body: s14,
            // The legacy policies never restart for a tool-set change (they fail S22 for it).
            exposes: &[],
        },
        Scenario {
            id: "S15",
            title: "tool call cancelled, then a drop: its result is never sent",
            body: s15,
            exposes: &[],
        },
        Scenario {
            id: "S16",
            title: "lost tool call on 3.8: answered with an error before new input, reported",
            body: s16,
            exposes: &[],
        },
    ]
}

#[test]
fn s13_tool_result_while_disconnected() {
    check("S13");
}

#[test]
fn s14_tool_result_queued_during_restart() {
    check("S14");
}

#[test]
fn s15_cancelled_call_then_drop() {
    check("S15");
}

#[test]
fn s16_lost_tool_call_on_38() {
    check("S16");
}

/// The user's question that makes the scripted model call `get_weather`.
const ASK_WEATHER: &str = "what is the weather in Paris? get_weather";

/// The answers the model produced on connections after the first, except `skip`.
fn answers_after_first(server: &SimServer, skip: &str) -> Vec<String> {
    let first = server.connections().first().map(|c| c.id);
    all_sessions(server)
        .iter()
        .flat_map(|s| s.answers().to_vec())
        .filter(|a| Some(a.connection) != first && a.text != skip && !a.interrupted)
        .map(|a| a.text)
        .collect()
}

/// `clock` tool.
fn clock_tool() -> gemini_transport::wire::FunctionDeclaration {
    gemini_transport::wire::FunctionDeclaration::new("get_time", "The current time")
        .with_behavior(gemini_transport::wire::Behavior::Blocking)
}

/// How the session comes back in S13.
#[derive(Clone, Copy, Debug)]
enum Back {
    /// A plain drop: the newest handle predates the call (none is issued while a call is
    /// pending), so the resumed session does not know it.
    Drop,
    /// Every handle expired: the resume is refused and a fresh session is seeded.
    Expired,
}

/// When the application's tool finishes in S13.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    /// Just before the drop: the result was sent, the model had started answering it.
    BeforeDrop,
    /// While the session reconnects (between `Reconnecting` and `Reconnected`).
    WhileDown,
    /// After the reconnect.
    AfterReconnect,
}

/// A tool call arrives, the connection drops, and the application's tool finishes around the
/// drop. The result must not be sent as an orphan `toolResponse`: it reaches the server once
/// (with its call), the model answers it once, and the tool is not run again; or the session
/// reports that it could not deliver it.
fn s13_on(policy: PolicyKind, family: Family, back: Back, done: Done) -> Outcome {
    let mut pair = open(family, policy.arc(), |b| {
        b.tools(vec![weather_tool()])
            .server(|c| c.with_chunk_interval(Duration::from_millis(20)))
    })?;
    barrier(&mut pair, "hello")?;
    pair.send_text(ASK_WEATHER).map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    let result = json!({"temperature": 21});
    if done == Done::BeforeDrop {
        pair.send_tool_result(&call_id, result.clone())
            .map_err(err)?;
        first_chunk(&mut pair, "the first chunk of the answer")?;
    }
    if let Back::Expired = back {
        pair.faults().expire_all_handles();
    }
    pair.faults().drop_connections();
    reconnecting(&mut pair)?;
    if done == Done::WhileDown {
        pair.send_tool_result(&call_id, result.clone())
            .map_err(err)?;
    }
    reconnected(&mut pair)?;
    if done == Done::AfterReconnect {
        pair.send_tool_result(&call_id, result).map_err(err)?;
    }
    // The model answers the result (or the session reported that it could not deliver it).
    let answer = until(
        &mut pair,
        "the answer to the result, or a divergence",
        |e| {
            matches!(
                e,
                SessionEvent::TurnComplete | SessionEvent::Divergence { .. }
            )
        },
    )
    .map_err(|e| {
        // Say why the model hangs when the server ignored the result.
        format!(
            "{e}; toolResponses the server ignored: {:?}",
            rejected_responses(pair.server())
        )
    })?;
    let reported = matches!(answer, SessionEvent::Divergence { .. });
    ensure_eq(
        "rejected toolResponses",
        rejected_responses(pair.server()),
        vec![],
    )?;
    barrier(&mut pair, "thanks")?;
    pair.drain();

    ensure_eq(
        "rejected toolResponses",
        rejected_responses(pair.server()),
        vec![],
    )?;
    ensure_eq("tool calls the model made", calls_issued(pair.server()), 1)?;
    if done == Done::BeforeDrop {
        // Sent once while the session knew the call, never again as a `toolResponse`.
        let received: usize = all_sessions(pair.server())
            .iter()
            .map(|s| s.tool_responses().len())
            .sum();
        ensure_eq("toolResponses received", received, 1)?;
    }
    tools_ran_once(&pair)?;
    reconnects_exactly(&mut pair, 1)?;
    if reported {
        return finish(pair);
    }
    let s = s_entries(pair.server());
    let result_at: Vec<usize> = s
        .iter()
        .enumerate()
        .filter(|(_, e)| e.starts_with(&format!("response {call_id} ")))
        .map(|(k, _)| k)
        .collect();
    ensure_eq("results in S", result_at.len(), 1)?;
    // Exactly one model answer between the result and the next typed turn.
    let thanks_at = s
        .iter()
        .position(|e| e == "user: thanks")
        .ok_or("no barrier turn in S")?;
    let answers: Vec<&String> = s[result_at[0]..thanks_at]
        .iter()
        .filter(|e| e.starts_with("model: "))
        .collect();
    ensure_eq("answers to the result in S", answers.len(), 1)?;
    // The scripted model shows that it read the result when the result itself asked for the
    // answer (a `toolResponse`, or history with `turnComplete`); a fresh 3.1 session is asked
    // with realtime text instead.
    if family != Family::Gemini31 {
        ensure(
            answers[0].starts_with("model: get_weather returned"),
            || format!("the answer ignores the result: {answers:?}"),
        )?;
    }
    l_equals_s(&pair)?;
    finish(pair)
}

fn s13(policy: PolicyKind) -> Outcome {
    each_case(
        [
            (Family::Gemini25, Back::Drop, Done::WhileDown),
            (Family::Gemini25, Back::Expired, Done::WhileDown),
            (Family::Gemini38, Back::Drop, Done::WhileDown),
            (Family::Gemini31, Back::Drop, Done::WhileDown),
            (Family::Gemini25, Back::Drop, Done::BeforeDrop),
            (Family::Gemini25, Back::Drop, Done::AfterReconnect),
            (Family::Gemini38, Back::Drop, Done::AfterReconnect),
            (Family::Gemini31, Back::Drop, Done::AfterReconnect),
        ],
        |(family, back, done)| s13_on(policy, family, back, done),
    )
}

/// When the application answers in S14.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Right after asking for the new tools, while the restart is under way.
    AfterUpdate,
    /// Right before asking for the new tools.
    BeforeUpdate,
}

/// S14: while a call is owed, the application changes the tool set (on 2.5 only a new `setup`
/// can carry it, so the session restarts the connection) and answers the call. The result
/// reaches the server once, on a connection whose session knows the call, the new setup
/// carries both tools, and the model answers once.
fn s14_on(policy: PolicyKind, family: Family, answer: Answer) -> Outcome {
    let mut pair = open(family, policy.arc(), |b| b.tools(vec![weather_tool()]))?;
    barrier(&mut pair, "hello")?;
    pair.send_text(ASK_WEATHER).map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    let result = json!({"temperature": 21});
    if let Answer::BeforeUpdate = answer {
        pair.send_tool_result(&call_id, result.clone())
            .map_err(err)?;
    }
    pair.update_tools(vec![weather_tool(), clock_tool()])
        .map_err(err)?;
    if let Answer::AfterUpdate = answer {
        pair.send_tool_result(&call_id, result).map_err(err)?;
    }
    // The restart and the answer to the result, in whichever order the session chose.
    let restarts = usize::from(family != Family::Gemini38);
    let answered = |s: &SimServer| {
        s.inspect(|v| {
            v.latest_session().is_some_and(|s| {
                from_s(s.context())
                    .iter()
                    .any(|e| e.starts_with("model: get_weather returned"))
            })
        })
    };
    let waited = pair.until_server("the answer to the result and the restart", 3_000, |s| {
        s.connections().len() > restarts && answered(s)
    });
    if waited.is_err() {
        return Err(format!(
            "after 3 s: {} connection(s) ({} expected), the model {} the result; \
             toolResponses the server ignored: {:?}",
            pair.server().connections().len(),
            restarts + 1,
            if answered(pair.server()) {
                "answered"
            } else {
                "never answered"
            },
            rejected_responses(pair.server())
        ));
    }
    // And the session has taken the answer in (so the next turn follows it in `L` as in `S`).
    let in_l = |pair: &session_sim::Pair| {
        l_entries(pair.chat_ctx())
            .iter()
            .any(|e| e.starts_with("model: get_weather returned"))
    };
    while !in_l(&pair) {
        turn_complete(&mut pair, "the answer in L")?;
    }
    barrier(&mut pair, "thanks")?;
    pair.drain();

    reconnects_exactly(&mut pair, restarts)?;
    ensure_eq(
        "rejected toolResponses",
        rejected_responses(pair.server()),
        vec![],
    )?;
    ensure_eq("tool calls the model made", calls_issued(pair.server()), 1)?;
    tools_ran_once(&pair)?;
    let snapshot = pair.server().latest_session().ok_or("no server session")?;
    ensure_eq(
        "the server's tools",
        snapshot.tools().to_vec(),
        vec!["get_weather".to_owned(), "get_time".to_owned()],
    )?;
    let s = s_entries(pair.server());
    let results = s
        .iter()
        .filter(|e| e.starts_with(&format!("response {call_id} ")))
        .count();
    ensure_eq("results in S", results, 1)?;
    let answers: Vec<String> = s
        .iter()
        .filter(|e| e.starts_with("model: get_weather returned"))
        .cloned()
        .collect();
    ensure_eq("answers to the result in S", answers.len(), 1)?;
    l_equals_s(&pair)?;
    finish(pair)
}

fn s14(policy: PolicyKind) -> Outcome {
    each_case(
        [
            (Family::Gemini25, Answer::AfterUpdate),
            (Family::Gemini25, Answer::BeforeUpdate),
            (Family::Gemini38, Answer::AfterUpdate),
        ],
        |(family, answer)| s14_on(policy, family, answer),
    )
}

/// When the drop comes in S15.
#[derive(Clone, Copy, Debug)]
enum CancelDrop {
    /// After the model answered the interrupting turn (a handle covers the cancellation).
    AfterAnswer,
    /// While the model answers the interrupting turn (the newest handle predates the call).
    DuringAnswer,
}

/// S15: the user interrupts a pending tool call (the server cancels it), the connection
/// drops, and the application's tool finishes anyway. Its result must reach no connection,
/// and the model must not be asked the cancelled question again.
fn s15_on(policy: PolicyKind, family: Family, when: CancelDrop) -> Outcome {
    let mut pair = open(family, policy.arc(), |b| {
        b.tools(vec![weather_tool()])
            .server(|c| c.with_chunk_interval(Duration::from_millis(20)))
    })?;
    barrier(&mut pair, "hello")?;
    pair.send_text(ASK_WEATHER).map_err(err)?;
    let call_id = tool_call(&mut pair)?;
    let interrupt = "never mind, tell me a joke about many things";
    pair.send_text(interrupt).map_err(err)?;
    let cancelled = until(&mut pair, "the cancellation", |e| {
        matches!(e, SessionEvent::ToolCallCancelled { .. })
    })?;
    ensure_eq(
        "cancelled ids",
        cancelled,
        SessionEvent::ToolCallCancelled {
            call_ids: vec![call_id.clone()],
        },
    )?;
    // The cancelled turn ends.
    turn_complete(&mut pair, "the end of the cancelled turn")?;
    match when {
        CancelDrop::AfterAnswer => {
            turn_complete(&mut pair, "the answer to the interruption")?;
        }
        CancelDrop::DuringAnswer => {
            first_chunk(&mut pair, "the first chunk of the answer")?;
        }
    }
    pair.faults().drop_connections();
    reconnecting(&mut pair)?;
    // The tool finishes anyway; the session drops the result.
    let _ = pair.send_tool_result(&call_id, json!({"temperature": 21}));
    reconnected(&mut pair)?;
    if let CancelDrop::DuringAnswer = when {
        turn_complete(&mut pair, "the answer to the interruption, again")?;
    }
    barrier(&mut pair, "thanks")?;
    pair.drain();

    reconnects_exactly(&mut pair, 1)?;
    tools_ran_once(&pair)?;
    ensure_eq("tool calls the model made", calls_issued(pair.server()), 1)?;
    let sent: usize = pair
        .server()
        .connections()
        .iter()
        .map(|c| {
            c.frames
                .iter()
                .filter(|f| f.raw.contains(&format!("\"id\":\"{call_id}\"")))
                .filter(|f| f.raw.contains("functionResponse"))
                .count()
        })
        .sum();
    ensure_eq("frames carrying the cancelled call's result", sent, 0)?;
    ensure_eq(
        "rejected toolResponses",
        rejected_responses(pair.server()),
        vec![],
    )?;
    let answers = answers_after_first(pair.server(), "echo: thanks");
    let expected = usize::from(matches!(when, CancelDrop::DuringAnswer));
    ensure_eq("answers after the reconnect", answers.len(), expected)?;
    l_equals_s(&pair)?;
    finish(pair)
}

fn s15(policy: PolicyKind) -> Outcome {
    each_case(
        [
            (Family::Gemini25, CancelDrop::AfterAnswer),
            (Family::Gemini25, CancelDrop::DuringAnswer),
            (Family::Gemini31, CancelDrop::AfterAnswer),
        ],
        |(family, when)| s15_on(policy, family, when),
    )
}

/// S16: the application restarts with a context whose last tool call never got its result
/// (the process running the tool died with the old one: its execution is lost). On 3.8 a call
/// the session knows must be answered before new input, so the session answers it with an
/// error before the user's next turn reaches the model; on 2.5 it only reports it. Either way
/// it is reported once, and a later reconnect neither answers nor reports it again.
fn s16_on(policy: PolicyKind, family: Family) -> Outcome {
    let initial = ctx_model::ChatContext::builder()
        .user("u1", "hello")
        .model("m1", "echo: hello")
        .user("u2", ASK_WEATHER)
        .function_call("c1", "call-0-1", "get_weather", json!({}))
        .build()
        .map_err(err)?;
    let mut pair = open(family, policy.arc(), |b| {
        b.tools(vec![weather_tool()]).initial_context(initial)
    })?;
    barrier(&mut pair, "are you there?")?;
    pair.faults().drop_connections();
    reconnected(&mut pair)?;
    barrier(&mut pair, "still there?")?;
    pair.drain();

    let reports = count(&pair, |e| {
        matches!(
            e,
            SessionEvent::Divergence {
                why: resume_policy::DivergenceReason::ToolCallLost,
                ..
            }
        )
    });
    ensure_eq("reports of the lost call", reports, 1)?;
    let s = s_entries(pair.server());
    let answers: Vec<usize> = s
        .iter()
        .enumerate()
        .filter(|(_, e)| e.starts_with("response call-0-1 get_weather"))
        .map(|(k, _)| k)
        .collect();
    let turn_at = s.iter().position(|e| e == "user: are you there?");
    if family == Family::Gemini38 {
        ensure(
            matches!((answers.as_slice(), turn_at), ([a], Some(t)) if a < &t),
            || format!("not one answer before the new input: {s:?}"),
        )?;
        ensure(s[answers[0]].contains("\"error\""), || {
            format!("the answer is not an error: {}", s[answers[0]])
        })?;
    } else {
        ensure_eq("answers to the lost call", answers.len(), 0)?;
    }
    ensure_eq(
        "rejected toolResponses",
        rejected_responses(pair.server()),
        vec![],
    )?;
    ensure_eq("tool calls the model made", calls_issued(pair.server()), 0)?;
    reconnects_exactly(&mut pair, 1)?;
    l_equals_s(&pair)?;
    finish(pair)
}

fn s16(policy: PolicyKind) -> Outcome {
    each_case([Family::Gemini38, Family::Gemini25], |family| {
        s16_on(policy, family)
    })
}
