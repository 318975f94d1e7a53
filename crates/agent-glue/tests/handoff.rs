//! Sessions beyond one process (feature `store-redis`): worker processes carry one session over
//! loopback against the fake, with their leases and saved state in a real `redis-server`
//! (and, as a second variant, in a `FileStore`).
//!
//! The workers are this test binary run again (`worker`, a no-op unless `HANDOFF_WORKER` is
//! set). Each worker's application takes its context from the store (the context it keeps is
//! the one the session saved), connects with the store and the key (waiting while another
//! worker holds the lease, and saying `waiting` once), and runs turns: every third one asks
//! for a tool, whose result it sends a little later; after each turn it appends a note and
//! pushes 200 ms of silent audio at real time. After its turns it hands off
//! ([`LiveSession::hand_off`]).
//!
//! - `handoff_across_processes_with_kills` (Redis) and `…_file_store` (a `FileStore`): each
//!   worker is killed with SIGKILL at a random point (a tool call pending, audio flowing, a
//!   context append just made, a turn under way) while the next one already polls the lease;
//!   the next one takes over once the dead one's lease has run out. Each takeover is timed,
//!   from the SIGKILL to the next owner's `connect` returning (its `setupComplete` on the
//!   resumed connection): the worst must be within the lease TTL + 1 s; the median and the
//!   worst are printed (and written to `HANDOFF_SUMMARY` when set).
//! - `drained_owner_hands_off_at_once` (Redis, a 5 s lease): a worker that hands off is
//!   followed by the waiting one at once (well under the TTL), on the same server session.
//! - `partitioned_owner_closes_before_its_lease_expires` (Redis, a 2 s lease): the owner's
//!   Redis connection goes through a TCP proxy of the test, which is then blackholed (bytes
//!   read and dropped, the sockets left open): the owner cannot renew, so it must close its
//!   socket before its lease runs out in Redis (the fake's record of the socket's end is
//!   compared with the lease's expiry read from Redis), and the next owner takes over only
//!   after that expiry, within a second of it.
//!
//! Checked at the end of each: the server's context equals the last saved `L`, every turn,
//! note, call and result once; no tool call reached two workers (a call a dead worker had not
//! answered is reported by the next, not run again); no server session ever had two
//! connections open at once, and no resume was refused.
//!
//! Each test starts its own `redis-server` (`SESSION_STORE_REDIS_SERVER`, else `redis-server`
//! on `PATH`) on a free loopback port, with no persistence, and kills it at the end. Without
//! the binary the Redis tests fail when `CI` is set and skip, saying so, otherwise. The tests
//! of this file run one at a time (their timings are the point).
//!
//! `HANDOFF_KILLS` sets the number of kills (default 3); `HANDOFF_SEED` the random seed
//! (default drawn and printed); `HANDOFF_TTL_MS` the kill tests' lease TTL (default
//! [`MIN_LEASE_TTL`](agent_glue::MIN_LEASE_TTL)). `cargo xtask handoff [--kills N] [--seed S]
//! [--ttl SECONDS]` runs the Redis kill test alone, 100 kills by default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agent_glue::{ChatContext, Error, Item, LiveSession, Message, SessionEvent, SessionEvents};
use common::*;
use gemini_fake::{FakeServer, Family};
use gemini_transport::wire::Modality;
use redis_server::RedisServer;
use serde_json::json;
use session_store::{
    Error as StoreError, FileStore, OwnerId, RedisStore, SessionKey, SessionStore,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

fn key() -> SessionKey {
    SessionKey::new("call-handoff").unwrap()
}

/// A worker's line on stdout, as the test reads it.
const PREFIX: &str = "WORKER ";

fn say(what: impl std::fmt::Display) {
    println!("{PREFIX}{what}");
}

/// The worker, when this binary is run as one (`HANDOFF_WORKER` set); a no-op otherwise.
#[test]
fn worker() {
    if std::env::var_os("HANDOFF_WORKER").is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let code = runtime.block_on(run_worker());
    say(format_args!("exit {code}"));
    std::process::exit(code);
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The worker's store: `HANDOFF_STORE` is `file` (a `FileStore` in `HANDOFF_DIR`) or `redis`
/// (a `RedisStore` at `HANDOFF_REDIS`, which may be the test's proxy).
async fn open_store() -> Result<Arc<dyn SessionStore>, StoreError> {
    Ok(match env("HANDOFF_STORE").as_str() {
        "file" => Arc::new(FileStore::new(PathBuf::from(env("HANDOFF_DIR")))?),
        _ => Arc::new(RedisStore::connect(&env("HANDOFF_REDIS")).await?),
    })
}

/// The highest `n` of a user turn `turn n` in `ctx`.
fn last_turn(ctx: &ChatContext) -> u32 {
    ctx.iter()
        .filter_map(|item| match item {
            Item::Message(m) => m
                .text()
                .strip_prefix("turn ")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok()),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

async fn run_worker() -> i32 {
    let url = env("HANDOFF_URL");
    let name = env("HANDOFF_NAME");
    let more: u32 = env("HANDOFF_MORE").parse().unwrap();
    let ttl = Duration::from_millis(env("HANDOFF_TTL_MS").parse().unwrap());
    let store = match open_store().await {
        Ok(store) => store,
        Err(err) => {
            say(format_args!("store failed: {err}"));
            return 2;
        }
    };
    let endpoint = agent_glue::Endpoint::api_key(agent_glue::SecretString::from("test-key"))
        .with_base_url(&url)
        .unwrap();
    // Wait for the lease: another worker holds it, or held it when it died.
    let give_up = tokio::time::Instant::now() + ttl * 3 + Duration::from_secs(20);
    let mut said_waiting = false;
    let (session, mut events) = loop {
        let context = match store.load(&key()).await {
            Ok(saved) => saved.map(|s| s.session.desired).unwrap_or_default(),
            Err(err) => {
                say(format_args!("load failed: {err}"));
                return 2;
            }
        };
        let connected = LiveSession::builder(
            endpoint.clone(),
            "models/gemini-2.5-flash-native-audio-preview-12-2025",
        )
        .modality(Modality::Text)
        // Input transcription on, as a voice agent has it: without it, a reaction that
        // follows a run of audio is matched to the run (the client cannot see where the
        // server split speech into turns), and a typed turn's answer lands before it in `L`.
        .transcription(true)
        .tools(vec![weather_tool()])
        .initial_context(context)
        .store(Arc::clone(&store), key())
        .lease_owner(OwnerId::new(name.clone()).unwrap())
        .lease_ttl(ttl)
        .connect()
        .await;
        match connected {
            Ok(connected) => break connected,
            Err(Error::Store(StoreError::Held { .. })) if tokio::time::Instant::now() < give_up => {
                if !said_waiting {
                    // The test waits for this line before it kills the current owner.
                    say("waiting");
                    said_waiting = true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => {
                say(format_args!("connect failed: {err}"));
                return 2;
            }
        }
    };
    say("connected");
    let first = last_turn(&session.chat_ctx()) + 1;
    for n in first..first + more {
        let text = if n % 3 == 1 {
            format!("turn {n}: what does get_weather say")
        } else {
            format!("turn {n}")
        };
        if session.send_text(text).is_err() {
            return closed(&mut events);
        }
        say(format_args!("turn {n}"));
        if let Err(why) = answer_turn(&session, &mut events, n).await {
            say(why);
            return closed(&mut events);
        }
        let note: Item = Message::user(format!("note-{n}"), format!("note {n}")).into();
        if session.append_chat_items(vec![note]).is_err() {
            return closed(&mut events);
        }
        say(format_args!("note {n}"));
        let chunks = if std::env::var_os("HANDOFF_NO_AUDIO").is_some() {
            0
        } else {
            5
        };
        for chunk in 0..chunks {
            // 40 ms of silence: audio flowing, no speech.
            if session.push_audio(vec![0u8; 1280]).is_err() {
                return closed(&mut events);
            }
            say(format_args!("audio {n}.{chunk}"));
            // At the pace of a microphone: a turn every quarter of a second or so, not as
            // fast as the machine goes (the context still grows to hundreds of turns over a
            // 100-kill run, more with a longer lease: each worker lives longer).
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
    say("handing off");
    match session.hand_off().await {
        Ok(()) => {
            say("done");
            0
        }
        Err(err) => {
            say(format_args!("hand_off failed: {err}"));
            4
        }
    }
}

/// The session ended under the worker: says what its last events were (a lost lease says
/// so), and the exit code.
fn closed(events: &mut SessionEvents) -> i32 {
    say("closed");
    while let Some(event) = events.try_recv() {
        if !matches!(event, SessionEvent::Text(_)) {
            say(format_args!("event {event:?}"));
        }
    }
    3
}

/// Reads events until the model's turn is over, answering a tool call on the way (a few
/// milliseconds later, so that a kill can land while it is pending).
async fn answer_turn(
    session: &LiveSession,
    events: &mut SessionEvents,
    turn: u32,
) -> Result<(), String> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?
            .ok_or_else(|| "the session ended".to_owned())?;
        match event {
            SessionEvent::ToolCall { call_id, .. } => {
                say(format_args!("tool call {call_id}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                session
                    .send_tool_result(call_id.clone(), json!({"temperature": 21, "turn": turn}))
                    .map_err(|e| format!("tool result: {e}"))?;
                say(format_args!("tool result {call_id}"));
            }
            // The model's answer (to the turn, or to the tool's result).
            SessionEvent::TurnComplete => return Ok(()),
            SessionEvent::Closed { error } => return Err(format!("closed: {error:?}")),
            SessionEvent::Divergence { .. }
            | SessionEvent::Warning(_)
            | SessionEvent::InvariantBroken { .. }
            | SessionEvent::Interrupted
            | SessionEvent::ToolCallCancelled { .. } => say(format_args!("event {event:?}")),
            _ => {}
        }
    }
}

/// xorshift64*: the kill points, reproducible from the printed seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The tests of this file one at a time: their timings are what they check.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `test` on a runtime of its own, alone.
fn serial<F: std::future::Future<Output = ()>>(test: F) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The Redis key of the session's lease (`RedisStore`'s default prefix).
fn lease_key() -> String {
    format!("gemini-live:{{{}}}:lease", key())
}

/// A TCP proxy to a Redis port, which the test can blackhole: from then on every byte it
/// reads, either way, is dropped, and the sockets stay open (a network partition, not a
/// refused connection).
struct Proxy {
    port: u16,
    blackholed: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let blackholed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&blackholed);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pump(client_read, server_write, Arc::clone(&flag)));
                    tokio::spawn(pump(server_read, client_write, flag));
                });
            }
        });
        Proxy {
            port,
            blackholed,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn blackhole(&self) {
        self.blackholed.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to` until either ends; drops what it reads once `blackholed` is set.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackholed: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if blackholed.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Where the workers keep the session.
enum Backend {
    File(PathBuf),
    Redis(RedisServer),
}

impl Backend {
    /// A Redis server of the test's own, or `None` (skip).
    fn redis() -> Option<Backend> {
        RedisServer::start().map(Backend::Redis)
    }

    fn file(test: &str) -> Backend {
        let dir =
            std::env::temp_dir().join(format!("agent-glue-handoff-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Backend::File(dir)
    }

    fn redis_server(&self) -> &RedisServer {
        match self {
            Backend::Redis(server) => server,
            Backend::File(_) => panic!("not a Redis backend"),
        }
    }

    /// The store as the test reads it at the end.
    async fn store(&self) -> Arc<dyn SessionStore> {
        match self {
            Backend::File(dir) => Arc::new(FileStore::new(dir).unwrap()),
            Backend::Redis(server) => Arc::new(RedisStore::connect(&server.url()).await.unwrap()),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::File(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A worker to start: its name, how many turns it runs before it hands off, its lease TTL,
/// and the Redis address it uses when not the server's own (a proxy).
struct Spec<'a> {
    name: String,
    more: u32,
    ttl: Duration,
    redis: Option<&'a str>,
}

/// A worker process and its lines.
struct Worker {
    child: Child,
    name: String,
    /// Its lines, each with the moment the test read it from the pipe.
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    /// Its last lines, for failure messages.
    seen: Vec<String>,
    /// The tool calls it ran.
    calls: Vec<String>,
}

impl Worker {
    fn start(url: &str, backend: &Backend, spec: Spec<'_>) -> Worker {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "worker", "--nocapture", "--test-threads=1"])
            .env("HANDOFF_WORKER", "1")
            .env("HANDOFF_URL", url)
            .env("HANDOFF_NAME", &spec.name)
            .env("HANDOFF_MORE", spec.more.to_string())
            .env("HANDOFF_TTL_MS", spec.ttl.as_millis().to_string());
        match backend {
            Backend::File(dir) => command.env("HANDOFF_STORE", "file").env("HANDOFF_DIR", dir),
            Backend::Redis(server) => command.env("HANDOFF_STORE", "redis").env(
                "HANDOFF_REDIS",
                spec.redis.map_or_else(|| server.url(), str::to_owned),
            ),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print `test worker ... ` before the worker's first line.
                if let Some(at) = line.find(PREFIX) {
                    let line = line[at + PREFIX.len()..].to_owned();
                    if send.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            }
        });
        Worker {
            child,
            name: spec.name,
            lines,
            seen: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// The worker's next line and when it was read (`None`: its stdout closed).
    async fn timed_line(&mut self) -> Option<(Instant, String)> {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: silent for 30 s", self.name));
        if let Some((_, line)) = &line {
            self.note(line);
        }
        line
    }

    /// Keeps what `line` says: a tool call, and the last lines.
    fn note(&mut self, line: &str) {
        if let Some(call) = line.strip_prefix("tool call ") {
            self.calls.push(call.to_owned());
        }
        if std::env::var_os("HANDOFF_VERBOSE").is_some() {
            eprintln!("{}: {line}", self.name);
        }
        if self.seen.len() == 20 {
            self.seen.remove(0);
        }
        self.seen.push(line.to_owned());
    }

    /// Reads the lines already there; `true` if one says the worker ended.
    fn drain_buffered(&mut self) -> bool {
        let mut ended = false;
        while let Ok((_, line)) = self.lines.try_recv() {
            self.note(&line);
            ended |= line.starts_with("exit");
        }
        ended
    }

    async fn line(&mut self) -> Option<String> {
        self.timed_line().await.map(|(_, line)| line)
    }

    /// Panics unless the worker ended because it lost its lease (a worker slowed down past
    /// its lease by a loaded machine closes its session on its own, as it must).
    fn lost_its_lease(&self) {
        assert!(
            self.seen.iter().any(|line| line.contains("lease")),
            "{} ended; its last lines: {:#?}",
            self.name,
            self.seen
        );
    }

    /// Reads lines until the worker is done (`Some` with when it said so), or ends having
    /// lost its lease (`None`).
    async fn finish(&mut self) -> Option<Instant> {
        while let Some((at, line)) = self.timed_line().await {
            if line.starts_with("done") {
                return Some(at);
            }
            if line.starts_with("exit") {
                self.lost_its_lease();
                return None;
            }
        }
        panic!("{}: ended before it was done", self.name);
    }

    /// Panics if `line` says the worker ended.
    fn alive(&self, line: &str) {
        assert!(
            !line.starts_with("exit"),
            "{} ended; its last lines: {:#?}",
            self.name,
            self.seen
        );
    }

    /// Reads lines until one starts with one of `what`; returns it and when it was read;
    /// panics if the worker ends first.
    async fn until_one_of(&mut self, what: &[&str]) -> (Instant, String) {
        while let Some((at, line)) = self.timed_line().await {
            if what.iter().any(|w| line.starts_with(w)) {
                return (at, line);
            }
            self.alive(&line);
        }
        panic!("{}: ended before {what:?}", self.name);
    }

    /// Reads lines until one starts with `what`; returns when it was read.
    async fn until(&mut self, what: &str) -> Instant {
        self.until_one_of(&[what]).await.0
    }

    /// Waits for the process to end and reads what it printed; its tool calls go to `calls`.
    async fn reap(mut self, calls: &mut Vec<String>) {
        self.child.wait().unwrap();
        while self.line().await.is_some() {}
        calls.append(&mut self.calls);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Median and worst of `times` (sorted here).
fn median_worst(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    match times {
        [] => (Duration::ZERO, Duration::ZERO),
        _ => (times[times.len() / 2], times[times.len() - 1]),
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The checks at the end of every test: the last worker has handed off; the server's context
/// is the last saved `L`, each entry once; no tool ran twice; no two sockets of a session at
/// once; no resume refused.
async fn check_the_end(server: &FakeServer, backend: &Backend, calls: &[String]) -> String {
    // No tool ran twice: a call a dead worker had not answered is not run by the next one.
    let mut unique = calls.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), calls.len(), "a tool ran twice: {calls:?}");

    let store = backend.store().await;
    let saved = store.load(&key()).await.unwrap().expect("saved");
    let l = saved.session.desired;
    let s = s_entries(server);
    if std::env::var_os("HANDOFF_VERBOSE").is_some() {
        for connection in server.connections() {
            eprintln!(
                "connection {:?} of {:?}, resumed from {:?}, ended {:?}",
                connection.id,
                connection.session,
                connection.resumed_from,
                connection.closed_with()
            );
            for frame in &connection.frames {
                if frame.kind != "realtimeInput" || !frame.raw.contains("audio") {
                    eprintln!(
                        "  {} {}",
                        frame.index,
                        &frame.raw[..frame.raw.len().min(300)]
                    );
                }
            }
        }
    }
    assert_eq!(
        s,
        l_entries(&l),
        "the server's context is not the last saved L"
    );
    // Every user turn, note, call and result is unique by construction (model answers can
    // repeat: an answer cut off before its first word is empty).
    let mut unique: Vec<&String> = s.iter().filter(|e| !e.starts_with("model: ")).collect();
    let all = unique.len();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all, "an entry twice: {s:#?}");
    assert!(last_turn(&l) >= 2, "no progress: {s:#?}");
    for id in server.sessions() {
        assert_eq!(
            server.session(id).unwrap().overlaps(),
            0,
            "two sockets at once"
        );
    }
    for connection in server.connections() {
        assert_ne!(
            connection.closed_with().map(|(code, _)| code),
            Some(1011),
            "a resume was refused: {connection:?}"
        );
    }
    let checked = format!(
        "checked: the server's context is the last saved L ({} entries, {} turns, each \
         once), {} tool calls each run once, 0 overlapping sockets, 0 refused resumes ({} \
         server sessions, {} connections)",
        s.len(),
        last_turn(&l),
        calls.len(),
        server.sessions().len(),
        server.connections().len(),
    );
    eprintln!("handoff: {checked}");
    checked
}

/// The kill test on `backend`: `HANDOFF_KILLS` workers killed with SIGKILL at random points,
/// each takeover timed.
async fn kills(backend: Backend) {
    let kills: u32 = env_or("HANDOFF_KILLS", 3);
    let ttl = Duration::from_millis(env_or(
        "HANDOFF_TTL_MS",
        agent_glue::MIN_LEASE_TTL.as_millis() as u64,
    ));
    let seed: u64 = env_or(
        "HANDOFF_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let store_name = match &backend {
        Backend::File(_) => "FileStore",
        Backend::Redis(_) => "RedisStore on a real redis-server",
    };
    eprintln!(
        "handoff: {kills} kills, {store_name}, lease TTL {}, HANDOFF_SEED={seed}",
        ms(ttl)
    );
    let mut random = Random(seed | 1);
    let server = server(Family::Gemini25, |c| c).await;
    let url = server.url();
    let spec = |name: String, more: u32| Spec {
        name,
        more,
        ttl,
        redis: None,
    };

    let first_more = if kills == 0 { 4 } else { 1_000 };
    let mut current = Worker::start(&url, &backend, spec("worker-0".to_owned(), first_more));
    let mut calls: Vec<String> = Vec::new();
    current.until("connected").await;
    // Per kill: SIGKILL to the next owner connected; SIGKILL to the lease's expiry in Redis;
    // the expiry to the next owner connected.
    let mut takeovers = Vec::new();
    let mut to_expiry = Vec::new();
    let mut after_expiry = Vec::new();
    let mut lost = 0;
    for k in 1..=kills {
        // The next worker waits for the lease while the current one runs.
        let more = if k == kills { 2 } else { 1_000 };
        let mut next = Worker::start(&url, &backend, spec(format!("worker-{k}"), more));
        let (_, said) = next.until_one_of(&["waiting", "connected"]).await;
        // Connected at once: the current one has lost its lease already (a slow machine).
        let next_connected = said.starts_with("connected");
        // Then 0 to one TTL more, so that the kill lands anywhere between two of the current
        // one's renewals (every third of the TTL), not always just after its acquire.
        let mut ended = current.drain_buffered();
        if !ended && !next_connected {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            tokio::time::sleep(Duration::from_millis(random.below(ms.max(1)))).await;
        }
        // What the current one said meanwhile is past: the kill point counts from now.
        ended |= current.drain_buffered();
        // A random point: after 1 to 40 of the current worker's lines (a turn sent, a tool
        // call pending, its result sent, a note appended, audio flowing), then 0 to 9 ms.
        let lines = 1 + random.below(40);
        let mut last = String::new();
        for _ in 0..lines {
            if ended || next_connected {
                break;
            }
            match current.line().await {
                Some(line) if line.starts_with("exit") => ended = true,
                Some(line) => last = line,
                None => panic!("{} ended", current.name),
            }
        }
        if ended || next_connected {
            // A worker slowed down past its lease by a loaded machine closes on its own.
            current.child.wait().unwrap();
            while current.line().await.is_some() {}
            current.lost_its_lease();
            lost += 1;
            eprintln!("handoff: {} lost its lease and stopped", current.name);
            current.reap(&mut calls).await;
            current = next;
            if !next_connected {
                current.until("connected").await;
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(random.below(10))).await;
        let killed = Instant::now();
        current.child.kill().unwrap();
        // When the dead worker's lease runs out in Redis (it renewed it last at most a third
        // of the TTL ago).
        let expiry = match &backend {
            Backend::Redis(redis) => {
                let asked = Instant::now();
                redis.pttl(&lease_key()).map(|left| asked + left)
            }
            Backend::File(_) => None,
        };
        eprintln!("handoff: killed {} after {last:?}", current.name);
        current.reap(&mut calls).await;
        current = next;
        let connected = current.until("connected").await;
        takeovers.push(connected - killed);
        if let Some(expiry) = expiry {
            to_expiry.push(expiry.saturating_duration_since(killed));
            after_expiry.push(connected.saturating_duration_since(expiry));
            assert!(
                connected >= expiry,
                "{} connected {} before the dead worker's lease expired",
                current.name,
                ms(expiry - connected)
            );
        }
    }
    // The last one hands off (another takes its place if a slow machine cost it its lease).
    let mut spare = 0;
    while current.finish().await.is_none() {
        current.reap(&mut calls).await;
        spare += 1;
        assert!(spare <= 3, "the last workers kept losing their lease");
        current = Worker::start(&url, &backend, spec(format!("worker-{kills}-{spare}"), 2));
        current.until("connected").await;
    }
    let status = current.child.wait().unwrap();
    assert!(status.success(), "the last worker: {status}");
    current.reap(&mut calls).await;
    let checked = check_the_end(&server, &backend, &calls).await;

    let (median, worst) = median_worst(&mut takeovers);
    let mut summary = format!(
        "handoff summary: {store_name}, lease TTL {}: {} workers SIGKILLed, each takeover \
         timed (SIGKILL to the next owner's setupComplete on the resumed connection): median \
         {}, worst {}",
        ms(ttl),
        takeovers.len(),
        ms(median),
        ms(worst)
    );
    if !to_expiry.is_empty() {
        let (expiry_median, expiry_worst) = median_worst(&mut to_expiry);
        let (after_median, after_worst) = median_worst(&mut after_expiry);
        summary.push_str(&format!(
            "; SIGKILL to lease expiry in Redis: median {}, worst {}; expiry to resumed: \
             median {}, worst {}",
            ms(expiry_median),
            ms(expiry_worst),
            ms(after_median),
            ms(after_worst)
        ));
    }
    if lost > 0 {
        summary.push_str(&format!("; {lost} workers lost their lease on their own"));
    }
    summary.push_str(&format!("\n{checked}"));
    eprintln!("{summary}");
    if let Ok(path) = std::env::var("HANDOFF_SUMMARY") {
        std::fs::write(path, format!("{summary}\n")).unwrap();
    }
    assert!(
        worst <= ttl + Duration::from_secs(1),
        "a takeover took {} (lease TTL {} + 1 s at most)",
        ms(worst),
        ms(ttl)
    );
}

#[test]
fn handoff_across_processes_with_kills() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    serial(kills(backend));
}

#[test]
fn handoff_across_processes_with_kills_file_store() {
    serial(kills(Backend::file("kills")));
}

/// The drained owner's lease: long, so that a takeover that waited for it would show.
const DRAIN_TTL: Duration = Duration::from_secs(5);

#[test]
fn drained_owner_hands_off_at_once() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    serial(async move {
        let server = server(Family::Gemini25, |c| c).await;
        let url = server.url();
        let spec = |name: &str, more| Spec {
            name: name.to_owned(),
            more,
            ttl: DRAIN_TTL,
            redis: None,
        };
        let mut calls = Vec::new();
        // Three turns (a tool call among them), then `hand_off`.
        let mut first = Worker::start(&url, &backend, spec("drained", 3));
        first.until("connected").await;
        let mut second = Worker::start(&url, &backend, spec("next", 2));
        let (_, said) = second.until_one_of(&["waiting", "connected"]).await;
        assert_eq!(
            said, "waiting",
            "the next worker connected while the first held the lease"
        );
        let handing = first.until("handing off").await;
        let done = first.finish().await.expect("the drained worker handed off");
        let status = first.child.wait().unwrap();
        assert!(status.success(), "the drained worker: {status}");
        first.reap(&mut calls).await;
        let connected = second.until("connected").await;
        // The socket of the drained worker, closed before its lease was released.
        let last_end = server
            .connections()
            .iter()
            .filter_map(|c| c.end.as_ref().map(|(_, at)| at.into_std()))
            .max()
            .expect("the drained worker's connection ended");
        let resumed: Vec<_> = server
            .connections()
            .into_iter()
            .filter(|c| c.opened_at.into_std() > last_end)
            .collect();
        assert!(
            resumed.first().is_some_and(|c| c.resumed_from.is_some()),
            "the next worker did not resume the server session: {resumed:?}"
        );
        assert_eq!(server.sessions().len(), 1, "a second server session");
        second
            .finish()
            .await
            .expect("the next worker handed off too");
        second.reap(&mut calls).await;
        check_the_end(&server, &backend, &calls).await;
        let takeover = connected - done;
        eprintln!(
            "handoff: drained: hand_off took {} (drain, close, save, release); the next owner \
             connected {} after it returned, {} after the socket closed (lease TTL {})",
            ms(done - handing),
            ms(takeover),
            ms(connected.saturating_duration_since(last_end)),
            ms(DRAIN_TTL)
        );
        assert!(
            connected.saturating_duration_since(last_end) < Duration::from_secs(1),
            "the takeover after a hand-off took {}: it waited for the lease (TTL {})",
            ms(connected.saturating_duration_since(last_end)),
            ms(DRAIN_TTL)
        );
    });
}

/// The partitioned owner's lease.
const PARTITION_TTL: Duration = Duration::from_secs(2);

#[test]
fn partitioned_owner_closes_before_its_lease_expires() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    serial(async move {
        let redis = backend.redis_server();
        let proxy = Proxy::start(redis.port()).await;
        let proxy_url = proxy.url();
        let server = server(Family::Gemini25, |c| c).await;
        let url = server.url();
        let mut calls = Vec::new();
        let mut first = Worker::start(
            &url,
            &backend,
            Spec {
                name: "partitioned".to_owned(),
                more: 1_000,
                ttl: PARTITION_TTL,
                redis: Some(&proxy_url),
            },
        );
        first.until("connected").await;
        let mut second = Worker::start(
            &url,
            &backend,
            Spec {
                name: "next".to_owned(),
                more: 2,
                ttl: PARTITION_TTL,
                redis: None,
            },
        );
        let (_, said) = second.until_one_of(&["waiting", "connected"]).await;
        assert_eq!(
            said, "waiting",
            "the next worker connected while the first held the lease"
        );
        // A turn with its tool call done, a second one under way.
        first.until("turn 2").await;
        proxy.blackhole();
        // What was on its way through the proxy has reached Redis.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let asked = Instant::now();
        let left = redis
            .pttl(&lease_key())
            .expect("the partitioned worker's lease is live");
        // Redis expires the lease no earlier than this (its clock read it after `asked`).
        let expiry = asked + left;
        // The partitioned worker closes on its own, saying why.
        while let Some(line) = first.line().await {
            if line.starts_with("exit") {
                break;
            }
        }
        first.lost_its_lease();
        first.reap(&mut calls).await;
        let connected = second.until("connected").await;
        // Every socket opened before the expiry is the partitioned worker's (no one else could
        // hold the lease): each must have ended before it.
        let mut margin = Duration::MAX;
        for connection in server.connections() {
            let opened = connection.opened_at.into_std();
            if opened >= expiry {
                continue;
            }
            let (_, ended) = connection
                .end
                .as_ref()
                .unwrap_or_else(|| panic!("a socket still open: {connection:?}"));
            let ended = ended.into_std();
            assert!(
                ended < expiry,
                "a socket of the partitioned worker ended {} after its lease expired",
                ms(ended - expiry)
            );
            margin = margin.min(expiry - ended);
        }
        assert!(
            margin < Duration::MAX,
            "no socket of the partitioned worker"
        );
        assert!(
            connected >= expiry,
            "the next owner connected {} before the lease expired",
            ms(expiry - connected)
        );
        let after = connected - expiry;
        assert!(
            after <= Duration::from_secs(1),
            "the next owner connected {} after the lease expired",
            ms(after)
        );
        second.finish().await.expect("the next worker handed off");
        second.reap(&mut calls).await;
        check_the_end(&server, &backend, &calls).await;
        eprintln!(
            "handoff: partitioned: the owner's socket closed {} before its lease expired in \
             Redis (TTL {}); the next owner connected {} after the expiry",
            ms(margin),
            ms(PARTITION_TTL),
            ms(after)
        );
    });
}
