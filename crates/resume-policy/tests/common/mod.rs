//! A miniature session layer for the tests: it feeds the tracker and the outbox the way
//! `agent-glue` is meant to, keeps `L` and the mirror, and executes plans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use ctx_model::{ChatContext, FunctionOutput, Item, Message};
use resume_policy::{
    Channel, ClientMessageIndex, ConnectMode, ConnectionId, CoverageTracker, DefaultPolicy,
    HandleUpdate, MessageKind, MessagePosition, Millis, Mirror, ModelCapabilities, OpId, OpKind,
    Outbox, PlannedMessage, ResumeContext, ResumePlan, ResumePolicy, Route, RouteContext,
    ServerReaction, Strategy, ToolCallStatus, Trigger,
};

pub const M25: &str = "models/gemini-2.5-flash-native-audio-preview-12-2025";
pub const M31: &str = "models/gemini-3.1-flash-live-preview";
pub const M38: &str = "models/gemini-3.8-live";
pub const V25: &str =
    "projects/p/locations/us-central1/publishers/google/models/gemini-live-2.5-flash-native-audio";

pub struct Sim {
    pub caps: ModelCapabilities,
    pub tracker: CoverageTracker,
    pub outbox: Outbox,
    /// `L`.
    pub desired: ChatContext,
    /// `S`, and what the held handle provably holds.
    pub mirror: Mirror,
    pub connection: u64,
    pub now: u64,
    pub transparent: bool,
    /// The independent server model.
    pub server: FakeServer,
    /// The last client message index on the current connection.
    pub last_index: u64,
}

impl Sim {
    pub fn new(model: &str) -> Self {
        Self::with_caps(ModelCapabilities::for_model(model).unwrap(), false)
    }

    pub fn with_caps(caps: ModelCapabilities, transparent: bool) -> Self {
        Self {
            caps,
            tracker: CoverageTracker::new(transparent),
            outbox: Outbox::new(),
            desired: ChatContext::new(),
            mirror: Mirror::new(),
            connection: 0,
            now: 0,
            transparent,
            server: FakeServer::default(),
            last_index: 0,
        }
    }

    /// A copy to play an alternative future on.
    pub fn clone_for_test(&self) -> Sim {
        Sim {
            caps: self.caps,
            tracker: self.tracker.clone(),
            outbox: self.outbox.clone(),
            desired: self.desired.clone(),
            mirror: self.mirror.clone(),
            connection: self.connection,
            now: self.now,
            transparent: self.transparent,
            server: self.server.clone(),
            last_index: self.last_index,
        }
    }

    pub fn tick(&mut self, ms: u64) {
        self.now += ms;
    }

    /// Opens connection n+1 fresh (no plan), as a first connect with an empty context.
    pub fn connect_fresh(&mut self) {
        self.connection += 1;
        self.tracker
            .on_connected(ConnectionId(self.connection), ConnectMode::Fresh)
            .unwrap();
        self.mirror
            .on_connected(ConnectionId(self.connection), ConnectMode::Fresh);
        self.server.fresh();
        self.last_index = 0;
    }

    /// History the application had before connecting: in `L` only.
    pub fn history(&mut self, items: Vec<Item>) {
        for item in items {
            self.desired.push(item).unwrap();
        }
    }

    fn send(&mut self, kind: MessageKind, ops: &[OpId], items: Vec<Item>) -> MessagePosition {
        let at = self.tracker.on_sent(kind).unwrap();
        self.last_index = at.index.0;
        self.server.receive(&items);
        self.outbox.mark_sent(ops, at).unwrap();
        self.mirror.on_sent(&items, at);
        at
    }

    fn route(&self, op: OpId) -> Route {
        let ctx = RouteContext {
            connection: ConnectionId(self.connection),
            capabilities: &self.caps,
            tool_calls: self.tracker.tool_calls(),
        };
        DefaultPolicy::default().route(&ctx, self.outbox.get(op).unwrap())
    }

    /// Queues an operation and, when connected, delivers it the way the default policy routes
    /// it. Returns the op and its route (`None` offline).
    pub fn op(&mut self, kind: OpKind) -> (OpId, Option<Route>) {
        let id = self.outbox.push(kind);
        if self.tracker.connection().is_none() {
            return (id, None);
        }
        let route = self.route(id);
        if let Route::Send(step) = &route {
            self.send_step(step);
        }
        (id, Some(route))
    }

    /// A user turn typed by the application (in `L` first, then queued and sent).
    pub fn user_turn(&mut self, id: &str, text: &str) -> OpId {
        let item: Item = Message::user(id, text).into();
        self.desired.push(item.clone()).unwrap();
        self.op(OpKind::Append {
            items: vec![item],
            turn_complete: true,
        })
        .0
    }

    /// History appended without asking for an answer.
    pub fn silent_append(&mut self, id: &str, text: &str) -> OpId {
        let item: Item = Message::user(id, text).into();
        self.desired.push(item.clone()).unwrap();
        self.op(OpKind::Append {
            items: vec![item],
            turn_complete: false,
        })
        .0
    }

    /// The model answered (part of) a turn: in `L` and the live mirror.
    pub fn model_says(&mut self, id: &str, text: &str) {
        let item: Item = Message::model(id, text).into();
        self.desired.push(item.clone()).unwrap();
        self.server.produce(std::slice::from_ref(&item));
        self.mirror.on_server_items(std::slice::from_ref(&item));
    }

    pub fn turn_complete(&mut self) {
        self.tracker.on_reaction(ServerReaction::TurnComplete);
        self.server.reacted();
    }

    pub fn model_turn(&mut self, id: &str, text: &str) {
        self.model_says(id, text);
        self.turn_complete();
    }

    /// A model turn answering a message sent before the item `before`: `L` holds it where the
    /// server does, before the later message's items.
    pub fn model_turn_before(&mut self, id: &str, text: &str, before: &str) {
        let item: Item = Message::model(id, text).into();
        let at = self.desired.index_of(before).unwrap();
        let after = at
            .checked_sub(1)
            .map(|k| self.desired.items()[k].id().clone());
        self.desired
            .insert_after(after.as_ref(), item.clone())
            .unwrap();
        self.server.produce(std::slice::from_ref(&item));
        self.mirror.on_server_items(std::slice::from_ref(&item));
        self.turn_complete();
    }

    /// The server issued a tool call.
    pub fn tool_call(&mut self, item_id: &str, call_id: &str, name: &str) {
        let item: Item = ctx_model::FunctionCall::new(item_id, call_id, name, "{}".into()).into();
        self.desired.push(item.clone()).unwrap();
        self.server.produce(std::slice::from_ref(&item));
        self.mirror.on_server_items(std::slice::from_ref(&item));
        self.tracker.on_tool_call(call_id, name).unwrap();
        self.tracker.on_reaction(ServerReaction::ToolCall);
        self.server.reacted();
    }

    /// The tool finished: the output goes to `L` and the outbox (sent if connected).
    pub fn tool_result(&mut self, item_id: &str, call_id: &str, name: &str) -> OpId {
        let output = FunctionOutput::new(item_id, call_id, name, "done".into());
        self.desired.push(output.clone()).unwrap();
        self.tracker
            .set_tool_status(call_id, ToolCallStatus::Answered);
        self.op(OpKind::ToolResponse { output }).0
    }

    pub fn cancel_call(&mut self, call_id: &str) {
        self.tracker
            .set_tool_status(call_id, ToolCallStatus::Cancelled);
    }

    /// A resumable update: the handle covers what the tracker proves (in transparent mode the
    /// server reports the last message it received, exactly).
    pub fn handle(&mut self, token: &str) {
        let index = self.transparent.then_some(self.last_index);
        self.handle_with_index(token, index);
    }

    /// A resumable update from a server that had not yet processed up to `lag` of the latest
    /// client items (never more than it received since its last visible reaction).
    pub fn lagging_handle(&mut self, token: &str, lag: usize) {
        self.handle(token);
        let lag = lag % (self.server.unreacted + 1);
        self.server.snapshot_lagging(token, lag);
    }

    pub fn handle_with_index(&mut self, token: &str, last_consumed: Option<u64>) {
        let update = HandleUpdate {
            new_handle: Some(token.to_owned()),
            resumable: true,
            last_consumed: last_consumed.map(ClientMessageIndex),
        };
        let record = self
            .tracker
            .on_handle_update(&update, Millis(self.now))
            .unwrap()
            .unwrap();
        self.server.snapshot(token);
        self.outbox.cover(&record);
        self.mirror.on_handle(&record);
    }

    pub fn not_resumable(&mut self) {
        self.tracker
            .on_handle_update(&HandleUpdate::default(), Millis(self.now))
            .unwrap();
    }

    /// The connection is lost: the mirror rolls back to what the handle holds.
    pub fn drop_connection(&mut self) {
        self.tracker.on_disconnected();
    }

    pub fn ctx(&self, trigger: Trigger) -> ResumeContext<'_> {
        ResumeContext::new(
            trigger,
            &self.outbox,
            &self.desired,
            self.mirror.held(),
            &self.caps,
            self.tracker.tool_calls(),
        )
        .with_handle(self.tracker.handle())
        .with_now(Millis(self.now))
        .with_transparent(self.transparent, self.transparent)
    }

    pub fn plan(&self, trigger: Trigger) -> ResumePlan {
        self.plan_with(&DefaultPolicy::default(), trigger)
    }

    pub fn plan_with(&self, policy: &dyn ResumePolicy, trigger: Trigger) -> ResumePlan {
        policy.plan(&self.ctx(trigger))
    }

    /// Executes a plan the way the session layer does: connect, seed, steps, ledger updates.
    pub fn execute(&mut self, plan: &ResumePlan) {
        self.connection += 1;
        let conn = ConnectionId(self.connection);
        self.last_index = 0;
        match plan.strategy {
            Strategy::Resume { ref handle } => {
                self.tracker
                    .on_connected(conn, ConnectMode::Resumed)
                    .unwrap();
                self.mirror.on_connected(conn, ConnectMode::Resumed);
                self.server.resume(handle.expose());
            }
            Strategy::Fresh => {
                self.tracker.on_connected(conn, ConnectMode::Fresh).unwrap();
                self.mirror.on_connected(conn, ConnectMode::Fresh);
                self.server.fresh();
            }
            Strategy::GiveUp { .. } => panic!("cannot execute a give-up plan"),
        }
        self.outbox.record_plan(plan);
        let setup = MessagePosition::new(conn, ClientMessageIndex::SETUP);
        self.outbox.mark_sent(&plan.setup_ops, setup).unwrap();
        if let Some(seed) = &plan.seed {
            let kind = seed.message_kind(plan.history_config);
            self.send(kind, &seed.ops, seed.items.clone());
        }
        for step in &plan.steps {
            self.send_step(step);
        }
    }

    pub fn send_step(&mut self, step: &resume_policy::PlannedSend) {
        let items = match &step.message {
            PlannedMessage::ClientContent { items, .. } => items.clone(),
            PlannedMessage::ToolResponse { responses } => {
                self.server.tool_responses(responses);
                let at = self.tracker.on_sent(MessageKind::ToolResponse).unwrap();
                self.last_index = at.index.0;
                self.outbox.mark_sent(&step.ops, at).unwrap();
                let items: Vec<Item> = responses.iter().cloned().map(Item::from).collect();
                self.mirror.on_sent(&items, at);
                return;
            }
            PlannedMessage::RealtimeText { .. } => step
                .ops
                .iter()
                .filter_map(|id| self.outbox.get(*id))
                .flat_map(|op| op.kind.item_ids())
                .filter_map(|id| self.desired.get(id).cloned())
                .collect(),
            PlannedMessage::ReplyRequest { .. }
            | PlannedMessage::RealtimeReplyRequest { .. }
            | PlannedMessage::ContextUpdate { .. } => Vec::new(),
        };
        self.send(step.message_kind(), &step.ops.clone(), items);
    }
}

/// The operations a plan sends on each channel, flattened in order.
pub fn step_ops(plan: &ResumePlan) -> Vec<OpId> {
    plan.steps
        .iter()
        .flat_map(|s| s.ops.iter().copied())
        .collect()
}

/// The ids of the items a plan's steps carry as `clientContent`, in order.
pub fn client_content_ids(plan: &ResumePlan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|s| match &s.message {
            PlannedMessage::ClientContent { items, .. } => Some(items),
            _ => None,
        })
        .flatten()
        .map(|item| item.id().to_string())
        .collect()
}

pub fn seed_ids(plan: &ResumePlan) -> Vec<String> {
    plan.seed
        .iter()
        .flat_map(|seed| seed.items.iter())
        .map(|item| item.id().to_string())
        .collect()
}

pub fn channels(plan: &ResumePlan) -> Vec<Channel> {
    plan.steps.iter().map(|s| s.channel()).collect()
}

pub fn go_away() -> Trigger {
    Trigger::GoAway {
        time_left: std::time::Duration::from_secs(50),
    }
}

pub fn dropped() -> Trigger {
    Trigger::AbnormalClose {
        code: 1006,
        class: resume_policy::CloseClass::Transient,
    }
}

/// An independent model of the server session, fed with what actually went over the wire
/// (never with the client's ledger): it processes every message at once, and a handle is a
/// full snapshot of the processed state.
#[derive(Debug, Default, Clone)]
pub struct FakeServer {
    /// The current session's conversation, as item ids in processing order (duplicates kept).
    pub session: Vec<String>,
    /// Calls issued in the current session.
    pub calls: std::collections::HashSet<String>,
    snapshots: std::collections::HashMap<String, (Vec<String>, std::collections::HashSet<String>)>,
    /// Protocol violations seen (orphan tool responses).
    pub violations: Vec<String>,
    /// Client items received since the server last visibly reacted.
    pub unreacted: usize,
}

impl FakeServer {
    fn fresh(&mut self) {
        self.session.clear();
        self.calls.clear();
        self.unreacted = 0;
    }

    /// The server visibly reacted (turnComplete, toolCall): it processed all it received.
    fn reacted(&mut self) {
        self.unreacted = 0;
    }

    fn resume(&mut self, token: &str) {
        let (session, calls) = self.snapshots.get(token).cloned().expect("unknown handle");
        self.session = session;
        self.calls = calls;
        self.unreacted = 0;
    }

    fn snapshot(&mut self, token: &str) {
        self.snapshots
            .insert(token.to_owned(), (self.session.clone(), self.calls.clone()));
    }

    /// A lagging snapshot: the last `unprocessed` received items are not in it yet.
    pub fn snapshot_lagging(&mut self, token: &str, unprocessed: usize) {
        let keep = self.session.len().saturating_sub(unprocessed);
        self.snapshots.insert(
            token.to_owned(),
            (self.session[..keep].to_vec(), self.calls.clone()),
        );
    }

    /// Output the model produced: the server processed everything before it.
    fn produce(&mut self, items: &[Item]) {
        self.receive(items);
        self.unreacted = 0;
    }

    fn receive(&mut self, items: &[Item]) {
        self.unreacted += items.len();
        for item in items {
            if let Item::FunctionCall(call) = item {
                self.calls.insert(call.call_id.clone());
            }
            self.session.push(item.id().to_string());
        }
    }

    fn tool_responses(&mut self, outputs: &[FunctionOutput]) {
        for output in outputs {
            if !self.calls.contains(&output.call_id) {
                self.violations
                    .push(format!("orphan toolResponse for {}", output.call_id));
            }
            self.session.push(output.id.to_string());
            self.unreacted += 1;
        }
    }

    /// Ids present more than once.
    pub fn duplicates(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.session
            .iter()
            .filter(|id| !seen.insert(id.as_str()))
            .cloned()
            .collect()
    }
}

/// Whether `plan` resumes with the handle `token`.
pub fn resumed_with(plan: &ResumePlan, token: &str) -> bool {
    plan.strategy
        == resume_policy::Strategy::Resume {
            handle: resume_policy::HandleToken::new(token),
        }
}

/// Connected on 2.5/3.1/3.8 with one finished exchange covered by handle `h1`.
pub fn settled(model: &str) -> Sim {
    let mut sim = Sim::new(model);
    sim.connect_fresh();
    sim.user_turn("u1", "Hello");
    sim.model_turn("m1", "Hi there");
    sim.handle("h1");
    sim
}
