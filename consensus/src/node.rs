//! One validator: malachite's engine plus the STEP app, started and stopped
//! as a unit. This is the I/O edge of the crate (sockets, files, tasks).

use std::path::PathBuf;

use malachitebft_app_channel::app::config::{ConsensusConfig, NodeConfig, ValueSyncConfig};
use malachitebft_app_channel::app::engine::util::events::Event;
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::{
    ConsensusContext, EngineHandle, NetworkContext, NetworkIdentity, RequestContext, Signer,
    SyncContext, WalContext,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::app::{App, NodeEvent, SharedState};
use crate::block::WireBatch;
use crate::codec::BorshCodec;
use crate::config::AppConfig;
use crate::context::{PrivateKey, StepContext, ValidatorAddress, ValidatorSet};
use crate::error::ConsensusNodeError;
use crate::execution::ChainState;
use crate::p2p_key::P2pKey;
use crate::signing::{StepSigner, StepVerifier};
use crate::store::RedbStore;

/// Batches a node's input queue holds before `submit_batch` waits.
pub const SUBMIT_QUEUE: usize = 1_024;
/// Largest proposal part or vote on the gossip network.
pub const PUBSUB_MAX_BYTES: usize = 4 << 20;
/// Largest sync request or response.
pub const RPC_MAX_BYTES: usize = 64 << 20;

/// How to run one validator.
#[derive(Clone)]
pub struct NodeSettings {
    pub moniker: String,
    /// Holds `wal/consensus.wal` and `store.redb`. Keep it stable across
    /// restarts: the WAL is what stops a restarted validator from signing a
    /// second, different vote.
    pub home: PathBuf,
    /// libp2p listen address, e.g. `/ip4/127.0.0.1/tcp/27000`.
    pub listen: String,
    pub peers: Vec<String>,
    pub key: PrivateKey,
    /// The libp2p identity, separate from `key` ([`P2pKey`]).
    pub p2p_key: P2pKey,
    pub validators: ValidatorSet,
    pub app: AppConfig,
    /// The chain's state at height 0 (`ChainState::from_initial`); `None`: empty.
    pub initial: Option<std::sync::Arc<ChainState>>,
    /// Test hook: run malachite's byzantine network proxy (`byzantine` feature).
    #[cfg(feature = "byzantine")]
    pub byzantine: Option<malachitebft_engine_byzantine::ByzantineConfig>,
    /// Test hook: queue a forged batch of this kind every second, as if the
    /// pipeline had accepted it (`byzantine` feature).
    #[cfg(feature = "byzantine")]
    pub forge_batches: Option<crate::byzantine::BatchFault>,
}

impl std::fmt::Debug for NodeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSettings")
            .field("moniker", &self.moniker)
            .field("home", &self.home)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl NodeSettings {
    /// Settings for an honest validator. Its P2P key is derived from the
    /// consensus key (what in-process clusters use); `step node` sets its
    /// own with [`NodeSettings::with_p2p_key`].
    pub fn new(
        moniker: String,
        home: PathBuf,
        listen: String,
        peers: Vec<String>,
        key: PrivateKey,
        validators: ValidatorSet,
        app: AppConfig,
    ) -> NodeSettings {
        NodeSettings {
            moniker,
            home,
            listen,
            peers,
            p2p_key: P2pKey::derived_from(&key),
            key,
            validators,
            app,
            initial: None,
            #[cfg(feature = "byzantine")]
            byzantine: None,
            #[cfg(feature = "byzantine")]
            forge_batches: None,
        }
    }

    /// These settings with `key` as the libp2p identity.
    pub fn with_p2p_key(mut self, key: P2pKey) -> NodeSettings {
        self.p2p_key = key;
        self
    }

    pub fn wal_path(&self) -> PathBuf {
        self.home.join("wal").join("consensus.wal")
    }
    pub fn store_path(&self) -> PathBuf {
        self.home.join("store.redb")
    }
}

#[derive(Clone, Debug)]
struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// How recently a validator must have been heard from to count as a peer.
pub const PEER_SEEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Where consensus stands, from the engine's events.
#[derive(Debug, Default)]
struct LiveInner {
    height: u64,
    round: i64,
    heard: std::collections::HashMap<ValidatorAddress, std::time::Instant>,
}

/// A snapshot of [`Node::live`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveStatus {
    /// The height consensus is working on.
    pub height: u64,
    pub round: i64,
    /// Other validators whose signed votes or proposals arrived within
    /// [`PEER_SEEN_WITHIN`].
    pub peers: usize,
    /// Peers' gossiped batches verified and taken into the mempool since
    /// this node started.
    pub gossip_batches: u64,
    /// False once the app task has ended (an error or a panic, reported as
    /// [`NodeEvent::Fatal`], or a stop): the node takes no more batches.
    pub app_running: bool,
}

/// A running validator.
pub struct Node {
    pub address: ValidatorAddress,
    state: SharedState,
    live: std::sync::Arc<std::sync::Mutex<LiveInner>>,
    gossip_batches: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// False once the app task ended (error, panic or stop).
    app_running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    submit: mpsc::Sender<WireBatch>,
    events: broadcast::Sender<NodeEvent>,
    engine: EngineHandle,
    /// The supervisor of the app task.
    app: JoinHandle<()>,
    app_abort: tokio::task::AbortHandle,
    watcher: JoinHandle<()>,
    wal_path: PathBuf,
    /// The app's store, shared: `stop` closes it once the app and its
    /// blocking store calls are done with it.
    store: std::sync::Arc<std::sync::Mutex<RedbStore>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

#[path = "node_wal.rs"]
mod wal;
use wal::check_wal_patiently;
pub use wal::{check_wal, WAL_RELEASE_TIMEOUT};

fn multiaddr(s: &str) -> Result<malachitebft_app_channel::app::net::Multiaddr, ConsensusNodeError> {
    s.parse().map_err(|e| ConsensusNodeError::NetworkAddress {
        addr: s.to_owned(),
        reason: format!("{e}"),
    })
}

impl Node {
    /// Checks the WAL, opens the store, starts the engine and the app.
    pub async fn start(s: NodeSettings) -> Result<Node, ConsensusNodeError> {
        let wal_path = s.wal_path();
        let wal_dir = s.home.join("wal");
        std::fs::create_dir_all(&wal_dir).map_err(|source| ConsensusNodeError::Io {
            path: wal_dir.clone(),
            source,
        })?;
        check_wal_patiently(&wal_path).await?;
        let (path, c, sc) = (s.store_path(), s.app.store_cache_bytes, s.app.state_cache());
        let keep = s.app.retain_heights;
        let store = tokio::task::spawn_blocking(move || {
            RedbStore::open_with_cache(&path, c, sc).map(|s| s.retaining(keep))
        })
        .await
        .map_err(|e| crate::error::AppError::Task {
            what: "open store",
            reason: e.to_string(),
        })??;

        let signer = StepSigner::new(s.key.clone(), s.app.chain);
        let pk = signer.public_key();
        let address = ValidatorAddress::from_public_key(&pk);
        let mut consensus = ConsensusConfig::default();
        consensus.p2p.listen_addr = multiaddr(&s.listen)?;
        consensus.p2p.persistent_peers = s
            .peers
            .iter()
            .map(|p| multiaddr(p))
            .collect::<Result<_, _>>()?;
        consensus.p2p.pubsub_max_size = bytesize(PUBSUB_MAX_BYTES);
        consensus.p2p.rpc_max_size = bytesize(RPC_MAX_BYTES);
        let value_sync = ValueSyncConfig {
            batch_size: 1,
            max_response_size: bytesize(RPC_MAX_BYTES),
            status_update_interval: std::time::Duration::from_secs(1),
            ..ValueSyncConfig::default()
        };
        let cfg = EngineConfig {
            moniker: s.moniker.clone(),
            consensus,
            value_sync,
        };

        // The libp2p identity key is the validator's own P2P key; the
        // validator proof binds it to the consensus key (malachite ADR-006).
        let engine_err = |e: &dyn std::fmt::Display| ConsensusNodeError::EngineStart {
            reason: e.to_string(),
        };
        let keypair = s.p2p_key.keypair()?;
        let proof = signer
            .sign_validator_proof(pk.0.to_vec(), keypair.public().to_peer_id().to_bytes())
            .await
            .map_err(|e| engine_err(&e))?;
        let proof_bytes = BorshCodec.encode(&proof).map_err(|e| engine_err(&e))?;
        let identity = NetworkIdentity::new_validator(
            s.moniker.clone(),
            keypair,
            address.to_string(),
            proof_bytes,
        );
        let wal = WalContext::new(wal_path.clone(), BorshCodec);
        let consensus_ctx = ConsensusContext::new_validator(
            address,
            Box::new(StepVerifier { chain: s.app.chain }),
            Box::new(signer.clone()),
        );

        #[cfg(feature = "byzantine")]
        let started = match s.byzantine.clone() {
            Some(config) => {
                crate::byzantine::start(cfg, wal, identity, config, signer, address, consensus_ctx)
                    .await
            }
            None => plain_start(cfg, wal, identity, consensus_ctx).await,
        };
        #[cfg(not(feature = "byzantine"))]
        let started = plain_start(cfg, wal, identity, consensus_ctx).await;
        let (channels, engine) = started.map_err(|e| engine_err(&e))?;

        let (events, _) = broadcast::channel(4_096);
        let live = std::sync::Arc::new(std::sync::Mutex::new(LiveInner::default()));
        let watcher = spawn_watcher(
            channels.events.subscribe(),
            events.clone(),
            wal_path.clone(),
            engine.actor.clone(),
            std::sync::Arc::clone(&live),
            address,
        );
        let (submit, batches) = mpsc::channel(SUBMIT_QUEUE);
        #[cfg(feature = "byzantine")]
        if let Some(fault) = s.forge_batches {
            // Stops by itself when the app's queue closes.
            drop(crate::byzantine::spawn_forger(
                submit.clone(),
                fault,
                format!("forged-{}", s.moniker),
            ));
        }
        let base = s
            .initial
            .as_deref()
            .map_or_else(ChainState::default, Clone::clone);
        let (vs, ev) = (s.validators.clone(), events.clone());
        let app = App::open(s.app, s.key.clone(), vs, store, ev, base).await?;
        let state = app.shared_state();
        let gossip_batches = app.gossip_counter();
        let store = app.store_handle();
        let app_running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let inner = tokio::spawn(app.run(channels, batches));
        let app_abort = inner.abort_handle();
        let app = tokio::spawn(supervise(
            inner,
            events.clone(),
            std::sync::Arc::clone(&app_running),
        ));
        Ok(Node {
            address,
            state,
            live,
            gossip_batches,
            app_running,
            submit,
            events,
            engine,
            app,
            app_abort,
            watcher,
            wal_path,
            store,
        })
    }

    /// Queues a pre-validated batch from this validator's own pipeline for
    /// its next proposals. Waits while the queue is full.
    pub async fn submit_batch(&self, batch: WireBatch) -> Result<(), ConsensusNodeError> {
        self.submit
            .send(batch)
            .await
            .map_err(|_| ConsensusNodeError::Stopped)
    }

    /// [`Node::submit_batch`] for a batch straight from the engine pipeline.
    pub async fn submit_pipeline_batch(
        &self,
        batch: &step_engine::pipeline::Batch,
    ) -> Result<(), ConsensusNodeError> {
        self.submit_batch(WireBatch::from_batch(batch)?).await
    }

    /// A sender for [`Node::submit_batch`] usable from other threads
    /// (`blocking_send` outside the runtime).
    pub fn submitter(&self) -> mpsc::Sender<WireBatch> {
        self.submit.clone()
    }

    /// The executed state (read-only; the app writes it after each decision).
    pub fn state(&self) -> SharedState {
        self.state.clone()
    }

    /// The decided record of `height` from the store (block bytes,
    /// certificate, change set, root), read on a blocking thread: a
    /// subscriber that missed a [`NodeEvent::Decided`] recovers it here.
    pub async fn decided(
        &self,
        height: u64,
    ) -> Result<Option<crate::store::DecidedRecord>, ConsensusNodeError> {
        self.decided_reader().decided(height).await
    }

    /// A handle that reads decided records as [`Node::decided`] does, for a
    /// task that cannot borrow the node. It does not keep the store open:
    /// after [`Node::stop`] its reads fail with `Stopped`.
    pub fn decided_reader(&self) -> crate::store::DecidedReader {
        crate::store::DecidedReader::new(std::sync::Arc::downgrade(&self.store))
    }

    /// How many other validators' signed votes or proposals arrived within
    /// `window` (what [`LiveStatus::peers`] counts for [`PEER_SEEN_WITHIN`]).
    pub fn peers_heard_within(&self, window: std::time::Duration) -> usize {
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        live.heard
            .values()
            .filter(|t| now.duration_since(**t) <= window)
            .count()
    }

    /// Height and round in progress, and how many other validators were heard from lately.
    pub fn live(&self) -> LiveStatus {
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        LiveStatus {
            height: live.height,
            round: live.round,
            peers: live
                .heard
                .values()
                .filter(|t| now.duration_since(**t) <= PEER_SEEN_WITHIN)
                .count(),
            gossip_batches: self
                .gossip_batches
                .load(std::sync::atomic::Ordering::Relaxed),
            app_running: self.app_running.load(std::sync::atomic::Ordering::Acquire),
        }
    }

    /// Decisions, evidence and fatal errors from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Stops the engine (sockets closed, WAL released) and the app (store closed).
    pub async fn stop(self) {
        if let Err(e) = self.engine.actor.kill_and_wait(None).await {
            tracing::debug!(error = %e, "engine already stopped");
        }
        self.engine.handle.abort();
        let _ = self.engine.handle.await;
        self.app_abort.abort();
        if let Err(e) = self.app.await {
            tracing::warn!(error = %e, "app supervisor ended abnormally");
        }
        self.watcher.abort();
        let _ = self.watcher.await;
        // A store call in flight on a blocking thread may still hold the
        // store: wait for it, then close the store here, so that a restart
        // can open the file again.
        let start = std::time::Instant::now();
        while std::sync::Arc::strong_count(&self.store) > 1 {
            if start.elapsed() >= WAL_RELEASE_TIMEOUT {
                tracing::warn!("a store call outlived the app; the store closes after it");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(self.store);
        // The WAL actor closes its file on its own thread: wait for it.
        let _ = check_wal_patiently(&self.wal_path).await;
    }
}

/// Awaits the app task; an error or a panic becomes [`NodeEvent::Fatal`],
/// and `running` turns false whatever the end.
async fn supervise(
    app: JoinHandle<Result<(), crate::error::AppError>>,
    events: broadcast::Sender<NodeEvent>,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let fatal = match app.await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("STEP app stopped: {e}")),
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            Some(format!("STEP app panicked: {msg}"))
        }
        Err(_) => None, // cancelled by `Node::stop`
    };
    running.store(false, std::sync::atomic::Ordering::Release);
    if let Some(fatal) = fatal {
        tracing::error!("{fatal}");
        if events.send(NodeEvent::Fatal(fatal)).is_err() {
            tracing::warn!("fatal app error with no subscriber");
        }
    }
}

fn bytesize(n: usize) -> bytesize::ByteSize {
    bytesize::ByteSize::b(n as u64)
}

type Started = (
    malachitebft_app_channel::Channels<StepContext>,
    EngineHandle,
);

async fn plain_start(
    cfg: EngineConfig,
    wal: WalContext<BorshCodec>,
    identity: NetworkIdentity,
    consensus: ConsensusContext<StepContext>,
) -> Result<Started, String> {
    malachitebft_app_channel::start_engine(
        StepContext,
        cfg,
        wal,
        NetworkContext::new(identity, BorshCodec),
        consensus,
        SyncContext::new(BorshCodec),
        RequestContext::new(100),
    )
    .await
    .map_err(|e| e.to_string())
}

/// Turns the engine's safety stops into a [`NodeEvent::Fatal`] and stops
/// the engine, so that a node never hangs silently. Also keeps [`LiveInner`]:
/// the round in progress and when each other validator was last heard from.
fn spawn_watcher(
    mut rx: broadcast::Receiver<Event<StepContext>>,
    out: broadcast::Sender<NodeEvent>,
    wal_path: PathBuf,
    actor: malachitebft_app_channel::app::engine::node::NodeRef,
    live: std::sync::Arc<std::sync::Mutex<LiveInner>>,
    me: ValidatorAddress,
) -> JoinHandle<()> {
    use malachitebft_app_channel::app::types::core::{Proposal as _, Vote as _};
    use malachitebft_core_consensus::SignedConsensusMsg;
    fn lock(live: &std::sync::Mutex<LiveInner>) -> std::sync::MutexGuard<'_, LiveInner> {
        live.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    tokio::spawn(async move {
        loop {
            let fatal = match rx.recv().await {
                Ok(Event::StartedRound(height, round, _, _)) => {
                    let mut l = lock(&live);
                    l.height = height.0;
                    l.round = round.as_i64();
                    continue;
                }
                Ok(Event::Received(msg)) => {
                    let from = match &msg {
                        SignedConsensusMsg::Vote(v) => *v.message.validator_address(),
                        SignedConsensusMsg::Proposal(p) => *p.message.validator_address(),
                    };
                    if from != me {
                        lock(&live).heard.insert(from, std::time::Instant::now());
                    }
                    continue;
                }
                Ok(Event::WalCorrupted(e)) => {
                    format!("consensus WAL {} is corrupted: {e}", wal_path.display())
                }
                Ok(Event::WalReplayError(e)) => format!(
                    "consensus WAL {} cannot be replayed: {e}",
                    wal_path.display()
                ),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            tracing::error!("{fatal}");
            if out.send(NodeEvent::Fatal(fatal)).is_err() {
                tracing::warn!("engine stop with no subscriber");
            }
            actor.stop(None);
            return;
        }
    })
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
