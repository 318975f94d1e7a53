//! The crate's one error type.

use std::fmt;

use crate::ItemId;

/// What went wrong when building, editing or patching a [`ChatContext`](crate::ChatContext).
///
/// Every variant names the offending id. None of them is transient: they are all programming or
/// data errors of the caller (a clashing id, a diff applied to a context it was not computed
/// from), so retrying the same call gives the same error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An item's `id` is already used by another item of the same context.
    DuplicateId {
        /// The clashing id.
        id: ItemId,
    },
    /// An item's `id` is the empty string.
    EmptyId,
    /// An operation names an `id` that the context does not hold.
    UnknownId {
        /// The id that was looked up.
        id: ItemId,
    },
    /// A replacement item's `id` differs from the id it is meant to replace.
    IdMismatch {
        /// The id of the item being replaced.
        expected: ItemId,
        /// The id carried by the replacement item.
        found: ItemId,
    },
    /// An insertion's `after` anchor is neither a surviving item of the context nor an inserted
    /// one that is itself reachable.
    UnknownAnchor {
        /// The anchor id.
        after: ItemId,
    },
    /// Two operations of one diff touch the same `id` in incompatible ways (for example removed
    /// twice, or removed and replaced).
    ConflictingOps {
        /// The id touched twice.
        id: ItemId,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateId { id } => write!(
                f,
                "duplicate item id `{id}`: ids must be unique within a chat context"
            ),
            Self::EmptyId => f.write_str("item id is empty: every item needs a non-empty id"),
            Self::UnknownId { id } => write!(f, "no item with id `{id}` in the chat context"),
            Self::IdMismatch { expected, found } => write!(
                f,
                "replacement item has id `{found}` but replaces `{expected}`: a replace keeps the id"
            ),
            Self::UnknownAnchor { after } => write!(
                f,
                "insertion anchor `{after}` is not an item of the patched context"
            ),
            Self::ConflictingOps { id } => {
                write!(f, "conflicting diff operations on item `{id}`")
            }
        }
    }
}

impl std::error::Error for Error {}
