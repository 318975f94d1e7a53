//! Shared scenario machinery: a fake server, a session against it, and the comparison of the
//! application's context `L` with the server's context `S` (read through the fake's
//! inspection API, never from the session's own bookkeeping).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, missing_docs)]

use std::time::Duration;

use agent_glue::{LiveSession, SessionEvent, SessionEvents};
use ctx_model::{ChatContext, Item, Role as LRole};
use gemini_fake::{FakeConfig, FakeServer, Family, Part, Role as SRole, Turn};
use gemini_transport::wire::{Behavior, FunctionDeclaration, Modality};
use gemini_transport::{Endpoint, SecretString};
use resume_policy::ResumePolicy;
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(10);

/// A fake server for `family` with `tweak` applied.
pub async fn server(family: Family, tweak: impl FnOnce(FakeConfig) -> FakeConfig) -> FakeServer {
    // The sessions here are TEXT, which 3.8 refuses: the fake's test switch allows it.
    let config = tweak(FakeConfig::new().with_family(family).with_text_on_3_8(true));
    FakeServer::start(config).await.expect("fake server starts")
}

/// The endpoint of `server` with a made-up key.
pub fn endpoint(server: &FakeServer) -> Endpoint {
    Endpoint::api_key(SecretString::from("test-key"))
        .with_base_url(&server.url())
        .expect("loopback URL")
}

/// The declaration of a `get_weather` tool, `BLOCKING` on every family (on 3.8 a declaration
/// without `behavior` is NON_BLOCKING: the scenarios of non-blocking calls declare their own).
pub fn weather_tool() -> FunctionDeclaration {
    FunctionDeclaration::new("get_weather", "Current weather for a city")
        .with_behavior(Behavior::Blocking)
}

/// Connects a TEXT-modality session with `policy` and `tools`.
pub async fn session(
    server: &FakeServer,
    policy: Box<dyn ResumePolicy>,
    tools: Vec<FunctionDeclaration>,
) -> (LiveSession, SessionEvents) {
    LiveSession::builder(endpoint(server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .tools(tools)
        .policy(policy)
        .connect()
        .await
        .expect("session connects")
}

/// Reads events until one satisfies `pred`; returns every event read (the match last).
pub async fn until(
    events: &mut SessionEvents,
    what: &str,
    mut pred: impl FnMut(&SessionEvent) -> bool,
) -> Vec<SessionEvent> {
    let mut seen = Vec::new();
    let result = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            let done = pred(&event);
            seen.push(event);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(result, Ok(true)),
        "waiting for {what}; saw {seen:#?}"
    );
    seen
}

/// One context entry, in a form both sides can be compared in.
pub fn from_l(item: &Item) -> String {
    match item {
        Item::Message(m) => {
            let role = match m.role {
                LRole::User => "user",
                LRole::Model => "model",
            };
            format!("{role}: {}", m.text())
        }
        Item::FunctionCall(c) => format!("call {} {}", c.call_id, c.name),
        Item::FunctionOutput(o) => {
            let response = match (&o.output, o.is_error) {
                (Value::Object(_), false) => o.output.clone(),
                (v, false) => json!({ "output": v }),
                (v, true) => json!({ "error": v }),
            };
            format!("response {} {} {}", o.call_id, o.name, response)
        }
    }
}

/// The server's turns as entries (one per part).
pub fn from_s(turns: &[Turn]) -> Vec<String> {
    let mut out = Vec::new();
    for turn in turns {
        let role = match turn.role {
            SRole::User => "user",
            SRole::Model => "model",
            _ => "other",
        };
        let mut text = String::new();
        for part in &turn.parts {
            match part {
                Part::Text(t) | Part::AudioTranscript(t) => text.push_str(t),
                Part::FunctionCall { id, name, .. } => out.push(format!("call {id} {name}")),
                Part::FunctionResponse { id, name, response } => {
                    out.push(format!("response {id} {name} {response}"));
                }
                _ => {}
            }
        }
        if !text.is_empty() {
            out.push(format!("{role}: {text}"));
        }
    }
    out
}

/// `L` as entries.
pub fn l_entries(ctx: &ChatContext) -> Vec<String> {
    ctx.iter().map(from_l).collect()
}

/// `S` of the latest server session as entries.
pub fn s_entries(server: &FakeServer) -> Vec<String> {
    server
        .latest_session()
        .map(|s| from_s(s.context()))
        .unwrap_or_default()
}

/// The last resumption handle the server issued on connection `k` (0-based, accept order).
pub fn last_handle_on(server: &FakeServer, k: usize) -> Option<String> {
    let connection = server.connections().get(k)?.id;
    server
        .latest_session()?
        .handles_issued()
        .iter()
        .rfind(|h| h.connection == connection)
        .map(|h| h.handle.clone())
}

/// A barrier: a typed turn and its answer. The fake processes a connection's frames in order,
/// so once the answer is back every frame sent before it has been processed. Adds
/// `user: {text}` and `model: echo: {text}` to both contexts.
pub async fn barrier(session: &LiveSession, events: &mut SessionEvents, text: &str) {
    session.send_text(text).expect("session open");
    until(events, "barrier answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
}

/// Asks for `get_weather` and waits for the model's call: its id and name.
pub async fn weather_call(session: &LiveSession, events: &mut SessionEvents) -> (String, String) {
    session
        .send_text("what does get_weather say")
        .expect("session open");
    let seen = until(events, "tool call", |e| {
        matches!(e, SessionEvent::ToolCall { .. })
    })
    .await;
    seen.last()
        .and_then(|e| match e {
            SessionEvent::ToolCall { call_id, name, .. } => Some((call_id.clone(), name.clone())),
            _ => None,
        })
        .expect("a tool call")
}

/// Asks the model for `get_weather`, answers its call with `result` and waits for the answer
/// to it; returns the call's id and function name.
pub async fn weather_round(
    session: &LiveSession,
    events: &mut SessionEvents,
    result: Value,
) -> (String, String) {
    let (call_id, name) = weather_call(session, events).await;
    session
        .send_tool_result(call_id.clone(), result)
        .expect("tool result accepted");
    until(events, "answer", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;
    (call_id, name)
}
