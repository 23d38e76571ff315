//! Durable application state: decided blocks with their certificates, the
//! change set and state root of every height, evidence, and the undecided
//! proposals a restarted validator may still need (`docs/adr/0021-embedded-store.md`).
//!
//! [`Store`] is the interface the app uses (and the node's `io` crate can
//! reuse); [`RedbStore`] is the implementation on `redb`. Every decided
//! height is written in one transaction: block, certificate, change set and
//! root are either all there or none is.

use std::path::{Path, PathBuf};

use borsh::{BorshDeserialize, BorshSerialize};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::execution::{ChainState, ChangeSet, StateRoot};

/// One decided height as stored.
#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct DecidedRecord {
    pub height: u64,
    /// borsh of [`crate::block::BlockData`].
    pub block: Vec<u8>,
    /// borsh of the commit certificate (`crate::codec::certificate_to_wire`).
    pub certificate: Vec<u8>,
    pub changes: ChangeSet,
    pub root: StateRoot,
}

/// A proposal received (or made) but not decided yet.
#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct UndecidedRecord {
    pub height: u64,
    pub round: i64,
    pub value_id: [u8; 32],
    /// borsh of malachite's `ProposedValue`.
    pub proposed: Vec<u8>,
    /// borsh of [`crate::block::BlockData`].
    pub block: Vec<u8>,
}

/// A store failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    #[error("store {path}: {operation} failed: {reason}")]
    Backend {
        path: PathBuf,
        operation: &'static str,
        reason: String,
    },
    #[error("store {path}: ({account}, nonce {nonce:?}) was already used at height {first}; height {height} uses it again")]
    NonceReused {
        path: PathBuf,
        account: String,
        nonce: String,
        first: u64,
        height: u64,
    },
    #[error("store {path}: record {what} at height {height} does not encode: {reason}")]
    Encode {
        path: PathBuf,
        what: &'static str,
        height: u64,
        reason: String,
    },
    #[error("store {path}: record {what} at height {height} does not decode: {reason}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        height: u64,
        reason: String,
    },
}

/// What the app needs from durable storage.
pub trait Store: Send + 'static {
    /// Writes one decided height atomically.
    fn commit_decided(&mut self, record: &DecidedRecord) -> Result<(), StoreError>;
    fn decided(&self, height: u64) -> Result<Option<DecidedRecord>, StoreError>;
    /// The height whose block used (account, nonce), from the unique
    /// (account, nonce) index that `commit_decided` maintains.
    fn nonce_height(&self, account: &[u8; 20], nonce: &str) -> Result<Option<u64>, StoreError>;
    /// The lowest and highest decided heights, if any.
    fn decided_range(&self) -> Result<Option<(u64, u64)>, StoreError>;
    /// Rebuilds the application state from every stored change set, applied
    /// onto `base` (the chain's initial state: [`ChainState::default`], or
    /// [`ChainState::from_initial`]'s).
    fn load_state(&self, base: ChainState) -> Result<ChainState, StoreError>;
    /// Keeps the misbehaviour evidence seen when `height` was finalized.
    fn put_evidence(&mut self, height: u64, evidence: &[u8]) -> Result<(), StoreError>;
    fn evidence(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keeps evidence that validators attested the invalid batch `digest`
    /// (borsh `AttestEvidence`).
    fn put_attest_evidence(&mut self, digest: &[u8; 32], evidence: &[u8])
        -> Result<(), StoreError>;
    /// Every attestation evidence record kept, in digest order.
    fn attest_evidence(&self) -> Result<Vec<Vec<u8>>, StoreError>;
    fn put_undecided(&mut self, record: &UndecidedRecord) -> Result<(), StoreError>;
    /// Undecided proposals at `height` (every round).
    fn undecided(&self, height: u64) -> Result<Vec<UndecidedRecord>, StoreError>;
    /// Drops undecided proposals at or below `height`.
    fn prune_undecided(&mut self, height: u64) -> Result<(), StoreError>;
}

/// Reads decided records from a running node's store ([`Node::decided_reader`]).
#[derive(Debug, Clone)]
pub struct DecidedReader {
    store: std::sync::Weak<std::sync::Mutex<RedbStore>>,
}

impl DecidedReader {
    pub(crate) fn new(store: std::sync::Weak<std::sync::Mutex<RedbStore>>) -> DecidedReader {
        DecidedReader { store }
    }

    /// The decided record of `height`, read on a blocking thread.
    pub async fn decided(
        &self,
        height: u64,
    ) -> Result<Option<DecidedRecord>, crate::ConsensusNodeError> {
        self.read(move |s| s.decided(height)).await
    }

    /// The height whose block used (account, nonce), from the store's index.
    pub async fn nonce_height(
        &self,
        account: [u8; 20],
        nonce: String,
    ) -> Result<Option<u64>, crate::ConsensusNodeError> {
        self.read(move |s| s.nonce_height(&account, &nonce)).await
    }

    async fn read<V: Send + 'static>(
        &self,
        f: impl FnOnce(&RedbStore) -> Result<V, StoreError> + Send + 'static,
    ) -> Result<V, crate::ConsensusNodeError> {
        let store = self
            .store
            .upgrade()
            .ok_or(crate::ConsensusNodeError::Stopped)?;
        tokio::task::spawn_blocking(move || {
            f(&store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner))
        })
        .await
        .map_err(|_| crate::ConsensusNodeError::Stopped)?
        .map_err(crate::ConsensusNodeError::from)
    }
}

const DECIDED: TableDefinition<u64, &[u8]> = TableDefinition::new("decided");
const EVIDENCE: TableDefinition<u64, &[u8]> = TableDefinition::new("evidence");
/// Attestation evidence, keyed by the invalid batch's digest.
const ATTEST_EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("attest_evidence");
/// The unique (account, nonce) index. Key: account (20 bytes) ‖ nonce
/// (UTF-8); value: the height that used it.
const NONCES: TableDefinition<&[u8], u64> = TableDefinition::new("nonces");
/// Key: height (8 bytes BE) ‖ round (8 bytes BE, offset) ‖ value id.
const UNDECIDED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("undecided");

/// redb's errors, boxed inside the store's closures.
type DbResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// [`Store`] on a `redb` file.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn undecided_key(height: u64, round: i64, value_id: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(48);
    k.extend_from_slice(&height.to_be_bytes());
    k.extend_from_slice(&(round as u64 ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(value_id);
    k
}

impl RedbStore {
    /// Opens (or creates) the store at `path`, with the default page cache
    /// ([`crate::config::DEFAULT_STORE_CACHE_BYTES`]).
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        RedbStore::open_with_cache(path, crate::config::DEFAULT_STORE_CACHE_BYTES)
    }

    /// Opens (or creates) the store at `path` with a page cache of at most
    /// `cache_bytes`: the bound on the memory the store keeps.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<RedbStore, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: Box::new(e),
            })?;
        let store = RedbStore {
            db,
            path: path.to_owned(),
        };
        store.write("create tables", |tx| {
            tx.open_table(DECIDED)?;
            tx.open_table(EVIDENCE)?;
            tx.open_table(ATTEST_EVIDENCE)?;
            tx.open_table(UNDECIDED)?;
            tx.open_table(NONCES)?;
            Ok(())
        })?;
        Ok(store)
    }

    fn fail(&self, operation: &'static str) -> impl Fn(String) -> StoreError + '_ {
        move |reason| StoreError::Backend {
            path: self.path.clone(),
            operation,
            reason,
        }
    }

    fn write(
        &self,
        operation: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> DbResult<()>,
    ) -> Result<(), StoreError> {
        let fail = self.fail(operation);
        let tx = self.db.begin_write().map_err(|e| fail(e.to_string()))?;
        f(&tx).map_err(|e| fail(e.to_string()))?;
        tx.commit().map_err(|e| fail(e.to_string()))
    }

    fn read<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&redb::ReadTransaction) -> DbResult<T>,
    ) -> Result<T, StoreError> {
        let fail = self.fail(operation);
        let tx = self.db.begin_read().map_err(|e| fail(e.to_string()))?;
        f(&tx).map_err(|e| fail(e.to_string()))
    }

    fn encode<T: BorshSerialize>(
        &self,
        what: &'static str,
        height: u64,
        v: &T,
    ) -> Result<Vec<u8>, StoreError> {
        borsh::to_vec(v).map_err(|e| StoreError::Encode {
            path: self.path.clone(),
            what,
            height,
            reason: e.to_string(),
        })
    }

    fn decode<T: BorshDeserialize>(
        &self,
        what: &'static str,
        height: u64,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        borsh::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            what,
            height,
            reason: e.to_string(),
        })
    }
}

impl Store for RedbStore {
    fn commit_decided(&mut self, record: &DecidedRecord) -> Result<(), StoreError> {
        let height = record.height;
        let bytes = self.encode("decided", height, record)?;
        let mut reused = None;
        self.write("commit decided", |tx| {
            let mut nonces = tx.open_table(NONCES)?;
            let mut key = Vec::with_capacity(84);
            for (account, nonce) in &record.changes.nonces {
                key.clear();
                key.extend_from_slice(account);
                key.extend_from_slice(nonce.as_bytes());
                let first = nonces.insert(key.as_slice(), height)?.map(|v| v.value());
                if let Some(first) = first.filter(|f| *f != height) {
                    // Execution never accepts a used nonce: refuse to commit
                    // rather than store a double spend (the transaction is
                    // dropped, so nothing of this height is written).
                    reused = Some((*account, nonce.clone(), first));
                    return Err("unique (account, nonce) index violated".into());
                }
            }
            drop(nonces);
            tx.open_table(DECIDED)?.insert(height, bytes.as_slice())?;
            Ok(())
        })
        .map_err(|e| match reused.take() {
            Some((account, nonce, first)) => StoreError::NonceReused {
                path: self.path.clone(),
                account: crate::context::hex(&account),
                nonce,
                first,
                height,
            },
            None => e,
        })
    }

    fn nonce_height(&self, account: &[u8; 20], nonce: &str) -> Result<Option<u64>, StoreError> {
        let mut key = account.to_vec();
        key.extend_from_slice(nonce.as_bytes());
        self.read("read nonce index", |tx| {
            Ok(tx
                .open_table(NONCES)?
                .get(key.as_slice())?
                .map(|v| v.value()))
        })
    }

    fn decided(&self, height: u64) -> Result<Option<DecidedRecord>, StoreError> {
        let bytes = self.read("read decided", |tx| {
            let t = tx.open_table(DECIDED)?;
            Ok(t.get(height)?.map(|v| v.value().to_vec()))
        })?;
        bytes
            .map(|b| self.decode("decided", height, &b))
            .transpose()
    }

    fn decided_range(&self) -> Result<Option<(u64, u64)>, StoreError> {
        self.read("read decided range", |tx| {
            let t = tx.open_table(DECIDED)?;
            let first = t.first()?.map(|(k, _)| k.value());
            let last = t.last()?.map(|(k, _)| k.value());
            Ok(first.zip(last))
        })
    }

    fn load_state(&self, base: ChainState) -> Result<ChainState, StoreError> {
        let rows: Vec<(u64, Vec<u8>)> = self.read("load state", |tx| {
            let t = tx.open_table(DECIDED)?;
            let mut out = Vec::with_capacity(t.len()? as usize);
            for row in t.iter()? {
                let (k, v) = row?;
                out.push((k.value(), v.value().to_vec()));
            }
            Ok(out)
        })?;
        let mut state = base;
        for (height, bytes) in rows {
            let rec: DecidedRecord = self.decode("decided", height, &bytes)?;
            state
                .replay_changes(&rec.changes, rec.root)
                .map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    what: "change set",
                    height,
                    reason: e.to_string(),
                })?;
        }
        Ok(state)
    }

    fn put_evidence(&mut self, height: u64, evidence: &[u8]) -> Result<(), StoreError> {
        self.write("put evidence", |tx| {
            tx.open_table(EVIDENCE)?.insert(height, evidence)?;
            Ok(())
        })
    }

    fn evidence(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read("read evidence", |tx| {
            let t = tx.open_table(EVIDENCE)?;
            Ok(t.get(height)?.map(|v| v.value().to_vec()))
        })
    }

    fn put_attest_evidence(
        &mut self,
        digest: &[u8; 32],
        evidence: &[u8],
    ) -> Result<(), StoreError> {
        self.write("put attestation evidence", |tx| {
            tx.open_table(ATTEST_EVIDENCE)?
                .insert(digest.as_slice(), evidence)?;
            Ok(())
        })
    }

    fn attest_evidence(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read("read attestation evidence", |tx| {
            let t = tx.open_table(ATTEST_EVIDENCE)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                out.push(row?.1.value().to_vec());
            }
            Ok(out)
        })
    }

    fn put_undecided(&mut self, record: &UndecidedRecord) -> Result<(), StoreError> {
        let key = undecided_key(record.height, record.round, &record.value_id);
        let bytes = self.encode("undecided", record.height, record)?;
        self.write("put undecided", |tx| {
            tx.open_table(UNDECIDED)?
                .insert(key.as_slice(), bytes.as_slice())?;
            Ok(())
        })
    }

    fn undecided(&self, height: u64) -> Result<Vec<UndecidedRecord>, StoreError> {
        let lo = height.to_be_bytes();
        let hi = (height + 1).to_be_bytes();
        let rows: Vec<Vec<u8>> = self.read("read undecided", |tx| {
            let t = tx.open_table(UNDECIDED)?;
            let mut out = Vec::new();
            for row in t.range(lo.as_slice()..hi.as_slice())? {
                out.push(row?.1.value().to_vec());
            }
            Ok(out)
        })?;
        rows.iter()
            .map(|b| self.decode("undecided", height, b))
            .collect()
    }

    fn prune_undecided(&mut self, height: u64) -> Result<(), StoreError> {
        let hi = (height + 1).to_be_bytes();
        self.write("prune undecided", |tx| {
            let mut t = tx.open_table(UNDECIDED)?;
            t.retain_in(..hi.as_slice(), |_, _| false)?;
            Ok(())
        })
    }
}
