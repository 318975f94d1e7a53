//! The `gemini-fake` binary: prints `listening on ws://HOST:PORT` and serves until killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Client, model_text};
use gemini_fake::Family;
use gemini_transport::wire::{ClientMessage, Modality, Setup};

/// Kills the child when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_its_url_and_serves() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_gemini-fake"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--api-key",
                "k",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    let path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";
    let mut client = Client::connect_url(&format!("{url}{path}?key=k"))
        .await
        .unwrap();
    // The model id chooses the family (3.1 here: realtime text works on every family).
    let setup =
        Setup::new(Family::Gemini31.setup_model(false)).with_response_modality(Modality::Text);
    client.send(&ClientMessage::setup(setup)).await;
    client.expect_setup_complete().await;
    client.send(&ClientMessage::realtime_text("binary")).await;
    assert_eq!(model_text(&client.turn().await), "echo: binary");
}

#[test]
fn bad_arguments_exit_with_2() {
    let status = Command::new(env!("CARGO_BIN_EXE_gemini-fake"))
        .args(["--family", "9.9"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}
