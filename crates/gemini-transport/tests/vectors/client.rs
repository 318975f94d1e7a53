//! Client vectors: each decodes (strictly) to the values it holds.

use super::*;

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

/// The builders reach every field of the fullest vector: building it by hand gives the same
/// message, and therefore the same frame.
#[test]
fn builders_rebuild_the_full_native_audio_setup() {
    use gemini_transport::wire::{
        AutomaticActivityDetection, ContextWindowCompression, FunctionDeclaration,
        GenerationConfig, ProactivityConfig, RealtimeInputConfig, SessionResumptionConfig,
        SpeechConfig, ThinkingConfig, Tool,
    };
    let mut generation = GenerationConfig::default();
    generation.thinking_config = Some(ThinkingConfig::budget(0));
    generation.enable_affective_dialog = Some(true);
    let mut vad = AutomaticActivityDetection::default();
    vad.disabled = Some(false);
    vad.start_of_speech_sensitivity = Some(StartSensitivity::Low);
    vad.end_of_speech_sensitivity = Some(EndSensitivity::Low);
    vad.prefix_padding_ms = Some(20);
    vad.silence_duration_ms = Some(500);
    let mut realtime = RealtimeInputConfig::default();
    realtime.automatic_activity_detection = Some(vad);
    realtime.activity_handling = Some(ActivityHandling::StartOfActivityInterrupts);
    realtime.turn_coverage = Some(TurnCoverage::TurnIncludesOnlyActivity);
    let weather =
        FunctionDeclaration::new("get_weather", "Returns the current weather for a city.")
            .with_parameters(json!({
                "properties": {"city": {"description": "City name", "type": "STRING"}},
                "required": ["city"],
                "type": "OBJECT"
            }));
    let built = Setup::new("models/gemini-2.5-flash-native-audio-preview-12-2025")
        .with_generation_config(generation)
        .with_response_modality(Modality::Audio)
        .with_speech_config(SpeechConfig::voice("Puck").with_language_code("en-US"))
        .with_system_instruction(SYSTEM)
        .with_tools(vec![Tool::functions(vec![weather])])
        .with_session_resumption(SessionResumptionConfig::default())
        .with_transcriptions()
        .with_realtime_input_config(realtime)
        .with_context_window_compression(ContextWindowCompression::sliding_window_with(
            25_600, 12_800,
        ))
        .with_proactivity(ProactivityConfig::audio(true));
    let built = ClientMessage::setup(built);
    assert_eq!(built, client("client_setup_full_native_audio.json"));
    assert_eq!(
        serde_json::from_str::<Value>(&built.to_json()).unwrap(),
        serde_json::from_slice::<Value>(&read("client_setup_full_native_audio.json")).unwrap()
    );
}
