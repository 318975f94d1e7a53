//! Quickstart: open a Gemini Live connection, set it up, send one text turn, print the reply.
//!
//! This interim version talks to an in-process loopback echo server (see `examples/lib.rs`), so it
//! runs anywhere without an API key or network: `cargo run --example quickstart`. Against Google,
//! the same code runs with `Endpoint::api_key(key)` and no `with_base_url`.

use std::process::ExitCode;

use gemini_live_examples::EchoServer;
use gemini_transport::{
    ConnectConfig, Connection, Endpoint, SecretString,
    wire::{ClientMessage, Content, Modality, Part, ServerPayload, Setup},
};

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("quickstart: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(reply) => {
            println!("model: {reply}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("quickstart failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<String, Box<dyn std::error::Error>> {
    let server = EchoServer::start().await?;
    let endpoint = Endpoint::api_key(SecretString::from("demo-key-not-needed-locally"))
        .with_base_url(&server.base_url())?;
    println!("connecting to {endpoint}");

    let mut connection = Connection::connect(&endpoint, &ConnectConfig::default()).await?;
    let setup = Setup::new("models/gemini-3.8-live").with_response_modality(Modality::Text);
    connection
        .setup(&ClientMessage::Setup(Box::new(setup)))
        .await?;

    let question = "Hello, Gemini!";
    println!("user:  {question}");
    connection
        .send(&ClientMessage::client_content(
            vec![Content::user_text(question)],
            true,
        ))
        .await?;

    let mut reply = String::new();
    loop {
        let message = connection.recv().await?;
        if let Some(ServerPayload::ServerContent(content)) = message.payload {
            if let Some(turn) = &content.model_turn {
                reply.extend(turn.parts.iter().filter_map(Part::as_text));
            }
            if content.turn_complete {
                break;
            }
        }
    }
    connection.close(1000, "done").await?;
    Ok(reply)
}
