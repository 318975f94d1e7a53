//! Runs a scenario under each policy and checks the row of the table.

use std::sync::Arc;
use std::time::Duration;

use resume_policy::{Backoff, DefaultPolicy, EditHandling, ReplayAlways, ResumePolicy, SkipReplay};

/// The outcome of one scenario run: `Err` says which part of the invariant broke.
pub type Outcome = Result<(), String>;

/// A scenario body, run once per policy.
pub type Body = fn(PolicyKind) -> Outcome;

/// The shipped policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Default,
    ReplayAlways,
    SkipReplay,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [Self::Default, Self::ReplayAlways, Self::SkipReplay];

    /// The policy with its default backoff.
    pub fn arc(self) -> Arc<dyn ResumePolicy> {
        match self {
            Self::Default => Arc::new(DefaultPolicy::default()),
            Self::ReplayAlways => Arc::new(ReplayAlways::default()),
            Self::SkipReplay => Arc::new(SkipReplay::default()),
        }
    }

    /// The policy with a short backoff (20 ms base, 200 ms at most), for scenarios whose
    /// figures (gaps, attempts) are stated for it.
    pub fn fast(self) -> Arc<dyn ResumePolicy> {
        let mut backoff = Backoff::default();
        backoff.base = Duration::from_millis(20);
        backoff.max = Duration::from_millis(200);
        match self {
            Self::Default => Arc::new(DefaultPolicy::new(backoff, EditHandling::default())),
            Self::ReplayAlways => Arc::new(ReplayAlways { backoff }),
            Self::SkipReplay => Arc::new(SkipReplay { backoff }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "DefaultPolicy",
            Self::ReplayAlways => "ReplayAlways",
            Self::SkipReplay => "SkipReplay",
        }
    }
}

/// One scenario of docs/scenarios.md.
pub struct Scenario {
    /// `"S01"`.
    pub id: &'static str,
    /// A short title.
    pub title: &'static str,
    /// The body.
    pub body: Body,
    /// Legacy policies this scenario exists to expose: they must fail it.
    pub exposes: &'static [PolicyKind],
}

/// A scenario's results under each policy.
pub struct Row {
    pub id: &'static str,
    pub title: &'static str,
    pub results: Vec<(PolicyKind, Outcome)>,
    pub exposes: &'static [PolicyKind],
}

impl Row {
    /// The cell of `policy`: `pass`, `failed`, or `-` when it did not run.
    fn cell(&self, policy: PolicyKind, failed: &'static str) -> &'static str {
        self.results
            .iter()
            .find(|(p, _)| *p == policy)
            .map_or(
                "-",
                |(_, outcome)| if outcome.is_ok() { "pass" } else { failed },
            )
    }

    /// `Ok` when the default passed and every exposed legacy policy failed.
    pub fn verdict(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        for (policy, outcome) in &self.results {
            match (policy, outcome) {
                (PolicyKind::Default, Err(why)) => {
                    problems.push(format!("{} under DefaultPolicy: {why}", self.id));
                }
                (legacy, Ok(())) if self.exposes.contains(legacy) => problems.push(format!(
                    "{} under {} passed, but the scenario exists to show its flaw",
                    self.id,
                    legacy.name()
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

/// Runs `scenario` under every policy.
pub fn run_row(scenario: &Scenario) -> Row {
    let results = PolicyKind::ALL
        .into_iter()
        .map(|policy| (policy, (scenario.body)(policy)))
        .collect();
    Row {
        id: scenario.id,
        title: scenario.title,
        results,
        exposes: scenario.exposes,
    }
}

/// Runs the row of the scenario `id` and fails the test on a bad verdict (used by the
/// per-scenario tests, e.g. `s13_tool_result_while_disconnected`).
pub fn check(id: &str) {
    let scenario = crate::all()
        .into_iter()
        .find(|s| s.id == id)
        .expect("scenario listed");
    let row = run_row(&scenario);
    println!("{}", table(std::slice::from_ref(&row)));
    if let Err(problems) = row.verdict() {
        panic!("{problems}");
    }
}

/// The pass/fail table as Markdown, for the README.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | `DefaultPolicy` | `ReplayAlways` | `SkipReplay` |\n|---|---|---|---|\n",
    );
    for row in rows {
        let cell = |policy| row.cell(policy, "**fail**");
        out.push_str(&format!(
            "| {} {} | {} | {} | {} |\n",
            row.id,
            row.title,
            cell(PolicyKind::Default),
            cell(PolicyKind::ReplayAlways),
            cell(PolicyKind::SkipReplay),
        ));
    }
    out
}

/// The pass/fail table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("scenario | DefaultPolicy | ReplayAlways | SkipReplay | title\n");
    out.push_str("---|---|---|---|---\n");
    for row in rows {
        let cell = |policy| row.cell(policy, "FAIL");
        out.push_str(&format!(
            "{} | {} | {} | {} | {}\n",
            row.id,
            cell(PolicyKind::Default),
            cell(PolicyKind::ReplayAlways),
            cell(PolicyKind::SkipReplay),
            row.title
        ));
    }
    for row in rows {
        for (policy, outcome) in &row.results {
            if let Err(why) = outcome {
                let first = why.lines().next().unwrap_or_default();
                out.push_str(&format!("  {} {}: {first}\n", row.id, policy.name()));
            }
        }
    }
    out
}

/// `Err(msg)` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(msg()) }
}

/// `Err` unless `left == right`, showing both.
pub fn ensure_eq<T: PartialEq + std::fmt::Debug>(what: &str, left: T, right: T) -> Outcome {
    if left == right {
        Ok(())
    } else {
        Err(format!("{what}: {left:?} != {right:?}"))
    }
}
