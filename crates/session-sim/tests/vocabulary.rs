//! The operations of an utterance in pieces (`Voice`, `Silence`) and of manual activity
//! detection (`ActivityStart`, `ActivityEnd`): each makes the spoken turn the server hears,
//! and the invariant holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ctx_model::{Item, Role};
use gemini_fake::Family;
use session_sim::{Op, Outcome, Profile, Schedule, Step, run};

fn audio(manual_activity: bool) -> Profile {
    Profile {
        family: Family::Gemini25,
        audio: true,
        manual_activity,
        ..Profile::default()
    }
}

fn holds(profile: Profile, steps: &[(u64, Op)]) -> Outcome {
    let schedule = Schedule {
        seed: 1,
        profile,
        steps: steps.iter().map(|&(gap, op)| Step { gap, op }).collect(),
    };
    let outcome = run(&schedule);
    assert!(
        outcome.violations.is_empty(),
        "{schedule}violations: {:#?}\ntrace:\n{}",
        outcome.violations,
        outcome.trace.join("\n")
    );
    outcome
}

fn spoken(outcome: &Outcome) -> Vec<String> {
    outcome
        .context
        .iter()
        .filter_map(Item::as_message)
        .filter(|m| m.role == Role::User && m.text().starts_with("[audio"))
        .map(|m| m.text())
        .collect()
}

/// Voice in three pieces with short pauses, then silence that ends it: one spoken turn, as
/// long as the voice from its first piece to its last.
#[test]
fn an_utterance_in_pieces_is_one_spoken_turn() {
    let outcome = holds(
        audio(false),
        &[
            (0, Op::Voice(40)),
            (0, Op::Silence(20)),
            (0, Op::Voice(40)),
            (0, Op::Silence(8)),
            (0, Op::Voice(20)),
            (0, Op::Silence(60)),
        ],
    );
    assert_eq!(spoken(&outcome), ["[audio 1.28s]"]);
}

/// `audioStreamEnd` ends an utterance that silence has not ended.
#[test]
fn audio_stream_end_ends_the_utterance() {
    let outcome = holds(audio(false), &[(0, Op::Voice(40)), (0, Op::AudioStreamEnd)]);
    assert_eq!(spoken(&outcome), ["[audio 0.40s]"]);
}

/// With manual activity detection, the utterance is what lies between `activityStart` and
/// `activityEnd`; silence does not end it.
#[test]
fn manual_activity_brackets_the_utterance() {
    let outcome = holds(
        audio(true),
        &[
            (0, Op::ActivityStart),
            (0, Op::Voice(40)),
            (0, Op::Silence(80)),
            (0, Op::Voice(20)),
            (0, Op::ActivityEnd),
        ],
    );
    assert_eq!(spoken(&outcome), ["[audio 1.40s]"]);
}
