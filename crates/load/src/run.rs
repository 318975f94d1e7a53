//! One `load-client` run: connect N sessions, start them together, collect what they measured.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use gemini_transport::{Endpoint, SecretString};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};

use crate::audio::{CHUNK, MODEL_CHUNKS_PER_SECOND};
use crate::procfs::{self, CpuTime};
use crate::{ClientArgs, Kind, Lateness, Pace, Report, bare, live};

/// After the last chunk, sessions keep reading this long before closing: the server streams
/// until 100 ms after the last audio it got.
pub(crate) const DRAIN: Duration = Duration::from_millis(150);

/// How long idle sessions sit connected before memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// When the streaming starts and how long it lasts; the same for every session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) start: Instant,
    pub(crate) duration: Duration,
}

impl Plan {
    pub(crate) fn end(&self) -> Instant {
        self.start + self.duration
    }

    /// Session `index`'s first tick: sessions are spread evenly over one 20 ms period, as
    /// independent microphones would be, rather than all sending in the same instant.
    pub(crate) fn first_tick(&self, index: usize, sessions: usize) -> Instant {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let sessions = u32::try_from(sessions.max(1)).unwrap_or(u32::MAX);
        self.start + CHUNK * index / sessions
    }

    /// Session `index`'s microphone: a 20 ms interval from its first tick that catches up on
    /// ticks the task reaches late (`MissedTickBehavior::Burst`: a microphone keeps capturing
    /// while the program is late, so the audio exists and must be sent, not skipped), and how
    /// many ticks fall before the end of the run.
    pub(crate) fn microphone(&self, index: usize, sessions: usize) -> (Interval, u64) {
        let first = self.first_tick(index, sessions);
        let mut ticks = interval_at(first, CHUNK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let span = self.end().saturating_duration_since(first).as_nanos();
        let due = u64::try_from(span.div_ceil(CHUNK.as_nanos())).unwrap_or(u64::MAX);
        (ticks, due)
    }
}

/// What one session task is given.
pub(crate) struct SessionCtx {
    pub(crate) index: usize,
    pub(crate) args: Arc<ClientArgs>,
    pub(crate) endpoint: Endpoint,
    /// Limits concurrent dials.
    pub(crate) dials: Arc<Semaphore>,
    /// Reports the connect result.
    pub(crate) ready: mpsc::UnboundedSender<Result<(), String>>,
    /// The plan, once every session is connected (idle runs: the stop signal).
    pub(crate) start: watch::Receiver<Option<Plan>>,
    /// The `setup` the bare clients send: the one the session sends.
    pub(crate) setup: Arc<str>,
}

impl SessionCtx {
    /// Waits for the common start; `None` if the run was abandoned.
    pub(crate) async fn plan(&mut self) -> Option<Plan> {
        let plan = self.start.wait_for(Option::is_some).await.ok()?;
        *plan
    }
}

/// What one session measured.
#[derive(Debug, Default)]
pub(crate) struct SessionOutcome {
    pub(crate) connected: bool,
    pub(crate) sent: u64,
    pub(crate) due: u64,
    pub(crate) received: u64,
    pub(crate) lateness: Lateness,
    pub(crate) error: Option<String>,
}

impl SessionOutcome {
    pub(crate) fn failed(error: String) -> Self {
        SessionOutcome {
            error: Some(error),
            ..SessionOutcome::default()
        }
    }

    /// A microphone tick scheduled `at`: whether it falls within the run (before `end`), and
    /// if so its lateness is recorded (against its schedule, not the previous tick).
    pub(crate) fn tick_in_run(&mut self, at: Instant, end: Instant) -> bool {
        if at >= end {
            return false;
        }
        self.lateness
            .record(Instant::now().saturating_duration_since(at));
        true
    }
}

fn runtime(args: &ClientArgs) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("building the runtime: {e}"))
}

/// The API key every kind sends (the bare clients in their upgrade request, as a client of the
/// real service must).
pub(crate) const API_KEY: &str = "load";

fn endpoint(args: &ClientArgs) -> Result<Endpoint, String> {
    Endpoint::api_key(SecretString::from(API_KEY))
        .with_base_url(&args.url)
        .map_err(|e| format!("--url: {e}"))
}

/// Prints a phase marker line (`{"phase":"start"}`), flushed, for the orchestrator to sample
/// the server's CPU at the same moment.
fn phase(name: &str) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{}", serde_json::json!({ "phase": name }));
    let _ = stdout.flush();
}

/// The session tasks of one run and the channels that coordinate them.
struct Sessions {
    start: watch::Sender<Option<Plan>>,
    ready: mpsc::UnboundedReceiver<Result<(), String>>,
    tasks: Vec<tokio::task::JoinHandle<SessionOutcome>>,
}

/// Spawns one task per session.
fn spawn_sessions(args: &Arc<ClientArgs>, endpoint: &Endpoint, idle: bool) -> Sessions {
    let setup = setup(args, endpoint);
    let (start_tx, start_rx) = watch::channel(None);
    let (ready_tx, ready_rx) = mpsc::unbounded_channel();
    let dials = Arc::new(Semaphore::new(args.connect_concurrency));
    let tasks = (0..args.sessions)
        .map(|index| {
            let ctx = SessionCtx {
                index,
                args: Arc::clone(args),
                endpoint: endpoint.clone(),
                dials: Arc::clone(&dials),
                ready: ready_tx.clone(),
                start: start_rx.clone(),
                setup: Arc::clone(&setup),
            };
            match (args.kind, idle) {
                (Kind::Live, false) => tokio::spawn(live::session(ctx)),
                (Kind::Live, true) => tokio::spawn(live::idle(ctx)),
                (_, false) => tokio::spawn(bare::session(ctx)),
                (_, true) => tokio::spawn(bare::idle(ctx)),
            }
        })
        .collect();
    Sessions {
        start: start_tx,
        ready: ready_rx,
        tasks,
    }
}

/// Waits until every session reported its connect result; returns how many failed and the
/// first error.
async fn connected(
    ready: &mut mpsc::UnboundedReceiver<Result<(), String>>,
    sessions: usize,
) -> (usize, Option<String>) {
    let mut failed = 0;
    let mut first = None;
    for _ in 0..sessions {
        match ready.recv().await {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                failed += 1;
                first.get_or_insert(error);
            }
            None => break,
        }
    }
    (failed, first)
}

/// The `setup` of a `LiveSession` for the run's model (what the bare clients send too).
fn setup(args: &ClientArgs, endpoint: &Endpoint) -> Arc<str> {
    crate::audio::live_setup_json(endpoint, &args.model)
        .unwrap_or_else(|| crate::audio::setup_json(&args.model))
        .into()
}

fn cpu_now() -> procfs::CpuSample {
    procfs::CpuSample::now()
}

/// Streams: connects every session, starts them together, and reports.
///
/// # Errors
/// When the runtime cannot be built or the URL is not a `ws://` base URL.
pub fn run_client(args: ClientArgs) -> Result<Report, String> {
    let runtime = runtime(&args)?;
    let endpoint = endpoint(&args)?;
    let args = Arc::new(args);
    runtime.block_on(async move {
        let dial_start = Instant::now();
        let Sessions {
            start,
            mut ready,
            tasks,
        } = spawn_sessions(&args, &endpoint, false);
        let (failed, mut first_error) = connected(&mut ready, args.sessions).await;
        let connect_wall = dial_start.elapsed();

        phase("start");
        let cpu_before = cpu_now();
        let started = Instant::now();
        let plan = Plan {
            // A moment ahead, so that every task is waiting on its first tick.
            start: started + Duration::from_millis(5),
            duration: args.duration,
        };
        start.send_replace(Some(plan));
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(
                task.await
                    .unwrap_or_else(|e| SessionOutcome::failed(format!("session task: {e}"))),
            );
        }
        let wall = started.elapsed();
        let cpu = cpu_now().since(&cpu_before);
        phase("end");

        let mut lateness = Lateness::default();
        let mut errors = 0;
        let (mut chunks, mut due, mut received, mut up) = (0, 0, 0, 0);
        for outcome in &outcomes {
            lateness.merge(&outcome.lateness);
            chunks += outcome.sent;
            due += outcome.due;
            received += outcome.received;
            up += usize::from(outcome.connected);
            if let Some(error) = &outcome.error {
                errors += 1;
                first_error.get_or_insert_with(|| error.clone());
            }
        }
        let streamed = args.duration.as_secs_f64() * MODEL_CHUNKS_PER_SECOND;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let expected = (streamed.floor() as u64) * u64::try_from(up).unwrap_or(0);
        Ok(Report {
            kind: args.kind,
            mode: args.pace.name(),
            sessions: args.sessions,
            connected: up,
            errors: errors.max(failed),
            first_error,
            threads: args.threads,
            connect_wall,
            wall,
            cpu,
            rss_kib: procfs::rss_kib().unwrap_or(0),
            chunks,
            chunks_due: if args.pace == Pace::Realtime { due } else { 0 },
            received,
            expected,
            lateness,
            idle_kib_per_session: None,
            connect_us: None,
            bare_connect_us: None,
        })
    })
}

/// Idle memory: connects every session, waits, and reports the growth of resident memory per
/// session.
///
/// # Errors
/// When the runtime cannot be built or the URL is not a `ws://` base URL.
pub fn run_idle(args: ClientArgs) -> Result<Report, String> {
    let runtime = runtime(&args)?;
    let endpoint = endpoint(&args)?;
    let args = Arc::new(args);
    runtime.block_on(async move {
        let rss_before = procfs::rss_kib()?;
        let dial_start = Instant::now();
        let Sessions {
            start: stop,
            mut ready,
            tasks,
        } = spawn_sessions(&args, &endpoint, true);
        let (failed, first_error) = connected(&mut ready, args.sessions).await;
        let connect_wall = dial_start.elapsed();
        tokio::time::sleep(IDLE_SETTLE).await;
        let rss_after = procfs::rss_kib()?;
        let up = args.sessions - failed;
        #[allow(clippy::cast_precision_loss)]
        let per_session = rss_after.saturating_sub(rss_before) as f64 / up.max(1) as f64;
        stop.send_replace(Some(Plan {
            start: Instant::now(),
            duration: Duration::ZERO,
        }));
        for task in tasks {
            let _ = task.await;
        }
        Ok(Report {
            kind: args.kind,
            mode: "idle",
            sessions: args.sessions,
            connected: up,
            errors: failed,
            first_error,
            threads: args.threads,
            connect_wall,
            wall: Duration::ZERO,
            cpu: CpuTime::default(),
            rss_kib: rss_after,
            chunks: 0,
            chunks_due: 0,
            received: 0,
            expected: 0,
            lateness: Lateness::default(),
            idle_kib_per_session: Some(per_session),
            connect_us: None,
            bare_connect_us: None,
        })
    })
}

/// Between two timed connects: the previous connection finishes closing on both sides,
/// untimed, so that no sample pays for the one before.
const BETWEEN_CONNECTS: Duration = Duration::from_millis(5);

/// `connect()` latency beside a bare connection's, in the same run: `sessions` pairs of
/// connects, one after another, each pair a `LiveSession::connect` (which returns once the first
/// `setup` is complete) and a bare tokio-tungstenite connection (TCP, the upgrade with the same
/// 16 KiB read buffer, the session's own `setup`, and its `setupComplete`), which one goes
/// first alternating. Each connect is timed from the call to `setupComplete`, and each
/// connection closed, untimed (its close handshake over), before the next. Interleaved, the two
/// kinds meet the same machine: on a shared machine, runs made one after another drift more
/// than the difference measured.
///
/// # Errors
/// When the runtime cannot be built, the URL is not a `ws://` base URL, or a connect fails.
pub fn run_connect(args: ClientArgs) -> Result<Report, String> {
    let runtime = runtime(&args)?;
    let endpoint = endpoint(&args)?;
    let setup = setup(&args, &endpoint);
    let args = Arc::new(args);
    runtime.block_on(async move {
        let started = Instant::now();
        let cpu_before = cpu_now();
        // On a worker thread, as an application's task connects (not on `block_on`'s thread).
        let connects = tokio::spawn(async move {
            let mut live = Vec::with_capacity(args.sessions);
            let mut bare = Vec::with_capacity(args.sessions);
            for pair in 0..args.sessions {
                for live_turn in [pair % 2 == 0, pair % 2 == 1] {
                    tokio::time::sleep(BETWEEN_CONNECTS).await;
                    if live_turn {
                        live.push(live::connect_once(&args, &endpoint).await?);
                    } else {
                        bare.push(bare::connect_once(&endpoint, &setup).await?);
                    }
                }
            }
            Ok::<_, String>((live, bare, args))
        });
        let (live, bare, args) = connects.await.map_err(|e| format!("connect task: {e}"))??;
        let cpu = cpu_now().since(&cpu_before);
        Ok(Report {
            kind: args.kind,
            mode: "connect",
            sessions: args.sessions,
            connected: live.len(),
            errors: 0,
            first_error: None,
            threads: args.threads,
            connect_wall: Duration::ZERO,
            wall: started.elapsed(),
            cpu,
            rss_kib: procfs::rss_kib().unwrap_or(0),
            chunks: 0,
            chunks_due: 0,
            received: 0,
            expected: 0,
            lateness: Lateness::default(),
            idle_kib_per_session: None,
            connect_us: deciles(live),
            bare_connect_us: deciles(bare),
        })
    })
}

/// The 10th percentile, the median and the 90th percentile of `took`, in µs.
fn deciles(mut took: Vec<Duration>) -> Option<[f64; 3]> {
    if took.is_empty() {
        return None;
    }
    took.sort();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((took.len() - 1) as f64 * q).round() as usize;
        took[index].as_secs_f64() * 1e6
    };
    Some([at(0.1), at(0.5), at(0.9)])
}
