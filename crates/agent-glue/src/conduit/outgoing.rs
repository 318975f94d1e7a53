//! The write queue: what goes out on a connection's socket, in the core's order, as the
//! socket takes it.
//!
//! Audio moves through it as runs (one entry per push or per batch of what waited, a
//! reference to the application's [`Bytes`]), cut into frames only as they are written: a
//! frame is a borrowed slice, so writing one costs no allocation and no reference count.
//! What the socket does not take now stays at the front.
//!
//! **Bursts.** A chunk pushed at real time is written and flushed at once, from the caller's
//! thread. A producer that pushes faster than real time (a file, a synthesiser, a microphone
//! catching up) would pay one socket write per chunk that way; once the audio pushed runs
//! ahead of the clock by more than [`BURST_LEAD`] ([`Producer`]), the flush is held while only
//! audio waits for it, until [`BURST_FRAMES`] frames are taken or [`BURST_WINDOW`] has passed,
//! so that a burst goes out in few writes (as a client that feeds its frames and flushes once
//! does by hand). Anything else taken (a message, a ping, the close frame) is flushed at once,
//! and so is everything of a producer at real time: audio that runs that far ahead of the clock
//! is not needed before its time, and a chunk at real time is never held.

use std::collections::VecDeque;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use gemini_transport::wire::ClientMessage;
use resume_policy::{ConnectionId, Millis};

/// How far ahead of the clock the audio pushed must run before the flush of a burst is held.
pub const BURST_LEAD: Duration = Duration::from_millis(100);

/// The most frames of a burst one flush waits for.
pub const BURST_FRAMES: usize = 16;

/// The longest a burst's flush is held.
pub const BURST_WINDOW: Duration = Duration::from_millis(10);

/// The application's audio as a clock: where the audio pushed so far ends, if each push
/// continued from the later of the previous push's end and the time it was pushed. A producer
/// at real time stays within a chunk of the clock; one faster than real time runs ahead of it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Producer {
    /// Where the audio pushed ends, µs since the session's epoch.
    end_us: u64,
}

impl Producer {
    /// `bytes` of audio (at `bytes_per_second`) pushed at `now`.
    pub(crate) fn pushed(&mut self, now: Millis, bytes: usize, bytes_per_second: u64) {
        let now_us = now.0.saturating_mul(1_000);
        let duration_us = (bytes as u64).saturating_mul(1_000_000) / bytes_per_second.max(1);
        self.end_us = self.end_us.max(now_us).saturating_add(duration_us);
    }

    /// Whether the audio pushed runs ahead of `now` by more than [`BURST_LEAD`].
    pub(crate) fn bursting(&self, now: Millis) -> bool {
        let lead_us = u64::try_from(BURST_LEAD.as_micros()).unwrap_or(u64::MAX);
        self.end_us > now.0.saturating_mul(1_000).saturating_add(lead_us)
    }
}

/// One frame for a connection's socket, borrowed from the write queue.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// A `realtimeInput.audio` frame of this PCM (16-bit mono at the session's input rate).
    Audio(&'a [u8]),
    /// A client message.
    Message(&'a ClientMessage),
    /// A WebSocket ping: its pong proves that the server read everything written before it.
    Ping,
    /// The close frame, the last frame of its connection.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: &'a str,
    },
}

/// The socket failed: it takes nothing more. Its end is reported by whoever reads it
/// ([`Conduit::handle_closed`](super::Conduit::handle_closed)), or found by the write deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkFailed;

/// A connection's socket as the writer sees it, in the shape of a `futures` `Sink`: the shell
/// implements it over its WebSocket sender, the simulator over its network model.
pub trait FrameSink {
    /// `Ready(Ok)` once the socket can take one more frame; `Pending` when it cannot now (the
    /// driver is told when it can: a waker, a simulated event).
    fn poll_ready(&mut self) -> Poll<Result<(), SinkFailed>>;
    /// Takes `frame`, after [`poll_ready`](Self::poll_ready) returned `Ready(Ok)`.
    fn start_send(&mut self, frame: Frame<'_>) -> Result<(), SinkFailed>;
    /// Writes what was taken to the socket; `Pending` until the socket took all of it.
    fn poll_flush(&mut self) -> Poll<Result<(), SinkFailed>>;
}

/// One entry of the queue.
#[derive(Debug)]
enum Out {
    /// Boxed: audio, by far the most frequent, moves through the queue as a small value.
    Message(ConnectionId, Box<ClientMessage>),
    Ping(ConnectionId),
    Close {
        connection: ConnectionId,
        code: u16,
        reason: &'static str,
    },
    /// A run of audio, written as frames of `frame_len` bytes; what is left of it after a
    /// partial write stays at the front.
    Audio {
        connection: ConnectionId,
        pcm: Bytes,
        frame_len: usize,
    },
}

impl Out {
    fn connection(&self) -> ConnectionId {
        match self {
            Self::Message(id, _) | Self::Ping(id) => *id,
            Self::Close { connection, .. } | Self::Audio { connection, .. } => *connection,
        }
    }

    /// How many frames it is on the wire.
    fn frames(&self) -> usize {
        match self {
            Self::Audio { pcm, frame_len, .. } => pcm.len().div_ceil((*frame_len).max(1)),
            _ => 1,
        }
    }
}

/// What the socket took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Took {
    /// An audio frame of this many bytes.
    Audio(usize),
    Message,
    Ping,
    Close,
}

/// The write queue of a session (every connection's entries, in order; only one connection
/// has entries at a time).
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    queue: VecDeque<Out>,
}

impl Outgoing {
    pub(crate) fn message(&mut self, connection: ConnectionId, message: ClientMessage) {
        self.queue
            .push_back(Out::Message(connection, Box::new(message)));
    }

    pub(crate) fn ping(&mut self, connection: ConnectionId) {
        self.queue.push_back(Out::Ping(connection));
    }

    pub(crate) fn close(&mut self, connection: ConnectionId, code: u16, reason: &'static str) {
        self.queue.push_back(Out::Close {
            connection,
            code,
            reason,
        });
    }

    pub(crate) fn audio(&mut self, connection: ConnectionId, pcm: Bytes, frame_len: usize) {
        self.queue.push_back(Out::Audio {
            connection,
            pcm,
            frame_len,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Frames queued.
    pub(crate) fn frames(&self) -> usize {
        self.queue.iter().map(Out::frames).sum()
    }

    /// Bytes of audio queued.
    pub(crate) fn audio_bytes(&self) -> usize {
        self.queue
            .iter()
            .map(|out| match out {
                Out::Audio { pcm, .. } => pcm.len(),
                _ => 0,
            })
            .sum()
    }

    /// The connection of the front entry.
    pub(crate) fn front_connection(&self) -> Option<ConnectionId> {
        self.queue.front().map(Out::connection)
    }

    /// Removes every entry of `connection` (gone, failed or closing): its messages are lost
    /// with it (the ledger replays what it must), what is left of its audio runs is returned
    /// in order.
    pub(crate) fn purge(&mut self, connection: ConnectionId) -> Vec<Bytes> {
        let mut audio = Vec::new();
        self.queue.retain_mut(|out| {
            if out.connection() != connection {
                return true;
            }
            if let Out::Audio { pcm, .. } = out {
                audio.push(std::mem::take(pcm));
            }
            false
        });
        audio
    }

    /// Hands the front frame to `sink` (which said it is ready). A run of audio gives its next
    /// frame and keeps the rest at the front; a failed write leaves audio at the front (to be
    /// purged) and loses anything else with the connection.
    pub(crate) fn write_front(
        &mut self,
        sink: &mut impl FrameSink,
    ) -> Option<Result<Took, SinkFailed>> {
        let front = self.queue.front_mut()?;
        let (result, took, done) = match front {
            Out::Audio { pcm, frame_len, .. } => {
                let len = (*frame_len).max(1).min(pcm.len());
                let result = sink.start_send(Frame::Audio(&pcm[..len]));
                if result.is_ok() {
                    pcm.advance(len);
                }
                (result, Took::Audio(len), pcm.is_empty())
            }
            Out::Message(_, message) => (
                sink.start_send(Frame::Message(message)),
                Took::Message,
                true,
            ),
            Out::Ping(_) => (sink.start_send(Frame::Ping), Took::Ping, true),
            Out::Close { code, reason, .. } => (
                sink.start_send(Frame::Close {
                    code: *code,
                    reason,
                }),
                Took::Close,
                true,
            ),
        };
        let audio = matches!(took, Took::Audio(_));
        if done || (result.is_err() && !audio) {
            self.queue.pop_front();
        }
        Some(result.map(|()| took))
    }
}
