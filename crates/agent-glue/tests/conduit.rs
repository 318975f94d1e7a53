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

/// A socket that takes everything and counts frames and flushes.
#[derive(Default)]
struct Counting {
    audio_frames: usize,
    flushes: usize,
    /// Audio frames taken and not flushed yet.
    unflushed: usize,
}

impl agent_glue::conduit::FrameSink for Counting {
    fn poll_ready(&mut self) -> std::task::Poll<Result<(), agent_glue::conduit::SinkFailed>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn start_send(
        &mut self,
        frame: agent_glue::conduit::Frame<'_>,
    ) -> Result<(), agent_glue::conduit::SinkFailed> {
        if matches!(frame, agent_glue::conduit::Frame::Audio(_)) {
            self.audio_frames += 1;
            self.unflushed += 1;
        }
        Ok(())
    }

    fn poll_flush(&mut self) -> std::task::Poll<Result<(), agent_glue::conduit::SinkFailed>> {
        self.flushes += 1;
        self.unflushed = 0;
        std::task::Poll::Ready(Ok(()))
    }
}

/// A connected conduit with the setup's own writes done, and its socket.
fn connected() -> (Conduit, ConnectionId, Counting) {
    let mut conduit = conduit(Duration::from_secs(10));
    let connection = dial(&mut conduit);
    conduit.handle_setup_complete(Millis(0), connection);
    let mut sink = Counting::default();
    let _ = conduit.write(Millis(0), connection, &mut sink);
    (conduit, connection, Counting::default())
}

fn chunk() -> bytes::Bytes {
    bytes::Bytes::from(vec![0u8; 640])
}

/// A producer at real time (one 20 ms chunk every 20 ms) has every chunk written and flushed
/// by its own push: none is held.
#[test]
fn a_chunk_pushed_at_real_time_is_flushed_at_once() {
    let (mut conduit, connection, mut sink) = connected();
    for n in 1..=100u64 {
        let now = Millis(n * 20);
        conduit
            .push_audio(now, chunk(), agent_glue::conduit::AtBound::DropOldest)
            .unwrap();
        let _ = conduit.write(now, connection, &mut sink);
        assert_eq!(sink.unflushed, 0, "chunk {n} was held");
        assert_eq!(sink.audio_frames, n as usize);
    }
}

/// A producer far faster than real time (1,000 chunks, 20 s of audio, pushed in the same
/// millisecond) has its burst coalesced: the first chunks go at once, the rest in flushes of
/// `BURST_FRAMES`; what is left is flushed by the timer within `BURST_WINDOW`, and nothing is
/// lost or reordered on the way.
#[test]
fn a_burst_is_flushed_in_batches_and_the_rest_by_the_timer() {
    use agent_glue::conduit::{BURST_FRAMES, BURST_WINDOW};
    let (mut conduit, connection, mut sink) = connected();
    let now = Millis(1_000);
    for _ in 0..1_000 {
        conduit
            .push_audio(now, chunk(), agent_glue::conduit::AtBound::DropOldest)
            .unwrap();
        let _ = conduit.write(now, connection, &mut sink);
    }
    assert_eq!(
        sink.audio_frames, 1_000,
        "every chunk is taken by the socket"
    );
    // 100 ms of lead go out one write each; the rest by the batch.
    let most = 5 + 1_000 / BURST_FRAMES + 1;
    assert!(
        sink.flushes <= most,
        "{} flushes for 1,000 chunks (at most {most})",
        sink.flushes
    );
    assert!(
        sink.flushes >= 1_000 / BURST_FRAMES,
        "{} flushes",
        sink.flushes
    );
    // The tail of the burst waits for the timer, not for more audio.
    if sink.unflushed > 0 {
        let deadline = conduit.poll_timeout().expect("a flush is held");
        let window = u64::try_from(BURST_WINDOW.as_millis()).unwrap();
        assert!(deadline <= Millis(now.0 + window), "{deadline:?}");
        conduit.handle_timeout(deadline);
        let _ = conduit.write(deadline, connection, &mut sink);
    }
    assert_eq!(sink.unflushed, 0, "the timer flushed the tail");
    // A message is never held behind a burst.
    conduit
        .push_audio(now, chunk(), agent_glue::conduit::AtBound::DropOldest)
        .unwrap();
    let _ = conduit.write(now, connection, &mut sink);
    conduit
        .command(now, agent_glue::conduit::Command::Text("hello".to_owned()))
        .unwrap();
    let _ = conduit.write(now, connection, &mut sink);
    assert_eq!(sink.unflushed, 0, "the message flushed the audio before it");
}

/// Video frames go at most one per `video_frame_interval` (1 s by default): a camera pushing
/// faster has the frames in between dropped, not queued, and none goes while disconnected.
#[test]
fn video_frames_go_at_most_one_per_interval() {
    let endpoint = Endpoint::api_key(SecretString::from("test-key"))
        .with_base_url("ws://127.0.0.1:9")
        .unwrap();
    let mut core = LiveSession::builder(endpoint, "models/gemini-3.8-live")
        .into_core(Millis(0), 7)
        .unwrap();
    let frame = || agent_glue::conduit::Command::Video {
        frame: bytes::Bytes::from_static(&[0xff, 0xd8, 0xff, 0xe0]),
        mime_type: "image/jpeg".to_owned(),
    };
    let videos = |core: &mut agent_glue::conduit::SessionCore| {
        std::iter::from_fn(|| core.poll_transmit())
            .filter(|t| t.message.to_json().contains("image/jpeg"))
            .count()
    };
    // Not connected yet: dropped.
    assert!(!core.video_due(Millis(0)));
    core.command(Millis(0), frame()).unwrap();
    let connection = match core.poll_action() {
        Some(agent_glue::conduit::Action::Open { connection, .. }) => connection,
        other => panic!("expected an open, got {other:?}"),
    };
    core.handle_setup_complete(Millis(5), connection);
    assert_eq!(videos(&mut core), 0);
    // Thirty frames a second for two seconds: one per second goes.
    for k in 0..60_u64 {
        let now = Millis(10 + k * 33);
        core.command(now, frame()).unwrap();
    }
    // At 10 ms and at 1,033 ms (the first push a second after it).
    assert_eq!(videos(&mut core), 2);
    assert!(!core.video_due(Millis(2_032)));
    assert!(core.video_due(Millis(2_033)));
}
