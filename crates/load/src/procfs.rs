//! This process's CPU time, memory and open-file limit, read from `/proc` (Linux).
//!
//! Plain file reads: no `libc`, no `getrusage`. CPU time comes in clock ticks of `USER_HZ`,
//! which Linux fixes at 100 a second for user space on every architecture it reports to
//! (`/proc/<pid>/stat` is in `USER_HZ`, whatever the kernel's internal `HZ`): 10 ms resolution,
//! a fraction of a percent of a busy multi-second run, but a third of what one real-time
//! session uses in 10 s. So a window is also measured per thread in nanoseconds
//! (`/proc/self/task/<tid>/schedstat`, the time each thread ran), where the kernel keeps it:
//! [`CpuSample::since`] uses that when both ends have it.

use std::time::Duration;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time a process has used, over all its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTime {
    /// Time in user mode.
    pub user: Duration,
    /// Time in the kernel on the process's behalf (system calls, mostly).
    pub sys: Duration,
    /// The same total to the nanosecond, from the threads' run times, when known.
    pub exact: Option<Duration>,
}

impl CpuTime {
    /// User plus system time (to the nanosecond when known, else in 10 ms ticks).
    #[must_use]
    pub fn total(&self) -> Duration {
        self.exact.unwrap_or(self.user + self.sys)
    }

    /// The time used since `earlier`.
    #[must_use]
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
            exact: None,
        }
    }
}

/// The process's CPU time at one moment, with each thread's run time in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    ticks: CpuTime,
    /// `(tid, ns run)` of every thread, when `/proc/self/task/*/schedstat` has it.
    threads: Option<std::collections::BTreeMap<u64, u64>>,
}

impl CpuSample {
    /// Now.
    #[must_use]
    pub fn now() -> CpuSample {
        CpuSample {
            ticks: cpu_time().unwrap_or_default(),
            threads: thread_run_times(),
        }
    }

    /// The CPU time used since `earlier`: per thread in nanoseconds (a thread that started
    /// meanwhile counts from zero; one that ended meanwhile loses its time since `earlier`,
    /// which the runs here do not do while measured), else in ticks.
    #[must_use]
    pub fn since(&self, earlier: &CpuSample) -> CpuTime {
        let mut time = self.ticks.since(earlier.ticks);
        if let (Some(now), Some(then)) = (&self.threads, &earlier.threads) {
            let ns: u64 = now
                .iter()
                .map(|(tid, ns)| ns.saturating_sub(then.get(tid).copied().unwrap_or(0)))
                .sum();
            time.exact = Some(Duration::from_nanos(ns));
        }
        time
    }
}

/// Each thread's run time in nanoseconds (the first field of
/// `/proc/self/task/<tid>/schedstat`); `None` when the kernel does not keep it (it reads 0
/// for every thread then).
fn thread_run_times() -> Option<std::collections::BTreeMap<u64, u64>> {
    let mut threads = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        // A thread that ended since the directory was listed is skipped.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        let ns = stat.split_whitespace().next()?.parse::<u64>().ok()?;
        threads.insert(tid, ns);
    }
    (threads.values().any(|ns| *ns > 0)).then_some(threads)
}

/// This process's CPU time (`utime` and `stime` of `/proc/self/stat`).
///
/// # Errors
/// When `/proc/self/stat` cannot be read or parsed.
pub fn cpu_time() -> Result<CpuTime, String> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| format!("reading /proc/self/stat: {e}"))?;
    parse_stat(&stat)
}

/// Parses `utime` and `stime` (fields 14 and 15) from a `/proc/<pid>/stat` line. The command
/// name (field 2) is in parentheses and may hold spaces, so fields are counted after the last
/// `)`.
fn parse_stat(stat: &str) -> Result<CpuTime, String> {
    let after_name = stat
        .rfind(')')
        .map(|at| &stat[at + 1..])
        .ok_or("no `)` in /proc/self/stat")?;
    // Field 3 (state) is the first after the name: utime is field 14, 11 further on.
    let mut fields = after_name.split_whitespace().skip(11);
    let mut ticks = |name: &str| {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("no {name} in /proc/self/stat"))
    };
    let user = ticks("utime")?;
    let sys = ticks("stime")?;
    let to_duration = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
    Ok(CpuTime {
        user: to_duration(user),
        sys: to_duration(sys),
        exact: None,
    })
}

/// This process's resident memory in KiB (`VmRSS` of `/proc/self/status`).
///
/// # Errors
/// When `/proc/self/status` cannot be read or has no `VmRSS` line.
pub fn rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    status_field_kib(&status, "VmRSS:").ok_or_else(|| "no VmRSS in /proc/self/status".to_owned())
}

fn status_field_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The soft limit on open files (`Max open files` of `/proc/self/limits`); `None` when
/// unlimited or unreadable.
#[must_use]
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let line = "4242 (load client) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 3 0";
        let cpu = parse_stat(line).expect("a valid stat line");
        assert_eq!(cpu.user, Duration::from_millis(2500));
        assert_eq!(cpu.sys, Duration::from_millis(370));
        assert_eq!(cpu.total(), Duration::from_millis(2870));
        assert!(parse_stat("no name here").is_err());
    }

    #[test]
    fn status_and_proc_files_of_this_process() {
        let status = "Name:\tload\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(status_field_kib(status, "VmRSS:"), Some(12345));
        assert!(rss_kib().is_ok_and(|kib| kib > 0));
        assert!(cpu_time().is_ok());
    }

    #[test]
    fn a_window_is_measured_to_the_nanosecond_where_the_kernel_keeps_it() {
        let before = CpuSample::now();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let used = CpuSample::now().since(&before);
        if let Some(exact) = used.exact {
            assert!(exact > Duration::ZERO, "{used:?}");
        }
    }
}
