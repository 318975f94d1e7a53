//! Beyond the fixed vectors: generated messages survive encode → decode unchanged, on both sides
//! (the strict client decoder accepts everything the encoder writes).

use gemini_transport::wire::{
    AutomaticActivityDetection, ContextUpdate, ContextWindowCompression, FunctionCall,
    FunctionDeclaration, FunctionResponse, GenerationConfig, GoAway, Part, RealtimeInputConfig,
    SessionResumptionConfig, SessionResumptionUpdate, SpeechConfig, ThinkingConfig, Tool, ToolCall,
    ToolCallCancellation, Transcription, VoiceActivity,
};
use proptest::prelude::*;
use serde_json::Map;

use super::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z_]{1,12}",
        any::<String>(),
        Just("quote \" backslash \\ newline \n nul \u{0} emoji 🎙".to_owned()),
    ]
}

fn pcm() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn args() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-zA-Z_]{1,8}", any::<i32>(), 0..3)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        text().prop_map(Part::text),
        (text(), pcm()).prop_map(|(m, d)| Part::inline_data(m, d)),
        (text(), text(), args())
            .prop_map(|(i, n, a)| Part::function_call(FunctionCall::new(i, n, a))),
        (text(), text(), args())
            .prop_map(|(i, n, a)| Part::function_response(FunctionResponse::new(i, n, a))),
    ]
}

fn content() -> impl Strategy<Value = Content> {
    (prop::collection::vec(part(), 0..3), any::<bool>())
        .prop_map(|(parts, user)| Content::new(if user { Role::User } else { Role::Model }, parts))
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        text(),
        proptest::option::of(text()),
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of((any::<i64>(), any::<i64>())),
        proptest::option::of(-2.0f32..2.0),
        any::<bool>(),
    )
        .prop_map(|(model, handle, budget, disabled, window, temperature, transcribe)| {
            let mut generation = GenerationConfig::default();
            generation.response_modalities = vec![Modality::Audio];
            generation.speech_config = Some(SpeechConfig::voice("Puck").with_language_code("de-DE"));
            generation.thinking_config = budget.map(ThinkingConfig::budget);
            generation.temperature = temperature;
            let mut vad = AutomaticActivityDetection::default();
            vad.disabled = disabled;
            vad.start_of_speech_sensitivity = Some(StartSensitivity::Other("NEW_VALUE".into()));
            let mut realtime = RealtimeInputConfig::default();
            realtime.automatic_activity_detection = Some(vad);
            let mut resumption = SessionResumptionConfig::default();
            resumption.handle = handle;
            let mut s = Setup::new(model)
                .with_generation_config(generation)
                .with_system_instruction("be brief")
                .with_tools(vec![
                    Tool::functions(vec![
                        FunctionDeclaration::new("f", "does f")
                            .with_parameters(json!({"type": "OBJECT", "properties": {"snake_key": {"type": "STRING"}}}))
                            .with_behavior(Behavior::NonBlocking),
                    ]),
                    Tool::google_search(),
                ])
                .with_realtime_input_config(realtime)
                .with_session_resumption(resumption);
            if let Some((trigger, target)) = window {
                s = s.with_context_window_compression(ContextWindowCompression::sliding_window_with(
                    trigger, target,
                ));
            }
            if transcribe {
                s = s.with_transcriptions();
            }
            s
        })
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        setup().prop_map(ClientMessage::setup),
        (prop::collection::vec(content(), 0..3), any::<bool>())
            .prop_map(|(turns, done)| ClientMessage::client_content(turns, done)),
        (pcm(), 1u32..200_000).prop_map(|(p, rate)| ClientMessage::audio(&p, rate)),
        (pcm(), text()).prop_map(|(p, m)| ClientMessage::video(&p, m)),
        text().prop_map(ClientMessage::realtime_text),
        Just(ClientMessage::activity_start()),
        Just(ClientMessage::activity_end()),
        Just(ClientMessage::audio_stream_end()),
        (text(), args(), any::<bool>()).prop_map(|(id, a, cont)| {
            ClientMessage::tool_response(vec![
                FunctionResponse::new(id, "f", a)
                    .with_scheduling(Scheduling::Interrupt)
                    .with_will_continue(cont),
            ])
        }),
        (proptest::option::of(content()), any::<bool>()).prop_map(|(instruction, clear)| {
            ClientMessage::context_update(ContextUpdate {
                system_instruction: instruction,
                tools: clear.then(Vec::new),
            })
        }),
    ]
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let content = (
        proptest::option::of(content()),
        any::<[bool; 4]>(),
        proptest::option::of((text(), any::<bool>())),
        proptest::option::of(prop_oneof![
            Just(TurnCompleteReason::NeedMoreInput),
            text()
                .prop_filter("non-empty", |t| !t.is_empty())
                .prop_map(|t| TurnCompleteReason::from_wire(&t)),
        ]),
    )
        .prop_map(
            |(turn, [complete, interrupted, generated, waiting], transcript, reason)| {
                ServerContent {
                    model_turn: turn,
                    turn_complete: complete,
                    interrupted,
                    generation_complete: generated,
                    waiting_for_input: waiting,
                    output_transcription: transcript
                        .map(|(text, finished)| Transcription { text, finished }),
                    turn_complete_reason: reason,
                    ..ServerContent::default()
                }
            },
        );
    let payload = prop_oneof![
        Just(ServerPayload::SetupComplete(Default::default())),
        content.prop_map(|c| ServerPayload::ServerContent(Box::new(c))),
        (text(), text(), args()).prop_map(|(i, n, a)| ServerPayload::ToolCall(ToolCall {
            function_calls: vec![FunctionCall::new(i, n, a)],
        })),
        prop::collection::vec(text(), 0..3)
            .prop_map(|ids| ServerPayload::ToolCallCancellation(ToolCallCancellation { ids })),
        (any::<u32>(), 0u32..1_000_000_000).prop_map(|(s, n)| ServerPayload::GoAway(GoAway {
            time_left: Duration::new(u64::from(s), n),
        })),
        (
            proptest::option::of("[A-Za-z0-9]{1,20}"),
            any::<bool>(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(new_handle, resumable, index)| {
                ServerPayload::SessionResumptionUpdate(SessionResumptionUpdate {
                    new_handle,
                    resumable,
                    last_consumed_client_message_index: index,
                })
            }),
        proptest::option::of(0u64..10_000).prop_map(|ms| ServerPayload::VoiceActivity(
            VoiceActivity {
                activity_type: VoiceActivityType::ActivityEnd,
                audio_offset: ms.map(Duration::from_millis),
            }
        )),
        "[a-z][a-zA-Z]{0,10}"
            .prop_filter("not a known member", |m| {
                ServerMessage::from_json(format!("{{\"{m}\":{{}}}}").as_bytes())
                    .is_ok_and(|s| matches!(s.payload, Some(ServerPayload::Unknown { .. })))
            })
            .prop_map(|member| ServerPayload::Unknown { member }),
    ];
    let usage =
        proptest::option::of((proptest::option::of(any::<u32>()), any::<u32>())).prop_map(|u| {
            u.map(|(prompt, total)| UsageMetadata {
                prompt_token_count: prompt,
                total_token_count: Some(total),
                ..UsageMetadata::default()
            })
        });
    (proptest::option::of(payload), usage).prop_map(|(payload, usage_metadata)| ServerMessage {
        payload,
        usage_metadata,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_messages_round_trip(msg in client_message()) {
        let json = msg.to_json();
        let back = ClientMessage::from_json(json.as_bytes());
        prop_assert_eq!(back.as_ref().ok(), Some(&msg), "{} -> {:?}", json, back);
    }

    #[test]
    fn server_messages_round_trip(msg in server_message()) {
        let json = msg.to_json();
        let back = ServerMessage::from_json(json.as_bytes());
        prop_assert_eq!(back.as_ref().ok(), Some(&msg), "{} -> {:?}", json, back);
    }
}

/// A part whose only member is `null` (proto3: absent) decodes to an empty unknown part that
/// re-encodes to JSON the decoder accepts again, unchanged (it used to re-encode as
/// `{"text":{}}`, which the decoder rejects).
#[test]
fn a_null_part_member_round_trips() {
    for raw in [
        r#"{"serverContent":{"modelTurn":{"parts":[{"text":null}]}}}"#,
        r#"{"serverContent":{"modelTurn":{"parts":[{"inline_data":null}]}}}"#,
    ] {
        let decoded = ServerMessage::from_json(raw.as_bytes()).expect("lenient decode");
        let again = ServerMessage::from_json(decoded.to_json().as_bytes())
            .expect("what was accepted re-encodes to something accepted");
        assert_eq!(again, decoded, "{raw} -> {}", decoded.to_json());
    }
}
