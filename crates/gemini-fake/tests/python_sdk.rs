//! Compatibility with the official Python SDK (`google-genai`): runs `tests/python/smoke.py`
//! against an in-process fake when `python3 -c "import google.genai"` works, and skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use gemini_fake::{FakeConfig, FakeServer, Family};

fn sdk_available() -> bool {
    Command::new("python3")
        .args(["-c", "import google.genai"])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_genai_sdk_talks_to_the_fake() {
    if !sdk_available() {
        println!("skipped: python3 with google-genai is not installed (pip install google-genai)");
        return;
    }
    let server = FakeServer::start(FakeConfig::new().with_family(Family::Gemini38))
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/smoke.py");
    let base_url = server.url();
    let output = tokio::task::spawn_blocking(move || run_with_limit(script, &base_url))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "smoke.py failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
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
}

/// Runs the script, killing it after a minute.
fn run_with_limit(script: &str, base_url: &str) -> std::process::Output {
    let mut child = Command::new("python3")
        .arg(script)
        .arg(base_url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("smoke.py hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
