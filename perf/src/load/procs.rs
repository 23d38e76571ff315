//! The validators a load run started (`step bench --devnet`, through the
//! `step_devnet` supervisor), and their memory and CPU read from `/proc`.

/// A validator whose memory and CPU the run reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    pub index: usize,
    pub http: String,
    pub pid: u32,
}

/// Memory and CPU of a process from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// `VmHWM`: peak resident set.
    pub peak_rss_bytes: Option<u64>,
    /// `VmRSS`.
    pub rss_bytes: Option<u64>,
    /// utime + stime, in seconds (10 ms resolution).
    pub cpu_s: Option<f64>,
}

impl ProcSample {
    pub fn of(pid: u32) -> ProcSample {
        ProcSample {
            peak_rss_bytes: crate::proc_status_bytes_of(&pid.to_string(), "VmHWM"),
            rss_bytes: crate::proc_status_bytes_of(&pid.to_string(), "VmRSS"),
            cpu_s: crate::process_cpu_seconds_of(&pid.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_sample() {
        let s = ProcSample::of(std::process::id());
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(s.peak_rss_bytes.unwrap_or(0) > 0);
            assert!(s.cpu_s.is_some());
        }
    }
}
