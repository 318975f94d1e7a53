//! `load-client`: N concurrent sessions of one kind against `load-server`; prints one JSON line.
//!
//! ```text
//! load-client --url ws://HOST:PORT --kind live|bare-each|bare-coalesce [--sessions N]
//!             [--seconds S] [--pace realtime|afap] [--threads T] [--batch B]
//! load-client --url ws://HOST:PORT --kind live|bare --sessions N --idle
//! load-client --url ws://HOST:PORT --sessions N --connect   (live and bare, interleaved)
//! ```
//!
//! Streaming runs print `{"phase":"start"}` when every session is connected and the clock
//! starts, `{"phase":"end"}` when the last one has closed, then the report (see
//! `load::Report`). Exit status 1 when the run could not be made, 2 on a bad command line.

use std::process::ExitCode;

use load::{ClientArgs, procfs};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", load_usage());
        return ExitCode::SUCCESS;
    }
    let args = match ClientArgs::parse(&args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("load-client: {error}\n{}", load_usage());
            return ExitCode::from(2);
        }
    };
    // One socket per session, plus the runtime's own descriptors.
    if let Some(limit) = procfs::open_files_limit() {
        let needed = u64::try_from(args.sessions).unwrap_or(u64::MAX) + 64;
        if limit < needed {
            eprintln!(
                "load-client: WARNING: the open-file limit is {limit}, {needed} may be needed \
                 (raise it with `ulimit -n`; `cargo xtask load` raises it to the hard limit)"
            );
        }
    }
    let result = if args.idle {
        load::run_idle(args)
    } else if args.connect {
        load::run_connect(args)
    } else {
        load::run_client(args)
    };
    match result {
        Ok(report) => {
            println!("{}", report.to_json_line());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("load-client: {error}");
            ExitCode::FAILURE
        }
    }
}

fn load_usage() -> &'static str {
    load::USAGE
}
