//! The reconnect scenario suite (`docs/scenarios.md`, S01–S22).
//!
//! Every scenario drives a `LiveSession` against an in-process `gemini-fake` over loopback and
//! checks the invariant on the **server's** context (the fake's inspection API): every item of
//! `L` the protocol lets through is in `S` exactly once, in order; no tool runs twice; no
//! answer is generated twice; what could not be delivered was reported by an event.
//!
//! Each scenario runs under the three shipped policies. `DefaultPolicy` must pass every one;
//! `ReplayAlways` and `SkipReplay` must fail the scenarios that exist to show their flaws (so
//! the table cannot quietly become meaningless). Run one scenario by name, e.g.
//! `cargo test -p agent-glue --test scenarios s13`; print the whole table with
//! `cargo test -p agent-glue --test scenarios scenario_table -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
mod runner;
mod support;

mod context_changes;
mod planned_rotation;
mod stale_handles;
mod tool_calls;
mod unplanned_drops;

use runner::{Scenario, run_row};

/// Every scenario, in id order.
fn all() -> Vec<Scenario> {
    let mut all = Vec::new();
    all.extend(planned_rotation::scenarios());
    all.extend(unplanned_drops::scenarios());
    all.extend(stale_handles::scenarios());
    all.extend(tool_calls::scenarios());
    all.extend(context_changes::scenarios());
    all.sort_by_key(|s| s.id);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_table() {
    let mut rows = Vec::new();
    for scenario in all() {
        rows.push(run_row(&scenario).await);
    }
    println!("{}", runner::table(&rows));
    let broken: Vec<String> = rows.iter().filter_map(|row| row.verdict().err()).collect();
    assert!(
        broken.is_empty(),
        "{}\n{}",
        runner::table(&rows),
        broken.join("\n")
    );
}
