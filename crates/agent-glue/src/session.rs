//! `LiveSession`: the handle the application holds, and the async shell that moves frames and
//! timers between the sockets and the [`SessionCore`].
//!
//! The shell decides nothing. Everything, the core and the open socket's writer included,
//! sits in one [`State`] behind a mutex shared by the handle, the driver task and the reader
//! task (as quinn shares its `quinn_proto::Connection`):
//!
//! - A call such as [`LiveSession::send_text`] runs the core synchronously, so it returns the
//!   ids it created and fails with [`Error::Closed`] the moment the session has ended; then it
//!   writes what the core queued itself, without waiting: the socket is polled once, with a
//!   no-op waker. Only when the socket cannot take everything now is the driver woken, and
//!   from then on the driver alone polls the writer (with its own waker) until it is idle
//!   again.
//! - Microphone audio takes the same path: a chunk pushed while the writer is idle goes to the
//!   socket from the caller's thread, with no hand-off and no wake-up of another task, and
//!   costs the core one counter. While the writer is busy, chunks wait in a bounded backlog
//!   that the core has not counted yet (so it can shed the oldest), and the driver hands the
//!   whole backlog over as one batch when the write completes.
//! - The reader task feeds each server frame to the core itself, and reads the next frame only
//!   while the application's event queue has room: TCP pushes back on the server.
//! - The driver dials and closes as the core asks, arms the core's timer, and enforces the
//!   socket's liveness: a write that makes no progress within the write timeout, or a ping
//!   left unanswered past the keepalive timeout, ends the connection as lost (1006); the core
//!   reconnects and its ledger replays what the server may not have.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use ctx_model::{ChatContext, Item, ItemId};
use gemini_transport::wire::{ClientMessage, FunctionDeclaration};
use gemini_transport::{CloseInfo, Connection, ConnectionReceiver, ConnectionSender, Endpoint};
use resume_policy::{ConnectionId, Millis, OpId};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::audio_path::{self, AtBound, AudioOut, AudioPath, Pushed};
use crate::config::{LiveSessionBuilder, SessionConfig};
use crate::core::{Action, Command, CoreConfig, Receipt, SessionCore};
use crate::queue::EventQueue;
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

/// Audio the session can take: [`Bytes`] (and what converts into it without a copy: `Vec<u8>`,
/// `Box<[u8]>`) is shared as it is; a borrowed slice or array is copied once.
pub trait IntoPcm {
    /// The samples as [`Bytes`].
    fn into_pcm(self) -> Bytes;
}

impl IntoPcm for Bytes {
    fn into_pcm(self) -> Bytes {
        self
    }
}

impl IntoPcm for &Bytes {
    fn into_pcm(self) -> Bytes {
        self.clone()
    }
}

impl IntoPcm for Vec<u8> {
    fn into_pcm(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoPcm for Box<[u8]> {
    fn into_pcm(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoPcm for &[u8] {
    fn into_pcm(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoPcm for &Vec<u8> {
    fn into_pcm(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoPcm for [u8; N] {
    fn into_pcm(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl<const N: usize> IntoPcm for &[u8; N] {
    fn into_pcm(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

/// What goes out on a connection, in the core's order.
enum Out {
    /// One frame.
    Frame(ConnectionId, Frame),
    /// A run of audio, written as frames of `frame_len` bytes; what is left of it after a
    /// partial write stays at the front.
    Audio {
        connection: ConnectionId,
        pcm: Bytes,
        frame_len: usize,
    },
}

/// A frame other than audio.
enum Frame {
    /// Boxed: audio, by far the most frequent, moves through the queue as a small value.
    Message(Box<ClientMessage>),
    Ping,
}

impl Out {
    /// How many frames it is on the wire.
    fn frames(&self) -> usize {
        match self {
            Self::Audio { pcm, frame_len, .. } => pcm.len().div_ceil((*frame_len).max(1)),
            Self::Frame(..) => 1,
        }
    }

    fn connection(&self) -> ConnectionId {
        match self {
            Self::Frame(id, _) => *id,
            Self::Audio { connection, .. } => *connection,
        }
    }
}

/// Audio written to a socket within this long before the connection broke may not have
/// reached the server (TCP gives no receipt): it is reported as [`SessionEvent::AudioDropped`].
const AUDIO_UNCONFIRMED: Duration = Duration::from_secs(1);

/// The longest the close frame of a closing connection may take to write.
const CLOSE_FRAME_BUDGET: Duration = Duration::from_millis(250);

/// The open socket, as the writer sees it.
struct Link {
    id: ConnectionId,
    sender: ConnectionSender,
    reader: Option<JoinHandle<()>>,
    /// Frames handed to the sender and not flushed yet.
    unflushed: bool,
    /// The socket could not take everything: the driver polls the writer (with its waker),
    /// and nobody else may until it is idle again.
    busy: bool,
    /// A write failed; the connection is gone (its reader, or the write deadline, reports it).
    failed: bool,
    /// The last time the socket took a frame or finished a flush.
    progress: Instant,
    /// Audio written in the last [`AUDIO_UNCONFIRMED`].
    recent_audio: RecentAudio,
    /// The ping waiting for its pong: the pong count before it, and when it was queued.
    ping: Option<(u64, Instant)>,
    last_ping: Instant,
}

impl Link {
    fn new(id: ConnectionId, sender: ConnectionSender) -> Self {
        let now = Instant::now();
        Self {
            id,
            sender,
            reader: None,
            unflushed: false,
            busy: false,
            failed: false,
            progress: now,
            recent_audio: RecentAudio::new(now),
            ping: None,
            last_ping: now,
        }
    }

    fn idle(&self) -> bool {
        !self.busy && !self.failed && !self.unflushed
    }

    fn fail(&mut self, error: &gemini_transport::Error) {
        tracing::debug!(%error, connection = self.id.0, "write failed");
        self.failed = true;
        self.busy = false;
    }

    /// How much audio was written in the last [`AUDIO_UNCONFIRMED`].
    fn unconfirmed_audio(&self, sample_rate: u32) -> Duration {
        let bytes = self.recent_audio.within_horizon(Instant::now());
        let per_second = f64::from(sample_rate) * 2.0;
        Duration::from_secs_f64(bytes as f64 / per_second.max(1.0))
    }

    /// Stops the reader and drops the socket.
    fn shut(mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

/// Slots of [`RecentAudio`]: sixteen of 1/16 s cover the last [`AUDIO_UNCONFIRMED`], and one
/// more the slot under way.
const RECENT_SLOTS: usize = 17;

/// Audio bytes written per 1/16 of [`AUDIO_UNCONFIRMED`], in a ring held inline: recording a
/// write costs a division and an addition, and no allocation. What it reports covers at least
/// the last [`AUDIO_UNCONFIRMED`] and at most 1/16 of it more (it may over-report, never
/// under-report, what the server may not have).
struct RecentAudio {
    epoch: Instant,
    /// The newest slot written, counted from `epoch`.
    newest: u64,
    bytes: [usize; RECENT_SLOTS],
}

impl RecentAudio {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            newest: 0,
            bytes: [0; RECENT_SLOTS],
        }
    }

    fn slot(&self, at: Instant) -> u64 {
        let slot_nanos = (AUDIO_UNCONFIRMED.as_nanos() / (RECENT_SLOTS as u128 - 1)).max(1);
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos() / slot_nanos)
            .unwrap_or(u64::MAX)
    }

    fn index(slot: u64) -> usize {
        (slot % RECENT_SLOTS as u64) as usize
    }

    fn record(&mut self, at: Instant, bytes: usize) {
        let slot = self.slot(at);
        if slot > self.newest {
            // The slots passed over since the newest write held nothing.
            let passed = (slot - self.newest).min(RECENT_SLOTS as u64);
            for back in 0..passed {
                self.bytes[Self::index(slot - back)] = 0;
            }
            self.newest = slot;
        }
        let newest = Self::index(self.newest);
        self.bytes[newest] = self.bytes[newest].saturating_add(bytes);
    }

    /// Bytes written within the horizon before `now`.
    fn within_horizon(&self, now: Instant) -> usize {
        let oldest = self.slot(now).saturating_sub(RECENT_SLOTS as u64 - 1);
        (oldest..=self.newest)
            .take(RECENT_SLOTS)
            .map(|slot| self.bytes[Self::index(slot)])
            .sum()
    }
}

/// The state the handle, the driver and the reader share.
struct State {
    core: SessionCore,
    out: VecDeque<Out>,
    actions: VecDeque<Action>,
    link: Option<Link>,
    /// Microphone audio on its way to frames: the gap buffer and the backlog (not counted by
    /// the core until handed to a connection).
    audio: AudioPath,
    events: Arc<EventQueue>,
    /// The core's deadline the driver sleeps until.
    armed: Option<Millis>,
    /// The application's close has released the socket (close frame written or abandoned).
    released: bool,
    /// The reader waits for the application to read its events.
    reading_paused: bool,
    sample_rate: u32,
}

/// Where the audio path's output goes in the shell: frames onto the write queue, drops to the
/// application's events.
struct ShellAudio<'a> {
    out: &'a mut VecDeque<Out>,
    events: &'a EventQueue,
}

impl AudioOut for ShellAudio<'_> {
    fn audio(&mut self, connection: ConnectionId, pcm: Bytes, frame_len: usize) {
        self.out.push_back(Out::Audio {
            connection,
            pcm,
            frame_len,
        });
    }

    fn dropped(&mut self, duration: Duration) {
        self.events.push(SessionEvent::AudioDropped { duration });
    }
}

impl State {
    /// Moves what the core produced into the shell's queues (events to the application).
    fn drain(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.out.push_back(Out::Frame(
                t.connection,
                Frame::Message(Box::new(t.message)),
            ));
        }
        while let Some(a) = self.core.poll_action() {
            self.actions.push_back(a);
        }
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
        if self.core.closed().is_some() {
            self.events.end();
        }
    }

    fn emit(&self, event: SessionEvent) {
        self.events.push(event);
    }

    /// The audio path with its output wired to the write queue and the events.
    fn audio_path(&mut self) -> (&mut AudioPath, &mut SessionCore, ShellAudio<'_>) {
        (
            &mut self.audio,
            &mut self.core,
            ShellAudio {
                out: &mut self.out,
                events: &self.events,
            },
        )
    }

    /// Audio that did not go out on the connection it was meant for ([`AudioPath::requeue`]).
    fn requeue_audio(&mut self, meant_for: ConnectionId, pcm: Bytes) {
        let (audio, core, mut out) = self.audio_path();
        audio.requeue(core, meant_for, pcm, &mut out);
    }

    /// Hands what waits to the connection that takes audio ([`AudioPath::flush`]).
    fn flush_backlog(&mut self) {
        let (audio, core, mut out) = self.audio_path();
        audio.flush(core, &mut out);
    }

    /// The connection is gone: what waited behind its writer waits for the next one.
    fn backlog_to_gap(&mut self) {
        let (audio, _, mut out) = self.audio_path();
        audio.connection_lost(&mut out);
    }

    /// Microphone audio: written now when the writer is idle, else kept in the backlog (or the
    /// gap while disconnected) within its bound. Returns whether the driver must be woken.
    fn push_audio(&mut self, pcm: Bytes, at_bound: AtBound) -> Result<bool, Error> {
        let target = self.core.audio_target();
        let writer_idle = self.out.is_empty()
            && self
                .link
                .as_ref()
                .is_some_and(|l| Some(l.id) == target && l.idle());
        let (audio, core, mut out) = self.audio_path();
        match audio.push(core, pcm, writer_idle, at_bound, &mut out)? {
            Pushed::Framed => {
                let mut cx = Context::from_waker(Waker::noop());
                let pending = self.pump(&mut cx).is_pending();
                Ok(pending || self.link.as_ref().is_some_and(|l| l.failed))
            }
            Pushed::Gap => Ok(false),
            // A busy writer hands the backlog over when its write completes.
            Pushed::Backlog => Ok(!self.link.as_ref().is_some_and(|l| l.busy)),
        }
    }

    /// Writes what is queued, as far as the socket takes it now: `Ready` once everything is
    /// flushed (or nothing can be written: frames for a connection that is gone are dropped,
    /// their audio requeued), `Pending` when the socket is full (the writer is then busy and
    /// `cx`'s waker is woken when it can take more).
    fn pump(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        let rate = self.sample_rate;
        // Audio bytes this call hands to the socket: recorded once, not once per frame.
        let mut audio_written = 0usize;
        let result = self.write_queued(cx, now, rate, &mut audio_written);
        if audio_written > 0 {
            if let Some(link) = self.link.as_mut() {
                link.recent_audio.record(now, audio_written);
            }
        }
        result
    }

    fn write_queued(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        rate: u32,
        audio_written: &mut usize,
    ) -> Poll<()> {
        while let Some(front) = self.out.front_mut() {
            let target = front.connection();
            let link = match self.link.as_mut() {
                Some(link) if link.id == target && !link.failed => link,
                _ => {
                    if let Some(Out::Audio {
                        connection, pcm, ..
                    }) = self.out.pop_front()
                    {
                        self.requeue_audio(connection, pcm);
                    }
                    continue;
                }
            };
            let frame = match front {
                Out::Frame(_, frame) => frame,
                Out::Audio { pcm, frame_len, .. } => {
                    // Frame by frame, cut as written; what the socket does not take now stays at
                    // the front (a failed write leaves it there too: the next turn of the loop
                    // requeues it, since the link has failed).
                    let mut written = 0;
                    let mut pending = false;
                    for frame in audio_path::frames(pcm, *frame_len) {
                        match link.sender.poll_ready(cx) {
                            Poll::Pending => {
                                pending = true;
                                break;
                            }
                            Poll::Ready(Err(e)) => {
                                link.fail(&e);
                                break;
                            }
                            Poll::Ready(Ok(())) => {}
                        }
                        if let Err(e) = link.sender.start_send_audio(frame, rate) {
                            link.fail(&e);
                            break;
                        }
                        written += frame.len();
                        link.unflushed = true;
                        link.progress = now;
                    }
                    *audio_written += written;
                    if written == pcm.len() {
                        self.out.pop_front();
                    } else {
                        pcm.advance(written);
                        if pending {
                            link.busy = true;
                            return Poll::Pending;
                        }
                    }
                    continue;
                }
            };
            match link.sender.poll_ready(cx) {
                Poll::Pending => {
                    link.busy = true;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    link.fail(&e);
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            let result = match frame {
                Frame::Message(message) => link.sender.start_send(message),
                Frame::Ping => link.sender.start_send_ping(),
            };
            // Written, or lost with the connection (the ledger replays what it must).
            self.out.pop_front();
            match result {
                Ok(()) => {
                    link.unflushed = true;
                    link.progress = now;
                }
                Err(e) => link.fail(&e),
            }
        }
        if let Some(link) = self.link.as_mut().filter(|l| l.unflushed && !l.failed) {
            match link.sender.poll_flush(cx) {
                Poll::Pending => {
                    link.busy = true;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) => {
                    link.unflushed = false;
                    link.progress = now;
                }
                Poll::Ready(Err(e)) => link.fail(&e),
            }
        }
        if let Some(link) = self.link.as_mut() {
            link.busy = false;
        }
        Poll::Ready(())
    }

    /// After a step of the core: writes what it queued if the writer is idle; returns whether
    /// the driver must be woken (an action to perform, a write the socket did not take, a
    /// timer earlier than the one armed).
    fn after_step(&mut self) -> bool {
        let mut wake = !self.actions.is_empty();
        if !self.out.is_empty() {
            match self.link.as_ref() {
                Some(link) if link.busy => {}
                Some(link) if !link.failed => {
                    let mut cx = Context::from_waker(Waker::noop());
                    wake |= self.pump(&mut cx).is_pending();
                }
                _ => wake = true,
            }
        }
        if self.link.as_ref().is_some_and(|l| l.failed) {
            wake = true;
        }
        if self.core.closed().is_some() && !self.released {
            // The driver releases the socket (there may be none, and no action to perform).
            wake = true;
        }
        if let Some(next) = self.core.poll_timeout() {
            wake |= self.armed.is_none_or(|armed| next < armed);
        }
        wake
    }

    fn settled(&self) -> bool {
        self.core.is_settled()
            && self.out.is_empty()
            && self.actions.is_empty()
            && self.audio.backlog_is_empty()
            && self.link.as_ref().is_none_or(Link::idle)
    }
}

struct Shared {
    state: Mutex<State>,
    config: Arc<SessionConfig>,
    events: Arc<EventQueue>,
    wake: Notify,
    /// Woken when audio leaves the backlog or the gap (room for `push_audio_wait`).
    room: Notify,
    /// How many times a call or the reader woke the driver (diagnostics: an idle socket takes
    /// audio without any).
    wakeups: AtomicU64,
    /// Bumped whenever the state may have changed (for `settled`, `context_changed`,
    /// `close` and `push_audio_wait`).
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

    fn wake_driver(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Wakes whoever waits for a change (nobody, most of the time: then it costs nothing; a
    /// waiter that subscribes later reads the state after this change anyway).
    fn bump(&self) {
        if self.changed.receiver_count() > 0 {
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Runs `f` on the state, moves the core's output into the queues, writes what the
    /// socket takes now, and wakes the driver if it has something to do.
    fn with<T>(&self, f: impl FnOnce(&mut State, Millis) -> T) -> T {
        let now = self.now();
        let (result, wake, room) = {
            let mut state = self.lock();
            let held = state.audio.held_bytes();
            let result = f(&mut state, now);
            state.drain();
            let room = state.audio.held_bytes() < held || state.core.closed().is_some();
            (result, state.after_step(), room)
        };
        if wake {
            self.wake_driver();
        }
        if room {
            // Audio left the backlog or the gap (or the session ended): `push_audio_wait`
            // tries again.
            self.room.notify_waiters();
        }
        self.bump();
        result
    }

    /// Connection `id` ended with `info` (seen by its reader, or decided by the driver):
    /// the socket is dropped, audio written in its last second is reported, and the core is
    /// told.
    fn connection_ended(
        &self,
        id: ConnectionId,
        info: CloseInfo,
        cause: Option<Arc<gemini_transport::Error>>,
    ) {
        let rate = self.config.input_sample_rate;
        self.with(|state, now| {
            if state.link.as_ref().is_some_and(|l| l.id == id) {
                if let Some(link) = state.link.take() {
                    let unconfirmed = if info.class == gemini_transport::CloseClass::Normal {
                        Duration::ZERO
                    } else {
                        link.unconfirmed_audio(rate)
                    };
                    if !unconfirmed.is_zero() {
                        state.emit(SessionEvent::AudioDropped {
                            duration: unconfirmed,
                        });
                    }
                    link.shut();
                }
                state.backlog_to_gap();
            }
            state.core.handle_closed(now, id, info, cause);
        });
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

    /// [`into_core`](Self::into_core), with the shell's microphone path for the same
    /// configuration (gap policy, backlog bound, frame length): what the simulator drives.
    pub fn into_sans_io(
        self,
        now: Millis,
        jitter_seed: u64,
    ) -> Result<(SessionCore, AudioPath), Error> {
        let audio = AudioPath::from_config(&self.config);
        Ok((self.into_core(now, jitter_seed)?, audio))
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
        let events = Arc::new(EventQueue::new(config.event_capacity));
        let rate = config.input_sample_rate;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core,
                out: VecDeque::new(),
                actions: VecDeque::new(),
                link: None,
                audio: AudioPath::from_config(&config),
                events: Arc::clone(&events),
                armed: None,
                released: false,
                reading_paused: false,
                sample_rate: rate,
            }),
            config,
            events: Arc::clone(&events),
            wake: Notify::new(),
            room: Notify::new(),
            wakeups: AtomicU64::new(0),
            changed: watch::Sender::new(0),
            epoch,
        });
        shared.lock().drain();
        let mut changed = shared.changed.subscribe();
        let driver = Driver {
            shared: Arc::clone(&shared),
        };
        // The first connection is opened by the caller's task: no hand-off to the driver on
        // the way to the first `setupComplete`. Nobody else holds the session yet, so no close
        // can race this dial: no select, and the action is taken from the queue, not cloned.
        let first = {
            let mut state = shared.lock();
            match state.actions.front() {
                Some(Action::Open { .. }) => state.actions.pop_front(),
                _ => None,
            }
        };
        if let Some(Action::Open { connection, setup }) = first {
            let opened = open(&shared.config, &setup).await;
            driver.opened(connection, opened);
        }
        tokio::spawn(driver.run());
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
        Ok((LiveSession { shared }, SessionEvents { queue: events }))
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
        self.shared.with(|state, now| {
            // Audio pushed before the command is numbered before it.
            state.flush_backlog();
            state.core.command(now, command)
        })
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

    fn push(&self, pcm: Bytes, at_bound: AtBound) -> Result<(), Error> {
        if pcm.len() % 2 != 0 {
            return Err(Error::InvalidArgument(format!(
                "PCM16 audio must have an even number of bytes, got {}",
                pcm.len()
            )));
        }
        let wake = {
            let mut state = self.shared.lock();
            if state.core.closed().is_some() {
                return Err(Error::Closed);
            }
            if pcm.is_empty() {
                return Ok(());
            }
            state.push_audio(pcm, at_bound)?
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
        self.shared.lock().core.chat_ctx().clone()
    }

    /// A one-line description of the session's state (connection, pending reconnect or
    /// rotation, the model's turn, operations not yet delivered), for diagnostics.
    pub fn describe(&self) -> String {
        let state = self.shared.lock();
        format!(
            "{:?}; shell: {} queued, {} actions, backlog {:?}, gap {:?}, writer {}",
            state.core,
            state.out.iter().map(Out::frames).sum::<usize>(),
            state.actions.len(),
            state.audio.backlog(),
            state.audio.gap(),
            match state.link.as_ref() {
                None => "none",
                Some(l) if l.failed => "failed",
                Some(l) if l.busy => "busy",
                Some(_) => "idle",
            }
        )
    }

    /// What the session holds in its buffers now: every one of them is bounded.
    pub fn buffered(&self) -> Buffered {
        let state = self.shared.lock();
        Buffered {
            queued_frames: state.out.iter().map(Out::frames).sum(),
            backlog: state.audio.backlog(),
            gap: state.audio.gap(),
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
                if state.settled() {
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
    /// background, bounded by the close timeout.
    pub async fn close(&self) -> Result<(), Error> {
        let mut changed = self.shared.changed.subscribe();
        let _ = self.command(Command::Close);
        let released = async {
            loop {
                if self.shared.lock().released {
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        };
        // Bounded even if the driver is gone (its runtime shut down).
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
            let _ = state.core.command(now, Command::Close);
        });
    }
}

/// The task that performs the core's IO: dials, closes, timers, and the writer whenever the
/// socket could not take a write at once.
struct Driver {
    shared: Arc<Shared>,
}

impl Driver {
    async fn run(mut self) {
        loop {
            let next = self.shared.lock().actions.front().cloned();
            if let Some(action) = next {
                self.act(action).await;
                self.shared.with(|state, _| {
                    state.actions.pop_front();
                });
                continue;
            }
            let config = Arc::clone(&self.shared.config);
            let (core_deadline, write_deadline, keepalive_deadline, writing) = {
                let mut state = self.shared.lock();
                if state.core.closed().is_some() {
                    if let Some(link) = state.link.take() {
                        link.shut();
                    }
                    state.released = true;
                    state.out.clear();
                    drop(state);
                    self.shared.bump();
                    return;
                }
                let timeout = state.core.poll_timeout();
                state.armed = timeout;
                let core_deadline = timeout.map(|at| self.shared.epoch + millis_duration(at));
                let link = state.link.as_ref();
                let write_deadline = link
                    .filter(|l| l.busy || l.failed)
                    .map(|l| l.progress + config.write_timeout);
                let keepalive_deadline = match (link, config.keepalive) {
                    (Some(l), Some(k)) if !l.failed => Some(match l.ping {
                        Some((_, at)) => at + k.timeout,
                        None => l.last_ping + k.interval,
                    }),
                    _ => None,
                };
                let writing = !state.out.is_empty() || state.link.as_ref().is_some_and(|l| l.busy);
                (core_deadline, write_deadline, keepalive_deadline, writing)
            };
            let shared = Arc::clone(&self.shared);
            tokio::select! {
                biased;
                () = poll_fn(|cx| shared.lock().pump(cx)), if writing => self.wrote(),
                () = self.shared.wake.notified() => {}
                () = sleep_until(core_deadline) => {
                    self.shared.with(|state, now| state.core.handle_timeout(now));
                }
                () = sleep_until(write_deadline) => self.stalled(),
                () = sleep_until(keepalive_deadline) => self.keepalive(),
            }
        }
    }

    /// The writer is idle again: the backlog goes out as one batch.
    fn wrote(&self) {
        self.shared.with(|state, _| {
            if state.out.is_empty() && state.link.as_ref().is_some_and(Link::idle) {
                state.flush_backlog();
            }
        });
    }

    /// The write deadline passed: a write made no progress (or failed and nobody reported
    /// the close). The connection is lost.
    fn stalled(&self) {
        let timeout = self.shared.config.write_timeout;
        let id = self
            .shared
            .lock()
            .link
            .as_ref()
            .filter(|l| (l.busy || l.failed) && l.progress.elapsed() >= timeout)
            .map(|l| l.id);
        if let Some(id) = id {
            let info =
                CloseInfo::abnormal(format!("the socket took no write for {timeout:?}"), false);
            self.shared.connection_ended(id, info, None);
        }
    }

    /// Sends a ping, or ends a connection whose last ping went unanswered.
    fn keepalive(&self) {
        let Some(keepalive) = self.shared.config.keepalive else {
            return;
        };
        let now = Instant::now();
        let lost = {
            let mut state = self.shared.lock();
            let paused = state.reading_paused;
            let Some(link) = state.link.as_mut() else {
                return;
            };
            let pongs = link.sender.pongs_received();
            match link.ping {
                // The pong may be waiting, unread, behind frames the application has not
                // made room for: no verdict, ping again later.
                Some(_) if paused => {
                    link.ping = None;
                    link.last_ping = now;
                    None
                }
                Some((before, _)) if pongs > before => {
                    link.ping = None;
                    None
                }
                Some((_, at)) if now >= at + keepalive.timeout => Some(link.id),
                Some(_) => None,
                None if now >= link.last_ping + keepalive.interval => {
                    link.ping = Some((pongs, now));
                    link.last_ping = now;
                    let id = link.id;
                    state.out.push_back(Out::Frame(id, Frame::Ping));
                    None
                }
                None => None,
            }
        };
        match lost {
            Some(id) => {
                let info = CloseInfo::abnormal(
                    format!(
                        "no pong within {:?}: the server stopped reading",
                        keepalive.timeout
                    ),
                    false,
                );
                self.shared.connection_ended(id, info, None);
            }
            None => self.shared.with(|_, _| {}),
        }
    }

    /// Resolves once the session is closed (a dial in progress is abandoned then).
    async fn until_closed(&self) {
        loop {
            let notified = self.shared.wake.notified();
            if self.shared.lock().core.closed().is_some() {
                return;
            }
            notified.await;
        }
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::Close {
                connection,
                code,
                reason,
            } => {
                let link = {
                    let mut state = self.shared.lock();
                    match state.link.as_ref() {
                        Some(l) if l.id == connection => state.link.take(),
                        _ => None,
                    }
                };
                if let Some(mut link) = link {
                    // Never two sockets: the old one is closed (the server's close answered,
                    // or the close timeout passed) before a new one is dialed. A socket that
                    // does not take the close frame at once is dropped.
                    let wait = self.shared.config.connect.close_timeout;
                    let wrote = link.idle()
                        && tokio::time::timeout(
                            wait.min(CLOSE_FRAME_BUDGET),
                            link.sender.close(code, reason),
                        )
                        .await
                        .is_ok_and(|r| r.is_ok());
                    self.release_if_closed();
                    if wrote {
                        if let Some(reader) = link.reader.as_mut() {
                            let _ = tokio::time::timeout(wait, reader).await;
                        }
                    }
                    link.shut();
                }
                self.release_if_closed();
            }
            Action::Open { connection, setup } => {
                let opened = tokio::select! {
                    // Boxed: the dial's state lives only while dialing, not in every idle
                    // session's driver task.
                    opened = Box::pin(open(&self.shared.config, &setup)) => Some(opened),
                    () = self.until_closed() => None,
                };
                if let Some(opened) = opened {
                    self.opened(connection, opened);
                }
            }
        }
    }

    /// The dial of `connection` ended: the link and its reader on success, else the core is
    /// told why.
    fn opened(&self, connection: ConnectionId, opened: Opened) {
        match opened {
            Ok((sender, receiver)) => {
                let shared = Arc::clone(&self.shared);
                self.shared.with(|state, now| {
                    let mut link = Link::new(connection, sender);
                    // Spawned under the lock: its first frame waits for the setup to be
                    // recorded.
                    link.reader = Some(tokio::spawn(read(shared, connection, receiver)));
                    state.link = Some(link);
                    state.core.handle_setup_complete(now, connection);
                    // The plan's messages go out first, then the audio that waited.
                    state.drain();
                    state.flush_backlog();
                });
            }
            Err(e) => {
                let info = close_info(&e);
                self.shared.with(|state, now| {
                    state
                        .core
                        .handle_closed(now, connection, info, Some(Arc::new(e)));
                });
            }
        }
    }

    fn release_if_closed(&self) {
        let mut state = self.shared.lock();
        if state.core.closed().is_some() && !state.released {
            state.released = true;
            drop(state);
            self.shared.bump();
        }
    }
}

/// What a dial gives: the connection's halves once its setup is complete.
type Opened = Result<(ConnectionSender, ConnectionReceiver), gemini_transport::Error>;

/// Dials, sends `setup` and waits for `setupComplete`.
async fn open(config: &SessionConfig, setup: &ClientMessage) -> Opened {
    let mut conn = Connection::connect(&config.endpoint, &config.connect).await?;
    conn.setup(setup).await?;
    Ok(conn.split())
}

/// The reader task of connection `id`: each server frame goes to the core, read only while
/// the application's event queue has room.
async fn read(shared: Arc<Shared>, id: ConnectionId, mut receiver: ConnectionReceiver) {
    loop {
        if shared.events.is_full() {
            // The keepalive does not judge the server while this side is not reading.
            shared.lock().reading_paused = true;
            shared.events.room().await;
            shared.lock().reading_paused = false;
        }
        match receiver.recv().await {
            Ok(message) => shared.with(|state, now| state.core.handle_message(now, id, message)),
            Err(e) if !e.ends_connection() => shared.with(|state, _| {
                state.emit(SessionEvent::Warning(format!(
                    "ignored a server frame: {e}"
                )));
            }),
            Err(e) => {
                shared.connection_ended(id, close_info(&e), Some(Arc::new(e)));
                return;
            }
        }
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

fn millis_duration(at: Millis) -> Duration {
    Duration::from_millis(at.0)
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_audio_reports_the_last_second_never_less() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut recent = RecentAudio::new(start);
        // 20 ms chunks of 640 bytes for 3 s.
        for n in 0..150 {
            recent.record(at(n * 20), 640);
        }
        // At 3 s: the chunks written within the last second are 50 (2 000..2 980 ms); at most
        // 1/16 s more may be counted.
        let reported = recent.within_horizon(at(3_000));
        assert!(reported >= 50 * 640, "under-reported: {reported}");
        assert!(reported <= 54 * 640, "over-reported: {reported}");
        // Half a second later, only the chunks of 2 500..2 980 ms remain within the horizon.
        let reported = recent.within_horizon(at(3_500));
        assert!((25 * 640..=29 * 640).contains(&reported), "{reported}");
        // Long after the last write, nothing is unconfirmed.
        assert_eq!(recent.within_horizon(at(4_100)), 0);
        // A write after a long silence does not count the slots it passed over.
        recent.record(at(10_000), 100);
        assert_eq!(recent.within_horizon(at(10_010)), 100);
    }
}
