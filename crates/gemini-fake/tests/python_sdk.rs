//! Compatibility with the official Python SDK (`google-genai`): `tests/python/smoke.py` against
//! an in-process fake over `ws://` (the SDK's URL and TLS context patched), and
//! `tests/python/tls_smoke.py` against the `gemini-fake --tls` binary with the SDK unpatched
//! apart from `SSL_CERT_FILE`. Both run with `$GEMINI_FAKE_PYTHON` (else `python3`); without the
//! SDK they skip on a developer's machine and fail under `CI` (`cargo xtask ci` provisions it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "python/harness.rs"]
mod harness;

use gemini_fake::{FakeConfig, FakeServer, Family};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_genai_sdk_talks_to_the_fake() {
    let Some(python) = harness::interpreter_with(&["google.genai"]) else {
        return;
    };
    // smoke.py names a 2.5 model; the model id chooses the family.
    let server = FakeServer::start(FakeConfig::new()).await.unwrap();
    let base_url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        harness::run_script(&python, "smoke.py", &base_url, &[])
    })
    .await
    .unwrap();
    assert_eq!(
        harness::success_lines("smoke.py", &output),
        ["echo ok", "tool ok", "audio ok", "resume ok"]
    );
    let session = server.latest_session().unwrap();
    assert_eq!(
        server.sessions().len(),
        1,
        "the second connection resumed the session"
    );
    let texts = session.context_texts();
    assert_eq!(texts.first().map(String::as_str), Some("hello"));
    assert_eq!(texts.last().map(String::as_str), Some("echo: again"));
    assert_eq!(session.tool_calls().len(), 1);
    assert_eq!(session.connections().len(), 2);
    assert_eq!(session.family(), Family::Gemini25);
}

/// Kills the binary when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_genai_sdk_completes_a_session_over_tls_unpatched() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let Some(python) = harness::interpreter_with(&["google.genai"]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("gemini-fake-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_gemini-fake"))
            .args(["--listen", "127.0.0.1:0", "--tls", "--cert"])
            .arg(&cert)
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
    let expected_tail = format!(" (certificate: {})", cert.display());
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|rest| rest.strip_suffix(&expected_tail))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let port = url.strip_prefix("wss://127.0.0.1:").unwrap();
    // The SDK derives wss:// from an https:// base URL, as it does for Google's.
    let base_url = format!("https://127.0.0.1:{port}");
    let cert_file = cert.display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        harness::run_script(
            &python,
            "tls_smoke.py",
            &base_url,
            &[("SSL_CERT_FILE", cert_file.as_str())],
        )
    })
    .await
    .unwrap();
    assert_eq!(
        harness::success_lines("tls_smoke.py", &output),
        [
            "echo ok",
            "non-blocking ok",
            "tool ok",
            "audio ok",
            "resume ok"
        ]
    );
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
