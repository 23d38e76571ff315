//! What every ledger backend does between a submitted body and finality,
//! whatever finalizes its proofs: the pipeline's verdicts routed back to the
//! submitter ([`Intake`]), and accepted proofs tracked until their block
//! executes ([`Finality`]). With an intake log ([`crate::intake_log`]), an
//! accepted proof's verdict reaches its submitter only after the proof's
//! group is on disk.

use super::{
    Final, FinalityError, LedgerReadError, Pending, ProofId, ProofRecord, ProofStatus, QueueView,
    Submission,
};
use crate::intake_log::{IntakeLog, IntakeLogError};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use step_engine::pipeline::{Pipeline, Verdict};
use step_engine::{Proof, Reject};
use tokio::sync::{oneshot, Notify};

pub(super) type FinalTx = oneshot::Sender<Result<Final, FinalityError>>;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) type VerdictTx = oneshot::Sender<Result<Pending, Reject>>;

/// A submission waiting for its pipeline verdict.
#[derive(Debug)]
struct Waiting {
    tx: VerdictTx,
    submitted: Instant,
    /// Queued again from the intake log at start (logged already): its id.
    replay: Option<ProofId>,
}

/// What an accepted proof's log append carries to its completion.
#[derive(Debug)]
pub(super) struct LogReply {
    pub tx: VerdictTx,
    pub pending: Pending,
}

/// The intake log's completion: the 202 (or, if the write failed, OVERLOADED).
pub(super) fn log_complete(reply: LogReply, result: Result<(), &IntakeLogError>) {
    let verdict = match result {
        Ok(()) => Ok(reply.pending),
        Err(e) => {
            tracing::error!(error = %e, id = %reply.pending.id, "accepted proof not logged: answered OVERLOADED");
            Err(Reject::Overloaded)
        }
    };
    if reply.tx.send(verdict).is_err() {
        tracing::debug!("submitter gone before its verdict");
    }
}

#[derive(Debug, Default)]
struct Verdicts {
    closing: bool,
    by_tag: HashMap<u64, Waiting>,
}

/// Routes each pipeline verdict to the submission that asked for it.
#[derive(Debug, Default)]
pub(super) struct Intake {
    verdicts: Mutex<Verdicts>,
    /// Signalled when `verdicts.by_tag` may have become empty.
    idle: Notify,
    next_tag: AtomicU64,
    /// Where accepted proofs are made durable before their verdict.
    log: Option<Arc<IntakeLog<LogReply>>>,
}

impl Intake {
    /// An intake whose accepted proofs are logged in `log` before the
    /// submitter hears of them.
    pub fn with_log(log: Arc<IntakeLog<LogReply>>) -> Intake {
        Intake {
            log: Some(log),
            ..Intake::default()
        }
    }

    pub fn log(&self) -> Option<&Arc<IntakeLog<LogReply>>> {
        self.log.as_ref()
    }

    /// Queues a parsed proof in `pipeline`. Never blocks. With a log, a
    /// full or failed log refuses it (OVERLOADED) before the pipeline sees it.
    pub fn submit<S>(&self, pipeline: &Pipeline<S>, proof: &Proof) -> Result<Submission, Reject>
    where
        S: step_engine::ProofState + Send + 'static,
    {
        if let Some(log) = &self.log {
            if let Err(e) = log.reserve() {
                tracing::debug!(error = %e, "proof refused: OVERLOADED");
                return Err(Reject::Overloaded);
            }
        }
        let r = self.queue(pipeline, proof, None);
        if r.is_err() {
            if let Some(log) = &self.log {
                log.release();
            }
        }
        r
    }

    /// Queues a proof read back from the intake log at start (its place in
    /// the log is taken already; it is not logged again).
    pub fn resubmit<S>(&self, pipeline: &Pipeline<S>, proof: &Proof) -> Result<Submission, Reject>
    where
        S: step_engine::ProofState + Send + 'static,
    {
        self.queue(pipeline, proof, ProofId::of_proof(proof))
    }

    fn queue<S>(
        &self,
        pipeline: &Pipeline<S>,
        proof: &Proof,
        replay: Option<ProofId>,
    ) -> Result<Submission, Reject>
    where
        S: step_engine::ProofState + Send + 'static,
    {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut v = lock(&self.verdicts);
            if v.closing {
                return Err(Reject::Overloaded);
            }
            v.by_tag.insert(
                tag,
                Waiting {
                    tx,
                    submitted: Instant::now(),
                    replay,
                },
            );
        }
        match pipeline.submit_parsed(proof, tag) {
            Ok(_) => Ok(Submission::new(rx)),
            Err(e) => {
                let mut v = lock(&self.verdicts);
                v.by_tag.remove(&tag);
                if v.by_tag.is_empty() {
                    self.idle.notify_waiters();
                }
                Err(e)
            }
        }
    }

    /// Drops decided proofs from the intake log (if any).
    pub fn forget_decided(&self, ids: Vec<ProofId>) {
        if let Some(log) = &self.log {
            log.forget(ids);
        }
    }

    /// The pipeline's verdict callback (a worker thread, under the stage
    /// lock). An accepted proof is registered in `finality` before the
    /// submitter hears of it, so that `wait_final` right after the verdict
    /// finds it.
    pub fn deliver(&self, v: &Verdict, finality: &Mutex<Finality>) {
        let waiting = {
            let mut verdicts = lock(&self.verdicts);
            let w = verdicts.by_tag.remove(&v.tag);
            if verdicts.by_tag.is_empty() {
                self.idle.notify_waiters();
            }
            w
        };
        let result = match &v.result {
            Ok(accepted) => match ProofId::of_proof(&accepted.proof) {
                Some(id) => {
                    lock(finality).pending.insert(
                        id,
                        PendingEntry {
                            proof: accepted.proof,
                            reward_micro: accepted.reward_micro,
                            submitted: waiting.as_ref().map_or_else(Instant::now, |w| w.submitted),
                        },
                    );
                    Ok(Pending {
                        id,
                        account: accepted.proof.account,
                        triangle: accepted.proof.triangle,
                        reward_micro: accepted.reward_micro,
                    })
                }
                // An accepted proof always has a decoded signature.
                None => Err(Reject::Signature(
                    step_engine::error::SignatureError::RecoveryFailed,
                )),
            },
            Err(r) => Err(r.clone()),
        };
        let Some(w) = waiting else {
            return;
        };
        let verdict = match (&self.log, result) {
            (Some(log), Ok(pending)) if w.replay.is_none() => {
                // Answered by the log's completion, after the fsync.
                let proof = v.result.as_ref().map(|a| a.proof).ok();
                match proof.map(|p| log.append(&p, LogReply { tx: w.tx, pending })) {
                    Some(Ok(())) | None => return,
                    Some(Err(reply)) => {
                        let e = log.stopped();
                        tracing::error!(error = %e, "accepted proof not logged: answered OVERLOADED");
                        log.release();
                        if reply.tx.send(Err(Reject::Overloaded)).is_err() {
                            tracing::debug!("submitter gone before its verdict");
                        }
                        return;
                    }
                }
            }
            (Some(log), Err(r)) => {
                match w.replay {
                    // Logged before the crash, refused now: it can never be
                    // decided, so it leaves the log.
                    Some(id) => log.forget(vec![id]),
                    None => log.release(),
                }
                Err(r)
            }
            (_, r) => r,
        };
        if w.tx.send(verdict).is_err() {
            tracing::debug!("submitter gone before its verdict");
        }
    }

    pub fn is_closing(&self) -> bool {
        lock(&self.verdicts).closing
    }

    /// Stops taking bodies, waits until every queued one has its verdict,
    /// then has `pipeline` emit its partial batch.
    pub async fn drain_and_flush<S>(&self, pipeline: &Arc<Pipeline<S>>)
    where
        S: step_engine::ProofState + Send + Sync + 'static,
    {
        self.drain().await;
        let pipeline = Arc::clone(pipeline);
        let _ = tokio::task::spawn_blocking(move || pipeline.flush()).await;
    }

    /// Stops taking bodies and waits until every queued one has its verdict.
    pub async fn drain(&self) {
        lock(&self.verdicts).closing = true;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if lock(&self.verdicts).by_tag.is_empty() {
                break;
            }
            idle.await;
        }
    }
}

/// An accepted proof waiting for its block.
#[derive(Debug)]
pub(super) struct PendingEntry {
    pub proof: Proof,
    pub reward_micro: u64,
    pub submitted: Instant,
}

/// Accepted proofs not yet executed, and who waits for them.
#[derive(Debug, Default)]
pub(super) struct Finality {
    pub pending: HashMap<ProofId, PendingEntry>,
    waiters: HashMap<ProofId, Vec<FinalTx>>,
}

impl Finality {
    /// A block executed `id`: wakes its waiters; returns the pending entry
    /// (None if this node did not accept it itself).
    pub fn resolve(
        &mut self,
        id: ProofId,
        result: &Result<Final, FinalityError>,
    ) -> Option<PendingEntry> {
        for w in self.waiters.remove(&id).unwrap_or_default() {
            let _ = w.send(result.clone());
        }
        self.pending.remove(&id)
    }

    /// `wait_final` for a proof that is not final yet: `Unknown` if it is not pending either.
    pub fn wait(&mut self, id: ProofId) -> BoxFuture<'static, Result<Final, FinalityError>> {
        if !self.pending.contains_key(&id) {
            return futures_util::future::ready(Err(FinalityError::Unknown)).boxed();
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.entry(id).or_default().push(tx);
        async move { rx.await.unwrap_or(Err(FinalityError::Closed)) }.boxed()
    }

    /// The record of a pending proof.
    pub fn pending_record(&self, id: &ProofId) -> Option<ProofRecord> {
        self.pending.get(id).map(|p| ProofRecord {
            id: *id,
            proof: p.proof,
            reward_micro: p.reward_micro,
            status: ProofStatus::Pending,
        })
    }

    /// Nothing more will be finalized: every waiter hears `Closed`.
    pub fn close(&mut self) {
        for (_, ws) in self.waiters.drain() {
            for w in ws {
                let _ = w.send(Err(FinalityError::Closed));
            }
        }
    }
}

/// `Ledger::wait_final` over `finality` and the executed records: `executed`
/// is looked up with `finality` locked, so that a proof cannot be finalized
/// between the two looks, and only for a proof that is not pending (a
/// pending one is not executed yet: no store read on the submit path).
pub(super) fn wait_final(
    finality: &Mutex<Finality>,
    id: ProofId,
    executed: impl FnOnce(&ProofId) -> Result<Option<ProofRecord>, LedgerReadError>,
) -> BoxFuture<'static, Result<Final, FinalityError>> {
    let mut finality = lock(finality);
    if !finality.pending.contains_key(&id) {
        match executed(&id) {
            Ok(Some(ProofRecord {
                status: ProofStatus::Final(f),
                ..
            })) => return futures_util::future::ready(Ok(f)).boxed(),
            Ok(_) => {}
            Err(e) => {
                return futures_util::future::ready(Err(FinalityError::Unreadable(e))).boxed()
            }
        }
    }
    finality.wait(id)
}

/// `Ledger::proof` over `finality` and the executed records (looked up as in
/// [`wait_final`]).
pub(super) fn proof_record(
    finality: &Mutex<Finality>,
    id: &ProofId,
    executed: impl FnOnce(&ProofId) -> Result<Option<ProofRecord>, LedgerReadError>,
) -> Result<Option<ProofRecord>, LedgerReadError> {
    let finality = lock(finality);
    if let Some(rec) = finality.pending_record(id) {
        return Ok(Some(rec));
    }
    executed(id)
}

/// Waits until no accepted proof is pending or the executor stopped
/// (`alive` false); `settled` is signalled after every executed block.
pub(super) async fn settle(finality: &Mutex<Finality>, settled: &Notify, alive: &AtomicBool) {
    loop {
        let notified = settled.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if lock(finality).pending.is_empty() || !alive.load(Ordering::Acquire) {
            break;
        }
        notified.await;
    }
}

/// The ingest queue of `pipeline`, for a status view.
pub(super) fn queue_view<S>(pipeline: &Pipeline<S>) -> QueueView
where
    S: step_engine::ProofState + Send + 'static,
{
    let stats = pipeline.stats();
    QueueView {
        ingest: stats.queued,
        in_flight: stats.in_flight,
        capacity: pipeline.capacity(),
    }
}
