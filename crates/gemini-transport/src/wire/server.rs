//! Server → client messages: `BidiGenerateContentServerMessage`.

use std::time::Duration;

use serde::Serialize;
use serde::ser::SerializeMap;

use super::client::write_serde;
use super::content::{Content, FunctionCall};
use super::encode;
use super::enums::wire_enum;
use super::setup::Modality;
use crate::Error;

/// One server frame: an optional payload (the oneof member) and an optional `usageMetadata`,
/// which sits outside the oneof and may arrive alone or beside a payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerMessage {
    /// The oneof member, if any.
    pub payload: Option<ServerPayload>,
    /// Token accounting, alone or beside the payload.
    pub usage_metadata: Option<UsageMetadata>,
}

/// The oneof member of a server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerPayload {
    /// `setupComplete`: the setup was accepted.
    SetupComplete(SetupComplete),
    /// `serverContent`: model output and turn signals.
    ServerContent(Box<ServerContent>),
    /// `toolCall`: functions to run.
    ToolCall(ToolCall),
    /// `toolCallCancellation`: calls that should not have run.
    ToolCallCancellation(ToolCallCancellation),
    /// `goAway`: the connection ends after `time_left`.
    GoAway(GoAway),
    /// `sessionResumptionUpdate`: a new handle, or a non-resumable point.
    SessionResumptionUpdate(SessionResumptionUpdate),
    /// `voiceActivity`: server VAD events (newer servers).
    VoiceActivity(VoiceActivity),
    /// A top-level member this crate does not know; `member` is its wire name. Encodes as
    /// `{member: {}}`.
    Unknown {
        /// The member's wire name as received.
        member: String,
    },
}

impl ServerPayload {
    /// The wire name of this member (`serverContent`, …).
    pub fn member_name(&self) -> &str {
        match self {
            Self::SetupComplete(_) => "setupComplete",
            Self::ServerContent(_) => "serverContent",
            Self::ToolCall(_) => "toolCall",
            Self::ToolCallCancellation(_) => "toolCallCancellation",
            Self::GoAway(_) => "goAway",
            Self::SessionResumptionUpdate(_) => "sessionResumptionUpdate",
            Self::VoiceActivity(_) => "voiceActivity",
            Self::Unknown { member } => member,
        }
    }
}

/// `setupComplete`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupComplete {
    /// Vertex may include a session id; `None` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// `serverContent`: every field can share a frame with the others (Gemini 3.x packs several).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerContent {
    /// A chunk of the model's turn (audio `inlineData`, text, code, thought parts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_turn: Option<Content>,
    /// The model produced everything for this turn (not sent for interrupted turns).
    #[serde(skip_serializing_if = "encode::is_false")]
    pub generation_complete: bool,
    /// The model turn is over.
    #[serde(skip_serializing_if = "encode::is_false")]
    pub turn_complete: bool,
    /// User activity cut the model off; flush playback.
    #[serde(skip_serializing_if = "encode::is_false")]
    pub interrupted: bool,
    /// Search grounding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grounding_metadata: Option<GroundingMetadata>,
    /// Transcript of the user's audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_transcription: Option<Transcription>,
    /// Low-latency partial transcript of the user's audio (newer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interim_input_transcription: Option<Transcription>,
    /// Transcript of the model's audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_transcription: Option<Transcription>,
    /// URL context tool results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_context_metadata: Option<UrlContextMetadata>,
    /// The model deliberately waits for the user to continue.
    #[serde(skip_serializing_if = "encode::is_false")]
    pub waiting_for_input: bool,
    /// Why the turn completed (SDK types; not in the public proto).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_complete_reason: Option<TurnCompleteReason>,
    /// Interaction status (newer servers, sent with `turnComplete`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction_status: Option<InteractionStatus>,
}

/// An input or output transcription fragment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transcription {
    /// The text fragment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// The transcription of this utterance is final.
    #[serde(skip_serializing_if = "encode::is_false")]
    pub finished: bool,
}

impl Transcription {
    /// A fragment, not finished.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            finished: false,
        }
    }
}

wire_enum! {
    /// Why a turn completed.
    TurnCompleteReason {
        /// Unspecified.
        Unspecified => "TURN_COMPLETE_REASON_UNSPECIFIED",
        /// The model needs more input.
        NeedMoreInput => "NEED_MORE_INPUT",
        /// The response was rejected.
        ResponseRejected => "RESPONSE_REJECTED",
        /// The model produced a malformed function call.
        MalformedFunctionCall => "MALFORMED_FUNCTION_CALL",
        /// Blocked for safety.
        Safety => "SAFETY",
        /// Blocked by a prohibited-content filter.
        ProhibitedContent => "PROHIBITED_CONTENT",
    }
}

wire_enum! {
    /// `interactionStatus`.
    InteractionStatus {
        /// Unspecified.
        Unspecified => "INTERACTION_STATUS_UNSPECIFIED",
        /// The interaction continues.
        InProgress => "IN_PROGRESS",
        /// Waiting for client action (deprecated).
        RequiresAction => "REQUIRES_ACTION",
        /// The interaction is over.
        Idle => "IDLE",
    }
}

/// `groundingMetadata` (Google Search tool).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroundingMetadata {
    /// Grounding sources.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grounding_chunks: Vec<GroundingChunk>,
    /// The search chip to render.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_entry_point: Option<SearchEntryPoint>,
    /// Queries the model ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub web_search_queries: Vec<String>,
}

/// One grounding source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroundingChunk {
    /// A web page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<WebSource>,
}

/// A web grounding source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebSource {
    /// Page title.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Page URI.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uri: String,
}

/// `searchEntryPoint`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchEntryPoint {
    /// HTML snippet of the search chip.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rendered_content: String,
}

/// `urlContextMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlContextMetadata {
    /// One entry per URL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub url_metadata: Vec<UrlMetadata>,
}

/// One URL retrieved by the URL context tool.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlMetadata {
    /// The URL.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub retrieved_url: String,
    /// Retrieval status name, e.g. `URL_RETRIEVAL_STATUS_SUCCESS`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url_retrieval_status: String,
}

/// `toolCall`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// Calls to run (several may come at once).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub function_calls: Vec<FunctionCall>,
}

/// `toolCallCancellation`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallCancellation {
    /// Ids of calls that should not have run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

/// `goAway`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GoAway {
    /// Time until the server ends the connection (`"50s"` on the wire); zero when absent.
    #[serde(
        serialize_with = "encode::duration",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub time_left: Duration,
}

/// `sessionResumptionUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResumptionUpdate {
    /// The handle for the current state; `None` when absent or empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_handle: Option<String>,
    /// Whether `new_handle` is a consistent checkpoint; absent means `false`.
    #[serde(skip_serializing_if = "encode::is_false")]
    pub resumable: bool,
    /// Transparent mode only: the last client message the state includes (int64, sent as a
    /// string; accepted as string or number).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "encode::opt_u64_string"
    )]
    pub last_consumed_client_message_index: Option<u64>,
}

wire_enum! {
    /// `voiceActivity.type`.
    VoiceActivityType {
        /// Unspecified.
        Unspecified => "TYPE_UNSPECIFIED",
        /// Start of user speech.
        ActivityStart => "ACTIVITY_START",
        /// End of user speech.
        ActivityEnd => "ACTIVITY_END",
    }
}

/// `voiceActivity` (wire key of the type is `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceActivity {
    /// Start or end of speech.
    #[serde(rename = "type")]
    pub activity_type: VoiceActivityType,
    /// Offset into the audio stream, when given.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "encode::opt_duration"
    )]
    pub audio_offset: Option<Duration>,
}

/// `usageMetadata`. Developer API and Vertex names are both kept as received; use
/// [`UsageMetadata::response_tokens`] for whichever is present.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_token_count: Option<u32>,
    /// Cached content tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_content_token_count: Option<u32>,
    /// Response tokens (Developer API name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_token_count: Option<u32>,
    /// Response tokens (Vertex name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates_token_count: Option<u32>,
    /// Tool-use prompt tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_use_prompt_token_count: Option<u32>,
    /// Thinking tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thoughts_token_count: Option<u32>,
    /// Total tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_token_count: Option<u32>,
    /// Prompt tokens by modality.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
    /// Cached tokens by modality.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_tokens_details: Vec<ModalityTokenCount>,
    /// Response tokens by modality (Developer API name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_tokens_details: Vec<ModalityTokenCount>,
    /// Response tokens by modality (Vertex name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates_tokens_details: Vec<ModalityTokenCount>,
    /// Tool-use prompt tokens by modality.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_use_prompt_tokens_details: Vec<ModalityTokenCount>,
}

impl UsageMetadata {
    /// Response tokens under either name (`responseTokenCount` or Vertex `candidatesTokenCount`).
    pub fn response_tokens(&self) -> Option<u32> {
        self.response_token_count.or(self.candidates_token_count)
    }

    /// Response tokens by modality under either name.
    pub fn response_details(&self) -> &[ModalityTokenCount] {
        if self.response_tokens_details.is_empty() {
            &self.candidates_tokens_details
        } else {
            &self.response_tokens_details
        }
    }
}

/// Tokens of one modality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModalityTokenCount {
    /// The modality.
    pub modality: Modality,
    /// Its token count.
    #[serde(skip_serializing_if = "is_zero")]
    pub token_count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ServerMessage {
    /// A frame holding only this payload.
    pub fn new(payload: ServerPayload) -> Self {
        Self {
            payload: Some(payload),
            usage_metadata: None,
        }
    }

    /// `{"setupComplete": {}}`.
    pub fn setup_complete() -> Self {
        Self::new(ServerPayload::SetupComplete(SetupComplete::default()))
    }

    /// A `serverContent` frame.
    pub fn server_content(content: ServerContent) -> Self {
        Self::new(ServerPayload::ServerContent(Box::new(content)))
    }

    /// A `goAway` frame.
    pub fn go_away(time_left: Duration) -> Self {
        Self::new(ServerPayload::GoAway(GoAway { time_left }))
    }

    /// The `serverContent`, if that is the payload.
    pub fn server_content_ref(&self) -> Option<&ServerContent> {
        match &self.payload {
            Some(ServerPayload::ServerContent(c)) => Some(c),
            _ => None,
        }
    }

    /// Canonical JSON (camelCase, standard base64, defaults omitted, int64 as strings,
    /// Durations as `"Ns"`).
    pub fn to_json(&self) -> String {
        let mut buf = Vec::new();
        self.write_json(&mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Clears `buf` and writes the canonical JSON frame into it (UTF-8).
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        buf.clear();
        write_serde(buf, self);
    }

    /// Lenient decoding, as a client must: unknown keys are ignored, an unknown top-level member
    /// becomes [`ServerPayload::Unknown`], absent fields take their proto3 defaults. Accepts
    /// snake_case and camelCase, both base64 alphabets, int64 as string or number. Malformed JSON
    /// and wrong types are errors naming the field.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        super::decode_server::server_message(bytes)
    }
}

impl Serialize for ServerMessage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        match &self.payload {
            Some(ServerPayload::SetupComplete(p)) => map.serialize_entry("setupComplete", p)?,
            Some(ServerPayload::ServerContent(p)) => map.serialize_entry("serverContent", p)?,
            Some(ServerPayload::ToolCall(p)) => map.serialize_entry("toolCall", p)?,
            Some(ServerPayload::ToolCallCancellation(p)) => {
                map.serialize_entry("toolCallCancellation", p)?;
            }
            Some(ServerPayload::GoAway(p)) => map.serialize_entry("goAway", p)?,
            Some(ServerPayload::SessionResumptionUpdate(p)) => {
                map.serialize_entry("sessionResumptionUpdate", p)?;
            }
            Some(ServerPayload::VoiceActivity(p)) => map.serialize_entry("voiceActivity", p)?,
            Some(ServerPayload::Unknown { member }) => {
                map.serialize_entry(member, &SetupComplete::default())?;
            }
            None => {}
        }
        if let Some(usage) = &self.usage_metadata {
            map.serialize_entry("usageMetadata", usage)?;
        }
        map.end()
    }
}
