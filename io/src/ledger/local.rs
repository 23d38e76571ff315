//! [`LocalLedger`]: the engine pipeline plus an in-process, in-order commit.
//!
//! **Single node, not Byzantine fault tolerant, in memory.** Every batch the
//! pipeline emits becomes the next block at once: no proposer, no votes, no
//! peers, no disk. It runs the HTTP API, its tests and single-process tools
//! without a validator set. Blocks execute with consensus's execution
//! ([`ChainState::apply_block`], `docs/adr/0031-one-execution.md`): the same
//! rules (triangle subdivision and the 28-click cap included), the same
//! results and the same state root as a consensus validator given the same
//! blocks. State is lost when the process stops.
//!
//! ```text
//! submit(body) ─► Pipeline (stateless workers → stateful stage) ─► verdict sink ─► Submission
//!                                                   │ batches (≤ batch_size, flush_after)
//!                                                   ▼
//!       block thread: ChainState::apply_block([batch]) as height h+1 ─► finality waiters,
//!                                                                     /events broadcast
//! ```

use super::exec::{account_view, settle_block, triangle_view, BlockResults};
use super::intake::{self, lock, Finality, Intake};
use super::{
    AccountView, Final, FinalityError, FinalizedBlock, Ledger, LedgerReadError, ProofId,
    ProofRecord, StatusView, Submission, TriangleView,
};
use crate::config::Config;
use crate::metrics::Metrics;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use step_consensus::context::{Height, ValueId};
use step_consensus::execution::ChainState;
use step_engine::pipeline::{Batch, Clock, Pipeline, PipelineConfig};
use step_engine::{Address, Limits, Proof, Reject, TriangleId, Verifier};
use tokio::sync::{broadcast, Notify};

/// The LocalLedger's chain: execution's state, plus what only the API needs
/// (every final proof by id).
#[derive(Debug)]
struct Chain {
    state: ChainState,
    limits: Limits,
    proofs: HashMap<ProofId, ProofRecord>,
}

/// What the verdict sink and the block thread share. Lock order:
/// `finality` before `chain`.
#[derive(Debug)]
struct Shared {
    intake: Intake,
    finality: Mutex<Finality>,
    chain: Mutex<Chain>,
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
        let clock = pc.clock.clone();
        let (events, _) = broadcast::channel(events_buffer.max(1));
        let shared = Arc::new(Shared {
            intake: Intake::default(),
            finality: Mutex::new(Finality::default()),
            chain: Mutex::new(Chain {
                state: ChainState::default(),
                limits,
                proofs: HashMap::new(),
            }),
            settled: Notify::new(),
            events,
            metrics,
            clock,
            block_thread_alive: AtomicBool::new(true),
        });
        let sink_shared = Arc::clone(&shared);
        let pipeline = Arc::new(Pipeline::with_memory_state(pc, move |v| {
            sink_shared.intake.deliver(v, &sink_shared.finality);
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
    let verifier = Verifier::new(config.limits.to_limits(), config.recovery_backend());
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
    Clock::system()
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
    lock(&shared.finality).close();
    shared.settled.notify_waiters();
}

fn apply_block(shared: &Shared, batch: &Batch) {
    let time_ms = shared.clock.now_ms();
    let m = &shared.metrics;
    let block = {
        let mut finality = lock(&shared.finality);
        let mut chain = lock(&shared.chain);
        let chain = &mut *chain;
        let height = chain.state.height + 1;
        // A block of one batch; its value id is the batch's digest.
        // In memory, a state read cannot fail (`ChainState::default` keeps
        // every row in memory); a failure here is a bug, not a disk error.
        let outcome = chain
            .state
            .apply_block(
                &chain.limits,
                Height(height),
                ValueId(batch.digest),
                std::slice::from_ref(batch),
            )
            .expect("in-memory state reads cannot fail");
        // Counted before any waiter is answered: a client that saw its
        // proof final then reads /metrics must see it counted.
        m.batch_proofs.observe(batch.len() as f64);
        let accepted = outcome.changes.accepted;
        m.block_proofs.observe(accepted as f64);
        m.finalized.inc_by(accepted as u64);
        m.height.set(i64::try_from(height).unwrap_or(i64::MAX));
        let results = BlockResults {
            height,
            time_ms,
            batches: std::slice::from_ref(batch),
            results: &outcome.results,
        };
        let settled = settle_block(&results, &mut finality, m, |rec| {
            chain.proofs.insert(rec.id, rec);
        });
        FinalizedBlock {
            height,
            time_ms,
            state_root: outcome.root,
            batches: vec![batch.digest],
            proof_ids: settled.proof_ids,
            rejected: settled.rejected,
        }
    };
    tracing::debug!(
        height = block.height,
        proofs = block.proof_ids.len(),
        "block finalized"
    );
    // No subscribers is not an error.
    let _ = shared.events.send(Arc::new(block));
    shared.settled.notify_waiters();
}

impl Inner {
    /// The record of an executed proof.
    fn executed(&self, id: &ProofId) -> Result<Option<ProofRecord>, LedgerReadError> {
        Ok(lock(&self.shared.chain).proofs.get(id).cloned())
    }
}

impl Ledger for LocalLedger {
    fn limits(&self) -> Limits {
        self.inner.limits
    }

    fn submit(&self, proof: &Proof) -> Result<Submission, Reject> {
        self.inner.shared.intake.submit(&self.inner.pipeline, proof)
    }

    fn proof(&self, id: &ProofId) -> Result<Option<ProofRecord>, LedgerReadError> {
        intake::proof_record(&self.inner.shared.finality, id, |id| {
            self.inner.executed(id)
        })
    }

    fn wait_final(&self, id: ProofId) -> BoxFuture<'static, Result<Final, FinalityError>> {
        intake::wait_final(&self.inner.shared.finality, id, |id| {
            self.inner.executed(id)
        })
    }

    fn account(&self, address: &Address) -> Result<AccountView, LedgerReadError> {
        account_view(&lock(&self.inner.shared.chain).state, address)
    }

    fn triangle(&self, id: &TriangleId) -> Result<TriangleView, LedgerReadError> {
        triangle_view(&lock(&self.inner.shared.chain).state, id)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<FinalizedBlock>> {
        self.inner.shared.events.subscribe()
    }

    fn status(&self) -> StatusView {
        let (height, state_root) = {
            let chain = lock(&self.inner.shared.chain);
            (chain.state.height, chain.state.root)
        };
        let closing = self.inner.shared.intake.is_closing();
        StatusView {
            backend: "local",
            height,
            round: 0,
            state_root,
            validators: 1,
            peers: 0,
            ready: !closing && self.inner.shared.block_thread_alive.load(Ordering::Acquire),
            queue: intake::queue_view(&self.inner.pipeline),
            precheck_pending: 0,
            gossip_batches: 0,
        }
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        async move {
            let shared = &inner.shared;
            // 1. Every queued body gets its verdict; 2. the partial batch is
            // emitted and every accepted proof finalized.
            shared.intake.drain_and_flush(&inner.pipeline).await;
            intake::settle(
                &shared.finality,
                &shared.settled,
                &shared.block_thread_alive,
            )
            .await;
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
