//! What the app shares with the rest of the node: decisions, events and the
//! executed state.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use step_engine::pipeline::Batch;

use crate::context::ValueId;
use crate::error::StateDiverged;
use crate::evidence::EvidenceRecord;
use crate::execution::{ChainState, ProofResult, StateRoot};

/// A decided and executed height, as the node reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub height: u64,
    pub round: i64,
    pub value_id: ValueId,
    pub root: StateRoot,
    pub batch_digests: Vec<[u8; 32]>,
    pub proofs: u64,
    pub accepted: u64,
    /// Proofs accepted over all heights so far.
    pub accepted_total: u64,
    pub at: Instant,
    /// The decided batches, in block order.
    pub batches: Arc<[Batch]>,
    /// One result per proof of `batches`, in the same order.
    pub results: Arc<[ProofResult]>,
}

/// What a running node reports.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    Decided(Decision),
    /// Misbehaviour seen while finalizing `height` (already stored).
    Evidence(EvidenceRecord),
    /// Validators attested a batch holding an invalid proof (already
    /// stored).
    AttestEvidence(crate::attest::AttestEvidence),
    /// A block carried another state root than this validator's: a refused
    /// proposal (`decided: false`; this validator prevoted nil), or a
    /// decided block (`decided: true`, followed by [`NodeEvent::Fatal`]:
    /// the quorum's state is not ours).
    StateDiverged {
        error: StateDiverged,
        decided: bool,
    },
    /// The app stopped (an error or a panic): the node needs an operator.
    Fatal(String),
}

/// The executed state, shared with readers (the node's HTTP queries). The
/// app holds the write lock only while it executes a decided block.
#[derive(Debug, Clone, Default)]
pub struct SharedState(Arc<RwLock<ChainState>>);

impl SharedState {
    pub fn new(state: ChainState) -> SharedState {
        SharedState(Arc::new(RwLock::new(state)))
    }

    /// A read view; a poisoned lock (a panicking writer) still reads the
    /// last state written.
    pub fn read(&self) -> RwLockReadGuard<'_, ChainState> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, ChainState> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}
