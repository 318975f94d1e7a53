//! What a hostile or careless peer costs the session's core, without sockets:
//! `update_chat_ctx` of 100,000 items in one call (issue 17: must take well under 50 ms, it
//! used to take 5 s), and one server `toolCall` frame of many calls.
//! `cargo bench -p agent-glue --bench hostile`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_glue::LiveSession;
use agent_glue::conduit::{Action, Command, SessionCore};
use ctx_model::{ChatContext, Item, Message};
use divan::Bencher;
use gemini_transport::wire::ServerMessage;
use gemini_transport::{Endpoint, SecretString};
use resume_policy::Millis;

fn main() {
    divan::main();
}

const MODEL: &str = "gemini-2.5-flash-native-audio-preview-12-2025";

/// A core whose first connection is set up, with nothing in `L`.
fn connected() -> (SessionCore, resume_policy::ConnectionId) {
    let endpoint = Endpoint::api_key(SecretString::from("bench"));
    let mut core = LiveSession::builder(endpoint, MODEL)
        .into_core(Millis(0), 1)
        .unwrap();
    let Some(Action::Open { connection, .. }) = core.poll_action() else {
        panic!("a fresh core opens a connection first");
    };
    core.handle_setup_complete(Millis(0), connection);
    while core.poll_transmit().is_some() {}
    while core.poll_event().is_some() {}
    (core, connection)
}

fn items(n: usize) -> ChatContext {
    ChatContext::from_items((0..n).map(|i| {
        let id = format!("item-{i}");
        if i % 2 == 0 {
            Item::from(Message::user(id, "a question"))
        } else {
            Item::from(Message::model(id, "an answer"))
        }
    }))
    .unwrap()
}

/// One `update_chat_ctx` that appends `n` items to an empty `L` while connected.
#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 5)]
fn update_chat_ctx(bencher: Bencher<'_, '_>, n: usize) {
    bencher
        .with_inputs(|| (connected(), items(n)))
        .bench_local_values(|((mut core, _), context)| {
            let based_on = core.version();
            core.command(Millis(1), Command::UpdateContext { context, based_on })
                .unwrap();
            while core.poll_transmit().is_some() {}
            core
        });
}

/// One `toolCall` frame of `n` calls, and the events it becomes.
#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 5)]
fn tool_call_frame(bencher: Bencher<'_, '_>, n: usize) {
    let calls: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"id":"call-{i}","name":"lookup","args":{{"q":{i}}}}}"#))
        .collect();
    let json = format!(
        r#"{{"toolCall":{{"functionCalls":[{}]}}}}"#,
        calls.join(",")
    );
    bencher
        .with_inputs(|| {
            let (mut core, connection) = connected();
            core.command(Millis(1), Command::Text("go".to_owned()))
                .unwrap();
            while core.poll_transmit().is_some() {}
            (
                core,
                connection,
                ServerMessage::from_json(json.as_bytes()).unwrap(),
            )
        })
        .bench_local_values(|(mut core, connection, message)| {
            core.handle_message(Millis(2), connection, message);
            while core.poll_event().is_some() {}
            core
        });
}
