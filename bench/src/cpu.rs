//! CPU time of a process, read from `/proc/<pid>/stat` (Linux; no unsafe code).
//!
//! The generator reports its own CPU per operation so that a result says who was
//! the bottleneck: a generator that used most of the machine's cores measured
//! itself, not the target.

use std::time::Duration;

/// Linux reports `utime`/`stime` in USER_HZ ticks, which is 100 per second on every
/// architecture Linux exposes to user space (the kernel converts from its own HZ).
const USER_HZ: u64 = 100;

/// User plus system CPU time consumed so far by `pid` (this process when `None`),
/// or `None` when `/proc` cannot tell (not Linux, process gone).
pub fn process_cpu(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    parse_stat_cpu(&stat)
}

/// Parses utime + stime out of one `/proc/<pid>/stat` line. The command name (field
/// 2) is in parentheses and may contain spaces, so fields are counted from the last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After `)`: field 3 (state) is index 0, so utime (14) is index 11, stime (15) index 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// Number of CPUs this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_the_name() {
        let line = "1234 (my (odd) prog) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1";
        assert_eq!(parse_stat_cpu(line), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn own_cpu_is_readable() {
        assert!(process_cpu(None).is_some());
    }
}
