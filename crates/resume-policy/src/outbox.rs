//! The outbox: every context-affecting operation, with its delivery state.

use ctx_model::{ChatContext, FunctionOutput, Item, ItemId};

use crate::{
    ClientMessageIndex, ConfigVersion, ConnectionId, DivergenceReason, Error, HandleRecord,
    HandleSerial, MessagePosition, OpId, SessionEpoch,
};

/// What an operation does to the model's context.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum OpKind {
    /// Append `items` (already appended to the desired context `L`, same ids) at the end of
    /// the conversation. `turn_complete`: whether the application asks the model to answer
    /// (a user turn) or only adds history.
    Append {
        /// The items, in order.
        items: Vec<Item>,
        /// Whether the model should answer after them.
        turn_complete: bool,
    },
    /// The result of a tool call. `output` is also the `FunctionOutput` item in `L` (same id).
    ToolResponse {
        /// Call id, name, output and error flag.
        output: FunctionOutput,
    },
    /// User text sent as `realtimeInput.text` (starts a turn). `item`: the user message in `L`
    /// that records it, if any.
    RealtimeText {
        /// The text.
        text: String,
        /// Its item in `L`.
        item: Option<ItemId>,
    },
    /// The system instruction changed to `version` (the session holds the text).
    InstructionChange {
        /// The new version.
        version: ConfigVersion,
    },
    /// The tool set changed to `version` (the session holds the declarations).
    ToolSetChange {
        /// The new version.
        version: ConfigVersion,
    },
    /// The application asked the model to answer now (`generate_reply`).
    GenerateReply {
        /// Extra instructions for this reply, if any.
        instructions: Option<String>,
    },
}

impl OpKind {
    /// Whether delivering the operation asks the model for an answer.
    pub fn starts_turn(&self) -> bool {
        match self {
            Self::Append { turn_complete, .. } => *turn_complete,
            // A result the model waits for resumes its turn; a non-blocking one is answered
            // by a turn of its own unless it is `SILENT`.
            Self::ToolResponse { output } => {
                !output.delivery.non_blocking || output.delivery.answered_by_own_turn()
            }
            Self::RealtimeText { .. } | Self::GenerateReply { .. } => true,
            Self::InstructionChange { .. } | Self::ToolSetChange { .. } => false,
        }
    }

    /// The ids of the items of `L` the operation carries.
    pub fn item_ids(&self) -> Vec<&ItemId> {
        match self {
            Self::Append { items, .. } => items.iter().map(Item::id).collect(),
            Self::ToolResponse { output } => vec![&output.id],
            Self::RealtimeText { item, .. } => item.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The call id a tool response answers.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::ToolResponse { output } => Some(&output.call_id),
            _ => None,
        }
    }

    /// Short name for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Append { .. } => "append",
            Self::ToolResponse { .. } => "tool response",
            Self::RealtimeText { .. } => "realtime text",
            Self::InstructionChange { .. } => "instruction change",
            Self::ToolSetChange { .. } => "tool-set change",
            Self::GenerateReply { .. } => "generate reply",
        }
    }
}

/// Where an operation stands: `Queued → Sent → Covered`, or it left through `Superseded` or
/// `Reported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DeliveryState {
    /// Not sent on any connection yet (or given back by a plan).
    Queued,
    /// Written as client message `index` on `connection`; not yet provably in the session.
    Sent {
        /// The connection.
        connection: ConnectionId,
        /// The client message index.
        index: ClientMessageIndex,
    },
    /// Provably in the server session: the handle `handle` covers it.
    Covered {
        /// The first handle that covered it.
        handle: HandleSerial,
        /// The server session of that handle (a fresh session does not hold it).
        epoch: SessionEpoch,
    },
    /// Made moot by a later operation or by the server (a cancelled tool call): never sent.
    Superseded,
    /// Undeliverable; the session reported it (a `Divergence` event).
    Reported(DivergenceReason),
}

impl DeliveryState {
    /// Whether the operation still needs delivery (queued, or sent but not covered).
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Queued | Self::Sent { .. })
    }

    /// Where it was sent, if it is in the `Sent` state.
    pub fn sent_at(&self) -> Option<MessagePosition> {
        match *self {
            Self::Sent { connection, index } => Some(MessagePosition::new(connection, index)),
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent { .. } => "sent",
            Self::Covered { .. } => "covered",
            Self::Superseded => "superseded",
            Self::Reported(_) => "reported",
        }
    }
}

/// One context-affecting operation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Operation {
    /// Its id (queue order).
    pub id: OpId,
    /// What it does.
    pub kind: OpKind,
    /// Where it stands.
    pub state: DeliveryState,
}

impl Operation {
    /// An operation in a given state (for tests and for restoring a persisted outbox).
    pub fn new(id: OpId, kind: OpKind, state: DeliveryState) -> Self {
        Self { id, kind, state }
    }

    /// Whether `handle` provably includes it: covered already, or sent at a message the handle
    /// covers.
    pub fn is_covered_by(&self, handle: &HandleRecord) -> bool {
        match self.state {
            DeliveryState::Covered {
                handle: serial,
                epoch,
            } => epoch == handle.epoch && serial <= handle.serial,
            DeliveryState::Sent { connection, index } => {
                handle.covers(MessagePosition::new(connection, index))
            }
            _ => false,
        }
    }
}

/// The ordered ledger of operations (docs/design.md section 4). Nothing leaves it except by being
/// covered, superseded or reported; offline changes, restarts and channel swaps only append.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outbox {
    ops: Vec<Operation>,
    next_id: u64,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds an outbox from operations (sorted by id; later duplicates of an id dropped).
    pub fn from_operations(ops: impl IntoIterator<Item = Operation>) -> Self {
        let mut ops: Vec<Operation> = ops.into_iter().collect();
        ops.sort_by_key(|op| op.id);
        ops.dedup_by_key(|op| op.id);
        let next_id = ops.last().map_or(0, |op| op.id.0.saturating_add(1));
        Self { ops, next_id }
    }

    /// Queues an operation; returns its id.
    pub fn push(&mut self, kind: OpKind) -> OpId {
        let id = OpId(self.next_id);
        self.next_id = self.next_id.saturating_add(1);
        self.ops
            .push(Operation::new(id, kind, DeliveryState::Queued));
        id
    }

    /// The id the next [`push`](Self::push) returns.
    pub fn next_id(&self) -> OpId {
        OpId(self.next_id)
    }

    /// The operation `id`.
    pub fn get(&self, id: OpId) -> Option<&Operation> {
        self.ops
            .binary_search_by_key(&id, |op| op.id)
            .ok()
            .map(|at| &self.ops[at])
    }

    /// Every operation still in the outbox, in queue order.
    pub fn iter(&self) -> impl Iterator<Item = &Operation> + '_ {
        self.ops.iter()
    }

    /// The operations that still need delivery, in queue order.
    pub fn live(&self) -> impl Iterator<Item = &Operation> + '_ {
        self.ops.iter().filter(|op| op.state.is_live())
    }

    /// Number of operations held.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn get_mut(&mut self, id: OpId) -> Result<&mut Operation, Error> {
        match self.ops.binary_search_by_key(&id, |op| op.id) {
            Ok(at) => Ok(&mut self.ops[at]),
            Err(_) => Err(Error::UnknownOperation { op: id }),
        }
    }

    fn transition(&mut self, ids: &[OpId], to: DeliveryState) -> Result<(), Error> {
        for &id in ids {
            let op = self.get_mut(id)?;
            let allowed = match to {
                DeliveryState::Queued | DeliveryState::Sent { .. } => op.state.is_live(),
                DeliveryState::Covered { .. } => matches!(op.state, DeliveryState::Sent { .. }),
                DeliveryState::Superseded | DeliveryState::Reported(_) => op.state.is_live(),
            };
            if !allowed {
                return Err(Error::InvalidTransition {
                    op: id,
                    from: op.state.name(),
                    to: to.name(),
                });
            }
        }
        for &id in ids {
            self.get_mut(id)?.state = to;
        }
        Ok(())
    }

    /// The operations `ids` were written as the client message at `at` (re-sending an
    /// operation moves it to its newest position).
    pub fn mark_sent(&mut self, ids: &[OpId], at: MessagePosition) -> Result<(), Error> {
        self.transition(
            ids,
            DeliveryState::Sent {
                connection: at.connection,
                index: at.index,
            },
        )
    }

    /// Brings the content of operations not sent yet up to date with `desired`: an item the
    /// application edited before it was sent goes out as edited, one it removed does not go
    /// out. Returns the queued appends left with no item (supersede them).
    pub fn refresh_queued(&mut self, desired: &ChatContext) -> Vec<OpId> {
        let mut emptied = Vec::new();
        for op in &mut self.ops {
            if op.state != DeliveryState::Queued {
                continue;
            }
            if let OpKind::Append { items, .. } = &mut op.kind {
                let before = items.len();
                items.retain(|item| desired.contains(item.id()));
                for item in items.iter_mut() {
                    if let Some(current) = desired.get(item.id()) {
                        item.clone_from(current);
                    }
                }
                if items.is_empty() && before > 0 {
                    emptied.push(op.id);
                }
            }
        }
        emptied
    }

    /// Marks every sent operation that `handle` covers as covered; returns their ids.
    pub fn cover(&mut self, handle: &HandleRecord) -> Vec<OpId> {
        let mut covered = Vec::new();
        for op in &mut self.ops {
            if let Some(at) = op.state.sent_at() {
                if handle.covers(at) {
                    op.state = DeliveryState::Covered {
                        handle: handle.serial,
                        epoch: handle.epoch,
                    };
                    covered.push(op.id);
                }
            }
        }
        covered
    }

    /// Marks live operations superseded (never to be sent).
    pub fn supersede(&mut self, ids: &[OpId]) -> Result<(), Error> {
        self.transition(ids, DeliveryState::Superseded)
    }

    /// Marks live operations reported as undeliverable, for `reason`.
    pub fn report(&mut self, ids: &[OpId], reason: DivergenceReason) -> Result<(), Error> {
        self.transition(ids, DeliveryState::Reported(reason))
    }

    /// Applies a plan's decisions before executing it: its superseded operations are marked
    /// superseded, those of its divergences reported. Operations no longer live are left as
    /// they are.
    pub fn record_plan(&mut self, plan: &crate::ResumePlan) {
        if plan.superseded.is_empty() && plan.undeliverable.is_empty() {
            return;
        }
        // One lookup per operation, however many the plan names (linear in both).
        let superseded: std::collections::HashSet<OpId> = plan.superseded.iter().copied().collect();
        let mut reported = std::collections::HashMap::new();
        for d in &plan.undeliverable {
            for id in &d.ops {
                reported.entry(*id).or_insert(d.why);
            }
        }
        for op in &mut self.ops {
            if !op.state.is_live() {
                continue;
            }
            if superseded.contains(&op.id) {
                op.state = DeliveryState::Superseded;
            } else if let Some(why) = reported.get(&op.id) {
                op.state = DeliveryState::Reported(*why);
            }
        }
    }

    /// Drops covered, superseded and reported operations (they can no longer matter: the
    /// desired context holds their items for any future seed).
    pub fn prune(&mut self) {
        self.ops.retain(|op| op.state.is_live());
    }
}
