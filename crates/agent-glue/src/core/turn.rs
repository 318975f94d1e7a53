//! The model turn being received, and where server-produced items go in `L`.

use std::collections::VecDeque;

use ctx_model::{ContentPart, Item, Message, Role};
use resume_policy::ClientMessageIndex;

use super::SessionCore;
use crate::events::SessionEvent;

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

    /// Records the model's turn (as received) in `L` and `S`, anchored at `anchor`.
    pub(super) fn close_model_turn(&mut self, anchor: ClientMessageIndex) {
        let turn = std::mem::take(&mut self.turn);
        let (text, spoken) = if turn.text.is_empty() {
            (turn.transcript, true)
        } else {
            (turn.text, false)
        };
        if !text.is_empty() {
            let id = self.ledger.new_item_id("model");
            let mut item = Message::new(id, Role::Model, vec![ContentPart::Text(text)]);
            if spoken {
                item = item.transcript();
            }
            self.place_server_item(Item::Message(item), anchor, None);
        }
    }
}
