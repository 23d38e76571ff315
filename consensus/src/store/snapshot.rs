//! Snapshots of the executed state (`docs/adr/0014-snapshots-and-pruning.md`):
//! the state tables (accounts, triangles, used nonces) and the head at the
//! store's last committed height, copied in one read transaction into a new
//! store file. A validator restored from one opens at that height and syncs
//! the later heights from its peers; it holds no block, certificate or
//! per-proof result before it (like a store pruned there).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, ReadableTableMetadata};

use super::tables::{Head, ACCOUNTS, META, NONCES, TRIANGLES};
use super::{DbResult, RedbStore, StoreError};
use crate::execution::StateRoot;

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub height: u64,
    pub root: StateRoot,
    pub accepted_total: u64,
    pub accounts: u64,
    pub triangles: u64,
    pub nonces: u64,
}

impl SnapshotInfo {
    /// The head and the state tables' row counts, as `tx` reads them.
    fn of(head: &Head, tx: &redb::ReadTransaction) -> DbResult<SnapshotInfo> {
        Ok(SnapshotInfo {
            height: head.height,
            root: head.root,
            accepted_total: head.accepted_total,
            accounts: tx.open_table(ACCOUNTS)?.len()?,
            triangles: tx.open_table(TRIANGLES)?.len()?,
            nonces: tx.open_table(NONCES)?.len()?,
        })
    }
}

/// A snapshot or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path} already exists: a snapshot or a restore never overwrites a file; choose another name, or move it away")]
    Exists { path: PathBuf },
    #[error("the store {path} holds the state at its head only (height {head}); a snapshot at height {asked} cannot be taken from it. Omit --height, or stop the validator when it is at the height you need")]
    Height {
        path: PathBuf,
        asked: u64,
        head: u64,
    },
    #[error("{path}: {operation} failed: {reason}")]
    Io {
        path: PathBuf,
        operation: &'static str,
        reason: String,
    },
}

fn io_err<'a>(
    path: &'a Path,
    operation: &'static str,
) -> impl Fn(std::io::Error) -> SnapshotError + 'a {
    move |e| SnapshotError::Io {
        path: path.to_owned(),
        operation,
        reason: e.to_string(),
    }
}

/// A file beside `path`, named for one in-progress write.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

impl RedbStore {
    /// Writes the state at the head (which must be `height`, if given) to
    /// the new file `out`, and returns what it holds. The rows are read in
    /// one read transaction, so the snapshot is consistent even while the
    /// store commits; the file appears only once complete.
    pub fn snapshot(&self, height: Option<u64>, out: &Path) -> Result<SnapshotInfo, SnapshotError> {
        if out.exists() {
            return Err(SnapshotError::Exists {
                path: out.to_owned(),
            });
        }
        let tmp = partial(out);
        let mut info = None;
        let fail = self.fail("write snapshot");
        let copied = self.db.with(|db| -> DbResult<()> {
            let rx = db.begin_read()?;
            let head: Head = match rx.open_table(META)?.get("head")? {
                Some(v) => borsh::from_slice(v.value())?,
                None => Head::default(),
            };
            if let Some(asked) = height.filter(|h| *h != head.height) {
                info = Some(Err(head.height));
                return Err(format!("asked for height {asked}").into());
            }
            if tmp.exists() {
                // Left by a snapshot that did not finish.
                std::fs::remove_file(&tmp)?;
            }
            let out_db = Database::create(&tmp)?;
            let tx = out_db.begin_write()?;
            {
                let mut meta = tx.open_table(META)?;
                for row in rx.open_table(META)?.iter()? {
                    let (k, v) = row?;
                    meta.insert(k.value(), v.value())?;
                }
                // No block or per-proof result before the next height.
                let from = (head.height + 1).to_le_bytes();
                meta.insert(super::prune::HISTORY_FROM, from.as_slice())?;
                let mut t = tx.open_table(ACCOUNTS)?;
                for row in rx.open_table(ACCOUNTS)?.iter()? {
                    let (k, v) = row?;
                    t.insert(k.value(), v.value())?;
                }
                let mut t = tx.open_table(TRIANGLES)?;
                for row in rx.open_table(TRIANGLES)?.iter()? {
                    let (k, v) = row?;
                    t.insert(k.value(), v.value())?;
                }
                let mut t = tx.open_table(NONCES)?;
                for row in rx.open_table(NONCES)?.iter()? {
                    let (k, v) = row?;
                    t.insert(k.value(), v.value())?;
                }
            }
            tx.commit()?;
            info = Some(Ok(SnapshotInfo::of(&head, &rx)?));
            Ok(())
        });
        match (copied, info) {
            (Err(_), Some(Err(head))) => Err(SnapshotError::Height {
                path: self.path.clone(),
                asked: height.unwrap_or(head),
                head,
            }),
            (Err(e), _) => {
                // Nothing half-written is left behind.
                if tmp.exists() {
                    std::fs::remove_file(&tmp).map_err(io_err(&tmp, "remove"))?;
                }
                Err(fail(e.to_string()).into())
            }
            (Ok(()), Some(Ok(info))) => {
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err(&tmp, "sync"))?;
                std::fs::rename(&tmp, out).map_err(io_err(out, "rename"))?;
                Ok(info)
            }
            (Ok(()), _) => Err(fail("no head read".into()).into()),
        }
    }
}

/// Checks the snapshot `snapshot` (its schema and its state checksum, as a
/// store is checked at open) and makes it the store at `store`, which must
/// not exist: a restored validator opens at the snapshot's height.
pub fn restore(snapshot: &Path, store: &Path) -> Result<SnapshotInfo, SnapshotError> {
    if store.exists() {
        return Err(SnapshotError::Exists {
            path: store.to_owned(),
        });
    }
    // The copy is checked, not the operator's file (opening writes to it).
    let tmp = partial(store);
    std::fs::copy(snapshot, &tmp).map_err(io_err(&tmp, "copy the snapshot"))?;
    let checked = RedbStore::open(&tmp).and_then(|s| {
        let head = s.open_report().head;
        s.read("count snapshot rows", |tx| SnapshotInfo::of(&head, tx))
    });
    let info = match checked {
        Ok(info) => info,
        Err(e) => {
            std::fs::remove_file(&tmp).map_err(io_err(&tmp, "remove"))?;
            return Err(e.into());
        }
    };
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp, "sync"))?;
    std::fs::rename(&tmp, store).map_err(io_err(store, "rename"))?;
    Ok(info)
}
