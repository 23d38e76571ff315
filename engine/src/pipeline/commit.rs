//! The stateful stage: puts stateless results back into sequence order and
//! commits them one at a time, in that order, to the account's state shard.
//!
//! There is no dedicated thread. A worker that finishes a micro-batch takes
//! the stage's lock, drops its results into the reorder ring and commits every
//! result that is next in sequence ("whoever holds the lock drains"). The
//! commit itself (a nonce lookup, a haversine, two inserts) is far cheaper
//! than a signature recovery, so the lock is held briefly and rarely contended.

use super::batch::{signature_bytes, Batch, BatchHasher};
use super::Verdict;
use crate::error::Reject;
use crate::heuristics::ProofState;
use crate::proof::Proof;
use crate::verify::{Checked, Verifier};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The verdict callback. It runs under the stage's lock, in sequence order,
/// so it must be quick and must not call back into the pipeline's
/// `flush`/`finish` (submitting from it is allowed but will usually be refused).
pub type VerdictSink = Box<dyn FnMut(&Verdict) + Send>;

/// A stateless result on its way to the stateful stage. It still owns its
/// body buffer, which goes back to the pool only once the proof is committed:
/// that bounds the number of sequence numbers in flight by the pool size.
#[derive(Debug)]
pub(crate) struct Done {
    pub seq: u64,
    pub tag: u64,
    pub result: Result<Checked, Reject>,
    pub buf: Vec<u8>,
}

/// What the stage needs besides its own locked state.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub verifier: Verifier,
    pub batch_size: usize,
    pub flush_after: Duration,
    /// Body buffers go back to the submitters here.
    pub free_tx: Sender<Vec<u8>>,
    pub batch_tx: Sender<Batch>,
    /// Vectors of batches the consumer handed back with `recycle`.
    pub recycle_rx: Receiver<(Vec<Proof>, Vec<[u8; 64]>)>,
    pub committed: AtomicU64,
    pub accepted: AtomicU64,
    pub batches: AtomicU64,
}

pub(crate) struct CommitStage<S> {
    next: u64,
    ring: Vec<Option<Done>>,
    shards: Vec<S>,
    sink: VerdictSink,
    proofs: Vec<Proof>,
    pubkeys: Vec<[u8; 64]>,
    hasher: BatchHasher,
    started: Option<Instant>,
}

impl<S> std::fmt::Debug for CommitStage<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitStage")
            .field("next", &self.next)
            .field("shards", &self.shards.len())
            .field("pending_batch", &self.proofs.len())
            .finish_non_exhaustive()
    }
}

impl<S: ProofState> CommitStage<S> {
    pub(crate) fn new(capacity: usize, shards: Vec<S>, sink: VerdictSink) -> Self {
        CommitStage {
            next: 0,
            ring: (0..capacity).map(|_| None).collect(),
            shards,
            sink,
            proofs: Vec::new(),
            pubkeys: Vec::new(),
            hasher: BatchHasher::default(),
            started: None,
        }
    }

    /// Takes the state shards out (at shutdown).
    pub(crate) fn take_shards(&mut self) -> Vec<S> {
        std::mem::take(&mut self.shards)
    }

    /// Puts a stateless result in its reorder slot. At most `capacity`
    /// sequence numbers are uncommitted at any time, so slots never collide.
    pub(crate) fn insert(&mut self, done: Done) {
        let i = (done.seq % self.ring.len() as u64) as usize;
        debug_assert!(
            self.ring[i].is_none(),
            "reorder slot {i} reused before commit"
        );
        self.ring[i] = Some(done);
    }

    /// Commits every result that is next in sequence; flushes full batches
    /// and a partial one whose deadline has passed.
    pub(crate) fn drain(&mut self, ctx: &Ctx) {
        let cap = self.ring.len() as u64;
        while let Some(done) = self.ring[(self.next % cap) as usize].take() {
            debug_assert_eq!(done.seq, self.next);
            self.next += 1;
            self.commit_one(ctx, done);
        }
        self.flush_if_due(ctx, Instant::now());
    }

    fn commit_one(&mut self, ctx: &Ctx, done: Done) {
        let Done {
            seq,
            tag,
            result,
            buf,
        } = done;
        let result = result.and_then(|checked| {
            let shard = checked.proof.account.shard(self.shards.len());
            let accepted = ctx.verifier.commit(&checked, &mut self.shards[shard])?;
            self.push_accepted(ctx, &checked);
            Ok(accepted)
        });
        let accepted = result.is_ok();
        (self.sink)(&Verdict { seq, tag, result });
        // Capacity equals the number of buffers, so this never finds the
        // channel full; it fails only if the pipeline is being torn down.
        let _ = ctx.free_tx.try_send(buf);
        ctx.committed.fetch_add(1, Ordering::Relaxed);
        if accepted {
            ctx.accepted.fetch_add(1, Ordering::Relaxed);
        }
        if self.proofs.len() >= ctx.batch_size {
            self.flush(ctx);
        }
    }

    fn push_accepted(&mut self, ctx: &Ctx, c: &Checked) {
        if self.proofs.capacity() == 0 {
            match ctx.recycle_rx.try_recv() {
                Ok((mut p, mut k)) => {
                    p.clear();
                    k.clear();
                    self.proofs = p;
                    self.pubkeys = k;
                }
                Err(_) => {
                    self.proofs = Vec::with_capacity(ctx.batch_size);
                    self.pubkeys = Vec::with_capacity(ctx.batch_size);
                }
            }
        }
        if self.proofs.is_empty() {
            self.started = Some(Instant::now());
        }
        self.hasher.push(&c.digest, &signature_bytes(c), &c.pubkey);
        self.proofs.push(c.proof);
        self.pubkeys.push(c.pubkey);
    }

    /// When the current partial batch must be flushed, if there is one.
    pub(crate) fn deadline(&self, ctx: &Ctx) -> Option<Instant> {
        self.started.map(|t| t + ctx.flush_after)
    }

    pub(crate) fn flush_if_due(&mut self, ctx: &Ctx, now: Instant) {
        if self.deadline(ctx).is_some_and(|d| now >= d) {
            self.flush(ctx);
        }
    }

    /// Emits the current batch, however small; nothing if it is empty. Blocks
    /// while the batch queue is full: that stalls the workers, the ingest
    /// queue fills and submitters are refused with `OVERLOADED`.
    pub(crate) fn flush(&mut self, ctx: &Ctx) {
        self.started = None;
        if self.proofs.is_empty() {
            return;
        }
        let batch = Batch {
            proofs: std::mem::take(&mut self.proofs),
            pubkeys: std::mem::take(&mut self.pubkeys),
            digest: self.hasher.finish(),
        };
        ctx.batches.fetch_add(1, Ordering::Relaxed);
        // Fails only when the pipeline is dropped without `finish`.
        let _ = ctx.batch_tx.send(batch);
    }
}
