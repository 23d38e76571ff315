//! Validity attestations (issue 14, ADR 0046): f+1 checks per proof
//! instead of n. Pure: no I/O, no clock.
//!
//! A validator that verified a batch (signatures, geometry, every stateless
//! check) signs an [`Attestation`]: ed25519 over `ATTEST_TAG ‖ digest`, with
//! its consensus key. In `consensus.validity = "attested"` a block may carry
//! a batch only with attestations of more than a third of the voting power
//! (f+1 of n equal validators) from distinct validators of the current set;
//! the others check those signatures, the batch digest and a sample of its
//! proofs ([`Sampler`]), not every proof.
//!
//! Who attests ([`rank`]): the ingester (rank 0, its pipeline verified the
//! batch) and the next validators of a per-batch rotation (ranks 1..=f,
//! starting at an offset taken from the digest, so the work spreads
//! evenly). A validator of rank r > f verifies and attests only when the
//! batch still lacks a quorum `(r − f) × fallback` after it arrived, so
//! with f validators down the batch is still attested (ranks up to 2f
//! exist, since n ≥ 3f + 1).

use std::collections::{HashMap, VecDeque};

use borsh::{BorshDeserialize, BorshSerialize};
use malachitebft_core_types::ValidatorSet as _;
use sha2::{Digest, Sha256};

use crate::block::WireBatch;
use crate::context::{PrivateKey, PublicKey, Signature, ValidatorAddress, ValidatorSet};

/// Domain tag of an attestation's preimage.
pub const ATTEST_TAG: &[u8] = b"STEP-ATTEST-v1\n";
/// Most attestations one block may carry on the wire (about 8 per batch of
/// the largest block).
pub const MAX_ATTESTATIONS_PER_BLOCK: usize = 8 * crate::block::MAX_BATCHES_PER_BLOCK;
/// Digests whose attestations are remembered before the oldest are dropped.
pub const ATTEST_POOL_MAX: usize = 65_536;
/// Attestation evidence records kept in memory (the store keeps them all).
pub const EVIDENCE_KEPT_MAX: usize = 1_024;

/// What the app requires of a block's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidityMode {
    /// Each batch carries attestations of > 1/3 of the voting power; the
    /// others check the digest and a sample of the proofs.
    Attested,
    /// Every validator verifies every proof (round 1's behaviour). The
    /// default for now: see ADR 0046, "Not yet".
    #[default]
    All,
}

/// One validator's signed statement: "I verified the batch with this
/// digest and every proof in it passed the stateless checks".
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Attestation {
    pub validator: ValidatorAddress,
    pub digest: [u8; 32],
    pub signature: Signature,
}

/// Bytes of one attestation on the wire.
pub const ATTESTATION_LEN: usize = 20 + 32 + 64;

/// Why an attestation does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    #[error("attestation by {validator}, which is not in the validator set")]
    OutsideSet { validator: ValidatorAddress },
    #[error("attestation by {validator}: the signature does not verify")]
    BadSignature { validator: ValidatorAddress },
}

fn preimage(digest: &[u8; 32]) -> [u8; ATTEST_TAG.len() + 32] {
    let mut out = [0u8; ATTEST_TAG.len() + 32];
    out[..ATTEST_TAG.len()].copy_from_slice(ATTEST_TAG);
    out[ATTEST_TAG.len()..].copy_from_slice(digest);
    out
}

impl Attestation {
    /// `key`'s attestation of `digest`.
    pub fn sign(key: &PrivateKey, digest: [u8; 32]) -> Attestation {
        let pk = PublicKey(key.verification_key().to_bytes());
        Attestation {
            validator: ValidatorAddress::from_public_key(&pk),
            digest,
            signature: Signature(key.sign(&preimage(&digest)).to_bytes()),
        }
    }

    /// The attester's voting power, when it is in `validators` and its
    /// signature verifies.
    pub fn check(&self, validators: &ValidatorSet) -> Result<u64, AttestError> {
        let v = validators
            .get_by_address(&self.validator)
            .ok_or(AttestError::OutsideSet {
                validator: self.validator,
            })?;
        let bad = AttestError::BadSignature {
            validator: self.validator,
        };
        let vk = ed25519_consensus::VerificationKey::try_from(v.public_key.0)
            .map_err(|_| bad.clone())?;
        vk.verify(
            &ed25519_consensus::Signature::from(self.signature.0),
            &preimage(&self.digest),
        )
        .map_err(|_| bad)?;
        Ok(v.stake)
    }
}

/// True when `power` is more than a third of the set's: at least one
/// honest validator is among the attesters while the faulty hold < 1/3.
pub fn is_quorum(power: u64, validators: &ValidatorSet) -> bool {
    u128::from(power) * 3 > u128::from(validators.total_voting_power())
}

/// The most validators that may be faulty: f = ⌊(n − 1) / 3⌋.
pub fn max_faulty(validators: &ValidatorSet) -> usize {
    validators.validators().len().saturating_sub(1) / 3
}

/// Where `me` stands in the attesting order of the batch `digest` that
/// `ingester` made: 0 for the ingester, else 1 + its position among the
/// others, rotated by the digest. `None` when `me` is not in the set.
pub fn rank(
    validators: &ValidatorSet,
    digest: &[u8; 32],
    ingester: &ValidatorAddress,
    me: &ValidatorAddress,
) -> Option<usize> {
    if me == ingester {
        return Some(0);
    }
    let others: Vec<&ValidatorAddress> = validators
        .validators()
        .iter()
        .map(|v| &v.address)
        .filter(|a| *a != ingester)
        .collect();
    let pos = others.iter().position(|a| *a == me)?;
    let mut off = [0u8; 8];
    off.copy_from_slice(&digest[..8]);
    let start = (u64::from_be_bytes(off) % others.len() as u64) as usize;
    Some((pos + others.len() - start) % others.len() + 1)
}

/// Attestations per batch digest, one per validator, bounded.
#[derive(Debug, Default)]
pub struct AttestPool {
    by_digest: HashMap<[u8; 32], Vec<(Attestation, u64)>>,
    order: VecDeque<[u8; 32]>,
}

impl AttestPool {
    /// Adds an attestation already checked to carry `power`; false when
    /// its validator already attested this digest.
    pub fn add(&mut self, att: Attestation, power: u64) -> bool {
        let digest = att.digest;
        let entry = self.by_digest.entry(digest).or_insert_with(|| {
            self.order.push_back(digest);
            Vec::new()
        });
        if entry.iter().any(|(a, _)| a.validator == att.validator) {
            return false;
        }
        entry.push((att, power));
        while self.order.len() > ATTEST_POOL_MAX {
            if let Some(old) = self.order.pop_front() {
                self.by_digest.remove(&old);
            }
        }
        true
    }

    /// The attesting power gathered for `digest`.
    pub fn power(&self, digest: &[u8; 32]) -> u64 {
        self.by_digest
            .get(digest)
            .map_or(0, |v| v.iter().map(|(_, p)| *p).sum())
    }

    /// The attestations of `digest`.
    pub fn of(&self, digest: &[u8; 32]) -> impl Iterator<Item = &Attestation> {
        self.by_digest
            .get(digest)
            .into_iter()
            .flat_map(|v| v.iter().map(|(a, _)| a))
    }

    /// Forgets decided digests.
    pub fn remove(&mut self, digests: &[[u8; 32]]) {
        for d in digests {
            self.by_digest.remove(d);
        }
        let map = &self.by_digest;
        self.order.retain(|d| map.contains_key(d));
    }
}

/// Why a block's attestations do not make its batches valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestFault {
    #[error(transparent)]
    Attestation(#[from] AttestError),
    #[error("an attestation names batch {digest:02x?}, which the block does not carry")]
    Stray { digest: [u8; 32] },
    #[error("batch {digest:02x?} is attested by {power} of {total} voting power; more than a third is needed")]
    Short {
        digest: [u8; 32],
        power: u64,
        total: u64,
    },
}

/// Checks a block's attestations: each one valid and by a validator of the
/// set, each naming a batch of the block, and each batch attested by more
/// than a third of the power (a validator counted once per batch).
pub fn check_quorums(
    digests: &[[u8; 32]],
    attestations: &[Attestation],
    validators: &ValidatorSet,
) -> Result<(), AttestFault> {
    let index: HashMap<&[u8; 32], usize> =
        digests.iter().enumerate().map(|(i, d)| (d, i)).collect();
    let mut signers: Vec<Vec<ValidatorAddress>> = vec![Vec::new(); digests.len()];
    let mut power = vec![0u64; digests.len()];
    for a in attestations {
        let &i = index
            .get(&a.digest)
            .ok_or(AttestFault::Stray { digest: a.digest })?;
        let p = a.check(validators)?;
        if !signers[i].contains(&a.validator) {
            signers[i].push(a.validator);
            power[i] += p;
        }
    }
    for (d, p) in digests.iter().zip(&power) {
        if !is_quorum(*p, validators) {
            return Err(AttestFault::Short {
                digest: *d,
                power: *p,
                total: validators.total_voting_power(),
            });
        }
    }
    Ok(())
}

/// Which attested proofs this validator re-verifies: each proof with
/// probability `ppm` / 1,000,000, deterministic per node seed and batch.
#[derive(Debug, Clone)]
pub struct Sampler {
    seed: [u8; 32],
    ppm: u32,
}

impl Sampler {
    pub fn new(seed: [u8; 32], ppm: u32) -> Sampler {
        Sampler {
            seed,
            ppm: ppm.min(1_000_000),
        }
    }

    /// The node seed of a validator: a hash of its key (deterministic per
    /// node, unknown to the others).
    pub fn seed_of(key: &PrivateKey) -> [u8; 32] {
        Sha256::digest([b"STEP-SAMPLE-v1\n".as_slice(), key.as_bytes()].concat()).into()
    }

    /// The indices of `batch`'s proofs to re-verify.
    pub fn pick(&self, batch: &WireBatch) -> Vec<usize> {
        let h: [u8; 32] = Sha256::digest([self.seed.as_slice(), &batch.digest].concat()).into();
        let mut state = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        (0..batch.len())
            .filter(|_| {
                state = splitmix64(state);
                (state % 1_000_000) < u64::from(self.ppm)
            })
            .collect()
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Evidence: validators attested a batch holding a provably invalid proof
/// (or whose content does not hash to the attested digest). The batch is
/// kept with it, so anyone can re-verify the claim.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AttestEvidence {
    /// The height being worked on when it was found.
    pub height: u64,
    pub digest: [u8; 32],
    /// The attestations over the invalid batch, one per accused validator.
    pub attestations: Vec<Attestation>,
    /// The first invalid proof, when one proof is to blame (else the digest
    /// does not match the content).
    pub proof_index: Option<u32>,
    /// The engine's refusal, as text.
    pub reason: String,
    pub batch: WireBatch,
}

impl AttestEvidence {
    /// The accused validators.
    pub fn offenders(&self) -> Vec<ValidatorAddress> {
        self.attestations.iter().map(|a| a.validator).collect()
    }
}

#[cfg(test)]
#[path = "attest_tests.rs"]
mod tests;
