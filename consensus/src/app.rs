//! The application side of malachite's app-channel API: answers every
//! [`AppMsg`], builds blocks from the [`Mempool`], re-verifies peers'
//! batches before a value is marked valid (so before this validator
//! prevotes for it), executes decided blocks and stores them.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, HeightParams, Round, Validity, Value as _,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg, Reply};
use malachitebft_core_consensus::MisbehaviorEvidence;
use step_engine::pipeline::{reverify_batch, Batch};
use tokio::sync::{broadcast, mpsc};

use crate::block::{BlockData, WireBatch};
use crate::codec::{certificate_from_wire, certificate_to_wire};
use crate::config::AppConfig;
use crate::context::{Height, StepContext, ValidatorAddress, ValidatorSet, ValueId};
use crate::error::AppError;
use crate::evidence::EvidenceRecord;
use crate::execution::{AppState, ProofResult, StateRoot};
use crate::store::{DecidedRecord, Store, UndecidedRecord};
use crate::streaming::{split, Reassembler};

/// Batches waiting to be proposed, in arrival order, without duplicates.
#[derive(Debug, Default)]
pub struct Mempool {
    queue: VecDeque<WireBatch>,
    digests: HashSet<[u8; 32]>,
}

impl Mempool {
    /// Adds a batch; false if it is already there.
    pub fn push(&mut self, batch: WireBatch) -> bool {
        if !self.digests.insert(batch.digest) {
            return false;
        }
        self.queue.push_back(batch);
        true
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.digests.contains(digest)
    }

    /// The first `max` batches (they stay until decided).
    pub fn peek_block(&self, max: usize) -> Vec<WireBatch> {
        self.queue.iter().take(max).cloned().collect()
    }

    /// Drops batches that a decided block carried.
    pub fn remove(&mut self, decided: &HashSet<[u8; 32]>) {
        self.queue.retain(|b| !decided.contains(&b.digest));
        self.digests.retain(|d| !decided.contains(d));
    }
}

/// A decided and executed height, as the node reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub height: u64,
    pub round: i64,
    pub value_id: ValueId,
    pub root: StateRoot,
    pub batch_digests: Vec<[u8; 32]>,
    pub proofs: u64,
    pub accepted: u64,
    /// Proofs accepted over all heights so far.
    pub accepted_total: u64,
    pub at: Instant,
    /// The decided batches, in block order.
    pub batches: Arc<[Batch]>,
    /// One result per proof of `batches`, in the same order.
    pub results: Arc<[ProofResult]>,
}

/// What a running node reports.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    Decided(Decision),
    /// Misbehaviour seen while finalizing `height` (already stored).
    Evidence(EvidenceRecord),
    /// The app stopped: the node needs an operator.
    Fatal(String),
}

struct PendingGetValue {
    height: Height,
    round: Round,
    reply: Reply<LocallyProposedValue<StepContext>>,
    deadline: tokio::time::Instant,
}

/// The executed state, shared with readers (the node's HTTP queries). The
/// app holds the write lock only while it executes a decided block.
#[derive(Debug, Clone, Default)]
pub struct SharedState(Arc<RwLock<AppState>>);

impl SharedState {
    pub fn new(state: AppState) -> SharedState {
        SharedState(Arc::new(RwLock::new(state)))
    }

    /// A read view; a poisoned lock (a panicking writer) still reads the
    /// last state written.
    pub fn read(&self) -> RwLockReadGuard<'_, AppState> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, AppState> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The application state machine around one validator.
pub struct App<S: Store> {
    pub(crate) cfg: AppConfig,
    pub(crate) address: ValidatorAddress,
    pub(crate) validators: ValidatorSet,
    pub(crate) store: S,
    pub(crate) state: SharedState,
    pub(crate) mempool: Mempool,
    pub(crate) verified: HashSet<[u8; 32]>,
    pub(crate) streams: Reassembler,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pending: Option<PendingGetValue>,
    gossip: GossipState,
}

/// A peer's gossiped batch, verified off the app loop.
#[derive(Debug)]
struct GossipVerdict {
    batch: WireBatch,
    from: malachitebft_app_channel::app::types::PeerId,
    valid: bool,
}

/// Batch gossip bookkeeping (see [`App::on_gossip`]).
#[derive(Debug)]
struct GossipState {
    tx: mpsc::Sender<GossipVerdict>,
    rx: Option<mpsc::Receiver<GossipVerdict>>,
    /// Digests queued or being verified.
    verifying: HashSet<[u8; 32]>,
    /// Each publisher's batches waiting for verification, in arrival order.
    /// One batch per publisher is verified at a time, so a publisher's
    /// batches reach the mempool in the order it published them (an
    /// account's proofs then execute in submission order).
    queues: std::collections::HashMap<PeerIdOf, VecDeque<WireBatch>>,
    /// Publishers with a verification in flight.
    busy: HashSet<PeerIdOf>,
    /// Digests of recently decided batches: late gossip of one is ignored.
    decided: HashSet<[u8; 32]>,
    decided_order: VecDeque<[u8; 32]>,
    scores: PeerScores<malachitebft_app_channel::app::types::PeerId>,
    /// Peers' batches verified and taken into the mempool since start
    /// (`Node::live().gossip_batches`).
    accepted: Arc<std::sync::atomic::AtomicU64>,
}

/// Invalid gossiped batches after which a peer's gossip is ignored.
pub const GOSSIP_STRIKES: u32 = 3;
/// How long a peer's gossip is ignored after [`GOSSIP_STRIKES`].
pub const GOSSIP_MUTE: Duration = Duration::from_secs(600);
/// Peers scored at once, at most (validators number 4–50).
const SCORED_PEERS_MAX: usize = 1_024;

/// Scores peers down for invalid gossip: after [`GOSSIP_STRIKES`] invalid
/// batches, a peer's gossip is ignored for [`GOSSIP_MUTE`]. Its proposals
/// are still heard (and a bad one is still never decided).
#[derive(Debug)]
pub struct PeerScores<K> {
    peers: std::collections::HashMap<K, (u32, Option<Instant>)>,
}

impl<K> Default for PeerScores<K> {
    fn default() -> Self {
        PeerScores {
            peers: std::collections::HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> PeerScores<K> {
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

/// Gossiped batches queued or being verified, at most (one in flight per
/// publisher).
pub const GOSSIP_VERIFYING_MAX: usize = 256;

type PeerIdOf = malachitebft_app_channel::app::types::PeerId;
/// Decided batch digests remembered to ignore late gossip.
pub const DECIDED_RECENT_MAX: usize = 65_536;

impl GossipState {
    fn new() -> GossipState {
        let (tx, rx) = mpsc::channel(GOSSIP_VERIFYING_MAX);
        GossipState {
            tx,
            rx: Some(rx),
            verifying: HashSet::new(),
            queues: std::collections::HashMap::new(),
            busy: HashSet::new(),
            decided: HashSet::new(),
            decided_order: VecDeque::new(),
            scores: PeerScores::default(),
            accepted: Arc::default(),
        }
    }

    fn decided(&mut self, digests: &[[u8; 32]]) {
        for d in digests {
            if self.decided.insert(*d) {
                self.decided_order.push_back(*d);
            }
        }
        while self.decided_order.len() > DECIDED_RECENT_MAX {
            if let Some(old) = self.decided_order.pop_front() {
                self.decided.remove(&old);
            }
        }
    }
}

impl<S: Store> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("address", &self.address)
            .field("height", &self.state.read().height)
            .finish_non_exhaustive()
    }
}

/// Most digests remembered as verified before the set is cleared.
const VERIFIED_MAX: usize = 100_000;

impl<S: Store> App<S> {
    pub fn new(
        cfg: AppConfig,
        address: ValidatorAddress,
        validators: ValidatorSet,
        store: S,
        events: broadcast::Sender<NodeEvent>,
    ) -> Result<Self, AppError> {
        let state = SharedState::new(store.load_state()?);
        Ok(App {
            cfg,
            address,
            validators,
            store,
            state,
            mempool: Mempool::default(),
            verified: HashSet::new(),
            streams: Reassembler::default(),
            events,
            pending: None,
            gossip: GossipState::new(),
        })
    }

    /// Most batches the mempool holds: the node's own batches wait (and the
    /// pipeline behind them refuses with OVERLOADED) and peers' gossip is
    /// dropped beyond it (those batches still arrive in their proposals).
    fn mempool_max(&self) -> usize {
        self.cfg.max_batches_per_block.saturating_mul(8).max(64)
    }

    /// A peer gossiped `batch`: verify it off the app loop unless it is
    /// known, decided, being verified, or there is no room.
    fn on_gossip(&mut self, batch: WireBatch, from: malachitebft_app_channel::app::types::PeerId) {
        let d = batch.digest;
        if self.mempool.contains(&d)
            || self.gossip.decided.contains(&d)
            || self.gossip.verifying.contains(&d)
            || self.gossip.scores.is_muted(&from, Instant::now())
        {
            return;
        }
        if self.gossip.verifying.len() >= GOSSIP_VERIFYING_MAX
            || self.mempool.len() >= self.mempool_max()
        {
            tracing::debug!(%from, "gossiped batch dropped: no room (it will come with its proposal)");
            return;
        }
        self.gossip.verifying.insert(d);
        self.gossip.queues.entry(from).or_default().push_back(batch);
        self.verify_next(from);
    }

    /// Starts verifying `from`'s next queued batch unless one is in flight.
    fn verify_next(&mut self, from: PeerIdOf) {
        if self.gossip.busy.contains(&from) {
            return;
        }
        let Some(queue) = self.gossip.queues.get_mut(&from) else {
            return;
        };
        let Some(batch) = queue.pop_front() else {
            self.gossip.queues.remove(&from);
            return;
        };
        self.gossip.busy.insert(from);
        let verifier = self.cfg.verifier;
        let tx = self.gossip.tx.clone();
        tokio::task::spawn_blocking(move || {
            let valid = batch
                .to_batch()
                .is_ok_and(|b| reverify_batch(&verifier, &b).is_ok());
            let _ = tx.blocking_send(GossipVerdict { batch, from, valid });
        });
    }

    fn on_gossip_verdict(&mut self, v: GossipVerdict) {
        let d = v.batch.digest;
        self.gossip.verifying.remove(&d);
        self.gossip.busy.remove(&v.from);
        self.verify_next(v.from);
        if !v.valid {
            // The network layer authenticated the publisher as a validator;
            // an invalid batch from one is misbehaviour.
            tracing::warn!(from = %v.from, digest = ?d, "peer gossiped an invalid batch; dropped");
            if self.gossip.scores.strike(&v.from, Instant::now()) {
                tracing::warn!(
                    peer = %v.from,
                    strikes = GOSSIP_STRIKES,
                    mute_s = GOSSIP_MUTE.as_secs(),
                    "peer's gossip muted after repeated invalid batches"
                );
            }
            return;
        }
        if self.gossip.decided.contains(&d) {
            return;
        }
        if self.verified.len() > VERIFIED_MAX {
            self.verified.clear();
        }
        self.verified.insert(d);
        self.mempool.push(v.batch);
        self.gossip
            .accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The count of peers' gossiped batches taken into the mempool, shared.
    pub fn gossip_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.gossip.accepted)
    }

    /// The state readers share with the app.
    pub fn shared_state(&self) -> SharedState {
        self.state.clone()
    }

    fn params(&self) -> HeightParams<StepContext> {
        HeightParams::new(self.validators.clone(), self.cfg.timeouts.linear(), None)
    }

    /// Runs until the engine closes its channel or a fatal error.
    pub async fn run(
        mut self,
        mut channels: Channels<StepContext>,
        mut batches: mpsc::Receiver<WireBatch>,
    ) -> Result<(), AppError> {
        let Some(mut verdicts) = self.gossip.rx.take() else {
            return Ok(());
        };
        loop {
            let deadline = self.pending.as_ref().map(|p| p.deadline);
            let room = self.mempool.len() < self.mempool_max();
            tokio::select! {
                msg = channels.consensus.recv() => {
                    let Some(msg) = msg else { return Ok(()) };
                    self.handle(&channels, msg).await?;
                }
                Some(batch) = batches.recv(), if room => {
                    // Gossip first: peers verify it while it waits here.
                    let msg = crate::streaming::gossip(&batch);
                    let _ = channels.network.send(NetworkMsg::PublishProposalPart(msg)).await;
                    self.verified.insert(batch.digest);
                    self.mempool.push(batch);
                    if self.mempool.len() >= self.cfg.max_batches_per_block {
                        self.propose_pending(&channels).await?;
                    }
                }
                Some(v) = verdicts.recv() => {
                    self.on_gossip_verdict(v);
                    if self.mempool.len() >= self.cfg.max_batches_per_block {
                        self.propose_pending(&channels).await?;
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    self.propose_pending(&channels).await?;
                }
            }
        }
    }

    async fn handle(
        &mut self,
        ch: &Channels<StepContext>,
        msg: AppMsg<StepContext>,
    ) -> Result<(), AppError> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let next = Height(self.state.read().height + 1);
                let _ = reply.send((next, self.params()));
            }
            AppMsg::StartedRound {
                height,
                reply_value,
                round,
                ..
            } => {
                let seen = self
                    .store
                    .undecided(height.0)?
                    .into_iter()
                    .filter(|r| r.round == round.as_i64())
                    .filter_map(|r| {
                        borsh::from_slice::<ProposedValue<StepContext>>(&r.proposed).ok()
                    })
                    .collect();
                let _ = reply_value.send(seen);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                let wait = self.cfg.propose_wait.min(timeout / 2);
                self.pending = Some(PendingGetValue {
                    height,
                    round,
                    reply,
                    deadline: tokio::time::Instant::now() + wait,
                });
                if self.mempool.len() >= self.cfg.max_batches_per_block {
                    self.propose_pending(ch).await?;
                }
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                if let Some(batch) = crate::streaming::gossiped(&part) {
                    self.on_gossip(batch.clone(), published_by.unwrap_or(from));
                    let _ = reply.send(None);
                    return Ok(());
                }
                // Group by the publisher: relays may deliver parts of one
                // stream through different neighbours.
                let out = match self.streams.insert(published_by.unwrap_or(from), part) {
                    Some(a) => self.received_proposal(a).await?,
                    None => None,
                };
                let _ = reply.send(out);
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                address,
                value_id,
            } => {
                let found = self
                    .store
                    .undecided(height.0)?
                    .into_iter()
                    .find(|r| r.value_id == value_id.0);
                if let Some(rec) = found {
                    if let Ok(block) = borsh::from_slice::<BlockData>(&rec.block) {
                        self.publish(ch, height, round, valid_round, address, &block)
                            .await;
                    }
                }
            }
            AppMsg::Decided {
                certificate,
                extensions,
                reply,
            } => {
                let ext = ExtendedCommitCertificate::from_commit_certificate_and_extensions(
                    certificate.clone(),
                    extensions,
                );
                self.decided(&certificate, &ext)?;
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate,
                evidence,
                reply,
                ..
            } => {
                self.finalized(certificate.height, &evidence)?;
                let next = Height(certificate.height.0 + 1);
                let _ = reply.send(Next::Start(next, self.params()));
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let min = self.store.decided_range()?.map_or(1, |(lo, _)| lo);
                let _ = reply.send(Height(min));
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let mut out = Vec::new();
                for h in range.start().0..=range.end().0 {
                    let Some(rec) = self.store.decided(h)? else {
                        break;
                    };
                    let Ok(wire) = borsh::from_slice(&rec.certificate) else {
                        break;
                    };
                    out.push(RawDecidedValue::new(
                        bytes::Bytes::from(rec.block),
                        certificate_from_wire(wire),
                    ));
                }
                let _ = reply.send(out);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let out = match borsh::from_slice::<BlockData>(&value_bytes) {
                    Ok(block) => {
                        let validity = self.verify_block(&block).await;
                        let pv = ProposedValue {
                            height,
                            round,
                            valid_round: Round::Nil,
                            proposer,
                            value: block.value.clone(),
                            validity,
                        };
                        self.remember(&pv, &block)?;
                        SyncedValueOutcome::Verdict(pv)
                    }
                    Err(_) => SyncedValueOutcome::PeerFault,
                };
                let _ = reply.send(out);
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
        }
        Ok(())
    }

    /// Answers a waiting `GetValue` with a block from the mempool.
    async fn propose_pending(&mut self, ch: &Channels<StepContext>) -> Result<(), AppError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        // After a restart the WAL may hold our proposal for this round: reuse it.
        let previous = self
            .store
            .undecided(p.height.0)?
            .into_iter()
            .find(|r| r.round == p.round.as_i64())
            .and_then(|r| {
                let pv: ProposedValue<StepContext> = borsh::from_slice(&r.proposed).ok()?;
                (pv.proposer == self.address).then_some(r)
            })
            .and_then(|r| borsh::from_slice::<BlockData>(&r.block).ok());
        let block = previous.unwrap_or_else(|| {
            BlockData::new(self.mempool.peek_block(self.cfg.max_batches_per_block))
        });
        let pv = ProposedValue {
            height: p.height,
            round: p.round,
            valid_round: Round::Nil,
            proposer: self.address,
            value: block.value.clone(),
            validity: Validity::Valid,
        };
        self.remember(&pv, &block)?;
        let _ = p.reply.send(LocallyProposedValue::new(
            p.height,
            p.round,
            block.value.clone(),
        ));
        self.publish(ch, p.height, p.round, Round::Nil, self.address, &block)
            .await;
        Ok(())
    }

    async fn publish(
        &self,
        ch: &Channels<StepContext>,
        height: Height,
        round: Round,
        valid_round: Round,
        proposer: ValidatorAddress,
        block: &BlockData,
    ) {
        let msgs = split(
            height,
            round,
            valid_round,
            proposer,
            block,
            self.cfg.batches_per_part,
        );
        for m in msgs {
            if ch
                .network
                .send(NetworkMsg::PublishProposalPart(m))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    async fn received_proposal(
        &mut self,
        a: crate::streaming::Assembled,
    ) -> Result<Option<ProposedValue<StepContext>>, AppError> {
        if a.height.0 <= self.state.read().height || a.block.value.id() != a.announced_id {
            return Ok(None);
        }
        let t0 = Instant::now();
        let validity = self.verify_block(&a.block).await;
        tracing::debug!(
            height = a.height.0,
            round = a.round.as_i64(),
            batches = a.block.batches.len(),
            ?validity,
            verify_ms = t0.elapsed().as_millis() as u64,
            "proposal received"
        );
        let pv = ProposedValue {
            height: a.height,
            round: a.round,
            valid_round: a.valid_round,
            proposer: a.proposer,
            value: a.block.value.clone(),
            validity,
        };
        self.remember(&pv, &a.block)?;
        Ok(Some(pv))
    }

    /// Re-verifies the batches of `block` this validator has not verified.
    async fn verify_block(&mut self, block: &BlockData) -> Validity {
        let distinct: HashSet<_> = block.value.batch_digests.iter().collect();
        if !block.is_consistent()
            || block.batches.len() > self.cfg.max_batches_per_block
            || distinct.len() != block.batches.len()
        {
            return Validity::Invalid;
        }
        let todo: Vec<WireBatch> = block
            .batches
            .iter()
            .filter(|b| !self.verified.contains(&b.digest))
            .cloned()
            .collect();
        if todo.is_empty() {
            return Validity::Valid;
        }
        let verifier = self.cfg.verifier;
        let digests: Vec<[u8; 32]> = todo.iter().map(|b| b.digest).collect();
        let ok = tokio::task::spawn_blocking(move || {
            todo.iter().all(|w| {
                w.to_batch()
                    .is_ok_and(|b| reverify_batch(&verifier, &b).is_ok())
            })
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Validity::Invalid;
        }
        if self.verified.len() > VERIFIED_MAX {
            self.verified.clear();
        }
        self.verified.extend(digests);
        Validity::Valid
    }

    fn remember(
        &mut self,
        pv: &ProposedValue<StepContext>,
        block: &BlockData,
    ) -> Result<(), AppError> {
        self.store.put_undecided(&UndecidedRecord {
            height: pv.height.0,
            round: pv.round.as_i64(),
            value_id: pv.value.id().0,
            proposed: borsh::to_vec(pv).unwrap_or_default(),
            block: borsh::to_vec(block).unwrap_or_default(),
        })?;
        Ok(())
    }

    fn decided(
        &mut self,
        cert: &CommitCertificate<StepContext>,
        ext: &ExtendedCommitCertificate<StepContext>,
    ) -> Result<(), AppError> {
        let height = cert.height;
        if height.0 <= self.state.read().height {
            return Ok(()); // already executed (replayed decision)
        }
        let block = self
            .store
            .undecided(height.0)?
            .into_iter()
            .find(|r| r.value_id == cert.value_id.0)
            .and_then(|r| borsh::from_slice::<BlockData>(&r.block).ok())
            .ok_or(AppError::MissingDecidedValue {
                height: height.0,
                value_id: cert.value_id,
            })?;
        let batches = block
            .batches
            .iter()
            .map(WireBatch::to_batch)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| AppError::DecidedBatch {
                height: height.0,
                source,
            })?;
        let (outcome, accepted_total) = {
            let mut state = self.state.write();
            let outcome =
                state.apply_block(&self.cfg.verifier.limits, height, cert.value_id, &batches);
            (outcome, state.accepted_total)
        };
        let accepted = outcome.changes.accepted;
        let record = DecidedRecord {
            height: height.0,
            block: borsh::to_vec(&block).unwrap_or_default(),
            certificate: borsh::to_vec(&certificate_to_wire(ext)).unwrap_or_default(),
            changes: outcome.changes,
            root: outcome.root,
        };
        self.store.commit_decided(&record)?;
        self.store.prune_undecided(height.0)?;
        let done: HashSet<[u8; 32]> = block.value.batch_digests.iter().copied().collect();
        self.mempool.remove(&done);
        self.gossip.decided(&block.value.batch_digests);
        let _ = self.events.send(NodeEvent::Decided(Decision {
            height: height.0,
            round: cert.round.as_i64(),
            value_id: cert.value_id,
            root: outcome.root,
            batch_digests: block.value.batch_digests.clone(),
            proofs: block.proof_count() as u64,
            accepted,
            accepted_total,
            at: Instant::now(),
            batches: batches.into(),
            results: outcome.results.into(),
        }));
        Ok(())
    }

    fn finalized(
        &mut self,
        height: Height,
        evidence: &MisbehaviorEvidence<StepContext>,
    ) -> Result<(), AppError> {
        if evidence.is_empty() {
            return Ok(());
        }
        let record = EvidenceRecord::from_malachite(height.0, evidence);
        self.store
            .put_evidence(height.0, &borsh::to_vec(&record).unwrap_or_default())?;
        let _ = self.events.send(NodeEvent::Evidence(record));
        Ok(())
    }
}

/// How long to wait at most: used by the node when it waits for a start.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_muted_after_strikes_and_heard_again_later() {
        let mut s = PeerScores::<u8>::default();
        let t0 = Instant::now();
        for k in 1..GOSSIP_STRIKES {
            assert!(!s.strike(&7, t0), "strike {k} alone does not mute");
            assert!(!s.is_muted(&7, t0));
        }
        assert!(s.strike(&7, t0), "the last strike mutes");
        assert!(s.is_muted(&7, t0 + GOSSIP_MUTE / 2));
        assert!(!s.is_muted(&8, t0), "other peers are unaffected");
        assert!(!s.is_muted(&7, t0 + GOSSIP_MUTE), "the mute expires");
    }
}
