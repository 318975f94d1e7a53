//! The operations of an utterance in pieces (`Voice`, `Silence`) and of manual activity
//! detection (`ActivityStart`, `ActivityEnd`), each making the spoken turn the server hears;
//! the faults that end a session or make it dial again; the mutant policies, caught. The
//! invariant holds in each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_glue::SessionEvent;
use ctx_model::{Item, Role};
use gemini_fake::Family;
use session_sim::{Op, Outcome, Policy, Profile, Schedule, Step, run};

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

fn text(family: Family) -> Profile {
    Profile {
        family,
        ..Profile::default()
    }
}

fn ended_with_error(outcome: &Outcome) -> bool {
    outcome
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::Closed { error: Some(_) }))
}

fn reconnected(outcome: &Outcome) -> usize {
    outcome
        .events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Reconnected(_)))
        .count()
}

/// A setup the server never answers: the shell gives up on it after its setup timeout and
/// the session connects again.
#[test]
fn a_setup_never_answered_is_retried_after_the_setup_timeout() {
    let outcome = holds(
        text(Family::Gemini25),
        &[
            (0, Op::Text),
            (500, Op::IgnoreSetups(1)),
            (0, Op::Drop),
            (0, Op::Text),
        ],
    );
    assert_eq!(reconnected(&outcome), 1, "{:?}", outcome.events);
    assert!(outcome.elapsed > 10_000, "the setup timeout ran");
}

/// Authentication and quota closes, and dials refused with 401/403/429, end the session.
#[test]
fn authentication_and_quota_failures_end_the_session() {
    for fault in [
        &[(0, Op::AuthClose)][..],
        &[(0, Op::QuotaClose)],
        &[(0, Op::RefuseDial(401)), (0, Op::Drop)],
        &[(0, Op::RefuseDial(403)), (0, Op::Drop)],
        &[(0, Op::RefuseDial(429)), (0, Op::Drop)],
    ] {
        let mut steps = vec![(0, Op::Text)];
        steps.extend(fault.iter().map(|&(_, op)| (500, op)));
        let outcome = holds(text(Family::Gemini38), &steps);
        assert!(
            ended_with_error(&outcome),
            "{fault:?}: {:?}",
            outcome.events
        );
    }
}

/// A refused resume starts fresh; a refused fresh setup ends the session.
#[test]
fn a_refused_fresh_setup_ends_the_session() {
    let resumed = holds(
        text(Family::Gemini25),
        &[(0, Op::Text), (500, Op::RefuseSetup(1007)), (0, Op::Drop)],
    );
    assert_eq!(reconnected(&resumed), 1, "{:?}", resumed.events);
    let ended = holds(
        text(Family::Gemini25),
        &[
            (0, Op::Text),
            (500, Op::RefuseSetup(1008)),
            (0, Op::RefuseSetup(1008)),
            (0, Op::Drop),
        ],
    );
    assert!(ended_with_error(&ended), "{:?}", ended.events);
}

/// The mutant policies fail the invariant where the default policy keeps it.
#[test]
fn the_mutant_policies_are_caught() {
    let steps = [(0, Op::Text), (500, Op::Text), (0, Op::Drop), (0, Op::Text)];
    holds(text(Family::Gemini25), &steps);
    for policy in [Policy::ReplayAlways, Policy::SkipReplay] {
        let schedule = Schedule {
            seed: 1,
            profile: Profile {
                policy,
                ..text(Family::Gemini25)
            },
            steps: steps.iter().map(|&(gap, op)| Step { gap, op }).collect(),
        };
        let outcome = run(&schedule);
        assert!(!outcome.violations.is_empty(), "{policy:?} not caught");
    }
}
