//! Golden vectors from `../shared/protocol/vectors`: every file decodes to the values it holds,
//! every canonical file re-encodes to itself (as a JSON value), and the Python-SDK forms decode
//! to the same messages as their canonical spelling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use gemini_transport::wire::{
    ActivityHandling, Behavior, Blob, ClientMessage, Content, EndSensitivity, Modality, PartData,
    RealtimeInput, Role, Scheduling, ServerContent, ServerMessage, ServerPayload, Setup,
    StartSensitivity, TurnCompleteReason, TurnCoverage, UsageMetadata, VoiceActivityType,
};
use serde_json::{Value, json};

const HANDLE: &str = "CiQ2ZjlmYjM3Ny1hYmNkLTQ0ZWEtOTc2Mi0xMjM0NTY3ODkwYWISBnJlc3VtZQ";
const NEW_HANDLE: &str = "CiQ2ZjlmYjM3Ny1hYmNkLTQ0ZWEtOTc2Mi0xMjM0NTY3ODkwYWISBnJlc3VtZRgC";
const CALL_ID: &str = "function-call-4712364219839810342";
const SYSTEM: &str = "You are a concise, friendly voice assistant.";
/// The 8 samples of `client_realtime_audio.json` / `client_realtime_media_chunks_legacy.json`.
const MIC_PCM: [u8; 16] = [0, 0, 0, 16, 0, 32, 0, 16, 0, 0, 0, 240, 0, 224, 0, 240];
/// The 8 samples of the server audio vectors.
const MODEL_PCM: [u8; 16] = [
    0, 0, 128, 12, 0, 25, 128, 12, 0, 0, 128, 243, 0, 231, 128, 243,
];

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/protocol/vectors")
}

fn read(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_vector_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .expect("vectors directory")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

fn client(name: &str) -> ClientMessage {
    ClientMessage::from_json(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn server(name: &str) -> ServerMessage {
    ServerMessage::from_json(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn setup(name: &str) -> Setup {
    match client(name) {
        ClientMessage::Setup(s) => *s,
        other => panic!("{name}: not a setup: {other:?}"),
    }
}

fn content(name: &str) -> ServerContent {
    match server(name).payload {
        Some(ServerPayload::ServerContent(c)) => *c,
        other => panic!("{name}: not serverContent: {other:?}"),
    }
}

fn text_parts(c: &Content) -> Vec<&str> {
    c.parts.iter().filter_map(|p| p.as_text()).collect()
}

#[test]
fn the_vector_set_is_the_documented_one() {
    let names = all_vector_names();
    assert_eq!(names.len(), 40, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("client_") || n.starts_with("server_"))
    );
}

#[test]
fn every_canonical_vector_reencodes_to_itself() {
    for name in all_vector_names() {
        if name.ends_with("_python_sdk_form.json") {
            continue;
        }
        let bytes = read(&name);
        let expected: Value = serde_json::from_slice(&bytes).unwrap();
        let encoded = if name.starts_with("client_") {
            client(&name).to_json()
        } else {
            server(&name).to_json()
        };
        let actual: Value = serde_json::from_str(&encoded)
            .unwrap_or_else(|e| panic!("{name}: encoder produced invalid JSON {encoded}: {e}"));
        assert_eq!(actual, expected, "{name}");
    }
}

#[test]
fn the_audio_fast_path_writes_exactly_what_serde_writes() {
    for name in all_vector_names()
        .iter()
        .filter(|n| n.starts_with("client_"))
    {
        let msg = client(name);
        assert_eq!(
            msg.to_json(),
            serde_json::to_string(&msg).unwrap(),
            "{name}"
        );
    }
    let odd = [
        ClientMessage::audio(&[], 16_000),
        ClientMessage::audio(&[1, 2, 3, 4, 5], 48_000),
        ClientMessage::RealtimeInput(RealtimeInput::Audio(Blob::new("a\"b\\c\n", vec![9]))),
        ClientMessage::RealtimeInput(RealtimeInput::Audio(Blob::new("", vec![9]))),
        ClientMessage::RealtimeInput(RealtimeInput::Audio(Blob::default())),
    ];
    for msg in odd {
        assert_eq!(
            msg.to_json(),
            serde_json::to_string(&msg).unwrap(),
            "{msg:?}"
        );
    }
}

#[test]
fn write_json_into_a_reused_buffer_matches_to_json() {
    let mut buf = b"left over from the previous frame".to_vec();
    for name in all_vector_names() {
        let expected = if name.starts_with("client_") {
            let msg = client(&name);
            msg.write_json(&mut buf);
            msg.to_json()
        } else {
            let msg = server(&name);
            msg.write_json(&mut buf);
            msg.to_json()
        };
        assert_eq!(std::str::from_utf8(&buf).unwrap(), expected, "{name}");
    }
}

// ----- client vectors -----

#[test]
fn setup_minimal() {
    let s = setup("client_setup_minimal.json");
    assert_eq!(s.model, "models/gemini-3.1-flash-live-preview");
    assert_eq!(
        s.generation_config.unwrap().response_modalities,
        vec![Modality::Audio]
    );
    assert!(s.session_resumption.is_none());
    assert!(s.tools.is_empty());
}

#[test]
fn setup_full_native_audio() {
    let s = setup("client_setup_full_native_audio.json");
    assert_eq!(
        s.model,
        "models/gemini-2.5-flash-native-audio-preview-12-2025"
    );
    let g = s.generation_config.unwrap();
    assert_eq!(g.response_modalities, vec![Modality::Audio]);
    let speech = g.speech_config.unwrap();
    assert_eq!(
        speech
            .voice_config
            .unwrap()
            .prebuilt_voice_config
            .unwrap()
            .voice_name,
        "Puck"
    );
    assert_eq!(speech.language_code.as_deref(), Some("en-US"));
    assert_eq!(g.thinking_config.unwrap().thinking_budget, Some(0));
    assert_eq!(g.enable_affective_dialog, Some(true));
    assert_eq!(
        text_parts(s.system_instruction.as_ref().unwrap()),
        vec![SYSTEM]
    );
    assert_eq!(s.system_instruction.unwrap().role, Some(Role::User));
    let decl = &s.tools[0].function_declarations[0];
    assert_eq!(decl.name, "get_weather");
    assert_eq!(decl.description, "Returns the current weather for a city.");
    assert_eq!(
        decl.parameters.as_ref().unwrap()["properties"]["city"]["type"],
        "STRING"
    );
    assert_eq!(decl.behavior, None);
    assert_eq!(s.session_resumption.unwrap().handle, None);
    assert!(s.input_audio_transcription.is_some());
    assert!(s.output_audio_transcription.is_some());
    let rt = s.realtime_input_config.unwrap();
    let aad = rt.automatic_activity_detection.unwrap();
    assert_eq!(aad.disabled, Some(false));
    assert_eq!(aad.start_of_speech_sensitivity, Some(StartSensitivity::Low));
    assert_eq!(aad.end_of_speech_sensitivity, Some(EndSensitivity::Low));
    assert_eq!(aad.prefix_padding_ms, Some(20));
    assert_eq!(aad.silence_duration_ms, Some(500));
    assert_eq!(
        rt.activity_handling,
        Some(ActivityHandling::StartOfActivityInterrupts)
    );
    assert_eq!(
        rt.turn_coverage,
        Some(TurnCoverage::TurnIncludesOnlyActivity)
    );
    let cwc = s.context_window_compression.unwrap();
    assert_eq!(cwc.trigger_tokens, Some(25_600));
    assert_eq!(cwc.sliding_window.unwrap().target_tokens, Some(12_800));
    assert_eq!(s.proactivity.unwrap().proactive_audio, Some(true));
    assert!(s.history_config.is_none());
}

#[test]
fn setup_initial_history() {
    let s = setup("client_setup_initial_history.json");
    assert_eq!(
        s.history_config.unwrap().initial_history_in_client_content,
        Some(true)
    );
    let cwc = s.context_window_compression.unwrap();
    assert_eq!(cwc.trigger_tokens, None);
    assert_eq!(cwc.sliding_window.unwrap().target_tokens, None);
    assert_eq!(s.session_resumption.unwrap().handle, None);
}

#[test]
fn setup_resume() {
    let s = setup("client_setup_resume.json");
    let r = s.session_resumption.unwrap();
    assert_eq!(r.handle.as_deref(), Some(HANDLE));
    assert_eq!(r.transparent, None);
    assert_eq!(s.tools[0].function_declarations[0].name, "get_weather");
    assert!(s.output_audio_transcription.is_some());
    assert_eq!(
        s.history_config.unwrap().initial_history_in_client_content,
        Some(true)
    );
}

#[test]
fn setup_manual_vad_text() {
    let s = setup("client_setup_manual_vad_text.json");
    assert_eq!(
        s.generation_config.unwrap().response_modalities,
        vec![Modality::Text]
    );
    let rt = s.realtime_input_config.unwrap();
    assert_eq!(
        rt.automatic_activity_detection.unwrap().disabled,
        Some(true)
    );
    assert_eq!(rt.activity_handling, Some(ActivityHandling::NoInterruption));
    assert_eq!(rt.turn_coverage, Some(TurnCoverage::TurnIncludesAllInput));
    assert!(s.output_audio_transcription.is_none());
}

#[test]
fn setup_vertex_transparent_resume() {
    let s = setup("client_setup_vertex_transparent_resume.json");
    assert!(
        s.model
            .starts_with("projects/my-project/locations/us-central1/publishers/google/")
    );
    let r = s.session_resumption.unwrap();
    assert_eq!(r.handle.as_deref(), Some(HANDLE));
    assert_eq!(r.transparent, Some(true));
}

/// `client_setup_python_sdk_form.json` has no byte-for-byte canonical twin among the vectors
/// (its field set matches none of them), so its canonical spelling is written out here.
#[test]
fn setup_python_sdk_form_decodes_like_its_canonical_spelling() {
    let canonical = json!({"setup": {
        "model": "models/gemini-3.1-flash-live-preview",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}}
        },
        "systemInstruction": {"parts": [{"text": SYSTEM}], "role": "user"},
        "sessionResumption": {"handle": HANDLE},
        "inputAudioTranscription": {},
        "realtimeInputConfig": {"automaticActivityDetection": {"silenceDurationMs": 500}},
        "contextWindowCompression": {"triggerTokens": 25600, "slidingWindow": {"targetTokens": 12800}},
        "historyConfig": {"initialHistoryInClientContent": true}
    }});
    let from_python = client("client_setup_python_sdk_form.json");
    let from_canonical = ClientMessage::from_json(canonical.to_string().as_bytes()).unwrap();
    assert_eq!(from_python, from_canonical);
    // And it re-encodes to the canonical spelling.
    assert_eq!(
        serde_json::from_str::<Value>(&from_python.to_json()).unwrap(),
        canonical
    );

    let ClientMessage::Setup(s) = from_python else {
        panic!()
    };
    let speech = s.generation_config.unwrap().speech_config.unwrap();
    assert_eq!(
        speech
            .voice_config
            .unwrap()
            .prebuilt_voice_config
            .unwrap()
            .voice_name,
        "Puck"
    );
    let aad = s
        .realtime_input_config
        .unwrap()
        .automatic_activity_detection
        .unwrap();
    assert_eq!(aad.silence_duration_ms, Some(500));
    assert_eq!(aad.disabled, None);
    let cwc = s.context_window_compression.unwrap();
    assert_eq!(cwc.trigger_tokens, Some(25_600));
    assert_eq!(cwc.sliding_window.unwrap().target_tokens, Some(12_800));
    assert_eq!(
        s.history_config.unwrap().initial_history_in_client_content,
        Some(true)
    );
    // The vector's own nearest canonical relative differs only in fields it does not carry.
    let resume = setup("client_setup_resume.json");
    assert_eq!(s.model, resume.model);
    assert_eq!(s.session_resumption, resume.session_resumption);
    assert_eq!(s.system_instruction, resume.system_instruction);
}

#[test]
fn client_content_initial_history() {
    let ClientMessage::ClientContent(cc) = client("client_content_initial_history.json") else {
        panic!()
    };
    assert!(cc.turn_complete);
    let roles: Vec<_> = cc.turns.iter().map(|t| t.role.clone().unwrap()).collect();
    assert_eq!(
        roles,
        vec![Role::User, Role::Model, Role::User, Role::Model]
    );
    assert_eq!(
        text_parts(&cc.turns[0]),
        vec!["What's the weather in Paris?"]
    );
    let PartData::FunctionCall(call) = &cc.turns[1].parts[0].data else {
        panic!()
    };
    assert_eq!(call.id, CALL_ID);
    assert_eq!(call.name, "get_weather");
    assert_eq!(Value::Object(call.args.clone()), json!({"city": "Paris"}));
    let PartData::FunctionResponse(resp) = &cc.turns[2].parts[0].data else {
        panic!()
    };
    assert_eq!(resp.id, CALL_ID);
    // Free-form keys stay snake_case.
    assert_eq!(
        Value::Object(resp.response.clone()),
        json!({"temp_c": 18, "sky": "overcast"})
    );
    assert_eq!(
        text_parts(&cc.turns[3]),
        vec!["It's 18 degrees and overcast in Paris."]
    );
}

#[test]
fn client_content_turn_and_no_turn_complete() {
    let ClientMessage::ClientContent(cc) = client("client_content_turn.json") else {
        panic!()
    };
    assert!(cc.turn_complete);
    assert_eq!(
        cc.turns,
        vec![Content::user_text("Hello, can you hear me?")]
    );
    assert_eq!(
        client("client_content_turn.json"),
        ClientMessage::text("Hello, can you hear me?")
    );

    let ClientMessage::ClientContent(cc) = client("client_content_no_turn_complete.json") else {
        panic!()
    };
    assert!(!cc.turn_complete);
    assert_eq!(
        cc.turns,
        vec![Content::user_text("Context: the caller's name is Ada.")]
    );
}

#[test]
fn context_update_clears_tools() {
    let ClientMessage::ContextUpdate(u) = client("client_context_update.json") else {
        panic!()
    };
    assert_eq!(
        u.system_instruction,
        Some(Content::user_text("From now on answer in French."))
    );
    assert_eq!(u.tools, Some(vec![]));
}

#[test]
fn realtime_audio_and_its_constructor() {
    let msg = client("client_realtime_audio.json");
    let ClientMessage::RealtimeInput(RealtimeInput::Audio(blob)) = &msg else {
        panic!()
    };
    assert_eq!(blob.mime_type, "audio/pcm;rate=16000");
    assert_eq!(blob.data, MIC_PCM);
    assert_eq!(msg, ClientMessage::audio(&MIC_PCM, 16_000));
    let mut buf = Vec::new();
    ClientMessage::write_audio_json(&mut buf, &MIC_PCM, 16_000);
    assert_eq!(std::str::from_utf8(&buf).unwrap(), msg.to_json());
}

/// The Python-SDK audio vector carries different samples from `client_realtime_audio.json`
/// (URL-safe base64 of other bytes), so "the same value" is checked as: same shape and MIME
/// type, and the exact bytes its URL-safe text encodes, re-encoded in the standard alphabet.
#[test]
fn realtime_audio_python_sdk_form() {
    let msg = client("client_realtime_audio_python_sdk_form.json");
    let ClientMessage::RealtimeInput(RealtimeInput::Audio(blob)) = &msg else {
        panic!()
    };
    assert_eq!(blob.mime_type, "audio/pcm;rate=16000");
    assert_eq!(
        blob.data,
        [
            0, 0, 255, 7, 255, 15, 251, 255, 255, 255, 0, 240, 0, 248, 255, 3
        ]
    );
    assert_eq!(msg, ClientMessage::audio(&blob.data, 16_000));
    let canonical = json!({"realtimeInput": {"audio": {
        "data": "AAD/B/8P+////wDwAPj/Aw==", "mimeType": "audio/pcm;rate=16000"}}});
    assert_eq!(
        serde_json::from_str::<Value>(&msg.to_json()).unwrap(),
        canonical
    );
    assert_eq!(
        ClientMessage::from_json(canonical.to_string().as_bytes()).unwrap(),
        msg
    );
    // Same shape as the canonical audio vector once the samples are swapped in.
    let ClientMessage::RealtimeInput(RealtimeInput::Audio(twin)) =
        client("client_realtime_audio.json")
    else {
        panic!()
    };
    assert_eq!(twin.mime_type, blob.mime_type);
}

#[test]
fn realtime_video_text_and_markers() {
    let ClientMessage::RealtimeInput(RealtimeInput::Video(v)) =
        client("client_realtime_video.json")
    else {
        panic!()
    };
    assert_eq!(v.mime_type, "image/jpeg");
    assert_eq!(
        v.data,
        [255, 216, 255, 224, 0, 16, 74, 70, 73, 70, 0, 255, 217]
    );
    assert_eq!(
        client("client_realtime_text.json"),
        ClientMessage::realtime_text("Actually, make that Berlin.")
    );
    assert_eq!(
        client("client_realtime_activity_start.json"),
        ClientMessage::activity_start()
    );
    assert_eq!(
        client("client_realtime_activity_end.json"),
        ClientMessage::activity_end()
    );
    assert_eq!(
        client("client_realtime_audio_stream_end.json"),
        ClientMessage::audio_stream_end()
    );
    let ClientMessage::RealtimeInput(RealtimeInput::MediaChunks(chunks)) =
        client("client_realtime_media_chunks_legacy.json")
    else {
        panic!()
    };
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].data, MIC_PCM);
    assert_eq!(chunks[0].mime_type, "audio/pcm;rate=16000");
}

#[test]
fn tool_responses() {
    let ClientMessage::ToolResponse(t) = client("client_tool_response.json") else {
        panic!()
    };
    let r = &t.function_responses[0];
    assert_eq!((r.id.as_str(), r.name.as_str()), (CALL_ID, "get_weather"));
    assert_eq!(
        Value::Object(r.response.clone()),
        json!({"temp_c": 18, "sky": "overcast"})
    );
    assert_eq!(r.scheduling, None);
    assert_eq!(r.will_continue, None);

    let ClientMessage::ToolResponse(t) = client("client_tool_response_non_blocking.json") else {
        panic!()
    };
    let r = &t.function_responses[0];
    assert_eq!(r.scheduling, Some(Scheduling::WhenIdle));
    assert_eq!(
        Value::Object(r.response.clone()),
        json!({"output": {"temp_c": 18}})
    );
}

// ----- server vectors -----

#[test]
fn setup_complete() {
    let m = server("server_setup_complete.json");
    assert_eq!(m, ServerMessage::setup_complete());
    assert_eq!(m.usage_metadata, None);
}

#[test]
fn server_audio() {
    for name in [
        "server_content_audio.json",
        "server_content_audio_and_transcription.json",
    ] {
        let c = content(name);
        let turn = c.model_turn.unwrap();
        assert_eq!(turn.role, Some(Role::Model));
        let blob = turn.parts[0].as_inline_data().unwrap();
        assert_eq!(blob.mime_type, "audio/pcm;rate=24000");
        assert_eq!(blob.data, MODEL_PCM);
        assert!(!c.turn_complete && !c.interrupted && !c.generation_complete);
    }
    let c = content("server_content_audio_and_transcription.json");
    assert_eq!(
        c.output_transcription.unwrap().text,
        "It's eighteen degrees"
    );
}

#[test]
fn server_text_and_transcriptions() {
    let turn = content("server_content_text.json").model_turn.unwrap();
    assert_eq!(text_parts(&turn), vec!["Sure, checking the weather now."]);
    let c = content("server_content_input_transcription.json");
    assert_eq!(
        c.input_transcription.unwrap().text,
        "What's the weather in Par"
    );
    assert!(c.output_transcription.is_none());
    let c = content("server_content_output_transcription.json");
    let t = c.output_transcription.unwrap();
    assert_eq!(t.text, " and overcast.");
    assert!(!t.finished);
}

#[test]
fn server_turn_signals() {
    let c = content("server_content_generation_complete.json");
    assert!(c.generation_complete && !c.turn_complete);
    let c = content("server_content_interrupted.json");
    assert!(c.interrupted && !c.turn_complete);
    let c = content("server_content_turn_complete_reason.json");
    assert!(c.turn_complete && c.waiting_for_input);
    assert_eq!(
        c.turn_complete_reason,
        Some(TurnCompleteReason::NeedMoreInput)
    );
}

#[test]
fn turn_complete_with_usage_beside_it() {
    let m = server("server_content_turn_complete_with_usage.json");
    assert!(m.server_content_ref().unwrap().turn_complete);
    let u = m.usage_metadata.unwrap();
    assert_eq!(u.prompt_token_count, Some(1046));
    assert_eq!(u.response_tokens(), Some(112));
    assert_eq!(u.total_token_count, Some(1158));
    let prompt: Vec<_> = u
        .prompt_tokens_details
        .iter()
        .map(|d| (d.modality.clone(), d.token_count))
        .collect();
    assert_eq!(prompt, vec![(Modality::Text, 310), (Modality::Audio, 736)]);
    assert_eq!(u.response_details()[0].token_count, 112);
}

#[test]
fn usage_alone() {
    let m = server("server_usage_metadata.json");
    assert_eq!(m.payload, None);
    let u = m.usage_metadata.unwrap();
    assert_eq!(u.response_token_count, Some(0));
    assert_eq!(u.total_token_count, Some(1046));
    assert_eq!(u.prompt_tokens_details[0].modality, Modality::Audio);
}

#[test]
fn vertex_usage_names() {
    let m = ServerMessage::from_json(
        br#"{"usageMetadata":{"candidatesTokenCount":7,"candidatesTokensDetails":[{"modality":"AUDIO","tokenCount":"7"}]}}"#,
    )
    .unwrap();
    let u: UsageMetadata = m.usage_metadata.unwrap();
    assert_eq!(u.response_tokens(), Some(7));
    assert_eq!(u.response_details()[0].token_count, 7);
    assert_eq!(u.response_token_count, None);
}

#[test]
fn grounding_metadata() {
    let g = content("server_content_grounding_metadata.json")
        .grounding_metadata
        .unwrap();
    assert_eq!(g.web_search_queries, vec!["weather Paris today"]);
    let web = g.grounding_chunks[0].web.as_ref().unwrap();
    assert_eq!(
        (web.title.as_str(), web.uri.as_str()),
        ("example.com", "https://example.com/paris-weather")
    );
    assert_eq!(
        g.search_entry_point.unwrap().rendered_content,
        "<div>search chip</div>"
    );
}

#[test]
fn tool_call_and_cancellation() {
    let Some(ServerPayload::ToolCall(t)) = server("server_tool_call.json").payload else {
        panic!()
    };
    let call = &t.function_calls[0];
    assert_eq!(
        (call.id.as_str(), call.name.as_str()),
        (CALL_ID, "get_weather")
    );
    assert_eq!(Value::Object(call.args.clone()), json!({"city": "Paris"}));
    let Some(ServerPayload::ToolCallCancellation(c)) =
        server("server_tool_call_cancellation.json").payload
    else {
        panic!()
    };
    assert_eq!(c.ids, vec![CALL_ID]);
}

#[test]
fn go_away_duration() {
    let m = server("server_go_away.json");
    assert_eq!(m, ServerMessage::go_away(Duration::from_secs(50)));
    let m = ServerMessage::from_json(br#"{"goAway":{"timeLeft":"9.5s"}}"#).unwrap();
    assert_eq!(m, ServerMessage::go_away(Duration::from_millis(9_500)));
}

#[test]
fn session_resumption_updates() {
    let Some(ServerPayload::SessionResumptionUpdate(u)) =
        server("server_session_resumption_update.json").payload
    else {
        panic!()
    };
    assert_eq!(u.new_handle.as_deref(), Some(NEW_HANDLE));
    assert!(u.resumable);
    assert_eq!(u.last_consumed_client_message_index, None);

    let Some(ServerPayload::SessionResumptionUpdate(u)) =
        server("server_session_resumption_update_not_resumable.json").payload
    else {
        panic!()
    };
    assert_eq!(u.new_handle, None);
    assert!(!u.resumable, "absent resumable means false");

    let Some(ServerPayload::SessionResumptionUpdate(u)) =
        server("server_session_resumption_update_transparent.json").payload
    else {
        panic!()
    };
    assert!(u.resumable);
    assert_eq!(u.last_consumed_client_message_index, Some(42));
    // The index also arrives as a number.
    let numeric = ServerMessage::from_json(
        br#"{"sessionResumptionUpdate":{"resumable":true,"lastConsumedClientMessageIndex":42}}"#,
    )
    .unwrap();
    let Some(ServerPayload::SessionResumptionUpdate(n)) = numeric.payload else {
        panic!()
    };
    assert_eq!(n.last_consumed_client_message_index, Some(42));
}

#[test]
fn voice_activity_uses_the_type_key() {
    let Some(ServerPayload::VoiceActivity(v)) = server("server_voice_activity.json").payload else {
        panic!()
    };
    assert_eq!(v.activity_type, VoiceActivityType::ActivityStart);
    assert_eq!(v.audio_offset, None);
}

#[test]
fn function_declaration_behavior_round_trips() {
    let frame = br#"{"setup":{"model":"m","tools":[{"functionDeclarations":[{"name":"f","behavior":"NON_BLOCKING"}]}]}}"#;
    let s = ClientMessage::from_json(frame).unwrap();
    let ClientMessage::Setup(setup) = &s else {
        panic!()
    };
    assert_eq!(
        setup.tools[0].function_declarations[0].behavior,
        Some(Behavior::NonBlocking)
    );
    assert_eq!(s.to_json().as_bytes(), frame);
}
