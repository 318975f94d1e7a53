//! The model capability table the planner reads instead of model names (docs/design.md section 6).

use std::time::Duration;

use crate::Error;

/// A model family: the protocol behaviour shared by its models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModelFamily {
    /// Gemini 2.5 live / native-audio models on the Developer API: `clientContent` any time.
    Gemini25,
    /// `gemini-3.1-flash-live-preview` on the Developer API: `clientContent` only as initial
    /// history behind `historyConfig` (the strict behaviour; 1007 otherwise).
    Gemini31,
    /// `gemini-3.8-live` on the Developer API: `clientContent` any time, `contextUpdate`, tool
    /// calls that must be answered.
    Gemini38,
    /// Gemini 2.5 on Vertex AI (transparent resumption available).
    VertexGemini25,
    /// Gemini 3.1 on Vertex AI.
    VertexGemini31,
    /// Gemini 3.8 on Vertex AI.
    VertexGemini38,
}

impl ModelFamily {
    /// Whether the family is served by Vertex AI.
    pub fn is_vertex(self) -> bool {
        matches!(
            self,
            Self::VertexGemini25 | Self::VertexGemini31 | Self::VertexGemini38
        )
    }

    /// Derives the family from a model name: `models/gemini-3.1-flash-live-preview`,
    /// `gemini-2.5-flash-native-audio-preview-12-2025`, or a Vertex resource name
    /// `projects/P/locations/L/publishers/google/models/gemini-live-2.5-flash-native-audio`.
    pub fn from_model(model: &str) -> Result<Self, Error> {
        let lower = model.to_ascii_lowercase();
        let id = lower.rsplit('/').next().unwrap_or(&lower);
        let vertex = lower.starts_with("projects/")
            || lower.starts_with("publishers/")
            || lower.contains("/publishers/")
            || id.starts_with("gemini-live-");
        let family = if id.contains("3.8") {
            (Self::Gemini38, Self::VertexGemini38)
        } else if id.contains("3.1") {
            (Self::Gemini31, Self::VertexGemini31)
        } else if id.contains("2.5") {
            (Self::Gemini25, Self::VertexGemini25)
        } else {
            return Err(Error::UnknownModel {
                model: model.to_owned(),
            });
        };
        Ok(if vertex { family.1 } else { family.0 })
    }
}

/// Bounds for a fresh session's seed (scenario S28: after compression the desired context can
/// be larger than what a new session accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeedLimit {
    /// At most this many items.
    pub max_items: usize,
    /// At most this many characters of text and JSON (a token estimate: about 4 per token).
    pub max_chars: usize,
}

/// What a model family allows, as the planner needs it. Start from
/// [`for_family`](Self::for_family) or [`for_model`](Self::for_model) and override fields
/// (the docs of 3.1 changed over time, for example).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ModelCapabilities {
    /// The family the values were derived from.
    pub family: ModelFamily,
    /// `clientContent` is accepted after the initial history phase.
    pub client_content_mid_session: bool,
    /// Seeded history needs `historyConfig.initialHistoryInClientContent` in `setup`.
    pub initial_history_flag_required: bool,
    /// `contextUpdate` (instructions and tools mid-session) is available.
    pub context_update: bool,
    /// Transparent resumption (`lastConsumedClientMessageIndex`) is available (Vertex only).
    pub transparent_resumption: bool,
    /// A resumed session accepts a `toolResponse` for a call it never issued.
    pub resumed_session_accepts_unknown_call_result: bool,
    /// A tool call the session knows must be answered before new input (the model waits).
    pub tool_call_needs_answer: bool,
    /// Size bounds of a fresh session's seed.
    pub seed_limit: SeedLimit,
    /// How long a handle can be used after it was received (documented: 2 hours after the
    /// session's last connection ended; counted conservatively from receipt).
    pub handle_validity: Duration,
}

impl ModelCapabilities {
    /// The table row of `family`.
    pub fn for_family(family: ModelFamily) -> Self {
        use ModelFamily::*;
        let (mid_session, flag, context_update, needs_answer) = match family {
            Gemini25 | VertexGemini25 => (true, false, false, false),
            Gemini31 | VertexGemini31 => (false, true, false, false),
            Gemini38 | VertexGemini38 => (true, false, true, true),
        };
        Self {
            family,
            client_content_mid_session: mid_session,
            initial_history_flag_required: flag,
            context_update,
            transparent_resumption: family.is_vertex(),
            resumed_session_accepts_unknown_call_result: false,
            tool_call_needs_answer: needs_answer,
            seed_limit: SeedLimit {
                max_items: 2_000,
                max_chars: 200_000,
            },
            handle_validity: Duration::from_secs(2 * 60 * 60),
        }
    }

    /// The row of the family `model` belongs to (see [`ModelFamily::from_model`]).
    ///
    /// ```
    /// use resume_policy::{ModelCapabilities, ModelFamily};
    ///
    /// let caps = ModelCapabilities::for_model("models/gemini-3.1-flash-live-preview")?;
    /// assert_eq!(caps.family, ModelFamily::Gemini31);
    /// assert!(!caps.client_content_mid_session);
    /// assert!(caps.initial_history_flag_required);
    /// # Ok::<(), resume_policy::Error>(())
    /// ```
    pub fn for_model(model: &str) -> Result<Self, Error> {
        ModelFamily::from_model(model).map(Self::for_family)
    }
}
