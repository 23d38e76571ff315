//! Benchmarks of the STEP engine, run in process by `step bench engine`.
//!
//! * [`corpus`] signs many valid proofs beforehand (many accounts, spaced so
//!   that the speed gate and the moratorium pass them).
//! * [`engine`] runs the whole [`step_engine::pipeline`] from body bytes to
//!   verdicts for a while, and times the bare hash + recover + compare
//!   ceiling on the same proofs with the same number of threads.

pub mod corpus;
pub mod engine;

/// A line of `/proc/self/status` in bytes (`VmHWM`, `VmRSS`); `None` where
/// there is no such file (not Linux).
pub fn proc_status_bytes(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
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
