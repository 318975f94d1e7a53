//! Diff benchmarks: `diff` of a 1,000- and a 10,000-item context against (a) itself plus one
//! appended item, (b) itself with one item edited in the middle, (c) itself reversed;
//! `appendable_suffix` for (a) and `apply` for (c). Run with `cargo bench -p ctx-model --bench diff`; comparing the
//! two sizes shows the cost is linear.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ctx_model::{ChatContext, FunctionCall, FunctionOutput, Item, Message, apply, diff};
use divan::Bencher;
use serde_json::json;

const SIZES: [usize; 2] = [1_000, 10_000];

fn main() {
    divan::main();
}

/// A realistic conversation: user turns, model turns, and a tool call with its output every
/// tenth item.
fn conversation(len: usize) -> ChatContext {
    ChatContext::from_items((0..len).map(|i| conversation_item(i, "")))
        .expect("generated ids are unique")
}

fn conversation_item(i: usize, edit: &str) -> Item {
    let id = format!("item-{i:06}");
    match i % 10 {
        8 => FunctionCall::new(id, format!("call-{i}"), "lookup", json!({ "q": i })).into(),
        9 => FunctionOutput::new(
            id,
            format!("call-{}", i - 1),
            "lookup",
            json!({ "rows": [i] }),
        )
        .into(),
        n if n % 2 == 0 => Message::user(id, format!("user turn {i}{edit}")).into(),
        _ => Message::model(id, format!("model answer number {i}{edit}")).into(),
    }
}

fn pair(len: usize, change: impl Fn(&mut ChatContext)) -> (ChatContext, ChatContext) {
    let old = conversation(len);
    let mut new = old.clone();
    change(&mut new);
    (old, new)
}

#[divan::bench(args = SIZES)]
fn append_one(bencher: Bencher<'_, '_>, len: usize) {
    let (old, new) = pair(len, |c| {
        c.push_user("appended", "one more").expect("fresh id");
    });
    bencher.bench(|| diff(divan::black_box(&old), divan::black_box(&new)));
}

#[divan::bench(args = SIZES)]
fn edit_middle(bencher: Bencher<'_, '_>, len: usize) {
    let (old, new) = pair(len, |c| {
        c.replace(conversation_item(len / 2, " (edited)"))
            .expect("existing id");
    });
    bencher.bench(|| diff(divan::black_box(&old), divan::black_box(&new)));
}

#[divan::bench(args = SIZES)]
fn reversed(bencher: Bencher<'_, '_>, len: usize) {
    let old = conversation(len);
    let new = ChatContext::from_items(old.iter().rev().cloned()).expect("same ids");
    bencher.bench(|| diff(divan::black_box(&old), divan::black_box(&new)));
}

#[divan::bench(args = SIZES)]
fn appendable_suffix_after_append(bencher: Bencher<'_, '_>, len: usize) {
    let (held, desired) = pair(len, |c| {
        c.push_user("appended", "one more").expect("fresh id");
    });
    bencher.bench(|| {
        divan::black_box(&desired)
            .appendable_suffix(divan::black_box(&held))
            .map(<[Item]>::len)
            .ok()
    });
}

#[divan::bench(args = SIZES)]
fn apply_reversed(bencher: Bencher<'_, '_>, len: usize) {
    let old = conversation(len);
    let new = ChatContext::from_items(old.iter().rev().cloned()).expect("same ids");
    let change = diff(&old, &new);
    bencher.bench(|| apply(divan::black_box(&old), divan::black_box(&change)));
}
