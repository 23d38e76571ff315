//! The [`Ledger`]: what the HTTP layer needs from a node, whatever finalizes
//! its proofs. [`ConsensusLedger`] finalizes them with malachite;
//! [`LocalLedger`] is the single-process implementation (engine pipeline +
//! in-process, in-order blocks). Both execute blocks with the one execution,
//! `step_consensus::execution` (`docs/adr/0031-one-execution.md`); this API
//! names no consensus type: its errors and views are io's own.
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

mod consensus;
mod decisions;
mod evidence;
mod exec;
mod intake;
mod local;
mod precheck;
mod ready;
mod recovery;

pub use consensus::{ConsensusLedger, ConsensusLedgerError};
pub use local::{pipeline_config, system_clock, LocalLedger};
pub use precheck::RECENT_DECIDED_MAX;
pub use ready::{quorum, readiness, NotReady, Observed};

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

/// Exactly `2 × N` hex digits (either case) as bytes; anything else
/// (another length, a `0x` prefix, a non-hex digit) is `None`.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
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

/// Why execution rejected a proof this node's pipeline had accepted (the
/// proof's block was decided; the proof changed nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionReject {
    /// `NONCE_REPLAY`: another proof with this (account, nonce) executed first.
    NonceReplay,
    /// `TOO_FAST`: the speed gate, against a proof that executed first.
    TooFast,
    /// `MORATORIUM`: inside the moratorium of a proof that executed first.
    Moratorium,
    /// `TRIANGLE_SUBDIVIDED`: the triangle subdivided first; mine a child.
    TriangleSubdivided,
    /// `TRIANGLE_EXHAUSTED`: the level-21 triangle reached 28 clicks first.
    TriangleExhausted,
    /// `INTERNAL_ERROR`: a stateful check this version does not name.
    Internal,
}

impl ExecutionReject {
    /// The wire code.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecutionReject::NonceReplay => "NONCE_REPLAY",
            ExecutionReject::TooFast => "TOO_FAST",
            ExecutionReject::Moratorium => "MORATORIUM",
            ExecutionReject::TriangleSubdivided => "TRIANGLE_SUBDIVIDED",
            ExecutionReject::TriangleExhausted => "TRIANGLE_EXHAUSTED",
            ExecutionReject::Internal => "INTERNAL_ERROR",
        }
    }
}

step_engine::fmt_as_text!(Display for ExecutionReject, as_str);

/// Why waiting for finality ended without a [`Final`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FinalityError {
    #[error("no pending or final proof has this id")]
    Unknown,
    /// Accepted by this node's pipeline, rejected when the decided block
    /// that held it executed (consensus: another validator's proof came first).
    #[error("rejected at execution of height {height}: {reason}")]
    Rejected {
        height: u64,
        reason: ExecutionReject,
    },
    /// Accepted by the pipeline, but its batch never reached consensus (the
    /// node stopped taking batches, or the batch could not be encoded).
    #[error("batch not forwarded to consensus: {reason}")]
    NotForwarded { reason: String },
    /// Decisions were missed and could not be read back: the proof may or
    /// may not be final (`GET /proof/{id}` and the account tell).
    #[error("decisions after height {after} were missed and could not be recovered: {reason}")]
    Unrecovered { after: u64, reason: String },
    #[error("the ledger is shutting down")]
    Closed,
    /// The executed state or the store could not be read.
    #[error("{0}")]
    Unreadable(LedgerReadError),
}

/// The ledger's executed state or store could not be read (a disk error, or
/// a row that does not decode): the query fails, it never answers a default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {what}: {reason}")]
pub struct LedgerReadError {
    pub what: &'static str,
    pub reason: String,
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

/// A triangle's mining state under Phase 2's names, from execution's state
/// (never guessed from the click count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrianglePhase {
    /// Never clicked.
    Pending,
    /// Clicked, still taking proofs.
    Active,
    /// A level-21 triangle at the 28-click cap: it takes no more proofs.
    Exhausted,
    /// Split into its 4 children at its 11th click (levels 1–20): proofs go
    /// to the children.
    Subdivided,
}

impl TrianglePhase {
    /// Phase 2's name. (Phase 2 also lists `partially_mined`, but no rule of
    /// its code sets it, so execution has no such state.)
    pub const fn as_str(self) -> &'static str {
        match self {
            TrianglePhase::Pending => "pending",
            TrianglePhase::Active => "active",
            TrianglePhase::Exhausted => "exhausted",
            TrianglePhase::Subdivided => "subdivided",
        }
    }
}

/// A triangle's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriangleView {
    pub id: TriangleId,
    pub clicks: u32,
    pub phase: TrianglePhase,
    /// Block time of the last click, unix ms.
    pub last_click_ms: Option<i64>,
}

impl TriangleView {
    /// Phase 2's name of [`TriangleView::phase`].
    pub fn state(&self) -> &'static str {
        self.phase.as_str()
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
    /// Proofs the block carried that execution rejected (consensus: e.g. a
    /// nonce another validator's proof used first).
    pub rejected: Vec<RejectedProof>,
}

/// A proof of a finalized block that execution rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectedProof {
    pub id: ProofId,
    pub reason: ExecutionReject,
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

/// Double-sign evidence of one height (`GET /evidence`): which validators
/// signed two conflicting votes / proposals, and how many pairs. The signed
/// pairs themselves are in the node's store (`step_consensus::evidence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceView {
    pub height: u64,
    /// (validator address, conflicting vote pairs).
    pub double_votes: Vec<([u8; 20], usize)>,
    /// (validator address, conflicting proposal pairs).
    pub double_proposals: Vec<([u8; 20], usize)>,
}

/// Evidence records a node keeps in memory for `GET /evidence` (oldest dropped).
pub const EVIDENCE_KEPT: usize = 1_000;

/// What the HTTP layer calls. Object-safe, so the node holds an
/// `Arc<dyn Ledger>` and does not know which backend it talks to.
pub trait Ledger: Send + Sync + 'static {
    /// The limits proofs are verified with (`GET /proof/config`).
    fn limits(&self) -> Limits;

    /// Queues one proof, parsed by the caller (the HTTP layer parses each
    /// body once, for its per-account rate limit; the pipeline does not
    /// parse it again). Never blocks: `Err(Reject::Overloaded)` at once when
    /// the pipeline is full or closing.
    fn submit(&self, proof: &Proof) -> Result<Submission, Reject>;

    /// Parses `body` and queues the proof ([`Ledger::submit`]); a body that
    /// does not parse is refused with the parser's reason.
    fn submit_body(&self, body: &[u8]) -> Result<Submission, Reject> {
        self.submit(&step_engine::proof::parse(body)?)
    }

    /// Resolves when the proof is final (or rejected at execution).
    /// `Err(Unknown)` at once if the id is neither pending nor final.
    fn wait_final(&self, id: ProofId) -> BoxFuture<'static, Result<Final, FinalityError>>;

    fn proof(&self, id: &ProofId) -> Result<Option<ProofRecord>, LedgerReadError>;
    fn account(&self, address: &Address) -> Result<AccountView, LedgerReadError>;
    fn triangle(&self, id: &TriangleId) -> Result<TriangleView, LedgerReadError>;
    fn status(&self) -> StatusView;

    /// Whether the node can take proofs and get them finalized
    /// (`GET /health/ready`); [`StatusView::ready`] is `readiness().is_ok()`.
    fn readiness(&self) -> Result<(), NotReady> {
        if self.status().ready {
            Ok(())
        } else {
            Err(NotReady::Stopped)
        }
    }

    /// Finalized blocks from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<FinalizedBlock>>;

    /// Misbehaviour evidence this node saw since it started, oldest first
    /// (`GET /evidence`). A backend without consensus has none.
    fn evidence(&self) -> Vec<EvidenceView> {
        Vec::new()
    }

    /// Stops taking proofs, finalizes every proof already accepted, and stops.
    fn close(&self) -> BoxFuture<'static, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_ids_are_exactly_64_hex_digits_either_case() {
        let id = ProofId::of_signature(&[7; 65]);
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_ascii_lowercase());
        assert_eq!(ProofId::parse(&text), Some(id));
        assert_eq!(ProofId::parse(&text.to_ascii_uppercase()), Some(id));
        for bad in [
            &text[..63],
            &format!("{text}0"),
            &format!("0x{}", &text[2..]),
            &format!("{}g", &text[..63]),
            &format!("{} ", &text[..63]),
            &format!("+{}", &text[1..]),
            "",
        ] {
            assert_eq!(ProofId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(unhex::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }
}
