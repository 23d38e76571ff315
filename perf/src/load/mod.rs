//! `step bench --rate R`: an open-loop load generator for STEP nodes.
//!
//! 1. [`prepare`]: the proofs are signed beforehand on all cores (valid ones
//!    spaced so the speed gate and moratorium pass them, and a share of
//!    each kind of bad proof), and cached on disk by their parameters
//!    ([`cache`]).
//! 2. [`schedule`]: request `j` is due at `j / rate`; a sender thread hands
//!    every due request to its target's bounded queue, round-robin over the
//!    targets, or counts it as dropped when the queue is full. It never
//!    waits for responses, so the offered load does not slow down.
//! 3. [`client`]: each target has `connections` keep-alive HTTP/1.1
//!    connections taking requests from its queue (`POST
//!    /proof/submit?wait=false`, or `POST /proofs` with `batch` proofs).
//! 4. [`events`] and [`finality`]: every target's `GET /events` stream says
//!    which proofs were finalized (or rejected at execution), and when.
//! 5. [`latency`] and [`report`]: HDR histograms measured from each
//!    request's *scheduled* time (coordinated-omission corrected), counts,
//!    rates, and the validators' memory and CPU when the run started them
//!    ([`procs`]).

pub mod cache;
pub mod client;
pub mod events;
pub mod finality;
pub mod html;
pub mod latency;
pub mod prepare;
pub mod procs;
pub mod report;
mod runner;
pub mod schedule;
pub mod wire;

pub use runner::{prepare_proofs, run};

use prepare::Params;
use procs::Validator;
use schedule::Phase;
use std::path::PathBuf;
use std::time::Duration;

/// Why a load run could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("`{url}` is not a target URL (expected http://host:port)")]
    BadTarget { url: String },
    #[error("invalid option `{option}`: {reason}")]
    BadOption {
        option: &'static str,
        reason: String,
    },
    #[error("cannot parse duration `{text}` (expected e.g. 60s, 500ms, 2m)")]
    BadDuration { text: String },
    #[error("proof cache {path}: {source}")]
    Cache {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {source}")]
    Runtime { source: std::io::Error },
    #[error("the generator's CPU time: {0}")]
    Cpu(#[from] crate::cpu::CpuError),
    #[error("the recovery calibration: {0}")]
    Calibration(#[from] crate::cpu::CalibrationError),
}

/// Parses `60s`, `500ms`, `2m`, `1.5s`, `1h`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, LoadError> {
    let t = text.trim();
    let bad = || LoadError::BadDuration {
        text: text.to_owned(),
    };
    let (num, unit_s) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let x: f64 = num.trim().parse().map_err(|_| bad())?;
    if !x.is_finite() || x < 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(x * unit_s).map_err(|_| bad())
}

/// Everything a load run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URLs (`http://host:port`); requests go round-robin.
    pub targets: Vec<String>,
    /// Proofs per second offered.
    pub rate: f64,
    /// The measured window.
    pub duration: Duration,
    /// Sent at the same rate before the measured window; reported apart.
    pub warmup: Duration,
    /// Sent after the measured window at `cooldown_rate`; reported apart
    /// (does the network come back after a burst?).
    pub cooldown: Duration,
    /// Proofs/s during the cool-down (default: a tenth of `rate`).
    pub cooldown_rate: Option<f64>,
    /// Proofs per request: 1 = `POST /proof/submit?wait=false`, more =
    /// `POST /proofs` with a JSON array.
    pub batch: usize,
    /// Keep-alive connections per target.
    pub connections: usize,
    /// Most requests a connection writes before reading their answers
    /// (HTTP/1.1 pipelining; 1: one at a time).
    pub pipeline: usize,
    /// Requests that may wait for a connection, per target; an arrival
    /// that finds the queue full is dropped (and counted).
    pub queue: usize,
    pub invalid_ratio: f64,
    /// Signing accounts; default max(1000, 2 × rate).
    pub accounts: Option<u64>,
    /// Seeds the keys and nonces: use a new one for each run against a
    /// network that keeps its state.
    pub seed: String,
    /// Where prepared proofs are cached; `None`: no cache.
    pub cache_dir: Option<PathBuf>,
    pub request_timeout: Duration,
    /// How long to wait after the last send for accepted proofs to be final.
    pub finality_timeout: Duration,
    pub track_finality: bool,
    /// Progress bars on stderr.
    pub progress: bool,
    /// Signing threads (default: the number of cores).
    pub threads: Option<usize>,
    /// Validators this run started (their memory and CPU are reported).
    pub validators: Vec<Validator>,
    /// After the load, time bare recovery for a second (the report's
    /// CPU-per-proof ratio).
    pub calibrate: bool,
}

impl Options {
    /// Defaults for everything but the targets, rate and duration.
    pub fn new(targets: Vec<String>, rate: f64, duration: Duration) -> Options {
        Options {
            targets,
            rate,
            duration,
            warmup: Duration::ZERO,
            cooldown: Duration::ZERO,
            cooldown_rate: None,
            batch: 1,
            connections: 64,
            pipeline: 8,
            queue: 0,
            invalid_ratio: 0.0,
            accounts: None,
            seed: "step-bench".into(),
            cache_dir: None,
            request_timeout: Duration::from_secs(30),
            finality_timeout: Duration::from_secs(30),
            track_finality: true,
            progress: false,
            threads: None,
            validators: Vec::new(),
            calibrate: true,
        }
    }

    fn check(&self) -> Result<(), LoadError> {
        let bad = |option, reason: &str| {
            Err(LoadError::BadOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("--rate", "must be a positive number of proofs/s");
        }
        if self.duration.is_zero() {
            return bad("--duration", "must be positive");
        }
        if self.targets.is_empty() {
            return bad("--target", "give at least one target (or --devnet N)");
        }
        if self
            .cooldown_rate
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            return bad("--cooldown-rate", "must be a positive number of proofs/s");
        }
        if !(0.0..=1.0).contains(&self.invalid_ratio) {
            return bad("--invalid-ratio", "must be within 0..=1");
        }
        if self.batch == 0 || self.connections == 0 || self.pipeline == 0 {
            return bad("--batch/--connections/--pipeline", "must be at least 1");
        }
        if self.accounts == Some(0) {
            return bad("--accounts", "must be at least 1");
        }
        Ok(())
    }

    /// The prepared set's parameters.
    pub fn params(&self) -> Params {
        Params {
            seed: self.seed.clone(),
            accounts: self
                .accounts
                .unwrap_or_else(|| ((2.0 * self.rate) as u64).clamp(1000, 1_000_000)),
            invalid_ppm: (self.invalid_ratio * 1e6).round() as u64,
        }
    }
}

/// One phase of the run: `requests` at `rate_per_s` requests/s, from
/// `start_ns` after the schedule's start; request numbers from `first`.
#[derive(Debug, Clone, Copy)]
pub struct PhasePlan {
    pub phase: Phase,
    pub rate_per_s: f64,
    pub requests: u64,
    pub first: u64,
    pub start_ns: u64,
}

impl Options {
    /// Warm-up, measured window and cool-down, back to back (empty phases left out).
    pub fn plans(&self) -> Vec<PhasePlan> {
        let per = self.batch.max(1) as f64;
        let cool_rate = self.cooldown_rate.unwrap_or(self.rate / 10.0);
        let mut out: Vec<PhasePlan> = Vec::new();
        let (mut first, mut start_ns) = (0u64, 0u64);
        for (phase, rate, d) in [
            (Phase::Warmup, self.rate, self.warmup),
            (Phase::Measured, self.rate, self.duration),
            (Phase::Cooldown, cool_rate, self.cooldown),
        ] {
            let rate_per_s = rate / per;
            let requests = schedule::requests_for(d.as_secs_f64(), rate_per_s);
            if requests > 0 {
                out.push(PhasePlan {
                    phase,
                    rate_per_s,
                    requests,
                    first,
                    start_ns,
                });
            }
            first += requests;
            start_ns += d.as_nanos() as u64;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).ok();
        assert_eq!(d("60s"), Some(Duration::from_secs(60)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("2m"), Some(Duration::from_secs(120)));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("3"), Some(Duration::from_secs(3)));
        assert_eq!(d("1h"), Some(Duration::from_secs(3600)));
        assert!(d("fast").is_none());
        assert!(d("-1s").is_none());
    }

    #[test]
    fn phases_back_to_back() {
        let mut o = Options::new(vec![], 100.0, Duration::from_secs(2));
        o.warmup = Duration::from_secs(1);
        o.cooldown = Duration::from_millis(500);
        o.cooldown_rate = Some(20.0);
        o.batch = 10;
        let p = o.plans();
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.phase, p.rate_per_s, p.requests, p.first, p.start_ns))
            .collect();
        assert_eq!(
            got,
            vec![
                (Phase::Warmup, 10.0, 10, 0, 0),
                (Phase::Measured, 10.0, 20, 10, 1_000_000_000),
                (Phase::Cooldown, 2.0, 1, 30, 3_000_000_000),
            ]
        );
        o.warmup = Duration::ZERO;
        o.cooldown = Duration::ZERO;
        assert_eq!(o.plans().len(), 1);
    }

    #[test]
    fn options_are_checked() {
        let ok = Options::new(
            vec!["http://127.0.0.1:1".into()],
            10.0,
            Duration::from_secs(1),
        );
        assert!(ok.check().is_ok());
        assert_eq!(ok.params().accounts, 1000);
        let mut bad = ok.clone();
        bad.rate = 0.0;
        assert!(bad.check().is_err());
        let mut bad = ok.clone();
        bad.targets.clear();
        assert!(bad.check().is_err());
        let mut bad = ok;
        bad.invalid_ratio = 1.5;
        assert!(bad.check().is_err());
    }
}
