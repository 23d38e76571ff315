//! `step gateway`: an HTTP proxy in front of Phase 2 and the Phase 3
//! validators for the migration (issue #16; `docs/MIGRATION_GUIDE.md`).
//!
//! Every `POST /proof/submit` goes to both systems; the one that owns the
//! account at the current share ([`route`]) answers the client, and the two
//! verdicts are compared ([`classify`]), counted over a sliding window
//! ([`window`]) and checked against the plan's rollback triggers
//! ([`rollback`]). Phase 3 requests rotate over the healthy validators and
//! fail over ([`pool`]). [`state::Core`] holds all of it, pure, on
//! simulated time; [`shell`] is the axum server and the hyper client.

pub mod classify;
pub mod pool;
pub mod rollback;
pub mod route;
pub mod shell;
pub mod state;
pub mod verdict;
pub mod window;
