//! The ledger types on their own: coverage tracker, outbox, tool calls, capabilities, backoff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ctx_model::Message;
use resume_policy::{
    Attempts, Backoff, ClientMessageIndex, ConnectMode, ConnectionId, CoverageTracker,
    DeliveryState, DivergenceReason, Error, Freshness, HandleToken, HandleUpdate, MessageKind,
    MessagePosition, Millis, ModelCapabilities, ModelFamily, OpKind, Outbox, ServerReaction,
    ToolCallStatus,
};

fn resumable(token: &str) -> HandleUpdate {
    HandleUpdate {
        new_handle: Some(token.into()),
        resumable: true,
        last_consumed: None,
    }
}

fn at(connection: u64, index: u64) -> MessagePosition {
    MessagePosition::new(ConnectionId(connection), ClientMessageIndex(index))
}

#[test]
fn numbering_starts_after_setup_and_restarts_per_connection() {
    let mut tracker = CoverageTracker::new(false);
    assert_eq!(
        tracker.on_sent(MessageKind::Silent),
        Err(Error::NotConnected)
    );
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    assert_eq!(
        tracker.on_sent(MessageKind::Silent).unwrap(),
        MessagePosition::new(ConnectionId(1), ClientMessageIndex::SETUP.next())
    );
    assert_eq!(tracker.on_sent(MessageKind::Silent).unwrap(), at(1, 2));
    tracker
        .on_handle_update(&resumable("h"), Millis(1))
        .unwrap();
    tracker
        .on_connected(ConnectionId(2), ConnectMode::Resumed)
        .unwrap();
    assert_eq!(tracker.on_sent(MessageKind::Silent).unwrap(), at(2, 1));
}

#[test]
fn coverage_is_the_last_reacted_message_never_arrival_time() {
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    let silent = tracker.on_sent(MessageKind::Silent).unwrap();
    let turn = tracker.on_sent(MessageKind::TurnStart).unwrap();
    let later = tracker.on_sent(MessageKind::Silent).unwrap();
    let lagging = tracker
        .on_handle_update(&resumable("h1"), Millis(10))
        .unwrap()
        .unwrap();
    assert_eq!(lagging.coverage.through, None);
    assert!(!lagging.covers(silent) && !lagging.covers(turn));
    assert!(lagging.covers(at(1, 0)), "setup is always in the session");
    tracker.on_reaction(ServerReaction::TurnComplete);
    let h2 = tracker
        .on_handle_update(&resumable("h2"), Millis(20))
        .unwrap()
        .unwrap();
    assert!(h2.covers(silent) && h2.covers(turn));
    assert!(
        !h2.covers(later),
        "sent before the reaction, not provably processed"
    );
    assert!(!h2.coverage.exact);
    assert!(!h2.covers(at(2, 1)), "other connections are never covered");
}

#[test]
fn a_tool_call_keeps_the_turn_open_until_its_responses_are_answered() {
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    let ask = tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_tool_call("call-1", "lookup").unwrap();
    tracker.on_reaction(ServerReaction::ToolCall);
    let typed = tracker.on_sent(MessageKind::TurnStart).unwrap();
    // Non-blocking call: the model ends its turn; that says nothing about `typed`.
    tracker.on_reaction(ServerReaction::TurnComplete);
    let h = tracker
        .on_handle_update(&resumable("h1"), Millis(1))
        .unwrap()
        .unwrap();
    assert!(h.covers(ask));
    assert!(!h.covers(typed));

    // Blocking call: the turn continues from the response; its turnComplete covers it.
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_reaction(ServerReaction::ToolCall);
    let response = tracker.on_sent(MessageKind::ToolResponse).unwrap();
    tracker.on_reaction(ServerReaction::TurnComplete);
    let h = tracker
        .on_handle_update(&resumable("h1"), Millis(1))
        .unwrap()
        .unwrap();
    assert!(h.covers(response));
}

#[test]
fn a_reaction_behind_audio_proves_only_the_first_chunk() {
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    let first_chunk = tracker.on_sent(MessageKind::Audio).unwrap();
    let second_chunk = tracker.on_sent(MessageKind::Audio).unwrap();
    let typed = tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_sent(MessageKind::Audio).unwrap();
    // This turnComplete may answer the speech, not the typed turn.
    tracker.on_reaction(ServerReaction::TurnComplete);
    let h = tracker
        .on_handle_update(&resumable("h1"), Millis(1))
        .unwrap()
        .unwrap();
    assert!(h.covers(first_chunk));
    assert!(!h.covers(second_chunk) && !h.covers(typed));
    // A blocking tool response the model continued from proves everything before it.
    tracker.on_reaction(ServerReaction::ToolCall);
    let response = tracker.on_sent(MessageKind::ToolResponse).unwrap();
    tracker.on_reaction(ServerReaction::TurnComplete);
    let h = tracker
        .on_handle_update(&resumable("h2"), Millis(2))
        .unwrap()
        .unwrap();
    assert!(h.covers(typed) && h.covers(response));
}

#[test]
fn not_resumable_marks_the_handle_stale_and_keeps_it() {
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    tracker
        .on_handle_update(&resumable("h1"), Millis(5))
        .unwrap();
    let none = tracker
        .on_handle_update(&HandleUpdate::default(), Millis(7))
        .unwrap();
    assert_eq!(none, None);
    let held = tracker.handle().unwrap();
    assert_eq!(held.token, HandleToken::new("h1"));
    assert_eq!(held.freshness, Freshness::StaleSince(Millis(7)));
    // A later non-resumable update keeps the first stale point.
    tracker
        .on_handle_update(&HandleUpdate::default(), Millis(9))
        .unwrap();
    assert_eq!(
        tracker.handle().unwrap().freshness,
        Freshness::StaleSince(Millis(7))
    );
}

#[test]
fn transparent_coverage_is_exact_and_checked() {
    let mut tracker = CoverageTracker::new(true);
    tracker
        .on_connected(ConnectionId(3), ConnectMode::Fresh)
        .unwrap();
    for _ in 0..3 {
        tracker.on_sent(MessageKind::Silent).unwrap();
    }
    let update = HandleUpdate {
        last_consumed: Some(ClientMessageIndex(2)),
        ..resumable("h1")
    };
    let h = tracker
        .on_handle_update(&update, Millis(1))
        .unwrap()
        .unwrap();
    assert!(h.coverage.exact);
    assert!(h.covers(at(3, 2)) && !h.covers(at(3, 3)));
    let beyond = HandleUpdate {
        last_consumed: Some(ClientMessageIndex(9)),
        ..resumable("h2")
    };
    assert_eq!(
        tracker.on_handle_update(&beyond, Millis(2)),
        Err(Error::IndexBeyondSent {
            connection: ConnectionId(3),
            index: ClientMessageIndex(9),
            last_sent: ClientMessageIndex(3),
        })
    );
    let empty = HandleUpdate {
        new_handle: Some(String::new()),
        resumable: true,
        last_consumed: None,
    };
    assert_eq!(
        tracker.on_handle_update(&empty, Millis(3)),
        Err(Error::MissingHandleToken)
    );
}

#[test]
fn tool_calls_are_known_to_handles_issued_after_them_in_their_session() {
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    tracker
        .on_handle_update(&resumable("before"), Millis(1))
        .unwrap();
    let before = tracker.handle().unwrap().clone();
    tracker.on_tool_call("call-1", "f").unwrap();
    assert!(tracker.tool_calls().in_session("call-1"));
    assert!(!tracker.tool_calls().known_to("call-1", &before));
    // Resuming from the older handle: the new session does not know the call.
    tracker
        .on_connected(ConnectionId(2), ConnectMode::Resumed)
        .unwrap();
    assert!(!tracker.tool_calls().in_session("call-1"));
    // A handle on connection 2 does not learn a call of connection 1.
    tracker
        .on_handle_update(&resumable("c2"), Millis(2))
        .unwrap();
    assert!(
        !tracker
            .tool_calls()
            .known_to("call-1", tracker.handle().unwrap())
    );

    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    tracker.on_tool_call("call-1", "f").unwrap();
    tracker
        .on_handle_update(&resumable("after"), Millis(1))
        .unwrap();
    assert!(
        tracker
            .tool_calls()
            .known_to("call-1", tracker.handle().unwrap())
    );
    tracker
        .on_connected(ConnectionId(2), ConnectMode::Resumed)
        .unwrap();
    assert!(tracker.tool_calls().in_session("call-1"));
    // Cancelled stays cancelled; fresh sessions know no earlier call.
    assert!(tracker.set_tool_status("call-1", ToolCallStatus::Cancelled));
    assert!(tracker.set_tool_status("call-1", ToolCallStatus::Answered));
    assert!(tracker.tool_calls().is_cancelled("call-1"));
    assert!(!tracker.set_tool_status("nope", ToolCallStatus::Answered));
    tracker
        .on_connected(ConnectionId(3), ConnectMode::Fresh)
        .unwrap();
    assert!(!tracker.tool_calls().in_session("call-1"));
    assert!(tracker.handle().is_none());
    assert_eq!(
        tracker.on_connected(ConnectionId(4), ConnectMode::Resumed),
        Err(Error::NoHandleToResume {
            connection: ConnectionId(4)
        })
    );
}

#[test]
fn handle_tokens_never_print_in_full() {
    let token = HandleToken::new("secret-resumption-token-0123456789");
    let shown = format!("{token:?} {token}");
    assert!(!shown.contains("resumption-token"));
    assert!(shown.contains("34 chars"));
    assert_eq!(token.expose(), "secret-resumption-token-0123456789");
}

#[test]
fn outbox_moves_through_its_states_and_refuses_the_rest() {
    let mut outbox = Outbox::new();
    let a = outbox.push(OpKind::Append {
        items: vec![Message::user("u1", "hi").into()],
        turn_complete: true,
    });
    let b = outbox.push(OpKind::GenerateReply { instructions: None });
    assert!(a < b);
    outbox.mark_sent(&[a], at(1, 1)).unwrap();
    outbox.supersede(&[b]).unwrap();
    assert_eq!(
        outbox.mark_sent(&[b], at(1, 2)),
        Err(Error::InvalidTransition {
            op: b,
            from: "superseded",
            to: "sent"
        })
    );
    let missing = resume_policy::OpId(99);
    assert_eq!(
        outbox.report(&[missing], DivergenceReason::GaveUp),
        Err(Error::UnknownOperation { op: missing })
    );
    let mut tracker = CoverageTracker::new(true);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    tracker.on_sent(MessageKind::TurnStart).unwrap();
    let update = HandleUpdate {
        last_consumed: Some(ClientMessageIndex(1)),
        ..resumable("h")
    };
    let h = tracker
        .on_handle_update(&update, Millis(1))
        .unwrap()
        .unwrap();
    assert_eq!(outbox.cover(&h), vec![a]);
    assert_eq!(
        outbox.get(a).unwrap().state,
        DeliveryState::Covered {
            handle: h.serial,
            epoch: h.epoch
        }
    );
    assert_eq!(outbox.live().count(), 0);
    outbox.prune();
    assert!(outbox.is_empty());
    // Ids keep growing after a prune.
    assert!(outbox.push(OpKind::GenerateReply { instructions: None }) > b);
}

#[test]
fn capabilities_follow_the_model_name() {
    let cases = [
        (
            "models/gemini-2.5-flash-native-audio-preview-12-2025",
            ModelFamily::Gemini25,
        ),
        (
            "gemini-2.5-flash-native-audio-latest",
            ModelFamily::Gemini25,
        ),
        (
            "models/gemini-3.1-flash-live-preview",
            ModelFamily::Gemini31,
        ),
        ("gemini-3.8-live", ModelFamily::Gemini38),
        (
            "projects/p/locations/global/publishers/google/models/gemini-live-2.5-flash-native-audio",
            ModelFamily::VertexGemini25,
        ),
        ("gemini-live-3.8", ModelFamily::VertexGemini38),
    ];
    for (name, family) in cases {
        assert_eq!(ModelFamily::from_model(name).unwrap(), family, "{name}");
    }
    assert_eq!(
        ModelCapabilities::for_model("gpt-4o"),
        Err(Error::UnknownModel {
            model: "gpt-4o".into()
        })
    );
    let c25 = ModelCapabilities::for_family(ModelFamily::Gemini25);
    let c31 = ModelCapabilities::for_family(ModelFamily::Gemini31);
    let c38 = ModelCapabilities::for_family(ModelFamily::Gemini38);
    let v25 = ModelCapabilities::for_family(ModelFamily::VertexGemini25);
    assert!(c25.client_content_mid_session && !c31.client_content_mid_session);
    assert!(c31.initial_history_flag_required && !c25.initial_history_flag_required);
    assert!(c38.context_update && !c25.context_update);
    assert!(c38.tool_call_needs_answer && !c25.tool_call_needs_answer);
    assert!(v25.transparent_resumption && !c25.transparent_resumption);
    // Overridable (3.1's later documentation allows clientContent throughout).
    let mut lenient = c31;
    lenient.client_content_mid_session = true;
    assert!(lenient.client_content_mid_session);
}

#[test]
fn backoff_grows_jitters_and_is_bounded() {
    let backoff = Backoff::default();
    assert_eq!(backoff.delay(0, 12345), Duration::ZERO);
    let mut previous_max = Duration::ZERO;
    for attempt in 1..8 {
        let low = backoff.delay(attempt, 0);
        let high = backoff.delay(attempt, u64::MAX - 1);
        assert!(low <= high && high <= backoff.max);
        assert!(low * 2 >= high.saturating_sub(Duration::from_millis(1)));
        assert!(high >= previous_max || high == backoff.max);
        previous_max = high;
    }
    assert_eq!(backoff.delay(40, 7).max(backoff.max), backoff.max);
    assert!(!backoff.exhausted(7) && backoff.exhausted(8));

    let mut attempts = Attempts::default();
    attempts.on_failed();
    attempts.on_failed();
    assert_eq!(attempts.attempt(), 2);
    attempts.on_rotated();
    assert_eq!(attempts.attempt(), 0);
}

#[test]
fn a_reinstated_handle_is_resumed_from_and_knows_nothing_observed_after_it() {
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    let first = tracker
        .on_handle_update(&resumable("h1"), Millis(1))
        .unwrap()
        .unwrap();
    tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_tool_call("call-1", "get_weather").unwrap();
    tracker.on_reaction(ServerReaction::ToolCall);
    let newer = tracker
        .on_handle_update(&resumable("h2"), Millis(2))
        .unwrap()
        .unwrap();
    assert!(tracker.tool_calls().known_to("call-1", &newer));
    tracker.reinstate(Some(first.clone()));
    assert_eq!(tracker.handle(), Some(&first));
    assert!(!tracker.tool_calls().known_to("call-1", &first));
    tracker.on_disconnected();
    tracker
        .on_connected(ConnectionId(2), ConnectMode::Resumed)
        .unwrap();
    assert!(!tracker.tool_calls().in_session("call-1"));
    // A handle of another server session is never reinstated.
    tracker
        .on_connected(ConnectionId(3), ConnectMode::Fresh)
        .unwrap();
    tracker.reinstate(Some(first));
    assert_eq!(tracker.handle(), None);
}

#[test]
fn a_handle_is_uncertain_about_client_items_sent_after_the_last_reaction() {
    let mut tracker = CoverageTracker::new(false);
    let mut mirror = resume_policy::Mirror::new();
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    mirror.on_connected(ConnectionId(1), ConnectMode::Fresh);
    // A turn still awaiting its answer: a handle arriving now was taken before the server
    // processed it (no resumable handle while the model answers), so it is certain.
    let turn = ctx_model::Item::from(Message::user("u1", "hello"));
    let at_turn = tracker.on_sent(MessageKind::TurnStart).unwrap();
    mirror.on_sent(&[turn], at_turn);
    let before_turn = tracker
        .on_handle_update(&resumable("h0"), Millis(1))
        .unwrap()
        .unwrap();
    assert_eq!(tracker.handle_bound(), ClientMessageIndex::SETUP);
    assert!(!mirror.uncertain_under(&before_turn, tracker.handle_bound()));
    tracker.on_reaction(ServerReaction::TurnComplete);
    assert_eq!(tracker.handle_bound(), at_turn.index);
    // History without an answer: a later handle may or may not hold it.
    let note = ctx_model::Item::from(Message::user("n1", "a note"));
    let at_note = tracker.on_sent(MessageKind::Silent).unwrap();
    mirror.on_sent(&[note], at_note);
    let after_note = tracker
        .on_handle_update(&resumable("h1"), Millis(2))
        .unwrap()
        .unwrap();
    assert!(mirror.uncertain_under(&after_note, tracker.handle_bound()));
    // A turn answered after it proves both were processed.
    let next = ctx_model::Item::from(Message::user("u2", "again"));
    let at_next = tracker.on_sent(MessageKind::TurnStart).unwrap();
    mirror.on_sent(&[next], at_next);
    tracker.on_reaction(ServerReaction::TurnComplete);
    let after_turn = tracker
        .on_handle_update(&resumable("h2"), Millis(3))
        .unwrap()
        .unwrap();
    assert!(!mirror.uncertain_under(&after_turn, tracker.handle_bound()));
}

/// `on_sent_many` is `count` calls of `on_sent`, whatever came before it (it takes the audio
/// run in constant time): the same positions, the same reactions afterwards.
#[test]
fn a_batch_of_frames_counts_as_the_same_frames_sent_one_by_one() {
    let kinds = [
        MessageKind::Audio,
        MessageKind::Silent,
        MessageKind::Audio,
        MessageKind::TurnStart,
        MessageKind::Audio,
        MessageKind::Audio,
    ];
    for transcripts in [false, true] {
        let mut one = CoverageTracker::new(false).with_transcripts(transcripts);
        let mut many = CoverageTracker::new(false).with_transcripts(transcripts);
        for t in [&mut one, &mut many] {
            t.on_connected(ConnectionId(1), ConnectMode::Fresh).unwrap();
        }
        for (n, kind) in kinds.iter().enumerate() {
            let count = 1 + (n as u32 * 7) % 5;
            let mut last = None;
            for _ in 0..count {
                last = Some(one.on_sent(*kind).unwrap());
            }
            assert_eq!(Some(many.on_sent_many(*kind, count).unwrap()), last);
            assert_eq!(
                format!("{one:?}"),
                format!("{many:?}"),
                "after {kind:?} x{count}"
            );
        }
        assert_eq!(one.on_spoken_turn(), many.on_spoken_turn());
        assert_eq!(
            one.on_reaction(ServerReaction::TurnComplete),
            many.on_reaction(ServerReaction::TurnComplete)
        );
    }
}

fn speaking_tracker() -> CoverageTracker {
    let mut tracker = CoverageTracker::new(false).with_transcripts(true);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    tracker
}

/// S41 at the tracker: a typed turn sent between two chunks of an utterance completes before
/// the spoken turn (which completes at its `audioStreamEnd`), and is answered first.
#[test]
fn reactions_follow_the_order_turns_complete() {
    let mut tracker = speaking_tracker();
    tracker.on_sent(MessageKind::Audio).unwrap();
    let typed = tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_sent_many(MessageKind::Audio, 8).unwrap();
    let end = tracker.on_sent(MessageKind::AudioStreamEnd).unwrap();
    // The typed turn's answer, cut off when the speech ended.
    assert_eq!(
        tracker.on_reaction(ServerReaction::InterruptedTurnComplete),
        typed.index
    );
    assert_eq!(tracker.on_spoken_turn().end, end.index);
    assert_eq!(tracker.on_reaction(ServerReaction::TurnComplete), end.index);
    let h = tracker
        .on_handle_update(&resumable("h"), Millis(1))
        .unwrap()
        .unwrap();
    assert!(h.covers(end));
}

/// A spoken turn transcribed after a later typed turn was sent (the typed turn still awaits its
/// reaction) ended before that typed turn: on the last chunk before it, not on audio sent
/// after it.
#[test]
fn a_spoken_turn_ends_before_the_typed_turns_still_awaiting_a_reaction() {
    let mut tracker = speaking_tracker();
    let last_chunk = tracker.on_sent_many(MessageKind::Audio, 5).unwrap();
    let typed = tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_sent_many(MessageKind::Audio, 5).unwrap();
    assert_eq!(tracker.on_spoken_turn().end, last_chunk.index);
    // The spoken turn is answered first (the typed turn cut that answer off), then the typed
    // turn.
    assert_eq!(
        tracker.on_reaction(ServerReaction::InterruptedTurnComplete),
        last_chunk.index
    );
    assert_eq!(
        tracker.on_reaction(ServerReaction::TurnComplete),
        typed.index
    );
}

/// Without a typed turn waiting, the speech ended on the last chunk sent (the latest the
/// server's voice detection can have ended it on); an explicit end after audio ends it there.
#[test]
fn a_spoken_turn_ends_at_its_explicit_end_or_the_last_chunk() {
    let mut tracker = speaking_tracker();
    tracker.on_sent(MessageKind::Audio).unwrap();
    tracker.on_sent(MessageKind::Silent).unwrap();
    let chunk = tracker.on_sent_many(MessageKind::Audio, 3).unwrap();
    let ended = tracker.on_spoken_turn();
    assert_eq!(ended.end, chunk.index);
    // It may have ended on any chunk of that run.
    assert_eq!(ended.earliest, ClientMessageIndex(chunk.index.0 - 2));
    tracker.on_reaction(ServerReaction::TurnComplete);
    // An end of speech with no audio since the last spoken turn ends nothing.
    tracker.on_sent(MessageKind::AudioStreamEnd).unwrap();
    tracker.on_sent(MessageKind::Audio).unwrap();
    let end = tracker.on_sent(MessageKind::AudioStreamEnd).unwrap();
    let note = tracker.on_sent(MessageKind::Silent).unwrap();
    let ended = tracker.on_spoken_turn();
    assert_eq!((ended.earliest, ended.end), (end.index, end.index));
    assert!(note.index > end.index);
}

/// The output of a turn the model finished is in every later handle, even where an exact
/// coverage is lower; a turn cut off vouches for nothing (a lagging handle may predate it).
#[test]
fn only_finished_turns_vouch_for_their_output_in_later_handles() {
    let mut tracker = CoverageTracker::new(true);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    let first = tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_reaction(ServerReaction::InterruptedTurnComplete);
    let update = HandleUpdate {
        last_consumed: Some(ClientMessageIndex::SETUP),
        ..resumable("h1")
    };
    let h1 = tracker
        .on_handle_update(&update, Millis(1))
        .unwrap()
        .unwrap();
    assert!(!h1.coverage.holds_output_for(first));
    let second = tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_reaction(ServerReaction::TurnComplete);
    tracker.on_reaction(ServerReaction::TurnComplete);
    let h2 = tracker
        .on_handle_update(&update, Millis(2))
        .unwrap()
        .unwrap();
    assert!(!h2.covers(second), "exact coverage says setup only");
    assert!(h2.coverage.holds_output_for(second));
}

/// Without transcripts, a typed turn behind a run of audio awaiting a reaction may have been
/// answered by a reaction credited to the audio: the handle bound does not exclude it (a handle
/// that may hold it is then uncertain, never taken to lack it).
#[test]
fn without_transcripts_a_turn_behind_audio_bounds_nothing() {
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    let typed = tracker.on_sent(MessageKind::TurnStart).unwrap();
    assert_eq!(
        tracker.handle_bound(),
        ClientMessageIndex(typed.index.0 - 1)
    );
    tracker.on_reaction(ServerReaction::TurnComplete);
    tracker.on_sent_many(MessageKind::Audio, 4).unwrap();
    let behind = tracker.on_sent(MessageKind::TurnStart).unwrap();
    tracker.on_reaction(ServerReaction::TurnComplete);
    assert_eq!(tracker.handle_bound(), behind.index);
}

/// Under manual activity detection only an `activityEnd` closing an open activity ends a
/// spoken turn; an `audioStreamEnd`, or an `activityEnd` with no activity open, ends nothing.
#[test]
fn manual_activity_ends_turns_only_at_the_end_of_an_activity() {
    let mut tracker = CoverageTracker::new(false)
        .with_transcripts(true)
        .with_manual_activity(true);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    tracker.on_sent_many(MessageKind::Audio, 3).unwrap();
    tracker.on_sent(MessageKind::AudioStreamEnd).unwrap();
    tracker.on_sent(MessageKind::ActivityEnd).unwrap();
    tracker.on_sent(MessageKind::ActivityStart).unwrap();
    let note = tracker.on_sent(MessageKind::Silent).unwrap();
    let end = tracker.on_sent(MessageKind::ActivityEnd).unwrap();
    let ended = tracker.on_spoken_turn();
    assert_eq!(ended.end, end.index);
    assert!(note.index < ended.earliest);
}

/// A spoken turn ended by the server's voice detection may have ended on any chunk of its run:
/// an exact handle that covers some of them but not the last neither surely holds it nor
/// surely lacks it.
#[test]
fn a_handle_inside_a_spoken_turns_run_is_unsure_of_it() {
    use ctx_model::Item;
    use resume_policy::Mirror;
    let mut tracker = CoverageTracker::new(true).with_transcripts(true);
    let mut mirror = Mirror::new();
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    mirror.on_connected(ConnectionId(1), ConnectMode::Fresh);
    let last = tracker.on_sent_many(MessageKind::Audio, 10).unwrap();
    let ended = tracker.on_spoken_turn();
    let spoken: Item = Message::user("s1", "[audio]").into();
    mirror.on_spoken_turn(
        &spoken,
        MessagePosition::new(ConnectionId(1), ended.earliest),
        MessagePosition::new(ConnectionId(1), ended.end),
    );
    let inside = HandleUpdate {
        last_consumed: Some(ClientMessageIndex(last.index.0 - 2)),
        ..resumable("h1")
    };
    let h1 = tracker
        .on_handle_update(&inside, Millis(1))
        .unwrap()
        .unwrap();
    assert!(mirror.unsure_of_spoken_turns(&h1));
    let through = HandleUpdate {
        last_consumed: Some(last.index),
        ..resumable("h2")
    };
    let h2 = tracker
        .on_handle_update(&through, Millis(2))
        .unwrap()
        .unwrap();
    assert!(!mirror.unsure_of_spoken_turns(&h2));
    mirror.on_handle(&h2);
    assert!(mirror.held().contains("s1"));
}

/// An `audioStreamEnd` after nothing but audio too quiet to be speech ends no spoken turn: the
/// next spoken turn ends at the next end after speech, not at that one.
#[test]
fn an_end_after_quiet_audio_ends_no_spoken_turn() {
    let mut tracker = speaking_tracker();
    tracker.on_sent_many(MessageKind::QuietAudio, 10).unwrap();
    tracker.on_sent(MessageKind::AudioStreamEnd).unwrap();
    let note = tracker.on_sent(MessageKind::Silent).unwrap();
    tracker.on_sent_many(MessageKind::Audio, 10).unwrap();
    let end = tracker.on_sent(MessageKind::AudioStreamEnd).unwrap();
    let ended = tracker.on_spoken_turn();
    assert_eq!(ended.end, end.index);
    assert!(note.index < ended.earliest);
}

/// With the end-of-speech silence the session asked for, the chunk that completes that silence
/// after voice is where speech ended, as the server's detection counts it: a message after it
/// comes after the spoken turn, one before it before, even when all of it was sent at once and
/// the next utterance's audio followed before the transcript came.
#[test]
fn the_chunk_completing_the_silence_ends_the_spoken_turn() {
    use std::time::Duration;
    let mut tracker = CoverageTracker::new(false)
        .with_transcripts(true)
        .with_end_of_speech_silence(Some(Duration::from_millis(500)));
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    let frame = Duration::from_millis(40);
    tracker.on_audio(10, frame * 10, true).unwrap();
    let before = tracker.on_sent(MessageKind::Silent).unwrap();
    // 20 quiet frames: the 13th completes 520 ms of silence.
    let quiet = tracker.on_audio(20, frame * 20, false).unwrap();
    let note = tracker.on_sent(MessageKind::Silent).unwrap();
    tracker.on_audio(10, frame * 10, true).unwrap();
    let ended = tracker.on_spoken_turn();
    assert_eq!(ended.end, ClientMessageIndex(quiet.index.0 - 7));
    assert_eq!(ended.earliest, ended.end);
    assert!(before.index < ended.end && ended.end < note.index);
    // The voice after the note is the next utterance, ended by `audioStreamEnd`.
    let end = tracker.on_sent(MessageKind::AudioStreamEnd).unwrap();
    tracker.on_audio(14, frame * 14, false).unwrap();
    let second = tracker.on_spoken_turn();
    assert_eq!(second.end, end.index);
}

/// A large batch is added in one piece, in order, each id once; server output answering an
/// earlier message goes before the later client items as a block, and every lookup by id still
/// finds its own item (positions renumbered once per batch, not per item); forgetting many at
/// once leaves the rest in order and findable.
#[test]
fn a_large_batch_keeps_order_positions_and_lookups() {
    use ctx_model::{Item, ItemId};
    use resume_policy::Mirror;
    let n = 20_000;
    let mut mirror = Mirror::new();
    mirror.on_connected(ConnectionId(1), ConnectMode::Fresh);
    let first: Vec<Item> = (0..n)
        .map(|i| Message::user(format!("c{i}"), "history").into())
        .collect();
    mirror.on_sent(&first, at(1, 1));
    let later: Vec<Item> = vec![Message::user("late", "after").into()];
    mirror.on_sent(&later, at(1, 2));
    // A batch with a repeated id and an id already held: each goes in once.
    let mut answers: Vec<Item> = (0..n)
        .map(|i| Message::model(format!("m{i}"), "answer").into())
        .collect();
    answers.push(Message::model("m0", "a repeat").into());
    answers.push(Message::user("c7", "already held").into());
    mirror.on_server_items_for(&answers, at(1, 1));
    let live = mirror.live();
    assert_eq!(live.len(), 2 * n + 1);
    let ids: Vec<&str> = live.ids().map(ItemId::as_str).collect();
    assert_eq!(ids[0], "c0");
    assert_eq!(ids[n - 1], format!("c{}", n - 1));
    assert_eq!(ids[n], "m0");
    assert_eq!(ids[2 * n - 1], format!("m{}", n - 1));
    assert_eq!(
        ids[2 * n],
        "late",
        "the later message's item stays after the answers"
    );
    assert_eq!(
        live.get("m0")
            .and_then(|item| item.as_message())
            .map(|m| m.text()),
        Some("answer".to_owned()),
        "the first of a repeated id is the one kept"
    );
    assert_eq!(mirror.client_position(&"c19999".into()), Some(at(1, 1)));
    assert_eq!(mirror.client_position(&"late".into()), Some(at(1, 2)));
    assert_eq!(mirror.client_position(&"m5".into()), None);
    // Forget every other answer at once: the rest keep their order and positions.
    let gone: Vec<ItemId> = (0..n).step_by(2).map(|i| format!("m{i}").into()).collect();
    mirror.forget_all(&gone);
    let live = mirror.live();
    assert_eq!(live.len(), n + n / 2 + 1);
    assert!(!mirror.holds(&"m0".into()) && mirror.holds(&"m1".into()));
    assert_eq!(live.ids().nth(n).map(ItemId::as_str), Some("m1"));
    assert_eq!(mirror.client_position(&"late".into()), Some(at(1, 2)));
    mirror.forget(&"late".into());
    assert!(!mirror.holds(&"late".into()));
    assert_eq!(mirror.client_position(&"c0".into()), Some(at(1, 1)));
}

/// Without transcripts, audio too quiet to be speech awaits no reaction: the answer after it
/// goes to the typed turn sent after it, not to the quiet audio (which put the answer before
/// its turn in `L`: found by the multi-process hand-off test). Speech after quiet audio opens
/// the run the next reaction goes to, from its first voiced chunk.
#[test]
fn quiet_audio_without_transcripts_awaits_no_reaction() {
    let mut tracker = CoverageTracker::new(false);
    tracker
        .on_connected(ConnectionId(1), ConnectMode::Fresh)
        .unwrap();
    tracker.on_sent_many(MessageKind::QuietAudio, 5).unwrap();
    let two = tracker.on_sent(MessageKind::TurnStart).unwrap();
    assert_eq!(tracker.on_reaction(ServerReaction::TurnComplete), two.index);
    let quiet = tracker.on_sent_many(MessageKind::QuietAudio, 5).unwrap();
    tracker.on_sent_many(MessageKind::Audio, 5).unwrap();
    assert_eq!(
        tracker.on_reaction(ServerReaction::TurnComplete),
        quiet.index.next(),
        "the first voiced chunk"
    );
}
