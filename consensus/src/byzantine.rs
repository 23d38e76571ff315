//! Byzantine behaviour for tests and the e2e harness (`byzantine` feature,
//! never in a default build; docs/adr/0024-byzantine-validators.md):
//! malachite's byzantine network proxy (`arc-malachitebft-engine-byzantine`),
//! with which the node signs and sends a second, conflicting vote for every
//! vote it casts, and forged batches ([`BatchFault`]) that the node passes
//! off as its own pre-validated ones.

use malachitebft_app_channel::{
    ByzantineContext, ConsensusContext, EngineBuilder, NetworkIdentity, RequestContext,
    SyncContext, WalContext,
};
use malachitebft_engine_byzantine::ByzantineConfig;

use sha2::Digest as _;

use crate::block::WireBatch;
use crate::codec::BorshCodec;
use crate::context::{StepContext, ValidatorAddress, ValueId};
use crate::signing::StepSigner;

type Started = (
    malachitebft_app_channel::Channels<StepContext>,
    malachitebft_app_channel::EngineHandle,
);

pub(crate) async fn start<C>(
    cfg: C,
    wal: WalContext<BorshCodec>,
    identity: NetworkIdentity,
    config: ByzantineConfig,
    signer: StepSigner,
    address: ValidatorAddress,
    consensus: ConsensusContext<StepContext>,
) -> Result<Started, String>
where
    C: malachitebft_app_channel::app::config::NodeConfig,
{
    EngineBuilder::new(StepContext, cfg)
        .with_default_wal(wal)
        .with_byzantine_network(ByzantineContext {
            identity,
            codec: BorshCodec,
            config,
            signer: Box::new(signer),
            address,
            conflicting_value_fn: None,
            conflicting_vote_value_fn: Some(Box::new(|id: Option<&ValueId>| {
                let mut b = id.map_or([0; 32], |v| v.0);
                b[31] ^= 1;
                ValueId(b)
            })),
        })
        .await
        .map_err(|e| e.to_string())?
        .with_default_consensus(consensus)
        .with_default_sync(SyncContext::new(BorshCodec))
        .with_default_request(RequestContext::new(100))
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// Invalid batches a byzantine validator passes off as its own, pre-validated
/// ones (`NodeSettings::forge_batches`): queued as if its pipeline had
/// accepted them, so it gossips them and proposes them like any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFault {
    /// Proofs whose signature does not verify (one bit of `r` flipped after
    /// signing).
    BadSignatures,
    /// Correctly signed proofs whose location is outside the triangle they
    /// claim: GPS spoofing the byzantine validator accepts.
    OutsideTriangle,
}

/// Proofs per forged batch.
pub const FORGED_PROOFS: u64 = 5;
/// How often a forged batch is queued.
pub const FORGE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Forged batch `k` of `fault`, its accounts derived from `seed`.
pub fn forged_batch(fault: BatchFault, seed: &str, k: u64) -> Result<WireBatch, String> {
    use step_engine::signing::{key, point_in, sign, unsigned_proof};
    let mut proofs = Vec::new();
    let mut pubkeys = Vec::new();
    for i in 0..FORGED_PROOFS {
        let n = k * FORGED_PROOFS + i;
        let acct = key(seed, n);
        let claimed = step_engine::TriangleId::new((n % 20) as u8, &[])
            .ok_or_else(|| format!("no face {}", n % 20))?;
        let place = match fault {
            BatchFault::BadSignatures => point_in(&claimed),
            // The centroid of the opposite face's triangle: far outside.
            BatchFault::OutsideTriangle => point_in(
                &step_engine::TriangleId::new(((n + 10) % 20) as u8, &[])
                    .ok_or_else(|| format!("no face {}", (n + 10) % 20))?,
            ),
        };
        let mut p = unsigned_proof(
            acct.address,
            &claimed,
            place,
            10.0,
            1_767_225_600_000 + n as i64,
            &format!("byz-{n}"),
        );
        let mut sig = sign(&acct, &p);
        if fault == BatchFault::BadSignatures {
            sig[7] ^= 0x01;
        }
        p.signature = Ok(sig);
        proofs.push(p);
        pubkeys.push(acct.pubkey);
    }
    let mut batch = step_engine::pipeline::Batch {
        proofs,
        pubkeys,
        digest: [0; 32],
    };
    let mut canonical = Vec::new();
    step_engine::pipeline::write_canonical(&batch, &mut canonical).map_err(|e| e.to_string())?;
    batch.digest = sha2::Sha256::digest(&canonical).into();
    WireBatch::from_batch(&batch).map_err(|e| e.to_string())
}

/// Queues a forged batch every [`FORGE_EVERY`] until the node stops.
pub(crate) fn spawn_forger(
    submit: tokio::sync::mpsc::Sender<WireBatch>,
    fault: BatchFault,
    seed: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FORGE_EVERY);
        for k in 0.. {
            tick.tick().await;
            let batch = match forged_batch(fault, &seed, k) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "byzantine: forging a batch failed");
                    return;
                }
            };
            tracing::warn!(?fault, k, digest = ?batch.digest, "byzantine: queued a forged batch");
            if submit.send(batch).await.is_err() {
                return; // the node stopped
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reverify(b: &WireBatch) -> Result<(), step_engine::pipeline::BatchError> {
        let batch = b.to_batch().expect("a forged batch decodes");
        step_engine::pipeline::reverify_batch(&step_engine::Verifier::default(), &batch)
    }

    #[test]
    fn forged_batches_fail_reverification_for_their_reason() {
        use step_engine::Reject;
        for k in 0..4 {
            let bad = forged_batch(BatchFault::BadSignatures, "t", k).unwrap();
            let err = reverify(&bad).unwrap_err();
            assert!(
                !matches!(
                    err,
                    step_engine::pipeline::BatchError::Proof {
                        reason: Reject::OutOfBounds,
                        ..
                    }
                ),
                "{err:?}"
            );
            let spoofed = forged_batch(BatchFault::OutsideTriangle, "t", k).unwrap();
            assert!(
                matches!(
                    reverify(&spoofed),
                    Err(step_engine::pipeline::BatchError::Proof {
                        index: 0,
                        reason: Reject::OutOfBounds
                    })
                ),
                "{:?}",
                reverify(&spoofed)
            );
        }
    }
}
