//! Limits and errors: S28–S30.

use agent_glue::{ReconnectStrategy, SessionEvent};
use gemini_fake::Family;
use gemini_transport::wire::ContextWindowCompression;
use resume_policy::{DivergenceReason, ModelCapabilities, ModelFamily, SeedLimit};
use serde_json::Value;

use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S28",
            title: "compression, then a refused resume: the seed keeps within the model's limits",
            body: s28,
            // Both seed all of `L`, whatever the model takes.
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S29",
            title: "1007 on a payload mid-session: reported, never re-sent, no reconnect loop",
            body: s29,
            // ReplayAlways sends the refused payload again on every connection; SkipReplay
            // drops it without a word.
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S30",
            title: "keepalive: a long silence keeps the connection; a ping timeout is transient",
            body: s30,
            // ReplayAlways sends the history again on the resumed connection.
            exposes: &[PolicyKind::ReplayAlways],
        },
    ]
}

#[test]
fn s28_seed_within_size_limits() {
    check("S28");
}

#[test]
fn s29_1007_mid_session() {
    check("S29");
}

#[test]
fn s30_keepalive() {
    check("S30");
}

// ---------------------------------------------------------------------------------------------
// S28

/// The seed limit of S28: six items, 400 characters.
const LIMIT: SeedLimit = SeedLimit {
    max_items: 6,
    max_chars: 400,
};

/// Characters of text in a seed frame's turns.
fn seed_chars(seed: &Value) -> usize {
    seed["clientContent"]["turns"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|turn| turn["parts"].as_array().into_iter().flatten())
        .filter_map(|part| part["text"].as_str())
        .map(str::len)
        .sum()
}

/// S28: with server-side compression on, a long session's `L` outgrows what a new session
/// accepts (here a limit of six items and 400 characters, set through the model's
/// capabilities). The resume is refused: the fresh session's seed holds the newest items
/// within the limits, starting at a user turn, and the oldest ones are reported as trimmed
/// (`Divergence` with `SeedTrimmed`), never silently missing.
fn s28(policy: PolicyKind) -> Outcome {
    let mut caps = ModelCapabilities::for_family(ModelFamily::Gemini25);
    caps.seed_limit = LIMIT;
    let mut pair = open(Family::Gemini25, policy.arc(), move |b| {
        b.session(move |s| {
            s.compression(ContextWindowCompression::sliding_window())
                .capabilities(caps)
        })
    })?;
    ensure(
        setup_of(&pair.server().connections()[0])["setup"]
            .get("contextWindowCompression")
            .is_some(),
        || "compression not asked for in the setup".into(),
    )?;
    let turns: Vec<String> = (1..=6)
        .map(|k| format!("t{k} with a few words of text in it"))
        .collect();
    for turn in &turns {
        barrier(&mut pair, turn)?;
    }
    pair.faults()
        .refuse_next_resume(1007, "Request contains an invalid argument.");
    pair.faults().drop_connections();
    let report = reconnected(&mut pair)?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Fresh)?;
    barrier(&mut pair, "after")?;
    let connections = pair.server().connections();
    let fresh = connections.last().ok_or("no connection")?;
    let seed = fresh
        .frames_of("clientContent")
        .next()
        .map(|f| f.json())
        .ok_or("no seed on the fresh connection")?;
    let items = seed["clientContent"]["turns"]
        .as_array()
        .map_or(0, Vec::len);
    ensure(items <= LIMIT.max_items, || {
        format!("{items} items in the seed, over {}", LIMIT.max_items)
    })?;
    let chars = seed_chars(&seed);
    ensure(chars <= LIMIT.max_chars, || {
        format!("{chars} characters in the seed, over {}", LIMIT.max_chars)
    })?;
    ensure(
        seed["clientContent"]["turns"][0]["role"].as_str() == Some("user"),
        || format!("the seed does not start with a user turn: {seed}"),
    )?;
    pair.drain();
    let trimmed: Vec<_> = read(&pair)
        .filter_map(|e| match e {
            SessionEvent::Divergence {
                why: DivergenceReason::SeedTrimmed,
                items,
                ..
            } => Some(items.len()),
            _ => None,
        })
        .collect();
    let held = 2 * turns.len();
    ensure_eq("items reported as trimmed", trimmed, vec![held - items])?;
    // The fresh session holds the newest items and the turn after the seed, nothing twice.
    let s = s_entries(pair.server());
    let l = l_entries(pair.chat_ctx());
    ensure_eq(
        "S is the newest of L",
        s.as_slice(),
        &l[l.len() - s.len()..],
    )?;
    // (Connection 2 was the refused resume, closed with 1007 by the fault: no other close.)
    reconnects_exactly(&mut pair, 1)?;
    finish(pair)
}

// ---------------------------------------------------------------------------------------------
// S29

/// The text the fake refuses (a stand-in for a payload the service cannot take).
const REFUSED: &str = "t2 refused payload";

/// S29: the server closes the connection with 1007 on a message it cannot take (the fake
/// refuses every message carrying [`REFUSED`], as the service refuses an invalid argument
/// whenever it is sent). The session takes the close as that payload's, reports it
/// (`Divergence` with `RejectedByServer`), reconnects once without it, and goes on: the
/// payload reached the server once and is never sent again, no reconnect loop.
fn s29(policy: PolicyKind) -> Outcome {
    each_case([Family::Gemini25, Family::Gemini38], |family| {
        s29_on(policy, family)
    })
}

fn s29_on(policy: PolicyKind, family: Family) -> Outcome {
    let mut pair = open(family, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults().reject_messages_containing(
        REFUSED,
        1007,
        "Request contains an invalid argument.",
    );
    pair.send_text(REFUSED).map_err(err)?;
    // The 1007 is expected here: read past it (the suite's waits stop at one).
    let report = match pair.until("Reconnected", |e| {
        matches!(
            e,
            SessionEvent::Reconnected(_) | SessionEvent::Closed { .. }
        )
    })? {
        SessionEvent::Reconnected(report) => report,
        other => return Err(format!("the session ended: {other:?}")),
    };
    ensure(
        matches!(
            reasons(&pair).as_slice(),
            [agent_glue::ReconnectReason::ConnectionLost { code: 1007, .. }]
        ),
        || format!("reasons: {:?}", reasons(&pair)),
    )?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
    barrier(&mut pair, "three")?;
    pair.run_for(5_000);
    pair.drain();
    let rejected: Vec<usize> = read(&pair)
        .filter_map(|e| match e {
            SessionEvent::Divergence {
                why: DivergenceReason::RejectedByServer { code: 1007 },
                items,
                ..
            } => Some(items.len()),
            _ => None,
        })
        .collect();
    ensure_eq("reports of the refused payload", rejected, vec![1])?;
    ensure_eq(
        "frames carrying the refused payload",
        all_frames_mentioning(pair.server(), REFUSED).len(),
        1,
    )?;
    ensure_eq("connections", pair.server().connections().len(), 2)?;
    ensure_eq(
        "S",
        s_entries(pair.server()),
        strings(&[
            "user: one",
            "model: echo: one",
            "user: three",
            "model: echo: three",
        ]),
    )?;
    reconnects_exactly(&mut pair, 1)?;
    // The simulator counts every 1007 after a setup as a refused payload: this one is the
    // scenario's own fault. Everything else of the invariant holds.
    finish_except(pair, &["rejected payload"])
}

// ---------------------------------------------------------------------------------------------
// S30

/// Ten minutes of silence on a healthy connection: the keepalive pings it (a ping every 10 s,
/// answered at once) and keeps it, with no reconnect. Then the server answers pings 25 s late
/// (as the service has been seen to): within the keepalive timeout (40 s), so ten more minutes
/// pass without a reconnect. Then pongs 60 s late on a silent connection: past the timeout the
/// connection is given up as lost (1006, transient), the session resumes once, and the
/// conversation goes on with nothing lost or repeated.
fn s30(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.run_for(10 * 60_000);
    ensure_eq("reconnects over a long silence", reasons(&pair).len(), 0)?;
    pair.slow_pongs(25_000);
    pair.run_for(10 * 60_000);
    ensure_eq("reconnects with pongs 25 s late", reasons(&pair).len(), 0)?;
    ensure_eq(
        "connections after twenty minutes",
        pair.server().connections().len(),
        1,
    )?;
    pair.slow_pongs(60_000);
    // The next ping within 10 s, its verdict 40 s later.
    pair.set_step(60_000);
    let report = reconnected(&mut pair)?;
    pair.set_step(3_000);
    ensure(
        matches!(
            reasons(&pair).first(),
            Some(agent_glue::ReconnectReason::ConnectionLost { code: 1006, .. })
        ),
        || format!("reasons: {:?}", reasons(&pair)),
    )?;
    ensure_eq("strategy", report.strategy, ReconnectStrategy::Resumed)?;
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
        1,
    )
}
