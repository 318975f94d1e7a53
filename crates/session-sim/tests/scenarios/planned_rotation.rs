//! Planned rotation: S01–S03.

use std::time::Duration;

use agent_glue::{ReconnectReason, ReconnectStrategy, SessionEvent};
use gemini_fake::Family;
use session_sim::{Pair, PairBuilder};

use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S01",
            title: "goAway while idle: resume before the deadline, nothing re-sent",
            body: s01,
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S02",
            title: "goAway during a model turn: rotate at turnComplete, or forced before timeLeft",
            body: s02,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S03",
            title: "silent server after goAway: the deadline timer still rotates",
            body: s03,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
    ]
}

#[test]
fn s01_go_away_while_idle() {
    check("S01");
}

#[test]
fn s02_go_away_during_a_model_turn() {
    check("S02");
}

#[test]
fn s03_silent_server_after_go_away() {
    check("S03");
}

// ---------------------------------------------------------------------------------------------
// S01

fn s01(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.arc(), |b| b)?;
    for text in ["one", "two"] {
        barrier(&mut pair, text)?;
    }
    let before = s_entries(pair.server());
    pair.faults().go_away(Duration::from_secs(50));
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    // The old socket was closed by the client before the new one opened.
    closed_by_client(pair.server(), 0)?;
    // The new connection carries a handle and nothing after its setup.
    let connections = pair.server().connections();
    ensure_eq("connections", connections.len(), 2)?;
    ensure(connections[1].resumed_from.is_some(), || {
        "second connection did not resume".into()
    })?;
    ensure_eq(
        "sockets open at once",
        pair.server().latest_session().map(|s| s.overlaps()),
        Some(0),
    )?;
    barrier(&mut pair, "three")?;
    let connections = pair.server().connections();
    let second = &connections[1];
    ensure_eq(
        "frames after the resumed setup",
        kinds_after_setup(second),
        vec!["clientContent".to_owned()],
    )?;
    let setup = second.frames[0].json();
    ensure(setup["setup"].get("historyConfig").is_none(), || {
        "historyConfig on a resume".into()
    })?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    contexts_are(&pair, &expected)?;
    finish(pair)
}

// ---------------------------------------------------------------------------------------------
// S02

/// A user turn whose answer lasts `11 × chunk interval` (one chunk per word).
const LONG: &str = "please tell me a long story about the sea";

fn s02(policy: PolicyKind) -> Outcome {
    s02_waits_for_turn_complete(policy).map_err(|e| format!("(waiting rotation) {e}"))?;
    s02_forced_before_time_left(policy).map_err(|e| format!("(forced rotation) {e}"))
}

/// A 2.5 session (with `tweak`) whose answers stream one word per `chunk` ms: "one" answered,
/// and the answer to [`LONG`] under way.
fn s02_long_answer_under_way(
    policy: PolicyKind,
    chunk: u64,
    tweak: impl FnOnce(PairBuilder) -> PairBuilder,
) -> Result<Pair, String> {
    let mut pair = open(Family::Gemini25, policy.fast(), |b| {
        tweak(b.server(move |c| c.with_chunk_interval(Duration::from_millis(chunk))))
    })?;
    barrier(&mut pair, "one")?;
    pair.send_text(LONG).map_err(err)?;
    first_chunk(&mut pair, "first chunk of the long answer")?;
    Ok(pair)
}

/// After "three" was answered: the long turn and its answer are in `S` once and `L == S`,
/// the latest session generated `generations` answers, nothing ran twice, one reconnect.
fn s02_ends(pair: Pair, generations_expected: u32) -> Outcome {
    let user_long = format!("user: {LONG}");
    let echo_long = format!("model: echo: {LONG}");
    ends_with(
        pair,
        &[
            "user: one",
            "model: echo: one",
            user_long.as_str(),
            echo_long.as_str(),
            "user: three",
            "model: echo: three",
        ],
        generations_expected,
        1,
    )
}

/// goAway with plenty of time: the rotation waits for `turnComplete` and the handle issued
/// with it, then resumes from that handle with nothing to replay.
fn s02_waits_for_turn_complete(policy: PolicyKind) -> Outcome {
    let mut pair = s02_long_answer_under_way(policy, 20, |b| b)?;
    pair.faults().go_away(Duration::from_secs(50));
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let complete = read(&pair)
        .collect::<Vec<_>>()
        .iter()
        .rposition(|e| matches!(e, SessionEvent::TurnComplete));
    let reconnecting = position(&pair, |e| matches!(e, SessionEvent::Reconnecting { .. }));
    ensure(
        matches!((complete, reconnecting), (Some(c), Some(r)) if c < r),
        || format!("rotated before the turn completed: {:?}", summary(&pair)),
    )?;
    ensure_eq(
        "Interrupted events",
        count(&pair, |e| matches!(e, SessionEvent::Interrupted)),
        0,
    )?;
    // The resume used the handle issued with the long answer's turnComplete.
    ensure_eq(
        "resumed from",
        pair.server()
            .connections()
            .get(1)
            .and_then(|c| c.resumed_from.clone()),
        last_handle_on(pair.server(), 0),
    )?;
    barrier(&mut pair, "three")?;
    ensure_eq(
        "frames after the resumed setup",
        kinds_after_setup_on(pair.server(), 1),
        vec!["clientContent".to_owned()],
    )?;
    s02_ends(pair, 3)
}

/// goAway with 600 ms left and a 300 ms margin while an answer needs about 700 ms: the timer
/// forces the rotation mid-turn; the turn is closed locally as interrupted, and the user turn
/// ends up in `S` exactly once (answered again on the new connection).
fn s02_forced_before_time_left(policy: PolicyKind) -> Outcome {
    let mut pair = s02_long_answer_under_way(policy, 60, |b| {
        b.session(|s| s.go_away_margin(Duration::from_millis(300)))
    })?;
    let go_away_at = pair.now();
    pair.faults().go_away(Duration::from_millis(600));
    let report = reconnected(&mut pair)?;
    cut_before_rotating(&pair)?;
    ensure(
        matches!(reasons(&pair).first(), Some(ReconnectReason::GoAway { .. })),
        || format!("reasons: {:?}", reasons(&pair)),
    )?;
    // The client closed the old socket before the deadline (the fake would close with 1008),
    // and no later than the margin allows.
    closed_by_client(pair.server(), 0)?;
    let closed_at = pair
        .server()
        .connections()
        .first()
        .and_then(|c| c.end.as_ref().map(|(_, t)| pair.server().time_of(*t)))
        .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    ensure(closed_at.is_some_and(|t| t < go_away_at + 600), || {
        format!("old socket closed at {closed_at:?} ms, goAway at {go_away_at} ms with 600 ms")
    })?;
    ensure(report.gap < Duration::from_millis(1_000), || {
        format!("gap {:?}", report.gap)
    })?;
    answered_again(&mut pair, LONG, 3_000)?;
    // one, the cut answer, its replay, three.
    s02_ends(pair, 4)
}

// ---------------------------------------------------------------------------------------------
// S03

/// The model is idle but the session holds no fresh handle (the fake withholds them, so the
/// last turn is covered by none) when goAway arrives, and the server sends nothing after it.
/// Waiting for a fresh handle would wait forever: the deadline timer rotates before
/// `timeLeft` ends, and the turn the handle does not cover is restored exactly once.
fn s03(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.fast(), |b| {
        b.session(|s| s.go_away_margin(Duration::from_millis(300)))
    })?;
    barrier(&mut pair, "one")?;
    pair.faults().withhold_handles();
    barrier(&mut pair, "two")?;
    let go_away_at = pair.now();
    pair.faults().go_away(Duration::from_millis(600));
    // Silence from here on: no frame, no handle. New connections get handles again.
    pair.faults().release_handles();
    let report = reconnected(&mut pair)?;
    ensure(
        matches!(reasons(&pair).as_slice(), [ReconnectReason::GoAway { .. }]),
        || format!("reasons: {:?}", reasons(&pair)),
    )?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    // The server sent nothing after the goAway: the rotation was the timer's.
    let silent = pair.server().connections().first().is_some_and(|c| {
        c.end.as_ref().is_some_and(|(_, t)| {
            pair.server().time_of(*t) < Duration::from_millis(go_away_at + 600)
        })
    });
    ensure(silent, || "the old connection outlived the deadline".into())?;
    closed_by_client(pair.server(), 0)?;
    barrier(&mut pair, "three")?;
    // Restoring "two" and its answer must not ask the model again.
    ends_with(
        pair,
        &[
            "user: one",
            "model: echo: one",
            "user: two",
            "model: echo: two",
            "user: three",
            "model: echo: three",
        ],
        3,
        1,
    )
}
