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

use std::collections::{BTreeMap, BTreeSet};

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

pub use changes::{
    BalanceChange, ChangeSet, ExecCode, LastChange, NonceUse, NonceUses, Rejection, TriangleChange,
};
pub use journal::{JournalBlock, JournalEntry, ResultJournal, JOURNAL_PROOFS_MAX};

/// The click that subdivides a triangle (Phase 2: the 11th accepted click).
pub const SUBDIVIDE_AT_CLICK: u8 = 11;
/// Phase 2's schema cap on a triangle's clicks (reached only at level 21,
/// where a triangle cannot subdivide).
pub const CLICKS_MAX: u8 = 28;
/// Domain separator of the state root.
pub const STATE_DOMAIN: &[u8] = b"STEP-STATE-v1\n";

/// A state root: see [`StateRoot::next`].
pub type StateRoot = [u8; 32];

/// A stored change set holds a field that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {field} {value:?} does not parse")]
pub struct ReplayError {
    pub field: &'static str,
    pub value: String,
}

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

/// The application state every validator derives (the chain state).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainState {
    /// Last executed height (0 before the first block).
    pub height: u64,
    /// State root after `height` (all zeros before the first block).
    pub root: StateRoot,
    pub last: BTreeMap<Address, LastProof>,
    pub nonces: BTreeSet<(Address, Nonce)>,
    /// Balances in micro-STEP.
    pub balances: BTreeMap<Address, u64>,
    pub triangles: BTreeMap<TriangleId, TriangleState>,
    /// Accepted proofs over all heights.
    pub accepted_total: u64,
    /// Accepted proofs per account (derived from `nonces`; not hashed into
    /// the root separately).
    pub proof_counts: BTreeMap<Address, u64>,
    /// Per-proof results of the latest blocks executed by this process (not
    /// state: neither hashed nor stored).
    pub journal: ResultJournal,
}

impl ChainState {
    /// The state root after [`ChainState::height`]: what the next block
    /// must carry as its previous root.
    pub fn state_root(&self) -> StateRoot {
        self.root
    }

    /// A triangle's state (a triangle never clicked: active, 0 clicks).
    pub fn triangle(&self, id: &TriangleId) -> TriangleState {
        self.triangles.get(id).copied().unwrap_or_default()
    }
}

step_engine::proof_state_over_tables!(ChainState);

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    pub changes: ChangeSet,
    pub root: StateRoot,
    /// One entry per proof of the block, in block order.
    pub results: Vec<ProofResult>,
}

impl ChainState {
    /// Executes the block decided at `height` and returns what changed.
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
    ) -> BlockOutcome {
        assert_eq!(height.0, self.height + 1, "blocks execute in height order");
        let mut changes = ChangeSet {
            height: height.0,
            value_id: value_id.0,
            ..ChangeSet::default()
        };
        let mut touched_accounts = BTreeSet::new();
        let mut touched_triangles = BTreeSet::new();
        let mut results = Vec::with_capacity(batches.iter().map(Batch::len).sum());
        for (bi, batch) in batches.iter().enumerate() {
            for (pi, p) in batch.proofs.iter().enumerate() {
                let result = self.apply_proof(limits, p, &mut touched_triangles);
                results.push(result);
                match result {
                    Ok(_) => {
                        touched_accounts.insert(p.account);
                        changes.nonces.0.push(NonceUse {
                            account: p.account.0,
                            nonce: p.nonce.as_str().to_owned(),
                        });
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
        for a in &touched_accounts {
            if let Some(l) = self.last.get(a) {
                changes.last.push(LastChange {
                    account: a.0,
                    unix_ms: l.unix_ms,
                    lat_bits: l.lat.to_bits(),
                    lon_bits: l.lon.to_bits(),
                });
            }
            changes.balances.push(BalanceChange {
                account: a.0,
                balance_micro: self.balances.get(a).copied().unwrap_or(0),
            });
        }
        for t in &touched_triangles {
            let s = self.triangle(t);
            changes.triangles.push(TriangleChange {
                triangle: t.to_string(),
                clicks: s.clicks,
                subdivided: s.subdivided,
            });
        }
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
        BlockOutcome {
            changes,
            root,
            results,
        }
    }

    fn apply_proof(
        &mut self,
        limits: &Limits,
        p: &Proof,
        touched: &mut BTreeSet<TriangleId>,
    ) -> ProofResult {
        let tri = self.triangle(&p.triangle);
        if tri.subdivided {
            return Err(ExecCode::TriangleSubdivided);
        }
        if tri.clicks >= CLICKS_MAX {
            return Err(ExecCode::TriangleExhausted);
        }
        check_stateful(limits, p, self).map_err(|r| ExecCode::of_stateful(&r))?;
        self.record(p.account, p.nonce, LastProof::of(p));
        *self.proof_counts.entry(p.account).or_insert(0) += 1;
        let level = p.triangle.level();
        let reward = reward_micro(level);
        let balance = self.balances.entry(p.account).or_insert(0);
        *balance = balance.saturating_add(reward);
        let balance_micro = *balance;
        let mut next = TriangleState {
            clicks: tri.clicks + 1,
            subdivided: false,
        };
        if next.clicks == SUBDIVIDE_AT_CLICK && level < LEVEL_MAX {
            next.subdivided = true;
            for k in 0..4 {
                if let Some(child) = p.triangle.child(k) {
                    self.triangles.entry(child).or_default();
                    touched.insert(child);
                }
            }
        }
        self.triangles.insert(p.triangle, next);
        touched.insert(p.triangle);
        Ok(Effects {
            reward_micro: reward,
            balance_micro,
            clicks: next.clicks,
            subdivided: next.subdivided,
        })
    }

    /// Applies a change set read back from the store (restart). The inverse
    /// of what [`ChainState::apply_block`] recorded; `root` is the stored root.
    pub fn replay_changes(
        &mut self,
        changes: &ChangeSet,
        root: StateRoot,
    ) -> Result<(), ReplayError> {
        let bad = |field, value: &String| ReplayError {
            field,
            value: value.clone(),
        };
        for u in changes.nonces.iter() {
            let nonce = Nonce::parse(&u.nonce).ok_or_else(|| bad("nonce", &u.nonce))?;
            self.nonces.insert((Address(u.account), nonce));
            *self.proof_counts.entry(Address(u.account)).or_insert(0) += 1;
        }
        for l in &changes.last {
            self.last.insert(
                Address(l.account),
                LastProof {
                    unix_ms: l.unix_ms,
                    lat: f64::from_bits(l.lat_bits),
                    lon: f64::from_bits(l.lon_bits),
                },
            );
        }
        for b in &changes.balances {
            self.balances.insert(Address(b.account), b.balance_micro);
        }
        for t in &changes.triangles {
            let id = TriangleId::parse(&t.triangle).map_err(|_| bad("triangle", &t.triangle))?;
            self.triangles.insert(
                id,
                TriangleState {
                    clicks: t.clicks,
                    subdivided: t.subdivided,
                },
            );
        }
        self.accepted_total += changes.accepted;
        self.height = changes.height;
        self.root = root;
        Ok(())
    }
}
