//! Wire types: every Gemini Live message, with its canonical encoder and its lenient decoder.
//!
//! A client frame is a [`ClientMessage`] (exactly one of `setup`, `clientContent`,
//! `realtimeInput`, `toolResponse`, `contextUpdate`); a server frame is a [`ServerMessage`]: an
//! optional [`ServerPayload`] (`setupComplete`, `serverContent`, `toolCall`, …) plus an optional
//! [`UsageMetadata`], which sits outside the protobuf oneof and may come alone or beside a payload.
//!
//! Audio and video are plain bytes (`Vec<u8>`) here; base64 exists only on the wire. The only
//! free-form JSON in this API is user data: function call `args`, function `response`s and tool
//! schemas (`serde_json::Map` / `Value`).
//!
//! # Encoding is canonical
//!
//! `to_json` / `write_json` produce what Google's protobuf-JSON emitter produces: lowerCamelCase
//! keys, standard base64 with padding, defaults omitted (`None`, empty strings and lists, `false`
//! server flags), int64 counters that protobuf-JSON writes as strings
//! (`lastConsumedClientMessageIndex`) as strings, Durations as `"50s"` / `"9.500s"`. Two deliberate
//! exceptions, both matching the reference vectors: `clientContent.turnComplete` is always
//! written (an explicit `false` keeps a turn open), and optional config scalars
//! (`Option<bool>`, `Option<i32>`, …) are written whenever they are `Some`, even when `Some(false)`
//! or `Some(0)` (`thinkingBudget: 0` turns thinking off; it is not a default).
//!
//! `write_json` clears and reuses a caller's buffer. A realtime audio chunk has a hand-written
//! path: [`ClientMessage::write_audio_json`] turns borrowed PCM into a frame with no allocation
//! once the buffer has grown.
//!
//! # Decoding is lenient exactly where Google's parser is
//!
//! Both decoders accept:
//! - every key in lowerCamelCase **or** snake_case (`mime_type`, `realtime_input`, …), the way
//!   the Python SDK really sends frames; the same key under both spellings is an error. Free-form
//!   maps (`functionCall.args`, `functionResponse.response`, schemas, `labels`) are user data and
//!   are taken verbatim, never re-cased;
//! - base64 in the standard or the URL-safe alphabet, padded or not;
//! - integers as JSON numbers or decimal strings (protobuf-JSON int64 form);
//! - `null` as "absent", and absent fields as their proto3 defaults (`resumable` absent = `false`).
//!
//! Enum values this crate does not know are kept as `Other(String)` rather than rejected.
//!
//! They differ where the two sides differ:
//! - [`ClientMessage::from_json`] is **strict**, like the real server (and it is what the fake
//!   server validates clients with): an unknown field anywhere outside free-form maps, an empty
//!   frame, a frame or `realtimeInput` with no member or two members, a `setup` without `model`
//!   are errors.
//! - [`ServerMessage::from_json`] is **lenient**, as a client must be: unknown keys are ignored and
//!   an unknown top-level member becomes [`ServerPayload::Unknown`] instead of failing the
//!   connection. Two *known* payload members in one frame are still an error.
//!
//! Every failure is an [`Error::Decode`](crate::Error::Decode) whose `path` names the field as a
//! JSON path (`$.setup.generationConfig.temperature`, `$.serverContent.modelTurn.parts[0]`) and
//! whose [`DecodeErrorKind`] says what was wrong. No input makes a decoder panic.
//!
//! ```
//! use gemini_transport::wire::{ClientMessage, RealtimeInput, ServerMessage, ServerPayload};
//!
//! // What the Python SDK sends: snake_case keys, URL-safe base64.
//! let frame = br#"{"realtime_input":{"audio":{"data":"AAD_","mime_type":"audio/pcm;rate=16000"}}}"#;
//! let msg = ClientMessage::from_json(frame)?;
//! let ClientMessage::RealtimeInput(RealtimeInput::Audio(blob)) = &msg else { unreachable!() };
//! assert_eq!(blob.data, [0x00, 0x00, 0xff]);
//! // Re-encoded canonically.
//! assert_eq!(
//!     msg.to_json(),
//!     r#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"AAD/"}}}"#
//! );
//!
//! // A server member this crate does not know does not fail the connection.
//! let server = ServerMessage::from_json(br#"{"somethingNew":{"x":1}}"#)?;
//! assert_eq!(server.payload, Some(ServerPayload::Unknown { member: "somethingNew".into() }));
//! # Ok::<(), gemini_transport::Error>(())
//! ```

mod client;
mod content;
mod decode;
mod decode_client;
mod decode_content;
mod decode_server;
mod encode;
mod enums;
mod server;
mod setup;
mod tools;

pub use client::{ClientContent, ClientMessage, ContextUpdate, RealtimeInput, ToolResponse};
pub use content::{
    Blob, CodeExecutionResult, Content, ExecutableCode, FileData, FunctionCall, FunctionResponse,
    Language, Outcome, Part, PartData, Role, Scheduling,
};
pub use decode::DecodeErrorKind;
pub use server::{
    GoAway, GroundingChunk, GroundingMetadata, InteractionStatus, ModalityTokenCount,
    SearchEntryPoint, ServerContent, ServerMessage, ServerPayload, SessionResumptionUpdate,
    SetupComplete, ToolCall, ToolCallCancellation, Transcription, TurnCompleteReason,
    UrlContextMetadata, UrlMetadata, UsageMetadata, VoiceActivity, VoiceActivityType, WebSource,
};
pub use setup::{
    ActivityHandling, AudioTranscriptionConfig, AutomaticActivityDetection,
    ContextWindowCompression, EndSensitivity, GenerationConfig, HistoryConfig, MediaResolution,
    Modality, PrebuiltVoiceConfig, ProactivityConfig, RealtimeInputConfig, SafetySetting,
    SessionResumptionConfig, Setup, SlidingWindow, SpeechConfig, StartSensitivity, ThinkingConfig,
    ThinkingLevel, TurnCoverage, VoiceConfig,
};
pub use tools::{Behavior, EmptyConfig, FunctionDeclaration, Tool};
