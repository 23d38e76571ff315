//! [`LocalLedger`]: the engine pipeline plus an in-process, in-order commit.
//!
//! **Single node, not Byzantine fault tolerant, in memory.** Every batch the
//! pipeline emits becomes the next block at once: no proposer, no votes, no
//! peers, no disk. It exists so the HTTP API, its tests and single-process
//! tools run before the consensus backend (issue #5) lands; that backend will
//! implement the same [`Ledger`] trait with blocks decided by malachite and
//! state in the redb store. State is lost when the process stops.
//!
//! ```text
//! submit(body) ─► Pipeline (stateless workers → stateful stage) ─► verdict sink ─► Submission
//!                                                   │ batches (≤ batch_size, flush_after)
//!                                                   ▼
//!                  block thread: Chain::apply(batch) as height h+1 ─► finality waiters,
//!                                                                     /events broadcast
//! ```

use super::chain::Chain;
use super::{
    AccountView, Final, FinalityError, FinalizedBlock, Ledger, Pending, ProofId, ProofRecord,
    ProofStatus, QueueView, StatusView, Submission, TriangleView,
};
use crate::config::Config;
use crate::metrics::Metrics;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use step_engine::pipeline::{Batch, Clock, Pipeline, PipelineConfig, Verdict};
use step_engine::{Address, Limits, Proof, Reject, TriangleId, Verifier};
use tokio::sync::{broadcast, oneshot, Notify};

type FinalTx = oneshot::Sender<Result<Final, FinalityError>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A submission waiting for its pipeline verdict.
#[derive(Debug)]
struct Waiting {
    tx: oneshot::Sender<Result<Pending, Reject>>,
    submitted: Instant,
}

/// An accepted proof waiting for its block.
#[derive(Debug)]
struct PendingEntry {
    proof: Proof,
    reward_micro: u64,
    submitted: Instant,
}

#[derive(Debug, Default)]
struct Verdicts {
    closing: bool,
    by_tag: HashMap<u64, Waiting>,
}

#[derive(Debug)]
struct Book {
    chain: Chain,
    pending: HashMap<ProofId, PendingEntry>,
    waiters: HashMap<ProofId, Vec<FinalTx>>,
}

/// What the verdict sink and the block thread share.
#[derive(Debug)]
struct Shared {
    verdicts: Mutex<Verdicts>,
    book: Mutex<Book>,
    /// Signalled when `verdicts.by_tag` may have become empty.
    idle: Notify,
    /// Signalled after every block.
    settled: Notify,
    events: broadcast::Sender<Arc<FinalizedBlock>>,
    metrics: Arc<Metrics>,
    clock: Clock,
    block_thread_alive: AtomicBool,
}

/// The single-process ledger. See the module documentation.
#[derive(Debug, Clone)]
pub struct LocalLedger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    pipeline: Arc<Pipeline>,
    limits: Limits,
    next_tag: AtomicU64,
    stop_tx: crossbeam_channel::Sender<()>,
    block_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.stop_tx.try_send(());
    }
}

impl LocalLedger {
    /// Starts the pipeline and the block thread with the configuration's
    /// limits and pipeline settings. `clock` gives the age window's "now"
    /// and block times.
    pub fn start(config: &Config, clock: Clock, metrics: Arc<Metrics>) -> LocalLedger {
        LocalLedger::start_with_pipeline(
            pipeline_config(config, clock),
            config.http.events_buffer,
            metrics,
        )
    }

    /// Starts with an explicit pipeline configuration (tests use it to set
    /// `before_check`, a hook that can hold proofs inside the workers).
    pub fn start_with_pipeline(
        pc: PipelineConfig,
        events_buffer: usize,
        metrics: Arc<Metrics>,
    ) -> LocalLedger {
        let limits = pc.verifier.limits;
        let verifier = pc.verifier;
        let clock = pc.clock.clone();
        let (events, _) = broadcast::channel(events_buffer.max(1));
        let shared = Arc::new(Shared {
            verdicts: Mutex::new(Verdicts::default()),
            book: Mutex::new(Book {
                chain: Chain::new(verifier),
                pending: HashMap::new(),
                waiters: HashMap::new(),
            }),
            idle: Notify::new(),
            settled: Notify::new(),
            events,
            metrics,
            clock,
            block_thread_alive: AtomicBool::new(true),
        });
        let sink_shared = Arc::clone(&shared);
        let pipeline = Arc::new(Pipeline::with_memory_state(pc, move |v| {
            on_verdict(&sink_shared, v);
        }));
        shared
            .metrics
            .queue_capacity
            .set(i64::try_from(pipeline.capacity()).unwrap_or(i64::MAX));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let thread_shared = Arc::clone(&shared);
        let thread_pipeline = Arc::clone(&pipeline);
        let block_thread = std::thread::Builder::new()
            .name("step-local-blocks".into())
            .spawn(move || block_loop(&thread_shared, &thread_pipeline, &stop_rx))
            .expect("spawning the LocalLedger block thread");
        LocalLedger {
            inner: Arc::new(Inner {
                shared,
                pipeline,
                limits,
                next_tag: AtomicU64::new(0),
                stop_tx,
                block_thread: Mutex::new(Some(block_thread)),
            }),
        }
    }

    /// Starts with the system clock and fresh metrics.
    pub fn start_default(config: &Config) -> LocalLedger {
        LocalLedger::start(config, system_clock(), Arc::new(Metrics::new()))
    }
}

/// The engine pipeline's configuration from the node's.
pub fn pipeline_config(config: &Config, clock: Clock) -> PipelineConfig {
    let verifier = Verifier::new(config.limits.to_limits(), config.backend());
    let p = &config.pipeline;
    let mut pc = PipelineConfig::new(verifier, clock);
    if p.workers > 0 {
        pc.workers = p.workers;
    }
    pc.capacity = p.capacity;
    pc.batch_size = p.batch_size;
    pc.flush_after = Duration::from_millis(p.flush_after_ms);
    pc.batch_queue = p.batch_queue;
    pc.pin_workers = p.pin_workers;
    pc
}

/// The system wall clock in unix milliseconds.
pub fn system_clock() -> Clock {
    Clock::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// The pipeline's verdict callback (a worker thread, under the stage lock).
fn on_verdict(shared: &Shared, v: &Verdict) {
    let waiting = {
        let mut verdicts = lock(&shared.verdicts);
        let w = verdicts.by_tag.remove(&v.tag);
        if verdicts.by_tag.is_empty() {
            shared.idle.notify_waiters();
        }
        w
    };
    let result = match &v.result {
        Ok(accepted) => match ProofId::of_proof(&accepted.proof) {
            Some(id) => {
                // Registered before the submitter hears of it, so that
                // `wait_final` right after the verdict finds it.
                lock(&shared.book).pending.insert(
                    id,
                    PendingEntry {
                        proof: accepted.proof,
                        reward_micro: accepted.reward_micro,
                        submitted: waiting.as_ref().map_or_else(Instant::now, |w| w.submitted),
                    },
                );
                Ok(Pending {
                    id,
                    account: accepted.proof.account,
                    triangle: accepted.proof.triangle,
                    reward_micro: accepted.reward_micro,
                })
            }
            // An accepted proof always has a decoded signature.
            None => Err(Reject::Signature(
                step_engine::error::SignatureError::RecoveryFailed,
            )),
        },
        Err(r) => Err(r.clone()),
    };
    if let Some(w) = waiting {
        let _ = w.tx.send(result);
    }
}

fn block_loop(shared: &Shared, pipeline: &Pipeline, stop: &crossbeam_channel::Receiver<()>) {
    let batches = pipeline.batches().clone();
    loop {
        crossbeam_channel::select! {
            recv(batches) -> b => match b {
                Ok(batch) => {
                    apply_block(shared, &batch);
                    pipeline.recycle(batch);
                }
                Err(_) => break,
            },
            recv(stop) -> _ => break,
        }
    }
    shared.block_thread_alive.store(false, Ordering::Release);
    // Wake anyone still waiting: nothing more will be finalized.
    let mut book = lock(&shared.book);
    for (_, ws) in book.waiters.drain() {
        for w in ws {
            let _ = w.send(Err(FinalityError::Closed));
        }
    }
    drop(book);
    shared.settled.notify_waiters();
}

fn apply_block(shared: &Shared, batch: &Batch) {
    let time_ms = shared.clock.now_ms();
    let m = &shared.metrics;
    let block = {
        let mut book = lock(&shared.book);
        let (block, outcomes) = book.chain.apply(batch, time_ms);
        for o in outcomes {
            let Some(id) = o.id else { continue };
            if let Some(p) = book.pending.remove(&id) {
                if o.result.is_ok() {
                    m.finality_seconds
                        .observe(p.submitted.elapsed().as_secs_f64());
                }
            }
            for w in book.waiters.remove(&id).unwrap_or_default() {
                let _ = w.send(o.result.clone().map_err(FinalityError::Rejected));
            }
        }
        block
    };
    m.batch_proofs.observe(batch.len() as f64);
    m.block_proofs.observe(block.proof_ids.len() as f64);
    m.finalized.inc_by(block.proof_ids.len() as u64);
    m.height
        .set(i64::try_from(block.height).unwrap_or(i64::MAX));
    tracing::debug!(
        height = block.height,
        proofs = block.proof_ids.len(),
        "block finalized"
    );
    // No subscribers is not an error.
    let _ = shared.events.send(Arc::new(block));
    shared.settled.notify_waiters();
}

impl Ledger for LocalLedger {
    fn limits(&self) -> Limits {
        self.inner.limits
    }

    fn submit(&self, body: &[u8]) -> Result<Submission, Reject> {
        let inner = &self.inner;
        let tag = inner.next_tag.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut v = lock(&inner.shared.verdicts);
            if v.closing {
                return Err(Reject::Overloaded);
            }
            v.by_tag.insert(
                tag,
                Waiting {
                    tx,
                    submitted: Instant::now(),
                },
            );
        }
        match inner.pipeline.submit(body, tag) {
            Ok(_) => Ok(Submission::new(rx)),
            Err(e) => {
                let mut v = lock(&inner.shared.verdicts);
                v.by_tag.remove(&tag);
                if v.by_tag.is_empty() {
                    inner.shared.idle.notify_waiters();
                }
                Err(e)
            }
        }
    }

    fn wait_final(&self, id: ProofId) -> BoxFuture<'static, Result<Final, FinalityError>> {
        let mut book = lock(&self.inner.shared.book);
        if let Some(rec) = book.chain.proof(&id) {
            if let ProofStatus::Final(f) = rec.status {
                return futures_util::future::ready(Ok(f)).boxed();
            }
        }
        if !book.pending.contains_key(&id) {
            return futures_util::future::ready(Err(FinalityError::Unknown)).boxed();
        }
        let (tx, rx) = oneshot::channel();
        book.waiters.entry(id).or_default().push(tx);
        async move { rx.await.unwrap_or(Err(FinalityError::Closed)) }.boxed()
    }

    fn proof(&self, id: &ProofId) -> Option<ProofRecord> {
        let book = lock(&self.inner.shared.book);
        if let Some(rec) = book.chain.proof(id) {
            return Some(rec.clone());
        }
        book.pending.get(id).map(|p| ProofRecord {
            id: *id,
            proof: p.proof,
            reward_micro: p.reward_micro,
            status: ProofStatus::Pending,
        })
    }

    fn account(&self, address: &Address) -> AccountView {
        lock(&self.inner.shared.book).chain.account(address)
    }

    fn triangle(&self, id: &TriangleId) -> TriangleView {
        lock(&self.inner.shared.book).chain.triangle(id)
    }

    fn status(&self) -> StatusView {
        let (height, state_root) = {
            let book = lock(&self.inner.shared.book);
            (book.chain.height(), book.chain.root())
        };
        let closing = lock(&self.inner.shared.verdicts).closing;
        let stats = self.inner.pipeline.stats();
        StatusView {
            backend: "local",
            height,
            round: 0,
            state_root,
            validators: 1,
            peers: 0,
            ready: !closing && self.inner.shared.block_thread_alive.load(Ordering::Acquire),
            queue: QueueView {
                ingest: stats.queued,
                in_flight: stats.in_flight,
                capacity: self.inner.pipeline.capacity(),
            },
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<FinalizedBlock>> {
        self.inner.shared.events.subscribe()
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        async move {
            let shared = &inner.shared;
            lock(&shared.verdicts).closing = true;
            // 1. Every queued body gets its verdict.
            loop {
                let idle = shared.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if lock(&shared.verdicts).by_tag.is_empty() {
                    break;
                }
                idle.await;
            }
            // 2. The partial batch is emitted and every accepted proof finalized.
            let pipeline = Arc::clone(&inner.pipeline);
            let _ = tokio::task::spawn_blocking(move || pipeline.flush()).await;
            loop {
                let settled = shared.settled.notified();
                tokio::pin!(settled);
                settled.as_mut().enable();
                if lock(&shared.book).pending.is_empty()
                    || !shared.block_thread_alive.load(Ordering::Acquire)
                {
                    break;
                }
                settled.await;
            }
            // 3. The block thread stops.
            let _ = inner.stop_tx.try_send(());
            let handle = lock(&inner.block_thread).take();
            if let Some(h) = handle {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
        }
        .boxed()
    }
}
