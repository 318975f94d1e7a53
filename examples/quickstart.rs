//! Quickstart: a short voice-agent session against the embedded fake Gemini Live server.
//!
//! No API key, no network beyond loopback. The script: a greeting; a tool call whose result
//! completes while the connection is down; a goAway rotation; a chat-context update made
//! while disconnected. It prints the conversation and the reconnect events as they happen,
//! then the server's context beside the application's, and exits non-zero if they differ.
//!
//! Run: `cargo run --example quickstart`

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agent_glue::{
    Endpoint, FunctionDeclaration, LiveSession, Message, SecretString, SessionEvent, SessionEvents,
    json,
};
use gemini_fake::{FakeConfig, FakeServer, Family};
use gemini_live_examples::{context_lines, server_lines};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool> {
    // The fake server, in-process on a free loopback port, serving gemini-3.8-live's rules:
    // audio answers (their words come as transcripts), non-blocking tool calls.
    let server = FakeServer::start(FakeConfig::new().with_family(Family::Gemini38)).await?;
    println!("fake Gemini Live server on {}", server.url());

    // With a real key: `Endpoint::api_key(key)` and no `with_base_url`.
    let endpoint =
        Endpoint::api_key(SecretString::from("no-key-needed")).with_base_url(&server.url())?;
    let (session, mut events) = LiveSession::builder(endpoint, server.config().setup_model())
        .instructions("You are a friendly voice assistant.")
        .tools(vec![FunctionDeclaration::new(
            "get_weather",
            "Current weather for a city",
        )])
        .connect()
        .await?;

    // 1. A greeting.
    say(&session, &mut events, "Hello!").await?;

    // 2. A tool call; the connection drops while the tool runs, and the dial fails twice.
    println!("user:  Please call get_weather for Oslo.");
    session.send_text("Please call get_weather for Oslo.")?;
    let call_id = loop {
        match next(&mut events).await? {
            SessionEvent::ToolCall { call_id, name, .. } => {
                println!("  [tool call {name} ({call_id})]");
                break call_id;
            }
            other => show(&other),
        }
    };
    server.faults().refuse_upgrades(2, 503);
    server.faults().drop_connections();
    wait_for(&mut events, |e| {
        matches!(e, SessionEvent::Reconnecting { .. })
    })
    .await?;
    // The tool finishes while the socket is down: the result goes to the outbox.
    session.send_tool_result(call_id, json!({"temp_c": 18, "sky": "clear"}))?;
    wait_for(&mut events, |e| matches!(e, SessionEvent::TurnComplete)).await?;

    // 3. The server announces the end of the connection: rotation at the turn boundary.
    server.faults().go_away(Duration::from_secs(50));
    wait_for(&mut events, |e| matches!(e, SessionEvent::Reconnected(_))).await?;
    say(&session, &mut events, "Thanks!").await?;

    // 4. The application adds a note to its context while the connection is down.
    server.faults().refuse_upgrades(1, 503);
    server.faults().drop_connections();
    wait_for(&mut events, |e| {
        matches!(e, SessionEvent::Reconnecting { .. })
    })
    .await?;
    let note = Message::user("note-1", "(The user is in Oslo.)");
    session.append_chat_items(vec![note.into()])?;
    wait_for(&mut events, |e| matches!(e, SessionEvent::Reconnected(_))).await?;
    say(&session, &mut events, "Goodbye!").await?;

    // The server's context beside the application's.
    let ours = context_lines(&session.chat_ctx());
    let theirs = server
        .latest_session()
        .map(|s| server_lines(s.context()))
        .unwrap_or_default();
    println!("\n{:<58} | server (S)", "application (L)");
    for i in 0..ours.len().max(theirs.len()) {
        let left = ours.get(i).map_or("", String::as_str);
        let right = theirs.get(i).map_or("", String::as_str);
        let mark = if left == right { " " } else { "!" };
        println!("{mark}{:<57} | {}", truncate(left, 57), truncate(right, 57));
    }
    let same = ours == theirs;
    println!(
        "\n{}",
        if same {
            "the server's context matches the application's, item for item"
        } else {
            "MISMATCH: the server's context differs from the application's"
        }
    );
    session.close().await?;
    Ok(same)
}

/// A typed user turn, printed with the model's answer.
async fn say(session: &LiveSession, events: &mut SessionEvents, text: &str) -> Result<()> {
    println!("user:  {text}");
    session.send_text(text)?;
    wait_for(events, |e| matches!(e, SessionEvent::TurnComplete)).await
}

/// Prints events until one matches.
async fn wait_for(events: &mut SessionEvents, done: impl Fn(&SessionEvent) -> bool) -> Result<()> {
    loop {
        let event = next(events).await?;
        show(&event);
        if done(&event) {
            return Ok(());
        }
    }
}

async fn next(events: &mut SessionEvents) -> Result<SessionEvent> {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(event)) => Ok(event),
        Ok(None) => Err("the session ended".into()),
        Err(_) => Err("no event for 10 s".into()),
    }
}

/// Whether a model line is being printed.
static MODEL_SPEAKING: AtomicBool = AtomicBool::new(false);

fn show(event: &SessionEvent) {
    match event {
        // The model's words arrive in pieces; a turn is printed as one line.
        SessionEvent::OutputTranscript { text, .. } | SessionEvent::Text(text) => {
            if !MODEL_SPEAKING.swap(true, Ordering::Relaxed) {
                print!("model: ");
            }
            print!("{text}");
        }
        SessionEvent::TurnComplete if MODEL_SPEAKING.swap(false, Ordering::Relaxed) => println!(),
        SessionEvent::Reconnecting { reason } => println!("  [reconnecting: {reason:?}]"),
        SessionEvent::Reconnected(r) => println!(
            "  [reconnected: {:?}, state restored: {}, replayed {} op(s), {} uncertain, {} lost, gap {:?}, {} attempt(s)]",
            r.strategy,
            r.state_restored,
            r.replayed.len(),
            r.uncertain.len(),
            r.lost.len(),
            r.gap,
            r.attempts
        ),
        SessionEvent::Divergence {
            operations,
            items,
            why,
            ..
        } => {
            println!(
                "  [divergence: {why:?} for {} operation(s), items {items:?}]",
                operations.len()
            );
        }
        _ => {}
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}
