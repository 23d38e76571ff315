//! CPU time from `getrusage` (µs resolution) and the one-second calibration
//! of bare libsecp256k1 recovery that `step bench` divides the validators'
//! CPU per proof by.
//!
//! `/proc/<pid>/stat` counts in 10 ms ticks; that is fine for validators
//! that burn seconds, too coarse for a generator that should use a few
//! hundred milliseconds per run. `getrusage` counts in microseconds.

use crate::corpus::Corpus;
use nix::sys::resource::{getrusage, UsageWho};
use std::time::{Duration, Instant};
use step_engine::crypto::CheckedSignature;
use step_engine::message::eip191_digest;
use step_engine::Backend;

/// Why a CPU time could not be read.
#[derive(Debug, thiserror::Error)]
#[error("getrusage({who}) failed: {source}")]
pub struct CpuError {
    who: &'static str,
    source: nix::Error,
}

fn seconds(who: UsageWho, name: &'static str) -> Result<f64, CpuError> {
    let u = getrusage(who).map_err(|source| CpuError { who: name, source })?;
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(us(u.user_time()) + us(u.system_time()))
}

/// User + system CPU seconds of this whole process so far (every thread,
/// live or exited; not its children).
pub fn process_cpu_s() -> Result<f64, CpuError> {
    seconds(UsageWho::RUSAGE_SELF, "RUSAGE_SELF")
}

/// User + system CPU seconds of the calling thread so far.
pub fn thread_cpu_s() -> Result<f64, CpuError> {
    seconds(UsageWho::RUSAGE_THREAD, "RUSAGE_THREAD")
}

/// What one calibration of bare recovery measured (one thread).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecoveryCalibration {
    pub recoveries: u64,
    pub wall_s: f64,
    /// The calibrating thread's CPU seconds over those recoveries.
    pub cpu_s: f64,
}

impl RecoveryCalibration {
    /// CPU µs per recovery: what a validator's CPU per proof is divided by.
    pub fn cpu_us_per_recovery(&self) -> f64 {
        self.cpu_s * 1e6 / self.recoveries.max(1) as f64
    }

    pub fn wall_us_per_recovery(&self) -> f64 {
        self.wall_s * 1e6 / self.recoveries.max(1) as f64
    }
}

/// Why the calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("no proofs to recover")]
    Empty,
    #[error("corpus proof {index} does not recover: {reason}")]
    BadProof { index: usize, reason: String },
    #[error(transparent)]
    Cpu(#[from] CpuError),
}

/// Recovers the public keys of `corpus`'s proofs (digests computed
/// beforehand, so only libsecp256k1's recovery is timed) on this thread for
/// `duration`.
pub fn calibrate_recovery(
    corpus: &Corpus,
    duration: Duration,
) -> Result<RecoveryCalibration, CalibrationError> {
    let items: Vec<([u8; 32], CheckedSignature)> = (0..corpus.len().min(256))
        .map(|i| {
            let (msg, sig, _) = corpus.ceiling_item(i);
            (eip191_digest(msg), *sig)
        })
        .collect();
    if items.is_empty() {
        return Err(CalibrationError::Empty);
    }
    let backend = Backend::default();
    let cpu0 = thread_cpu_s()?;
    let start = Instant::now();
    let end = start + duration;
    let mut recoveries = 0u64;
    while Instant::now() < end {
        for (index, (digest, sig)) in items.iter().enumerate() {
            backend
                .recover(digest, sig)
                .map_err(|e| CalibrationError::BadProof {
                    index,
                    reason: e.to_string(),
                })?;
        }
        recoveries += items.len() as u64;
    }
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = thread_cpu_s()? - cpu0;
    Ok(RecoveryCalibration {
        recoveries,
        wall_s,
        cpu_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_grow_with_work() -> Result<(), CpuError> {
        let (p0, t0) = (process_cpu_s()?, thread_cpu_s()?);
        // Spin until this thread has used 20 ms of CPU (however busy the
        // machine), for at most 20 s of wall time.
        let start = Instant::now();
        let mut x = 0u64;
        while thread_cpu_s()? - t0 < 0.02 && start.elapsed() < Duration::from_secs(20) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let (p1, t1) = (process_cpu_s()?, thread_cpu_s()?);
        assert!(t1 - t0 >= 0.02, "thread CPU {t0} → {t1}");
        // The process counts this thread's time too (and its other threads').
        assert!(p1 - p0 >= t1 - t0 - 1e-3, "process {p0} → {p1}");
        Ok(())
    }

    #[test]
    fn calibration_counts_recoveries() -> Result<(), CalibrationError> {
        let corpus = crate::corpus::sign("calibration-test", 32, 8, 1, &|_| {});
        let c = calibrate_recovery(&corpus, Duration::from_millis(50))?;
        assert!(c.recoveries >= 32 && c.recoveries % 32 == 0, "{c:?}");
        assert!(c.cpu_s > 0.0 && c.wall_s >= 0.05, "{c:?}");
        // A recovery takes tens of µs, not nanoseconds or milliseconds.
        let us = c.cpu_us_per_recovery();
        assert!((1.0..5000.0).contains(&us), "{us} µs");
        assert!(matches!(
            calibrate_recovery(&crate::corpus::sign("e", 0, 1, 1, &|_| {}), Duration::ZERO),
            Err(CalibrationError::Empty)
        ));
        Ok(())
    }
}
