//! Batch gossip scheduling, pure: which peer batch to verify next, what a
//! verdict does, who is muted. The shell runs the verifications.
//!
//! One batch per publisher is verified at a time, in arrival order, so a
//! publisher's batches reach the mempool in the order it published them
//! (an account's proofs then execute in submission order).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use step_engine::bounded::FifoMap;

use crate::block::WireBatch;

/// Invalid gossiped batches after which a peer's gossip is ignored.
pub const GOSSIP_STRIKES: u32 = 3;
/// How long a peer's gossip is ignored after [`GOSSIP_STRIKES`].
pub const GOSSIP_MUTE: Duration = Duration::from_secs(600);
/// Peers scored at once, at most (validators number 4–50).
const SCORED_PEERS_MAX: usize = 1_024;
/// Gossiped batches queued or being verified, at most (one in flight per
/// publisher).
pub const GOSSIP_VERIFYING_MAX: usize = 256;
/// Decided batch digests remembered to ignore late gossip.
pub const DECIDED_RECENT_MAX: usize = 65_536;

/// Scores peers down for invalid gossip: after [`GOSSIP_STRIKES`] invalid
/// batches, a peer's gossip is ignored for [`GOSSIP_MUTE`]. Its proposals
/// are still heard (and a bad one is still never decided).
#[derive(Debug)]
pub struct PeerScores<K> {
    peers: HashMap<K, (u32, Option<Instant>)>,
}

impl<K> Default for PeerScores<K> {
    fn default() -> Self {
        PeerScores {
            peers: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> PeerScores<K> {
    /// Records an invalid batch from `peer`; true if it is muted from now.
    pub fn strike(&mut self, peer: &K, now: Instant) -> bool {
        if !self.peers.contains_key(peer) && self.peers.len() >= SCORED_PEERS_MAX {
            self.peers
                .retain(|_, (_, muted)| muted.is_some_and(|t| t > now));
        }
        let e = self.peers.entry(peer.clone()).or_insert((0, None));
        e.0 += 1;
        if e.0 >= GOSSIP_STRIKES && e.1.is_none_or(|t| t <= now) {
            e.0 = 0;
            e.1 = Some(now + GOSSIP_MUTE);
            return true;
        }
        false
    }

    pub fn is_muted(&self, peer: &K, now: Instant) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|(_, muted)| muted.is_some_and(|t| t > now))
    }
}

/// The last [`DECIDED_RECENT_MAX`] decided batch digests.
#[derive(Debug)]
pub(crate) struct RecentDigests(FifoMap<[u8; 32], ()>);

impl Default for RecentDigests {
    fn default() -> RecentDigests {
        RecentDigests(FifoMap::new(DECIDED_RECENT_MAX))
    }
}

impl RecentDigests {
    pub(crate) fn insert_all(&mut self, digests: &[[u8; 32]]) {
        for d in digests {
            self.0.insert(*d, ());
        }
    }

    pub(crate) fn contains(&self, d: &[u8; 32]) -> bool {
        self.0.contains_key(d)
    }
}

/// What a verification's verdict means for the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Valid: into the mempool.
    Accept,
    /// Invalid: dropped; `muted` when this strike muted the publisher.
    Invalid { muted: bool },
    /// Valid but decided meanwhile: dropped.
    Decided,
}

/// Batch gossip bookkeeping, generic over the peer id (tests use `u8`).
#[derive(Debug)]
pub(crate) struct GossipSched<P> {
    /// Digests queued or being verified.
    verifying: HashSet<[u8; 32]>,
    /// Each publisher's batches waiting for verification, in arrival order.
    queues: HashMap<P, VecDeque<Arc<WireBatch>>>,
    /// Publishers with a verification in flight.
    busy: HashSet<P>,
    decided: RecentDigests,
    scores: PeerScores<P>,
    /// Peers' batches taken into the mempool since start, verified (or,
    /// under attestations, kept to be attested by others)
    /// (`Node::live().gossip_batches`).
    accepted: Arc<AtomicU64>,
}

impl<P> Default for GossipSched<P> {
    fn default() -> Self {
        GossipSched {
            verifying: HashSet::new(),
            queues: HashMap::new(),
            busy: HashSet::new(),
            decided: RecentDigests::default(),
            scores: PeerScores::default(),
            accepted: Arc::default(),
        }
    }
}

impl<P: Hash + Eq + Clone> GossipSched<P> {
    /// `from` gossiped `batch`. `known`: already in the mempool; `room`:
    /// the mempool has room. Returns the verification to start now, if any
    /// (the batch may instead wait behind `from`'s batch in flight, or be
    /// ignored: known, decided, being verified, muted publisher, no room).
    pub(crate) fn offer(
        &mut self,
        batch: Arc<WireBatch>,
        from: P,
        now: Instant,
        known: bool,
        room: bool,
    ) -> Option<Arc<WireBatch>> {
        let d = batch.digest;
        if known
            || self.decided.contains(&d)
            || self.verifying.contains(&d)
            || self.scores.is_muted(&from, now)
        {
            return None;
        }
        if self.verifying.len() >= GOSSIP_VERIFYING_MAX || !room {
            tracing::debug!("gossiped batch dropped: no room (it will come with its proposal)");
            return None;
        }
        self.verifying.insert(d);
        self.queues
            .entry(from.clone())
            .or_default()
            .push_back(batch);
        self.next(from)
    }

    /// `from`'s next queued batch, unless one of its batches is in flight.
    fn next(&mut self, from: P) -> Option<Arc<WireBatch>> {
        if self.busy.contains(&from) {
            return None;
        }
        let queue = self.queues.get_mut(&from)?;
        let Some(batch) = queue.pop_front() else {
            self.queues.remove(&from);
            return None;
        };
        self.busy.insert(from);
        Some(batch)
    }

    /// The verification of `digest` from `from` ended. Returns what the
    /// verdict means and `from`'s next batch to verify, if any.
    pub(crate) fn verdict(
        &mut self,
        digest: &[u8; 32],
        from: P,
        valid: bool,
        now: Instant,
    ) -> (Verdict, Option<Arc<WireBatch>>) {
        self.verifying.remove(digest);
        self.busy.remove(&from);
        let verdict = if !valid {
            Verdict::Invalid {
                muted: self.scores.strike(&from, now),
            }
        } else if self.decided.contains(digest) {
            Verdict::Decided
        } else {
            self.accepted.fetch_add(1, Ordering::Relaxed);
            Verdict::Accept
        };
        (verdict, self.next(from))
    }

    /// `from` published gossip that does not decode: a strike, as for an
    /// invalid batch. True if it is muted from now.
    pub(crate) fn strike(&mut self, from: &P, now: Instant) -> bool {
        self.scores.strike(from, now)
    }

    /// True when `digest` was decided recently.
    pub(crate) fn is_decided(&self, digest: &[u8; 32]) -> bool {
        self.decided.contains(digest)
    }

    /// Counts a peer's batch taken into the mempool without verification
    /// (an attested batch this validator does not attest).
    pub(crate) fn taken(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Remembers decided digests: late gossip of them is ignored.
    pub(crate) fn decided(&mut self, digests: &[[u8; 32]]) {
        self.decided.insert_all(digests);
    }

    pub(crate) fn accepted(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.accepted)
    }
}

#[cfg(test)]
#[path = "gossip_tests.rs"]
mod tests;
