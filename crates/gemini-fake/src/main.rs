//! `gemini-fake` binary: serves the fake Gemini Live server until killed.
//!
//! ```text
//! gemini-fake --listen 127.0.0.1:0 [--tls [--cert PATH]] [--family FAMILY] [--vertex]
//!             [--lifetime SECS | --no-lifetime] [--go-away-before SECS]
//!             [--hard-close SECS | --no-hard-close] [--lenient-3.1] [--text-on-3.8]
//!             [--api-key KEY] [--audio-load]
//! ```
//!
//! Every model family is served: the model id in each `setup` chooses it (docs/protocol.md
//! section 10); `--family` (2.5, 3.1, 3.8, 3.8-extended-thinking) only names the default model.
//! Connections live as on the service: about ten minutes with a `goAway` 50 s before the end on
//! 2.5 and 3.1, a hard close at 58:00 on 3.8 (`--lifetime`, `--no-lifetime`, `--hard-close`,
//! `--no-hard-close` change that). `--lenient-3.1` accepts `clientContent` all session on 3.1;
//! `--text-on-3.8` is the test switch that accepts `TEXT` responses on 3.8 (refused by default,
//! as on the service). `--audio-load` turns on load mode (`FakeConfig::with_audio_load`): model
//! audio streamed back at real time while client audio arrives, for load benchmarks.
//!
//! `--tls` serves `wss://` with a fresh self-signed certificate for 127.0.0.1 and localhost,
//! written in PEM to `--cert PATH` (default: a file in the temporary directory), so that a
//! client trusting that file connects unpatched (Python: `SSL_CERT_FILE=PATH`).
//!
//! The first line on stdout is `listening on ws://HOST:PORT`, or with `--tls`
//! `listening on wss://HOST:PORT (certificate: PATH)`; logs go to stderr (`RUST_LOG`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use gemini_fake::{Error, FakeConfig, FakeServer, Family, TlsIdentity};

const USAGE: &str = "usage: gemini-fake --listen HOST:PORT [--tls [--cert PATH]] \
                     [--family 2.5|3.1|3.8|3.8-extended-thinking] [--vertex] \
                     [--lifetime SECS | --no-lifetime] [--go-away-before SECS] \
                     [--hard-close SECS | --no-hard-close] [--lenient-3.1] [--text-on-3.8] \
                     [--api-key KEY] [--audio-load]";

/// What the command line asks for.
#[derive(Debug)]
struct Options {
    config: FakeConfig,
    /// Serve `wss://`, writing the certificate here (`None`: a temporary file).
    tls: Option<Option<PathBuf>>,
}

/// Parses the command line (without the program name) into a configuration.
fn parse_args(args: &[String]) -> Result<Options, Error> {
    let mut config = FakeConfig::new();
    let mut tls = None;
    let mut cert = None;
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
            "--no-lifetime" => config.with_lifetime(None),
            "--hard-close" => {
                config.with_hard_close(Some(seconds("--hard-close", &value("--hard-close")?)?))
            }
            "--no-hard-close" => config.with_hard_close(None),
            "--lenient-3.1" => config.with_lenient_3_1(true),
            "--text-on-3.8" => config.with_text_on_3_8(true),
            "--tls" => {
                tls = Some(());
                config
            }
            "--cert" => {
                cert = Some(PathBuf::from(value("--cert")?));
                config
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
    if cert.is_some() && tls.is_none() {
        return Err(Error::InvalidArgument {
            field: "--cert".to_owned(),
            reason: "needs --tls".to_owned(),
        });
    }
    Ok(Options {
        config,
        tls: tls.map(|()| cert),
    })
}

/// Makes the self-signed identity and writes its certificate; returns the path written.
fn with_tls(config: FakeConfig, path: Option<PathBuf>) -> Result<(FakeConfig, PathBuf), String> {
    let identity = TlsIdentity::self_signed().map_err(|e| e.to_string())?;
    let path = path.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gemini-fake-{}.pem", std::process::id()))
    });
    std::fs::write(&path, identity.cert_pem())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((config.with_tls(identity), path))
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
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("gemini-fake: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (config, cert) = match options.tls {
        None => (options.config, None),
        Some(path) => match with_tls(options.config, path) {
            Ok((config, path)) => (config, Some(path)),
            Err(error) => {
                eprintln!("gemini-fake: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let server = match FakeServer::start(config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("gemini-fake: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = match cert {
        Some(path) => writeln!(
            stdout,
            "listening on {} (certificate: {})",
            server.url(),
            path.display()
        ),
        None => writeln!(stdout, "listening on {}", server.url()),
    };
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
        let options = parse_args(&args(
            "--listen 127.0.0.1:0 --family 3.1 --vertex --lifetime 600 --go-away-before 50 \
             --hard-close 100 --lenient-3.1 --text-on-3.8 --api-key k --audio-load --tls \
             --cert /tmp/c.pem",
        ))
        .unwrap();
        let config = options.config;
        assert!(config.audio_load());
        assert_eq!(config.family(), Family::Gemini31);
        assert!(config.vertex());
        assert_eq!(
            config.lifetime_of(Family::Gemini38),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            config.hard_close_of(Family::Gemini25),
            Some(Duration::from_secs(100))
        );
        assert_eq!(options.tls, Some(Some(PathBuf::from("/tmp/c.pem"))));
        let defaults = parse_args(&[]).unwrap().config;
        assert_eq!(
            defaults.lifetime_of(Family::Gemini25),
            Some(Duration::from_secs(600)),
            "about ten minutes, as on the service"
        );
        assert_eq!(defaults.lifetime_of(Family::Gemini38), None);
        assert_eq!(
            defaults.hard_close_of(Family::Gemini38),
            Some(Duration::from_secs(58 * 60))
        );
    }

    #[test]
    fn rejects_bad_input_naming_the_flag() {
        for (line, field) in [
            ("--family 2.0", "family"),
            ("--lifetime soon", "--lifetime"),
            ("--listen", "--listen"),
            ("--bogus", "--bogus"),
            ("--cert x.pem", "--cert"),
        ] {
            match parse_args(&args(line)) {
                Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
