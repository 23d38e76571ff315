//! Pre-validated batches: what the pipeline hands to consensus, how their
//! digest is defined, and how a peer re-verifies one.
//!
//! # Canonical encoding and digest
//!
//! A batch of `n` proofs is encoded as
//!
//! ```text
//! "STEP-BATCH-v1\n" ‖ entry₀ ‖ … ‖ entryₙ₋₁ ‖ u32_be(n)
//! entryᵢ = eip191_digest(canonical message of proofᵢ) (32 bytes)
//!        ‖ signature r ‖ s ‖ v                          (65 bytes)
//!        ‖ public key x ‖ y                             (64 bytes)
//! ```
//!
//! and [`Batch::digest`] is SHA-256 of that encoding. Entries have a fixed
//! size, so the encoding is unambiguous; the message digest commits to every
//! field of the proof (account, triangle, lat, lon, accuracy, timestamp,
//! nonce). [`write_canonical`] writes the encoding out for transport.

use crate::address::Address;
use crate::crypto::check_policy;
use crate::error::Reject;
use crate::message::{eip191_digest, MessageBuf};
use crate::proof::Proof;
use crate::verify::{Checked, Verifier};
use sha2::{Digest, Sha256};

/// Domain separator at the start of a batch's canonical encoding.
pub const BATCH_DOMAIN: &[u8] = b"STEP-BATCH-v1\n";
/// Bytes of one entry in the canonical encoding.
pub const ENTRY_LEN: usize = 32 + 65 + 64;

/// A batch of accepted proofs, in the order the stateful stage accepted them.
///
/// `pubkeys[i]` is the public key recovered from `proofs[i]`'s signature
/// (x ‖ y). A peer can re-verify the batch against these keys with
/// [`reverify_batch`] instead of recovering them again.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub proofs: Vec<Proof>,
    pub pubkeys: Vec<[u8; 64]>,
    /// SHA-256 of the canonical encoding (see the module documentation).
    pub digest: [u8; 32],
}

impl Batch {
    /// Number of proofs in the batch.
    pub fn len(&self) -> usize {
        self.proofs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proofs.is_empty()
    }
}

/// Why a batch failed re-verification.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("batch carries {proofs} proofs but {pubkeys} public keys")]
    Shape { proofs: usize, pubkeys: usize },
    #[error("proof {index} of the batch is invalid: {reason}")]
    Proof { index: usize, reason: Reject },
    #[error("batch digest does not match its content")]
    Digest {
        carried: [u8; 32],
        computed: [u8; 32],
    },
}

impl BatchError {
    /// The index of the offending proof, when one proof is to blame.
    pub fn index(&self) -> Option<usize> {
        match self {
            BatchError::Proof { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// Streaming SHA-256 over the canonical encoding.
#[derive(Debug, Clone)]
pub(crate) struct BatchHasher {
    h: Sha256,
    n: u32,
}

impl Default for BatchHasher {
    fn default() -> Self {
        let mut h = Sha256::new();
        h.update(BATCH_DOMAIN);
        BatchHasher { h, n: 0 }
    }
}

impl BatchHasher {
    pub(crate) fn push(&mut self, msg_digest: &[u8; 32], sig: &[u8; 65], pubkey: &[u8; 64]) {
        self.h.update(msg_digest);
        self.h.update(sig);
        self.h.update(pubkey);
        self.n += 1;
    }

    /// Finishes the digest and resets the hasher for the next batch.
    pub(crate) fn finish(&mut self) -> [u8; 32] {
        let mut h = std::mem::take(self);
        h.h.update(h.n.to_be_bytes());
        h.h.finalize().into()
    }
}

/// The 65 signature bytes of an accepted proof (r ‖ s ‖ v).
pub(crate) fn signature_bytes(c: &Checked) -> [u8; 65] {
    let mut sig = [0u8; 65];
    sig[..64].copy_from_slice(&c.signature.rs);
    sig[64] = c.signature.recid + 27;
    sig
}

/// Writes the canonical encoding of `batch` to `out` (appending). Fails with
/// the index of a proof whose signature is missing (never the case for a
/// batch the pipeline produced).
pub fn write_canonical(batch: &Batch, out: &mut Vec<u8>) -> Result<(), BatchError> {
    check_shape(batch)?;
    out.reserve(BATCH_DOMAIN.len() + batch.len() * ENTRY_LEN + 4);
    out.extend_from_slice(BATCH_DOMAIN);
    let mut msg = MessageBuf::default();
    for (index, (p, key)) in batch.proofs.iter().zip(&batch.pubkeys).enumerate() {
        let sig = p.signature.map_err(|e| BatchError::Proof {
            index,
            reason: e.into(),
        })?;
        msg.build(p);
        out.extend_from_slice(&eip191_digest(msg.as_bytes()));
        out.extend_from_slice(&sig);
        out.extend_from_slice(key);
    }
    out.extend_from_slice(&(batch.len() as u32).to_be_bytes());
    Ok(())
}

fn check_shape(batch: &Batch) -> Result<(), BatchError> {
    if batch.proofs.len() != batch.pubkeys.len() || batch.proofs.len() > u32::MAX as usize {
        return Err(BatchError::Shape {
            proofs: batch.proofs.len(),
            pubkeys: batch.pubkeys.len(),
        });
    }
    Ok(())
}

/// Re-verifies a batch received from a peer, using the public keys it carries.
///
/// For each proof, in order: accuracy, signature policy (65 bytes, v 27/28,
/// low s), the canonical message digest, the carried key's address against
/// `payload.account`, a known-key ECDSA verify ([`crate::Backend::verify_known_key`],
/// no recovery), and point-in-triangle. Then the batch digest is recomputed
/// and compared. The first failing proof is named by its index.
///
/// Not checked here: the age window (a batch may be re-verified long after its
/// proofs were made) and the stateful checks (nonce, speed gate, moratorium),
/// which the receiver applies when it commits the batch to its own state.
pub fn reverify_batch(verifier: &Verifier, batch: &Batch) -> Result<(), BatchError> {
    reverify_sampled(verifier, batch, |_| true)
}

/// [`reverify_batch`] for the proofs `sampled` selects; the others only
/// enter the batch digest (canonical message, keccak, signature bytes and
/// key), so the digest check still binds every proof's content. Validity
/// attestations use it: a batch that f+1 validators attested is checked
/// against its digest and on a sample of its proofs.
pub fn reverify_sampled(
    verifier: &Verifier,
    batch: &Batch,
    sampled: impl Fn(usize) -> bool,
) -> Result<(), BatchError> {
    check_shape(batch)?;
    let mut hasher = BatchHasher::default();
    let mut msg = MessageBuf::default();
    for (index, (p, key)) in batch.proofs.iter().zip(&batch.pubkeys).enumerate() {
        let fail = |reason: Reject| BatchError::Proof { index, reason };
        if !sampled(index) {
            let raw = p.signature.map_err(|e| fail(e.into()))?;
            msg.build(p);
            hasher.push(&eip191_digest(msg.as_bytes()), &raw, key);
            continue;
        }
        verifier.limits.check_accuracy(p.accuracy_m).map_err(fail)?;
        let raw = p.signature.map_err(|e| fail(e.into()))?;
        let sig = check_policy(&raw).map_err(|e| fail(e.into()))?;
        msg.build(p);
        let digest = eip191_digest(msg.as_bytes());
        let key_address = Address::from_public_key(key);
        if key_address != p.account {
            return Err(fail(Reject::SignerMismatch {
                recovered: key_address,
            }));
        }
        verifier
            .backend
            .verify_known_key(&digest, &sig, key)
            .map_err(|e| fail(e.into()))?;
        if !crate::mesh::contains(&p.triangle, p.lat, p.lon) {
            return Err(fail(Reject::OutOfBounds));
        }
        hasher.push(&digest, &raw, key);
    }
    let computed = hasher.finish();
    if computed != batch.digest {
        return Err(BatchError::Digest {
            carried: batch.digest,
            computed,
        });
    }
    Ok(())
}
