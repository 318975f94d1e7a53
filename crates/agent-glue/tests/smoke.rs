//! A session against the fake server: typed turns, a tool call and spoken audio reach the
//! server once, and the application's context equals the server's.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use agent_glue::SessionEvent;
use common::*;
use gemini_fake::Family;
use resume_policy::DefaultPolicy;
use serde_json::json;

#[tokio::test]
async fn text_turn_and_tool_call_reach_the_server_once() {
    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) = session(
        &server,
        Box::new(DefaultPolicy::default()),
        vec![weather_tool()],
    )
    .await;

    barrier(&session, &mut events, "hello there").await;
    let (call_id, name) = weather_round(&session, &mut events, json!({"temp_c": 18})).await;
    assert_eq!(name, "get_weather");

    let expected = vec![
        "user: hello there".to_owned(),
        "model: echo: hello there".to_owned(),
        "user: what does get_weather say".to_owned(),
        format!("call {call_id} get_weather"),
        format!("response {call_id} get_weather {}", json!({"temp_c": 18})),
        "model: get_weather returned {\"temp_c\":18}".to_owned(),
    ];
    assert_eq!(s_entries(&server), expected);
    assert_eq!(l_entries(&session.chat_ctx()), expected);
    assert_eq!(server.latest_session().unwrap().generations(), 3);
    session.close().await.unwrap();
}

/// 440 Hz at 16 kHz, loud enough for the fake's voice activity detection.
fn tone(seconds: f64) -> Vec<u8> {
    let samples = (16_000.0 * seconds) as usize;
    (0..samples)
        .flat_map(|n| {
            let t = n as f64 / 16_000.0;
            let v = (f64::sin(2.0 * std::f64::consts::PI * 440.0 * t) * 8_000.0) as i16;
            v.to_le_bytes()
        })
        .collect()
}

#[tokio::test]
async fn pushed_audio_is_cut_into_frames_and_the_spoken_turn_is_in_both_contexts() {
    use agent_glue::{Error, LiveSession};
    use gemini_transport::wire::{ClientMessage, Modality, RealtimeInput};

    let server = server(Family::Gemini25, |c| c).await;
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .policy(Box::new(DefaultPolicy::default()))
            .connect()
            .await
            .unwrap();

    // Half a sample is refused and nothing is sent.
    assert!(matches!(
        session.push_audio(vec![0u8; 3]),
        Err(Error::InvalidArgument(_))
    ));

    // 100 ms in one push: frames of 40 ms (1,280 bytes), 40 ms and 20 ms.
    let speech = tone(1.0);
    session.push_audio(&speech[..3_200]).unwrap();
    session.push_audio(&speech[3_200..]).unwrap();
    session.end_audio_stream().unwrap();
    until(&mut events, "answer to the spoken turn", |e| {
        matches!(e, SessionEvent::TurnComplete)
    })
    .await;

    let frames = server.connections()[0].frames.clone();
    let sizes: Vec<usize> = frames
        .iter()
        .filter_map(|f| match f.decode() {
            Ok(ClientMessage::RealtimeInput(RealtimeInput::Audio(blob))) => {
                assert_eq!(blob.mime_type, "audio/pcm;rate=16000");
                Some(blob.data.len())
            }
            _ => None,
        })
        .collect();
    assert_eq!(&sizes[..3], [1_280, 1_280, 640]);
    assert_eq!(sizes.iter().sum::<usize>(), speech.len());
    assert!(sizes.iter().all(|&n| n <= 1_280));
    assert_eq!(
        frames.iter().filter(|f| f.kind == "realtimeInput").count(),
        sizes.len() + 1
    );

    // The user's spoken turn (from the input transcription) and the answer, on both sides.
    let s = s_entries(&server);
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(s[0].starts_with("user: [audio "), "{s:?}");
    assert_eq!(s[1], format!("model: echo: {}", &s[0]["user: ".len()..]));
    assert_eq!(l_entries(&session.chat_ctx()), s);
    session.close().await.unwrap();
}
