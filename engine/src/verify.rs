//! The single-proof verifier: body bytes → verdict.
//!
//! Order of checks (first failure wins):
//! structure → accuracy → age window → signature → point-in-triangle →
//! nonce → speed gate → moratorium. Stateless checks come first so that the
//! pipeline can run them in parallel and the stateful ones in one
//! deterministic order; see `docs/adr/0003-check-order.md`.

use crate::address::Address;
use crate::crypto::{check_policy, Backend, CheckedSignature};
use crate::error::Reject;
use crate::heuristics::{check_stateful, LastProof, Limits, ProofState};
use crate::message::{eip191_digest, MessageBuf};
use crate::proof::{parse, Proof};
use crate::reward::reward_micro;

/// A proof that passed every stateless check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checked {
    pub proof: Proof,
    /// EIP-191 digest of the canonical message.
    pub digest: [u8; 32],
    pub signature: CheckedSignature,
    /// The recovered public key (x ‖ y); its address is `proof.account`.
    pub pubkey: [u8; 64],
}

/// An accepted proof and its reward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accepted {
    pub proof: Proof,
    pub reward_micro: u64,
}

/// Verifies proofs with a set of limits and a recovery backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verifier {
    pub limits: Limits,
    pub backend: Backend,
}

impl Verifier {
    pub fn new(limits: Limits, backend: Backend) -> Self {
        Verifier { limits, backend }
    }

    /// Parses and runs every stateless check. `now_ms` is the injected clock
    /// (unix milliseconds), used only by the age window.
    pub fn check_stateless(&self, body: &[u8], now_ms: i64) -> Result<Checked, Reject> {
        let proof = parse(body)?;
        self.check_parsed(&proof, now_ms)
    }

    /// Runs every stateless check on a parsed proof.
    pub fn check_parsed(&self, proof: &Proof, now_ms: i64) -> Result<Checked, Reject> {
        let checked = self.check_parsed_except_geometry(proof, now_ms)?;
        if !crate::mesh::contains(&proof.triangle, proof.lat, proof.lon) {
            return Err(Reject::OutOfBounds);
        }
        Ok(checked)
    }

    /// [`Verifier::check_stateless`] without its last check, point in
    /// triangle: the pipeline runs that one over a whole micro-batch at once
    /// ([`crate::mesh::ContainsBatch`]). A proof passes `check_stateless` iff
    /// it passes this and `mesh::contains`.
    pub fn check_except_geometry(&self, body: &[u8], now_ms: i64) -> Result<Checked, Reject> {
        let proof = parse(body)?;
        self.check_parsed_except_geometry(&proof, now_ms)
    }

    /// [`Verifier::check_except_geometry`] on a proof already parsed.
    pub fn check_parsed_except_geometry(
        &self,
        proof: &Proof,
        now_ms: i64,
    ) -> Result<Checked, Reject> {
        self.limits.check_accuracy(proof.accuracy_m)?;
        self.limits.check_age(proof.timestamp.unix_ms(), now_ms)?;
        let raw = proof.signature?;
        let signature = check_policy(&raw)?;
        let mut msg = MessageBuf::default();
        msg.build(proof);
        let digest = eip191_digest(msg.as_bytes());
        let pubkey = self.backend.recover(&digest, &signature)?;
        let recovered = Address::from_public_key(&pubkey);
        if recovered != proof.account {
            return Err(Reject::SignerMismatch { recovered });
        }
        Ok(Checked {
            proof: *proof,
            digest,
            signature,
            pubkey,
        })
    }

    /// Runs the stateful checks (nonce → speed gate → moratorium) without recording.
    pub fn check_stateful(&self, proof: &Proof, state: &impl ProofState) -> Result<(), Reject> {
        check_stateful(&self.limits, proof, state)
    }

    /// Applies the stateful checks to a stateless-checked proof and, if it
    /// passes, records it in `state` and returns its reward.
    pub fn commit(
        &self,
        checked: &Checked,
        state: &mut impl ProofState,
    ) -> Result<Accepted, Reject> {
        let p = &checked.proof;
        self.check_stateful(p, state)?;
        state.record(p.account, p.nonce, LastProof::of(p));
        Ok(Accepted {
            proof: *p,
            reward_micro: reward_micro(p.triangle.level()),
        })
    }

    /// The whole verdict for one body: stateless checks, then stateful checks
    /// and commit.
    pub fn verify(
        &self,
        body: &[u8],
        now_ms: i64,
        state: &mut impl ProofState,
    ) -> Result<Accepted, Reject> {
        let checked = self.check_stateless(body, now_ms)?;
        self.commit(&checked, state)
    }
}
