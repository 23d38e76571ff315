//! Batches waiting to be proposed.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::block::WireBatch;

/// Batches waiting to be proposed, in arrival order, without duplicates.
/// Batches are shared (`Arc`) with the blocks and proposal parts made of
/// them.
#[derive(Debug, Default)]
pub struct Mempool {
    queue: VecDeque<Arc<WireBatch>>,
    digests: HashSet<[u8; 32]>,
}

impl Mempool {
    /// Adds a batch; false if it is already there.
    pub fn push(&mut self, batch: impl Into<Arc<WireBatch>>) -> bool {
        let batch = batch.into();
        if !self.digests.insert(batch.digest) {
            return false;
        }
        self.queue.push_back(batch);
        true
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.digests.contains(digest)
    }

    /// The batch with `digest`, if it is here.
    pub fn get(&self, digest: &[u8; 32]) -> Option<&Arc<WireBatch>> {
        if !self.contains(digest) {
            return None;
        }
        self.queue.iter().find(|b| b.digest == *digest)
    }

    /// The batches, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<WireBatch>> {
        self.queue.iter()
    }

    /// The first `max` batches, oldest first (they stay until decided).
    pub fn peek_block(&self, max: usize) -> Vec<Arc<WireBatch>> {
        self.queue.iter().take(max).cloned().collect()
    }

    /// Drops batches that a decided block carried.
    pub fn remove(&mut self, decided: &HashSet<[u8; 32]>) {
        self.queue.retain(|b| !decided.contains(&b.digest));
        self.digests.retain(|d| !decided.contains(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn batch(tag: u8) -> WireBatch {
        WireBatch {
            proofs: Vec::new(),
            pubkeys: Vec::new(),
            digest: [tag; 32],
        }
    }

    fn digests(v: &[Arc<WireBatch>]) -> Vec<u8> {
        v.iter().map(|b| b.digest[0]).collect()
    }

    #[test]
    fn keeps_arrival_order_and_refuses_duplicates() {
        let mut m = Mempool::default();
        assert!(m.push(batch(3)));
        assert!(m.push(batch(1)));
        assert!(!m.push(batch(3)), "a duplicate is refused");
        assert!(m.push(batch(2)));
        assert_eq!(m.len(), 3);
        assert_eq!(digests(&m.peek_block(10)), [3, 1, 2], "arrival order");
        assert_eq!(
            digests(&m.peek_block(2)),
            [3, 1],
            "at most max, oldest first"
        );
        assert_eq!(m.len(), 3, "peeking removes nothing");
    }

    #[test]
    fn decided_batches_leave_and_may_not_come_back_as_duplicates() {
        let mut m = Mempool::default();
        for t in 1..=4 {
            m.push(batch(t));
        }
        m.remove(&[[2; 32], [4; 32]].into_iter().collect());
        assert_eq!(digests(&m.peek_block(10)), [1, 3]);
        assert!(!m.contains(&[2; 32]));
        assert!(m.contains(&[3; 32]));
        assert!(m.push(batch(2)), "a removed digest is forgotten");
    }
}
