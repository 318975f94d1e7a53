//! Compatibility with the official Python SDK (`google-genai`): runs `tests/python/smoke.py`
//! against an in-process fake with `$GEMINI_FAKE_PYTHON` (else `python3`). Without the SDK it
//! skips on a developer's machine and fails under `CI` (`cargo xtask ci` provisions it).
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
    let output =
        tokio::task::spawn_blocking(move || harness::run_script(&python, "smoke.py", &base_url))
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
