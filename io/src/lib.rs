//! `step-io`: everything of a validator that touches the outside world.
//!
//! * [`ledger`]: the [`Ledger`](ledger::Ledger) trait the HTTP layer calls
//!   (submit, wait for finality, query, status, finalized-block stream), and
//!   [`LocalLedger`](ledger::LocalLedger), the single-node backend used until
//!   the consensus backend (issue #5) lands.
//! * [`http`]: the Phase 2-compatible axum API.
//! * [`config`]: the TOML configuration with environment and flag overrides.
//! * [`metrics`]: typed Prometheus metrics.
//! * [`ratelimit`], [`redis_store`]: per-IP/per-account limits and the
//!   optional shared Redis (replay pre-check, rate-limit counters).
//! * [`node`]: serve the API over a ledger, graceful shutdown, logging.
//!
//! Not here yet (they need consensus): P2P batch gossip, the redb store,
//! `step node` / `step devnet` wiring.

pub mod config;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod node;
pub mod ratelimit;
pub mod redis_store;

pub use config::Config;
pub use ledger::{Ledger, LocalLedger, ProofId};
pub use metrics::Metrics;
