//! What the consensus ledger reads back when the live decision stream is
//! not enough:
//!
//! * after a **lag** of the decision task ([`recover`]): the missed heights,
//!   from execution's in-memory [`ResultJournal`] where it still holds them
//!   and from the store's decided records ([`DecidedSource`]) before that,
//!   so that no proof is left pending; only a height the store cannot give
//!   ends its proofs with [`FinalityError::Unrecovered`];
//! * at **start** ([`replay_log`]): the proofs of the intake log, queued
//!   again before the node serves, except those a decided block already
//!   holds, which end as that decision (read from the store), never as a
//!   second reward.
//!
//! [`ResultJournal`]: step_consensus::execution::ResultJournal

use super::decisions::{Last, Shared};
use super::exec::outcome;
use super::intake::{lock, PendingEntry};
use super::precheck::PrecheckState;
use super::{FinalityError, ProofId, ProofRecord, ProofStatus};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use step_consensus::execution::{Effects, ExecCode, JournalBlock, JournalEntry};
use step_consensus::store::DecidedRecord;
use step_consensus::{DecidedReader, SharedState};
use step_engine::pipeline::Pipeline;
use step_engine::{Proof, Reject, TriangleId};

/// Where decided records are read back from (the node's store).
pub(super) trait DecidedSource: Send + Sync + 'static {
    fn decided(&self, height: u64) -> BoxFuture<'static, Result<Option<DecidedRecord>, String>>;
    /// The height whose block used (account, nonce).
    fn nonce_height(&self, p: &Proof) -> BoxFuture<'static, Result<Option<u64>, String>>;
}

impl DecidedSource for DecidedReader {
    fn decided(&self, height: u64) -> BoxFuture<'static, Result<Option<DecidedRecord>, String>> {
        let r = self.clone();
        async move { r.decided(height).await.map_err(|e| e.to_string()) }.boxed()
    }

    fn nonce_height(&self, p: &Proof) -> BoxFuture<'static, Result<Option<u64>, String>> {
        let (r, account, nonce) = (self.clone(), p.account.0, p.nonce.as_str().to_owned());
        async move {
            r.nonce_height(account, nonce)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }
}

/// Every proof's result in a stored decided block, as the journal keeps
/// them: accepted unless the change set lists it as rejected; the balance
/// and clicks right after each accepted proof are the block's final values
/// less what the block's later proofs added.
pub(super) fn journal_block(rec: &DecidedRecord) -> Result<JournalBlock, String> {
    let block = step_consensus::block::decode_block(&rec.block)
        .map_err(|e| format!("stored block of height {} does not decode: {e}", rec.height))?;
    let rejected: HashMap<(u32, u32), ExecCode> = rec
        .changes
        .rejected
        .iter()
        .map(|r| ((r.batch, r.proof), r.code))
        .collect();
    let mut balance: HashMap<[u8; 20], u64> = rec
        .changes
        .balances
        .iter()
        .map(|b| (b.account, b.balance_micro))
        .collect();
    let mut clicks: HashMap<TriangleId, (u8, bool)> = HashMap::new();
    for t in &rec.changes.triangles {
        let id = TriangleId::parse(&t.triangle)
            .map_err(|_| format!("stored triangle {:?} does not parse", t.triangle))?;
        clicks.insert(id, (t.clicks, t.subdivided));
    }
    let mut entries = Vec::with_capacity(block.proof_count());
    for (bi, b) in block.batches.iter().enumerate() {
        for (pi, w) in b.proofs.iter().enumerate() {
            let key = (
                u32::try_from(bi).unwrap_or(u32::MAX),
                u32::try_from(pi).unwrap_or(u32::MAX),
            );
            let result = match rejected.get(&key) {
                Some(code) => Err(*code),
                None => Ok(Effects {
                    reward_micro: step_engine::reward::reward_micro(w.triangle.level()),
                    balance_micro: 0,
                    clicks: 0,
                    subdivided: false,
                }),
            };
            entries.push((
                w.account,
                w.triangle,
                JournalEntry {
                    signature: w.signature,
                    result,
                },
            ));
        }
    }
    // Backwards: each accepted proof sees the values after it, then gives
    // back what it added.
    for (account, triangle, e) in entries.iter_mut().rev() {
        let Ok(fx) = &mut e.result else { continue };
        let b = balance.get_mut(account).ok_or_else(|| {
            format!(
                "height {}: an accepted proof's account has no balance change",
                rec.height
            )
        })?;
        fx.balance_micro = *b;
        *b = b.saturating_sub(fx.reward_micro);
        let t = clicks.get_mut(triangle).ok_or_else(|| {
            format!(
                "height {}: an accepted proof's triangle has no change",
                rec.height
            )
        })?;
        fx.clicks = t.0;
        fx.subdivided = t.1;
        t.0 = t.0.saturating_sub(1);
        t.1 = false;
    }
    Ok(JournalBlock {
        height: rec.height,
        entries: entries.into_iter().map(|(_, _, e)| e).collect(),
    })
}

/// Settles, from `blocks`, every proof this node waits for; returns how
/// many. Their log records are dropped, the pre-check forgets them.
pub(super) fn settle_blocks(shared: &Shared, blocks: &[JournalBlock]) -> usize {
    let time_ms = shared.clock.now_ms();
    let mut forgotten = Vec::new();
    let mut decided_ids = Vec::new();
    {
        let mut finality = lock(&shared.finality);
        let mut index = lock(&shared.index);
        for b in blocks {
            for e in &b.entries {
                let id = ProofId::of_signature(&e.signature);
                decided_ids.push(id);
                let Some(entry) = finality.pending.get(&id) else {
                    continue; // another validator's proof: not waited for here
                };
                let p = entry.proof;
                let result = outcome(id, &p, &e.result, b.height, time_ms);
                if let Ok(f) = &result {
                    index.insert(ProofRecord {
                        id,
                        proof: p,
                        reward_micro: f.reward_micro,
                        status: ProofStatus::Final(*f),
                    });
                }
                finality.resolve(id, &result);
                forgotten.push((p, result.is_ok()));
            }
        }
    }
    for (p, accepted) in &forgotten {
        shared.precheck.decided(p, *accepted);
    }
    shared.intake.forget_decided(decided_ids);
    forgotten.len()
}

/// After a lag: settles every proof this node waits for from the heights
/// above the last one settled: the journal's, and before them the store's.
/// If a height can be read from neither, the proofs still pending end with
/// [`FinalityError::Unrecovered`]. The missed heights are not streamed on
/// `/events`.
pub(super) async fn recover(shared: &Shared, state: &SharedState, store: &dyn DecidedSource) {
    let after = lock(&shared.last).height;
    // Copied out so the executed state's lock is not held while settling.
    let (height, root, first, journal): (u64, [u8; 32], Option<u64>, Vec<JournalBlock>) = {
        let s = state.read();
        let blocks = s.journal.after(after).cloned().collect();
        (s.height, s.root, s.journal.first_height(), blocks)
    };
    // Heights above `after` that the journal no longer holds.
    let store_to = first.map_or(height, |f| f.saturating_sub(1).min(height));
    let mut blocks = Vec::new();
    let mut unrecovered = None;
    for h in after + 1..=store_to {
        let block = match store.decided(h).await {
            Ok(Some(rec)) => journal_block(&rec),
            Ok(None) => Err(format!("height {h} is not in the store")),
            Err(e) => Err(format!("height {h}: {e}")),
        };
        match block {
            Ok(b) => blocks.push(b),
            Err(reason) => {
                unrecovered = Some(reason);
                break;
            }
        }
    }
    let from_store = blocks.len();
    blocks.extend(journal);
    let settled = settle_blocks(shared, &blocks);
    if let Some(reason) = &unrecovered {
        let err = Err(FinalityError::Unrecovered {
            after,
            reason: reason.clone(),
        });
        let mut finality = lock(&shared.finality);
        let ids: Vec<ProofId> = finality.pending.keys().copied().collect();
        let mut forgotten = Vec::new();
        for id in ids {
            if let Some(entry) = finality.resolve(id, &err) {
                forgotten.push(entry.proof);
            }
        }
        drop(finality);
        for p in &forgotten {
            shared.precheck.decided(p, false);
        }
    }
    if height > after {
        *lock(&shared.last) = Last {
            height,
            round: 0,
            root,
            at: Instant::now(),
        };
        shared
            .metrics
            .height
            .set(i64::try_from(height).unwrap_or(i64::MAX));
    }
    tracing::warn!(
        after,
        up_to = height,
        from_store,
        settled,
        unrecovered = unrecovered.as_deref().unwrap_or("none"),
        "missed decisions recovered from the store and the result journal"
    );
    shared.settled.notify_waiters();
}

/// How a start's replay of the intake log went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Replayed {
    /// Queued again and accepted by the pipeline.
    pub queued: usize,
    /// Held by a decided block already: ended as that decision.
    pub decided: usize,
    /// Refused by the pipeline now (dropped from the log).
    pub refused: usize,
}

/// Queues the intake log's proofs again (see the module documentation) and
/// waits for their verdicts.
pub(super) async fn replay_log(
    shared: &Arc<Shared>,
    pipeline: &Pipeline<PrecheckState>,
    state: &SharedState,
    store: &dyn DecidedSource,
    proofs: Vec<Proof>,
) -> Replayed {
    let mut out = Replayed::default();
    let mut waiting = std::collections::VecDeque::new();
    for p in proofs {
        let Some(id) = ProofId::of_proof(&p) else {
            continue;
        };
        let used = match state.read().nonce_used(&p.account, &p.nonce) {
            Ok(used) => used,
            Err(e) => {
                // Queued again: execution is authoritative (a used nonce
                // ends NONCE_REPLAY there), so nothing is paid twice.
                tracing::error!(%id, error = %e, "cannot read the nonce index; the logged proof is queued again");
                false
            }
        };
        if used {
            // Decided before the crash: it ends as that decision.
            lock(&shared.finality).pending.insert(
                id,
                PendingEntry {
                    proof: p,
                    reward_micro: step_engine::reward::reward_micro(p.triangle.level()),
                    submitted: Instant::now(),
                },
            );
            let block = match store.nonce_height(&p).await {
                Ok(Some(h)) => match store.decided(h).await {
                    Ok(Some(rec)) => journal_block(&rec).ok(),
                    _ => None,
                },
                _ => None,
            };
            settle_blocks(shared, block.as_slice());
            // Another proof used its (account, nonce): it never can.
            let left = lock(&shared.finality).pending.remove(&id);
            if left.is_some() {
                tracing::warn!(%id, "logged proof's nonce was used by another proof: dropped");
                shared.intake.forget_decided(vec![id]);
            }
            out.decided += 1;
            continue;
        }
        loop {
            match shared.intake.resubmit(pipeline, &p) {
                Ok(s) => {
                    waiting.push_back(s);
                    break;
                }
                Err(Reject::Overloaded) if !shared.intake.is_closing() => {
                    // The pipeline is full: wait for the oldest verdict.
                    match waiting.pop_front() {
                        Some(s) => count(&mut out, s.verdict().await),
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                Err(r) => {
                    tracing::warn!(%id, code = r.code().as_str(), "logged proof refused at replay: dropped");
                    shared.intake.forget_decided(vec![id]);
                    out.refused += 1;
                    break;
                }
            }
        }
    }
    for s in waiting {
        count(&mut out, s.verdict().await);
    }
    out
}

fn count(out: &mut Replayed, verdict: Result<super::Pending, Reject>) {
    match verdict {
        Ok(_) => out.queued += 1,
        Err(r) => {
            tracing::warn!(
                code = r.code().as_str(),
                "logged proof refused at replay: dropped"
            );
            out.refused += 1;
        }
    }
}
