//! Stateful heuristics: nonce replay, speed gate, moratorium; and their limits.
//!
//! State is keyed by [`Address`] (20 bytes), so the letter case of the
//! submitted account never matters (Phase 2 defect 5).

use crate::address::Address;
use crate::error::Reject;
use crate::proof::{Nonce, Proof};
use std::collections::{HashMap, HashSet};

/// Phase 2's limits, each configurable. `None` switches a check off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Accuracy must satisfy 0 < accuracy ≤ this (GPS_MAX_ACCURACY_M).
    pub accuracy_m_max: f64,
    /// Speed gate (PROOF_SPEED_LIMIT_MPS).
    pub speed_mps_max: Option<f64>,
    /// Minimum time between two accepted proofs of one account (PROOF_MORATORIUM_MS).
    pub moratorium_ms: Option<u64>,
    /// Proof-age window against the injected clock. Off by default: files are
    /// verified long after they were signed.
    pub age_window: Option<AgeWindow>,
}

/// A proof's timestamp must lie in `[now − max_age_ms, now + max_future_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeWindow {
    pub max_age_ms: u64,
    pub max_future_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            accuracy_m_max: 50.0,
            speed_mps_max: Some(15.0),
            moratorium_ms: Some(10_000),
            age_window: None,
        }
    }
}

impl Limits {
    /// Accuracy check: 0 < accuracy ≤ max.
    pub fn check_accuracy(&self, accuracy_m: f64) -> Result<(), Reject> {
        if accuracy_m > 0.0 && accuracy_m <= self.accuracy_m_max {
            Ok(())
        } else {
            Err(Reject::LowAccuracy {
                accuracy_m,
                max_m: self.accuracy_m_max,
            })
        }
    }

    /// Age-window check against `now_ms` (unix milliseconds from the injected clock).
    pub fn check_age(&self, proof_ms: i64, now_ms: i64) -> Result<(), Reject> {
        let Some(w) = self.age_window else {
            return Ok(());
        };
        let age_ms = now_ms.saturating_sub(proof_ms);
        let too_old = age_ms > 0 && age_ms.unsigned_abs() > w.max_age_ms;
        let too_new = age_ms < 0 && age_ms.unsigned_abs() > w.max_future_ms;
        if too_old || too_new {
            Err(Reject::Stale { age_ms })
        } else {
            Ok(())
        }
    }
}

/// What the heuristics remember of an account's previous accepted proof.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastProof {
    pub unix_ms: i64,
    pub lat: f64,
    pub lon: f64,
}

impl LastProof {
    pub fn of(p: &Proof) -> LastProof {
        LastProof {
            unix_ms: p.timestamp.unix_ms(),
            lat: p.lat,
            lon: p.lon,
        }
    }
}

/// The state the stateful checks read and the commit writes. The engine keeps
/// it in memory ([`MemoryState`]); the node backs it with its store.
pub trait ProofState {
    fn last_proof(&self, account: &Address) -> Option<LastProof>;
    fn nonce_used(&self, account: &Address, nonce: &Nonce) -> bool;
    fn record(&mut self, account: Address, nonce: Nonce, last: LastProof);
}

/// In-memory [`ProofState`].
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    last: HashMap<Address, LastProof, Seeded>,
    nonces: HashSet<(Address, Nonce), Seeded>,
}

/// The tables' hasher: foldhash, seeded at random per table. Keys are chosen
/// by clients (nonces) or ground by them (addresses), so the seed is what
/// keeps them from aiming at one bucket.
type Seeded = foldhash::fast::RandomState;

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// With room for `n` accounts and `n` (account, nonce) pairs, so that
    /// recording the first `n` proofs does not grow the tables.
    pub fn with_capacity(n: usize) -> Self {
        MemoryState {
            last: HashMap::with_capacity_and_hasher(n, Seeded::default()),
            nonces: HashSet::with_capacity_and_hasher(n, Seeded::default()),
        }
    }

    /// Number of (account, nonce) pairs seen.
    pub fn nonces(&self) -> usize {
        self.nonces.len()
    }

    /// Number of accounts with a last proof.
    pub fn accounts(&self) -> usize {
        self.last.len()
    }

    /// Forgets a proof that another, authoritative state now answers for (a
    /// node's pre-check forgets a proof once its block is decided): drops
    /// its `(account, nonce)` pair, and the account's last proof unless that
    /// is newer than `unix_ms` (a later proof still pending here).
    pub fn forget(&mut self, account: &Address, nonce: &Nonce, unix_ms: i64) {
        self.nonces.remove(&(*account, *nonce));
        if self.last.get(account).is_some_and(|l| l.unix_ms <= unix_ms) {
            self.last.remove(account);
        }
    }
}

/// Implements [`ProofState`] for a struct that keeps the two tables as
/// fields `last` (account → [`LastProof`], a map with `get` and `insert`)
/// and `nonces` (a set of `(Address, Nonce)` with `contains` and `insert`):
/// the engine's hash tables ([`MemoryState`]) and the chain state's ordered
/// ones share this one implementation.
#[macro_export]
macro_rules! proof_state_over_tables {
    ($state:ty) => {
        impl $crate::heuristics::ProofState for $state {
            fn last_proof(
                &self,
                account: &$crate::Address,
            ) -> Option<$crate::heuristics::LastProof> {
                self.last.get(account).copied()
            }
            fn nonce_used(&self, account: &$crate::Address, nonce: &$crate::proof::Nonce) -> bool {
                self.nonces.contains(&(*account, *nonce))
            }
            fn record(
                &mut self,
                account: $crate::Address,
                nonce: $crate::proof::Nonce,
                last: $crate::heuristics::LastProof,
            ) {
                self.nonces.insert((account, nonce));
                self.last.insert(account, last);
            }
        }
    };
}

proof_state_over_tables!(MemoryState);

/// Runs nonce → speed gate → moratorium for `p` against `state`.
pub fn check_stateful(limits: &Limits, p: &Proof, state: &impl ProofState) -> Result<(), Reject> {
    if state.nonce_used(&p.account, &p.nonce) {
        return Err(Reject::NonceReplay);
    }
    let Some(last) = state.last_proof(&p.account) else {
        return Ok(());
    };
    let delta_ms = p.timestamp.unix_ms() - last.unix_ms;
    if let Some(max_mps) = limits.speed_mps_max {
        if delta_ms <= 0 {
            return Err(Reject::NotAfterPrevious { delta_ms });
        }
        let distance_m = crate::mesh::haversine_m(last.lat, last.lon, p.lat, p.lon);
        let speed_mps = distance_m / (delta_ms as f64 / 1000.0);
        if speed_mps > max_mps {
            return Err(Reject::TooFast { speed_mps, max_mps });
        }
    }
    if let Some(moratorium_ms) = limits.moratorium_ms {
        if delta_ms < 0 || delta_ms.unsigned_abs() < moratorium_ms {
            return Err(Reject::Moratorium {
                delta_ms,
                moratorium_ms,
            });
        }
    }
    Ok(())
}
