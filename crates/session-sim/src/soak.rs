//! The loopback soak: the same schedules against a real `LiveSession` and an in-process
//! `FakeServer` over real WebSocket connections on 127.0.0.1, in real time (step gaps and
//! goAway times scaled down tenfold, a short reconnect backoff), checked by the same checks.
//! It tests what the simulator cannot: the shell, the transport, the wire.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agent_glue::{Error, LiveSession, SessionEvent};
use ctx_model::{Item, Message};
use gemini_fake::{ConnectionEnd, FakeConfig, FakeServer};
use gemini_transport::wire::Modality;
use gemini_transport::{Endpoint, SecretString};
use resume_policy::{Backoff, DefaultPolicy, EditHandling};

use crate::checks::{self, Observed, Violation};
use crate::rng::Rng;
use crate::schedule::{Op, Schedule};
use crate::world::{TOOLS, declarations};

/// Real time is virtual time divided by this.
const SCALE: u64 = 10;

/// The longest a schedule may take to settle after its last step.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// What the application saw, shared with the task that reads events.
#[derive(Default)]
struct Seen {
    events: Vec<SessionEvent>,
    calls: Vec<String>,
    answered: usize,
    errors: Vec<String>,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `schedule` over loopback; returns the violations found.
pub async fn soak_one(schedule: &Schedule) -> Vec<Violation> {
    match run(schedule).await {
        Ok(found) => found,
        Err(e) => vec![Violation::new("soak", e)],
    }
}

async fn run(schedule: &Schedule) -> Result<Vec<Violation>, String> {
    let p = schedule.profile;
    let config = FakeConfig::new()
        .with_family(p.family)
        .with_vertex(p.vertex)
        .with_handle_lag(p.handle_lag);
    let server = FakeServer::start(config).await.map_err(|e| e.to_string())?;
    let endpoint = if p.vertex {
        Endpoint::vertex("us-central1", SecretString::from("soak")).map_err(|e| e.to_string())?
    } else {
        Endpoint::api_key(SecretString::from("soak"))
    }
    .with_base_url(&server.url())
    .map_err(|e| e.to_string())?;
    let mut backoff = Backoff::default();
    backoff.base = Duration::from_millis(20);
    backoff.max = Duration::from_millis(300);
    let mut tool_set = 0;
    let mut tools: Vec<String> = declarations(0).iter().map(|t| t.name.clone()).collect();
    let (session, mut events) = LiveSession::builder(endpoint, server.config().setup_model())
        .modality(if p.audio {
            Modality::Audio
        } else {
            Modality::Text
        })
        .transcription(p.audio)
        .transparent_resumption(p.transparent)
        .tools(declarations(0))
        .go_away_margin(Duration::from_millis(30))
        .jitter_seed(schedule.seed)
        .policy(Box::new(DefaultPolicy::new(backoff, EditHandling::Reseed)))
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let session = Arc::new(session);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let reader = {
        let (session, seen, seed) = (Arc::clone(&session), Arc::clone(&seen), schedule.seed);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match &event {
                    SessionEvent::Audio { .. }
                    | SessionEvent::Text(_)
                    | SessionEvent::OutputTranscript { .. }
                    | SessionEvent::InputTranscript { .. }
                    | SessionEvent::Usage(_)
                    | SessionEvent::GenerationComplete => continue,
                    SessionEvent::ToolCall { call_id, .. } => {
                        let n = {
                            let mut s = lock(&seen);
                            if s.calls.contains(call_id) {
                                s.errors.push(format!("ToolCall {call_id} delivered twice"));
                            }
                            s.calls.push(call_id.clone());
                            s.calls.len() as u64
                        };
                        let mut rng = Rng::stream(seed, 1_000 + n);
                        let delay = if rng.chance(20) {
                            rng.range(300, 3_000)
                        } else {
                            rng.range(0, 300)
                        };
                        let (session, seen, call) =
                            (Arc::clone(&session), Arc::clone(&seen), call_id.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(delay / SCALE)).await;
                            let output = serde_json::json!({ "result": format!("r-{call}") });
                            let result = session.send_tool_result(call.clone(), output);
                            let mut s = lock(&seen);
                            s.answered += 1;
                            if let Err(e) = result {
                                if !matches!(e, Error::Closed) {
                                    s.errors.push(format!("tool result for {call}: {e}"));
                                }
                            }
                        });
                    }
                    _ => {}
                }
                lock(&seen).events.push(event);
            }
        })
    };
    let mut instructions = None;
    let mut snapshots = vec![session.snapshot()];
    for (k, step) in schedule.steps.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(step.gap / SCALE)).await;
        let k = k as u64 + 1;
        let faults = server.faults();
        let result: Result<(), Error> = match step.op {
            Op::Text => session.send_text(format!("t{k} hello")).map(drop),
            Op::TextTool(i) => {
                let tool = TOOLS[usize::from(i) % TOOLS.len()];
                session.send_text(format!("t{k} please {tool}")).map(drop)
            }
            Op::Append(n) => {
                let mut items: Vec<Item> =
                    vec![Message::user(format!("app-{k}-u"), format!("t{k} note")).into()];
                if n > 1 {
                    items.push(Message::model(format!("app-{k}-m"), format!("t{k} noted")).into());
                }
                session.append_chat_items(items).map(drop)
            }
            Op::StaleUpdate(age) => {
                let back = usize::from(age).clamp(1, snapshots.len());
                let (version, mut context) = snapshots[snapshots.len() - back].clone();
                let note: Item =
                    Message::user(format!("app-{k}-u"), format!("t{k} update note")).into();
                if context.push(note.clone()).is_ok() {
                    match session.update_chat_ctx(context, version) {
                        Err(Error::Conflict { .. }) => {
                            session.append_chat_items(vec![note]).map(drop)
                        }
                        other => other.map(drop),
                    }
                } else {
                    Ok(())
                }
            }
            Op::Edit => {
                let (version, mut context) = session.snapshot();
                let target = context
                    .iter()
                    .filter_map(|i| i.as_message())
                    .find(|m| m.role == ctx_model::Role::User && m.text().starts_with('t'))
                    .map(|m| (m.id.clone(), m.text()));
                match target {
                    Some((id, text)) => {
                        let _ = context.replace(Message::user(id, format!("{text} (edited {k})")));
                        session.update_chat_ctx(context, version).map(drop)
                    }
                    None => Ok(()),
                }
            }
            Op::GenerateReply(with) => session
                .generate_reply(with.then(|| format!("t{k} reply request")))
                .map(drop),
            Op::Instructions => {
                let text = format!("instructions v{k}");
                instructions = Some(text.clone());
                session.update_instructions(text).map(drop)
            }
            Op::Tools => {
                tool_set += 1;
                let set = declarations(tool_set);
                tools = set.iter().map(|t| t.name.clone()).collect();
                session.update_tools(set).map(drop)
            }
            Op::Interrupt => session.interrupt(),
            Op::AnswerCalls => Ok(()),
            Op::Speech(tens) => {
                let pushed = session.push_audio(crate::world::speech(u64::from(tens) * 10));
                // The application does nothing while the user speaks (as in the simulator).
                let ms = u64::from(tens) * 10 + 700;
                tokio::time::sleep(Duration::from_millis(ms / SCALE)).await;
                pushed
            }
            Op::AudioStreamEnd => session.end_audio_stream(),
            Op::Drop => {
                faults.drop_connections();
                Ok(())
            }
            Op::Close(code) => {
                let reason = match code {
                    1011 => "Internal error encountered.",
                    1001 => "going away",
                    _ => "",
                };
                faults.close_connections(code, reason);
                Ok(())
            }
            Op::GoAway(secs) => {
                faults.go_away(Duration::from_millis(u64::from(secs) * 1_000 / SCALE));
                Ok(())
            }
            Op::RefuseResume => {
                faults.refuse_next_resume(1007, "Request contains an invalid argument.");
                Ok(())
            }
            Op::ExpireHandles => {
                faults.expire_all_handles();
                Ok(())
            }
            Op::WithholdHandles => {
                faults.withhold_handles();
                Ok(())
            }
            Op::ReleaseHandles => {
                faults.release_handles();
                Ok(())
            }
            Op::RefuseDials(n) => {
                faults.refuse_upgrades(u32::from(n), 503);
                Ok(())
            }
            Op::Stall(tens) => {
                faults.stall();
                let faults = server.faults();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(u64::from(tens) * 10 / SCALE)).await;
                    faults.unstall();
                });
                Ok(())
            }
        };
        if let Err(e) = result {
            if !matches!(e, Error::Closed) {
                lock(&seen).errors.push(format!("{:?}: {e}", step.op));
            }
        }
        snapshots.push(session.snapshot());
    }
    // Settle: faults stop, handles flow, every call answered, the session settled and quiet.
    server.faults().release_handles();
    server.faults().unstall();
    let settled = tokio::time::timeout(SETTLE_LIMIT, async {
        loop {
            let (events, calls, answered) = {
                let s = lock(&seen);
                (s.events.len(), s.calls.len(), s.answered)
            };
            let closed = lock(&seen)
                .events
                .iter()
                .any(|e| matches!(e, SessionEvent::Closed { .. }));
            if closed {
                return;
            }
            if answered == calls && session.settled().await.is_ok() {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let s = lock(&seen);
                if s.events.len() == events && s.calls.len() == calls && s.answered == answered {
                    return;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
    let mut found = Vec::new();
    if settled.is_err() {
        let s = lock(&seen);
        let tail: Vec<String> = s
            .events
            .iter()
            .rev()
            .take(12)
            .rev()
            .map(|e| format!("{e:?}"))
            .collect();
        found.push(Violation::new(
            "liveness",
            format!(
                "not settled {SETTLE_LIMIT:?} after the last step; calls {} answered {}; last events: {}",
                s.calls.len(),
                s.answered,
                tail.join(" / ")
            ),
        ));
    }
    let context = session.chat_ctx();
    let (events, calls, errors) = {
        let s = lock(&seen);
        (s.events.clone(), s.calls.clone(), s.errors.clone())
    };
    let gave_up = events
        .iter()
        .any(|e| matches!(e, SessionEvent::Closed { error: Some(_) }));
    let records = server.connections();
    // The client's connection: the open one that joined a session, else the newest that did.
    let current = records
        .iter()
        .rev()
        .find(|r| r.is_open() && r.session.is_some())
        .or_else(|| records.iter().rev().find(|r| r.session.is_some()))
        .and_then(|r| r.session)
        .and_then(|id| server.session(id));
    let rejections = records
        .iter()
        .filter(|r| r.session.is_some())
        .filter_map(|r| match &r.end {
            Some((ConnectionEnd::ServerClose { code: 1007, reason }, _)) => {
                Some(format!("connection {} closed with 1007: {reason}", r.id))
            }
            _ => None,
        })
        .collect();
    let observed = Observed {
        context,
        events,
        calls,
        command_errors: errors,
        rejections,
        sessions: server
            .sessions()
            .into_iter()
            .filter_map(|id| server.session(id))
            .collect(),
        current,
        instructions,
        tools,
        gave_up,
    };
    let mut checked = checks::check(&observed);
    if gave_up && !checked.is_empty() {
        // After giving up, which server session the client's last set-up connection joined is
        // not visible from here (a later dial may have joined one without the client seeing
        // its setup complete): the check passes if it holds for one of them.
        for session in observed.sessions.iter().rev() {
            let other = Observed {
                current: Some(session.clone()),
                ..observed.clone()
            };
            let again = checks::check(&other);
            if again.is_empty() {
                checked = again;
                break;
            }
        }
    }
    found.extend(checked);
    let _ = session.close().await;
    reader.abort();
    server.shutdown().await;
    Ok(found)
}
