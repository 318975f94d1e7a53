//! Sessions beyond one process (feature `store`): worker processes carry one session over
//! loopback against the fake, each killed with SIGKILL at a random point (a tool call
//! pending, audio flowing, a context append just made, a turn under way), and the next one
//! takes over once the dead one's lease has run out.
//!
//! The workers are this test binary run again (`worker`, a no-op unless `HANDOFF_WORKER` is
//! set) with a `FileStore` in a directory of the test's own, shared between processes. Each
//! worker's application takes its context from the store (the context it keeps is the one the
//! session saved), connects with the store and the key (waiting while another worker holds
//! the lease), and runs turns: every third one asks for a tool, whose result it sends a little
//! later; after each turn it appends a note and pushes silent audio. The next worker is started
//! as soon as the current one is connected, so that it is already polling the lease when the
//! current one dies. The last one hands off after two more turns.
//!
//! Checked at the end: the server's context equals the last saved `L`, every turn, note, call
//! and result once; no tool call reached two workers (a call a dead worker had not answered is
//! reported by the next, not run again); no server session ever had two connections open at
//! once, and no resume was refused.
//!
//! `HANDOFF_KILLS` sets the number of kills (default 3); `HANDOFF_SEED` the random seed
//! (default drawn and printed). `cargo xtask handoff [--kills N] [--seed S]` runs this test
//! alone, 100 kills by default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use agent_glue::{ChatContext, Error, Item, LiveSession, Message, SessionEvent, SessionEvents};
use common::*;
use gemini_fake::Family;
use gemini_transport::wire::Modality;
use serde_json::json;
use session_store::{Error as StoreError, FileStore, OwnerId, SessionKey, SessionStore};
use tokio::sync::mpsc;

/// The lease every worker takes: the shortest, so that a dead worker's successor waits least.
const TTL: Duration = agent_glue::MIN_LEASE_TTL;

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
    let dir = PathBuf::from(env("HANDOFF_DIR"));
    let name = env("HANDOFF_NAME");
    let more: u32 = env("HANDOFF_MORE").parse().unwrap();
    let store: Arc<dyn SessionStore> = Arc::new(FileStore::new(&dir).unwrap());
    let endpoint = agent_glue::Endpoint::api_key(agent_glue::SecretString::from("test-key"))
        .with_base_url(&url)
        .unwrap();
    // Wait for the lease: another worker holds it, or held it when it died.
    let mut waited = Duration::ZERO;
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
        .lease_ttl(TTL)
        .connect()
        .await;
        match connected {
            Ok(connected) => break connected,
            Err(Error::Store(StoreError::Held { .. })) if waited < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
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
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
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

/// A worker process and its lines.
struct Worker {
    child: Child,
    name: String,
    lines: mpsc::UnboundedReceiver<String>,
    /// Its last lines, for failure messages.
    seen: Vec<String>,
    /// The tool calls it ran.
    calls: Vec<String>,
}

impl Worker {
    fn start(url: &str, dir: &Path, name: String, more: u32) -> Worker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "worker", "--nocapture", "--test-threads=1"])
            .env("HANDOFF_WORKER", "1")
            .env("HANDOFF_URL", url)
            .env("HANDOFF_DIR", dir)
            .env("HANDOFF_NAME", &name)
            .env("HANDOFF_MORE", more.to_string())
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
                    if send.send(line[at + PREFIX.len()..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        Worker {
            child,
            name,
            lines,
            seen: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// The worker's next line (`None`: its stdout closed).
    async fn line(&mut self) -> Option<String> {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: silent for 30 s", self.name));
        if let Some(line) = &line {
            if let Some(call) = line.strip_prefix("tool call ") {
                self.calls.push(call.to_owned());
            }
            if std::env::var_os("HANDOFF_VERBOSE").is_some() {
                eprintln!("{}: {line}", self.name);
            }
            if self.seen.len() == 20 {
                self.seen.remove(0);
            }
            self.seen.push(line.clone());
        }
        line
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

    /// Reads lines until the worker is done (`true`), or ends having lost its lease
    /// (`false`).
    async fn finish(&mut self) -> bool {
        while let Some(line) = self.line().await {
            if line.starts_with("done") {
                return true;
            }
            if line.starts_with("exit") {
                self.lost_its_lease();
                return false;
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

    /// Reads lines until one starts with `what`; panics if the worker ends first.
    async fn until(&mut self, what: &str) {
        while let Some(line) = self.line().await {
            if line.starts_with(what) {
                return;
            }
            self.alive(&line);
        }
        panic!("{}: ended before {what}", self.name);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_across_processes_with_kills() {
    let kills: u32 = std::env::var("HANDOFF_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("HANDOFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("handoff: {kills} kills, HANDOFF_SEED={seed}");
    let mut random = Random(seed | 1);
    let server = server(Family::Gemini25, |c| c).await;
    let dir = std::env::temp_dir().join(format!("agent-glue-handoff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = server.url();

    let first_more = if kills == 0 { 4 } else { 1_000 };
    let mut current = Worker::start(&url, &dir, "worker-0".to_owned(), first_more);
    let mut calls: Vec<String> = Vec::new();
    current.until("connected").await;
    for k in 1..=kills {
        // The next worker waits for the lease while the current one runs.
        let more = if k == kills { 2 } else { 1_000 };
        let next = Worker::start(&url, &dir, format!("worker-{k}"), more);
        // A random point: after 1 to 40 of the current worker's lines (a turn sent, a tool
        // call pending, its result sent, a note appended, audio flowing), then 0 to 9 ms.
        let lines = 1 + random.below(40);
        let mut last = String::new();
        let mut ended = false;
        for _ in 0..lines {
            match current.line().await {
                Some(line) if line.starts_with("exit") => {
                    current.lost_its_lease();
                    ended = true;
                    break;
                }
                Some(line) => last = line,
                None => panic!("{} ended", current.name),
            }
        }
        if ended {
            eprintln!("handoff: {} lost its lease and stopped", current.name);
        } else {
            tokio::time::sleep(Duration::from_millis(random.below(10))).await;
            current.child.kill().unwrap();
            eprintln!("handoff: killed {} after {last:?}", current.name);
        }
        current.child.wait().unwrap();
        // What it printed before it died.
        while current.line().await.is_some() {}
        calls.append(&mut current.calls);
        current = next;
        current.until("connected").await;
    }
    // The last one hands off (another takes its place if a slow machine cost it its lease).
    let mut spare = 0;
    while !current.finish().await {
        current.child.wait().unwrap();
        while current.line().await.is_some() {}
        calls.append(&mut current.calls);
        spare += 1;
        assert!(spare <= 3, "the last workers kept losing their lease");
        current = Worker::start(&url, &dir, format!("worker-{kills}-{spare}"), 2);
        current.until("connected").await;
    }
    let status = current.child.wait().unwrap();
    assert!(status.success(), "the last worker: {status}");
    while current.line().await.is_some() {}
    calls.append(&mut current.calls);
    // No tool ran twice: a call a dead worker had not answered is not run by the next one.
    let mut unique = calls.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), calls.len(), "a tool ran twice: {calls:?}");

    let store = FileStore::new(&dir).unwrap();
    let saved = store.load(&key()).await.unwrap().expect("saved");
    let l = saved.session.desired;
    let s = s_entries(&server);
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
    eprintln!(
        "handoff: {} server sessions, {} connections, {} turns",
        server.sessions().len(),
        server.connections().len(),
        last_turn(&l)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
