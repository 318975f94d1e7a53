//! `Mirror`: what the server session holds, and what a handle provably holds.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use ctx_model::{ChatContext, IdHashState, Item, ItemId};

use crate::{ClientMessageIndex, ConnectionId, HandleRecord, MessagePosition};

/// How an item reached the server on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// In a client message at this position.
    Client(MessagePosition),
    /// Produced by the server (model output, a function call) for the turn that answers the
    /// client message at this position (`None`: no client message of this connection): a
    /// handle holds it when it covers that message (the server holds its output before it
    /// sends it).
    Server(Option<MessagePosition>),
    /// A spoken user turn the server transcribed: it ended on a message between `earliest`
    /// and `end` (exactly `end` when an explicit end of speech ended it). A handle holds it
    /// when it holds `end`; one that covers `earliest` but not `end` may or may not.
    Spoken {
        earliest: MessagePosition,
        end: MessagePosition,
    },
}

/// The mirror `S` of docs/design.md section 4: what the server session holds as far as the client
/// can tell, and the part of it the latest handle provably holds.
///
/// The rollback has to go message by message, not operation by operation: a fresh session's
/// seed and restored model turns carry items that belong to no outbox operation. Feed it
/// alongside the [`CoverageTracker`](crate::CoverageTracker) and pass [`held`](Self::held) as
/// [`ResumeContext::mirror`](crate::ResumeContext::mirror).
///
/// ```
/// use ctx_model::{Item, Message};
/// use resume_policy::{
///     ConnectMode, ConnectionId, CoverageTracker, HandleUpdate, MessageKind, Millis, Mirror,
/// };
///
/// let mut tracker = CoverageTracker::new(false);
/// let mut mirror = Mirror::new();
/// tracker.on_connected(ConnectionId(1), ConnectMode::Fresh)?;
/// mirror.on_connected(ConnectionId(1), ConnectMode::Fresh);
/// let seed: Vec<Item> = vec![Message::user("u1", "hi").into(), Message::model("m1", "hello").into()];
/// let at = tracker.on_sent(MessageKind::Silent)?;
/// mirror.on_sent(&seed, at);
/// let update = HandleUpdate { new_handle: Some("h1".into()), resumable: true, last_consumed: None };
/// let handle = tracker.on_handle_update(&update, Millis(1))?.expect("resumable");
/// mirror.on_handle(&handle);
/// assert_eq!(mirror.live().len(), 2);
/// assert!(mirror.held().is_empty(), "nothing proves the seed was processed yet");
/// # Ok::<(), resume_policy::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    /// What the session held when the current connection opened.
    base: ChatContext,
    /// Items added on the current connection, in order.
    added: Vec<(Item, Origin)>,
    /// Ids of `added` and where they are in it, for constant-time lookups.
    added_ids: HashMap<ItemId, usize, IdHashState>,
    connection: Option<ConnectionId>,
    /// What the latest handle holds.
    held: ChatContext,
}

impl Mirror {
    /// An empty mirror (no session yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// A mirror whose latest handle holds `held` (a process restarting from a persisted
    /// handle whose mirror version matches its context).
    pub fn restore(held: ChatContext) -> Self {
        Self {
            held,
            ..Self::default()
        }
    }

    /// A connection opened: resumed sessions start from what the handle held, fresh ones from
    /// nothing.
    pub fn on_connected(&mut self, connection: ConnectionId, mode: crate::ConnectMode) {
        self.base = match mode {
            crate::ConnectMode::Resumed => self.held.clone(),
            crate::ConnectMode::Fresh => {
                self.held = ChatContext::new();
                ChatContext::new()
            }
        };
        self.added.clear();
        self.added_ids.clear();
        self.connection = Some(connection);
    }

    /// `items` went out in the client message at `at` (`clientContent` turns, a tool response's
    /// output item, the user message behind realtime text). Items the mirror already holds are
    /// not added twice.
    pub fn on_sent(&mut self, items: &[Item], at: MessagePosition) {
        self.add(items.iter().cloned(), Origin::Client(at));
    }

    /// [`on_sent`](Self::on_sent), taking the items instead of copying them.
    pub fn take_sent(&mut self, items: Vec<Item>, at: MessagePosition) {
        self.add(items, Origin::Client(at));
    }

    /// The server produced `items` (model turns, function calls); every later handle holds
    /// them.
    pub fn on_server_items(&mut self, items: &[Item]) {
        self.add(items.iter().cloned(), Origin::Server(None));
    }

    /// The server produced `items` answering the client message at `anchor`: a later handle
    /// holds them if it covers `anchor` (a lagging handle that does not cover the message does
    /// not hold its answer either).
    pub fn on_server_items_for(&mut self, items: &[Item], anchor: MessagePosition) {
        self.add(items.iter().cloned(), Origin::Server(Some(anchor)));
    }

    /// The server made the spoken user turn `item`, which ended on a client message between
    /// `earliest` and `end` ([`CoverageTracker::on_spoken_turn`](crate::CoverageTracker::on_spoken_turn)).
    pub fn on_spoken_turn(&mut self, item: &Item, earliest: MessagePosition, end: MessagePosition) {
        self.add(
            std::iter::once(item.clone()),
            Origin::Spoken { earliest, end },
        );
    }

    /// Adds the items of one batch the mirror does not hold yet, in their order: one hash
    /// per item and one pass over the items after the insertion point, however large the
    /// batch (an `update_chat_ctx` of 100,000 items is one batch).
    fn add(&mut self, items: impl IntoIterator<Item = Item>, origin: Origin) {
        let items = items.into_iter();
        // Server output sits where the server put it: after earlier server output, before
        // the client items of messages after the one it answers that were added since
        // (those came later, or interrupted it). The items of one batch go together, in order.
        let mut at = self.added.len();
        if let Origin::Server(Some(anchor)) | Origin::Spoken { end: anchor, .. } = origin {
            while at > 0
                && matches!(self.added[at - 1].1, Origin::Client(sent)
                    if sent.connection == anchor.connection && sent.index > anchor.index)
            {
                at -= 1;
            }
        }
        let tail = self.added.split_off(at);
        self.added.reserve(items.size_hint().0 + tail.len());
        self.added_ids.reserve(items.size_hint().0);
        for item in items {
            if self.base.contains(item.id()) {
                continue;
            }
            // Known ids (earlier in the batch included) are not added twice.
            if let Entry::Vacant(slot) = self.added_ids.entry(item.id().clone()) {
                slot.insert(self.added.len());
                self.added.push((item, origin));
            }
        }
        let count = self.added.len() - at;
        if count > 0 {
            for (item, _) in &tail {
                if let Some(slot) = self.added_ids.get_mut(item.id()) {
                    *slot += count;
                }
            }
        }
        self.added.extend(tail);
    }

    /// Where the client sent the item `id` on the current connection, if it did.
    pub fn client_position(&self, id: &ItemId) -> Option<MessagePosition> {
        match self.added_ids.get(id).map(|&k| &self.added[k]) {
            Some((_, Origin::Client(at))) => Some(*at),
            _ => None,
        }
    }

    /// Whether the live session holds the item `id`, as far as the client can tell.
    pub fn holds(&self, id: &ItemId) -> bool {
        self.base.contains(id) || self.added_ids.contains_key(id)
    }

    /// The server did not take the item `id` after all (an answer to a call it cancelled).
    pub fn forget(&mut self, id: &ItemId) {
        self.forget_all(std::slice::from_ref(id));
    }

    /// The server did not take the items `ids` after all: one pass over the mirror, however
    /// many there are (a cancellation of many calls).
    pub fn forget_all(&mut self, ids: &[ItemId]) {
        let first = ids.iter().filter_map(|id| self.added_ids.remove(id)).min();
        if let Some(first) = first {
            let mut k = first;
            let added_ids = &mut self.added_ids;
            self.added.retain_mut(|(item, _)| {
                // Only what comes from `first` on is looked at again; what `ids` named is
                // no longer in the index.
                match added_ids.get_mut(item.id()) {
                    Some(slot) if *slot >= first => {
                        *slot = k;
                        k += 1;
                        true
                    }
                    Some(_) => true,
                    None => false,
                }
            });
        }
        for context in [&mut self.base, &mut self.held] {
            if ids.iter().any(|id| context.contains(id)) {
                let gone: HashSet<&ItemId> = ids.iter().collect();
                context.remove_where(|item| gone.contains(item.id()));
            }
        }
    }

    /// Whether client items sent on `handle`'s connection lie beyond what it provably holds
    /// but not beyond `bound`, the last message it can hold
    /// ([`CoverageTracker::handle_bound`](crate::CoverageTracker::handle_bound)): the server
    /// may or may not have taken them into the snapshot, so resuming from it would either
    /// duplicate them (replayed) or lose them (not replayed).
    pub fn uncertain_under(&self, handle: &HandleRecord, bound: ClientMessageIndex) -> bool {
        !handle.coverage.exact
            && self.connection == Some(handle.connection)
            && self.added.iter().any(|(_, origin)| {
                matches!(origin, Origin::Client(at) if !handle.covers(*at) && at.index <= bound)
            })
    }

    /// Whether `handle` may or may not hold a spoken turn of its connection: it covers a message
    /// the turn may have ended on, but not the last one, and no finished answer vouches for it.
    /// Resuming from it would either duplicate the turn (restored) or lose it (not restored).
    pub fn unsure_of_spoken_turns(&self, handle: &HandleRecord) -> bool {
        self.connection == Some(handle.connection)
            && self.added.iter().any(|(_, origin)| {
                matches!(origin, Origin::Spoken { earliest, end }
                    if handle.covers(*earliest) && !handle.coverage.holds_output_for(*end))
            })
    }

    /// A resumable handle arrived: it holds the connection's starting state, every server item
    /// so far, and the client items of the messages it covers.
    pub fn on_handle(&mut self, handle: &HandleRecord) {
        if self.connection != Some(handle.connection) {
            return;
        }
        let covered = self.added.iter().filter(|(_, origin)| match origin {
            Origin::Server(None) => true,
            Origin::Server(Some(at)) | Origin::Spoken { end: at, .. } => {
                handle.coverage.holds_output_for(*at)
            }
            Origin::Client(at) => handle.covers(*at),
        });
        let items = self
            .base
            .iter()
            .cloned()
            .chain(covered.map(|(item, _)| item.clone()));
        // Ids are unique by construction (`add` skips known ids).
        self.held = ChatContext::from_items(items).unwrap_or_default();
    }

    /// The latest handle's content: what a resumed session will hold.
    pub fn held(&self) -> &ChatContext {
        &self.held
    }

    /// Everything sent or produced on the current session so far.
    pub fn live(&self) -> ChatContext {
        let items = self
            .base
            .iter()
            .cloned()
            .chain(self.added.iter().map(|(item, _)| item.clone()));
        ChatContext::from_items(items).unwrap_or_default()
    }
}
