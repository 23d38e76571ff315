//! `step node --config FILE`: one validator (HTTP API, consensus over
//! libp2p, redb store, metrics) until SIGINT or SIGTERM.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use step_engine::pipeline::Clock;
use step_io::{Config, Metrics};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's TOML configuration (`docs/VALIDATOR_GUIDE.md`).
    #[arg(long)]
    config: PathBuf,
    /// Override a configuration key, e.g. `--set http.listen=127.0.0.1:9000`
    /// (repeatable; applied after the file and the STEP_* environment).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Shortcut for `--set redis.url=URL`.
    #[arg(long)]
    redis_url: Option<String>,
    /// Misbehave on purpose (e2e tests only; `byzantine` feature):
    /// `equivocate` (double votes), `bad-signatures` or `gps-spoof` (forged
    /// batches passed off as valid).
    #[cfg(feature = "byzantine")]
    #[arg(long, value_parser = ["equivocate", "bad-signatures", "gps-spoof"])]
    byzantine: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Started by `step devnet` (or `step bench --devnet`): stop when it dies,
    // even by SIGKILL. First, before anything else can fail or block.
    step_devnet::die_with_supervisor()?;
    let mut config = Config::load(Some(&args.config))?;
    step_devnet::apply_sets(&mut config, &args.set)?;
    if let Some(url) = &args.redis_url {
        config.set("redis.url", url)?;
    }
    config.validate()?;
    step_io::node::init_tracing(&config.log);
    let base = args.config.parent().map(PathBuf::from).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("step-node")
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let clock = Clock::system();
        #[cfg(feature = "byzantine")]
        let ledger = match args.byzantine.as_deref() {
            Some(kind) => {
                use step_io::validator::Byzantine;
                anyhow::ensure!(
                    config.node.ledger == step_io::config::LedgerKind::Consensus,
                    "--byzantine needs node.ledger = \"consensus\""
                );
                let b = match kind {
                    "equivocate" => Byzantine::Equivocate,
                    "bad-signatures" => Byzantine::BadSignatures,
                    "gps-spoof" => Byzantine::GpsSpoof,
                    other => anyhow::bail!("unknown --byzantine behaviour {other:?}"),
                };
                step_io::validator::open_byzantine_ledger(
                    &config,
                    &base,
                    clock.clone(),
                    Arc::clone(&metrics),
                    b,
                )
                .await?
            }
            None => {
                step_io::validator::open_ledger(&config, &base, clock.clone(), Arc::clone(&metrics))
                    .await?
            }
        };
        #[cfg(not(feature = "byzantine"))]
        let ledger =
            step_io::validator::open_ledger(&config, &base, clock.clone(), Arc::clone(&metrics))
                .await?;
        step_io::node::run(config, ledger, metrics, clock).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
