//! `step bench`: benchmarks (see `step-perf`).
//!
//! * `step bench --rate R [--devnet N | --target URL,...] ...`: the open-loop
//!   load generator (`step_perf::load`, docs/PERFORMANCE.md "Load generator").
//! * `step bench engine ...`: in-process benchmark of the pipeline.

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use step_perf::load::procs::Validator;
use step_perf::load::{self, parse_duration};
use step_perf::{corpus, engine};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    what: Option<What>,
    #[command(flatten)]
    load: Box<LoadArgs>,
}

/// `step bench --rate R ...`: offer R proofs/s to HTTP nodes, open loop.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Proofs per second offered (open loop: not slowed down by the answers).
    #[arg(long)]
    rate: Option<f64>,
    /// How long the measured load lasts (e.g. 60s, 500ms, 2m).
    #[arg(long, visible_alias = "burst", default_value = "10s")]
    duration: String,
    /// Load at the same rate before the measured window, not counted.
    #[arg(long, default_value = "0s")]
    warmup: String,
    /// After the measured window, keep sending at --cooldown-rate for this
    /// long, reported apart (does throughput come back after a burst?).
    #[arg(long, default_value = "0s")]
    cooldown: String,
    /// Proofs/s during the cool-down (default: a tenth of --rate).
    #[arg(long)]
    cooldown_rate: Option<f64>,
    /// Nodes' base URLs, comma-separated; requests go round-robin.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// Start `step devnet --validators N` for the run, load all its validators, stop it after.
    #[arg(long, conflicts_with = "target")]
    devnet: Option<usize>,
    /// The devnet's first HTTP port (validator i: P + i; P2P: P + 100 + i).
    #[arg(long, default_value_t = 27000)]
    base_port: u16,
    /// The devnet's data directory (kept); default: a temporary one, removed after.
    #[arg(long)]
    devnet_data_dir: Option<PathBuf>,
    /// Node configuration for every devnet validator (`key=value`, repeatable),
    /// after the bench's own `rate_limit.per_ip=0` (all load comes from one IP).
    #[arg(long = "devnet-set", value_name = "KEY=VALUE")]
    devnet_set: Vec<String>,
    /// Seconds to wait for every devnet validator to answer `GET /health`.
    #[arg(long, default_value_t = 120)]
    devnet_ready_timeout: u64,
    /// Proofs per request: 1 = `POST /proof/submit?wait=false`; more = `POST /proofs`.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Keep-alive connections per target.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Most requests one connection writes before reading their answers
    /// (HTTP/1.1 pipelining, used only when requests wait; 1: one at a time).
    #[arg(long, default_value_t = 8)]
    pipeline: usize,
    /// Requests that may wait for a free connection, per target, before
    /// arrivals are dropped (default: 0.1 s of arrivals, at least 2 per connection).
    #[arg(long)]
    queue: Option<usize>,
    /// Share of bad proofs (each kind in turn: bad signature, out of bounds,
    /// low accuracy, replay, bad payload, moratorium).
    #[arg(long, default_value_t = 0.0)]
    invalid_ratio: f64,
    /// Signing accounts (default: max(1000, 2 × rate)).
    #[arg(long)]
    accounts: Option<u64>,
    /// Seeds keys and nonces. Against a network that keeps its state, use a
    /// new seed for each run (the same seed sends the same proofs: replays).
    #[arg(long, default_value = "step-bench")]
    seed: String,
    /// Where prepared proofs are cached (default: target/step-bench-cache if
    /// ./target exists, else $TMPDIR/step-bench-cache).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Sign afresh and do not write the cache.
    #[arg(long)]
    no_cache: bool,
    /// Signing threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// A request without an answer after this long is an error.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// After the last send, wait at most this long for accepted proofs to be final.
    #[arg(long, default_value = "30s")]
    finality_timeout: String,
    /// Do not follow `/events` (no finality figures).
    #[arg(long)]
    no_finality: bool,
    /// Skip the one-second recovery calibration after the load (no
    /// CPU-per-proof ratio).
    #[arg(long)]
    no_calibration: bool,
    /// Also write a self-contained HTML report with charts to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
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
        Some(What::Engine(a)) => run_engine(a),
        None => run_load(*args.load),
    }
}

fn default_cache_dir() -> PathBuf {
    let target = PathBuf::from("target");
    if target.is_dir() {
        target.join("step-bench-cache")
    } else {
        std::env::temp_dir().join("step-bench-cache")
    }
}

fn run_load(a: LoadArgs) -> anyhow::Result<ExitCode> {
    let Some(rate) = a.rate else {
        anyhow::bail!(
            "`step bench` needs --rate R (with --devnet N or --target URL,...), or a subcommand: `step bench engine`"
        );
    };
    anyhow::ensure!(
        a.devnet.is_some() || !a.target.is_empty(),
        "give --devnet N or --target URL,..."
    );
    let mut o = load::Options::new(a.target.clone(), rate, parse_duration(&a.duration)?);
    o.warmup = parse_duration(&a.warmup)?;
    o.cooldown = parse_duration(&a.cooldown)?;
    o.cooldown_rate = a.cooldown_rate;
    o.batch = a.batch;
    o.connections = a.connections;
    o.pipeline = a.pipeline;
    o.calibrate = !a.no_calibration;
    o.queue = a.queue.unwrap_or(0);
    o.invalid_ratio = a.invalid_ratio;
    o.accounts = a.accounts;
    o.seed = a.seed.clone();
    o.cache_dir = (!a.no_cache).then(|| a.cache_dir.clone().unwrap_or_else(default_cache_dir));
    o.request_timeout = parse_duration(&a.timeout)?;
    o.finality_timeout = parse_duration(&a.finality_timeout)?;
    o.track_finality = !a.no_finality;
    o.threads = a.threads;
    o.progress = true;

    let devnet = match a.devnet {
        None => None,
        Some(n) => {
            anyhow::ensure!(n >= 1, "--devnet needs at least 1 validator");
            eprintln!(
                "starting a devnet of {n} validators (base port {})",
                a.base_port
            );
            let d = BenchDevnet::start(&a, n)?;
            o.validators = d
                .devnet
                .validators()
                .iter()
                .map(|v| Validator {
                    index: v.index,
                    http: v.http.clone(),
                    pid: v.pid,
                })
                .collect();
            o.targets = o.validators.iter().map(|v| v.http.clone()).collect();
            Some(d)
        }
    };
    let result = load::run(&o);
    let clean_stop = devnet.map(BenchDevnet::stop);
    let report = result?;
    print!("{}", report.to_text());
    if let Some(path) = &a.html {
        let page = step_perf::load::html::render(&report)?;
        std::fs::write(path, page)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("HTML report: {}", path.display());
    }
    if clean_stop == Some(false) {
        println!("devnet: did not stop cleanly (validators had to be killed)");
    }
    if a.json {
        let mut v = report.to_json();
        v["devnet"] = serde_json::json!(a.devnet);
        v["devnet_stopped_cleanly"] = serde_json::json!(clean_stop);
        println!("{v}");
    }
    // A validator that died during the run fails the run.
    Ok(if report.validators.iter().all(|v| v.alive) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The devnet of `--devnet N`, supervised in this process by `step_devnet`
/// (the same supervisor as `step devnet`) on a current-thread runtime of
/// the main thread: its validators die with this process.
struct BenchDevnet {
    runtime: tokio::runtime::Runtime,
    devnet: step_devnet::Devnet,
    /// A temporary data directory, removed after the run.
    remove: Option<PathBuf>,
}

impl BenchDevnet {
    fn start(a: &LoadArgs, n: usize) -> anyhow::Result<BenchDevnet> {
        let (data_dir, remove) = match &a.devnet_data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "step-bench-devnet-{}-{}",
                    std::process::id(),
                    step_engine::pipeline::unix_now_ms()
                ));
                (d.clone(), Some(d))
            }
        };
        let mut sets = vec!["rate_limit.per_ip=0".to_owned()];
        sets.extend(a.devnet_set.iter().cloned());
        let options = step_devnet::Options {
            exe: std::env::current_exe()?,
            validators: n,
            base_port: a.base_port,
            data_dir,
            sets,
            initial_state: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let started = runtime.block_on(async {
            let mut d = step_devnet::Devnet::start(&options).await?;
            match d
                .wait_ready(Duration::from_secs(a.devnet_ready_timeout))
                .await
            {
                Ok(()) => Ok(d),
                Err(e) => {
                    d.stop(STOP_GRACE, std::future::pending()).await;
                    Err(e)
                }
            }
        });
        match started {
            Ok(devnet) => Ok(BenchDevnet {
                runtime,
                devnet,
                remove,
            }),
            Err(e) => {
                if let Some(d) = &remove {
                    let _ = std::fs::remove_dir_all(d);
                }
                Err(e.into())
            }
        }
    }

    /// Stops the validators (SIGTERM, SIGKILL after 30 s); whether all
    /// stopped on SIGTERM.
    fn stop(mut self) -> bool {
        let stopped = self
            .runtime
            .block_on(self.devnet.stop(STOP_GRACE, std::future::pending()));
        if let Some(d) = &self.remove {
            let _ = std::fs::remove_dir_all(d);
        }
        stopped.clean()
    }
}

/// How long a devnet validator gets to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);

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
            "load_average_1m": step_perf::load_average(),
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

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
