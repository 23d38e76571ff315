//! Test-only wiring of malachite's byzantine network proxy
//! (`arc-malachitebft-engine-byzantine`): the node signs and sends a second,
//! conflicting vote for every vote it casts.

use malachitebft_app_channel::{
    ByzantineContext, ConsensusContext, EngineBuilder, NetworkIdentity, RequestContext,
    SyncContext, WalContext,
};
use malachitebft_engine_byzantine::ByzantineConfig;

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
