//! Server configuration with documented defaults.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Family;
use crate::family::{Capabilities, SetupRule};

/// The close code the server uses when a connection reaches the end of its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LifetimeEnd {
    /// 1000 with an empty reason.
    Normal,
    /// 1008 with an empty reason (observed ~`timeLeft` after `goAway`). The default.
    #[default]
    PolicyViolation,
    /// 1011 `Deadline expired before operation could complete.`
    DeadlineExpired,
}

impl LifetimeEnd {
    /// The close code and reason sent.
    #[must_use]
    pub fn close(self) -> (u16, &'static str) {
        match self {
            LifetimeEnd::Normal => (1000, ""),
            LifetimeEnd::PolicyViolation => (1008, ""),
            LifetimeEnd::DeadlineExpired => {
                (1011, "Deadline expired before operation could complete.")
            }
        }
    }
}

/// How `lastConsumedClientMessageIndex` counts client messages (transparent mode).
///
/// Numbering is always per connection and restarts on every new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IndexConvention {
    /// The `setup` frame is index 0, the first message after it is 1 (the default; the convention
    /// of the one public replay implementation).
    #[default]
    SetupIsZero,
    /// The `setup` frame is not counted: the first message after it is 0. Before any such message
    /// the field is omitted.
    FirstMessageIsZero,
}

impl IndexConvention {
    /// Maps the internal index (setup = 0) to the index reported on the wire.
    pub(crate) fn report(self, internal: u64) -> Option<u64> {
        match self {
            IndexConvention::SetupIsZero => Some(internal),
            IndexConvention::FirstMessageIsZero => internal.checked_sub(1),
        }
    }
}

/// The WebSocket frame type the server puts its JSON in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FrameKind {
    /// Binary frames, as Google's server sends them (the default).
    #[default]
    Binary,
    /// Text frames.
    Text,
}

/// Configuration of a [`FakeServer`](crate::FakeServer). Build it with [`FakeConfig::new`] (or
/// `default()`) and the `with_*` setters.
///
/// | setting | default |
/// |---|---|
/// | listen address | `127.0.0.1:0` (a free port) |
/// | default family | [`Family::Gemini25`]: the model [`FakeConfig::setup_model`] names (every family is served; the `setup`'s model id chooses) |
/// | 3.1 | strict: `clientContent` only as initial history ([`FakeConfig::with_lenient_3_1`]) |
/// | `TEXT` responses on 3.8 | refused with 1007, as on the service ([`FakeConfig::with_text_on_3_8`], a test switch) |
/// | vertex | `false` (Developer API paths and model names) |
/// | API key | none: any or no key is accepted |
/// | TLS | off: `ws://` ([`FakeConfig::with_tls`]) |
/// | connection lifetime | the family's ([`Family::default_lifetime`]: 10 min on 2.5 and 3.1, none on 3.8) |
/// | goAway lead | 50 s before the end of the lifetime |
/// | lifetime end | [`LifetimeEnd::PolicyViolation`] (1008) |
/// | hard close | the family's ([`Family::default_hard_close`]: 58:00 on 3.8, 1011) |
/// | one socket per session | a resume while another connection of the session is open is closed with 1011 ([`FakeConfig::with_concurrent_connections`]) |
/// | fillers (extended thinking) | every 3 s while a call is pending, at most 3 per wait |
/// | context window | 128,000 tokens; without compression 15 min of audio, 2 min with video ([`FakeConfig::with_context_limits`]) |
/// | handle expiry | 2 h after issuance or after the session's last connection ended, whichever is later |
/// | handle lag | 0 messages |
/// | index convention | [`IndexConvention::SetupIsZero`] |
/// | transparent on the Developer API | refused (1007) |
/// | frames | [`FrameKind::Binary`] |
/// | chunk interval | 5 ms between the chunks of a generated answer |
/// | VAD silence | 500 ms of silence ends a spoken turn (unless the setup says otherwise) |
/// | VAD energy threshold | RMS 500 (16-bit samples) |
/// | audio load mode | off (see [`FakeConfig::with_audio_load`]) |
#[derive(Debug, Clone)]
#[must_use]
pub struct FakeConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) family: Family,
    pub(crate) lenient_3_1: bool,
    pub(crate) text_on_3_8: bool,
    pub(crate) vertex: bool,
    pub(crate) api_key: Option<String>,
    pub(crate) tls: Option<crate::TlsIdentity>,
    /// `None`: the family's default.
    pub(crate) lifetime: Option<Option<Duration>>,
    /// `None`: the family's default.
    pub(crate) hard_close: Option<Option<Duration>>,
    pub(crate) concurrent_connections: bool,
    pub(crate) filler_interval: Duration,
    pub(crate) max_fillers: u32,
    pub(crate) limits: ContextLimits,
    pub(crate) go_away_lead: Duration,
    pub(crate) lifetime_end: LifetimeEnd,
    pub(crate) handle_expiry: Duration,
    pub(crate) handle_lag: u64,
    pub(crate) index_convention: IndexConvention,
    pub(crate) transparent_on_developer_api: bool,
    pub(crate) frame_kind: FrameKind,
    pub(crate) chunk_interval: Duration,
    pub(crate) vad_silence: Duration,
    pub(crate) vad_threshold: f64,
    pub(crate) extra_models: Vec<String>,
    pub(crate) audio_load: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            family: Family::Gemini25,
            lenient_3_1: false,
            text_on_3_8: false,
            vertex: false,
            api_key: None,
            tls: None,
            lifetime: None,
            hard_close: None,
            concurrent_connections: false,
            filler_interval: Duration::from_secs(3),
            max_fillers: 3,
            limits: ContextLimits::default(),
            go_away_lead: Duration::from_secs(50),
            lifetime_end: LifetimeEnd::PolicyViolation,
            handle_expiry: Duration::from_secs(2 * 60 * 60),
            handle_lag: 0,
            index_convention: IndexConvention::SetupIsZero,
            transparent_on_developer_api: false,
            frame_kind: FrameKind::Binary,
            chunk_interval: Duration::from_millis(5),
            vad_silence: Duration::from_millis(500),
            vad_threshold: 500.0,
            extra_models: Vec::new(),
            audio_load: false,
        }
    }
}

impl FakeConfig {
    /// The defaults listed on the type.
    pub fn new() -> Self {
        Self::default()
    }

    /// Address to bind (default `127.0.0.1:0`).
    pub fn with_listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The default family: the model [`FakeConfig::setup_model`] names. Every family is
    /// served whatever this says: the model id in each `setup` chooses the family whose rules
    /// that connection follows ([`Family::from_model_id`]).
    pub fn with_family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// Accept `clientContent` for the whole session on 3.1 (the later documentation's reading,
    /// docs/protocol.md section 7.8); off by default: 3.1 takes it only as initial history.
    pub fn with_lenient_3_1(mut self, lenient: bool) -> Self {
        self.lenient_3_1 = lenient;
        self
    }

    /// A test switch: accept `TEXT` as the response modality on 3.8, which the service refuses
    /// with 1007 (docs/protocol.md section 10.1). Off by default and never on in the binary
    /// unless `--text-on-3.8` is given; for tests whose client still asks for text.
    pub fn with_text_on_3_8(mut self, allow: bool) -> Self {
        self.text_on_3_8 = allow;
        self
    }

    /// Serve `wss://` with this certificate and key ([`TlsIdentity::self_signed`](crate::TlsIdentity::self_signed)
    /// makes one for 127.0.0.1 and localhost).
    pub fn with_tls(mut self, identity: crate::TlsIdentity) -> Self {
        self.tls = Some(identity);
        self
    }

    /// Allow a resume while another connection of the same session is still open (the older
    /// one stays open; [`SessionSnapshot::overlaps`](crate::SessionSnapshot::overlaps) counts
    /// it). Off by default: such a resume is closed with 1011, as the service was reported to
    /// do (docs/protocol.md section 10.1); once that connection has closed, the handle resumes.
    pub fn with_concurrent_connections(mut self, allow: bool) -> Self {
        self.concurrent_connections = allow;
        self
    }

    /// The connection age at which the server closes with 1011 `Deadline expired …` and no
    /// `goAway` (`None`: never), for every family; by default the family's
    /// ([`Family::default_hard_close`]). [`Faults::hard_close_at`](crate::Faults::hard_close_at)
    /// changes it while serving.
    pub fn with_hard_close(mut self, age: Option<Duration>) -> Self {
        self.hard_close = Some(age);
        self
    }

    /// Extended thinking: while a call is pending and the model is idle, a filler turn every
    /// `interval`, at most `max` per wait (defaults 3 s and 3).
    pub fn with_fillers(mut self, interval: Duration, max: u32) -> Self {
        self.filler_interval = interval;
        self.max_fillers = max;
        self
    }

    /// The context window and the session limits without compression (see [`ContextLimits`]).
    pub fn with_context_limits(mut self, limits: ContextLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serve the Vertex AI surface (Vertex path, Vertex model names, transparent resumption).
    pub fn with_vertex(mut self, vertex: bool) -> Self {
        self.vertex = vertex;
        self
    }

    /// Require this API key (Developer API) or bearer token (Vertex) on every upgrade.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Each connection ends this long after its upgrade (`None`: never), with a `goAway` the
    /// [lead](FakeConfig::with_go_away_lead) before it, for every family. By default the
    /// family's ([`Family::default_lifetime`]: about ten minutes on 2.5 and 3.1, as on the
    /// service); a test that relies on connections lasting says `with_lifetime(None)`.
    pub fn with_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// `goAway` is sent this long before the end of the lifetime, with this `timeLeft`.
    pub fn with_go_away_lead(mut self, lead: Duration) -> Self {
        self.go_away_lead = lead;
        self
    }

    /// The close that ends a connection at the end of its lifetime.
    pub fn with_lifetime_end(mut self, end: LifetimeEnd) -> Self {
        self.lifetime_end = end;
        self
    }

    /// How long handles stay valid (see the type's table).
    pub fn with_handle_expiry(mut self, expiry: Duration) -> Self {
        self.handle_expiry = expiry;
        self
    }

    /// How many client messages a handle may lag behind the messages already received.
    pub fn with_handle_lag(mut self, messages: u64) -> Self {
        self.handle_lag = messages;
        self
    }

    /// Numbering of `lastConsumedClientMessageIndex`.
    pub fn with_index_convention(mut self, convention: IndexConvention) -> Self {
        self.index_convention = convention;
        self
    }

    /// Accept `sessionResumption.transparent` on the Developer API too (the real service refuses
    /// it; this switch exists because the point is undocumented).
    pub fn with_transparent_on_developer_api(mut self, allow: bool) -> Self {
        self.transparent_on_developer_api = allow;
        self
    }

    /// Frame type of server messages.
    pub fn with_frame_kind(mut self, kind: FrameKind) -> Self {
        self.frame_kind = kind;
        self
    }

    /// Time between two chunks of a generated answer (and before the first one).
    pub fn with_chunk_interval(mut self, interval: Duration) -> Self {
        self.chunk_interval = interval;
        self
    }

    /// Silence that ends a spoken turn under automatic activity detection, unless the setup's
    /// `silenceDurationMs` says otherwise.
    pub fn with_vad_silence(mut self, silence: Duration) -> Self {
        self.vad_silence = silence;
        self
    }

    /// RMS energy (of 16-bit samples) above which an audio chunk counts as speech.
    pub fn with_vad_threshold(mut self, rms: f64) -> Self {
        self.vad_threshold = rms;
        self
    }

    /// Accept this bare model id as well, as a model of the default family.
    pub fn with_extra_model(mut self, id: impl Into<String>) -> Self {
        self.extra_models.push(id.into());
        self
    }

    /// Load mode, for benchmarks that need model audio flowing back at real time from many
    /// sessions (off by default; nothing else changes while it is off).
    ///
    /// When on, every connection, once its `setupComplete` is out:
    /// - takes a client frame in `gemini-transport`'s canonical audio encoding (it begins
    ///   `{"realtimeInput":{"audio":`) without decoding it: it is not recorded in
    ///   [`ConnectionRecord::frames`](crate::ConnectionRecord), not counted as a client message
    ///   (no resumption update, no `lastConsumedClientMessageIndex` step, no
    ///   [`Trigger::ClientMessages`](crate::Trigger)), and never reaches the VAD, so it makes no
    ///   turn. Other frames are served as usual.
    /// - streams model audio while such frames arrive: from 40 ms after the first one, one
    ///   `serverContent.modelTurn` frame with 40 ms of 24 kHz PCM16 every 40 ms (25 a second,
    ///   real time), the same frame each time, encoded once per server. A tick that finds the
    ///   server more than 40 ms late is skipped, not made up. The stream stops 100 ms after the
    ///   last client audio frame and starts again with the next. It sends no `turnComplete` and
    ///   does not change the session's context.
    ///
    /// [`FakeServer::load_counts`](crate::FakeServer::load_counts) counts the chunks taken in and
    /// sent out. Stall and delay faults still hold the frames back.
    pub fn with_audio_load(mut self, on: bool) -> Self {
        self.audio_load = on;
        self
    }

    /// Whether load mode is on ([`FakeConfig::with_audio_load`]).
    #[must_use]
    pub fn audio_load(&self) -> bool {
        self.audio_load
    }

    /// The default family ([`FakeConfig::with_family`]).
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
    }

    /// The connection lifetime of a family's connections (`None`: no lifetime).
    #[must_use]
    pub fn lifetime_of(&self, family: Family) -> Option<Duration> {
        self.lifetime.unwrap_or_else(|| family.default_lifetime())
    }

    /// The hard-close age of a family's connections, unless a fault changed it.
    #[must_use]
    pub fn hard_close_of(&self, family: Family) -> Option<Duration> {
        self.hard_close
            .unwrap_or_else(|| family.default_hard_close())
    }

    /// The capabilities a connection of `family` follows: the family's row, with 3.1's
    /// `clientContent` allowed all session under [`FakeConfig::with_lenient_3_1`] and `TEXT`
    /// allowed on 3.8 under [`FakeConfig::with_text_on_3_8`].
    #[must_use]
    pub fn capabilities_of(&self, family: Family) -> Capabilities {
        let mut caps = family.capabilities();
        if self.lenient_3_1 && family == Family::Gemini31 {
            caps.client_content_mid_session = true;
        }
        if self.text_on_3_8 && family.is_3_8() {
            caps.text_responses = SetupRule::Accepted;
        }
        caps
    }

    /// Whether the Vertex surface is served.
    #[must_use]
    pub fn vertex(&self) -> bool {
        self.vertex
    }

    /// The `setup.model` value a client should send to this server.
    #[must_use]
    pub fn setup_model(&self) -> String {
        self.family.setup_model(self.vertex)
    }

    /// The family of a bare model id on the served surface (`None`: unknown, 1008).
    pub(crate) fn family_of(&self, bare_id: &str) -> Option<Family> {
        Family::from_model_id(bare_id, self.vertex).or_else(|| {
            self.extra_models
                .iter()
                .any(|m| m == bare_id)
                .then_some(self.family)
        })
    }
}

/// The context window and how long a session may run without `contextWindowCompression`
/// (docs/protocol.md section 7.1). Token counts are the fake's (`SessionSnapshot::context_tokens`):
/// a word of text is a token, a second of audio 25 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextLimits {
    /// The model's context window in tokens (128,000). With compression the default trigger is
    /// 80 % of it and the default target half the trigger.
    pub window_tokens: u64,
    /// Client audio a session without compression may send (15 minutes).
    pub audio_only: Duration,
    /// The same once video has been sent (2 minutes).
    pub audio_with_video: Duration,
}

impl Default for ContextLimits {
    fn default() -> Self {
        ContextLimits {
            window_tokens: 128_000,
            audio_only: Duration::from_secs(15 * 60),
            audio_with_video: Duration::from_secs(2 * 60),
        }
    }
}

impl ContextLimits {
    /// These limits (for tests that reach them quickly).
    #[must_use]
    pub fn new(window_tokens: u64, audio_only: Duration, audio_with_video: Duration) -> Self {
        ContextLimits {
            window_tokens,
            audio_only,
            audio_with_video,
        }
    }
}
