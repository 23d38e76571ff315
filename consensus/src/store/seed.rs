//! The chain's height 0 in the store: an empty store is seeded with the
//! initial state's rows (accounts, triangles, used nonces) and a height-0
//! head, in one transaction; a store seeded before is checked against the
//! genesis' initial state root.

use redb::ReadableTable;

use super::tables::{self, put_account, put_triangle, Checksum, Head};
use super::tables::{ACCOUNTS, META, NONCES, TRIANGLES};
use super::{RedbStore, StoreError, DECIDED};
use crate::execution::{AccountRow, ChainState, StateRoot, StoredTriangle};

/// Key of the height-0 root in [`META`]. A store written before this row
/// existed has none: it was started without an initial state, whose root
/// is all zeros.
const INITIAL_ROOT: &str = "initial_root";

impl RedbStore {
    /// Seeds an empty store with `base` at height 0, or checks that the
    /// store was seeded with `base`'s root; returns the head.
    pub(super) fn seed(&self, base: &ChainState) -> Result<Head, StoreError> {
        let mut mismatch = None;
        let mut head = Head::default();
        let result = self.write("seed the initial state", |tx| {
            let initial: Option<StateRoot> = {
                let meta = tx.open_table(META)?;
                let v = meta.get(INITIAL_ROOT)?;
                match v {
                    Some(v) => Some(v.value().try_into()?),
                    None => None,
                }
            };
            let has_blocks = tx.open_table(DECIDED)?.first()?.is_some();
            let current = tables::read_head(tx)?;
            if initial.is_some() || has_blocks || current != Head::default() {
                let stored = initial.unwrap_or([0; 32]);
                if stored != base.root {
                    mismatch = Some(stored);
                    return Err("initial state mismatch".into());
                }
                head = current;
                return Ok(());
            }
            let Some(rows) = base.memory() else {
                return Err("the initial state is not in memory".into());
            };
            let mut sum = Checksum::default();
            {
                let mut t = tx.open_table(ACCOUNTS)?;
                for (a, acc) in &rows.accounts {
                    put_account(&mut t, &mut sum, &a.0, &AccountRow::from(acc))?;
                }
            }
            {
                let mut t = tx.open_table(TRIANGLES)?;
                for (id, row) in &rows.triangles {
                    put_triangle(
                        &mut t,
                        &mut sum,
                        &id.to_string(),
                        &StoredTriangle::from(row),
                    )?;
                }
            }
            {
                let mut t = tx.open_table(NONCES)?;
                let mut key = Vec::with_capacity(84);
                for (a, n) in &rows.nonces {
                    tables::nonce_key(&mut key, &a.0, n.as_str());
                    t.insert(key.as_slice(), 0)?;
                }
            }
            head = Head {
                height: 0,
                root: base.root,
                accepted_total: base.accepted_total,
                checksum: sum.to_bytes(),
            };
            let mut meta = tx.open_table(META)?;
            meta.insert("head", borsh::to_vec(&head)?.as_slice())?;
            meta.insert(INITIAL_ROOT, base.root.as_slice())?;
            Ok(())
        });
        match (result, mismatch) {
            (_, Some(stored)) => Err(StoreError::InitialStateMismatch {
                path: self.path.clone(),
                stored: crate::context::hex(&stored),
                genesis: crate::context::hex(&base.root),
            }),
            (Err(e), _) => Err(e),
            (Ok(()), _) => Ok(head),
        }
    }
}
