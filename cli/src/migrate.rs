//! `step migrate import`: Phase 2's MongoDB state (a `mongoexport`
//! directory or a live database) to a Phase 3 initial state, on the
//! `step_migrate` library. Prints the summary on stdout; a spinner per
//! collection on stderr when it is a terminal. `docs/MIGRATION_GUIDE.md`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use step_migrate::{Collection, Input, RunOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Write a Phase 3 initial state from Phase 2's accounts, triangles and triangle_events.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// A mongoexport directory: accounts.json, triangles.json, triangle_events.json.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "mongo_uri",
        conflicts_with = "mongo_uri"
    )]
    export_dir: Option<PathBuf>,
    /// A live Phase 2 database, e.g. mongodb://127.0.0.1:27017/?directConnection=true.
    #[arg(long, value_name = "URI")]
    mongo_uri: Option<String>,
    /// The database (default: the one the URI names).
    #[arg(long, value_name = "NAME", requires = "mongo_uri")]
    db: Option<String>,
    /// The initial-state file to write.
    #[arg(long, value_name = "STATE")]
    out: PathBuf,
    /// Write refused records here (JSON lines, with their reasons) and import
    /// the rest; without it any refused record fails the import.
    #[arg(long, value_name = "FILE")]
    reject_file: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Sub::Import(a) = args.command;
    let input = match (a.export_dir, a.mongo_uri) {
        (Some(dir), None) => Input::ExportDir(dir),
        (None, Some(uri)) => Input::Mongo { uri, db: a.db },
        _ => anyhow::bail!("give exactly one of --export-dir and --mongo-uri"),
    };
    let opts = RunOptions {
        input,
        out: a.out,
        reject_file: a.reject_file,
    };
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let progress = |c: Collection, n: u64| bar.set_message(format!("{}: {n} records", c.name()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(step_migrate::run(&opts, &progress));
    bar.finish_and_clear();
    let summary = result?;
    print!("{}", summary.report);
    println!(
        "wrote {} (state root at height 0: {}){}",
        opts.out.display(),
        hex::encode(summary.root),
        match &opts.reject_file {
            Some(p) => format!("; {} refused record(s) in {}", summary.refused, p.display()),
            None => String::new(),
        }
    );
    Ok(ExitCode::SUCCESS)
}
