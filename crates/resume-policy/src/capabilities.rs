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
    /// `gemini-3.8-live-extended-thinking` on the Developer API: the 3.8 rules, plus a
    /// required `thinkingLevel`, asynchronous tools only (no `BLOCKING` declaration, no
    /// `scheduling`), and turns that complete while the interaction is still in progress
    /// (docs/protocol.md section 10.1).
    Gemini38ExtendedThinking,
    /// The extended-thinking variant of 3.8 on Vertex AI.
    VertexGemini38ExtendedThinking,
}

impl ModelFamily {
    /// Whether the family is served by Vertex AI.
    pub fn is_vertex(self) -> bool {
        matches!(
            self,
            Self::VertexGemini25
                | Self::VertexGemini31
                | Self::VertexGemini38
                | Self::VertexGemini38ExtendedThinking
        )
    }

    /// Whether the family is 3.8 or its extended-thinking variant (the rules of
    /// docs/protocol.md section 10.1).
    pub fn is_3_8(self) -> bool {
        matches!(
            self,
            Self::Gemini38
                | Self::VertexGemini38
                | Self::Gemini38ExtendedThinking
                | Self::VertexGemini38ExtendedThinking
        )
    }

    /// Whether the family is 3.8's extended-thinking variant.
    pub fn is_extended_thinking(self) -> bool {
        matches!(
            self,
            Self::Gemini38ExtendedThinking | Self::VertexGemini38ExtendedThinking
        )
    }

    /// Derives the family from a model name: `models/gemini-3.1-flash-live-preview`,
    /// `gemini-2.5-flash-native-audio-preview-12-2025`, or a Vertex resource name
    /// `projects/P/locations/L/publishers/google/models/gemini-live-2.5-flash-native-audio`.
    /// An id containing `3.8` and `extended-thinking` is the extended-thinking variant.
    pub fn from_model(model: &str) -> Result<Self, Error> {
        let lower = model.to_ascii_lowercase();
        let id = lower.rsplit('/').next().unwrap_or(&lower);
        let vertex = lower.starts_with("projects/")
            || lower.starts_with("publishers/")
            || lower.contains("/publishers/")
            || id.starts_with("gemini-live-");
        let family = if id.contains("3.8") && id.contains("extended-thinking") {
            (
                Self::Gemini38ExtendedThinking,
                Self::VertexGemini38ExtendedThinking,
            )
        } else if id.contains("3.8") {
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

/// How a model treats an optional `setup` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetupRule {
    /// Accepted (and passed through).
    Accepted,
    /// Refused: the service closes the `setup` with 1007.
    Refused,
    /// Required: a `setup` without it is closed with 1007.
    Required,
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
    /// `TEXT` as the response modality. 3.8 answers in audio only (its text comes as the
    /// output transcription): a `setup` asking for text is refused.
    pub text_responses: bool,
    /// `generationConfig.thinkingConfig`: accepted on 2.5 (`thinkingBudget`) and 3.1
    /// (`thinkingLevel`), refused on 3.8, required (with a `thinkingLevel`) on extended
    /// thinking.
    pub thinking_config: SetupRule,
    /// `proactivity.proactiveAudio: false` is accepted. 3.8 refuses it: proactive audio is
    /// always on there.
    pub proactive_audio_off: bool,
    /// `generationConfig.enableAffectiveDialog` is accepted (3.8 refuses it on the Developer
    /// API).
    pub affective_dialog: bool,
    /// `behavior: BLOCKING` in a function declaration is accepted (extended thinking's tools
    /// are asynchronous only).
    pub blocking_tools: bool,
    /// `scheduling` in a function response is accepted (extended thinking refuses it).
    pub response_scheduling: bool,
    /// `behavior: NON_BLOCKING` is honoured: the model talks on after such a call and takes
    /// up its result later, as the result's scheduling says (3.1 ignores it: every call
    /// blocks).
    pub non_blocking_calls: bool,
    /// A declaration without `behavior` is `NON_BLOCKING` (3.8).
    pub non_blocking_by_default: bool,
    /// A `turnComplete` ends the interaction. On extended thinking a turn can complete while
    /// the interaction is still `IN_PROGRESS` (one request, several model turns); only
    /// `interactionStatus: IDLE` ends it: the session adopts no handle and does not rotate
    /// until then (docs/design.md section 4.7).
    pub turn_complete_ends_interaction: bool,
}

impl ModelCapabilities {
    /// The table row of `family`.
    pub fn for_family(family: ModelFamily) -> Self {
        use ModelFamily::*;
        let (mid_session, flag, context_update, needs_answer) = match family {
            Gemini25 | VertexGemini25 => (true, false, false, false),
            Gemini31 | VertexGemini31 => (false, true, false, false),
            Gemini38
            | VertexGemini38
            | Gemini38ExtendedThinking
            | VertexGemini38ExtendedThinking => (true, false, true, true),
        };
        let gemini38 = family.is_3_8();
        let extended = family.is_extended_thinking();
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
            text_responses: !gemini38,
            thinking_config: if extended {
                SetupRule::Required
            } else if gemini38 {
                SetupRule::Refused
            } else {
                SetupRule::Accepted
            },
            proactive_audio_off: !gemini38,
            affective_dialog: !gemini38 || family.is_vertex(),
            blocking_tools: !extended,
            response_scheduling: !extended,
            non_blocking_calls: !matches!(family, Gemini31 | VertexGemini31),
            non_blocking_by_default: gemini38,
            turn_complete_ends_interaction: !extended,
        }
    }

    /// Whether a call of a function blocks the model on this family: `declared` is what its
    /// declaration says (`Some(true)`: `BLOCKING`, `Some(false)`: `NON_BLOCKING`, `None`:
    /// nothing, the family's default).
    pub fn call_blocks(&self, declared: Option<bool>) -> bool {
        if !self.non_blocking_calls {
            return true;
        }
        declared.unwrap_or(!self.non_blocking_by_default)
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

#[cfg(test)]
mod tests {
    use super::{ModelCapabilities, ModelFamily, SetupRule};

    #[test]
    fn extended_thinking_is_its_own_family_on_both_surfaces() {
        let cases = [
            (
                "models/gemini-3.8-live-extended-thinking",
                ModelFamily::Gemini38ExtendedThinking,
            ),
            (
                "projects/p/locations/l/publishers/google/models/gemini-3.8-live-extended-thinking",
                ModelFamily::VertexGemini38ExtendedThinking,
            ),
            ("models/gemini-3.8-live", ModelFamily::Gemini38),
        ];
        for (model, family) in cases {
            assert_eq!(ModelFamily::from_model(model).ok(), Some(family), "{model}");
        }
    }

    #[test]
    fn the_3_8_rows_say_what_setup_refuses() {
        let c38 = ModelCapabilities::for_family(ModelFamily::Gemini38);
        let et = ModelCapabilities::for_family(ModelFamily::Gemini38ExtendedThinking);
        let vet = ModelCapabilities::for_family(ModelFamily::VertexGemini38ExtendedThinking);
        let c25 = ModelCapabilities::for_family(ModelFamily::Gemini25);
        assert!(!c38.text_responses && !et.text_responses && c25.text_responses);
        assert_eq!(c38.thinking_config, SetupRule::Refused);
        assert_eq!(et.thinking_config, SetupRule::Required);
        assert_eq!(c25.thinking_config, SetupRule::Accepted);
        assert!(!c38.proactive_audio_off && c25.proactive_audio_off);
        // Affective dialog is refused by 3.8 on the Developer API only.
        assert!(!c38.affective_dialog && !et.affective_dialog && vet.affective_dialog);
        assert!(c38.blocking_tools && !et.blocking_tools && !vet.blocking_tools);
        assert!(c38.response_scheduling && !et.response_scheduling);
        assert!(c38.turn_complete_ends_interaction && !et.turn_complete_ends_interaction);
        assert!(c38.non_blocking_by_default && !c25.non_blocking_by_default);
        // The planner's columns are 3.8's.
        assert!(et.context_update && et.tool_call_needs_answer && et.client_content_mid_session);
        assert!(vet.transparent_resumption);
    }
}
