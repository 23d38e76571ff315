//! `step devnet --validators N`: a whole local network in one command, on
//! the supervisor library `step_devnet` (which `step bench --devnet` calls
//! too).
//!
//! First run: a key per validator, one genesis, one configuration file per
//! validator under `--data-dir`. Every run: the configurations are rewritten
//! (ports and `--set` overrides may change), N `step node` processes start on
//! loopback, and once every one answers `GET /health` the devnet prints
//! `devnet ready`. SIGINT or SIGTERM stops them all (SIGTERM, then SIGKILL
//! after a grace period; a second SIGINT or SIGTERM kills them at once).
//! The validators also stop when this process is SIGKILLed. A second run
//! with the same data dir resumes the chain: keys, genesis, WAL and store
//! are kept.
//!
//! Output, for people and scripts (no Rust caller parses it), one line per
//! validator, then `devnet ready`:
//!
//! ```text
//! validator <i> http=http://127.0.0.1:<P+i> p2p=/ip4/127.0.0.1/tcp/<P+100+i> address=<40 hex> pid=<pid> log=<path>
//! ```

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use step_devnet::{Devnet, Options, STOP_GRACE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Validators to run (1–50).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Validator i listens for HTTP on P+i and for P2P on P+100+i.
    #[arg(long, default_value_t = 27000)]
    base_port: u16,
    /// Keys, genesis, configurations, WALs, stores and logs.
    #[arg(long, default_value = "devnet")]
    data_dir: PathBuf,
    /// Override a configuration key on every validator, e.g.
    /// `--set limits.speed_gate=false` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Start the chain from this initial state (`step migrate import --out`);
    /// first run only (a later run checks that it is the same state).
    #[arg(long, value_name = "STATE")]
    initial_state: Option<PathBuf>,
    /// Give up if the validators are not all healthy within this many seconds.
    #[arg(long, default_value_t = 120)]
    ready_timeout: u64,
}

/// SIGINT and SIGTERM, registered at once (before any validator starts), so
/// that neither can kill the devnet and orphan its validators.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {},
            _ = self.term.recv() => {},
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options {
        exe: std::env::current_exe().context("locating the step binary")?,
        validators: args.validators,
        base_port: args.base_port,
        data_dir: args.data_dir.clone(),
        sets: args.set.clone(),
        initial_state: args.initial_state.clone(),
    };
    // Current-thread: the validators are spawned from the main thread, which
    // lives as long as they do (their parent-death signal follows the thread).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(supervise(&args, &options))
}

/// Stops the devnet; a second signal while it stops kills the validators at once.
async fn stop(devnet: &mut Devnet, signals: &mut Signals) {
    let stopped = devnet.stop(STOP_GRACE, signals.recv()).await;
    if !stopped.clean() {
        eprintln!(
            "step devnet: validators {:?} did not stop on SIGTERM (grace over, or a second signal); killed them",
            stopped.killed
        );
    }
    println!("devnet stopped");
}

async fn supervise(args: &Args, options: &Options) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::install()?;
    let mut devnet = Devnet::start(options).await?;
    for v in devnet.validators() {
        println!(
            "validator {} http={} p2p={} address={} pid={} log={}",
            v.index,
            v.http,
            v.p2p,
            v.address,
            v.pid,
            v.log.display()
        );
    }
    let _ = std::io::stdout().flush();
    eprintln!(
        "step devnet: chain {} in {}; waiting for {} validators",
        devnet.chain_id(),
        args.data_dir.display(),
        devnet.validators().len()
    );

    // Readiness, or an early exit with the validator's log.
    let ready = tokio::select! {
        r = devnet.wait_ready(Duration::from_secs(args.ready_timeout)) => r,
        () = signals.recv() => {
            stop(&mut devnet, &mut signals).await;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if let Err(e) = ready {
        devnet.stop(STOP_GRACE, signals.recv()).await;
        return Err(e.into());
    }
    println!("devnet ready");
    let _ = std::io::stdout().flush();

    // Run until a signal; report validators that exit on their own (an
    // operator or a test may kill and restart one by hand).
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                for (i, status) in devnet.reap() {
                    eprintln!(
                        "step devnet: validator {i} exited ({status}); restart it with: step node --config {}",
                        devnet.validators()[i].config.display()
                    );
                }
            }
        }
    }
    eprintln!("step devnet: stopping validators");
    stop(&mut devnet, &mut signals).await;
    Ok(ExitCode::SUCCESS)
}
