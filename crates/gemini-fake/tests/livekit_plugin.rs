//! Compatibility with LiveKit's Google plugin (`livekit-plugins-google`): runs
//! `tests/python/livekit_smoke.py`, which drives the plugin's `RealtimeSession` directly (no
//! LiveKit server or room) against an in-process fake, then checks what the fake's session holds.
//! Interpreter and skip rules as in `python_sdk.rs`: `$GEMINI_FAKE_PYTHON` (else `python3`),
//! skipped without the plugin on a developer's machine, failing under `CI`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "python/harness.rs"]
mod harness;

use gemini_fake::{FakeConfig, FakeServer, Family, Part, ResponseFate, Role, Turn};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_google_realtime_session_talks_to_the_fake() {
    let Some(python) = harness::interpreter_with(&["livekit.plugins.google"]) else {
        return;
    };
    let server = FakeServer::start(FakeConfig::new().with_family(Family::Gemini38))
        .await
        .unwrap();
    let base_url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        harness::run_script(&python, "livekit_smoke.py", &base_url, &[])
    })
    .await
    .unwrap();
    assert_eq!(
        harness::success_lines("livekit_smoke.py", &output),
        ["echo ok", "tool ok", "audio ok"]
    );

    assert_eq!(server.sessions().len(), 1);
    let session = server.latest_session().unwrap();
    assert_eq!(session.model(), "models/gemini-3.8-live");
    assert_eq!(session.tools(), ["get_time"]);
    assert_eq!(session.connections().len(), 1, "no reconnect on the way");
    let call_id = "call-1-1".to_owned();
    let spoken = |role, text: &str| Turn {
        role,
        parts: vec![Part::AudioTranscript(text.to_owned())],
    };
    assert_eq!(
        session.context(),
        [
            Turn::user_text("hello"),
            spoken(Role::Model, "echo: hello"),
            Turn::user_text("what is get_time now"),
            Turn {
                role: Role::Model,
                parts: vec![Part::FunctionCall {
                    id: call_id.clone(),
                    name: "get_time".to_owned(),
                    args: json!({}),
                }],
            },
            // Non-blocking by default on 3.8: the model went on after the call.
            spoken(Role::Model, "working on get_time"),
            Turn {
                role: Role::User,
                parts: vec![Part::FunctionResponse {
                    id: call_id.clone(),
                    name: "get_time".to_owned(),
                    response: json!({"output": "noon"}),
                }],
            },
            spoken(Role::Model, r#"get_time returned {"output":"noon"}"#),
            spoken(Role::User, "[audio 1.20s]"),
            spoken(Role::Model, "echo: [audio 1.20s]"),
        ]
    );
    let calls = session.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].name.as_str()),
        ("call-1-1", "get_time")
    );
    let responses = session.tool_responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(
        responses[0].id, call_id,
        "the plugin answers with the call's id"
    );
    assert_eq!(responses[0].response, json!({"output": "noon"}));
    assert_eq!(responses[0].fate, ResponseFate::Accepted);
    assert_eq!(session.generations(), 4);
}
