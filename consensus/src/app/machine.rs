//! The app's pure core: a synchronous state machine, in the manner of
//! malachite's `core-consensus`. Each input (an [`AppMsg`]-derived call, a
//! local batch, a gossip verdict, a timer, a store read the shell did for
//! it) updates the state and appends [`Effect`]s; the shell
//! ([`super::shell`]) performs them (store, network, replies, events) and
//! feeds results back. Nothing here touches a socket, a file, a clock or a
//! task: time comes in as `now`.
//!
//! [`AppMsg`]: malachitebft_app_channel::AppMsg

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use malachitebft_app_channel::app::types::core::{HeightParams, Round, Validity};
use malachitebft_app_channel::app::types::{LocallyProposedValue, ProposedValue};
use malachitebft_core_consensus::MisbehaviorEvidence;
use malachitebft_engine::util::streaming::StreamMessage;

use super::api::{Decision, NodeEvent};
pub use super::effects::{
    own_stored_proposal, sample_batches, seen_in_round, verify_batch, verify_batches, BlockCheck,
    BlockFault, Decide, Effect, ExecJob, Held,
};
use super::gossip::{GossipSched, Verdict, GOSSIP_MUTE, GOSSIP_STRIKES};
use super::mempool::Mempool;
use crate::attest::Attestation;
use crate::block::{decode_block, BlockData, WireBatch, WireError, MAX_BATCHES_PER_BLOCK};
use crate::config::AppConfig;
use crate::context::{
    Height, PrivateKey, ProposalPart, PublicKey, StepContext, ValidatorAddress, ValidatorSet,
    ValueId,
};
use crate::error::{AppError, StateDiverged};
use crate::evidence::EvidenceRecord;
use crate::execution::BlockOutcome;
use crate::store::{BlockRows, DecidedRecord, StoredProof, UndecidedRecord};
use crate::streaming::{split, Assembled, PeerId, Reassembler};

mod attest;
mod blocks;
mod decide;

pub use attest::VerifyFault;

/// Heights an own batch may wait in the mempool, undecided, before it is
/// gossiped again: a batch gossiped while this validator was cut off (a
/// partition) reached nobody, and with the idle rule the others, their
/// mempools empty, would pace heights until this validator's turn to
/// propose. Two heights, so a batch that only missed the block being
/// decided when it arrived is not sent twice.
pub const REGOSSIP_AFTER_HEIGHTS: u32 = 2;

/// Most digests remembered as verified before the set is cleared.
pub const VERIFIED_MAX: usize = 100_000;
/// Undecided blocks held in memory for execution at decide time; beyond
/// it the oldest is dropped (and read back from the store if decided).
pub const HELD_MAX: usize = 64;

#[derive(Debug)]
struct Pending {
    height: Height,
    round: Round,
    deadline: Instant,
    /// The end of `propose_wait`.
    first: Instant,
    /// The latest it may wait for attestations (half the propose timeout).
    latest: Instant,
    /// Our own proposal for this (height, round), stored before a restart.
    reuse: Option<Held>,
}

/// The next height, held back while the network is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartWait {
    pub height: Height,
    /// When it starts if nothing comes: the decision plus
    /// [`AppConfig::max_idle_block_interval`].
    pub until: Instant,
}

fn encode<T: borsh::BorshSerialize>(what: &'static str, v: &T) -> Result<Vec<u8>, AppError> {
    borsh::to_vec(v).map_err(|e| AppError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// The app's state machine.
#[derive(Debug)]
pub struct Core {
    cfg: AppConfig,
    address: ValidatorAddress,
    validators: ValidatorSet,
    /// The last executed height.
    height: u64,
    /// The state root after `height`: what a block of `height + 1` must
    /// carry ([`BlockData::prev_root`]).
    root: [u8; 32],
    mempool: Mempool,
    /// Batch digests this validator verified (or made).
    verified: HashSet<[u8; 32]>,
    streams: Reassembler,
    gossip: GossipSched<PeerId>,
    pending: Option<Pending>,
    held: BTreeMap<(u64, [u8; 32]), Held>,
    /// The next height, held back by the idle rule ([`Core::finalized`]).
    start_wait: Option<StartWait>,
    /// The highest height whose value came by sync: a node catching up
    /// starts the height after it at once.
    synced_upto: u64,
    /// The highest height its proposer (or sync) gave a value for: one that
    /// arrives before our own `Finalized` starts that height at once.
    proposed_upto: u64,
    /// This validator's own batches still in the mempool, with the heights
    /// finalized since they were last gossiped ([`Core::finalized`]
    /// re-gossips one that waited [`REGOSSIP_AFTER_HEIGHTS`]).
    own: BTreeMap<[u8; 32], u32>,
    /// Validity attestations (`machine/attest.rs`).
    attesting: attest::Attesting,
}

impl Core {
    /// The core of the validator with this consensus key (it signs the
    /// validity attestations), at `height` with state `root`.
    pub fn new(
        cfg: AppConfig,
        key: PrivateKey,
        validators: ValidatorSet,
        height: u64,
        root: [u8; 32],
    ) -> Core {
        let address =
            ValidatorAddress::from_public_key(&PublicKey(key.verification_key().to_bytes()));
        Core {
            attesting: attest::Attesting::new(key, cfg.attest_sample_ppm),
            cfg,
            address,
            validators,
            height,
            root,
            mempool: Mempool::default(),
            verified: HashSet::new(),
            streams: Reassembler::default(),
            gossip: GossipSched::default(),
            pending: None,
            held: BTreeMap::new(),
            start_wait: None,
            synced_upto: 0,
            proposed_upto: 0,
            own: BTreeMap::new(),
        }
    }

    pub fn cfg(&self) -> &AppConfig {
        &self.cfg
    }

    /// The last executed height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The state root after the last executed height.
    pub fn root(&self) -> [u8; 32] {
        self.root
    }

    /// The root check of a block of `height`: the root it carries must be
    /// ours for `height - 1`. `Ok` too when we have not executed
    /// `height - 1` yet (a proposal ahead of us); [`Core::decide`] checks
    /// it again then.
    pub fn check_root(&self, height: Height, block: &BlockData) -> Result<(), StateDiverged> {
        if height.0 == self.height + 1 && block.prev_root() != self.root {
            return Err(StateDiverged {
                height: self.height,
                ours: self.root,
                theirs: block.prev_root(),
            });
        }
        Ok(())
    }

    pub fn next_height(&self) -> Height {
        Height(self.height + 1)
    }

    pub fn params(&self) -> HeightParams<StepContext> {
        HeightParams::new(self.validators.clone(), self.cfg.timeouts.linear(), None)
    }

    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The count of peers' gossiped batches taken into the mempool, shared.
    pub fn gossip_counter(&self) -> Arc<AtomicU64> {
        self.gossip.accepted()
    }

    /// Most batches the mempool holds: the node's own batches wait (and the
    /// pipeline behind them refuses with OVERLOADED) and peers' gossip is
    /// dropped beyond it (those batches still arrive in their proposals).
    pub fn mempool_max(&self) -> usize {
        self.cfg.max_batches_per_block.saturating_mul(8).max(64)
    }

    /// Whether the node's own batches may come in.
    pub fn has_room(&self) -> bool {
        self.mempool.len() < self.mempool_max()
    }

    /// Most batches in a block this validator proposes or accepts.
    fn block_max(&self) -> usize {
        self.cfg.max_batches_per_block.min(MAX_BATCHES_PER_BLOCK)
    }

    /// The next timer: when the pending `GetValue` must be answered or the
    /// held-back height must start, whichever is first.
    pub fn deadline(&self) -> Option<Instant> {
        let propose = self.pending.as_ref().map(|p| p.deadline);
        let start = self.start_wait.map(|w| w.until);
        [
            propose,
            start,
            self.fallback_deadline(),
            self.own_regossip_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next height, if the idle rule holds it back.
    pub fn start_wait(&self) -> Option<StartWait> {
        self.start_wait
    }

    /// Starts the held-back height, if any.
    fn start_now(&mut self, fx: &mut Vec<Effect>) {
        if let Some(w) = self.start_wait.take() {
            fx.push(Effect::StartHeight(w.height));
        }
    }

    fn mark_verified(&mut self, digests: impl IntoIterator<Item = [u8; 32]>) {
        if self.verified.len() > VERIFIED_MAX {
            self.verified.clear();
        }
        self.verified.extend(digests);
    }

    /// A batch from this validator's own pipeline: gossip it at once (peers
    /// verify it while it waits here) and queue it.
    pub fn local_batch(
        &mut self,
        batch: WireBatch,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> Result<(), AppError> {
        let batch = Arc::new(batch);
        let att = self.attest_own(batch.digest);
        self.await_own_quorum(batch.digest, now);
        fx.push(Effect::Gossip(crate::streaming::gossip(&batch, att)));
        self.mark_verified([batch.digest]);
        if self.mempool.push(Arc::clone(&batch)) {
            self.own.insert(batch.digest, 0);
        }
        // Work to do: an idle wait ends.
        self.start_now(fx);
        self.propose_if_full(fx)
    }

    /// A peer's gossiped batch with its ingester's attestation. Under
    /// `"attested"` ([`attest`]) the attestation is checked and counted, and
    /// only the designated attesters verify the batch; under `"all"` every
    /// validator verifies it off the loop unless known.
    pub fn gossip_batch(
        &mut self,
        batch: Arc<WireBatch>,
        att: &Attestation,
        from: PeerId,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if self.attested_mode() {
            let checked = if att.digest == batch.digest {
                att.check(&self.validators).map_err(|e| e.to_string())
            } else {
                Err("the attestation names another digest".to_owned())
            };
            match checked {
                Ok(power) => {
                    self.attesting_pool_add(att.clone(), power);
                    self.gossip_attested(batch, &att.validator, from, now, fx);
                }
                Err(error) => {
                    tracing::warn!(%from, %error, "peer gossiped a batch with a bad attestation; dropped");
                    let muted = self.gossip.strike(&from, now);
                    report_mute(from, muted);
                }
            }
            return;
        }
        let known = self.mempool.contains(&batch.digest);
        let room = self.has_room();
        if let Some(batch) = self.gossip.offer(batch, from, now, known, room) {
            fx.push(Effect::VerifyGossip { from, batch });
        }
    }

    /// A gossip verification ended (`Err`: the batch is invalid, and why).
    pub fn gossip_verdict(
        &mut self,
        batch: Arc<WireBatch>,
        from: PeerId,
        result: Result<(), VerifyFault>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> Result<(), AppError> {
        let valid = result.is_ok();
        let (verdict, next) = self.gossip.verdict(&batch.digest, from, valid, now);
        if let Some(next) = next {
            fx.push(Effect::VerifyGossip { from, batch: next });
        }
        match verdict {
            Verdict::Accept => {
                self.mark_verified([batch.digest]);
                if self.attested_mode() {
                    self.attest_verified(batch.digest, fx);
                }
                self.mempool.push(batch);
                self.start_now(fx);
            }
            Verdict::Invalid { muted } => {
                // The network layer authenticated the publisher as a
                // validator; an invalid batch from one is misbehaviour.
                tracing::warn!(%from, digest = ?batch.digest, "peer gossiped an invalid batch; dropped");
                report_mute(from, muted);
                if let Err(fault) = &result {
                    self.gossip_invalid(&batch, fault, fx);
                }
            }
            Verdict::Decided => {}
        }
        self.propose_if_full(fx)
    }

    /// `GetValue`: wait up to `propose_wait` (at most half the timeout) for
    /// a full block. `stored`: this height's undecided records, for the
    /// restart reuse rule.
    pub fn get_value(
        &mut self,
        height: Height,
        round: Round,
        timeout: Duration,
        now: Instant,
        stored: &[UndecidedRecord],
        fx: &mut Vec<Effect>,
    ) -> Result<(), AppError> {
        let wait = self.cfg.propose_wait.min(timeout / 2);
        self.pending = Some(Pending {
            height,
            round,
            deadline: now + wait,
            first: now + wait,
            latest: now + timeout / 2,
            reuse: own_stored_proposal(stored, round, self.address),
        });
        self.propose_if_full(fx)
    }

    /// The timer: propose when the pending deadline has passed; start the
    /// held-back height when its interval has.
    pub fn timer(&mut self, now: Instant, fx: &mut Vec<Effect>) -> Result<(), AppError> {
        if self.pending.as_ref().is_some_and(|p| p.deadline <= now) {
            // Under "attested", batches waiting only for their attestations
            // are worth up to half the propose timeout: an empty block
            // would cost a whole height.
            let waiting =
                self.attested_mode() && self.ready_batches() == 0 && !self.mempool.is_empty();
            match self.pending.as_mut() {
                Some(p) if waiting && now < p.latest => p.deadline = p.latest,
                _ => self.propose(fx)?,
            }
        }
        if self.fallback_deadline().is_some_and(|d| d <= now) {
            self.fallback_due(now, fx);
        }
        if self.own_regossip_deadline().is_some_and(|d| d <= now) {
            self.regossip_unattested(now, fx);
        }
        if self.start_wait.is_some_and(|w| w.until <= now) {
            self.start_now(fx);
        }
        Ok(())
    }

    fn propose_if_full(&mut self, fx: &mut Vec<Effect>) -> Result<(), AppError> {
        if self.ready_batches() >= self.cfg.max_batches_per_block {
            self.propose(fx)?;
        }
        Ok(())
    }

    /// Answers the pending `GetValue`: our stored proposal for the round
    /// after a restart, else the oldest mempool batches.
    fn propose(&mut self, fx: &mut Vec<Effect>) -> Result<(), AppError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let (block, bytes) = match p.reuse {
            Some(h) => (h.block, Some(h.bytes)),
            None if self.attested_mode() => (Arc::new(self.attested_block()), None),
            None => (
                Arc::new(BlockData::on_root(
                    self.root,
                    self.mempool.peek_block(self.block_max()),
                )),
                None,
            ),
        };
        let pv = ProposedValue {
            height: p.height,
            round: p.round,
            valid_round: Round::Nil,
            proposer: self.address,
            value: block.value.clone(),
            validity: Validity::Valid,
        };
        self.remember(&pv, Arc::clone(&block), bytes, fx)?;
        fx.push(Effect::Propose {
            height: p.height,
            round: p.round,
            value: LocallyProposedValue::new(p.height, p.round, block.value.clone()),
        });
        fx.push(Effect::Publish(split(
            p.height,
            p.round,
            Round::Nil,
            self.address,
            &block,
            self.cfg.batches_per_part,
        )));
        Ok(())
    }

    /// A validated proposal (received or synced): store it and hold its
    /// block for the decision. `bytes`: the block's bytes, when it came as
    /// bytes (sync).
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        &mut self,
        height: Height,
        round: Round,
        valid_round: Round,
        proposer: ValidatorAddress,
        block: BlockData,
        bytes: Option<Vec<u8>>,
        validity: Validity,
        fx: &mut Vec<Effect>,
    ) -> Result<ProposedValue<StepContext>, AppError> {
        let pv = ProposedValue {
            height,
            round,
            valid_round,
            proposer,
            value: block.value.clone(),
            validity,
        };
        let synced = bytes.is_some();
        if synced {
            self.synced_upto = self.synced_upto.max(height.0);
        }
        // The held-back height is under way elsewhere: its proposer (or a
        // peer serving it by sync) has a value for it.
        let by_proposer = self.validators.proposer(height, round).address == proposer;
        if synced || by_proposer {
            self.proposed_upto = self.proposed_upto.max(height.0);
            if self.start_wait.is_some_and(|w| w.height == height) {
                self.start_now(fx);
            }
        }
        self.remember(&pv, Arc::new(block), bytes.map(Arc::new), fx)?;
        Ok(pv)
    }

    fn remember(
        &mut self,
        pv: &ProposedValue<StepContext>,
        block: Arc<BlockData>,
        bytes: Option<Arc<Vec<u8>>>,
        fx: &mut Vec<Effect>,
    ) -> Result<(), AppError> {
        let bytes = match bytes {
            Some(b) => b,
            None => Arc::new(block.encode().map_err(AppError::from_wire("block"))?),
        };
        fx.push(Effect::PutUndecided(UndecidedRecord {
            height: pv.height.0,
            round: pv.round.as_i64(),
            value_id: block.id().0,
            proposed: encode("proposed value", pv)?,
            block: bytes.to_vec(),
        }));
        // Held whatever our verdict: a quorum may still decide it.
        self.hold(pv.height.0, Held { block, bytes });
        Ok(())
    }

    fn hold(&mut self, height: u64, held: Held) {
        if height <= self.height {
            return;
        }
        self.held.insert((height, held.block.id().0), held);
        while self.held.len() > HELD_MAX {
            self.held.pop_first();
        }
    }

    /// The held block of (height, value id), if any.
    pub fn held(&self, height: Height, value_id: ValueId) -> Option<&Held> {
        self.held.get(&(height.0, value_id.0))
    }

    /// Holds the block of `value_id` from this height's stored records.
    pub fn hold_stored(
        &mut self,
        height: Height,
        value_id: ValueId,
        stored: Vec<UndecidedRecord>,
    ) -> Result<(), AppError> {
        let Some(rec) = stored.into_iter().find(|r| r.value_id == value_id.0) else {
            return Ok(());
        };
        let block = decode_block(&rec.block).map_err(|source| AppError::StoredBlock {
            height: height.0,
            source,
        })?;
        self.hold(
            height.0,
            Held {
                block: Arc::new(block),
                bytes: Arc::new(rec.block),
            },
        );
        Ok(())
    }
}

fn report_mute(peer: PeerId, muted: bool) {
    if muted {
        tracing::warn!(
            %peer,
            strikes = GOSSIP_STRIKES,
            mute_s = GOSSIP_MUTE.as_secs(),
            "peer's gossip muted after repeated invalid batches"
        );
    }
}

impl AppError {
    fn from_wire(what: &'static str) -> impl Fn(WireError) -> AppError {
        move |e| AppError::Encode {
            what,
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
