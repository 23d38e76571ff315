//! The shell's signature checks off the loop: a peer's gossiped batch, and
//! the batches of a block the core has not verified (with the state-root
//! report when a block carries another root than ours).

use super::*;

impl<S: Store> App<S> {
    pub(super) fn spawn_gossip_check(&self, from: PeerId, batch: Arc<WireBatch>) {
        let verifier = self.core.cfg().verifier;
        let tx = self.verdicts_tx.clone();
        tokio::task::spawn_blocking(move || {
            let valid = verify_batches(&verifier, std::slice::from_ref(&batch));
            if tx
                .blocking_send(GossipVerdict { batch, from, valid })
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
    /// unverified batches' signatures on a blocking thread.
    pub(super) async fn validate(&mut self, height: Height, block: &BlockData) -> Validity {
        match self.core.check_block(height, block) {
            BlockCheck::Invalid(BlockFault::StateDiverged(d)) => {
                self.report_diverged(d, false);
                Validity::Invalid
            }
            BlockCheck::Invalid(fault) => {
                tracing::debug!(?fault, "invalid block");
                Validity::Invalid
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
        }
    }
}
