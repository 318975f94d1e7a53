//! `ChatContext`: construction, lookups and edits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ctx_model::{
    ChatContext, ContentPart, Error, FunctionCall, FunctionOutput, Item, ItemId, Message,
    MessageOrigin, Role,
};
use serde_json::json;

fn ids(context: &ChatContext) -> Vec<&str> {
    context.ids().map(ItemId::as_str).collect()
}

#[test]
fn builder_keeps_conversation_order_and_kinds() {
    let context = ChatContext::builder()
        .user("u1", "Hi")
        .model_transcript("m1", "Hello there")
        .function_call("c1", "call-1", "lookup", json!({"q": "x"}))
        .function_error("o1", "call-1", "lookup", json!({"error": "timeout"}))
        .build()
        .unwrap();
    assert_eq!(ids(&context), ["u1", "m1", "c1", "o1"]);
    assert_eq!(
        context.get("m1"),
        Some(&Item::Message(Message {
            id: ItemId::new("m1"),
            role: Role::Model,
            parts: vec![ContentPart::Text("Hello there".into())],
            origin: MessageOrigin::Transcript,
        }))
    );
    assert_eq!(
        context.get("o1"),
        Some(&Item::FunctionOutput(FunctionOutput {
            id: ItemId::new("o1"),
            call_id: "call-1".into(),
            name: "lookup".into(),
            output: json!({"error": "timeout"}),
            is_error: true,
            delivery: ctx_model::Delivery::BLOCKING,
        }))
    );
    assert_eq!(context.get("c1").map(Item::role), Some(Role::Model));
    assert_eq!(context.get("o1").and_then(Item::call_id), Some("call-1"));
}

#[test]
fn builder_reports_the_first_duplicate_id() {
    let err = ChatContext::builder()
        .user("a", "1")
        .model("b", "2")
        .user("a", "3")
        .build()
        .unwrap_err();
    assert_eq!(err, Error::DuplicateId { id: "a".into() });
    assert_eq!(
        err.to_string(),
        "duplicate item id `a`: ids must be unique within a chat context"
    );
}

#[test]
fn empty_id_is_refused() {
    let mut context = ChatContext::new();
    assert_eq!(context.push_user("", "x").unwrap_err(), Error::EmptyId);
    assert!(context.is_empty());
}

#[test]
fn failed_push_leaves_the_context_unchanged() {
    let mut context = ChatContext::builder().user("a", "1").build().unwrap();
    let before = context.clone();
    assert_eq!(
        context.push_model("a", "other").unwrap_err(),
        Error::DuplicateId { id: "a".into() }
    );
    assert_eq!(context, before);
}

#[test]
fn push_chains_and_message_text_concatenates_parts() {
    let mut context = ChatContext::new();
    context
        .push_user("u1", "Hi")
        .unwrap()
        .push(Message::new(
            "m1",
            Role::Model,
            vec!["Hel".into(), ContentPart::Text("lo".into())],
        ))
        .unwrap();
    let text = context
        .get("m1")
        .and_then(Item::as_message)
        .map(Message::text);
    assert_eq!(text.as_deref(), Some("Hello"));
    assert!(
        !context
            .get("m1")
            .unwrap()
            .as_message()
            .unwrap()
            .is_transcript()
    );
}

#[test]
fn insert_and_remove_keep_the_index_consistent() {
    let mut context = ChatContext::builder()
        .user("a", "1")
        .user("c", "3")
        .build()
        .unwrap();
    context
        .insert_after(Some(&"a".into()), Message::user("b", "2"))
        .unwrap();
    context.insert_after(None, Message::user("z", "0")).unwrap();
    assert_eq!(ids(&context), ["z", "a", "b", "c"]);
    for (i, id) in ["z", "a", "b", "c"].into_iter().enumerate() {
        assert_eq!(context.index_of(id), Some(i));
    }
    let removed = context.remove("a").unwrap();
    assert_eq!(removed.id(), "a");
    assert_eq!(ids(&context), ["z", "b", "c"]);
    assert_eq!(context.index_of("c"), Some(2));
    assert!(!context.contains("a"));
    assert_eq!(
        context.get(&ItemId::new("b")).map(Item::id),
        Some(&"b".into())
    );
}

#[test]
fn insert_after_unknown_anchor_or_existing_id_fails() {
    let mut context = ChatContext::builder().user("a", "1").build().unwrap();
    assert_eq!(
        context
            .insert_after(Some(&"nope".into()), Message::user("b", "2"))
            .unwrap_err(),
        Error::UnknownAnchor {
            after: "nope".into()
        }
    );
    assert_eq!(
        context
            .insert_after(None, Message::user("a", "again"))
            .unwrap_err(),
        Error::DuplicateId { id: "a".into() }
    );
    assert_eq!(context.len(), 1);
}

#[test]
fn remove_and_replace_of_unknown_ids_fail() {
    let mut context = ChatContext::builder().user("a", "1").build().unwrap();
    assert_eq!(
        context.remove("x").unwrap_err(),
        Error::UnknownId { id: "x".into() }
    );
    assert_eq!(
        context.replace(Message::user("x", "2")).unwrap_err(),
        Error::UnknownId { id: "x".into() }
    );
}

#[test]
fn replace_keeps_the_position_and_returns_the_old_version() {
    let mut context = ChatContext::builder()
        .user("a", "1")
        .model("b", "2")
        .build()
        .unwrap();
    let old = context
        .replace(FunctionCall::new("a", "k", "f", json!(null)))
        .unwrap();
    assert_eq!(old, Item::Message(Message::user("a", "1")));
    assert_eq!(ids(&context), ["a", "b"]);
    assert!(context.get("a").unwrap().as_function_call().is_some());
}

#[test]
fn truncate_frees_ids_and_prefix_copies() {
    let mut context = ChatContext::builder()
        .user("a", "1")
        .model("b", "2")
        .user("c", "3")
        .build()
        .unwrap();
    let head = context.prefix(2);
    assert_eq!(ids(&head), ["a", "b"]);
    assert_eq!(head.index_of("b"), Some(1));
    assert!(!head.contains("c"));
    assert_eq!(context.prefix(99), context);
    assert!(context.starts_with(&head));

    context.truncate(1);
    assert_eq!(ids(&context), ["a"]);
    context.push_model("b", "other").unwrap();
    assert_eq!(context.index_of("b"), Some(1));
    assert!(!context.starts_with(&head));
}

#[test]
fn pending_calls_are_calls_without_output() {
    let context = ChatContext::builder()
        .function_call("c1", "k1", "f", json!({}))
        .function_call("c2", "k2", "g", json!({}))
        .function_output("o1", "k1", "f", json!(1))
        .build()
        .unwrap();
    let pending: Vec<&str> = context
        .pending_calls()
        .into_iter()
        .map(|c| c.call_id.as_str())
        .collect();
    assert_eq!(pending, ["k2"]);
}

#[test]
fn a_call_with_only_an_interim_output_is_pending() {
    use ctx_model::{Delivery, FunctionOutput, Item};
    let mut context = ChatContext::builder()
        .function_call("c1", "k1", "f", json!({}))
        .build()
        .unwrap();
    let interim = FunctionOutput::new("o1", "k1", "f", json!({"progress": 1}))
        .with_delivery(Delivery::non_blocking(None, true));
    context.push(Item::FunctionOutput(interim)).unwrap();
    let pending = |c: &ChatContext| -> Vec<String> {
        c.pending_calls()
            .into_iter()
            .map(|c| c.call_id.clone())
            .collect()
    };
    assert_eq!(
        pending(&context),
        ["k1"],
        "an interim result leaves the call open"
    );
    let last = FunctionOutput::new("o2", "k1", "f", json!({"done": true}))
        .with_delivery(Delivery::non_blocking(None, false));
    context.push(Item::FunctionOutput(last)).unwrap();
    assert!(pending(&context).is_empty(), "the final result closes it");
}

#[test]
fn equality_ignores_how_a_context_was_built() {
    let built = ChatContext::builder()
        .user("a", "1")
        .model("b", "2")
        .build()
        .unwrap();
    let mut edited = ChatContext::builder()
        .model("b", "2")
        .user("x", "0")
        .build()
        .unwrap();
    edited.remove("x").unwrap();
    edited.insert_after(None, Message::user("a", "1")).unwrap();
    assert_eq!(built, edited);
    assert_eq!(
        ChatContext::try_from(built.clone().into_items()).unwrap(),
        built
    );
}

#[test]
fn extend_is_all_or_nothing() {
    let mut context = ChatContext::builder().user("a", "1").build().unwrap();
    let clash_inside = vec![item_b(), Message::user("c", "3").into(), item_b()];
    assert_eq!(
        context.extend(clash_inside).unwrap_err(),
        Error::DuplicateId { id: "b".into() }
    );
    let clash_with_context = vec![item_b(), Message::user("a", "again").into()];
    assert_eq!(
        context.extend(clash_with_context).unwrap_err(),
        Error::DuplicateId { id: "a".into() }
    );
    assert_eq!(ids(&context), ["a"]);
    context
        .extend([item_b(), Message::user("c", "3").into()])
        .unwrap();
    assert_eq!(ids(&context), ["a", "b", "c"]);
    assert_eq!(context.index_of("c"), Some(2));
}

fn item_b() -> Item {
    Message::model("b", "2").into()
}

#[test]
fn common_prefix_len_stops_at_the_first_difference() {
    let a = ChatContext::builder()
        .user("a", "1")
        .model("b", "2")
        .user("c", "3")
        .build()
        .unwrap();
    let mut b = a.clone();
    b.replace(Message::model("b", "edited")).unwrap();
    assert_eq!(a.common_prefix_len(&b), 1);
    assert_eq!(a.common_prefix_len(&a.prefix(2)), 2);
    assert_eq!(a.common_prefix_len(&ChatContext::new()), 0);
}

/// `remove_where` removes what it picks in one pass, returns the ids in order, and leaves
/// every other item in order and found by id at its new position.
#[test]
fn remove_where_keeps_the_rest_in_order_and_indexed() {
    let mut ctx = ChatContext::from_items(
        (0..1_000).map(|i| Item::from(Message::user(format!("i{i}"), format!("t{i}")))),
    )
    .unwrap();
    let removed = ctx.remove_where(|item| {
        let n: usize = item.id().as_str()[1..].parse().unwrap();
        n % 3 == 1
    });
    assert_eq!(removed.len(), 333);
    assert_eq!(removed[0].as_str(), "i1");
    assert_eq!(removed[332].as_str(), "i997");
    assert_eq!(ctx.len(), 667);
    for (at, item) in ctx.iter().enumerate() {
        assert_eq!(ctx.index_of(item.id()), Some(at));
        let n: usize = item.id().as_str()[1..].parse().unwrap();
        assert_ne!(n % 3, 1);
    }
    assert!(!ctx.contains("i1") && ctx.contains("i2"));
    assert!(ctx.remove_where(|_| false).is_empty());
    ctx.push(Message::user("i1", "back")).unwrap();
    assert_eq!(ctx.index_of("i1"), Some(667));
}
