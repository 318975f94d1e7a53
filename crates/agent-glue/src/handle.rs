//! [`LiveSession`], the handle the application holds: its public API. Each call feeds the
//! session's [`Conduit`](crate::conduit::Conduit) under the shell's lock
//! ([`Shared::with`]) and returns what it created; nothing here decides anything.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use ctx_model::{ChatContext, Item, ItemId, Scheduling};
use gemini_transport::Endpoint;
use gemini_transport::wire::FunctionDeclaration;
use resume_policy::OpId;

use crate::audio_in::{AudioFormat, Sample};
use crate::conduit::{AtBound, CLOSE_FRAME_BUDGET, Conduit};
use crate::config::LiveSessionBuilder;
use crate::core::{Command, Receipt};
use crate::pcm::IntoPcm;
use crate::queue::EventQueue;
use crate::session::Shared;
use crate::{Error, SessionEvent};

/// A Gemini Live session that survives reconnects with its context exactly once.
///
/// Every input goes through the session's outbox, so none loses its effect because the
/// socket happens to be down: it is delivered by the next connection's plan, or reported as
/// a [`SessionEvent::Divergence`].
///
/// A cheap handle: clones share the one session (a tool task can hold one and answer its
/// call), and dropping the last clone closes it.
#[derive(Debug, Clone)]
pub struct LiveSession {
    shared: Arc<Shared>,
    /// Shared by every clone: its drop (the last clone's) closes the session.
    _owner: Arc<Owner>,
}

/// What closes the session when the last [`LiveSession`] clone is dropped.
#[derive(Debug)]
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.with(|state, now| {
            let _ = state.conduit.command(now, Command::Close);
        });
    }
}

/// The session's events, in order. A `futures_core::Stream`, or read with
/// [`recv`](Self::recv).
///
/// The queue is bounded ([`event_capacity`](crate::LiveSessionBuilder::event_capacity)):
/// an application that reads slower than the server talks loses model audio (reported by
/// [`SessionEvent::ModelAudioDropped`]) and nothing else, and the session stops reading the
/// server's frames until it catches up. Dropping this stream discards events from then on.
#[derive(Debug)]
pub struct SessionEvents {
    queue: Arc<EventQueue>,
    /// The session, whose socket [`recv`](Self::recv) reads while the queue is empty.
    shared: Arc<Shared>,
}

/// Hands the socket back to the driver when a call that polled it itself (`recv` reading it,
/// `push_audio_wait` writing it) returns or is dropped.
struct HandBack<'a> {
    shared: &'a Shared,
    /// What gives the socket back: [`Shared::read_by_driver`] or [`Shared::write_by_driver`].
    to_driver: fn(&Shared),
    polled: bool,
}

impl<'a> HandBack<'a> {
    fn new(shared: &'a Shared, to_driver: fn(&Shared)) -> Self {
        Self {
            shared,
            to_driver,
            polled: false,
        }
    }
}

impl Drop for HandBack<'_> {
    fn drop(&mut self) {
        if self.polled {
            (self.to_driver)(self.shared);
        }
    }
}

impl SessionEvents {
    /// The stream of `queue`, the events of session `shared`.
    pub(crate) fn new(shared: Arc<Shared>, queue: Arc<EventQueue>) -> Self {
        Self { queue, shared }
    }

    /// The next event; `None` once the session has ended and every event was read.
    ///
    /// While the queue is empty, the calling task reads the server's frames itself, so a frame
    /// wakes it and no other task on the way; when the call returns or is dropped (in a
    /// `select!`), the session's own task reads them again. (The `Stream` implementation
    /// waits on the queue alone.)
    ///
    /// # Cancel safety
    /// Cancel safe: a frame read by a call that is dropped is queued as events for the next.
    pub async fn recv(&mut self) -> Option<SessionEvent> {
        let mut reading = HandBack::new(&self.shared, Shared::read_by_driver);
        let queue = &self.queue;
        poll_fn(|cx| {
            if let Poll::Ready(event) = queue.pop(None) {
                return Poll::Ready(event);
            }
            reading.polled |= reading.shared.poll_read_app(cx);
            queue.pop(Some(cx.waker()))
        })
        .await
    }

    /// The next event if one is ready now.
    pub fn try_recv(&mut self) -> Option<SessionEvent> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.queue.poll_next(&mut cx) {
            Poll::Ready(event) => event,
            Poll::Pending => None,
        }
    }
}

impl futures_core::Stream for SessionEvents {
    type Item = SessionEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        self.queue.poll_next(cx)
    }
}

impl Drop for SessionEvents {
    fn drop(&mut self) {
        // Nobody reads any more: never hold the reader back for them.
        self.queue.end();
    }
}

/// The largest image [`LiveSession::push_video_frame`] takes: 7 MiB (about 9.3 MB once base64
/// encoded). A bound of this client's own, so that one call cannot queue an unbounded frame:
/// the service documents none for a frame, and a camera frame is tens of kilobytes.
pub const MAX_IMAGE_BYTES: usize = 7 << 20;

/// The encoding of an image or video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageFormat {
    /// `image/jpeg`.
    Jpeg,
    /// `image/png`.
    Png,
}

impl ImageFormat {
    /// The MIME type on the wire.
    #[must_use]
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }
}

/// What the session holds in its buffers now ([`LiveSession::buffered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Buffered {
    /// Frames queued for the socket and not yet taken by it.
    pub queued_frames: usize,
    /// Microphone audio waiting behind a busy writer (bounded by
    /// [`audio_backlog`](crate::LiveSessionBuilder::audio_backlog)).
    pub backlog: Duration,
    /// Microphone audio held while disconnected (bounded by the
    /// [`audio_gap`](crate::LiveSessionBuilder::audio_gap)).
    pub gap: Duration,
    /// Events waiting for the application.
    pub events: usize,
}

impl LiveSession {
    /// A builder for `model` at `endpoint`.
    pub fn builder(endpoint: Endpoint, model: impl Into<String>) -> LiveSessionBuilder {
        LiveSessionBuilder::new(endpoint, model)
    }

    /// The session for `shared` (made by [`LiveSessionBuilder::connect`]).
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let owner = Arc::new(Owner {
            shared: Arc::clone(&shared),
        });
        Self {
            shared,
            _owner: owner,
        }
    }

    /// The session's shared state.
    #[cfg(feature = "store")]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn command(&self, command: Command) -> Result<Receipt, Error> {
        self.shared
            .with(|state, now| state.conduit.command(now, command))
    }

    /// Not part of the API (hidden from the docs, no stability promise): any core
    /// [`Command`] as the methods below send them, for the simulator's loopback soak, which
    /// drives real sessions with the commands of its schedules. Applications call the methods.
    #[doc(hidden)]
    pub fn apply(&self, command: Command) -> Result<Receipt, Error> {
        self.command(command)
    }

    /// The operation a command queued (every command that queues one says so in its receipt).
    fn op_of(receipt: Receipt) -> Result<OpId, Error> {
        receipt
            .op
            .ok_or_else(|| Error::InvalidArgument("no operation created".to_owned()))
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
    /// into frames of [`audio_chunk`](crate::LiveSessionBuilder::audio_chunk) without copying).
    /// Pushed while the socket is idle, it is written before this returns, from the caller's
    /// thread; while the socket is busy it waits in the backlog
    /// ([`audio_backlog`](crate::LiveSessionBuilder::audio_backlog)), and while disconnected
    /// in the gap buffer ([`AudioGapPolicy`](crate::AudioGapPolicy)). At either bound the
    /// oldest audio is dropped and reported as [`SessionEvent::AudioDropped`]; see
    /// [`try_push_audio`](Self::try_push_audio) and [`push_audio_wait`](Self::push_audio_wait)
    /// for the other choices. An odd number of bytes (half a sample) is an
    /// [`Error::InvalidArgument`] and nothing is sent.
    pub fn push_audio(&self, pcm: impl IntoPcm) -> Result<(), Error> {
        self.push(pcm.into_pcm(), AtBound::DropOldest)
    }

    /// [`push_audio`](Self::push_audio), refused with [`Error::Full`] (nothing taken) when
    /// the audio buffer is at its bound.
    pub fn try_push_audio(&self, pcm: impl IntoPcm) -> Result<(), Error> {
        self.push(pcm.into_pcm(), AtBound::Refuse)
    }

    /// [`push_audio`](Self::push_audio), waiting for room when the audio buffer is at its
    /// bound (for a source that is not real time, such as a file).
    pub async fn push_audio_wait(&self, pcm: impl IntoPcm) -> Result<(), Error> {
        // Most pushes find room: they register nothing. A refused push hands the chunk back,
        // so no attempt keeps a second reference to it.
        let mut pcm = match self.push_or_return(pcm.into_pcm(), AtBound::Refuse) {
            Err((Error::Full { .. }, pcm)) => pcm,
            result => return result.map_err(|(error, _)| error),
        };
        // While it waits, this task writes the backlog itself as the socket takes it (the
        // socket wakes it, not the driver, which would then have to wake it); when the call
        // returns or is dropped, a socket still blocked is the driver's again.
        let mut writing = HandBack::new(&self.shared, Shared::write_by_driver);
        loop {
            // Registered before trying again, so that room made in between is not missed.
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.push_or_return(pcm, AtBound::Refuse) {
                Err((Error::Full { .. }, back)) => {
                    pcm = back;
                    let shared = writing.shared;
                    let polled = &mut writing.polled;
                    tokio::select! {
                        biased;
                        () = &mut room => {}
                        () = poll_fn(|cx| {
                            *polled = true;
                            shared.poll_write_for_room(cx)
                        }) => {}
                    }
                }
                result => return result.map_err(|(error, _)| error),
            }
        }
    }

    /// Microphone audio in any format: `i16` or `f32` samples (see [`Sample`]) at any rate
    /// from 8 to 384 kHz, mono or interleaved channels ([`AudioFormat`]). Channels are
    /// averaged to mono; a rate other than the session's
    /// ([`input_sample_rate`](crate::LiveSessionBuilder::input_sample_rate), 16 kHz by
    /// default) is resampled (rubato's FFT resampler, 10 ms at a time: up to 10 ms waits for
    /// the next push, and a change of rate flushes it). Then as
    /// [`push_audio`](Self::push_audio), the oldest audio dropped and reported at a bound.
    /// PCM16 at the session's rate is cheapest through [`push_audio`](Self::push_audio), which
    /// takes the bytes without a copy.
    ///
    /// A format out of range, or samples that are not whole frames, is an
    /// [`Error::InvalidArgument`] and nothing is taken.
    pub fn push_samples<S: Sample>(&self, samples: &[S], format: AudioFormat) -> Result<(), Error> {
        let mut input = self
            .shared
            .input
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.shared.lock().conduit.core().closed().is_some() {
            return Err(Error::Closed);
        }
        let pcm = input.convert(samples, format)?;
        if pcm.is_empty() {
            return Ok(());
        }
        self.push(pcm, AtBound::DropOldest)
    }

    /// PCM16 little-endian bytes in any format (see [`push_samples`](Self::push_samples)):
    /// a WAV file's data, a capture device's buffer. An odd number of bytes is an
    /// [`Error::InvalidArgument`] and nothing is taken.
    pub fn push_pcm16(&self, pcm: &[u8], format: AudioFormat) -> Result<(), Error> {
        if !pcm.len().is_multiple_of(2) {
            return Err(Error::InvalidArgument(format!(
                "PCM16 audio must have an even number of bytes, got {}",
                pcm.len()
            )));
        }
        let samples = crate::pcm::pcm16_to_i16(pcm);
        self.push_samples(&samples, format)
    }

    /// The hot path: the conduit frames the chunk (or keeps it), and what it queued is
    /// written from this thread, without [`Shared::with`]'s bookkeeping for waiters.
    fn push(&self, pcm: Bytes, at_bound: AtBound) -> Result<(), Error> {
        self.push_or_return(pcm, at_bound)
            .map_err(|(error, _)| error)
    }

    /// [`push`](Self::push), handing the chunk back when it is refused.
    fn push_or_return(&self, pcm: Bytes, at_bound: AtBound) -> Result<(), (Error, Bytes)> {
        let wake = {
            let now = self.shared.now();
            let mut state = self.shared.lock();
            state.conduit.push_audio_or_return(now, pcm, at_bound)?;
            state.settle(now)
        };
        if wake {
            self.shared.wake_driver();
        }
        Ok(())
    }

    /// The microphone closed (automatic activity detection).
    pub fn end_audio_stream(&self) -> Result<(), Error> {
        self.command(Command::AudioStreamEnd).map(drop)
    }

    /// The user started speaking: only with the server's activity detection off
    /// ([`automatic_activity_detection(false)`](crate::LiveSessionBuilder::automatic_activity_detection)).
    /// With it on, [`Error::ActivityDetectionOn`] and nothing is sent (the service would close
    /// the connection).
    pub fn activity_start(&self) -> Result<(), Error> {
        self.command(Command::ActivityStart).map(drop)
    }

    /// The user stopped speaking: ends the spoken turn, which the model answers. As
    /// [`activity_start`](Self::activity_start), only with automatic detection off.
    pub fn activity_end(&self) -> Result<(), Error> {
        self.command(Command::ActivityEnd).map(drop)
    }

    /// One frame of video (`realtimeInput.video`): a JPEG or PNG image, as a camera or a
    /// screen capture gives them; the service documents about one frame a second, and reads
    /// each at the session's
    /// [`media_resolution`](crate::LiveSessionBuilder::media_resolution). Video is realtime
    /// input like audio, not context: a frame pushed while no connection is up is dropped
    /// (the next one replaces it), and none is kept in the chat context; one pushed sooner
    /// than [`video_frame_interval`](crate::LiveSessionBuilder::video_frame_interval) after
    /// the last one sent (default 1 s) is dropped too. Returns whether it was handed to a
    /// connection. An empty frame, or one over [`MAX_IMAGE_BYTES`], is an
    /// [`Error::InvalidArgument`] and nothing is sent.
    pub fn push_video_frame(
        &self,
        frame: impl IntoPcm,
        format: ImageFormat,
    ) -> Result<bool, Error> {
        let frame = frame.into_pcm();
        if frame.is_empty() || frame.len() > MAX_IMAGE_BYTES {
            return Err(Error::InvalidArgument(format!(
                "an image of {} bytes (taken: 1 to {MAX_IMAGE_BYTES})",
                frame.len()
            )));
        }
        let mime_type = format.mime_type().to_owned();
        self.shared.with(|state, now| {
            let due = state.conduit.core().video_due(now);
            state
                .conduit
                .command(now, Command::Video { frame, mime_type })
                .map(|_| due)
        })
    }

    /// A still image for the model to look at (a photo, a screenshot): one video frame
    /// ([`push_video_frame`](Self::push_video_frame)), with the same bounds.
    pub fn send_image(&self, image: impl IntoPcm, format: ImageFormat) -> Result<bool, Error> {
        self.push_video_frame(image, format)
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
    /// by a reconnect whose `setup` carries it). Returns the operation's id (the one a
    /// [`SessionEvent::Divergence`] or a [`Reconnected`](crate::Reconnected) report names).
    pub fn update_instructions(&self, text: impl Into<String>) -> Result<OpId, Error> {
        Self::op_of(self.command(Command::UpdateInstructions(text.into()))?)
    }

    /// Changes the functions the model may call (the built-in tools of the builder stay).
    /// Returns the operation's id.
    pub fn update_tools(&self, tools: Vec<FunctionDeclaration>) -> Result<OpId, Error> {
        Self::op_of(self.command(Command::UpdateTools(tools))?)
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

    /// The session's counters since it started: reconnects by reason, operations replayed,
    /// uncertain and lost, the gaps, audio dropped, divergences. The same figures go to the
    /// [`metrics`](https://docs.rs/metrics) facade as they happen (names in
    /// [`SessionMetrics`](crate::SessionMetrics)), for whatever recorder the application
    /// installs.
    pub fn metrics(&self) -> crate::SessionMetrics {
        let mut metrics = self.shared.with(|state, _| state.metrics.clone());
        metrics.model_audio_dropped = self.shared.events.shed();
        metrics
    }

    /// The result of the tool call `call_id`, delivered as `options` say: for a call the
    /// model did not wait for (a non-blocking call, the default on gemini-3.8-live), when the
    /// model takes it up ([`Scheduling`]) and whether it is an interim result
    /// ([`ToolResultOptions::will_continue`]: more follow, each delivered once, in order).
    ///
    /// The session applies [`Scheduling::WhenIdle`] (and no scheduling, the service's
    /// default) itself: it holds the result until the model is idle, then sends it to be
    /// answered at once, by a model turn of its own. [`Scheduling::Interrupt`] goes at once;
    /// [`Scheduling::Silent`] goes at once and only enters the context. After a reconnect,
    /// results still owed go as soon as the new connection is set up.
    ///
    /// Errors: an unknown or already finally answered call, or `will_continue` for a call the
    /// model waits for (its result is final).
    pub fn send_tool_result_with(
        &self,
        call_id: impl Into<String>,
        output: serde_json::Value,
        options: ToolResultOptions,
    ) -> Result<Option<ItemId>, Error> {
        self.command(Command::ToolResult {
            call_id: call_id.into(),
            output,
            is_error: options.is_error,
            scheduling: options.scheduling,
            will_continue: options.will_continue,
        })
        .map(|r| r.items.into_iter().next())
    }

    fn tool_result(
        &self,
        call_id: String,
        output: serde_json::Value,
        is_error: bool,
    ) -> Result<Option<ItemId>, Error> {
        let options = ToolResultOptions {
            is_error,
            ..ToolResultOptions::default()
        };
        self.send_tool_result_with(call_id, output, options)
    }

    /// Asks the model to answer now. With instructions, they are a user turn in the context
    /// (answered once; [`chat_ctx`](Self::chat_ctx) shows it). Returns the id of the
    /// operation that asks (the one a [`SessionEvent::Divergence`] names if it cannot be
    /// delivered).
    pub fn generate_reply(&self, instructions: Option<String>) -> Result<OpId, Error> {
        Self::op_of(self.command(Command::GenerateReply(instructions))?)
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
        self.shared.lock().conduit.core().chat_ctx().clone()
    }

    /// A one-line description of the session's state (connection, pending reconnect or
    /// rotation, the model's turn, operations not yet delivered), for diagnostics.
    pub fn describe(&self) -> String {
        self.shared.lock().describe()
    }

    /// What the session holds in its buffers now: every one of them is bounded.
    pub fn buffered(&self) -> Buffered {
        let state = self.shared.lock();
        Buffered {
            queued_frames: state.conduit.queued_frames(),
            backlog: state.conduit.backlog(),
            gap: state.conduit.gap(),
            events: self.shared.events.len(),
        }
    }

    /// How many times the session's calls and its reader have woken the driver task so far
    /// (diagnostics for the hot path: audio pushed while the socket is idle wakes nothing).
    pub fn driver_wakeups(&self) -> u64 {
        self.shared.wakeups.load(Ordering::Relaxed)
    }

    /// How many times a change of the session has woken its lease keeper so far (feature
    /// `store`; diagnostics: only a change of what it saves, or the session's end, wakes it,
    /// not every server frame).
    #[cfg(feature = "store")]
    pub fn keeper_wakeups(&self) -> u64 {
        self.shared.keeper_wakeups.load(Ordering::Relaxed)
    }

    /// The context and its version (give the version to
    /// [`update_chat_ctx`](Self::update_chat_ctx)).
    pub fn snapshot(&self) -> (u64, ChatContext) {
        let state = self.shared.lock();
        let core = state.conduit.core();
        (core.version(), core.chat_ctx().clone())
    }

    /// Waits until the context changes.
    pub async fn context_changed(&mut self) -> Result<(), Error> {
        let version = self.shared.lock().conduit.core().version();
        let mut changed = self.shared.watch();
        loop {
            {
                let state = self.shared.lock();
                let core = state.conduit.core();
                if core.closed().is_some() {
                    return Err(Error::Closed);
                }
                if core.version() != version {
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
        self.until(Conduit::is_settled).await
    }

    /// Waits until the session has settled and no tool call awaits its result
    /// ([`Conduit::is_drained`]). `Err(Closed)` if the session ends first.
    #[cfg_attr(not(feature = "store"), allow(dead_code))]
    pub(crate) async fn drained(&self) -> Result<(), Error> {
        self.until(Conduit::is_drained).await
    }

    async fn until(&self, done: fn(&Conduit) -> bool) -> Result<(), Error> {
        let mut changed = self.shared.watch();
        loop {
            {
                let state = self.shared.lock();
                if state.conduit.core().closed().is_some() {
                    return Err(Error::Closed);
                }
                if done(&state.conduit) {
                    return Ok(());
                }
            }
            if changed.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// Closes the session; the event stream ends with [`SessionEvent::Closed`]. Every call
    /// after it returns [`Error::Closed`], whatever the socket does: this returns once the
    /// close frame is written, or abandoned when the socket does not take it (a peer that
    /// stopped reading) within a quarter of a second; the closing handshake finishes in the
    /// background, bounded by the close timeout. A second `close()`, like a `close()` after the
    /// session ended on its own, is [`Error::Closed`] at once. With a session store (feature
    /// `store`), the final state is saved and the lease released in the background once the
    /// socket is gone; `hand_off` (feature `store`) waits for that and says how it went.
    pub async fn close(&self) -> Result<(), Error> {
        let mut changed = self.shared.watch();
        self.command(Command::Close)?;
        let released = async {
            loop {
                if self.shared.lock().conduit.socket_released() {
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        };
        // The conduit releases the socket within the close frame's budget; this bound only
        // covers a driver that is gone (its runtime shut down).
        let _ = tokio::time::timeout(
            self.shared
                .config
                .connect
                .close_timeout
                .max(CLOSE_FRAME_BUDGET),
            released,
        )
        .await;
        Ok(())
    }
}

/// How [`LiveSession::send_tool_result_with`] delivers a result.
///
/// ```
/// use agent_glue::{Scheduling, ToolResultOptions};
///
/// // A progress report the model only notes, then the final result it talks about.
/// let interim = ToolResultOptions::new().scheduling(Scheduling::Silent).will_continue(true);
/// let last = ToolResultOptions::new().scheduling(Scheduling::WhenIdle);
/// assert!(interim.will_continue && !last.will_continue);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ToolResultOptions {
    /// When the model takes the result up (non-blocking calls; `None`: when idle).
    pub scheduling: Option<Scheduling>,
    /// An interim result: more results of the same call follow.
    pub will_continue: bool,
    /// The call failed: the model receives `{"error": output}`.
    pub is_error: bool,
}

impl ToolResultOptions {
    /// A final, successful result, taken up when the model is idle.
    pub fn new() -> Self {
        Self::default()
    }

    /// When the model takes it up.
    #[must_use]
    pub fn scheduling(mut self, scheduling: Scheduling) -> Self {
        self.scheduling = Some(scheduling);
        self
    }

    /// An interim result (`true`): more follow.
    #[must_use]
    pub fn will_continue(mut self, will_continue: bool) -> Self {
        self.will_continue = will_continue;
        self
    }

    /// A failure rather than a result.
    #[must_use]
    pub fn error(mut self) -> Self {
        self.is_error = true;
        self
    }
}
