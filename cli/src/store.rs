//! `step store`: the validator's store, offline (the node stopped: redb
//! lets one process open a store at a time). `snapshot` writes the executed
//! state at the head to a file; `restore` makes a snapshot a wiped home's
//! store, which then opens at the snapshot's height and syncs the later
//! heights from its peers (`docs/VALIDATOR_GUIDE.md`, "Backup and restore").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use step_consensus::store::{restore, SnapshotInfo};
use step_consensus::RedbStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Write a snapshot of the state at the store's head (the node stopped).
    Snapshot(SnapshotArgs),
    /// Make a snapshot the store of a home that has none.
    Restore(RestoreArgs),
}

#[derive(Debug, clap::Args)]
struct SnapshotArgs {
    /// The validator's home (its `store.redb`).
    #[arg(long, value_name = "DIR")]
    home: PathBuf,
    /// The height the snapshot must be at: the store's head (refused otherwise).
    #[arg(long, value_name = "N")]
    height: Option<u64>,
    /// The snapshot file to write (never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RestoreArgs {
    /// The validator's home; it must hold no `store.redb`.
    #[arg(long, value_name = "DIR")]
    home: PathBuf,
    /// A file `step store snapshot` wrote.
    #[arg(long, value_name = "FILE")]
    snapshot: PathBuf,
}

fn print(what: &str, info: &SnapshotInfo) {
    println!(
        "{what} height={} state_root={} accepted_total={} accounts={} triangles={} nonces={}",
        info.height,
        hex::encode(info.root),
        info.accepted_total,
        info.accounts,
        info.triangles,
        info.nonces
    );
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Snapshot(a) => {
            let path = a.home.join("store.redb");
            anyhow::ensure!(path.exists(), "{} does not exist", path.display());
            let store = RedbStore::open(&path)
                .with_context(|| format!("open {} (is the node stopped?)", path.display()))?;
            let info = store.snapshot(a.height, &a.out)?;
            print(&format!("snapshot {}", a.out.display()), &info);
        }
        Sub::Restore(a) => {
            let path = a.home.join("store.redb");
            let info = restore(&a.snapshot, &path)?;
            print(&format!("restored {}", path.display()), &info);
        }
    }
    Ok(ExitCode::SUCCESS)
}
