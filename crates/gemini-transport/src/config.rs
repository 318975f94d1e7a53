//! Connection settings with documented defaults.

use std::{fmt, sync::Arc, time::Duration};

/// How to open and run one WebSocket connection.
///
/// ```
/// use std::time::Duration;
/// use gemini_transport::ConnectConfig;
///
/// let config = ConnectConfig::default()
///     .with_connect_timeout(Duration::from_secs(5))
///     .with_max_message_size(4 << 20);
/// assert_eq!(config.setup_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectConfig {
    /// Limit for TCP connect, TLS and the WebSocket upgrade together. Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for waiting for `setupComplete` after sending `setup`. Default 10 s;
    /// `Duration::MAX` waits without a timer (for a caller that bounds the dial itself).
    pub setup_timeout: Duration,
    /// How long [`Connection::close`](crate::Connection::close) waits for the server's close
    /// frame before giving up. Default 1 s.
    pub close_timeout: Duration,
    /// Largest incoming message (all frames of it) accepted. Default 16 MiB.
    pub max_message_size: usize,
    /// Largest single incoming frame accepted. Default 16 MiB.
    pub max_frame_size: usize,
    /// Read buffer. Default 16 KiB (a 40 ms audio frame is about 2.6 KiB). A connection holds
    /// one only while bytes of a frame are pending: between frames it goes back to a small
    /// per-thread pool, so idle sessions hold none. A frame larger than this grows the buffer
    /// for as long as the frame needs it.
    pub read_buffer_size: usize,
    /// Queued outgoing bytes before a write reaches the socket when messages are fed without a
    /// flush ([`ConnectionSender::feed`](crate::ConnectionSender::feed)). Default 64 KiB.
    pub write_buffer_size: usize,
    /// Most outgoing bytes held while the socket does not accept them; past this a send fails.
    /// Default 64 MiB.
    pub max_write_buffer_size: usize,
    /// Set `TCP_NODELAY` on the socket. Default `true` (without it the last small frame of a
    /// burst can wait ~40 ms for a delayed acknowledgement).
    pub tcp_nodelay: bool,
    /// TLS configuration for `wss://`. Default `None`: webpki roots with the `ring` provider
    /// (see [`default_client_config`](crate::default_client_config)).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How the dial reaches the server: the proxy the environment names (`HTTPS_PROXY`, …;
    /// loopback hosts and `NO_PROXY` are dialed directly), none, or a given one. Default
    /// [`ProxyConfig::FromEnv`](crate::ProxyConfig::FromEnv).
    pub proxy: crate::ProxyConfig,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(1),
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            read_buffer_size: 16 << 10,
            write_buffer_size: 64 << 10,
            max_write_buffer_size: 64 << 20,
            tcp_nodelay: true,
            tls: None,
            proxy: crate::ProxyConfig::FromEnv,
        }
    }
}

impl ConnectConfig {
    /// Sets [`proxy`](Self::proxy).
    #[must_use]
    pub fn with_proxy(mut self, proxy: crate::ProxyConfig) -> Self {
        self.proxy = proxy;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`setup_timeout`](Self::setup_timeout).
    #[must_use]
    pub fn with_setup_timeout(mut self, timeout: Duration) -> Self {
        self.setup_timeout = timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size).
    #[must_use]
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`read_buffer_size`](Self::read_buffer_size).
    #[must_use]
    pub fn with_read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// Sets [`write_buffer_size`](Self::write_buffer_size).
    #[must_use]
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Sets [`max_write_buffer_size`](Self::max_write_buffer_size).
    #[must_use]
    pub fn with_max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.max_write_buffer_size = bytes;
        self
    }

    /// Sets [`tcp_nodelay`](Self::tcp_nodelay).
    #[must_use]
    pub fn with_tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.tcp_nodelay = nodelay;
        self
    }

    /// Sets [`tls`](Self::tls).
    #[must_use]
    pub fn with_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }
}

impl fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("setup_timeout", &self.setup_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_frame_size", &self.max_frame_size)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("max_write_buffer_size", &self.max_write_buffer_size)
            .field("tcp_nodelay", &self.tcp_nodelay)
            .field("tls", &self.tls.as_ref().map(|_| "custom"))
            .finish()
    }
}
