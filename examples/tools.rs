//! Tools: a non-blocking tool answered from a spawned task through a cloned session, in a
//! voice agent that names nothing but `agent_glue` (and `tokio`).
//!
//! On gemini-3.8-live a function declared without `behavior` is non-blocking: the model says
//! it is working on it and completes its turn, and takes the result up later with a turn of its
//! own. Here each call runs in its own task, which holds a clone of the session (a cheap
//! handle), reports progress (an interim result the model only notes) and then the final
//! result (taken up when the model is idle). The user keeps talking meanwhile. The connection
//! drops while one tool runs; its results still reach the model once, in order. At the end the
//! server's context is printed beside the application's, and the example exits non-zero if
//! they differ. On the way it streams microphone audio as 48 kHz stereo `f32` samples (the
//! session resamples them to the 16 kHz mono the service takes), shows the model a camera
//! frame, and adds a note to the chat context.
//!
//! Run: `cargo run --example tools`

use std::process::ExitCode;
use std::time::Duration;

use agent_glue::{
    AudioFormat, Endpoint, FunctionDeclaration, ImageFormat, LiveSession, Message, Scheduling,
    SecretString, SessionEvent, ToolResultOptions, json,
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

    // Microphone audio at the device's own rate and layout (here 200 ms of a quiet room at
    // 48 kHz stereo), and a camera frame (the bytes of a 1x1 PNG).
    session.push_samples(&vec![0.0_f32; 48_000 / 5 * 2], AudioFormat::stereo(48_000))?;
    session.send_image(TINY_PNG.to_vec(), ImageFormat::Png)?;

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
    // A note for the model's context, delivered once like everything else.
    println!("app:   (adds a note: the order is gift-wrapped)");
    session.append_chat_items(vec![
        Message::user("note-1", "(The order is gift-wrapped.)").into(),
    ])?;
    println!("user:  Thanks!");
    session.send_text("Thanks!")?;
    let mut line = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(SessionEvent::Text(text) | SessionEvent::OutputTranscript { text, .. })) => {
                line.push_str(&text);
            }
            Ok(Some(SessionEvent::TurnComplete)) => break,
            Ok(Some(_)) => {}
            Ok(None) => return Err("the session ended".into()),
            Err(_) => return Err("no event for 10 s".into()),
        }
    }
    println!("model: {line}");

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

/// A 1x1 transparent PNG.
const TINY_PNG: [u8; 67] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];
