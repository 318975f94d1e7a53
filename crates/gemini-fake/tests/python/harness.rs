//! Running the Python compatibility scripts in `tests/python/` against an in-process fake.
//!
//! The interpreter is `$GEMINI_FAKE_PYTHON` when set (`cargo xtask ci` points it at the
//! virtualenv it provisions from `tests/python/requirements.txt`), else `python3`. When the
//! interpreter cannot import the packages a script needs, the test skips on a developer's machine
//! and FAILS when `CI` is set: in CI the compatibility claim must be proven, not assumed.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The variable naming the interpreter that has the pinned packages.
pub const PYTHON_VAR: &str = "GEMINI_FAKE_PYTHON";

/// The interpreter to run the scripts with.
pub fn interpreter() -> String {
    std::env::var(PYTHON_VAR)
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

/// Whether this run is CI's (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"))
}

/// The interpreter, if it imports every module in `modules`; `None` means "skip this test".
///
/// Panics under CI when the interpreter is missing or lacks a module.
pub fn interpreter_with(modules: &[&str]) -> Option<String> {
    let python = interpreter();
    let imports = format!("import {}", modules.join(", "));
    let problem = match Command::new(&python).args(["-c", &imports]).output() {
        Ok(out) if out.status.success() => return Some(python),
        Ok(out) => format!(
            "`{python} -c \"{imports}\"` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => format!("cannot run `{python}`: {err}"),
    };
    let hint = format!(
        "run `cargo xtask ci`, or `python3 -m venv V && V/bin/pip install -r \
         crates/gemini-fake/tests/python/requirements.txt` and set {PYTHON_VAR}=V/bin/python"
    );
    assert!(
        !in_ci(),
        "CI must run this compatibility test: {problem}\n{hint}"
    );
    println!("skipped: {problem}\n{hint}");
    None
}

/// Runs `tests/python/<script> <base_url>` with `python` and the variables `env` added, killing
/// it after a minute.
///
/// A real subprocess, so the minute is wall-clock time, but only as a bound: nothing polls.
/// Each of its pipes is read to the end on a thread of its own (an unread pipe could fill up
/// and block the script), and the wait is for both to end, which they do when the script
/// exits; the minute elapses only for a script that hangs.
pub fn run_script(python: &str, script: &str, base_url: &str, env: &[(&str, &str)]) -> Output {
    const LIMIT: Duration = Duration::from_secs(60);
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(&path)
        .arg(base_url)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ended, pipe_ended) = mpsc::channel();
    let stdout = read_to_end(child.stdout.take().unwrap(), ended.clone());
    let stderr = read_to_end(child.stderr.take().unwrap(), ended);
    let deadline = Instant::now() + LIMIT;
    let hung = (0..2).any(|_| {
        pipe_ended
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
    });
    if hung {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        !hung,
        "{script} hung\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads `pipe` to its end on a thread; tells `ended` when it has.
fn read_to_end(
    mut pipe: impl Read + Send + 'static,
    ended: mpsc::Sender<()>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = ended.send(());
        bytes
    })
}

/// The script's stdout lines, after asserting that it exited successfully.
pub fn success_lines(script: &str, output: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}
