//! What the fake takes from a client's `setup`.

use gemini_transport::wire::{
    ActivityHandling, Behavior, Content, Modality, PartData, Setup, Tool,
};

/// Response modality of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseKind {
    /// Text parts in `modelTurn`.
    Text,
    /// 24 kHz PCM in `modelTurn.inlineData` (plus `outputTranscription` when enabled).
    Audio,
}

/// The parts of `setup` that drive the fake's behaviour.
#[derive(Debug, Clone)]
pub(crate) struct SetupRequest {
    pub(crate) model: String,
    pub(crate) modality: ResponseKind,
    pub(crate) system_instruction: Option<String>,
    pub(crate) functions: Vec<String>,
    /// The `behavior` of every declared function, in declaration order.
    pub(crate) behaviors: Vec<(String, Option<Behavior>)>,
    /// `generationConfig.thinkingConfig` is present.
    pub(crate) thinking_config: bool,
    /// It names a `thinkingLevel`.
    pub(crate) thinking_level: bool,
    /// `generationConfig.enableAffectiveDialog` is present.
    pub(crate) affective_dialog: bool,
    /// `proactivity.proactiveAudio` is `false`.
    pub(crate) proactive_audio_off: bool,
    /// `contextWindowCompression` with its trigger and target, when present.
    pub(crate) compression: Option<Compression>,
    /// `Some` when `sessionResumption` is present (updates are sent).
    pub(crate) resumption: Option<Resumption>,
    pub(crate) initial_history: bool,
    pub(crate) manual_activity: bool,
    pub(crate) no_interruption: bool,
    pub(crate) silence_ms: Option<u64>,
    pub(crate) input_transcription: bool,
    pub(crate) output_transcription: bool,
}

/// `contextWindowCompression` of a setup (`None`: the defaults, from the context window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compression {
    pub(crate) trigger_tokens: Option<u64>,
    pub(crate) target_tokens: Option<u64>,
}

/// `sessionResumption` of a setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resumption {
    pub(crate) handle: Option<String>,
    pub(crate) transparent: bool,
}

impl SetupRequest {
    pub(crate) fn from_wire(setup: &Setup) -> Self {
        let modality = match setup.generation_config.as_ref() {
            Some(config) if config.response_modalities.contains(&Modality::Text) => {
                ResponseKind::Text
            }
            _ => ResponseKind::Audio,
        };
        let realtime = setup.realtime_input_config.as_ref();
        let detection = realtime.and_then(|r| r.automatic_activity_detection.as_ref());
        let generation = setup.generation_config.as_ref();
        let thinking = generation.and_then(|g| g.thinking_config.as_ref());
        SetupRequest {
            model: setup.model.clone(),
            modality,
            system_instruction: setup.system_instruction.as_ref().map(content_text),
            functions: function_names(&setup.tools),
            behaviors: function_behaviors(&setup.tools),
            thinking_config: thinking.is_some(),
            thinking_level: thinking.is_some_and(|t| t.thinking_level.is_some()),
            affective_dialog: generation.is_some_and(|g| g.enable_affective_dialog.is_some()),
            proactive_audio_off: setup
                .proactivity
                .as_ref()
                .is_some_and(|p| p.proactive_audio == Some(false)),
            compression: setup
                .context_window_compression
                .as_ref()
                .map(|c| Compression {
                    trigger_tokens: c.trigger_tokens.and_then(|t| u64::try_from(t).ok()),
                    target_tokens: c
                        .sliding_window
                        .as_ref()
                        .and_then(|w| w.target_tokens)
                        .and_then(|t| u64::try_from(t).ok()),
                }),
            resumption: setup.session_resumption.as_ref().map(|r| Resumption {
                handle: r.handle.clone().filter(|h| !h.is_empty()),
                transparent: r.transparent.unwrap_or(false),
            }),
            initial_history: setup
                .history_config
                .as_ref()
                .and_then(|h| h.initial_history_in_client_content)
                .unwrap_or(false),
            manual_activity: detection.and_then(|d| d.disabled).unwrap_or(false),
            no_interruption: realtime.and_then(|r| r.activity_handling.as_ref())
                == Some(&ActivityHandling::NoInterruption),
            silence_ms: detection
                .and_then(|d| d.silence_duration_ms)
                .and_then(|ms| u64::try_from(ms).ok()),
            input_transcription: setup.input_audio_transcription.is_some(),
            output_transcription: setup.output_audio_transcription.is_some(),
        }
    }
}

/// The text parts of a content joined by newlines (a system instruction's paragraphs).
pub(crate) fn content_text(content: &Content) -> String {
    content
        .parts
        .iter()
        .filter_map(|part| match &part.data {
            PartData::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names of every declared function, in declaration order.
pub(crate) fn function_names(tools: &[Tool]) -> Vec<String> {
    tools
        .iter()
        .flat_map(|tool| tool.function_declarations.iter().map(|f| f.name.clone()))
        .collect()
}

/// Every declared function with its `behavior`, in declaration order.
pub(crate) fn function_behaviors(tools: &[Tool]) -> Vec<(String, Option<Behavior>)> {
    tools
        .iter()
        .flat_map(|tool| {
            tool.function_declarations
                .iter()
                .map(|f| (f.name.clone(), f.behavior.clone()))
        })
        .collect()
}
