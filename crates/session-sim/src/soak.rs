//! The loopback soak: the same schedules against a real `LiveSession` and an in-process
//! `FakeServer` over real WebSocket connections on 127.0.0.1, in real time (step gaps and
//! goAway times scaled down tenfold, a short reconnect backoff), checked by the same checks.
//! It tests what the simulator cannot: the shell, the transport, the wire.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agent_glue::conduit::Command;
use agent_glue::{Error, LiveSession, SessionEvent};
use gemini_fake::{ConnectionEnd, FakeConfig, FakeServer};
use gemini_transport::ConnectConfig;
use gemini_transport::wire::Modality;
use gemini_transport::{Endpoint, SecretString};
use resume_policy::{Backoff, DefaultPolicy, EditHandling, ReplayAlways, ResumePolicy, SkipReplay};

use crate::app::{
    Action, AppState, Mic, TRANSCRIPT_WAIT_MS, answer_delay, declarations, is_media, silence,
    speech, voice,
};
use crate::checks::{self, Observed, Violation};
use crate::schedule::{Op, Policy, Schedule};

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
    /// The application's utterance (see [`Mic`]).
    mic: Mic,
    /// The application waits for a transcript: tool answers wait too.
    waiting: bool,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The profile's policy with a short backoff (real time).
fn policy(policy: Policy, backoff: Backoff) -> Box<dyn ResumePolicy> {
    match policy {
        Policy::Default => Box::new(DefaultPolicy::new(backoff, EditHandling::Reseed)),
        Policy::ReportEdits => Box::new(DefaultPolicy::new(backoff, EditHandling::Report)),
        Policy::ReplayAlways => Box::new(ReplayAlways { backoff }),
        Policy::SkipReplay => Box::new(SkipReplay { backoff }),
    }
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
        .with_handle_lag(p.handle_lag)
        // As in the simulator (`world.rs`): no lifetime, no hard close, TEXT on 3.8 by the
        // fake's test switch.
        .with_lifetime(None)
        .with_hard_close(None)
        .with_text_on_3_8(!p.audio);
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
    let model = server.config().setup_model();
    let builder = LiveSession::builder(endpoint, model.clone())
        .modality(if p.audio {
            Modality::Audio
        } else {
            Modality::Text
        })
        .transcription(p.audio)
        .transparent_resumption(p.transparent)
        .automatic_activity_detection(!p.manual_activity)
        .tools(declarations(0, p.behavior()))
        .go_away_margin(Duration::from_millis(30))
        // The transport's 10 s, scaled.
        .connect_config(ConnectConfig::default().with_setup_timeout(Duration::from_secs(1)))
        .jitter_seed(schedule.seed)
        .policy(policy(p.policy, backoff));
    let builder = crate::world::profile_settings(builder, &p, &model, SCALE)?;
    let (session, mut events) = builder
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
                    SessionEvent::InputTranscript { finished: true, .. } => {
                        lock(&seen).mic.transcript();
                    }
                    SessionEvent::Reconnecting { .. } | SessionEvent::Closed { .. } => {
                        lock(&seen).mic.connection_ended();
                    }
                    _ => {}
                }
                if is_media(&event) {
                    continue;
                }
                if let SessionEvent::ToolCall { call_id, .. } = &event {
                    let n = {
                        let mut s = lock(&seen);
                        if s.calls.contains(call_id) {
                            s.errors.push(format!("ToolCall {call_id} delivered twice"));
                        }
                        s.calls.push(call_id.clone());
                        s.calls.len() as u64
                    };
                    let delay = answer_delay(seed, n);
                    let (session, seen, call) =
                        (Arc::clone(&session), Arc::clone(&seen), call_id.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(delay / SCALE)).await;
                        // What the application sends waits with its steps.
                        while lock(&seen).waiting {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
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
                lock(&seen).events.push(event);
            }
        })
    };
    let (version, context) = session.snapshot();
    let mut app = AppState::new(version, context, p.behavior());
    let manual = p.manual_activity;
    // Connections a close fault ended: their 1007/1008 is the fault's, not a refused payload.
    let mut fault_closed = std::collections::HashSet::new();
    for step in &schedule.steps {
        tokio::time::sleep(Duration::from_millis(step.gap / SCALE)).await;
        let (version, context) = session.snapshot();
        let before = matches!(step.op, Op::Edit).then(|| context.clone());
        let faults = server.faults();
        if matches!(step.op, Op::Close(_) | Op::AuthClose | Op::QuotaClose) {
            let open = server.connections().into_iter().filter(|r| r.is_open());
            fault_closed.extend(open.map(|r| r.id));
        }
        let mut wait = false;
        let result = match app.action(step.op, version, &context, &faults, SCALE) {
            Action::Command(command) => {
                {
                    let mut s = lock(&seen);
                    match (&command, manual) {
                        (Command::AudioStreamEnd, false) | (Command::ActivityEnd, true) => {
                            s.mic.end();
                        }
                        (Command::ActivityStart, true) => s.mic.voice(1),
                        _ => {}
                    }
                }
                let edit = matches!(command, Command::UpdateContext { .. });
                match session.apply(command) {
                    // Over sockets model output can land between the application's read of the
                    // context and its edit: the session refuses the stale edit, as it must,
                    // and an application re-reads (here: the edit is dropped). The simulator's
                    // world, on one clock, never races like this.
                    Err(Error::Conflict { .. }) if edit => Ok(()),
                    other => other.map(drop),
                }
            }
            Action::Update { command, fallback } => match session.apply(command) {
                Err(Error::Conflict { .. }) => session.apply(fallback).map(drop),
                other => other.map(drop),
            },
            Action::Speech(ms) => {
                let pushed = session.push_audio(speech(ms));
                if !manual {
                    let mut s = lock(&seen);
                    s.mic.voice(ms);
                    wait = s.mic.silence(700);
                }
                pushed
            }
            Action::Voice(ms) => {
                let pushed = session.push_audio(voice(ms));
                if !manual {
                    lock(&seen).mic.voice(ms);
                }
                pushed
            }
            Action::Silence(ms) => {
                let pushed = session.push_audio(silence(ms));
                wait = !manual && lock(&seen).mic.silence(ms);
                pushed
            }
            // The application answers every call on its own, after a delay. A peer that stops
            // reading and slow pongs are faults of the simulated network only (loopback has
            // `tests/stalled_peer.rs`).
            Action::AnswerCalls
            | Action::Done
            | Action::PeerStopsReading(_)
            | Action::SlowPongs(_) => Ok(()),
            Action::Stall(ms) => {
                faults.stall();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
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
        if wait {
            // As in the simulator (see `Mic`): the application waits for the transcript of
            // an utterance the activity detection may have ended, at most a (scaled) while.
            lock(&seen).waiting = true;
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(TRANSCRIPT_WAIT_MS / SCALE);
            while lock(&seen).mic.speaking() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lock(&seen).waiting = false;
        }
        let (version, context) = session.snapshot();
        if let Some(before) = before {
            app.edited(&before, &context);
        }
        app.snapshot(version, context);
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
                "not settled {SETTLE_LIMIT:?} after the last step; calls {} answered {}; state {}; last events: {}",
                s.calls.len(),
                s.answered,
                session.describe(),
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
        .filter(|r| r.session.is_some() && !fault_closed.contains(&r.id))
        .filter_map(|r| match &r.end {
            Some((ConnectionEnd::ServerClose { code: 1007, reason }, _)) => {
                Some(format!("connection {} closed with 1007: {reason}", r.id))
            }
            _ => None,
        })
        .collect();
    let observed = Observed {
        context,
        prior_versions: app.prior_versions.clone(),
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
        instructions: app.instructions.clone(),
        tools: app.tools.clone(),
        gave_up,
        default_policy: p.policy.is_default(),
        // Over sockets, what a broken connection had on the wire is not known.
        audio: None,
        owners: Vec::new(),
        call_lineages: Vec::new(),
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
