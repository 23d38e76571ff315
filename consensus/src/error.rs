//! The crate's errors.

use std::path::PathBuf;

use crate::block::WireError;
use crate::context::ValueId;
use crate::store::StoreError;

/// This validator's state root for `height` is not the one a block built on
/// `height` carries: its executed state differs from its proposer's
/// (`docs/CONSENSUS_SPEC.md`, "State root in the block"; `docs/RUNBOOK.md`,
/// "StateDiverged"). A proposal that carries another root is refused (this
/// validator prevotes nil); a decided block that does is fatal: a quorum
/// executed to another state than ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "state diverged at height {height}: our state root is {}, the block of height {} carries {}",
    crate::context::hex(ours),
    height + 1,
    crate::context::hex(theirs)
)]
pub struct StateDiverged {
    /// The executed height whose root differs (the block's height − 1).
    pub height: u64,
    /// This validator's root after `height`.
    pub ours: [u8; 32],
    /// The root the block carries ([`crate::context::Value::prev_root`]).
    pub theirs: [u8; 32],
}

/// Why the application loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("height {height} decided value {value_id}, which this node never received")]
    MissingDecidedValue { height: u64, value_id: ValueId },
    #[error("height {height}: executing the decided block could not read the state: {source}")]
    StateRead {
        height: u64,
        source: crate::execution::StateReadError,
    },
    #[error("height {height}: a decided batch does not decode: {source}")]
    DecidedBatch { height: u64, source: WireError },
    #[error("height {height}: a stored block does not decode: {source}")]
    StoredBlock { height: u64, source: WireError },
    #[error("{what} does not encode: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("the {what} task failed: {reason}")]
    Task { what: &'static str, reason: String },
    /// A decided block carries another state root than ours: this validator
    /// stops rather than serve a state the quorum does not have.
    #[error("a decided block refutes this validator's state: {0}")]
    StateDiverged(#[from] StateDiverged),
}

/// Why a node did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusNodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "consensus WAL {path} is corrupted at entry {entry}: {reason}. Refusing to start: \
         replaying past it could make this validator sign a conflicting vote. Move the file \
         aside only if this validator has not voted at the current height"
    )]
    WalCorrupted {
        path: PathBuf,
        entry: usize,
        reason: String,
    },
    #[error("consensus WAL {path} cannot be opened: {reason}")]
    WalUnavailable { path: PathBuf, reason: String },
    #[error("bad network address {addr:?}: {reason}")]
    NetworkAddress { addr: String, reason: String },
    #[error("malachite engine failed to start: {reason}")]
    EngineStart { reason: String },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the node has stopped")]
    Stopped,
}
