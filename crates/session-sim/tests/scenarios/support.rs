//! What every scenario group shares: the pair it starts, the events the application saw
//! (waits that fail the scenario instead of panicking), the two contexts as comparable
//! entries, and the checks of the invariant beyond `Pair::finish`'s (reconnects paired, no
//! tool run twice, no answer generated twice, `L == S`, never two sockets).

use std::collections::BTreeSet;
use std::sync::Arc;

use agent_glue::{ReconnectReason, Reconnected, SessionEvent};
use ctx_model::{ChatContext, Item, Role as LRole};
use gemini_fake::{
    ConnectionEnd, ConnectionRecord, Family, Part, ResponseFate, Role as SRole, SessionSnapshot,
    SimServer, Turn,
};
use gemini_transport::wire::{Behavior, FunctionDeclaration};
use resume_policy::{DivergenceReason, ResumePolicy};
use serde_json::{Value, json};
use session_sim::{Pair, PairBuilder, Profile};

use crate::runner::{Outcome, ensure, ensure_eq};

/// How long a wait on the server's state may take (virtual ms), as the loopback suite's
/// `wait_for`.
pub const WAIT: u64 = 10_000;

/// A TEXT session on `family` over the Developer API, 5 ms one-way latency.
pub fn profile(family: Family) -> Profile {
    Profile {
        family,
        latency: 5,
        ..Profile::default()
    }
}

/// Starts a pair on `family` with `policy` and `tweak` applied to its builder.
pub fn open(
    family: Family,
    policy: Arc<dyn ResumePolicy>,
    tweak: impl FnOnce(PairBuilder) -> PairBuilder,
) -> Result<Pair, String> {
    open_with(profile(family), policy, tweak)
}

/// Starts a pair on `profile` with `policy` and `tweak` applied to its builder.
pub fn open_with(
    profile: Profile,
    policy: Arc<dyn ResumePolicy>,
    tweak: impl FnOnce(PairBuilder) -> PairBuilder,
) -> Result<Pair, String> {
    tweak(Pair::builder(profile).policy(policy)).start()
}

/// Lets the pair settle and checks the whole invariant (`L` against the server's context,
/// tool runs, answers, reconnect events, sockets, configuration).
pub fn finish(pair: Pair) -> Outcome {
    finish_except(pair, &[])
}

/// [`finish`], except for the violations of the classes `allowed` (a scenario that leaves
/// `L` and `S` apart by design says which and why).
pub fn finish_except(pair: Pair, allowed: &[&str]) -> Outcome {
    let outcome = pair.finish();
    if std::env::var_os("SIM_TRACE").is_some() {
        eprintln!("{}", outcome.trace.join("\n"));
    }
    let lines: Vec<String> = outcome
        .violations
        .iter()
        .filter(|v| !allowed.contains(&v.class))
        .map(ToString::to_string)
        .collect();
    ensure(lines.is_empty(), || {
        format!("the invariant: {}", lines.join("; "))
    })
}

/// Runs `run` for each case in turn; the first failure, prefixed with its case, is the
/// scenario's.
pub fn each_case<C: Copy + std::fmt::Debug>(
    cases: impl IntoIterator<Item = C>,
    mut run: impl FnMut(C) -> Outcome,
) -> Outcome {
    for case in cases {
        run(case).map_err(|e| format!("{case:?}: {e}"))?;
    }
    Ok(())
}

// --- the events ---------------------------------------------------------------------------

/// Reads events until one satisfies `pred` and returns it; `Err` after the pair's step (3 s
/// of virtual time), when the session ends, or at once when the server closes the connection
/// with 1007 or 1008 (no scenario sends a payload the server may refuse, and waiting on would
/// only hide which message broke the model's rules).
pub fn until(
    pair: &mut Pair,
    what: &str,
    mut pred: impl FnMut(&SessionEvent) -> bool,
) -> Result<SessionEvent, String> {
    let event = pair.until(what, |e| pred(e) || refused(e).is_some())?;
    if !pred(&event) {
        if let Some((code, reason)) = refused(&event) {
            return Err(format!(
                "waiting for {what}: the server closed the connection with {code}: {reason}"
            ));
        }
    }
    Ok(event)
}

/// The close code and reason of a `Reconnecting` for a 1007 or 1008.
fn refused(event: &SessionEvent) -> Option<(u16, String)> {
    match event {
        SessionEvent::Reconnecting {
            reason:
                ReconnectReason::ConnectionLost {
                    code: code @ (1007 | 1008),
                    reason,
                },
        } => Some((*code, reason.clone())),
        _ => None,
    }
}

/// Waits for the next `TurnComplete`.
pub fn turn_complete(pair: &mut Pair, what: &str) -> Outcome {
    until(pair, what, |e| matches!(e, SessionEvent::TurnComplete)).map(|_| ())
}

/// Waits for the first chunk of a model answer.
pub fn first_chunk(pair: &mut Pair, what: &str) -> Outcome {
    until(pair, what, |e| matches!(e, SessionEvent::Text(_))).map(|_| ())
}

/// Waits for the next `Reconnecting`.
pub fn reconnecting(pair: &mut Pair) -> Outcome {
    until(pair, "Reconnecting", |e| {
        matches!(e, SessionEvent::Reconnecting { .. })
    })
    .map(|_| ())
}

/// Waits for the next `ToolCall`; returns its call id.
pub fn tool_call(pair: &mut Pair) -> Result<String, String> {
    match until(pair, "tool call", |e| {
        matches!(e, SessionEvent::ToolCall { .. })
    })? {
        SessionEvent::ToolCall { call_id, .. } => Ok(call_id),
        _ => Err("not a tool call".into()),
    }
}

/// Waits for the next `Reconnected` and returns its report; `Err` when the session ends
/// instead.
pub fn reconnected(pair: &mut Pair) -> Result<Reconnected, String> {
    match until(pair, "Reconnected", |e| {
        matches!(
            e,
            SessionEvent::Reconnected(_) | SessionEvent::Closed { .. }
        )
    })? {
        SessionEvent::Reconnected(report) => Ok(report),
        other => Err(format!(
            "the session ended instead of reconnecting: {other:?}"
        )),
    }
}

/// A typed turn and its answer, a barrier: the fake processes a connection's frames in order,
/// so every frame sent before it has been processed once the answer is back. Waits for the
/// `TurnComplete` whose turn answers `text` (an earlier one still queued does not count).
/// Adds `user: {text}` and `model: echo: {text}` to both contexts.
pub fn barrier(pair: &mut Pair, text: &str) -> Outcome {
    pair.send_text(text).map_err(|e| e.to_string())?;
    let answer = format!("model: echo: {text}");
    let mut done = false;
    while !done {
        until(pair, &format!("the answer to {text:?}"), |e| {
            matches!(e, SessionEvent::TurnComplete)
        })?;
        done = l_entries(pair.chat_ctx()).last() == Some(&answer);
    }
    Ok(())
}

/// The events the application has read (`Pair::until`, `Pair::drain`).
pub fn read(pair: &Pair) -> impl Iterator<Item = &SessionEvent> {
    pair.read_events().iter().map(|(_, e)| e)
}

/// Position among the events read of the first that satisfies `pred`.
pub fn position(pair: &Pair, pred: impl Fn(&SessionEvent) -> bool) -> Option<usize> {
    read(pair).position(pred)
}

/// Number of events read that satisfy `pred`.
pub fn count(pair: &Pair, pred: impl Fn(&SessionEvent) -> bool) -> usize {
    read(pair).filter(|e| pred(e)).count()
}

/// The reasons of every `Reconnecting` read, in order.
pub fn reasons(pair: &Pair) -> Vec<ReconnectReason> {
    read(pair)
        .filter_map(|e| match e {
            SessionEvent::Reconnecting { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// The reasons of the `Divergence` events read.
pub fn divergences(pair: &Pair) -> Vec<DivergenceReason> {
    read(pair)
        .filter_map(|e| match e {
            SessionEvent::Divergence { why, .. } => Some(*why),
            _ => None,
        })
        .collect()
}

/// The `Warning`s read.
pub fn warnings(pair: &Pair) -> Vec<String> {
    read(pair)
        .filter_map(|e| match e {
            SessionEvent::Warning(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

/// S32: reconnect events come in pairs, `Reconnecting` then `Reconnected`, never nested,
/// never unfinished; returns how many reconnects there were (over the events read).
pub fn paired_reconnects(pair: &Pair) -> Result<usize, String> {
    let mut open = false;
    let mut pairs = 0;
    for event in read(pair) {
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

/// S32 with a known number of reconnects, over every event so far.
pub fn reconnects_exactly(pair: &mut Pair, expected: usize) -> Outcome {
    pair.drain();
    ensure_eq(
        "reconnects (paired events)",
        paired_reconnects(pair)?,
        expected,
    )
}

/// A short description of the events read (text chunks and usage left out).
pub fn summary(pair: &Pair) -> Vec<String> {
    read(pair)
        .filter(|e| !matches!(e, SessionEvent::Text(_) | SessionEvent::Usage(_)))
        .map(|e| format!("{e:?}"))
        .collect()
}

// --- the two contexts ---------------------------------------------------------------------

/// One context entry, in a form both sides can be compared in.
pub fn from_l(item: &Item) -> String {
    match item {
        Item::Message(m) => {
            let role = match m.role {
                LRole::User => "user",
                LRole::Model => "model",
            };
            format!("{role}: {}", m.text())
        }
        Item::FunctionCall(c) => format!("call {} {}", c.call_id, c.name),
        Item::FunctionOutput(o) => {
            let response = match (&o.output, o.is_error) {
                (Value::Object(_), false) => o.output.clone(),
                (v, false) => json!({ "output": v }),
                (v, true) => json!({ "error": v }),
            };
            format!("response {} {} {}", o.call_id, o.name, response)
        }
    }
}

/// The server's turns as entries (one per part; a turn's texts joined).
pub fn from_s(turns: &[Turn]) -> Vec<String> {
    let mut out = Vec::new();
    for turn in turns {
        let role = match turn.role {
            SRole::User => "user",
            SRole::Model => "model",
            _ => "other",
        };
        let mut text = String::new();
        for part in &turn.parts {
            match part {
                Part::Text(t) | Part::AudioTranscript(t) => text.push_str(t),
                Part::FunctionCall { id, name, .. } => out.push(format!("call {id} {name}")),
                Part::FunctionResponse { id, name, response } => {
                    out.push(format!("response {id} {name} {response}"));
                }
                _ => {}
            }
        }
        if !text.is_empty() {
            out.push(format!("{role}: {text}"));
        }
    }
    out
}

/// `L` as entries.
pub fn l_entries(ctx: &ChatContext) -> Vec<String> {
    ctx.iter().map(from_l).collect()
}

/// `S` of the latest server session as entries.
pub fn s_entries(server: &SimServer) -> Vec<String> {
    server
        .inspect(|v| v.latest_session().map(|s| from_s(s.context())))
        .unwrap_or_default()
}

/// Owned copies of `entries`.
pub fn strings(entries: &[impl AsRef<str>]) -> Vec<String> {
    entries.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// `L == S`, and no entry twice in `S`.
pub fn l_equals_s(pair: &Pair) -> Outcome {
    let s = s_entries(pair.server());
    ensure_eq("L == S", l_entries(pair.chat_ctx()), s.clone())?;
    let mut seen = BTreeSet::new();
    let twice: Vec<&String> = s.iter().filter(|e| !seen.insert(*e)).collect();
    ensure(twice.is_empty(), || {
        format!("entries twice in S: {twice:?}")
    })
}

/// `S` is `expected`, and `L` equals `S` (see [`l_equals_s`]).
pub fn contexts_are(pair: &Pair, expected: &[impl AsRef<str>]) -> Outcome {
    ensure_eq("S", s_entries(pair.server()), strings(expected))?;
    l_equals_s(pair)
}

/// How often `entry` occurs in the server's context.
pub fn occurrences_in_s(server: &SimServer, entry: &str) -> usize {
    s_entries(server).iter().filter(|e| *e == entry).count()
}

// --- the server's records -----------------------------------------------------------------

/// The declaration of a `get_weather` tool, `BLOCKING` on every family (on 3.8 a declaration
/// without `behavior` is NON_BLOCKING: the scenarios of non-blocking calls declare their own).
pub fn weather_tool() -> FunctionDeclaration {
    FunctionDeclaration::new("get_weather", "Current weather for a city")
        .with_behavior(Behavior::Blocking)
}

/// Generations of the latest server session.
pub fn generations(server: &SimServer) -> u32 {
    server.latest_session().map_or(0, |s| s.generations())
}

/// Every server session (a fresh session is a new one), oldest first.
pub fn all_sessions(server: &SimServer) -> Vec<SessionSnapshot> {
    server
        .sessions()
        .into_iter()
        .filter_map(|id| server.session(id))
        .collect()
}

/// The last resumption handle the server issued on connection `k` (0-based, accept order).
pub fn last_handle_on(server: &SimServer, k: usize) -> Option<String> {
    let connection = server.connections().get(k)?.id;
    server
        .latest_session()?
        .handles_issued()
        .iter()
        .rfind(|h| h.connection == connection)
        .map(|h| h.handle.clone())
}

/// The `toolResponse`s of every server session that did not answer a pending call (orphans,
/// duplicates, answers to cancelled calls), as `(id, fate)`.
pub fn rejected_responses(server: &SimServer) -> Vec<(String, ResponseFate)> {
    all_sessions(server)
        .iter()
        .flat_map(|s| s.tool_responses().to_vec())
        .filter(|r| r.fate != ResponseFate::Accepted)
        .map(|r| (r.id, r.fate))
        .collect()
}

/// The function calls the model issued, over every server session.
pub fn calls_issued(server: &SimServer) -> usize {
    all_sessions(server)
        .iter()
        .map(|s| s.tool_calls().len())
        .sum()
}

/// No tool ran twice: the application was asked once per call id, each server session
/// accepted at most one response per id, and got no duplicate.
pub fn tools_ran_once(pair: &Pair) -> Outcome {
    let mut asked: Vec<&str> = pair
        .events()
        .iter()
        .filter_map(|(_, e)| match e {
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
    for session in all_sessions(pair.server()) {
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
pub fn answers_once(server: &SimServer) -> Outcome {
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
pub fn one_socket_at_a_time(server: &SimServer) -> Outcome {
    let Some(session) = server.latest_session() else {
        return Err("no server session".into());
    };
    let all = server.connections();
    ensure(session.overlaps() == 0, || {
        let lines: Vec<String> = all
            .iter()
            .map(|c| {
                let end = c
                    .end
                    .as_ref()
                    .map(|(e, t)| format!("{e:?} at {:?}", server.time_of(*t)));
                format!(
                    "#{} opened at {:?}, ended {end:?}",
                    c.id,
                    server.time_of(c.opened_at)
                )
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
pub fn nothing_twice(pair: &Pair) -> Outcome {
    answers_once(pair.server())?;
    tools_ran_once(pair)?;
    one_socket_at_a_time(pair.server())
}

/// How a drop or rotation scenario ends once its last turn is answered: `S` is `expected` and
/// `L == S`, the latest server session generated `generations_expected` answers, nothing ran
/// twice, never two sockets, and `reconnects` paired reconnects; then the pair settles and
/// the whole invariant is checked.
pub fn ends_with(
    mut pair: Pair,
    expected: &[impl AsRef<str>],
    generations_expected: u32,
    reconnects: usize,
) -> Outcome {
    contexts_are(&pair, expected)?;
    ensure_eq(
        "generations",
        generations(pair.server()),
        generations_expected,
    )?;
    nothing_twice(&pair)?;
    reconnects_exactly(&mut pair, reconnects)?;
    finish(pair)
}

// --- frames -------------------------------------------------------------------------------

/// The kinds of the frames `conn` received after its setup.
pub fn kinds_after_setup(conn: &ConnectionRecord) -> Vec<String> {
    conn.frames
        .iter()
        .skip(1)
        .map(|f| f.kind.to_owned())
        .collect()
}

/// [`kinds_after_setup`] of connection `k` (0-based, accept order); empty without it.
pub fn kinds_after_setup_on(server: &SimServer, k: usize) -> Vec<String> {
    server
        .connections()
        .get(k)
        .map(kinds_after_setup)
        .unwrap_or_default()
}

/// `Err` unless the frames after the setup of `conn` are exactly `kinds` (showing them all).
pub fn expect_kinds(what: &str, conn: &ConnectionRecord, kinds: &[&str]) -> Outcome {
    let got = kinds_after_setup(conn);
    ensure(got == kinds, || {
        let raw: Vec<&str> = conn.frames.iter().map(|f| f.raw.as_str()).collect();
        format!("{what}: {got:?} != {kinds:?}; frames {raw:?}")
    })
}

/// The kind of frame a typed turn travels in on `family`.
pub fn typed_turn_kind(family: Family) -> String {
    match family {
        Family::Gemini31 => "realtimeInput".to_owned(),
        _ => "clientContent".to_owned(),
    }
}

/// Whether a setup frame announces the initial history in `clientContent` (`historyConfig`).
pub fn history_in_client_content(setup: &Value) -> bool {
    setup["setup"]["historyConfig"]["initialHistoryInClientContent"] == Value::Bool(true)
}

/// Whether a `clientContent` frame asks for an answer (`turnComplete: true`).
pub fn asks_for_answer(frame: &Value) -> bool {
    frame["clientContent"]["turnComplete"].as_bool() == Some(true)
}

/// The frames of `conn` (after its setup) whose JSON mentions `needle`.
pub fn frames_mentioning(conn: &ConnectionRecord, needle: &str) -> Vec<Value> {
    conn.frames
        .iter()
        .skip(1)
        .filter(|f| f.raw.contains(needle))
        .map(|f| f.json())
        .collect()
}

/// Every frame of every connection that mentions `needle`.
pub fn all_frames_mentioning(server: &SimServer, needle: &str) -> Vec<Value> {
    server
        .connections()
        .iter()
        .flat_map(|c| frames_mentioning(c, needle))
        .collect()
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

/// The function names declared by a setup frame.
pub fn setup_tools(setup: &Value) -> Vec<String> {
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
pub fn no_rejections(server: &SimServer) -> Outcome {
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

/// Whether connection `k` (0-based) ended by the client's close frame.
pub fn closed_by_client(server: &SimServer, k: usize) -> Result<(), String> {
    let end = server.connections().get(k).and_then(|c| c.end.clone());
    ensure(
        matches!(end, Some((ConnectionEnd::ClientClose { .. }, _))),
        || format!("connection {k} ended with {end:?}, not by the client"),
    )
}

/// `L` with `items` appended, and the version it was derived from.
pub fn appended(pair: &Pair, items: Vec<Item>) -> Result<(ChatContext, u64), String> {
    let (version, mut ctx) = pair.snapshot();
    ctx.extend(items).map_err(|e| e.to_string())?;
    Ok((ctx, version))
}

/// Any error as its text.
pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The turn a rotation cut off was closed as interrupted before the session said it was
/// reconnecting.
pub fn cut_before_rotating(pair: &Pair) -> Outcome {
    let interrupted = position(pair, |e| matches!(e, SessionEvent::Interrupted));
    let reconnecting = position(pair, |e| matches!(e, SessionEvent::Reconnecting { .. }));
    if matches!((interrupted, reconnecting), (Some(i), Some(r)) if i < r) {
        return Ok(());
    }
    Err(format!(
        "the cut turn was not closed as interrupted before rotating: {:?}",
        summary(pair)
    ))
}

/// The user turn `text`, cut off by a rotation, reaches the resumed session once and the model
/// answers it there in full (within `within` virtual ms); then a barrier turn, "three".
pub fn answered_again(pair: &mut Pair, text: &str, within: u64) -> Outcome {
    let answer = format!("echo: {text}");
    pair.until_server(
        "the long turn answered on the new connection",
        within,
        |s| {
            s.inspect(|v| {
                v.latest_session().is_some_and(|s| {
                    s.answers()
                        .iter()
                        .any(|a| !a.interrupted && a.text == answer)
                })
            })
        },
    )
    .map_err(|e| format!("{e}; S = {:?}", s_entries(pair.server())))?;
    turn_complete(pair, "answer to the long turn")?;
    barrier(pair, "three")
}
