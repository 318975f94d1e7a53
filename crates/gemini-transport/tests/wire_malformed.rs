//! Malformed frames: each gives a typed `Error::Decode` whose path names the offending field, and
//! no input makes either decoder panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use gemini_transport::Error;
use gemini_transport::wire::{ClientMessage, DecodeErrorKind, ServerMessage};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Decodes as a client frame and returns `(path, kind, Display)` of the error.
fn client_err(frame: &[u8]) -> (String, DecodeErrorKind, String) {
    match ClientMessage::from_json(frame) {
        Err(e @ Error::Decode { .. }) => split(e),
        other => panic!(
            "{:?}: expected a decode error, got {other:?}",
            String::from_utf8_lossy(frame)
        ),
    }
}

fn server_err(frame: &[u8]) -> (String, DecodeErrorKind, String) {
    match ServerMessage::from_json(frame) {
        Err(e @ Error::Decode { .. }) => split(e),
        other => panic!(
            "{:?}: expected a decode error, got {other:?}",
            String::from_utf8_lossy(frame)
        ),
    }
}

fn split(e: Error) -> (String, DecodeErrorKind, String) {
    let shown = e.to_string();
    let Error::Decode { path, kind } = e else {
        unreachable!()
    };
    assert!(
        shown.contains(&format!("`{path}`")),
        "Display {shown:?} must name {path}"
    );
    (path, kind, shown)
}

#[test]
fn empty_frames() {
    for frame in [&b""[..], b"   \n"] {
        assert_eq!(client_err(frame).1, DecodeErrorKind::Empty);
        assert_eq!(server_err(frame).1, DecodeErrorKind::Empty);
    }
}

#[test]
fn truncated_json() {
    let frame = br#"{"setup":{"model":"models/x","generationConfig":{"#;
    let (path, kind, shown) = client_err(frame);
    assert_eq!(path, "$");
    assert!(
        matches!(kind, DecodeErrorKind::Syntax { line: 1, .. }),
        "{kind:?}"
    );
    assert!(shown.contains("EOF"), "{shown}");
    let (path, kind, _) = server_err(br#"{"serverContent":{"turnComplete":tr"#);
    assert_eq!(path, "$");
    assert!(matches!(kind, DecodeErrorKind::Syntax { .. }));
}

#[test]
fn trailing_garbage_is_a_syntax_error() {
    let (_, kind, _) = server_err(br#"{"setupComplete":{}} x"#);
    assert!(matches!(kind, DecodeErrorKind::Syntax { .. }));
}

#[test]
fn invalid_utf8_in_a_binary_frame() {
    let frame = b"{\"serverContent\":{\"outputTranscription\":{\"text\":\"caf\xe9\"}}}";
    let (path, kind, _) = server_err(frame);
    assert_eq!(path, "$");
    let bad_at = frame.iter().position(|&b| b == 0xe9).unwrap();
    assert_eq!(
        kind,
        DecodeErrorKind::InvalidUtf8 {
            valid_up_to: bad_at
        }
    );
    let (_, kind, _) = client_err(b"{\"realtimeInput\":{\"text\":\"\xff\xfe\"}}");
    assert_eq!(kind, DecodeErrorKind::InvalidUtf8 { valid_up_to: 26 });
}

#[test]
fn non_object_top_level() {
    for frame in [&b"[]"[..], b"null", b"42", b"\"setup\"", b"true"] {
        let (path, kind, _) = client_err(frame);
        assert_eq!(path, "$");
        assert!(
            matches!(
                kind,
                DecodeErrorKind::WrongType {
                    expected: "object",
                    ..
                }
            ),
            "{kind:?}"
        );
        let (path, kind, _) = server_err(frame);
        assert_eq!(path, "$");
        assert!(
            matches!(
                kind,
                DecodeErrorKind::WrongType {
                    expected: "object",
                    ..
                }
            ),
            "{kind:?}"
        );
    }
}

#[test]
fn wrong_types_name_the_field() {
    let cases: [(&[u8], &str, &str, &str); 6] = [
        (br#"{"setup":{"model":5}}"#, "$.setup.model", "string", "number"),
        (
            br#"{"setup":{"model":"m","generationConfig":{"temperature":"hot"}}}"#,
            "$.setup.generationConfig.temperature",
            "",
            "",
        ),
        (
            br#"{"setup":{"model":"m","tools":[{"functionDeclarations":[{"name":"f"},{"name":["g"]}]}]}}"#,
            "$.setup.tools[0].functionDeclarations[1].name",
            "string",
            "array",
        ),
        (
            br#"{"clientContent":{"turns":[{"parts":[{"text":"a"}]},{"parts":{}}]}}"#,
            "$.clientContent.turns[1].parts",
            "array",
            "object",
        ),
        (br#"{"clientContent":{"turnComplete":"yes"}}"#, "$.clientContent.turnComplete", "boolean", "string"),
        (
            br#"{"toolResponse":{"functionResponses":[{"id":"1","name":"f","response":[1]}]}}"#,
            "$.toolResponse.functionResponses[0].response",
            "object",
            "array",
        ),
    ];
    for (frame, want_path, expected, found) in cases {
        let (path, kind, _) = client_err(frame);
        assert_eq!(path, want_path);
        if !expected.is_empty() {
            assert_eq!(kind, DecodeErrorKind::WrongType { expected, found });
        }
    }
    let (path, kind, _) = server_err(br#"{"serverContent":{"modelTurn":{"parts":[{"text":1}]}}}"#);
    assert_eq!(path, "$.serverContent.modelTurn.parts[0].text");
    assert_eq!(
        kind,
        DecodeErrorKind::WrongType {
            expected: "string",
            found: "number"
        }
    );
    let (path, _, _) = server_err(br#"{"serverContent":{"turnComplete":"true"}}"#);
    assert_eq!(path, "$.serverContent.turnComplete");
    let (path, _, _) = server_err(br#"{"toolCall":{"functionCalls":[{"args":"x"}]}}"#);
    assert_eq!(path, "$.toolCall.functionCalls[0].args");
}

#[test]
fn two_members_in_a_client_frame() {
    let (path, kind, _) = client_err(br#"{"setup":{"model":"m"},"clientContent":{}}"#);
    assert_eq!(path, "$");
    assert!(
        matches!(kind, DecodeErrorKind::TwoMembers { .. }),
        "{kind:?}"
    );
    let (path, kind, _) = client_err(br#"{"realtimeInput":{"audio":{"data":"AA=="},"text":"hi"}}"#);
    assert_eq!(path, "$.realtimeInput");
    assert_eq!(
        kind,
        DecodeErrorKind::TwoMembers {
            first: "audio".into(),
            second: "text".into()
        }
    );
    let (path, kind, _) =
        client_err(br#"{"clientContent":{"turns":[{"parts":[{"text":"a","inlineData":{}}]}]}}"#);
    assert_eq!(path, "$.clientContent.turns[0].parts[0]");
    assert!(matches!(kind, DecodeErrorKind::TwoMembers { .. }));
}

#[test]
fn two_known_members_in_a_server_frame() {
    let (path, kind, _) = server_err(br#"{"setupComplete":{},"goAway":{"timeLeft":"1s"}}"#);
    assert_eq!(path, "$");
    assert!(matches!(kind, DecodeErrorKind::TwoMembers { .. }));
}

#[test]
fn no_member() {
    assert_eq!(
        client_err(b"{}"),
        ("$".into(), DecodeErrorKind::NoMember, client_err(b"{}").2)
    );
    let (path, kind, _) = client_err(br#"{"realtimeInput":{}}"#);
    assert_eq!(
        (path.as_str(), kind),
        ("$.realtimeInput", DecodeErrorKind::NoMember)
    );
    let (path, kind, _) = client_err(br#"{"clientContent":{"turns":[{"parts":[{}]}]}}"#);
    assert_eq!(
        (path.as_str(), kind),
        (
            "$.clientContent.turns[0].parts[0]",
            DecodeErrorKind::NoMember
        )
    );
}

#[test]
fn unknown_fields_are_errors_for_clients_only() {
    let (path, kind, _) = client_err(br#"{"setup":{"model":"m","generationConfig":{"topQ":1}}}"#);
    assert_eq!(
        (path.as_str(), kind),
        (
            "$.setup.generationConfig.topQ",
            DecodeErrorKind::UnknownField
        )
    );
    let (path, kind, _) = client_err(br#"{"hello":{}}"#);
    assert_eq!(
        (path.as_str(), kind),
        ("$.hello", DecodeErrorKind::UnknownField)
    );
    let (path, _, _) = client_err(br#"{"realtimeInput":{"audio":{"data":"AA==","rate":16000}}}"#);
    assert_eq!(path, "$.realtimeInput.audio.rate");
    // The server decoder ignores the same kind of key.
    let m = ServerMessage::from_json(br#"{"serverContent":{"turnComplete":true,"newThing":1}}"#)
        .unwrap();
    assert!(m.server_content_ref().unwrap().turn_complete);
}

#[test]
fn transcription_configs_keep_unknown_fields_even_for_clients() {
    // The service treats them as opaque (docs/protocol.md section 4.1): a strict decoder that
    // refused `customVocabulary` would close sessions the service accepts.
    let frame = br#"{"setup":{"model":"m","inputAudioTranscription":{"languageCodes":["en-US"],"customVocabulary":{"phrases":["Gemini"]}},"output_audio_transcription":{"newer_field":true}}}"#;
    let Ok(ClientMessage::Setup(setup)) = ClientMessage::from_json(frame) else {
        panic!("a setup");
    };
    let input = setup.input_audio_transcription.as_ref().unwrap();
    assert_eq!(input.language_codes, ["en-US"]);
    assert_eq!(
        input.other.get("customVocabulary"),
        Some(&serde_json::json!({"phrases": ["Gemini"]}))
    );
    let output = setup.output_audio_transcription.as_ref().unwrap();
    assert_eq!(output.other.get("newer_field"), Some(&Value::Bool(true)));
    // Encoded as received, so a proxy passes them on.
    let again = ClientMessage::Setup(setup).to_json();
    assert!(
        again.contains(r#""customVocabulary":{"phrases":["Gemini"]}"#),
        "{again}"
    );
}

#[test]
fn both_spellings_of_one_field() {
    let (path, kind, _) =
        client_err(br#"{"realtimeInput":{"audio":{"mimeType":"a","mime_type":"b"}}}"#);
    assert_eq!(
        (path.as_str(), kind),
        (
            "$.realtimeInput.audio.mimeType",
            DecodeErrorKind::BothSpellings
        )
    );
}

#[test]
fn missing_model() {
    let (path, kind, _) = client_err(br#"{"setup":{"generationConfig":{}}}"#);
    assert_eq!(
        (path.as_str(), kind),
        ("$.setup.model", DecodeErrorKind::Missing)
    );
}

#[test]
fn bad_base64() {
    let (path, kind, _) =
        client_err(br#"{"realtimeInput":{"audio":{"data":"!!!!","mimeType":"x"}}}"#);
    assert_eq!(path, "$.realtimeInput.audio.data");
    assert!(matches!(kind, DecodeErrorKind::BadBase64(_)));
    // Mixed alphabets are not valid in either.
    let (path, kind, _) = server_err(
        br#"{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"data":"ab+_"}}]}}}"#,
    );
    assert_eq!(path, "$.serverContent.modelTurn.parts[0].inlineData.data");
    assert!(matches!(kind, DecodeErrorKind::BadBase64(_)));
    let (path, _, _) =
        client_err(br#"{"realtimeInput":{"mediaChunks":[{"data":"AA=="},{"data":"A"}]}}"#);
    assert_eq!(path, "$.realtimeInput.mediaChunks[1].data");
}

#[test]
fn bad_numbers_and_durations() {
    let (path, kind, _) = server_err(br#"{"goAway":{"timeLeft":"soon"}}"#);
    assert_eq!(
        (path.as_str(), kind),
        (
            "$.goAway.timeLeft",
            DecodeErrorKind::BadDuration("soon".into())
        )
    );
    let (path, kind, _) = server_err(br#"{"goAway":{"timeLeft":50}}"#);
    assert_eq!(path, "$.goAway.timeLeft");
    assert!(matches!(kind, DecodeErrorKind::WrongType { .. }));
    let (path, kind, _) =
        server_err(br#"{"sessionResumptionUpdate":{"lastConsumedClientMessageIndex":"forty"}}"#);
    assert_eq!(
        path,
        "$.sessionResumptionUpdate.lastConsumedClientMessageIndex"
    );
    assert!(matches!(kind, DecodeErrorKind::BadInteger(_)));
    let (path, _, _) = server_err(br#"{"usageMetadata":{"totalTokenCount":-3}}"#);
    assert_eq!(path, "$.usageMetadata.totalTokenCount");
    let (path, _, _) = client_err(br#"{"setup":{"model":"m","generationConfig":{"seed":1e30}}}"#);
    assert_eq!(path, "$.setup.generationConfig.seed");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let mut frame = b"{\"toolCall\":{\"functionCalls\":[{\"args\":{\"a\":".to_vec();
    frame.extend(std::iter::repeat_n(b'[', 100_000));
    let (path, kind, _) = server_err(&frame);
    assert_eq!(path, "$");
    assert!(matches!(kind, DecodeErrorKind::Syntax { .. }));
}

// ----- never a panic -----

fn vectors() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol/vectors");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Decodes with both decoders; whatever decodes must re-encode to a frame that decodes to the
/// same message (the encoder never produces what the decoders reject or read differently).
fn decode_both(bytes: &[u8]) {
    if let Ok(m) = ClientMessage::from_json(bytes) {
        let again = ClientMessage::from_json(m.to_json().as_bytes());
        assert_eq!(
            again.as_ref().ok(),
            Some(&m),
            "client re-encode of {m:?}: {again:?}"
        );
    }
    if let Ok(m) = ServerMessage::from_json(bytes) {
        let again = ServerMessage::from_json(m.to_json().as_bytes());
        assert_eq!(
            again.as_ref().ok(),
            Some(&m),
            "server re-encode of {m:?}: {again:?}"
        );
    }
}

const KEYS: &[&str] = &[
    "setup",
    "model",
    "generationConfig",
    "generation_config",
    "responseModalities",
    "tools",
    "functionDeclarations",
    "name",
    "args",
    "id",
    "response",
    "behavior",
    "sessionResumption",
    "handle",
    "transparent",
    "realtimeInput",
    "realtime_input",
    "audio",
    "video",
    "text",
    "data",
    "mimeType",
    "mime_type",
    "activityStart",
    "audioStreamEnd",
    "mediaChunks",
    "clientContent",
    "turns",
    "parts",
    "role",
    "turnComplete",
    "inlineData",
    "functionCall",
    "thought",
    "toolResponse",
    "functionResponses",
    "scheduling",
    "contextUpdate",
    "systemInstruction",
    "serverContent",
    "modelTurn",
    "interrupted",
    "outputTranscription",
    "usageMetadata",
    "promptTokenCount",
    "goAway",
    "timeLeft",
    "sessionResumptionUpdate",
    "newHandle",
    "resumable",
    "lastConsumedClientMessageIndex",
    "voiceActivity",
    "type",
    "toolCall",
    "functionCalls",
    "toolCallCancellation",
    "ids",
    "setupComplete",
    "x",
];

const STRINGS: &[&str] = &[
    "",
    "AUDIO",
    "AQ==",
    "AQ",
    "-_8=",
    "50s",
    "9.5s",
    "42",
    "user",
    "NON_BLOCKING",
    "x",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..4).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_both(&bytes);
    }

    #[test]
    fn mutated_vectors_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let all = vectors();
        let mut bytes = all[pick.index(all.len())].clone();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        decode_both(&bytes);
    }

    #[test]
    fn structured_json_never_panics(top in prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..3)) {
        let frame = Value::Object(top.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        decode_both(frame.to_string().as_bytes());
    }
}
