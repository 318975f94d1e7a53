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
    fmt, io,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use tokio::io::AsyncWrite;

use crate::{
    close::{self, CloseClass, CloseInfo, CloseInitiator},
    config::ConnectConfig,
    dial::{self, ReadHalf, Upgraded, WriteHalf},
    endpoint::Endpoint,
    error::Error,
    frame::{self, FrameError, FrameReader, Incoming, ReadError},
    spare,
    wire::{ClientMessage, ServerMessage, ServerPayload},
};

/// State both halves see: how the connection ended, and the facts that classify the end.
///
/// Laid out in declaration order, from a cache line of its own: what every write reads (the
/// pong count, then the writer's lock) shares the first line, the facts of the end come last
/// (at hundreds of connections this struct is cold each time one is written, and each line is
/// a miss).
#[derive(Debug)]
#[repr(C, align(64))]
struct Shared {
    /// Pong frames received (a keepalive's proof that the peer reads).
    pongs: AtomicU64,
    /// The receiver queued a pong or a close reply that is not yet written.
    control_pending: AtomicBool,
    go_away_seen: AtomicBool,
    client_closing: AtomicBool,
    /// The writing half and what is queued for it; the receiver takes it only to answer a
    /// ping or a close.
    writer: Mutex<Writer>,
    closed: OnceLock<CloseInfo>,
    authority: String,
}

/// The writing half and its buffer of encoded frames.
#[derive(Debug)]
struct Writer {
    io: WriteHalf,
    /// Frames encoded and not yet written; those before `written` are.
    buf: Vec<u8>,
    written: usize,
    /// The pong owed for the latest ping not answered yet (RFC 6455 section 5.5.3 lets an
    /// endpoint answer only the most recent): at most 125 bytes however many pings come while
    /// the socket is blocked. It goes into `buf` once what is queued before it is written.
    pong: Option<Vec<u8>>,
    /// The sender's waker while its write waits on a full socket: the receiver, writing an
    /// answer meanwhile, has the socket wake both tasks (the socket keeps one waker per
    /// direction), so neither a waiting sender nor one that gave up leaves an answer unsent.
    sender_waiting: Option<Waker>,
    /// A close frame is queued: no frame may follow it.
    close_queued: bool,
    /// Queued bytes past which the sender writes before it takes another frame.
    write_buffer_size: usize,
    /// Queued bytes past which a frame is refused.
    max_write_buffer_size: usize,
}

impl Drop for Writer {
    fn drop(&mut self) {
        spare::WRITE.give(std::mem::take(&mut self.buf), self.pooled_capacity());
    }
}

impl Writer {
    fn queued(&self) -> usize {
        self.buf.len() - self.written
    }

    /// The largest buffer given back to the pool.
    fn pooled_capacity(&self) -> usize {
        self.write_buffer_size.max(4096)
    }

    /// Writes what is queued (the owed pong last) and flushes the socket; `Pending` until the
    /// socket took all of it, `cx`'s waker then being the one the socket wakes.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while self.written < self.buf.len() {
                match Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero)));
                    }
                    Poll::Ready(Ok(n)) => self.written += n,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                }
            }
            // The owed pong is encoded only once everything before it is written, so that
            // pings arriving while the socket is blocked replace it instead of adding up.
            let Some(payload) = self.pong.take() else {
                break;
            };
            self.encode(frame::PONG, |out| out.extend_from_slice(&payload));
        }
        if Pin::new(&mut self.io).poll_flush(cx)?.is_pending() {
            return Poll::Pending;
        }
        self.written = 0;
        // All written: the buffer goes back to this thread's pool (one grown for a large frame
        // is freed), and an idle connection holds none.
        spare::WRITE.give(std::mem::take(&mut self.buf), self.pooled_capacity());
        Poll::Ready(Ok(()))
    }

    /// Drops the bytes already written from the front of the buffer, so that a socket that
    /// never drains completely does not make the buffer keep everything ever sent.
    fn compact(&mut self) {
        if self.written > 0 {
            self.buf.drain(..self.written);
            self.written = 0;
        }
    }

    /// Encodes one frame of `opcode` by `write`, after the queued ones; returns where it
    /// starts in the buffer.
    fn encode(&mut self, opcode: u8, write: impl FnOnce(&mut Vec<u8>)) -> usize {
        if self.buf.capacity() == 0 {
            self.buf = spare::WRITE.take(0);
        }
        self.compact();
        let at = self.buf.len();
        frame::push_frame(&mut self.buf, opcode, frame::next_mask(), write);
        at
    }

    /// [`encode`](Self::encode) for a data frame or a ping: refused (and not queued) when it
    /// would take the queue past `max_write_buffer_size`.
    fn push(&mut self, opcode: u8, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
        let at = self.encode(opcode, write);
        if self.buf.len() > self.max_write_buffer_size {
            let frame = self.buf.len() - at;
            self.buf.truncate(at);
            return Err(Error::WebSocket {
                detail: format!(
                    "write buffer full ({at} bytes queued, a frame of {frame} would pass the \
                     limit of {})",
                    self.max_write_buffer_size
                ),
            });
        }
        Ok(())
    }

    /// Queues the close frame (`code` and `reason`; no payload for `None`), unless one was
    /// queued already (then `false`): no frame follows it. A control frame, so the buffer's
    /// limit does not refuse it.
    fn push_close(&mut self, code: Option<u16>, reason: &str) -> bool {
        if self.close_queued {
            return false;
        }
        self.close_queued = true;
        self.encode(frame::CLOSE, |out| {
            if let Some(code) = code {
                frame::close_payload(out, code, reason);
            }
        });
        true
    }
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

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Owes the server a pong with `payload` (replacing one owed for an earlier ping) and
    /// writes it now, as far as the socket takes it.
    fn answer_ping(&self, cx: &mut Context<'_>, payload: &[u8]) {
        let mut writer = self.writer();
        if writer.close_queued {
            return;
        }
        writer.pong = Some(payload.to_vec());
        self.control_pending.store(true, Ordering::Release);
        self.write_answers(&mut writer, cx);
    }

    /// Queues a close frame with `code` (none for `None`, as a reply to a close without one),
    /// unless one was queued already, and writes it now as far as the socket takes it.
    fn answer_close(&self, cx: &mut Context<'_>, code: Option<u16>) {
        let mut writer = self.writer();
        if !writer.push_close(code, "") {
            return;
        }
        self.control_pending.store(true, Ordering::Release);
        self.write_answers(&mut writer, cx);
    }

    /// Writes what is queued for the receiver. When the sender waits on the socket too, the
    /// socket is asked to wake both: it keeps one waker, and neither task may lose its turn.
    fn write_answers(&self, writer: &mut Writer, cx: &mut Context<'_>) {
        let written = match writer.sender_waiting.clone() {
            None => writer.poll_write_out(cx),
            Some(sender) => {
                let both = Waker::from(Arc::new(BothWakers(cx.waker().clone(), sender)));
                writer.poll_write_out(&mut Context::from_waker(&both))
            }
        };
        if written.is_ready() {
            // Written, or the socket failed (the next read or write reports it).
            writer.sender_waiting = None;
            self.control_pending.store(false, Ordering::Release);
        }
    }
}

/// Wakes two tasks: the receiver writing an answer and the sender waiting on the same socket.
struct BothWakers(Waker, Waker);

impl std::task::Wake for BothWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake_by_ref();
        self.1.wake_by_ref();
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
        let upgraded = dial::dial(endpoint, config).await?;
        Ok(Self::from_upgraded(upgraded, endpoint.authority(), config))
    }

    fn from_upgraded(upgraded: Upgraded, authority: String, config: &ConnectConfig) -> Self {
        let (read, write) = upgraded.socket.split();
        let shared = Arc::new(Shared {
            authority,
            closed: OnceLock::new(),
            go_away_seen: AtomicBool::new(false),
            client_closing: AtomicBool::new(false),
            pongs: AtomicU64::new(0),
            control_pending: AtomicBool::new(false),
            writer: Mutex::new(Writer {
                io: write,
                buf: Vec::new(),
                written: 0,
                pong: None,
                sender_waiting: None,
                close_queued: false,
                write_buffer_size: config.write_buffer_size,
                max_write_buffer_size: config.max_write_buffer_size.max(config.write_buffer_size),
            }),
        });
        let reader = FrameReader::new(
            config.read_buffer_size,
            config.max_frame_size,
            config.max_message_size,
            &upgraded.leftover,
        );
        Self {
            sender: ConnectionSender {
                shared: Arc::clone(&shared),
            },
            receiver: ConnectionReceiver {
                io: read,
                reader,
                shared,
            },
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
        std::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send(message)
    }

    /// Queues one `realtimeInput.audio` frame for borrowed 16-bit PCM at `sample_rate` Hz without
    /// flushing, without building a [`ClientMessage`] (the microphone hot path: the chunk is
    /// base64-encoded straight into the connection's write buffer and masked there, with no
    /// allocation once the buffer has grown). Same bytes as feeding
    /// `ClientMessage::RealtimeInput(RealtimeInput::Audio(Blob::pcm(pcm, sample_rate)))`.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub async fn feed_audio(&mut self, pcm: &[u8], sample_rate: u32) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send_audio(pcm, sample_rate)
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
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
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
    /// socket is already gone or a close was already sent.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when writing the close frame fails for another reason.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        if self.shared.writer().close_queued {
            return Ok(());
        }
        match self.start_send_close(code, reason) {
            Ok(()) | Err(Error::Closed(_)) => {}
            Err(other) => return Err(other),
        }
        match self.flush().await {
            Ok(()) | Err(Error::Closed(_)) => Ok(()),
            Err(other) => Err(other),
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
    /// now (more than [`ConnectConfig::write_buffer_size`] bytes are queued and the socket
    /// does not take them); `cx`'s waker is woken when it can.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(error) = self.shared.closed_error() {
            return Poll::Ready(Err(error));
        }
        let mut writer = self.shared.writer();
        if writer.close_queued {
            return Poll::Ready(Err(self.shared.gone("connection already closed")));
        }
        if writer.queued() < writer.write_buffer_size {
            return Poll::Ready(Ok(()));
        }
        self.write_out(&mut writer, cx)
    }

    /// Writes everything queued for the sender: `Pending` records its waker for the receiver
    /// (see [`Writer::sender_waiting`]).
    fn write_out(&self, writer: &mut Writer, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match writer.poll_write_out(cx) {
            Poll::Pending => {
                match writer.sender_waiting.as_mut() {
                    Some(waker) => waker.clone_from(cx.waker()),
                    None => writer.sender_waiting = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Poll::Ready(result) => {
                writer.sender_waiting = None;
                self.shared.control_pending.store(false, Ordering::Release);
                Poll::Ready(result.map_err(|error| self.shared.gone(&io_description(&error))))
            }
        }
    }

    /// Queues `message` as a text frame after [`poll_ready`](Self::poll_ready) returned
    /// `Ready(Ok)`; it reaches the socket by [`poll_flush`](Self::poll_flush).
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn start_send(&mut self, message: &ClientMessage) -> Result<(), Error> {
        let mut encoded = Vec::new();
        message.write_json(&mut encoded);
        self.queue(frame::TEXT, |out| out.extend_from_slice(&encoded))
    }

    /// Queues one `realtimeInput.audio` frame for borrowed PCM, as
    /// [`feed_audio`](Self::feed_audio) does, after [`poll_ready`](Self::poll_ready) returned
    /// `Ready(Ok)`. No allocation once the write buffer has grown: the JSON is written into it.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn start_send_audio(&mut self, pcm: &[u8], sample_rate: u32) -> Result<(), Error> {
        self.queue(frame::TEXT, |out| {
            ClientMessage::append_audio_json(out, pcm, sample_rate);
        })
    }

    /// Queues a ping frame (the peer answers with a pong once it has read everything written
    /// before it: see [`pongs_received`](Self::pongs_received)).
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn start_send_ping(&mut self) -> Result<(), Error> {
        self.queue(frame::PING, |_| {})
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
        // Sent even after the connection's end was recorded (a 1009 this side decided on):
        // only a close already queued, or a socket found gone, stops it.
        if self.shared.writer().push_close(Some(code), reason) {
            Ok(())
        } else {
            Err(self.shared.gone("connection already closed"))
        }
    }

    /// Writes what was queued to the socket; `Pending` until the socket took all of it.
    ///
    /// # Errors
    /// As [`ConnectionSender::send`].
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut writer = self.shared.writer();
        self.write_out(&mut writer, cx)
    }

    /// Encodes one frame into the write buffer, unless the connection has ended or sent its
    /// close.
    fn queue(&mut self, opcode: u8, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
        if let Some(error) = self.shared.closed_error() {
            return Err(error);
        }
        let mut writer = self.shared.writer();
        if writer.close_queued {
            return Err(self.shared.gone("connection already closed"));
        }
        writer.push(opcode, write)
    }
}

impl fmt::Debug for ConnectionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSender")
            .field("authority", &self.shared.authority)
            .finish_non_exhaustive()
    }
}

/// The reading half of a [`Connection`].
pub struct ConnectionReceiver {
    io: ReadHalf,
    reader: FrameReader,
    shared: Arc<Shared>,
}

impl ConnectionReceiver {
    /// The next server message, decoded from a text or a binary frame. Pings are answered
    /// as they are read (the pong is written at once, or by the sender's next write when it is
    /// waiting on a full socket).
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
    /// - [`Error::WebSocket`]: a protocol violation (e.g. invalid UTF-8 in a text frame, a
    ///   masked or malformed frame).
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
        // Answers owed go out first, a close reply after the end was recorded included.
        if self.shared.control_pending.load(Ordering::Acquire) {
            let mut writer = self.shared.writer();
            self.shared.write_answers(&mut writer, cx);
        }
        if let Some(error) = self.shared.closed_error() {
            return Poll::Ready(Err(error));
        }
        loop {
            let incoming = match std::task::ready!(self.reader.poll_next(&mut self.io, cx)) {
                Ok(Some(incoming)) => incoming,
                Ok(None) => {
                    return Poll::Ready(Err(self
                        .shared
                        .gone("connection ended without a close frame")));
                }
                Err(ReadError::Io(error)) => {
                    return Poll::Ready(Err(self.shared.gone(&io_description(&error))));
                }
                Err(ReadError::Frame(error)) => {
                    return Poll::Ready(Err(self.frame_failure(cx, error)));
                }
            };
            match incoming {
                Incoming::Data { text, at } => {
                    let bytes = self.reader.payload(&at);
                    if text && std::str::from_utf8(bytes).is_err() {
                        return Poll::Ready(Err(self.frame_failure(
                            cx,
                            FrameError::Protocol("invalid UTF-8 in a text frame"),
                        )));
                    }
                    return Poll::Ready(decode(&self.shared, bytes));
                }
                Incoming::Ping(at) => {
                    self.shared.answer_ping(cx, self.reader.payload(&at));
                }
                Incoming::Pong => {
                    self.shared.pongs.fetch_add(1, Ordering::Release);
                }
                Incoming::Close(at) => {
                    let closed = match frame::parse_close(self.reader.payload(&at)) {
                        Ok((code, reason)) => {
                            let reason = reason.to_owned();
                            self.closed_by_frame(cx, code, reason)
                        }
                        // A malformed close is still the server's close: a protocol error
                        // (1002), answered with 1002.
                        Err(_) => self.closed_by_frame(
                            cx,
                            close::PROTOCOL_ERROR,
                            "Protocol violation".to_owned(),
                        ),
                    };
                    return Poll::Ready(Err(closed));
                }
            }
        }
    }

    /// The close, once the connection has ended.
    #[must_use]
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.closed.get().cloned()
    }

    fn closed_by_frame(&mut self, cx: &mut Context<'_>, code: u16, reason: String) -> Error {
        let after = self.shared.after_go_away();
        let info = if self.shared.client_closing.load(Ordering::Acquire) {
            CloseInfo::from_client(code, reason, after)
        } else {
            CloseInfo::from_server(code, reason, after)
        };
        let recorded = self.shared.record(info);
        // The close reply (RFC 6455 section 5.5.1): the server's code echoed, none for 1005.
        // Nothing is sent when this side's close went first.
        self.shared
            .answer_close(cx, (code != close::NO_STATUS).then_some(code));
        Error::Closed(recorded)
    }

    /// The connection failed on the server's frames: recorded, and for a protocol violation a
    /// close with 1002 is sent (best effort). A too-large message is closed with 1009 by
    /// [`Connection::recv`], or by the caller of split halves.
    fn frame_failure(&self, cx: &mut Context<'_>, error: FrameError) -> Error {
        match error {
            FrameError::TooLarge { size, max } => {
                self.shared.record(CloseInfo {
                    code: close::MESSAGE_TOO_BIG,
                    reason: "message too big".to_owned(),
                    class: CloseClass::NeedsDifferentRequest,
                    initiator: CloseInitiator::Client,
                    after_go_away: self.shared.after_go_away(),
                });
                Error::MessageTooLarge { size, max }
            }
            FrameError::Protocol(violation) => {
                let detail = format!("WebSocket protocol error: {violation}");
                self.shared.record(CloseInfo::abnormal(
                    detail.clone(),
                    self.shared.after_go_away(),
                ));
                self.shared.answer_close(cx, Some(close::PROTOCOL_ERROR));
                Error::WebSocket { detail }
            }
        }
    }
}

/// Decodes one server message, noting a `goAway`.
fn decode(shared: &Shared, bytes: &[u8]) -> Result<ServerMessage, Error> {
    let message = ServerMessage::from_json(bytes)?;
    if matches!(message.payload, Some(ServerPayload::GoAway(_))) {
        shared.go_away_seen.store(true, Ordering::Release);
    }
    Ok(message)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::io::AsyncReadExt as _;

    use super::*;

    /// A connection over `tcp` as if upgraded (the peer does not read its frames as WebSocket).
    fn over(tcp: tokio::net::TcpStream, config: &ConnectConfig) -> Connection {
        Connection::from_upgraded(
            Upgraded {
                socket: dial::Io::Plain(tcp),
                leftover: Vec::new(),
            },
            "test".into(),
            config,
        )
    }

    /// A plain connection to `addr` with no upgrade.
    async fn plain(addr: std::net::SocketAddr) -> Connection {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        over(tcp, &ConnectConfig::default())
    }

    #[tokio::test]
    async fn between_writes_a_connection_holds_no_write_buffer_and_connections_share_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut sockets = Vec::new();
            for _ in 0..2 {
                sockets.push(listener.accept().await.unwrap().0);
            }
            // Held open, unread: two small frames fit the socket buffers.
            std::future::pending::<()>().await;
            drop(sockets);
        });
        let (mut first, _first_rx) = plain(addr).await.split();
        let (mut second, _second_rx) = plain(addr).await.split();
        let before = spare::WRITE.kept().len();

        std::future::poll_fn(|cx| first.poll_ready(cx))
            .await
            .unwrap();
        first.start_send_audio(&[1; 640], 16_000).unwrap();
        let lent = first.shared.writer().buf.as_ptr();
        first.flush().await.unwrap();
        assert_eq!(
            first.shared.writer().buf.capacity(),
            0,
            "given back once written"
        );
        assert_eq!(spare::WRITE.kept().len(), before + 1);
        assert!(spare::WRITE.kept_at().contains(&lent));

        // The second connection encodes into the buffer the first one gave back.
        std::future::poll_fn(|cx| second.poll_ready(cx))
            .await
            .unwrap();
        second.start_send_audio(&[2; 640], 16_000).unwrap();
        assert_eq!(second.shared.writer().buf.as_ptr(), lent);
        assert_eq!(spare::WRITE.kept().len(), before);
        second.flush().await.unwrap();
        server.abort();
    }

    /// Regression (review of the framing change): a sender kept busy over a reader slower than
    /// it never sees one write drain the buffer completely; the bytes already written must
    /// still leave the buffer, or it keeps everything ever sent.
    #[tokio::test]
    async fn the_write_buffer_drops_what_was_written_while_the_socket_never_drains() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4 << 10];
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_millis(1500) {
                match tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await
                {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => break,
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(16 << 10).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let config = ConnectConfig::default();
        let (mut sender, _receiver) = over(tcp, &config).split();
        let pcm = vec![7u8; 3000];
        let started = std::time::Instant::now();
        let mut largest = 0usize;
        let mut sent = 0usize;
        while started.elapsed() < Duration::from_secs(1) {
            std::future::poll_fn(|cx| sender.poll_ready(cx))
                .await
                .unwrap();
            sender.start_send_audio(&pcm, 16000).unwrap();
            sent += 1;
            largest = largest.max(sender.shared.writer().buf.len());
        }
        drop(sender);
        server.abort();
        assert!(sent > 100, "only {sent} frames went out");
        assert!(
            largest < 2 * config.write_buffer_size,
            "the buffer held {largest} bytes after {sent} frames"
        );
    }
}
