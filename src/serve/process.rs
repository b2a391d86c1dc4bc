//! The process's own figures for /metrics, read from /proc/self at scrape
//! time the way Prometheus' client libraries read them: CPU time and start
//! time from stat (in clock ticks: Linux's USER_HZ is 100 on every
//! architecture it exposes to user space, as those libraries assume too),
//! resident memory and threads from status, descriptors from fd and limits.
//! A figure that cannot be read is 0: a scrape never fails for it.

use std::fs;

use super::exposition::Process;

/// Clock ticks per second in /proc's times (USER_HZ).
const TICKS: u64 = 100;

/// The figures now.
pub fn read() -> Process {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let boot = boot_time().unwrap_or(0);
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    Process {
        cpu_centis: (field(11) + field(12)) * 100 / TICKS,
        start_time_centis: boot * 100 + field(19) * 100 / TICKS,
        resident_bytes: status_field(&status, "VmRSS:") * 1024,
        threads: status_field(&status, "Threads:"),
        open_fds: fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        max_fds: max_fds().unwrap_or(0),
    }
}

/// A number after `key` in /proc/self/status ("VmRSS:   1234 kB").
fn status_field(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// When the machine booted, in seconds since the epoch (/proc/stat btime).
fn boot_time() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// The soft limit on open files ("Max open files  1024  4096  files").
fn max_fds() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_alive() {
        let p = read();
        assert!(p.threads >= 1, "{p:?}");
        assert!(p.resident_bytes > 0, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        assert!(p.max_fds >= p.open_fds, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            * 100;
        let year = 100 * 86_400 * 365;
        assert!(
            p.start_time_centis <= now + 100 && p.start_time_centis > now - year,
            "{p:?}"
        );
    }

    #[test]
    fn status_fields_are_read_by_key() {
        let status = "Name:\tx\nVmRSS:\t   1234 kB\nThreads:\t7\n";
        assert_eq!(status_field(status, "VmRSS:"), 1234);
        assert_eq!(status_field(status, "Threads:"), 7);
        assert_eq!(status_field(status, "Missing:"), 0);
    }
}
