//! The reconnect scenario suite (S01–S30 and S47 onward of the scenario list) on the scripted pair: the real
//! session core and the fake server's real session logic on virtual time
//! (`session_sim::Pair`), so the whole suite runs in a fraction of a second of wall time.
//!
//! Every scenario checks the invariant on the **server's** context (the fake's own records):
//! every item of `L` the protocol lets through is in `S` exactly once, in order; no tool runs
//! twice; no answer is generated twice; what could not be delivered was reported by an event;
//! and it ends with `Pair::finish`, the simulator's whole invariant. Where the scenario is
//! about the wire, it checks the exact frames each connection received.
//!
//! Each scenario runs under the three shipped policies. `DefaultPolicy` must pass every one;
//! `ReplayAlways` and `SkipReplay` must fail the scenarios that exist to show their flaws (so
//! the table cannot quietly become meaningless). Run one scenario by name, e.g.
//! `cargo test -p session-sim --test scenarios s13`; print the whole table with
//! `cargo test -p session-sim --test scenarios scenario_table -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod runner;
mod support;

mod context_changes;
mod events;
mod found;
mod limits;
mod long_sessions;
mod modes;
mod non_blocking;
mod planned_rotation;
mod restarts;
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
    all.extend(modes::scenarios());
    all.extend(limits::scenarios());
    all.extend(long_sessions::scenarios());
    all.extend(non_blocking::scenarios());
    all.extend(events::scenarios());
    all.extend(found::scenarios());
    all.extend(restarts::scenarios());
    all.sort_by_key(|s| s.id);
    all
}

#[test]
fn scenario_table() {
    let rows: Vec<_> = all().iter().map(run_row).collect();
    println!("{}", runner::table(&rows));
    let broken: Vec<String> = rows.iter().filter_map(|row| row.verdict().err()).collect();
    assert!(
        broken.is_empty(),
        "{}\n{}",
        runner::table(&rows),
        broken.join("\n")
    );
    readme_shows(&rows);
}

/// The README's three-policy table is this run's: the block between its
/// `<!-- scenario-table -->` markers equals the table the rows make
/// (`UPDATE_README=1 cargo test -p session-sim --test scenarios scenario_table` rewrites it).
fn readme_shows(rows: &[runner::Row]) {
    const OPEN: &str = "<!-- scenario-table -->\n";
    const CLOSE: &str = "<!-- /scenario-table -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md readable");
    let start = readme
        .find(OPEN)
        .expect("README has the table's opening marker")
        + OPEN.len();
    let end = start
        + readme[start..]
            .find(CLOSE)
            .expect("README has the closing marker");
    let table = runner::markdown(rows);
    if readme[start..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).expect("README.md writable");
        return;
    }
    panic!(
        "README.md's scenario table is not this run's; run with UPDATE_README=1 to rewrite it:\n{table}"
    );
}
