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
use ctx_model::{ChatContext, Item, ItemId};
use gemini_transport::Endpoint;
use gemini_transport::wire::FunctionDeclaration;
use resume_policy::OpId;

use crate::conduit::{AtBound, CLOSE_FRAME_BUDGET};
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
/// a [`SessionEvent::Divergence`]. Dropping the session closes it.
#[derive(Debug)]
pub struct LiveSession {
    shared: Arc<Shared>,
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
}

impl SessionEvents {
    /// The stream of `queue`.
    pub(crate) fn new(queue: Arc<EventQueue>) -> Self {
        Self { queue }
    }

    /// The next event; `None` once the session has ended and every event was read.
    pub async fn recv(&mut self) -> Option<SessionEvent> {
        poll_fn(|cx| self.queue.poll_next(cx)).await
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
        Self { shared }
    }

    fn command(&self, command: Command) -> Result<Receipt, Error> {
        self.shared
            .with(|state, now| state.conduit.command(now, command))
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
        let pcm = pcm.into_pcm();
        // Most pushes find room: they register nothing.
        match self.push(pcm.clone(), AtBound::Refuse) {
            Err(Error::Full { .. }) => {}
            result => return result,
        }
        loop {
            // Registered before trying again, so that room made in between is not missed.
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.push(pcm.clone(), AtBound::Refuse) {
                Err(Error::Full { .. }) => room.await,
                result => return result,
            }
        }
    }

    /// The hot path: the conduit frames the chunk (or keeps it), and what it queued is
    /// written from this thread, without [`Shared::with`]'s bookkeeping for waiters.
    fn push(&self, pcm: Bytes, at_bound: AtBound) -> Result<(), Error> {
        let wake = {
            let now = self.shared.now();
            let mut state = self.shared.lock();
            state.conduit.push_audio(now, pcm, at_bound)?;
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
        let mut changed = self.shared.changed.subscribe();
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
        let mut changed = self.shared.changed.subscribe();
        loop {
            {
                let state = self.shared.lock();
                if state.conduit.core().closed().is_some() {
                    return Err(Error::Closed);
                }
                if state.conduit.is_settled() {
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
    /// session ended on its own, is [`Error::Closed`] at once.
    pub async fn close(&self) -> Result<(), Error> {
        let mut changed = self.shared.changed.subscribe();
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

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.shared.with(|state, now| {
            let _ = state.conduit.command(now, Command::Close);
        });
    }
}
