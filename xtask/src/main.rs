//! `cargo xtask ci`: the one command CI runs (`.ci/run` calls exactly this).
//!
//! Steps, stopping at the first failure:
//! 1. `cargo fmt --all --check`
//! 2. `cargo clippy --workspace --all-targets --all-features -- -D warnings`
//! 3. `cargo package --no-verify -p ctx-model -p resume-policy -p gemini-transport -p agent-glue
//!    -p session-store -p gemini-fake`: each library packages with its metadata, the path dependencies
//!    resolved to one another's packages (a few seconds)
//! 4. Python compatibility environment: a virtualenv at `<target dir>/py-compat/venv`
//!    (`python3 -m venv`, then `pip install -r crates/gemini-fake/tests/python/requirements.txt`,
//!    every version pinned: `google-genai` and `livekit-plugins-google` with their dependencies).
//!    Its interpreter is passed to every later step as `GEMINI_FAKE_PYTHON`, which
//!    `gemini-fake`'s `python_sdk` and `livekit_plugin` tests run their scripts with. Reused in
//!    well under a second while the requirements file is unchanged; rebuilt from scratch (about
//!    130 MB downloaded, 20-30 s) when it changes. If it cannot be provisioned (no `python3`, no
//!    network for pip), the step FAILS when `CI` is set (the compatibility claim must be proven
//!    there) and only warns otherwise, leaving those two tests to skip. A `GEMINI_FAKE_PYTHON`
//!    already set in the environment is used as it is, and nothing is installed.
//! 5. `redis-server` for the Redis tests (session-store's, and agent-glue's persistence and
//!    hand-off tests; `xtask/src/redis_server.rs`): found on `PATH`, or installed when missing
//!    with `apt-get install -y redis-server` (Debian's package; the step says so before it
//!    installs). Its path is passed to every later step as
//!    `SESSION_STORE_REDIS_SERVER`; the tests start their own server from it on a free
//!    loopback port and kill it at the end. If it cannot be had (no apt-get, the install
//!    fails), the step FAILS when `CI` is set and only warns otherwise, leaving those tests to
//!    skip. A `SESSION_STORE_REDIS_SERVER` already set is used as it is.
//! 6. `cargo test --workspace --all-features` (unit, integration and doc tests)
//! 7. the simulator: 100,000 random schedules of operations and faults against the session
//!    core from a fresh seed range (printed first, with the command that replays it), plus
//!    the fixed set (seeds 0..4,999 and past failing seeds) (`cargo run --release -p
//!    session-sim -- --schedules 100000`); fails on any violation. Then each mutant policy
//!    (`ReplayAlways`, `SkipReplay`) on 1,000 fresh schedules
//!    (`session-sim --policy replay-always --schedules 1000 --fixed 0`): fails if no
//!    schedule catches it (fails under the mutant and passes under the default policy), and
//!    the send-order mutant of the coverage tracker (`cargo xtask sim --mutant send-order
//!    --schedules 1000 --fixed 0`, a release build with `--cfg mutant_send_order` in
//!    `<target dir>/mutant-send-order`): fails if no schedule catches it
//! 8. the loopback soak: 500 of those schedules against a real `LiveSession` and `gemini-fake`
//!    over sockets on 127.0.0.1 (`session-sim --soak --schedules 500`)
//! 9. `cargo doc --workspace --no-deps --all-features` with `RUSTDOCFLAGS=-D warnings`
//! 10. `cargo run --example quickstart` (the README's first command must keep working), then
//!     `cargo run --example custom_policy` (a policy of the user's own, shown working) and
//!     `cargo run --example tools` (a non-blocking tool answered from a task through a clone)
//!
//! `cargo xtask sim [--schedules N] [--start S] [--fixed F] [--policy P] [--mutant M] | --seed S
//! [--keep i,j] [--trace]` runs the deterministic simulator (`crates/session-sim`) in release
//! mode; `--mutant send-order` runs it on a build of the client's code with that mutation.
//!
//! `cargo xtask load [--sessions N[,N…]] [--seconds S] [--find-max] …` runs the whole-process
//! load benchmark (`crates/load`, built in release; see `load.rs`). CI does not run it.
//!
//! `cargo xtask redis-server` runs step 5 alone and prints `SESSION_STORE_REDIS_SERVER=…`.
//!
//! `cargo xtask handoff [--kills N] [--seed S] [--ttl SECONDS]` runs agent-glue's multi-process
//! hand-off test (`crates/agent-glue/tests/handoff.rs`, `handoff_across_processes_with_kills`)
//! against a real `redis-server` (step 5 first) with N worker kills (100 by default; the test
//! suite of step 6 runs it with 3) and the workers' lease TTL (1 s by default), printing each
//! kill point and the seed, and at the end the takeover times: median and worst, SIGKILL to
//! the next owner resumed (the test fails if the worst is over the TTL + 1 s).

//! `cargo xtask py-compat` runs step 4 alone and prints `GEMINI_FAKE_PYTHON=…`, to export before
//! `cargo test -p gemini-fake --test python_sdk --test livekit_plugin`.

mod load;
mod py_compat;
mod redis_server;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use py_compat::{CompatEnv, PYTHON_VAR};
use redis_server::REDIS_VAR;

/// One CI step.
enum Action {
    /// `cargo ARGS` with extra environment variables.
    Cargo {
        args: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
    },
    /// Provision the Python compatibility venv (see the module docs, step 4).
    PythonCompat,
    /// Find or install `redis-server` (see the module docs, step 5).
    RedisServer,
    /// `cargo xtask sim ARGS` (a mutant of the client's code is a build of its own).
    Sim(&'static [&'static str]),
}

struct Step {
    name: &'static str,
    action: Action,
}

const CI_STEPS: &[Step] = &[
    Step {
        name: "rustfmt",
        action: Action::Cargo {
            args: &["fmt", "--all", "--check"],
            env: &[],
        },
    },
    Step {
        name: "clippy",
        action: Action::Cargo {
            args: &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
            env: &[],
        },
    },
    Step {
        name: "package the libraries",
        action: Action::Cargo {
            args: &[
                "package",
                "--no-verify",
                "--allow-dirty",
                "-p",
                "ctx-model",
                "-p",
                "resume-policy",
                "-p",
                "gemini-transport",
                "-p",
                "agent-glue",
                "-p",
                "session-store",
                "-p",
                "gemini-fake",
            ],
            env: &[],
        },
    },
    Step {
        name: "python compat env",
        action: Action::PythonCompat,
    },
    Step {
        name: "redis-server",
        action: Action::RedisServer,
    },
    Step {
        name: "tests",
        action: Action::Cargo {
            args: &["test", "--workspace", "--all-features"],
            env: &[],
        },
    },
    Step {
        name: "simulator",
        action: Action::Cargo {
            args: &[
                "run",
                "--release",
                "--quiet",
                "-p",
                "session-sim",
                "--",
                "--schedules",
                "100000",
            ],
            env: &[],
        },
    },
    Step {
        name: "simulator: mutant replay-always is caught",
        action: Action::Cargo {
            args: &[
                "run",
                "--release",
                "--quiet",
                "-p",
                "session-sim",
                "--",
                "--policy",
                "replay-always",
                "--schedules",
                "1000",
                "--fixed",
                "0",
            ],
            env: &[],
        },
    },
    Step {
        name: "simulator: mutant skip-replay is caught",
        action: Action::Cargo {
            args: &[
                "run",
                "--release",
                "--quiet",
                "-p",
                "session-sim",
                "--",
                "--policy",
                "skip-replay",
                "--schedules",
                "1000",
                "--fixed",
                "0",
            ],
            env: &[],
        },
    },
    Step {
        name: "simulator: mutant send-order is caught",
        action: Action::Sim(&[
            "--mutant",
            "send-order",
            "--schedules",
            "1000",
            "--fixed",
            "0",
        ]),
    },
    Step {
        name: "loopback soak",
        action: Action::Cargo {
            args: &[
                "run",
                "--release",
                "--quiet",
                "-p",
                "session-sim",
                "--",
                "--soak",
                "--schedules",
                "500",
                "--concurrency",
                "32",
            ],
            env: &[],
        },
    },
    Step {
        name: "docs",
        action: Action::Cargo {
            args: &["doc", "--workspace", "--no-deps", "--all-features"],
            env: &[("RUSTDOCFLAGS", "-D warnings")],
        },
    },
    Step {
        name: "quickstart example",
        action: Action::Cargo {
            args: &["run", "--quiet", "--example", "quickstart"],
            env: &[],
        },
    },
    Step {
        name: "custom_policy example",
        action: Action::Cargo {
            args: &["run", "--quiet", "--example", "custom_policy"],
            env: &[],
        },
    },
    Step {
        name: "tools example",
        action: Action::Cargo {
            args: &["run", "--quiet", "--example", "tools"],
            env: &[],
        },
    },
];

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask ci | cargo xtask py-compat | cargo xtask redis-server | \
         cargo xtask sim [ARGS] | cargo xtask load [ARGS] | \
         cargo xtask handoff [--kills N] [--seed S] [--ttl SECONDS]"
    );
    ExitCode::from(2)
}

/// `cargo xtask handoff [--kills N] [--seed S] [--ttl SECONDS]`: agent-glue's multi-process
/// hand-off test against a real `redis-server` (found or installed as in CI step 5) with `N`
/// SIGKILLed workers (default 100) and a lease TTL of `SECONDS` (default 1, the minimum);
/// prints the takeover times (median and worst, SIGKILL to the next owner resumed) at the
/// end. A debug build: the run is the leases' waits, not code.
fn run_handoff(args: &[String]) -> ExitCode {
    const USAGE: &str = "xtask handoff: usage: cargo xtask handoff [--kills N] [--seed S] \
                         [--ttl SECONDS]";
    let mut kills = "100".to_owned();
    let mut seed = None;
    let mut ttl_ms = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = rest.next();
        let number = value.filter(|v| v.parse::<u64>().is_ok());
        match (arg.as_str(), number) {
            ("--kills", Some(n)) => kills = n.clone(),
            ("--seed", Some(s)) => seed = Some(s.clone()),
            ("--ttl", _) => match value.and_then(|v| parse_seconds_ms(v)) {
                Some(ms) => ttl_ms = Some(ms),
                None => {
                    eprintln!("{USAGE} (--ttl: seconds, at least 1, e.g. 2 or 1.5)");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args([
            "test",
            "-p",
            "agent-glue",
            "--features",
            "store-redis",
            "--test",
            "handoff",
            "--",
            "--exact",
            "handoff_across_processes_with_kills",
            "--nocapture",
        ])
        .env("HANDOFF_KILLS", kills);
    if let Some(seed) = seed {
        command.env("HANDOFF_SEED", seed);
    }
    if let Some(ms) = ttl_ms {
        command.env("HANDOFF_TTL_MS", ms.to_string());
    }
    match redis_server() {
        Ok(Some(path)) => {
            command.env(REDIS_VAR, path);
        }
        Ok(None) => {}
        Err(()) => return ExitCode::FAILURE,
    }
    let summary = target_dir(&workspace_root()).join("handoff-summary.txt");
    let _ = std::fs::remove_file(&summary);
    command.env("HANDOFF_SUMMARY", &summary);
    let outcome = match command.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask handoff: could not run cargo: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The figures last, where they are seen.
    match std::fs::read_to_string(&summary) {
        Ok(text) => eprint!("xtask {text}"),
        Err(_) => eprintln!("xtask handoff: the test wrote no summary (it failed or skipped)"),
    }
    outcome
}

/// `"1.5"` seconds as milliseconds; `None` unless a number of at least 1.
fn parse_seconds_ms(text: &str) -> Option<u64> {
    let seconds: f64 = text.parse().ok()?;
    (seconds.is_finite() && (1.0..=3600.0).contains(&seconds))
        .then(|| (seconds * 1000.0).round() as u64)
}

/// `cargo xtask sim ARGS`: the simulator in release mode (`--schedules N`, `--seed S`, …; see
/// `crates/session-sim/src/main.rs`).
fn run_sim(args: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    let mut rest: Vec<&String> = args.iter().collect();
    if let Some(at) = rest.iter().position(|a| a.as_str() == "--mutant") {
        // A mutant of the client's own code: a build of its own, in a target directory of its
        // own (the normal build stays as it is); the run succeeds only if it is caught.
        let Some(name) = rest.get(at + 1).map(|s| s.as_str()) else {
            eprintln!("xtask sim: --mutant needs a name (send-order)");
            return ExitCode::from(2);
        };
        let cfg = match name {
            "send-order" => "mutant_send_order",
            other => {
                eprintln!("xtask sim: unknown mutant {other} (send-order)");
                return ExitCode::from(2);
            }
        };
        rest.drain(at..at + 2);
        command.env("RUSTFLAGS", format!("--cfg {cfg}")).env(
            "CARGO_TARGET_DIR",
            target_dir(&workspace_root()).join(format!("mutant-{name}")),
        );
    }
    let status = command
        .args(["run", "--release", "--quiet", "-p", "session-sim", "--"])
        .args(rest)
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask sim: could not start cargo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run_ci() -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // Environment handed to every cargo step after the step that produced it.
    let mut carried: Vec<(&'static str, String)> = Vec::new();
    for step in CI_STEPS {
        match &step.action {
            Action::PythonCompat => {
                eprintln!("==> xtask ci: {}", step.name);
                match python_compat() {
                    Ok(Some(python)) => carried.push((PYTHON_VAR, python)),
                    Ok(None) => {}
                    Err(()) => return ExitCode::FAILURE,
                }
            }
            Action::RedisServer => {
                eprintln!("==> xtask ci: {}", step.name);
                match redis_server() {
                    Ok(Some(path)) => carried.push((REDIS_VAR, path)),
                    Ok(None) => {}
                    Err(()) => return ExitCode::FAILURE,
                }
            }
            Action::Sim(args) => {
                eprintln!("==> xtask ci: {} (xtask sim {})", step.name, args.join(" "));
                let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
                if run_sim(&args) != ExitCode::SUCCESS {
                    eprintln!("xtask ci: step `{}` failed", step.name);
                    return ExitCode::FAILURE;
                }
            }
            Action::Cargo { args, env } => {
                eprintln!("==> xtask ci: {} (cargo {})", step.name, args.join(" "));
                let mut cmd = Command::new(&cargo);
                cmd.args(*args);
                for (key, value) in *env {
                    cmd.env(key, value);
                }
                for (key, value) in &carried {
                    cmd.env(key, value);
                }
                match cmd.status() {
                    Ok(status) if status.success() => {}
                    Ok(status) => {
                        eprintln!("xtask ci: step `{}` failed ({status})", step.name);
                        return ExitCode::FAILURE;
                    }
                    Err(err) => {
                        eprintln!("xtask ci: could not start cargo for `{}`: {err}", step.name);
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    eprintln!("==> xtask ci: all steps passed");
    ExitCode::SUCCESS
}

/// `cargo xtask py-compat`: step 3 alone, printing the variable to export for `cargo test`.
fn run_py_compat() -> ExitCode {
    match python_compat() {
        Ok(Some(python)) => {
            println!("{PYTHON_VAR}={python}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

/// `cargo xtask redis-server`: step 5 alone, printing the variable to export for `cargo test`.
fn run_redis_server() -> ExitCode {
    match redis_server() {
        Ok(Some(path)) => {
            println!("{REDIS_VAR}={path}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

/// Step 5: `Ok(Some(path))` to pass on, `Ok(None)` to go on without one (set already, or
/// outside CI when it cannot be had), `Err(())` to stop CI.
fn redis_server() -> Result<Option<String>, ()> {
    if let Some(path) = std::env::var(REDIS_VAR).ok().filter(|p| !p.is_empty()) {
        eprintln!("    {REDIS_VAR} is set: using {path}, installing nothing");
        return Ok(None);
    }
    match redis_server::provision() {
        Ok(path) => Ok(Some(path.to_string_lossy().into_owned())),
        Err(err) if in_ci() => {
            eprintln!("xtask ci: step `redis-server` failed: {err}");
            eprintln!("xtask ci: CI must run the Redis tests against a real redis-server");
            Err(())
        }
        Err(err) => {
            eprintln!("xtask ci: WARNING: {err}");
            eprintln!(
                "xtask ci: WARNING: going on without it (CI is not set); the Redis tests \
                 will skip"
            );
            Ok(None)
        }
    }
}

/// Step 3: `Ok(Some(interpreter))` to pass on, `Ok(None)` to go on without one (outside CI
/// only), `Err(())` to stop CI.
fn python_compat() -> Result<Option<String>, ()> {
    if let Some(python) = std::env::var(PYTHON_VAR).ok().filter(|p| !p.is_empty()) {
        eprintln!("    {PYTHON_VAR} is set: using {python}, installing nothing");
        return Ok(None);
    }
    let workspace = workspace_root();
    let env = CompatEnv::new(&workspace, &target_dir(&workspace));
    match env.provision() {
        Ok(python) => Ok(Some(python.to_string_lossy().into_owned())),
        Err(err) if in_ci() => {
            eprintln!("xtask ci: step `python compat env` failed: {err}");
            eprintln!(
                "xtask ci: CI must run gemini-fake's Python compatibility tests; \
                 python3 with venv and pip, and network access to PyPI, are required"
            );
            Err(())
        }
        Err(err) => {
            eprintln!("xtask ci: WARNING: {err}");
            eprintln!(
                "xtask ci: WARNING: going on without it (CI is not set); gemini-fake's \
                 python_sdk and livekit_plugin tests will skip"
            );
            Ok(None)
        }
    }
}

/// The workspace root: the parent of this crate's directory (as `cargo run` reports it, else
/// as it was at build time).
fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (made absolute) or `<workspace>/target`.
fn target_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir)),
        None => workspace.join("target"),
    }
}

/// Whether this run is CI's (`CI` set to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") if args.len() == 1 => run_ci(),
        Some("py-compat") if args.len() == 1 => run_py_compat(),
        Some("redis-server") if args.len() == 1 => run_redis_server(),
        Some("sim") => run_sim(&args[1..]),
        Some("handoff") => run_handoff(&args[1..]),
        Some("load") => {
            let workspace = workspace_root();
            load::run(&args[1..], &workspace, &target_dir(&workspace))
        }
        _ => usage(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seconds_ms;

    #[test]
    fn a_ttl_is_whole_or_decimal_seconds_from_one() {
        assert_eq!(parse_seconds_ms("2"), Some(2_000));
        assert_eq!(parse_seconds_ms("1.5"), Some(1_500));
        for bad in ["0.5", "0", "-1", "NaN", "inf", "two", ""] {
            assert_eq!(parse_seconds_ms(bad), None, "{bad:?}");
        }
    }
}
