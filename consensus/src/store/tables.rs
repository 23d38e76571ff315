//! The executed state's tables (schema 2, `docs/adr/0013-state-on-disk.md`):
//! accounts, triangles, the proofs finalized, the decision time of each
//! height, and the head row (height, root, accepted total, and a checksum of
//! the account and triangle rows). Rows are written in the transaction that
//! records their decided height; the store opens at its head, no replay.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use borsh::{BorshDeserialize, BorshSerialize};
use redb::{Database, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};
use step_engine::proof::Nonce;
use step_engine::{Address, TriangleId};

use super::{DbResult, StoreError};
use crate::execution::{
    Account, AccountRow, StateReadError, StateRoot, StateSource, StateWrites, StoredTriangle,
    TriangleRow,
};

/// The schema this binary writes. 1: the first stores (decided rows and the
/// nonce index only; the state was rebuilt by replaying every height).
pub const SCHEMA_VERSION: u32 = 2;

/// Key: `"schema"` (u32 LE) or `"head"` (borsh of [`Head`]).
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Key: account (20 bytes); value: borsh of [`AccountRow`].
pub(super) const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
/// Key: canonical `STEP-TRI-v1:…` id; value: borsh of [`StoredTriangle`].
pub(super) const TRIANGLES: TableDefinition<&str, &[u8]> = TableDefinition::new("triangles");
/// Key: proof id (SHA-256 of the signature); value: borsh of [`StoredProof`].
pub(super) const PROOFS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("proofs");
/// Key: height; value: the local wall-clock time it was committed, unix ms.
pub(super) const TIMES: TableDefinition<u64, i64> = TableDefinition::new("times");
/// The unique (account, nonce) index. Key: account (20 bytes) ‖ nonce
/// (UTF-8); value: the height that used it.
pub(super) const NONCES: TableDefinition<&[u8], u64> = TableDefinition::new("nonces");

/// The database, shared with the state's and the proofs' readers. The
/// [`super::RedbStore`] that opened it closes it when it drops, whoever
/// still holds a reader, so that a restarted node can open the file again;
/// a read after that fails with "the store is closed".
#[derive(Clone)]
pub struct SharedDb(Arc<RwLock<Option<Database>>>);

impl std::fmt::Debug for SharedDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedDb")
    }
}

impl SharedDb {
    pub(super) fn new(db: Database) -> SharedDb {
        SharedDb(Arc::new(RwLock::new(Some(db))))
    }

    /// Runs `f` on the open database.
    pub(super) fn with<T>(&self, f: impl FnOnce(&Database) -> DbResult<T>) -> DbResult<T> {
        let db = self.0.read().unwrap_or_else(PoisonError::into_inner);
        match db.as_ref() {
            Some(db) => f(db),
            None => Err("the store is closed".into()),
        }
    }

    /// Closes the database (waits for the reads in progress).
    pub(super) fn close(&self) {
        let db = self
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(db);
    }
}

/// Where the state stands: the last committed height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, BorshSerialize, BorshDeserialize)]
pub struct Head {
    pub height: u64,
    pub root: StateRoot,
    pub accepted_total: u64,
    /// [`Checksum`] of every account and triangle row.
    pub checksum: [u8; 32],
}

/// An order-independent checksum of a set of rows: the lane-wise (4 × u64)
/// wrapping sum of SHA-256(table ‖ key ‖ value) over the rows. A row's
/// change subtracts its old digest and adds its new one, so the checksum
/// is kept up to date at the cost of the rows written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checksum([u64; 4]);

impl Checksum {
    pub fn from_bytes(b: &[u8; 32]) -> Checksum {
        let mut lanes = [0u64; 4];
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *lane = u64::from_le_bytes(w);
        }
        Checksum(lanes)
    }

    pub fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, lane) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&lane.to_le_bytes());
        }
        out
    }

    fn digest(table: &str, key: &[u8], value: &[u8]) -> [u64; 4] {
        let mut h = Sha256::new();
        h.update(table.as_bytes());
        h.update([0]);
        h.update((key.len() as u32).to_le_bytes());
        h.update(key);
        h.update(value);
        Checksum::from_bytes(&h.finalize().into()).0
    }

    pub fn add(&mut self, table: &str, key: &[u8], value: &[u8]) {
        for (l, d) in self.0.iter_mut().zip(Checksum::digest(table, key, value)) {
            *l = l.wrapping_add(d);
        }
    }

    pub fn remove(&mut self, table: &str, key: &[u8], value: &[u8]) {
        for (l, d) in self.0.iter_mut().zip(Checksum::digest(table, key, value)) {
            *l = l.wrapping_sub(d);
        }
    }
}

/// One finalized proof as `GET /proof/{id}` answers it after a restart.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredProof {
    pub height: u64,
    pub account: [u8; 20],
    /// The canonical `STEP-TRI-v1:…` id.
    pub triangle: String,
    pub lat_bits: u64,
    pub lon_bits: u64,
    pub accuracy_bits: u64,
    pub timestamp: String,
    pub nonce: String,
    pub signature: [u8; 65],
    pub reward_micro: u64,
    pub balance_micro: u64,
    pub clicks: u8,
    pub subdivided: bool,
}

impl StoredProof {
    /// The row of proof `p` decided at `height` with result `r`: `None` for
    /// a proof execution rejected or one without a decoded signature (never
    /// in a batch).
    pub fn of_accepted(
        height: u64,
        p: &step_engine::Proof,
        r: &crate::execution::ProofResult,
    ) -> Option<StoredProof> {
        let (Ok(e), Ok(sig)) = (r, &p.signature) else {
            return None;
        };
        Some(StoredProof {
            height,
            account: p.account.0,
            triangle: p.triangle.to_string(),
            lat_bits: p.lat.to_bits(),
            lon_bits: p.lon.to_bits(),
            accuracy_bits: p.accuracy_m.to_bits(),
            timestamp: p.timestamp.as_str().to_owned(),
            nonce: p.nonce.as_str().to_owned(),
            signature: *sig,
            reward_micro: e.reward_micro,
            balance_micro: e.balance_micro,
            clicks: e.clicks,
            subdivided: e.subdivided,
        })
    }

    /// The proof id: SHA-256 of the signature.
    pub fn id(&self) -> [u8; 32] {
        Sha256::digest(self.signature).into()
    }
}

/// What a decided height writes beside its decided row: its state rows and
/// its accepted proofs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockRows {
    pub writes: StateWrites,
    pub proofs: Vec<StoredProof>,
}

pub(super) fn nonce_key(key: &mut Vec<u8>, account: &[u8; 20], nonce: &str) {
    key.clear();
    key.extend_from_slice(account);
    key.extend_from_slice(nonce.as_bytes());
}

fn encode<T: BorshSerialize>(v: &T) -> DbResult<Vec<u8>> {
    Ok(borsh::to_vec(v)?)
}

/// Writes one account row, keeping `sum` up to date.
pub(super) fn put_account(
    t: &mut redb::Table<&[u8], &[u8]>,
    sum: &mut Checksum,
    account: &[u8; 20],
    row: &AccountRow,
) -> DbResult<()> {
    let bytes = encode(row)?;
    if let Some(old) = t.insert(account.as_slice(), bytes.as_slice())? {
        sum.remove("accounts", account, old.value());
    }
    sum.add("accounts", account, &bytes);
    Ok(())
}

/// Writes one triangle row, keeping `sum` up to date.
pub(super) fn put_triangle(
    t: &mut redb::Table<&str, &[u8]>,
    sum: &mut Checksum,
    id: &str,
    row: &StoredTriangle,
) -> DbResult<()> {
    let bytes = encode(row)?;
    if let Some(old) = t.insert(id, bytes.as_slice())? {
        sum.remove("triangles", id.as_bytes(), old.value());
    }
    sum.add("triangles", id.as_bytes(), &bytes);
    Ok(())
}

/// Writes the state rows, proofs and time of one decided height, and its
/// head. Inside the transaction that writes its decided row.
pub(super) fn write_block(
    tx: &redb::WriteTransaction,
    height: u64,
    root: StateRoot,
    accepted: u64,
    rows: &BlockRows,
    time_ms: i64,
) -> DbResult<()> {
    let mut head = read_head(tx)?;
    let mut sum = Checksum::from_bytes(&head.checksum);
    {
        let mut t = tx.open_table(ACCOUNTS)?;
        for (a, acc) in &rows.writes.accounts {
            put_account(&mut t, &mut sum, &a.0, &AccountRow::from(acc))?;
        }
    }
    {
        let mut t = tx.open_table(TRIANGLES)?;
        let mut id = String::new();
        for (tri, row) in &rows.writes.triangles {
            use std::fmt::Write;
            id.clear();
            write!(id, "{tri}")?;
            put_triangle(&mut t, &mut sum, &id, &StoredTriangle::from(row))?;
        }
    }
    {
        let mut t = tx.open_table(PROOFS)?;
        for p in &rows.proofs {
            t.insert(p.id().as_slice(), encode(p)?.as_slice())?;
        }
    }
    tx.open_table(TIMES)?.insert(height, time_ms)?;
    head.height = height;
    head.root = root;
    head.accepted_total += accepted;
    head.checksum = sum.to_bytes();
    tx.open_table(META)?
        .insert("head", encode(&head)?.as_slice())?;
    Ok(())
}

pub(super) fn read_head(tx: &redb::WriteTransaction) -> DbResult<Head> {
    let t = tx.open_table(META)?;
    let v = t.get("head")?;
    match v {
        Some(v) => Ok(borsh::from_slice(v.value())?),
        None => Ok(Head::default()),
    }
}

/// What opening the store read and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// The schema found (0: a new store).
    pub schema_found: u32,
    /// Heights replayed to migrate a schema-1 store (0 otherwise).
    pub migrated_heights: u64,
    /// Rows read to check the state (head, last decided row, every account
    /// and triangle row): not the chain's length.
    pub rows_read: u64,
    pub head: Head,
}

/// Recomputes the checksum of the account and triangle rows and compares it
/// with the head's; checks the head against the last decided row.
pub(super) fn verify(
    db: &SharedDb,
    path: &Path,
    head: &Head,
    last_root: Option<(u64, StateRoot)>,
) -> Result<u64, StoreError> {
    let fail = |operation: &'static str| {
        move |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
            path: path.to_owned(),
            operation,
            reason: e.to_string(),
        }
    };
    if let Some((height, root)) = last_root {
        if (height, root) != (head.height, head.root) {
            return Err(StoreError::HeadMismatch {
                path: path.to_owned(),
                head_height: head.height,
                head_root: crate::context::hex(&head.root),
                decided_height: height,
                decided_root: crate::context::hex(&root),
            });
        }
    }
    let (sum, rows) = db
        .with(|db| -> DbResult<(Checksum, u64)> {
            let tx = db.begin_read()?;
            let mut sum = Checksum::default();
            let mut rows = 0u64;
            for row in tx.open_table(ACCOUNTS)?.iter()? {
                let (k, v) = row?;
                sum.add("accounts", k.value(), v.value());
                rows += 1;
            }
            for row in tx.open_table(TRIANGLES)?.iter()? {
                let (k, v) = row?;
                sum.add("triangles", k.value().as_bytes(), v.value());
                rows += 1;
            }
            Ok((sum, rows))
        })
        .map_err(fail("check state"))?;
    if sum.to_bytes() != head.checksum {
        return Err(StoreError::StateChecksum {
            path: path.to_owned(),
            height: head.height,
            stored: crate::context::hex(&head.checksum),
            computed: crate::context::hex(&sum.to_bytes()),
        });
    }
    Ok(rows)
}

/// The state tables as execution reads them.
#[derive(Debug)]
pub struct RedbSource {
    pub(super) db: SharedDb,
}

fn read_err(table: &'static str, key: String) -> impl Fn(String) -> StateReadError {
    move |reason| StateReadError {
        table,
        key: key.clone(),
        reason,
    }
}

impl RedbSource {
    fn get<T: BorshDeserialize>(
        &self,
        table: &'static str,
        key: String,
        f: impl FnOnce(&redb::ReadTransaction) -> DbResult<Option<Vec<u8>>>,
    ) -> Result<Option<T>, StateReadError> {
        let err = read_err(table, key);
        let bytes = self
            .db
            .with(|db| f(&db.begin_read()?))
            .map_err(|e| err(e.to_string()))?;
        bytes
            .map(|b| borsh::from_slice(&b).map_err(|e| err(e.to_string())))
            .transpose()
    }
}

impl StateSource for RedbSource {
    fn account(&self, account: &Address) -> Result<Option<Account>, StateReadError> {
        let row: Option<AccountRow> = self.get("accounts", account.to_string(), |tx| {
            Ok(tx
                .open_table(ACCOUNTS)?
                .get(account.0.as_slice())?
                .map(|v| v.value().to_vec()))
        })?;
        Ok(row.map(Account::from))
    }

    fn triangle(&self, id: &TriangleId) -> Result<Option<TriangleRow>, StateReadError> {
        let key = id.to_string();
        let row: Option<StoredTriangle> = self.get("triangles", key.clone(), |tx| {
            Ok(tx
                .open_table(TRIANGLES)?
                .get(key.as_str())?
                .map(|v| v.value().to_vec()))
        })?;
        Ok(row.map(TriangleRow::from))
    }

    fn nonce_used(&self, account: &Address, nonce: &Nonce) -> Result<bool, StateReadError> {
        let mut key = Vec::with_capacity(84);
        nonce_key(&mut key, &account.0, nonce.as_str());
        let err = read_err("nonces", format!("{account} {}", nonce.as_str()));
        self.db
            .with(|db| {
                let tx = db.begin_read()?;
                let used = tx.open_table(NONCES)?.get(key.as_slice())?.is_some();
                Ok(used)
            })
            .map_err(|e| err(e.to_string()))
    }
}
