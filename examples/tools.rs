//! Tools: a non-blocking tool answered from a spawned task through a cloned session.
//!
//! On gemini-3.8-live a function declared without `behavior` is non-blocking: the model says
//! it is working on it and completes its turn, and takes the result up later with a turn of its
//! own. Here each call runs in its own task, which holds a clone of the session (a cheap
//! handle), reports progress (an interim result the model only notes) and then the final
//! result (taken up when the model is idle). The user keeps talking meanwhile. The connection
//! drops while one tool runs; its results still reach the model once, in order. At the end the
//! server's context is printed beside the application's, and the example exits non-zero if
//! they differ.
//!
//! Run: `cargo run --example tools`

use std::process::ExitCode;
use std::time::Duration;

use agent_glue::{
    Endpoint, FunctionDeclaration, LiveSession, Scheduling, SecretString, SessionEvent,
    ToolResultOptions, json,
};
use gemini_fake::{FakeConfig, FakeServer, Family};
use gemini_live_examples::{context_lines, server_lines};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tools failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The tool: a slow lookup, run in its own task with its own handle on the session.
async fn lookup_order(session: LiveSession, call_id: String) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Progress: the model notes it and says nothing now.
    let progress = ToolResultOptions::new()
        .scheduling(Scheduling::Silent)
        .will_continue(true);
    session.send_tool_result_with(&call_id, json!({"status": "searching"}), progress)?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The result: the model talks about it once it is idle.
    let done = ToolResultOptions::new().scheduling(Scheduling::WhenIdle);
    session.send_tool_result_with(&call_id, json!({"order": 42, "status": "shipped"}), done)?;
    Ok(())
}

async fn run() -> Result<bool> {
    let server = FakeServer::start(FakeConfig::new().with_family(Family::Gemini38)).await?;
    println!("fake Gemini Live server on {}", server.url());
    let endpoint =
        Endpoint::api_key(SecretString::from("no-key-needed")).with_base_url(&server.url())?;
    let (session, mut events) = LiveSession::builder(endpoint, server.config().setup_model())
        .instructions("You are a shop assistant.")
        // No `behavior`: non-blocking on gemini-3.8-live.
        .tools(vec![FunctionDeclaration::new(
            "lookup_order",
            "Finds the user's order",
        )])
        .connect()
        .await?;

    println!("user:  Where is my order? Please lookup_order.");
    session.send_text("Where is my order? Please lookup_order.")?;
    let mut tasks = Vec::new();
    let mut dropped = false;
    let mut answered = false;
    // The model's words arrive in pieces; a turn is printed as one line.
    let mut line = String::new();
    while !answered {
        let event = match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => return Err("the session ended".into()),
            Err(_) => return Err("no event for 10 s".into()),
        };
        match event {
            SessionEvent::ToolCall { call_id, name, .. } => {
                println!("  [tool call {name} ({call_id}): running in a task]");
                tasks.push(tokio::spawn(lookup_order(session.clone(), call_id)));
                // The user goes on while the tool runs; then the connection drops.
                println!("user:  Thanks, I'll wait.");
                session.send_text("Thanks, I'll wait.")?;
            }
            SessionEvent::Text(text) | SessionEvent::OutputTranscript { text, .. } => {
                if line.is_empty() {
                    print!("model: ");
                }
                print!("{text}");
                line.push_str(&text);
            }
            SessionEvent::TurnComplete => {
                if !line.is_empty() {
                    println!();
                }
                answered |= line.contains("shipped");
                line.clear();
                if !tasks.is_empty() && !dropped {
                    dropped = true;
                    server.faults().drop_connections();
                }
            }
            SessionEvent::Reconnecting { reason } => println!("  [reconnecting: {reason:?}]"),
            SessionEvent::Reconnected(r) => println!(
                "  [reconnected: {:?}, replayed {} op(s)]",
                r.strategy,
                r.replayed.len()
            ),
            SessionEvent::Divergence { why, items, .. } => {
                println!("  [divergence: {why:?} for {items:?}]");
            }
            _ => {}
        }
    }
    for task in tasks {
        task.await??;
    }
    session.settled().await?;

    let ours = context_lines(&session.chat_ctx());
    let theirs = server
        .latest_session()
        .map(|s| server_lines(s.context()))
        .unwrap_or_default();
    println!("\napplication (L) | server (S)");
    for i in 0..ours.len().max(theirs.len()) {
        let left = ours.get(i).map_or("", String::as_str);
        let right = theirs.get(i).map_or("", String::as_str);
        let mark = if left == right { " " } else { "!" };
        println!("{mark}{left} | {right}");
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
