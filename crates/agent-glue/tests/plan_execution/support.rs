//! Helpers: a scripted mock policy, a session against the fake, and readers of the frames
//! the fake recorded.

use std::sync::{Arc, Mutex};

use agent_glue::{LiveSession, LiveSessionBuilder, SessionEvent, SessionEvents};
use ctx_model::{Item, Message};
use gemini_fake::{ConnectionRecord, FakeConfig, FakeServer, Family};
use gemini_transport::wire::Modality;
use mockall::Sequence;
use resume_policy::{
    MockResumePolicy, OpId, OpKind, Operation, PlannedMessage, PlannedSend, ResumeContext,
    ResumePlan, Route, Strategy, Trigger,
};
use serde_json::{Value, json};

use crate::common::{WAIT, endpoint, until, weather_tool};

/// What the session asked the policy for a plan with.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    pub trigger: Trigger,
    /// The handle token offered in the context.
    pub handle: Option<String>,
    /// The live operations of the outbox.
    pub live: Vec<OpId>,
}

/// A mock policy that hands out plans in order and logs what it was asked.
pub struct Script {
    pub mock: MockResumePolicy,
    seq: Sequence,
    log: Arc<Mutex<Vec<Asked>>>,
}

impl Script {
    pub fn new() -> Self {
        let mut mock = MockResumePolicy::new();
        mock.expect_backoff()
            .returning(resume_policy::Backoff::default);
        Self {
            mock,
            seq: Sequence::new(),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The next plan the policy gives.
    pub fn plan(
        mut self,
        make: impl Fn(&ResumeContext<'_>) -> ResumePlan + Send + 'static,
    ) -> Self {
        let log = Arc::clone(&self.log);
        self.mock
            .expect_plan()
            .times(1)
            .in_sequence(&mut self.seq)
            .returning(move |ctx| {
                log.lock().unwrap().push(Asked {
                    trigger: ctx.trigger,
                    handle: ctx.handle.map(|h| h.token.expose().to_owned()),
                    live: ctx.outbox.live().map(|op| op.id).collect(),
                });
                make(ctx)
            });
        self
    }

    /// How every operation queued while a connection is up is routed.
    pub fn route(mut self, decide: impl Fn(&Operation) -> Route + Send + 'static) -> Self {
        self.mock.expect_route().returning(move |_, op| decide(op));
        self
    }
}

/// A fake server for `family`. The sessions here are TEXT, which 3.8 refuses: the fake's test
/// switch allows it.
pub async fn server(family: Family) -> FakeServer {
    FakeServer::start(FakeConfig::new().with_family(family).with_text_on_3_8(true))
        .await
        .expect("fake server starts")
}

/// A TEXT session with instructions and the weather tool, driven by `script`.
pub fn builder(
    server: &FakeServer,
    script: Script,
) -> (LiveSessionBuilder, Arc<Mutex<Vec<Asked>>>) {
    let builder = LiveSession::builder(endpoint(server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .instructions("Be brief.")
        .tools(vec![weather_tool()])
        .policy(Box::new(script.mock));
    (builder, script.log)
}

/// A user message item.
pub fn user(id: &str, text: &str) -> Item {
    Item::from(Message::user(id, text))
}

/// A route that sends appends as `clientContent` (with their `turnComplete`) and tool results
/// as `toolResponse`.
pub fn send_as_asked(op: &Operation) -> Route {
    match &op.kind {
        OpKind::Append {
            items,
            turn_complete,
        } => Route::Send(PlannedSend::new(
            vec![op.id],
            PlannedMessage::client_content(items.clone(), *turn_complete),
        )),
        OpKind::ToolResponse { output } => Route::Send(PlannedSend::new(
            vec![op.id],
            PlannedMessage::ToolResponse {
                responses: vec![output.clone()],
            },
        )),
        other => panic!("unexpected operation {other:?}"),
    }
}

/// The text of the user turn an `Append` operation carries.
pub fn append_text(op: &Operation) -> String {
    match &op.kind {
        OpKind::Append { items, .. } => items
            .iter()
            .filter_map(|i| i.as_message())
            .map(|m| m.text())
            .collect(),
        _ => String::new(),
    }
}

/// A plan that resumes with the offered handle (fresh without one) and sends `steps`.
pub fn resume_with(ctx: &ResumeContext<'_>, steps: Vec<PlannedSend>) -> ResumePlan {
    let strategy = match ctx.handle {
        Some(record) => Strategy::Resume {
            handle: record.token.clone(),
        },
        None => Strategy::Fresh,
    };
    let mut plan = ResumePlan::new(strategy);
    plan.steps = steps;
    plan
}

/// Closes the session and waits until the fake saw every connection end, so that every frame
/// the session sent has been recorded.
pub async fn quiesce(server: &FakeServer, session: &LiveSession) {
    session.close().await.unwrap();
    server
        .wait_for(WAIT, "every connection ended", |view| {
            view.connections().iter().all(|c| !c.is_open())
        })
        .await
        .unwrap();
}

/// Waits until the fake has issued `issued` handles in its latest session, then until the
/// session has read every frame sent before a marker frame (a bare `usageMetadata`): the
/// handle has then reached the session, with nothing sent after it.
pub async fn settle_handle(server: &FakeServer, events: &mut SessionEvents, issued: usize) {
    server
        .wait_for(WAIT, &format!("{issued} handles issued"), |view| {
            view.latest_session()
                .is_some_and(|s| s.handles_issued().len() >= issued)
        })
        .await
        .unwrap();
    server.faults().send_raw(
        br#"{"usageMetadata":{"totalTokenCount":424242}}"#.to_vec(),
        false,
    );
    until(
        events,
        "marker frame",
        |e| matches!(e, SessionEvent::Usage(u) if u.total_tokens == Some(424_242)),
    )
    .await;
}

/// Waits until connection number `n` (0-based) has received `frames` frames.
pub async fn wait_frames(server: &FakeServer, n: usize, frames: usize) -> ConnectionRecord {
    server
        .wait_for(
            WAIT,
            &format!("{frames} frames on connection {n}"),
            |view| {
                view.connections()
                    .get(n)
                    .is_some_and(|c| c.frames.len() >= frames)
            },
        )
        .await
        .unwrap();
    server.connections()[n].clone()
}

/// The kinds of the frames of `conn`, in order.
pub fn kinds(conn: &ConnectionRecord) -> Vec<&'static str> {
    conn.frames.iter().map(|f| f.kind).collect()
}

/// The `setup` object of `conn`'s first frame.
pub fn setup_of(conn: &ConnectionRecord) -> Value {
    conn.frames[0].json()["setup"].clone()
}

/// Frame `i` of `conn` as JSON.
pub fn frame(conn: &ConnectionRecord, i: usize) -> Value {
    conn.frames[i].json()
}

/// A `clientContent` frame as `(role, text)` turns and its `turnComplete` (absent = false).
pub fn client_content(frame: &Value) -> (Vec<(String, String)>, bool) {
    let content = &frame["clientContent"];
    let turns = content["turns"]
        .as_array()
        .map(|turns| {
            turns
                .iter()
                .map(|t| {
                    let text: String = t["parts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["text"].as_str())
                        .collect();
                    (t["role"].as_str().unwrap_or("").to_owned(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    (turns, content["turnComplete"].as_bool().unwrap_or(false))
}

pub fn turns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(r, t)| ((*r).to_owned(), (*t).to_owned()))
        .collect()
}

/// The setup's handle (`None` without one) and whether it carries `historyConfig`.
pub fn handle_and_history(setup: &Value) -> (Option<String>, bool) {
    assert!(
        setup["sessionResumption"].is_object(),
        "resumption is always requested: {setup}"
    );
    let handle = setup["sessionResumption"]["handle"]
        .as_str()
        .map(str::to_owned);
    let history = setup.get("historyConfig").is_some();
    if history {
        assert_eq!(
            setup["historyConfig"]["initialHistoryInClientContent"],
            json!(true)
        );
    }
    (handle, history)
}

/// The system instruction text and declared function names of a setup (or contextUpdate).
pub fn instructions_and_tools(config: &Value) -> (Option<String>, Vec<String>) {
    let text = config["systemInstruction"]["parts"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect());
    let tools = config["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["functionDeclarations"].as_array().into_iter().flatten())
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    (text, tools)
}

pub fn triggers(log: &Arc<Mutex<Vec<Asked>>>) -> Vec<Trigger> {
    log.lock().unwrap().iter().map(|a| a.trigger).collect()
}
