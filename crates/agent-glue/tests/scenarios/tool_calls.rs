//! Tool calls across reconnects: S13–S16.

use agent_glue::SessionEvent;
use gemini_fake::Family;
use serde_json::json;

use crate::common::*;
use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S13",
            title: "tool result completes while disconnected: delivered once, no orphan, no re-run",
            body: |p| Box::pin(s13(p)),
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S14",
            title: "tool result queued while a restart is pending: carried over, delivered once",
            body: |p| Box::pin(s14(p)),
            // The legacy policies never restart for a tool-set change (they fail S22 for it).
            exposes: &[],
        },
        Scenario {
            id: "S15",
            title: "tool call cancelled, then a drop: its result is never sent",
            body: |p| Box::pin(s15(p)),
            exposes: &[],
        },
        Scenario {
            id: "S16",
            title: "lost tool call on 3.8: answered with an error before new input, reported",
            body: |p| Box::pin(s16(p)),
            exposes: &[],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_tool_result_while_disconnected() {
    check("S13").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s14_tool_result_queued_during_restart() {
    check("S14").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s15_cancelled_call_then_drop() {
    check("S15").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s16_lost_tool_call_on_38() {
    check("S16").await;
}

/// The user's question that makes the scripted model call `get_weather`.
const ASK_WEATHER: &str = "what is the weather in Paris? get_weather";

/// The answers the model produced on connections after the first, except `skip`.
fn answers_after_first(server: &gemini_fake::FakeServer, skip: &str) -> Vec<String> {
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
async fn s13_on(policy: PolicyKind, family: Family, back: Back, done: Done) -> Outcome {
    let server = server(family, |c| {
        c.with_chunk_interval(std::time::Duration::from_millis(20))
    })
    .await;
    let (session, mut seen) =
        open(&server, policy.boxed(), |b| b.tools(vec![weather_tool()])).await?;
    seen.barrier(&session, "hello").await?;
    session.send_text(ASK_WEATHER).map_err(|e| e.to_string())?;
    let call_id = seen.tool_call().await?;
    let result = json!({"temperature": 21});
    if done == Done::BeforeDrop {
        session
            .send_tool_result(call_id.clone(), result.clone())
            .map_err(|e| e.to_string())?;
        seen.until("the first chunk of the answer", |e| {
            matches!(e, SessionEvent::Text(_))
        })
        .await?;
    }
    if let Back::Expired = back {
        server.faults().expire_all_handles();
    }
    server.faults().drop_connections();
    seen.until("reconnecting", |e| {
        matches!(e, SessionEvent::Reconnecting { .. })
    })
    .await?;
    if done == Done::WhileDown {
        session
            .send_tool_result(call_id.clone(), result.clone())
            .map_err(|e| e.to_string())?;
    }
    seen.reconnected().await?;
    if done == Done::AfterReconnect {
        session
            .send_tool_result(call_id.clone(), result)
            .map_err(|e| e.to_string())?;
    }
    // The model answers the result (or the session reported that it could not deliver it).
    let answer = seen
        .until("the answer to the result, or a divergence", |e| {
            matches!(
                e,
                SessionEvent::TurnComplete | SessionEvent::Divergence { .. }
            )
        })
        .await
        .map_err(|e| {
            // Say why the model hangs when the server ignored the result.
            format!(
                "{e}; toolResponses the server ignored: {:?}",
                rejected_responses(&server)
            )
        })?;
    let reported = matches!(answer, SessionEvent::Divergence { .. });
    ensure_eq(
        "rejected toolResponses",
        rejected_responses(&server),
        vec![],
    )?;
    seen.barrier(&session, "thanks").await?;
    seen.drain();

    ensure_eq(
        "rejected toolResponses",
        rejected_responses(&server),
        vec![],
    )?;
    ensure_eq("tool calls the model made", calls_issued(&server), 1)?;
    if done == Done::BeforeDrop {
        // Sent once while the session knew the call, never again as a `toolResponse`.
        let accepted: usize = all_sessions(&server)
            .iter()
            .map(|s| s.tool_responses().len())
            .sum();
        ensure_eq("toolResponses received", accepted, 1)?;
    }
    tools_ran_once(&server, &seen)?;
    seen.reconnects_exactly(1)?;
    if reported {
        return close(session).await;
    }
    let s = s_entries(&server);
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
    l_equals_s(&server, &session)?;
    close(session).await
}

async fn s13(policy: PolicyKind) -> Outcome {
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
    .await
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
async fn s14_on(policy: PolicyKind, family: Family, answer: Answer) -> Outcome {
    let server = server(family, |c| c).await;
    let (session, mut seen) =
        open(&server, policy.boxed(), |b| b.tools(vec![weather_tool()])).await?;
    seen.barrier(&session, "hello").await?;
    session.send_text(ASK_WEATHER).map_err(|e| e.to_string())?;
    let call_id = seen.tool_call().await?;
    let result = json!({"temperature": 21});
    if let Answer::BeforeUpdate = answer {
        session
            .send_tool_result(call_id.clone(), result.clone())
            .map_err(|e| e.to_string())?;
    }
    session
        .update_tools(vec![weather_tool(), clock_tool()])
        .map_err(|e| e.to_string())?;
    if let Answer::AfterUpdate = answer {
        session
            .send_tool_result(call_id.clone(), result)
            .map_err(|e| e.to_string())?;
    }
    // The restart and the answer to the result, in whichever order the session chose.
    let restarts = usize::from(family != Family::Gemini38);
    let answered = |v: &gemini_fake::ServerView<'_>| {
        v.latest_session().is_some_and(|s| {
            from_s(s.context())
                .iter()
                .any(|e| e.starts_with("model: get_weather returned"))
        })
    };
    let waited = server
        .wait_for(STEP, "the answer to the result and the restart", |v| {
            v.connections().len() > restarts && answered(v)
        })
        .await;
    if waited.is_err() {
        let (connections, answer) = server.inspect(|v| (v.connections().len(), answered(v)));
        return Err(format!(
            "after {STEP:?}: {connections} connection(s) ({} expected), the model {} the \
             result; toolResponses the server ignored: {:?}",
            restarts + 1,
            if answer { "answered" } else { "never answered" },
            rejected_responses(&server)
        ));
    }
    // And the session has taken the answer in (so the next turn follows it in `L` as in `S`).
    seen.until("the answer in L", |e| {
        matches!(e, SessionEvent::TurnComplete)
            && l_entries(&session.chat_ctx())
                .iter()
                .any(|e| e.starts_with("model: get_weather returned"))
    })
    .await?;
    seen.barrier(&session, "thanks").await?;
    seen.drain();

    seen.reconnects_exactly(restarts)?;
    ensure_eq(
        "rejected toolResponses",
        rejected_responses(&server),
        vec![],
    )?;
    ensure_eq("tool calls the model made", calls_issued(&server), 1)?;
    tools_ran_once(&server, &seen)?;
    let snapshot = server.latest_session().ok_or("no server session")?;
    ensure_eq(
        "the server's tools",
        snapshot.tools().to_vec(),
        vec!["get_weather".to_owned(), "get_time".to_owned()],
    )?;
    let s = s_entries(&server);
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
    l_equals_s(&server, &session)?;
    close(session).await
}

async fn s14(policy: PolicyKind) -> Outcome {
    each_case(
        [
            (Family::Gemini25, Answer::AfterUpdate),
            (Family::Gemini25, Answer::BeforeUpdate),
            (Family::Gemini38, Answer::AfterUpdate),
        ],
        |(family, answer)| s14_on(policy, family, answer),
    )
    .await
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
async fn s15_on(policy: PolicyKind, family: Family, when: CancelDrop) -> Outcome {
    let server = server(family, |c| {
        c.with_chunk_interval(std::time::Duration::from_millis(20))
    })
    .await;
    let (session, mut seen) =
        open(&server, policy.boxed(), |b| b.tools(vec![weather_tool()])).await?;
    seen.barrier(&session, "hello").await?;
    session.send_text(ASK_WEATHER).map_err(|e| e.to_string())?;
    let call_id = seen.tool_call().await?;
    let interrupt = "never mind, tell me a joke about many things";
    session.send_text(interrupt).map_err(|e| e.to_string())?;
    let cancelled = seen
        .until("the cancellation", |e| {
            matches!(e, SessionEvent::ToolCallCancelled { .. })
        })
        .await?;
    ensure_eq(
        "cancelled ids",
        cancelled,
        SessionEvent::ToolCallCancelled {
            call_ids: vec![call_id.clone()],
        },
    )?;
    // The cancelled turn ends.
    seen.turn_complete("the end of the cancelled turn").await?;
    match when {
        CancelDrop::AfterAnswer => {
            seen.turn_complete("the answer to the interruption").await?;
        }
        CancelDrop::DuringAnswer => {
            seen.until("the first chunk of the answer", |e| {
                matches!(e, SessionEvent::Text(_))
            })
            .await?;
        }
    }
    server.faults().drop_connections();
    seen.until("reconnecting", |e| {
        matches!(e, SessionEvent::Reconnecting { .. })
    })
    .await?;
    // The tool finishes anyway; the session drops the result.
    let _ = session.send_tool_result(call_id.clone(), json!({"temperature": 21}));
    seen.reconnected().await?;
    if let CancelDrop::DuringAnswer = when {
        seen.turn_complete("the answer to the interruption, again")
            .await?;
    }
    seen.barrier(&session, "thanks").await?;
    seen.drain();

    seen.reconnects_exactly(1)?;
    tools_ran_once(&server, &seen)?;
    ensure_eq("tool calls the model made", calls_issued(&server), 1)?;
    let sent: usize = server
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
        rejected_responses(&server),
        vec![],
    )?;
    let answers = answers_after_first(&server, "echo: thanks");
    let expected = usize::from(matches!(when, CancelDrop::DuringAnswer));
    ensure_eq("answers after the reconnect", answers.len(), expected)?;
    l_equals_s(&server, &session)?;
    close(session).await
}

async fn s15(policy: PolicyKind) -> Outcome {
    each_case(
        [
            (Family::Gemini25, CancelDrop::AfterAnswer),
            (Family::Gemini25, CancelDrop::DuringAnswer),
            (Family::Gemini31, CancelDrop::AfterAnswer),
        ],
        |(family, when)| s15_on(policy, family, when),
    )
    .await
}

/// S16: the application restarts with a context whose last tool call never got its result
/// (the process running the tool died with the old one: its execution is lost). On 3.8 a call
/// the session knows must be answered before new input, so the session answers it with an
/// error before the user's next turn reaches the model; on 2.5 it only reports it. Either way
/// it is reported once, and a later reconnect neither answers nor reports it again.
async fn s16_on(policy: PolicyKind, family: Family) -> Outcome {
    let server = server(family, |c| c).await;
    let initial = ctx_model::ChatContext::builder()
        .user("u1", "hello")
        .model("m1", "echo: hello")
        .user("u2", ASK_WEATHER)
        .function_call("c1", "call-0-1", "get_weather", json!({}))
        .build()
        .map_err(|e| e.to_string())?;
    let (session, mut seen) = open(&server, policy.boxed(), |b| {
        b.tools(vec![weather_tool()]).initial_context(initial)
    })
    .await?;
    seen.barrier(&session, "are you there?").await?;
    server.faults().drop_connections();
    seen.reconnected().await?;
    seen.barrier(&session, "still there?").await?;
    seen.drain();

    let reports = seen.count(|e| {
        matches!(
            e,
            SessionEvent::Divergence {
                why: resume_policy::DivergenceReason::ToolCallLost,
                ..
            }
        )
    });
    ensure_eq("reports of the lost call", reports, 1)?;
    let s = s_entries(&server);
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
        rejected_responses(&server),
        vec![],
    )?;
    ensure_eq("tool calls the model made", calls_issued(&server), 0)?;
    seen.reconnects_exactly(1)?;
    l_equals_s(&server, &session)?;
    close(session).await
}

async fn s16(policy: PolicyKind) -> Outcome {
    each_case([Family::Gemini38, Family::Gemini25], |family| {
        s16_on(policy, family)
    })
    .await
}
