//! S17–S19: appends made online, offline and in flight, on 2.5 and 3.1.

use agent_glue::ReconnectStrategy;
use ctx_model::Message;
use gemini_fake::{Family, FaultAction, Trigger as FaultTrigger};
use resume_policy::DivergenceReason;
use session_sim::Pair;

use crate::runner::{Outcome, PolicyKind, ensure, ensure_eq};
use crate::support::*;

// S17 ------------------------------------------------------------------------------------

pub(super) fn s17(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.arc(), |b| b)?;
    barrier(&mut pair, "one")?;
    let (ctx, version) = appended(
        &pair,
        vec![
            Message::user("app-u1", "remember the code 42").into(),
            Message::model("app-m1", "noted the code").into(),
        ],
    )?;
    pair.update_chat_ctx(ctx, version).map_err(err)?;
    // The typed turn after it proves the append was processed (and its handle covers it).
    barrier(&mut pair, "two")?;
    let first = pair.server().connections().remove(0);
    let carrying = frames_mentioning(&first, "remember the code 42");
    ensure_eq("frames carrying the append", carrying.len(), 1)?;
    let frame = &carrying[0];
    ensure(frame.get("clientContent").is_some(), || {
        format!("the append did not go as clientContent: {frame}")
    })?;
    ensure(!asks_for_answer(frame), || {
        format!("the append asked for an answer: {frame}")
    })?;
    ensure(frame.to_string().contains("noted the code"), || {
        format!("the model item is not in the same message: {frame}")
    })?;
    l_equals_s(&pair)?;
    ensure_eq(
        "generations after the append",
        generations(pair.server()),
        2,
    )?;

    // A later drop and resume: the append is never sent again.
    pair.faults().drop_connections();
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    barrier(&mut pair, "three")?;
    let connections = pair.server().connections();
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
        occurrences_in_s(pair.server(), "user: remember the code 42"),
        1,
    )?;
    l_equals_s(&pair)?;
    ensure_eq("generations", generations(pair.server()), 3)?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

// S18 ------------------------------------------------------------------------------------

pub(super) fn s18(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini31, policy.arc(), |b| b)?;
    barrier(&mut pair, "one")?;
    let (ctx, version) = appended(
        &pair,
        vec![Message::user("app-u1", "remember the code 42").into()],
    )?;
    // A typed result is acceptable; silence is not (checked through the events below).
    let typed = pair.update_chat_ctx(ctx, version);
    barrier(&mut pair, "two")?;
    no_rejections(pair.server())?;
    let first = pair.server().connections().remove(0);
    ensure(first.is_open(), || {
        format!("the first connection ended: {:?}", first.end)
    })?;
    ensure_eq(
        "clientContent mid-session",
        first.frames_of("clientContent").count(),
        0,
    )?;
    pair.drain();
    let reported = divergences(&pair).contains(&DivergenceReason::ClientContentForbidden);
    ensure(typed.is_err() || reported, || {
        "the append was neither delivered, refused nor reported".into()
    })?;

    // Deferred to a fresh seed: the next connection starts fresh and the seed carries it.
    pair.faults().drop_connections();
    let report = reconnected(&mut pair)?;
    if typed.is_ok() {
        ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
        let connections = pair.server().connections();
        let second = &connections[1];
        ensure(second.resumed_from.is_none(), || {
            "resumed although the append needs a seed".into()
        })?;
        let setup = setup_of(second);
        ensure(history_in_client_content(&setup), || {
            format!("a fresh 3.1 seed without historyConfig: {setup}")
        })?;
        barrier(&mut pair, "three")?;
        let connections = pair.server().connections();
        ensure_eq("connections", connections.len(), 2)?;
        let seeds = frames_mentioning(&connections[1], "remember the code 42");
        ensure_eq("seeds carrying the append", seeds.len(), 1)?;
        ensure_eq(
            "generations of the seeded session",
            generations(pair.server()),
            1,
        )?;
        ensure_eq(
            "the append in S",
            occurrences_in_s(pair.server(), "user: remember the code 42"),
            1,
        )?;
        l_equals_s(&pair)?;
    } else {
        barrier(&mut pair, "three")?;
        l_equals_s(&pair)?;
    }
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

// S19 ------------------------------------------------------------------------------------

/// Drops the connection and holds the session down (two refused dials); returns once the
/// application has seen `Reconnecting`.
fn go_down(pair: &mut Pair) -> Outcome {
    pair.faults().refuse_upgrades(2, 503);
    pair.faults().drop_connections();
    reconnecting(pair)
}

pub(super) fn s19(policy: PolicyKind) -> Outcome {
    s19_on_25(policy)?;
    s19_in_flight(policy).map_err(|e| format!("in flight: {e}"))?;
    s19_on_31(policy)
}

/// 2.5, the append in flight when the connection dies: the server processes it and drops
/// the connection at once, so the client cannot know whether the session holds it. After the
/// resume it is in `S` exactly once (replayed onto a handle that does not hold it, or held by
/// the handle resumed from and not replayed).
fn s19_in_flight(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.arc(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults()
        .schedule(FaultTrigger::ClientMessages(1), FaultAction::Drop);
    let (ctx, version) = appended(
        &pair,
        vec![Message::user("app-u1", "note sent as the socket died").into()],
    )?;
    pair.update_chat_ctx(ctx, version).map_err(err)?;
    let report = reconnected(&mut pair)?;
    barrier(&mut pair, "two")?;
    ensure_eq(
        "the append in S",
        occurrences_in_s(pair.server(), "user: note sent as the socket died"),
        1,
    )?;
    l_equals_s(&pair)?;
    ensure(report.strategy == ReconnectStrategy::Resumed, || {
        let handles = pair
            .server()
            .latest_session()
            .map(|s| s.handles_issued().to_vec());
        format!("not resumed: {report:?}; handles issued {handles:?}")
    })?;
    ensure_eq("generations", generations(pair.server()), 2)?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

fn s19_on_25(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.arc(), |b| b)?;
    barrier(&mut pair, "one")?;
    go_down(&mut pair)?;
    let (ctx, version) = appended(
        &pair,
        vec![Message::user("app-u1", "note made offline").into()],
    )?;
    pair.update_chat_ctx(ctx, version).map_err(err)?;
    let report = reconnected(&mut pair)?;
    ensure_eq("2.5 strategy", report.strategy, ReconnectStrategy::Resumed)?;
    barrier(&mut pair, "two")?;
    let carrying = all_frames_mentioning(pair.server(), "note made offline");
    ensure_eq("2.5 frames carrying the append", carrying.len(), 1)?;
    ensure(!asks_for_answer(&carrying[0]), || {
        format!("the append asked for an answer: {}", carrying[0])
    })?;
    ensure_eq(
        "2.5 the append in S",
        occurrences_in_s(pair.server(), "user: note made offline"),
        1,
    )?;
    l_equals_s(&pair)?;
    ensure_eq("2.5 generations", generations(pair.server()), 2)?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

fn s19_on_31(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini31, policy.arc(), |b| b)?;
    barrier(&mut pair, "one")?;
    go_down(&mut pair)?;
    let (ctx, version) = appended(
        &pair,
        vec![Message::user("app-u1", "note made offline").into()],
    )?;
    let typed = pair.update_chat_ctx(ctx, version);
    let first = reconnected(&mut pair)?;
    barrier(&mut pair, "two")?;
    no_rejections(pair.server())?;
    let fresh = first.strategy == ReconnectStrategy::Fresh;
    pair.drain();
    let reported = divergences(&pair).contains(&DivergenceReason::ClientContentForbidden);
    ensure(fresh || typed.is_err() || reported, || {
        "3.1: the offline append was neither seeded, refused nor reported".into()
    })?;
    let mut reconnects = 1;
    if !fresh && typed.is_ok() {
        // Reported and deferred: the next connection is fresh and its seed carries it.
        pair.faults().drop_connections();
        let report = reconnected(&mut pair)?;
        ensure_eq("3.1 strategy", report.strategy, ReconnectStrategy::Fresh)?;
        reconnects += 1;
        barrier(&mut pair, "three")?;
    }
    if typed.is_ok() {
        ensure_eq(
            "3.1 the append in S",
            occurrences_in_s(pair.server(), "user: note made offline"),
            1,
        )?;
        let carrying = all_frames_mentioning(pair.server(), "note made offline");
        ensure_eq("3.1 frames carrying the append", carrying.len(), 1)?;
    }
    for conn in pair.server().connections() {
        let history = setup_of(&conn)["setup"].get("historyConfig").is_some();
        ensure(
            history || conn.frames_of("clientContent").count() == 0,
            || format!("clientContent mid-session on connection {}", conn.id),
        )?;
    }
    l_equals_s(&pair)?;
    no_rejections(pair.server())?;
    reconnects_exactly(&mut pair, reconnects)?;
    finish(pair)
}
