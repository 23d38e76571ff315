//! Digest-only proposals, the pure parts: the batches a validator has seen
//! but not yet had decided ([`SeenBatches`], bounded in count and bytes),
//! the proposals waiting for batches it lacks ([`Waiting`], bounded in
//! count and age), and which `Want`s it answers ([`Supplies`], each digest
//! at most once per [`SUPPLY_COOLDOWN`]).
//!
//! A proposal names its batches by digest (`crate::streaming::split`). A
//! validator that holds every named batch (gossip brought them) builds the
//! block at once; one that lacks some publishes a `Want`, asks again every
//! [`FETCH_RETRY`], and gives the proposal up after [`FETCH_GIVE_UP`]: it
//! never answers consensus for it, so the propose timeout makes it prevote
//! nil, and a silent or lying peer cannot stall the height.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use step_engine::bounded::FifoMap;

use malachitebft_core_types::Round;

use crate::block::{BlockData, WireBatch};
use crate::context::{Height, ValidatorAddress};
use crate::streaming::Assembled;

/// Seen batches kept at most.
pub const SEEN_BATCHES_MAX: usize = 4_096;
/// Bytes (as encoded) of seen batches kept at most.
pub const SEEN_BYTES_MAX: usize = 64 << 20;
/// Proposals waiting for batches at once, at most; the oldest is dropped.
pub const WAITING_MAX: usize = 16;
/// How often a waiting proposal's `Want` is sent again.
pub const FETCH_RETRY: Duration = Duration::from_millis(500);
/// How long a proposal waits for its batches before it is given up.
pub const FETCH_GIVE_UP: Duration = Duration::from_secs(30);
/// A digest is supplied at most once per this, whoever asks.
pub const SUPPLY_COOLDOWN: Duration = Duration::from_secs(1);
/// Digests answered per `Want`, at most.
pub const SUPPLY_PER_WANT_MAX: usize = 1_024;
/// Digests remembered as recently supplied.
const SUPPLIED_RECENT_MAX: usize = 16_384;

/// A received proposal with its batches found: validate it, then call
/// `Core::accept`.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub height: Height,
    pub round: Round,
    pub valid_round: Round,
    pub proposer: ValidatorAddress,
    pub block: BlockData,
}

/// The core's digest-only state.
#[derive(Debug, Default)]
pub struct Fetching {
    /// Batches received and not decided: what a proposal's digests are
    /// resolved against.
    pub seen: SeenBatches,
    /// Proposals waiting for batches this validator lacks.
    pub waiting: Waiting,
    /// Proposals whose batches are all here, for the next replies.
    pub ready: VecDeque<Received>,
    /// The `Want`s answered lately.
    pub supplies: Supplies,
    /// Batches peers supplied on request and this validator kept, since
    /// start (`Node::live().fetched_batches`).
    pub fetched: Arc<AtomicU64>,
}

/// Batches received (gossip or supply) and not decided yet, by digest,
/// oldest evicted first beyond [`SEEN_BATCHES_MAX`] or [`SEEN_BYTES_MAX`].
#[derive(Debug, Default)]
pub struct SeenBatches {
    by_digest: HashMap<[u8; 32], Arc<WireBatch>>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

impl SeenBatches {
    /// Keeps `batch` (a digest already kept is not replaced).
    pub fn insert(&mut self, batch: &Arc<WireBatch>) {
        if self.by_digest.contains_key(&batch.digest) {
            return;
        }
        let size = batch.encoded_len();
        while !self.order.is_empty()
            && (self.order.len() >= SEEN_BATCHES_MAX || self.bytes + size > SEEN_BYTES_MAX)
        {
            self.evict_oldest();
        }
        self.bytes += size;
        self.order.push_back(batch.digest);
        self.by_digest.insert(batch.digest, Arc::clone(batch));
    }

    fn evict_oldest(&mut self) {
        while let Some(d) = self.order.pop_front() {
            if let Some(b) = self.by_digest.remove(&d) {
                self.bytes -= b.encoded_len();
                return;
            }
        }
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<&Arc<WireBatch>> {
        self.by_digest.get(digest)
    }

    /// Forgets decided (or refused) batches.
    pub fn remove(&mut self, digests: &[[u8; 32]]) {
        for d in digests {
            if let Some(b) = self.by_digest.remove(d) {
                self.bytes -= b.encoded_len();
            }
        }
        if self.order.len() > 2 * self.by_digest.len() + 64 {
            let kept = &self.by_digest;
            self.order.retain(|d| kept.contains_key(d));
        }
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Bytes (as encoded) of the batches kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A complete proposal whose batches are not all here yet.
#[derive(Debug)]
pub struct WaitingProposal {
    pub proposal: Assembled,
    /// The digests still missing.
    pub missing: HashSet<[u8; 32]>,
    /// When its `Want` is sent again.
    pub retry_at: Instant,
    /// When it is given up.
    pub give_up_at: Instant,
}

/// What the timer found for the waiting proposals.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Digests to ask for again.
    pub want: Vec<[u8; 32]>,
    /// Proposals given up, as (height, round).
    pub given_up: Vec<(u64, i64)>,
}

/// Proposals waiting for batches, oldest first, at most [`WAITING_MAX`].
#[derive(Debug, Default)]
pub struct Waiting {
    list: VecDeque<WaitingProposal>,
}

impl Waiting {
    /// Waits for `missing` of `proposal`; the oldest waiting proposal is
    /// dropped beyond [`WAITING_MAX`]. A proposal already waiting (same
    /// height, round and value) is not added twice.
    pub fn add(&mut self, proposal: Assembled, missing: HashSet<[u8; 32]>, now: Instant) {
        let same = |w: &WaitingProposal| {
            (w.proposal.height, w.proposal.round, w.proposal.announced_id)
                == (proposal.height, proposal.round, proposal.announced_id)
        };
        if self.list.iter().any(same) {
            return;
        }
        if self.list.len() >= WAITING_MAX {
            if let Some(old) = self.list.pop_front() {
                tracing::debug!(
                    height = old.proposal.height.0,
                    round = old.proposal.round.as_i64(),
                    "proposal waiting for batches dropped: too many waiting"
                );
            }
        }
        self.list.push_back(WaitingProposal {
            proposal,
            missing,
            retry_at: now + FETCH_RETRY,
            give_up_at: now + FETCH_GIVE_UP,
        });
    }

    /// `digest` arrived: the proposals it completes, in arrival order.
    pub fn arrived(&mut self, digest: &[u8; 32]) -> Vec<Assembled> {
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.list.len() {
            let w = &mut self.list[i];
            if w.missing.remove(digest) && w.missing.is_empty() {
                if let Some(w) = self.list.remove(i) {
                    done.push(w.proposal);
                }
                continue;
            }
            i += 1;
        }
        done
    }

    /// True when a waiting proposal lacks `digest`.
    pub fn wants(&self, digest: &[u8; 32]) -> bool {
        self.list.iter().any(|w| w.missing.contains(digest))
    }

    /// Drops the proposals of heights up to `height` (executed).
    pub fn executed(&mut self, height: u64) {
        self.list.retain(|w| w.proposal.height.0 > height);
    }

    /// The next retry or give-up, whichever is first.
    pub fn deadline(&self) -> Option<Instant> {
        self.list.iter().map(|w| w.retry_at.min(w.give_up_at)).min()
    }

    /// At `now`: gives up the proposals past their time, and collects the
    /// digests to ask for again (each once).
    pub fn due(&mut self, now: Instant) -> Due {
        let mut out = Due::default();
        self.list.retain(|w| {
            let keep = w.give_up_at > now;
            if !keep {
                out.given_up
                    .push((w.proposal.height.0, w.proposal.round.as_i64()));
            }
            keep
        });
        let mut seen = HashSet::new();
        for w in &mut self.list {
            if w.retry_at <= now {
                w.retry_at = now + FETCH_RETRY;
                out.want
                    .extend(w.missing.iter().copied().filter(|d| seen.insert(*d)));
            }
        }
        out.want.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Which `Want`s are answered: each digest at most once per
/// [`SUPPLY_COOLDOWN`], at most [`SUPPLY_PER_WANT_MAX`] per `Want`, so a
/// peer repeating its `Want` cannot make this validator resend batches
/// faster than that.
#[derive(Debug)]
pub struct Supplies {
    last: FifoMap<[u8; 32], Instant>,
}

impl Default for Supplies {
    fn default() -> Supplies {
        Supplies {
            last: FifoMap::new(SUPPLIED_RECENT_MAX),
        }
    }
}

impl Supplies {
    /// Of `wanted`, those to supply now (held, per `held`, and not supplied
    /// within the cooldown), recorded as supplied.
    pub fn answer<'a>(
        &mut self,
        wanted: &[[u8; 32]],
        now: Instant,
        held: impl Fn(&[u8; 32]) -> Option<&'a Arc<WireBatch>>,
    ) -> Vec<Arc<WireBatch>> {
        let mut out = Vec::new();
        for d in wanted.iter().take(SUPPLY_PER_WANT_MAX) {
            if self
                .last
                .get(d)
                .is_some_and(|t| now.saturating_duration_since(*t) < SUPPLY_COOLDOWN)
            {
                continue;
            }
            if let Some(b) = held(d) {
                self.last.insert(*d, now);
                out.push(Arc::clone(b));
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
