//! Hostile sizes against the sans-IO session (core and conduit, no sockets, no clock): an
//! `update_chat_ctx` of 100,000 items, a server frame of hundreds of thousands of tool calls,
//! and an application that never reads its events while the peer has stopped reading. Each
//! asserts what the session did with them; how fast it does it is
//! `cargo bench -p agent-glue --bench hostile`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_glue::LiveSession;
use agent_glue::core::{Action, Command, SessionCore};
use ctx_model::{ChatContext, Item, ItemId, Message};
use gemini_transport::wire::{ClientMessage, PartData};
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
