//! The consensus ledger's stateful pre-check ([`PrecheckState`]): what this
//! node accepted and is not decided yet, plus the accepted proofs of the
//! latest decided blocks ([`Recent`]), which the decision task keeps for it.
//!
//! The pre-check never reads consensus's executed state: that sits behind
//! the app's lock, which execution holds while a block executes, and a
//! pipeline commit (under the engine's stage lock) would wait for it. Both
//! parts here are io's own, and each lock is held for a few map operations.

use super::intake::lock;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use step_engine::heuristics::LastProof;
use step_engine::proof::{Nonce, Proof};
use step_engine::{Address, MemoryState, ProofState};

/// Decided proofs the pre-check remembers, at most (about 30 MiB). A replay
/// of a proof decided longer ago passes the pre-check and is refused by
/// execution (`NONCE_REPLAY` at finality instead of at once), as is one of a
/// proof decided before this process started; with the age window on
/// (`limits.age_window`), proofs that old are refused by the stateless
/// checks already.
pub const RECENT_DECIDED_MAX: usize = 1 << 17;

/// The accepted proofs of the latest decided blocks, oldest forgotten first.
#[derive(Debug, Default)]
pub struct Recent {
    nonces: HashSet<(Address, Nonce)>,
    last: HashMap<Address, LastProof>,
    order: VecDeque<(Address, Nonce, LastProof)>,
    max: usize,
}

impl Recent {
    pub fn new(max: usize) -> Recent {
        Recent {
            max,
            ..Recent::default()
        }
    }

    /// An accepted proof of a decided block, in block order.
    pub fn push(&mut self, account: Address, nonce: Nonce, last: LastProof) {
        if self.max == 0 {
            return;
        }
        if self.nonces.insert((account, nonce)) {
            self.order.push_back((account, nonce, last));
        }
        // Execution's rule: the account's last proof is its latest accepted
        // one in block order.
        self.last.insert(account, last);
        while self.order.len() > self.max {
            let Some((a, n, l)) = self.order.pop_front() else {
                break;
            };
            self.nonces.remove(&(a, n));
            if self.last.get(&a) == Some(&l) {
                self.last.remove(&a);
            }
        }
    }

    /// Decided proofs remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

/// One shard of the pre-check: the accounts `Address::shard` maps to it.
#[derive(Debug)]
struct Shard {
    /// What this node's pipeline accepted, until its block is decided.
    local: Mutex<MemoryState>,
    /// The accepted proofs of the latest decided blocks.
    decided: Mutex<Recent>,
}

/// The pre-check's state, sharded like the pipeline's stateful stage (by
/// [`Address::shard`]), so that the decision task updating one shard does
/// not hold up commits of accounts in the others.
///
/// * `local`: what this node's pipeline accepted, until its block is
///   decided: the decision task forgets each decided proof
///   ([`MemoryState::forget`]), so it holds only proofs awaiting a decision.
/// * `decided`: the accepted proofs of the latest decided blocks, which the
///   decision task records ([`PrecheckShards::decided`]) *before* it forgets
///   them from `local`, so a decided proof is never in neither.
///
/// So a replay of a recently final proof is refused at once on every
/// validator, not only on the one that accepted the original; execution
/// stays authoritative.
#[derive(Debug)]
pub struct PrecheckShards {
    shards: Vec<Shard>,
}

impl PrecheckShards {
    /// `n` shards (at least one) remembering [`RECENT_DECIDED_MAX`] decided
    /// proofs in all.
    pub fn new(n: usize) -> Arc<PrecheckShards> {
        PrecheckShards::with_recent(n, RECENT_DECIDED_MAX)
    }

    pub fn with_recent(n: usize, recent_max: usize) -> Arc<PrecheckShards> {
        let n = n.max(1);
        Arc::new(PrecheckShards {
            shards: (0..n)
                .map(|_| Shard {
                    local: Mutex::new(MemoryState::new()),
                    decided: Mutex::new(Recent::new(recent_max.div_ceil(n))),
                })
                .collect(),
        })
    }

    fn shard(&self, account: &Address) -> &Shard {
        &self.shards[account.shard(self.shards.len())]
    }

    /// The pipeline's per-shard states (all read this same state).
    pub fn states(self: &Arc<Self>) -> Vec<PrecheckState> {
        (0..self.shards.len())
            .map(|_| PrecheckState {
                shards: Arc::clone(self),
            })
            .collect()
    }

    /// A proof of a decided block: remembered as decided if execution
    /// accepted it, then forgotten from the local part.
    pub fn decided(&self, p: &Proof, accepted: bool) {
        let shard = self.shard(&p.account);
        if accepted {
            lock(&shard.decided).push(p.account, p.nonce, LastProof::of(p));
        }
        lock(&shard.local).forget(&p.account, &p.nonce, p.timestamp.unix_ms());
    }

    /// A proof that will never be decided: forgotten from the local part.
    pub fn abandon(&self, p: &Proof) {
        lock(&self.shard(&p.account).local).forget(&p.account, &p.nonce, p.timestamp.unix_ms());
    }

    /// Proofs accepted here and not decided yet (their nonces).
    pub fn pending(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.local).nonces()).sum()
    }

    /// Accounts with a proof accepted here and not decided yet.
    #[cfg(test)]
    pub fn pending_accounts(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.local).accounts()).sum()
    }
}

/// The pipeline's stateful pre-check state: reads [`PrecheckShards`],
/// the shard of each account.
#[derive(Debug)]
pub struct PrecheckState {
    shards: Arc<PrecheckShards>,
}

fn latest(a: Option<LastProof>, b: Option<LastProof>) -> Option<LastProof> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.unix_ms >= b.unix_ms { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl ProofState for PrecheckState {
    fn last_proof(&self, account: &Address) -> Option<LastProof> {
        let shard = self.shards.shard(account);
        let decided = lock(&shard.decided).last.get(account).copied();
        latest(lock(&shard.local).last_proof(account), decided)
    }

    fn nonce_used(&self, account: &Address, nonce: &Nonce) -> bool {
        let shard = self.shards.shard(account);
        lock(&shard.local).nonce_used(account, nonce)
            || lock(&shard.decided).nonces.contains(&(*account, *nonce))
    }

    fn record(&mut self, account: Address, nonce: Nonce, last: LastProof) {
        lock(&self.shards.shard(&account).local).record(account, nonce, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Nonce {
        Nonce::parse(s).expect("nonce")
    }

    fn at(ms: i64) -> LastProof {
        LastProof {
            unix_ms: ms,
            lat: 1.0,
            lon: 2.0,
        }
    }

    fn proof(account: Address, nonce: &str, ms: i64) -> Proof {
        Proof {
            account,
            triangle: step_engine::TriangleId::parse("STEP-TRI-v1:M1-00000000000000000000-Z27")
                .expect("id"),
            lat: 1.0,
            lon: 2.0,
            accuracy_m: 5.0,
            timestamp: step_engine::proof::Timestamp::from_unix_ms(ms).expect("time"),
            nonce: n(nonce),
            signature: Ok([1; 65]),
        }
    }

    #[test]
    fn recent_forgets_the_oldest_beyond_its_bound() {
        let mut r = Recent::new(2);
        let a = Address([1; 20]);
        let b = Address([2; 20]);
        r.push(a, n("1"), at(10));
        r.push(b, n("1"), at(20));
        r.push(a, n("2"), at(30));
        assert_eq!(r.len(), 2);
        assert!(!r.nonces.contains(&(a, n("1"))), "the oldest went");
        assert!(r.nonces.contains(&(a, n("2"))));
        assert_eq!(r.last.get(&a), Some(&at(30)), "a newer last proof stays");
        r.push(b, n("2"), at(40));
        r.push(b, n("3"), at(50));
        assert!(
            !r.last.contains_key(&a),
            "a's last proof went with its nonce"
        );
        assert_eq!(r.last.get(&b), Some(&at(50)));
    }

    #[test]
    fn the_precheck_sees_local_and_recently_decided_proofs() {
        let shards = PrecheckShards::with_recent(4, 64);
        let mut states = shards.states();
        assert_eq!(states.len(), 4);
        let s = &mut states[0];
        let a = Address([3; 20]);
        s.record(a, n("mine"), at(100));
        let decided = proof(a, "decided", 200);
        shards.decided(&decided, true);
        assert!(s.nonce_used(&a, &n("mine")));
        assert!(s.nonce_used(&a, &n("decided")));
        assert!(!s.nonce_used(&a, &n("other")));
        assert_eq!(s.last_proof(&a), Some(at(200)), "the latest of both");
        // The decided proof is newer: the local last proof made way for it.
        assert_eq!((shards.pending(), shards.pending_accounts()), (1, 0));
        shards.decided(&proof(a, "mine", 100), false);
        assert_eq!((shards.pending(), shards.pending_accounts()), (0, 0));
        assert!(
            !s.nonce_used(&a, &n("mine")),
            "rejected at execution: not decided"
        );
        assert_eq!(s.last_proof(&a), Some(at(200)));
    }
}
