//! Where execution reads and writes the chain state: the rows
//! ([`Account`], [`TriangleRow`], used (account, nonce) pairs), the
//! [`StateSource`] the store implements, the in-memory tables of a chain
//! without a store, and the byte-bounded caches in front of a store
//! (`docs/adr/0013-state-on-disk.md`).
//!
//! Every read goes, in order, through: the block being executed, the
//! executed blocks the store has not committed yet ([`ChainState::committed`]
//! moves them into the caches), the caches, then the store. The caches only
//! ever hold committed values, and they are written only under the chain
//! state's write lock, so a cached row always equals the stored one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use step_engine::heuristics::LastProof;
use step_engine::proof::Nonce;
use step_engine::{Address, TriangleId};

use super::TriangleState;

/// An account's row: its balance, its accepted proofs and its last one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Account {
    /// micro-STEP.
    pub balance_micro: u64,
    /// Accepted proofs (nonces used).
    pub proofs: u64,
    pub last: Option<LastProof>,
}

/// A triangle's row: its mining state and the timestamp of the last
/// accepted proof that clicked it (the proof's own time, which every
/// validator agrees on; `None` for a triangle never clicked, or clicked
/// before the store kept click times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TriangleRow {
    pub state: TriangleState,
    pub last_click_ms: Option<i64>,
}

/// The stored form of [`Account`] (floats as their IEEE-754 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccountRow {
    pub balance_micro: u64,
    pub proofs: u64,
    /// (unix ms, latitude bits, longitude bits) of the last accepted proof.
    pub last: Option<(i64, u64, u64)>,
}

impl From<&Account> for AccountRow {
    fn from(a: &Account) -> AccountRow {
        AccountRow {
            balance_micro: a.balance_micro,
            proofs: a.proofs,
            last: a
                .last
                .map(|l| (l.unix_ms, l.lat.to_bits(), l.lon.to_bits())),
        }
    }
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Account {
        Account {
            balance_micro: r.balance_micro,
            proofs: r.proofs,
            last: r.last.map(|(unix_ms, lat, lon)| LastProof {
                unix_ms,
                lat: f64::from_bits(lat),
                lon: f64::from_bits(lon),
            }),
        }
    }
}

/// The stored form of [`TriangleRow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredTriangle {
    pub clicks: u8,
    pub subdivided: bool,
    pub last_click_ms: Option<i64>,
}

impl From<&TriangleRow> for StoredTriangle {
    fn from(t: &TriangleRow) -> StoredTriangle {
        StoredTriangle {
            clicks: t.state.clicks,
            subdivided: t.state.subdivided,
            last_click_ms: t.last_click_ms,
        }
    }
}

impl From<StoredTriangle> for TriangleRow {
    fn from(t: StoredTriangle) -> TriangleRow {
        TriangleRow {
            state: TriangleState {
                clicks: t.clicks,
                subdivided: t.subdivided,
            },
            last_click_ms: t.last_click_ms,
        }
    }
}

/// A stored state row could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state {table} row {key}: {reason}")]
pub struct StateReadError {
    pub table: &'static str,
    pub key: String,
    pub reason: String,
}

/// Committed state rows, read by key (the store implements it).
pub trait StateSource: Send + Sync + std::fmt::Debug {
    fn account(&self, account: &Address) -> Result<Option<Account>, StateReadError>;
    fn triangle(&self, id: &TriangleId) -> Result<Option<TriangleRow>, StateReadError>;
    fn nonce_used(&self, account: &Address, nonce: &Nonce) -> Result<bool, StateReadError>;
}

/// The rows one block wrote (values after the block), in key order, and the
/// (account, nonce) pairs it used, in application order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateWrites {
    pub accounts: Vec<(Address, Account)>,
    pub triangles: Vec<(TriangleId, TriangleRow)>,
    pub nonces: Vec<(Address, Nonce)>,
}

/// The rows of the block being executed.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    pub accounts: BTreeMap<Address, Account>,
    pub triangles: BTreeMap<TriangleId, TriangleRow>,
    pub nonces: BTreeSet<(Address, Nonce)>,
}

/// A chain without a store: every row in memory (the single-process ledger
/// and tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryTables {
    pub accounts: BTreeMap<Address, Account>,
    pub triangles: BTreeMap<TriangleId, TriangleRow>,
    pub nonces: BTreeSet<(Address, Nonce)>,
}

/// The byte bounds of the caches in front of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBytes {
    pub accounts: u64,
    pub triangles: u64,
    pub nonces: u64,
}

impl CacheBytes {
    /// `total` split 1/2 accounts, 1/4 triangles, 1/4 nonces.
    pub fn split(total: u64) -> CacheBytes {
        CacheBytes {
            accounts: total / 2,
            triangles: total / 4,
            nonces: total / 4,
        }
    }

    pub fn total(&self) -> u64 {
        self.accounts + self.triangles + self.nonces
    }
}

/// What one cached entry costs, in bytes: the key, the value and
/// [`ENTRY_OVERHEAD_BYTES`] of the cache's own bookkeeping.
pub const ENTRY_OVERHEAD_BYTES: u32 = 96;
const ACCOUNT_ENTRY_BYTES: u32 = ENTRY_OVERHEAD_BYTES
    + std::mem::size_of::<Address>() as u32
    + std::mem::size_of::<Account>() as u32;
const TRIANGLE_ENTRY_BYTES: u32 = ENTRY_OVERHEAD_BYTES
    + std::mem::size_of::<TriangleId>() as u32
    + std::mem::size_of::<TriangleRow>() as u32;
const NONCE_ENTRY_BYTES: u32 =
    ENTRY_OVERHEAD_BYTES + std::mem::size_of::<(Address, Nonce)>() as u32;

/// The caches in front of a store, each bounded in bytes.
#[derive(Debug)]
struct Caches {
    bytes: CacheBytes,
    accounts: moka::sync::Cache<Address, Account>,
    triangles: moka::sync::Cache<TriangleId, TriangleRow>,
    /// Used pairs only (an unused pair is always read from the store).
    nonces: moka::sync::Cache<(Address, Nonce), ()>,
}

impl Caches {
    fn new(bytes: CacheBytes) -> Caches {
        Caches {
            bytes,
            accounts: moka::sync::Cache::builder()
                .max_capacity(bytes.accounts)
                .weigher(|_, _| ACCOUNT_ENTRY_BYTES)
                .build(),
            triangles: moka::sync::Cache::builder()
                .max_capacity(bytes.triangles)
                .weigher(|_, _| TRIANGLE_ENTRY_BYTES)
                .build(),
            nonces: moka::sync::Cache::builder()
                .max_capacity(bytes.nonces)
                .weigher(|_, _| NONCE_ENTRY_BYTES)
                .build(),
        }
    }
}

/// A store, its caches, and the executed blocks it has not committed yet.
#[derive(Debug)]
pub(super) struct Stored {
    source: Arc<dyn StateSource>,
    caches: Caches,
    /// (height, rows) of executed blocks awaiting their commit, oldest first.
    pending: VecDeque<(u64, Overlay)>,
}

/// Where a chain's rows live.
#[derive(Debug)]
pub(super) enum Tables {
    Memory(MemoryTables),
    Stored(Stored),
}

impl Default for Tables {
    fn default() -> Self {
        Tables::Memory(MemoryTables::default())
    }
}

impl Clone for Tables {
    /// A stored chain's clone shares the store and starts with empty caches.
    fn clone(&self) -> Self {
        match self {
            Tables::Memory(m) => Tables::Memory(m.clone()),
            Tables::Stored(s) => Tables::Stored(Stored {
                source: Arc::clone(&s.source),
                caches: Caches::new(s.caches.bytes),
                pending: s
                    .pending
                    .iter()
                    .map(|(h, o)| {
                        (
                            *h,
                            Overlay {
                                accounts: o.accounts.clone(),
                                triangles: o.triangles.clone(),
                                nonces: o.nonces.clone(),
                            },
                        )
                    })
                    .collect(),
            }),
        }
    }
}

impl Tables {
    pub fn stored(source: Arc<dyn StateSource>, bytes: CacheBytes) -> Tables {
        Tables::Stored(Stored {
            source,
            caches: Caches::new(bytes),
            pending: VecDeque::new(),
        })
    }

    pub fn memory(&self) -> Option<&MemoryTables> {
        match self {
            Tables::Memory(m) => Some(m),
            Tables::Stored(_) => None,
        }
    }

    pub fn account(&self, a: &Address) -> Result<Option<Account>, StateReadError> {
        match self {
            Tables::Memory(m) => Ok(m.accounts.get(a).copied()),
            Tables::Stored(s) => {
                if let Some(v) = s.pending.iter().rev().find_map(|(_, o)| o.accounts.get(a)) {
                    return Ok(Some(*v));
                }
                if let Some(v) = s.caches.accounts.get(a) {
                    return Ok(Some(v));
                }
                let v = s.source.account(a)?;
                if let Some(v) = v {
                    s.caches.accounts.insert(*a, v);
                }
                Ok(v)
            }
        }
    }

    pub fn triangle(&self, t: &TriangleId) -> Result<Option<TriangleRow>, StateReadError> {
        match self {
            Tables::Memory(m) => Ok(m.triangles.get(t).copied()),
            Tables::Stored(s) => {
                if let Some(v) = s.pending.iter().rev().find_map(|(_, o)| o.triangles.get(t)) {
                    return Ok(Some(*v));
                }
                if let Some(v) = s.caches.triangles.get(t) {
                    return Ok(Some(v));
                }
                let v = s.source.triangle(t)?;
                if let Some(v) = v {
                    s.caches.triangles.insert(*t, v);
                }
                Ok(v)
            }
        }
    }

    pub fn nonce_used(&self, a: &Address, n: &Nonce) -> Result<bool, StateReadError> {
        let key = (*a, *n);
        match self {
            Tables::Memory(m) => Ok(m.nonces.contains(&key)),
            Tables::Stored(s) => {
                if s.pending.iter().any(|(_, o)| o.nonces.contains(&key))
                    || s.caches.nonces.contains_key(&key)
                {
                    return Ok(true);
                }
                let used = s.source.nonce_used(a, n)?;
                if used {
                    s.caches.nonces.insert(key, ());
                }
                Ok(used)
            }
        }
    }

    /// Keeps the rows of the block executed at `height`: applied at once in
    /// memory, pending until [`Tables::committed`] in front of a store.
    pub fn executed(&mut self, height: u64, rows: Overlay) {
        match self {
            Tables::Memory(m) => {
                m.accounts.extend(rows.accounts);
                m.triangles.extend(rows.triangles);
                m.nonces.extend(rows.nonces);
            }
            Tables::Stored(s) => s.pending.push_back((height, rows)),
        }
    }

    /// The store committed every height up to `height`: their rows move
    /// from the pending blocks into the caches.
    pub fn committed(&mut self, height: u64) {
        let Tables::Stored(s) = self else {
            return;
        };
        while s.pending.front().is_some_and(|(h, _)| *h <= height) {
            let Some((_, rows)) = s.pending.pop_front() else {
                break;
            };
            for (k, v) in rows.accounts {
                s.caches.accounts.insert(k, v);
            }
            for (k, v) in rows.triangles {
                s.caches.triangles.insert(k, v);
            }
            for k in rows.nonces {
                s.caches.nonces.insert(k, ());
            }
        }
    }

    /// Executed heights the store has not committed yet.
    pub fn pending_heights(&self) -> usize {
        match self {
            Tables::Memory(_) => 0,
            Tables::Stored(s) => s.pending.len(),
        }
    }

    /// Bytes the caches hold now (their weighted size; 0 in memory).
    pub fn cached_bytes(&self) -> u64 {
        match self {
            Tables::Memory(_) => 0,
            Tables::Stored(s) => {
                s.caches.accounts.run_pending_tasks();
                s.caches.triangles.run_pending_tasks();
                s.caches.nonces.run_pending_tasks();
                s.caches.accounts.weighted_size()
                    + s.caches.triangles.weighted_size()
                    + s.caches.nonces.weighted_size()
            }
        }
    }
}
