//! The consensus ledger's two workers and what they share ([`Shared`]):
//!
//! * the **forwarder** thread moves the pipeline's batches into the node's
//!   proposal queue; a batch it cannot hand over fails its proofs' waiters
//!   with [`FinalityError::NotForwarded`] (they would never be decided);
//! * the **decision task** settles each decided block (waiters, the proof
//!   index, the pre-check's decided part, the intake log, `/events`). If it
//!   falls behind the node's event stream (`RecvError::Lagged`), it reads
//!   the missed heights back ([`super::recovery::recover`]: execution's
//!   result journal, and the store before it) and settles every proof it
//!   was waiting for. No waiter is left pending.

use super::exec::{settle_block, BlockResults};
use super::intake::{lock, Finality, Intake};
use super::precheck::{PrecheckShards, PrecheckState};
use super::recovery::{recover, DecidedSource};
use super::{FinalityError, FinalizedBlock, ProofId, ProofRecord};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use step_consensus::{Decision, NodeEvent, SharedState, WireBatch};
use step_engine::bounded::FifoMap;
use step_engine::pipeline::{Batch, Clock, Pipeline};
use tokio::sync::{broadcast, Notify};

/// Finalized proofs by id, the oldest forgotten first.
#[derive(Debug)]
pub(super) struct ProofIndex {
    pub by_id: FifoMap<ProofId, ProofRecord>,
}

impl ProofIndex {
    pub fn new(max: usize) -> ProofIndex {
        ProofIndex {
            by_id: FifoMap::new(max),
        }
    }

    pub fn insert(&mut self, rec: ProofRecord) {
        self.by_id.insert(rec.id, rec);
    }
}

/// The last decision this node executed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Last {
    pub height: u64,
    pub round: i64,
    pub root: [u8; 32],
    /// When it was executed here (or when the ledger started).
    pub at: Instant,
}

impl Default for Last {
    fn default() -> Last {
        Last {
            height: 0,
            round: 0,
            root: [0; 32],
            at: Instant::now(),
        }
    }
}

/// What the ledger, the pipeline's verdict sink, the forwarder and the
/// decision task share. Lock order: `finality` before `index`.
#[derive(Debug)]
pub(super) struct Shared {
    pub intake: Intake,
    /// What every [`PrecheckState`] reads.
    pub precheck: Arc<PrecheckShards>,
    pub finality: Mutex<Finality>,
    pub index: Mutex<ProofIndex>,
    pub last: Mutex<Last>,
    /// Signalled after every executed decision.
    pub settled: Notify,
    pub events: broadcast::Sender<Arc<FinalizedBlock>>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// False once the node reported a fatal error or stopped.
    pub alive: AtomicBool,
    pub evidence: Mutex<std::collections::VecDeque<super::EvidenceView>>, // GET /evidence
}

/// Moves the pipeline's batches into the node's proposal queue. Blocks
/// while the node's queue is full, which stalls the pipeline's batch queue
/// and, behind it, makes `submit` answer OVERLOADED. Once the node's queue
/// is gone, every later batch fails too, until the pipeline closes.
pub(super) fn forward(
    pipeline: &Pipeline<PrecheckState>,
    shared: &Shared,
    submit: &tokio::sync::mpsc::Sender<WireBatch>,
) {
    let batches = pipeline.batches().clone();
    let mut stopped = false;
    while let Ok(batch) = batches.recv() {
        shared.metrics.batch_proofs.observe(batch.len() as f64);
        if stopped {
            fail_batch(shared, &batch, "the consensus node stopped");
        } else {
            match WireBatch::from_batch(&batch) {
                Ok(wire) => {
                    if submit.blocking_send(wire).is_err() {
                        tracing::warn!("consensus node stopped; batches fail from now on");
                        shared.alive.store(false, Ordering::Release);
                        stopped = true;
                        fail_batch(shared, &batch, "the consensus node stopped");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "pipeline batch cannot be encoded; its proofs fail");
                    fail_batch(shared, &batch, &format!("batch cannot be encoded: {e}"));
                }
            }
        }
        pipeline.recycle(batch);
    }
}

/// A batch that will never be decided: its proofs' waiters hear
/// [`FinalityError::NotForwarded`], and the pre-check forgets them.
pub(super) fn fail_batch(shared: &Shared, batch: &Batch, reason: &str) {
    // Forgotten first: a waiter that hears of the failure and resubmits
    // must not be refused by the pre-check.
    for p in &batch.proofs {
        shared.precheck.abandon(p);
    }
    let err = Err(FinalityError::NotForwarded {
        reason: reason.to_owned(),
    });
    {
        let mut finality = lock(&shared.finality);
        for p in &batch.proofs {
            if let Some(id) = ProofId::of_proof(p) {
                finality.resolve(id, &err);
            }
        }
    }
    shared.settled.notify_waiters();
}

/// Settles each decided block, in height order; see the module documentation.
pub(super) async fn decision_loop(
    shared: Arc<Shared>,
    mut rx: broadcast::Receiver<NodeEvent>,
    state: SharedState,
    store: Arc<dyn DecidedSource>,
) {
    loop {
        match rx.recv().await {
            Ok(NodeEvent::Decided(d)) => apply_decision(&shared, &d),
            Ok(NodeEvent::Evidence(e)) => {
                tracing::warn!(height = e.height, "misbehaviour evidence recorded: {e:?}");
                super::evidence::record(&shared.metrics, &shared.evidence, &e);
            }
            Ok(NodeEvent::AttestEvidence(e)) => {
                tracing::warn!(offenders = ?e.offenders(), "attested an invalid batch: {}", e.reason);
            }
            Ok(NodeEvent::StateDiverged { error, decided }) => {
                tracing::error!(decided, "StateDiverged: {error}");
                shared.metrics.state_diverged(decided);
            }
            Ok(NodeEvent::Fatal(msg)) => {
                tracing::error!("consensus stopped: {msg}");
                break;
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "decision stream lagged; recovering the missed heights"
                );
                recover(&shared, &state, &*store).await;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    shared.alive.store(false, Ordering::Release);
    lock(&shared.finality).close();
    shared.settled.notify_waiters();
}

pub(super) fn apply_decision(shared: &Shared, d: &Decision) {
    if d.height <= lock(&shared.last).height {
        return; // settled already, from the journal after a lag
    }
    let time_ms = shared.clock.now_ms();
    let m = &shared.metrics;
    // Counted before any waiter is answered: a client that saw its proof
    // final then reads /metrics must see it counted.
    m.block_proofs.observe(d.proofs as f64);
    m.finalized.inc_by(d.accepted);
    m.height.set(i64::try_from(d.height).unwrap_or(i64::MAX));
    let settled = {
        let mut finality = lock(&shared.finality);
        let mut index = lock(&shared.index);
        let block = BlockResults {
            height: d.height,
            time_ms,
            batches: &d.batches,
            results: &d.results,
        };
        settle_block(&block, &mut finality, m, |rec| index.insert(rec))
    };
    // Decided, accepted or not: out of the intake log.
    if shared.intake.log().is_some() {
        let ids = settled.proof_ids.iter().copied();
        let rejected = settled.rejected.iter().map(|r| r.id);
        shared.intake.forget_decided(ids.chain(rejected).collect());
    }
    // The decided part answers for the accepted proofs from now on (it
    // takes them before the local part forgets them); execution answered
    // for the rejected ones.
    let proofs = d.batches.iter().flat_map(|b| b.proofs.iter());
    for (p, r) in proofs.zip(d.results.iter()) {
        shared.precheck.decided(p, r.is_ok());
    }
    *lock(&shared.last) = Last {
        height: d.height,
        round: d.round,
        root: d.root,
        at: Instant::now(),
    };
    tracing::debug!(
        height = d.height,
        round = d.round,
        proofs = d.proofs,
        accepted = d.accepted,
        "block executed"
    );
    // No subscribers is not an error.
    let _ = shared.events.send(Arc::new(FinalizedBlock {
        height: d.height,
        time_ms,
        state_root: d.root,
        batches: d.batch_digests.clone(),
        proof_ids: settled.proof_ids,
        rejected: settled.rejected,
    }));
    shared.settled.notify_waiters();
}

#[cfg(test)]
#[path = "decisions_tests.rs"]
mod tests;
