//! The ledger of docs/design.md section 4: desired context, server mirror, outbox, handle coverage.
//!
//! `L` is the application's context. The mirror `S` is `resume_policy::Mirror`: what the live
//! server session holds, and the part of it the newest handle provably holds (client items by
//! the coverage of the message that carried them, server items because the server held them
//! before it sent them). The planner is given the latter: when a connection is lost, that is
//! what a resumed session will hold.

use ctx_model::{ChatContext, Item};
use resume_policy::{
    ConfigVersion, ConnectMode, ConnectionId, CoverageTracker, HandleRecord, MessagePosition,
    Mirror, Outbox, ToolCallStatus,
};

use crate::Error;

/// The session's bookkeeping. Pure data: the session core drives it.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// `L`: what the application wants the model to have.
    pub(crate) desired: ChatContext,
    /// `S`: what the live server session holds, and what the newest handle holds.
    pub(crate) mirror: Mirror,
    /// Context-affecting operations and their delivery state.
    pub(crate) outbox: Outbox,
    /// Handle records and their coverage; tool calls per session.
    pub(crate) tracker: CoverageTracker,
    /// The current system instruction and its version.
    pub(crate) instructions: (ConfigVersion, Option<String>),
    /// The current tool declarations and their version.
    pub(crate) tools: (
        ConfigVersion,
        Vec<gemini_transport::wire::FunctionDeclaration>,
    ),
    next_item: u64,
}

impl Ledger {
    pub(crate) fn new(
        desired: ChatContext,
        transparent: bool,
        instructions: Option<String>,
        tools: Vec<gemini_transport::wire::FunctionDeclaration>,
    ) -> Self {
        Self {
            desired,
            mirror: Mirror::new(),
            outbox: Outbox::new(),
            tracker: CoverageTracker::new(transparent),
            instructions: (ConfigVersion(0), instructions),
            tools: (ConfigVersion(0), tools),
            next_item: 0,
        }
    }

    /// A fresh item id that is not in `L`.
    pub(crate) fn new_item_id(&mut self, kind: &str) -> ctx_model::ItemId {
        loop {
            self.next_item += 1;
            let id = format!("{kind}-{}", self.next_item);
            if !self.desired.contains(id.as_str()) {
                return id.into();
            }
        }
    }

    /// A connection opened (a resumed session starts from what the handle held).
    pub(crate) fn on_connected(&mut self, connection: ConnectionId, mode: ConnectMode) {
        self.mirror.on_connected(connection, mode);
    }

    /// Items the client sent at `at` are now in the server session. Items the session sent on
    /// the application's behalf (a reply request's user turn, an error answer for a lost tool
    /// call) join `L` as well, so that `L` says what the model holds. An item `L` cannot take
    /// is an error (the first one is returned; the others are still recorded).
    pub(crate) fn sent_items(
        &mut self,
        items: Vec<Item>,
        at: MessagePosition,
    ) -> Result<(), ctx_model::Error> {
        let mut result = Ok(());
        let mut previous: Option<&Item> = None;
        for item in &items {
            if !self.desired.contains(item.id()) {
                // Right after what precedes it in the message, as the server holds it; the
                // first item of a message after everything the server holds already, before
                // items not sent yet.
                let after = match previous
                    .map(Item::id)
                    .filter(|id| self.desired.contains(*id))
                {
                    Some(anchor) => Some(anchor.clone()),
                    None => self
                        .desired
                        .iter()
                        .rev()
                        .find(|i| self.mirror.holds(i.id()))
                        .map(|i| i.id().clone()),
                };
                if let Err(e) = self.desired.insert_after(after.as_ref(), item.clone()) {
                    result = result.and(Err(e));
                }
            }
            if let Item::FunctionOutput(output) = item {
                // Answered now (a synthetic answer to a lost call included).
                self.tracker
                    .set_tool_status(&output.call_id, ToolCallStatus::Answered);
            }
            previous = Some(item);
        }
        self.mirror.take_sent(items, at);
        result
    }

    /// The server produced `item` (a model turn, a tool call) answering the client message at
    /// `anchor`: it is in `L`, right after `after` (at the front for `None`), and in `S`.
    pub(crate) fn server_item(
        &mut self,
        item: Item,
        after: Option<&ctx_model::ItemId>,
        anchor: Option<MessagePosition>,
    ) -> Result<(), Error> {
        self.desired.insert_after(after, item.clone())?;
        match anchor {
            Some(at) => self
                .mirror
                .on_server_items_for(std::slice::from_ref(&item), at),
            None => self.mirror.on_server_items(std::slice::from_ref(&item)),
        }
        Ok(())
    }

    /// The server made the spoken user turn `item`, which ended on a client message between
    /// `earliest` and `end`: it is in `L`, right after `after`, and in `S`.
    pub(crate) fn spoken_item(
        &mut self,
        item: Item,
        after: Option<&ctx_model::ItemId>,
        earliest: MessagePosition,
        end: MessagePosition,
    ) -> Result<(), Error> {
        self.desired.insert_after(after, item.clone())?;
        self.mirror.on_spoken_turn(&item, earliest, end);
        Ok(())
    }

    /// A resumable handle arrived: covered operations are marked, and the mirror learns what
    /// the handle holds.
    pub(crate) fn on_handle(&mut self, record: &HandleRecord) {
        self.outbox.cover(record);
        self.mirror.on_handle(record);
    }
}
