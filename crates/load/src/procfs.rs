//! This process's CPU time, memory and open-file limit, read from `/proc` (Linux).
//!
//! Plain file reads: no `libc`, no `getrusage`. CPU time comes in clock ticks of `USER_HZ`,
//! which Linux fixes at 100 a second for user space on every architecture it reports to
//! (`/proc/<pid>/stat` is in `USER_HZ`, whatever the kernel's internal `HZ`): 10 ms resolution,
//! a fraction of a percent of a multi-second run.

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
}

impl CpuTime {
    /// User plus system time.
    #[must_use]
    pub fn total(&self) -> Duration {
        self.user + self.sys
    }

    /// The time used since `earlier`.
    #[must_use]
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
        }
    }
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
}
