//! The core's received proposals: parts and gossip in, complete proposals
//! out, and the checks of a block before (or instead of) its signatures.

use super::*;

impl Core {
    /// A proposal part (or a gossip message) from a peer. Returns a
    /// complete proposal of a height not executed yet whose value id is the
    /// announced one; validate it, then call [`Core::accept`].
    pub fn received_part(
        &mut self,
        from: PeerId,
        published_by: Option<PeerId>,
        part: StreamMessage<ProposalPart>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> Option<Assembled> {
        // Group by the publisher: relays may deliver parts of one stream
        // through different neighbours.
        let publisher = published_by.unwrap_or(from);
        if let Some(error) = crate::streaming::undecodable_gossip(&part) {
            // Bytes that are not a batch are an invalid batch: a strike
            // against the authenticated publisher.
            tracing::warn!(%publisher, %error, "peer gossiped a batch that does not decode; dropped");
            let muted = self.gossip.strike(&publisher, now);
            report_mute(publisher, muted);
            return None;
        }
        if let Some((batch, att)) = crate::streaming::gossiped(&part) {
            let batch = Arc::clone(batch);
            self.gossip_batch(batch, &att.clone(), publisher, now, fx);
            return None;
        }
        if let Some(att) = crate::streaming::attestation(&part) {
            self.attestation_received(att.clone(), publisher, now);
            return None;
        }
        let a = match self.streams.try_insert(publisher, part) {
            Ok(a) => a?,
            Err(e) => {
                tracing::debug!(%publisher, error = %e, "proposal stream dropped");
                return None;
            }
        };
        (a.height.0 > self.height && a.block.id() == a.announced_id).then_some(a)
    }

    /// The checks of a block of `height` before any signature:
    /// consistency, the previous root ([`Core::check_root`]), size,
    /// duplicates; then the batches not verified yet.
    pub fn check_block(&self, height: Height, block: &BlockData) -> BlockCheck {
        if !block.is_consistent() {
            return BlockCheck::Invalid(BlockFault::Inconsistent);
        }
        if let Err(d) = self.check_root(height, block) {
            return BlockCheck::Invalid(BlockFault::StateDiverged(d));
        }
        if block.batches.len() > self.block_max() {
            return BlockCheck::Invalid(BlockFault::TooManyBatches {
                batches: block.batches.len(),
                max: self.block_max(),
            });
        }
        let distinct: HashSet<_> = block.value.batch_digests.iter().collect();
        if distinct.len() != block.batches.len() {
            return BlockCheck::Invalid(BlockFault::DuplicateBatches);
        }
        if self.attested_mode() {
            return self.check_attested(block);
        }
        let todo: Vec<_> = block
            .batches
            .iter()
            .filter(|b| !self.verified.contains(&b.digest))
            .cloned()
            .collect();
        if todo.is_empty() {
            BlockCheck::Valid
        } else {
            BlockCheck::Verify(todo)
        }
    }

    /// [`verify_batches`] found these batches valid.
    pub fn batches_verified(&mut self, batches: &[Arc<WireBatch>]) {
        self.mark_verified(batches.iter().map(|b| b.digest));
    }
}
