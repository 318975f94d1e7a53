//! The async shell around the [`Conduit`]: sockets, tasks, timers and wakers, and no decision.
//!
//! Everything, the conduit and the open socket's sending half included, sits in one [`State`]
//! behind a mutex shared by the handle ([`LiveSession`]), the driver task and whichever task
//! reads the socket (as quinn shares its `quinn_proto::Connection`). Each of them feeds the
//! conduit an input and then carries out what it asks ([`State::settle`]): its orders (dial,
//! release a socket), its frames (written to the socket at once, from the caller's thread,
//! polling with a no-op waker while the socket is not blocked; once it is, the driver polls
//! it with its own waker until it takes everything, except while `push_audio_wait` waits for
//! room: that task writes it, and hands it back to the driver when its call ends), its events
//! (to the application's queue) and its timer (the driver sleeps until
//! [`Conduit::poll_timeout`]).
//!
//! - The handle's calls run the conduit synchronously, so they return the ids they created and
//!   fail with [`Error::Closed`] the moment the session has ended; a chunk of audio pushed while
//!   the socket is idle is written before `push_audio` returns, with no wake-up of another task.
//! - The socket's receiving half ([`Reading`]) has no task of its own. While the application
//!   waits in [`SessionEvents::recv`] with nothing queued, its own task reads the server's
//!   frames into the conduit (a frame wakes that task and no other, as a bare client's reader
//!   is woken); when `recv` returns or is dropped, the driver reads them again. Either reads
//!   only while the event queue has room (TCP pushes back on the server) and tells the conduit
//!   when reading stops and resumes, and how a connection ended.
//! - The driver dials, sleeps until the conduit's next deadline (one timer, moved only when the
//!   deadline does), polls a blocked socket and reads the socket when the application does
//!   not. The first dial runs in `connect()`'s own task; the driver is spawned once it is over,
//!   so that no task's start is on the way to `connect()` returning.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use gemini_transport::wire::{ClientMessage, ServerMessage};
use gemini_transport::{CloseInfo, Connection, ConnectionReceiver, ConnectionSender, Endpoint};
use resume_policy::{ConnectionId, Millis};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::audio_in::InputConverter;
use crate::conduit::{Conduit, Frame, FrameSink, Order, SinkFailed};
use crate::config::{LiveSessionBuilder, SessionConfig};
use crate::core::{CoreConfig, SessionCore};
use crate::handle::{LiveSession, SessionEvents};
use crate::queue::EventQueue;
use crate::{Error, SessionEvent};

/// The sending half of the conduit's current connection.
struct Socket {
    id: ConnectionId,
    sender: ConnectionSender,
}

/// How long a failed `connect()` waits for the driver to end (it drops a released dial at
/// once when it runs).
const DRIVER_END: Duration = Duration::from_secs(1);

/// What the lease keeper saves on (feature `store`): the core's persist mark and whether the
/// conduit has finished; `None` while no keeper listens.
#[cfg(feature = "store")]
type KeeperMark = Option<(crate::core::PersistMark, bool)>;
#[cfg(not(feature = "store"))]
type KeeperMark = ();

/// `Shared::current` when there is no socket.
const NO_SOCKET: u64 = u64::MAX;

/// Frames one poll reads before the reading task lets others run (a flood holds no task).
const READ_BUDGET: usize = 32;

/// The receiving half of a connection, read by whichever task polls it.
struct Reader {
    id: ConnectionId,
    receiver: ConnectionReceiver,
}

/// Who reads the socket. No task of its own: the application's task reads it while it waits
/// in [`SessionEvents::recv`] with an empty queue (a server frame then wakes that task alone,
/// as a bare client's reader is woken), and the driver reads it otherwise; whoever polled it
/// last is the one the socket wakes, and `recv` hands it back to the driver when it returns
/// or is dropped. Locked before the state, never the other way round.
#[derive(Default)]
pub(crate) struct Reading {
    reader: Option<Reader>,
    /// The conduit was told that reading stopped (the event queue is full).
    paused: bool,
    /// The driver task's waker, which the socket wakes when the application is not waiting.
    driver: Option<Waker>,
}

/// The socket as the conduit writes it.
struct SenderSink<'a, 'b> {
    sender: &'a mut ConnectionSender,
    cx: &'a mut Context<'b>,
    rate: u32,
}

/// A failed write, logged (the connection's end is reported by its reader).
fn failed(error: gemini_transport::Error) -> SinkFailed {
    tracing::debug!(%error, "write failed");
    SinkFailed
}

impl FrameSink for SenderSink<'_, '_> {
    fn poll_ready(&mut self) -> Poll<Result<(), SinkFailed>> {
        self.sender.poll_ready(self.cx).map(|r| r.map_err(failed))
    }

    fn start_send(&mut self, frame: Frame<'_>) -> Result<(), SinkFailed> {
        match frame {
            Frame::Audio(pcm) => self.sender.start_send_audio(pcm, self.rate),
            Frame::Message(message) => self.sender.start_send(message),
            Frame::Ping => self.sender.start_send_ping(),
            Frame::Close { code, reason } => self.sender.start_send_close(code, reason),
        }
        .map_err(failed)
    }

    fn poll_flush(&mut self) -> Poll<Result<(), SinkFailed>> {
        self.sender.poll_flush(self.cx).map(|r| r.map_err(failed))
    }
}

/// The state the handle, the driver and the reader share.
pub(crate) struct State {
    pub(crate) conduit: Conduit,
    socket: Option<Socket>,
    /// A dial the conduit ordered and the driver has not started.
    dial: Option<(ConnectionId, ClientMessage)>,
    /// The dial the driver is to run (a released one is dropped).
    dialing: Option<ConnectionId>,
    events: Arc<EventQueue>,
    /// The deadline the driver sleeps until.
    armed: Option<Millis>,
    rate: u32,
    /// The session's counters ([`crate::LiveSession::metrics`]).
    pub(crate) metrics: crate::metrics::SessionMetrics,
}

impl State {
    /// After an input to the conduit: carries out its orders, writes what it queued (unless
    /// the socket is blocked: the driver polls it then), passes its events on. Returns whether
    /// the driver must be woken (a dial, a blocked socket, a deadline earlier than the one it
    /// sleeps until, the end).
    pub(crate) fn settle(&mut self, now: Millis) -> bool {
        let mut wake = false;
        while let Some(order) = self.conduit.poll_order() {
            match order {
                Order::Dial { connection, setup } => {
                    self.dial = Some((connection, setup));
                    self.dialing = Some(connection);
                    wake = true;
                }
                Order::Release { connection } => {
                    if self.socket.as_ref().is_some_and(|s| s.id == connection) {
                        self.socket = None;
                        // The driver drops the receiving half (under the reading lock, which
                        // is taken before this one).
                        wake = true;
                    }
                    if self.dialing == Some(connection) {
                        self.dialing = None;
                        self.dial = None;
                        wake = true;
                    }
                }
            }
        }
        if !self.conduit.writer_blocked() {
            let mut cx = Context::from_waker(Waker::noop());
            wake |= self.write(now, &mut cx).is_pending();
        }
        while let Some(event) = self.conduit.poll_event() {
            self.metrics.observe(&event);
            let last = matches!(event, SessionEvent::Closed { .. });
            self.events.push(event);
            if last {
                self.events.end();
            }
        }
        if let Some(next) = self.conduit.poll_timeout() {
            wake |= self.armed.is_none_or(|armed| next < armed);
        }
        wake || self.conduit.is_finished()
    }

    /// Writes what the conduit queued to the socket, as far as it takes it now (`cx`'s waker is
    /// woken when it can take more).
    fn write(&mut self, now: Millis, cx: &mut Context<'_>) -> Poll<()> {
        let Some(socket) = self.socket.as_mut() else {
            return Poll::Ready(());
        };
        self.conduit
            .handle_pongs(socket.id, socket.sender.pongs_received());
        let mut sink = SenderSink {
            sender: &mut socket.sender,
            cx,
            rate: self.rate,
        };
        self.conduit.write(now, socket.id, &mut sink)
    }

    /// Whether there is a socket and it does not take more now (someone must poll it with a
    /// waker of its own).
    fn write_blocked(&self) -> bool {
        self.conduit.writer_blocked() && self.socket.is_some()
    }

    /// Tells the conduit how many pongs connection `id` has received.
    fn pongs(&mut self, id: ConnectionId) {
        if let Some(socket) = self.socket.as_ref().filter(|s| s.id == id) {
            self.conduit
                .handle_pongs(id, socket.sender.pongs_received());
        }
    }

    /// A one-line description, for diagnostics.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{:?}; shell: socket {:?}, dialing {:?}",
            self.conduit,
            self.socket.as_ref().map(|s| s.id),
            self.dialing
        )
    }
}

/// A subscription to the session's state changes ([`Shared::watch`]), counted while it lives.
pub(crate) struct Watch<'a> {
    changes: watch::Receiver<u64>,
    watchers: &'a AtomicUsize,
}

impl Watch<'_> {
    /// Waits for the next change; `Err` once the session's state is gone.
    pub(crate) async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.changes.changed().await
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the handle, the driver and the reader share.
///
/// Laid out in declaration order, from a cache line of its own: every call reads the clock's
/// epoch, then takes the state's lock, so the two share the first line (at hundreds of
/// sessions this struct is cold each time a session is touched, and each line is a miss).
#[repr(C, align(64))]
pub(crate) struct Shared {
    epoch: Instant,
    /// The id of the state's socket ([`NO_SOCKET`] without one), kept by [`Shared::with`]: a
    /// reader whose connection is no longer current drops it.
    current: AtomicU64,
    /// Live subscriptions to `changed` ([`Shared::watch`]): read by every [`Shared::bump`]
    /// here, on this first line, where the channel's own count is a line of its own.
    watchers: AtomicUsize,
    state: Mutex<State>,
    pub(crate) config: Arc<SessionConfig>,
    /// Where to dial, with the credential: only the dial reads it (the core's configuration
    /// does not carry it).
    endpoint: Arc<Endpoint>,
    pub(crate) events: Arc<EventQueue>,
    /// The current connection's receiving half and who reads it.
    reading: Mutex<Reading>,
    wake: Notify,
    /// Woken when audio leaves the backlog or the gap (room for `push_audio_wait`).
    pub(crate) room: Notify,
    /// How many times a call or the reader woke the driver (diagnostics: an idle socket takes
    /// audio without any).
    pub(crate) wakeups: AtomicU64,
    /// Bumped whenever the state may have changed (for `settled`, `context_changed`, `close`
    /// and `push_audio_wait`); subscribed through [`Shared::watch`].
    changed: watch::Sender<u64>,
    /// Turns samples in any format into the session's PCM16 (`push_samples`); held across
    /// the push so that concurrent pushes keep their order.
    pub(crate) input: Mutex<InputConverter>,
    /// The lease's hand-off (feature `store`).
    #[cfg(feature = "store")]
    pub(crate) hand_off: crate::ownership::HandOff,
    /// What the lease keeper saves on (feature `store`): the core's persist mark and whether
    /// the conduit has finished, sent only when it changes, so that the keeper is not woken by
    /// every server frame.
    #[cfg(feature = "store")]
    pub(crate) persist: watch::Sender<KeeperMark>,
    /// How many times the lease keeper woke for a change of the session (diagnostics).
    #[cfg(feature = "store")]
    pub(crate) keeper_wakeups: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn wake_driver(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Wakes whoever waits for a change (nobody, most of the time: then it costs nothing; a
    /// waiter that subscribes later reads the state after this change anyway).
    fn bump(&self) {
        if self.watchers.load(Ordering::Acquire) > 0 {
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// A subscription to state changes: a change after this call wakes
    /// [`Watch::changed`]; one before it is seen by looking at the state after subscribing.
    pub(crate) fn watch(&self) -> Watch<'_> {
        self.watchers.fetch_add(1, Ordering::AcqRel);
        Watch {
            changes: self.changed.subscribe(),
            watchers: &self.watchers,
        }
    }

    /// Runs `f` on the state, then [`State::settle`], and wakes the driver if it has
    /// something to do.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State, Millis) -> T) -> T {
        let now = self.now();
        let (result, wake, room, released, mark) = {
            let mut state = self.lock();
            let held = state.conduit.held_audio_bytes();
            let result = f(&mut state, now);
            let wake = state.settle(now);
            let socket = state.socket.as_ref().map_or(NO_SOCKET, |s| s.id.0);
            let released = self.current.swap(socket, Ordering::AcqRel) != socket;
            let room =
                state.conduit.held_audio_bytes() < held || state.conduit.core().closed().is_some();
            (result, wake, room, released, self.keeper_mark(&state))
        };
        if released {
            self.drop_released_reader();
        }
        // After a released socket was dropped: the keeper releases the lease once the conduit
        // has finished.
        self.tell_keeper(mark);
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

    /// Drops the receiving half of a connection the conduit released, so that its socket is
    /// closed now (its sending half went with the state's socket). When another task holds the
    /// reading lock, that task drops it before it reads again ([`Shared::read_frames`] checks
    /// [`Shared::current`] first), and so does this one, when it is that task.
    fn drop_released_reader(&self) {
        if let Ok(mut reading) = self.reading.try_lock() {
            let current = self.current.load(Ordering::Acquire);
            if reading.reader.as_ref().is_some_and(|r| r.id.0 != current) {
                reading.reader = None;
            }
        }
    }

    /// What the lease keeper saves on, read under the lock `with` holds: the persist mark and
    /// whether the conduit has finished (`None` without a keeper).
    #[cfg(feature = "store")]
    fn keeper_mark(&self, state: &State) -> KeeperMark {
        (self.persist.receiver_count() > 0).then(|| {
            (
                state.conduit.core().persist_mark(),
                state.conduit.is_finished(),
            )
        })
    }

    /// Tells the lease keeper `mark` ([`Shared::keeper_mark`]) when it changed.
    #[cfg(feature = "store")]
    fn tell_keeper(&self, mark: KeeperMark) {
        let Some(mark) = mark else {
            return;
        };
        self.persist.send_if_modified(|last| {
            let changed = *last != Some(mark);
            *last = Some(mark);
            changed
        });
    }

    /// Without feature `store` there is no keeper.
    #[cfg(not(feature = "store"))]
    fn keeper_mark(&self, _state: &State) -> KeeperMark {}

    #[cfg(not(feature = "store"))]
    fn tell_keeper(&self, (): KeeperMark) {}

    fn reading(&self) -> MutexGuard<'_, Reading> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connection `id`'s receiving half, to be read from now on (the previous one is dropped).
    fn set_reader(&self, id: ConnectionId, receiver: ConnectionReceiver) {
        self.reading().reader = Some(Reader { id, receiver });
    }

    /// The driver's read: its waker is the one the socket wakes from now on. `Ready` when it
    /// handled a frame (or the connection ended).
    fn poll_read_driver(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut reading = self.reading();
        if !reading
            .driver
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            reading.driver = Some(cx.waker().clone());
        }
        self.read_frames(&mut reading, cx)
    }

    /// The application's read, from `SessionEvents::recv` while its queue is empty: `true`
    /// when it polled the socket (which then wakes the application's task, until
    /// [`Shared::read_by_driver`]). Skipped while another task reads.
    pub(crate) fn poll_read_app(&self, cx: &mut Context<'_>) -> bool {
        let Ok(mut reading) = self.reading.try_lock() else {
            return false;
        };
        if reading.reader.is_none() {
            return false;
        }
        let _ = self.read_frames(&mut reading, cx);
        true
    }

    /// Hands the socket back to the driver after the application's read: polled with the
    /// driver's waker (what arrived meanwhile is read now).
    pub(crate) fn read_by_driver(&self) {
        let mut reading = self.reading();
        if let Some(driver) = reading.driver.clone() {
            let _ = self.read_frames(&mut reading, &mut Context::from_waker(&driver));
        }
    }

    /// For a task that waits for room in the audio backlog: writes the blocked socket with
    /// `cx`'s waker (the socket wakes that task from now on, until
    /// [`Shared::write_by_driver`]). `Ready` once the socket took everything; `Pending` with
    /// nothing registered when the socket is not blocked (the backlog waits for a connection).
    pub(crate) fn poll_write_for_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.with(|state, now| {
            if state.write_blocked() {
                state.write(now, cx)
            } else {
                Poll::Pending
            }
        })
    }

    /// Hands a socket still blocked back to the driver after [`Shared::poll_write_for_room`]:
    /// written once with the driver's waker.
    pub(crate) fn write_by_driver(&self) {
        let driver = self.reading().driver.clone();
        let Some(driver) = driver else {
            // The driver has not run yet: it polls a blocked socket when it does.
            self.wake_driver();
            return;
        };
        self.with(|state, now| {
            if state.write_blocked() {
                let _ = state.write(now, &mut Context::from_waker(&driver));
            }
        });
    }

    /// Whether reading waits for room in the event queue.
    fn reading_paused(&self) -> bool {
        self.reading().paused
    }

    /// Reads frames into the conduit while the event queue has room, up to [`READ_BUDGET`]
    /// (then `cx` is woken to come back). `Ready` when it handled a frame or the connection
    /// ended; `Pending` when the socket has nothing (its waker is `cx`'s), reading is paused,
    /// or there is no socket.
    fn read_frames(&self, reading: &mut Reading, cx: &mut Context<'_>) -> Poll<()> {
        let mut handled = false;
        for _ in 0..READ_BUDGET {
            let Some(reader) = reading.reader.as_mut() else {
                return Poll::Pending;
            };
            let id = reader.id;
            if self.current.load(Ordering::Acquire) != id.0 {
                // Released: the socket closes with its last half.
                reading.reader = None;
                return Poll::Pending;
            }
            if self.events.is_full() {
                if !reading.paused {
                    reading.paused = true;
                    self.with(|state, now| state.conduit.set_reading_paused(now, true));
                    // The driver waits for room from now on (it resumes reading).
                    self.wake_driver();
                    return Poll::Ready(());
                }
                return if handled {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                };
            }
            if reading.paused {
                reading.paused = false;
                self.with(|state, now| state.conduit.set_reading_paused(now, false));
            }
            match reader.receiver.poll_recv(cx) {
                Poll::Pending => {
                    return if handled {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Ready(Ok(message)) => {
                    self.with(|state, now| state.conduit.handle_message(now, id, message));
                }
                Poll::Ready(Err(e)) if !e.ends_connection() => {
                    self.events.push(SessionEvent::Warning(format!(
                        "ignored a server frame: {e}"
                    )));
                }
                Poll::Ready(Err(e)) => {
                    reading.reader = None;
                    let info = close_info(&e);
                    self.with(|state, now| {
                        state.pongs(id);
                        state
                            .conduit
                            .handle_closed(now, id, info, Some(Arc::new(e)));
                    });
                    return Poll::Ready(());
                }
            }
            handled = true;
        }
        cx.waker().wake_by_ref();
        Poll::Ready(())
    }
}

/// What a dial gives: the connection's halves once its setup is complete, and the
/// `setupComplete` (which may carry the server's session id).
type Opened =
    Result<(ConnectionSender, ConnectionReceiver, ServerMessage), gemini_transport::Error>;

/// A dial under way.
type Dial = Pin<Box<dyn Future<Output = (ConnectionId, Opened)> + Send>>;

/// Dials, sends `setup` and waits for `setupComplete`. How long a dial may take is the
/// conduit's to decide (it releases the connection, and this future is dropped), so the
/// transport's own setup timeout is not armed.
async fn open(endpoint: Arc<Endpoint>, config: Arc<SessionConfig>, setup: ClientMessage) -> Opened {
    let connect = config.connect.clone().with_setup_timeout(Duration::MAX);
    let mut conn = Connection::connect(&endpoint, &connect).await?;
    let complete = conn.setup(&setup).await?;
    let (sender, receiver) = conn.split();
    Ok((sender, receiver, complete))
}

/// The task that dials, keeps the conduit's timer and polls a blocked socket.
struct Driver {
    shared: Arc<Shared>,
    dial: Option<(ConnectionId, Dial)>,
}

impl Driver {
    async fn run(mut self) {
        // One timer for the driver's life, moved only when the deadline does.
        let sleep = tokio::time::sleep_until(self.shared.epoch);
        tokio::pin!(sleep);
        let mut sleeping_until: Option<Instant> = None;
        loop {
            let (deadline, blocked) = {
                let mut state = self.shared.lock();
                if self
                    .dial
                    .as_ref()
                    .is_some_and(|(id, _)| state.dialing != Some(*id))
                {
                    // Released while dialing.
                    self.dial = None;
                }
                if let Some((connection, setup)) = state.dial.take() {
                    let config = Arc::clone(&self.shared.config);
                    let endpoint = Arc::clone(&self.shared.endpoint);
                    // Boxed: the dial's state lives only while dialing, not in every idle
                    // session's driver task.
                    let dial =
                        Box::pin(async move { (connection, open(endpoint, config, setup).await) });
                    self.dial = Some((connection, dial));
                }
                if state.conduit.is_finished() && self.dial.is_none() {
                    state.socket = None;
                    drop(state);
                    self.shared.current.store(NO_SOCKET, Ordering::Release);
                    self.shared.reading().reader = None;
                    self.shared.bump();
                    return;
                }
                let timeout = state.conduit.poll_timeout();
                state.armed = timeout;
                let deadline = timeout.map(|at| self.shared.epoch + Duration::from_millis(at.0));
                let blocked = state.write_blocked();
                (deadline, blocked)
            };
            if deadline != sleeping_until {
                if let Some(deadline) = deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleeping_until = deadline;
            }
            let paused = self.shared.reading_paused();
            let shared = Arc::clone(&self.shared);
            tokio::select! {
                biased;
                () = poll_fn(|cx| shared.with(|state, now| state.write(now, cx))), if blocked => {}
                () = self.shared.wake.notified() => {}
                () = &mut sleep, if sleeping_until.is_some() => {
                    // Set again next time, even to the same deadline.
                    sleeping_until = None;
                    self.shared.with(|state, now| {
                        if let Some(id) = state.socket.as_ref().map(|s| s.id) {
                            state.pongs(id);
                        }
                        state.conduit.handle_timeout(now);
                    });
                }
                () = poll_fn(|cx| shared.poll_read_driver(cx)) => {}
                () = self.shared.events.room(), if paused => {}
                (connection, opened) = dialing(&mut self.dial) => {
                    self.dial = None;
                    opened_connection(&self.shared, connection, opened);
                }
            }
        }
    }
}

/// The dial under way, or never.
async fn dialing(dial: &mut Option<(ConnectionId, Dial)>) -> (ConnectionId, Opened) {
    match dial.as_mut() {
        Some((_, dial)) => dial.await,
        None => std::future::pending().await,
    }
}

/// The dial of `connection` ended: the socket on success (read once the setup is recorded),
/// and the conduit is told.
fn opened_connection(shared: &Arc<Shared>, connection: ConnectionId, opened: Opened) {
    match opened {
        Ok((sender, receiver, complete)) => {
            shared.with(|state, now| {
                state.socket = Some(Socket {
                    id: connection,
                    sender,
                });
                state.dialing = None;
                // As a message: the conduit takes the setup as complete, and reports a
                // session id the server gave.
                state.conduit.handle_message(now, connection, complete);
            });
            // Read by the driver's next poll, or by the application's (a connection the
            // conduit released meanwhile is dropped by its first reader).
            shared.set_reader(connection, receiver);
        }
        Err(e) => {
            let info = close_info(&e);
            shared.with(|state, now| {
                state.dialing = None;
                state
                    .conduit
                    .handle_dial_failed(now, connection, info, Some(Arc::new(e)));
            });
        }
    }
}

/// A transport error as the close the conduit is told about (with the error itself as the
/// cause).
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

impl LiveSessionBuilder {
    /// The session's sans-IO core, for driving it without sockets (tests): same
    /// configuration, policy and capabilities as [`connect`](Self::connect) would use.
    /// `jitter_seed` seeds the backoff jitter.
    pub fn into_core(mut self, now: Millis, jitter_seed: u64) -> Result<SessionCore, Error> {
        let (policy, capabilities) = self.resolve()?;
        let initial = std::mem::take(&mut self.initial_context);
        let stored = self.resume_from.take();
        let config = CoreConfig {
            session: Arc::new(self.config),
            jitter_seed,
        };
        Ok(SessionCore::new(
            config,
            policy,
            capabilities,
            initial,
            stored,
            now,
        ))
    }

    /// The whole sans-IO session, the [`Conduit`] that owns the core: what [`LiveSession`]
    /// drives over sockets, and what the simulator drives on virtual time.
    pub fn into_sans_io(self, now: Millis, jitter_seed: u64) -> Result<Conduit, Error> {
        let core = self.into_core(now, jitter_seed)?;
        let config = Arc::clone(core.session_config());
        Ok(Conduit::new(core, &config, now))
    }

    /// Connects: returns once the first `setup` is complete (and the initial context, if any,
    /// is seeded), or with the error that prevented it. With a store (`store`, feature
    /// `store`), it first takes the session's lease, and fails with `Error::Store` when
    /// another live owner holds it or the saved state cannot be read; a saved state is taken
    /// over as [`resume_from`](Self::resume_from) says.
    ///
    /// The future is boxed, a pointer in size: the dial's state (TCP, TLS, the upgrade,
    /// `setup`) takes kilobytes, and a future awaited inline keeps its full size in the
    /// awaiting task for as long as the task lives, connected or not.
    pub fn connect(
        self,
    ) -> impl Future<Output = Result<(LiveSession, SessionEvents), Error>> + Send + 'static {
        Box::pin(self.connect_inline())
    }

    async fn connect_inline(
        #[allow(unused_mut)] mut self,
    ) -> Result<(LiveSession, SessionEvents), Error> {
        #[cfg(feature = "store")]
        if let Some(ownership) = self.ownership.take() {
            if self.resume_from.is_some() {
                // The store's saved state is the newer one, and the first save would overwrite
                // it with the state given here: refused before the lease is taken.
                return Err(Error::Config(
                    "resume_from and store together: connect loads the store's saved state                      itself; pass one of them"
                        .to_owned(),
                ));
            }
            let (held, saved) = ownership.acquire(random_seed()).await?;
            self.resume_from = saved;
            let (connected, session) = tokio::sync::oneshot::channel();
            let keeper = tokio::spawn(held.keep(session));
            return match self.connect_unowned().await {
                Ok((shared, events)) => {
                    crate::ownership::owned(&shared);
                    let _ = connected.send(Some(Arc::clone(&shared)));
                    let events = SessionEvents::new(Arc::clone(&shared), events);
                    Ok((LiveSession::new(shared), events))
                }
                Err(err) => {
                    // The keeper releases the lease: returned once it has.
                    let _ = connected.send(None);
                    let _ = keeper.await;
                    Err(err)
                }
            };
        }
        let (shared, events) = self.connect_unowned().await?;
        let events = SessionEvents::new(Arc::clone(&shared), events);
        Ok((LiveSession::new(shared), events))
    }

    /// [`connect`](Self::connect) without a lease: the session's state and event queue.
    async fn connect_unowned(self) -> Result<(Arc<Shared>, Arc<EventQueue>), Error> {
        let jitter_seed = self.jitter_seed.unwrap_or_else(random_seed);
        let endpoint = self.endpoint.clone();
        let epoch = Instant::now();
        let conduit = self.into_sans_io(Millis(0), jitter_seed)?;
        // One copy of the configuration, the core's, shared.
        let config = Arc::clone(conduit.core().session_config());
        let events = Arc::new(EventQueue::new(config.event_capacity));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                conduit,
                socket: None,
                dial: None,
                dialing: None,
                events: Arc::clone(&events),
                // The driver reads the conduit's deadline as it starts: until then no deadline
                // needs it woken.
                armed: Some(Millis(0)),
                rate: config.input_sample_rate,
                metrics: crate::metrics::SessionMetrics::default(),
            }),
            input: Mutex::new(InputConverter::new(config.input_sample_rate)),
            config,
            endpoint: Arc::new(endpoint),
            events: Arc::clone(&events),
            reading: Mutex::new(Reading::default()),
            current: AtomicU64::new(NO_SOCKET),
            watchers: AtomicUsize::new(0),
            wake: Notify::new(),
            room: Notify::new(),
            wakeups: AtomicU64::new(0),
            changed: watch::Sender::new(0),
            #[cfg(feature = "store")]
            hand_off: crate::ownership::HandOff::default(),
            #[cfg(feature = "store")]
            persist: watch::Sender::new(None),
            #[cfg(feature = "store")]
            keeper_wakeups: AtomicU64::new(0),
            epoch,
        });
        // The first connection is opened by the caller's task: no hand-off to the driver on
        // the way to the first `setupComplete`. Nobody else holds the session yet, so no close
        // can race this dial.
        let first = {
            let mut state = shared.lock();
            match state.conduit.poll_order() {
                Some(Order::Dial { connection, setup }) => {
                    state.dialing = Some(connection);
                    Some((connection, setup))
                }
                _ => None,
            }
        };
        if let Some((connection, setup)) = first {
            // Bounded by the conduit's deadline for the dial, as the driver bounds later ones.
            let deadline = shared.lock().conduit.poll_timeout();
            let deadline = deadline.map(|at| epoch + Duration::from_millis(at.0));
            let dial = open(
                Arc::clone(&shared.endpoint),
                Arc::clone(&shared.config),
                setup,
            );
            match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, dial).await {
                    Ok(opened) => opened_connection(&shared, connection, opened),
                    Err(_) => shared.with(|state, now| state.conduit.handle_timeout(now)),
                },
                None => opened_connection(&shared, connection, dial.await),
            }
        }
        // The driver starts once the first dial is over (nothing else can use the session
        // before `connect()` returns): it runs once this task yields, arms the timer and starts
        // the first connection's reader then, none of it on the way to `connect()` returning.
        // A dial ordered meanwhile (the first one failed) is its first work.
        let driver = Driver {
            shared: Arc::clone(&shared),
            dial: None,
        };
        let driver = tokio::spawn(driver.run());
        // Subscribed only when the first dial did not settle it: a subscriber makes every
        // change notify it.
        let mut changed: Option<Watch<'_>> = None;
        loop {
            let failed = {
                let state = shared.lock();
                let core = state.conduit.core();
                if core.has_connected() {
                    break;
                }
                core.closed()
                    .map(|error| error.clone().map_or(Error::Closed, Error::Session))
            };
            if let Some(error) = failed {
                // The session ended before its first setup: the driver drops a dial still
                // under way (it was released) and ends. Returned once it has, so that a lease
                // given back after this (feature `store`) has no dial of this session left
                // (bounded, in case the driver is slow to run).
                let _ = tokio::time::timeout(DRIVER_END, driver).await;
                return Err(error);
            }
            match changed.as_mut() {
                // A change after this subscription wakes the wait below; one before it is
                // read by looking again.
                None => changed = Some(shared.watch()),
                Some(changed) => {
                    if changed.changed().await.is_err() {
                        return Err(Error::Closed);
                    }
                }
            }
        }
        drop(changed);
        Ok((shared, events))
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
