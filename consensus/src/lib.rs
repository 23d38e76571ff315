//! The STEP application on the malachite Tendermint engine
//! (`arc-malachitebft-*` 0.8.2, app-channel API; `docs/adr/0020-malachite.md`).
//!
//! Data flow (`docs/CONSENSUS_SPEC.md`):
//! engine pipeline [`Batch`](step_engine::pipeline::Batch) → [`block::WireBatch`]
//! → [`Node::submit_batch`] → [`app::Mempool`] → proposal (a [`context::Value`]
//! of batch digests, streamed as [`context::ProposalPart`]s) → peers re-verify
//! unseen batches → prevote / precommit (malachite) → [`app::App`] executes the
//! decided block ([`execution::ChainState::apply_block`]) → [`store::Store`]
//! → [`app::NodeEvent::Decided`] with the state root.
//!
//! Pure modules: [`context`], [`block`] (the one bounded wire form), [`attest`],
//! [`execution`], [`streaming`], [`evidence`], [`registry`], and the app's core
//! ([`app::machine`]: inputs in, effects out). I/O: [`store`] (redb),
//! [`node`] (engine, sockets, tasks) and the app's shell ([`app::App`], the
//! tokio loop that performs the core's effects).

pub mod app;
pub mod attest;
pub mod block;
#[cfg(feature = "byzantine")]
mod byzantine;
pub mod codec;
pub mod config;
pub mod context;
pub mod error;
pub mod evidence;
pub mod execution;
pub mod initial;
pub mod node;
pub mod p2p_key;
pub mod registry;
pub mod signing;
pub mod store;
pub mod streaming;

pub use app::{Decision, Mempool, NodeEvent, SharedState};
pub use block::{BlockData, WireBatch};
pub use config::{AppConfig, Timeouts};
pub use context::{
    Height, PrivateKey, PublicKey, StepContext, Validator, ValidatorAddress, ValidatorSet,
};
pub use error::{AppError, ConsensusNodeError, StateDiverged};
pub use initial::{InitialStateError, InitialStateFile};
pub use malachitebft_core_types::Round;
pub use node::{LiveStatus, Node, NodeSettings};
pub use p2p_key::P2pKey;
pub use signing::ChainId;
pub use store::{DecidedReader, RedbStore, Store};

#[cfg(feature = "byzantine")]
pub use byzantine::{forged_batch, BatchFault};
#[cfg(feature = "byzantine")]
pub use malachitebft_engine_byzantine::{ByzantineConfig, Trigger};
