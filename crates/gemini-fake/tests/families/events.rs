//! What the server tells beyond the model's turns: `voiceActivity`, `setupComplete.sessionId`,
//! and setups with transcription fields it does not know.

use gemini_fake::Family;
use gemini_transport::wire::{
    ClientMessage, RealtimeInputConfig, ServerPayload, SessionResumptionConfig, VoiceActivityType,
};

use crate::support::{Fake, ms, no_lifetime, setup};

/// 16 kHz PCM16 of a loud square wave (speech to the fake's detector) or silence.
fn pcm(ms: usize, loud: bool) -> Vec<u8> {
    let amplitude: i16 = if loud { 3000 } else { 0 };
    (0..16 * ms)
        .flat_map(|i| (if i % 2 == 0 { amplitude } else { -amplitude }).to_le_bytes())
        .collect()
}

fn activity(fake: &Fake, conn: gemini_fake::ConnectionId) -> Vec<VoiceActivityType> {
    fake.messages(conn)
        .iter()
        .filter_map(|m| match &m.payload {
            Some(ServerPayload::VoiceActivity(v)) => Some(v.activity_type.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn voice_activity_start_and_end_come_from_the_servers_detection() {
    for family in Family::ALL {
        let mut fake = Fake::new(no_lifetime());
        let conn = fake.open(setup(family));
        fake.send(conn, &ClientMessage::audio(&pcm(300, true), 16_000));
        fake.send(conn, &ClientMessage::audio(&pcm(600, false), 16_000));
        fake.run(ms(100));
        let expected = if family.capabilities().voice_activity {
            vec![
                VoiceActivityType::ActivityStart,
                VoiceActivityType::ActivityEnd,
            ]
        } else {
            Vec::new()
        };
        assert_eq!(activity(&fake, conn), expected, "{family}");
        assert_eq!(fake.turns(conn)[0].said, "echo: [audio 0.30s]");
    }
    // With the client's own activity markers the server detects nothing.
    let mut fake = Fake::new(no_lifetime());
    let manual =
        setup(Family::Gemini38).with_realtime_input_config(RealtimeInputConfig::manual_activity());
    let conn = fake.open(manual);
    fake.send(conn, &ClientMessage::activity_start());
    fake.send(conn, &ClientMessage::audio(&pcm(300, true), 16_000));
    fake.send(conn, &ClientMessage::activity_end());
    assert!(activity(&fake, conn).is_empty());
}

#[test]
fn setup_complete_carries_the_session_id_on_vertex() {
    let session_id = |fake: &Fake, conn| match &fake.messages(conn)[0].payload {
        Some(ServerPayload::SetupComplete(done)) => done.session_id.clone(),
        other => panic!("{other:?}"),
    };
    let mut fake = Fake::new(no_lifetime().with_vertex(true));
    let vertex = |mut s: gemini_transport::wire::Setup| {
        s.model = Family::Gemini38.setup_model(true);
        s
    };
    let conn = fake.open(vertex(setup(Family::Gemini38)));
    assert_eq!(session_id(&fake, conn).as_deref(), Some("fake-session-1"));
    let handle = fake.handle(conn).unwrap();
    fake.sim.client_closed(conn, Some(1000), fake.sim.now());
    let resumed = fake.open(
        vertex(setup(Family::Gemini38))
            .with_session_resumption(SessionResumptionConfig::resume(handle)),
    );
    assert_eq!(
        session_id(&fake, resumed).as_deref(),
        Some("fake-session-1")
    );

    let mut fake = Fake::new(no_lifetime());
    let conn = fake.open(setup(Family::Gemini38));
    assert_eq!(session_id(&fake, conn), None, "not on the Developer API");
}

#[test]
fn transcription_configs_are_opaque() {
    let mut fake = Fake::new(no_lifetime());
    let conn = fake.connect();
    fake.send_raw(
        conn,
        r#"{"setup":{"model":"models/gemini-3.8-live","generationConfig":{"responseModalities":["AUDIO"]},
            "inputAudioTranscription":{"languageCodes":["en-US","de-DE"],"customVocabulary":{"phrases":["Gemini"]}},
            "outputAudioTranscription":{"someNewerField":{"x":1}}}}"#,
    );
    assert!(fake.set_up(conn), "{:?}", fake.closed(conn));
    fake.send(conn, &ClientMessage::realtime_text("hi"));
    fake.run(ms(100));
    assert_eq!(fake.turns(conn)[0].said, "echo: hi", "transcription on");
}
