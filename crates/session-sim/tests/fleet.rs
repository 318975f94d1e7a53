//! Takeovers between two workers sharing a session store (`Profile::fleet`): the breaks the
//! simulator found in kills, hand-offs and store partitions, each a named schedule (drawn from
//! its seed: `cargo xtask sim --seed S --trace` prints it with its trace).
//!
//! The ignored ones are open: the simulator finds them, the fix is not in yet (see the
//! comment on each).

use session_sim::{Schedule, run};

/// The violations of the schedule of `seed`, which must draw two workers and a store.
fn violations(seed: u64) -> Vec<String> {
    let schedule = Schedule::generate(seed);
    assert!(
        schedule.profile.fleet.is_some(),
        "seed {seed} draws no fleet"
    );
    run(&schedule)
        .violations
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A session whose lease ran out while its server had stopped reading closed gracefully and
/// waited (up to its close timeout, 2 s) for the server's answer to its close frame: the
/// next owner took the lease and dialed while the old socket was still open at the server.
/// Fixed: a session that loses its lease closes at once (`Conduit::close_at_once`).
#[test]
fn a_lost_lease_closes_the_socket_before_the_next_owner_takes_over() {
    for seed in [
        1_001_887, 1_001_952, 1_002_352, 1_002_852, 1_003_390, 1_007_832, 1_008_412, 1_009_695,
    ] {
        assert_eq!(violations(seed), Vec::<String>::new(), "seed {seed}");
    }
}

/// Open: a call the server cancelled (`ToolCallCancelled`) stays in `L` without an output; a
/// worker that takes the session over from the saved state cannot tell it from a call whose
/// runner died, marks it lost, and the policy answers it with an error the server ignores as
/// unknown. The saved state needs the cancelled calls (a `StoredSession` field).
#[test]
#[ignore = "open: cancelled calls are not persisted"]
fn a_cancelled_call_is_not_answered_after_a_takeover() {
    assert_eq!(violations(1_003_122), Vec::<String>::new());
}

/// Open: after a lost lease, a hand-off and a kill, the last owner's `L` holds the policy's
/// answer to a lost call (given by an earlier owner after its own takeover) that the server
/// session it resumed does not hold, and the saved state does not deliver it again.
#[test]
#[ignore = "open: a restored answer to a lost call is neither held nor in the outbox"]
fn the_answer_to_a_lost_call_survives_later_takeovers() {
    assert_eq!(violations(1_000_826), Vec::<String>::new());
}

/// Open: a turn answered twice in `L` after a lost lease and a hand-off.
#[test]
#[ignore = "open: under investigation"]
fn a_turn_is_answered_once_across_a_lost_lease() {
    assert_eq!(violations(1_001_327), Vec::<String>::new());
}

/// Open: after takeovers, the last owner gives up (setup timeouts) and an item of its `L`,
/// restored from the saved state, is neither on the server nor reported.
#[test]
#[ignore = "open: under investigation"]
fn giving_up_after_a_takeover_reports_every_restored_item() {
    assert_eq!(violations(1_002_535), Vec::<String>::new());
}
