//! `load-server`: `gemini-fake` in load mode in its own process, for `load-client`.
//!
//! ```text
//! load-server [--listen HOST:PORT] [--threads T]
//! ```
//!
//! Serves on a multi-thread runtime (`--threads`, default every core) with
//! `FakeConfig::with_audio_load`: every session that streams audio gets 25 chunks a second of
//! 24 kHz model audio back. The first line on stdout is the base URL, `ws://HOST:PORT`. Then
//! each line `stats` read on stdin is answered on stdout with one JSON line: the server's CPU
//! time so far (user and system, from `/proc/self/stat`), its resident memory, and the audio
//! chunks it took in and sent out. It exits when stdin closes.

use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;

use gemini_fake::{FakeConfig, FakeServer};
use load::procfs;

const USAGE: &str = "usage: load-server [--listen HOST:PORT] [--threads T]";

struct ServerArgs {
    listen: SocketAddr,
    threads: usize,
}

fn parse(args: &[String]) -> Result<ServerArgs, String> {
    let mut parsed = ServerArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads: std::thread::available_parallelism().map_or(2, usize::from),
    };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                parsed.listen = value
                    .parse()
                    .map_err(|_| format!("--listen: `{value}` is not HOST:PORT"))?;
            }
            "--threads" => {
                parsed.threads = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--threads: `{value}` is not a positive number"))?;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(parsed)
}

/// One `stats` answer.
fn stats(server: &FakeServer) -> String {
    let cpu = procfs::cpu_time().unwrap_or_default();
    let counts = server.load_counts();
    serde_json::json!({
        "cpu_s": cpu.total().as_secs_f64(),
        "cpu_user_s": cpu.user.as_secs_f64(),
        "cpu_sys_s": cpu.sys.as_secs_f64(),
        "rss_kib": procfs::rss_kib().unwrap_or(0),
        "audio_in": counts.audio_in,
        "audio_out": counts.audio_out,
    })
    .to_string()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse(&args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("load-server: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("load-server: building the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // A benchmark's connections last as long as it runs: no lifetime, no hard close (the
    // fake's defaults are the service's).
    let config = FakeConfig::new()
        .with_listen(args.listen)
        .with_audio_load(true)
        .with_lifetime(None)
        .with_hard_close(None);
    let server = match runtime.block_on(FakeServer::start(config)) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("load-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{}", server.url());
    let _ = stdout.flush();
    // The runtime's workers serve; this thread answers `stats` until stdin closes.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "stats" {
            let _ = writeln!(stdout, "{}", stats(&server));
            let _ = stdout.flush();
        }
    }
    drop(server);
    ExitCode::SUCCESS
}
