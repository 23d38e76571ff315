//! Where the ledger API meets the one execution (`step_consensus::execution`,
//! `docs/adr/0031-one-execution.md`): execution's results and state become
//! io's own types here, so that no consensus type reaches the API
//! ([`super`]) or HTTP. Both backends settle their blocks with
//! [`settle_block`].

use super::intake::Finality;
use super::{
    AccountView, ExecutionReject, Final, FinalityError, LedgerReadError, ProofId, ProofRecord,
    ProofStatus, RejectedProof, TrianglePhase, TriangleView,
};
use crate::metrics::Metrics;
use step_consensus::execution::{ChainState, ExecCode, ProofResult, StateReadError, TriangleState};
use step_engine::pipeline::Batch;
use step_engine::{Address, Proof, TriangleId};

impl From<ExecCode> for ExecutionReject {
    fn from(c: ExecCode) -> ExecutionReject {
        match c {
            ExecCode::NonceReplay => ExecutionReject::NonceReplay,
            ExecCode::TooFast => ExecutionReject::TooFast,
            ExecCode::Moratorium => ExecutionReject::Moratorium,
            ExecCode::TriangleSubdivided => ExecutionReject::TriangleSubdivided,
            ExecCode::TriangleExhausted => ExecutionReject::TriangleExhausted,
            ExecCode::StatefulOther => ExecutionReject::Internal,
        }
    }
}

/// Phase 2's state of a triangle, from execution's flags.
pub(super) fn phase(t: &TriangleState) -> TrianglePhase {
    if t.subdivided {
        TrianglePhase::Subdivided
    } else if t.is_exhausted() {
        TrianglePhase::Exhausted
    } else if t.clicks == 0 {
        TrianglePhase::Pending
    } else {
        TrianglePhase::Active
    }
}

fn unreadable(what: &'static str) -> impl Fn(StateReadError) -> LedgerReadError {
    move |e| LedgerReadError {
        what,
        reason: e.to_string(),
    }
}

/// A triangle as execution left it; `lastClickAt` is the timestamp of the
/// last accepted proof that clicked it (the proof's own time, agreed on by
/// every validator).
pub(super) fn triangle_view(
    state: &ChainState,
    id: &TriangleId,
) -> Result<TriangleView, LedgerReadError> {
    let t = state.triangle_row(id).map_err(unreadable("a triangle"))?;
    Ok(TriangleView {
        id: *id,
        clicks: u32::from(t.state.clicks),
        phase: phase(&t.state),
        last_click_ms: t.last_click_ms,
    })
}

/// An account as execution left it (no accepted proof yet: balance 0).
pub(super) fn account_view(
    state: &ChainState,
    address: &Address,
) -> Result<AccountView, LedgerReadError> {
    let a = state
        .account(address)
        .map_err(unreadable("an account"))?
        .unwrap_or_default();
    Ok(AccountView {
        address: *address,
        balance_micro: a.balance_micro,
        proofs: a.proofs,
        last_proof_ms: a.last.map(|l| l.unix_ms),
    })
}

/// A finalized proof read back from the store.
pub(super) fn stored_record(
    p: &step_consensus::store::StoredProof,
    time_ms: i64,
) -> Result<ProofRecord, LedgerReadError> {
    let bad = |field: &str| LedgerReadError {
        what: "a stored proof",
        reason: format!("its {field} does not parse"),
    };
    let proof = Proof {
        account: Address(p.account),
        triangle: TriangleId::parse(&p.triangle).map_err(|_| bad("triangle id"))?,
        lat: f64::from_bits(p.lat_bits),
        lon: f64::from_bits(p.lon_bits),
        accuracy_m: f64::from_bits(p.accuracy_bits),
        timestamp: step_engine::proof::Timestamp::parse(&p.timestamp)
            .ok_or_else(|| bad("timestamp"))?,
        nonce: step_engine::proof::Nonce::parse(&p.nonce).ok_or_else(|| bad("nonce"))?,
        signature: Ok(p.signature),
    };
    let id = ProofId::of_signature(&p.signature);
    let f = Final {
        id,
        account: proof.account,
        triangle: proof.triangle,
        reward_micro: p.reward_micro,
        balance_micro: p.balance_micro,
        clicks: u32::from(p.clicks),
        height: p.height,
        time_ms,
    };
    Ok(ProofRecord {
        id,
        proof,
        reward_micro: p.reward_micro,
        status: ProofStatus::Final(f),
    })
}

/// What waiting for proof `id` (`p`) ends with, from its result in the
/// block executed at `height`.
pub(super) fn outcome(
    id: ProofId,
    p: &Proof,
    r: &ProofResult,
    height: u64,
    time_ms: i64,
) -> Result<Final, FinalityError> {
    match r {
        Ok(e) => Ok(Final {
            id,
            account: p.account,
            triangle: p.triangle,
            reward_micro: e.reward_micro,
            balance_micro: e.balance_micro,
            clicks: u32::from(e.clicks),
            height,
            time_ms,
        }),
        Err(code) => Err(FinalityError::Rejected {
            height,
            reason: ExecutionReject::from(*code),
        }),
    }
}

/// An executed block, as the ledgers report it.
#[derive(Debug)]
pub(super) struct BlockResults<'a> {
    pub height: u64,
    pub time_ms: i64,
    pub batches: &'a [Batch],
    /// One per proof of `batches`, in block order.
    pub results: &'a [ProofResult],
}

/// What [`settle_block`] found.
#[derive(Debug, Default)]
pub(super) struct Settled {
    /// The ids of the accepted proofs, in execution order.
    pub proof_ids: Vec<ProofId>,
    pub rejected: Vec<RejectedProof>,
}

/// Resolves the waiters of every proof of the block (final or rejected),
/// hands each final proof's record to `record`, and observes the finality
/// latency of the proofs this node accepted itself.
pub(super) fn settle_block(
    block: &BlockResults<'_>,
    finality: &mut Finality,
    metrics: &Metrics,
    mut record: impl FnMut(ProofRecord),
) -> Settled {
    let mut out = Settled::default();
    let proofs = block.batches.iter().flat_map(|b| b.proofs.iter());
    for (p, r) in proofs.zip(block.results) {
        // Every proof of a batch has a decoded signature (the pipeline
        // rejects the others before they reach a batch).
        let Some(id) = ProofId::of_proof(p) else {
            continue;
        };
        let result = outcome(id, p, r, block.height, block.time_ms);
        if let Err(FinalityError::Rejected { reason, .. }) = &result {
            out.rejected.push(RejectedProof {
                id,
                reason: *reason,
            });
        }
        if let Ok(f) = &result {
            out.proof_ids.push(id);
            record(ProofRecord {
                id,
                proof: *p,
                reward_micro: f.reward_micro,
                status: ProofStatus::Final(*f),
            });
        }
        if let Some(entry) = finality.resolve(id, &result) {
            if result.is_ok() {
                metrics
                    .finality_seconds
                    .observe(entry.submitted.elapsed().as_secs_f64());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_execution_flags_not_click_counts() {
        let st = |clicks, subdivided| phase(&TriangleState { clicks, subdivided });
        assert_eq!(st(0, false), TrianglePhase::Pending);
        assert_eq!(st(1, false), TrianglePhase::Active);
        // A level-21 triangle past the subdivision click is still active.
        assert_eq!(st(11, false), TrianglePhase::Active);
        assert_eq!(st(27, false), TrianglePhase::Active);
        assert_eq!(st(28, false), TrianglePhase::Exhausted);
        assert_eq!(st(11, true), TrianglePhase::Subdivided);
    }

    #[test]
    fn every_execution_code_has_an_io_reason_with_its_text() {
        for c in ExecCode::ALL {
            assert_eq!(ExecutionReject::from(c).as_str(), c.as_str());
        }
    }
}
