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
use step_engine::proof::Nonce;
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

/// The pipeline's stateful pre-check state (one per shard; all share the
/// same two parts).
///
/// * `local`: what this node's pipeline accepted, until its block is
///   decided: the decision task forgets each decided proof
///   ([`MemoryState::forget`]), so it holds only proofs awaiting a decision.
/// * `recent`: the accepted proofs of the latest decided blocks, pushed by
///   the decision task *before* it forgets them from `local`, so a decided
///   proof is never in neither.
///
/// So a replay of a recently final proof is refused at once on every
/// validator, not only on the one that accepted the original; execution
/// stays authoritative.
#[derive(Debug)]
pub struct PrecheckState {
    local: Arc<Mutex<MemoryState>>,
    recent: Arc<Mutex<Recent>>,
}

impl PrecheckState {
    pub fn new(local: Arc<Mutex<MemoryState>>, recent: Arc<Mutex<Recent>>) -> PrecheckState {
        PrecheckState { local, recent }
    }
}

fn latest(a: Option<LastProof>, b: Option<LastProof>) -> Option<LastProof> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.unix_ms >= b.unix_ms { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl ProofState for PrecheckState {
    fn last_proof(&self, account: &Address) -> Option<LastProof> {
        let decided = lock(&self.recent).last.get(account).copied();
        latest(lock(&self.local).last_proof(account), decided)
    }

    fn nonce_used(&self, account: &Address, nonce: &Nonce) -> bool {
        lock(&self.local).nonce_used(account, nonce)
            || lock(&self.recent).nonces.contains(&(*account, *nonce))
    }

    fn record(&mut self, account: Address, nonce: Nonce, last: LastProof) {
        lock(&self.local).record(account, nonce, last);
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
        let local = Arc::new(Mutex::new(MemoryState::new()));
        let recent = Arc::new(Mutex::new(Recent::new(8)));
        let mut s = PrecheckState::new(Arc::clone(&local), Arc::clone(&recent));
        let a = Address([3; 20]);
        s.record(a, n("mine"), at(100));
        lock(&recent).push(a, n("decided"), at(200));
        assert!(s.nonce_used(&a, &n("mine")));
        assert!(s.nonce_used(&a, &n("decided")));
        assert!(!s.nonce_used(&a, &n("other")));
        assert_eq!(s.last_proof(&a), Some(at(200)), "the latest of both");
        lock(&local).forget(&a, &n("mine"), 100);
        assert_eq!(s.last_proof(&a), Some(at(200)));
    }
}
