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
//!                    waiters, the proof index, the pre-check's decided
//!                    part, the intake log, `/events`; after a lag, the
//!                    missed heights from execution's result journal and the
//!                    store (`decisions.rs`, `recovery.rs`)
//! ```
//!
//! With `intake.log` (the default) every accepted proof is in the intake
//! log ([`crate::intake_log`]) before its submitter hears 202, and the log's
//! proofs are queued again at start, before the node serves.
//!
//! The pipeline's stateful stage is a *pre-check* ([`PrecheckState`])
//! against what this node has accepted itself and the latest decided
//! proofs, which the decision task keeps for it (it never waits on
//! execution): a replay sent twice to this node is refused at once. The
//! authoritative checks run at execution, in block order, on every validator
//! alike; a proof that passed here but lost there (the same nonce reached
//! another validator first) ends as [`FinalityError::Rejected`].
//!
//! Queries read the executed state ([`step_consensus::SharedState`]) under a
//! read lock: its rows come through byte-bounded caches from the store.
//! `GET /proof/{id}` is answered from the store, which keeps every
//! finalized proof with its block (after a restart too), behind an optional
//! in-memory index of the last `consensus.proof_index_max` (default 0).

use super::decisions::{decision_loop, forward, Last, ProofIndex, Shared};
use super::exec::{account_view, stored_record, triangle_view};
use super::intake::{self, lock, Finality, Intake};
use super::precheck::{PrecheckShards, PrecheckState};
use super::ready::{readiness, NotReady, Observed};
use super::recovery::{replay_log, DecidedSource};
use super::{
    AccountView, Final, FinalityError, FinalizedBlock, Ledger, LedgerReadError, ProofId,
    ProofRecord, StatusView, Submission, TriangleView,
};
use crate::config::{Config, HealthConfig};
use crate::intake_log::{IntakeLog, IntakeLogError, LogSettings};
use crate::metrics::Metrics;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use step_consensus::{Node, NodeSettings, SharedState};
use step_engine::pipeline::{Pipeline, PipelineConfig};
use step_engine::{Address, Limits, Proof, Reject, TriangleId};
use tokio::sync::{broadcast, Notify};

/// Why the consensus ledger did not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusLedgerError {
    #[error("consensus node: {source}")]
    Node {
        #[from]
        source: step_consensus::ConsensusNodeError,
    },
    #[error("cannot start the batch forwarder thread: {source}")]
    Thread { source: std::io::Error },
    #[error("{source}")]
    IntakeLog {
        #[from]
        source: IntakeLogError,
    },
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
    health: HealthConfig,
    state: SharedState,
    /// Finalized proofs on disk (`GET /proof/{id}`, after a restart too).
    reader: step_consensus::store::StoreReader,
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
        // The log first: a corrupt one stops the start before consensus runs.
        let (intake, replay) = if config.intake.log {
            let ls = LogSettings {
                dir: settings.home.join("intake"),
                max_records: config.intake.max_records,
                group_commit: Duration::from_millis(config.intake.group_commit_ms),
                segment_bytes: config.intake.segment_mb.saturating_mul(1 << 20),
            };
            let (log, replay) = IntakeLog::open(&ls, intake::log_complete)?;
            (Intake::with_log(Arc::new(log)), replay.proofs)
        } else {
            (Intake::default(), Vec::new())
        };
        let node = Node::start(settings).await?;
        let state = node.state();
        let reader = node
            .decided_reader()
            .proofs()
            .ok_or(step_consensus::ConsensusNodeError::Stopped)?;
        {
            let s = state.read();
            metrics
                .height
                .set(i64::try_from(s.height).unwrap_or(i64::MAX));
        }
        let limits = pc.verifier.limits;
        let (events, _) = broadcast::channel(config.http.events_buffer.max(1));
        let shared = Arc::new(Shared {
            intake,
            precheck: PrecheckShards::new(pc.shards),
            finality: Mutex::new(Finality::default()),
            index: Mutex::new(ProofIndex::new(config.consensus.proof_index_max)),
            last: Mutex::new({
                let s = state.read();
                Last {
                    height: s.height,
                    round: 0,
                    root: s.root,
                    at: std::time::Instant::now(),
                }
            }),
            settled: Notify::new(),
            events,
            metrics,
            clock: pc.clock.clone(),
            alive: AtomicBool::new(true),
            evidence: Mutex::default(),
        });
        let sink = Arc::clone(&shared);
        let shards = shared.precheck.states();
        let pipeline = Arc::new(Pipeline::new(pc, shards, move |v| {
            sink.intake.deliver(v, &sink.finality);
        }));
        shared
            .metrics
            .queue_capacity
            .set(i64::try_from(pipeline.capacity()).unwrap_or(i64::MAX));

        let store: Arc<dyn DecidedSource> = Arc::new(node.decided_reader());
        let decisions = tokio::spawn(decision_loop(
            Arc::clone(&shared),
            node.subscribe(),
            state.clone(),
            Arc::clone(&store),
        ));
        let submit = node.submitter();
        let fwd_pipeline = Arc::clone(&pipeline);
        let fwd_shared = Arc::clone(&shared);
        let forwarder = std::thread::Builder::new()
            .name("step-batch-forwarder".into())
            .spawn(move || forward(&fwd_pipeline, &fwd_shared, &submit))
            .map_err(|source| ConsensusLedgerError::Thread { source })?;
        if !replay.is_empty() {
            let n = replay.len();
            let r = replay_log(&shared, &pipeline, &state, &*store, replay).await;
            tracing::info!(
                logged = n,
                queued = r.queued,
                already_decided = r.decided,
                refused = r.refused,
                "intake log replayed"
            );
        }
        Ok(ConsensusLedger {
            inner: Arc::new(Inner {
                shared,
                pipeline,
                limits,
                validators,
                health: config.health.clone(),
                state,
                reader,
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

impl Ledger for ConsensusLedger {
    fn limits(&self) -> Limits {
        self.inner.limits
    }

    fn submit(&self, proof: &Proof) -> Result<Submission, Reject> {
        if !self.inner.shared.alive.load(Ordering::Acquire) {
            return Err(Reject::Overloaded);
        }
        self.inner.shared.intake.submit(&self.inner.pipeline, proof)
    }

    fn wait_final(&self, id: ProofId) -> BoxFuture<'static, Result<Final, FinalityError>> {
        intake::wait_final(&self.inner.shared.finality, id, |id| {
            self.inner.executed(id)
        })
    }

    fn proof(&self, id: &ProofId) -> Result<Option<ProofRecord>, LedgerReadError> {
        intake::proof_record(&self.inner.shared.finality, id, |id| {
            self.inner.executed(id)
        })
    }

    fn account(&self, address: &Address) -> Result<AccountView, LedgerReadError> {
        account_view(&self.inner.state.read(), address)
    }

    fn triangle(&self, id: &TriangleId) -> Result<TriangleView, LedgerReadError> {
        triangle_view(&self.inner.state.read(), id)
    }

    fn status(&self) -> StatusView {
        let last = *lock(&self.inner.shared.last);
        let live = self.live().unwrap_or_default();
        StatusView {
            backend: "consensus",
            height: last.height,
            round: last.round,
            state_root: last.root,
            validators: self.inner.validators,
            peers: live.peers,
            ready: self.readiness().is_ok(),
            queue: intake::queue_view(&self.inner.pipeline),
            precheck_pending: self.inner.shared.precheck.pending(),
            gossip_batches: live.gossip_batches,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<FinalizedBlock>> {
        self.inner.shared.events.subscribe()
    }

    fn evidence(&self) -> Vec<super::EvidenceView> {
        lock(&self.inner.shared.evidence).iter().cloned().collect()
    }

    fn readiness(&self) -> Result<(), NotReady> {
        let shared = &self.inner.shared;
        let h = &self.inner.health;
        let peer_window = Duration::from_millis(h.ready_peer_window_ms);
        let peers_heard = if h.ready_peer_window_ms == 0 {
            None
        } else {
            lock(&self.inner.node)
                .as_ref()
                .map(|n| n.peers_heard_within(peer_window))
        };
        readiness(&Observed {
            closing: shared.intake.is_closing(),
            running: shared.alive.load(Ordering::Acquire),
            log_failed: shared.intake.log().is_some_and(|l| l.failed()),
            validators: self.inner.validators,
            peers_heard: peers_heard
                .or(Some(0))
                .filter(|_| h.ready_peer_window_ms > 0),
            peer_window,
            height_age: lock(&shared.last).at.elapsed(),
            height_age_max: (h.ready_height_age_ms_max > 0)
                .then(|| Duration::from_millis(h.ready_height_age_ms_max)),
        })
    }

    /// Stops taking proofs, waits (up to [`CLOSE_FINALITY_WAIT`]) until every
    /// proof this node accepted is executed, then stops the node.
    fn close(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        async move {
            let shared = &inner.shared;
            shared.intake.drain_and_flush(&inner.pipeline).await;
            let settle = intake::settle(&shared.finality, &shared.settled, &shared.alive);
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
            if let Some(log) = shared.intake.log() {
                log.close();
            }
        }
        .boxed()
    }
}

impl Inner {
    /// The record of an executed proof: from the in-memory index of the
    /// latest ones, else from the store.
    fn executed(&self, id: &ProofId) -> Result<Option<ProofRecord>, LedgerReadError> {
        if let Some(rec) = lock(&self.shared.index).by_id.get(id) {
            return Ok(Some(rec.clone()));
        }
        let stored = self.reader.proof(&id.0).map_err(|e| LedgerReadError {
            what: "a finalized proof",
            reason: e.to_string(),
        })?;
        stored
            .map(|(p, time_ms)| stored_record(&p, time_ms))
            .transpose()
    }
}

/// How long `close` waits for accepted proofs to be decided.
pub const CLOSE_FINALITY_WAIT: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{generate_key, public_key, Genesis, GenesisValidator};
    use step_engine::signing;

    /// A one-validator chain in process (a quorum of one), on loopback.
    async fn single_validator(home: &std::path::Path) -> ConsensusLedger {
        single_validator_with(home, generate_key().expect("key")).await
    }

    /// The same, with `key` (a restart keeps its validator's key).
    async fn single_validator_with(
        home: &std::path::Path,
        key: step_consensus::PrivateKey,
    ) -> ConsensusLedger {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let p2p = format!("/ip4/127.0.0.1/tcp/{port}");
        let genesis = Genesis {
            chain_id: "precheck-test".into(),
            initial_state: String::new(),
            initial_state_root: String::new(),
            validators: vec![GenesisValidator::new("v0", &public_key(&key), 1, &p2p, "")],
            params: Default::default(),
            registry: None,
        };
        let validators = genesis
            .validator_set(&home.join("genesis.toml"))
            .expect("validator set");
        let mut config = Config::default();
        config.pipeline.workers = 1;
        let clock = super::super::local::system_clock();
        let pc = super::super::local::pipeline_config(&config, clock);
        let settings = NodeSettings::new(
            "v0".into(),
            home.to_path_buf(),
            p2p,
            Vec::new(),
            key,
            validators,
            crate::validator::app_config(
                &config,
                pc.verifier,
                genesis.chain(&home.join("genesis.toml")).expect("chain"),
            ),
        );
        ConsensusLedger::start(&config, settings, pc, Arc::new(Metrics::new()))
            .await
            .expect("consensus ledger starts")
    }

    /// A proof finalized before a restart is answered by `GET /proof/{id}`
    /// from the store after it (before ADR 0013 the index was in memory and
    /// lost), and `lastClickAt` is its timestamp (before: null under
    /// consensus).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proof_finalized_before_a_restart_is_read_from_the_store() {
        let home = std::env::temp_dir().join(format!(
            "step-restart-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&home).expect("home");
        let key = generate_key().expect("key");
        let t = TriangleId::parse("STEP-TRI-v1:M1-00000000000000000000-Z27").expect("id");
        let ms = super::super::local::system_clock().now_ms() - 5_000;
        let body = signing::signed_body(
            &signing::key("restart", 1),
            &t,
            signing::point_in(&t),
            10.0,
            ms,
            "restart-1",
        );
        let ledger = single_validator_with(&home, key.clone()).await;
        let pending = ledger
            .submit_body(&body)
            .expect("queued")
            .verdict()
            .await
            .expect("accepted");
        let fin = tokio::time::timeout(Duration::from_secs(60), ledger.wait_final(pending.id))
            .await
            .expect("final within 60 s")
            .expect("executed");
        ledger.close().await;
        drop(ledger);
        let ledger = single_validator_with(&home, key).await;
        let rec = ledger
            .proof(&pending.id)
            .expect("read")
            .expect("known after the restart");
        let super::super::ProofStatus::Final(f) = rec.status else {
            panic!("not final: {rec:?}");
        };
        assert_eq!(
            (f.height, f.balance_micro, f.clicks),
            (fin.height, fin.balance_micro, fin.clicks)
        );
        assert_eq!(rec.proof.nonce.as_str(), "restart-1");
        let tri = ledger.triangle(&t).expect("read");
        assert_eq!((tri.clicks, tri.last_click_ms), (1, Some(ms)));
        let acc = ledger.account(&rec.proof.account).expect("read");
        assert_eq!((acc.balance_micro, acc.proofs), (fin.balance_micro, 1));
        ledger.close().await;
        let _ = std::fs::remove_dir_all(&home);
    }

    /// The pre-check's local state holds a proof only until its block is
    /// decided: after 60 final proofs it is empty again, and the chain still
    /// refuses a replay. Before the decision task forgot decided proofs, it
    /// kept every one (the 10-minute soak grew by ~1.5 KiB per proof).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn decided_proofs_leave_the_precheck_state() {
        let home = std::env::temp_dir().join(format!(
            "step-precheck-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&home).expect("home");
        let ledger = single_validator(&home).await;
        let root = TriangleId::parse("STEP-TRI-v1:M1-00000000000000000000-Z27").expect("id");
        let now = super::super::local::system_clock().now_ms();
        let mut bodies = Vec::new();
        for round in 0..3i64 {
            for a in 0..20u64 {
                // A triangle of its own for each proof (a triangle takes only
                // so many proofs before execution says TRIANGLE_SUBDIVIDED):
                // an area per account, then 12 levels down (tens of metres),
                // a sibling per round, so the account travels only metres.
                let area = (0..4).fold(root, |t, level| {
                    t.child(((a >> (2 * level)) & 3) as u8).expect("child")
                });
                let t = (0..12)
                    .fold(area, |t, _| t.child(3).expect("child"))
                    .child(round as u8)
                    .expect("child");
                let key = signing::key("precheck", a);
                let ms = now - 60_000 + round * 11_000;
                let nonce = format!("n-{a}-{round}");
                bodies.push(signing::signed_body(
                    &key,
                    &t,
                    signing::point_in(&t),
                    10.0,
                    ms,
                    &nonce,
                ));
            }
        }
        let mut ids = Vec::new();
        for body in &bodies {
            let pending = ledger
                .submit_body(body)
                .expect("queued")
                .verdict()
                .await
                .expect("accepted by the pre-check");
            ids.push(pending.id);
        }
        let pending_before = ledger.inner.shared.precheck.pending();
        assert!(pending_before > 0, "the pre-check records what it accepts");
        for id in ids {
            tokio::time::timeout(Duration::from_secs(60), ledger.wait_final(id))
                .await
                .expect("final within 60 s")
                .expect("executed");
        }
        // Forgetting happens right after the waiters are resolved.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let p = &ledger.inner.shared.precheck;
            let left = (p.pending(), p.pending_accounts());
            if left == (0, 0) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pre-check still holds {} nonces of {} accounts",
                left.0,
                left.1
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let metrics = &ledger.inner.shared.metrics;
        metrics.observe_status(&ledger.status());
        let text = metrics.encode();
        assert!(text.contains("step_precheck_pending 0"), "{text}");
        let replay = ledger
            .submit_body(&bodies[7])
            .expect("queued")
            .verdict()
            .await;
        assert_eq!(replay.map(|_| ()), Err(Reject::NonceReplay));
        ledger.close().await;
        let _ = std::fs::remove_dir_all(&home);
    }
}
