//! Session configuration and its builder.

use std::sync::Arc;
use std::time::Duration;

use gemini_transport::wire::{
    ActivityHandling, AudioTranscriptionConfig, AutomaticActivityDetection, Behavior,
    ContextWindowCompression, EmptyConfig, EndSensitivity, FunctionDeclaration, GenerationConfig,
    MediaResolution, Modality, ProactivityConfig, RealtimeInputConfig, SessionResumptionConfig,
    Setup, SpeechConfig, StartSensitivity, ThinkingConfig, ThinkingLevel, Tool, TurnCoverage,
};
use gemini_transport::{ConnectConfig, Endpoint};
use resume_policy::{DefaultPolicy, ModelCapabilities, ResumePolicy, SetupRule};

use crate::Error;

/// What to do with microphone audio pushed while no connection is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioGapPolicy {
    /// Keep up to this much audio and send it right after the new connection's plan.
    /// Audio beyond the bound is dropped (oldest first) and reported.
    Buffer {
        /// The bound.
        max: Duration,
    },
    /// Drop it and report [`SessionEvent::AudioDropped`](crate::SessionEvent::AudioDropped).
    Drop,
}

impl Default for AudioGapPolicy {
    /// Buffer up to two seconds.
    fn default() -> Self {
        Self::Buffer {
            max: Duration::from_secs(2),
        }
    }
}

/// How the session checks that the server still reads what it writes: a WebSocket ping every
/// `interval`, and the connection is taken as lost (1006) when no pong came back within
/// `timeout` of a ping. TCP alone cannot tell: a peer that stops reading (a half-open
/// connection, a stalled proxy) leaves writes succeeding into the socket buffers for minutes
/// at real-time rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keepalive {
    /// Time between pings.
    pub interval: Duration,
    /// How long a ping may stay unanswered while nothing else comes from the server either
    /// (any frame proves the connection alive).
    pub timeout: Duration,
}

impl Keepalive {
    /// A ping every `interval`, the connection lost when one is unanswered (and nothing else
    /// came) for `timeout`.
    #[must_use]
    pub const fn new(interval: Duration, timeout: Duration) -> Self {
        Self { interval, timeout }
    }
}

impl Default for Keepalive {
    /// A ping every 10 s, answered (or any frame received) within 40 s: the service's pongs
    /// have been seen to take 8–30 s while it is busy, and a late pong on a connection that
    /// works is no reason to drop it.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(40),
        }
    }
}

/// When the session replaces a connection of its own accord, however well it works: the
/// service may end a long connection without notice (3.8 connections are closed at exactly
/// 58:00 with 1011 `Deadline expired`, compression or not, and the resume after such a close
/// is sometimes refused with 1007, which costs a fresh session: docs/protocol.md section
/// 10.1). A rotation the session chooses resumes from a fresh handle at a quiet moment
/// instead.
///
/// Once a connection is older than `rotate_after`, the session rotates at the first idle
/// point: the model not in a turn, no tool response owed, a fresh resumable handle (the
/// conditions of a `goAway` rotation, docs/design.md section 7). At `max` it rotates in any
/// case, closing a turn under way locally as interrupted, as a `goAway` deadline does. A
/// connection's age counts from the moment its dial was ordered, which is no later than the
/// server's count starts. Each rotation is one
/// [`Reconnecting`](crate::SessionEvent::Reconnecting) with
/// [`ReconnectReason::ConnectionAge`](crate::ReconnectReason::ConnectionAge) and one
/// [`Reconnected`](crate::SessionEvent::Reconnected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionAge {
    /// From this age on, rotate at the first idle point with a fresh handle.
    pub rotate_after: Duration,
    /// At this age, rotate in any case (at least `rotate_after`).
    pub max: Duration,
}

impl ConnectionAge {
    /// Rotate at an idle point from `rotate_after`, in any case at `max` (a `rotate_after`
    /// later than `max` is refused by [`LiveSessionBuilder::connect`] as an
    /// [`Error::Config`]).
    #[must_use]
    pub const fn new(rotate_after: Duration, max: Duration) -> Self {
        Self { rotate_after, max }
    }
}

impl Default for ConnectionAge {
    /// Rotate from 45 minutes, forced by 50. The 13 minutes before 58:00 give a session that
    /// is busy at 45:00 (a long answer, a slow tool) time to reach an idle point; forcing at
    /// 50:00 still leaves 8 minutes for the forced close, for the difference between the
    /// session's count and the server's, and for a service whose limit is a report, not a
    /// documented figure. Other families announce their end with a `goAway` after about 10
    /// minutes, so the limit does not come into play there; a rotation every 45 minutes costs
    /// one resume.
    fn default() -> Self {
        Self {
            rotate_after: Duration::from_secs(45 * 60),
            max: Duration::from_secs(50 * 60),
        }
    }
}

/// A change the application makes to every `setup` ([`LiveSessionBuilder::configure_setup`]).
type SetupHook = Arc<dyn Fn(&mut Setup) + Send + Sync>;

/// The built-in tools a session offers the model besides its functions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BuiltinTools {
    pub(crate) google_search: bool,
    pub(crate) code_execution: bool,
    pub(crate) url_context: bool,
}

impl BuiltinTools {
    /// The `tools` entries for `functions` and these built-in tools, as `setup` and a
    /// `contextUpdate` carry them.
    pub(crate) fn entries(self, functions: &[FunctionDeclaration]) -> Vec<Tool> {
        let mut tools = Vec::new();
        if !functions.is_empty() {
            tools.push(Tool::functions(functions.to_vec()));
        }
        if self.google_search {
            tools.push(Tool::google_search());
        }
        if self.code_execution {
            tools.push(Tool::code_execution());
        }
        if self.url_context {
            tools.push(Tool {
                url_context: Some(EmptyConfig {}),
                ..Tool::default()
            });
        }
        tools
    }
}

/// Everything a session needs to open connections, but the endpoint and its credential (which
/// only the shell's dial sees: [`LiveSessionBuilder`] keeps them apart). Built by
/// [`LiveSessionBuilder`].
#[derive(Clone)]
pub(crate) struct SessionConfig {
    pub(crate) model: String,
    pub(crate) instructions: Option<String>,
    pub(crate) tools: Vec<FunctionDeclaration>,
    pub(crate) modality: Modality,
    pub(crate) voice: Option<String>,
    pub(crate) transcription: bool,
    pub(crate) automatic_activity_detection: bool,
    /// The silence after which the server's activity detection ends speech, when the session
    /// asks for one.
    pub(crate) end_of_speech_silence: Option<Duration>,
    pub(crate) compression: Option<ContextWindowCompression>,
    pub(crate) transparent: bool,
    pub(crate) connect: ConnectConfig,
    pub(crate) audio_gap: AudioGapPolicy,
    pub(crate) go_away_margin: Duration,
    pub(crate) input_sample_rate: u32,
    pub(crate) audio_chunk: Duration,
    /// The shortest time between two video frames sent.
    pub(crate) video_interval: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) keepalive: Option<Keepalive>,
    pub(crate) audio_backlog: Duration,
    pub(crate) event_capacity: usize,
    pub(crate) max_handle_bytes: usize,
    pub(crate) first_connect_budget: Option<Duration>,
    pub(crate) connection_age: Option<ConnectionAge>,
    pub(crate) thinking_level: Option<ThinkingLevel>,
    pub(crate) proactive_audio: Option<bool>,
    pub(crate) affective_dialog: bool,
    /// Sampling and the other `generationConfig` fields the builder sets (modality, speech,
    /// thinking and affective dialog are added per setup).
    pub(crate) generation: GenerationConfig,
    /// `thinkingConfig.thinkingBudget` / `includeThoughts` (2.5).
    pub(crate) thinking_budget: Option<i32>,
    pub(crate) include_thoughts: Option<bool>,
    pub(crate) proactive_video: Option<bool>,
    /// `speechConfig.languageCode`.
    pub(crate) language: Option<String>,
    /// `inputAudioTranscription.languageCodes`.
    pub(crate) transcription_languages: Vec<String>,
    /// Sensitivities and prefix padding of the automatic activity detection (the silence is
    /// `end_of_speech_silence`).
    pub(crate) detection: AutomaticActivityDetection,
    pub(crate) activity_handling: Option<ActivityHandling>,
    pub(crate) turn_coverage: Option<TurnCoverage>,
    pub(crate) builtin_tools: BuiltinTools,
    pub(crate) setup_hook: Option<SetupHook>,
}

impl SessionConfig {
    /// How long the first connect keeps retrying (see
    /// [`LiveSessionBuilder::first_connect_budget`]); default: the setup timeout.
    pub(crate) fn first_connect_budget(&self) -> Duration {
        self.first_connect_budget
            .unwrap_or(self.connect.setup_timeout)
    }

    /// Bytes of 16-bit mono PCM in one audio frame (an even number, at least one sample).
    pub(crate) fn audio_chunk_bytes(&self) -> usize {
        let samples = u128::from(self.input_sample_rate) * self.audio_chunk.as_millis() / 1000;
        usize::try_from(samples.max(1) * 2).unwrap_or(usize::MAX & !1)
    }

    /// The `setup` for a connection: the current instructions and tools, resumption always on
    /// (so that handles keep coming), `handle` when resuming, `historyConfig` only when asked.
    pub(crate) fn setup(
        &self,
        instructions: Option<&str>,
        tools: &[FunctionDeclaration],
        handle: Option<&str>,
        transparent: bool,
        history_config: bool,
    ) -> Setup {
        let mut setup = Setup::new(self.model.clone());
        if let Some(hook) = &self.setup_hook {
            hook(&mut setup);
            setup.model.clone_from(&self.model);
        }
        if self.generation != GenerationConfig::default() {
            let generation = setup
                .generation_config
                .get_or_insert_with(GenerationConfig::default);
            merge_generation(generation, &self.generation);
        }
        setup = setup.with_response_modality(self.modality.clone());
        if let Some(generation) = setup.generation_config.as_mut() {
            if self.voice.is_some() || self.language.is_some() {
                let mut speech = match &self.voice {
                    Some(voice) => SpeechConfig::voice(voice.clone()),
                    None => SpeechConfig::default(),
                };
                speech.language_code.clone_from(&self.language);
                generation.speech_config = Some(speech);
            }
            if let Some(thinking) = self.thinking_config() {
                generation.thinking_config = Some(thinking);
            }
            if self.affective_dialog {
                generation.enable_affective_dialog = Some(true);
            }
        }
        if self.proactive_audio.is_some() || self.proactive_video.is_some() {
            let mut proactivity = ProactivityConfig::default();
            proactivity.proactive_audio = self.proactive_audio;
            proactivity.proactive_video = self.proactive_video;
            setup = setup.with_proactivity(proactivity);
        }
        if let Some(text) = instructions {
            setup = setup.with_system_instruction(text);
        }
        let tools = self.builtin_tools.entries(tools);
        if !tools.is_empty() {
            setup = setup.with_tools(tools);
        }
        let mut resumption = match handle {
            Some(token) => SessionResumptionConfig::resume(token),
            None => SessionResumptionConfig::default(),
        };
        if transparent {
            resumption = resumption.with_transparent(true);
        }
        setup = setup.with_session_resumption(resumption);
        if let Some(compression) = &self.compression {
            setup = setup.with_context_window_compression(compression.clone());
        }
        if self.transcription {
            let mut input = AudioTranscriptionConfig::default();
            input
                .language_codes
                .clone_from(&self.transcription_languages);
            setup.input_audio_transcription = Some(input);
            setup.output_audio_transcription = Some(AudioTranscriptionConfig::default());
        }
        if history_config {
            setup = setup.with_initial_history_in_client_content(true);
        }
        if let Some(realtime) = self.realtime_input_config() {
            setup = setup.with_realtime_input_config(realtime);
        }
        setup
    }

    /// `thinkingConfig`, if any of its fields is set.
    pub(crate) fn thinking_config(&self) -> Option<ThinkingConfig> {
        if self.thinking_level.is_none()
            && self.thinking_budget.is_none()
            && self.include_thoughts.is_none()
        {
            return None;
        }
        let mut thinking = ThinkingConfig::default();
        thinking.thinking_level.clone_from(&self.thinking_level);
        thinking.thinking_budget = self.thinking_budget;
        thinking.include_thoughts = self.include_thoughts;
        Some(thinking)
    }

    /// `realtimeInputConfig`, if anything in it differs from the service's defaults: detection
    /// off (`disabled: true` and nothing else of it), or its settings; barge-in; turn coverage.
    fn realtime_input_config(&self) -> Option<RealtimeInputConfig> {
        let mut config = if self.automatic_activity_detection {
            let mut detection = self.detection.clone();
            if let Some(silence) = self.end_of_speech_silence {
                detection.silence_duration_ms =
                    Some(i32::try_from(silence.as_millis()).unwrap_or(i32::MAX));
            }
            let mut config = RealtimeInputConfig::default();
            if detection != AutomaticActivityDetection::default() {
                config.automatic_activity_detection = Some(detection);
            }
            config
        } else {
            RealtimeInputConfig::manual_activity()
        };
        config.activity_handling.clone_from(&self.activity_handling);
        config.turn_coverage.clone_from(&self.turn_coverage);
        (config != RealtimeInputConfig::default()).then_some(config)
    }
}

/// Copies the fields set in `from` (the builder's sampling settings) over `into`.
fn merge_generation(into: &mut GenerationConfig, from: &GenerationConfig) {
    macro_rules! copy {
        ($($field:ident),*) => {$(
            if from.$field.is_some() {
                into.$field.clone_from(&from.$field);
            }
        )*};
    }
    copy!(
        temperature,
        top_p,
        top_k,
        max_output_tokens,
        seed,
        presence_penalty,
        frequency_penalty,
        media_resolution
    );
}

impl SessionConfig {
    /// Refuses, before any dial, a configuration the model's capability row says its `setup`
    /// would be closed for (docs/protocol.md section 10.1): on 3.8 a thinking level
    /// (`thinkingConfig`), `proactiveAudio: false`, affective dialog (Developer API) and the
    /// TEXT response modality; on extended thinking also a missing thinking level and a
    /// `BLOCKING` declaration. The row can be overridden with
    /// [`LiveSessionBuilder::capabilities`].
    pub(crate) fn check_model_rules(&self, caps: &ModelCapabilities) -> Result<(), Error> {
        let refuse = |setting: &str, why: &str| {
            Err(Error::Unsupported {
                model: self.model.clone(),
                setting: setting.to_owned(),
                why: why.to_owned(),
            })
        };
        if self.modality == Modality::Text && !caps.text_responses {
            return refuse(
                "the TEXT response modality",
                "it answers in audio only (its text comes as the output transcription); if \
                 this model does take TEXT, pass its capability row with `text_responses` set \
                 through `.capabilities(…)`",
            );
        }
        match (&self.thinking_level, caps.thinking_config) {
            (_, SetupRule::Refused) if self.thinking_config().is_some() => {
                return refuse(
                    "a thinking configuration (`thinkingConfig`)",
                    "the service closes such a setup with 1007; leave `.thinking_level(…)`, \
                     `.thinking_budget(…)` and `.include_thoughts(…)` out",
                );
            }
            (None, SetupRule::Required) => {
                return refuse(
                    "a setup without a thinking level",
                    "it requires `thinkingConfig.thinkingLevel`: set `.thinking_level(…)`",
                );
            }
            _ => {}
        }
        if self.proactive_audio == Some(false) && !caps.proactive_audio_off {
            return refuse(
                "`proactiveAudio: false`",
                "proactive audio is always on for this model; leave `.proactive_audio(false)` out",
            );
        }
        if self.affective_dialog && !caps.affective_dialog {
            return refuse(
                "affective dialog (`enableAffectiveDialog`)",
                "the service closes such a setup with 1007 on this surface",
            );
        }
        check_tools(&self.model, &self.tools, caps)
    }
}

/// Refuses a `BLOCKING` declaration on a model whose tools are asynchronous only (extended
/// thinking: docs/protocol.md section 10.1), at the builder and at
/// [`LiveSession::update_tools`](crate::LiveSession::update_tools).
pub(crate) fn check_tools(
    model: &str,
    tools: &[FunctionDeclaration],
    caps: &ModelCapabilities,
) -> Result<(), Error> {
    if caps.blocking_tools {
        return Ok(());
    }
    match tools
        .iter()
        .find(|tool| tool.behavior == Some(Behavior::Blocking))
    {
        Some(tool) => Err(Error::Unsupported {
            model: model.to_owned(),
            setting: format!("the `BLOCKING` declaration of `{}`", tool.name),
            why: "its tools are asynchronous only; declare the function without `behavior` (or \
                  `NON_BLOCKING`)"
                .to_owned(),
        }),
        None => Ok(()),
    }
}

/// Builds a [`LiveSession`](crate::LiveSession). Every setting has a documented default;
/// [`connect`](Self::connect) returns once the first setup is complete.
#[must_use]
pub struct LiveSessionBuilder {
    pub(crate) endpoint: Endpoint,
    pub(crate) config: SessionConfig,
    pub(crate) policy: Option<Arc<dyn ResumePolicy>>,
    pub(crate) capabilities: Option<ModelCapabilities>,
    pub(crate) initial_context: ctx_model::ChatContext,
    pub(crate) jitter_seed: Option<u64>,
    /// A session another process saved, to take over ([`resume_from`](Self::resume_from)).
    pub(crate) resume_from: Option<crate::core::Persisted>,
    /// The store and key whose lease the session holds (feature `store`).
    #[cfg(feature = "store")]
    pub(crate) ownership: Option<crate::ownership::Ownership>,
}

impl std::fmt::Debug for LiveSessionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessionBuilder")
            .field("endpoint", &self.endpoint)
            .field("model", &self.config.model)
            .finish_non_exhaustive()
    }
}

impl LiveSessionBuilder {
    /// A builder for `model` (as `setup.model` wants it, e.g.
    /// `models/gemini-2.5-flash-native-audio-preview-12-2025`) at `endpoint`.
    pub fn new(endpoint: Endpoint, model: impl Into<String>) -> Self {
        Self {
            endpoint,
            config: SessionConfig {
                model: model.into(),
                instructions: None,
                tools: Vec::new(),
                modality: Modality::Audio,
                voice: None,
                transcription: true,
                automatic_activity_detection: true,
                end_of_speech_silence: None,
                compression: None,
                transparent: false,
                connect: ConnectConfig::default(),
                audio_gap: AudioGapPolicy::default(),
                go_away_margin: Duration::from_secs(2),
                input_sample_rate: 16_000,
                audio_chunk: Duration::from_millis(40),
                video_interval: Duration::from_secs(1),
                write_timeout: Duration::from_secs(5),
                keepalive: Some(Keepalive::default()),
                audio_backlog: Duration::from_secs(1),
                event_capacity: 1024,
                max_handle_bytes: 16 << 10,
                first_connect_budget: None,
                connection_age: Some(ConnectionAge::default()),
                thinking_level: None,
                proactive_audio: None,
                affective_dialog: false,
                generation: GenerationConfig::default(),
                thinking_budget: None,
                include_thoughts: None,
                proactive_video: None,
                language: None,
                transcription_languages: Vec::new(),
                detection: AutomaticActivityDetection::default(),
                activity_handling: None,
                turn_coverage: None,
                builtin_tools: BuiltinTools::default(),
                setup_hook: None,
            },
            policy: None,
            capabilities: None,
            initial_context: ctx_model::ChatContext::new(),
            jitter_seed: None,
            resume_from: None,
            #[cfg(feature = "store")]
            ownership: None,
        }
    }

    /// The system instruction (default: none).
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.config.instructions = Some(text.into());
        self
    }

    /// The functions the model may call (default: none).
    pub fn tools(mut self, tools: Vec<FunctionDeclaration>) -> Self {
        self.config.tools = tools;
        self
    }

    /// The response modality (default: audio).
    pub fn modality(mut self, modality: Modality) -> Self {
        self.config.modality = modality;
        self
    }

    /// A prebuilt voice (default: the model's).
    pub fn voice(mut self, name: impl Into<String>) -> Self {
        self.config.voice = Some(name.into());
        self
    }

    /// Input and output audio transcription (default: on; the session needs transcripts to
    /// keep spoken turns in the chat context).
    pub fn transcription(mut self, on: bool) -> Self {
        self.config.transcription = on;
        self
    }

    /// The server's automatic activity detection (default: on). Off, the server does not
    /// detect speech in the microphone's audio (`realtimeInputConfig.automaticActivityDetection
    /// .disabled` in `setup`): the application brackets each utterance with
    /// [`LiveSession::activity_start`](crate::LiveSession::activity_start) and
    /// [`LiveSession::activity_end`](crate::LiveSession::activity_end), and audio outside
    /// them is not a turn.
    pub fn automatic_activity_detection(mut self, on: bool) -> Self {
        self.config.automatic_activity_detection = on;
        self
    }

    /// How much silence ends the user's speech, for the server's automatic activity detection
    /// (`realtimeInputConfig.automaticActivityDetection.silenceDurationMs` in `setup`; default:
    /// the service's, which it does not document). Set, the session also knows where each
    /// spoken turn ended: on the chunk of audio that completed that silence after speech (the
    /// session judges speech by level, far below any detector's: see
    /// [`MessageKind::QuietAudio`](resume_policy::MessageKind::QuietAudio)), so a spoken turn
    /// and the messages sent around its end keep the server's order in `L` even when audio
    /// arrives in batches. Unset, the session can only place a spoken turn at the latest chunk
    /// it may have ended on.
    pub fn end_of_speech_silence(mut self, silence: Duration) -> Self {
        self.config.end_of_speech_silence = Some(silence);
        self
    }

    /// Server-side context window compression (default: off).
    pub fn compression(mut self, compression: ContextWindowCompression) -> Self {
        self.config.compression = Some(compression);
        self
    }

    /// Ask for transparent resumption (Vertex AI only; ignored with a warning elsewhere).
    /// Default: off.
    pub fn transparent_resumption(mut self, on: bool) -> Self {
        self.config.transparent = on;
        self
    }

    /// The resume policy (default: [`DefaultPolicy`]).
    pub fn policy(mut self, policy: Box<dyn ResumePolicy>) -> Self {
        self.policy = Some(Arc::from(policy));
        self
    }

    /// The resume policy, shared with other sessions or with the test that made it (as
    /// [`policy`](Self::policy)).
    pub fn shared_policy(mut self, policy: Arc<dyn ResumePolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The model's capability row (default: derived from the model name; a name no family
    /// matches is an [`Error::Config`]). The session plans with it and refuses, before
    /// dialing, a configuration it says the model rejects ([`Error::Unsupported`]); override a
    /// field when a model behaves otherwise than the row says.
    pub fn capabilities(mut self, capabilities: ModelCapabilities) -> Self {
        self.capabilities = Some(capabilities);
        self
    }

    /// Transport settings (timeouts, sizes).
    pub fn connect_config(mut self, config: ConnectConfig) -> Self {
        self.config.connect = config;
        self
    }

    /// The sample rate of the microphone audio the session sends, as `audio/pcm;rate=N`
    /// (default: 16,000, the rate the service takes natively; other rates are accepted and
    /// resampled by the service, docs/protocol.md section 8). [`LiveSession::push_audio`]
    /// takes PCM16 mono at this rate; [`LiveSession::push_samples`] converts any other format
    /// to it. Sending a source's own rate saves resampling on the client at the cost of the
    /// bandwidth (48 kHz is three times 16 kHz's bytes): the README's benchmark section gives
    /// the cost of each. Clamped to 8,000–384,000.
    ///
    /// [`LiveSession::push_audio`]: crate::LiveSession::push_audio
    /// [`LiveSession::push_samples`]: crate::LiveSession::push_samples
    pub fn input_sample_rate(mut self, rate: u32) -> Self {
        self.config.input_sample_rate = rate.clamp(8_000, 384_000);
        self
    }

    /// The longest audio frame the session sends (default: 40 ms, 1,280 bytes at 16 kHz);
    /// longer pushes are cut into frames of this length. Values under 1 ms are taken as 1 ms.
    pub fn audio_chunk(mut self, length: Duration) -> Self {
        self.config.audio_chunk = length.max(Duration::from_millis(1));
        self
    }

    /// The shortest time between two video frames the session sends (default: 1 s, the one
    /// frame a second the service documents for video). A frame pushed sooner is dropped
    /// (`push_video_frame` returns `false`), so a camera at any rate costs the connection one
    /// frame per interval, and what a stalled socket holds stays bounded.
    pub fn video_frame_interval(mut self, interval: Duration) -> Self {
        self.config.video_interval = interval;
        self
    }

    /// What to do with audio pushed while disconnected (default: buffer up to 2 s).
    pub fn audio_gap(mut self, policy: AudioGapPolicy) -> Self {
        self.config.audio_gap = policy;
        self
    }

    /// How long a write may wait for the socket before the connection is taken as lost (1006)
    /// and replaced; nothing is lost, the ledger replays what the server may not have
    /// (default: 5 s).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// The ping that proves the server still reads (default: [`Keepalive::default`]); `None`
    /// turns it off (no ping on a quiet connection, no verdict). The pings that confirm
    /// written audio ([`RECEIPT_INTERVAL`](crate::conduit::RECEIPT_INTERVAL)) go out either way.
    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.config.keepalive = keepalive;
        self
    }

    /// How much microphone audio may wait, while connected, for a socket that is slower than
    /// the microphone (default: 1 s). At the bound, [`LiveSession::push_audio`] drops the
    /// oldest (reported), [`LiveSession::try_push_audio`] returns [`Error::Full`], and
    /// [`LiveSession::push_audio_wait`] waits. While disconnected the bound is the
    /// [`audio_gap`](Self::audio_gap)'s.
    ///
    /// [`LiveSession::push_audio`]: crate::LiveSession::push_audio
    /// [`LiveSession::try_push_audio`]: crate::LiveSession::try_push_audio
    /// [`LiveSession::push_audio_wait`]: crate::LiveSession::push_audio_wait
    pub fn audio_backlog(mut self, max: Duration) -> Self {
        self.config.audio_backlog = max;
        self
    }

    /// How many events may wait for the application before model audio is dropped (reported
    /// by [`SessionEvent::ModelAudioDropped`](crate::SessionEvent::ModelAudioDropped)) and the
    /// session stops reading the server's frames until the application catches up (default:
    /// 1,024; at least 1).
    pub fn event_capacity(mut self, events: usize) -> Self {
        self.config.event_capacity = events.max(1);
        self
    }

    /// The longest resumption handle the session keeps (default: 16 KiB); a longer one is
    /// refused with [`SessionEvent::HandleTooLarge`](crate::SessionEvent::HandleTooLarge) and
    /// the session keeps the previous handle.
    pub fn max_handle_bytes(mut self, bytes: usize) -> Self {
        self.config.max_handle_bytes = bytes;
        self
    }

    /// How long before a `goAway` deadline the session rotates at the latest, even in the
    /// middle of a model turn (default: 2 s).
    pub fn go_away_margin(mut self, margin: Duration) -> Self {
        self.config.go_away_margin = margin;
        self
    }

    /// How long the first connect keeps trying before [`connect`](Self::connect) fails with
    /// the cause (default: the connect config's
    /// [`setup_timeout`](gemini_transport::ConnectConfig::setup_timeout), 10 s).
    ///
    /// Until a session has completed its first setup, a failure is more likely a wrong URL, key
    /// or server than an outage, so the first connect fails fast: at once on a cause that would
    /// repeat (TLS, authentication, quota, HTTP 4xx on the upgrade, a rejected `setup`), on the
    /// second attempt that fails the same way as the one before (a refused port, the same HTTP
    /// 5xx, the setup timeout), and when another attempt, as long as the last one, would end
    /// after this budget (measured from the first attempt). Reconnects of an established
    /// session follow the [`ResumePolicy`]'s backoff and attempt bound instead.
    pub fn first_connect_budget(mut self, budget: Duration) -> Self {
        self.config.first_connect_budget = Some(budget);
        self
    }

    /// When the session replaces a connection of its own accord (default:
    /// [`ConnectionAge::default`], from 45 minutes at an idle point, by 50 minutes in any
    /// case); `None` never does (a connection then lasts until the server ends it).
    pub fn connection_age(mut self, age: Option<ConnectionAge>) -> Self {
        self.config.connection_age = age;
        self
    }

    /// The model's thinking depth (`generationConfig.thinkingConfig.thinkingLevel`; default:
    /// none, the model's). Required by `gemini-3.8-live-extended-thinking`, refused by
    /// `gemini-3.8-live`: [`connect`](Self::connect) fails with [`Error::Unsupported`] on a
    /// model whose capability row refuses it, and without it on one that requires it.
    pub fn thinking_level(mut self, level: ThinkingLevel) -> Self {
        self.config.thinking_level = Some(level);
        self
    }

    /// Proactive audio (`proactivity.proactiveAudio`: the model may stay silent when the audio
    /// is not meant for it; default: not sent, the model's). Always on for 3.8, whose `setup`
    /// is closed for `false`: [`connect`](Self::connect) refuses `false` there.
    pub fn proactive_audio(mut self, on: bool) -> Self {
        self.config.proactive_audio = Some(on);
        self
    }

    /// Affective dialog (`generationConfig.enableAffectiveDialog: true`; default: off, the
    /// field left out). 3.8 on the Developer API closes such a `setup`:
    /// [`connect`](Self::connect) refuses it there.
    pub fn affective_dialog(mut self, on: bool) -> Self {
        self.config.affective_dialog = on;
        self
    }

    /// How eagerly the server's activity detection starts speech
    /// (`automaticActivityDetection.startOfSpeechSensitivity`; default: the service's).
    pub fn start_of_speech_sensitivity(mut self, sensitivity: StartSensitivity) -> Self {
        self.config.detection.start_of_speech_sensitivity = Some(sensitivity);
        self
    }

    /// How eagerly the server's activity detection ends speech
    /// (`automaticActivityDetection.endOfSpeechSensitivity`; default: the service's).
    pub fn end_of_speech_sensitivity(mut self, sensitivity: EndSensitivity) -> Self {
        self.config.detection.end_of_speech_sensitivity = Some(sensitivity);
        self
    }

    /// How much speech the server's activity detection needs before it starts a turn
    /// (`automaticActivityDetection.prefixPaddingMs`; default: the service's).
    pub fn prefix_padding(mut self, padding: Duration) -> Self {
        self.config.detection.prefix_padding_ms =
            Some(i32::try_from(padding.as_millis()).unwrap_or(i32::MAX));
        self
    }

    /// What the user's activity does to a model turn under way
    /// (`realtimeInputConfig.activityHandling`; default: the service's, barge-in).
    pub fn activity_handling(mut self, handling: ActivityHandling) -> Self {
        self.config.activity_handling = Some(handling);
        self
    }

    /// Which input makes up the user's turn (`realtimeInputConfig.turnCoverage`; default: the
    /// model's).
    pub fn turn_coverage(mut self, coverage: TurnCoverage) -> Self {
        self.config.turn_coverage = Some(coverage);
        self
    }

    /// Sampling temperature (`generationConfig.temperature`; default: the model's).
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.config.generation.temperature = Some(temperature);
        self
    }

    /// Nucleus sampling (`generationConfig.topP`; default: the model's).
    pub fn top_p(mut self, top_p: f32) -> Self {
        self.config.generation.top_p = Some(top_p);
        self
    }

    /// Top-k sampling (`generationConfig.topK`; default: the model's).
    pub fn top_k(mut self, top_k: i32) -> Self {
        self.config.generation.top_k = Some(top_k);
        self
    }

    /// The most tokens one answer may have (`generationConfig.maxOutputTokens`; default: the
    /// model's).
    pub fn max_output_tokens(mut self, tokens: i32) -> Self {
        self.config.generation.max_output_tokens = Some(tokens);
        self
    }

    /// The decoding seed (`generationConfig.seed`; default: none).
    pub fn seed(mut self, seed: i32) -> Self {
        self.config.generation.seed = Some(seed);
        self
    }

    /// Presence penalty (`generationConfig.presencePenalty`; default: none).
    pub fn presence_penalty(mut self, penalty: f32) -> Self {
        self.config.generation.presence_penalty = Some(penalty);
        self
    }

    /// Frequency penalty (`generationConfig.frequencyPenalty`; default: none).
    pub fn frequency_penalty(mut self, penalty: f32) -> Self {
        self.config.generation.frequency_penalty = Some(penalty);
        self
    }

    /// The resolution video and image input is read at (`generationConfig.mediaResolution`:
    /// tokens per frame; default: the model's).
    pub fn media_resolution(mut self, resolution: MediaResolution) -> Self {
        self.config.generation.media_resolution = Some(resolution);
        self
    }

    /// The language the model speaks (`speechConfig.languageCode`, BCP-47 such as `de-DE`;
    /// default: the model's choice).
    pub fn language(mut self, code: impl Into<String>) -> Self {
        self.config.language = Some(code.into());
        self
    }

    /// The languages the user is expected to speak, for the input transcription
    /// (`inputAudioTranscription.languageCodes`; default: none, the service detects).
    pub fn transcription_languages(mut self, codes: Vec<String>) -> Self {
        self.config.transcription_languages = codes;
        self
    }

    /// The thinking budget in tokens (`thinkingConfig.thinkingBudget`, 2.5; `0` turns thinking
    /// off; default: the model's). Refused by 3.8 as every `thinkingConfig` is.
    pub fn thinking_budget(mut self, tokens: i32) -> Self {
        self.config.thinking_budget = Some(tokens);
        self
    }

    /// Whether thought summaries are returned (`thinkingConfig.includeThoughts`; default: the
    /// model's). Refused by 3.8 as every `thinkingConfig` is.
    pub fn include_thoughts(mut self, on: bool) -> Self {
        self.config.include_thoughts = Some(on);
        self
    }

    /// Proactive video (`proactivity.proactiveVideo`; default: not sent).
    pub fn proactive_video(mut self, on: bool) -> Self {
        self.config.proactive_video = Some(on);
        self
    }

    /// Google Search grounding (`tools: [{googleSearch: {}}]`; default: off). Its sources come
    /// as [`SessionEvent::Grounding`](crate::SessionEvent::Grounding).
    pub fn google_search(mut self, on: bool) -> Self {
        self.config.builtin_tools.google_search = on;
        self
    }

    /// Code execution (`tools: [{codeExecution: {}}]`; default: off).
    pub fn code_execution(mut self, on: bool) -> Self {
        self.config.builtin_tools.code_execution = on;
        self
    }

    /// URL context (`tools: [{urlContext: {}}]`; default: off).
    pub fn url_context(mut self, on: bool) -> Self {
        self.config.builtin_tools.url_context = on;
        self
    }

    /// The escape hatch: `change` is applied to every `setup` the session sends, before the
    /// session sets what it manages (the model, resumption, history, instructions, tools,
    /// transcription, and every setting of this builder, which win). For fields of
    /// [`Setup`](crate::transport::wire::Setup) the builder has no method for
    /// (`safetySettings`, `explicitVadSignal`, …), and, through its `extra` map, fields this
    /// crate does not model at all. The capability checks do not see what it sets.
    pub fn configure_setup(mut self, change: impl Fn(&mut Setup) + Send + Sync + 'static) -> Self {
        self.config.setup_hook = Some(Arc::new(change));
        self
    }

    /// The seed of the reconnect backoff's jitter (default: drawn per session, so that
    /// clients do not retry in lock-step after an outage). Fixed seeds are for tests.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Earlier conversation to seed the first session with (default: empty).
    pub fn initial_context(mut self, context: ctx_model::ChatContext) -> Self {
        self.initial_context = context;
        self
    }

    /// Takes over a session another process saved (scenario S31; docs/design.md section 8):
    /// its newest handle, what the handle holds, the operations not yet delivered and its
    /// context. When the [`initial_context`](Self::initial_context) equals the saved context,
    /// the first connection resumes the saved server session without a seed and delivers what
    /// the handle lacks; otherwise it starts fresh from the initial context, seeded once, and a
    /// [`SessionEvent::Divergence`](crate::SessionEvent::Divergence) with
    /// [`StoredContextMismatch`](crate::DivergenceReason::StoredContextMismatch) names the saved
    /// items it does not hold. With a store (`store`, feature `store`),
    /// [`connect`](Self::connect) loads the saved state itself, and refuses `resume_from`
    /// beside it (`Error::Config`); this is for the sans-IO core
    /// ([`into_core`](Self::into_core)) and stores of the application's own.
    pub fn resume_from(mut self, saved: crate::conduit::Persisted) -> Self {
        self.resume_from = Some(saved);
        self
    }

    /// The policy and capabilities to use, resolving defaults.
    pub(crate) fn resolve(&mut self) -> Result<(Arc<dyn ResumePolicy>, ModelCapabilities), Error> {
        let policy = self
            .policy
            .take()
            .unwrap_or_else(|| Arc::new(DefaultPolicy::default()));
        let capabilities = match self.capabilities.take() {
            Some(caps) => caps,
            None => ModelCapabilities::for_model(&self.config.model).map_err(|e| {
                Error::Config(format!(
                    "{e}; pass the model's capability row with \
                     `.capabilities(ModelCapabilities::for_family(ModelFamily::…))`"
                ))
            })?,
        };
        if let Some(age) = self.config.connection_age {
            if age.rotate_after > age.max {
                return Err(Error::Config(format!(
                    "connection_age: rotate_after ({:?}) is later than max ({:?})",
                    age.rotate_after, age.max
                )));
            }
        }
        self.config.check_model_rules(&capabilities)?;
        Ok((policy, capabilities))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gemini_transport::wire::{Behavior, FunctionDeclaration, Modality, ThinkingLevel};
    use gemini_transport::{Endpoint, SecretString};
    use resume_policy::{Millis, ModelCapabilities};

    use super::{ConnectionAge, LiveSessionBuilder};
    use crate::Error;
    use crate::core::Command;

    const GEMINI_38: &str = "models/gemini-3.8-live";
    const EXTENDED: &str = "models/gemini-3.8-live-extended-thinking";

    fn builder(model: &str) -> LiveSessionBuilder {
        LiveSessionBuilder::new(Endpoint::api_key(SecretString::from("k")), model)
    }

    /// What `into_core` (and so `connect`, before any dial) says of `builder`: `Ok` or the
    /// refused setting.
    fn verdict(builder: LiveSessionBuilder) -> Result<(), String> {
        match builder.into_core(Millis(0), 1) {
            Ok(_) => Ok(()),
            Err(Error::Unsupported { setting, .. }) => Err(setting),
            Err(other) => Err(format!("not Unsupported: {other}")),
        }
    }

    fn blocking() -> FunctionDeclaration {
        FunctionDeclaration::new("book", "Books a table").with_behavior(Behavior::Blocking)
    }

    #[test]
    fn what_3_8_refuses_is_refused_before_any_dial() {
        assert_eq!(verdict(builder(GEMINI_38)), Ok(()));
        let text = verdict(builder(GEMINI_38).modality(Modality::Text));
        assert!(text.as_ref().is_err_and(|s| s.contains("TEXT")), "{text:?}");
        let thinking = verdict(builder(GEMINI_38).thinking_level(ThinkingLevel::Low));
        assert!(thinking.is_err_and(|s| s.contains("thinking")));
        let proactive = verdict(builder(GEMINI_38).proactive_audio(false));
        assert!(proactive.is_err_and(|s| s.contains("proactiveAudio")));
        assert_eq!(verdict(builder(GEMINI_38).proactive_audio(true)), Ok(()));
        let affective = verdict(builder(GEMINI_38).affective_dialog(true));
        assert!(affective.is_err_and(|s| s.contains("affective")));
        // Refused on the Developer API only.
        let vertex = "projects/p/locations/l/publishers/google/models/gemini-3.8-live";
        assert_eq!(verdict(builder(vertex).affective_dialog(true)), Ok(()));
        // 3.8 takes BLOCKING declarations; other families take all of the above.
        assert_eq!(verdict(builder(GEMINI_38).tools(vec![blocking()])), Ok(()));
        let older = builder("models/gemini-2.5-flash-native-audio-preview-12-2025")
            .modality(Modality::Text)
            .thinking_level(ThinkingLevel::Low)
            .proactive_audio(false)
            .affective_dialog(true);
        assert_eq!(verdict(older), Ok(()));
    }

    #[test]
    fn text_on_3_8_is_allowed_by_overriding_the_capability_row() {
        let mut caps = ModelCapabilities::for_model(GEMINI_38).unwrap();
        caps.text_responses = true;
        let allowed = builder(GEMINI_38)
            .modality(Modality::Text)
            .capabilities(caps);
        assert_eq!(verdict(allowed), Ok(()));
        let refused = builder(GEMINI_38)
            .modality(Modality::Text)
            .into_core(Millis(0), 1);
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(".capabilities("), "{message}");
    }

    #[test]
    fn extended_thinking_needs_a_thinking_level_and_asynchronous_tools() {
        let missing = verdict(builder(EXTENDED));
        assert!(missing.is_err_and(|s| s.contains("without a thinking level")));
        let with_level = builder(EXTENDED).thinking_level(ThinkingLevel::High);
        assert_eq!(verdict(with_level), Ok(()));
        let blocking_tool = builder(EXTENDED)
            .thinking_level(ThinkingLevel::High)
            .tools(vec![blocking()]);
        assert!(
            verdict(blocking_tool).is_err_and(|s| s.contains("BLOCKING") && s.contains("book"))
        );
        // The same rule holds for a tool set changed during the session.
        let mut core = builder(EXTENDED)
            .thinking_level(ThinkingLevel::High)
            .tools(vec![FunctionDeclaration::new("book", "Books a table")])
            .into_core(Millis(0), 1)
            .unwrap();
        let changed = core.command(Millis(1), Command::UpdateTools(vec![blocking()]));
        assert!(
            matches!(changed, Err(Error::Unsupported { .. })),
            "{changed:?}"
        );
        let non_blocking =
            FunctionDeclaration::new("book", "Books a table").with_behavior(Behavior::NonBlocking);
        assert!(
            core.command(Millis(2), Command::UpdateTools(vec![non_blocking]))
                .is_ok()
        );
    }

    #[test]
    fn an_unknown_model_says_how_to_pass_its_capabilities() {
        let error = builder("models/gemini-9-live")
            .into_core(Millis(0), 1)
            .err();
        let message = error.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(matches!(error, Some(Error::Config(_))), "{error:?}");
        assert!(message.contains("gemini-9-live"), "{message}");
        assert!(
            message.contains(".capabilities(ModelCapabilities::for_family("),
            "{message}"
        );
    }

    #[test]
    fn the_new_setup_fields_are_on_the_wire() {
        let b = builder("models/gemini-3.1-flash-live-preview")
            .thinking_level(ThinkingLevel::Medium)
            .proactive_audio(true)
            .affective_dialog(true);
        let setup = serde_json::to_value(b.config.setup(None, &[], None, false, false)).unwrap();
        let generation = &setup["generationConfig"];
        assert_eq!(generation["thinkingConfig"]["thinkingLevel"], "MEDIUM");
        assert_eq!(generation["enableAffectiveDialog"], true);
        assert_eq!(setup["proactivity"]["proactiveAudio"], true);
        let plain =
            serde_json::to_value(
                builder(GEMINI_38)
                    .config
                    .setup(None, &[], None, false, false),
            )
            .unwrap();
        assert!(plain["generationConfig"].get("thinkingConfig").is_none());
        assert!(
            plain["generationConfig"]
                .get("enableAffectiveDialog")
                .is_none()
        );
        assert!(plain.get("proactivity").is_none());
    }

    #[test]
    fn the_whole_setup_surface_is_on_the_wire() {
        use gemini_transport::wire::{
            ActivityHandling, EndSensitivity, MediaResolution, SafetySetting, StartSensitivity,
            TurnCoverage,
        };
        let b = builder("models/gemini-2.5-flash-native-audio-preview-12-2025")
            .temperature(0.5)
            .top_p(0.9)
            .top_k(40)
            .max_output_tokens(512)
            .seed(7)
            .presence_penalty(0.25)
            .frequency_penalty(0.75)
            .media_resolution(MediaResolution::Low)
            .voice("Puck")
            .language("de-DE")
            .transcription_languages(vec!["de-DE".to_owned()])
            .thinking_budget(0)
            .include_thoughts(false)
            .proactive_audio(true)
            .proactive_video(true)
            .start_of_speech_sensitivity(StartSensitivity::Low)
            .end_of_speech_sensitivity(EndSensitivity::High)
            .prefix_padding(Duration::from_millis(120))
            .end_of_speech_silence(Duration::from_millis(600))
            .activity_handling(ActivityHandling::NoInterruption)
            .turn_coverage(TurnCoverage::TurnIncludesAllInput)
            .google_search(true)
            .code_execution(true)
            .url_context(true)
            .configure_setup(|setup| {
                setup.safety_settings.push(SafetySetting {
                    category: "HARM_CATEGORY_HARASSMENT".to_owned(),
                    threshold: "BLOCK_ONLY_HIGH".to_owned(),
                });
                setup
                    .extra
                    .insert("futureField".to_owned(), serde_json::json!({"on": true}));
                // The session's own settings win over the hook's.
                setup.model = "models/other".to_owned();
            });
        let tools = vec![FunctionDeclaration::new("book", "Books a table")];
        let setup = serde_json::to_value(b.config.setup(None, &tools, None, false, false)).unwrap();
        let expected = serde_json::json!({
            "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "speechConfig": {
                    "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}},
                    "languageCode": "de-DE"
                },
                "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": false},
                "temperature": 0.5, "topP": 0.8999999761581421, "topK": 40,
                "maxOutputTokens": 512, "seed": 7,
                "presencePenalty": 0.25, "frequencyPenalty": 0.75,
                "mediaResolution": "MEDIA_RESOLUTION_LOW"
            },
            "tools": [
                {"functionDeclarations": [{"name": "book", "description": "Books a table"}]},
                {"googleSearch": {}}, {"codeExecution": {}}, {"urlContext": {}}
            ],
            "realtimeInputConfig": {
                "automaticActivityDetection": {
                    "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
                    "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH",
                    "prefixPaddingMs": 120,
                    "silenceDurationMs": 600
                },
                "activityHandling": "NO_INTERRUPTION",
                "turnCoverage": "TURN_INCLUDES_ALL_INPUT"
            },
            "sessionResumption": {},
            "inputAudioTranscription": {"languageCodes": ["de-DE"]},
            "outputAudioTranscription": {},
            "proactivity": {"proactiveAudio": true, "proactiveVideo": true},
            "safetySettings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
            ],
            "futureField": {"on": true}
        });
        assert_eq!(setup, expected);
        // Detection off: `disabled` and none of its settings, barge-in and coverage kept.
        let manual = builder("models/gemini-2.5-flash-native-audio-preview-12-2025")
            .automatic_activity_detection(false)
            .prefix_padding(Duration::from_millis(120))
            .activity_handling(ActivityHandling::NoInterruption);
        let setup =
            serde_json::to_value(manual.config.setup(None, &[], None, false, false)).unwrap();
        assert_eq!(
            setup["realtimeInputConfig"],
            serde_json::json!({
                "automaticActivityDetection": {"disabled": true},
                "activityHandling": "NO_INTERRUPTION"
            })
        );
    }

    #[test]
    fn every_thinking_setting_is_refused_where_thinking_config_is() {
        let budget = verdict(builder(GEMINI_38).thinking_budget(0));
        assert!(budget.is_err_and(|s| s.contains("thinkingConfig")));
        let thoughts = verdict(builder(GEMINI_38).include_thoughts(true));
        assert!(thoughts.is_err_and(|s| s.contains("thinkingConfig")));
        // The rest of the new surface is accepted by 3.8.
        let rest = builder(GEMINI_38)
            .temperature(0.2)
            .language("en-US")
            .google_search(true)
            .media_resolution(gemini_transport::wire::MediaResolution::Medium)
            .proactive_video(true);
        assert_eq!(verdict(rest), Ok(()));
    }

    #[test]
    fn a_connection_age_must_rotate_before_its_maximum() {
        let backwards = ConnectionAge::new(Duration::from_secs(60), Duration::from_secs(30));
        let error = builder(GEMINI_38)
            .connection_age(Some(backwards))
            .into_core(Millis(0), 1)
            .err();
        assert!(matches!(error, Some(Error::Config(_))), "{error:?}");
    }

    #[test]
    fn automatic_activity_detection_off_disables_it_in_setup() {
        let endpoint = Endpoint::api_key(SecretString::from("k"));
        let on = LiveSessionBuilder::new(endpoint.clone(), "models/m");
        let setup = on.config.setup(None, &[], None, false, false);
        assert_eq!(setup.realtime_input_config, None);
        let off = LiveSessionBuilder::new(endpoint, "models/m").automatic_activity_detection(false);
        let setup = off.config.setup(None, &[], None, false, false);
        let detection = setup
            .realtime_input_config
            .and_then(|r| r.automatic_activity_detection)
            .and_then(|d| d.disabled);
        assert_eq!(detection, Some(true));
    }
}
