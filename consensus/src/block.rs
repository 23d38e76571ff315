//! Batches on the wire and blocks in the store.
//!
//! [`WireBatch`] is a serialisable mirror of the engine pipeline's
//! [`Batch`]: every field of every proof, the recovered public keys and the
//! batch digest. Decoding is bounded ([`MAX_PROOFS_PER_BATCH`], the engine's
//! field parsers) and never trusts the carried digest: the receiver
//! re-verifies the batch with [`step_engine::pipeline::reverify_batch`],
//! which recomputes it.

use borsh::{BorshDeserialize, BorshSerialize};
use step_engine::pipeline::Batch;
use step_engine::proof::{Nonce, Proof, Timestamp};
use step_engine::{Address, TriangleId};

use crate::context::Value;

/// Most proofs one batch may carry on the wire.
pub const MAX_PROOFS_PER_BATCH: usize = 1_000;

/// One proof, every field the canonical message commits to, plus its signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WireProof {
    pub account: [u8; 20],
    /// `STEP-TRI-v1:…` text form.
    pub triangle: String,
    /// IEEE-754 bits, so the value round-trips exactly.
    pub lat_bits: u64,
    pub lon_bits: u64,
    pub accuracy_m_bits: u64,
    /// The timestamp exactly as signed.
    pub timestamp: String,
    pub nonce: String,
    pub signature: [u8; 65],
}

/// A pre-validated batch on the wire.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WireBatch {
    pub proofs: Vec<WireProof>,
    pub pubkeys: Vec<[u8; 64]>,
    pub digest: [u8; 32],
}

/// Why a wire batch could not be turned back into an engine batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("batch carries {proofs} proofs, more than the limit of {max}")]
    TooManyProofs { proofs: usize, max: usize },
    #[error("proof {index}: {field} does not parse")]
    Field { index: usize, field: &'static str },
    #[error("proof {index} has no valid signature and cannot be in a batch")]
    MissingSignature { index: usize },
}

impl WireBatch {
    /// The wire form of an engine batch. Fails only for a proof without a
    /// signature, which the pipeline never puts in a batch.
    pub fn from_batch(batch: &Batch) -> Result<WireBatch, WireError> {
        let proofs = batch
            .proofs
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let signature = p
                    .signature
                    .map_err(|_| WireError::MissingSignature { index })?;
                Ok(WireProof {
                    account: p.account.0,
                    triangle: p.triangle.to_string(),
                    lat_bits: p.lat.to_bits(),
                    lon_bits: p.lon.to_bits(),
                    accuracy_m_bits: p.accuracy_m.to_bits(),
                    timestamp: p.timestamp.as_str().to_owned(),
                    nonce: p.nonce.as_str().to_owned(),
                    signature,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(WireBatch {
            proofs,
            pubkeys: batch.pubkeys.clone(),
            digest: batch.digest,
        })
    }

    /// The engine batch, with every field parsed by the engine's parsers.
    /// Its digest is the carried one: re-verify before trusting it.
    pub fn to_batch(&self) -> Result<Batch, WireError> {
        if self.proofs.len() > MAX_PROOFS_PER_BATCH {
            return Err(WireError::TooManyProofs {
                proofs: self.proofs.len(),
                max: MAX_PROOFS_PER_BATCH,
            });
        }
        let proofs = self
            .proofs
            .iter()
            .enumerate()
            .map(|(index, w)| {
                let field = |field| WireError::Field { index, field };
                Ok(Proof {
                    account: Address(w.account),
                    triangle: TriangleId::parse(&w.triangle).map_err(|_| field("triangle"))?,
                    lat: f64::from_bits(w.lat_bits),
                    lon: f64::from_bits(w.lon_bits),
                    accuracy_m: f64::from_bits(w.accuracy_m_bits),
                    timestamp: Timestamp::parse(&w.timestamp).ok_or(field("timestamp"))?,
                    nonce: Nonce::parse(&w.nonce).ok_or(field("nonce"))?,
                    signature: Ok(w.signature),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Batch {
            proofs,
            pubkeys: self.pubkeys.clone(),
            digest: self.digest,
        })
    }

    pub fn len(&self) -> usize {
        self.proofs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proofs.is_empty()
    }
}

/// A decided block as stored and as served to syncing peers: the value and
/// the batches its digests name, in the same order.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockData {
    pub value: Value,
    pub batches: Vec<WireBatch>,
}

impl BlockData {
    pub fn new(batches: Vec<WireBatch>) -> BlockData {
        BlockData {
            value: Value::of_batches(&batches),
            batches,
        }
    }

    /// True when the batches' carried digests are the value's, in order.
    pub fn is_consistent(&self) -> bool {
        self.value.batch_digests.len() == self.batches.len()
            && self
                .value
                .batch_digests
                .iter()
                .zip(&self.batches)
                .all(|(d, b)| *d == b.digest)
    }

    pub fn proof_count(&self) -> usize {
        self.batches.iter().map(WireBatch::len).sum()
    }
}
