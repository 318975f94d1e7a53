//! Server vectors: each decodes (leniently) to the values it holds.

use super::*;

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
