//! `step-io`: everything of a validator that touches the outside world.
//!
//! * [`ledger`]: the [`Ledger`](ledger::Ledger) trait the HTTP layer calls
//!   (submit, wait for finality, query, status, finalized-block stream), and
//!   two backends: [`ConsensusLedger`](ledger::ConsensusLedger) (BFT, on
//!   malachite) and [`LocalLedger`](ledger::LocalLedger) (one process, not
//!   fault tolerant; tests and development). Both execute blocks with
//!   consensus's one execution (`docs/adr/0031-one-execution.md`); the
//!   ledger API names no consensus type.
//! * [`http`]: the Phase 2-compatible axum API.
//! * [`config`]: the TOML configuration with environment and flag overrides.
//! * [`metrics`]: typed Prometheus metrics.
//! * [`ratelimit`], [`redis_store`]: per-IP/per-account limits and the
//!   optional shared Redis (replay pre-check, rate-limit counters).
//! * [`node`]: serve the API over a ledger, graceful shutdown, logging.
//! * [`genesis`], [`keyfile`]: validator key files (consensus and P2P) and
//!   the genesis (validator-set) file.
//! * [`validator`]: opens the ledger a configuration names (consensus or
//!   local); `step node` serves the API over it.
//!
//! Not here: a P2P channel of its own. Batches travel inside malachite's
//! proposal parts over its libp2p network (`docs/P2P_PROTOCOL.md`).

pub mod config;
pub mod genesis;
pub mod genesis_params;
pub mod genesis_registry;
pub mod http;
pub mod intake_log;
pub mod keyfile;
pub mod ledger;
pub mod metrics;
pub mod node;
pub mod ratelimit;
pub mod redis_store;
pub mod validator;

pub use config::Config;
pub use ledger::{ConsensusLedger, Ledger, LocalLedger, ProofId};
pub use metrics::Metrics;
