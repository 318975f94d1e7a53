//! `cargo xtask ci`: the one command CI runs (`.ci/run` calls exactly this).
//!
//! Steps, stopping at the first failure:
//! 1. `cargo fmt --all --check`
//! 2. `cargo clippy --workspace --all-targets --all-features -- -D warnings`
//! 3. `cargo test --workspace --all-features` (unit, integration and doc tests)
//! 4. `cargo doc --workspace --no-deps --all-features` with `RUSTDOCFLAGS=-D warnings`
//! 5. `cargo run --example quickstart` (the README's first command must keep working)

use std::process::{Command, ExitCode};

struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const CI_STEPS: &[Step] = &[
    Step {
        name: "rustfmt",
        args: &["fmt", "--all", "--check"],
        env: &[],
    },
    Step {
        name: "clippy",
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
    Step {
        name: "tests",
        args: &["test", "--workspace", "--all-features"],
        env: &[],
    },
    Step {
        name: "docs",
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
    Step {
        name: "quickstart example",
        args: &["run", "--quiet", "--example", "quickstart"],
        env: &[],
    },
];

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask ci");
    ExitCode::from(2)
}

fn run_ci() -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for step in CI_STEPS {
        eprintln!(
            "==> xtask ci: {} (cargo {})",
            step.name,
            step.args.join(" ")
        );
        let mut cmd = Command::new(&cargo);
        cmd.args(step.args);
        for (key, value) in step.env {
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
    eprintln!("==> xtask ci: all steps passed");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") if args.len() == 1 => run_ci(),
        _ => usage(),
    }
}
