//! The ledger of DESIGN.md section 4: desired context, server mirror, outbox, handle coverage.
//!
//! The mirror `S` is kept as the items the live server session holds, each stamped with how
//! it got there: sent by the client at a message position, or produced by the server (a model
//! turn, a tool call) before a given handle update. A handle covers a client item when its
//! coverage includes the item's position, and a server item when the item arrived before the
//! handle (the server produced it before taking the snapshot). `covered` is the longest prefix
//! of the mirror that the newest handle provably holds; when a connection is lost the mirror is
//! rolled back to it, and the policy decides what to replay.

use ctx_model::{ChatContext, Item};
use resume_policy::{
    ConfigVersion, CoverageTracker, HandleRecord, MessagePosition, OpId, OpKind, Outbox,
};

use crate::Error;

/// How an item got into the server's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// Sent by the client as the message at this position.
    Client(MessagePosition),
    /// Produced by the server; `seq` counts server frames of the session.
    Server { seq: u64 },
}

/// The session's bookkeeping. Pure data: the actor drives it.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// `L`: what the application wants the model to have.
    pub(crate) desired: ChatContext,
    /// `S`: what the live server session holds, in order, with stamps.
    mirror: Vec<(Item, Stamp)>,
    /// How many mirror items the newest handle provably holds.
    covered: usize,
    /// Context-affecting operations and their delivery state.
    pub(crate) outbox: Outbox,
    /// Handle records and their coverage; tool calls per session.
    pub(crate) tracker: CoverageTracker,
    /// Server frames seen (stamps server items and handles).
    server_seq: u64,
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
            mirror: Vec::new(),
            covered: 0,
            outbox: Outbox::new(),
            tracker: CoverageTracker::new(transparent),
            server_seq: 0,
            instructions: (ConfigVersion(0), instructions),
            tools: (ConfigVersion(0), tools),
            next_item: 0,
        }
    }

    /// A fresh item id that is not in `L`.
    pub(crate) fn new_item_id(&mut self, kind: &str) -> String {
        loop {
            self.next_item += 1;
            let id = format!("{kind}-{}", self.next_item);
            if !self.desired.contains(id.as_str()) {
                return id;
            }
        }
    }

    /// `S` as a context (for the planner).
    pub(crate) fn mirror_context(&self) -> ChatContext {
        ChatContext::from_items(self.mirror.iter().map(|(item, _)| item.clone()))
            .unwrap_or_default()
    }

    /// Appends an application item to `L` and queues the operation that delivers it.
    pub(crate) fn push_op(&mut self, kind: OpKind) -> OpId {
        self.outbox.push(kind)
    }

    /// Items the client sent at `at` are now in the server session.
    pub(crate) fn sent_items(
        &mut self,
        items: impl IntoIterator<Item = Item>,
        at: MessagePosition,
    ) {
        for item in items {
            if !self.mirror.iter().any(|(held, _)| held.id() == item.id()) {
                self.mirror.push((item, Stamp::Client(at)));
            }
        }
    }

    /// The server produced `item` (a model turn, a tool call): it is in `L` and in `S`.
    pub(crate) fn server_item(&mut self, item: Item) -> Result<(), Error> {
        self.server_seq += 1;
        self.desired.push(item.clone())?;
        self.mirror.push((
            item,
            Stamp::Server {
                seq: self.server_seq,
            },
        ));
        Ok(())
    }

    /// A resumable handle arrived: mark covered operations and extend the covered prefix.
    pub(crate) fn on_handle(&mut self, record: &HandleRecord) -> Vec<OpId> {
        self.server_seq += 1;
        let covered_ops = self.outbox.cover(record);
        let seq = self.server_seq;
        while let Some((_, stamp)) = self.mirror.get(self.covered) {
            let held = match stamp {
                // Items beyond the covered prefix all come from the open connection: the
                // prefix was cut back to the handle when the previous one was lost.
                Stamp::Client(at) => record.covers(*at),
                Stamp::Server { seq: made } => *made < seq,
            };
            if !held {
                break;
            }
            self.covered += 1;
        }
        covered_ops
    }

    /// The connection is gone: `S` is what the handle holds. Without a handle, nothing.
    pub(crate) fn roll_back(&mut self) {
        if self.tracker.handle().is_none() {
            self.covered = 0;
        }
        self.mirror.truncate(self.covered);
    }

    /// A fresh server session starts empty.
    pub(crate) fn reset_mirror(&mut self) {
        self.mirror.clear();
        self.covered = 0;
    }
}
