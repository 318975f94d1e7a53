//! Running the Python compatibility scripts in `tests/python/` against an in-process fake.
//!
//! The interpreter is `$GEMINI_FAKE_PYTHON` when set (`cargo xtask ci` points it at the
//! virtualenv it provisions from `tests/python/requirements.txt`), else `python3`. When the
//! interpreter cannot import the packages a script needs, the test skips on a developer's machine
//! and FAILS when `CI` is set: in CI the compatibility claim must be proven, not assumed.

use std::process::{Command, Output, Stdio};
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
pub fn run_script(python: &str, script: &str, base_url: &str, env: &[(&str, &str)]) -> Output {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(&path)
        .arg(base_url)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{script} hung\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
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
