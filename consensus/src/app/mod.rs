//! The application side of malachite's app-channel API, as a pure core and
//! a thin shell (the way malachite's `core-consensus` is built):
//!
//! * [`machine`]: the [`Core`](machine::Core), a synchronous state machine:
//!   mempool, gossip scheduling, proposal building, block checks, the
//!   restart reuse rule, decide and execute. Inputs in, [`Effect`]s out;
//!   no I/O, no clock, no tasks.
//! * [`shell`]: the tokio loop ([`App`]) that feeds the core and performs
//!   its effects (store on blocking threads, network, replies, events).
//! * [`mempool`], [`gossip`]: the core's pure parts; [`api`]: the types
//!   the node shares ([`Decision`], [`NodeEvent`], [`SharedState`]).
//!
//! [`Effect`]: machine::Effect

mod api;
mod effects;
pub mod gossip;
pub mod machine;
mod mempool;
mod shell;

pub use api::{Decision, NodeEvent, SharedState};
pub use gossip::{
    PeerScores, DECIDED_RECENT_MAX, GOSSIP_MUTE, GOSSIP_STRIKES, GOSSIP_VERIFYING_MAX,
};
pub use mempool::Mempool;
pub use shell::App;

/// How long to wait at most: used by the node when it waits for a start.
pub const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
