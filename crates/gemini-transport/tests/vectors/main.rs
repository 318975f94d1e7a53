//! Golden vectors from `docs/protocol/vectors`: every file decodes to the values it holds,
//! every canonical file re-encodes to itself (as a JSON value), and the Python-SDK forms decode
//! to the same messages as their canonical spelling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod roundtrip;
mod server;

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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol/vectors")
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
