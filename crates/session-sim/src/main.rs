//! `session-sim`: runs random schedules against the session core and prints what failed.
//!
//! ```text
//! session-sim [--schedules N] [--start S] [--threads T] [--seed S [--keep i,j,k] [--trace]]
//! session-sim --soak [--schedules N] [--start S] [--concurrency C] [--seed S]
//! ```
//!
//! The last line printed is `N schedules, V violations`; each failing seed is printed shrunk,
//! with the command that replays it. Exit code 1 when a violation was found. `--soak` runs the
//! schedules over real loopback sockets against `gemini-fake` instead (real time, scaled down).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use session_sim::{Schedule, run, shrink};

struct Args {
    schedules: u64,
    start: u64,
    threads: usize,
    seed: Option<u64>,
    keep: Option<Vec<usize>>,
    trace: bool,
    soak: bool,
    concurrency: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        schedules: 1_000,
        start: 0,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        seed: None,
        keep: None,
        trace: false,
        soak: false,
        concurrency: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--schedules" => args.schedules = number(&value("--schedules")?)?,
            "--start" => args.start = number(&value("--start")?)?,
            "--threads" => {
                args.threads = usize::try_from(number(&value("--threads")?)?)
                    .unwrap_or(1)
                    .max(1)
            }
            "--seed" => args.seed = Some(number(&value("--seed")?)?),
            "--keep" => {
                let list = value("--keep")?;
                let keep = list
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--keep {s}: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                args.keep = Some(keep);
            }
            "--trace" => args.trace = true,
            "--soak" => args.soak = true,
            "--concurrency" => {
                args.concurrency = usize::try_from(number(&value("--concurrency")?)?)
                    .unwrap_or(1)
                    .max(1);
            }
            "--help" | "-h" => {
                return Err("usage: session-sim [--soak] [--schedules N] [--start S] [--threads T] [--concurrency C] [--seed S [--keep i,j] [--trace]]".to_owned());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn number(text: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|e| format!("not a number: {text}: {e}"))
}

fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if args.soak {
        std::process::exit(soak(&args));
    }
    if let Some(seed) = args.seed {
        std::process::exit(replay(seed, args.keep.as_deref(), args.trace));
    }
    let started = Instant::now();
    let next = AtomicU64::new(args.start);
    let end = args.start.saturating_add(args.schedules);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let done = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..args.threads {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let outcome = run(&Schedule::generate(seed));
                    done.fetch_add(1, Ordering::Relaxed);
                    if let Some(first) = outcome.violations.first() {
                        let class = first.class.to_owned();
                        if let Ok(mut f) = failures.lock() {
                            f.push((seed, class));
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort();
    let ran = done.load(Ordering::Relaxed);
    let per_second = ran as f64 / elapsed.as_secs_f64().max(1e-9);
    // Shrink and show the first few (each shrink re-runs the schedule many times).
    for (seed, class) in failures.iter().take(5) {
        let schedule = Schedule::generate(*seed);
        let keep = shrink(&schedule, class);
        let shrunk = schedule.keep(&keep);
        let outcome = run(&shrunk);
        println!(
            "\nFAILED seed {seed}: {class}, shrunk to {} of {} steps",
            keep.len(),
            schedule.steps.len()
        );
        print!("{shrunk}");
        for v in outcome
            .violations
            .iter()
            .filter(|v| v.class == *class)
            .take(3)
        {
            println!("  {v}");
        }
        let list: Vec<String> = keep.iter().map(ToString::to_string).collect();
        println!(
            "  replay: cargo xtask sim --seed {seed} --keep {} --trace",
            list.join(",")
        );
    }
    let mut by_class: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (_, class) in &failures {
        *by_class.entry(class.as_str()).or_default() += 1;
    }
    if !by_class.is_empty() {
        println!("\nviolations by class: {by_class:?}");
        let seeds: Vec<String> = failures
            .iter()
            .take(20)
            .map(|(s, _)| s.to_string())
            .collect();
        println!("failing seeds: {}", seeds.join(" "));
    }
    println!(
        "ran in {:.1} s, {per_second:.0} schedules/s on {} threads",
        elapsed.as_secs_f64(),
        args.threads
    );
    println!("{ran} schedules, {} violations", failures.len());
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

fn replay(seed: u64, keep: Option<&[usize]>, trace: bool) -> i32 {
    let full = Schedule::generate(seed);
    let schedule = match keep {
        Some(keep) => full.keep(keep),
        None => full,
    };
    print!("{schedule}");
    let outcome = run(&schedule);
    if trace {
        for line in &outcome.trace {
            println!("  {line}");
        }
    }
    for v in &outcome.violations {
        println!("  {v}");
    }
    let failed = u64::from(!outcome.violations.is_empty());
    println!("1 schedules, {failed} violations");
    i32::from(!outcome.violations.is_empty())
}

/// `--soak`: the schedules over loopback sockets, `concurrency` at a time.
fn soak(args: &Args) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return 2;
        }
    };
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.start..args.start.saturating_add(args.schedules)).collect(),
    };
    let started = Instant::now();
    let failures = runtime.block_on(async {
        let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for seed in seeds.iter().copied() {
            let limit = std::sync::Arc::clone(&limit);
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (seed, session_sim::soak_one(&Schedule::generate(seed)).await)
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((seed, violations)) if !violations.is_empty() => {
                    failures.push((seed, violations))
                }
                Ok(_) => {}
                Err(e) => failures.push((
                    u64::MAX,
                    vec![session_sim::Violation::new("soak", e.to_string())],
                )),
            }
        }
        failures
    });
    let mut failures = failures;
    failures.sort_by_key(|(seed, _)| *seed);
    for (seed, violations) in failures.iter().take(10) {
        println!("\nFAILED seed {seed} over loopback");
        print!("{}", Schedule::generate(*seed));
        for v in violations.iter().take(3) {
            println!("  {v}");
        }
        println!("  replay: cargo xtask sim --soak --seed {seed}");
    }
    println!(
        "loopback soak ran in {:.1} s, {} at a time",
        started.elapsed().as_secs_f64(),
        args.concurrency
    );
    println!("{} schedules, {} violations", seeds.len(), failures.len());
    i32::from(!failures.is_empty())
}
