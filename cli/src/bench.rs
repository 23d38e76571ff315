//! `step bench engine`: in-process benchmark of the pipeline (see `step-perf`).

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use step_perf::{corpus, engine};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Sign many valid proofs, then run the whole pipeline (bytes → verdicts and
    /// batches) for a while; compare with the bare hash + recover + compare ceiling.
    Engine(EngineArgs),
}

#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    /// Stateless worker threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// How long to run the pipeline, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Proofs to sign beforehand (default: 3 × the measured signing rate per worker, times --seconds).
    #[arg(long)]
    proofs: Option<usize>,
    /// Signing accounts (proofs are spread over them round-robin).
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Pipeline capacity: body buffers, the most proofs in flight.
    #[arg(long, default_value_t = 1024)]
    capacity: usize,
    /// Offer this many proofs/s instead of as many as the pipeline takes (for latency).
    #[arg(long)]
    rate: Option<u64>,
    /// Time the ceiling too (the default; kept for explicitness).
    #[arg(long, overrides_with = "no_ceiling")]
    ceiling: bool,
    /// Skip the ceiling measurement.
    #[arg(long)]
    no_ceiling: bool,
    /// Also time hash + known-key verify + compare (what re-verifying a peer's batch costs).
    #[arg(long)]
    known_key: bool,
    /// Do not pin threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Engine(a) => run_engine(a),
    }
}

fn run_engine(a: EngineArgs) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = a.workers.unwrap_or(cores).max(1);
    anyhow::ensure!(
        a.seconds > 0.0 && a.seconds.is_finite(),
        "--seconds must be positive"
    );
    let n = match (a.proofs, a.rate) {
        (Some(n), _) => n,
        (None, Some(rate)) => (rate as f64 * 1.1 * a.seconds) as usize + 1000,
        (None, None) => {
            // Calibrate: recovery runs about 1.4 times as fast as signing
            // here; sign enough for 3 times the signing rate per worker.
            let t = std::time::Instant::now();
            let probe = corpus::sign("step-bench-probe", 2000, 100, 1, &|_| {});
            let sign_rate = probe.len() as f64 / t.elapsed().as_secs_f64();
            (3.0 * sign_rate * workers as f64 * a.seconds) as usize + 1000
        }
    };
    anyhow::ensure!(n > 0, "--proofs must be positive");

    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("signing {pos}/{len} proofs {bar:40} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t = std::time::Instant::now();
    let corpus = corpus::sign("step-bench", n, a.accounts, cores, &|k| bar.inc(k));
    bar.finish_and_clear();
    eprintln!(
        "signed {} proofs over {} accounts in {:.1} s",
        corpus.len(),
        a.accounts.min(n),
        t.elapsed().as_secs_f64()
    );

    let opts = engine::Options {
        workers,
        seconds: a.seconds,
        capacity: a.capacity,
        pin: !a.no_pin,
        ceiling: !a.no_ceiling,
        rate: a.rate,
        known_key: a.known_key,
    };
    let r = engine::run(&corpus, &opts);

    println!(
        "pipeline: {} proofs in {:.2} s = {:.0} proofs/s with {} workers ({} pinned); {} accepted, {} rejected, {} batches",
        r.proofs, r.elapsed_s, r.proofs_per_sec, r.workers, r.pinned_workers, r.accepted, r.rejected, r.batches
    );
    if r.corpus_exhausted {
        println!(
            "note: the corpus ran out before {} s; raise --proofs for a full-length run",
            a.seconds
        );
    }
    if let (Some(c), Some(ratio)) = (r.ceiling_proofs_per_sec, r.ratio) {
        println!(
            "ceiling (hash + recover + compare, {} threads): {:.0} proofs/s; pipeline/ceiling = {:.3}",
            r.workers, c, ratio
        );
    }
    if let (Some(p), Some(c), Some(ratio)) = (
        r.proofs_per_cpu_sec,
        r.ceiling_proofs_per_cpu_sec,
        r.cpu_ratio,
    ) {
        println!(
            "per CPU-second of this process: pipeline {p:.0}, ceiling {c:.0} proofs; ratio {ratio:.3} \
             (pipeline CPU {:.2} s, of which workers {:.2} s)",
            r.cpu_s, r.worker_cpu_s
        );
    }
    if let (Some(k), Some(c)) = (r.known_key_proofs_per_sec, r.ceiling_proofs_per_sec) {
        println!(
            "known-key verify (hash + verify + compare, {} threads): {:.0} proofs/s; {:.3} × the recovery ceiling",
            r.workers,
            k,
            k / c
        );
    }
    if let (Some(k), Some(c)) = (r.known_key_proofs_per_cpu_sec, r.ceiling_proofs_per_cpu_sec) {
        println!(
            "known-key per CPU-second: {k:.0} proofs; {:.3} × recovery per CPU-second",
            k / c
        );
    }

    match r.offered_rate {
        Some(rate) => println!(
            "latency at {rate} proofs/s offered: p50 {:.0} µs, p99 {:.0} µs (submit to verdict)",
            r.latency_p50_us, r.latency_p99_us
        ),
        None => println!(
            "latency under saturation: p50 {:.0} µs, p99 {:.0} µs (mostly queueing; use --rate)",
            r.latency_p50_us, r.latency_p99_us
        ),
    }
    println!(
        "memory: pipeline bound {:.1} MiB; RSS before the run {:.1} MiB (corpus {:.1} MiB); peak RSS {:.1} MiB{}",
        mib(r.memory_bound_bytes as u64),
        mib(r.rss_before_run_bytes.unwrap_or(0)),
        mib(r.corpus_bytes as u64),
        mib(r.peak_rss_bytes.unwrap_or(0)),
        if r.peak_rss_reset { " (after signing)" } else { " (including signing)" },
    );
    if a.json {
        let v = serde_json::json!({
            "bench": "engine",
            "proofs_per_sec": r.proofs_per_sec,
            "workers": r.workers,
            "pinned_workers": r.pinned_workers,
            "proofs": r.proofs,
            "accepted": r.accepted,
            "rejected": r.rejected,
            "refused_submissions": r.refused,
            "batches": r.batches,
            "elapsed_s": r.elapsed_s,
            "corpus_proofs": corpus.len(),
            "corpus_exhausted": r.corpus_exhausted,
            "ceiling_proofs_per_sec": r.ceiling_proofs_per_sec,
            "ratio": r.ratio,
            "cpu_s": r.cpu_s,
            "worker_cpu_s": r.worker_cpu_s,
            "proofs_per_cpu_sec": r.proofs_per_cpu_sec,
            "ceiling_cpu_s": r.ceiling_cpu_s,
            "ceiling_proofs_per_cpu_sec": r.ceiling_proofs_per_cpu_sec,
            "cpu_ratio": r.cpu_ratio,
            "load_average_1m": load_average(),
            "known_key_proofs_per_sec": r.known_key_proofs_per_sec,
            "known_key_proofs_per_cpu_sec": r.known_key_proofs_per_cpu_sec,
            "offered_rate": r.offered_rate,
            "latency_p50_us": r.latency_p50_us,
            "latency_p99_us": r.latency_p99_us,
            "peak_rss_bytes": r.peak_rss_bytes,
            "peak_rss_since_signing": r.peak_rss_reset,
            "rss_before_run_bytes": r.rss_before_run_bytes,
            "memory_bound_bytes": r.memory_bound_bytes,
            "corpus_bytes": r.corpus_bytes,
        });
        println!("{v}");
    }
    Ok(if r.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The 1-minute load average at the end of the run (how busy the machine was).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
