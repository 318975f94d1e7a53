//! What the context-change scenarios observe: the events the application saw, and the
//! frames and context the fake server received.

use std::time::Duration;

use agent_glue::{LiveSession, SessionEvent, SessionEvents};
use ctx_model::{ChatContext, Item};
use gemini_fake::{ConnectionEnd, ConnectionRecord, FakeServer};
use gemini_transport::wire::{FunctionDeclaration, Modality};
use resume_policy::{DivergenceReason, ResumePolicy};
use serde_json::Value;

use crate::common::*;
use crate::runner::{Outcome, ensure, ensure_eq};

/// How long a body waits for one event before it reports the wait as the failure (short, so a
/// legacy policy stuck in a reconnect loop fails fast instead of stalling the table).
pub(super) const EVENT_WAIT: Duration = Duration::from_secs(3);

/// The events the application saw, kept so that reconnects can be counted at the end.
pub(super) struct Watch {
    events: SessionEvents,
    pub(super) seen: Vec<SessionEvent>,
}

impl Watch {
    pub(super) fn new(events: SessionEvents) -> Self {
        Self {
            events,
            seen: Vec::new(),
        }
    }

    /// Reads events until one satisfies `pred`; `Err` on timeout or end of stream.
    pub(super) async fn until(
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
    pub(super) async fn barrier(&mut self, session: &LiveSession, text: &str) -> Outcome {
        session.send_text(text).map_err(|e| e.to_string())?;
        self.until(&format!("the answer to {text:?}"), |e| {
            matches!(e, SessionEvent::TurnComplete)
        })
        .await
        .map(|_| ())
    }

    /// The next `Reconnected` event's report.
    pub(super) async fn reconnected(&mut self) -> Result<agent_glue::Reconnected, String> {
        match self
            .until("reconnected", |e| matches!(e, SessionEvent::Reconnected(_)))
            .await?
        {
            SessionEvent::Reconnected(report) => Ok(report),
            _ => Err("no Reconnected event".into()),
        }
    }

    /// Reads what is already queued.
    pub(super) fn drain(&mut self) {
        while let Some(event) = self.events.try_recv() {
            self.seen.push(event);
        }
    }

    /// Exactly `n` `Reconnecting` and `n` `Reconnected` events so far.
    pub(super) fn reconnects(&mut self, n: usize) -> Outcome {
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
    pub(super) fn divergences(&mut self) -> Vec<DivergenceReason> {
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
pub(super) async fn open(
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
pub(super) fn appended(session: &LiveSession, items: Vec<Item>) -> Result<ChatContext, String> {
    let mut ctx = session.chat_ctx();
    ctx.extend(items).map_err(|e| e.to_string())?;
    Ok(ctx)
}

/// The frames of `conn` (after its setup) whose JSON mentions `needle`.
pub(super) fn frames_mentioning(conn: &ConnectionRecord, needle: &str) -> Vec<Value> {
    conn.frames
        .iter()
        .skip(1)
        .filter(|f| f.raw.contains(needle))
        .map(|f| f.json())
        .collect()
}

/// Every frame of every connection that mentions `needle`.
pub(super) fn all_frames_mentioning(server: &FakeServer, needle: &str) -> Vec<Value> {
    server
        .connections()
        .iter()
        .flat_map(|c| frames_mentioning(c, needle))
        .collect()
}

/// The kinds of the frames after the setup of `conn`.
pub(super) fn kinds_after_setup(conn: &ConnectionRecord) -> Vec<String> {
    conn.frames
        .iter()
        .skip(1)
        .map(|f| f.kind.to_string())
        .collect()
}

/// `Err` unless the frames after the setup of `conn` are exactly `kinds` (showing them all).
pub(super) fn expect_kinds(what: &str, conn: &ConnectionRecord, kinds: &[&str]) -> Outcome {
    let got = kinds_after_setup(conn);
    ensure(got == kinds, || {
        let raw: Vec<&str> = conn.frames.iter().map(|f| f.raw.as_str()).collect();
        format!("{what}: {got:?} != {kinds:?}; frames {raw:?}")
    })
}

/// The setup frame of `conn`, as JSON.
pub(super) fn setup_of(conn: &ConnectionRecord) -> Value {
    conn.frames.first().map(|f| f.json()).unwrap_or(Value::Null)
}

/// The system instruction text carried by a setup frame.
pub(super) fn setup_instruction(setup: &Value) -> Option<String> {
    let parts = setup["setup"]["systemInstruction"]["parts"].as_array()?;
    Some(
        parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
    )
}

/// The function names declared by a setup frame.
pub(super) fn setup_tools(setup: &Value) -> Vec<String> {
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
pub(super) fn no_rejections(server: &FakeServer) -> Outcome {
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
pub(super) fn contexts_match(session: &LiveSession, server: &FakeServer) -> Outcome {
    ensure_eq("L == S", l_entries(&session.chat_ctx()), s_entries(server))
}

/// How often `entry` occurs in the server's context.
pub(super) fn occurrences_in_s(server: &FakeServer, entry: &str) -> usize {
    s_entries(server).iter().filter(|e| *e == entry).count()
}

pub(super) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}
