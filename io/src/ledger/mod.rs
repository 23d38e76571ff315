//! The [`Ledger`]: what the HTTP layer needs from a node, whatever finalizes
//! its proofs. [`LocalLedger`] is the single-process implementation (engine
//! pipeline + in-process, in-order commit); the consensus backend (issue #5)
//! will implement the same trait, and the HTTP layer will not change.
//!
//! # Proof ids
//!
//! A proof's id is the lowercase hex of SHA-256 over its 65 signature bytes
//! (r ‖ s ‖ v) — 64 characters. The signature policy (docs/adr/0002: v ∈
//! {27, 28}, low s, exactly 65 bytes) gives every signature exactly one
//! accepted encoding, and the signature commits to the account and nonce, so
//! two accepted proofs can share an id only if they share (account, nonce),
//! which the replay check forbids. The id is known as soon as the body is
//! parsed, before any verification; a *rejected* body may carry the id of an
//! accepted proof (an exact replay does), so ids are only recorded for
//! accepted proofs.

mod chain;
mod consensus;
mod intake;
mod local;

pub use consensus::{ConsensusLedger, ConsensusLedgerError};
pub use local::{pipeline_config, system_clock, LocalLedger};

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use step_engine::{Address, Limits, Proof, Reject, TriangleId};
use tokio::sync::{broadcast, oneshot};

/// A proof id: SHA-256 of the 65 signature bytes. See the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProofId(pub [u8; 32]);

impl ProofId {
    pub fn of_signature(sig: &[u8; 65]) -> ProofId {
        ProofId(Sha256::digest(sig).into())
    }

    /// The id of a parsed proof; `None` if its signature could not be decoded
    /// (such a proof is always rejected).
    pub fn of_proof(p: &Proof) -> Option<ProofId> {
        p.signature.as_ref().ok().map(ProofId::of_signature)
    }

    /// Parses 64 hex digits (either case).
    pub fn parse(s: &str) -> Option<ProofId> {
        unhex(s).map(ProofId)
    }
}

impl std::fmt::Display for ProofId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl std::fmt::Debug for ProofId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Exactly `2 × N` hex digits (either case) as bytes.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[usize::from(b >> 4)] as char);
        s.push(D[usize::from(b & 15)] as char);
    }
    s
}

/// A proof the pipeline accepted; it is not final yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pending {
    pub id: ProofId,
    pub account: Address,
    pub triangle: TriangleId,
    pub reward_micro: u64,
}

/// A proof included in a finalized block, with the state right after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Final {
    pub id: ProofId,
    pub account: Address,
    pub triangle: TriangleId,
    pub reward_micro: u64,
    /// The account's balance right after this proof, micro-STEP.
    pub balance_micro: u64,
    /// The triangle's clicks right after this proof.
    pub clicks: u32,
    pub height: u64,
    /// The block's time, unix ms.
    pub time_ms: i64,
}

/// Why waiting for finality ended without a [`Final`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FinalityError {
    #[error("no pending or final proof has this id")]
    Unknown,
    /// Accepted by the pipeline, rejected when its block was executed.
    #[error("rejected at execution: {0}")]
    Rejected(Reject),
    /// Accepted by this node's pipeline, rejected when the decided block
    /// executed (consensus backend: another validator's proof came first).
    #[error("rejected at execution: {}", .0.as_str())]
    Execution(step_consensus::execution::ExecCode),
    #[error("the ledger is shutting down")]
    Closed,
}

/// Where a known proof stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProofStatus {
    Pending,
    Final(Final),
}

/// A known (accepted) proof.
#[derive(Debug, Clone, PartialEq)]
pub struct ProofRecord {
    pub id: ProofId,
    pub proof: Proof,
    pub reward_micro: u64,
    pub status: ProofStatus,
}

/// An account's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountView {
    pub address: Address,
    pub balance_micro: u64,
    /// Accepted (finalized) proofs, i.e. nonces used.
    pub proofs: u64,
    /// Timestamp of the last finalized proof, unix ms.
    pub last_proof_ms: Option<i64>,
}

/// A triangle's state. `state` follows Phase 2's names (see [`TriangleView::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriangleView {
    pub id: TriangleId,
    pub clicks: u32,
    /// Block time of the last click, unix ms.
    pub last_click_ms: Option<i64>,
}

/// Clicks at which Phase 2 subdivided a triangle (the 11th click).
pub const SUBDIVIDE_AT_CLICKS: u32 = 11;

impl TriangleView {
    /// `pending` (never clicked), `active` (1–10 clicks) or `subdivided`
    /// (11 or more, Phase 2's subdivision threshold). A label only: the
    /// LocalLedger does not restrict proofs to leaf triangles; consensus
    /// execution (issue #5) defines subdivision's effects.
    pub fn state(&self) -> &'static str {
        match self.clicks {
            0 => "pending",
            c if c < SUBDIVIDE_AT_CLICKS => "active",
            _ => "subdivided",
        }
    }
}

/// Pipeline occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueView {
    /// Bodies waiting in the ingest queue.
    pub ingest: usize,
    /// Proofs between submission and verdict.
    pub in_flight: usize,
    /// Most proofs in flight before OVERLOADED.
    pub capacity: usize,
}

/// The node's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    /// Which backend answers: "local" or (later) "consensus".
    pub backend: &'static str,
    pub height: u64,
    /// Consensus round of the last decision (malachite rounds are i64; 0 for LocalLedger).
    pub round: i64,
    pub state_root: [u8; 32],
    pub validators: usize,
    pub peers: usize,
    /// Able to take proofs.
    pub ready: bool,
    pub queue: QueueView,
    /// Proofs this node accepted that no decided block holds yet (its
    /// pre-check's local entries; 0 for LocalLedger).
    pub precheck_pending: usize,
    /// Peers' gossiped batches taken into the mempool since start (0 for
    /// LocalLedger).
    pub gossip_batches: u64,
}

/// A finalized block, as `/events` streams it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedBlock {
    pub height: u64,
    pub time_ms: i64,
    pub state_root: [u8; 32],
    /// Digests of the pre-validated batches it contains.
    pub batches: Vec<[u8; 32]>,
    /// Ids of the proofs it finalized, in execution order.
    pub proof_ids: Vec<ProofId>,
    /// Proofs the block carried that execution rejected, with their codes
    /// (consensus: e.g. a nonce another validator's proof used first).
    pub rejected: Vec<(ProofId, &'static str)>,
}

/// A submitted body waiting for its pipeline verdict.
#[derive(Debug)]
pub struct Submission {
    rx: oneshot::Receiver<Result<Pending, Reject>>,
}

impl Submission {
    pub fn new(rx: oneshot::Receiver<Result<Pending, Reject>>) -> Submission {
        Submission { rx }
    }

    /// The pipeline's verdict: accepted (pending finality) or rejected.
    pub async fn verdict(self) -> Result<Pending, Reject> {
        // Every queued body gets a verdict; a dropped sender means the
        // backend was torn down, which a client should retry.
        self.rx.await.unwrap_or(Err(Reject::Overloaded))
    }
}

/// What the HTTP layer calls. Object-safe, so the node holds an
/// `Arc<dyn Ledger>` and does not know which backend it talks to.
pub trait Ledger: Send + Sync + 'static {
    /// The limits proofs are verified with (`GET /proof/config`).
    fn limits(&self) -> Limits;

    /// Queues one body. Never blocks: `Err(Reject::Overloaded)` at once when
    /// the pipeline is full or closing.
    fn submit(&self, body: &[u8]) -> Result<Submission, Reject>;

    /// Resolves when the proof is final (or rejected at execution).
    /// `Err(Unknown)` at once if the id is neither pending nor final.
    fn wait_final(&self, id: ProofId) -> BoxFuture<'static, Result<Final, FinalityError>>;

    fn proof(&self, id: &ProofId) -> Option<ProofRecord>;
    fn account(&self, address: &Address) -> AccountView;
    fn triangle(&self, id: &TriangleId) -> TriangleView;
    fn status(&self) -> StatusView;

    /// Finalized blocks from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<FinalizedBlock>>;

    /// Stops taking proofs, finalizes every proof already accepted, and stops.
    fn close(&self) -> BoxFuture<'static, ()>;
}
