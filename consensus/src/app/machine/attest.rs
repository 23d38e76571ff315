//! The core's validity attestations (`crate::attest`, ADR 0046): who
//! verifies a gossiped batch, the attestations gathered per batch, the
//! attested block a proposer builds, the checks of a received block, the
//! fallback when an attester is silent, and the evidence kept when an
//! attested batch holds an invalid proof.

use std::collections::VecDeque;

use super::*;
use crate::attest::{
    check_quorums, is_quorum, max_faulty, rank, AttestEvidence, AttestPool, Attestation, Sampler,
    ValidityMode, EVIDENCE_KEPT_MAX,
};
use crate::context::PrivateKey;

/// The signing key, kept out of `Debug` output.
#[derive(Clone)]
pub(crate) struct AttestKey(pub(crate) PrivateKey);

impl std::fmt::Debug for AttestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttestKey(..)")
    }
}

/// A peer's batch in the mempool that this validator has not verified, and
/// when it verifies it itself if the batch is still short of a quorum.
#[derive(Debug, Clone, Copy)]
struct Awaiting {
    from: PeerId,
    due: Instant,
}

/// The attestation state of the core.
#[derive(Debug)]
pub(crate) struct Attesting {
    key: AttestKey,
    pool: AttestPool,
    awaiting: BTreeMap<[u8; 32], Awaiting>,
    /// Own batches still short of a quorum, and when they are gossiped
    /// again (a gossip or an attestation may have reached nobody).
    own_short: BTreeMap<[u8; 32], Instant>,
    sampler: Sampler,
    evidence: VecDeque<AttestEvidence>,
}

impl Attesting {
    pub(crate) fn new(key: PrivateKey, sample_ppm: u32) -> Attesting {
        let sampler = Sampler::new(Sampler::seed_of(&key), sample_ppm);
        Attesting {
            key: AttestKey(key),
            pool: AttestPool::default(),
            awaiting: BTreeMap::new(),
            own_short: BTreeMap::new(),
            sampler,
            evidence: VecDeque::new(),
        }
    }
}

/// Why a verification of a batch failed: the proof to blame, if one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFault {
    pub index: Option<u32>,
    pub reason: String,
}

impl VerifyFault {
    pub fn from_batch_error(e: &step_engine::pipeline::BatchError) -> VerifyFault {
        VerifyFault {
            index: e.index().map(|i| i as u32),
            reason: e.to_string(),
        }
    }

    pub fn from_wire_error(e: &WireError) -> VerifyFault {
        VerifyFault {
            index: None,
            reason: e.to_string(),
        }
    }
}

impl Core {
    pub(super) fn attested_mode(&self) -> bool {
        self.cfg.validity == ValidityMode::Attested
    }

    /// This validator's attestation of `digest`, recorded in the pool.
    pub(super) fn attest_own(&mut self, digest: [u8; 32]) -> Attestation {
        let att = Attestation::sign(&self.attesting.key.0, digest);
        let power = att.check(&self.validators).unwrap_or(0);
        self.attesting.pool.add(att.clone(), power);
        att
    }

    /// True when `digest` has attestations of more than a third of the power.
    pub fn has_quorum(&self, digest: &[u8; 32]) -> bool {
        is_quorum(self.attesting.pool.power(digest), &self.validators)
    }

    /// Attestation evidence seen since start (the last [`EVIDENCE_KEPT_MAX`]).
    pub fn attest_evidence(&self) -> impl Iterator<Item = &AttestEvidence> {
        self.attesting.evidence.iter()
    }

    /// A gossiped batch under `"attested"`: verify it when this validator is
    /// one of the f designated attesters after the ingester; else keep it
    /// unverified, to be proposed once attested, and verify it only if it
    /// is still short of a quorum when its fallback is due.
    pub(super) fn gossip_attested(
        &mut self,
        batch: Arc<WireBatch>,
        ingester: &ValidatorAddress,
        from: PeerId,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if self.verified.contains(&batch.digest) && self.mempool.contains(&batch.digest) {
            // Gossiped again while short of a quorum: our attestation may
            // have reached nobody; send it again.
            let att = self.attest_own(batch.digest);
            fx.push(Effect::Gossip(crate::streaming::gossip_attestation(att)));
            return;
        }
        if self.mempool.contains(&batch.digest) || self.gossip.is_decided(&batch.digest) {
            return;
        }
        let f = max_faulty(&self.validators);
        let r = rank(&self.validators, &batch.digest, ingester, &self.address);
        if r.is_some_and(|r| r <= f) {
            let room = self.has_room();
            if let Some(batch) = self.gossip.offer(batch, from, now, false, room) {
                fx.push(Effect::VerifyGossip { from, batch });
            }
            return;
        }
        if !self.has_room() {
            tracing::debug!("gossiped batch dropped: no room (it will come with its proposal)");
            return;
        }
        if let Some(r) = r {
            let steps = u32::try_from(r - f).unwrap_or(u32::MAX);
            let due = now + self.cfg.attest_fallback.saturating_mul(steps);
            self.attesting
                .awaiting
                .insert(batch.digest, Awaiting { from, due });
        }
        self.gossip.taken();
        self.mempool.push(batch);
        self.start_now(fx);
    }

    /// Counts an attestation already checked to carry `power`.
    pub(super) fn attesting_pool_add(&mut self, att: Attestation, power: u64) {
        let digest = att.digest;
        if self.attesting.pool.add(att, power) && self.has_quorum(&digest) {
            self.attesting.awaiting.remove(&digest);
            self.attesting.own_short.remove(&digest);
            // A proposer waiting for attestations proposes now (if its
            // `propose_wait` is over).
            if let Some(p) = self.pending.as_mut() {
                p.deadline = p.deadline.min(p.first);
            }
        }
    }

    /// A peer's attestation: counted when valid (a batch that reaches its
    /// quorum goes into the next block); an invalid one is a strike
    /// against its publisher.
    pub fn attestation_received(&mut self, att: Attestation, from: PeerId, now: Instant) {
        match att.check(&self.validators) {
            Ok(power) => self.attesting_pool_add(att, power),
            Err(e) => {
                tracing::warn!(%from, error = %e, "peer gossiped an invalid attestation; dropped");
                let muted = self.gossip.strike(&from, now);
                report_mute(from, muted);
            }
        }
    }

    /// A batch this validator verified under `"attested"`: attest it and
    /// tell the others.
    pub(super) fn attest_verified(&mut self, digest: [u8; 32], fx: &mut Vec<Effect>) {
        self.attesting.awaiting.remove(&digest);
        let att = self.attest_own(digest);
        fx.push(Effect::Gossip(crate::streaming::gossip_attestation(att)));
    }

    /// This validator found `batch` invalid: everyone who attested it is
    /// accused; the evidence is stored, reported and kept.
    pub(super) fn record_invalid(
        &mut self,
        batch: &WireBatch,
        attestations: Vec<Attestation>,
        fault: &VerifyFault,
        fx: &mut Vec<Effect>,
    ) {
        self.attesting.awaiting.remove(&batch.digest);
        if self.mempool.contains(&batch.digest) {
            self.mempool.remove(&[batch.digest].into_iter().collect());
        }
        if attestations.is_empty() {
            return;
        }
        let e = AttestEvidence {
            height: self.height + 1,
            digest: batch.digest,
            attestations,
            proof_index: fault.index,
            reason: fault.reason.clone(),
            batch: batch.clone(),
        };
        tracing::warn!(offenders = ?e.offenders(), digest = ?e.digest, index = ?e.proof_index, reason = %e.reason,
            "validators attested a batch holding an invalid proof");
        if self.attesting.evidence.len() >= EVIDENCE_KEPT_MAX {
            self.attesting.evidence.pop_front();
        }
        self.attesting.evidence.push_back(e.clone());
        fx.push(Effect::PutAttestEvidence(e.clone()));
        fx.push(Effect::Emit(NodeEvent::AttestEvidence(e)));
    }

    /// A gossiped batch failed verification: its pool attestations are
    /// evidence.
    pub(super) fn gossip_invalid(
        &mut self,
        batch: &WireBatch,
        fault: &VerifyFault,
        fx: &mut Vec<Effect>,
    ) {
        let atts: Vec<Attestation> = self.attesting.pool.of(&batch.digest).cloned().collect();
        self.record_invalid(batch, atts, fault, fx);
    }

    /// The sampled re-verification of an attested batch of `block` failed:
    /// the block's attestations of that batch are evidence; the block is
    /// refused (the shell answers `Invalid`).
    pub fn sample_failed(
        &mut self,
        block: &BlockData,
        batch: &WireBatch,
        fault: &VerifyFault,
        fx: &mut Vec<Effect>,
    ) {
        let atts: Vec<Attestation> = block
            .attestations
            .iter()
            .filter(|a| a.digest == batch.digest)
            .cloned()
            .collect();
        self.record_invalid(batch, atts, fault, fx);
    }

    /// Under `"attested"`: an own batch is gossiped again if it is still
    /// short of a quorum after 4 × `attest_fallback`.
    pub(super) fn await_own_quorum(&mut self, digest: [u8; 32], now: Instant) {
        if self.attested_mode() && !self.has_quorum(&digest) {
            let again = now + self.cfg.attest_fallback.saturating_mul(4);
            self.attesting.own_short.insert(digest, again);
        }
    }

    /// When the next own batch short of a quorum is gossiped again.
    pub(super) fn own_regossip_deadline(&self) -> Option<Instant> {
        self.attesting.own_short.values().min().copied()
    }

    /// Gossips again the own batches still short of a quorum whose time
    /// came (peers that verified them answer with their attestation).
    pub(super) fn regossip_unattested(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let due: Vec<[u8; 32]> = self
            .attesting
            .own_short
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(d, _)| *d)
            .collect();
        for d in due {
            let Some(batch) = self.mempool.get(&d).cloned() else {
                self.attesting.own_short.remove(&d);
                continue;
            };
            tracing::debug!(digest = ?d, "own batch short of a quorum: gossiped again");
            let att = self.attest_own(d);
            fx.push(Effect::Gossip(crate::streaming::gossip(&batch, att)));
            let again = now + self.cfg.attest_fallback.saturating_mul(4);
            self.attesting.own_short.insert(d, again);
        }
    }

    /// The earliest fallback verification due.
    pub(super) fn fallback_deadline(&self) -> Option<Instant> {
        self.attesting.awaiting.values().map(|a| a.due).min()
    }

    /// Verifies (and then attests) the batches whose fallback is due and
    /// that are still short of a quorum.
    pub(super) fn fallback_due(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let due: Vec<([u8; 32], Awaiting)> = self
            .attesting
            .awaiting
            .iter()
            .filter(|(_, a)| a.due <= now)
            .map(|(d, a)| (*d, *a))
            .collect();
        for (digest, a) in due {
            self.attesting.awaiting.remove(&digest);
            if self.has_quorum(&digest) {
                continue;
            }
            let Some(batch) = self.mempool.get(&digest).cloned() else {
                continue;
            };
            tracing::debug!(
                ?digest,
                "attestation fallback: verifying a batch short of a quorum"
            );
            if let Some(batch) = self.gossip.offer(batch, a.from, now, false, true) {
                fx.push(Effect::VerifyGossip {
                    from: a.from,
                    batch,
                });
            }
        }
    }

    /// Under `"attested"`: the oldest mempool batches with a quorum, and
    /// their attestations.
    pub(super) fn attested_block(&self) -> BlockData {
        let batches: Vec<Arc<WireBatch>> = self
            .mempool
            .iter()
            .filter(|b| self.has_quorum(&b.digest))
            .take(self.block_max())
            .cloned()
            .collect();
        let atts = batches
            .iter()
            .flat_map(|b| self.attesting.pool.of(&b.digest).cloned())
            .collect();
        BlockData::on_root(self.root, batches).with_attestations(atts)
    }

    /// Batches ready to propose: attested ones under `"attested"`.
    pub(super) fn ready_batches(&self) -> usize {
        if self.attested_mode() {
            self.mempool
                .iter()
                .filter(|b| self.has_quorum(&b.digest))
                .take(self.cfg.max_batches_per_block)
                .count()
        } else {
            self.mempool.len()
        }
    }

    /// [`Core::check_block`]'s attestation rules: every attestation valid,
    /// by the set, naming a batch of the block, and a quorum per batch;
    /// then the batches this validator did not verify are checked against
    /// their digests and on a sample of their proofs.
    pub(super) fn check_attested(&self, block: &BlockData) -> BlockCheck {
        if let Err(fault) = check_quorums(
            &block.value.batch_digests,
            &block.attestations,
            &self.validators,
        ) {
            return BlockCheck::Invalid(BlockFault::Attestation(fault));
        }
        let todo: Vec<(Arc<WireBatch>, Vec<usize>)> = block
            .batches
            .iter()
            .filter(|b| !self.verified.contains(&b.digest))
            .map(|b| (Arc::clone(b), self.attesting.sampler.pick(b)))
            .collect();
        if todo.is_empty() {
            BlockCheck::Valid
        } else {
            BlockCheck::Sample(todo)
        }
    }

    /// Forgets the attestations of decided batches.
    pub(super) fn attest_decided(&mut self, digests: &[[u8; 32]]) {
        self.attesting.pool.remove(digests);
        for d in digests {
            self.attesting.awaiting.remove(d);
            self.attesting.own_short.remove(d);
        }
    }
}
