//! Finality tracking: which sent proofs were accepted, and when each
//! appeared in a finalized block on any target's `GET /events` stream.
//!
//! A proof is tracked from when it is sent. Its block may be seen before its
//! submit response (the order is not guaranteed): the tracker keeps the
//! block time and counts the proof as finalized once it is accepted. Only
//! accepted proofs are ever counted as finalized. Finality latency is
//! measured from the proof's *scheduled* send time (see [`super::latency`]).

use super::latency::Latencies;
use super::schedule::Phase;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    scheduled_ns: u64,
    phase: Phase,
    accepted: bool,
    final_ns: Option<u64>,
}

/// What the tracker learnt; see [`Tracker::snapshot`].
#[derive(Debug, Clone, Default)]
pub struct FinalityStats {
    /// Accepted proofs of the measured window seen in a finalized block.
    pub finalized: u64,
    /// The same for warm-up proofs.
    pub finalized_warmup: u64,
    /// The same for cool-down proofs, with their latency and last finality.
    pub finalized_cooldown: u64,
    pub cooldown_latency: Latencies,
    pub cooldown_last_final_ns: u64,
    /// Accepted cool-down proofs not seen final yet.
    pub cooldown_outstanding: u64,
    /// Submit → finality, coordinated-omission corrected.
    pub latency: Latencies,
    /// When the last measured proof was finalized (ns after the start).
    pub last_final_ns: u64,
    /// Accepted measured proofs not seen final yet.
    pub outstanding: u64,
    /// Finalized blocks received (counting every target's copy).
    pub blocks: u64,
    /// Blocks a slow `/events` subscriber skipped (`event: lagged`).
    pub lagged_blocks: u64,
    /// Accepted proofs of the measured window that a block's `rejected`
    /// list names (rejected at execution), by code.
    pub exec_rejected_by_code: BTreeMap<String, u64>,
    /// The same for the cool-down (all codes).
    pub cooldown_exec_rejected: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<[u8; 32], Entry>,
    /// Rejected at execution before the submit response was seen.
    early_rejects: HashMap<[u8; 32], String>,
    stats: FinalityStats,
    /// Finality latencies (every phase) since [`Tracker::take_interval`].
    interval: Latencies,
}

impl Inner {
    fn verdict(&mut self, id: &[u8; 32], seq: u64, accepted: bool) {
        let g = self;
        let Some(e) = g.map.get_mut(id) else { return };
        if e.seq != seq {
            return;
        }
        if !accepted {
            g.map.remove(id);
            g.early_rejects.remove(id);
            return;
        }
        if let Some(code) = g.early_rejects.remove(id) {
            if let Some(e) = g.map.remove(id) {
                exec_reject(&mut g.stats, &e, code);
            }
            return;
        }
        let Some(e) = g.map.get_mut(id) else { return };
        match e.final_ns {
            Some(f) => {
                let e = *e;
                g.map.remove(id);
                record(&mut g.stats, &mut g.interval, &e, f);
            }
            None => {
                e.accepted = true;
                match e.phase {
                    Phase::Measured => g.stats.outstanding += 1,
                    Phase::Cooldown => g.stats.cooldown_outstanding += 1,
                    Phase::Warmup => {}
                }
            }
        }
    }
}

/// Shared by the connection workers and the `/events` followers.
#[derive(Debug, Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters: keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Proof `seq` with id `id` is being sent. A proof with the same id
    /// already in flight (a replay of it) keeps its entry.
    pub fn sent(&self, id: &[u8; 32], seq: u64, scheduled_ns: u64, phase: Phase) {
        self.sent_many([(id, seq)], scheduled_ns, phase);
    }

    /// [`Tracker::sent`] for the proofs of one request (one lock).
    pub fn sent_many<'a>(
        &self,
        proofs: impl IntoIterator<Item = (&'a [u8; 32], u64)>,
        scheduled_ns: u64,
        phase: Phase,
    ) {
        let mut g = self.lock();
        for (id, seq) in proofs {
            g.map.entry(*id).or_insert(Entry {
                seq,
                scheduled_ns,
                phase,
                accepted: false,
                final_ns: None,
            });
        }
    }

    /// The submit response for proof `seq`: accepted or not (rejected, or no
    /// verdict at all: such a proof is never counted as finalized).
    pub fn verdict(&self, id: &[u8; 32], seq: u64, accepted: bool) {
        self.verdicts([(id, seq, accepted)]);
    }

    /// [`Tracker::verdict`] for the proofs of one answer (one lock).
    pub fn verdicts<'a>(&self, proofs: impl IntoIterator<Item = (&'a [u8; 32], u64, bool)>) {
        let mut g = self.lock();
        for (id, seq, accepted) in proofs {
            g.verdict(id, seq, accepted);
        }
    }

    /// A finalized block arrived at `now_ns`: the proofs it finalized, and
    /// those execution rejected (with their codes).
    pub fn block<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a [u8; 32]>,
        rejected: impl IntoIterator<Item = (&'a [u8; 32], &'a str)>,
        now_ns: u64,
    ) {
        let mut guard = self.lock();
        let g = &mut *guard;
        g.stats.blocks += 1;
        for (id, code) in rejected {
            let Some(e) = g.map.get(id).copied() else {
                continue;
            };
            if e.accepted {
                g.map.remove(id);
                match e.phase {
                    Phase::Measured => g.stats.outstanding -= 1,
                    Phase::Cooldown => g.stats.cooldown_outstanding -= 1,
                    Phase::Warmup => {}
                }
                exec_reject(&mut g.stats, &e, code.to_owned());
            } else {
                g.early_rejects
                    .entry(*id)
                    .or_insert_with(|| code.to_owned());
            }
        }
        for id in ids {
            let Some(e) = g.map.get_mut(id) else { continue };
            if !e.accepted {
                e.final_ns.get_or_insert(now_ns);
                continue;
            }
            let e = *e;
            g.map.remove(id);
            match e.phase {
                Phase::Measured => g.stats.outstanding -= 1,
                Phase::Cooldown => g.stats.cooldown_outstanding -= 1,
                Phase::Warmup => {}
            }
            record(&mut g.stats, &mut g.interval, &e, now_ns);
        }
    }

    /// Up to `limit` accepted proofs of the measured window or the
    /// cool-down not seen final yet.
    pub fn unfinalized_ids(&self, limit: usize) -> Vec<[u8; 32]> {
        self.lock()
            .map
            .iter()
            .filter(|(_, e)| e.accepted && e.phase != Phase::Warmup)
            .map(|(id, _)| *id)
            .take(limit)
            .collect()
    }

    /// A subscriber skipped `n` blocks.
    pub fn lagged(&self, n: u64) {
        self.lock().stats.lagged_blocks += n;
    }

    /// Accepted proofs of the measured window and the cool-down not seen
    /// final yet.
    pub fn outstanding(&self) -> u64 {
        let g = self.lock();
        g.stats.outstanding + g.stats.cooldown_outstanding
    }

    /// (finalized measured, finalized warm-up and cool-down) so far.
    pub fn finalized(&self) -> (u64, u64) {
        let g = self.lock();
        (
            g.stats.finalized,
            g.stats.finalized_warmup + g.stats.finalized_cooldown,
        )
    }

    /// The finality latencies recorded since the last call (every phase),
    /// for the report's finality-over-time chart.
    pub fn take_interval(&self) -> Latencies {
        std::mem::take(&mut self.lock().interval)
    }

    pub fn snapshot(&self) -> FinalityStats {
        self.lock().stats.clone()
    }
}

fn exec_reject(stats: &mut FinalityStats, e: &Entry, code: String) {
    match e.phase {
        Phase::Measured => *stats.exec_rejected_by_code.entry(code).or_default() += 1,
        Phase::Cooldown => stats.cooldown_exec_rejected += 1,
        Phase::Warmup => {}
    }
}

fn record(stats: &mut FinalityStats, interval: &mut Latencies, e: &Entry, final_ns: u64) {
    interval.record_corrected(e.scheduled_ns, final_ns);
    match e.phase {
        Phase::Measured => {
            stats.finalized += 1;
            stats.latency.record_corrected(e.scheduled_ns, final_ns);
            stats.last_final_ns = stats.last_final_ns.max(final_ns);
        }
        Phase::Cooldown => {
            stats.finalized_cooldown += 1;
            stats
                .cooldown_latency
                .record_corrected(e.scheduled_ns, final_ns);
            stats.cooldown_last_final_ns = stats.cooldown_last_final_ns.max(final_ns);
        }
        Phase::Warmup => stats.finalized_warmup += 1,
    }
}

/// Parses 64 hex digits.
pub fn parse_id(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_before_or_after_the_response() {
        let t = Tracker::new();
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        t.sent(&a, 0, 1_000_000, Phase::Measured);
        t.sent(&b, 1, 2_000_000, Phase::Measured);
        t.sent(&c, 2, 3_000_000, Phase::Measured);
        t.verdict(&a, 0, true);
        assert_eq!(t.outstanding(), 1);
        // b's block arrives before its response; c is rejected.
        t.block([&a, &b], [], 11_000_000);
        t.verdict(&c, 2, false);
        assert_eq!(t.finalized(), (1, 0));
        t.verdict(&b, 1, true);
        let s = t.snapshot();
        assert_eq!(s.finalized, 2);
        assert_eq!(s.outstanding, 0);
        assert_eq!(s.latency.count(), 2);
        // a: 10 ms after it was due; b: 9 ms.
        assert!(
            (s.latency.max_ms() - 10.0).abs() < 0.1,
            "{}",
            s.latency.summary_text()
        );
        // A duplicate block (another validator's copy) counts nothing.
        t.block([&a, &b], [], 20_000_000);
        assert_eq!(t.finalized(), (2, 0));
    }

    /// The finality chart's per-interval histogram: every phase, emptied
    /// by each take.
    #[test]
    fn interval_latencies_are_taken_and_reset() {
        let t = Tracker::new();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        t.sent_many([(&a, 0)], 0, Phase::Warmup);
        t.sent_many([(&b, 1)], 0, Phase::Measured);
        t.verdicts([(&a, 0, true), (&b, 1, true)]);
        t.block([&a], [], 5_000_000);
        let first = t.take_interval();
        assert_eq!(first.count(), 1);
        assert!((first.max_ms() - 5.0).abs() < 0.1);
        assert_eq!(t.take_interval().count(), 0);
        t.block([&b], [], 7_000_000);
        assert_eq!(t.take_interval().count(), 1);
        assert_eq!(t.snapshot().latency.count(), 1);
    }

    #[test]
    fn a_replay_does_not_take_over_the_original() {
        let t = Tracker::new();
        let id = [9u8; 32];
        t.sent(&id, 0, 0, Phase::Measured);
        t.sent(&id, 5, 100, Phase::Measured); // replay of proof 0, in flight
        t.verdict(&id, 5, false); // the replay is rejected
        t.verdict(&id, 0, true);
        t.block([&id], [], 1_000_000);
        assert_eq!(t.finalized(), (1, 0));
    }

    #[test]
    fn unaccepted_proofs_are_never_finalized() {
        let t = Tracker::new();
        let id = [4u8; 32];
        t.sent(&id, 0, 0, Phase::Warmup);
        t.block([&id], [], 5);
        t.verdict(&id, 0, false);
        assert_eq!(t.finalized(), (0, 0));
        t.sent(&[5u8; 32], 1, 0, Phase::Cooldown);
        t.verdict(&[5u8; 32], 1, true);
        assert_eq!(t.outstanding(), 1);
        t.block([&[5u8; 32]], [], 5);
        assert_eq!(t.finalized(), (0, 1));
        assert_eq!(t.snapshot().finalized_cooldown, 1);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn rejected_at_execution_before_or_after_the_response() {
        let t = Tracker::new();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        t.sent(&a, 0, 0, Phase::Measured);
        t.sent(&b, 1, 0, Phase::Measured);
        t.verdict(&a, 0, true);
        assert_eq!(t.outstanding(), 1);
        // a is rejected at execution after its response, b before.
        t.block([], [(&a, "TOO_FAST"), (&b, "TRIANGLE_SUBDIVIDED")], 10);
        assert_eq!(t.outstanding(), 0);
        t.verdict(&b, 1, true);
        let s = t.snapshot();
        assert_eq!(s.finalized, 0);
        assert_eq!(s.outstanding, 0);
        assert_eq!(s.exec_rejected_by_code.get("TOO_FAST"), Some(&1));
        assert_eq!(s.exec_rejected_by_code.get("TRIANGLE_SUBDIVIDED"), Some(&1));
        assert!(t.unfinalized_ids(10).is_empty());
    }

    #[test]
    fn proof_ids() {
        assert_eq!(parse_id(&"0a".repeat(32)), Some([10u8; 32]));
        assert_eq!(parse_id(&"0A".repeat(32)), Some([10u8; 32]));
        assert_eq!(parse_id("0a"), None);
        assert_eq!(parse_id(&"0g".repeat(32)), None);
    }
}
