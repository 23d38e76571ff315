//! The shell's signature work, off the app loop: a gossiped batch's
//! verification, and a received block's checks (full re-verification under
//! `"all"`, digest and sampled proofs under `"attested"`).

use super::*;

impl<S: Store> App<S> {
    pub(super) fn spawn_gossip_check(&self, from: PeerId, batch: Arc<WireBatch>) {
        let verifier = self.core.cfg().verifier;
        let tx = self.verdicts_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = verify_batch(&verifier, &batch);
            if tx
                .blocking_send(GossipVerdict {
                    batch,
                    from,
                    result,
                })
                .is_err()
            {
                tracing::debug!("gossip verdict after the app stopped");
            }
        });
    }

    /// Tells the operator (log, event, metric) that a block carried another
    /// state root than ours.
    pub(super) fn report_diverged(&self, d: StateDiverged, decided: bool) {
        tracing::error!(
            height = d.height,
            decided,
            error = %d,
            "StateDiverged: this validator's state differs from the block's (docs/RUNBOOK.md)"
        );
        let ev = NodeEvent::StateDiverged { error: d, decided };
        if self.events.send(ev).is_err() {
            tracing::debug!("node event with no subscriber");
        }
    }

    /// Validates a block of `height`: the core's checks, then the
    /// unverified batches' signatures (or, attested, their digests and
    /// samples) on a blocking thread.
    pub(super) async fn validate(
        &mut self,
        ch: &Channels<StepContext>,
        height: Height,
        block: &BlockData,
    ) -> Result<Validity, AppError> {
        Ok(match self.core.check_block(height, block) {
            BlockCheck::Invalid(BlockFault::StateDiverged(d)) => {
                self.report_diverged(d, false);
                Validity::Invalid
            }
            BlockCheck::Invalid(fault) => {
                tracing::debug!(?fault, "invalid block");
                Validity::Invalid
            }
            BlockCheck::Sample(todo) => {
                let verifier = self.core.cfg().verifier;
                let out =
                    tokio::task::spawn_blocking(move || sample_batches(&verifier, &todo)).await;
                match out {
                    Ok(Ok(())) => Validity::Valid,
                    Ok(Err((batch, fault))) => {
                        let mut fx = Vec::new();
                        self.core.sample_failed(block, &batch, &fault, &mut fx);
                        self.perform(ch, fx).await?;
                        Validity::Invalid
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "block sampling task failed");
                        Validity::Invalid
                    }
                }
            }
            BlockCheck::Valid => Validity::Valid,
            BlockCheck::Verify(todo) => {
                let verifier = self.core.cfg().verifier;
                let ok = tokio::task::spawn_blocking(move || {
                    verify_batches(&verifier, &todo).then_some(todo)
                })
                .await;
                match ok {
                    Ok(Some(todo)) => {
                        self.core.batches_verified(&todo);
                        Validity::Valid
                    }
                    Ok(None) => Validity::Invalid,
                    Err(e) => {
                        tracing::error!(error = %e, "block verification task failed");
                        Validity::Invalid
                    }
                }
            }
        })
    }
}
