//! Context changes: S17–S22.
//!
//! Appends, edits, instruction and tool-set changes made by the application while a session
//! is live or down. Each body checks the server's context against `L`, the frames each
//! connection received, and the reconnect events the application saw.

use std::time::Duration;

use agent_glue::{LiveSession, ReconnectReason, ReconnectStrategy, SessionEvent, SessionEvents};
use ctx_model::{ChatContext, Item, Message};
use gemini_fake::{
    ConnectionEnd, ConnectionRecord, FakeServer, Family, FaultAction, ResponseFate,
    Trigger as FaultTrigger,
};
use gemini_transport::wire::{FunctionDeclaration, Modality};
use resume_policy::{Backoff, DefaultPolicy, DivergenceReason, EditHandling, ResumePolicy};
use serde_json::{Value, json};

use crate::common::*;
use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S17",
            title: "online append on 2.5: one clientContent(turnComplete:false), never re-sent",
            body: |p| Box::pin(s17(p)),
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S18",
            title: "online append on 3.1: no clientContent, reported, deferred to a fresh seed",
            body: |p| Box::pin(s18(p)),
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S19",
            title: "offline append: delivered once after resume (2.5), reported then seeded (3.1)",
            body: |p| Box::pin(s19(p)),
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S20",
            title: "edit and removal of old items: fresh session seeded from L, or reported",
            body: |p| Box::pin(s20(p)),
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S21",
            title: "instruction change: setup of a resumed connection (2.5), contextUpdate (3.8)",
            body: |p| Box::pin(s21(p)),
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S22",
            title: "tool-set change mid-call: one resumed reconnect, the result delivered once",
            body: |p| Box::pin(s22(p)),
            exposes: &[PolicyKind::ReplayAlways],
        },
    ]
}

fn by_id(id: &str) -> Scenario {
    scenarios()
        .into_iter()
        .find(|s| s.id == id)
        .expect("scenario listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s17_online_append_on_25() {
    check(by_id("S17")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s18_online_append_on_31() {
    check(by_id("S18")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s19_offline_append() {
    check(by_id("S19")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s20_edits_and_removals() {
    check(by_id("S20")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s21_instruction_change() {
    check(by_id("S21")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s22_tool_set_change_mid_call() {
    check(by_id("S22")).await;
}

/// How long a body waits for one event before it reports the wait as the failure (short, so a
/// legacy policy stuck in a reconnect loop fails fast instead of stalling the table).
const EVENT_WAIT: Duration = Duration::from_secs(3);

/// The events the application saw, kept so that reconnects can be counted at the end.
struct Watch {
    events: SessionEvents,
    seen: Vec<SessionEvent>,
}

impl Watch {
    fn new(events: SessionEvents) -> Self {
        Self {
            events,
            seen: Vec::new(),
        }
    }

    /// Reads events until one satisfies `pred`; `Err` on timeout or end of stream.
    async fn until(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&SessionEvent) -> bool,
    ) -> Result<SessionEvent, String> {
        let start = self.seen.len();
        let found = tokio::time::timeout(EVENT_WAIT, async {
            while let Some(event) = self.events.recv().await {
                let done = pred(&event);
                self.seen.push(event.clone());
                if done {
                    return Some(event);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(event)) => Ok(event),
            _ => Err(format!(
                "waiting for {what}; saw {:?}",
                &self.seen[start.min(self.seen.len())..]
            )),
        }
    }

    /// A typed turn and its answer: frames sent before it are processed once it returns.
    async fn barrier(&mut self, session: &LiveSession, text: &str) -> Outcome {
        session.send_text(text).map_err(|e| e.to_string())?;
        self.until(&format!("the answer to {text:?}"), |e| {
            matches!(e, SessionEvent::TurnComplete)
        })
        .await
        .map(|_| ())
    }

    /// The next `Reconnected` event's report.
    async fn reconnected(&mut self) -> Result<agent_glue::Reconnected, String> {
        match self
            .until("reconnected", |e| matches!(e, SessionEvent::Reconnected(_)))
            .await?
        {
            SessionEvent::Reconnected(report) => Ok(report),
            _ => Err("no Reconnected event".into()),
        }
    }

    /// Reads what is already queued.
    fn drain(&mut self) {
        while let Some(event) = self.events.try_recv() {
            self.seen.push(event);
        }
    }

    /// Exactly `n` `Reconnecting` and `n` `Reconnected` events so far.
    fn reconnects(&mut self, n: usize) -> Outcome {
        self.drain();
        let reconnecting = self
            .seen
            .iter()
            .filter(|e| matches!(e, SessionEvent::Reconnecting { .. }))
            .count();
        let reconnected = self
            .seen
            .iter()
            .filter(|e| matches!(e, SessionEvent::Reconnected(_)))
            .count();
        ensure_eq("Reconnecting events", reconnecting, n)?;
        ensure_eq("Reconnected events", reconnected, n)
    }

    /// The divergence events seen so far, with their reasons.
    fn divergences(&mut self) -> Vec<DivergenceReason> {
        self.drain();
        self.seen
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Divergence { why, .. } => Some(*why),
                _ => None,
            })
            .collect()
    }
}

/// A TEXT session on `server` with `policy`, `tools` and optional instructions.
async fn open(
    server: &FakeServer,
    policy: Box<dyn ResumePolicy>,
    tools: Vec<FunctionDeclaration>,
    instructions: Option<&str>,
) -> Result<(LiveSession, Watch), String> {
    let mut builder = LiveSession::builder(endpoint(server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .tools(tools)
        .policy(policy);
    if let Some(text) = instructions {
        builder = builder.instructions(text);
    }
    let (session, events) = builder.connect().await.map_err(|e| e.to_string())?;
    Ok((session, Watch::new(events)))
}

/// `L` with `items` appended.
fn appended(session: &LiveSession, items: Vec<Item>) -> Result<ChatContext, String> {
    let mut ctx = session.chat_ctx();
    ctx.extend(items).map_err(|e| e.to_string())?;
    Ok(ctx)
}

/// The frames of `conn` (after its setup) whose JSON mentions `needle`.
fn frames_mentioning(conn: &ConnectionRecord, needle: &str) -> Vec<Value> {
    conn.frames
        .iter()
        .skip(1)
        .filter(|f| f.raw.contains(needle))
        .map(|f| f.json())
        .collect()
}

/// Every frame of every connection that mentions `needle`.
fn all_frames_mentioning(server: &FakeServer, needle: &str) -> Vec<Value> {
    server
        .connections()
        .iter()
        .flat_map(|c| frames_mentioning(c, needle))
        .collect()
}

/// The kinds of the frames after the setup of `conn`.
fn kinds_after_setup(conn: &ConnectionRecord) -> Vec<String> {
    conn.frames
        .iter()
        .skip(1)
        .map(|f| f.kind.to_string())
        .collect()
}

/// `Err` unless the frames after the setup of `conn` are exactly `kinds` (showing them all).
fn expect_kinds(what: &str, conn: &ConnectionRecord, kinds: &[&str]) -> Outcome {
    let got = kinds_after_setup(conn);
    ensure(got == kinds, || {
        let raw: Vec<&str> = conn.frames.iter().map(|f| f.raw.as_str()).collect();
        format!("{what}: {got:?} != {kinds:?}; frames {raw:?}")
    })
}

/// The setup frame of `conn`, as JSON.
fn setup_of(conn: &ConnectionRecord) -> Value {
    conn.frames.first().map(|f| f.json()).unwrap_or(Value::Null)
}

/// The system instruction text carried by a setup frame.
fn setup_instruction(setup: &Value) -> Option<String> {
    let parts = setup["setup"]["systemInstruction"]["parts"].as_array()?;
    Some(
        parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
    )
}

/// The function names declared by a setup frame.
fn setup_tools(setup: &Value) -> Vec<String> {
    setup["setup"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|tool| {
            tool["functionDeclarations"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect()
}

/// No connection was closed by the server for a protocol violation.
fn no_rejections(server: &FakeServer) -> Outcome {
    for conn in server.connections() {
        if let Some((code, reason)) = conn.closed_with() {
            if matches!(conn.end, Some((ConnectionEnd::ServerClose { .. }, _)))
                && (code == 1007 || code == 1008)
            {
                return Err(format!(
                    "connection {} closed by the server with {code}: {reason}",
                    conn.id
                ));
            }
        }
    }
    Ok(())
}

/// `L == S`, as entries.
fn contexts_match(session: &LiveSession, server: &FakeServer) -> Outcome {
    ensure_eq("L == S", l_entries(&session.chat_ctx()), s_entries(server))
}

/// How often `entry` occurs in the server's context.
fn occurrences_in_s(server: &FakeServer, entry: &str) -> usize {
    s_entries(server).iter().filter(|e| *e == entry).count()
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

// S17 ------------------------------------------------------------------------------------

async fn s17(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![], None).await?;
    watch.barrier(&session, "one").await?;
    let ctx = appended(
        &session,
        vec![
            Message::user("app-u1", "remember the code 42").into(),
            Message::model("app-m1", "noted the code").into(),
        ],
    )?;
    session.update_chat_ctx(ctx).await.map_err(err)?;
    // The typed turn after it proves the append was processed (and its handle covers it).
    watch.barrier(&session, "two").await?;
    let first = server.connections().remove(0);
    let carrying = frames_mentioning(&first, "remember the code 42");
    ensure_eq("frames carrying the append", carrying.len(), 1)?;
    let frame = &carrying[0];
    ensure(frame.get("clientContent").is_some(), || {
        format!("the append did not go as clientContent: {frame}")
    })?;
    ensure(
        frame["clientContent"]["turnComplete"].as_bool() != Some(true),
        || format!("the append asked for an answer: {frame}"),
    )?;
    ensure(frame.to_string().contains("noted the code"), || {
        format!("the model item is not in the same message: {frame}")
    })?;
    contexts_match(&session, &server)?;
    let generations = server.latest_session().map(|s| s.generations());
    ensure_eq("generations after the append", generations, Some(2))?;

    // A later drop and resume: the append is never sent again.
    server.faults().drop_connections();
    let report = watch.reconnected().await?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    watch.barrier(&session, "three").await?;
    let connections = server.connections();
    ensure_eq("connections", connections.len(), 2)?;
    let second = &connections[1];
    ensure(second.resumed_from.is_some(), || {
        "the second connection did not resume".into()
    })?;
    expect_kinds("frames after the resumed setup", second, &["clientContent"])?;
    ensure(
        frames_mentioning(second, "remember the code").is_empty(),
        || "the append was sent again after the resume".into(),
    )?;
    ensure_eq(
        "the append in S",
        occurrences_in_s(&server, "user: remember the code 42"),
        1,
    )?;
    contexts_match(&session, &server)?;
    ensure_eq(
        "generations",
        server.latest_session().map(|s| s.generations()),
        Some(3),
    )?;
    no_rejections(&server)?;
    watch.reconnects(1)?;
    session.close().await.map_err(err)
}

// S18 ------------------------------------------------------------------------------------

async fn s18(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini31, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![], None).await?;
    watch.barrier(&session, "one").await?;
    let ctx = appended(
        &session,
        vec![Message::user("app-u1", "remember the code 42").into()],
    )?;
    // A typed result is acceptable; silence is not (checked through the events below).
    let typed = session.update_chat_ctx(ctx).await;
    watch.barrier(&session, "two").await?;
    no_rejections(&server)?;
    let first = server.connections().remove(0);
    ensure(first.is_open(), || {
        format!("the first connection ended: {:?}", first.end)
    })?;
    ensure_eq(
        "clientContent mid-session",
        first.frames_of("clientContent").count(),
        0,
    )?;
    let reported = watch
        .divergences()
        .contains(&DivergenceReason::ClientContentForbidden);
    ensure(typed.is_err() || reported, || {
        "the append was neither delivered, refused nor reported".into()
    })?;

    // Deferred to a fresh seed: the next connection starts fresh and the seed carries it.
    server.faults().drop_connections();
    let report = watch.reconnected().await?;
    if typed.is_ok() {
        ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
        let connections = server.connections();
        let second = &connections[1];
        ensure(second.resumed_from.is_none(), || {
            "resumed although the append needs a seed".into()
        })?;
        let setup = setup_of(second);
        ensure(
            setup["setup"]["historyConfig"]["initialHistoryInClientContent"] == json!(true),
            || format!("a fresh 3.1 seed without historyConfig: {setup}"),
        )?;
        watch.barrier(&session, "three").await?;
        let connections = server.connections();
        ensure_eq("connections", connections.len(), 2)?;
        let seeds = frames_mentioning(&connections[1], "remember the code 42");
        ensure_eq("seeds carrying the append", seeds.len(), 1)?;
        let generations = server.latest_session().map(|s| s.generations());
        ensure_eq("generations of the seeded session", generations, Some(1))?;
        ensure_eq(
            "the append in S",
            occurrences_in_s(&server, "user: remember the code 42"),
            1,
        )?;
        contexts_match(&session, &server)?;
    } else {
        watch.barrier(&session, "three").await?;
        contexts_match(&session, &server)?;
    }
    no_rejections(&server)?;
    watch.reconnects(1)?;
    session.close().await.map_err(err)
}

// S19 ------------------------------------------------------------------------------------

/// Drops the connection and holds the session down (two refused dials); returns once the
/// application has seen `Reconnecting`.
async fn go_down(server: &FakeServer, watch: &mut Watch) -> Outcome {
    server.faults().refuse_upgrades(2, 503);
    server.faults().drop_connections();
    watch
        .until("reconnecting", |e| {
            matches!(e, SessionEvent::Reconnecting { .. })
        })
        .await
        .map(|_| ())
}

async fn s19(policy: PolicyKind) -> Outcome {
    s19_on_25(policy).await?;
    s19_in_flight(policy)
        .await
        .map_err(|e| format!("in flight: {e}"))?;
    s19_on_31(policy).await
}

/// 2.5, the append in flight when the connection dies: the server processes it and drops
/// the connection at once, so the client cannot know whether the session holds it. After the
/// resume it is in `S` exactly once (replayed onto a handle that does not hold it, or held by
/// the handle resumed from and not replayed).
async fn s19_in_flight(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![], None).await?;
    watch.barrier(&session, "one").await?;
    server
        .faults()
        .schedule(FaultTrigger::ClientMessages(1), FaultAction::Drop);
    let ctx = appended(
        &session,
        vec![Message::user("app-u1", "note sent as the socket died").into()],
    )?;
    session.update_chat_ctx(ctx).await.map_err(err)?;
    let report = watch.reconnected().await?;
    watch.barrier(&session, "two").await?;
    ensure_eq(
        "the append in S",
        occurrences_in_s(&server, "user: note sent as the socket died"),
        1,
    )?;
    contexts_match(&session, &server)?;
    ensure(report.strategy == ReconnectStrategy::Resumed, || {
        let handles = server.latest_session().map(|s| s.handles_issued().to_vec());
        format!("not resumed: {report:?}; handles issued {handles:?}")
    })?;
    ensure_eq(
        "generations",
        server.latest_session().map(|s| s.generations()),
        Some(2),
    )?;
    no_rejections(&server)?;
    watch.reconnects(1)?;
    session.close().await.map_err(err)
}

async fn s19_on_25(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![], None).await?;
    watch.barrier(&session, "one").await?;
    go_down(&server, &mut watch).await?;
    let ctx = appended(
        &session,
        vec![Message::user("app-u1", "note made offline").into()],
    )?;
    session.update_chat_ctx(ctx).await.map_err(err)?;
    let report = watch.reconnected().await?;
    ensure_eq("2.5 strategy", report.strategy, ReconnectStrategy::Resumed)?;
    watch.barrier(&session, "two").await?;
    let carrying = all_frames_mentioning(&server, "note made offline");
    ensure_eq("2.5 frames carrying the append", carrying.len(), 1)?;
    ensure(
        carrying[0]["clientContent"]["turnComplete"].as_bool() != Some(true),
        || format!("the append asked for an answer: {}", carrying[0]),
    )?;
    ensure_eq(
        "2.5 the append in S",
        occurrences_in_s(&server, "user: note made offline"),
        1,
    )?;
    contexts_match(&session, &server)?;
    ensure_eq(
        "2.5 generations",
        server.latest_session().map(|s| s.generations()),
        Some(2),
    )?;
    no_rejections(&server)?;
    watch.reconnects(1)?;
    session.close().await.map_err(err)
}

async fn s19_on_31(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini31, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![], None).await?;
    watch.barrier(&session, "one").await?;
    go_down(&server, &mut watch).await?;
    let ctx = appended(
        &session,
        vec![Message::user("app-u1", "note made offline").into()],
    )?;
    let typed = session.update_chat_ctx(ctx).await;
    let first = watch.reconnected().await?;
    watch.barrier(&session, "two").await?;
    no_rejections(&server)?;
    let fresh = first.strategy == ReconnectStrategy::Fresh;
    let reported = watch
        .divergences()
        .contains(&DivergenceReason::ClientContentForbidden);
    ensure(fresh || typed.is_err() || reported, || {
        "3.1: the offline append was neither seeded, refused nor reported".into()
    })?;
    let mut reconnects = 1;
    if !fresh && typed.is_ok() {
        // Reported and deferred: the next connection is fresh and its seed carries it.
        server.faults().drop_connections();
        let report = watch.reconnected().await?;
        ensure_eq("3.1 strategy", report.strategy, ReconnectStrategy::Fresh)?;
        reconnects += 1;
        watch.barrier(&session, "three").await?;
    }
    if typed.is_ok() {
        ensure_eq(
            "3.1 the append in S",
            occurrences_in_s(&server, "user: note made offline"),
            1,
        )?;
        let carrying = all_frames_mentioning(&server, "note made offline");
        ensure_eq("3.1 frames carrying the append", carrying.len(), 1)?;
    }
    for conn in server.connections() {
        let history = setup_of(&conn)["setup"].get("historyConfig").is_some();
        ensure(
            history || conn.frames_of("clientContent").count() == 0,
            || format!("clientContent mid-session on connection {}", conn.id),
        )?;
    }
    contexts_match(&session, &server)?;
    no_rejections(&server)?;
    watch.reconnects(reconnects)?;
    session.close().await.map_err(err)
}

// S20 ------------------------------------------------------------------------------------

/// `L` with its first user message edited and the answer to the second turn removed.
fn edited(session: &LiveSession) -> Result<ChatContext, String> {
    let mut ctx = session.chat_ctx();
    let ids: Vec<_> = ctx.ids().cloned().collect();
    ensure(ids.len() >= 4, || format!("L too short to edit: {ids:?}"))?;
    ctx.replace(Message::user(ids[0].clone(), "one, edited"))
        .map_err(err)?;
    ctx.remove(&ids[3]).map_err(err)?;
    Ok(ctx)
}

async fn s20(policy: PolicyKind) -> Outcome {
    s20_reseed(policy).await?;
    if policy == PolicyKind::Default {
        s20_report().await?;
    }
    Ok(())
}

/// The default handling: a fresh session seeded from `L` with the edit.
async fn s20_reseed(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![], None).await?;
    watch.barrier(&session, "one").await?;
    watch.barrier(&session, "two").await?;
    let old_session = server.latest_session().map(|s| s.id());
    let ctx = edited(&session)?;
    let want = l_entries(&ctx);
    session.update_chat_ctx(ctx).await.map_err(err)?;
    let report = watch.reconnected().await?;
    watch.barrier(&session, "three").await?;
    let mut expected = want;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    ensure_eq("S (the edit applied exactly)", s_entries(&server), expected)?;
    contexts_match(&session, &server)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
    ensure(
        watch.seen.iter().any(|e| {
            matches!(
                e,
                SessionEvent::Reconnecting {
                    reason: ReconnectReason::ConfigChange
                }
            )
        }),
        || "the reconnect was not for the edit".into(),
    )?;
    // A new server session, and the seed triggered no answer (only the barrier's).
    let seeded = server.latest_session();
    ensure(seeded.as_ref().map(|s| s.id()) != old_session, || {
        "no new server session".into()
    })?;
    ensure_eq(
        "generations of the seeded session",
        seeded.map(|s| s.generations()),
        Some(1),
    )?;
    // The old session never got the edit, and nobody claims it did.
    if let Some(id) = old_session {
        let old = server.session(id).map(|s| from_s(s.context()));
        ensure(
            old.is_some_and(|entries| !entries.iter().any(|e| e.contains("edited"))),
            || "the old session holds the edit".into(),
        )?;
    }
    no_rejections(&server)?;
    watch.reconnects(1)?;
    session.close().await.map_err(err)
}

/// `EditHandling::Report`: the edit is reported and the server keeps what it holds.
async fn s20_report() -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let policy = DefaultPolicy::new(Backoff::default(), EditHandling::Report);
    let (session, mut watch) = open(&server, Box::new(policy), vec![], None).await?;
    watch.barrier(&session, "one").await?;
    watch.barrier(&session, "two").await?;
    let before = s_entries(&server);
    let old_session = server.latest_session().map(|s| s.id());
    let ctx = edited(&session)?;
    let result = session.update_chat_ctx(ctx).await;
    if result.is_ok() {
        watch
            .until("the edit reported", |e| {
                matches!(
                    e,
                    SessionEvent::Divergence {
                        why: DivergenceReason::EditOfDeliveredItem,
                        ..
                    }
                )
            })
            .await?;
    }
    watch.barrier(&session, "three").await?;
    ensure_eq(
        "report: same server session",
        server.latest_session().map(|s| s.id()),
        old_session,
    )?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    ensure_eq(
        "report: S keeps what it holds",
        s_entries(&server),
        expected,
    )?;
    ensure(
        all_frames_mentioning(&server, "one, edited").is_empty(),
        || "report: the edit was sent".into(),
    )?;
    no_rejections(&server)?;
    session.close().await.map_err(err)
}

// S21 ------------------------------------------------------------------------------------

async fn s21(policy: PolicyKind) -> Outcome {
    s21_on_25(policy).await?;
    s21_on_38(policy).await
}

async fn s21_on_25(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![], Some("Be brief.")).await?;
    watch.barrier(&session, "one").await?;
    let session_id = server.latest_session().map(|s| s.id());
    for (n, text) in [(1usize, "Be verbose."), (2, "Be kind.")] {
        session.update_instructions(text).map_err(err)?;
        let report = watch.reconnected().await.map_err(|e| {
            let held = server
                .latest_session()
                .and_then(|s| s.system_instruction().map(str::to_owned));
            format!("the instruction change never reached the server (it holds {held:?}): {e}")
        })?;
        ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
        watch.barrier(&session, &format!("after {n}")).await?;
        let connections = server.connections();
        ensure_eq("connections", connections.len(), n + 1)?;
        let latest = &connections[n];
        ensure(latest.resumed_from.is_some(), || {
            format!("connection {} did not resume", latest.id)
        })?;
        let setup = setup_of(latest);
        ensure_eq(
            "instruction in the new setup",
            setup_instruction(&setup),
            Some(text.to_owned()),
        )?;
        ensure(setup["setup"].get("historyConfig").is_none(), || {
            "historyConfig on a resume".into()
        })?;
        // No history replay, no instruction turn: only the barrier's turn.
        expect_kinds("frames after the resumed setup", latest, &["clientContent"])?;
        ensure_eq(
            "server instruction",
            server
                .latest_session()
                .and_then(|s| s.system_instruction().map(str::to_owned)),
            Some(text.to_owned()),
        )?;
    }
    ensure_eq(
        "same server session",
        server.latest_session().map(|s| s.id()),
        session_id,
    )?;
    ensure(
        !s_entries(&server).iter().any(|e| e.contains("Be ")),
        || "an instruction turn in S".into(),
    )?;
    contexts_match(&session, &server)?;
    ensure_eq(
        "generations",
        server.latest_session().map(|s| s.generations()),
        Some(3),
    )?;
    no_rejections(&server)?;
    watch.reconnects(2)?;
    session.close().await.map_err(err)
}

async fn s21_on_38(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini38, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![], Some("Be brief.")).await?;
    watch.barrier(&session, "one").await?;
    session.update_instructions("Be verbose.").map_err(err)?;
    watch.barrier(&session, "two").await?;
    let connections = server.connections();
    let via_update = connections.len() == 1;
    if via_update {
        let updates: Vec<Value> = connections[0]
            .frames_of("contextUpdate")
            .map(|f| f.json())
            .collect();
        ensure_eq("3.8 contextUpdate frames", updates.len(), 1)?;
        ensure(updates[0].to_string().contains("Be verbose."), || {
            format!("3.8 contextUpdate without the instruction: {}", updates[0])
        })?;
        watch.reconnects(0)?;
    } else {
        // Routed through a reconnect: the setup carries it, nothing is replayed.
        let latest = &connections[connections.len() - 1];
        ensure_eq(
            "3.8 instruction in the new setup",
            setup_instruction(&setup_of(latest)),
            Some("Be verbose.".to_owned()),
        )?;
        expect_kinds(
            "3.8 frames after the resumed setup",
            latest,
            &["clientContent"],
        )?;
        watch.reconnects(1)?;
    }
    ensure_eq(
        "3.8 server instruction",
        server
            .latest_session()
            .and_then(|s| s.system_instruction().map(str::to_owned)),
        Some("Be verbose.".to_owned()),
    )?;
    contexts_match(&session, &server)?;
    no_rejections(&server)?;
    session.close().await.map_err(err)
}

// S22 ------------------------------------------------------------------------------------

fn time_tool() -> FunctionDeclaration {
    FunctionDeclaration::new("get_time", "Current time in a city")
}

async fn s22(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), vec![weather_tool()], None).await?;
    watch.barrier(&session, "one").await?;
    session
        .send_text("what does get_weather say for Paris")
        .map_err(err)?;
    let call = watch
        .until("the tool call", |e| {
            matches!(e, SessionEvent::ToolCall { .. })
        })
        .await?;
    let SessionEvent::ToolCall { call_id, .. } = call else {
        return Err("no tool call".into());
    };
    session
        .update_tools(vec![weather_tool(), time_tool()])
        .map_err(err)?;
    let output = json!({ "sky": "clear" });
    session
        .send_tool_result(call_id.clone(), output.clone())
        .await
        .map_err(err)?;
    // The model continues from the result, and the restart happens: in either order (the
    // restart may wait for the turn to end, or carry the result to the new connection).
    let mark = watch.seen.len();
    let report = watch.reconnected().await.map_err(|e| {
        let held = server.latest_session().map(|s| s.tools().to_vec());
        format!("the tool change never reached the server (it holds {held:?}): {e}")
    })?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let answered = watch.seen[mark..]
        .iter()
        .any(|e| matches!(e, SessionEvent::TurnComplete));
    if !answered {
        watch
            .until("the answer to the result", |e| {
                matches!(e, SessionEvent::TurnComplete)
            })
            .await?;
    }
    let answers = server.latest_session().map(|s| {
        s.answers()
            .iter()
            .filter(|a| a.text.contains("get_weather returned"))
            .count()
    });
    ensure_eq("answers to the result", answers, Some(1))?;
    watch.barrier(&session, "two").await?;
    let connections = server.connections();
    ensure_eq("connections", connections.len(), 2)?;
    let second = &connections[1];
    // The current handle: the newest the first connection received.
    let newest = server.latest_session().and_then(|s| {
        s.handles_issued()
            .iter()
            .filter(|h| h.connection == connections[0].id)
            .map(|h| h.handle.clone())
            .next_back()
    });
    ensure_eq("resumed from", second.resumed_from.clone(), newest)?;
    ensure_eq(
        "tools in the new setup",
        setup_tools(&setup_of(second)),
        vec!["get_weather".to_owned(), "get_time".to_owned()],
    )?;
    let snapshot = server.latest_session().ok_or("no server session")?;
    // "one", the question (answered by the call), the continuation, "two".
    ensure_eq("generations", snapshot.generations(), 4)?;
    ensure_eq(
        "tool calls (never run twice)",
        snapshot.tool_calls().len(),
        1,
    )?;
    let responses = all_frames_mentioning(&server, "clear");
    ensure_eq("frames carrying the result", responses.len(), 1)?;
    for response in snapshot.tool_responses() {
        ensure(response.fate == ResponseFate::Accepted, || {
            format!("tool response not accepted: {response:?}")
        })?;
    }
    let entry = format!("response {call_id} get_weather {output}");
    ensure_eq("the result in S", occurrences_in_s(&server, &entry), 1)?;
    contexts_match(&session, &server)?;
    no_rejections(&server)?;
    watch.reconnects(1)?;
    session.close().await.map_err(err)
}
