//! The scripted model: echo, tool calls, interruptions, audio, speech turns, initial history.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, model_text, shape, text_setup, with_functions};
use gemini_fake::{FakeConfig, FakeServer, Family, Part, ResponseFate, Role};
use gemini_transport::wire::{
    ClientMessage, Content, FunctionResponse, Modality, RealtimeInputConfig, ServerPayload, Setup,
};
use serde_json::json;

async fn serve(config: FakeConfig) -> FakeServer {
    FakeServer::start(config).await.unwrap()
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap()
}

#[tokio::test]
async fn echo_turn_frames_and_context() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    client.send(&ClientMessage::text("hello big world")).await;
    let turn = client.turn().await;
    assert_eq!(
        shape(&turn),
        [
            "modelTurn",
            "modelTurn",
            "modelTurn",
            "modelTurn",
            "generationComplete",
            "turnComplete"
        ]
    );
    assert_eq!(model_text(&turn), "echo: hello big world");
    let last = turn.last().unwrap().to_json();
    assert_eq!(
        last,
        r#"{"serverContent":{"turnComplete":true},"usageMetadata":{"promptTokenCount":3,"responseTokenCount":4,"totalTokenCount":7,"promptTokensDetails":[{"modality":"TEXT","tokenCount":3}],"responseTokensDetails":[{"modality":"TEXT","tokenCount":4}]}}"#
    );
    let session = server
        .wait_for_session(common::STEP, "answer recorded", |s| s.answers().len() == 1)
        .await
        .unwrap();
    assert_eq!(
        session.context_texts(),
        ["hello big world", "echo: hello big world"]
    );
    assert_eq!(session.context()[1].role, Role::Model);
    assert_eq!(session.generations(), 1);
    assert!(!session.answers()[0].interrupted);
}

#[tokio::test]
async fn turn_complete_false_only_appends() {
    let server = serve(FakeConfig::new()).await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    client
        .send(&ClientMessage::client_content(
            vec![Content::user_text("note")],
            false,
        ))
        .await;
    client
        .send(&ClientMessage::client_content(Vec::new(), true))
        .await;
    // The new input since the last answer is "note".
    assert_eq!(model_text(&client.turn().await), "echo: note");
    client
        .send(&ClientMessage::client_content(Vec::new(), true))
        .await;
    assert_eq!(model_text(&client.turn().await), "echo: ");
}

#[tokio::test]
async fn tool_call_then_response_then_answer() {
    let server = serve(FakeConfig::new()).await;
    let setup = with_functions(text_setup(&server), &["get_weather"]);
    let mut client = Client::start(&server, setup).await;
    client
        .send(&ClientMessage::text("what does get_weather say"))
        .await;
    let call = client.message().await;
    assert_eq!(
        call.to_json(),
        r#"{"toolCall":{"functionCalls":[{"id":"call-1-1","name":"get_weather"}]}}"#
    );
    let response = FunctionResponse::new("call-1-1", "get_weather", object(json!({"temp_c": 18})));
    client
        .send(&ClientMessage::tool_response(vec![response.clone()]))
        .await;
    let turn = client.turn().await;
    assert_eq!(model_text(&turn), r#"get_weather returned {"temp_c":18}"#);
    // A second response for the same id is recorded and ignored.
    client
        .send(&ClientMessage::tool_response(vec![response]))
        .await;
    let session = server
        .wait_for_session(common::STEP, "duplicate recorded", |s| {
            s.tool_responses().len() == 2
        })
        .await
        .unwrap();
    assert_eq!(session.tool_calls().len(), 1);
    assert_eq!(session.tool_calls()[0].id, "call-1-1");
    let fates: Vec<_> = session.tool_responses().iter().map(|r| r.fate).collect();
    assert_eq!(fates, [ResponseFate::Accepted, ResponseFate::Duplicate]);
    assert_eq!(session.generations(), 2);
    assert!(session.pending_calls().is_empty());
    let context = session.context();
    assert_eq!(context.len(), 4);
    assert!(
        matches!(&context[1].parts[0], Part::FunctionCall { id, name, .. } if id == "call-1-1" && name == "get_weather")
    );
    assert!(
        matches!(&context[2].parts[0], Part::FunctionResponse { response, .. } if response == &json!({"temp_c": 18}))
    );
    assert_eq!(context[3].text(), r#"get_weather returned {"temp_c":18}"#);
}

/// On paused tokio time: the answer's chunks are 300 ms apart on virtual time, and the next
/// one is due only once the runtime has nothing left to run, so "stop" always lands between
/// the first and the second.
#[tokio::test(start_paused = true)]
async fn input_during_generation_interrupts() {
    let server = serve(FakeConfig::new().with_chunk_interval(Duration::from_millis(300))).await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    client
        .send(&ClientMessage::text("one two three four"))
        .await;
    let first = client.message().await;
    assert_eq!(model_text(&[first]), "echo: ");
    client.send(&ClientMessage::realtime_text("stop")).await;
    let cut = client.turn().await;
    assert_eq!(shape(&cut), ["interrupted", "turnComplete"]);
    let next = client.turn().await;
    assert_eq!(model_text(&next), "echo: stop");
    let session = server.latest_session().unwrap();
    assert_eq!(
        session.context_texts(),
        ["one two three four", "echo: ", "stop", "echo: stop"]
    );
    assert!(session.answers()[0].interrupted);
    assert_eq!(session.generations(), 2);
}

#[tokio::test]
async fn interrupting_a_pending_call_cancels_it() {
    let server = serve(FakeConfig::new()).await;
    let setup = with_functions(text_setup(&server), &["book"]);
    let mut client = Client::start(&server, setup).await;
    client.send(&ClientMessage::text("book a table")).await;
    assert!(matches!(
        client.message().await.payload,
        Some(ServerPayload::ToolCall(_))
    ));
    client.send(&ClientMessage::text("never mind")).await;
    let cut = client.turn().await;
    assert_eq!(
        cut[0].to_json(),
        r#"{"toolCallCancellation":{"ids":["call-1-1"]}}"#
    );
    assert_eq!(shape(&cut[1..]), ["interrupted", "turnComplete"]);
    assert_eq!(model_text(&client.turn().await), "echo: never mind");
    // The late response is ignored.
    client
        .send(&ClientMessage::tool_response(vec![FunctionResponse::new(
            "call-1-1",
            "book",
            object(json!({"ok": true})),
        )]))
        .await;
    let session = server
        .wait_for_session(common::STEP, "late response", |s| {
            s.tool_responses().len() == 1
        })
        .await
        .unwrap();
    assert_eq!(session.cancelled_calls(), ["call-1-1"]);
    assert_eq!(session.tool_responses()[0].fate, ResponseFate::Cancelled);
}

#[tokio::test]
async fn audio_modality_streams_pcm_and_transcription() {
    for (family, frames_per_chunk) in [(Family::Gemini25, 2), (Family::Gemini38, 1)] {
        let server = serve(FakeConfig::new().with_family(family)).await;
        let setup = Setup::new(server.config().setup_model())
            .with_response_modality(Modality::Audio)
            .with_transcriptions();
        let mut client = Client::start(&server, setup).await;
        client.send(&ClientMessage::text("hi there")).await;
        let turn = client.turn().await;
        // "echo: hi there" is three chunks, then generationComplete and turnComplete.
        assert_eq!(turn.len(), 3 * frames_per_chunk + 2, "{family}");
        let mut transcript = String::new();
        let mut pcm = 0;
        for message in &turn {
            let content = message.server_content_ref().unwrap();
            if let Some(t) = &content.output_transcription {
                transcript.push_str(&t.text);
            }
            for part in content.model_turn.iter().flat_map(|m| m.parts.iter()) {
                let blob = part.as_inline_data().unwrap();
                assert_eq!(blob.mime_type, "audio/pcm;rate=24000");
                pcm += blob.data.len();
            }
        }
        assert_eq!(transcript, "echo: hi there");
        assert_eq!(pcm, 3 * 1920, "40 ms of 24 kHz 16-bit audio per chunk");
        let session = server.latest_session().unwrap();
        assert_eq!(
            session.context()[1].parts,
            [Part::AudioTranscript("echo: hi there".into())]
        );
    }
}

fn tone(ms: u32, amplitude: i16) -> Vec<u8> {
    (0..16 * ms)
        .flat_map(|i| (if i % 2 == 0 { amplitude } else { -amplitude }).to_le_bytes())
        .collect()
}

#[tokio::test]
async fn speech_then_silence_makes_a_transcribed_turn() {
    let server = serve(FakeConfig::new()).await;
    let setup = text_setup(&server).with_transcriptions();
    let mut client = Client::start(&server, setup).await;
    for _ in 0..12 {
        client
            .send(&ClientMessage::audio(&tone(100, 3000), 16_000))
            .await;
    }
    for _ in 0..5 {
        client
            .send(&ClientMessage::audio(&tone(100, 0), 16_000))
            .await;
    }
    let turn = client.turn().await;
    let heard = turn[0]
        .server_content_ref()
        .unwrap()
        .input_transcription
        .clone()
        .unwrap();
    assert_eq!(heard.text, "[audio 1.20s]");
    assert!(heard.finished);
    assert_eq!(model_text(&turn), "echo: [audio 1.20s]");
}

#[tokio::test]
async fn manual_activity_and_audio_stream_end() {
    let server = serve(FakeConfig::new()).await;
    let setup =
        text_setup(&server).with_realtime_input_config(RealtimeInputConfig::manual_activity());
    let mut client = Client::start(&server, setup).await;
    client.send(&ClientMessage::activity_start()).await;
    client
        .send(&ClientMessage::audio(&tone(500, 0), 16_000))
        .await;
    client.send(&ClientMessage::activity_end()).await;
    assert_eq!(model_text(&client.turn().await), "echo: [audio 0.50s]");

    let mut client = Client::start(&server, text_setup(&server)).await;
    client
        .send(&ClientMessage::audio(&tone(300, 3000), 16_000))
        .await;
    client.send(&ClientMessage::audio_stream_end()).await;
    assert_eq!(model_text(&client.turn().await), "echo: [audio 0.30s]");
}

#[tokio::test]
async fn initial_history_is_not_answered() {
    let server = serve(FakeConfig::new().with_family(Family::Gemini25)).await;
    let setup = text_setup(&server).with_initial_history_in_client_content(true);
    let mut client = Client::start(&server, setup).await;
    let history =
        include_str!("../../../docs/protocol/vectors/client_content_initial_history.json");
    client.send_raw(history).await;
    // Still history: turnComplete closed the phase, so this one is answered.
    client.send(&ClientMessage::text("and now?")).await;
    let turn = client.turn().await;
    assert_eq!(model_text(&turn), "echo: and now?");
    let session = server.latest_session().unwrap();
    assert_eq!(session.generations(), 1);
    assert_eq!(session.context().len(), 6);
    assert_eq!(session.context_texts()[0], "What's the weather in Paris?");
    assert!(
        matches!(&session.context()[2].parts[0], Part::FunctionResponse { id, .. } if id == "function-call-4712364219839810342")
    );
}

#[tokio::test]
async fn history_phase_swallows_turns_until_turn_complete() {
    // TEXT on 3.8 needs the test switch.
    let server = serve(
        FakeConfig::new()
            .with_family(Family::Gemini38)
            .with_text_on_3_8(true),
    )
    .await;
    let setup = text_setup(&server).with_initial_history_in_client_content(true);
    let mut client = Client::start(&server, setup).await;
    client
        .send(&ClientMessage::text("typed but swallowed"))
        .await;
    client.send(&ClientMessage::realtime_text("ping")).await;
    let turn = client.turn().await;
    assert_eq!(model_text(&turn), "echo: ping");
    let session = server.latest_session().unwrap();
    assert_eq!(
        session.context_texts(),
        ["typed but swallowed", "ping", "echo: ping"]
    );
    assert_eq!(session.generations(), 1);
}

/// On paused tokio time: the answer's 300 ms chunks and the voice detection's silence are
/// virtual time.
#[tokio::test(start_paused = true)]
async fn speech_barges_in_unless_no_interruption() {
    use gemini_transport::wire::ActivityHandling;
    let server = serve(FakeConfig::new().with_chunk_interval(Duration::from_millis(300))).await;
    let mut client = Client::start(&server, text_setup(&server)).await;
    client.send(&ClientMessage::text("a long answer")).await;
    client.message().await;
    client
        .send(&ClientMessage::audio(&tone(100, 3000), 16_000))
        .await;
    assert_eq!(shape(&client.turn().await), ["interrupted", "turnComplete"]);

    let mut config = RealtimeInputConfig::default();
    config.activity_handling = Some(ActivityHandling::NoInterruption);
    let setup = text_setup(&server).with_realtime_input_config(config);
    let mut client = Client::start(&server, setup).await;
    client.send(&ClientMessage::text("keep talking")).await;
    client.message().await;
    client
        .send(&ClientMessage::audio(&tone(100, 3000), 16_000))
        .await;
    client.send(&ClientMessage::audio_stream_end()).await;
    // The answer runs to its end, then the spoken turn is answered.
    assert_eq!(model_text(&client.turn().await), "keep talking");
    assert_eq!(model_text(&client.turn().await), "echo: [audio 0.10s]");
}
