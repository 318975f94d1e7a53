//! `LiveSession`: the handle the application holds, and the async shell that moves frames and
//! timers between the sockets and the [`SessionCore`].
//!
//! The shell decides nothing. The handle and the driver task share the core behind a mutex
//! (as quinn shares its `quinn_proto::Connection`): a call such as [`LiveSession::send_text`]
//! runs the core synchronously, so it returns the ids it created and fails with
//! [`Error::Closed`] the moment the session has ended, then wakes the driver, which writes what
//! the core queued, dials and closes connections as the core asks, feeds it the server's
//! frames, and arms the one timer the core wants.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use ctx_model::{ChatContext, Item, ItemId};
use gemini_transport::wire::{ClientMessage, FunctionDeclaration, ServerMessage};
use gemini_transport::{CloseInfo, Connection, ConnectionSender, Endpoint};
use resume_policy::{ConnectionId, Millis, OpId};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{LiveSessionBuilder, SessionConfig};
use crate::core::{Action, Command, CoreConfig, Receipt, SessionCore};
use crate::gap::AudioGap;
use crate::{Error, SessionEvent};

/// A Gemini Live session that survives reconnects with its context exactly once.
///
/// Every input goes through the session's outbox, so none loses its effect because the
/// socket happens to be down: it is delivered by the next connection's plan, or reported as
/// a [`SessionEvent::Divergence`]. Dropping the session closes it.
#[derive(Debug)]
pub struct LiveSession {
    shared: Arc<Shared>,
}

/// The session's events, in order. A `futures_core::Stream`, or read with
/// [`recv`](Self::recv).
#[derive(Debug)]
pub struct SessionEvents {
    rx: mpsc::UnboundedReceiver<SessionEvent>,
}

impl SessionEvents {
    /// The next event; `None` once the session has ended and every event was read.
    pub async fn recv(&mut self) -> Option<SessionEvent> {
        self.rx.recv().await
    }

    /// The next event if one is ready now.
    pub fn try_recv(&mut self) -> Option<SessionEvent> {
        self.rx.try_recv().ok()
    }
}

impl futures_core::Stream for SessionEvents {
    type Item = SessionEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// What goes out on a connection, in the core's order.
enum Out {
    Message(ConnectionId, ClientMessage),
    Audio(ConnectionId, Vec<u8>),
}

/// The state the handle and the driver share.
struct State {
    core: SessionCore,
    out: VecDeque<Out>,
    actions: VecDeque<Action>,
    gap: AudioGap,
    /// Dropped after the `Closed` event, which ends the application's stream.
    events: Option<mpsc::UnboundedSender<SessionEvent>>,
}

impl State {
    /// Moves what the core produced into the shell's queues (events to the application).
    fn drain(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.out.push_back(Out::Message(t.connection, t.message));
        }
        while let Some(a) = self.core.poll_action() {
            self.actions.push_back(a);
        }
        while let Some(e) = self.core.poll_event() {
            self.emit(e);
        }
        if self.core.closed().is_some() {
            self.events = None;
        }
    }

    fn emit(&self, event: SessionEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// Audio that did not go out on the connection it was meant for: onto the connection that
    /// takes audio now if that is another one, else into the gap buffer (flushed after the
    /// next setup). Never back to the connection that failed: the shell would loop on it until
    /// the close is reported.
    fn requeue_audio(&mut self, meant_for: ConnectionId, pcm: Vec<u8>, chunk: usize) {
        if self
            .core
            .audio_target()
            .is_some_and(|target| target != meant_for)
        {
            self.audio(&pcm, chunk);
        } else if let Some(dropped) = self.gap.push(pcm) {
            self.emit(SessionEvent::AudioDropped { duration: dropped });
        }
    }

    /// Audio frames on the connection that takes audio now, or into the gap buffer.
    fn audio(&mut self, pcm: &[u8], chunk: usize) {
        match self.core.audio_target() {
            Some(connection) => {
                let mut frames = 0u32;
                for frame in pcm.chunks(chunk) {
                    self.out.push_back(Out::Audio(connection, frame.to_vec()));
                    frames += 1;
                }
                self.core.audio_sent(connection, frames);
            }
            None => {
                if let Some(dropped) = self.gap.push(pcm.to_vec()) {
                    self.emit(SessionEvent::AudioDropped { duration: dropped });
                }
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    config: Arc<SessionConfig>,
    wake: Notify,
    /// Bumped whenever the state may have changed (for `settled` and `context_changed`).
    changed: watch::Sender<u64>,
    epoch: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Runs `f` on the state, moves the core's output into the queues, and wakes the driver.
    fn with<T>(&self, f: impl FnOnce(&mut State, Millis) -> T) -> T {
        let now = self.now();
        let result = {
            let mut state = self.lock();
            let result = f(&mut state, now);
            state.drain();
            result
        };
        self.wake.notify_one();
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        result
    }
}

impl LiveSessionBuilder {
    /// The session's sans-IO core, for driving it without sockets (the simulator, tests):
    /// same configuration, policy and capabilities as [`connect`](Self::connect) would use.
    /// `jitter_seed` seeds the backoff jitter.
    pub fn into_core(mut self, now: Millis, jitter_seed: u64) -> Result<SessionCore, Error> {
        let (policy, capabilities) = self.resolve()?;
        let initial = std::mem::take(&mut self.initial_context);
        let config = CoreConfig {
            session: self.config,
            jitter_seed,
        };
        Ok(SessionCore::new(config, policy, capabilities, initial, now))
    }

    /// Connects: returns once the first `setup` is complete (and the initial context, if any,
    /// is seeded), or with the error that prevented it.
    pub async fn connect(mut self) -> Result<(LiveSession, SessionEvents), Error> {
        let jitter_seed = self.jitter_seed.unwrap_or_else(random_seed);
        let (policy, capabilities) = self.resolve()?;
        let initial = std::mem::take(&mut self.initial_context);
        let config = Arc::new(self.config.clone());
        let epoch = Instant::now();
        let core = SessionCore::new(
            CoreConfig {
                session: self.config,
                jitter_seed,
            },
            policy,
            capabilities,
            initial,
            Millis(0),
        );
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let gap = AudioGap::new(config.audio_gap, config.input_sample_rate);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core,
                out: VecDeque::new(),
                actions: VecDeque::new(),
                gap,
                events: Some(event_tx),
            }),
            config,
            wake: Notify::new(),
            changed: watch::Sender::new(0),
            epoch,
        });
        shared.lock().drain();
        let mut changed = shared.changed.subscribe();
        tokio::spawn(Driver::new(Arc::clone(&shared)).run());
        loop {
            {
                let state = shared.lock();
                if state.core.has_connected() {
                    break;
                }
                if let Some(error) = state.core.closed() {
                    return Err(error.clone().map_or(Error::Closed, Error::Session));
                }
            }
            if changed.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
        Ok((LiveSession { shared }, SessionEvents { rx: event_rx }))
    }
}

/// A jitter seed that differs per session and per process.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

impl LiveSession {
    /// A builder for `model` at `endpoint`.
    pub fn builder(endpoint: Endpoint, model: impl Into<String>) -> LiveSessionBuilder {
        LiveSessionBuilder::new(endpoint, model)
    }

    fn command(&self, command: Command) -> Result<Receipt, Error> {
        self.shared
            .with(|state, now| state.core.command(now, command))
    }

    /// Any [`Command`] of the session core, as the methods below send them (for code that
    /// drives sessions generically, such as the simulator's loopback soak). Returns what it
    /// created.
    pub fn apply(&self, command: Command) -> Result<Receipt, Error> {
        self.command(command)
    }

    /// A typed user turn: appended to the context and answered by the model. Returns the id
    /// of its item in the context.
    pub fn send_text(&self, text: impl Into<String>) -> Result<ItemId, Error> {
        let receipt = self.command(Command::Text(text.into()))?;
        receipt
            .items
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidArgument("no item created".to_owned()))
    }

    /// Microphone audio: PCM16 little-endian mono at 16 kHz, any length (the session cuts it
    /// into frames of [`audio_chunk`](crate::LiveSessionBuilder::audio_chunk)). While
    /// disconnected it is buffered or dropped per [`AudioGapPolicy`](crate::AudioGapPolicy).
    /// An odd number of bytes (half a sample) is an [`Error::InvalidArgument`] and nothing is
    /// sent.
    pub fn push_audio(&self, pcm: impl AsRef<[u8]>) -> Result<(), Error> {
        let pcm = pcm.as_ref();
        if pcm.len() % 2 != 0 {
            return Err(Error::InvalidArgument(format!(
                "PCM16 audio must have an even number of bytes, got {}",
                pcm.len()
            )));
        }
        let chunk = self.shared.config.audio_chunk_bytes();
        self.shared.with(|state, _| {
            if state.core.closed().is_some() {
                return Err(Error::Closed);
            }
            if !pcm.is_empty() {
                state.audio(pcm, chunk);
            }
            Ok(())
        })
    }

    /// The microphone closed (automatic activity detection).
    pub fn end_audio_stream(&self) -> Result<(), Error> {
        self.command(Command::AudioStreamEnd).map(drop)
    }

    /// The user started speaking (manual activity detection).
    pub fn activity_start(&self) -> Result<(), Error> {
        self.command(Command::ActivityStart).map(drop)
    }

    /// The user stopped speaking (manual activity detection).
    pub fn activity_end(&self) -> Result<(), Error> {
        self.command(Command::ActivityEnd).map(drop)
    }

    /// Replaces the application's chat context with `context`, derived from version
    /// `based_on` of it ([`snapshot`](Self::snapshot)). Refused with [`Error::Conflict`] if
    /// the context changed since (a turn sent, model output received), so that nothing added
    /// meanwhile is silently removed. Appended items are delivered as history (no answer
    /// asked); edits and removals of items the server holds are handled by the policy (a
    /// fresh seeded session by default, or a divergence event). Returns the new version.
    pub fn update_chat_ctx(&self, context: ChatContext, based_on: u64) -> Result<u64, Error> {
        self.command(Command::UpdateContext { context, based_on })
            .map(|r| r.version)
    }

    /// Appends items to the context as history (no answer asked); never conflicts. Returns
    /// their ids.
    pub fn append_chat_items(&self, items: Vec<Item>) -> Result<Vec<ItemId>, Error> {
        self.command(Command::Append(items)).map(|r| r.items)
    }

    /// Changes the system instruction (by `contextUpdate` where the model has it, otherwise
    /// by a reconnect whose `setup` carries it). Returns the operation's id.
    pub fn update_instructions(&self, text: impl Into<String>) -> Result<Option<OpId>, Error> {
        self.command(Command::UpdateInstructions(text.into()))
            .map(|r| r.op)
    }

    /// Changes the functions the model may call. Returns the operation's id.
    pub fn update_tools(&self, tools: Vec<FunctionDeclaration>) -> Result<Option<OpId>, Error> {
        self.command(Command::UpdateTools(tools)).map(|r| r.op)
    }

    /// The result of the tool call `call_id`; delivered exactly once, across reconnects.
    /// Returns the id of the output item in the context (`None` when the server had cancelled
    /// the call: the result is dropped, never sent, not added to the context). An error for
    /// an unknown or already answered call.
    pub fn send_tool_result(
        &self,
        call_id: impl Into<String>,
        output: serde_json::Value,
    ) -> Result<Option<ItemId>, Error> {
        self.tool_result(call_id.into(), output, false)
    }

    /// A failed tool call: the model receives `{"error": error}`.
    pub fn send_tool_error(
        &self,
        call_id: impl Into<String>,
        error: serde_json::Value,
    ) -> Result<Option<ItemId>, Error> {
        self.tool_result(call_id.into(), error, true)
    }

    fn tool_result(
        &self,
        call_id: String,
        output: serde_json::Value,
        is_error: bool,
    ) -> Result<Option<ItemId>, Error> {
        self.command(Command::ToolResult {
            call_id,
            output,
            is_error,
        })
        .map(|r| r.items.into_iter().next())
    }

    /// Asks the model to answer now. With instructions, they are a user turn in the context
    /// (answered once). Returns the receipt: the items and the operation it created.
    pub fn generate_reply(&self, instructions: Option<String>) -> Result<Receipt, Error> {
        self.command(Command::GenerateReply(instructions))
    }

    /// Stops delivering the current model turn: its remaining audio, text and transcripts are
    /// not passed on, and one [`SessionEvent::Interrupted`] says so. Gemini has no client-side
    /// truncation: the server keeps the whole turn in its context, and so does
    /// [`chat_ctx`](Self::chat_ctx) once the turn ends. To make the model stop, send input
    /// (a turn, or speech).
    pub fn interrupt(&self) -> Result<(), Error> {
        self.command(Command::Interrupt).map(drop)
    }

    /// The application's context, in the server's order: its own items plus model turns and
    /// tool exchanges, as they happen.
    pub fn chat_ctx(&self) -> ChatContext {
        self.shared.lock().core.chat_ctx().clone()
    }

    /// A one-line description of the session's state (connection, pending reconnect or
    /// rotation, the model's turn, operations not yet delivered), for diagnostics.
    pub fn describe(&self) -> String {
        let state = self.shared.lock();
        format!(
            "{:?}; shell: {} queued, {} actions",
            state.core,
            state.out.len(),
            state.actions.len()
        )
    }

    /// The context and its version (give the version to
    /// [`update_chat_ctx`](Self::update_chat_ctx)).
    pub fn snapshot(&self) -> (u64, ChatContext) {
        let state = self.shared.lock();
        (state.core.version(), state.core.chat_ctx().clone())
    }

    /// Waits until the context changes.
    pub async fn context_changed(&mut self) -> Result<(), Error> {
        let version = self.shared.lock().core.version();
        let mut changed = self.shared.changed.subscribe();
        loop {
            {
                let state = self.shared.lock();
                if state.core.closed().is_some() {
                    return Err(Error::Closed);
                }
                if state.core.version() != version {
                    return Ok(());
                }
            }
            if changed.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// Waits until the session has settled: connected, nothing queued or being written, no
    /// reconnect pending, the model not speaking. `Err(Closed)` if the session ends first.
    pub async fn settled(&self) -> Result<(), Error> {
        let mut changed = self.shared.changed.subscribe();
        loop {
            {
                let state = self.shared.lock();
                if state.core.closed().is_some() {
                    return Err(Error::Closed);
                }
                if state.core.is_settled() && state.out.is_empty() && state.actions.is_empty() {
                    return Ok(());
                }
            }
            if changed.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// Closes the session (and its connection); the event stream ends with
    /// [`SessionEvent::Closed`]. Every call after it returns [`Error::Closed`].
    pub async fn close(&self) -> Result<(), Error> {
        let mut changed = self.shared.changed.subscribe();
        let _ = self.command(Command::Close);
        // Wait until the driver has closed the socket (bounded by the close timeout).
        loop {
            {
                let state = self.shared.lock();
                if state.actions.is_empty() {
                    return Ok(());
                }
            }
            if changed.changed().await.is_err() {
                return Ok(());
            }
        }
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.shared.with(|state, now| {
            let _ = state.core.command(now, Command::Close);
        });
    }
}

/// A frame (or the end) from the reader task of a connection.
type Incoming = (ConnectionId, Result<ServerMessage, gemini_transport::Error>);

/// The open socket.
struct Socket {
    id: ConnectionId,
    sender: ConnectionSender,
    reader: JoinHandle<()>,
}

/// Audio written to a socket within this long before the connection broke may not have
/// reached the server (TCP gives no receipt): it is reported as [`SessionEvent::AudioDropped`].
const AUDIO_UNCONFIRMED: Duration = Duration::from_secs(1);

/// The task that performs the core's IO.
struct Driver {
    shared: Arc<Shared>,
    socket: Option<Socket>,
    incoming_tx: mpsc::UnboundedSender<Incoming>,
    incoming_rx: mpsc::UnboundedReceiver<Incoming>,
    /// Audio written on the open socket in the last [`AUDIO_UNCONFIRMED`]: when, how many bytes.
    recent_audio: VecDeque<(Instant, usize)>,
}

impl Driver {
    fn new(shared: Arc<Shared>) -> Self {
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        Self {
            shared,
            socket: None,
            incoming_tx,
            incoming_rx,
            recent_audio: VecDeque::new(),
        }
    }

    async fn run(mut self) {
        loop {
            let (actions, out, timeout, closed) = {
                let mut state = self.shared.lock();
                let actions: Vec<Action> = state.actions.iter().cloned().collect();
                let out: Vec<Out> = state.out.drain(..).collect();
                let timeout = state.core.poll_timeout();
                (actions, out, timeout, state.core.closed().is_some())
            };
            let wrote = !out.is_empty();
            self.write(out).await;
            if wrote {
                // The queue is empty now: `settled()` may be waiting for that.
                self.shared.changed.send_modify(|v| *v = v.wrapping_add(1));
            }
            for action in actions {
                self.act(action).await;
                self.shared.with(|state, _| {
                    state.actions.pop_front();
                });
            }
            if closed && self.shared.lock().actions.is_empty() {
                if let Some(socket) = self.socket.take() {
                    socket.reader.abort();
                }
                self.shared.changed.send_modify(|v| *v = v.wrapping_add(1));
                return;
            }
            let busy = {
                let state = self.shared.lock();
                !state.actions.is_empty() || !state.out.is_empty()
            };
            if busy {
                continue;
            }
            let deadline = timeout.map(|at| self.shared.epoch + Duration::from_millis(at.0));
            tokio::select! {
                biased;
                Some((id, frame)) = self.incoming_rx.recv() => self.on_frame(id, frame),
                () = self.shared.wake.notified() => {}
                () = sleep_until(deadline) => {
                    self.shared.with(|state, now| state.core.handle_timeout(now));
                }
            }
        }
    }

    fn on_frame(
        &mut self,
        id: ConnectionId,
        frame: Result<ServerMessage, gemini_transport::Error>,
    ) {
        match frame {
            Ok(message) => self.shared.with(|state, now| {
                state.core.handle_message(now, id, message);
            }),
            Err(e) if !e.ends_connection() => self.shared.with(|state, _| {
                state.emit(SessionEvent::Warning(format!(
                    "ignored a server frame: {e}"
                )));
            }),
            Err(e) => {
                let info = close_info(&e);
                let ours = self.socket.as_ref().is_some_and(|s| s.id == id);
                if ours {
                    self.socket = None;
                }
                let unconfirmed = if ours && info.class != gemini_transport::CloseClass::Normal {
                    self.unconfirmed_audio()
                } else {
                    Duration::ZERO
                };
                self.recent_audio.clear();
                self.shared.with(|state, now| {
                    if !unconfirmed.is_zero() {
                        state.emit(SessionEvent::AudioDropped {
                            duration: unconfirmed,
                        });
                    }
                    state.core.handle_closed(now, id, info, Some(Arc::new(e)));
                });
            }
        }
    }

    /// Writes what the core queued, feeding everything and flushing once. Audio that cannot be
    /// written (no socket, a socket already replaced, a failed write) goes back to the gap
    /// buffer: the next connection takes it.
    async fn write(&mut self, out: Vec<Out>) {
        if out.is_empty() {
            return;
        }
        let rate = self.shared.config.input_sample_rate;
        // Audio that did not go out, with the connection it was meant for.
        let mut unwritten: Vec<(ConnectionId, Vec<u8>)> = Vec::new();
        let mut failed = false;
        let mut wrote = false;
        for item in out {
            let socket = match self.socket.as_mut() {
                Some(socket) if !failed => socket,
                _ => {
                    if let Out::Audio(id, pcm) = item {
                        unwritten.push((id, pcm));
                    }
                    continue;
                }
            };
            let result = match &item {
                Out::Message(id, message) if *id == socket.id => socket.sender.feed(message).await,
                Out::Audio(id, pcm) if *id == socket.id => {
                    let fed = socket.sender.feed_audio(pcm, rate).await;
                    if fed.is_ok() {
                        self.recent_audio.push_back((Instant::now(), pcm.len()));
                    }
                    fed
                }
                _ => Ok(()),
            };
            match result {
                Ok(()) => {
                    wrote = true;
                    if let Out::Audio(id, pcm) = item {
                        if Some(id) != self.socket.as_ref().map(|s| s.id) {
                            // Meant for a connection that is gone.
                            unwritten.push((id, pcm));
                        }
                    }
                }
                Err(e) => {
                    // The reader reports the end of the connection.
                    tracing::debug!(error = %e, "write failed");
                    failed = true;
                    if let Out::Audio(id, pcm) = item {
                        unwritten.push((id, pcm));
                    }
                }
            }
        }
        if wrote && !failed {
            if let Some(socket) = self.socket.as_mut() {
                if let Err(e) = socket.sender.flush().await {
                    tracing::debug!(error = %e, "flush failed; the reader reports the close");
                }
            }
        }
        let horizon = Instant::now().checked_sub(AUDIO_UNCONFIRMED);
        while self
            .recent_audio
            .front()
            .is_some_and(|(at, _)| horizon.is_some_and(|h| *at < h))
        {
            self.recent_audio.pop_front();
        }
        if !unwritten.is_empty() {
            let chunk = self.shared.config.audio_chunk_bytes();
            self.shared.with(|state, _| {
                for (meant_for, pcm) in unwritten {
                    state.requeue_audio(meant_for, pcm, chunk);
                }
            });
        }
    }

    /// How much audio was written on the socket in the last [`AUDIO_UNCONFIRMED`].
    fn unconfirmed_audio(&self) -> Duration {
        let horizon = Instant::now().checked_sub(AUDIO_UNCONFIRMED);
        let bytes: usize = self
            .recent_audio
            .iter()
            .filter(|(at, _)| horizon.is_none_or(|h| *at >= h))
            .map(|(_, n)| n)
            .sum();
        let per_second = f64::from(self.shared.config.input_sample_rate) * 2.0;
        Duration::from_secs_f64(bytes as f64 / per_second.max(1.0))
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::Close {
                connection,
                code,
                reason,
            } => {
                if let Some(mut socket) = self.socket.take().filter(|s| s.id == connection) {
                    // Never two sockets: the old one is closed (the server's close answered,
                    // or the close timeout passed) before a new one is dialed.
                    let wait = self.shared.config.connect.close_timeout;
                    let _ = tokio::time::timeout(wait, socket.sender.close(code, reason)).await;
                    if tokio::time::timeout(wait, &mut socket.reader)
                        .await
                        .is_err()
                    {
                        socket.reader.abort();
                    }
                }
                // Frames of the old connection still queued are stale now.
                while self.incoming_rx.try_recv().is_ok() {}
            }
            Action::Open { connection, setup } => match self.open(connection, &setup).await {
                Ok(()) => self.shared.with(|state, now| {
                    state.core.handle_setup_complete(now, connection);
                    // Audio captured while no connection was up.
                    // The plan's messages go out first, then the buffered audio.
                    let chunk = self.shared.config.audio_chunk_bytes();
                    state.drain();
                    for pcm in state.gap.take() {
                        state.audio(&pcm, chunk);
                    }
                }),
                Err(e) => {
                    let info = close_info(&e);
                    self.shared.with(|state, now| {
                        state
                            .core
                            .handle_closed(now, connection, info, Some(Arc::new(e)));
                    });
                }
            },
        }
    }

    /// Dials, sends `setup` and waits for `setupComplete`.
    async fn open(
        &mut self,
        id: ConnectionId,
        setup: &ClientMessage,
    ) -> Result<(), gemini_transport::Error> {
        let config = &self.shared.config;
        let mut conn = Connection::connect(&config.endpoint, &config.connect).await?;
        conn.setup(setup).await?;
        let (sender, mut receiver) = conn.split();
        let tx = self.incoming_tx.clone();
        let reader = tokio::spawn(async move {
            loop {
                let frame = receiver.recv().await;
                let ends = frame.as_ref().err().is_some_and(|e| e.ends_connection());
                if tx.send((id, frame)).is_err() || ends {
                    break;
                }
            }
        });
        self.socket = Some(Socket { id, sender, reader });
        self.recent_audio.clear();
        Ok(())
    }
}

/// A transport error as the close the core is told about (with the error itself as the cause).
fn close_info(e: &gemini_transport::Error) -> CloseInfo {
    match e.close_info() {
        Some(info) => info.clone(),
        None => {
            let mut info = CloseInfo::abnormal(e.to_string(), false);
            info.class = e.class();
            info
        }
    }
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
