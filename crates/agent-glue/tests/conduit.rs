//! The conduit on its own, driven by hand on virtual time (no socket, no runtime): the
//! decisions it makes that no other suite isolates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use agent_glue::conduit::{Conduit, Order};
use agent_glue::{LiveSession, SessionError, SessionEvent};
use gemini_transport::wire::Modality;
use gemini_transport::{ConnectConfig, Endpoint, SecretString};
use resume_policy::{ConnectionId, Millis};

fn conduit(setup_timeout: Duration) -> Conduit {
    let endpoint = Endpoint::api_key(SecretString::from("test-key"))
        .with_base_url("ws://127.0.0.1:9")
        .unwrap();
    LiveSession::builder(
        endpoint,
        "models/gemini-2.5-flash-native-audio-preview-12-2025",
    )
    .modality(Modality::Text)
    .transcription(false)
    .connect_config(ConnectConfig::default().with_setup_timeout(setup_timeout))
    .into_sans_io(Millis(0), 7)
    .unwrap()
}

fn dial(conduit: &mut Conduit) -> ConnectionId {
    match conduit.poll_order() {
        Some(Order::Dial { connection, .. }) => connection,
        other => panic!("expected a dial, got {other:?}"),
    }
}

/// A dial whose `setupComplete` has not come within the setup timeout of its order is given
/// up: its socket released, and (the first connect failing fast) the session ends with a
/// setup timeout that says how long it waited. Not a millisecond earlier.
#[test]
fn a_dial_without_setup_complete_is_given_up_at_the_setup_timeout() {
    let mut conduit = conduit(Duration::from_millis(500));
    let first = dial(&mut conduit);
    assert_eq!(conduit.poll_timeout(), Some(Millis(500)));
    conduit.handle_timeout(Millis(499));
    assert_eq!(conduit.poll_order(), None, "not given up early");
    conduit.handle_timeout(Millis(500));
    let mut released = false;
    while let Some(order) = conduit.poll_order() {
        match order {
            Order::Release { connection } if connection == first => released = true,
            Order::Dial { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(released, "the dial's socket is released");
    // A late setupComplete for it is not taken.
    conduit.handle_setup_complete(Millis(600), first);
    assert!(!conduit.core().has_connected());
    let mut events = Vec::new();
    while let Some(event) = conduit.poll_event() {
        events.push(event);
    }
    let timed_out = events.iter().any(|e| {
        matches!(
            e,
            SessionEvent::Closed {
                error: Some(SessionError::SetupTimeout { after, .. })
            } if *after == Duration::from_millis(500)
        )
    });
    assert!(timed_out, "{events:?}");
}

/// A dial that completes its setup in time is not given up later.
#[test]
fn a_dial_set_up_in_time_has_no_deadline_left() {
    let mut conduit = conduit(Duration::from_millis(500));
    let first = dial(&mut conduit);
    conduit.handle_setup_complete(Millis(100), first);
    assert!(conduit.core().has_connected());
    conduit.handle_timeout(Millis(500));
    assert!(
        !std::iter::from_fn(|| conduit.poll_order())
            .any(|o| matches!(o, Order::Release { connection } if connection == first)),
        "the connection is kept"
    );
}

/// Events the fake does not produce, fed as the service sends them: an interim input
/// transcript and grounding reach the application as they came.
#[test]
fn interim_transcripts_and_grounding_reach_the_application() {
    let mut conduit = conduit(Duration::from_millis(500));
    let first = dial(&mut conduit);
    conduit.handle_setup_complete(Millis(10), first);
    while conduit.poll_event().is_some() {}
    let frame = r#"{"serverContent": {
        "interimInputTranscription": {"text": "what is the wea"},
        "groundingMetadata": {
            "groundingChunks": [{"web": {"title": "Forecast", "uri": "https://example.com/f"}}],
            "webSearchQueries": ["weather oslo"]
        }
    }}"#;
    let message = gemini_transport::wire::ServerMessage::from_json(frame.as_bytes()).unwrap();
    conduit.handle_message(Millis(20), first, message);
    let events: Vec<SessionEvent> = std::iter::from_fn(|| conduit.poll_event()).collect();
    assert_eq!(
        events[0],
        SessionEvent::InterimInputTranscript {
            text: "what is the wea".to_owned()
        }
    );
    let SessionEvent::Grounding(grounding) = &events[1] else {
        panic!("{events:?}");
    };
    assert_eq!(grounding.web_search_queries, ["weather oslo"]);
    let web = grounding.grounding_chunks[0].web.as_ref().unwrap();
    assert_eq!(
        (web.title.as_str(), web.uri.as_str()),
        ("Forecast", "https://example.com/f")
    );
    assert_eq!(events.len(), 2, "{events:?}");
}

/// A `turnComplete` with a reason and an interaction status: `TurnComplete`, the reason, and
/// `Idle` only once the interaction is over (`IN_PROGRESS` first, then `IDLE`).
#[test]
fn turn_complete_reason_and_interaction_status_reach_the_application() {
    let mut conduit = conduit(Duration::from_millis(500));
    let first = dial(&mut conduit);
    conduit.handle_setup_complete(Millis(10), first);
    while conduit.poll_event().is_some() {}
    let frames = [
        r#"{"serverContent": {"turnComplete": true, "turnCompleteReason": "NEED_MORE_INPUT",
            "interactionStatus": "IN_PROGRESS"}}"#,
        r#"{"serverContent": {"turnComplete": true, "interactionStatus": "IDLE"}}"#,
    ];
    let mut events = Vec::new();
    for (k, frame) in frames.iter().enumerate() {
        let message = gemini_transport::wire::ServerMessage::from_json(frame.as_bytes()).unwrap();
        conduit.handle_message(Millis(20 + k as u64), first, message);
        events.extend(std::iter::from_fn(|| conduit.poll_event()));
    }
    assert_eq!(
        events,
        [
            SessionEvent::TurnComplete,
            SessionEvent::TurnCompleteReason(agent_glue::TurnCompleteReason::NeedMoreInput),
            SessionEvent::TurnComplete,
            SessionEvent::Idle,
        ]
    );
}
