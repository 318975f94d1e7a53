//! Hostile sizes against the sans-IO session (core and conduit, no sockets, no clock): an
//! `update_chat_ctx` of 100,000 items, a server frame of hundreds of thousands of tool calls,
//! and an application that never reads its events while the peer has stopped reading. Each
//! asserts what the session did with them; how fast it does it is
//! `cargo bench -p agent-glue --bench hostile`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_glue::conduit::{Action, Command, SessionCore};
use agent_glue::{LiveSession, MAX_TOOL_CALLS_PER_FRAME, SessionEvent};
use ctx_model::{ChatContext, Item, ItemId, Message};
use gemini_transport::wire::{ClientMessage, PartData, ServerMessage};
use gemini_transport::{Endpoint, SecretString};
use resume_policy::{ConnectionId, Millis};

const MODEL: &str = "gemini-2.5-flash-native-audio-preview-12-2025";

/// A core whose first connection is set up, with nothing in `L` and nothing left to poll.
fn connected() -> (SessionCore, ConnectionId) {
    let endpoint = Endpoint::api_key(SecretString::from("test"));
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

fn history(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let id = format!("item-{i}");
            if i % 2 == 0 {
                Message::user(id, format!("question {i}")).into()
            } else {
                Message::model(id, format!("answer {i}")).into()
            }
        })
        .collect()
}

fn text_of(content: &gemini_transport::wire::Content) -> &str {
    match content.parts.as_slice() {
        [part] => match &part.data {
            PartData::Text(text) => text,
            other => panic!("not a text part: {other:?}"),
        },
        parts => panic!("{} parts", parts.len()),
    }
}

/// 100,000 items in one update go out as one `clientContent` of 100,000 turns in their order,
/// as history; `L` is the new context; a later update that appends one more item sends only
/// that one (the mirror holds the 100,000, each once). The mirror used to renumber every
/// position per item added (5 s for this update in release builds).
#[test]
fn an_update_of_100_000_items_goes_out_whole_in_order_once() {
    const N: usize = 100_000;
    let (mut core, connection) = connected();
    let items = history(N);
    let context = ChatContext::from_items(items.clone()).unwrap();
    let based_on = core.version();
    let receipt = core
        .command(
            Millis(1),
            Command::UpdateContext {
                context: context.clone(),
                based_on,
            },
        )
        .unwrap();
    assert_eq!(receipt.items.len(), N);
    assert_eq!(receipt.items[N - 1], ItemId::from("item-99999"));
    let transmit = core.poll_transmit().expect("one message");
    assert_eq!(transmit.connection, connection);
    let ClientMessage::ClientContent(content) = transmit.message else {
        panic!("not clientContent: {:?}", transmit.message);
    };
    assert!(!content.turn_complete, "history asks for no answer");
    assert_eq!(content.turns.len(), N);
    for (i, turn) in content.turns.iter().enumerate() {
        let expected = if i % 2 == 0 {
            format!("question {i}")
        } else {
            format!("answer {i}")
        };
        assert_eq!(text_of(turn), expected, "turn {i}");
    }
    assert!(core.poll_transmit().is_none(), "nothing else goes out");
    assert_eq!(core.chat_ctx(), &context);

    let mut more = context.clone();
    more.push(Message::user("one-more", "and another")).unwrap();
    core.command(
        Millis(2),
        Command::UpdateContext {
            context: more.clone(),
            based_on: core.version(),
        },
    )
    .unwrap();
    let transmit = core.poll_transmit().expect("one message");
    let ClientMessage::ClientContent(content) = transmit.message else {
        panic!("not clientContent: {:?}", transmit.message);
    };
    assert_eq!(content.turns.len(), 1, "only the new item");
    assert_eq!(text_of(&content.turns[0]), "and another");
    assert_eq!(core.chat_ctx(), &more);
}

fn tool_call_frame(first: usize, count: usize) -> ServerMessage {
    let calls: Vec<String> = (first..first + count)
        .map(|i| format!(r#"{{"id":"call-{i}","name":"lookup","args":{{"q":{i}}}}}"#))
        .collect();
    let json = format!(
        r#"{{"toolCall":{{"functionCalls":[{}]}}}}"#,
        calls.join(",")
    );
    ServerMessage::from_json(json.as_bytes()).unwrap()
}

fn events(core: &mut SessionCore) -> Vec<SessionEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// A `toolCall` frame of 300,000 calls is refused whole: one event, nothing in `L`, nothing
/// sent, the tracker none the wiser (it used to become 300,000 events and 1.8 GiB). A frame at
/// the limit is taken as usual, and so is a sane frame after the refused one.
#[test]
fn a_frame_of_300_000_tool_calls_is_refused_whole_with_one_event() {
    let (mut core, connection) = connected();
    core.command(Millis(1), Command::Text("go".to_owned()))
        .unwrap();
    while core.poll_transmit().is_some() {}
    let before = core.chat_ctx().clone();
    core.handle_message(Millis(2), connection, tool_call_frame(0, 300_000));
    assert_eq!(
        events(&mut core),
        [SessionEvent::ToolCallsRefused {
            count: 300_000,
            max: MAX_TOOL_CALLS_PER_FRAME,
        }]
    );
    assert_eq!(core.chat_ctx(), &before, "no call reached the context");
    assert!(core.poll_transmit().is_none());
    assert!(
        core.command(
            Millis(3),
            Command::ToolResult {
                call_id: "call-7".to_owned(),
                output: serde_json::json!({"ok": true}),
                is_error: false,
                scheduling: None,
                will_continue: false,
            },
        )
        .is_err(),
        "a refused call cannot be answered"
    );

    core.handle_message(
        Millis(4),
        connection,
        tool_call_frame(1_000_000, MAX_TOOL_CALLS_PER_FRAME),
    );
    let calls: Vec<String> = events(&mut core)
        .into_iter()
        .filter_map(|event| match event {
            SessionEvent::ToolCall { call_id, .. } => Some(call_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls.len(),
        MAX_TOOL_CALLS_PER_FRAME,
        "a frame at the limit"
    );
    assert_eq!(calls[0], "call-1000000");
    let in_context = core
        .chat_ctx()
        .iter()
        .filter(|item| item.as_function_call().is_some())
        .count();
    assert_eq!(in_context, MAX_TOOL_CALLS_PER_FRAME);
    core.command(
        Millis(5),
        Command::ToolResult {
            call_id: "call-1000007".to_owned(),
            output: serde_json::json!({"ok": true}),
            is_error: false,
            scheduling: None,
            will_continue: false,
        },
    )
    .unwrap();
    let transmit = core.poll_transmit().expect("the answer goes out");
    assert!(matches!(transmit.message, ClientMessage::ToolResponse(_)));
}

/// The text of one frame is one event, however many parts carry it, in order.
#[test]
fn a_frame_of_many_text_parts_is_one_text_event() {
    let (mut core, connection) = connected();
    core.command(Millis(1), Command::Text("go".to_owned()))
        .unwrap();
    while core.poll_transmit().is_some() {}
    let parts: Vec<String> = (0..50_000)
        .map(|i| format!(r#"{{"text":"{i} "}}"#))
        .collect();
    let json = format!(
        r#"{{"serverContent":{{"modelTurn":{{"parts":[{}]}}}}}}"#,
        parts.join(",")
    );
    core.handle_message(
        Millis(2),
        connection,
        ServerMessage::from_json(json.as_bytes()).unwrap(),
    );
    let expected: String = (0..50_000).map(|i| format!("{i} ")).collect();
    assert_eq!(events(&mut core), [SessionEvent::Text(expected)]);
}

/// A cancellation naming 200,000 calls, among them the answered ones: their answers leave
/// `L` (in one pass), the rest of `L` keeps its order, and the one event names every id.
#[test]
fn a_cancellation_of_200_000_ids_drops_the_answers_in_one_pass() {
    let (mut core, connection) = connected();
    core.command(Millis(1), Command::Text("go".to_owned()))
        .unwrap();
    core.handle_message(Millis(2), connection, tool_call_frame(0, 100));
    for i in (0..100).step_by(2) {
        core.command(
            Millis(3),
            Command::ToolResult {
                call_id: format!("call-{i}"),
                output: serde_json::json!({"n": i}),
                is_error: false,
                scheduling: None,
                will_continue: false,
            },
        )
        .unwrap();
    }
    while core.poll_transmit().is_some() {}
    let _ = events(&mut core);
    let outputs = |core: &SessionCore| {
        core.chat_ctx()
            .iter()
            .filter_map(|item| item.as_function_output().map(|o| o.call_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(outputs(&core).len(), 50);
    let ids: Vec<String> = (0..200_000)
        .map(|i| format!("\"call-{}\"", i * 4))
        .collect();
    let json = format!(
        r#"{{"toolCallCancellation":{{"ids":[{}]}}}}"#,
        ids.join(",")
    );
    core.handle_message(
        Millis(4),
        connection,
        ServerMessage::from_json(json.as_bytes()).unwrap(),
    );
    let kept: Vec<String> = (0..100)
        .step_by(2)
        .filter(|i| i % 4 != 0)
        .map(|i| format!("call-{i}"))
        .collect();
    assert_eq!(outputs(&core), kept);
    let calls = core
        .chat_ctx()
        .iter()
        .filter(|item| item.as_function_call().is_some())
        .count();
    assert_eq!(calls, 100, "the calls themselves stay");
    let events = events(&mut core);
    assert!(
        matches!(events.as_slice(), [SessionEvent::ToolCallCancelled { call_ids }] if call_ids.len() == 200_000),
        "{:?}",
        events.len()
    );
}
