//! Long sessions on 3.8 (docs/protocol.md section 10.1): S47–S48. A 3.8 connection that is
//! left to run is closed at 58:00 with 1011 and no `goAway`, and the resume after it is
//! sometimes refused with 1007; the session rotates of its own accord before that
//! (`LiveSessionBuilder::connection_age`: from 45:00 at an idle point, by 50:00 in any case).
//! Virtual time: an hour of a session costs the events in it.

use std::time::Duration;

use agent_glue::{ConnectionAge, ReconnectReason, ReconnectStrategy, SessionEvent};
use gemini_fake::{ConnectionEnd, Family};
use session_sim::Pair;

use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S47",
            title: "connection age: rotate when idle after 45:00, a busy session waits for its idle point or is forced at 50:00",
            body: s47,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S48",
            title: "the 58:00 hard close: never met with the age limit; without it, 1011 then a refused resume, one fresh seed",
            body: s48,
            exposes: &[PolicyKind::ReplayAlways],
        },
    ]
}

#[test]
fn s47_rotation_at_the_connection_age() {
    check("S47");
}

#[test]
fn s48_hard_close_at_58_minutes() {
    check("S48");
}

const MINUTE: u64 = 60_000;

/// The default `rotate_after` and `max`, in virtual ms.
const ROTATE_AFTER: u64 = 45 * MINUTE;
const MAX_AGE: u64 = 50 * MINUTE;

/// When the service closes a 3.8 connection left to run (docs/protocol.md section 10.1).
const HARD_CLOSE: u64 = 58 * MINUTE;

/// The reason the service gives with it.
const DEADLINE_EXPIRED: &str = "Deadline expired before operation could complete.";

/// A user turn whose answer lasts `10 × chunk interval` (one chunk per word).
const LONG: &str = "please tell me a long story about the sea";

/// A 3.8 session whose answers stream one word per `chunk` ms, with the session's default
/// connection age (or `age`).
fn open_38(policy: PolicyKind, chunk: u64, age: Option<ConnectionAge>) -> Result<Pair, String> {
    let mut pair = open(Family::Gemini38, policy.fast(), move |b| {
        b.server(move |c| c.with_chunk_interval(Duration::from_millis(chunk)))
            .session(move |s| s.connection_age(age))
    })?;
    // Waits in these scenarios are minutes long.
    pair.set_step(20 * MINUTE);
    Ok(pair)
}

/// The reasons of the reconnects so far, and the virtual time of each `Reconnecting`.
fn reconnecting_times(pair: &Pair) -> Vec<(u64, ReconnectReason)> {
    pair.events()
        .iter()
        .filter_map(|(at, e)| match e {
            SessionEvent::Reconnecting { reason } => Some((*at, reason.clone())),
            _ => None,
        })
        .collect()
}

/// When connection `k` (0-based) opened and ended, in virtual ms.
fn lifetime(pair: &Pair, k: usize) -> (u64, Option<u64>) {
    let server = pair.server();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    server.connections().get(k).map_or((0, None), |c| {
        (
            ms(server.time_of(c.opened_at)),
            c.end.as_ref().map(|(_, t)| ms(server.time_of(*t))),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// S47

fn s47(policy: PolicyKind) -> Outcome {
    s47_idle(policy).map_err(|e| format!("(idle at 45:00) {e}"))?;
    s47_busy_then_idle(policy).map_err(|e| format!("(busy at 45:00, idle before 50:00) {e}"))?;
    s47_busy_until_the_max(policy).map_err(|e| format!("(busy until 50:00) {e}"))
}

/// Idle with a fresh handle when the connection turns 45 minutes old: the session resumes
/// from that handle at once, with nothing to replay, and `S` stays as it was.
fn s47_idle(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, 5, Some(ConnectionAge::default()))?;
    barrier(&mut pair, "one")?;
    barrier(&mut pair, "two")?;
    let before = s_entries(pair.server());
    pair.run_until_time(ROTATE_AFTER - 1);
    ensure_eq(
        "connections before 45:00",
        pair.server().connections().len(),
        1,
    )?;
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    let reasons = reconnecting_times(&pair);
    ensure_eq(
        "reconnects",
        reasons,
        vec![(
            ROTATE_AFTER,
            ReconnectReason::ConnectionAge {
                age: Duration::from_millis(ROTATE_AFTER),
                forced: false,
            },
        )],
    )?;
    closed_by_client(pair.server(), 0)?;
    ensure_eq(
        "resumed from",
        pair.server()
            .connections()
            .get(1)
            .and_then(|c| c.resumed_from.clone()),
        last_handle_on(pair.server(), 0),
    )?;
    ensure_eq(
        "S after the rotation",
        s_entries(pair.server()),
        before.clone(),
    )?;
    barrier(&mut pair, "three")?;
    ensure_eq(
        "frames after the resumed setup",
        kinds_after_setup_on(pair.server(), 1),
        vec!["clientContent".to_owned()],
    )?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    ends_with(pair, &expected, 3, 1)
}

/// After "three" was answered: the long turn and its answer are in `S` once and `L == S`,
/// the latest session generated `generations` answers, nothing ran twice, one reconnect.
fn s47_ends(pair: Pair, generations_expected: u32) -> Outcome {
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

/// The model answers at 45:00 (a 100 s answer started at 44:30): the session waits for the
/// turn to complete and the handle issued with it, then rotates, before 50:00 and without
/// cutting anything.
fn s47_busy_then_idle(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, 10_000, Some(ConnectionAge::default()))?;
    barrier(&mut pair, "one")?;
    pair.run_until_time(ROTATE_AFTER - 30_000);
    pair.send_text(LONG).map_err(err)?;
    first_chunk(&mut pair, "first chunk of the long answer")?;
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
    let reasons = reconnecting_times(&pair);
    let rotated_at = reasons.first().map(|(at, _)| *at).unwrap_or_default();
    ensure((ROTATE_AFTER..MAX_AGE).contains(&rotated_at), || {
        format!("rotated at {rotated_at} ms, not between 45:00 and 50:00")
    })?;
    ensure_eq(
        "reconnects",
        reasons,
        vec![(
            rotated_at,
            ReconnectReason::ConnectionAge {
                age: Duration::from_millis(rotated_at),
                forced: false,
            },
        )],
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
    closed_by_client(pair.server(), 0)?;
    barrier(&mut pair, "three")?;
    ensure_eq(
        "frames after the resumed setup",
        kinds_after_setup_on(pair.server(), 1),
        vec!["clientContent".to_owned()],
    )?;
    s47_ends(pair, 3)
}

/// The model still answers at 50:00 (a ten-minute answer started at 44:30): the maximum
/// forces the rotation mid-turn, exactly at 50:00; the turn is closed locally as interrupted,
/// and the user turn ends up in `S` exactly once (answered again on the new connection).
fn s47_busy_until_the_max(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, 60_000, Some(ConnectionAge::default()))?;
    barrier(&mut pair, "one")?;
    pair.run_until_time(ROTATE_AFTER - 30_000);
    pair.send_text(LONG).map_err(err)?;
    first_chunk(&mut pair, "first chunk of the long answer")?;
    let report = reconnected(&mut pair)?;
    cut_before_rotating(&pair)?;
    ensure_eq(
        "reconnects",
        reconnecting_times(&pair),
        vec![(
            MAX_AGE,
            ReconnectReason::ConnectionAge {
                age: Duration::from_millis(MAX_AGE),
                forced: true,
            },
        )],
    )?;
    closed_by_client(pair.server(), 0)?;
    let (_, closed_at) = lifetime(&pair, 0);
    ensure(closed_at.is_some_and(|t| t < MAX_AGE + 1_000), || {
        format!("old socket closed at {closed_at:?} ms")
    })?;
    ensure(report.gap < Duration::from_secs(1), || {
        format!("gap {:?}", report.gap)
    })?;
    answered_again(&mut pair, LONG, 20 * MINUTE)?;
    // one, the cut answer, its replay, three.
    s47_ends(pair, 4)
}

// ---------------------------------------------------------------------------------------------
// S48

fn s48(policy: PolicyKind) -> Outcome {
    s48_never_met(policy).map_err(|e| format!("(with the age limit) {e}"))?;
    s48_without_the_limit(policy).map_err(|e| format!("(without the age limit) {e}"))
}

/// Plays the service for two hours of virtual time from now: every connection still open at
/// 58:00 of its age is closed with 1011 `Deadline expired` and no `goAway`. Returns how many
/// it closed so.
fn serve_hard_closes(pair: &mut Pair, until: u64) -> usize {
    let mut closed = 0;
    loop {
        let open = pair
            .server()
            .connections()
            .iter()
            .rposition(|c| c.is_open());
        let Some(k) = open else {
            // Between two connections: run until the next one opens.
            let n = pair.server().connections().len();
            let within = until.saturating_sub(pair.now());
            if within == 0 || !pair.run_until(within, |p| p.server().connections().len() > n) {
                return closed;
            }
            continue;
        };
        let (opened, _) = lifetime(pair, k);
        let close_at = opened + HARD_CLOSE;
        let stop = close_at.min(until);
        let ends = pair.run_until(stop.saturating_sub(pair.now()), |p| {
            p.server()
                .connections()
                .get(k)
                .is_some_and(|c| !c.is_open())
        });
        if ends {
            continue;
        }
        if pair.now() >= until {
            return closed;
        }
        pair.faults().close_connections(1011, DEADLINE_EXPIRED);
        closed += 1;
        pair.run_for(1);
    }
}

/// With the default age limit, two hours pass without meeting the hard close: every
/// connection is rotated by the session at 45:00 of its age, resumed, and `S` is intact.
fn s48_never_met(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, 5, Some(ConnectionAge::default()))?;
    barrier(&mut pair, "one")?;
    let hard_closes = serve_hard_closes(&mut pair, 120 * MINUTE);
    ensure_eq("hard closes", hard_closes, 0)?;
    let reasons = reconnecting_times(&pair);
    ensure_eq(
        "reconnects",
        reasons,
        vec![
            (
                ROTATE_AFTER,
                ReconnectReason::ConnectionAge {
                    age: Duration::from_millis(ROTATE_AFTER),
                    forced: false,
                },
            ),
            (
                2 * ROTATE_AFTER,
                ReconnectReason::ConnectionAge {
                    age: Duration::from_millis(ROTATE_AFTER),
                    forced: false,
                },
            ),
        ],
    )?;
    let connections = pair.server().connections();
    ensure_eq("connections", connections.len(), 3)?;
    for k in 0..2 {
        closed_by_client(pair.server(), k)?;
    }
    ensure(
        connections[1..].iter().all(|c| c.resumed_from.is_some()),
        || "a rotation did not resume".into(),
    )?;
    barrier(&mut pair, "two")?;
    ends_with(
        pair,
        &[
            "user: one",
            "model: echo: one",
            "user: two",
            "model: echo: two",
        ],
        2,
        2,
    )
}

/// Without an age limit the connection meets the service's 58:00: closed with 1011 and no
/// `goAway`. The resume after it is refused with 1007: the session drops the handle and
/// seeds one fresh session from `L`, once, with nothing to answer; no loop.
fn s48_without_the_limit(policy: PolicyKind) -> Outcome {
    let mut pair = open_38(policy, 5, None)?;
    barrier(&mut pair, "one")?;
    barrier(&mut pair, "two")?;
    let before = s_entries(pair.server());
    let old_session = pair.server().latest_session().map(|s| s.id());
    pair.run_until_time(HARD_CLOSE - 1);
    ensure_eq(
        "connections before 58:00",
        pair.server().connections().len(),
        1,
    )?;
    pair.run_until_time(HARD_CLOSE);
    pair.faults()
        .refuse_next_resume(1007, "Request contains an invalid argument.");
    pair.faults().close_connections(1011, DEADLINE_EXPIRED);
    let report = reconnected(&mut pair)?;
    ensure_eq(
        "reasons",
        reasons(&pair),
        vec![ReconnectReason::ConnectionLost {
            code: 1011,
            reason: DEADLINE_EXPIRED.to_owned(),
        }],
    )?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
    ensure(report.state_restored, || {
        format!("nothing was lost, but: {report:?}")
    })?;
    ensure_eq("attempts", report.attempts, 2)?;
    let refusals = warnings(&pair)
        .iter()
        .filter(|w| w.contains("refused to resume"))
        .count();
    ensure_eq("refusals reported", refusals, 1)?;
    let n = before.len();
    pair.until_server("the seed in a new session", WAIT, |s| {
        s.inspect(|v| {
            v.connections().get(2).is_some_and(|c| c.frames.len() >= 2)
                && v.latest_session()
                    .is_some_and(|s| Some(s.id()) != old_session && s.context().len() >= n)
        })
    })?;
    let connections = pair.server().connections();
    ensure_eq("connections", connections.len(), 3)?;
    ensure(
        matches!(
            &connections[0].end,
            Some((ConnectionEnd::ServerClose { code: 1011, .. }, _))
        ),
        || format!("the first connection ended {:?}", connections[0].end),
    )?;
    ensure_eq(
        "the second connection was a refused resume",
        (
            setup_of(&connections[1])["setup"]["sessionResumption"]["handle"].is_string(),
            connections[1].closed_with().map(|(code, _)| code),
        ),
        (true, Some(1007)),
    )?;
    ensure(connections[2].resumed_from.is_none(), || {
        "the third connection resumed".into()
    })?;
    // One seed, all of `L`, asking for nothing.
    let fresh = pair.server().latest_session().ok_or("no server session")?;
    ensure_eq("seeded S", from_s(fresh.context()), before.clone())?;
    ensure_eq("answers in the fresh session", fresh.generations(), 0)?;
    let seed = connections[2]
        .frames
        .get(1)
        .ok_or("no seed on the fresh connection")?
        .json();
    ensure_eq("seed turnComplete", asks_for_answer(&seed), false)?;
    barrier(&mut pair, "three")?;
    pair.drain();
    ensure_eq(
        "frames after the fresh setup",
        kinds_after_setup_on(pair.server(), 2),
        vec!["clientContent".to_owned(), "clientContent".to_owned()],
    )?;
    let mut expected = before;
    expected.extend(["user: three".to_owned(), "model: echo: three".to_owned()]);
    contexts_are(&pair, &expected)?;
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}
