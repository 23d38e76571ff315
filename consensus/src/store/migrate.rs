//! Schema 1 → 2: a store written before the state tables existed gets them,
//! once, by replaying its change sets (each one's root recomputed and
//! checked on the way), inside the transaction that records schema 2.

use std::path::Path;

use redb::{ReadableTable, ReadableTableMetadata};

use super::tables::{put_account, put_triangle, Checksum, Head, ACCOUNTS, META, TRIANGLES};
use super::{DbResult, DecidedRecord, StoreError, DECIDED};
use crate::execution::{AccountRow, StoredTriangle};

/// Why a schema-1 store could not be migrated.
#[derive(Debug)]
pub(super) enum MigrateError {
    Db(Box<dyn std::error::Error + Send + Sync>),
    Store(StoreError),
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for MigrateError {
    fn from(e: E) -> MigrateError {
        MigrateError::Db(e.into())
    }
}

/// Replays every decided height of a schema-1 store into the state tables
/// and returns the head and the heights replayed.
pub(super) fn schema1_to_2(
    tx: &redb::WriteTransaction,
    path: &Path,
) -> Result<(Head, u64), MigrateError> {
    let decided = tx.open_table(DECIDED)?;
    let mut accounts = tx.open_table(ACCOUNTS)?;
    let mut triangles = tx.open_table(TRIANGLES)?;
    let mut sum = Checksum::default();
    let mut head = Head::default();
    let mut heights = 0u64;
    for row in decided.iter()? {
        let (k, v) = row?;
        let height = k.value();
        let rec: DecidedRecord = borsh::from_slice(v.value()).map_err(|e| {
            MigrateError::Store(StoreError::Corrupt {
                path: path.to_owned(),
                what: "decided",
                height,
                reason: e.to_string(),
            })
        })?;
        let computed = rec.changes.root(&head.root);
        if computed != rec.root || rec.changes.height != height {
            return Err(MigrateError::Store(StoreError::RootMismatch {
                path: path.to_owned(),
                height,
                stored: crate::context::hex(&rec.root),
                computed: crate::context::hex(&computed),
            }));
        }
        let c = &rec.changes;
        let mut touched: std::collections::BTreeMap<[u8; 20], AccountRow> = Default::default();
        for u in c.nonces.iter() {
            let mut r = row_of(&accounts, &touched, &u.account)?;
            r.proofs += 1;
            touched.insert(u.account, r);
        }
        for l in &c.last {
            let mut r = row_of(&accounts, &touched, &l.account)?;
            r.last = Some((l.unix_ms, l.lat_bits, l.lon_bits));
            touched.insert(l.account, r);
        }
        for b in &c.balances {
            let mut r = row_of(&accounts, &touched, &b.account)?;
            r.balance_micro = b.balance_micro;
            touched.insert(b.account, r);
        }
        for (a, r) in &touched {
            put_account(&mut accounts, &mut sum, a, r)?;
        }
        for t in &c.triangles {
            let last_click_ms = match triangles.get(t.triangle.as_str())? {
                Some(v) => borsh::from_slice::<StoredTriangle>(v.value())?.last_click_ms,
                None => None,
            };
            let row = StoredTriangle {
                clicks: t.clicks,
                subdivided: t.subdivided,
                last_click_ms,
            };
            put_triangle(&mut triangles, &mut sum, &t.triangle, &row)?;
        }
        head.height = height;
        head.root = rec.root;
        head.accepted_total += c.accepted;
        heights += 1;
    }
    head.checksum = sum.to_bytes();
    debug_assert_eq!(heights, decided.len()?);
    drop((decided, accounts, triangles));
    tx.open_table(META)?
        .insert("head", borsh::to_vec(&head)?.as_slice())?;
    Ok((head, heights))
}

/// An account's row: as this height left it so far, else as stored.
fn row_of(
    accounts: &redb::Table<&[u8], &[u8]>,
    touched: &std::collections::BTreeMap<[u8; 20], AccountRow>,
    a: &[u8; 20],
) -> DbResult<AccountRow> {
    if let Some(r) = touched.get(a) {
        return Ok(*r);
    }
    Ok(match accounts.get(a.as_slice())? {
        Some(v) => borsh::from_slice(v.value())?,
        None => AccountRow {
            balance_micro: 0,
            proofs: 0,
            last: None,
        },
    })
}
