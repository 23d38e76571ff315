//! `step migrate import`: read every collection, import, refuse or fail,
//! check the state as a validator will, write the state and the refusals.

use std::io::Write;
use std::path::{Path, PathBuf};

use step_consensus::execution::ChainState;
use step_consensus::{InitialStateError, InitialStateFile};

use crate::export::{self, ExportError};
use crate::import::{Collection, Importer, Refusal};
use crate::live::{Live, LiveError};
use crate::report::Report;

/// Where Phase 2's data comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A `mongoexport` directory.
    ExportDir(PathBuf),
    /// A live database: its URI and, if the URI names none, the database.
    Mongo { uri: String, db: Option<String> },
}

/// What `step migrate import` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub input: Input,
    pub out: PathBuf,
    /// Where refused records go; without it any refusal fails the import.
    pub reject_file: Option<PathBuf>,
}

/// Why the import wrote no state.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error("{count} record(s) cannot be represented on Phase 3; the first: {first} (give --reject-file FILE to write them there and import the rest)")]
    Refused { count: usize, first: Box<Refusal> },
    #[error("the balance totals disagree: read {read}, in the state {after}, refused {refused} (micro-STEP)")]
    BalanceMismatch {
        read: u128,
        after: u128,
        refused: u128,
    },
    #[error("the imported state does not check: {0}")]
    State(#[from] InitialStateError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a finished import wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    pub report: Report,
    /// The state root at height 0, as a validator derives it from the file.
    pub root: [u8; 32],
    pub refused: usize,
}

enum Reader<'a> {
    Export(&'a Path),
    Live(Live),
}

/// Progress: the collection and how many of its records were read so far.
pub type Progress<'a> = &'a (dyn Fn(Collection, u64) + Sync);

/// Runs the import. Nothing is written unless it succeeds.
pub async fn run(opts: &RunOptions, progress: Progress<'_>) -> Result<Summary, RunError> {
    let mut im = Importer::new();
    let reader = match &opts.input {
        Input::Mongo { uri, db } => Reader::Live(Live::connect(uri, db.as_deref()).await?),
        Input::ExportDir(dir) => Reader::Export(dir),
    };
    for c in Collection::ALL {
        let mut n = 0u64;
        let mut each = |source, rec: Result<bson::Document, String>| {
            match rec {
                Ok(d) => im.document(c, source, &d),
                Err(reason) => im.refuse(c, source, None, reason),
            }
            n += 1;
            if n.is_multiple_of(1_000) {
                progress(c, n);
            }
        };
        match &reader {
            Reader::Export(dir) => export::read_collection(dir, c, &mut each)?,
            Reader::Live(l) => l.read_collection(c, &mut each).await?,
        }
        progress(c, n);
    }
    let out = im.finish();
    if let (None, Some(first)) = (&opts.reject_file, out.refusals.first()) {
        return Err(RunError::Refused {
            count: out.refusals.len(),
            first: Box::new(first.clone()),
        });
    }
    let r = &out.report;
    if !r.balances_agree() {
        return Err(RunError::BalanceMismatch {
            read: r.balance_read_micro,
            after: r.balance_after_micro,
            refused: r.balance_refused_micro,
        });
    }
    let bytes = out.state.to_json()?;
    // The root a validator will derive: from the file's bytes, not from memory.
    let root = ChainState::from_initial(&InitialStateFile::from_json(&bytes)?)?.root;
    if let Some(path) = &opts.reject_file {
        let mut text = Vec::new();
        for f in &out.refusals {
            let line = serde_json::json!({
                "collection": f.collection.name(),
                "source": f.source.0,
                "id": f.id,
                "reason": f.reason,
                "document": f.document,
            });
            text.extend_from_slice(line.to_string().as_bytes());
            text.push(b'\n');
        }
        write_atomic(path, &text)?;
    }
    write_atomic(&opts.out, &bytes)?;
    Ok(Summary {
        report: out.report,
        root,
        refused: out.refusals.len(),
    })
}

/// Writes `bytes` to `path` through a temporary file, synced, then renamed.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let werr = |source| RunError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).map_err(werr)?;
    f.write_all(bytes).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(werr)
}
