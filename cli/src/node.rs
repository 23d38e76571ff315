//! `step node --config FILE`: one validator (HTTP API, consensus over
//! libp2p, redb store, metrics) until SIGINT or SIGTERM.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use step_io::ledger::system_clock;
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
}

/// Applies `KEY=VALUE` overrides.
pub fn apply_sets(config: &mut Config, sets: &[String]) -> anyhow::Result<()> {
    for kv in sets {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        config.set(k.trim(), v)?;
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(Some(&args.config))?;
    apply_sets(&mut config, &args.set)?;
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
        let clock = system_clock();
        let ledger =
            step_io::validator::open_ledger(&config, &base, clock.clone(), Arc::clone(&metrics))
                .await?;
        step_io::node::run(config, ledger, metrics, clock).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
