//! Stable item identifiers.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// The stable identifier of one item in a [`ChatContext`](crate::ChatContext).
///
/// Ids are chosen by the application (or by the session layer on its behalf) and never change
/// while the item lives: the diff recognises an item across two versions of a context by its id
/// alone, so an edit is a [`Replace`](crate::DiffOp::Replace) of the same id and not a removal
/// plus an insertion. This crate never generates ids itself.
///
/// Any string is a valid `ItemId` value; a [`ChatContext`](crate::ChatContext) refuses the empty
/// one with [`Error::EmptyId`](crate::Error::EmptyId). Cloning is cheap (a shared, immutable
/// string), so diffs and indexes can copy ids freely.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(Arc<str>);

impl ItemId {
    /// Wraps a caller-chosen id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(Arc::from(id.into()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the id is the empty string (never accepted into a context).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        String::from(&*self.0)
    }
}

impl fmt::Debug for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ItemId {
    fn from(id: &str) -> Self {
        Self(Arc::from(id))
    }
}

impl From<String> for ItemId {
    fn from(id: String) -> Self {
        Self::new(id)
    }
}

impl From<&String> for ItemId {
    fn from(id: &String) -> Self {
        Self(Arc::from(id.as_str()))
    }
}

impl Borrow<str> for ItemId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ItemId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ItemId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ItemId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}
