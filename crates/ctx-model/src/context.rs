//! `ChatContext`: the ordered, id-indexed list of items.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;

use serde_json::Value;

use crate::id_hash::IdHashState;
use crate::{ChatContextBuilder, Error, FunctionCall, FunctionOutput, Item, ItemId, Message};

/// An ordered list of [`Item`]s whose ids are unique.
///
/// The same type serves as the application's *desired* context and as the session layer's
/// *mirror* of what the server holds; [`diff`](crate::diff) and
/// [`appendable_suffix`](ChatContext::appendable_suffix) compare two of them.
///
/// Lookups by id are O(1) (a hash index kept next to the items); appending is O(1) amortised;
/// insertion and removal in the middle are O(n), as for a `Vec`.
#[derive(Clone, Default)]
pub struct ChatContext {
    items: Vec<Item>,
    index: HashMap<ItemId, usize, IdHashState>,
}

impl ChatContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder that reads like the conversation it builds:
    /// `ChatContext::builder().user("u1", "Hi").model("m1", "Hello").build()?`.
    pub fn builder() -> ChatContextBuilder {
        ChatContextBuilder::default()
    }

    /// A context holding `items` in order; fails on the first empty or repeated id.
    pub fn from_items(items: impl IntoIterator<Item = Item>) -> Result<Self, Error> {
        let items = items.into_iter();
        let mut context = Self::with_capacity(items.size_hint().0);
        for item in items {
            context.push(item)?;
        }
        Ok(context)
    }

    /// An empty context with room for `capacity` items.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, IdHashState::default()),
        }
    }

    /// Appends `item` at the end.
    ///
    /// # Errors
    /// [`Error::EmptyId`] or [`Error::DuplicateId`]; the context is then unchanged.
    pub fn push(&mut self, item: impl Into<Item>) -> Result<&mut Self, Error> {
        let item = item.into();
        self.check_new_id(item.id())?;
        self.index.insert(item.id().clone(), self.items.len());
        self.items.push(item);
        Ok(self)
    }

    /// Appends `items` in order, all or nothing.
    ///
    /// # Errors
    /// [`Error::EmptyId`] or [`Error::DuplicateId`] (against the context or among `items`) for
    /// the first offending item; the context is then unchanged.
    pub fn extend(&mut self, items: impl IntoIterator<Item = Item>) -> Result<&mut Self, Error> {
        let items: Vec<Item> = items.into_iter().collect();
        let mut fresh: HashSet<&ItemId, IdHashState> = HashSet::default();
        for item in &items {
            self.check_new_id(item.id())?;
            if !fresh.insert(item.id()) {
                return Err(Error::DuplicateId {
                    id: item.id().clone(),
                });
            }
        }
        self.items.reserve(items.len());
        for item in items {
            self.index.insert(item.id().clone(), self.items.len());
            self.items.push(item);
        }
        Ok(self)
    }

    /// Appends a typed user message with one text part.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_user(
        &mut self,
        id: impl Into<ItemId>,
        text: impl Into<String>,
    ) -> Result<&mut Self, Error> {
        self.push(Message::user(id, text))
    }

    /// Appends a typed model message with one text part.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_model(
        &mut self,
        id: impl Into<ItemId>,
        text: impl Into<String>,
    ) -> Result<&mut Self, Error> {
        self.push(Message::model(id, text))
    }

    /// Appends a function call issued by the model.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_function_call(
        &mut self,
        id: impl Into<ItemId>,
        call_id: impl Into<String>,
        name: impl Into<String>,
        arguments: Value,
    ) -> Result<&mut Self, Error> {
        self.push(FunctionCall::new(id, call_id, name, arguments))
    }

    /// Appends a successful function output.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_function_output(
        &mut self,
        id: impl Into<ItemId>,
        call_id: impl Into<String>,
        name: impl Into<String>,
        output: Value,
    ) -> Result<&mut Self, Error> {
        self.push(FunctionOutput::new(id, call_id, name, output))
    }

    /// Inserts `item` right after the item `after`, or at the front when `after` is `None`.
    /// O(n).
    ///
    /// # Errors
    /// [`Error::UnknownAnchor`] if `after` is not in the context, [`Error::EmptyId`] or
    /// [`Error::DuplicateId`] for the new item; the context is then unchanged.
    pub fn insert_after(
        &mut self,
        after: Option<&ItemId>,
        item: impl Into<Item>,
    ) -> Result<&mut Self, Error> {
        let item = item.into();
        let at = match after {
            None => 0,
            Some(anchor) => match self.index.get(anchor) {
                Some(&i) => i + 1,
                None => {
                    return Err(Error::UnknownAnchor {
                        after: anchor.clone(),
                    });
                }
            },
        };
        self.check_new_id(item.id())?;
        self.index.insert(item.id().clone(), at);
        self.items.insert(at, item);
        self.reindex_from(at);
        Ok(self)
    }

    /// Removes and returns the item with `id`. O(n).
    ///
    /// # Errors
    /// [`Error::UnknownId`] if no item has that id.
    pub fn remove<Q>(&mut self, id: &Q) -> Result<Item, Error>
    where
        ItemId: Borrow<Q>,
        Q: Hash + Eq + ?Sized + ToOwned,
        Q::Owned: Into<ItemId>,
    {
        let Some(at) = self.index.remove(id) else {
            return Err(Error::UnknownId {
                id: id.to_owned().into(),
            });
        };
        let removed = self.items.remove(at);
        self.reindex_from(at);
        Ok(removed)
    }

    /// Removes every item `remove` picks and returns their ids, in order: one pass and one
    /// renumbering, however many go (`remove` on each of them would be O(n) apiece).
    pub fn remove_where(&mut self, mut remove: impl FnMut(&Item) -> bool) -> Vec<ItemId> {
        let mut removed = Vec::new();
        let mut first = None;
        for (at, item) in self.items.iter().enumerate() {
            if remove(item) {
                first.get_or_insert(at);
                removed.push(item.id().clone());
            }
        }
        let Some(first) = first else {
            return removed;
        };
        for id in &removed {
            self.index.remove(id);
        }
        let index = &self.index;
        self.items.retain(|item| index.contains_key(item.id()));
        self.reindex_from(first);
        removed
    }

    /// Replaces the item that has the same id as `item`, keeping its position, and returns the
    /// previous version. O(1).
    ///
    /// # Errors
    /// [`Error::UnknownId`] if no item has that id.
    pub fn replace(&mut self, item: impl Into<Item>) -> Result<Item, Error> {
        let item = item.into();
        match self.index.get(item.id()) {
            Some(&at) => Ok(std::mem::replace(&mut self.items[at], item)),
            None => Err(Error::UnknownId {
                id: item.id().clone(),
            }),
        }
    }

    /// Keeps the first `len` items and drops the rest (no-op if `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.items.len() {
            return;
        }
        for item in self.items.drain(len..) {
            self.index.remove(item.id());
        }
    }

    /// A copy of the first `len` items (all of them if `len >= self.len()`), for example the
    /// part of a mirror that a resumption handle covers.
    pub fn prefix(&self, len: usize) -> ChatContext {
        let len = len.min(self.items.len());
        let items = self.items[..len].to_vec();
        let index = items
            .iter()
            .enumerate()
            .map(|(i, item)| (item.id().clone(), i))
            .collect();
        Self { items, index }
    }

    /// The item with `id`. O(1).
    pub fn get<Q>(&self, id: &Q) -> Option<&Item>
    where
        ItemId: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.get(id).map(|&i| &self.items[i])
    }

    /// The position of the item with `id`. O(1).
    pub fn index_of<Q>(&self, id: &Q) -> Option<usize>
    where
        ItemId: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.get(id).copied()
    }

    /// Whether an item has `id`. O(1).
    pub fn contains<Q>(&self, id: &Q) -> bool
    where
        ItemId: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.contains_key(id)
    }

    /// The items in order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Iterates over the items in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Item> {
        self.items.iter()
    }

    /// Iterates over the ids in order.
    pub fn ids(&self) -> impl Iterator<Item = &ItemId> + '_ {
        self.items.iter().map(Item::id)
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the context holds no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The last item.
    pub fn last(&self) -> Option<&Item> {
        self.items.last()
    }

    /// Whether `self` begins with exactly the items of `prefix` (same ids, same content, same
    /// order). O(`prefix.len()`).
    pub fn starts_with(&self, prefix: &ChatContext) -> bool {
        self.items.starts_with(&prefix.items)
    }

    /// The number of leading items `self` and `other` share (same ids, same content).
    pub fn common_prefix_len(&self, other: &ChatContext) -> usize {
        self.items
            .iter()
            .zip(&other.items)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// Function calls that no final [`FunctionOutput`] of the context answers (matched by
    /// `call_id`; an interim output, [`FunctionOutput::is_interim`], leaves its call open), in
    /// order. O(n).
    pub fn pending_calls(&self) -> Vec<&FunctionCall> {
        // An interim result (`will_continue`) leaves its call open.
        let answered: HashSet<&str> = self
            .items
            .iter()
            .filter_map(Item::as_function_output)
            .filter(|o| !o.is_interim())
            .map(|o| o.call_id.as_str())
            .collect();
        self.items
            .iter()
            .filter_map(Item::as_function_call)
            .filter(|c| !answered.contains(c.call_id.as_str()))
            .collect()
    }

    /// Gives the items back.
    pub fn into_items(self) -> Vec<Item> {
        self.items
    }

    fn check_new_id(&self, id: &ItemId) -> Result<(), Error> {
        if id.is_empty() {
            return Err(Error::EmptyId);
        }
        if self.index.contains_key(id) {
            return Err(Error::DuplicateId { id: id.clone() });
        }
        Ok(())
    }

    fn reindex_from(&mut self, from: usize) {
        for (i, item) in self.items.iter().enumerate().skip(from) {
            if let Some(slot) = self.index.get_mut(item.id()) {
                *slot = i;
            }
        }
    }
}

impl PartialEq for ChatContext {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl Eq for ChatContext {}

impl fmt::Debug for ChatContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
}

impl<'a> IntoIterator for &'a ChatContext {
    type Item = &'a Item;
    type IntoIter = std::slice::Iter<'a, Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl TryFrom<Vec<Item>> for ChatContext {
    type Error = Error;

    fn try_from(items: Vec<Item>) -> Result<Self, Error> {
        Self::from_items(items)
    }
}
