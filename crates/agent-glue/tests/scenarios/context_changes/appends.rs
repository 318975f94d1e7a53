//! S17–S19: appends made online, offline and in flight, on 2.5 and 3.1.

use agent_glue::{ReconnectStrategy, SessionEvent};
use ctx_model::Message;
use gemini_fake::{FakeServer, Family, FaultAction, Trigger as FaultTrigger};
use resume_policy::DivergenceReason;

use crate::common::*;
use crate::runner::{Outcome, PolicyKind, ensure, ensure_eq};
use crate::support::*;

use super::observe::*;

// S17 ------------------------------------------------------------------------------------

pub(super) async fn s17(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), |b| b).await?;
    watch.barrier(&session, "one").await?;
    let (ctx, version) = appended(
        &session,
        vec![
            Message::user("app-u1", "remember the code 42").into(),
            Message::model("app-m1", "noted the code").into(),
        ],
    )?;
    session.update_chat_ctx(ctx, version).map_err(err)?;
    // The typed turn after it proves the append was processed (and its handle covers it).
    watch.barrier(&session, "two").await?;
    let first = server.connections().remove(0);
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
    l_equals_s(&server, &session)?;
    ensure_eq("generations after the append", generations(&server), 2)?;

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
    l_equals_s(&server, &session)?;
    ensure_eq("generations", generations(&server), 3)?;
    no_rejections(&server)?;
    watch.reconnects_exactly(1)?;
    close(session).await
}

// S18 ------------------------------------------------------------------------------------

pub(super) async fn s18(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini31, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), |b| b).await?;
    watch.barrier(&session, "one").await?;
    let (ctx, version) = appended(
        &session,
        vec![Message::user("app-u1", "remember the code 42").into()],
    )?;
    // A typed result is acceptable; silence is not (checked through the events below).
    let typed = session.update_chat_ctx(ctx, version);
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
    watch.drain();
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
        ensure(history_in_client_content(&setup), || {
            format!("a fresh 3.1 seed without historyConfig: {setup}")
        })?;
        watch.barrier(&session, "three").await?;
        let connections = server.connections();
        ensure_eq("connections", connections.len(), 2)?;
        let seeds = frames_mentioning(&connections[1], "remember the code 42");
        ensure_eq("seeds carrying the append", seeds.len(), 1)?;
        ensure_eq("generations of the seeded session", generations(&server), 1)?;
        ensure_eq(
            "the append in S",
            occurrences_in_s(&server, "user: remember the code 42"),
            1,
        )?;
        l_equals_s(&server, &session)?;
    } else {
        watch.barrier(&session, "three").await?;
        l_equals_s(&server, &session)?;
    }
    no_rejections(&server)?;
    watch.reconnects_exactly(1)?;
    close(session).await
}

// S19 ------------------------------------------------------------------------------------

/// Drops the connection and holds the session down (two refused dials); returns once the
/// application has seen `Reconnecting`.
async fn go_down(server: &FakeServer, watch: &mut Seen) -> Outcome {
    server.faults().refuse_upgrades(2, 503);
    server.faults().drop_connections();
    watch
        .until("reconnecting", |e| {
            matches!(e, SessionEvent::Reconnecting { .. })
        })
        .await
        .map(|_| ())
}

pub(super) async fn s19(policy: PolicyKind) -> Outcome {
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
    let (session, mut watch) = open(&server, policy.boxed(), |b| b).await?;
    watch.barrier(&session, "one").await?;
    server
        .faults()
        .schedule(FaultTrigger::ClientMessages(1), FaultAction::Drop);
    let (ctx, version) = appended(
        &session,
        vec![Message::user("app-u1", "note sent as the socket died").into()],
    )?;
    session.update_chat_ctx(ctx, version).map_err(err)?;
    let report = watch.reconnected().await?;
    watch.barrier(&session, "two").await?;
    ensure_eq(
        "the append in S",
        occurrences_in_s(&server, "user: note sent as the socket died"),
        1,
    )?;
    l_equals_s(&server, &session)?;
    ensure(report.strategy == ReconnectStrategy::Resumed, || {
        let handles = server.latest_session().map(|s| s.handles_issued().to_vec());
        format!("not resumed: {report:?}; handles issued {handles:?}")
    })?;
    ensure_eq("generations", generations(&server), 2)?;
    no_rejections(&server)?;
    watch.reconnects_exactly(1)?;
    close(session).await
}

async fn s19_on_25(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), |b| b).await?;
    watch.barrier(&session, "one").await?;
    go_down(&server, &mut watch).await?;
    let (ctx, version) = appended(
        &session,
        vec![Message::user("app-u1", "note made offline").into()],
    )?;
    session.update_chat_ctx(ctx, version).map_err(err)?;
    let report = watch.reconnected().await?;
    ensure_eq("2.5 strategy", report.strategy, ReconnectStrategy::Resumed)?;
    watch.barrier(&session, "two").await?;
    let carrying = all_frames_mentioning(&server, "note made offline");
    ensure_eq("2.5 frames carrying the append", carrying.len(), 1)?;
    ensure(!asks_for_answer(&carrying[0]), || {
        format!("the append asked for an answer: {}", carrying[0])
    })?;
    ensure_eq(
        "2.5 the append in S",
        occurrences_in_s(&server, "user: note made offline"),
        1,
    )?;
    l_equals_s(&server, &session)?;
    ensure_eq("2.5 generations", generations(&server), 2)?;
    no_rejections(&server)?;
    watch.reconnects_exactly(1)?;
    close(session).await
}

async fn s19_on_31(policy: PolicyKind) -> Outcome {
    let server = server(Family::Gemini31, |c| c).await;
    let (session, mut watch) = open(&server, policy.boxed(), |b| b).await?;
    watch.barrier(&session, "one").await?;
    go_down(&server, &mut watch).await?;
    let (ctx, version) = appended(
        &session,
        vec![Message::user("app-u1", "note made offline").into()],
    )?;
    let typed = session.update_chat_ctx(ctx, version);
    let first = watch.reconnected().await?;
    watch.barrier(&session, "two").await?;
    no_rejections(&server)?;
    let fresh = first.strategy == ReconnectStrategy::Fresh;
    watch.drain();
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
    l_equals_s(&server, &session)?;
    no_rejections(&server)?;
    watch.reconnects_exactly(reconnects)?;
    close(session).await
}
