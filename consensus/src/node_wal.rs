//! The consensus WAL's check before a start: every entry read, a corrupted
//! one refused by name.

use std::path::Path;

use crate::error::ConsensusNodeError;

/// Reads every WAL entry; a bad checksum is a [`ConsensusNodeError::WalCorrupted`].
/// A torn entry at the tail (a crash mid-write) is dropped by the WAL itself.
/// A WAL that cannot be opened (still locked by a stopping engine, or
/// unreadable) is a [`ConsensusNodeError::WalUnavailable`].
pub fn check_wal(path: &Path) -> Result<usize, ConsensusNodeError> {
    if !path.exists() {
        return Ok(0);
    }
    let mut log =
        malachitebft_wal::Log::open(path).map_err(|e| ConsensusNodeError::WalUnavailable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let corrupted = |entry, reason: String| ConsensusNodeError::WalCorrupted {
        path: path.to_owned(),
        entry,
        reason,
    };
    let mut n = 0;
    for entry in log.iter().map_err(|e| corrupted(0, e.to_string()))? {
        entry.map_err(|e| corrupted(n, e.to_string()))?;
        n += 1;
    }
    Ok(n)
}

/// How long `start` and `stop` wait for a stopping engine to release its WAL.
pub const WAL_RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`check_wal`], retrying while the WAL cannot be opened (a previous engine
/// of this node may still be closing it).
pub(super) async fn check_wal_patiently(path: &Path) -> Result<usize, ConsensusNodeError> {
    let start = std::time::Instant::now();
    loop {
        match check_wal(path) {
            Err(ConsensusNodeError::WalUnavailable { .. })
                if start.elapsed() < WAL_RELEASE_TIMEOUT =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}
