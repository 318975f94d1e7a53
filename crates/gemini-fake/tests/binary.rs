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
            .args(["--listen", "127.0.0.1:0", "--api-key", "k"])
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

/// Starts the binary with `args` and returns it with the first line it printed.
async fn spawn(args: &[&str]) -> (Child, String) {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_gemini-fake"))
            .args(args)
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
    (child, line.trim().to_owned())
}

#[tokio::test]
async fn tls_serves_wss_with_a_self_signed_certificate_it_writes() {
    use std::sync::Arc;

    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let cert = std::env::temp_dir().join(format!("gemini-fake-binary-{}.pem", std::process::id()));
    let cert_arg = cert.display().to_string();
    let (_child, line) = spawn(&["--listen", "127.0.0.1:0", "--tls", "--cert", &cert_arg]).await;
    let url = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.strip_suffix(&format!(" (certificate: {cert_arg})")))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";
    for host in ["127.0.0.1", "localhost"] {
        let target = format!("{}{path}", url.replace("127.0.0.1", host));
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            target,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls.clone()))),
        )
        .await
        .unwrap();
        let mut client = Client {
            ws,
            step: Some(common::STEP),
        };
        let setup =
            Setup::new(Family::Gemini25.setup_model(false)).with_response_modality(Modality::Text);
        client.send(&ClientMessage::setup(setup)).await;
        client.expect_setup_complete().await;
        client.send(&ClientMessage::text(host)).await;
        assert_eq!(model_text(&client.turn().await), format!("echo: {host}"));
    }
    let _ = std::fs::remove_file(&cert);
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
