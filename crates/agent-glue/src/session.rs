//! `LiveSession`: the handle the application holds.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ctx_model::ChatContext;
use gemini_transport::Endpoint;
use gemini_transport::wire::FunctionDeclaration;
use tokio::sync::{mpsc, oneshot, watch};

use crate::actor::{Actor, Command};
use crate::config::LiveSessionBuilder;
use crate::{Error, SessionEvent};

/// A Gemini Live session that survives reconnects with its context exactly once.
///
/// Every input goes through the session's outbox, so none loses its effect because the
/// socket happens to be down: it is delivered by the next connection's plan, or reported as
/// a [`SessionEvent::Divergence`]. Dropping the session closes it.
#[derive(Debug)]
pub struct LiveSession {
    commands: mpsc::UnboundedSender<Command>,
    context: watch::Receiver<ChatContext>,
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

impl LiveSessionBuilder {
    /// Connects: returns once the first `setup` is complete (and the initial context, if any,
    /// is seeded), or with the error that prevented it.
    pub async fn connect(mut self) -> Result<(LiveSession, SessionEvents), Error> {
        let (policy, capabilities) = self.resolve()?;
        let initial = std::mem::take(&mut self.initial_context);
        let config = Arc::new(self.config);
        let (command_tx, command_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (context_tx, context_rx) = watch::channel(initial.clone());
        let mut actor = Actor::new(
            config,
            policy,
            capabilities,
            initial,
            command_rx,
            event_tx,
            context_tx,
        );
        actor.first_connect().await?;
        tokio::spawn(actor.run());
        Ok((
            LiveSession {
                commands: command_tx,
                context: context_rx,
            },
            SessionEvents { rx: event_rx },
        ))
    }
}

impl LiveSession {
    /// A builder for `model` at `endpoint`.
    pub fn builder(endpoint: Endpoint, model: impl Into<String>) -> LiveSessionBuilder {
        LiveSessionBuilder::new(endpoint, model)
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::Closed)
    }

    /// A typed user turn: appended to the context and answered by the model.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), Error> {
        self.send(Command::Text(text.into()))
    }

    /// Microphone audio: PCM16 little-endian mono at 16 kHz, any length (the session cuts it
    /// into frames of [`audio_chunk`](crate::LiveSessionBuilder::audio_chunk)). While
    /// disconnected it is buffered or dropped per [`AudioGapPolicy`](crate::AudioGapPolicy).
    /// An odd number of bytes (half a sample) is an [`Error::InvalidArgument`] and nothing is
    /// sent.
    pub fn push_audio(&self, pcm: impl Into<Vec<u8>>) -> Result<(), Error> {
        let pcm = pcm.into();
        if pcm.len() % 2 != 0 {
            return Err(Error::InvalidArgument(format!(
                "PCM16 audio must have an even number of bytes, got {}",
                pcm.len()
            )));
        }
        if pcm.is_empty() {
            return Ok(());
        }
        self.send(Command::Audio(pcm))
    }

    /// The microphone closed (automatic activity detection).
    pub fn end_audio_stream(&self) -> Result<(), Error> {
        self.send(Command::AudioStreamEnd)
    }

    /// The user started speaking (manual activity detection).
    pub fn activity_start(&self) -> Result<(), Error> {
        self.send(Command::ActivityStart)
    }

    /// The user stopped speaking (manual activity detection).
    pub fn activity_end(&self) -> Result<(), Error> {
        self.send(Command::ActivityEnd)
    }

    /// Replaces the application's chat context. Appended items are delivered (as history,
    /// without asking for an answer); edits and removals of items the server holds are
    /// handled by the policy (a fresh seeded session by default, or a divergence event).
    pub async fn update_chat_ctx(&self, context: ChatContext) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::UpdateContext(context, tx))?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Changes the system instruction (by `contextUpdate` where the model has it, otherwise
    /// by a reconnect whose `setup` carries it).
    pub fn update_instructions(&self, text: impl Into<String>) -> Result<(), Error> {
        self.send(Command::UpdateInstructions(text.into()))
    }

    /// Changes the functions the model may call.
    pub fn update_tools(&self, tools: Vec<FunctionDeclaration>) -> Result<(), Error> {
        self.send(Command::UpdateTools(tools))
    }

    /// The result of the tool call `call_id`; delivered exactly once, across reconnects.
    /// An error for an unknown or already answered call. The result of a call the server
    /// cancelled ([`SessionEvent::ToolCallCancelled`]) is dropped: never sent, not added to
    /// the context.
    pub async fn send_tool_result(
        &self,
        call_id: impl Into<String>,
        output: serde_json::Value,
    ) -> Result<(), Error> {
        self.tool_result(call_id.into(), output, false).await
    }

    /// A failed tool call: the model receives `{"error": error}`.
    pub async fn send_tool_error(
        &self,
        call_id: impl Into<String>,
        error: serde_json::Value,
    ) -> Result<(), Error> {
        self.tool_result(call_id.into(), error, true).await
    }

    async fn tool_result(
        &self,
        call_id: String,
        output: serde_json::Value,
        is_error: bool,
    ) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ToolResult {
            call_id,
            output,
            is_error,
            reply,
        })?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Asks the model to answer now, optionally with extra instructions.
    pub fn generate_reply(&self, instructions: Option<String>) -> Result<(), Error> {
        self.send(Command::GenerateReply(instructions))
    }

    /// Stops the current model turn locally (discard unplayed audio).
    pub fn interrupt(&self) -> Result<(), Error> {
        self.send(Command::Interrupt)
    }

    /// The application's context: its own items plus completed model turns and tool
    /// exchanges, as they happen.
    pub fn chat_ctx(&self) -> ChatContext {
        self.context.borrow().clone()
    }

    /// Waits until the context changes.
    pub async fn context_changed(&mut self) -> Result<(), Error> {
        self.context.changed().await.map_err(|_| Error::Closed)
    }

    /// Closes the session (and its connection); the event stream ends with
    /// [`SessionEvent::Closed`].
    pub async fn close(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Close(tx))?;
        rx.await.map_err(|_| Error::Closed)
    }
}
