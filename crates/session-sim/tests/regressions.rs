//! Scenarios S33–S46 of `docs/scenarios.md`: the breaks that random schedules found, each as the
//! short schedule that reproduced it, run in the simulator (the session core against the fake
//! server's own logic on virtual time). Each passes only if the whole invariant holds (`L` in
//! the server's context once and in order, no tool run twice, no turn answered twice, events
//! paired, …) and asserts the specific outcome of its scenario.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_glue::SessionEvent;
use ctx_model::{ChatContext, Item, Role};
use gemini_fake::Family;
use session_sim::{Op, Outcome, Profile, Schedule, Step, run};

fn profile(family: Family) -> Profile {
    Profile {
        family,
        latency: 5,
        ..Profile::default()
    }
}

/// Runs `steps` (gap in virtual ms, operation) and fails on any violation.
fn holds(profile: Profile, steps: &[(u64, Op)]) -> Outcome {
    let schedule = Schedule {
        seed: 1,
        profile,
        steps: steps.iter().map(|&(gap, op)| Step { gap, op }).collect(),
    };
    let outcome = run(&schedule);
    if std::env::var_os("SIM_TRACE").is_some() {
        eprintln!("{schedule}{}", outcome.trace.join("\n"));
    }
    assert!(
        outcome.violations.is_empty(),
        "{schedule}violations: {:#?}\ntrace:\n{}",
        outcome.violations,
        outcome.trace.join("\n")
    );
    outcome
}

fn user_texts(context: &ChatContext) -> Vec<String> {
    context
        .iter()
        .filter_map(Item::as_message)
        .filter(|m| m.role == Role::User)
        .map(|m| m.text())
        .collect()
}

fn position(context: &ChatContext, pred: impl Fn(&Item) -> bool) -> usize {
    context.iter().position(pred).expect("item in L")
}

/// S33: a goAway is pending; the model calls a tool; the application appends and the user
/// speaks again, which cancels the call; the application's answer leaves before the
/// cancellation arrives. The `turnComplete` ending the cancelled turn covers neither the answer
/// nor what came after it: after the rotation every later item is on the server.
#[test]
fn s33_cancelled_tool_turn_then_rotation() {
    for family in [Family::Gemini25, Family::Gemini38] {
        let outcome = holds(
            profile(family),
            &[
                (0, Op::Text),
                (300, Op::GoAway(20)),
                (0, Op::TextTool(0)),
                (15, Op::Append(2)),
                (0, Op::Text),
                (1, Op::AnswerCalls),
            ],
        );
        let reconnected = outcome
            .events
            .iter()
            .filter(|e| matches!(e, SessionEvent::Reconnected(_)))
            .count();
        assert_eq!(reconnected, 1, "one rotation: {:?}", outcome.events);
        assert!(
            outcome
                .events
                .iter()
                .any(|e| matches!(e, SessionEvent::ToolCallCancelled { .. })),
            "the call was cancelled"
        );
        let texts = user_texts(&outcome.context);
        assert!(
            texts.iter().any(|t| t.starts_with("t5 ")),
            "the last turn is in L: {texts:?}"
        );
    }
}

/// S34: `generate_reply` with instructions, then a drop before any handle: the instruction
/// turn is in `L` once (and, by the invariant, on the server once).
#[test]
fn s34_reply_request_then_drop_before_any_handle() {
    for family in [Family::Gemini25, Family::Gemini31, Family::Gemini38] {
        let outcome = holds(
            profile(family),
            &[
                (0, Op::WithholdHandles),
                (0, Op::GenerateReply(true)),
                (2, Op::Drop),
            ],
        );
        let requests = user_texts(&outcome.context)
            .into_iter()
            .filter(|t| t.ends_with("reply request"))
            .count();
        assert_eq!(requests, 1, "{family:?}: {:?}", outcome.context);
    }
}

/// S35: a turn cut off before any output by a turn naming a tool, then a fresh session: the
/// tool's call is not taken as the cut turn's answer, and no tool is called again after the
/// seed.
#[test]
fn s35_turn_cut_off_before_output_then_reconnect() {
    for family in [Family::Gemini25, Family::Gemini31, Family::Gemini38] {
        let outcome = holds(
            profile(family),
            &[
                (0, Op::RefuseResume),
                (0, Op::Text),
                (1, Op::GoAway(10)),
                (1, Op::TextTool(0)),
            ],
        );
        let calls = outcome
            .events
            .iter()
            .filter(|e| matches!(e, SessionEvent::ToolCall { .. }))
            .count();
        assert_eq!(
            calls, 1,
            "{family:?}: the tool runs once: {:?}",
            outcome.events
        );
    }
}

/// S36: two turns in a row, each naming a tool, no fault: `L` holds the first call before the
/// second user turn, as the server does (the call was issued before the turn interrupted it).
#[test]
fn s36_two_tool_turns_in_a_row() {
    for family in [Family::Gemini25, Family::Gemini31, Family::Gemini38] {
        let outcome = holds(
            profile(family),
            &[(0, Op::TextTool(0)), (0, Op::TextTool(1))],
        );
        let l = &outcome.context;
        let first_call = position(l, |i| matches!(i, Item::FunctionCall(_)));
        let second_turn = position(l, |i| {
            i.as_message().is_some_and(|m| m.text().starts_with("t2 "))
        });
        assert!(first_call < second_turn, "{family:?}: {l:?}");
    }
}

/// S37: speech and a typed turn, then a drop, on 3.8 with audio: nothing the handle's snapshot
/// holds is sent again (the invariant finds no user turn twice on the server).
#[test]
fn s37_resume_with_audio_after_uncertain_sends() {
    for lag in [0, 1, 2] {
        let mut p = profile(Family::Gemini38);
        p.audio = true;
        p.handle_lag = lag;
        holds(
            p,
            &[
                (0, Op::Speech(60)),
                (0, Op::Text),
                (400, Op::Append(1)),
                (5, Op::Drop),
            ],
        );
    }
}

/// S38: `interrupt()` in the middle of a model turn: the rest of the turn is not delivered,
/// one `Interrupted` says so, and `L` still equals the server (which holds the whole turn).
#[test]
fn s38_local_interrupt() {
    for family in [Family::Gemini25, Family::Gemini31] {
        let outcome = holds(profile(family), &[(0, Op::Text), (8, Op::Interrupt)]);
        let model: Vec<String> = outcome
            .context
            .iter()
            .filter_map(Item::as_message)
            .filter(|m| m.role == Role::Model)
            .map(|m| m.text())
            .collect();
        assert_eq!(model, ["echo: t1 hello"], "the whole answer is in L");
        let delivered: String = outcome
            .events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert!(delivered.len() < "echo: t1 hello".len(), "{delivered:?}");
    }
}

/// S40: `send_text(x)`, then an `update_chat_ctx` derived from the version before `x`: refused
/// as a conflict (the application then appends), so `x` is not removed.
#[test]
fn s40_update_derived_from_an_older_version() {
    for family in [Family::Gemini25, Family::Gemini38] {
        // StaleUpdate(2): derived from the snapshot before the text.
        let outcome = holds(profile(family), &[(0, Op::Text), (0, Op::StaleUpdate(2))]);
        let texts = user_texts(&outcome.context);
        assert!(texts.iter().any(|t| t == "t1 hello"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "t2 update note"), "{texts:?}");
    }
}

fn speaking(family: Family) -> Profile {
    Profile {
        audio: true,
        ..profile(family)
    }
}

/// Every model echo in `L` ("echo: X") sits after the user turn X it answers.
fn answers_after_requests(context: &ChatContext) {
    let messages: Vec<(Role, String)> = context
        .iter()
        .filter_map(Item::as_message)
        .map(|m| (m.role, m.text()))
        .collect();
    for (k, (role, text)) in messages.iter().enumerate() {
        // A reply request without a user turn is answered with an empty echo.
        let Some(asked) = text
            .strip_prefix("echo: ")
            .filter(|asked| *role == Role::Model && !asked.is_empty())
        else {
            continue;
        };
        let request = messages
            .iter()
            .position(|(r, t)| *r == Role::User && (t == asked || asked.starts_with(t.as_str())));
        assert!(
            request.is_some_and(|at| at < k),
            "{text:?} at {k} does not follow its request: {messages:?}"
        );
    }
}

fn count(outcome: &Outcome, pred: impl Fn(&SessionEvent) -> bool) -> usize {
    outcome.events.iter().filter(|e| pred(e)).count()
}

/// S41: speech without an end, a reply request (or a typed turn), more speech and
/// `audioStreamEnd`. The server answers turns in the order they complete: the typed turn first
/// (it completes when it arrives), the spoken turn when its speech ends. Each answer sits in
/// `L` after the turn it answers, as the server holds it.
#[test]
fn s41_answer_before_its_request() {
    for family in [Family::Gemini31, Family::Gemini25, Family::Gemini38] {
        for typed in [Op::GenerateReply(false), Op::Text, Op::TextTool(0)] {
            let outcome = holds(
                speaking(family),
                &[
                    (0, Op::Voice(10)),
                    (0, typed),
                    (0, Op::Voice(17)),
                    (0, Op::AudioStreamEnd),
                    (300, Op::AnswerCalls),
                ],
            );
            answers_after_requests(&outcome.context);
            let texts = user_texts(&outcome.context);
            let spoken = texts.iter().position(|t| t.starts_with("[audio"));
            let request = texts.iter().position(|t| !t.starts_with("[audio"));
            assert!(
                request.is_none_or(|r| Some(r) < spoken) && spoken.is_some(),
                "the typed turn completed first: {texts:?}"
            );
        }
    }
}

/// S42: on 3.8, speech, a typed turn naming a tool (the call is cancelled when the speech
/// ends), more speech and its end, another typed turn, an append with a model message, then a
/// goAway. The handle that covers the typed turns sent during speech is trusted for them:
/// nothing it holds is sent again (the invariant sees every item once on the server).
#[test]
fn s42_no_duplicate_on_resume_after_interleaved_speech() {
    for family in [Family::Gemini38, Family::Gemini25] {
        let outcome = holds(
            speaking(family),
            &[
                (0, Op::Voice(20)),
                (0, Op::TextTool(0)),
                (0, Op::Voice(20)),
                (0, Op::AudioStreamEnd),
                (0, Op::Text),
                (0, Op::Append(2)),
                (200, Op::GoAway(5)),
                (100, Op::AnswerCalls),
            ],
        );
        let reconnected = count(&outcome, |e| matches!(e, SessionEvent::Reconnected(_)));
        assert_eq!(reconnected, 1, "one rotation: {:?}", outcome.events);
        answers_after_requests(&outcome.context);
    }
}

/// S43: interleaved speech and typed turns, then a goAway (or a reset that resumes from the
/// first handle): no turn is answered twice and no tool is run twice (the invariant's "answered
/// twice" and "tool run twice" checks), and every answer follows its request.
#[test]
fn s43_no_second_answer_or_tool_run_after_interleaved_speech() {
    for fault in [Op::GoAway(3), Op::Drop, Op::RefuseResume] {
        for family in [Family::Gemini25, Family::Gemini38] {
            let outcome = holds(
                speaking(family),
                &[
                    (0, Op::Voice(20)),
                    (0, Op::TextTool(0)),
                    (0, Op::Voice(20)),
                    (0, Op::Text),
                    (0, Op::Voice(10)),
                    (0, Op::AudioStreamEnd),
                    (0, Op::RefuseResume),
                    (30, fault),
                    (400, Op::AnswerCalls),
                ],
            );
            answers_after_requests(&outcome.context);
        }
    }
}

/// S44: on 3.8 Vertex with transparent resumption and a handle two messages behind, speech
/// ended by `audioStreamEnd` (transcribed, in `L`), an append of two messages, then a reset.
/// The newest handle covers the last chunk of audio but not the message that ended the speech,
/// so it does not hold the spoken turn: after the resume the turn is on the server again
/// (restored) or named by a divergence, never silently missing.
#[test]
fn s44_spoken_turn_ended_by_a_later_message() {
    for family in [Family::Gemini38, Family::Gemini25] {
        let profile = Profile {
            vertex: true,
            transparent: true,
            handle_lag: 2,
            ..speaking(family)
        };
        let outcome = holds(
            profile,
            &[
                (0, Op::Voice(30)),
                (0, Op::AudioStreamEnd),
                (0, Op::Append(2)),
                (1_000, Op::Drop),
            ],
        );
        let texts = user_texts(&outcome.context);
        assert!(
            texts.iter().any(|t| t.starts_with("[audio")),
            "the spoken turn is in L: {texts:?}"
        );
    }
}

/// S46: `interrupt()` as the answer starts, then a rotation while the muted answer still
/// arrives (its frames are held past the goAway's deadline): one `Interrupted` for the turn.
#[test]
fn s46_one_interrupted_per_cut_turn() {
    for family in [Family::Gemini25, Family::Gemini38] {
        let outcome = holds(
            profile(family),
            &[(0, Op::Text), (17, Op::Interrupt), (0, Op::GoAway(1))],
        );
        let interrupted = count(&outcome, |e| matches!(e, SessionEvent::Interrupted));
        assert_eq!(interrupted, 1, "{:?}", outcome.events);
        let reconnected = count(&outcome, |e| matches!(e, SessionEvent::Reconnected(_)));
        assert_eq!(reconnected, 1, "{:?}", outcome.events);
    }
}

/// S45: a rotation close that resets, and a server's normal close while audio is written:
/// every chunk is received or reported by `AudioDropped`. The server stops reading; the user
/// speaks, not done yet (the audio waits, unread, in the socket buffers); a goAway makes the session rotate,
/// and the server resets the connection before it reads the close frame: the audio was lost,
/// and is reported although this side started the close. Then the server closes with 1000
/// just before the user speaks again: the audio written before its close frame arrives is
/// lost too, and a normal close is no proof of delivery.
#[test]
fn s45_audio_on_every_close() {
    let mut p = profile(Family::Gemini25);
    p.audio = true;
    let outcome = holds(
        p,
        &[
            (0, Op::PeerStopsReading(3)),
            (0, Op::Voice(30)),
            (0, Op::GoAway(5)),
            (8, Op::Drop),
            (2_000, Op::Close(1000)),
            (1, Op::Voice(99)),
        ],
    );
    let dropped: Vec<std::time::Duration> = outcome
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::AudioDropped { duration } => Some(*duration),
            _ => None,
        })
        .collect();
    // All of the first speech (300 ms) at the reset, and what was written of the second
    // before the server's close frame arrived.
    assert_eq!(dropped.len(), 2, "{:?}", outcome.events);
    assert_eq!(dropped[0], std::time::Duration::from_millis(300));
    assert!(!dropped[1].is_zero());
    let reasons: Vec<&SessionEvent> = outcome
        .events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Reconnecting { .. }))
        .collect();
    assert_eq!(reasons.len(), 2, "a rotation and a reconnect: {reasons:?}");
}
