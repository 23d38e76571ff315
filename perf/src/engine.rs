//! `step bench engine`: the pipeline from body bytes to verdicts, and the
//! bare recovery ceiling on the same proofs with the same thread count.

use crate::corpus::Corpus;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use step_engine::message::eip191_digest;
use step_engine::pipeline::{Clock, Pipeline, PipelineConfig};
use step_engine::{Address, Backend, Verifier};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub workers: usize,
    pub seconds: f64,
    /// Pipeline capacity (body buffers).
    pub capacity: usize,
    pub pin: bool,
    /// Also time the bare ceiling (half before the pipeline run, half after).
    pub ceiling: bool,
    /// Offered load in proofs/s; `None` submits as fast as the pipeline takes them.
    pub rate: Option<u64>,
    /// Also time [`Bare::KnownKey`] (after the second ceiling half, as long as it).
    pub known_key: bool,
}

/// What was measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub workers: usize,
    pub pinned_workers: usize,
    /// Verdicts delivered during the run.
    pub proofs: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Submissions refused with OVERLOADED (and retried by the bench).
    pub refused: u64,
    pub batches: u64,
    pub elapsed_s: f64,
    pub proofs_per_sec: f64,
    /// The corpus ran out before `seconds` passed.
    pub corpus_exhausted: bool,
    pub ceiling_proofs: u64,
    pub ceiling_elapsed_s: f64,
    /// Process CPU seconds spent in the ceiling phases.
    pub ceiling_cpu_s: f64,
    /// Process CPU seconds spent in the pipeline run (workers, submitting
    /// thread, callback: everything).
    pub cpu_s: f64,
    /// Of `cpu_s`, the CPU seconds of the worker threads.
    pub worker_cpu_s: f64,
    /// Verdicts per process CPU-second.
    pub proofs_per_cpu_sec: Option<f64>,
    pub ceiling_proofs_per_cpu_sec: Option<f64>,
    /// proofs_per_cpu_sec / ceiling_proofs_per_cpu_sec: the pipeline's CPU
    /// efficiency against bare recovery, much less sensitive to other load.
    pub cpu_ratio: Option<f64>,
    pub ceiling_proofs_per_sec: Option<f64>,
    pub ratio: Option<f64>,
    /// [`Bare::KnownKey`] throughput with the same threads, when asked.
    pub known_key_proofs_per_sec: Option<f64>,
    pub known_key_proofs_per_cpu_sec: Option<f64>,
    /// Submit-to-verdict latency percentiles, microseconds.
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    pub offered_rate: Option<u64>,
    pub rss_before_run_bytes: Option<u64>,
    /// Peak RSS (VmHWM) since the mark was reset after signing.
    pub peak_rss_bytes: Option<u64>,
    /// Whether the peak-RSS mark could be reset (else the peak includes signing).
    pub peak_rss_reset: bool,
    pub memory_bound_bytes: usize,
    pub corpus_bytes: usize,
}

/// Latency histogram: 10 µs buckets up to 200 ms, then one overflow bucket.
struct Histogram {
    buckets: Vec<AtomicU64>,
}

const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 20_000;

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: (0..=BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn record(&self, ns: u64) {
        let i = ((ns / BUCKET_NS) as usize).min(BUCKETS);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }
    /// Upper edge of the bucket holding quantile `q`, in µs.
    fn quantile_us(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let target = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return ((i as u64 + 1) * BUCKET_NS) as f64 / 1000.0;
            }
        }
        (BUCKETS as u64 * BUCKET_NS) as f64 / 1000.0
    }
}

fn cores(pin: bool) -> Vec<core_affinity::CoreId> {
    if pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// What each ceiling thread does per proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bare {
    /// keccak256 of the EIP-191 message, libsecp256k1 recovery, keccak256 of
    /// the key, address compare: the recovery ceiling.
    Recover,
    /// keccak256 of the EIP-191 message, address of the known key compared,
    /// libsecp256k1 verify against the known key: what re-verifying a peer's
    /// batch costs per proof (`reverify_batch`, minus its non-crypto checks).
    KnownKey,
}

/// Bare work over the corpus (cycled) with `threads` threads pinned like the
/// pipeline's workers, for `seconds`. Canonical messages are prebuilt.
/// Returns (proofs checked, seconds).
pub fn bare(corpus: &Corpus, mode: Bare, threads: usize, seconds: f64, pin: bool) -> (u64, f64) {
    let items = corpus.len().min(1 << 16);
    if items == 0 {
        return (0, 0.0);
    }
    let next = AtomicUsize::new(0);
    let cores = cores(pin);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let backend = Backend::default();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let core = (!cores.is_empty()).then(|| cores[t % cores.len()]);
                let next = &next;
                s.spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    let mut ok = 0u64;
                    while Instant::now() < end {
                        let from = next.fetch_add(64, Ordering::Relaxed);
                        for j in from..from + 64 {
                            let i = j % items;
                            let (msg, sig, account) = corpus.ceiling_item(i);
                            let digest = eip191_digest(msg);
                            let good = match mode {
                                Bare::Recover => backend
                                    .recover(&digest, sig)
                                    .is_ok_and(|pk| Address::from_public_key(&pk) == *account),
                                Bare::KnownKey => {
                                    let key = corpus.pubkey(i);
                                    Address::from_public_key(key) == *account
                                        && backend.verify_known_key(&digest, sig, key).is_ok()
                                }
                            };
                            assert!(good, "corpus proof {i} does not verify");
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    (counts.iter().sum(), start.elapsed().as_secs_f64())
}

/// The recovery ceiling, see [`Bare::Recover`].
pub fn ceiling(corpus: &Corpus, threads: usize, seconds: f64, pin: bool) -> (u64, f64) {
    bare(corpus, Bare::Recover, threads, seconds, pin)
}

/// How long the submitting thread naps when the pipeline is full: a fifth of
/// the time `capacity` proofs take at 50,000/s, between 1 and 5 ms.
fn nap(capacity: usize) -> Duration {
    Duration::from_micros((capacity as u64 * 4).clamp(1_000, 5_000))
}

/// Runs the ceiling for `seconds` and adds its proofs, time and CPU to `report`.
fn time_ceiling(corpus: &Corpus, report: &mut Report, seconds: f64, pin: bool) {
    let c0 = crate::process_cpu_seconds();
    let (n, s) = ceiling(corpus, report.workers, seconds, pin);
    report.ceiling_proofs += n;
    report.ceiling_elapsed_s += s;
    report.ceiling_cpu_s += crate::process_cpu_seconds()
        .zip(c0)
        .map_or(0.0, |(b, a)| b - a);
}

/// Runs the pipeline over `corpus` for `opts.seconds` (or until the corpus
/// runs out), with the ceiling before and after when asked.
pub fn run(corpus: &Corpus, opts: &Options) -> Report {
    let mut report = Report {
        workers: opts.workers.max(1),
        offered_rate: opts.rate,
        corpus_bytes: corpus.heap_bytes(),
        ..Report::default()
    };
    let half = opts.seconds / 2.0;
    let cpu = crate::process_cpu_seconds;
    if opts.ceiling {
        time_ceiling(corpus, &mut report, half, opts.pin);
    }

    let mut config = PipelineConfig::new(
        // Default limits: speed gate and moratorium on (the corpus respects
        // them); no age window (the corpus is dated 2026).
        Verifier::default(),
        Clock::system(),
    );
    config.workers = report.workers;
    config.capacity = opts.capacity;
    config.pin_workers = opts.pin;
    report.memory_bound_bytes = config.memory_bound_bytes();

    let accepted = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Histogram::new());
    let epoch = Instant::now();
    let sink = {
        let (accepted, rejected, hist) = (
            Arc::clone(&accepted),
            Arc::clone(&rejected),
            Arc::clone(&hist),
        );
        move |v: &step_engine::pipeline::Verdict| {
            let now_ns = epoch.elapsed().as_nanos() as u64;
            hist.record(now_ns.saturating_sub(v.tag));
            if v.result.is_ok() {
                accepted.fetch_add(1, Ordering::Relaxed);
            } else {
                rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let bodies = corpus.bodies();
    // Reset the peak-RSS mark (Linux: "5" to clear_refs), so that the peak
    // reported is that of the pipeline run and the second ceiling half, not
    // of signing the corpus.
    report.peak_rss_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    report.rss_before_run_bytes = crate::proc_status_bytes("VmRSS");
    let cpu0 = cpu();
    let pipeline = Pipeline::with_memory_state(config, sink);
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(opts.seconds);
    let mut next = 0usize;
    let mut batches = 0u64;
    while next < bodies.len() && Instant::now() < stop {
        let want = match opts.rate {
            // Paced: what should have been offered by now.
            Some(rate) => {
                ((start.elapsed().as_secs_f64() * rate as f64) as usize).min(bodies.len())
            }
            None => (next + 256).min(bodies.len()),
        };
        let mut refused = false;
        for (k, body) in bodies[next..want].iter().enumerate() {
            let tag = epoch.elapsed().as_nanos() as u64;
            if pipeline.submit(body, tag).is_err() {
                refused = true;
                next += k;
                break;
            }
        }
        if !refused {
            next = want;
        }
        while let Some(b) = pipeline.try_next_batch() {
            batches += 1;
            pipeline.recycle(b);
        }
        if refused {
            // Full: `capacity` proofs keep the workers busy for far longer
            // than this (1,024 proofs ≈ 25 ms at 40,000/s), and a long nap
            // keeps the submitting thread's wake-ups, each of which preempts
            // a pinned worker, rare.
            std::thread::sleep(nap(opts.capacity));
        } else if opts.rate.is_some() {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    report.corpus_exhausted = next >= bodies.len();
    report.pinned_workers = pipeline.stats().pinned_workers;
    // Workers are still alive here (they exit in `finish`).
    let worker_cpu = crate::threads_cpu_seconds("step-worker-");
    let finished = pipeline.finish();
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.cpu_s = cpu().zip(cpu0).map_or(0.0, |(b, a)| b - a);
    report.worker_cpu_s = worker_cpu.unwrap_or(0.0);
    report.batches = batches + finished.batches.len() as u64;
    report.refused = finished.stats.refused;
    report.proofs = finished.stats.committed;
    report.accepted = accepted.load(Ordering::Relaxed);
    report.rejected = rejected.load(Ordering::Relaxed);
    report.proofs_per_sec = report.proofs as f64 / report.elapsed_s;
    report.latency_p50_us = hist.quantile_us(0.50);
    report.latency_p99_us = hist.quantile_us(0.99);
    drop(finished);

    if report.cpu_s > 0.0 {
        report.proofs_per_cpu_sec = Some(report.proofs as f64 / report.cpu_s);
    }
    if opts.ceiling {
        time_ceiling(corpus, &mut report, half, opts.pin);
        let c = report.ceiling_proofs as f64 / report.ceiling_elapsed_s;
        report.ceiling_proofs_per_sec = Some(c);
        report.ratio = Some(report.proofs_per_sec / c);
        if report.ceiling_cpu_s > 0.0 {
            let cc = report.ceiling_proofs as f64 / report.ceiling_cpu_s;
            report.ceiling_proofs_per_cpu_sec = Some(cc);
            report.cpu_ratio = report.proofs_per_cpu_sec.map(|p| p / cc);
        }
    }
    if opts.known_key {
        let c0 = cpu();
        let (n, s) = bare(corpus, Bare::KnownKey, report.workers, half, opts.pin);
        report.known_key_proofs_per_sec = Some(n as f64 / s);
        let used = cpu().zip(c0).map_or(0.0, |(b, a)| b - a);
        report.known_key_proofs_per_cpu_sec = (used > 0.0).then(|| n as f64 / used);
    }
    report.peak_rss_bytes = crate::proc_status_bytes("VmHWM");
    report
}
