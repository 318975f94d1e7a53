//! The server events a voice UI needs, over loopback to `gemini-fake`: the server's voice
//! activity around speech, usage by modality, and the Vertex session id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use agent_glue::{
    AudioFormat, Endpoint, LiveSession, Modality, ModalityTokenCount, SecretString, SessionEvent,
};
use common::{endpoint, server, until};
use gemini_fake::Family;

/// A second of a 440 Hz tone, loud enough for the fake's activity detection.
fn tone() -> Vec<i16> {
    (0..16_000)
        .map(|n| {
            (f64::sin(std::f64::consts::TAU * 440.0 * f64::from(n) / 16_000.0) * 8_000.0) as i16
        })
        .collect()
}

#[tokio::test]
async fn the_servers_voice_activity_brackets_the_users_speech_and_usage_comes_by_modality() {
    let server = server(Family::Gemini31, |c| c).await;
    let (session, mut events) =
        LiveSession::builder(endpoint(&server), server.config().setup_model())
            .modality(Modality::Text)
            .connect()
            .await
            .expect("connects");
    session
        .push_samples(&tone(), AudioFormat::mono(16_000))
        .expect("pushed");
    session.end_audio_stream().expect("sent");
    let seen = until(
        &mut events,
        "the answer's usage",
        |e| matches!(e, SessionEvent::Usage(u) if u.response_tokens.is_some()),
    )
    .await;
    let position = |pred: &dyn Fn(&SessionEvent) -> bool| seen.iter().position(pred);
    let start = position(&|e| matches!(e, SessionEvent::VoiceActivityStart));
    let end = position(&|e| matches!(e, SessionEvent::VoiceActivityEnd));
    let transcript =
        position(&|e| matches!(e, SessionEvent::InputTranscript { finished: true, .. }));
    assert!(start.is_some() && end.is_some(), "{seen:?}");
    assert!(start < end, "{seen:?}");
    assert!(end <= transcript.or(end), "{seen:?}");
    let Some(SessionEvent::Usage(usage)) = seen.last() else {
        panic!("{seen:?}");
    };
    assert_eq!(
        usage.response_by_modality,
        [ModalityTokenCount {
            modality: Modality::Text,
            token_count: usage.response_tokens.unwrap_or_default(),
        }]
    );
    assert_eq!(usage.prompt_by_modality.len(), 1);
    assert_eq!(usage.prompt_by_modality[0].modality, Modality::Text);
    session.close().await.expect("closed");
}

#[tokio::test]
async fn a_vertex_session_reports_the_servers_session_id() {
    let server = server(Family::Gemini25, |c| c.with_vertex(true)).await;
    let endpoint = Endpoint::vertex("us-central1", SecretString::from("test"))
        .unwrap()
        .with_base_url(&server.url())
        .unwrap();
    let (session, mut events) = LiveSession::builder(endpoint, server.config().setup_model())
        .modality(Modality::Text)
        .connect()
        .await
        .expect("connects");
    let seen = until(&mut events, "the session id", |e| {
        matches!(e, SessionEvent::ServerSessionId(_))
    })
    .await;
    let Some(SessionEvent::ServerSessionId(id)) = seen.last() else {
        panic!("{seen:?}");
    };
    assert!(id.starts_with("fake-session-"), "{id}");
    session.close().await.expect("closed");
}
