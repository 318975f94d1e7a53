//! What of a change the server can receive: appends at the end, and nothing else.

use std::fmt;

use crate::{ChatContext, ContextDiff, DiffOp, Item, diff};

/// Whether a [`ContextDiff`] can be delivered to a live Gemini session.
///
/// The diff is read as `diff(held, desired)`, where `held` is what the server holds (the
/// mirror, or the part of it a resumption handle covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiffKind {
    /// Nothing but items appended after everything the server holds (possibly nothing at all):
    /// deliverable as new turns, tool responses or context updates.
    AppendOnly,
    /// At least one removal, edit, insertion or move of something the server holds. Gemini
    /// has no operation for these; they must be reported (or the session started afresh).
    Rewrite,
}

impl ContextDiff {
    /// Classifies the diff, reading its old side as what the server holds.
    pub fn classify(&self) -> DiffKind {
        if self.edits().next().is_none() {
            DiffKind::AppendOnly
        } else {
            DiffKind::Rewrite
        }
    }
}

/// The desired context is not the server's context plus appended items.
///
/// Carries the full [`ContextDiff`] from the held context to the desired one:
/// [`edits`](Self::edits) are what the server cannot apply, [`appendable`](Self::appendable)
/// what could still be appended after reporting them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    diff: ContextDiff,
}

impl Divergence {
    /// The operations on items the server already holds (never empty).
    pub fn edits(&self) -> impl Iterator<Item = &DiffOp> + '_ {
        self.diff.edits()
    }

    /// The items after the last held item that survives in the desired context, in order.
    pub fn appendable(&self) -> &[Item] {
        self.diff.appended()
    }

    /// The whole diff from held to desired.
    pub fn diff(&self) -> &ContextDiff {
        &self.diff
    }

    /// Gives the diff back.
    pub fn into_diff(self) -> ContextDiff {
        self.diff
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.edits().count();
        write!(
            f,
            "the desired context changes {count} item(s) the server already holds"
        )?;
        if let Some(first) = self.edits().next() {
            match first {
                DiffOp::Remove { id } => write!(f, " (first: removal of `{id}`)"),
                DiffOp::Replace { id, .. } => write!(f, " (first: edit of `{id}`)"),
                DiffOp::InsertAfter { item, .. } => {
                    write!(f, " (first: insertion of `{}`)", item.id())
                }
                DiffOp::MoveAfter { id, .. } => write!(f, " (first: move of `{id}`)"),
                DiffOp::Append { .. } => Ok(()),
            }?;
        }
        Ok(())
    }
}

impl std::error::Error for Divergence {}

impl ChatContext {
    /// The items of `self` (the desired context) that follow everything in `held` (what the
    /// server holds), when `self` starts with `held`: exactly what must be sent, in order.
    ///
    /// O(`held.len()`) when `self` starts with `held`; otherwise a full [`diff`] (linear) to
    /// describe the divergence.
    ///
    /// # Errors
    /// [`Divergence`] when `self` removes, edits, reorders or inserts before an item of `held`.
    pub fn appendable_suffix(&self, held: &ChatContext) -> Result<&[Item], Divergence> {
        if self.starts_with(held) {
            Ok(&self.items()[held.len()..])
        } else {
            Err(Divergence {
                diff: diff(held, self),
            })
        }
    }
}
