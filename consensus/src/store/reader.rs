//! [`StoreReader`]: finalized proofs and decision times, read from any
//! thread while the app writes.

use std::path::PathBuf;

use super::tables::{SharedDb, StoredProof, PROOFS, TIMES};
use super::{DbResult, StoreError};

/// Reads finalized proofs and decision times from a [`RedbStore`], from any
/// thread, while the app writes.
#[derive(Clone)]
pub struct StoreReader {
    pub(super) db: SharedDb,
    pub(super) path: PathBuf,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StoreReader {
    fn fail(&self, operation: &'static str) -> impl Fn(String) -> StoreError + '_ {
        move |reason| StoreError::Backend {
            path: self.path.clone(),
            operation,
            reason,
        }
    }

    /// A finalized proof by id (SHA-256 of its signature) and the local time
    /// its height was committed.
    pub fn proof(&self, id: &[u8; 32]) -> Result<Option<(StoredProof, i64)>, StoreError> {
        let fail = self.fail("read proof");
        let read = || -> DbResult<Option<(Vec<u8>, Option<i64>)>> {
            self.db.with(|db| {
                let tx = db.begin_read()?;
                let Some(v) = tx
                    .open_table(PROOFS)?
                    .get(id.as_slice())?
                    .map(|v| v.value().to_vec())
                else {
                    return Ok(None);
                };
                let p: StoredProof = borsh::from_slice(&v)?;
                let time = tx.open_table(TIMES)?.get(p.height)?.map(|t| t.value());
                Ok(Some((v, time)))
            })
        };
        let Some((bytes, time)) = read().map_err(|e| fail(e.to_string()))? else {
            return Ok(None);
        };
        let p: StoredProof = borsh::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            what: "proof",
            height: 0,
            reason: e.to_string(),
        })?;
        let time = time.ok_or_else(|| StoreError::Corrupt {
            path: self.path.clone(),
            what: "decision time",
            height: p.height,
            reason: "no time row for the proof's height".into(),
        })?;
        Ok(Some((p, time)))
    }
}
