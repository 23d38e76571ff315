//! Application settings: timeouts, block shape and the proof verifier.

use std::time::Duration;

use malachitebft_core_types::LinearTimeouts;

/// Consensus timeouts. They are fallbacks for a slow or silent proposer or
/// split votes, not targets: a healthy network decides as fast as messages
/// travel. Defaults: propose 5 s (the plan's), prevote 1 s and precommit 1 s
/// (malachite's and CometBFT's; the plan's 3 s and 2 s made every healed 2|2
/// split, whose round is always split, miss the 10 s resume bound: ADR 0025).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub propose_ms: u64,
    pub prevote_ms: u64,
    pub precommit_ms: u64,
    /// Votes of a stuck round are re-broadcast this often (liveness). Also
    /// how long a healed partition waits for the other side's votes: gossip
    /// does not resend old messages on a new connection (default 1 s; ADR 0023).
    pub rebroadcast_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            propose_ms: 5_000,
            prevote_ms: 1_000,
            precommit_ms: 1_000,
            rebroadcast_ms: 1_000,
        }
    }
}

impl Timeouts {
    /// Malachite's timeouts: these values, growing by malachite's default
    /// delta per round.
    pub fn linear(&self) -> LinearTimeouts {
        LinearTimeouts {
            propose: Duration::from_millis(self.propose_ms),
            prevote: Duration::from_millis(self.prevote_ms),
            precommit: Duration::from_millis(self.precommit_ms),
            rebroadcast: Duration::from_millis(self.rebroadcast_ms),
            ..LinearTimeouts::default()
        }
    }
}

/// What the application needs besides the validator set.
#[derive(Debug, Clone, Copy)]
pub struct AppConfig {
    /// Re-verifies peers' batches; its limits drive execution's stateful checks.
    pub verifier: step_engine::Verifier,
    pub timeouts: Timeouts,
    /// Most batches in one block (default 100: 10,000 proofs).
    pub max_batches_per_block: usize,
    /// Batches per proposal part (default 10, about 320 KiB).
    pub batches_per_part: usize,
    /// How long a proposer waits for a full block before proposing what it
    /// has (default 200 ms; capped at half the propose timeout).
    pub propose_wait: Duration,
    /// The embedded store's page cache, in bytes (default 64 MiB). redb's own
    /// default is 1 GiB, which a validator fills as its chain grows.
    pub store_cache_bytes: usize,
    /// The caches of state rows (accounts, triangles, used nonces) in front
    /// of the store, in bytes in all (default 64 MiB; `docs/PERFORMANCE.md`,
    /// "Memory bound").
    pub state_cache_bytes: usize,
    /// Heights whose blocks, certificates and per-proof results the store
    /// keeps below its head (0, the default: all). The state is kept
    /// whatever this is; a pruned height cannot be served to a syncing peer.
    pub retain_heights: u64,
    /// An idle network decides at most one block per this interval (default
    /// 10 s, the plan's block time): after a decision, the next height
    /// starts when a batch is in the mempool, a peer proposes it, or this
    /// interval has passed. Zero: every height starts at once.
    pub max_idle_block_interval: Duration,
    /// The chain every vote and proposal is signed for: the genesis' hash
    /// (a node sets it from its genesis file; all zeros by default, for
    /// tests and benches that build this by hand).
    pub chain: crate::signing::ChainId,
    /// What makes a batch valid in a block (`consensus.validity`, ADR 0046):
    /// attestations of > 1/3 of the power (default) or every validator's
    /// own verification.
    pub validity: crate::attest::ValidityMode,
    /// Attested proofs each validator re-verifies, per million (default
    /// 30,000: 3 %).
    pub attest_sample_ppm: u32,
    /// A validator beyond the designated attesters verifies and attests a
    /// batch still short of a quorum after (rank − f) × this (default 500 ms).
    pub attest_fallback: Duration,
}

/// [`AppConfig::attest_sample_ppm`]'s default.
pub const DEFAULT_ATTEST_SAMPLE_PPM: u32 = 30_000;
/// [`AppConfig::attest_fallback`]'s default.
pub const DEFAULT_ATTEST_FALLBACK: Duration = Duration::from_millis(500);

/// [`AppConfig::max_idle_block_interval`]'s default.
pub const DEFAULT_MAX_IDLE_BLOCK_INTERVAL: Duration = Duration::from_secs(10);

/// [`AppConfig::store_cache_bytes`]'s default.
pub const DEFAULT_STORE_CACHE_BYTES: usize = 64 << 20;

impl AppConfig {
    /// The state caches' byte bounds, from [`AppConfig::state_cache_bytes`].
    pub fn state_cache(&self) -> crate::execution::CacheBytes {
        crate::execution::CacheBytes::split(self.state_cache_bytes as u64)
    }
}

/// [`AppConfig::state_cache_bytes`]'s default.
pub const DEFAULT_STATE_CACHE_BYTES: usize = 64 << 20;

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            verifier: step_engine::Verifier::default(),
            timeouts: Timeouts::default(),
            max_batches_per_block: 100,
            batches_per_part: 10,
            propose_wait: Duration::from_millis(200),
            store_cache_bytes: DEFAULT_STORE_CACHE_BYTES,
            state_cache_bytes: DEFAULT_STATE_CACHE_BYTES,
            retain_heights: 0,
            max_idle_block_interval: DEFAULT_MAX_IDLE_BLOCK_INTERVAL,
            chain: crate::signing::ChainId::default(),
            validity: crate::attest::ValidityMode::default(),
            attest_sample_ppm: DEFAULT_ATTEST_SAMPLE_PPM,
            attest_fallback: DEFAULT_ATTEST_FALLBACK,
        }
    }
}
