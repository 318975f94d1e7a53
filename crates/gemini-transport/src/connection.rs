//! One WebSocket connection to a Gemini Live endpoint.
//!
//! [`Connection`] sends [`ClientMessage`]s as text frames and yields [`ServerMessage`]s decoded
//! from text or binary frames. Pings are answered while reading (keep a receiver reading). A close
//! from either side, or a transport that ends without a close frame (1006), surfaces once as
//! [`Error::Closed`] carrying a classified [`CloseInfo`]; every later call returns the same value.
//!
//! The session layer runs a reader and a writer separately: [`Connection::split`] gives a
//! [`ConnectionSender`] and a [`ConnectionReceiver`] that share the socket and the close state.

use std::{
    fmt,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{
    FutureExt, SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio_tungstenite::tungstenite::{
    self, Message, Utf8Bytes,
    error::{CapacityError, ProtocolError},
    protocol::{CloseFrame, frame::coding::CloseCode},
};

use crate::{
    close::{self, CloseClass, CloseInfo, CloseInitiator},
    config::ConnectConfig,
    dial::{self, WsStream},
    endpoint::Endpoint,
    error::Error,
    wire::{ClientMessage, ServerMessage, ServerPayload},
};

/// State both halves see: how the connection ended, and the facts that classify the end.
#[derive(Debug)]
struct Shared {
    authority: String,
    closed: OnceLock<CloseInfo>,
    go_away_seen: AtomicBool,
    client_closing: AtomicBool,
    /// Pong frames received (a keepalive's proof that the peer reads).
    pongs: AtomicU64,
}

impl Shared {
    fn after_go_away(&self) -> bool {
        self.go_away_seen.load(Ordering::Acquire)
    }

    /// Records the end of the connection (the first record wins) and returns the recorded value.
    fn record(&self, info: CloseInfo) -> CloseInfo {
        let recorded = self.closed.get_or_init(|| info).clone();
        tracing::debug!(
            authority = %self.authority,
            code = recorded.code,
            reason = %recorded.reason,
            class = %recorded.class,
            "connection closed"
        );
        recorded
    }

    fn closed_error(&self) -> Option<Error> {
        self.closed.get().cloned().map(Error::Closed)
    }

    /// The close of a socket found gone: the recorded close, else 1006 (or a normal close when
    /// this side was closing).
    fn gone_info(&self, description: &str) -> CloseInfo {
        if let Some(info) = self.closed.get() {
            return info.clone();
        }
        let info = if self.client_closing.load(Ordering::Acquire) {
            CloseInfo::from_client(close::NORMAL, "", self.after_go_away())
        } else {
            CloseInfo::abnormal(description, self.after_go_away())
        };
        self.record(info)
    }

    fn gone(&self, description: &str) -> Error {
        Error::Closed(self.gone_info(description))
    }
}

/// An open WebSocket connection to a Gemini Live endpoint.
///
/// ```no_run
/// # async fn demo() -> Result<(), gemini_transport::Error> {
/// use gemini_transport::{ConnectConfig, Connection, Endpoint, wire::{ClientMessage, Setup}};
/// use secrecy::SecretString;
///
/// let endpoint = Endpoint::api_key(SecretString::from(std::env::var("GEMINI_API_KEY").unwrap_or_default()));
/// let mut connection = Connection::connect(&endpoint, &ConnectConfig::default()).await?;
/// connection.setup(&ClientMessage::Setup(Box::new(Setup::new("models/gemini-3.8-live")))).await?;
/// let next = connection.recv().await?;
/// # let _ = next; Ok(()) }
/// ```
pub struct Connection {
    sender: ConnectionSender,
    receiver: ConnectionReceiver,
    setup_timeout: Duration,
    close_timeout: Duration,
}

impl Connection {
    /// Dials `endpoint` (TCP with `TCP_NODELAY`, TLS for `wss://`, WebSocket upgrade carrying the
    /// credential headers) within `config.connect_timeout`.
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`], [`Error::Connect`], [`Error::Tls`], [`Error::Handshake`] or
    /// [`Error::ConnectTimeout`]; none of them holds the credential.
    pub async fn connect(endpoint: &Endpoint, config: &ConnectConfig) -> Result<Self, Error> {
        let stream = dial::dial(endpoint, config).await?;
        Ok(Self::from_stream(stream, endpoint.authority(), config))
    }

    fn from_stream(stream: WsStream, authority: String, config: &ConnectConfig) -> Self {
        let shared = Arc::new(Shared {
            authority,
            closed: OnceLock::new(),
            go_away_seen: AtomicBool::new(false),
            client_closing: AtomicBool::new(false),
            pongs: AtomicU64::new(0),
        });
        let (sink, stream) = stream.split();
        Self {
            sender: ConnectionSender {
                sink,
                shared: Arc::clone(&shared),
            },
            receiver: ConnectionReceiver { stream, shared },
            setup_timeout: config.setup_timeout,
            close_timeout: config.close_timeout,
        }
    }

    /// Sends `setup` (normally [`ClientMessage::Setup`]) and waits up to the configured setup
    /// timeout for `setupComplete`, which it returns (Vertex may put a session id in it).
    ///
    /// # Errors
    /// [`Error::SetupTimeout`]; [`Error::Closed`] when the server closed instead (a refused
    /// model or resume handle arrives this way); [`Error::UnexpectedSetupReply`] holding the
    /// message that came first; a decode error for a frame that did not parse.
    pub async fn setup(&mut self, setup: &ClientMessage) -> Result<ServerMessage, Error> {
        self.sender.send(setup).await?;
        let reply = if self.setup_timeout == Duration::MAX {
            // No timeout (the caller bounds the whole dial itself): no timer is armed.
            self.receiver.recv().await?
        } else {
            tokio::time::timeout(self.setup_timeout, self.receiver.recv())
                .await
                .map_err(|_| Error::SetupTimeout {
                    after: self.setup_timeout,
                })??
        };
        if matches!(reply.payload, Some(ServerPayload::SetupComplete(_))) {
            Ok(reply)
        } else {
            Err(Error::UnexpectedSetupReply(Box::new(reply)))
        }
    }

    /// Encodes `message` and sends it as one text frame, flushed.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is closed, [`Error::WebSocket`] when writing fails
    /// otherwise.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), Error> {
        self.sender.send(message).await
    }

    /// Queues `message` without flushing; see [`ConnectionSender::feed`].
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub async fn feed(&mut self, message: &ClientMessage) -> Result<(), Error> {
        self.sender.feed(message).await
    }

    /// Sends one `realtimeInput.audio` frame for borrowed PCM, flushed; see
    /// [`ConnectionSender::feed_audio`].
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub async fn send_audio(&mut self, pcm: &[u8], sample_rate: u32) -> Result<(), Error> {
        self.sender.send_audio(pcm, sample_rate).await
    }

    /// Writes everything queued by [`Connection::feed`] to the socket.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.sender.flush().await
    }

    /// Sends every message of `messages` in order and flushes once at the end.
    ///
    /// # Errors
    /// As [`Connection::send`]; messages before the failing one were queued.
    pub async fn send_batch<'a, I>(&mut self, messages: I) -> Result<usize, Error>
    where
        I: IntoIterator<Item = &'a ClientMessage>,
    {
        self.sender.send_batch(messages).await
    }

    /// The next server message; see [`ConnectionReceiver::recv`].
    ///
    /// # Errors
    /// As [`ConnectionReceiver::recv`]. After [`Error::MessageTooLarge`] this also sends a close
    /// frame with 1009.
    pub async fn recv(&mut self) -> Result<ServerMessage, Error> {
        let result = self.receiver.recv().await;
        if let Err(Error::MessageTooLarge { .. }) = &result {
            // Best effort: the socket may already be gone.
            let _ = self
                .sender
                .close(close::MESSAGE_TOO_BIG, "message too big")
                .await;
        }
        result
    }

    /// Closes the connection with `code` and `reason` and waits (up to the configured close
    /// timeout) for the server's answer. Server messages that arrive meanwhile are dropped.
    /// Returns the close as recorded: [`CloseClass::Normal`] when this call started it, or the
    /// server's close if that came first.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the close frame cannot be written for a reason other than the
    /// connection being gone already.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<CloseInfo, Error> {
        self.sender.close(code, reason).await?;
        let wait = async {
            loop {
                match self.receiver.recv().await {
                    Err(Error::Closed(info)) => return info,
                    Err(e) if e.ends_connection() => {
                        return self.receiver.shared.gone_info("closed after a failure");
                    }
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(self.close_timeout, wait).await {
            Ok(info) => Ok(info),
            Err(_) => {
                let after = self.receiver.shared.after_go_away();
                Ok(self
                    .receiver
                    .shared
                    .record(CloseInfo::from_client(code, reason, after)))
            }
        }
    }

    /// The close, once the connection has ended.
    #[must_use]
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.receiver.shared.closed.get().cloned()
    }

    /// Splits into a sender and a receiver that can be used from different tasks.
    #[must_use]
    pub fn split(self) -> (ConnectionSender, ConnectionReceiver) {
        (self.sender, self.receiver)
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("authority", &self.receiver.shared.authority)
            .field("closed", &self.receiver.shared.closed.get())
            .finish_non_exhaustive()
    }
}

/// The writing half of a [`Connection`].
pub struct ConnectionSender {
    sink: SplitSink<WsStream, Message>,
    shared: Arc<Shared>,
}

impl ConnectionSender {
    /// Encodes `message` and sends it as one text frame, flushed to the socket.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is closed (the recorded close, or 1006 when the
    /// socket failed); [`Error::WebSocket`] for other write failures.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), Error> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues `message` as a text frame without flushing. Frames reach the socket when the queue
    /// passes [`ConnectConfig::write_buffer_size`] or at the next flush: feed everything that is
    /// ready, then [`flush`](Self::flush) once, so a burst costs few write calls.
    ///
    /// Not cancel safe: a future dropped before it completes may have dropped the message.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub async fn feed(&mut self, message: &ClientMessage) -> Result<(), Error> {
        if let Some(error) = self.shared.closed_error() {
            return Err(error);
        }
        let frame = encoded(message)?;
        let result = self.sink.feed(frame).await;
        result.map_err(|e| self.write_failure(e))
    }

    /// Queues one `realtimeInput.audio` frame for borrowed 16-bit PCM at `sample_rate` Hz without
    /// flushing, without building a [`ClientMessage`] (the microphone hot path: the chunk is
    /// base64-encoded straight into a frame allocated at its exact length, which the WebSocket
    /// takes over without a copy). Same bytes as feeding
    /// `ClientMessage::RealtimeInput(RealtimeInput::Audio(Blob::pcm(pcm, sample_rate)))`.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub async fn feed_audio(&mut self, pcm: &[u8], sample_rate: u32) -> Result<(), Error> {
        if let Some(error) = self.shared.closed_error() {
            return Err(error);
        }
        let result = self.sink.feed(audio_frame(pcm, sample_rate)).await;
        result.map_err(|e| self.write_failure(e))
    }

    /// [`feed_audio`](Self::feed_audio), then flush.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub async fn send_audio(&mut self, pcm: &[u8], sample_rate: u32) -> Result<(), Error> {
        self.feed_audio(pcm, sample_rate).await?;
        self.flush().await
    }

    /// Writes everything queued to the socket and flushes it.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub async fn flush(&mut self) -> Result<(), Error> {
        let result = self.sink.flush().await;
        result.map_err(|e| self.write_failure(e))
    }

    /// Queues every message of `messages` in order, then flushes once. Returns how many were sent.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`]; messages before the failing one were queued.
    pub async fn send_batch<'a, I>(&mut self, messages: I) -> Result<usize, Error>
    where
        I: IntoIterator<Item = &'a ClientMessage>,
    {
        let mut count = 0;
        for message in messages {
            self.feed(message).await?;
            count += 1;
        }
        self.flush().await?;
        Ok(count)
    }

    /// Sends a close frame with `code` and `reason` and flushes it. The receiver half then yields
    /// [`Error::Closed`] with [`CloseClass::Normal`] once the server answers. Does nothing when the
    /// socket is already gone.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when writing the close frame fails for another reason.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        self.shared.client_closing.store(true, Ordering::Release);
        tracing::debug!(authority = %self.shared.authority, code, "closing");
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from(reason),
        };
        match self.sink.send(Message::Close(Some(frame))).await {
            Ok(()) => Ok(()),
            Err(e) => match self.write_failure(e) {
                Error::Closed(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// The close, once the connection has ended.
    #[must_use]
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.closed.get().cloned()
    }

    /// How many pong frames the receiver has read so far: a ping answered proves the peer
    /// reads what this side writes (a keepalive compares the count before and after a ping).
    #[must_use]
    pub fn pongs_received(&self) -> u64 {
        self.shared.pongs.load(Ordering::Acquire)
    }

    /// Poll form of the writer, for a caller that drives the socket from its own loop (and
    /// from a thread that must not wait): `Ready(Ok)` once the sender can take one more frame
    /// with [`start_send`](Self::start_send), [`start_send_audio`](Self::start_send_audio) or
    /// [`start_send_ping`](Self::start_send_ping). `Pending` when the socket cannot take more
    /// now; `cx`'s waker is woken when it can.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(error) = self.shared.closed_error() {
            return Poll::Ready(Err(error));
        }
        match self.sink.poll_ready_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.write_failure(e))),
        }
    }

    /// Queues `message` as a text frame after [`poll_ready`](Self::poll_ready) returned
    /// `Ready(Ok)`; it reaches the socket by [`poll_flush`](Self::poll_flush).
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn start_send(&mut self, message: &ClientMessage) -> Result<(), Error> {
        let frame = encoded(message)?;
        let result = self.sink.start_send_unpin(frame);
        result.map_err(|e| self.write_failure(e))
    }

    /// Queues one `realtimeInput.audio` frame for borrowed PCM, as
    /// [`feed_audio`](Self::feed_audio) does, after [`poll_ready`](Self::poll_ready) returned
    /// `Ready(Ok)`. One allocation: the frame's payload.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn start_send_audio(&mut self, pcm: &[u8], sample_rate: u32) -> Result<(), Error> {
        let result = self.sink.start_send_unpin(audio_frame(pcm, sample_rate));
        result.map_err(|e| self.write_failure(e))
    }

    /// Queues a ping frame (the peer answers with a pong once it has read everything written
    /// before it: see [`pongs_received`](Self::pongs_received)).
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn start_send_ping(&mut self) -> Result<(), Error> {
        let result = self
            .sink
            .start_send_unpin(Message::Ping(tungstenite::Bytes::new()));
        result.map_err(|e| self.write_failure(e))
    }

    /// Queues the close frame with `code` and `reason`, as [`close`](Self::close) sends it,
    /// after [`poll_ready`](Self::poll_ready) returned `Ready(Ok)`; it reaches the socket by
    /// [`poll_flush`](Self::poll_flush).
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn start_send_close(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        self.shared.client_closing.store(true, Ordering::Release);
        tracing::debug!(authority = %self.shared.authority, code, "closing");
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from(reason),
        };
        let result = self.sink.start_send_unpin(Message::Close(Some(frame)));
        result.map_err(|e| self.write_failure(e))
    }

    /// Writes what was queued to the socket; `Pending` until the socket took all of it.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.sink.poll_flush_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.write_failure(e))),
        }
    }

    fn write_failure(&self, error: tungstenite::Error) -> Error {
        match error {
            tungstenite::Error::ConnectionClosed
            | tungstenite::Error::AlreadyClosed
            | tungstenite::Error::Protocol(ProtocolError::SendAfterClosing) => {
                self.shared.gone("connection already closed")
            }
            tungstenite::Error::Io(e) => self.shared.gone(&io_description(&e)),
            other => Error::WebSocket {
                detail: other.to_string(),
            },
        }
    }
}

impl fmt::Debug for ConnectionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSender")
            .field("authority", &self.shared.authority)
            .finish_non_exhaustive()
    }
}

/// The `realtimeInput.audio` text frame for `pcm`: built at its exact length and handed to the
/// frame as it is (one allocation, no copy, no UTF-8 check).
fn audio_frame(pcm: &[u8], sample_rate: u32) -> Message {
    Message::Text(Utf8Bytes::from(ClientMessage::audio_json_string(
        pcm,
        sample_rate,
    )))
}

/// The reading half of a [`Connection`].
pub struct ConnectionReceiver {
    stream: SplitStream<WsStream>,
    shared: Arc<Shared>,
}

impl ConnectionReceiver {
    /// The next server message, decoded from a text or a binary frame. Pings are answered
    /// (the pong is written by the next read, which this call performs itself).
    ///
    /// # Errors
    /// - [`Error::Closed`]: the server closed (its code and reason, classified with whether a
    ///   `goAway` came first), this side closed ([`CloseClass::Normal`]), or the stream ended
    ///   without a close frame (1006). Returned again by every later call.
    /// - a decode error ([`Error::ends_connection`] is `false`): one frame did not parse; the
    ///   connection goes on.
    /// - [`Error::MessageTooLarge`]: a frame or message exceeded the configured limit; the
    ///   connection is unusable (recorded as a 1009 close by this side). [`Connection::recv`]
    ///   sends the 1009 close frame itself; with split halves, call
    ///   [`ConnectionSender::close`] with 1009.
    /// - [`Error::WebSocket`]: a protocol violation (e.g. invalid UTF-8 in a text frame).
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future before it completes (e.g. in `tokio::select!`) loses no
    /// message.
    pub async fn recv(&mut self) -> Result<ServerMessage, Error> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](Self::recv) as a poll: `Pending` registers `cx`'s waker with the socket (the
    /// last task to poll is the one woken), so that any task may read the connection in turn.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<ServerMessage, Error>> {
        if let Some(error) = self.shared.closed_error() {
            return Poll::Ready(Err(error));
        }
        loop {
            let Some(item) = std::task::ready!(self.stream.poll_next_unpin(cx)) else {
                return Poll::Ready(Err(self
                    .shared
                    .gone("connection ended without a close frame")));
            };
            return Poll::Ready(match item {
                Ok(Message::Text(text)) => self.decode(text.as_bytes()),
                Ok(Message::Binary(bytes)) => self.decode(&bytes),
                Ok(Message::Pong(_)) => {
                    self.shared.pongs.fetch_add(1, Ordering::Release);
                    continue;
                }
                Ok(Message::Ping(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(frame)) => Err(self.closed_by_frame(frame)),
                Err(error) => Err(self.read_failure(error)),
            });
        }
    }

    /// The close, once the connection has ended.
    #[must_use]
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.closed.get().cloned()
    }

    fn decode(&self, bytes: &[u8]) -> Result<ServerMessage, Error> {
        let message = ServerMessage::from_json(bytes)?;
        if matches!(message.payload, Some(ServerPayload::GoAway(_))) {
            self.shared.go_away_seen.store(true, Ordering::Release);
        }
        Ok(message)
    }

    fn closed_by_frame(&mut self, frame: Option<CloseFrame>) -> Error {
        let (code, reason) = match frame {
            Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
            None => (close::NO_STATUS, String::new()),
        };
        let after = self.shared.after_go_away();
        let info = if self.shared.client_closing.load(Ordering::Acquire) {
            CloseInfo::from_client(code, reason, after)
        } else {
            CloseInfo::from_server(code, reason, after)
        };
        let recorded = self.shared.record(info);
        // tungstenite queued the close reply; the next read writes it. Poll once, without
        // waiting, so the reply leaves now.
        let _ = self.stream.next().now_or_never();
        Error::Closed(recorded)
    }

    fn read_failure(&self, error: tungstenite::Error) -> Error {
        match error {
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                self.shared.record(CloseInfo {
                    code: close::MESSAGE_TOO_BIG,
                    reason: "message too big".to_owned(),
                    class: CloseClass::NeedsDifferentRequest,
                    initiator: CloseInitiator::Client,
                    after_go_away: self.shared.after_go_away(),
                });
                Error::MessageTooLarge {
                    size,
                    max: max_size,
                }
            }
            tungstenite::Error::Io(e) => self.shared.gone(&io_description(&e)),
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)
            | tungstenite::Error::ConnectionClosed
            | tungstenite::Error::AlreadyClosed => {
                self.shared.gone("connection reset without a close frame")
            }
            other => {
                let detail = other.to_string();
                self.shared.record(CloseInfo::abnormal(
                    detail.clone(),
                    self.shared.after_go_away(),
                ));
                Error::WebSocket { detail }
            }
        }
    }
}

impl fmt::Debug for ConnectionReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionReceiver")
            .field("authority", &self.shared.authority)
            .field("closed", &self.shared.closed.get())
            .finish_non_exhaustive()
    }
}

fn io_description(error: &std::io::Error) -> String {
    format!("transport failed: {}", error.kind())
}

/// `message` as a text frame: encoded into a buffer that becomes the frame's payload (one
/// allocation, no copy; the sender keeps no encoding buffer of its own between messages, which
/// an idle connection would hold for nothing: audio frames are built apart, at their length).
fn encoded(message: &ClientMessage) -> Result<Message, Error> {
    let mut buf = Vec::new();
    message.write_json(&mut buf);
    let text = String::from_utf8(buf).map_err(|_| Error::WebSocket {
        detail: "encoded client message is not UTF-8".to_owned(),
    })?;
    Ok(Message::Text(Utf8Bytes::from(text)))
}
