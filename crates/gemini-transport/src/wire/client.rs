//! Client → server messages: the `BidiGenerateContentClientMessage` oneof.

use serde::Serialize;
use serde::ser::SerializeMap;

use super::content::{Blob, Content, FunctionResponse};
use super::encode;
use super::setup::Setup;
use super::tools::Tool;
use crate::Error;

/// One client frame: exactly one member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClientMessage {
    /// `setup`: first and only once per connection.
    Setup(Box<Setup>),
    /// `clientContent`: turns appended to the conversation.
    ClientContent(ClientContent),
    /// `realtimeInput`: streamed audio, video, text or activity markers.
    RealtimeInput(RealtimeInput),
    /// `toolResponse`: answers to function calls.
    ToolResponse(ToolResponse),
    /// `contextUpdate`: new system instruction and/or tools (newest models only).
    ContextUpdate(ContextUpdate),
}

/// `clientContent`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientContent {
    /// Turns appended in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<Content>,
    /// `true`: generate now (also closes the initial-history phase). Always written, since
    /// `false` is a deliberate choice the server treats differently from "answer now".
    pub turn_complete: bool,
}

/// `realtimeInput`: exactly one member per frame.
#[derive(Debug, Clone, PartialEq)]
pub enum RealtimeInput {
    /// `audio`: a PCM chunk (`audio/pcm;rate=16000`, 16-bit LE mono).
    Audio(Blob),
    /// `video`: one frame (`image/jpeg`).
    Video(Blob),
    /// `text`: realtime text.
    Text(String),
    /// `activityStart: {}` (automatic activity detection disabled).
    ActivityStart,
    /// `activityEnd: {}`: ends the user turn.
    ActivityEnd,
    /// `audioStreamEnd: true`: the microphone closed.
    AudioStreamEnd,
    /// Deprecated `mediaChunks[]` (the server uses only the first).
    MediaChunks(Vec<Blob>),
}

impl Serialize for RealtimeInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Self::Audio(b) => map.serialize_entry("audio", b)?,
            Self::Video(b) => map.serialize_entry("video", b)?,
            Self::Text(t) => map.serialize_entry("text", t)?,
            Self::ActivityStart => map.serialize_entry("activityStart", &Empty {})?,
            Self::ActivityEnd => map.serialize_entry("activityEnd", &Empty {})?,
            Self::AudioStreamEnd => map.serialize_entry("audioStreamEnd", &true)?,
            Self::MediaChunks(chunks) => map.serialize_entry("mediaChunks", chunks)?,
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Empty {}

/// `toolResponse`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResponse {
    /// One response per answered call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub function_responses: Vec<FunctionResponse>,
}

/// `contextUpdate`: absent fields are unchanged.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextUpdate {
    /// Replacement system instruction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Replacement tool list; `Some(vec![])` clears all tools, `None` leaves them unchanged.
    /// Travels wrapped: `"tools": {"tools": [...]}`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "encode::tools_wrapper"
    )]
    pub tools: Option<Vec<Tool>>,
}

impl ClientMessage {
    /// A `setup` message.
    pub fn setup(setup: Setup) -> Self {
        Self::Setup(Box::new(setup))
    }

    /// A realtime audio chunk: 16-bit LE mono PCM at `sample_rate` Hz.
    pub fn audio(pcm: &[u8], sample_rate: u32) -> Self {
        Self::RealtimeInput(RealtimeInput::Audio(Blob::pcm(pcm, sample_rate)))
    }

    /// A realtime video frame (e.g. `image/jpeg`).
    pub fn video(frame: &[u8], mime_type: impl Into<String>) -> Self {
        Self::RealtimeInput(RealtimeInput::Video(Blob::new(mime_type, frame)))
    }

    /// Realtime text (`realtimeInput.text`).
    pub fn realtime_text(text: impl Into<String>) -> Self {
        Self::RealtimeInput(RealtimeInput::Text(text.into()))
    }

    /// `realtimeInput.activityStart`.
    pub fn activity_start() -> Self {
        Self::RealtimeInput(RealtimeInput::ActivityStart)
    }

    /// `realtimeInput.activityEnd`.
    pub fn activity_end() -> Self {
        Self::RealtimeInput(RealtimeInput::ActivityEnd)
    }

    /// `realtimeInput.audioStreamEnd`.
    pub fn audio_stream_end() -> Self {
        Self::RealtimeInput(RealtimeInput::AudioStreamEnd)
    }

    /// A user text turn through `clientContent` with `turnComplete: true` ("answer now").
    pub fn text(text: impl Into<String>) -> Self {
        Self::client_content(vec![Content::user_text(text)], true)
    }

    /// `clientContent` with these turns.
    pub fn client_content(turns: Vec<Content>, turn_complete: bool) -> Self {
        Self::ClientContent(ClientContent {
            turns,
            turn_complete,
        })
    }

    /// A `toolResponse`.
    pub fn tool_response(responses: Vec<FunctionResponse>) -> Self {
        Self::ToolResponse(ToolResponse {
            function_responses: responses,
        })
    }

    /// A `contextUpdate`.
    pub fn context_update(update: ContextUpdate) -> Self {
        Self::ContextUpdate(update)
    }

    /// The wire name of this message's member (`setup`, `realtimeInput`, …).
    pub fn member_name(&self) -> &'static str {
        match self {
            Self::Setup(_) => "setup",
            Self::ClientContent(_) => "clientContent",
            Self::RealtimeInput(_) => "realtimeInput",
            Self::ToolResponse(_) => "toolResponse",
            Self::ContextUpdate(_) => "contextUpdate",
        }
    }

    /// Canonical JSON (camelCase, standard base64, defaults omitted).
    pub fn to_json(&self) -> String {
        let mut buf = Vec::new();
        self.write_json(&mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Clears `buf` and writes the canonical JSON frame into it (UTF-8). Reuse one buffer per
    /// connection: a realtime audio chunk then costs no allocation once the buffer has grown.
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        buf.clear();
        if let Self::RealtimeInput(RealtimeInput::Audio(blob)) = self {
            encode::write_audio_frame(buf, &blob.data, &blob.mime_type);
        } else {
            write_serde(buf, self);
        }
    }

    /// Clears `buf` and writes a realtime audio frame for borrowed PCM, without building a
    /// `ClientMessage` (the microphone hot path). Same bytes as `audio(pcm, rate).write_json`.
    pub fn write_audio_json(buf: &mut Vec<u8>, pcm: &[u8], sample_rate: u32) {
        buf.clear();
        Self::append_audio_json(buf, pcm, sample_rate);
    }

    /// Appends the realtime audio frame for borrowed PCM to `buf` (the connection writes it
    /// straight into its write buffer).
    pub(crate) fn append_audio_json(buf: &mut Vec<u8>, pcm: &[u8], sample_rate: u32) {
        encode::append_audio_frame(buf, pcm, sample_rate);
    }

    /// The realtime audio frame for borrowed PCM as a `String` of exactly its length: the same
    /// text as [`write_audio_json`](Self::write_audio_json), built in one allocation that the
    /// WebSocket frame then takes over without a copy or a UTF-8 check.
    #[must_use]
    pub fn audio_json_string(pcm: &[u8], sample_rate: u32) -> String {
        encode::audio_frame_string(pcm, sample_rate)
    }

    /// Strict decoding, as Google's server does it: unknown fields, two members, an empty
    /// frame or wrong types are errors naming the field. Accepts snake_case and camelCase keys,
    /// both base64 alphabets, and int64 as string or number.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        super::decode_client::client_message(bytes)
    }
}

/// Serializes with serde_json into `buf`. Every type in this module serializes infallibly (string
/// map keys only), so an error here is a bug: the buffer is left holding `{}` rather than a
/// partial frame.
pub(crate) fn write_serde<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    if let Err(error) = serde_json::to_writer(&mut *buf, value) {
        tracing::error!(%error, "wire encoder failed; sending an empty object instead");
        buf.clear();
        buf.extend_from_slice(b"{}");
    }
}
