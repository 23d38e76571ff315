//! The core's digest-only proposals (`app/fetch.rs` holds the pure
//! tables): a proposal's digests resolved against the batches this
//! validator holds, a `Want` for those it lacks, the `Supply`s it answers
//! and receives, and the timer's retries and give-ups.

use super::*;
use std::sync::atomic::Ordering;

use crate::app::fetch::{Due, SeenBatches};
use crate::context::Value;
use crate::streaming::{want, Assembled};

/// The batch of `digest` this validator holds: seen (gossip, supply) or in
/// its mempool (its own included).
fn lookup<'a>(
    seen: &'a SeenBatches,
    mempool: &'a Mempool,
    digest: &[u8; 32],
) -> Option<&'a Arc<WireBatch>> {
    seen.get(digest).or_else(|| mempool.get(digest))
}

impl Core {
    /// The next proposal ready for consensus, if any (one per reply).
    pub(super) fn next_ready(&mut self) -> Option<Received> {
        self.fetching.ready.pop_front()
    }

    /// A batch arrived (gossip or supply): kept, and the waiting proposals
    /// it completes are resolved.
    pub(super) fn batch_arrived(
        &mut self,
        batch: &Arc<WireBatch>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if self.gossip.is_decided(&batch.digest) {
            return;
        }
        self.fetching.seen.insert(batch);
        for a in self.fetching.waiting.arrived(&batch.digest) {
            self.resolve(a, now, fx);
        }
    }

    /// A complete proposal: its block when every batch is here (queued for
    /// [`Core::next_ready`]); else a `Want` for the missing ones, and the
    /// proposal waits.
    pub(super) fn resolve(&mut self, a: Assembled, now: Instant, fx: &mut Vec<Effect>) {
        let max = self.block_max();
        if a.value.batch_digests.len() > max {
            // Never fetched: its block would be refused anyway; consensus
            // times the proposal out.
            tracing::debug!(
                height = a.height.0,
                batches = a.value.batch_digests.len(),
                max,
                "proposal names more batches than a block may hold; dropped"
            );
            return;
        }
        let mut batches = Vec::with_capacity(a.value.batch_digests.len());
        let mut missing = HashSet::new();
        if let Some(h) = self.held.get(&(a.height.0, a.announced_id.0)) {
            batches.extend(h.block.batches.iter().cloned());
        } else {
            for d in &a.value.batch_digests {
                match lookup(&self.fetching.seen, &self.mempool, d) {
                    Some(b) => batches.push(Arc::clone(b)),
                    None => {
                        missing.insert(*d);
                    }
                }
            }
        }
        if missing.is_empty() {
            let Assembled {
                height,
                round,
                valid_round,
                proposer,
                value,
                attestations,
                ..
            } = a;
            let Value { prev_root, .. } = value;
            let block = BlockData::on_root(prev_root, batches).with_attestations(attestations);
            self.fetching.ready.push_back(Received {
                height,
                round,
                valid_round,
                proposer,
                block,
            });
            return;
        }
        let mut digests: Vec<[u8; 32]> = missing.iter().copied().collect();
        digests.sort_unstable();
        tracing::debug!(
            height = a.height.0,
            round = a.round.as_i64(),
            missing = digests.len(),
            "proposal names batches this validator lacks: asking peers"
        );
        fx.push(Effect::Gossip(want(digests)));
        self.fetching.waiting.add(a, missing, now);
    }

    /// A peer's `Want`: the batches this validator holds go out as
    /// `Supply`s (each at most once per cooldown, whoever asks).
    pub(super) fn want_received(
        &mut self,
        digests: &[[u8; 32]],
        from: PeerId,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let (fetching, mempool) = (&mut self.fetching, &self.mempool);
        let seen = &fetching.seen;
        let out = fetching
            .supplies
            .answer(digests, now, |d| lookup(seen, mempool, d));
        if !out.is_empty() {
            tracing::debug!(%from, wanted = digests.len(), supplied = out.len(), "supplying batches a peer lacks");
        }
        for b in out {
            fx.push(Effect::Gossip(crate::streaming::supply(&b)));
        }
    }

    /// A peer's `Supply`: kept only when a waiting proposal lacks it and its
    /// contents hash to its digest (else a strike against the publisher);
    /// the proposals it completes are resolved.
    pub(super) fn supply_received(
        &mut self,
        batch: &Arc<WireBatch>,
        from: PeerId,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if !self.fetching.waiting.wants(&batch.digest) {
            tracing::trace!(%from, "supply nobody here asked for; ignored");
            return;
        }
        if let Err(fault) = digest_matches(&self.cfg.verifier, batch) {
            tracing::warn!(%from, reason = %fault.reason, "peer supplied a batch that is not its digest's; dropped");
            let muted = self.gossip.strike(&from, now);
            report_mute(from, muted);
            return;
        }
        self.fetching.fetched.fetch_add(1, Ordering::Relaxed);
        self.batch_arrived(batch, now, fx);
    }

    /// A received block was found valid: its batches (and, attested, their
    /// attestations) join this validator's mempool, so that any later
    /// proposer offers them again if this round fails, and a batch fetched
    /// for it is not proposed by its ingester alone.
    pub fn adopt(&mut self, block: &BlockData, fx: &mut Vec<Effect>) {
        for att in &block.attestations {
            if let Ok(power) = att.check(&self.validators) {
                self.attesting_pool_add(att.clone(), power);
            }
        }
        let mut added = false;
        for b in &block.batches {
            if !self.has_room() {
                break;
            }
            if !self.gossip.is_decided(&b.digest) && self.mempool.push(Arc::clone(b)) {
                added = true;
            }
        }
        if added {
            self.start_now(fx);
        }
    }

    /// When the next waiting proposal asks again or is given up.
    pub(super) fn fetch_deadline(&self) -> Option<Instant> {
        self.fetching.waiting.deadline()
    }

    /// The timer for waiting proposals: ask again, give up the old.
    pub(super) fn fetch_due(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let Due {
            want: again,
            given_up,
        } = self.fetching.waiting.due(now);
        for (height, round) in given_up {
            tracing::warn!(
                height,
                round,
                "proposal given up: peers never supplied its batches"
            );
        }
        if !again.is_empty() {
            fx.push(Effect::Gossip(want(again)));
        }
    }

    /// Forgets what the decision of `height` settled.
    pub(super) fn fetch_decided(&mut self, height: u64, digests: &[[u8; 32]]) {
        self.fetching.seen.remove(digests);
        self.fetching.waiting.executed(height);
        self.fetching.ready.retain(|r| r.height.0 > height);
    }

    /// Batches seen and not decided yet (gossip, supplies).
    pub fn seen_batches(&self) -> &SeenBatches {
        &self.fetching.seen
    }

    /// The count of batches peers supplied on request, shared.
    pub fn fetch_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.fetching.fetched)
    }

    /// Proposals waiting for batches.
    pub fn waiting_proposals(&self) -> usize {
        self.fetching.waiting.len()
    }
}

/// The batch's contents hash to its carried digest (one keccak per proof,
/// no signature check).
fn digest_matches(verifier: &step_engine::Verifier, batch: &WireBatch) -> Result<(), VerifyFault> {
    let b = batch
        .to_batch()
        .map_err(|e| VerifyFault::from_wire_error(&e))?;
    step_engine::pipeline::reverify_sampled(verifier, &b, |_| false)
        .map_err(|e| VerifyFault::from_batch_error(&e))
}
