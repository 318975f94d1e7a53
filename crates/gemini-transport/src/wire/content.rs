//! Conversation content: `Content`, its `Part`s and the blobs, calls and responses they carry.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use super::encode;
use super::enums::wire_enum;

wire_enum! {
    /// Who produced a `Content`.
    Role {
        /// The end user (also used for system instructions).
        User => "user",
        /// The model.
        Model => "model",
    }
}

/// One turn (or a system instruction): a role and its parts.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// The parts, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// `user` or `model`; absent on some server chunks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

impl Content {
    /// A content with the given role and parts.
    pub fn new(role: Role, parts: Vec<Part>) -> Self {
        Self {
            parts,
            role: Some(role),
        }
    }

    /// A user turn holding one text part.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self::new(Role::User, vec![Part::text(text)])
    }

    /// A model turn holding one text part.
    pub fn model_text(text: impl Into<String>) -> Self {
        Self::new(Role::Model, vec![Part::text(text)])
    }

    /// A system instruction: one text part with role `user`, as the SDKs send it.
    pub fn system_instruction(text: impl Into<String>) -> Self {
        Self::user_text(text)
    }
}

/// One piece of a `Content`: what it holds plus the thought flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The part's payload (the protobuf `data` oneof).
    pub data: PartData,
    /// `thought: true`: a thinking summary, not an answer.
    pub thought: bool,
    /// Opaque thought signature bytes (base64 on the wire); empty when absent.
    pub thought_signature: Vec<u8>,
}

/// What a `Part` holds: exactly one member on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum PartData {
    /// `text`.
    Text(String),
    /// `inlineData`: bytes with a MIME type (model audio arrives here).
    InlineData(Blob),
    /// `functionCall` (in history, or in a model turn).
    FunctionCall(FunctionCall),
    /// `functionResponse` (in history).
    FunctionResponse(FunctionResponse),
    /// `executableCode` produced by the code execution tool.
    ExecutableCode(ExecutableCode),
    /// `codeExecutionResult` from the code execution tool.
    CodeExecutionResult(CodeExecutionResult),
    /// `fileData`: a reference to an uploaded file.
    FileData(FileData),
    /// A server part whose member this crate does not know (its wire name, empty for a part
    /// with no member). Encodes as `{name: {}}`; the real server would reject it.
    Unknown(String),
}

impl Part {
    /// A part with no thought flags.
    pub fn new(data: PartData) -> Self {
        Self {
            data,
            thought: false,
            thought_signature: Vec::new(),
        }
    }

    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(PartData::Text(text.into()))
    }

    /// An `inlineData` part.
    pub fn inline_data(mime_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self::new(PartData::InlineData(Blob::new(mime_type, data)))
    }

    /// A `functionCall` part.
    pub fn function_call(call: FunctionCall) -> Self {
        Self::new(PartData::FunctionCall(call))
    }

    /// A `functionResponse` part.
    pub fn function_response(response: FunctionResponse) -> Self {
        Self::new(PartData::FunctionResponse(response))
    }

    /// The text, if this is a text part.
    pub fn as_text(&self) -> Option<&str> {
        match &self.data {
            PartData::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The blob, if this is an `inlineData` part.
    pub fn as_inline_data(&self) -> Option<&Blob> {
        match &self.data {
            PartData::InlineData(b) => Some(b),
            _ => None,
        }
    }
}

impl Serialize for Part {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        match &self.data {
            PartData::Text(t) => map.serialize_entry("text", t)?,
            PartData::InlineData(b) => map.serialize_entry("inlineData", b)?,
            PartData::FunctionCall(c) => map.serialize_entry("functionCall", c)?,
            PartData::FunctionResponse(r) => map.serialize_entry("functionResponse", r)?,
            PartData::ExecutableCode(c) => map.serialize_entry("executableCode", c)?,
            PartData::CodeExecutionResult(r) => map.serialize_entry("codeExecutionResult", r)?,
            PartData::FileData(f) => map.serialize_entry("fileData", f)?,
            // Kept by name so that a decoded part re-encodes to something that decodes the same.
            PartData::Unknown(member) if !member.is_empty() => {
                map.serialize_entry(member, &super::tools::EmptyConfig {})?;
            }
            PartData::Unknown(_) => {}
        }
        if self.thought {
            map.serialize_entry("thought", &true)?;
        }
        if !self.thought_signature.is_empty() {
            map.serialize_entry("thoughtSignature", &encode::Base64(&self.thought_signature))?;
        }
        map.end()
    }
}

/// Raw bytes with a MIME type (`inlineData`, realtime `audio`/`video`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// e.g. `audio/pcm;rate=16000`, `image/jpeg`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mime_type: String,
    /// The bytes (standard base64 on the wire).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "encode::bytes"
    )]
    pub data: Vec<u8>,
}

impl Blob {
    /// A blob.
    pub fn new(mime_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            mime_type: mime_type.into(),
            data: data.into(),
        }
    }

    /// 16-bit little-endian mono PCM at `sample_rate` Hz (`audio/pcm;rate=N`).
    pub fn pcm(data: impl Into<Vec<u8>>, sample_rate: u32) -> Self {
        Self::new(format!("audio/pcm;rate={sample_rate}"), data)
    }
}

/// A function call requested by the model (`toolCall.functionCalls[]` or a history part).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCall {
    /// Call id; a `FunctionResponse` must echo it. Empty when absent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments: free-form JSON, never re-cased. Omitted on the wire when empty.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub args: Map<String, Value>,
}

impl FunctionCall {
    /// A call.
    pub fn new(id: impl Into<String>, name: impl Into<String>, args: Map<String, Value>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            args,
        }
    }
}

wire_enum! {
    /// When a `NON_BLOCKING` function's response is delivered to the model.
    Scheduling {
        /// Unspecified.
        Unspecified => "SCHEDULING_UNSPECIFIED",
        /// Add to context only; do not interrupt or trigger generation.
        Silent => "SILENT",
        /// Deliver when the model is idle.
        WhenIdle => "WHEN_IDLE",
        /// Interrupt the model and deliver now.
        Interrupt => "INTERRUPT",
    }
}

/// The application's answer to one function call.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionResponse {
    /// Echo of `FunctionCall::id`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Function name.
    pub name: String,
    /// Result: free-form JSON (conventionally `{"output": …}` or `{"error": …}`), never re-cased.
    pub response: Map<String, Value>,
    /// Streamed partial results: more responses for this id will follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub will_continue: Option<bool>,
    /// Delivery timing for `NON_BLOCKING` functions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
}

impl FunctionResponse {
    /// A response without scheduling options.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        response: Map<String, Value>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            response,
            will_continue: None,
            scheduling: None,
        }
    }

    /// Sets `scheduling`.
    #[must_use]
    pub fn with_scheduling(mut self, scheduling: Scheduling) -> Self {
        self.scheduling = Some(scheduling);
        self
    }

    /// Sets `willContinue`.
    #[must_use]
    pub fn with_will_continue(mut self, will_continue: bool) -> Self {
        self.will_continue = Some(will_continue);
        self
    }
}

wire_enum! {
    /// Programming language of `ExecutableCode`.
    Language {
        /// Unspecified.
        Unspecified => "LANGUAGE_UNSPECIFIED",
        /// Python 3.
        Python => "PYTHON",
    }
}

/// Code generated by the model for the code execution tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutableCode {
    /// Language of `code`.
    pub language: Language,
    /// Source code.
    pub code: String,
}

wire_enum! {
    /// Outcome of a code execution.
    Outcome {
        /// Unspecified.
        Unspecified => "OUTCOME_UNSPECIFIED",
        /// Ran successfully.
        Ok => "OUTCOME_OK",
        /// Failed.
        Failed => "OUTCOME_FAILED",
        /// Took too long.
        DeadlineExceeded => "OUTCOME_DEADLINE_EXCEEDED",
    }
}

/// Result of running `ExecutableCode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeExecutionResult {
    /// Outcome.
    pub outcome: Outcome,
    /// Stdout, or the error description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
}

/// A reference to a file by URI.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// MIME type of the file.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mime_type: String,
    /// The file's URI.
    pub file_uri: String,
}
