//! `step`: the one binary. Subcommands live in their own modules; this file
//! only parses the command line and dispatches.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod bench;
mod devnet;
mod gateway;
mod keys;
mod migrate;
mod node;
mod store;
mod validator;
mod verify;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "step",
    version,
    about = "STEP validator network",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify JSONL proofs in order, keeping state between lines; one JSON verdict per line.
    Verify(verify::Args),
    /// Benchmarks: `step bench --rate R [--devnet N | --target URL,...]` (open-loop load
    /// generator) and `step bench engine --workers W --seconds S [--json]` (in process).
    Bench(bench::Args),
    /// Run one validator: HTTP API, consensus, store, metrics (`--config FILE`).
    Node(node::Args),
    /// Start a local network of N validator processes on loopback.
    Devnet(devnet::Args),
    /// Validator keys (`step keys generate`).
    Keys(keys::Args),
    /// Validator transactions signed by the operator's Ethereum key
    /// (`step validator --operator-key FILE|- --genesis FILE --nonce N register|stake|…`).
    Validator(validator::Args),
    /// Phase 2 → Phase 3: `step migrate import (--export-dir DIR | --mongo-uri URI) --out STATE`.
    Migrate(migrate::Args),
    /// The validator's store, node stopped: `step store snapshot --home H --out FILE`,
    /// `step store restore --home H --snapshot FILE`.
    Store(store::Args),
    /// Phase 2 → Phase 3 proxy: shadow comparison, per-account cutover, rollback, failover.
    Gateway(gateway::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Node(args) => node::run(args),
        Command::Devnet(args) => devnet::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Store(args) => store::run(args),
        Command::Gateway(args) => gateway::run_cmd(args),
        Command::Validator(args) => validator::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("step: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
