//! `step gateway`: the migration proxy in front of Phase 2 and the Phase 3
//! validators, on the `step_gateway` library. `docs/MIGRATION_GUIDE.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use step_gateway::rollback::Rule;
use step_gateway::route::Share;
use step_gateway::shell::{read_token, run, Config};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where clients connect.
    #[arg(long, default_value = "127.0.0.1:28000")]
    listen: SocketAddr,
    /// Phase 2's HTTP address, host:port.
    #[arg(long, value_name = "HOST:PORT")]
    phase2: String,
    /// The Phase 3 validators' HTTP addresses, comma-separated host:port.
    #[arg(
        long,
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        required = true
    )]
    phase3: Vec<String>,
    /// Percent of accounts Phase 3 answers (0 = shadow; the plan's steps: 10, 50, 90, 100).
    #[arg(long, default_value_t = 0)]
    phase3_share: u64,
    /// A file holding the token of `POST /gateway/share` (without it the share is fixed).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// The comparison window, in seconds.
    #[arg(long, default_value_t = 300)]
    window_s: u64,
    /// Roll back above this percent of unexpected discrepancies over the window.
    #[arg(long, default_value_t = 5.0)]
    rollback_unexpected_percent: f64,
    /// Fewest comparisons in the window before the rate can roll back.
    #[arg(long, default_value_t = 20)]
    rollback_min_compared: u64,
    /// Roll back when no new finalized height for longer than this, in seconds.
    #[arg(long, default_value_t = 300)]
    rollback_stall_s: u64,
    /// One Phase 3 submission, finality included, in ms.
    #[arg(long, default_value_t = 15_000)]
    phase3_timeout_ms: u64,
    /// One Phase 2 exchange, in ms.
    #[arg(long, default_value_t = 10_000)]
    phase2_timeout_ms: u64,
    /// Health checks of the validators, every this many ms.
    #[arg(long, default_value_t = 1_000)]
    health_interval_ms: u64,
    /// Proofs in flight at once (more are refused with OVERLOADED).
    #[arg(long, default_value_t = 4_096)]
    in_flight_max: usize,
}

pub fn run_cmd(a: Args) -> anyhow::Result<ExitCode> {
    let share = Share::new(a.phase3_share)?;
    anyhow::ensure!(
        (0.0..=100.0).contains(&a.rollback_unexpected_percent),
        "--rollback-unexpected-percent must be 0..=100"
    );
    let admin_token = a.admin_token_file.as_deref().map(read_token).transpose()?;
    let cfg = Config {
        listen: a.listen,
        phase2: a.phase2,
        phase3: a.phase3,
        share,
        admin_token,
        rule: Rule {
            rate_max: a.rollback_unexpected_percent / 100.0,
            min_compared: a.rollback_min_compared,
            stall_ms: a.rollback_stall_s.saturating_mul(1000),
        },
        window_ms: a.window_s.saturating_mul(1000),
        phase3_timeout_ms: a.phase3_timeout_ms,
        phase2_timeout_ms: a.phase2_timeout_ms,
        health_interval_ms: a.health_interval_ms,
        in_flight_max: a.in_flight_max,
    };
    step_io::node::init_tracing(&step_io::config::LogConfig::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run(cfg))?;
    Ok(ExitCode::SUCCESS)
}
