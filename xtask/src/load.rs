//! `cargo xtask load`: the whole-process load benchmark (`crates/load`).
//!
//! Builds the `load` crate in release, starts one `load-server` process, runs `load-client`
//! for every kind one after another against it, and prints one table whose ratios come from
//! this run only. Both processes are started through `sh -c 'ulimit -n <hard limit>; exec …'`,
//! so their soft open-file limit is raised to the hard limit without `setrlimit` here (1,000
//! sessions need about 1,000 descriptors in each process).
//!
//! ```text
//! cargo xtask load [--sessions N[,N…]] [--seconds S] [--afap-sessions N] [--idle-sessions N]
//!                  [--connect-sessions N] [--threads T] [--repeat R] [--find-max] [--max N]
//! ```
//!
//! The server's CPU is read at the client's `{"phase":"start"}` and `{"phase":"end"}` lines
//! (its `stats` answer), so its share of a core over the same window shows whether the fake is
//! what limits the run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::Instant;

/// Sessions `--find-max` tries, in order, until one does not hold.
const RAMP: &[u64] = &[
    100, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 5000, 7000, 10000,
];

/// Raises the soft open-file limit to the hard one, then runs the program and its arguments.
const RAISE_FILES: &str = r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#;

struct Options {
    sessions: Vec<u64>,
    seconds: f64,
    afap_sessions: u64,
    idle_sessions: u64,
    connect_sessions: u64,
    threads: Option<u64>,
    find_max: bool,
    max: u64,
    repeat: u64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        sessions: vec![1, 100, 300],
        seconds: 10.0,
        afap_sessions: 50,
        idle_sessions: 1000,
        connect_sessions: 200,
        threads: None,
        find_max: false,
        max: 10_000,
        repeat: 1,
    };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        if flag == "--find-max" {
            options.find_max = true;
            continue;
        }
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a whole number"))
        };
        match flag.as_str() {
            "--sessions" => {
                options.sessions = value.split(',').map(number).collect::<Result<_, _>>()?;
            }
            "--seconds" => {
                options.seconds = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--seconds: `{value}` is not a positive number"))?;
            }
            "--afap-sessions" => options.afap_sessions = number(value)?,
            "--idle-sessions" => options.idle_sessions = number(value)?,
            "--connect-sessions" => options.connect_sessions = number(value)?,
            "--threads" => options.threads = Some(number(value)?),
            "--max" => options.max = number(value)?,
            "--repeat" => options.repeat = number(value)?.max(1),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

/// A value of the flat JSON objects the load binaries print.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Bool(bool),
    Null,
    Text(String),
}

/// One flat JSON object: string keys; numbers, booleans, null or strings as values (what
/// `load-client` and `load-server` print; xtask stays free of dependencies).
type Object = BTreeMap<String, Value>;

fn parse_object(line: &str) -> Option<Object> {
    let mut chars = line.trim().chars().peekable();
    let mut object = Object::new();
    if chars.next()? != '{' {
        return None;
    }
    loop {
        skip_space(&mut chars);
        match chars.peek()? {
            '}' => return Some(object),
            ',' => {
                chars.next();
                continue;
            }
            _ => {}
        }
        let key = parse_string(&mut chars)?;
        skip_space(&mut chars);
        if chars.next()? != ':' {
            return None;
        }
        skip_space(&mut chars);
        let value = match chars.peek()? {
            '"' => Value::Text(parse_string(&mut chars)?),
            _ => {
                let mut word = String::new();
                while let Some(c) = chars.peek().copied().filter(|c| !matches!(c, ',' | '}')) {
                    word.push(c);
                    chars.next();
                }
                match word.trim() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    number => Value::Number(number.parse().ok()?),
                }
            }
        };
        object.insert(key, value);
    }
}

fn skip_space(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

fn parse_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    if chars.next()? != '"' {
        return None;
    }
    let mut text = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(text),
            '\\' => match chars.next()? {
                'n' => text.push('\n'),
                't' => text.push('\t'),
                // `\uXXXX` is kept as written: these strings are only shown.
                'u' => text.push_str("\\u"),
                other => text.push(other),
            },
            c => text.push(c),
        }
    }
}

fn number(object: &Object, key: &str) -> f64 {
    match object.get(key) {
        Some(Value::Number(n)) => *n,
        _ => 0.0,
    }
}

/// The `load-server` process and its `stats` channel.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    url: String,
}

impl Server {
    fn start(bin: &Path, threads: Option<u64>) -> Result<Server, String> {
        let mut command = raised(bin);
        if let Some(threads) = threads {
            command.args(["--threads", &threads.to_string()]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting load-server: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("load-server without pipes".to_owned());
        };
        let mut stdout = BufReader::new(stdout);
        let mut url = String::new();
        stdout
            .read_line(&mut url)
            .map_err(|e| format!("reading load-server's URL: {e}"))?;
        let url = url.trim().to_owned();
        if !url.starts_with("ws://") {
            let _ = child.kill();
            return Err(format!("load-server printed `{url}`, not its URL"));
        }
        Ok(Server {
            child,
            stdin,
            stdout,
            url,
        })
    }

    fn stats(&mut self) -> Option<Object> {
        writeln!(self.stdin, "stats").ok()?;
        self.stdin.flush().ok()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        parse_object(&line)
    }

    fn stop(mut self) {
        // Closing stdin ends it; kill it (by its own pid) if it is still there.
        drop(self.stdin);
        std::thread::sleep(std::time::Duration::from_millis(200));
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `sh -c 'ulimit -n <hard>; exec BIN …'`.
fn raised(bin: &Path) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(RAISE_FILES).arg(bin);
    command
}

/// One client run and what the server did meanwhile.
struct Run {
    kind: String,
    mode: String,
    sessions: u64,
    report: Object,
    /// Server CPU seconds and wall seconds over the client's window.
    server_cpu: f64,
    server_wall: f64,
    /// Client audio chunks the server took in over the window.
    server_in: f64,
}

impl Run {
    fn cpu_per_chunk(&self) -> f64 {
        number(&self.report, "cpu_us_per_chunk")
    }

    fn held(&self) -> Option<bool> {
        match self.report.get("held") {
            Some(Value::Bool(held)) => Some(*held),
            _ => None,
        }
    }
}

fn run_client(
    client: &Path,
    server: &mut Server,
    kind: &str,
    mode: &str,
    sessions: u64,
    options: &Options,
) -> Result<Run, String> {
    let mut command = raised(client);
    command.args(["--url", &server.url, "--kind", kind]);
    command.args(["--sessions", &sessions.to_string()]);
    match mode {
        "idle" => {
            command.arg("--idle");
        }
        "connect" => {
            command.arg("--connect");
        }
        pace => {
            command.args(["--pace", pace, "--seconds", &options.seconds.to_string()]);
        }
    }
    if let Some(threads) = options.threads {
        command.args(["--threads", &threads.to_string()]);
    }
    eprintln!("==> xtask load: {kind} {mode}, {sessions} sessions");
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting load-client: {e}"))?;
    let stdout = child.stdout.take().ok_or("load-client without stdout")?;
    let (mut at_start, mut at_end) = (None, None);
    let mut report = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Some(object) = parse_object(&line) else {
            continue;
        };
        match object.get("phase") {
            Some(Value::Text(p)) if p == "start" => {
                at_start = Some((Instant::now(), server.stats()))
            }
            Some(Value::Text(p)) if p == "end" => at_end = Some((Instant::now(), server.stats())),
            _ => report = Some(object),
        }
    }
    let status = child.wait().map_err(|e| format!("load-client: {e}"))?;
    let report = report
        .filter(|_| status.success())
        .ok_or_else(|| format!("load-client {kind} {mode} failed ({status})"))?;
    let (mut server_cpu, mut server_wall, mut server_in) = (0.0, 0.0, 0.0);
    if let (Some((t0, Some(s0))), Some((t1, Some(s1)))) = (at_start, at_end) {
        server_cpu = number(&s1, "cpu_s") - number(&s0, "cpu_s");
        server_wall = (t1 - t0).as_secs_f64();
        server_in = number(&s1, "audio_in") - number(&s0, "audio_in");
    }
    Ok(Run {
        kind: kind.to_owned(),
        mode: mode.to_owned(),
        sessions,
        report,
        server_cpu,
        server_wall,
        server_in,
    })
}

/// The runs of each kind, mode and size, in order of first appearance: the run with the median
/// CPU per chunk (the lower middle of an even count), how many runs, and whether every one held
/// real time.
fn groups(runs: &[Run]) -> Vec<(&Run, usize, bool)> {
    let mut keys: Vec<(&str, &str, u64)> = Vec::new();
    for run in runs
        .iter()
        .filter(|r| r.mode != "idle" && r.mode != "connect")
    {
        let key = (run.kind.as_str(), run.mode.as_str(), run.sessions);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .filter_map(|(kind, mode, sessions)| {
            let mut same: Vec<&Run> = runs
                .iter()
                .filter(|r| r.kind == kind && r.mode == mode && r.sessions == sessions)
                .collect();
            same.sort_by(|a, b| a.cpu_per_chunk().total_cmp(&b.cpu_per_chunk()));
            let all_held = same.iter().all(|r| r.held() != Some(false));
            let median = *same.get((same.len().saturating_sub(1)) / 2)?;
            Some((median, same.len(), all_held))
        })
        .collect()
}

/// The ratio of `run`'s kind over `baseline` round by round: the n-th run of the kind over the
/// n-th run of the baseline at the same pace and size (with `--repeat`, each round runs every
/// kind once).
fn round_ratios(runs: &[Run], run: &Run, baseline: &str) -> Vec<f64> {
    let of = |kind: &str| {
        runs.iter()
            .filter(|r| r.kind == kind && r.mode == run.mode && r.sessions == run.sessions)
            .map(Run::cpu_per_chunk)
            .collect::<Vec<f64>>()
    };
    of(&run.kind)
        .into_iter()
        .zip(of(baseline))
        .filter(|(_, b)| *b > 0.0)
        .map(|(k, b)| k / b)
        .collect()
}

fn print_table(runs: &[Run], idle: &BTreeMap<String, f64>) {
    println!();
    println!(
        "{:<14} {:<9} {:>8} {:>4} {:>12} {:>10} {:>7} {:>11} {:>5} {:>8} {:>7} {:>8} {:>8} {:>13}",
        "kind",
        "pace",
        "sessions",
        "runs",
        "cpu ms/ss",
        "cpu µs/ch",
        "ratio",
        "round range",
        "held",
        "p99 ms",
        "recv %",
        "srv in %",
        "srv cpu",
        "idle KiB/sess"
    );
    for (run, count, all_held) in groups(runs) {
        let baseline = if run.mode == "realtime" {
            "bare-each"
        } else {
            "bare-coalesce"
        };
        let ratio = groups(runs)
            .into_iter()
            .find(|(b, _, _)| {
                b.kind == baseline && b.mode == run.mode && b.sessions == run.sessions
            })
            .map(|(b, _, _)| b.cpu_per_chunk())
            .filter(|b| *b > 0.0)
            .map_or_else(
                || "-".to_owned(),
                |b| format!("{:.2}", run.cpu_per_chunk() / b),
            );
        let rounds = round_ratios(runs, run, baseline);
        let range = match (
            rounds.iter().copied().reduce(f64::min),
            rounds.iter().copied().reduce(f64::max),
        ) {
            (Some(low), Some(high)) if rounds.len() > 1 => format!("{low:.2}–{high:.2}"),
            _ => "-".to_owned(),
        };
        let held = match (run.held(), all_held) {
            (Some(_), true) => "yes",
            (Some(_), false) => "NO",
            (None, _) => "-",
        };
        let p99 = match run.report.get("lateness_p99_ms") {
            Some(Value::Number(ms)) if run.mode == "realtime" => format!("<{ms}"),
            _ => "-".to_owned(),
        };
        let chunks = number(&run.report, "chunks");
        let server_in = if chunks > 0.0 {
            format!("{:.1}", 100.0 * run.server_in / chunks)
        } else {
            "-".to_owned()
        };
        let server_cpu = if run.server_wall > 0.0 {
            format!("{:.0}%", 100.0 * run.server_cpu / run.server_wall)
        } else {
            "-".to_owned()
        };
        let idle_kind = if run.kind == "live" { "live" } else { "bare" };
        let idle = idle
            .get(idle_kind)
            .map_or_else(|| "-".to_owned(), |kib| format!("{kib:.1}"));
        println!(
            "{:<14} {:<9} {:>8} {:>4} {:>12.3} {:>10.2} {:>7} {:>11} {:>5} {:>8} {:>7.1} {:>8} {:>8} {:>13}",
            run.kind,
            run.mode,
            run.sessions,
            count,
            number(&run.report, "cpu_ms_per_session_s"),
            run.cpu_per_chunk(),
            ratio,
            range,
            held,
            p99,
            100.0 * number(&run.report, "received_share"),
            server_in,
            server_cpu,
            idle
        );
    }
    println!();
    println!(
        "runs: how many runs of the row (with --repeat; the row shows the run with the median \
         cpu µs/ch, and held only if every run held); \
         cpu ms/ss: client CPU (user+sys) per session per second of the run; cpu µs/ch: client \
         CPU per audio chunk sent (reading the model audio included); ratio: cpu µs/ch over \
         bare-each (realtime) or bare-coalesce (afap) in this run, medians over medians; \
         round range: the lowest and highest of the same ratio taken round by round (each \
         round runs every kind once, one after another); held: send-loop p99 lateness \
         ≤ 20 ms, ≥ 95 % of chunks sent and of model audio received, no session failed; \
         recv %: model audio received over 25 chunks/s/session; srv in %: client chunks the \
         server took in over chunks sent; srv cpu: server CPU over the same window, in % of one \
         core; idle KiB/sess: resident memory per idle session."
    );
}

/// The median of `values` (the mean of the middle two of an even count) and their range.
fn median_range(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])
    };
    Some((median, sorted[0], sorted[n - 1]))
}

/// The ratios of the issue's targets, each taken round by round against the fair bare client
/// measured in the same round, printed as the median and the range of the rounds.
fn print_targets(runs: &[Run], options: &Options) {
    println!("targets, live over the fair bare client, round by round (median, lowest–highest):");
    let line = |what: String, ratios: Vec<f64>, target: f64| match median_range(&ratios) {
        Some((median, low, high)) => println!(
            "  {what:<44} {median:>5.2}  ({low:.2}–{high:.2}, {} rounds)  target ≤ {target:.1}: {}",
            ratios.len(),
            if median <= target { "met" } else { "NOT met" }
        ),
        None => println!("  {what:<44}     -"),
    };
    let of = |kind: &str, mode: &str, sessions: Option<u64>, key: &str| -> Vec<f64> {
        runs.iter()
            .filter(|r| {
                r.kind == kind && r.mode == mode && sessions.is_none_or(|n| r.sessions == n)
            })
            .map(|r| number(&r.report, key))
            .collect()
    };
    let ratio = |live: Vec<f64>, bare: Vec<f64>| -> Vec<f64> {
        live.into_iter()
            .zip(bare)
            .filter(|(_, b)| *b > 0.0)
            .map(|(l, b)| l / b)
            .collect()
    };
    for &sessions in &options.sessions {
        let key = "cpu_us_per_chunk";
        line(
            format!("real time, {sessions} sessions: CPU per chunk / bare-each"),
            ratio(
                of("live", "realtime", Some(sessions), key),
                of("bare-each", "realtime", Some(sessions), key),
            ),
            1.0,
        );
    }
    if options.afap_sessions > 0 {
        let key = "cpu_us_per_chunk";
        line(
            format!(
                "single-chunk pushes afap, {}: / bare-coalesce",
                options.afap_sessions
            ),
            ratio(
                of("live", "afap", None, key),
                of("bare-coalesce", "afap", None, key),
            ),
            1.2,
        );
    }
    if options.connect_sessions > 0 {
        let key = "connect_median_us";
        line(
            "connect() to setupComplete (median) / bare".to_owned(),
            ratio(
                of("live", "connect", None, key),
                of("live", "connect", None, "bare_connect_median_us"),
            ),
            1.1,
        );
    }
    if options.idle_sessions > 0 {
        let key = "idle_kib_per_session";
        line(
            format!("idle memory per session, {}: / bare", options.idle_sessions),
            ratio(of("live", "idle", None, key), of("bare", "idle", None, key)),
            1.2,
        );
    }
    let absolute = |kind: &str, mode: &str, key: &str| {
        median_range(&of(kind, mode, None, key)).map_or_else(
            || "-".to_owned(),
            |(m, l, h)| format!("{m:.1} ({l:.1}–{h:.1})"),
        )
    };
    if options.connect_sessions > 0 {
        println!(
            "  connect µs, median of each run's median: live {}, bare {}",
            absolute("live", "connect", "connect_median_us"),
            absolute("live", "connect", "bare_connect_median_us")
        );
    }
    if options.idle_sessions > 0 {
        println!(
            "  idle KiB per session: live {}, bare {}",
            absolute("live", "idle", "idle_kib_per_session"),
            absolute("bare", "idle", "idle_kib_per_session")
        );
    }
}

/// Runs `cargo xtask load ARGS`.
pub(crate) fn run(args: &[String], workspace: &Path, target: &Path) -> ExitCode {
    let options = match parse(args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!(
                "xtask load: {error}\nusage: cargo xtask load [--sessions N[,N…]] [--seconds S] \
                 [--afap-sessions N] [--idle-sessions N] [--connect-sessions N] [--threads T] \
                 [--repeat R] [--find-max] [--max N]"
            );
            return ExitCode::from(2);
        }
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("==> xtask load: cargo build --release -p load");
    let built = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "--quiet", "-p", "load"])
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("xtask load: building the load crate failed");
        return ExitCode::FAILURE;
    }
    let bins: PathBuf = target.join("release");
    let mut server = match Server::start(&bins.join("load-server"), options.threads) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("xtask load: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("==> xtask load: load-server at {}", server.url);
    let result = benchmark(&bins.join("load-client"), &mut server, &options);
    server.stop();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask load: {error}");
            ExitCode::FAILURE
        }
    }
}

fn benchmark(client: &Path, server: &mut Server, options: &Options) -> Result<(), String> {
    let mut runs = Vec::new();
    let mut idle = BTreeMap::new();
    // Idle memory and connect latency, round by round, the two kinds in alternating order.
    for round in 0..options.repeat {
        let pair = if round % 2 == 0 {
            ["live", "bare"]
        } else {
            ["bare", "live"]
        };
        for kind in pair {
            if options.idle_sessions > 0 {
                runs.push(run_client(
                    client,
                    server,
                    kind,
                    "idle",
                    options.idle_sessions,
                    options,
                )?);
            }
            // One connect run a round: it times live and bare connects, interleaved.
            if options.connect_sessions > 0 && kind == "live" {
                runs.push(run_client(
                    client,
                    server,
                    kind,
                    "connect",
                    options.connect_sessions,
                    options,
                )?);
            }
        }
    }
    for kind in ["live", "bare"] {
        let kib: Vec<f64> = runs
            .iter()
            .filter(|r| r.kind == kind && r.mode == "idle")
            .map(|r| number(&r.report, "idle_kib_per_session"))
            .collect();
        if let Some((median, _, _)) = median_range(&kib) {
            idle.insert(kind.to_owned(), median);
        }
    }
    // With `--repeat`, the kinds take turns in alternating order, so that no kind always runs
    // first or last (the machine and the server warm up and drift); the table gives medians.
    let kinds = |round: u64| {
        let mut kinds = ["bare-each", "bare-coalesce", "live"];
        if round % 2 == 1 {
            kinds.reverse();
        }
        kinds
    };
    for &sessions in &options.sessions {
        for round in 0..options.repeat {
            for kind in kinds(round) {
                runs.push(run_client(
                    client, server, kind, "realtime", sessions, options,
                )?);
            }
        }
    }
    if options.afap_sessions > 0 {
        for round in 0..options.repeat {
            for kind in kinds(round) {
                let sessions = options.afap_sessions;
                runs.push(run_client(client, server, kind, "afap", sessions, options)?);
            }
        }
    }
    print_table(&runs, &idle);
    print_targets(&runs, options);
    if options.find_max {
        let mut largest = Vec::new();
        for kind in ["live", "bare-each"] {
            let mut held = None;
            for &sessions in RAMP.iter().filter(|n| **n <= options.max) {
                let run = run_client(client, server, kind, "realtime", sessions, options)?;
                let ok = run.held() == Some(true);
                eprintln!(
                    "    {kind} {sessions}: {} (p99 <{} ms, received {:.1} %, server cpu {:.0} %)",
                    if ok { "held" } else { "did NOT hold" },
                    number(&run.report, "lateness_p99_ms"),
                    100.0 * number(&run.report, "received_share"),
                    100.0 * run.server_cpu / run.server_wall.max(1e-9),
                );
                runs.push(run);
                if !ok {
                    break;
                }
                held = Some(sessions);
            }
            largest.push((kind, held));
        }
        print_table(&runs, &idle);
        for (kind, held) in largest {
            match held {
                Some(n) => println!("largest N that held real time: {kind} {n}"),
                None => println!("largest N that held real time: {kind} none of the ramp"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_objects_parse() {
        let object =
            parse_object(r#"{"a":1.5,"b":true,"c":null,"d":"x \"y\"","e":-2e3,"f":false}"#)
                .expect("a flat object");
        assert_eq!(object["a"], Value::Number(1.5));
        assert_eq!(object["b"], Value::Bool(true));
        assert_eq!(object["c"], Value::Null);
        assert_eq!(object["d"], Value::Text("x \"y\"".to_owned()));
        assert_eq!(object["e"], Value::Number(-2000.0));
        assert_eq!(object["f"], Value::Bool(false));
        assert_eq!(parse_object("{}"), Some(Object::new()));
        assert_eq!(parse_object("not json"), None);
    }

    #[test]
    fn options_parse() {
        let args: Vec<String> = "--sessions 100,300 --seconds 5 --find-max"
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let options = parse(&args).expect("valid options");
        assert_eq!(options.sessions, vec![100, 300]);
        assert!(options.find_max);
        assert!(parse(&["--bogus".to_owned()]).is_err());
    }
}
