//! Property tests: `apply(old, &diff(old, new)) == new` for all inputs, the diff keeps a longest
//! common ordered run, and classification agrees with what the server could receive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ctx_model::{
    ChatContext, DiffKind, DiffOp, FunctionCall, FunctionOutput, Item, Message, apply, diff,
};
use proptest::prelude::*;
use serde_json::json;

/// An item with `id` and content from a tiny pool, so that unrelated items often look alike.
fn item(id: String, kind: u8, text: u8) -> Item {
    let text = ["", "a", "b"][usize::from(text % 3)];
    match kind % 6 {
        0 => Message::user(id, text).into(),
        1 => Message::model(id, text).into(),
        2 => Message::user(id, text).transcript().into(),
        3 => FunctionCall::new(id, "k", "f", json!({ "x": text })).into(),
        4 => FunctionOutput::new(id, "k", "f", json!(text)).into(),
        _ => FunctionOutput::error(id, "k", "f", json!(text)).into(),
    }
}

/// A context drawing ids from `i0..i15` (first occurrence wins), in random order.
fn context(max_len: usize) -> impl Strategy<Value = ChatContext> {
    prop::collection::vec((0u8..16, any::<u8>(), any::<u8>()), 0..max_len).prop_map(|raw| {
        let mut context = ChatContext::new();
        for (id, kind, text) in raw {
            let id = format!("i{id}");
            if !context.contains(id.as_str()) {
                context.push(item(id, kind, text)).unwrap();
            }
        }
        context
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Edit(usize, u8, u8),
    Remove(usize),
    Insert(usize, u8, u8),
    Move(usize, usize),
    Append(u8, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>(), any::<u8>()).prop_map(|(i, k, t)| Mutation::Edit(i, k, t)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), any::<u8>(), any::<u8>()).prop_map(|(i, k, t)| Mutation::Insert(i, k, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Move(a, b)),
        (any::<u8>(), any::<u8>()).prop_map(|(k, t)| Mutation::Append(k, t)),
    ]
}

/// Applies mutations through the `ChatContext` editing API; new ids are `n0`, `n1`, ...
fn mutate(old: &ChatContext, mutations: &[Mutation]) -> ChatContext {
    let mut new = old.clone();
    for (fresh, m) in mutations.iter().enumerate() {
        let fresh_id = format!("n{fresh}");
        let anchor = |at: usize, new: &ChatContext| {
            at.checked_sub(1)
                .and_then(|p| new.items().get(p))
                .map(|i| i.id().clone())
        };
        match *m {
            Mutation::Edit(at, kind, text) if !new.is_empty() => {
                let id = new.items()[at % new.len()].id().clone();
                new.replace(item(id.into_string(), kind, text)).unwrap();
            }
            Mutation::Remove(at) if !new.is_empty() => {
                let id = new.items()[at % new.len()].id().clone();
                new.remove(&id).unwrap();
            }
            Mutation::Insert(at, kind, text) => {
                let after = anchor(at % (new.len() + 1), &new);
                new.insert_after(after.as_ref(), item(fresh_id, kind, text))
                    .unwrap();
            }
            Mutation::Move(from, to) if !new.is_empty() => {
                let id = new.items()[from % new.len()].id().clone();
                let moved = new.remove(&id).unwrap();
                let after = anchor(to % (new.len() + 1), &new);
                new.insert_after(after.as_ref(), moved).unwrap();
            }
            Mutation::Append(kind, text) => {
                new.push(item(fresh_id, kind, text)).unwrap();
            }
            _ => {}
        }
    }
    new
}

/// Length of a longest run of common ids in the same order, by the quadratic textbook DP.
fn longest_common_order(old: &ChatContext, new: &ChatContext) -> usize {
    let pos: Vec<usize> = new.ids().filter_map(|id| old.index_of(id)).collect();
    let mut best = vec![1usize; pos.len()];
    for j in 0..pos.len() {
        for i in 0..j {
            if pos[i] < pos[j] {
                best[j] = best[j].max(best[i] + 1);
            }
        }
    }
    best.into_iter().max().unwrap_or(0)
}

fn check_roundtrip(old: &ChatContext, new: &ChatContext) -> Result<(), TestCaseError> {
    let d = diff(old, new);
    prop_assert_eq!(apply(old, &d), Ok(new.clone()));
    // Only real changes produce ops.
    for op in d.ops() {
        if let DiffOp::Replace { id, item } = op {
            prop_assert_ne!(old.get(id), Some(item));
        }
    }
    prop_assert!(d.ops().len() <= old.len() + new.len() + 1);
    // The ordered run kept is a longest one: every other common item is moved (a `MoveAfter`
    // when unchanged, else a `Remove` of an id that `new` still holds plus an insertion).
    let common = new.ids().filter(|id| old.contains(*id)).count();
    let moved = d
        .ops()
        .iter()
        .filter(|op| match op {
            DiffOp::Remove { id } => new.contains(id),
            DiffOp::MoveAfter { id, .. } => old.get(id) == new.get(id),
            _ => false,
        })
        .count();
    prop_assert_eq!(common - moved, longest_common_order(old, new));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn apply_inverts_diff_for_unrelated_contexts(old in context(20), new in context(20)) {
        check_roundtrip(&old, &new)?;
        check_roundtrip(&new, &old)?;
    }

    #[test]
    fn apply_inverts_diff_for_edited_contexts(
        old in context(20),
        mutations in prop::collection::vec(mutation(), 0..8),
    ) {
        let new = mutate(&old, &mutations);
        check_roundtrip(&old, &new)?;
        check_roundtrip(&new, &old)?;
    }

    #[test]
    fn a_context_diffs_to_nothing_against_itself(c in context(20)) {
        let d = diff(&c, &c);
        prop_assert!(d.is_empty());
        prop_assert_eq!(c.appendable_suffix(&c), Ok(&[][..]));
    }

    #[test]
    fn appends_are_classified_append_only(
        held in context(20),
        extra in prop::collection::vec((any::<u8>(), any::<u8>()), 0..6),
    ) {
        let appended: Vec<Item> = extra
            .iter()
            .enumerate()
            .map(|(n, &(kind, text))| item(format!("n{n}"), kind, text))
            .collect();
        let mut desired = held.clone();
        for it in &appended {
            desired.push(it.clone()).unwrap();
        }
        let d = diff(&held, &desired);
        prop_assert_eq!(d.classify(), DiffKind::AppendOnly);
        prop_assert_eq!(d.appended(), &appended[..]);
        prop_assert_eq!(desired.appendable_suffix(&held), Ok(&appended[..]));
    }

    #[test]
    fn any_change_to_a_held_item_is_a_rewrite(
        held in context(20).prop_filter("non-empty", |c| !c.is_empty()),
        at in any::<usize>(),
        to in any::<usize>(),
        change in 0u8..4,
        append in any::<bool>(),
    ) {
        let k = at % held.len();
        let id = held.items()[k].id().clone();
        let mut desired = held.clone();
        match change {
            0 => {
                desired.replace(Message::user(id.clone(), "edited")).unwrap();
            }
            1 => {
                desired.remove(&id).unwrap();
            }
            2 => {
                let after = k.checked_sub(1).map(|p| held.items()[p].id().clone());
                desired.insert_after(after.as_ref(), Message::user("new", "x")).unwrap();
            }
            _ => {
                let moved = desired.remove(&id).unwrap();
                let slot = to % (desired.len() + 1);
                prop_assume!(slot != k);
                let after = slot.checked_sub(1).map(|p| desired.items()[p].id().clone());
                desired.insert_after(after.as_ref(), moved).unwrap();
            }
        }
        if append {
            desired.push_user("tail", "t").unwrap();
        }
        let d = diff(&held, &desired);
        prop_assert_eq!(d.classify(), DiffKind::Rewrite);
        prop_assert!(d.edits().next().is_some());
        let divergence = desired.appendable_suffix(&held).unwrap_err();
        prop_assert_eq!(divergence.diff(), &d);
    }

    #[test]
    fn classification_agrees_with_prefix_check(held in context(12), desired in context(12)) {
        let d = diff(&held, &desired);
        let append_only = d.classify() == DiffKind::AppendOnly;
        prop_assert_eq!(append_only, desired.starts_with(&held));
        match desired.appendable_suffix(&held) {
            Ok(suffix) => {
                prop_assert!(append_only);
                prop_assert_eq!(suffix, d.appended());
            }
            Err(divergence) => {
                prop_assert!(!append_only);
                prop_assert_eq!(divergence.appendable(), d.appended());
            }
        }
    }
}
