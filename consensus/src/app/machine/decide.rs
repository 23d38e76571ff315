//! The core's decision path: `Decided` (the held block to execute),
//! execution done (store, forget, report), and `Finalized` (evidence, then
//! the next height, or the idle wait).

use super::*;

impl Core {
    /// `Decided`: the block to execute, from what the app holds.
    pub fn decide(
        &mut self,
        height: Height,
        round: Round,
        value_id: ValueId,
    ) -> Result<Decide, AppError> {
        if height.0 <= self.height {
            return Ok(Decide::Done);
        }
        let Some(held) = self.held.get(&(height.0, value_id.0)).cloned() else {
            return Ok(Decide::NeedStored);
        };
        // A quorum decided a block on another root than ours: our state is
        // not the chain's. Stop, never execute on top of it.
        self.check_root(height, &held.block)?;
        let batches = held
            .block
            .batches
            .iter()
            .map(|b| b.to_batch())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| AppError::DecidedBatch {
                height: height.0,
                source,
            })?;
        Ok(Decide::Execute(ExecJob {
            height,
            round,
            value_id,
            held,
            batches,
        }))
    }

    /// The decided block of `job` was executed: store it, forget its
    /// batches, tell the subscribers.
    pub fn executed(
        &mut self,
        job: ExecJob,
        outcome: BlockOutcome,
        accepted_total: u64,
        certificate: Vec<u8>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let height = job.height.0;
        let block = job.held.block;
        let accepted = outcome.changes.accepted;
        // The held bytes go to the decided table as they are.
        self.held.remove(&(height, job.value_id.0));
        let bytes = Arc::try_unwrap(job.held.bytes).unwrap_or_else(|b| b.to_vec());
        let rows = BlockRows {
            proofs: stored_proofs(height, &job.batches, &outcome.results),
            writes: outcome.writes,
        };
        fx.push(Effect::Commit(
            DecidedRecord {
                height,
                block: bytes,
                certificate,
                changes: outcome.changes,
                root: outcome.root,
            },
            rows,
        ));
        let digests = &block.value.batch_digests;
        self.mempool.remove(&digests.iter().copied().collect());
        let mempool = &self.mempool;
        self.own.retain(|d, _| mempool.contains(d));
        self.gossip.decided(digests);
        self.attest_decided(digests);
        self.height = height;
        self.root = outcome.root;
        self.held.retain(|(h, _), _| *h > height);
        fx.push(Effect::Emit(NodeEvent::Decided(Decision {
            height,
            round: job.round.as_i64(),
            value_id: job.value_id,
            root: outcome.root,
            batch_digests: digests.clone(),
            proofs: block.proof_count() as u64,
            accepted,
            accepted_total,
            at: now,
            batches: job.batches.into(),
            results: outcome.results.into(),
        })));
    }

    /// `Finalized` at `now`: keep and report the evidence, if any, then
    /// start the next height ([`Effect::StartHeight`]) or hold it back.
    ///
    /// The idle rule: the next height starts at once when the mempool holds
    /// a batch, when `height` came by sync (a node catching up is never
    /// slowed), when the next height's proposer already proposed it, or
    /// when `max_idle_block_interval` is zero. Otherwise it
    /// waits until `now + max_idle_block_interval`, or until a batch enters
    /// the mempool or its proposer's proposal arrives, whichever is first.
    /// Meanwhile malachite stays at `height` and buffers the next height's
    /// votes and proposals (they are replayed when it starts).
    pub fn finalized(
        &mut self,
        height: Height,
        evidence: &MisbehaviorEvidence<StepContext>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> Result<(), AppError> {
        if !evidence.is_empty() {
            let record = EvidenceRecord::from_malachite(height.0, evidence);
            fx.push(Effect::PutEvidence {
                height: height.0,
                bytes: encode("evidence", &record)?,
            });
            fx.push(Effect::Emit(NodeEvent::Evidence(record)));
        }
        self.regossip_waiting(fx);
        let next = Height(height.0 + 1);
        let interval = self.cfg.max_idle_block_interval;
        if interval.is_zero()
            || height.0 <= self.synced_upto
            || next.0 <= self.proposed_upto
            || !self.mempool.is_empty()
        {
            self.start_wait = None;
            fx.push(Effect::StartHeight(next));
        } else {
            self.start_wait = Some(StartWait {
                height: next,
                until: now + interval,
            });
        }
        Ok(())
    }

    /// Counts one more finalized height for each own batch still waiting,
    /// and gossips again those that waited [`REGOSSIP_AFTER_HEIGHTS`].
    fn regossip_waiting(&mut self, fx: &mut Vec<Effect>) {
        let mut again = Vec::new();
        for (digest, heights) in &mut self.own {
            *heights += 1;
            if *heights < REGOSSIP_AFTER_HEIGHTS {
                continue;
            }
            if let Some(batch) = self.mempool.get(digest) {
                tracing::debug!(digest = ?digest, "own batch undecided for {heights} heights: gossiped again");
                again.push(Arc::clone(batch));
                *heights = 0;
            }
        }
        for batch in again {
            let att = self.attest_own(batch.digest);
            fx.push(Effect::Gossip(crate::streaming::gossip(&batch, att)));
        }
    }
}

/// The accepted proofs of a block, as the store keeps them for
/// `GET /proof/{id}` (proofs without a decoded signature are never in a
/// batch, and are left out).
pub(crate) fn stored_proofs(
    height: u64,
    batches: &[step_engine::pipeline::Batch],
    results: &[crate::execution::ProofResult],
) -> Vec<StoredProof> {
    let proofs = batches.iter().flat_map(|b| b.proofs.iter());
    proofs
        .zip(results)
        .filter_map(|(p, r)| StoredProof::of_accepted(height, p, r))
        .collect()
}
