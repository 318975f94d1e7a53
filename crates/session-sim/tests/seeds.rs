//! Breaks random schedules found outside the scenario table, replayed from their seed and
//! shrunk to the steps that reproduce them (`cargo xtask sim --seed S --keep … --trace`
//! prints one with its trace). Each seed is also in the simulator's fixed set.

use agent_glue::{DivergenceReason, SessionEvent};
use session_sim::{Schedule, run};

/// Extended thinking, manual activity: results sent while the user spoke, the spoken turn
/// answered first, and the results' own answer still owed. Its wait ran out (2 s) and the
/// held turns went; the server, stalled, then answered the results before a later turn
/// arrived. The session placed the answer after that turn in `L` and reported nothing: where
/// an answer that comes after its wait lands is a guess. Fixed: the wait's end marks the
/// count as guessed, so the turns placed after it are reported `TurnOrderUnknown` until the
/// count is exact again.
#[test]
fn a_results_answer_after_its_wait_ran_out_is_placed_by_a_guess() {
    let schedule =
        Schedule::generate(202_586_200_992_685).keep(&[46, 52, 53, 54, 55, 57, 59, 60, 63, 64]);
    let outcome = run(&schedule);
    let violations: Vec<String> = outcome.violations.iter().map(ToString::to_string).collect();
    assert_eq!(violations, Vec::<String>::new());
    assert!(
        outcome.events.iter().any(|e| matches!(
            e,
            SessionEvent::Divergence {
                why: DivergenceReason::TurnOrderUnknown,
                ..
            }
        )),
        "the guessed placement is not reported"
    );
}
