//! S31 on the simulator's two workers and a session store (`Profile::fleet`): the owner hands
//! the session off, the other worker takes it over from the store; later that owner is
//! killed and the first worker takes it over once the lease runs out. Each new owner is built
//! as an application restarting from the store is (the last saved `L`, `resume_from` the
//! saved state), and must resume the same server session without a seed. The loopback and
//! multi-process versions are `agent-glue/tests/persistence.rs` and `handoff.rs`.

use agent_glue::SessionEvent;
use gemini_fake::Family;
use session_sim::{Fleet, Op, Profile};

use crate::found::holds_seeded;
use crate::runner::{Outcome, PolicyKind, Scenario, check};

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        id: "S31",
        title: "a restart from a persisted store: hand-off and kill resume one server session",
        body: s31,
        exposes: &[PolicyKind::ReplayAlways, PolicyKind::SkipReplay],
    }]
}

#[test]
fn s31_restart_with_a_persisted_store() {
    check("S31");
}

fn s31(policy: PolicyKind) -> Outcome {
    for family in [Family::Gemini25, Family::Gemini38] {
        let profile = Profile {
            family,
            // Vertex names its server session (`ServerSessionId`) on every connection.
            vertex: true,
            latency: 5,
            fleet: Some(Fleet {
                ttl: 2_000,
                drift_ppm: [0, 0],
                store_latency: 2,
                poll: 200,
            }),
            ..Profile::default()
        };
        let steps = [
            (0, Op::Text),
            (300, Op::TextTool(0)),
            (300, Op::Append(2)),
            (1_500, Op::Drain),
            (500, Op::Text),
            (1_500, Op::Kill),
            (500, Op::Text),
            (1_000, Op::Append(1)),
        ];
        let outcome =
            holds_seeded(policy, 1, profile, &steps).map_err(|e| format!("{family:?}: {e}"))?;
        if outcome.takeovers != 2 {
            return Err(format!(
                "{family:?}: {} takeovers, not 2",
                outcome.takeovers
            ));
        }
        // Every owner's connections joined the first server session: no fresh session, so no
        // seed, after either takeover.
        let sessions: std::collections::BTreeSet<&str> = outcome
            .events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::ServerSessionId(id) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        if sessions.len() != 1 {
            return Err(format!("{family:?}: server sessions {sessions:?}, not one"));
        }
        let divergences = outcome
            .events
            .iter()
            .filter(|e| matches!(e, SessionEvent::Divergence { .. }))
            .count();
        if divergences != 0 {
            return Err(format!("{family:?}: {divergences} divergences"));
        }
    }
    Ok(())
}
