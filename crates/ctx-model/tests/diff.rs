//! `diff`, `apply` and classification on hand-picked cases, with the exact ops expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ctx_model::{ChatContext, DiffKind, DiffOp, Error, Item, Message, apply, diff};

fn users(ids: &[&str]) -> ChatContext {
    ChatContext::from_items(ids.iter().map(|id| Item::from(Message::user(*id, *id)))).unwrap()
}

fn item(id: &str) -> Item {
    Message::user(id, id).into()
}

fn remove(id: &str) -> DiffOp {
    DiffOp::Remove { id: id.into() }
}

fn insert(after: Option<&str>, id: &str) -> DiffOp {
    DiffOp::InsertAfter {
        after: after.map(Into::into),
        item: item(id),
    }
}

fn move_after(after: Option<&str>, id: &str) -> DiffOp {
    DiffOp::MoveAfter {
        id: id.into(),
        after: after.map(Into::into),
    }
}

fn roundtrip(old: &ChatContext, new: &ChatContext) -> Vec<DiffOp> {
    let d = diff(old, new);
    assert_eq!(apply(old, &d).as_ref(), Ok(new));
    d.into_ops()
}

#[test]
fn equal_contexts_give_an_empty_append_only_diff() {
    let c = users(&["a", "b"]);
    let d = diff(&c, &c);
    assert!(d.is_empty());
    assert_eq!(d.classify(), DiffKind::AppendOnly);
    assert_eq!(roundtrip(&ChatContext::new(), &ChatContext::new()), []);
}

#[test]
fn appends_are_one_append_op() {
    let ops = roundtrip(&users(&["a", "b"]), &users(&["a", "b", "c", "d"]));
    assert_eq!(
        ops,
        [DiffOp::Append {
            items: vec![item("c"), item("d")]
        }]
    );
    let ops = roundtrip(&ChatContext::new(), &users(&["a"]));
    assert_eq!(
        ops,
        [DiffOp::Append {
            items: vec![item("a")]
        }]
    );
}

#[test]
fn an_edit_is_a_replace_of_the_same_id() {
    let old = users(&["a", "b", "c"]);
    let mut new = old.clone();
    new.replace(Message::model("b", "edited")).unwrap();
    let ops = roundtrip(&old, &new);
    assert_eq!(
        ops,
        [DiffOp::Replace {
            id: "b".into(),
            item: Message::model("b", "edited").into()
        }]
    );
    assert_eq!(diff(&old, &new).classify(), DiffKind::Rewrite);
}

#[test]
fn removals_including_everything() {
    assert_eq!(
        roundtrip(&users(&["a", "b", "c"]), &users(&["a", "c"])),
        [remove("b")]
    );
    assert_eq!(
        roundtrip(&users(&["a", "b"]), &ChatContext::new()),
        [remove("a"), remove("b")]
    );
}

#[test]
fn insertions_in_the_middle_chain_on_their_predecessor() {
    let ops = roundtrip(&users(&["a", "d"]), &users(&["x", "a", "b", "c", "d", "e"]));
    assert_eq!(
        ops,
        [
            insert(None, "x"),
            insert(Some("a"), "b"),
            insert(Some("b"), "c"),
            DiffOp::Append {
                items: vec![item("e")]
            },
        ]
    );
}

#[test]
fn moving_the_last_item_to_the_front_moves_only_it() {
    let ops = roundtrip(&users(&["a", "b", "c", "d"]), &users(&["d", "a", "b", "c"]));
    assert_eq!(ops, [move_after(None, "d")]);
}

#[test]
fn reversal_keeps_one_item() {
    let ops = roundtrip(&users(&["a", "b", "c"]), &users(&["c", "b", "a"]));
    assert_eq!(ops, [move_after(None, "c"), move_after(Some("c"), "b")]);
}

#[test]
fn a_moved_item_that_changed_is_removed_and_inserted() {
    let old = users(&["a", "b", "c"]);
    let new = ChatContext::from_items([
        Item::from(Message::user("c", "c, edited")),
        item("a"),
        item("b"),
    ])
    .unwrap();
    let ops = roundtrip(&old, &new);
    assert_eq!(
        ops,
        [
            remove("c"),
            DiffOp::InsertAfter {
                after: None,
                item: Message::user("c", "c, edited").into(),
            },
        ]
    );
    assert_eq!(diff(&old, &new).classify(), DiffKind::Rewrite);
}

#[test]
fn a_move_of_a_missing_item_is_a_typed_error() {
    let old = users(&["a", "b"]);
    let moves = diff(&old, &users(&["b", "a"]));
    assert_eq!(moves.ops(), [move_after(None, "b")]);
    assert_eq!(apply(&old, &moves), Ok(users(&["b", "a"])));
    // The same diff against a context without `b`.
    let other = users(&["a", "x"]);
    assert_eq!(
        apply(&other, &moves),
        Err(Error::UnknownId { id: "b".into() })
    );
}

#[test]
fn replacing_the_last_held_item_with_a_new_one_is_a_rewrite_with_an_append() {
    let old = users(&["a", "b", "c"]);
    let new = users(&["a", "b", "d"]);
    let ops = roundtrip(&old, &new);
    assert_eq!(
        ops,
        [
            remove("c"),
            DiffOp::Append {
                items: vec![item("d")]
            }
        ]
    );
    let divergence = new.appendable_suffix(&old).unwrap_err();
    assert_eq!(divergence.edits().collect::<Vec<_>>(), [&remove("c")]);
    assert_eq!(divergence.appendable(), [item("d")]);
    assert_eq!(
        divergence.to_string(),
        "the desired context changes 1 item(s) the server already holds (first: removal of `c`)"
    );
}

#[test]
fn appendable_suffix_of_an_extended_context() {
    let held = users(&["a", "b"]);
    let desired = users(&["a", "b", "c"]);
    assert_eq!(desired.appendable_suffix(&held), Ok(&[item("c")][..]));
    assert_eq!(held.appendable_suffix(&held), Ok(&[][..]));
    assert_eq!(
        desired.appendable_suffix(&ChatContext::new()),
        Ok(desired.items())
    );
}

#[test]
fn a_diff_applied_to_another_context_is_a_typed_error() {
    let d = diff(&users(&["a", "b"]), &users(&["a"]));
    assert_eq!(
        apply(&users(&["a"]), &d),
        Err(Error::UnknownId { id: "b".into() })
    );

    let d = diff(&users(&["a", "b"]), &users(&["a", "x", "b"]));
    assert_eq!(
        apply(&users(&["b"]), &d),
        Err(Error::UnknownAnchor { after: "a".into() })
    );

    let d = diff(&users(&["a"]), &users(&["x", "a"]));
    assert_eq!(
        apply(&users(&["x", "a"]), &d),
        Err(Error::DuplicateId { id: "x".into() })
    );
}
