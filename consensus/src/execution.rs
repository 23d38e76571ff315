//! Deterministic execution of decided blocks. Pure: no I/O, no clock.
//!
//! For each proof of the block, in order (batch by batch, proof by proof):
//!
//! 1. **Triangle gate.** A proof for a triangle whose state is `subdivided`
//!    is rejected with [`ExecCode::TriangleSubdivided`]; one for a level-21
//!    triangle that already has [`CLICKS_MAX`] clicks with
//!    [`ExecCode::TriangleExhausted`]. A triangle with no state yet is active
//!    with 0 clicks (the mesh is seeded lazily).
//! 2. **Stateful checks**: nonce → speed gate → moratorium
//!    ([`step_engine::heuristics::check_stateful`]), against the state left
//!    by every earlier proof. A failure rejects the proof with the engine's code.
//! 3. **Effects** of an accepted proof: the nonce and last position are
//!    recorded; the account earns [`step_engine::reward::reward_micro`] of
//!    the triangle's level (integer micro-STEP); the triangle's clicks go up
//!    by one, and the 11th click ([`SUBDIVIDE_AT_CLICK`]) below level 21
//!    makes it `subdivided` and creates its 4 children, active, at level + 1.
//!
//! A rejected proof changes nothing. Every validator applies the same blocks
//! in the same order to the same state, so it derives the same state and the
//! same [`StateRoot`] (`docs/CONSENSUS_SPEC.md`, "State root").

use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};

use step_engine::heuristics::{check_stateful, LastProof, Limits, ProofState};
use step_engine::pipeline::Batch;
use step_engine::proof::{Nonce, Proof};
use step_engine::reward::reward_micro;
use step_engine::triangle::LEVEL_MAX;
use step_engine::{Address, TriangleId};

use crate::context::{Height, ValueId};

mod changes;
mod journal;
mod state;

pub use changes::{
    BalanceChange, ChangeSet, ExecCode, LastChange, NonceUse, NonceUses, Rejection, TriangleChange,
};
pub use journal::{JournalBlock, JournalEntry, ResultJournal, JOURNAL_PROOFS_MAX};
pub use state::{
    Account, AccountRow, CacheBytes, MemoryTables, StateReadError, StateSource, StateWrites,
    StoredTriangle, TriangleRow, ENTRY_OVERHEAD_BYTES,
};
use state::{Overlay, Tables};

/// The click that subdivides a triangle (Phase 2: the 11th accepted click).
pub const SUBDIVIDE_AT_CLICK: u8 = 11;
/// Phase 2's schema cap on a triangle's clicks (reached only at level 21,
/// where a triangle cannot subdivide).
pub const CLICKS_MAX: u8 = 28;
/// Domain separator of the state root.
pub const STATE_DOMAIN: &[u8] = b"STEP-STATE-v1\n";

/// A state root: see [`StateRoot::next`].
pub type StateRoot = [u8; 32];

/// A triangle's mining state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, BorshSerialize, BorshDeserialize)]
pub struct TriangleState {
    pub clicks: u8,
    pub subdivided: bool,
}

impl TriangleState {
    /// No more clicks: [`CLICKS_MAX`] reached (only at level 21, where a
    /// triangle cannot subdivide). Execution rejects further proofs with
    /// [`ExecCode::TriangleExhausted`].
    pub fn is_exhausted(&self) -> bool {
        !self.subdivided && self.clicks >= CLICKS_MAX
    }
}

/// The application state every validator derives (the chain state): its
/// height, root and totals here, its rows in memory or in a store
/// (`state.rs`, `docs/adr/0013-state-on-disk.md`).
#[derive(Debug, Clone, Default)]
pub struct ChainState {
    /// Last executed height (0 before the first block).
    pub height: u64,
    /// State root after `height` (all zeros before the first block).
    pub root: StateRoot,
    /// Accepted proofs over all heights.
    pub accepted_total: u64,
    /// Per-proof results of the latest blocks executed by this process (not
    /// state: neither hashed nor stored).
    pub journal: ResultJournal,
    tables: Tables,
}

/// Two states are equal when their heights, roots and totals are (the root
/// commits to every row; the journal and the caches are not state).
impl PartialEq for ChainState {
    fn eq(&self, other: &Self) -> bool {
        (self.height, self.root, self.accepted_total)
            == (other.height, other.root, other.accepted_total)
    }
}

impl ChainState {
    /// A state whose journal keeps at most `max_proofs` results.
    pub fn with_journal(journal: ResultJournal) -> ChainState {
        ChainState {
            journal,
            ..ChainState::default()
        }
    }

    /// The state at `height` (root `root`, `accepted_total` proofs) whose
    /// rows are `source`'s, read through caches of `cache` bytes.
    pub fn on_store(
        height: u64,
        root: StateRoot,
        accepted_total: u64,
        source: Arc<dyn StateSource>,
        cache: CacheBytes,
    ) -> ChainState {
        ChainState::at(height, root, accepted_total, Tables::stored(source, cache))
    }

    fn at(height: u64, root: StateRoot, accepted_total: u64, tables: Tables) -> ChainState {
        ChainState {
            height,
            root,
            accepted_total,
            journal: ResultJournal::default(),
            tables,
        }
    }

    /// The state at `height` (root `root`, `accepted_total` proofs) whose
    /// rows are `tables`, in memory (an initial state, or a chain without a
    /// store).
    pub fn in_memory(
        height: u64,
        root: StateRoot,
        accepted_total: u64,
        tables: MemoryTables,
    ) -> ChainState {
        ChainState::at(height, root, accepted_total, Tables::Memory(tables))
    }

    /// Every row, for a state kept in memory (`None` in front of a store).
    pub fn memory(&self) -> Option<&MemoryTables> {
        self.tables.memory()
    }

    /// An account's row (`None`: no accepted proof yet).
    pub fn account(&self, a: &Address) -> Result<Option<Account>, StateReadError> {
        self.tables.account(a)
    }

    /// A triangle's row (a triangle never clicked: active, 0 clicks).
    pub fn triangle_row(&self, id: &TriangleId) -> Result<TriangleRow, StateReadError> {
        Ok(self.tables.triangle(id)?.unwrap_or_default())
    }

    /// The state root after [`ChainState::height`]: what the next block
    /// must carry as its previous root.
    pub fn state_root(&self) -> StateRoot {
        self.root
    }

    /// A triangle's state (a triangle never clicked: active, 0 clicks).
    pub fn triangle(&self, id: &TriangleId) -> Result<TriangleState, StateReadError> {
        Ok(self.triangle_row(id)?.state)
    }

    pub fn nonce_used(&self, a: &Address, n: &Nonce) -> Result<bool, StateReadError> {
        self.tables.nonce_used(a, n)
    }

    /// The store committed every height up to `height` (see `state.rs`).
    pub fn committed(&mut self, height: u64) {
        self.tables.committed(height);
    }

    /// Executed heights whose rows the store has not committed yet.
    pub fn pending_heights(&self) -> usize {
        self.tables.pending_heights()
    }

    /// Bytes the caches in front of the store hold now.
    pub fn cached_bytes(&self) -> u64 {
        self.tables.cached_bytes()
    }
}

/// What the stateful checks see of one proof's account, read before them.
struct Prefetched {
    nonce_used: bool,
    last: Option<LastProof>,
}

impl ProofState for Prefetched {
    fn last_proof(&self, _: &Address) -> Option<LastProof> {
        self.last
    }
    fn nonce_used(&self, _: &Address, _: &Nonce) -> bool {
        self.nonce_used
    }
    /// [`check_stateful`] only reads; execution records into its overlay.
    fn record(&mut self, _: Address, _: Nonce, last: LastProof) {
        self.nonce_used = true;
        self.last = Some(last);
    }
}

/// What an accepted proof did, with the state right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// Micro-STEP credited.
    pub reward_micro: u64,
    /// The account's balance right after this proof.
    pub balance_micro: u64,
    /// The triangle's clicks right after this proof.
    pub clicks: u8,
    /// Whether this click subdivided the triangle.
    pub subdivided: bool,
}

/// One proof's result, in block order (batch by batch, proof by proof).
pub type ProofResult = Result<Effects, ExecCode>;

/// The result of executing one block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockOutcome {
    pub changes: ChangeSet,
    pub root: StateRoot,
    /// One entry per proof of the block, in block order.
    pub results: Vec<ProofResult>,
    /// The rows the block wrote, for the store.
    pub writes: StateWrites,
}

impl ChainState {
    /// Executes the block decided at `height` and returns what changed. A
    /// state row that cannot be read fails the block (and changes nothing).
    ///
    /// # Panics
    ///
    /// If `height` is not `self.height + 1` (the caller's bug).
    pub fn apply_block(
        &mut self,
        limits: &Limits,
        height: Height,
        value_id: ValueId,
        batches: &[Batch],
    ) -> Result<BlockOutcome, StateReadError> {
        assert_eq!(height.0, self.height + 1, "blocks execute in height order");
        let mut changes = ChangeSet {
            height: height.0,
            value_id: value_id.0,
            ..ChangeSet::default()
        };
        let mut rows = Overlay::default();
        let mut results = Vec::with_capacity(batches.iter().map(Batch::len).sum());
        let mut nonces = Vec::new();
        for (bi, batch) in batches.iter().enumerate() {
            for (pi, p) in batch.proofs.iter().enumerate() {
                let result = self.apply_proof(limits, p, &mut rows)?;
                results.push(result);
                match result {
                    Ok(_) => {
                        changes.nonces.0.push(NonceUse {
                            account: p.account.0,
                            nonce: p.nonce.as_str().to_owned(),
                        });
                        nonces.push((p.account, p.nonce));
                        changes.accepted += 1;
                    }
                    Err(code) => changes.rejected.push(Rejection {
                        batch: u32::try_from(bi).unwrap_or(u32::MAX),
                        proof: u32::try_from(pi).unwrap_or(u32::MAX),
                        code,
                    }),
                }
            }
        }
        for (a, row) in &rows.accounts {
            if let Some(l) = row.last {
                changes.last.push(LastChange {
                    account: a.0,
                    unix_ms: l.unix_ms,
                    lat_bits: l.lat.to_bits(),
                    lon_bits: l.lon.to_bits(),
                });
            }
            changes.balances.push(BalanceChange {
                account: a.0,
                balance_micro: row.balance_micro,
            });
        }
        for (t, row) in &rows.triangles {
            changes.triangles.push(TriangleChange {
                triangle: t.to_string(),
                clicks: row.state.clicks,
                subdivided: row.state.subdivided,
            });
        }
        let writes = StateWrites {
            accounts: rows.accounts.iter().map(|(k, v)| (*k, *v)).collect(),
            triangles: rows.triangles.iter().map(|(k, v)| (*k, *v)).collect(),
            nonces,
        };
        self.tables.executed(height.0, rows);
        self.accepted_total += changes.accepted;
        let root = changes.root(&self.root);
        self.height = height.0;
        self.root = root;
        let proofs = batches.iter().flat_map(|b| b.proofs.iter());
        let entries = proofs
            .zip(&results)
            .filter_map(|(p, r)| {
                p.signature.as_ref().ok().map(|s| JournalEntry {
                    signature: *s,
                    result: *r,
                })
            })
            .collect();
        self.journal.push(JournalBlock {
            height: height.0,
            entries,
        });
        Ok(BlockOutcome {
            changes,
            root,
            results,
            writes,
        })
    }

    /// A triangle's row as the block left it so far.
    fn row_of(&self, rows: &Overlay, t: &TriangleId) -> Result<TriangleRow, StateReadError> {
        match rows.triangles.get(t) {
            Some(r) => Ok(*r),
            None => Ok(self.tables.triangle(t)?.unwrap_or_default()),
        }
    }

    fn apply_proof(
        &self,
        limits: &Limits,
        p: &Proof,
        rows: &mut Overlay,
    ) -> Result<ProofResult, StateReadError> {
        let tri = self.row_of(rows, &p.triangle)?.state;
        if tri.subdivided {
            return Ok(Err(ExecCode::TriangleSubdivided));
        }
        if tri.clicks >= CLICKS_MAX {
            return Ok(Err(ExecCode::TriangleExhausted));
        }
        let account = match rows.accounts.get(&p.account) {
            Some(a) => *a,
            None => self.tables.account(&p.account)?.unwrap_or_default(),
        };
        let view = Prefetched {
            nonce_used: rows.nonces.contains(&(p.account, p.nonce))
                || self.tables.nonce_used(&p.account, &p.nonce)?,
            last: account.last,
        };
        if let Err(r) = check_stateful(limits, p, &view) {
            return Ok(Err(ExecCode::of_stateful(&r)));
        }
        rows.nonces.insert((p.account, p.nonce));
        let level = p.triangle.level();
        let reward = reward_micro(level);
        let after = Account {
            balance_micro: account.balance_micro.saturating_add(reward),
            proofs: account.proofs + 1,
            last: Some(LastProof::of(p)),
        };
        rows.accounts.insert(p.account, after);
        let mut next = TriangleState {
            clicks: tri.clicks + 1,
            subdivided: false,
        };
        if next.clicks == SUBDIVIDE_AT_CLICK && level < LEVEL_MAX {
            next.subdivided = true;
            for k in 0..4 {
                if let Some(child) = p.triangle.child(k) {
                    let row = self.row_of(rows, &child)?;
                    rows.triangles.insert(child, row);
                }
            }
        }
        rows.triangles.insert(
            p.triangle,
            TriangleRow {
                state: next,
                last_click_ms: Some(p.timestamp.unix_ms()),
            },
        );
        Ok(Ok(Effects {
            reward_micro: reward,
            balance_micro: after.balance_micro,
            clicks: next.clicks,
            subdivided: next.subdivided,
        }))
    }
}
