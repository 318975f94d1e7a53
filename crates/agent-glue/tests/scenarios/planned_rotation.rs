//! Planned rotation: S01–S03, and the checks every scenario of this group and of
//! `unplanned_drops` shares (events seen, reconnect pairing, tools run once, `L == S`).

use std::time::Duration;

use agent_glue::{
    LiveSession, LiveSessionBuilder, ReconnectReason, ReconnectStrategy, Reconnected, SessionEvent,
    SessionEvents,
};
use gemini_fake::{ConnectionEnd, FakeServer, Family, ResponseFate};
use resume_policy::{Backoff, DefaultPolicy, EditHandling, ReplayAlways, ResumePolicy, SkipReplay};

use crate::common::*;
use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S01",
            title: "goAway while idle: resume before the deadline, nothing re-sent",
            body: |p| Box::pin(s01(p)),
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S02",
            title: "goAway during a model turn: rotate at turnComplete, or forced before timeLeft",
            body: |p| Box::pin(s02(p)),
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S03",
            title: "silent server after goAway: the deadline timer still rotates",
            body: |p| Box::pin(s03(p)),
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
    ]
}

fn scenario(id: &str) -> Scenario {
    scenarios()
        .into_iter()
        .find(|s| s.id == id)
        .expect("scenario listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_go_away_while_idle() {
    check(scenario("S01")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_go_away_during_a_model_turn() {
    check(scenario("S02")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_silent_server_after_go_away() {
    check(scenario("S03")).await;
}

// ---------------------------------------------------------------------------------------------
// Shared checks (also used by `unplanned_drops`).

/// How long one awaited event may take before the scenario reports a failure.
pub const STEP: Duration = Duration::from_secs(3);

/// Milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `policy` with a short backoff (20 ms base), so that scenarios with failed dials stay fast.
pub fn fast_policy(policy: PolicyKind) -> Box<dyn ResumePolicy> {
    let mut backoff = Backoff::default();
    backoff.base = ms(20);
    backoff.max = ms(200);
    match policy {
        PolicyKind::Default => Box::new(DefaultPolicy::new(backoff, EditHandling::default())),
        PolicyKind::ReplayAlways => Box::new(ReplayAlways { backoff }),
        PolicyKind::SkipReplay => Box::new(SkipReplay { backoff }),
    }
}

/// Connects a TEXT-modality session to `server` with `policy` (fast backoff) and `tweak`
/// applied to the builder.
pub async fn open(
    server: &FakeServer,
    policy: PolicyKind,
    tweak: impl FnOnce(LiveSessionBuilder) -> LiveSessionBuilder,
) -> Result<(LiveSession, SessionEvents), String> {
    let builder = LiveSession::builder(endpoint(server), server.config().setup_model())
        .modality(gemini_transport::wire::Modality::Text)
        .transcription(false)
        .policy(fast_policy(policy));
    tweak(builder)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// Every event the application saw, in order.
#[derive(Default)]
pub struct Seen {
    pub events: Vec<SessionEvent>,
}

impl Seen {
    /// Reads events until one satisfies `pred` (recorded like the others); `Err` after
    /// [`STEP`] or when the stream ends.
    pub async fn until(
        &mut self,
        rx: &mut SessionEvents,
        what: &str,
        mut pred: impl FnMut(&SessionEvent) -> bool,
    ) -> Outcome {
        let from = self.events.len();
        let found = tokio::time::timeout(STEP, async {
            while let Some(event) = rx.recv().await {
                let done = pred(&event);
                // None of these scenarios sends a payload the server may refuse: a 1007 or
                // 1008 close is a failure at once, not after the wait.
                let refused = matches!(
                    &event,
                    SessionEvent::Reconnecting {
                        reason: ReconnectReason::ConnectionLost {
                            code: 1007 | 1008,
                            ..
                        }
                    }
                );
                self.events.push(event);
                if done || refused {
                    return !refused || done;
                }
            }
            false
        })
        .await;
        if matches!(found, Ok(true)) {
            Ok(())
        } else {
            Err(format!(
                "no {what}; events meanwhile: {:?}",
                summary(&self.events[from..])
            ))
        }
    }

    /// A typed turn and its answer (a barrier: the fake has processed every earlier frame).
    pub async fn turn(
        &mut self,
        session: &LiveSession,
        rx: &mut SessionEvents,
        text: &str,
    ) -> Outcome {
        session.send_text(text).map_err(|e| e.to_string())?;
        self.until(rx, &format!("answer to {text:?}"), |e| {
            matches!(e, SessionEvent::TurnComplete)
        })
        .await
    }

    /// Waits for the next `Reconnected` and returns it.
    pub async fn reconnected(&mut self, rx: &mut SessionEvents) -> Result<Reconnected, String> {
        self.until(rx, "Reconnected", |e| {
            matches!(
                e,
                SessionEvent::Reconnected(_) | SessionEvent::Closed { .. }
            )
        })
        .await?;
        match self.events.last() {
            Some(SessionEvent::Reconnected(report)) => Ok(report.clone()),
            other => Err(format!(
                "the session ended instead of reconnecting: {other:?}"
            )),
        }
    }

    /// Position of the first event from `from` on that satisfies `pred`.
    pub fn position(&self, pred: impl Fn(&SessionEvent) -> bool) -> Option<usize> {
        self.events.iter().position(pred)
    }

    /// Number of events that satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&SessionEvent) -> bool) -> usize {
        self.events.iter().filter(|e| pred(e)).count()
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

    /// S32 with a known number of reconnects.
    pub fn reconnects_exactly(&self, expected: usize) -> Outcome {
        ensure_eq(
            "reconnects (paired events)",
            self.paired_reconnects()?,
            expected,
        )
    }
}

/// A short description of events (audio and text chunks left out).
pub fn summary(events: &[SessionEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !matches!(e, SessionEvent::Text(_) | SessionEvent::Usage(_)))
        .map(|e| format!("{e:?}"))
        .collect()
}

/// No tool ran twice: the application was asked once per call id, the server issued each id
/// once and accepted at most one response per id, and got no duplicate.
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

/// `S` is `expected`, and `L` equals `S`.
pub fn contexts_are(server: &FakeServer, session: &LiveSession, expected: &[&str]) -> Outcome {
    let expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    ensure_eq("S", s_entries(server), expected.clone())?;
    ensure_eq("L == S", l_entries(&session.chat_ctx()), expected)
}

/// Generations of the latest server session.
pub fn generations(server: &FakeServer) -> u32 {
    server.latest_session().map_or(0, |s| s.generations())
}

/// Never two sockets: every connection of the latest session ended before the next one
/// opened, and the fake saw no overlap.
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

/// Kinds of the frames received on connection `k` (0-based, accept order) after its setup.
pub fn kinds_after_setup(server: &FakeServer, k: usize) -> Vec<String> {
    server
        .connections()
        .get(k)
        .map(|c| c.frames.iter().skip(1).map(|f| f.kind.to_owned()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// S01

async fn s01(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) = session(&server, policy.boxed(), vec![]).await;
    for text in ["one", "two"] {
        session.send_text(text).map_err(|e| e.to_string())?;
        until(&mut events, "turn complete", |e| {
            matches!(e, SessionEvent::TurnComplete)
        })
        .await;
    }
    let before = s_entries(&server);
    server.faults().go_away(Duration::from_secs(50));
    let seen = until(&mut events, "reconnected", |e| {
        matches!(e, SessionEvent::Reconnected(_))
    })
    .await;
    let Some(SessionEvent::Reconnected(report)) = seen.last() else {
        return Err("no Reconnected event".into());
    };
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    // The old socket is closed (the fake records the end a moment after the client sends it).
    server
        .wait_for(WAIT, "old socket closed", |v| {
            v.connections().first().is_some_and(|c| c.end.is_some())
        })
        .await
        .map_err(|e| e.to_string())?;
    // The new connection carries a handle and nothing after its setup.
    let connections = server.connections();
    ensure_eq("connections", connections.len(), 2)?;
    let second = &connections[1];
    ensure(second.resumed_from.is_some(), || {
        "second connection did not resume".into()
    })?;
    ensure_eq(
        "sockets open at once",
        server.latest_session().map(|s| s.overlaps()),
        Some(0),
    )?;
    barrier(&session, &mut events, "three").await;
    let connections = server.connections();
    let second = &connections[1];
    let after_setup: Vec<String> = second
        .frames
        .iter()
        .skip(1)
        .map(|f| f.kind.to_string())
        .collect();
    ensure_eq(
        "frames after the resumed setup",
        after_setup,
        vec!["clientContent".to_owned()],
    )?;
    let setup = second.frames[0].json();
    ensure(setup["setup"].get("historyConfig").is_none(), || {
        "historyConfig on a resume".into()
    })?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    ensure_eq("S", s_entries(&server), expected.clone())?;
    ensure_eq("L == S", l_entries(&session.chat_ctx()), expected)?;
    session.close().await.map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// S02

/// A user turn whose answer lasts `11 × chunk interval` (one chunk per word).
const LONG: &str = "please tell me a long story about the sea";

async fn s02(policy: PolicyKind) -> Outcome {
    s02_waits_for_turn_complete(policy)
        .await
        .map_err(|e| format!("(waiting rotation) {e}"))?;
    s02_forced_before_time_left(policy)
        .await
        .map_err(|e| format!("(forced rotation) {e}"))
}

/// goAway with plenty of time: the rotation waits for `turnComplete` and the handle issued
/// with it, then resumes from that handle with nothing to replay.
async fn s02_waits_for_turn_complete(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c.with_chunk_interval(ms(20))).await;
    let (session, mut rx) = open(&server, policy, |b| b).await?;
    let mut seen = Seen::default();
    seen.turn(&session, &mut rx, "one").await?;
    session.send_text(LONG).map_err(|e| e.to_string())?;
    seen.until(&mut rx, "first chunk of the long answer", |e| {
        matches!(e, SessionEvent::Text(_))
    })
    .await?;
    server.faults().go_away(Duration::from_secs(50));
    let report = seen.reconnected(&mut rx).await?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let complete = seen
        .events
        .iter()
        .rposition(|e| matches!(e, SessionEvent::TurnComplete));
    let reconnecting = seen.position(|e| matches!(e, SessionEvent::Reconnecting { .. }));
    ensure(
        matches!((complete, reconnecting), (Some(c), Some(r)) if c < r),
        || {
            format!(
                "rotated before the turn completed: {:?}",
                summary(&seen.events)
            )
        },
    )?;
    ensure_eq(
        "Interrupted events",
        seen.count(|e| matches!(e, SessionEvent::Interrupted)),
        0,
    )?;
    // The resume used the handle issued with the long answer's turnComplete.
    let Some(snapshot) = server.latest_session() else {
        return Err("no server session".into());
    };
    let connections = server.connections();
    let first = connections.first().map(|c| c.id);
    let last_on_first = snapshot
        .handles_issued()
        .iter()
        .rfind(|h| Some(h.connection) == first)
        .map(|h| h.handle.clone());
    ensure_eq(
        "resumed from",
        connections.get(1).and_then(|c| c.resumed_from.clone()),
        last_on_first,
    )?;
    seen.turn(&session, &mut rx, "three").await?;
    ensure_eq(
        "frames after the resumed setup",
        kinds_after_setup(&server, 1),
        vec!["clientContent".to_owned()],
    )?;
    let echo_long = format!("model: echo: {LONG}");
    let user_long = format!("user: {LONG}");
    contexts_are(
        &server,
        &session,
        &[
            "user: one",
            "model: echo: one",
            &user_long,
            &echo_long,
            "user: three",
            "model: echo: three",
        ],
    )?;
    ensure_eq("generations", generations(&server), 3)?;
    answers_once(&server)?;
    tools_ran_once(&server, &seen)?;
    one_socket_at_a_time(&server)?;
    seen.reconnects_exactly(1)?;
    session.close().await.map_err(|e| e.to_string())
}

/// goAway with 600 ms left and a 300 ms margin while an answer needs about 700 ms: the timer
/// forces the rotation mid-turn; the turn is closed locally as interrupted, and the user turn
/// ends up in `S` exactly once (answered again on the new connection).
async fn s02_forced_before_time_left(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c.with_chunk_interval(ms(60))).await;
    let (session, mut rx) = open(&server, policy, |b| b.go_away_margin(ms(300))).await?;
    let mut seen = Seen::default();
    seen.turn(&session, &mut rx, "one").await?;
    session.send_text(LONG).map_err(|e| e.to_string())?;
    seen.until(&mut rx, "first chunk of the long answer", |e| {
        matches!(e, SessionEvent::Text(_))
    })
    .await?;
    server.faults().go_away(ms(600));
    let report = seen.reconnected(&mut rx).await?;
    let interrupted = seen.position(|e| matches!(e, SessionEvent::Interrupted));
    let reconnecting = seen.position(|e| matches!(e, SessionEvent::Reconnecting { .. }));
    ensure(
        matches!((interrupted, reconnecting), (Some(i), Some(r)) if i < r),
        || {
            format!(
                "the cut turn was not closed as interrupted before rotating: {:?}",
                summary(&seen.events)
            )
        },
    )?;
    ensure(
        matches!(seen.reasons().first(), Some(ReconnectReason::GoAway { .. })),
        || format!("reasons: {:?}", seen.reasons()),
    )?;
    // The client closed the old socket before the deadline (the fake would close with 1008).
    let old_end = server.connections().first().and_then(|c| c.end.clone());
    ensure(
        matches!(old_end, Some((ConnectionEnd::ClientClose { .. }, _))),
        || format!("old connection ended with {old_end:?}, not by the client"),
    )?;
    ensure(report.gap < ms(1_000), || format!("gap {:?}", report.gap))?;
    // The user turn reaches the resumed session once, and the model answers it there.
    let user_long = format!("user: {LONG}");
    let echo_long = format!("model: echo: {LONG}");
    server
        .wait_for(STEP, "the long turn answered on the new connection", |v| {
            v.latest_session().is_some_and(|s| {
                s.answers()
                    .iter()
                    .any(|a| !a.interrupted && a.text == format!("echo: {LONG}"))
            })
        })
        .await
        .map_err(|e| format!("{e}; S = {:?}", s_entries(&server)))?;
    seen.until(&mut rx, "answer to the long turn", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await?;
    seen.turn(&session, &mut rx, "three").await?;
    contexts_are(
        &server,
        &session,
        &[
            "user: one",
            "model: echo: one",
            &user_long,
            &echo_long,
            "user: three",
            "model: echo: three",
        ],
    )?;
    // one, the cut answer, its replay, three.
    ensure_eq("generations", generations(&server), 4)?;
    answers_once(&server)?;
    tools_ran_once(&server, &seen)?;
    one_socket_at_a_time(&server)?;
    seen.reconnects_exactly(1)?;
    session.close().await.map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// S03

/// The model is idle but the session holds no fresh handle (the fake withholds them, so the
/// last turn is covered by none) when goAway arrives, and the server sends nothing after it.
/// Waiting for a fresh handle would wait forever: the deadline timer rotates before
/// `timeLeft` ends, and the turn the handle does not cover is restored exactly once.
async fn s03(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut rx) = open(&server, policy, |b| b.go_away_margin(ms(300))).await?;
    let mut seen = Seen::default();
    seen.turn(&session, &mut rx, "one").await?;
    server.faults().withhold_handles();
    seen.turn(&session, &mut rx, "two").await?;
    server.faults().go_away(ms(600));
    // Silence from here on: no frame, no handle. New connections get handles again.
    server.faults().release_handles();
    let report = seen.reconnected(&mut rx).await?;
    ensure(
        matches!(seen.reasons().as_slice(), [ReconnectReason::GoAway { .. }]),
        || format!("reasons: {:?}", seen.reasons()),
    )?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let old_end = server.connections().first().and_then(|c| c.end.clone());
    ensure(
        matches!(old_end, Some((ConnectionEnd::ClientClose { .. }, _))),
        || format!("old connection ended with {old_end:?}, not by the client before the deadline"),
    )?;
    seen.turn(&session, &mut rx, "three").await?;
    contexts_are(
        &server,
        &session,
        &[
            "user: one",
            "model: echo: one",
            "user: two",
            "model: echo: two",
            "user: three",
            "model: echo: three",
        ],
    )?;
    // Restoring "two" and its answer must not ask the model again.
    ensure_eq("generations", generations(&server), 3)?;
    answers_once(&server)?;
    tools_ran_once(&server, &seen)?;
    one_socket_at_a_time(&server)?;
    seen.reconnects_exactly(1)?;
    session.close().await.map_err(|e| e.to_string())
}
