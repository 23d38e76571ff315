//! [`ConsensusLedger`]: the engine pipeline in front of a malachite
//! validator ([`step_consensus::Node`]). Proofs are final when a block that
//! holds them is decided by 2f+1 validators and executed.
//!
//! ```text
//! submit(body) ─► Pipeline (stateless workers → stateful pre-check) ─► verdict ─► Submission
//!                        │ pre-validated batches
//!                        ▼
//!     forwarder thread: WireBatch ─► Node::submitter (bounded: back-pressure
//!                                    reaches the pipeline, then OVERLOADED)
//!                        ▼
//!     malachite: proposal ─► peers re-verify ─► prevote/precommit ─► decided
//!                        ▼
//!     decision task: NodeEvent::Decided ─► per-proof results ─► finality
//!                    waiters, the proof index, `/events`
//! ```
//!
//! The pipeline's stateful stage is a *pre-check* against what this node has
//! accepted itself: a replay sent twice to this node is refused at once. The
//! authoritative checks run at execution, in block order, on every validator
//! alike; a proof that passed here but lost there (the same nonce reached
//! another validator first) ends as [`FinalityError::Execution`].
//!
//! Queries read the executed state ([`step_consensus::SharedState`]) under a
//! read lock. `GET /proof/{id}` is answered from an in-memory index of the
//! last `consensus.proof_index_max` finalized proofs, built from decisions
//! since this process started (not from the store).

use super::intake::{lock, Finality, Intake};
use super::{
    AccountView, Final, FinalityError, FinalizedBlock, Ledger, ProofId, ProofRecord, ProofStatus,
    QueueView, StatusView, Submission, TriangleView,
};
use crate::config::Config;
use crate::metrics::Metrics;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use step_consensus::{Decision, Node, NodeEvent, NodeSettings, SharedState, WireBatch};
use step_engine::pipeline::{Clock, Pipeline, PipelineConfig};
use step_engine::{Address, Limits, ProofState, Reject, TriangleId};
use tokio::sync::{broadcast, Notify};

/// Why the consensus ledger did not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusLedgerError {
    #[error("consensus node: {0}")]
    Node(#[from] step_consensus::NodeError),
    #[error("cannot start the batch forwarder thread: {0}")]
    Thread(std::io::Error),
}

/// The pipeline's stateful pre-check state: what this node accepted itself
/// (not yet final), plus the executed chain state. So a replay of a final
/// proof is refused at once on every validator, not only on the one that
/// accepted the original.
#[derive(Debug)]
pub struct PrecheckState {
    local: step_engine::MemoryState,
    chain: SharedState,
}

impl ProofState for PrecheckState {
    fn last_proof(&self, account: &Address) -> Option<step_engine::heuristics::LastProof> {
        let chain = self.chain.read().last_proof(account);
        match (self.local.last_proof(account), chain) {
            (Some(a), Some(b)) => Some(if a.unix_ms >= b.unix_ms { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    fn nonce_used(&self, account: &Address, nonce: &step_engine::proof::Nonce) -> bool {
        self.local.nonce_used(account, nonce) || self.chain.read().nonce_used(account, nonce)
    }

    fn record(
        &mut self,
        account: Address,
        nonce: step_engine::proof::Nonce,
        last: step_engine::heuristics::LastProof,
    ) {
        self.local.record(account, nonce, last);
    }
}

/// Finalized proofs by id, the oldest forgotten first.
#[derive(Debug, Default)]
struct ProofIndex {
    by_id: HashMap<ProofId, ProofRecord>,
    order: VecDeque<ProofId>,
    max: usize,
}

impl ProofIndex {
    fn insert(&mut self, rec: ProofRecord) {
        if self.max == 0 {
            return;
        }
        if self.by_id.insert(rec.id, rec.clone()).is_none() {
            self.order.push_back(rec.id);
        }
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// The last decision this node executed.
#[derive(Debug, Default, Clone, Copy)]
struct Last {
    height: u64,
    round: i64,
    root: [u8; 32],
}

/// Lock order: `finality` before `index`.
#[derive(Debug)]
struct Shared {
    intake: Intake,
    finality: Mutex<Finality>,
    index: Mutex<ProofIndex>,
    last: Mutex<Last>,
    /// Signalled after every executed decision.
    settled: Notify,
    events: broadcast::Sender<Arc<FinalizedBlock>>,
    metrics: Arc<Metrics>,
    clock: Clock,
    /// False once the node reported a fatal error or stopped.
    alive: AtomicBool,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ConsensusLedger {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    pipeline: Arc<Pipeline<PrecheckState>>,
    limits: Limits,
    validators: usize,
    state: SharedState,
    node: Mutex<Option<Node>>,
    forwarder: Mutex<Option<std::thread::JoinHandle<()>>>,
    decisions: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsensusLedger")
            .field("validators", &self.validators)
            .finish_non_exhaustive()
    }
}

impl ConsensusLedger {
    /// Starts the consensus node with `settings`, then the pipeline in front
    /// of it. Must be called inside a tokio runtime.
    pub async fn start(
        config: &Config,
        settings: NodeSettings,
        pc: PipelineConfig,
        metrics: Arc<Metrics>,
    ) -> Result<ConsensusLedger, ConsensusLedgerError> {
        let validators = settings.validators.validators().len();
        let node = Node::start(settings).await?;
        let state = node.state();
        {
            let s = state.read();
            metrics
                .height
                .set(i64::try_from(s.height).unwrap_or(i64::MAX));
        }
        let limits = pc.verifier.limits;
        let (events, _) = broadcast::channel(config.http.events_buffer.max(1));
        let shared = Arc::new(Shared {
            intake: Intake::default(),
            finality: Mutex::new(Finality::default()),
            index: Mutex::new(ProofIndex {
                max: config.consensus.proof_index_max,
                ..ProofIndex::default()
            }),
            last: Mutex::new({
                let s = state.read();
                Last {
                    height: s.height,
                    round: 0,
                    root: s.root,
                }
            }),
            settled: Notify::new(),
            events,
            metrics,
            clock: pc.clock.clone(),
            alive: AtomicBool::new(true),
        });
        let sink = Arc::clone(&shared);
        let shards = (0..pc.shards.max(1))
            .map(|_| PrecheckState {
                local: step_engine::MemoryState::new(),
                chain: state.clone(),
            })
            .collect();
        let pipeline = Arc::new(Pipeline::new(pc, shards, move |v| {
            sink.intake.deliver(v, &sink.finality);
        }));
        shared
            .metrics
            .queue_capacity
            .set(i64::try_from(pipeline.capacity()).unwrap_or(i64::MAX));

        let decisions = tokio::spawn(decision_loop(Arc::clone(&shared), node.subscribe()));
        let submit = node.submitter();
        let fwd_pipeline = Arc::clone(&pipeline);
        let fwd_shared = Arc::clone(&shared);
        let forwarder = std::thread::Builder::new()
            .name("step-batch-forwarder".into())
            .spawn(move || forward(&fwd_pipeline, &fwd_shared, &submit))
            .map_err(ConsensusLedgerError::Thread)?;
        Ok(ConsensusLedger {
            inner: Arc::new(Inner {
                shared,
                pipeline,
                limits,
                validators,
                state,
                node: Mutex::new(Some(node)),
                forwarder: Mutex::new(Some(forwarder)),
                decisions: Mutex::new(Some(decisions)),
            }),
        })
    }

    /// Where consensus stands (None after `close`).
    pub fn live(&self) -> Option<step_consensus::LiveStatus> {
        lock(&self.inner.node).as_ref().map(Node::live)
    }
}

/// Moves the pipeline's batches into the node's proposal queue. Blocks
/// while the node's queue is full, which stalls the pipeline's batch queue
/// and, behind it, makes `submit` answer OVERLOADED.
fn forward(
    pipeline: &Pipeline<PrecheckState>,
    shared: &Shared,
    submit: &tokio::sync::mpsc::Sender<WireBatch>,
) {
    let batches = pipeline.batches().clone();
    while let Ok(batch) = batches.recv() {
        shared.metrics.batch_proofs.observe(batch.len() as f64);
        match WireBatch::from_batch(&batch) {
            Ok(wire) => {
                if submit.blocking_send(wire).is_err() {
                    tracing::warn!("consensus node stopped; batch forwarder ends");
                    break;
                }
            }
            // The pipeline's batches are always well formed; if one is
            // not, its proofs stay pending and their waiters time out.
            Err(e) => tracing::error!(error = %e, "pipeline batch cannot be encoded; dropped"),
        }
        pipeline.recycle(batch);
    }
}

async fn decision_loop(shared: Arc<Shared>, mut rx: broadcast::Receiver<NodeEvent>) {
    loop {
        match rx.recv().await {
            Ok(NodeEvent::Decided(d)) => apply_decision(&shared, &d),
            Ok(NodeEvent::Evidence(e)) => {
                tracing::warn!(height = e.height, "misbehaviour evidence recorded: {e:?}");
            }
            Ok(NodeEvent::Fatal(msg)) => {
                tracing::error!("consensus stopped: {msg}");
                break;
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                // Proofs of the missed decisions are final, but their waiters
                // here time out (the client gets 202 and can poll).
                tracing::warn!(missed = n, "decision stream lagged");
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    shared.alive.store(false, Ordering::Release);
    lock(&shared.finality).close();
    shared.settled.notify_waiters();
}

fn apply_decision(shared: &Shared, d: &Decision) {
    let time_ms = shared.clock.now_ms();
    let m = &shared.metrics;
    let mut proof_ids = Vec::with_capacity(usize::try_from(d.accepted).unwrap_or(0));
    let mut rejected = Vec::new();
    {
        let mut finality = lock(&shared.finality);
        let mut index = lock(&shared.index);
        let proofs = d.batches.iter().flat_map(|b| b.proofs.iter());
        for (p, r) in proofs.zip(d.results.iter()) {
            let Some(id) = ProofId::of_proof(p) else {
                continue;
            };
            let result = match r {
                Ok(e) => Ok(Final {
                    id,
                    account: p.account,
                    triangle: p.triangle,
                    reward_micro: e.reward_micro,
                    balance_micro: e.balance_micro,
                    clicks: u32::from(e.clicks),
                    height: d.height,
                    time_ms,
                }),
                Err(code) => {
                    rejected.push((id, code.as_str()));
                    Err(FinalityError::Execution(*code))
                }
            };
            if let Ok(f) = &result {
                proof_ids.push(id);
                index.insert(ProofRecord {
                    id,
                    proof: *p,
                    reward_micro: f.reward_micro,
                    status: ProofStatus::Final(*f),
                });
            }
            if let Some(entry) = finality.resolve(id, &result) {
                if result.is_ok() {
                    m.finality_seconds
                        .observe(entry.submitted.elapsed().as_secs_f64());
                }
            }
        }
    }
    *lock(&shared.last) = Last {
        height: d.height,
        round: d.round,
        root: d.root,
    };
    m.block_proofs.observe(d.proofs as f64);
    m.finalized.inc_by(proof_ids.len() as u64);
    m.height.set(i64::try_from(d.height).unwrap_or(i64::MAX));
    tracing::debug!(
        height = d.height,
        round = d.round,
        proofs = d.proofs,
        accepted = d.accepted,
        "block executed"
    );
    let _ = shared.events.send(Arc::new(FinalizedBlock {
        height: d.height,
        time_ms,
        state_root: d.root,
        batches: d.batch_digests.clone(),
        proof_ids,
        rejected,
    }));
    shared.settled.notify_waiters();
}

impl Ledger for ConsensusLedger {
    fn limits(&self) -> Limits {
        self.inner.limits
    }

    fn submit(&self, body: &[u8]) -> Result<Submission, Reject> {
        if !self.inner.shared.alive.load(Ordering::Acquire) {
            return Err(Reject::Overloaded);
        }
        self.inner.shared.intake.submit(&self.inner.pipeline, body)
    }

    fn wait_final(&self, id: ProofId) -> BoxFuture<'static, Result<Final, FinalityError>> {
        let mut finality = lock(&self.inner.shared.finality);
        if let Some(rec) = lock(&self.inner.shared.index).by_id.get(&id) {
            if let ProofStatus::Final(f) = rec.status {
                return futures_util::future::ready(Ok(f)).boxed();
            }
        }
        finality.wait(id)
    }

    fn proof(&self, id: &ProofId) -> Option<ProofRecord> {
        let finality = lock(&self.inner.shared.finality);
        if let Some(rec) = lock(&self.inner.shared.index).by_id.get(id) {
            return Some(rec.clone());
        }
        finality.pending_record(id)
    }

    fn account(&self, address: &Address) -> AccountView {
        let s = self.inner.state.read();
        AccountView {
            address: *address,
            balance_micro: s.balances.get(address).copied().unwrap_or(0),
            proofs: s.proof_counts.get(address).copied().unwrap_or(0),
            last_proof_ms: s.last.get(address).map(|l| l.unix_ms),
        }
    }

    fn triangle(&self, id: &TriangleId) -> TriangleView {
        let s = self.inner.state.read();
        TriangleView {
            id: *id,
            clicks: s.triangles.get(id).map_or(0, |t| u32::from(t.clicks)),
            // Execution keeps no click times (block times are not agreed on).
            last_click_ms: None,
        }
    }

    fn status(&self) -> StatusView {
        let last = *lock(&self.inner.shared.last);
        let live = self.live().unwrap_or_default();
        let stats = self.inner.pipeline.stats();
        StatusView {
            backend: "consensus",
            height: last.height,
            round: last.round,
            state_root: last.root,
            validators: self.inner.validators,
            peers: live.peers,
            ready: !self.inner.shared.intake.is_closing()
                && self.inner.shared.alive.load(Ordering::Acquire),
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

    /// Stops taking proofs, waits (up to [`CLOSE_FINALITY_WAIT`]) until every
    /// proof this node accepted is executed, then stops the node.
    fn close(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        async move {
            let shared = &inner.shared;
            shared.intake.drain().await;
            let pipeline = Arc::clone(&inner.pipeline);
            let _ = tokio::task::spawn_blocking(move || pipeline.flush()).await;
            let settle = async {
                loop {
                    let settled = shared.settled.notified();
                    tokio::pin!(settled);
                    settled.as_mut().enable();
                    if lock(&shared.finality).pending.is_empty()
                        || !shared.alive.load(Ordering::Acquire)
                    {
                        break;
                    }
                    settled.await;
                }
            };
            if tokio::time::timeout(CLOSE_FINALITY_WAIT, settle)
                .await
                .is_err()
            {
                let n = lock(&shared.finality).pending.len();
                tracing::warn!(
                    pending = n,
                    "stopping with accepted proofs not yet decided; peers may still decide them"
                );
            }
            let node = lock(&inner.node).take();
            if let Some(node) = node {
                node.stop().await;
            }
            let d = lock(&inner.decisions).take();
            if let Some(d) = d {
                let _ = d.await;
            }
            let f = lock(&inner.forwarder).take();
            if let Some(f) = f {
                // The forwarder ends when the pipeline's batch channel closes
                // or the node's queue is gone; don't block shutdown on it.
                if f.is_finished() {
                    let _ = f.join();
                }
            }
            shared.alive.store(false, Ordering::Release);
            lock(&shared.finality).close();
        }
        .boxed()
    }
}

/// How long `close` waits for accepted proofs to be decided.
pub const CLOSE_FINALITY_WAIT: Duration = Duration::from_secs(15);
