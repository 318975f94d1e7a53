//! Server configuration with documented defaults.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Family;

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
/// | family | [`Family::Gemini25`] |
/// | vertex | `false` (Developer API paths and model names) |
/// | API key | none: any or no key is accepted |
/// | connection lifetime | none (connections last until closed) |
/// | goAway lead | 50 s before the end of the lifetime |
/// | lifetime end | [`LifetimeEnd::PolicyViolation`] (1008) |
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
    pub(crate) vertex: bool,
    pub(crate) api_key: Option<String>,
    pub(crate) lifetime: Option<Duration>,
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
            vertex: false,
            api_key: None,
            lifetime: None,
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

    /// Model family whose rules the server enforces.
    pub fn with_family(mut self, family: Family) -> Self {
        self.family = family;
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

    /// Each connection ends this long after its upgrade (`None`: never).
    pub fn with_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.lifetime = lifetime;
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

    /// Accept this bare model id as well as the family's own ids.
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

    /// The configured family.
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
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

    pub(crate) fn accepts_model(&self, bare_id: &str) -> bool {
        self.family.model_ids(self.vertex).contains(&bare_id)
            || self.extra_models.iter().any(|m| m == bare_id)
    }
}
