//! The model turn being received, and where server-produced items go in `L`.

use std::collections::VecDeque;

use ctx_model::{ContentPart, Item, ItemId, Message, Role};
use resume_policy::ClientMessageIndex;

use super::SessionCore;
use crate::events::SessionEvent;

/// Extended thinking: a turn that completed `IDLE` after the results of the pending calls were
/// sent, taken to answer them. A filler the model started before the results arrived also
/// completes `IDLE` once they have (the calls are closed by then), and the answer comes after
/// it: a next turn that answers nothing new shows that, and the filler is moved before the
/// results, where the server holds it.
#[derive(Debug, Clone)]
pub(super) struct Settling {
    /// The turn's item in `L`.
    pub(super) item: ItemId,
    /// The first result's item.
    pub(super) before: ItemId,
    /// The client message just before the results.
    pub(super) anchor: ClientMessageIndex,
    /// When the turn is taken to have answered them, no other having come.
    pub(super) deadline: resume_policy::Millis,
}

/// The model turn being received.
#[derive(Debug, Default)]
pub(super) struct ModelTurn {
    /// Output of a turn has arrived and its `turnComplete` has not.
    pub(super) active: bool,
    /// TEXT-modality output so far.
    pub(super) text: String,
    /// Output transcription so far (AUDIO modality).
    pub(super) transcript: String,
    /// The server cancelled the turn's tool calls.
    pub(super) cancelled: bool,
    /// The server cut the turn off (`interrupted`).
    pub(super) interrupted: bool,
    /// The application called `interrupt()`: the rest of the turn is not delivered to it.
    pub(super) muted: bool,
    /// Extended thinking: the turn's tool call was matched to a message by a guess; its
    /// output shares that placement.
    pub(super) placed_by_guess: bool,
    /// The application was told the turn was cut off ([`SessionEvent::Interrupted`]): once per
    /// turn, whoever cut it (the application, the server, a lost connection, a rotation).
    pub(super) cut: bool,
}

impl ModelTurn {
    /// `interrupt()`: stop delivering this turn's output. The server keeps producing it and
    /// holds all of it, so `L` still gets the whole turn when it ends.
    pub(super) fn mute(&mut self, events: &mut VecDeque<SessionEvent>) {
        if self.active && !self.muted {
            self.muted = true;
            self.report_cut(events);
        }
    }

    /// The turn was cut off: [`SessionEvent::Interrupted`], unless the application was told
    /// already.
    pub(super) fn report_cut(&mut self, events: &mut VecDeque<SessionEvent>) {
        if !self.cut {
            self.cut = true;
            events.push_back(SessionEvent::Interrupted);
        }
    }
}

impl SessionCore {
    /// Puts `item`, produced by the server for the turn anchored at client message `anchor` of
    /// the open connection, where the server holds it: after every item of a message up to
    /// `anchor` and every server item before it, before items of later messages and items not
    /// sent yet. A spoken user turn gives the `earliest` message it may have ended on.
    pub(super) fn place_server_item(
        &mut self,
        item: Item,
        anchor: ClientMessageIndex,
        earliest: Option<ClientMessageIndex>,
    ) {
        let connection = self.link.open_id();
        let desired = &self.ledger.desired;
        let mirror = &self.ledger.mirror;
        let mut at = desired.len();
        while at > 0 {
            let id = desired.items()[at - 1].id();
            let later = match mirror.client_position(id) {
                Some(pos) => Some(pos.connection) == connection && pos.index > anchor,
                // Not in the server session yet (queued, deferred): after.
                None => !mirror.holds(id),
            };
            if !later {
                break;
            }
            at -= 1;
        }
        let anchor_id = at.checked_sub(1).map(|k| desired.items()[k].id().clone());
        let position = connection
            .filter(|_| anchor > ClientMessageIndex::SETUP)
            .map(|c| resume_policy::MessagePosition::new(c, anchor));
        let placed = match (position, earliest) {
            (Some(end), Some(earliest)) => self.ledger.spoken_item(
                item,
                anchor_id.as_ref(),
                resume_policy::MessagePosition::new(end.connection, earliest),
                end,
            ),
            _ => self.ledger.server_item(item, anchor_id.as_ref(), position),
        };
        self.checked("placing a server item in L", placed);
        self.bump();
    }

    /// Records the model's turn (as received) in `L` and `S`, anchored at `anchor`; returns
    /// the id of its item, if it said anything.
    pub(super) fn close_model_turn(&mut self, anchor: ClientMessageIndex) -> Option<ItemId> {
        let turn = std::mem::take(&mut self.turn);
        let (text, spoken) = if turn.text.is_empty() {
            (turn.transcript, true)
        } else {
            (turn.text, false)
        };
        if text.is_empty() {
            return None;
        }
        let id = self.ledger.new_item_id("model");
        let mut item = Message::new(id.clone(), Role::Model, vec![ContentPart::Text(text)]);
        if spoken {
            item = item.transcript();
        }
        self.place_server_item(Item::Message(item), anchor, None);
        Some(id)
    }

    /// Moves the items `ids` of `L`, not sent yet, to just before `before` (also not sent),
    /// in their order: the session sends them first.
    pub(super) fn move_unsent_items_before(&mut self, ids: &[ItemId], before: &ItemId) {
        let items: Vec<Item> = ids
            .iter()
            .filter_map(|id| self.ledger.desired.get(id).cloned())
            .collect();
        if items.is_empty() || self.ledger.desired.get(before).is_none() {
            return;
        }
        for item in &items {
            let removed = self.ledger.desired.remove(item.id());
            self.checked("moving results ahead in L", removed);
        }
        let Some(at) = self.ledger.desired.iter().position(|i| i.id() == before) else {
            return;
        };
        let mut after = at
            .checked_sub(1)
            .map(|k| self.ledger.desired.items()[k].id().clone());
        for item in items {
            let id = item.id().clone();
            let inserted = self
                .ledger
                .desired
                .insert_after(after.as_ref(), item)
                .map(|_| ());
            self.checked("moving results ahead in L", inserted);
            after = Some(id);
        }
        self.bump();
    }

    /// Moves the server item `id` of `L` (and `S`) to just before `before`, anchored at the
    /// client message `anchor` (a turn first taken to answer `before` turned out to have come
    /// before it).
    pub(super) fn move_server_item_before(
        &mut self,
        id: &ItemId,
        before: &ItemId,
        anchor: ClientMessageIndex,
    ) {
        let Some(item) = self.ledger.desired.get(id).cloned() else {
            return;
        };
        let Some(at) = self.ledger.desired.iter().position(|i| i.id() == before) else {
            return;
        };
        let removed = self.ledger.desired.remove(id);
        self.checked("moving a model turn in L", removed);
        self.ledger.mirror.forget(id);
        let after = at
            .checked_sub(1)
            .map(|k| self.ledger.desired.items()[k].id().clone());
        let position = self
            .link
            .open_id()
            .filter(|_| anchor > ClientMessageIndex::SETUP)
            .map(|c| resume_policy::MessagePosition::new(c, anchor));
        let placed = self.ledger.server_item(item, after.as_ref(), position);
        self.checked("moving a model turn in L", placed);
        self.bump();
    }
}
