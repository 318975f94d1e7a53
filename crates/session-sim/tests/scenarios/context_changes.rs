//! Context changes: S17–S22.
//!
//! Appends, edits, instruction and tool-set changes made by the application while a session
//! is live or down. Each body checks the server's context against `L`, the frames each
//! connection received, and the reconnect events the application saw.

use crate::runner::{PolicyKind, Scenario, check};

mod appends;
mod reconfigure;

use appends::{s17, s18, s19};
use reconfigure::{s20, s21, s22};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            id: "S17",
            title: "online append on 2.5: one clientContent(turnComplete:false), never re-sent",
            body: s17,
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S18",
            title: "online append on 3.1: no clientContent, reported, deferred to a fresh seed",
            body: s18,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S19",
            title: "offline append: delivered once after resume (2.5), reported then seeded (3.1)",
            body: s19,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S20",
            title: "edit and removal of old items: fresh session seeded from L, or reported",
            body: s20,
            exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
        },
        Scenario {
            id: "S21",
            title: "instruction change: setup of a resumed connection (2.5), contextUpdate (3.8)",
            body: s21,
            exposes: &[PolicyKind::ReplayAlways],
        },
        Scenario {
            id: "S22",
            title: "tool-set change mid-call: one resumed reconnect, the result delivered once",
            body: s22,
            exposes: &[PolicyKind::ReplayAlways],
        },
    ]
}

#[test]
fn s17_online_append_on_25() {
    check("S17");
}

#[test]
fn s18_online_append_on_31() {
    check("S18");
}

#[test]
fn s19_offline_append() {
    check("S19");
}

#[test]
fn s20_edits_and_removals() {
    check("S20");
}

#[test]
fn s21_instruction_change() {
    check("S21");
}

#[test]
fn s22_tool_set_change_mid_call() {
    check("S22");
}
