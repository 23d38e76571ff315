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
use sha2::{Digest, Sha256};
use step_engine::heuristics::{check_stateful, LastProof, Limits, ProofState};
use step_engine::pipeline::Batch;
use step_engine::proof::{Nonce, Proof};
use step_engine::reward::reward_micro;
use step_engine::triangle::LEVEL_MAX;
use step_engine::{Address, Reject, TriangleId};

use crate::context::{Height, ValueId};

/// The click that subdivides a triangle (Phase 2: the 11th accepted click).
pub const SUBDIVIDE_AT_CLICK: u8 = 11;
/// Phase 2's schema cap on a triangle's clicks (reached only at level 21,
/// where a triangle cannot subdivide).
pub const CLICKS_MAX: u8 = 28;
/// Domain separator of the state root.
pub const STATE_DOMAIN: &[u8] = b"STEP-STATE-v1\n";

/// A state root: see [`StateRoot::next`].
pub type StateRoot = [u8; 32];

/// Why execution rejected a proof: a **stable number** (see
/// [`ExecCode::number`]), part of the state root. The text ([`ExecCode::as_str`])
/// is for people and HTTP only: renaming it cannot fork the chain; changing a
/// number can, so numbers are never reused or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExecCode {
    /// `NONCE_REPLAY`: the (account, nonce) was used by an earlier proof.
    NonceReplay = 1,
    /// `TOO_FAST`: faster than the speed gate from the account's last proof,
    /// or not after it.
    TooFast = 2,
    /// `MORATORIUM`: inside the moratorium after the account's last proof.
    Moratorium = 3,
    /// `TRIANGLE_SUBDIVIDED`: the triangle was subdivided; mine a child.
    TriangleSubdivided = 4,
    /// `TRIANGLE_EXHAUSTED`: a level-21 triangle with 28 clicks.
    TriangleExhausted = 5,
    /// A stateful check failed with a code this table has no number for
    /// (none today: a new engine check gets a number of its own here).
    StatefulOther = 15,
}

impl ExecCode {
    /// Every code, by number.
    pub const ALL: [ExecCode; 6] = [
        ExecCode::NonceReplay,
        ExecCode::TooFast,
        ExecCode::Moratorium,
        ExecCode::TriangleSubdivided,
        ExecCode::TriangleExhausted,
        ExecCode::StatefulOther,
    ];

    /// The stable number the change set (and so the state root) records.
    pub const fn number(self) -> u8 {
        self as u8
    }

    pub fn from_number(n: u8) -> Option<ExecCode> {
        ExecCode::ALL.into_iter().find(|c| c.number() == n)
    }

    /// The wire text (`docs/ERROR_CODES.md`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecCode::NonceReplay => "NONCE_REPLAY",
            ExecCode::TooFast => "TOO_FAST",
            ExecCode::Moratorium => "MORATORIUM",
            ExecCode::TriangleSubdivided => "TRIANGLE_SUBDIVIDED",
            ExecCode::TriangleExhausted => "TRIANGLE_EXHAUSTED",
            ExecCode::StatefulOther => "INTERNAL_ERROR",
        }
    }

    /// The engine's code for a stateful rejection; `None` for the
    /// execution-only triangle codes.
    pub const fn engine_code(self) -> Option<step_engine::Code> {
        use step_engine::Code;
        match self {
            ExecCode::NonceReplay => Some(Code::NonceReplay),
            ExecCode::TooFast => Some(Code::TooFast),
            ExecCode::Moratorium => Some(Code::Moratorium),
            ExecCode::StatefulOther => Some(Code::InternalError),
            ExecCode::TriangleSubdivided | ExecCode::TriangleExhausted => None,
        }
    }

    /// The code of a failed [`check_stateful`].
    pub fn of_stateful(r: &Reject) -> ExecCode {
        match r {
            Reject::NonceReplay => ExecCode::NonceReplay,
            Reject::TooFast { .. } | Reject::NotAfterPrevious { .. } => ExecCode::TooFast,
            Reject::Moratorium { .. } => ExecCode::Moratorium,
            _ => ExecCode::StatefulOther,
        }
    }
}

impl BorshSerialize for ExecCode {
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(&[self.number()])
    }
}

impl BorshDeserialize for ExecCode {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let n = u8::deserialize_reader(reader)?;
        ExecCode::from_number(n).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown execution code {n}"),
            )
        })
    }
}

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
}

/// The old name, kept for the app loop (`app.rs`) and the store: io's HTTP
/// layer has an `AppState` of its own.
pub type AppState = ChainState;

impl ChainState {
    /// A triangle's state (a triangle never clicked: active, 0 clicks).
    pub fn triangle(&self, id: &TriangleId) -> TriangleState {
        self.triangles.get(id).copied().unwrap_or_default()
    }
}

impl ProofState for ChainState {
    fn last_proof(&self, account: &Address) -> Option<LastProof> {
        self.last.get(account).copied()
    }
    fn nonce_used(&self, account: &Address, nonce: &Nonce) -> bool {
        self.nonces.contains(&(*account, *nonce))
    }
    fn record(&mut self, account: Address, nonce: Nonce, last: LastProof) {
        self.nonces.insert((account, nonce));
        self.last.insert(account, last);
    }
}

/// An (account, nonce) a block used.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct NonceUse {
    pub account: [u8; 20],
    pub nonce: String,
}

/// The (account, nonce) pairs a block used, in application order.
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct NonceUses(pub Vec<NonceUse>);

impl NonceUses {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, NonceUse> {
        self.0.iter()
    }
}

/// `for (account, nonce) in &changes.nonces`: the store's unique
/// (account, nonce) index reads the pairs this way.
impl<'a> IntoIterator for &'a NonceUses {
    type Item = (&'a [u8; 20], &'a String);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, NonceUse>, fn(&'a NonceUse) -> Self::Item>;
    fn into_iter(self) -> Self::IntoIter {
        fn pair(u: &NonceUse) -> (&[u8; 20], &String) {
            (&u.account, &u.nonce)
        }
        self.0.iter().map(pair)
    }
}

/// An account's last accepted proof after a block.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct LastChange {
    pub account: [u8; 20],
    pub unix_ms: i64,
    /// IEEE-754 bits of the latitude.
    pub lat_bits: u64,
    /// IEEE-754 bits of the longitude.
    pub lon_bits: u64,
}

/// An account's balance after a block, micro-STEP.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BalanceChange {
    pub account: [u8; 20],
    pub balance_micro: u64,
}

/// A triangle's state after a block.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TriangleChange {
    /// The canonical `STEP-TRI-v1:…` id.
    pub triangle: String,
    pub clicks: u8,
    pub subdivided: bool,
}

/// A proof of the block that execution rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Rejection {
    /// Index of its batch in the block.
    pub batch: u32,
    /// Index of the proof in its batch.
    pub proof: u32,
    /// Recorded as its stable number.
    pub code: ExecCode,
}

/// What one block changed: the canonical input of the state root, and what
/// the store writes. Keys are sorted; values are the values after the block.
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChangeSet {
    pub height: u64,
    pub value_id: [u8; 32],
    /// (account, nonce) recorded, in application order.
    pub nonces: NonceUses,
    pub last: Vec<LastChange>,
    pub balances: Vec<BalanceChange>,
    /// Every touched triangle, children created by a subdivision included.
    pub triangles: Vec<TriangleChange>,
    pub rejected: Vec<Rejection>,
    pub accepted: u64,
}

/// Writes borsh's encoding straight into the hasher: nothing is allocated
/// and nothing can fail (see [`ChangeSet::root`]).
struct RootHasher(Sha256);

impl RootHasher {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(b);
    }
    fn u8(&mut self, v: u8) {
        self.0.update([v]);
    }
    fn u32(&mut self, v: u32) {
        self.0.update(v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.update(v.to_le_bytes());
    }
    /// A list's length, as borsh writes it (u32). A block's lists are far
    /// shorter than 2^32 (the wire form bounds a block); a longer one would
    /// saturate alike on every validator.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }
}

impl ChangeSet {
    /// `SHA-256(STATE_DOMAIN ‖ previous root ‖ borsh(self))`, with borsh's
    /// bytes written into the hasher field by field (equal to
    /// `borsh::to_vec(self)`: `change_set_root_is_borsh_of_the_change_set`).
    pub fn root(&self, previous: &StateRoot) -> StateRoot {
        let mut h = RootHasher(Sha256::new());
        h.bytes(STATE_DOMAIN);
        h.bytes(previous);
        h.u64(self.height);
        h.bytes(&self.value_id);
        h.len(self.nonces.len());
        for n in self.nonces.iter() {
            h.bytes(&n.account);
            h.str(&n.nonce);
        }
        h.len(self.last.len());
        for l in &self.last {
            h.bytes(&l.account);
            h.u64(l.unix_ms as u64);
            h.u64(l.lat_bits);
            h.u64(l.lon_bits);
        }
        h.len(self.balances.len());
        for b in &self.balances {
            h.bytes(&b.account);
            h.u64(b.balance_micro);
        }
        h.len(self.triangles.len());
        for t in &self.triangles {
            h.str(&t.triangle);
            h.u8(t.clicks);
            h.u8(u8::from(t.subdivided));
        }
        h.len(self.rejected.len());
        for r in &self.rejected {
            h.u32(r.batch);
            h.u32(r.proof);
            h.u8(r.code.number());
        }
        h.u64(self.accepted);
        h.0.finalize().into()
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
