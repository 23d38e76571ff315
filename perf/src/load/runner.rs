//! Running a load: prepare the proofs, subscribe to `/events`, send on
//! schedule from one thread, collect the workers' tallies, wait for
//! finality, and build the [`Report`].

use super::cache;
use super::client::{self, Job, Live, Shared, Tally, Target};
use super::events;
use super::finality::Tracker;
use super::prepare::{self, Params, Prepared};
use super::procs::ProcSample;
use super::report::{Percentiles, Report, TimelinePoint, ValidatorReport};
use super::schedule::{Phase, Schedule};
use super::{LoadError, Options, PhasePlan};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Signs (or loads from the cache) the first `n` proofs of `params`.
/// Returns the set and whether it came from the cache.
pub fn prepare_proofs(
    params: &Params,
    n: usize,
    cache_dir: Option<&std::path::Path>,
    threads: usize,
    progress: bool,
) -> Result<(Prepared, bool), LoadError> {
    let path = cache_dir.map(|d| cache::cache_path(d, params));
    if let Some(p) = path.as_deref() {
        if let Some(set) = cache::load(p, n) {
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
        cache::save(p, &set)?;
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
    // One thread sends, reads the answers and follows `/events`: no wake-ups
    // across threads, and its CPU is all the generator's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| LoadError::Runtime { source })?;
    let mut report = rt.block_on(drive(o, targets, Arc::new(prepared), &plans, &params))?;
    drop(rt);
    if o.calibrate {
        // After the load, so that it takes nothing from the validators.
        let corpus = crate::corpus::sign("step-bench-calibration", 256, 64, 1, &|_| {});
        report.recovery = Some(crate::cpu::calibrate_recovery(
            &corpus,
            Duration::from_secs(1),
        )?);
    }
    report.prepared_proofs = n as u64;
    report.prepared_from_cache = cached;
    report.prepare_s = prepare_s;
    report.accounts = params.accounts;
    Ok(report)
}

/// What the sender thread counted.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    dropped: u64,
    dropped_warmup: u64,
    dropped_cooldown: u64,
}

/// The sender: hands every due request to its target's queue.
async fn send_loop(
    plans: Vec<PhasePlan>,
    queues: Vec<async_channel::Sender<Job>>,
    per_request: u64,
    (start, offset_ns): (Instant, u64),
    live: Arc<Live>,
) -> Sent {
    let mut out = Sent::default();
    let targets = queues.len() as u64;
    for plan in &plans {
        let mut sched = Schedule::new(plan.rate_per_s, plan.requests);
        let phase_offset_ns = offset_ns + plan.start_ns;
        let phase_start = start + Duration::from_nanos(plan.start_ns);
        while let Some(next) = sched.next_due_ns() {
            // Never early: before the phase starts there is no elapsed time.
            let at = Instant::now();
            let Some(elapsed) = at.checked_duration_since(phase_start) else {
                tokio::time::sleep_until(phase_start.into()).await;
                continue;
            };
            let now = elapsed.as_nanos() as u64;
            if now < next {
                // The timer's resolution is 1 ms: what is due by then goes together.
                tokio::time::sleep_until((phase_start + Duration::from_nanos(next)).into()).await;
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
                live.scheduled.fetch_add(per_request, Ordering::Relaxed);
                if queues[(request % targets) as usize].try_send(job).is_err() {
                    live.dropped.fetch_add(per_request, Ordering::Relaxed);
                    *match plan.phase {
                        Phase::Warmup => &mut out.dropped_warmup,
                        Phase::Measured => &mut out.dropped,
                        Phase::Cooldown => &mut out.dropped_cooldown,
                    } += per_request;
                }
            }
            // Let the connection workers write what was just queued.
            tokio::task::yield_now().await;
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
        pipeline: o.pipeline,
        request_timeout: o.request_timeout,
    });
    let mut followers = Vec::new();
    let mut events_errors = Vec::new();
    if o.track_finality {
        let mut readies = Vec::new();
        for t in &targets {
            let (tx, rx) = tokio::sync::oneshot::channel();
            followers.push(tokio::spawn(events::follow_events(
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

    let generator_cpu_before = crate::cpu::process_cpu_s()?;
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
        // How many of this target's connections wait for a job.
        let idle = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..o.connections {
            workers.push(tokio::spawn(client::worker(
                Arc::clone(t),
                rx.clone(),
                Arc::clone(&idle),
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
    let sender = tokio::spawn(send_loop(
        plans_owned,
        queues,
        per_request,
        (start, offset_ns),
        Arc::clone(&live),
    ));

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
        timeline.push(TimelinePoint {
            t_s: now.saturating_duration_since(start).as_secs_f64(),
            scheduled: live.scheduled.load(Ordering::Relaxed),
            sent: live.sent.load(Ordering::Relaxed),
            accepted: live.accepted.load(Ordering::Relaxed),
            rejected: live.rejected.load(Ordering::Relaxed),
            errors: live.errors.load(Ordering::Relaxed),
            dropped: live.dropped.load(Ordering::Relaxed),
            finalized: fin + fin_w,
            finality: Percentiles::of(&tracker.take_interval()),
            validators: o.validators.iter().map(|v| ProcSample::of(v.pid)).collect(),
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
    let sent_stats = match sender.await {
        Ok(s) => s,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
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
            let word = events::probe(&targets[0], &id).await;
            *unfinalized_probe.entry(word).or_default() += 1;
        }
    }
    let generator_cpu_s = crate::cpu::process_cpu_s()? - generator_cpu_before;
    bar.finish_and_clear();
    // The last point: whatever the last interval held.
    sample(&mut timeline, true);
    let fin = tracker.snapshot();
    let finalized_all_phases = fin.finalized + fin.finalized_warmup + fin.finalized_cooldown;

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
        generator_requests: live.requests.load(Ordering::Relaxed),
        finalized_all_phases,
        recovery: None,
    })
}
