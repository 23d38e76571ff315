//! Pruning (`consensus.retain_heights`, `docs/adr/0014-snapshots-and-pruning.md`):
//! the blocks, certificates, decision times, evidence and per-proof results
//! of heights more than `retain` below the head are deleted, in the
//! transaction that commits the head; the state rows are kept. A pruned
//! height cannot be served to a syncing peer, and `GET /proof/{id}` of a
//! proof decided there answers `PROOF_PRUNED_OR_UNKNOWN`.

use redb::ReadableTable;
use sha2::{Digest, Sha256};

use super::tables::{META, PROOFS, TIMES};
use super::{DbResult, DecidedRecord, DECIDED, EVIDENCE};

/// Heights one commit prunes at most, so that turning pruning on for a
/// long chain spreads the deletions over the next commits.
pub const PRUNE_PER_COMMIT: u64 = 64;

/// Key in [`META`] of the lowest height whose block and proofs the store
/// may still hold (u64 LE); absent: 1 (nothing pruned, or restored).
pub(super) const HISTORY_FROM: &str = "history_from";

/// The lowest height whose block and per-proof results the store may still
/// hold.
pub(super) fn history_from(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> DbResult<u64> {
    match meta.get(HISTORY_FROM)? {
        Some(v) => {
            let b: [u8; 8] = v.value().try_into()?;
            Ok(u64::from_le_bytes(b))
        }
        None => Ok(1),
    }
}

/// Prunes every height at or below `head − retain` (at most
/// [`PRUNE_PER_COMMIT`] of them); returns how many it deleted.
pub(super) fn prune(tx: &redb::WriteTransaction, head: u64, retain: u64) -> DbResult<u64> {
    if retain == 0 || head <= retain {
        return Ok(0);
    }
    let cut = head - retain;
    let mut meta = tx.open_table(META)?;
    let from = history_from(&meta)?;
    if from > cut {
        return Ok(0);
    }
    let to = cut.min(from + PRUNE_PER_COMMIT - 1);
    let mut decided = tx.open_table(DECIDED)?;
    let mut proofs = tx.open_table(PROOFS)?;
    let mut times = tx.open_table(TIMES)?;
    let mut evidence = tx.open_table(EVIDENCE)?;
    let mut pruned = 0;
    for h in from..=to {
        let bytes = decided.remove(h)?.map(|v| v.value().to_vec());
        if let Some(bytes) = bytes {
            let rec: DecidedRecord = borsh::from_slice(&bytes)?;
            let block = crate::block::decode_block(&rec.block)?;
            for p in block.batches.iter().flat_map(|b| b.proofs.iter()) {
                let id: [u8; 32] = Sha256::digest(p.signature).into();
                proofs.remove(id.as_slice())?;
            }
            pruned += 1;
        }
        times.remove(h)?;
        evidence.remove(h)?;
    }
    meta.insert(HISTORY_FROM, (to + 1).to_le_bytes().as_slice())?;
    Ok(pruned)
}
