//! `gemini-fake` binary: serves the fake Gemini Live server until killed.
//!
//! ```text
//! gemini-fake --listen 127.0.0.1:0 [--family 2.5|3.1|3.8] [--vertex] [--lifetime SECS]
//!             [--go-away-before SECS] [--api-key KEY] [--audio-load]
//! ```
//!
//! `--audio-load` turns on load mode (`FakeConfig::with_audio_load`): model audio streamed back
//! at real time while client audio arrives, for load benchmarks.
//!
//! The first line on stdout is `listening on ws://HOST:PORT`; logs go to stderr (`RUST_LOG`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use gemini_fake::{Error, FakeConfig, FakeServer, Family};

const USAGE: &str = "usage: gemini-fake --listen HOST:PORT [--family 2.5|3.1|3.8] [--vertex] \
                     [--lifetime SECS] [--go-away-before SECS] [--api-key KEY] [--audio-load]";

/// Parses the command line (without the program name) into a configuration.
fn parse_args(args: &[String]) -> Result<FakeConfig, Error> {
    let mut config = FakeConfig::new();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value = |name: &str| {
            rest.next().cloned().ok_or_else(|| Error::InvalidArgument {
                field: name.to_owned(),
                reason: "needs a value".to_owned(),
            })
        };
        config = match flag.as_str() {
            "--listen" => {
                let addr = value("--listen")?;
                let parsed: SocketAddr = addr.parse().map_err(|_| Error::InvalidArgument {
                    field: "--listen".to_owned(),
                    reason: format!("`{addr}` is not HOST:PORT"),
                })?;
                config.with_listen(parsed)
            }
            "--family" => config.with_family(value("--family")?.parse::<Family>()?),
            "--vertex" => config.with_vertex(true),
            "--lifetime" => {
                config.with_lifetime(Some(seconds("--lifetime", &value("--lifetime")?)?))
            }
            "--go-away-before" => {
                config.with_go_away_lead(seconds("--go-away-before", &value("--go-away-before")?)?)
            }
            "--api-key" => config.with_api_key(value("--api-key")?),
            "--audio-load" => config.with_audio_load(true),
            other => {
                return Err(Error::InvalidArgument {
                    field: other.to_owned(),
                    reason: "unknown argument".to_owned(),
                });
            }
        };
    }
    Ok(config)
}

fn seconds(field: &str, value: &str) -> Result<Duration, Error> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| Error::InvalidArgument {
            field: field.to_owned(),
            reason: format!("`{value}` is not a number of seconds"),
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match parse_args(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("gemini-fake: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match FakeServer::start(config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("gemini-fake: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", server.url());
    let _ = stdout.flush();
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_every_flag() {
        let config = parse_args(&args(
            "--listen 127.0.0.1:0 --family 3.1 --vertex --lifetime 600 --go-away-before 50 --api-key k --audio-load",
        ))
        .unwrap();
        assert!(config.audio_load());
        assert_eq!(config.family(), Family::Gemini31);
        assert!(config.vertex());
    }

    #[test]
    fn rejects_bad_input_naming_the_flag() {
        for (line, field) in [
            ("--family 2.0", "family"),
            ("--lifetime soon", "--lifetime"),
            ("--listen", "--listen"),
            ("--bogus", "--bogus"),
        ] {
            match parse_args(&args(line)) {
                Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
