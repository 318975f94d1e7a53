//! What the application is told about reconnects: S32.

use std::time::Duration;

use agent_glue::{ReconnectReason, SessionEvent};
use gemini_fake::Family;

use crate::runner::{Outcome, PolicyKind, Scenario, check, ensure, ensure_eq};
use crate::support::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        id: "S32",
        title: "one Reconnecting, then one Reconnected with its gap, per reconnect of every kind",
        body: s32,
        exposes: &[],
    }]
}

#[test]
fn s32_one_reconnecting_and_one_reconnected_per_reconnect() {
    check("S32");
}

/// A drop whose first two re-dials are refused, a goAway rotation and a 1011 close: three
/// reconnects, each one `Reconnecting` (with its reason) then one `Reconnected`, whose
/// `attempts` count the dials and whose `gap` is the time between the two events, as the
/// application saw them (virtual time: exactly).
fn s32(policy: PolicyKind) -> Outcome {
    let mut pair = open(Family::Gemini25, policy.fast(), |b| b)?;
    barrier(&mut pair, "one")?;
    pair.faults().refuse_upgrades(2, 503);
    pair.faults().drop_connections();
    reconnected(&mut pair)?;
    barrier(&mut pair, "two")?;
    pair.faults().go_away(Duration::from_secs(20));
    reconnected(&mut pair)?;
    barrier(&mut pair, "three")?;
    pair.faults()
        .close_connections(1011, "Internal error encountered.");
    reconnected(&mut pair)?;
    barrier(&mut pair, "four")?;
    ensure_eq("paired reconnects", paired_reconnects(&pair)?, 3)?;
    let mut reasons_seen = Vec::new();
    let mut attempts = Vec::new();
    let mut started = None;
    for (at, event) in pair.read_events() {
        match event {
            SessionEvent::Reconnecting { reason } => {
                started = Some(*at);
                reasons_seen.push(match reason {
                    ReconnectReason::ConnectionLost { code, .. } => format!("lost {code}"),
                    ReconnectReason::GoAway { .. } => "goAway".to_owned(),
                    other => format!("{other:?}"),
                });
            }
            SessionEvent::Reconnected(report) => {
                let began = started
                    .take()
                    .ok_or("a Reconnected without its Reconnecting")?;
                ensure_eq(
                    "the gap, against the events' times",
                    report.gap,
                    Duration::from_millis(at - began),
                )?;
                attempts.push(report.attempts);
            }
            _ => {}
        }
    }
    ensure_eq(
        "reasons",
        reasons_seen,
        strings(&["lost 1006", "goAway", "lost 1011"]),
    )?;
    ensure_eq("dials per reconnect", attempts, vec![3, 1, 1])?;
    ensure(started.is_none(), || "a Reconnecting left open".to_owned())?;
    finish(pair)
}
