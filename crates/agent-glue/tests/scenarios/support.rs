//! What the smoke scenarios share: the session they open against the fake, the events the
//! application saw (waits that fail the scenario instead of panicking), and the checks of the
//! invariant (reconnects paired, no tool run twice, no answer generated twice, `L == S`, never
//! two sockets).

use std::collections::BTreeSet;
use std::time::Duration;

use agent_glue::{
    LiveSession, LiveSessionBuilder, ReconnectReason, Reconnected, SessionEvent, SessionEvents,
};
use gemini_fake::{ConnectionRecord, FakeServer, ResponseFate, SessionSnapshot};
use gemini_transport::wire::Modality;
use resume_policy::ResumePolicy;
use serde_json::Value;

use crate::common::*;

/// The outcome of a scenario: `Err` says which part of the invariant broke.
pub type Outcome = Result<(), String>;

/// `Err(msg)` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(msg()) }
}

/// `Err` unless `left == right`, showing both.
pub fn ensure_eq<T: PartialEq + std::fmt::Debug>(what: &str, left: T, right: T) -> Outcome {
    if left == right {
        Ok(())
    } else {
        Err(format!("{what}: {left:?} != {right:?}"))
    }
}

/// How long one awaited event may take before the scenario reports the wait as its failure.
pub const STEP: Duration = Duration::from_secs(3);

/// Milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Connects a TEXT-modality session to `server` with `policy` and `tweak` applied to the
/// builder; the events it emits are recorded by the returned [`Seen`].
pub async fn open(
    server: &FakeServer,
    policy: Box<dyn ResumePolicy>,
    tweak: impl FnOnce(LiveSessionBuilder) -> LiveSessionBuilder,
) -> Result<(LiveSession, Seen), String> {
    // A fixed jitter seed: the backoff waits are the same on every run, so the scenarios'
    // wall-clock waits fit them.
    let builder = LiveSession::builder(endpoint(server), server.config().setup_model())
        .modality(Modality::Text)
        .transcription(false)
        .jitter_seed(0x9E37_79B9_7F4A_7C15)
        .policy(policy);
    let (session, rx) = tweak(builder)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok((session, Seen::new(rx)))
}

/// Closes `session`.
pub async fn close(session: LiveSession) -> Outcome {
    session.close().await.map_err(|e| e.to_string())
}

/// Every event the application saw, in order, and the stream they come from.
pub struct Seen {
    rx: SessionEvents,
    pub events: Vec<SessionEvent>,
}

impl Seen {
    pub fn new(rx: SessionEvents) -> Self {
        Self {
            rx,
            events: Vec::new(),
        }
    }

    /// Reads events until one satisfies `pred` (recorded like the others) and returns it;
    /// `Err` after [`STEP`], when the stream ends, or at once when the server closes the
    /// connection with 1007 or 1008 (no scenario sends a payload the server may refuse, and
    /// waiting on would only hide which message broke the model's rules).
    pub async fn until(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&SessionEvent) -> bool,
    ) -> Result<SessionEvent, String> {
        let from = self.events.len();
        let found = tokio::time::timeout(STEP, async {
            while let Some(event) = self.rx.recv().await {
                let done = pred(&event);
                self.events.push(event.clone());
                if done {
                    return Ok(event);
                }
                if let SessionEvent::Reconnecting {
                    reason:
                        ReconnectReason::ConnectionLost {
                            code: code @ (1007 | 1008),
                            reason,
                        },
                } = &event
                {
                    return Err(format!(
                        "the server closed the connection with {code}: {reason}"
                    ));
                }
            }
            Err("the session ended".to_owned())
        })
        .await;
        let why = match found {
            Ok(Ok(event)) => return Ok(event),
            Ok(Err(why)) => why,
            Err(_) => "timed out".to_owned(),
        };
        Err(format!(
            "waiting for {what}: {why}; events meanwhile: {:?}",
            summary(&self.events[from..])
        ))
    }

    /// Waits for the next `TurnComplete`.
    pub async fn turn_complete(&mut self, what: &str) -> Outcome {
        self.until(what, |e| matches!(e, SessionEvent::TurnComplete))
            .await
            .map(|_| ())
    }

    /// Waits for the next `ToolCall`; returns its call id.
    pub async fn tool_call(&mut self) -> Result<String, String> {
        match self
            .until("tool call", |e| matches!(e, SessionEvent::ToolCall { .. }))
            .await?
        {
            SessionEvent::ToolCall { call_id, .. } => Ok(call_id),
            _ => Err("not a tool call".into()),
        }
    }

    /// Waits for the next `Reconnected` and returns its report; `Err` when the session
    /// ends instead.
    pub async fn reconnected(&mut self) -> Result<Reconnected, String> {
        match self
            .until("Reconnected", |e| {
                matches!(
                    e,
                    SessionEvent::Reconnected(_) | SessionEvent::Closed { .. }
                )
            })
            .await?
        {
            SessionEvent::Reconnected(report) => Ok(report),
            other => Err(format!(
                "the session ended instead of reconnecting: {other:?}"
            )),
        }
    }

    /// A typed turn and its answer, a barrier: the fake processes a connection's frames in
    /// order, so every frame sent before it has been processed once the answer is back. Waits
    /// for the `TurnComplete` whose turn answers `text` (an earlier one still queued does not
    /// count). Adds `user: {text}` and `model: echo: {text}` to both contexts.
    pub async fn barrier(&mut self, session: &LiveSession, text: &str) -> Outcome {
        session.send_text(text).map_err(|e| e.to_string())?;
        let answer = format!("model: echo: {text}");
        self.until(&format!("the answer to {text:?}"), |e| {
            matches!(e, SessionEvent::TurnComplete)
                && l_entries(&session.chat_ctx()).last() == Some(&answer)
        })
        .await
        .map(|_| ())
    }

    /// Records whatever is already queued.
    pub fn drain(&mut self) {
        while let Some(event) = self.rx.try_recv() {
            self.events.push(event);
        }
    }

    /// The reasons of every `Reconnecting`, in order.
    pub fn reasons(&self) -> Vec<ReconnectReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Reconnecting { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    /// S32: reconnect events come in pairs, `Reconnecting` then `Reconnected`, never nested,
    /// never unfinished; returns how many reconnects there were.
    pub fn paired_reconnects(&self) -> Result<usize, String> {
        let mut open = false;
        let mut pairs = 0;
        for event in &self.events {
            match event {
                SessionEvent::Reconnecting { .. } if open => {
                    return Err("two Reconnecting without a Reconnected between".into());
                }
                SessionEvent::Reconnecting { .. } => open = true,
                SessionEvent::Reconnected(_) if !open => {
                    return Err("a Reconnected without its Reconnecting".into());
                }
                SessionEvent::Reconnected(_) => {
                    open = false;
                    pairs += 1;
                }
                SessionEvent::Closed { error: Some(why) } => {
                    return Err(format!("the session ended: {why}"));
                }
                _ => {}
            }
        }
        ensure(!open, || {
            "a Reconnecting never followed by Reconnected".into()
        })?;
        Ok(pairs)
    }

    /// S32 with a known number of reconnects, over every event so far (queued ones included).
    pub fn reconnects_exactly(&mut self, expected: usize) -> Outcome {
        self.drain();
        ensure_eq(
            "reconnects (paired events)",
            self.paired_reconnects()?,
            expected,
        )
    }
}

/// A short description of events (text chunks and usage left out).
pub fn summary(events: &[SessionEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !matches!(e, SessionEvent::Text(_) | SessionEvent::Usage(_)))
        .map(|e| format!("{e:?}"))
        .collect()
}

/// Owned copies of `entries`.
pub fn strings(entries: &[impl AsRef<str>]) -> Vec<String> {
    entries.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// No tool ran twice: the application was asked once per call id, each server session
/// accepted at most one response per id, and got no duplicate.
pub fn tools_ran_once(server: &FakeServer, seen: &Seen) -> Outcome {
    let mut asked: Vec<&str> = seen
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::ToolCall { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect();
    let total = asked.len();
    asked.sort_unstable();
    asked.dedup();
    ensure_eq(
        "tool calls asked of the application (distinct, total)",
        asked.len(),
        total,
    )?;
    for id in server.sessions() {
        let Some(session) = server.session(id) else {
            continue;
        };
        let mut accepted: Vec<&str> = session
            .tool_responses()
            .iter()
            .filter(|r| r.fate == ResponseFate::Accepted)
            .map(|r| r.id.as_str())
            .collect();
        let n = accepted.len();
        accepted.sort_unstable();
        accepted.dedup();
        ensure_eq(
            "accepted tool responses (distinct, total)",
            accepted.len(),
            n,
        )?;
        let duplicates = session
            .tool_responses()
            .iter()
            .filter(|r| r.fate == ResponseFate::Duplicate)
            .count();
        ensure_eq("duplicate tool responses", duplicates, 0)?;
    }
    Ok(())
}

/// No completed answer of the latest session was generated twice.
pub fn answers_once(server: &FakeServer) -> Outcome {
    let Some(session) = server.latest_session() else {
        return Err("no server session".into());
    };
    let mut done: Vec<&str> = session
        .answers()
        .iter()
        .filter(|a| !a.interrupted)
        .map(|a| a.text.as_str())
        .collect();
    let n = done.len();
    done.sort_unstable();
    done.dedup();
    ensure(done.len() == n, || {
        format!("an answer was generated twice: {:?}", session.answers())
    })
}

/// Never two sockets: every connection ended before the next one opened, and the fake saw
/// no overlap in the latest session.
pub fn one_socket_at_a_time(server: &FakeServer) -> Outcome {
    let Some(session) = server.latest_session() else {
        return Err("no server session".into());
    };
    let all = server.connections();
    ensure(session.overlaps() == 0, || {
        let t0 = all.first().map(|c| c.opened_at);
        let at = |t: tokio::time::Instant| t0.map_or(0, |t0| (t - t0).as_millis());
        let lines: Vec<String> = all
            .iter()
            .map(|c| {
                let end = c
                    .end
                    .as_ref()
                    .map(|(e, t)| format!("{e:?} at {} ms", at(*t)));
                format!("#{} opened at {} ms, ended {end:?}", c.id, at(c.opened_at))
            })
            .collect();
        format!(
            "sockets open at once: {} overlaps; {lines:?}",
            session.overlaps()
        )
    })?;
    for pair in all.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        match &old.end {
            Some((_, ended)) if *ended <= new.opened_at => {}
            _ => {
                return Err(format!(
                    "connection {} was still open when {} opened",
                    old.id, new.id
                ));
            }
        }
    }
    Ok(())
}

/// The checks every drop and rotation scenario ends with: no answer generated twice, no tool
/// run twice, never two sockets.
pub fn nothing_twice(server: &FakeServer, seen: &Seen) -> Outcome {
    answers_once(server)?;
    tools_ran_once(server, seen)?;
    one_socket_at_a_time(server)
}

/// How a drop or rotation scenario ends once its last turn is answered: `S` is `expected` and
/// `L == S`, the latest server session generated `generations_expected` answers, nothing ran
/// twice, never two sockets, and `reconnects` paired reconnects; then the session closes.
pub async fn ends_with(
    server: &FakeServer,
    session: LiveSession,
    seen: &mut Seen,
    expected: &[impl AsRef<str>],
    generations_expected: u32,
    reconnects: usize,
) -> Outcome {
    contexts_are(server, &session, expected)?;
    ensure_eq("generations", generations(server), generations_expected)?;
    nothing_twice(server, seen)?;
    seen.reconnects_exactly(reconnects)?;
    close(session).await
}

/// `L == S`, and no entry twice in `S`.
pub fn l_equals_s(server: &FakeServer, session: &LiveSession) -> Outcome {
    let s = s_entries(server);
    ensure_eq("L == S", l_entries(&session.chat_ctx()), s.clone())?;
    let mut seen = BTreeSet::new();
    let twice: Vec<&String> = s.iter().filter(|e| !seen.insert(*e)).collect();
    ensure(twice.is_empty(), || {
        format!("entries twice in S: {twice:?}")
    })
}

/// `S` is `expected`, and `L` equals `S` (see [`l_equals_s`]).
pub fn contexts_are(
    server: &FakeServer,
    session: &LiveSession,
    expected: &[impl AsRef<str>],
) -> Outcome {
    ensure_eq("S", s_entries(server), strings(expected))?;
    l_equals_s(server, session)
}

/// Generations of the latest server session.
pub fn generations(server: &FakeServer) -> u32 {
    server.latest_session().map_or(0, |s| s.generations())
}

/// Every server session (a fresh session is a new one), oldest first.
pub fn all_sessions(server: &FakeServer) -> Vec<SessionSnapshot> {
    server.inspect(|v| {
        v.session_ids()
            .into_iter()
            .filter_map(|id| v.session(id).cloned())
            .collect()
    })
}

/// The `toolResponse`s of every server session that did not answer a pending call (orphans,
/// duplicates, answers to cancelled calls), as `(id, fate)`.
pub fn rejected_responses(server: &FakeServer) -> Vec<(String, ResponseFate)> {
    all_sessions(server)
        .iter()
        .flat_map(|s| s.tool_responses().to_vec())
        .filter(|r| r.fate != ResponseFate::Accepted)
        .map(|r| (r.id, r.fate))
        .collect()
}

/// The function calls the model issued, over every server session.
pub fn calls_issued(server: &FakeServer) -> usize {
    all_sessions(server)
        .iter()
        .map(|s| s.tool_calls().len())
        .sum()
}

/// The kinds of the frames `conn` received after its setup.
pub fn kinds_after_setup(conn: &ConnectionRecord) -> Vec<String> {
    conn.frames
        .iter()
        .skip(1)
        .map(|f| f.kind.to_owned())
        .collect()
}

/// `Err` unless the frames after the setup of `conn` are exactly `kinds` (showing them all).
pub fn expect_kinds(what: &str, conn: &ConnectionRecord, kinds: &[&str]) -> Outcome {
    let got = kinds_after_setup(conn);
    ensure(got == kinds, || {
        let raw: Vec<&str> = conn.frames.iter().map(|f| f.raw.as_str()).collect();
        format!("{what}: {got:?} != {kinds:?}; frames {raw:?}")
    })
}

/// The setup frame of `conn`, as JSON.
pub fn setup_of(conn: &ConnectionRecord) -> Value {
    conn.frames.first().map(|f| f.json()).unwrap_or(Value::Null)
}

/// The system instruction text carried by a setup frame.
pub fn setup_instruction(setup: &Value) -> Option<String> {
    let parts = setup["setup"]["systemInstruction"]["parts"].as_array()?;
    Some(
        parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
    )
}
