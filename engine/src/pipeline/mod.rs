//! The thread-per-core batch pipeline: many proofs in, verdicts and
//! pre-validated batches out, at close to the speed of signature recovery,
//! in bounded memory.
//!
//! # Stages
//!
//! ```text
//! submit ──► ingest queue ──► W stateless workers ──► stateful stage ──► verdict callback
//! (bytes,     (bounded,        (one per core,          (one lock,          (in sequence order)
//!  seq no.)    holds body       pinned best-effort;     reorder ring,     ──► batch queue
//!              buffers)         parse, accuracy, age,   nonce → speed        (bounded; batches of
//!                               policy, digest,         gate → moratorium,    `batch_size`, or fewer
//!                               recovery, address,      sharded by account)   after `flush_after`)
//!                               point-in-triangle)
//! ```
//!
//! 1. **Ingest.** [`Pipeline::submit`] takes a body buffer from a fixed pool
//!    (`capacity` buffers of [`BODY_MAX_BYTES`], allocated once), copies the
//!    bytes into it, gives it the next **sequence number** and the clock
//!    reading, and queues it. If no buffer is free the proof is refused at
//!    once with [`Reject::Overloaded`] (wire code `OVERLOADED`, HTTP 503):
//!    submission never blocks and never buffers without limit.
//! 2. **Stateless workers.** `workers` threads, worker *i* pinned to core
//!    *i mod cores* with `core_affinity` when `pin_workers` is set (pinning is
//!    best effort: a failure leaves the thread unpinned, see
//!    [`Stats::pinned_workers`]). Each takes up to `worker_batch` jobs at a
//!    time and runs [`Verifier::check_stateless`] on each. This is where the
//!    time goes (recovery is about 90 % of the instructions of a proof).
//! 3. **Stateful stage.** The worker then takes the stage's lock, puts its
//!    results in a reorder ring and commits every result that is next in
//!    sequence: [`Verifier::commit`] against the account's state shard
//!    (`Address::shard`). Commits therefore happen in **sequence order**,
//!    whatever the workers' timing: every validator that submits the same
//!    bodies in the same order reaches the same verdicts (see
//!    `tests/pipeline_determinism.rs`). The verdict callback runs here, in
//!    sequence order, and the body buffer goes back to the pool.
//! 4. **Batches.** Accepted proofs are appended to the current [`Batch`]
//!    (proof, recovered public key, running SHA-256 digest). A batch is
//!    emitted when it holds `batch_size` proofs (default 100), or by the
//!    first worker to notice that `flush_after` (default 20 ms) has passed
//!    since its first proof. Batch boundaries depend on timing; verdicts do
//!    not.
//!
//! # API
//!
//! * [`Pipeline::new`] / [`Pipeline::with_memory_state`]: start the threads
//!   with a [`PipelineConfig`] and a verdict callback `FnMut(&Verdict)`.
//! * [`Pipeline::submit`], [`Pipeline::submit_at`] (explicit clock),
//!   [`Pipeline::submit_slice`]: queue bodies. Each carries a caller's `tag`
//!   (a request id, an index…) that comes back in its [`Verdict`].
//! * [`Pipeline::next_batch`], [`Pipeline::try_next_batch`],
//!   [`Pipeline::batches`]: take pre-validated batches; [`Pipeline::recycle`]
//!   hands a batch's vectors back so the next batch does not allocate.
//! * [`reverify_batch`] (or [`Pipeline::reverify_batch`]): re-verify a peer's
//!   batch with the public keys it carries; names the first bad proof.
//! * [`Pipeline::flush`], [`Pipeline::stats`], [`Pipeline::finish`].
//!
//! # Memory bound
//!
//! Every queue is bounded, and the number of proofs between submission and
//! verdict is at most `capacity` (a proof holds its body buffer until it is
//! committed). [`PipelineConfig::memory_bound_bytes`] adds up everything the
//! pipeline holds: body buffers, ingest queue, reorder ring, worker scratch,
//! and `batch_queue + 2` batches. With the defaults (1,024 buffers, 64 queued
//! batches of 100) it is about 18 MiB, whatever the offered load. Not counted:
//! the [`ProofState`] shards, which grow with accepted proofs (nonces are kept
//! forever by [`MemoryState`]), and batches the consumer keeps.
//!
//! # Allocation
//!
//! After warm-up (each worker's first recovery, the first batches) the hot
//! path allocates nothing per proof, provided the consumer recycles batches
//! and the state store does not grow its tables; `tests/pipeline_alloc.rs`
//! counts allocations to show it. A body that is not valid JSON allocates
//! one `serde_json` error while it is rejected.
//!
//! # Clock
//!
//! Verdicts read time only through the injected [`Clock`], once per proof at
//! submission (so a proof's age verdict does not depend on queueing delay).
//! The flush deadline uses the monotonic clock and affects batch boundaries
//! only.
//!
//! [`BODY_MAX_BYTES`]: crate::proof::BODY_MAX_BYTES

mod batch;
mod commit;
mod config;
mod worker;

pub use batch::{
    reverify_batch, reverify_sampled, write_canonical, Batch, BatchError, BATCH_DOMAIN, ENTRY_LEN,
};
pub use commit::VerdictSink;
pub use config::{unix_now_ms, Clock, Hook, PipelineConfig};

use crate::error::Reject;
use crate::heuristics::{MemoryState, ProofState};
use crate::proof::{Proof, BODY_MAX_BYTES};
use crate::verify::Accepted;
use commit::{CommitStage, Ctx};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use worker::Job;

/// What a submission carries into the ingest queue.
enum Input<'a> {
    /// Request bytes, parsed by a worker.
    Body(&'a [u8]),
    /// A proof the caller parsed.
    Parsed(&'a Proof),
}

/// The verdict for one submitted body.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Position in the pipeline's commit order (0, 1, 2, … per pipeline).
    pub seq: u64,
    /// The caller's tag given at submission.
    pub tag: u64,
    /// The same result [`Verifier::verify`] gives when the bodies are
    /// verified one by one in sequence order against the same state.
    pub result: Result<Accepted, Reject>,
}

/// Counters, read without stopping the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Bodies queued (sequence numbers handed out).
    pub submitted: u64,
    /// Bodies refused with `OVERLOADED`.
    pub refused: u64,
    /// Verdicts delivered.
    pub committed: u64,
    /// Of those, accepted.
    pub accepted: u64,
    /// Batches emitted.
    pub batches: u64,
    /// Jobs waiting in the ingest queue now.
    pub queued: usize,
    /// Proofs between submission and verdict now (≤ capacity).
    pub in_flight: usize,
    /// Workers that were pinned to a core.
    pub pinned_workers: usize,
}

/// What [`Pipeline::finish`] returns.
#[derive(Debug)]
pub struct Finished<S> {
    /// The state shards, with every accepted proof recorded.
    pub shards: Vec<S>,
    /// Batches the consumer had not taken yet, the last partial one included.
    pub batches: Vec<Batch>,
    pub stats: Stats,
}

/// State shared by the workers.
pub(crate) struct Shared<S> {
    pub ctx: Ctx,
    pub stage: Mutex<CommitStage<S>>,
    pub worker_batch: usize,
    pub before_check: Option<Hook>,
    pub live_workers: AtomicUsize,
    pub pinned: AtomicUsize,
}

/// The running pipeline. See the module documentation.
pub struct Pipeline<S: ProofState + Send + 'static = MemoryState> {
    shared: Arc<Shared<S>>,
    ingest_tx: Option<Sender<Job>>,
    ingest_rx: Receiver<Job>,
    free_rx: Receiver<Vec<u8>>,
    batch_rx: Receiver<Batch>,
    recycle_tx: Sender<(Vec<Proof>, Vec<[u8; 64]>)>,
    workers: Vec<JoinHandle<()>>,
    clock: Clock,
    capacity: usize,
    next_seq: AtomicU64,
    refused: AtomicU64,
}

impl<S: ProofState + Send + 'static> std::fmt::Debug for Pipeline<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Pipeline<MemoryState> {
    /// A pipeline over `config.shards` fresh in-memory state shards.
    pub fn with_memory_state(
        config: PipelineConfig,
        sink: impl FnMut(&Verdict) + Send + 'static,
    ) -> Self {
        let shards = (0..config.shards.max(1))
            .map(|_| MemoryState::new())
            .collect();
        Pipeline::new(config, shards, sink)
    }
}

impl<S: ProofState + Send + 'static> Pipeline<S> {
    /// Starts the workers. `shards` holds the stateful stage's state, one
    /// value per shard (an account's proofs always go to
    /// `shards[account.shard(shards.len())]`); `sink` receives every verdict,
    /// in sequence order, on a worker thread (see [`VerdictSink`]).
    ///
    /// # Panics
    ///
    /// If `shards` is empty, or a worker thread cannot be spawned.
    pub fn new(
        config: PipelineConfig,
        shards: Vec<S>,
        sink: impl FnMut(&Verdict) + Send + 'static,
    ) -> Self {
        assert!(
            !shards.is_empty(),
            "the pipeline needs at least one state shard"
        );
        let c = config.normalized();
        let (ingest_tx, ingest_rx) = bounded::<Job>(c.capacity);
        let (free_tx, free_rx) = bounded::<Vec<u8>>(c.capacity);
        for _ in 0..c.capacity {
            // The pool's capacity equals the number of buffers: never full.
            let _ = free_tx.try_send(Vec::with_capacity(BODY_MAX_BYTES));
        }
        let (batch_tx, batch_rx) = bounded(c.batch_queue);
        // Vectors for every batch the pipeline can hold at once (queued, one
        // being sent, one being built): reused through `recycle`. Reserved,
        // not touched, so not resident until used.
        let (recycle_tx, recycle_rx) = bounded(c.batch_queue + 2);
        for _ in 0..c.batch_queue + 2 {
            let _ = recycle_tx.try_send((
                Vec::with_capacity(c.batch_size),
                Vec::with_capacity(c.batch_size),
            ));
        }
        let shared = Arc::new(Shared {
            ctx: Ctx {
                verifier: c.verifier,
                batch_size: c.batch_size,
                flush_after: c.flush_after,
                free_tx,
                batch_tx,
                recycle_rx,
                committed: AtomicU64::new(0),
                accepted: AtomicU64::new(0),
                batches: AtomicU64::new(0),
            },
            stage: Mutex::new(CommitStage::new(c.capacity, shards, Box::new(sink))),
            worker_batch: c.worker_batch,
            before_check: c.before_check.clone(),
            live_workers: AtomicUsize::new(c.workers),
            pinned: AtomicUsize::new(0),
        });
        let cores = if c.pin_workers {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let workers = (0..c.workers)
            .map(|i| {
                let shared = Arc::clone(&shared);
                let rx = ingest_rx.clone();
                let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
                std::thread::Builder::new()
                    .name(format!("step-worker-{i}"))
                    .spawn(move || worker::run(shared, rx, core))
                    .expect("spawning a pipeline worker thread")
            })
            .collect();
        Pipeline {
            shared,
            ingest_tx: Some(ingest_tx),
            ingest_rx,
            free_rx,
            batch_rx,
            recycle_tx,
            workers,
            clock: c.clock,
            capacity: c.capacity,
            next_seq: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Queues one body, reading the injected clock; returns its sequence
    /// number. `Err(Reject::Overloaded)` at once when `capacity` proofs are
    /// already in flight. Every queued body gets exactly one [`Verdict`].
    pub fn submit(&self, body: &[u8], tag: u64) -> Result<u64, Reject> {
        self.submit_at(body, tag, self.clock.now_ms())
    }

    /// [`Pipeline::submit`] with an explicit clock reading (unix ms).
    pub fn submit_at(&self, body: &[u8], tag: u64, now_ms: i64) -> Result<u64, Reject> {
        self.enqueue(Input::Body(body), tag, now_ms)
    }

    /// Queues a proof the caller already parsed (the HTTP layer parses each
    /// body once, for its per-account rate limit): the workers check it as
    /// it is and never parse it again. Same admission, order and verdicts as
    /// [`Pipeline::submit`] of the body it was parsed from.
    pub fn submit_parsed(&self, proof: &Proof, tag: u64) -> Result<u64, Reject> {
        self.enqueue(Input::Parsed(proof), tag, self.clock.now_ms())
    }

    fn enqueue(&self, input: Input<'_>, tag: u64, now_ms: i64) -> Result<u64, Reject> {
        let refuse = || {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Err(Reject::Overloaded)
        };
        let Some(tx) = &self.ingest_tx else {
            return refuse();
        };
        let Ok(mut buf) = self.free_rx.try_recv() else {
            return refuse();
        };
        buf.clear();
        let (len, parsed) = match input {
            Input::Body(body) => {
                if body.len() <= BODY_MAX_BYTES {
                    buf.extend_from_slice(body);
                }
                (body.len(), None)
            }
            Input::Parsed(proof) => (0, Some(*proof)),
        };
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        // Never full: the queue's capacity equals the number of buffers, and
        // every queued job holds one. It is disconnected only if every
        // worker has died, and then the pipeline is dead anyway.
        match tx.try_send(Job {
            seq,
            tag,
            now_ms,
            len,
            buf,
            parsed,
        }) {
            Ok(()) => Ok(seq),
            Err(_) => refuse(),
        }
    }

    /// Queues `bodies` in order, with tags `first_tag`, `first_tag + 1`, …,
    /// and one clock reading. Stops at the first refusal and returns how many
    /// were queued: `bodies[n..]` were refused with `OVERLOADED`. Sequence
    /// numbers increase along the slice (other threads' submissions may
    /// interleave).
    pub fn submit_slice<B: AsRef<[u8]>>(&self, bodies: &[B], first_tag: u64) -> usize {
        let now_ms = self.clock.now_ms();
        let mut n = 0;
        for (i, body) in bodies.iter().enumerate() {
            if self
                .submit_at(body.as_ref(), first_tag.wrapping_add(i as u64), now_ms)
                .is_err()
            {
                break;
            }
            n += 1;
        }
        if n < bodies.len() {
            // The loop counted only the first refusal.
            self.refused
                .fetch_add((bodies.len() - n - 1) as u64, Ordering::Relaxed);
        }
        n
    }

    /// The next batch, waiting at most `timeout`.
    pub fn next_batch(&self, timeout: Duration) -> Option<Batch> {
        self.batch_rx.recv_timeout(timeout).ok()
    }

    /// The next batch if one is ready.
    pub fn try_next_batch(&self) -> Option<Batch> {
        self.batch_rx.try_recv().ok()
    }

    /// The batch queue itself, for `select!` with other channels.
    pub fn batches(&self) -> &Receiver<Batch> {
        &self.batch_rx
    }

    /// Hands a batch's vectors back for reuse (dropped if the pool is full).
    pub fn recycle(&self, batch: Batch) {
        let _ = self.recycle_tx.try_send((batch.proofs, batch.pubkeys));
    }

    /// Emits the current partial batch now (proofs already committed only).
    pub fn flush(&self) {
        let mut stage = self
            .shared
            .stage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stage.flush(&self.shared.ctx);
    }

    /// Re-verifies a batch from a peer with this pipeline's verifier; see
    /// [`reverify_batch`].
    pub fn reverify_batch(&self, batch: &Batch) -> Result<(), BatchError> {
        reverify_batch(&self.shared.ctx.verifier, batch)
    }

    /// The configured capacity (most proofs in flight).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn stats(&self) -> Stats {
        let ctx = &self.shared.ctx;
        Stats {
            submitted: self.next_seq.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            committed: ctx.committed.load(Ordering::Relaxed),
            accepted: ctx.accepted.load(Ordering::Relaxed),
            batches: ctx.batches.load(Ordering::Relaxed),
            queued: self.ingest_rx.len(),
            in_flight: self.capacity - self.free_rx.len(),
            pinned_workers: self.shared.pinned.load(Ordering::Relaxed),
        }
    }

    /// Stops taking proofs, waits until every queued proof has its verdict,
    /// emits the last partial batch, stops the workers and returns the state
    /// and the batches not yet taken. Re-raises a worker's panic.
    pub fn finish(mut self) -> Finished<S> {
        let (batches, panic) = self.shutdown(true);
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        let stats = self.stats();
        let mut stage = self
            .shared
            .stage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let shards = stage.take_shards();
        Finished {
            shards,
            batches,
            stats,
        }
    }

    /// Closes the ingest queue and joins the workers while taking batches, so
    /// that a worker blocked on a full batch queue can finish.
    fn shutdown(&mut self, keep: bool) -> (Vec<Batch>, Option<Box<dyn std::any::Any + Send>>) {
        self.ingest_tx = None;
        let mut batches = Vec::new();
        let mut take = |b: Batch| {
            if keep {
                batches.push(b);
            }
        };
        while !self.workers.iter().all(JoinHandle::is_finished) {
            if let Ok(b) = self.batch_rx.recv_timeout(Duration::from_millis(1)) {
                take(b);
            }
        }
        let mut panic = None;
        for h in self.workers.drain(..) {
            if let Err(p) = h.join() {
                panic.get_or_insert(p);
            }
        }
        while let Ok(b) = self.batch_rx.try_recv() {
            take(b);
        }
        (batches, panic)
    }
}

impl<S: ProofState + Send + 'static> Drop for Pipeline<S> {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            let _ = self.shutdown(false);
        }
    }
}
