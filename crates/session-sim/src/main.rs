//! `session-sim`: runs random schedules against the session core and prints what failed.
//!
//! ```text
//! session-sim [--schedules N] [--start S] [--fixed F] [--show K] [--policy P] [--threads T]
//! session-sim --seed S [--keep i,j,k] [--policy P] [--trace]
//! session-sim --soak [--schedules N] [--start S] [--concurrency C] [--seed S]
//! ```
//!
//! A run takes `N` schedules from a fresh seed range (drawn from the OS's randomness) unless
//! `--start` fixes it, and prints the range first with the command that replays it; it also
//! runs the fixed set, seeds `0..F` (5,000 unless `--fixed` says otherwise) and the past
//! failing seeds in [`FIXED_SEEDS`], so that regressions stay covered. Failing seeds (the
//! first of each class, then others, `K` in all, 5 unless `--show` says otherwise) are
//! printed shrunk, with the command that replays them; then the statistics (schedules per
//! second, violations by class, divergences per schedule, the share of schedules with each
//! fault and each interleaving of the application's operations with the user's speech). The
//! last line printed is `N schedules, V violations` (`V`: schedules with a violation).
//!
//! `--policy default|report-edits|replay-always|skip-replay` runs every schedule with that
//! resume policy. Under the default policy (drawn per schedule between `default` and
//! `report-edits` when no `--policy` is given) the exit code is 1 when a violation was found.
//! `replay-always` and `skip-replay` are mutants the checks must catch: the run reports how
//! many schedules caught it, and how many of those pass under their default policy (caught
//! by the mutant alone); the exit code is 1 when none are.
//!
//! One 3.8 schedule in three runs on gemini-3.8-live-extended-thinking;
//! one schedule in five runs on two workers and a session store, with worker kills,
//! hand-offs and store partitions (`--no-fleet` leaves them out, and a replay of a seed drawn
//! without them needs the same flag).
//! `--only-extended-thinking` runs every schedule on it (to search its interleavings faster),
//! and a replay of such a seed needs the same flag.
//!
//! `--soak` runs the schedules over real loopback sockets against `gemini-fake` instead (real
//! time, scaled down).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use agent_glue::{ReconnectReason, SessionEvent};
use session_sim::{Interleaving, Policy, Schedule, run, run_traced, shrink};

/// Past failing seeds run every time (beyond seeds `0..F`), so that the breaks they found stay
/// covered; add a seed here when it found a break that was fixed (each is named in
/// `tests/seeds.rs`).
const FIXED_SEEDS: &[u64] = &[202_586_200_992_685];

struct Args {
    schedules: u64,
    start: Option<u64>,
    fixed: u64,
    show: usize,
    threads: usize,
    policy: Option<Policy>,
    seed: Option<u64>,
    keep: Option<Vec<usize>>,
    trace: bool,
    soak: bool,
    concurrency: usize,
}

const USAGE: &str = "usage: session-sim [--schedules N] [--start S] [--fixed F] [--show K] \
    [--policy default|report-edits|replay-always|skip-replay] [--threads T] \
    [--only-extended-thinking] [--no-fleet] \
    | --seed S [--keep i,j] [--policy P] [--trace] [--only-extended-thinking] [--no-fleet] \
    | --soak [--schedules N] [--start S] [--concurrency C] [--seed S]";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        schedules: 1_000,
        start: None,
        fixed: 5_000,
        show: 5,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        policy: None,
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
            "--start" => args.start = Some(number(&value("--start")?)?),
            "--fixed" => args.fixed = number(&value("--fixed")?)?,
            "--show" => args.show = usize::try_from(number(&value("--show")?)?).unwrap_or(5),
            "--threads" => {
                args.threads = usize::try_from(number(&value("--threads")?)?)
                    .unwrap_or(1)
                    .max(1)
            }
            "--policy" => {
                let name = value("--policy")?;
                args.policy = Some(Policy::from_name(&name).ok_or(format!(
                    "--policy {name}: one of default, report-edits, replay-always, skip-replay"
                ))?);
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
            "--only-extended-thinking" => session_sim::draw_only_extended_thinking(true),
            "--no-fleet" => session_sim::draw_fleet(false),
            "--soak" => args.soak = true,
            "--concurrency" => {
                args.concurrency = usize::try_from(number(&value("--concurrency")?)?)
                    .unwrap_or(1)
                    .max(1);
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn number(text: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|e| format!("not a number: {text}: {e}"))
}

/// A fresh start for the seed range: from the OS's randomness (std's hasher keys) and the
/// clock, below 2^48 so that it stays readable and `S + N` cannot overflow.
fn fresh_start() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish() >> 16
}

/// The schedule of `seed`, with the policy `--policy` asks for.
fn schedule(seed: u64, policy: Option<Policy>) -> Schedule {
    let mut schedule = Schedule::generate(seed);
    if let Some(policy) = policy {
        schedule.profile.policy = policy;
    }
    schedule
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
        std::process::exit(replay(seed, args.keep.as_deref(), args.trace, args.policy));
    }
    std::process::exit(sweep(&args));
}

/// What the runs found, merged across threads.
#[derive(Default)]
struct Stats {
    schedules: u64,
    steps: u64,
    max_steps: u64,
    /// Failing seeds, with the class of their first violation.
    failures: Vec<(u64, &'static str)>,
    /// Schedules with at least one violation of each class.
    classes: BTreeMap<&'static str, u64>,
    divergences: u64,
    max_divergences: u64,
    with_divergence: u64,
    /// Divergence events by reason.
    reasons: BTreeMap<String, u64>,
    /// Reconnects (`Reconnecting` events) by reason.
    reconnects: BTreeMap<&'static str, u64>,
    /// Schedules drawing each fault.
    faults: BTreeMap<&'static str, u64>,
    /// Schedules performing each interleaving.
    interleavings: [u64; Interleaving::ALL.len()],
    /// Schedules of each family and with each profile setting.
    profiles: BTreeMap<&'static str, u64>,
    /// Schedules on two workers and a store, takeovers in them, leases their keepers gave up.
    fleets: u64,
    takeovers: u64,
    leases_lost: u64,
}

impl Stats {
    fn add(&mut self, schedule: &Schedule, outcome: &session_sim::Outcome) {
        self.schedules += 1;
        let steps = schedule.steps.len() as u64;
        self.steps += steps;
        self.max_steps = self.max_steps.max(steps);
        if let Some(first) = outcome.violations.first() {
            self.failures.push((schedule.seed, first.class));
        }
        let mut classes: Vec<&'static str> = outcome.violations.iter().map(|v| v.class).collect();
        classes.sort_unstable();
        classes.dedup();
        for class in classes {
            *self.classes.entry(class).or_default() += 1;
        }
        let mut divergences = 0;
        for event in &outcome.events {
            match event {
                SessionEvent::Divergence { why, .. } => {
                    divergences += 1;
                    *self.reasons.entry(format!("{why:?}")).or_default() += 1;
                }
                SessionEvent::Reconnecting { reason } => {
                    *self.reconnects.entry(reconnect_kind(reason)).or_default() += 1;
                }
                _ => {}
            }
        }
        self.divergences += divergences;
        self.max_divergences = self.max_divergences.max(divergences);
        self.with_divergence += u64::from(divergences > 0);
        let mut faults: Vec<&'static str> =
            schedule.steps.iter().filter_map(|s| s.op.fault()).collect();
        faults.sort_unstable();
        faults.dedup();
        for fault in faults {
            *self.faults.entry(fault).or_default() += 1;
        }
        for (k, kind) in Interleaving::ALL.iter().enumerate() {
            if outcome.interleavings.contains(*kind) {
                self.interleavings[k] += 1;
            }
        }
        let p = &schedule.profile;
        let settings = [
            (true, p.family.short_name()),
            (p.vertex, "Vertex"),
            (p.transparent, "transparent resumption"),
            (p.audio, "audio"),
            (p.manual_activity, "manual activity detection"),
            (p.non_blocking, "non-blocking tools"),
            (p.age_limit.is_some(), "connection age limit"),
            (p.compression.is_some(), "context window compression"),
            (p.handle_lag > 0, "handle lag"),
        ];
        for (on, name) in settings {
            if on {
                *self.profiles.entry(name).or_default() += 1;
            }
        }
        self.fleets += u64::from(schedule.profile.fleet.is_some());
        self.takeovers += outcome.takeovers;
        self.leases_lost += outcome.leases_lost;
    }

    fn merge(&mut self, other: Stats) {
        self.schedules += other.schedules;
        self.steps += other.steps;
        self.max_steps = self.max_steps.max(other.max_steps);
        self.failures.extend(other.failures);
        for (class, n) in other.classes {
            *self.classes.entry(class).or_default() += n;
        }
        self.divergences += other.divergences;
        self.max_divergences = self.max_divergences.max(other.max_divergences);
        self.with_divergence += other.with_divergence;
        for (reason, n) in other.reasons {
            *self.reasons.entry(reason).or_default() += n;
        }
        for (reason, n) in other.reconnects {
            *self.reconnects.entry(reason).or_default() += n;
        }
        for (fault, n) in other.faults {
            *self.faults.entry(fault).or_default() += n;
        }
        for (name, n) in other.profiles {
            *self.profiles.entry(name).or_default() += n;
        }
        for (mine, theirs) in self.interleavings.iter_mut().zip(other.interleavings) {
            *mine += theirs;
        }
        self.fleets += other.fleets;
        self.takeovers += other.takeovers;
        self.leases_lost += other.leases_lost;
    }

    fn share(&self, n: u64) -> String {
        format!("{:.1}%", 100.0 * n as f64 / self.schedules.max(1) as f64)
    }

    fn print(&self, seconds: f64, threads: usize) {
        let n = self.schedules.max(1) as f64;
        println!("\nstatistics");
        println!(
            "  {} schedules in {seconds:.1} s: {:.0} schedules/s on {threads} threads",
            self.schedules,
            self.schedules as f64 / seconds.max(1e-9)
        );
        println!(
            "  steps per schedule: mean {:.1}, max {}",
            self.steps as f64 / n,
            self.max_steps
        );
        println!(
            "  divergences per schedule: mean {:.2}, max {} ({} of schedules have one)",
            self.divergences as f64 / n,
            self.max_divergences,
            self.share(self.with_divergence)
        );
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        if !reasons.is_empty() {
            println!("    by reason: {}", reasons.join(", "));
        }
        let reconnects: Vec<String> = self
            .reconnects
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        if !reconnects.is_empty() {
            println!("  reconnects by reason: {}", reconnects.join(", "));
        }
        if self.classes.is_empty() {
            println!("  violations by class: none");
        } else {
            println!("  violations by class (schedules with one):");
            for (class, count) in &self.classes {
                println!("    {class:<28} {count:>7}  {}", self.share(*count));
            }
        }
        println!("  profiles (share of schedules):");
        for (name, count) in &self.profiles {
            println!("    {name:<28} {}", self.share(*count));
        }
        println!("  faults (share of schedules drawing one):");
        for (fault, count) in &self.faults {
            println!("    {fault:<28} {}", self.share(*count));
        }
        println!(
            "  two workers and a store: {} of schedules, {} takeovers, {} leases given up by \
             their keeper",
            self.share(self.fleets),
            self.takeovers,
            self.leases_lost
        );
        println!("  interleavings (share of schedules performing one):");
        for (kind, count) in Interleaving::ALL.iter().zip(self.interleavings) {
            println!("    {:<40} {}", kind.name(), self.share(count));
        }
    }
}

/// A reconnect's reason, for the statistics.
fn reconnect_kind(reason: &ReconnectReason) -> &'static str {
    match reason {
        ReconnectReason::GoAway { .. } => "goAway",
        ReconnectReason::ConnectionLost { .. } => "connection lost",
        ReconnectReason::MessageTooLarge { .. } => "message too large",
        ReconnectReason::ConfigChange => "configuration change",
        ReconnectReason::ConnectionAge { forced: false, .. } => "age (idle)",
        ReconnectReason::ConnectionAge { forced: true, .. } => "age (forced)",
        _ => "other",
    }
}

/// Runs the fresh range and the fixed set; prints failures, statistics and the last line.
fn sweep(args: &Args) -> i32 {
    let start = args.start.unwrap_or_else(fresh_start);
    let end = start.saturating_add(args.schedules);
    println!(
        "seeds {start}..{end} (replay: cargo xtask sim --start {start} --schedules {}{})",
        args.schedules,
        policy_flag(args.policy)
    );
    let mut seeds: Vec<u64> = (start..end).collect();
    let fixed: Vec<u64> = (0..args.fixed)
        .chain(FIXED_SEEDS.iter().copied())
        .filter(|s| !(start..end).contains(s))
        .collect();
    if !fixed.is_empty() {
        println!(
            "and the fixed set: seeds 0..{} and {} past failing seeds",
            args.fixed,
            FIXED_SEEDS.len()
        );
    }
    seeds.extend(fixed);
    seeds.sort_unstable();
    seeds.dedup();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let total = Mutex::new(Stats::default());
    std::thread::scope(|scope| {
        for _ in 0..args.threads {
            scope.spawn(|| {
                let mut stats = Stats::default();
                while let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let schedule = schedule(seed, args.policy);
                    let outcome = run(&schedule);
                    stats.add(&schedule, &outcome);
                }
                if let Ok(mut total) = total.lock() {
                    total.merge(stats);
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut stats = total.into_inner().unwrap_or_default();
    stats.failures.sort_unstable();
    // Shrink and show the first failure of each class, then more up to `--show` (each shrink
    // re-runs the schedule many times).
    let mut shown: Vec<(u64, &'static str)> = Vec::new();
    for (seed, class) in &stats.failures {
        if shown.len() < args.show && !shown.iter().any(|(_, c)| c == class) {
            shown.push((*seed, class));
        }
    }
    for failure in &stats.failures {
        if shown.len() >= args.show {
            break;
        }
        if !shown.contains(failure) {
            shown.push(*failure);
        }
    }
    for (seed, class) in &shown {
        show_shrunk(*seed, class, args.policy);
    }
    if !stats.failures.is_empty() {
        println!("\nfailing seeds (by the class of their first violation):");
        let mut by_class: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (seed, class) in &stats.failures {
            by_class.entry(class).or_default().push(*seed);
        }
        for (class, seeds) in by_class {
            let list: Vec<String> = seeds.iter().take(12).map(ToString::to_string).collect();
            println!("  {class}: {}", list.join(" "));
        }
    }
    stats.print(seconds, args.threads);
    let failed = stats.failures.len() as u64;
    let code = match args.policy {
        _ if MUTANT_BUILD.is_some() => {
            let name = MUTANT_BUILD.unwrap_or_default();
            println!(
                "mutant {name} (a build of the client's code) caught by {failed} of {} \
                 schedules ({})",
                stats.schedules,
                stats.share(failed),
            );
            i32::from(failed == 0)
        }
        Some(policy) if !policy.is_default() => {
            // Caught by the mutant alone: the schedule passes under its default policy.
            let only = stats
                .failures
                .iter()
                .filter(|(seed, _)| run(&Schedule::generate(*seed)).violations.is_empty())
                .count() as u64;
            println!(
                "mutant {} caught by {failed} of {} schedules ({}); {only} ({}) pass under \
                 the default policy",
                policy.name(),
                stats.schedules,
                stats.share(failed),
                stats.share(only),
            );
            i32::from(only == 0)
        }
        _ => i32::from(failed > 0),
    };
    println!("{} schedules, {failed} violations", stats.schedules);
    code
}

/// The mutant of the client's own code this binary was built as, if any
/// (`cargo xtask sim --mutant send-order` builds with `--cfg mutant_send_order`): then a run
/// succeeds only if some schedule catches it.
const MUTANT_BUILD: Option<&str> = if cfg!(mutant_send_order) {
    Some("send-order")
} else {
    None
};

fn policy_flag(policy: Option<Policy>) -> String {
    let extended = if session_sim::draws_only_extended_thinking() {
        " --only-extended-thinking"
    } else {
        ""
    };
    let fleet = if session_sim::draws_fleet() {
        ""
    } else {
        " --no-fleet"
    };
    policy.map_or_else(String::new, |p| format!(" --policy {}", p.name())) + extended + fleet
}

/// Shrinks failing `seed` to the fewest steps that still fail with `class` and prints it.
fn show_shrunk(seed: u64, class: &str, policy: Option<Policy>) {
    let schedule = schedule(seed, policy);
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
        .filter(|v| v.class == class)
        .take(3)
    {
        println!("  {v}");
    }
    let list: Vec<String> = keep.iter().map(ToString::to_string).collect();
    println!(
        "  replay: cargo xtask sim --seed {seed} --keep {}{} --trace",
        list.join(","),
        policy_flag(policy)
    );
}

fn replay(seed: u64, keep: Option<&[usize]>, trace: bool, policy: Option<Policy>) -> i32 {
    let full = schedule(seed, policy);
    let schedule = match keep {
        Some(keep) => full.keep(keep),
        None => full,
    };
    print!("{schedule}");
    let outcome = if trace {
        run_traced(&schedule)
    } else {
        run(&schedule)
    };
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
    let start = args.start.unwrap_or(0);
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (start..start.saturating_add(args.schedules)).collect(),
    };
    let started = Instant::now();
    let policy = args.policy;
    let failures = runtime.block_on(async {
        let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for seed in seeds.iter().copied() {
            let limit = std::sync::Arc::clone(&limit);
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (seed, session_sim::soak_one(&schedule(seed, policy)).await)
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
        print!("{}", schedule(*seed, policy));
        for v in violations.iter().take(3) {
            println!("  {v}");
        }
        println!(
            "  replay: cargo xtask sim --soak --seed {seed}{}",
            policy_flag(policy)
        );
    }
    println!(
        "loopback soak ran in {:.1} s, {} at a time",
        started.elapsed().as_secs_f64(),
        args.concurrency
    );
    println!("{} schedules, {} violations", seeds.len(), failures.len());
    i32::from(!failures.is_empty())
}
