//! Benchmarks of the STEP engine, run in process by `step bench engine`.
//!
//! * [`corpus`] signs many valid proofs beforehand (many accounts, spaced so
//!   that the speed gate and the moratorium pass them).
//! * [`engine`] runs the whole [`step_engine::pipeline`] from body bytes to
//!   verdicts for a while, and times the bare hash + recover + compare
//!   ceiling on the same proofs with the same number of threads.
//! * [`load`] is `step bench --rate R`: an open-loop HTTP load generator
//!   that follows each proof to finality (issue #7).

pub mod corpus;
pub mod cpu;
pub mod engine;
pub mod load;
pub mod parts;

/// A line of `/proc/self/status` in bytes (`VmHWM`, `VmRSS`); `None` where
/// there is no such file (not Linux).
pub fn proc_status_bytes(key: &str) -> Option<u64> {
    proc_status_bytes_of("self", key)
}

/// A line of `/proc/<pid>/status` in bytes; `None` if the process or the
/// line is not there.
pub fn proc_status_bytes_of(pid: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s
        .lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    let kb: u64 = line[key.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// CPU time used so far by the whole process (every thread, live or exited),
/// in seconds, from `/proc/self/stat` (utime + stime, in USER_HZ = 100 ticks:
/// 10 ms resolution). `None` where there is no such file.
///
/// Wall-clock rates on a shared machine swing with other people's load; the
/// proofs per CPU-second of this process do much less.
pub fn process_cpu_seconds() -> Option<f64> {
    process_cpu_seconds_of("self")
}

/// CPU seconds used so far by process `pid` (utime + stime; its exited
/// children are not counted).
pub fn process_cpu_seconds_of(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_ticks(&s)? as f64 / 100.0)
}

/// utime + stime of a `/proc/…/stat` line, in USER_HZ ticks.
fn stat_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut f = rest.split_whitespace();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds used so far by this process's live threads whose name starts
/// with `prefix` (from `/proc/self/task/*/stat`, 10 ms resolution).
pub fn threads_cpu_seconds(prefix: &str) -> Option<f64> {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        // A thread that ended since the listing has no files: skip it.
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        ticks += stat_ticks(&std::fs::read_to_string(task.path().join("stat")).ok()?)?;
    }
    Some(ticks as f64 / 100.0)
}

/// The 1-minute load average from `/proc/loadavg` (how busy the machine was).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_ticks_skip_the_command_name() {
        // A command name with spaces and parentheses; utime 7, stime 5.
        let line = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 7 5 0 0";
        assert_eq!(super::stat_ticks(line), Some(12));
        assert_eq!(super::stat_ticks("42 (x) S 1 2"), None);
    }
}
