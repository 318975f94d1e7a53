//! The async shell around the [`Conduit`]: sockets, tasks, timers and wakers, and no decision.
//!
//! Everything, the conduit and the open socket included, sits in one [`State`] behind a mutex
//! shared by the handle ([`LiveSession`]), the driver task and the reader task (as quinn
//! shares its `quinn_proto::Connection`). Each of them feeds the conduit an input and then
//! carries out what it asks ([`State::settle`]): its orders (dial, release a socket), its
//! frames (written to the socket at once, from the caller's thread, polling with a no-op waker
//! while the socket is not blocked; once it is, only the driver polls it, with its own waker,
//! until it takes everything), its events (to the application's queue) and its timer (the
//! driver sleeps until [`Conduit::poll_timeout`]).
//!
//! - The handle's calls run the conduit synchronously, so they return the ids they created and
//!   fail with [`Error::Closed`] the moment the session has ended; a chunk of audio pushed while
//!   the socket is idle is written before `push_audio` returns, with no wake-up of another task.
//! - The reader task feeds each server frame to the conduit, and reads the next only while the
//!   application's event queue has room (TCP pushes back on the server); it tells the conduit
//!   when it stops and resumes, and how a connection ended.
//! - The driver dials, sleeps until the conduit's next deadline, and polls a blocked socket.
//!   The first dial runs in `connect()`'s own task; the driver is spawned once it is over and
//!   starts that connection's reader itself, so that no task's start is on the way to
//!   `connect()` returning.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use gemini_transport::wire::{ClientMessage, ServerMessage};
use gemini_transport::{CloseInfo, Connection, ConnectionReceiver, ConnectionSender, Endpoint};
use resume_policy::{ConnectionId, Millis};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::audio_in::InputConverter;
use crate::conduit::{Conduit, Frame, FrameSink, Order, SinkFailed};
use crate::config::{LiveSessionBuilder, SessionConfig};
use crate::core::{CoreConfig, SessionCore};
use crate::handle::{LiveSession, SessionEvents};
use crate::queue::EventQueue;
use crate::{Error, SessionEvent};

/// The socket of the conduit's current connection.
struct Socket {
    id: ConnectionId,
    sender: ConnectionSender,
    /// The task reading it, once started.
    reader: Option<JoinHandle<()>>,
    /// Its receiving half while no task reads it yet: the first connection, opened by the
    /// caller of `connect()`, is read by a task the driver starts (so that neither task's
    /// start is on the way to `connect()` returning).
    unread: Option<ConnectionReceiver>,
}

impl Socket {
    /// Stops the reader and drops the socket.
    fn release(self) {
        if let Some(reader) = self.reader {
            reader.abort();
        }
    }
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
                        if let Some(socket) = self.socket.take() {
                            socket.release();
                        }
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

/// What the handle, the driver and the reader share.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) config: Arc<SessionConfig>,
    /// Where to dial, with the credential: only the dial reads it (the core's configuration
    /// does not carry it).
    endpoint: Arc<Endpoint>,
    pub(crate) events: Arc<EventQueue>,
    wake: Notify,
    /// Woken when audio leaves the backlog or the gap (room for `push_audio_wait`).
    pub(crate) room: Notify,
    /// How many times a call or the reader woke the driver (diagnostics: an idle socket takes
    /// audio without any).
    pub(crate) wakeups: AtomicU64,
    /// Bumped whenever the state may have changed (for `settled`, `context_changed`, `close`
    /// and `push_audio_wait`).
    pub(crate) changed: watch::Sender<u64>,
    /// Turns samples in any format into the session's PCM16 (`push_samples`); held across
    /// the push so that concurrent pushes keep their order.
    pub(crate) input: Mutex<InputConverter>,
    /// The lease's hand-off (feature `store`).
    #[cfg(feature = "store")]
    pub(crate) hand_off: crate::ownership::HandOff,
    epoch: Instant,
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
        if self.changed.receiver_count() > 0 {
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Runs `f` on the state, then [`State::settle`], and wakes the driver if it has
    /// something to do.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State, Millis) -> T) -> T {
        let now = self.now();
        let (result, wake, room) = {
            let mut state = self.lock();
            let held = state.conduit.held_audio_bytes();
            let result = f(&mut state, now);
            let wake = state.settle(now);
            let room =
                state.conduit.held_audio_bytes() < held || state.conduit.core().closed().is_some();
            (result, wake, room)
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
                if let Some(socket) = state.socket.as_mut() {
                    if let Some(receiver) = socket.unread.take() {
                        // The first connection's reader (spawned under the lock, as any reader).
                        let shared = Arc::clone(&self.shared);
                        socket.reader = Some(tokio::spawn(read(shared, socket.id, receiver)));
                    }
                }
                if state.conduit.is_finished() && self.dial.is_none() {
                    if let Some(socket) = state.socket.take() {
                        socket.release();
                    }
                    drop(state);
                    self.shared.bump();
                    return;
                }
                let timeout = state.conduit.poll_timeout();
                state.armed = timeout;
                let deadline = timeout.map(|at| self.shared.epoch + Duration::from_millis(at.0));
                let blocked = state.conduit.writer_blocked() && state.socket.is_some();
                (deadline, blocked)
            };
            let shared = Arc::clone(&self.shared);
            tokio::select! {
                biased;
                () = poll_fn(|cx| shared.with(|state, now| state.write(now, cx))), if blocked => {}
                () = self.shared.wake.notified() => {}
                () = sleep_until(deadline) => self.shared.with(|state, now| {
                    if let Some(id) = state.socket.as_ref().map(|s| s.id) {
                        state.pongs(id);
                    }
                    state.conduit.handle_timeout(now);
                }),
                (connection, opened) = dialing(&mut self.dial) => {
                    self.dial = None;
                    opened_connection(&self.shared, connection, opened, StartReader::Now);
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

/// Who starts the reader task of a connection just opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartReader {
    /// The driver, which opened it.
    Now,
    /// The driver, once it starts: the caller of `connect()` opened it.
    ByDriver,
}

/// The dial of `connection` ended: the socket and its reader on success, and the conduit is
/// told.
fn opened_connection(
    shared: &Arc<Shared>,
    connection: ConnectionId,
    opened: Opened,
    reader: StartReader,
) {
    match opened {
        Ok((sender, receiver, complete)) => {
            let reader_shared = Arc::clone(shared);
            shared.with(|state, now| {
                // Spawned under the lock: its first frame waits for the setup to be recorded.
                let (reader, unread) = match reader {
                    StartReader::Now => (
                        Some(tokio::spawn(read(reader_shared, connection, receiver))),
                        None,
                    ),
                    StartReader::ByDriver => (None, Some(receiver)),
                };
                if let Some(old) = state.socket.replace(Socket {
                    id: connection,
                    sender,
                    reader,
                    unread,
                }) {
                    old.release();
                }
                state.dialing = None;
                // As a message: the conduit takes the setup as complete, and reports a
                // session id the server gave.
                state.conduit.handle_message(now, connection, complete);
            });
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

/// The reader task of connection `id`: each server frame goes to the conduit, read only
/// while the application's event queue has room.
async fn read(shared: Arc<Shared>, id: ConnectionId, mut receiver: ConnectionReceiver) {
    loop {
        if shared.events.is_full() {
            shared.with(|state, now| state.conduit.set_reading_paused(now, true));
            shared.events.room().await;
            shared.with(|state, now| state.conduit.set_reading_paused(now, false));
        }
        match receiver.recv().await {
            Ok(message) => shared.with(|state, now| state.conduit.handle_message(now, id, message)),
            Err(e) if !e.ends_connection() => {
                shared.events.push(SessionEvent::Warning(format!(
                    "ignored a server frame: {e}"
                )));
            }
            Err(e) => {
                let info = close_info(&e);
                shared.with(|state, now| {
                    state.pongs(id);
                    state
                        .conduit
                        .handle_closed(now, id, info, Some(Arc::new(e)));
                });
                return;
            }
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

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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
                    Ok((LiveSession::new(shared), SessionEvents::new(events)))
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
        Ok((LiveSession::new(shared), SessionEvents::new(events)))
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
            wake: Notify::new(),
            room: Notify::new(),
            wakeups: AtomicU64::new(0),
            changed: watch::Sender::new(0),
            #[cfg(feature = "store")]
            hand_off: crate::ownership::HandOff::default(),
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
            let by_driver = StartReader::ByDriver;
            match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, dial).await {
                    Ok(opened) => opened_connection(&shared, connection, opened, by_driver),
                    Err(_) => shared.with(|state, now| state.conduit.handle_timeout(now)),
                },
                None => opened_connection(&shared, connection, dial.await, by_driver),
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
        tokio::spawn(driver.run());
        // Subscribed only when the first dial did not settle it: a subscriber makes every
        // change notify it.
        let mut changed: Option<watch::Receiver<u64>> = None;
        loop {
            {
                let state = shared.lock();
                let core = state.conduit.core();
                if core.has_connected() {
                    break;
                }
                if let Some(error) = core.closed() {
                    return Err(error.clone().map_or(Error::Closed, Error::Session));
                }
            }
            match changed.as_mut() {
                // A change after this subscription wakes the wait below; one before it is
                // read by looking again.
                None => changed = Some(shared.changed.subscribe()),
                Some(changed) => {
                    if changed.changed().await.is_err() {
                        return Err(Error::Closed);
                    }
                }
            }
        }
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
