//! `load-client`'s command line.

use std::time::Duration;

/// Which client the sessions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `agent_glue::LiveSession`: `push_audio` per chunk, model audio read as
    /// `SessionEvent::Audio`.
    Live,
    /// tokio-tungstenite directly: each chunk encoded, sent and flushed on its own.
    BareEach,
    /// tokio-tungstenite directly: the chunks ready at once fed, then one flush.
    BareCoalesce,
}

impl Kind {
    /// The name on the command line and in the report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Live => "live",
            Kind::BareEach => "bare-each",
            Kind::BareCoalesce => "bare-coalesce",
        }
    }

    fn parse(name: &str) -> Result<Kind, String> {
        match name {
            "live" => Ok(Kind::Live),
            // `bare` is what `--idle` measures: an idle bare client neither sends nor flushes.
            "bare" | "bare-each" => Ok(Kind::BareEach),
            "bare-coalesce" => Ok(Kind::BareCoalesce),
            other => Err(format!(
                "--kind: `{other}` is not live, bare-each, bare-coalesce or bare"
            )),
        }
    }
}

/// How fast each session sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One 20 ms chunk every 20 ms, as a microphone delivers it.
    Realtime,
    /// As fast as the session goes, for the whole run.
    Afap,
}

impl Pace {
    /// The name on the command line and in the report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Pace::Realtime => "realtime",
            Pace::Afap => "afap",
        }
    }
}

/// Everything `load-client` was asked to do.
#[derive(Debug, Clone)]
pub struct ClientArgs {
    /// The client kind.
    pub kind: Kind,
    /// Concurrent sessions.
    pub sessions: usize,
    /// How long the sessions stream.
    pub duration: Duration,
    /// Sending pace.
    pub pace: Pace,
    /// Connect, wait and report memory per session instead of streaming.
    pub idle: bool,
    /// Connect `sessions` pairs of a `LiveSession` and a bare connection, interleaved, one
    /// after another, and report how long the connects took, instead of streaming.
    pub connect: bool,
    /// The server's base URL, `ws://HOST:PORT` (as `load-server` prints it).
    pub url: String,
    /// The `setup.model` to send (default: what `gemini-fake` serves by default).
    pub model: String,
    /// Worker threads of the multi-thread runtime (default: every core).
    pub threads: usize,
    /// Chunks per flush for `bare-coalesce` at `afap`, and how many single-chunk pushes `live`
    /// and flushes `bare-each` make between two yields to the runtime.
    pub batch: usize,
    /// Sessions dialing at the same time while connecting.
    pub connect_concurrency: usize,
}

/// The usage line.
pub const USAGE: &str = "usage: load-client --url ws://HOST:PORT --kind live|bare-each|bare-coalesce \
     [--sessions N] [--seconds S] [--pace realtime|afap] [--threads T] [--batch B] \
     [--connect-concurrency C] [--model M]\n       \
     load-client --url ws://HOST:PORT --kind live|bare --sessions N --idle\n       \
     load-client --url ws://HOST:PORT --sessions N --connect";

impl ClientArgs {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    /// A message naming the flag that is unknown, lacks a value or has a bad one.
    pub fn parse(args: &[String]) -> Result<ClientArgs, String> {
        let mut parsed = ClientArgs {
            kind: Kind::Live,
            sessions: 100,
            duration: Duration::from_secs(10),
            pace: Pace::Realtime,
            idle: false,
            connect: false,
            url: String::new(),
            model: gemini_fake::FakeConfig::new().setup_model(),
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            batch: 16,
            connect_concurrency: 64,
        };
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let mut value = || {
                rest.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--kind" => parsed.kind = Kind::parse(&value()?)?,
                "--sessions" => parsed.sessions = number(flag, &value()?)?,
                "--seconds" => {
                    let v = value()?;
                    let seconds = v
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| format!("--seconds: `{v}` is not a positive number"))?;
                    parsed.duration = Duration::from_secs_f64(seconds);
                }
                "--pace" => {
                    parsed.pace = match value()?.as_str() {
                        "realtime" => Pace::Realtime,
                        "afap" => Pace::Afap,
                        other => return Err(format!("--pace: `{other}` is not realtime or afap")),
                    }
                }
                "--idle" => parsed.idle = true,
                "--connect" => parsed.connect = true,
                "--url" => parsed.url = value()?,
                "--model" => parsed.model = value()?,
                "--threads" => parsed.threads = number(flag, &value()?)?,
                "--batch" => parsed.batch = number(flag, &value()?)?,
                "--connect-concurrency" => parsed.connect_concurrency = number(flag, &value()?)?,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if parsed.url.is_empty() {
            return Err("--url is required".to_owned());
        }
        Ok(parsed)
    }
}

/// A positive whole number.
fn number(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag}: `{value}` is not a positive whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_flags_and_names_the_bad_one() {
        let parsed = ClientArgs::parse(&args(
            "--url ws://127.0.0.1:1 --kind bare-coalesce --sessions 300 --seconds 2.5 --pace afap",
        ))
        .expect("valid arguments");
        assert_eq!(parsed.kind, Kind::BareCoalesce);
        assert_eq!(parsed.sessions, 300);
        assert_eq!(parsed.duration, Duration::from_millis(2500));
        assert_eq!(parsed.pace, Pace::Afap);
        for (line, flag) in [
            ("--url u --kind nope", "--kind"),
            ("--url u --sessions 0", "--sessions"),
            ("--url u --seconds", "--seconds"),
            ("--url u --bogus", "--bogus"),
            ("--kind live", "--url"),
        ] {
            let error = ClientArgs::parse(&args(line)).expect_err(line);
            assert!(error.contains(flag), "{line}: {error}");
        }
    }
}
