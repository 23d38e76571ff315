//! What the core returns ([`Effect`], [`Decide`], [`BlockCheck`]) and the
//! stateless rules the shell may run on any thread (re-verification, the
//! proposals stored for a round, the restart reuse rule).

use std::sync::Arc;

use malachitebft_app_channel::app::types::core::Round;
use malachitebft_app_channel::app::types::{LocallyProposedValue, ProposedValue};
use malachitebft_engine::util::streaming::StreamMessage;
use step_engine::pipeline::{reverify_batch, reverify_sampled, Batch};
use step_engine::Verifier;

use super::api::NodeEvent;
use super::machine::VerifyFault;
use crate::attest::{AttestEvidence, AttestFault};
use crate::block::{decode_block, BlockData, WireBatch};
use crate::context::{Height, ProposalPart, StepContext, ValidatorAddress, ValueId};
use crate::error::StateDiverged;
use crate::store::{BlockRows, DecidedRecord, UndecidedRecord};
use crate::streaming::PeerId;

/// What the shell must do, in order.
#[derive(Debug)]
pub enum Effect {
    /// Store an undecided proposal (received, synced or our own).
    PutUndecided(UndecidedRecord),
    /// Commit a decided height (with the state rows and proofs its
    /// execution wrote) and prune the undecided proposals up to it.
    Commit(DecidedRecord, BlockRows),
    /// Store the evidence seen when finalizing `height`.
    PutEvidence { height: u64, bytes: Vec<u8> },
    /// Store evidence that validators attested an invalid batch.
    PutAttestEvidence(AttestEvidence),
    /// Publish a proposal's stream messages, in order.
    Publish(Vec<StreamMessage<ProposalPart>>),
    /// Gossip one of our own batches.
    Gossip(StreamMessage<ProposalPart>),
    /// Verify a peer's gossiped batch off the loop and report back
    /// ([`Core::gossip_verdict`]).
    VerifyGossip { from: PeerId, batch: Arc<WireBatch> },
    /// Answer the pending `GetValue` of (height, round).
    Propose {
        height: Height,
        round: Round,
        value: LocallyProposedValue<StepContext>,
    },
    /// Tell the node's subscribers.
    Emit(NodeEvent),
    /// Answer the pending `Finalized` with `Next::Start(height)`: the next
    /// height starts now ([`Core::finalized`] may hold it back while the
    /// network is idle).
    StartHeight(Height),
}

/// A block held between its proposal and its decision: shared, with the
/// bytes it was stored as.
#[derive(Debug, Clone)]
pub struct Held {
    pub block: Arc<BlockData>,
    pub bytes: Arc<Vec<u8>>,
}

/// Why a block is invalid before any signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockFault {
    /// Its previous root is not this validator's root for that height.
    StateDiverged(StateDiverged),
    /// The batches' digests are not the value's, in order.
    Inconsistent,
    TooManyBatches {
        batches: usize,
        max: usize,
    },
    DuplicateBatches,
    /// Under `"attested"`: an attestation is invalid, stray, or a batch
    /// lacks a quorum.
    Attestation(AttestFault),
}

/// What [`Core::check_block`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockCheck {
    Invalid(BlockFault),
    /// Every batch was verified already.
    Valid,
    /// These batches still need [`verify_batches`].
    Verify(Vec<Arc<WireBatch>>),
    /// Under `"attested"`: these attested batches need their digest checked
    /// and the listed proofs re-verified ([`sample_batches`]).
    Sample(Vec<(Arc<WireBatch>, Vec<usize>)>),
}

/// A decided block ready to execute.
#[derive(Debug)]
pub struct ExecJob {
    pub height: Height,
    pub round: Round,
    pub value_id: ValueId,
    pub held: Held,
    /// The block's batches as engine batches, in block order.
    pub batches: Vec<Batch>,
}

/// What [`Core::decide`] needs next.
#[derive(Debug)]
pub enum Decide {
    /// Already executed (a replayed decision).
    Done,
    Execute(ExecJob),
    /// The block is not held: read the height's undecided records and call
    /// [`Core::hold_stored`].
    NeedStored,
}

/// Re-verifies `batches` (no state: runs on any thread).
pub fn verify_batches(verifier: &Verifier, batches: &[Arc<WireBatch>]) -> bool {
    batches.iter().all(|w| {
        w.to_batch()
            .is_ok_and(|b| reverify_batch(verifier, &b).is_ok())
    })
}

/// Checks each attested batch against its digest and re-verifies its
/// sampled proofs (no state: runs on any thread). The first failure names
/// the batch and why.
pub fn sample_batches(
    verifier: &Verifier,
    todo: &[(Arc<WireBatch>, Vec<usize>)],
) -> Result<(), (Arc<WireBatch>, VerifyFault)> {
    for (w, picks) in todo {
        let b = w
            .to_batch()
            .map_err(|e| (Arc::clone(w), VerifyFault::from_wire_error(&e)))?;
        reverify_sampled(verifier, &b, |i| picks.binary_search(&i).is_ok())
            .map_err(|e| (Arc::clone(w), VerifyFault::from_batch_error(&e)))?;
    }
    Ok(())
}

/// Verifies one batch; why it is invalid, if it is.
pub fn verify_batch(verifier: &Verifier, w: &WireBatch) -> Result<(), VerifyFault> {
    let b = w.to_batch().map_err(|e| VerifyFault::from_wire_error(&e))?;
    reverify_batch(verifier, &b).map_err(|e| VerifyFault::from_batch_error(&e))
}

/// The proposals stored for `round` (what `StartedRound` replays).
pub fn seen_in_round(stored: &[UndecidedRecord], round: Round) -> Vec<ProposedValue<StepContext>> {
    stored
        .iter()
        .filter(|r| r.round == round.as_i64())
        .filter_map(|r| borsh::from_slice(&r.proposed).ok())
        .collect()
}

/// The restart reuse rule: our own stored proposal for `round`, if any.
pub fn own_stored_proposal(
    stored: &[UndecidedRecord],
    round: Round,
    me: ValidatorAddress,
) -> Option<Held> {
    stored
        .iter()
        .filter(|r| r.round == round.as_i64())
        .find(|r| {
            borsh::from_slice::<ProposedValue<StepContext>>(&r.proposed)
                .is_ok_and(|pv| pv.proposer == me)
        })
        .and_then(|r| {
            let block = decode_block(&r.block).ok()?;
            Some(Held {
                block: Arc::new(block),
                bytes: Arc::new(r.block.clone()),
            })
        })
}
