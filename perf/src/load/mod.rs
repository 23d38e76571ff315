//! `step bench --rate R`: an open-loop load generator for STEP nodes.
//!
//! 1. [`prepare`]: the proofs are signed beforehand on all cores (valid ones
//!    spaced so the speed gate and moratorium pass them, and a share of
//!    each kind of bad proof), and cached on disk by their parameters.
//! 2. [`schedule`]: request `j` is due at `j / rate`; a sender thread hands
//!    every due request to its target's bounded queue, round-robin over the
//!    targets, or counts it as dropped when the queue is full. It never
//!    waits for responses, so the offered load does not slow down.
//! 3. [`client`]: each target has `connections` keep-alive HTTP/1.1
//!    connections taking requests from its queue (`POST
//!    /proof/submit?wait=false`, or `POST /proofs` with `batch` proofs).
//! 4. [`finality`]: every target's `GET /events` stream says which proofs
//!    were finalized, and when.
//! 5. [`latency`] and [`report`]: HDR histograms measured from each
//!    request's *scheduled* time (coordinated-omission corrected), counts,
//!    rates, and the validators' memory and CPU when the run started them
//!    ([`devnet`]).

pub mod client;
pub mod devnet;
pub mod finality;
pub mod latency;
pub mod prepare;
pub mod report;
pub mod schedule;

use client::{Job, Live, Shared, Tally, Target};
use devnet::{ProcSample, Validator};
use finality::Tracker;
use indicatif::{ProgressBar, ProgressStyle};
use prepare::{Params, Prepared};
use report::{Report, TimelinePoint, ValidatorReport};
use schedule::{Phase, Schedule};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    #[error("cannot start the sender thread: {source}")]
    Thread { source: std::io::Error },
    #[error("devnet: {reason}")]
    Devnet { reason: String },
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
        if self.batch == 0 || self.connections == 0 {
            return bad("--batch/--connections", "must be at least 1");
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

/// Signs (or loads from the cache) the first `n` proofs of `params`.
/// Returns the set and whether it came from the cache.
pub fn prepare_proofs(
    params: &Params,
    n: usize,
    cache_dir: Option<&std::path::Path>,
    threads: usize,
    progress: bool,
) -> Result<(Prepared, bool), LoadError> {
    let path = cache_dir.map(|d| prepare::cache_path(d, params));
    if let Some(p) = path.as_deref() {
        if let Some(set) = prepare::load(p, n) {
            return Ok((set, true));
        }
    }
    let bar = if progress {
        ProgressBar::new(n as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("signing {pos}/{len} proofs {bar:40} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let set = prepare::sign_all(params, n, threads, &|k| bar.inc(k));
    bar.finish_and_clear();
    if let Some(p) = path.as_deref() {
        prepare::save(p, &set)?;
    }
    Ok((set, false))
}

/// Runs the load: prepares the proofs, sends them, waits for finality and
/// reports. Blocks; runs its own async runtime.
pub fn run(o: &Options) -> Result<Report, LoadError> {
    o.check()?;
    let targets = o
        .targets
        .iter()
        .map(|t| Target::parse(t).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let plans = o.plans();
    let total_requests: u64 = plans.iter().map(|p| p.requests).sum();
    let n = (total_requests * o.batch as u64) as usize;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut params = o.params();
    // No more accounts than proofs (the slots' references depend on it).
    params.accounts = params.accounts.clamp(1, n.max(1) as u64);
    let t = Instant::now();
    let (prepared, cached) = prepare_proofs(
        &params,
        n,
        o.cache_dir.as_deref(),
        o.threads.unwrap_or(cores),
        o.progress,
    )?;
    let prepare_s = t.elapsed().as_secs_f64();
    if o.progress {
        eprintln!(
            "{} {} proofs ({:.0} MiB, {} accounts, invalid ratio {}) in {prepare_s:.1} s",
            if cached { "loaded" } else { "signed" },
            prepared.len(),
            prepared.body_bytes() as f64 / (1024.0 * 1024.0),
            params.accounts,
            o.invalid_ratio
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.max(2))
        .enable_all()
        .build()
        .map_err(|source| LoadError::Runtime { source })?;
    let mut report = rt.block_on(drive(o, targets, Arc::new(prepared), &plans, &params))?;
    report.prepared_proofs = n as u64;
    report.prepared_from_cache = cached;
    report.prepare_s = prepare_s;
    report.accounts = params.accounts;
    Ok(report)
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

/// What the sender thread counted.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    dropped: u64,
    dropped_warmup: u64,
    dropped_cooldown: u64,
}

/// The sender: hands every due request to its target's queue.
fn send_loop(
    plans: &[PhasePlan],
    queues: Vec<async_channel::Sender<Job>>,
    per_request: u64,
    (start, offset_ns): (Instant, u64),
    live: &Live,
) -> Sent {
    let mut out = Sent::default();
    let targets = queues.len() as u64;
    for plan in plans {
        let mut sched = Schedule::new(plan.rate_per_s, plan.requests);
        let phase_offset_ns = offset_ns + plan.start_ns;
        let phase_start = start + Duration::from_nanos(plan.start_ns);
        while let Some(next) = sched.next_due_ns() {
            // Never early: before the phase starts there is no elapsed time.
            let at = Instant::now();
            let Some(elapsed) = at.checked_duration_since(phase_start) else {
                std::thread::sleep((phase_start - at).min(Duration::from_millis(2)));
                continue;
            };
            let now = elapsed.as_nanos() as u64;
            if now < next {
                std::thread::sleep(Duration::from_nanos((next - now).min(2_000_000)));
                continue;
            }
            for j in sched.due_by(now) {
                let request = plan.first + j;
                let job = Job {
                    first: request * per_request,
                    count: per_request as u32,
                    scheduled_ns: phase_offset_ns + sched.due_ns(j),
                    phase: plan.phase,
                };
                if queues[(request % targets) as usize].try_send(job).is_err() {
                    live.dropped.fetch_add(per_request, Ordering::Relaxed);
                    *match plan.phase {
                        Phase::Warmup => &mut out.dropped_warmup,
                        Phase::Measured => &mut out.dropped,
                        Phase::Cooldown => &mut out.dropped_cooldown,
                    } += per_request;
                }
            }
        }
    }
    out
}

async fn drive(
    o: &Options,
    targets: Vec<Arc<Target>>,
    prepared: Arc<Prepared>,
    plans: &[PhasePlan],
    params: &Params,
) -> Result<Report, LoadError> {
    let live = Arc::new(Live::default());
    let tracker = Arc::new(Tracker::new());
    // Every time is in ns after `epoch`; the schedule starts at `offset`,
    // once the `/events` subscriptions are in place.
    let shared = Arc::new(Shared {
        accepted: client::AcceptedSet::new(prepared.len()),
        params: params.clone(),
        prepared,
        tracker: Arc::clone(&tracker),
        live: Arc::clone(&live),
        epoch: Instant::now(),
        batch: o.batch > 1,
        request_timeout: o.request_timeout,
    });
    let mut followers = Vec::new();
    let mut events_errors = Vec::new();
    if o.track_finality {
        let mut readies = Vec::new();
        for t in &targets {
            let (tx, rx) = tokio::sync::oneshot::channel();
            followers.push(tokio::spawn(client::follow_events(
                Arc::clone(t),
                Arc::clone(&shared),
                tx,
            )));
            readies.push((t.url.clone(), rx));
        }
        for (url, rx) in readies {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => events_errors.push(format!("{url}: {e}")),
                Err(_) => events_errors.push(format!("{url}: follower stopped")),
            }
        }
    }
    let finality_tracked = o.track_finality && events_errors.len() < targets.len();

    let generator_cpu_before = crate::process_cpu_seconds();
    let validators_before: Vec<ProcSample> =
        o.validators.iter().map(|v| ProcSample::of(v.pid)).collect();

    // Connection pools.
    let request_rate = o.rate / o.batch as f64;
    let queue = if o.queue > 0 {
        o.queue
    } else {
        // A tenth of a second of arrivals per target, at least 2 per connection.
        ((request_rate / targets.len() as f64 * 0.1) as usize).max(2 * o.connections)
    };
    let mut queues = Vec::new();
    let mut workers = Vec::new();
    for t in &targets {
        let (tx, rx) = async_channel::bounded::<Job>(queue);
        queues.push(tx);
        for _ in 0..o.connections {
            workers.push(tokio::spawn(client::worker(
                Arc::clone(t),
                rx.clone(),
                Arc::clone(&shared),
            )));
        }
    }

    // Start in 50 ms (the connection workers are waiting), then send.
    let offset_ns = shared.now_ns() + 50_000_000;
    let start = shared.epoch + Duration::from_nanos(offset_ns);
    tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
    let plans_owned = plans.to_vec();
    let per_request = o.batch as u64;
    let sender_live = Arc::clone(&live);
    let sender = std::thread::Builder::new()
        .name("step-bench-sender".into())
        .spawn(move || {
            send_loop(
                &plans_owned,
                queues,
                per_request,
                (start, offset_ns),
                &sender_live,
            )
        })
        .map_err(|source| LoadError::Thread { source })?;

    let total_s = (o.warmup + o.duration + o.cooldown).as_secs_f64();
    let bar = if o.progress {
        ProgressBar::new((total_s * 10.0).ceil() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("{} proofs/s", o.rate));
    let mut timeline = Vec::new();
    let mut next_point = start + Duration::from_secs(1);
    let mut sample = |timeline: &mut Vec<TimelinePoint>, last: bool| {
        let now = Instant::now();
        if now < next_point && !last {
            return;
        }
        next_point += Duration::from_secs(1);
        let (fin, fin_w) = tracker.finalized();
        let rss: Option<u64> = if o.validators.is_empty() {
            None
        } else {
            o.validators
                .iter()
                .map(|v| ProcSample::of(v.pid).rss_bytes)
                .sum()
        };
        timeline.push(TimelinePoint {
            t_s: now.saturating_duration_since(start).as_secs_f64(),
            sent: live.sent.load(Ordering::Relaxed),
            accepted: live.accepted.load(Ordering::Relaxed),
            rejected: live.rejected.load(Ordering::Relaxed),
            errors: live.errors.load(Ordering::Relaxed),
            dropped: live.dropped.load(Ordering::Relaxed),
            finalized: fin + fin_w,
            validators_rss_bytes: rss,
        });
    };
    let progress = |phase: &str| {
        let (fin, fin_w) = tracker.finalized();
        bar.set_message(format!(
            "{phase}: sent {} accepted {} rejected {} errors {} dropped {} finalized {}",
            live.sent.load(Ordering::Relaxed),
            live.accepted.load(Ordering::Relaxed),
            live.rejected.load(Ordering::Relaxed),
            live.errors.load(Ordering::Relaxed),
            live.dropped.load(Ordering::Relaxed),
            fin + fin_w
        ));
    };
    while !sender.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        bar.set_position((start.elapsed().as_secs_f64() * 10.0) as u64);
        progress("sending");
        sample(&mut timeline, false);
    }
    let sent_stats = sender
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let mut tally = Tally::default();
    for w in workers {
        // A worker only ends by panicking if the runtime is shutting down.
        if let Ok(t) = w.await {
            tally.add(&t);
        }
    }
    let sends_done = start.elapsed();
    progress("waiting for finality");

    // Wait for the accepted proofs to be final.
    let deadline = Instant::now() + o.finality_timeout;
    if finality_tracked {
        while tracker.outstanding() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            progress("waiting for finality");
            sample(&mut timeline, false);
        }
    }
    // Stop the followers; say why one ended early, if one did.
    for (t, f) in targets.iter().zip(followers) {
        let finished = f.is_finished();
        f.abort();
        if finished {
            if let Ok(Some(why)) = f.await {
                events_errors.push(format!("{}: /events {why}", t.url));
            }
        }
    }
    // Ask a target about a few proofs that were accepted but not seen final.
    let mut unfinalized_probe = std::collections::BTreeMap::<String, u64>::new();
    if finality_tracked {
        for id in tracker.unfinalized_ids(16) {
            let word = client::probe(&targets[0], &id).await;
            *unfinalized_probe.entry(word).or_default() += 1;
        }
    }
    let generator_cpu_s = match (generator_cpu_before, crate::process_cpu_seconds()) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    bar.finish_and_clear();
    // The last point: whatever the last interval held.
    sample(&mut timeline, true);
    let fin = tracker.snapshot();

    let validators = o
        .validators
        .iter()
        .zip(validators_before)
        .map(|(v, before)| {
            let after = ProcSample::of(v.pid);
            ValidatorReport {
                index: v.index,
                pid: v.pid,
                http: v.http.clone(),
                alive: after.cpu_s.is_some(),
                peak_rss_bytes: after.peak_rss_bytes,
                rss_start_bytes: before.rss_bytes,
                rss_end_bytes: after.rss_bytes,
                cpu_s: match (before.cpu_s, after.cpu_s) {
                    (Some(b), Some(a)) => Some(a - b),
                    _ => None,
                },
            }
        })
        .collect();

    let window_ns = o.duration.as_nanos() as u64;
    let measure_start_ns = offset_ns + o.warmup.as_nanos() as u64;
    Ok(Report {
        targets: targets.iter().map(|t| t.url.clone()).collect(),
        offered_rate: o.rate,
        duration_s: o.duration.as_secs_f64(),
        warmup_s: o.warmup.as_secs_f64(),
        batch: o.batch,
        connections_per_target: o.connections,
        queue_per_target: queue,
        scheduled: tally.sent + sent_stats.dropped,
        tally,
        dropped_by_generator: sent_stats.dropped,
        dropped_warmup: sent_stats.dropped_warmup,
        window_ns,
        measure_start_ns,
        cooldown_s: o.cooldown.as_secs_f64(),
        cooldown_rate: plans
            .iter()
            .find(|p| p.phase == Phase::Cooldown)
            .map(|p| p.rate_per_s * o.batch as f64),
        dropped_cooldown: sent_stats.dropped_cooldown,
        sends_done_s: sends_done.as_secs_f64(),
        finality_tracked,
        events_errors,
        finality: fin,
        validators,
        prepared_proofs: 0,
        prepared_from_cache: false,
        prepare_s: 0.0,
        accounts: 0,
        invalid_ratio: o.invalid_ratio,
        timeline,
        unfinalized_probe,
        generator_cpu_s,
    })
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
