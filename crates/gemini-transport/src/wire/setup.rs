//! The `setup` message (`BidiGenerateContentSetup`) and its configuration blocks.

use std::collections::BTreeMap;

use serde::Serialize;

use super::content::Content;
use super::enums::wire_enum;
use super::tools::Tool;

/// The first client message of every connection.
///
/// Built with [`Setup::new`] and the `with_*` methods (or `Default` plus field assignment).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Setup {
    /// `models/{id}` (Developer API) or a full Vertex resource name.
    pub model: String,
    /// Generation parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// System instruction (text parts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Tools offered to the model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Voice activity detection and turn policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_input_config: Option<RealtimeInputConfig>,
    /// Presence (even empty) turns on `sessionResumptionUpdate`s; `handle` resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_resumption: Option<SessionResumptionConfig>,
    /// Server-side context trimming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window_compression: Option<ContextWindowCompression>,
    /// Presence enables transcripts of the user's audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_audio_transcription: Option<AudioTranscriptionConfig>,
    /// Presence enables transcripts of the model's audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_audio_transcription: Option<AudioTranscriptionConfig>,
    /// Proactive audio/video (native-audio models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proactivity: Option<ProactivityConfig>,
    /// `initialHistoryInClientContent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_config: Option<HistoryConfig>,
    /// Vertex only: explicit VAD signals from the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explicit_vad_signal: Option<bool>,
    /// Safety settings (pass-through).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub safety_settings: Vec<SafetySetting>,
    /// Free-form labels (pass-through; keys are user data, never re-cased).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Fields this crate does not model, written as given beside the others (keys verbatim):
    /// an escape hatch for settings the service adds. A key that names a modelled field is
    /// written twice; use the field instead. The strict decoder (a server's) refuses them.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Setup {
    /// A setup for `model` with nothing else set.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }

    /// Sets `generationConfig`.
    #[must_use]
    pub fn with_generation_config(mut self, config: GenerationConfig) -> Self {
        self.generation_config = Some(config);
        self
    }

    /// Sets `generationConfig.responseModalities` to this one modality.
    #[must_use]
    pub fn with_response_modality(mut self, modality: Modality) -> Self {
        self.generation_config
            .get_or_insert_with(GenerationConfig::default)
            .response_modalities = vec![modality];
        self
    }

    /// Sets `generationConfig.speechConfig` (voice and language).
    #[must_use]
    pub fn with_speech_config(mut self, speech: SpeechConfig) -> Self {
        self.generation_config
            .get_or_insert_with(GenerationConfig::default)
            .speech_config = Some(speech);
        self
    }

    /// Sets the system instruction from text (role `user`, as the SDKs send it).
    #[must_use]
    pub fn with_system_instruction(mut self, text: impl Into<String>) -> Self {
        self.system_instruction = Some(Content::system_instruction(text));
        self
    }

    /// Sets the tools.
    #[must_use]
    pub fn with_tools(mut self, tools: Vec<Tool>) -> Self {
        self.tools = tools;
        self
    }

    /// Sets `realtimeInputConfig`.
    #[must_use]
    pub fn with_realtime_input_config(mut self, config: RealtimeInputConfig) -> Self {
        self.realtime_input_config = Some(config);
        self
    }

    /// Sets `sessionResumption` (use `SessionResumptionConfig::default()` to opt in to handles).
    #[must_use]
    pub fn with_session_resumption(mut self, config: SessionResumptionConfig) -> Self {
        self.session_resumption = Some(config);
        self
    }

    /// Sets `contextWindowCompression`.
    #[must_use]
    pub fn with_context_window_compression(mut self, config: ContextWindowCompression) -> Self {
        self.context_window_compression = Some(config);
        self
    }

    /// Turns on both transcriptions (`{}` each).
    #[must_use]
    pub fn with_transcriptions(mut self) -> Self {
        self.input_audio_transcription = Some(AudioTranscriptionConfig::default());
        self.output_audio_transcription = Some(AudioTranscriptionConfig::default());
        self
    }

    /// Sets `historyConfig.initialHistoryInClientContent`.
    #[must_use]
    pub fn with_initial_history_in_client_content(mut self, on: bool) -> Self {
        self.history_config = Some(HistoryConfig {
            initial_history_in_client_content: Some(on),
        });
        self
    }

    /// Sets `proactivity`.
    #[must_use]
    pub fn with_proactivity(mut self, config: ProactivityConfig) -> Self {
        self.proactivity = Some(config);
        self
    }
}

wire_enum! {
    /// A content modality.
    Modality {
        /// Unspecified.
        Unspecified => "MODALITY_UNSPECIFIED",
        /// Text.
        Text => "TEXT",
        /// Images.
        Image => "IMAGE",
        /// Video.
        Video => "VIDEO",
        /// Audio.
        Audio => "AUDIO",
        /// Documents.
        Document => "DOCUMENT",
    }
}

wire_enum! {
    /// Resolution used for input media.
    MediaResolution {
        /// Unspecified.
        Unspecified => "MEDIA_RESOLUTION_UNSPECIFIED",
        /// 64 tokens per frame.
        Low => "MEDIA_RESOLUTION_LOW",
        /// 256 tokens per frame.
        Medium => "MEDIA_RESOLUTION_MEDIUM",
        /// Zoomed reframing with 256 tokens.
        High => "MEDIA_RESOLUTION_HIGH",
    }
}

wire_enum! {
    /// Thinking depth on 3.x models.
    ThinkingLevel {
        /// Unspecified.
        Unspecified => "THINKING_LEVEL_UNSPECIFIED",
        /// Minimal.
        Minimal => "MINIMAL",
        /// Low.
        Low => "LOW",
        /// Medium.
        Medium => "MEDIUM",
        /// High.
        High => "HIGH",
    }
}

/// The subset of `GenerationConfig` the Live API accepts.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GenerationConfig {
    /// `["AUDIO"]` or `["TEXT"]`: one modality per session.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_modalities: Vec<Modality>,
    /// Voice and language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_config: Option<SpeechConfig>,
    /// Thinking budget / level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
    /// Affective dialog (2.5 native audio, `v1alpha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_affective_dialog: Option<bool>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Top-k sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    /// Output token limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<i32>,
    /// Decoding seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i32>,
    /// Number of candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<i32>,
    /// Presence penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Media resolution for video input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_resolution: Option<MediaResolution>,
}

/// `speechConfig`: voice and language.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SpeechConfig {
    /// Which voice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_config: Option<VoiceConfig>,
    /// BCP-47 language code, e.g. `en-US`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

impl SpeechConfig {
    /// A prebuilt voice by name (e.g. `Puck`), no language code.
    pub fn voice(name: impl Into<String>) -> Self {
        Self {
            voice_config: Some(VoiceConfig {
                prebuilt_voice_config: Some(PrebuiltVoiceConfig {
                    voice_name: name.into(),
                }),
            }),
            language_code: None,
        }
    }

    /// Sets the language code.
    #[must_use]
    pub fn with_language_code(mut self, code: impl Into<String>) -> Self {
        self.language_code = Some(code.into());
        self
    }
}

/// `voiceConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceConfig {
    /// A prebuilt voice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prebuilt_voice_config: Option<PrebuiltVoiceConfig>,
}

/// `prebuiltVoiceConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrebuiltVoiceConfig {
    /// Voice name, e.g. `Puck`.
    pub voice_name: String,
}

/// `thinkingConfig`: `thinkingBudget`/`includeThoughts` on 2.5, `thinkingLevel` on 3.1.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ThinkingConfig {
    /// Token budget for thinking (`0` turns it off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<i32>,
    /// Whether thought summaries are returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
    /// Thinking level (3.x).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<ThinkingLevel>,
}

impl ThinkingConfig {
    /// A thinking budget.
    pub fn budget(tokens: i32) -> Self {
        Self {
            thinking_budget: Some(tokens),
            ..Self::default()
        }
    }

    /// A thinking level.
    pub fn level(level: ThinkingLevel) -> Self {
        Self {
            thinking_level: Some(level),
            ..Self::default()
        }
    }
}

wire_enum! {
    /// How eagerly start of speech is detected.
    StartSensitivity {
        /// Unspecified (server default).
        Unspecified => "START_SENSITIVITY_UNSPECIFIED",
        /// Detects start of speech more often.
        High => "START_SENSITIVITY_HIGH",
        /// Detects start of speech less often.
        Low => "START_SENSITIVITY_LOW",
    }
}

wire_enum! {
    /// How eagerly end of speech is detected.
    EndSensitivity {
        /// Unspecified (server default).
        Unspecified => "END_SENSITIVITY_UNSPECIFIED",
        /// Ends speech more often.
        High => "END_SENSITIVITY_HIGH",
        /// Ends speech less often.
        Low => "END_SENSITIVITY_LOW",
    }
}

wire_enum! {
    /// What user activity does to an ongoing model response.
    ActivityHandling {
        /// Unspecified (server default: interrupts).
        Unspecified => "ACTIVITY_HANDLING_UNSPECIFIED",
        /// Start of activity interrupts the model (barge-in).
        StartOfActivityInterrupts => "START_OF_ACTIVITY_INTERRUPTS",
        /// The model is not interrupted.
        NoInterruption => "NO_INTERRUPTION",
    }
}

wire_enum! {
    /// Which input counts into the user's turn.
    TurnCoverage {
        /// Unspecified (model default).
        Unspecified => "TURN_COVERAGE_UNSPECIFIED",
        /// Only input during activity (2.x default).
        TurnIncludesOnlyActivity => "TURN_INCLUDES_ONLY_ACTIVITY",
        /// All input since the last turn.
        TurnIncludesAllInput => "TURN_INCLUDES_ALL_INPUT",
        /// Audio during activity plus all video (3.x default).
        TurnIncludesAudioActivityAndAllVideo => "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
    }
}

/// `realtimeInputConfig`: VAD and turn policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RealtimeInputConfig {
    /// Server-side voice activity detection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_activity_detection: Option<AutomaticActivityDetection>,
    /// Barge-in behaviour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_handling: Option<ActivityHandling>,
    /// Which input forms the turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_coverage: Option<TurnCoverage>,
}

impl RealtimeInputConfig {
    /// Server VAD on, ending speech after `silence_ms` of silence
    /// (`automaticActivityDetection.silenceDurationMs`).
    pub fn silence_duration_ms(silence_ms: i32) -> Self {
        Self {
            automatic_activity_detection: Some(AutomaticActivityDetection {
                silence_duration_ms: Some(silence_ms),
                ..AutomaticActivityDetection::default()
            }),
            ..Self::default()
        }
    }

    /// Server VAD off: the client sends `activityStart`/`activityEnd`.
    pub fn manual_activity() -> Self {
        Self {
            automatic_activity_detection: Some(AutomaticActivityDetection {
                disabled: Some(true),
                ..AutomaticActivityDetection::default()
            }),
            ..Self::default()
        }
    }
}

/// `automaticActivityDetection`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AutomaticActivityDetection {
    /// `true`: the client brackets speech itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Start-of-speech sensitivity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_of_speech_sensitivity: Option<StartSensitivity>,
    /// End-of-speech sensitivity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_speech_sensitivity: Option<EndSensitivity>,
    /// Speech needed before start of speech is committed, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_padding_ms: Option<i32>,
    /// Silence needed before end of speech is committed, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence_duration_ms: Option<i32>,
}

/// `sessionResumption`: `{}` opts in to handles; `handle` resumes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SessionResumptionConfig {
    /// The newest resumable handle, to resume that session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Vertex only: ask for `lastConsumedClientMessageIndex` in updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent: Option<bool>,
}

impl SessionResumptionConfig {
    /// Resume from `handle`.
    pub fn resume(handle: impl Into<String>) -> Self {
        Self {
            handle: Some(handle.into()),
            transparent: None,
        }
    }

    /// Sets `transparent`.
    #[must_use]
    pub fn with_transparent(mut self, transparent: bool) -> Self {
        self.transparent = Some(transparent);
        self
    }
}

/// `contextWindowCompression`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ContextWindowCompression {
    /// Context size (tokens) that triggers compression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_tokens: Option<i64>,
    /// Sliding-window compression (`{}` = defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<SlidingWindow>,
}

impl ContextWindowCompression {
    /// Sliding window with server defaults: `{"slidingWindow": {}}`.
    pub fn sliding_window() -> Self {
        Self {
            trigger_tokens: None,
            sliding_window: Some(SlidingWindow::default()),
        }
    }

    /// Sliding window with both thresholds.
    pub fn sliding_window_with(trigger_tokens: i64, target_tokens: i64) -> Self {
        Self {
            trigger_tokens: Some(trigger_tokens),
            sliding_window: Some(SlidingWindow {
                target_tokens: Some(target_tokens),
            }),
        }
    }
}

/// `slidingWindow`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlidingWindow {
    /// Tokens to keep after compression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_tokens: Option<i64>,
}

/// `inputAudioTranscription` / `outputAudioTranscription`; presence enables it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AudioTranscriptionConfig {
    /// Expected languages (newer SDKs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub language_codes: Vec<String>,
    /// Every other field, kept as sent (keys and values verbatim): the service treats this
    /// config as opaque and adds fields to it (`customVocabulary`, …), so even the strict
    /// decoder accepts them here.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `proactivity`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProactivityConfig {
    /// The model may stay silent for irrelevant audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proactive_audio: Option<bool>,
    /// Same for video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proactive_video: Option<bool>,
}

impl ProactivityConfig {
    /// `{"proactiveAudio": on}`.
    pub fn audio(on: bool) -> Self {
        Self {
            proactive_audio: Some(on),
            proactive_video: None,
        }
    }
}

/// `historyConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HistoryConfig {
    /// The server consumes `clientContent` as history until `turnComplete: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_history_in_client_content: Option<bool>,
}

/// One `safetySettings` entry (pass-through).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SafetySetting {
    /// Harm category name, e.g. `HARM_CATEGORY_HARASSMENT`.
    pub category: String,
    /// Threshold name, e.g. `BLOCK_ONLY_HIGH`.
    pub threshold: String,
}
