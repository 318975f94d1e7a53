//! Unplanned drops: S04–S09.

use std::time::Duration;

use agent_glue::{ReconnectReason, ReconnectStrategy};
use ctx_model::ChatContext;
use gemini_fake::{Family, FaultAction, Trigger};
use serde_json::Value;
use session_sim::Pair;

use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S04",
            title: "abnormal close while idle: resume with backoff, S unchanged",
            body: s04,
            // ReplayAlways duplicates the history; SkipReplay types into `clientContent` on
            // 3.1 (closed with 1007).
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S05",
            title: "drop before any handle: fresh session, one seed that asks for no reply",
            body: s05,
            // Both send a typed turn as `clientContent` on 3.1 (closed with 1007).
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S06",
            title: "failed re-dials: retried with backoff, outbox intact, nothing duplicated",
            body: s06,
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S07",
            title: "flapping: drops in the handshake and in the replay, S as without faults",
            body: s07,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S08",
            title: "handle arrives after a replay, then a drop: the replay is not sent twice",
            body: s08,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S09",
            title: "never two sockets: each old socket closed before the next dial; 1011 retried",
            body: s09,
            exposes: &[PolicyKind::ReplayAlways],
        },
    ]
}

#[test]
fn s04_abnormal_close_while_idle() {
    check("S04");
}

#[test]
fn s05_drop_before_any_handle() {
    check("S05");
}

#[test]
fn s06_failed_redials() {
    check("S06");
}

#[test]
fn s07_flapping() {
    check("S07");
}

#[test]
fn s08_handle_after_replay_then_drop() {
    check("S08");
}

#[test]
fn s09_never_two_sockets() {
    check("S09");
}

/// The `Reconnecting` reason is a lost connection with this close code.
fn lost_with(reason: Option<&ReconnectReason>, code: u16) -> bool {
    matches!(reason, Some(ReconnectReason::ConnectionLost { code: c, .. }) if *c == code)
}

// ---------------------------------------------------------------------------------------------
// S04

fn s04(policy: PolicyKind) -> Outcome {
    each_case([Family::Gemini25, Family::Gemini31], |family| {
        s04_on(policy, family)
    })
}

fn s04_on(policy: PolicyKind, family: Family) -> Outcome {
    let mut pair = open(family, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    barrier(&mut pair, "two")?;
    let handle = last_handle_on(pair.server(), 0);
    pair.faults().drop_connections();
    let report = reconnected(&mut pair)?;
    ensure(lost_with(reasons(&pair).first(), 1006), || {
        format!("reasons: {:?}", reasons(&pair))
    })?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    ensure_eq("attempts", report.attempts, 1)?;
    // A failure is never retried at once: the fast policy waits at least 20 ms.
    ensure(report.gap >= Duration::from_millis(15), || {
        format!("no backoff: gap {:?}", report.gap)
    })?;
    ensure_eq(
        "resumed from",
        pair.server()
            .connections()
            .get(1)
            .and_then(|c| c.resumed_from.clone()),
        handle,
    )?;
    barrier(&mut pair, "three")?;
    ensure_eq(
        "frames after the resumed setup",
        kinds_after_setup_on(pair.server(), 1),
        vec![typed_turn_kind(family)],
    )?;
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

// ---------------------------------------------------------------------------------------------
// S05

fn s05(policy: PolicyKind) -> Outcome {
    each_case([Family::Gemini25, Family::Gemini31], |family| {
        s05_on(policy, family)
    })
}

/// History seeded at connect, one live turn, no handle ever issued, then a drop: a fresh
/// session with one seed holding everything, sent so that it asks for no answer.
fn s05_on(policy: PolicyKind, family: Family) -> Outcome {
    let history = ChatContext::builder()
        .user("h1", "my name is Ada")
        .model("h2", "nice to meet you Ada")
        .build()
        .map_err(err)?;
    let mut pair = open(family, policy.fast(), |b| {
        b.initial_context(history).faults(|f| f.withhold_handles())
    })?;
    barrier(&mut pair, "hello")?;
    ensure_eq(
        "handles issued before the drop",
        pair.server()
            .latest_session()
            .map(|s| s.handles_issued().len()),
        Some(0),
    )?;
    pair.faults().drop_connections();
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
    ensure_eq("server sessions", pair.server().sessions().len(), 2)?;
    pair.faults().release_handles();
    barrier(&mut pair, "again")?;

    // The fresh connection: setup, one seed, the new turn.
    let connections = pair.server().connections();
    let Some(fresh) = connections.get(1) else {
        return Err("no second connection".into());
    };
    ensure(fresh.resumed_from.is_none(), || {
        "the fresh setup resumed".into()
    })?;
    let history_flag = history_in_client_content(&fresh.frames[0].json());
    let seeds: Vec<Value> = fresh.frames_of("clientContent").map(|f| f.json()).collect();
    let Some(seed) = seeds.first() else {
        return Err("no seed on the fresh connection".into());
    };
    let seed_turns = seed["clientContent"]["turns"]
        .as_array()
        .map_or(0, Vec::len);
    ensure_eq("turns in the seed", seed_turns, 4)?;
    let seed_complete = asks_for_answer(seed);
    let flag_family = family == Family::Gemini31;
    ensure_eq(
        "historyConfig on the fresh setup",
        history_flag,
        flag_family,
    )?;
    // With the flag, `turnComplete: true` ends the history (no answer); without it, `false`.
    ensure_eq("seed turnComplete", seed_complete, flag_family)?;
    ensure_eq(
        "the seed is the first frame after setup",
        fresh.frames[1].kind,
        "clientContent",
    )?;
    let typed = if flag_family { 1 } else { 2 };
    ensure_eq(
        "clientContent frames on the fresh connection",
        seeds.len(),
        typed,
    )?;

    // The seed asked for nothing: the fresh session generated only the answer to "again".
    ends_with(
        pair,
        &[
            "user: my name is Ada",
            "model: nice to meet you Ada",
            "user: hello",
            "model: echo: hello",
            "user: again",
            "model: echo: again",
        ],
        1,
        1,
    )
}

// ---------------------------------------------------------------------------------------------
// S06

/// The connection drops and the next two dials are refused (HTTP 503); a turn typed during
/// the outage waits in the outbox and is delivered once when the third dial succeeds.
fn s06(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults().refuse_upgrades(2, 503);
    pair.faults().drop_connections();
    reconnecting(&mut pair)?;
    pair.send_text("typed during the outage").map_err(err)?;
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    ensure_eq("attempts", report.attempts, 3)?;
    // Three waits of at least 20, 40 and 80 ms with the fast policy.
    ensure(report.gap >= Duration::from_millis(100), || {
        format!("retried without backoff: gap {:?}", report.gap)
    })?;
    turn_complete(&mut pair, "answer to the outage turn")?;
    barrier(&mut pair, "three")?;
    // Refused upgrades never became connections.
    ensure_eq("connections", pair.server().connections().len(), 2)?;
    ends_with(
        pair,
        &[
            "user: one",
            "model: echo: one",
            "user: typed during the outage",
            "model: echo: typed during the outage",
            "user: three",
            "model: echo: three",
        ],
        3,
        1,
    )
}

// ---------------------------------------------------------------------------------------------
// S07

/// What the scenario drives: one turn, a note appended as history, a tool exchange. The
/// server context of a fault-free run of this script.
const S07_EXPECTED: &[&str] = &[
    "user: one",
    "model: echo: one",
    "user: note from the app",
    "model: noted",
    "user: what does get_weather say",
    "call call-1-1 get_weather",
    "response call-1-1 get_weather {\"celsius\":18}",
    "model: get_weather returned {\"celsius\":18}",
    "user: four",
    "model: echo: four",
];

/// Drives the S07 conversation up to (not including) the faults; handles withheld after the
/// first turn so that the exchange after "one" is covered by no handle.
fn s07_conversation(pair: &mut Pair) -> Outcome {
    barrier(pair, "one")?;
    pair.faults().withhold_handles();
    let (version, mut ctx) = pair.snapshot();
    ctx.push_user("note-1", "note from the app")
        .and_then(|c| c.push_model("note-2", "noted"))
        .map_err(err)?;
    pair.update_chat_ctx(ctx, version).map_err(err)?;
    pair.send_text("what does get_weather say").map_err(err)?;
    let call = tool_call(pair)?;
    pair.send_tool_result(&call, serde_json::json!({"celsius": 18}))
        .map_err(err)?;
    turn_complete(pair, "answer after the tool result")
}

/// Handles flow again; the next setup is dropped right after setupComplete, and the
/// connection after it right after its first message (the `first` one: a replay or a seed).
fn flap(pair: &mut Pair, first: &str) -> Outcome {
    pair.faults().release_handles();
    pair.faults()
        .schedule(Trigger::SetupCompleteSent, FaultAction::Drop);
    pair.faults()
        .schedule(Trigger::ClientMessages(1), FaultAction::Drop);
    pair.faults().drop_connections();
    let up = |n: usize| {
        move |s: &gemini_fake::SimServer| {
            s.inspect(|v| {
                v.connections().len() >= n && v.latest_connection().is_some_and(|c| c.is_open())
            })
        }
    };
    // The handshake drop fires on the first reconnect (it may fail that setup itself, so it
    // takes one or two reconnects); a connection then comes up and sends its `first`.
    pair.until_server("the handshake drop, then a connection up", 3_000, up(3))?;
    // That message is dropped after it arrives, and the next connection takes over. (A
    // policy that sends no such message leaves the fault armed: it is cleared here.)
    let _ = pair.until_server(
        &format!("the {first} drop, then a connection up"),
        500,
        up(4),
    );
    pair.faults().clear_scheduled();
    Ok(())
}

/// Paired reconnect events, between one and three of them for the three drops of S07.
fn no_reconnect_loop(pair: &mut Pair) -> Outcome {
    pair.drain();
    let replays = paired_reconnects(pair)?;
    ensure((1..=3).contains(&replays), || {
        format!("{replays} reconnects for three drops (a loop?)")
    })
}

/// The conversation once without faults, then with: the handshake of the first reconnect
/// dropped, and the next connection dropped right after the first message of its replay.
fn s07(policy: PolicyKind) -> Outcome {
    s07_on_25(policy).map_err(|e| format!("(2.5) {e}"))?;
    s07_on_31(policy).map_err(|e| format!("(3.1) {e}"))
}

fn s07_on_25(policy: PolicyKind) -> Outcome {
    // The fault-free run, for comparison.
    let mut calm = open(Family::Gemini25, policy.fast(), |b| {
        b.tools(vec![weather_tool()])
    })?;
    s07_conversation(&mut calm)?;
    barrier(&mut calm, "four")?;
    let fault_free = s_entries(calm.server());
    ensure_eq(
        "the fault-free run",
        fault_free.clone(),
        strings(S07_EXPECTED),
    )?;
    finish(calm)?;

    let mut pair = open(Family::Gemini25, policy.fast(), |b| {
        b.tools(vec![weather_tool()])
    })?;
    s07_conversation(&mut pair)?;
    flap(&mut pair, "replay")?;
    barrier(&mut pair, "four")?;
    ensure_eq(
        "S equals the fault-free run",
        s_entries(pair.server()),
        fault_free,
    )?;
    contexts_are(&pair, S07_EXPECTED)?;
    no_reconnect_loop(&mut pair)?;
    // one, the call, the continuation after the result, four: nothing asked again.
    ensure_eq("generations", generations(pair.server()), 4).map_err(|e| {
        let setups: Vec<Option<String>> = pair
            .server()
            .connections()
            .iter()
            .map(|c| c.resumed_from.clone())
            .collect();
        format!("{e}; resumed from {setups:?}; {:?}", summary(&pair))
    })?;
    nothing_twice(&pair)?;
    finish(pair)
}

/// On 3.1 the turn no handle covers cannot be restored mid-session, so every reconnect is a
/// fresh session with one seed: the first one's handshake is dropped, the next one is dropped
/// right after its seed (a handle taken after that seed arrives first), and the last one must
/// hold the conversation once, without having been asked to answer it again.
fn s07_on_31(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini31, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults().withhold_handles();
    barrier(&mut pair, "two")?;
    flap(&mut pair, "seed")?;
    barrier(&mut pair, "four")?;
    contexts_are(
        &pair,
        &[
            "user: one",
            "model: echo: one",
            "user: two",
            "model: echo: two",
            "user: four",
            "model: echo: four",
        ],
    )?;
    // The last session only answered "four": its seed asked for nothing.
    ensure_eq(
        "generations of the last session",
        generations(pair.server()),
        1,
    )?;
    nothing_twice(&pair)?;
    no_reconnect_loop(&mut pair)?;
    finish(pair)
}

// ---------------------------------------------------------------------------------------------
// S08

/// A turn no handle covers is replayed as history after a drop; the server issues a handle
/// right after processing that replay (it includes it), and the connection drops again: the
/// next connection must not deliver the replay a second time.
fn s08(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults().withhold_handles();
    barrier(&mut pair, "two")?;
    pair.faults().release_handles();
    // The replay on the next connection is its first message: drop right after it (the
    // handle issued for it is sent first).
    pair.faults()
        .schedule(Trigger::ClientMessages(1), FaultAction::Drop);
    pair.faults().drop_connections();
    reconnected(&mut pair)?;
    // A policy that replays nothing leaves the fault armed; it is cleared before "three".
    let replayed = pair
        .until_server("the replay processed and dropped", 1_000, |s| {
            s.inspect(|v| v.connections().get(1).is_some_and(|c| c.end.is_some()))
        })
        .is_ok();
    pair.faults().clear_scheduled();
    if replayed {
        // The trap: a handle issued after the replay, which holds it.
        ensure(last_handle_on(pair.server(), 1).is_some(), || {
            "the fake issued no handle after the replay".into()
        })?;
        reconnected(&mut pair)?;
    }
    barrier(&mut pair, "three")?;
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
        if replayed { 2 } else { 1 },
    )
}

// ---------------------------------------------------------------------------------------------
// S09

/// A goAway rotation, a TCP reset and a 1011 close in a row: every reconnect closes (or has
/// lost) the old socket before dialing, the fake never sees two sockets of the session open,
/// and the 1011 is retried as a transient failure by resuming.
fn s09(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults().go_away(Duration::from_secs(50));
    reconnected(&mut pair)?;
    barrier(&mut pair, "two")?;
    pair.faults().drop_connections();
    reconnected(&mut pair)?;
    barrier(&mut pair, "three")?;
    pair.faults()
        .close_connections(1011, "Internal error encountered.");
    let report = reconnected(&mut pair)?;
    ensure_eq(
        "strategy after 1011",
        report.strategy,
        ReconnectStrategy::Resumed,
    )?;
    barrier(&mut pair, "four")?;
    let reasons = reasons(&pair);
    ensure(
        matches!(reasons.first(), Some(ReconnectReason::GoAway { .. }))
            && lost_with(reasons.get(1), 1006)
            && lost_with(reasons.get(2), 1011),
        || format!("reasons: {reasons:?}"),
    )?;
    let connections = pair.server().connections();
    ensure_eq("connections", connections.len(), 4)?;
    ensure(
        connections.iter().skip(1).all(|c| c.resumed_from.is_some()),
        || "a reconnect did not resume".into(),
    )?;
    ends_with(
        pair,
        &[
            "user: one",
            "model: echo: one",
            "user: two",
            "model: echo: two",
            "user: three",
            "model: echo: three",
            "user: four",
            "model: echo: four",
        ],
        4,
        3,
    )
}
