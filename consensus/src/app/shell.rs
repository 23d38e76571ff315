//! The app's thin shell: the tokio loop around [`Core`]. It receives
//! malachite's [`AppMsg`]s, local batches, gossip verdicts and the timer,
//! calls the core, and performs the [`Effect`]s it returns: store calls on
//! blocking threads (never on the async workers), network sends, replies
//! (every failed one logged), signature checks and execution off the loop.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, Round, Validity,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::LocallyProposedValue;
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg, Reply};
use malachitebft_engine::util::streaming::StreamMessage;
use tokio::sync::{broadcast, mpsc};

use super::api::{NodeEvent, SharedState};
use super::machine::{
    sample_batches, seen_in_round, verify_batch, verify_batches, BlockCheck, BlockFault, Core,
    Decide, Effect, VerifyFault,
};
use crate::block::{decode_block, BlockData, WireBatch};
use crate::codec::{certificate_from_wire, certificate_to_wire};
use crate::config::AppConfig;
use crate::context::{Height, PrivateKey, ProposalPart, StepContext, ValidatorSet, ValueId};
use crate::error::{AppError, StateDiverged};
use crate::store::{Store, StoreError};
use crate::streaming::{split, PeerId};

/// A peer's gossiped batch, verified off the app loop.
#[derive(Debug)]
struct GossipVerdict {
    batch: Arc<WireBatch>,
    from: PeerId,
    result: Result<(), VerifyFault>,
}

/// The answer to a pending `GetValue`.
type PendingReply = (Height, Round, Reply<LocallyProposedValue<StepContext>>);
/// The answer to a pending `Finalized`: the next height, and where it goes.
type StartReply = (Height, Reply<Next<StepContext>>);

/// The application around one validator: the core, the store and the
/// channels.
pub struct App<S: Store> {
    core: Core,
    store: Arc<Mutex<S>>,
    state: SharedState,
    events: broadcast::Sender<NodeEvent>,
    get_value: Option<PendingReply>,
    /// Held while the idle rule holds the next height back.
    start: Option<StartReply>,
    verdicts_tx: mpsc::Sender<GossipVerdict>,
    verdicts_rx: Option<mpsc::Receiver<GossipVerdict>>,
}

impl<S: Store> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("height", &self.core.height())
            .finish_non_exhaustive()
    }
}

/// Sends `v` on `reply`; a reply nobody waits for any more is logged.
fn reply<T>(what: &'static str, reply: Reply<T>, v: T) {
    if reply.send(v).is_err() {
        tracing::warn!(
            reply = what,
            "consensus dropped the reply channel before the answer"
        );
    }
}

fn task_error(what: &'static str) -> impl Fn(tokio::task::JoinError) -> AppError {
    move |e| AppError::Task {
        what,
        reason: e.to_string(),
    }
}

impl<S: Store> App<S> {
    /// Opens the app: the state is rebuilt from the store onto `base`, on a blocking thread.
    pub async fn open(
        cfg: AppConfig,
        key: PrivateKey,
        validators: ValidatorSet,
        store: S,
        events: broadcast::Sender<NodeEvent>,
        base: crate::execution::ChainState,
    ) -> Result<Self, AppError> {
        let store = Arc::new(Mutex::new(store));
        let s = Arc::clone(&store);
        let state = tokio::task::spawn_blocking(move || {
            s.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .load_state(base)
        })
        .await
        .map_err(task_error("load state"))??;
        let core = Core::new(cfg, key, validators, state.height, state.state_root());
        let (verdicts_tx, verdicts_rx) = mpsc::channel(super::gossip::GOSSIP_VERIFYING_MAX);
        Ok(App {
            core,
            store,
            state: SharedState::new(state),
            events,
            get_value: None,
            start: None,
            verdicts_tx,
            verdicts_rx: Some(verdicts_rx),
        })
    }

    /// The count of peers' gossiped batches taken into the mempool, shared.
    pub fn gossip_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.core.gossip_counter()
    }

    /// The state readers share with the app.
    pub fn shared_state(&self) -> SharedState {
        self.state.clone()
    }

    /// The store, shared: the node closes it when it stops, once the app
    /// and its blocking store calls are done with it.
    pub fn store_handle(&self) -> Arc<Mutex<S>> {
        Arc::clone(&self.store)
    }

    /// Runs `f` on the store on a blocking thread.
    async fn store<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut S) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AppError> {
        let store = Arc::clone(&self.store);
        let out = tokio::task::spawn_blocking(move || {
            f(&mut store.lock().unwrap_or_else(PoisonError::into_inner))
        })
        .await
        .map_err(task_error(what))??;
        Ok(out)
    }

    /// Runs until the engine closes its channel or a fatal error.
    pub async fn run(
        mut self,
        mut channels: Channels<StepContext>,
        mut batches: mpsc::Receiver<WireBatch>,
    ) -> Result<(), AppError> {
        let Some(mut verdicts) = self.verdicts_rx.take() else {
            return Ok(());
        };
        loop {
            let deadline = self.core.deadline().map(tokio::time::Instant::from_std);
            let room = self.core.has_room();
            let mut fx = Vec::new();
            tokio::select! {
                msg = channels.consensus.recv() => {
                    let Some(msg) = msg else { return Ok(()) };
                    self.handle(&channels, msg).await?;
                }
                Some(batch) = batches.recv(), if room => {
                    self.core.local_batch(batch, Instant::now(), &mut fx)?;
                }
                Some(v) = verdicts.recv() => {
                    self.core.gossip_verdict(v.batch, v.from, v.result, Instant::now(), &mut fx)?;
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    self.core.timer(Instant::now(), &mut fx)?;
                }
            }
            self.perform(&channels, fx).await?;
        }
    }

    /// Performs the core's effects, in order.
    async fn perform(
        &mut self,
        ch: &Channels<StepContext>,
        fx: Vec<Effect>,
    ) -> Result<(), AppError> {
        for e in fx {
            match e {
                Effect::PutUndecided(rec) => {
                    self.store("put undecided", move |s| s.put_undecided(&rec))
                        .await?;
                }
                Effect::Commit(rec, rows) => {
                    let height = rec.height;
                    let time_ms = wall_clock_ms();
                    self.store("commit decided", move |s| {
                        s.commit_decided(&rec, &rows, time_ms)?;
                        s.prune_undecided(rec.height)
                    })
                    .await?;
                    // The rows are on disk: the state's caches may hold them.
                    self.state.write().committed(height);
                }
                Effect::PutEvidence { height, bytes } => {
                    self.store("put evidence", move |s| s.put_evidence(height, &bytes))
                        .await?;
                }
                Effect::PutAttestEvidence(e) => {
                    let bytes = borsh::to_vec(&e).map_err(|err| AppError::Encode {
                        what: "attestation evidence",
                        reason: err.to_string(),
                    })?;
                    self.store("put attestation evidence", move |s| {
                        s.put_attest_evidence(&e.digest, &bytes)
                    })
                    .await?;
                }
                Effect::Publish(msgs) => {
                    for m in msgs {
                        if !publish(ch, m).await {
                            tracing::warn!("network channel closed: proposal not fully published");
                            break;
                        }
                    }
                }
                Effect::Gossip(m) => {
                    if !publish(ch, m).await {
                        tracing::warn!("network channel closed: batch not gossiped");
                    }
                }
                Effect::VerifyGossip { from, batch } => self.spawn_gossip_check(from, batch),
                Effect::Propose {
                    height,
                    round,
                    value,
                } => match self.get_value.take() {
                    Some((h, r, tx)) if (h, r) == (height, round) => reply("GetValue", tx, value),
                    other => {
                        tracing::warn!(
                            height = height.0,
                            round = round.as_i64(),
                            "a proposal no GetValue waits for"
                        );
                        self.get_value = other;
                    }
                },
                Effect::Emit(ev) => {
                    if self.events.send(ev).is_err() {
                        tracing::debug!("node event with no subscriber");
                    }
                }
                Effect::StartHeight(height) => match self.start.take() {
                    Some((h, tx)) if h == height => {
                        reply("Finalized", tx, Next::Start(height, self.core.params()));
                    }
                    other => {
                        tracing::warn!(height = height.0, "a start no Finalized waits for");
                        self.start = other;
                    }
                },
            }
        }
        Ok(())
    }

    /// The block of (height, value id): held, else from the store.
    async fn block_of(
        &mut self,
        height: Height,
        value_id: ValueId,
    ) -> Result<Option<Arc<BlockData>>, AppError> {
        if self.core.held(height, value_id).is_none() {
            let stored = self
                .store("read undecided", move |s| s.undecided(height.0))
                .await?;
            self.core.hold_stored(height, value_id, stored)?;
        }
        Ok(self
            .core
            .held(height, value_id)
            .map(|h| Arc::clone(&h.block)))
    }

    async fn handle(
        &mut self,
        ch: &Channels<StepContext>,
        msg: AppMsg<StepContext>,
    ) -> Result<(), AppError> {
        let mut fx = Vec::new();
        match msg {
            AppMsg::ConsensusReady { reply: tx } => {
                reply(
                    "ConsensusReady",
                    tx,
                    (self.core.next_height(), self.core.params()),
                );
            }
            AppMsg::StartedRound {
                height,
                reply_value,
                round,
                ..
            } => {
                let stored = self
                    .store("read undecided", move |s| s.undecided(height.0))
                    .await?;
                reply("StartedRound", reply_value, seen_in_round(&stored, round));
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply: tx,
            } => {
                let stored = self
                    .store("read undecided", move |s| s.undecided(height.0))
                    .await?;
                self.get_value = Some((height, round, tx));
                self.core
                    .get_value(height, round, timeout, Instant::now(), &stored, &mut fx)?;
                self.perform(ch, fx).await?;
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply: tx,
            } => {
                let out =
                    match self
                        .core
                        .received_part(from, published_by, part, Instant::now(), &mut fx)
                    {
                        None => None,
                        Some(a) => {
                            let t0 = Instant::now();
                            let validity = self.validate(ch, a.height, &a.block).await?;
                            tracing::debug!(
                                height = a.height.0,
                                round = a.round.as_i64(),
                                batches = a.block.batches.len(),
                                ?validity,
                                verify_ms = t0.elapsed().as_millis() as u64,
                                "proposal received"
                            );
                            let pv = self.core.accept(
                                a.height,
                                a.round,
                                a.valid_round,
                                a.proposer,
                                a.block,
                                None,
                                validity,
                                &mut fx,
                            )?;
                            Some(pv)
                        }
                    };
                // Stored before it is answered; gossip checks start after.
                let (now, later): (Vec<_>, Vec<_>) = fx
                    .into_iter()
                    .partition(|e| matches!(e, Effect::PutUndecided(_)));
                self.perform(ch, now).await?;
                reply("ReceivedProposalPart", tx, out);
                self.perform(ch, later).await?;
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                address,
                value_id,
            } => match self.block_of(height, value_id).await {
                Ok(Some(block)) => {
                    let msgs = split(
                        height,
                        round,
                        valid_round,
                        address,
                        &block,
                        self.core.cfg().batches_per_part,
                    );
                    self.perform(ch, vec![Effect::Publish(msgs)]).await?;
                }
                Ok(None) => {
                    tracing::debug!(height = height.0, %value_id, "restream: value not held")
                }
                Err(AppError::StoredBlock { height, source }) => {
                    tracing::warn!(height, error = %source, "restream: stored block does not decode");
                }
                Err(e) => return Err(e),
            },
            AppMsg::Decided {
                certificate,
                extensions,
                reply: tx,
            } => {
                self.decided(ch, certificate, extensions).await?;
                reply("Decided", tx, ());
            }
            AppMsg::Finalized {
                certificate,
                evidence,
                reply: tx,
                ..
            } => {
                // Answered by the core's `StartHeight`, now or when the
                // idle wait ends.
                self.start = Some((Height(certificate.height.0 + 1), tx));
                self.core
                    .finalized(certificate.height, &evidence, Instant::now(), &mut fx)?;
                self.perform(ch, fx).await?;
            }
            AppMsg::GetHistoryMinHeight { reply: tx } => {
                let range = self
                    .store("read decided range", |s| s.decided_range())
                    .await?;
                // A store restored from a snapshot holds no height below
                // the one after its state's.
                let next = self.state.read().height + 1;
                reply(
                    "GetHistoryMinHeight",
                    tx,
                    Height(range.map_or(next, |(lo, _)| lo)),
                );
            }
            AppMsg::GetDecidedValues { range, reply: tx } => {
                let (lo, hi) = (range.start().0, range.end().0);
                let out = self
                    .store("read decided", move |s| {
                        let mut out = Vec::new();
                        for h in lo..=hi {
                            let Some(rec) = s.decided(h)? else { break };
                            let Ok(wire) = borsh::from_slice(&rec.certificate) else {
                                tracing::warn!(height = h, "stored certificate does not decode");
                                break;
                            };
                            out.push(RawDecidedValue::new(
                                bytes::Bytes::from(rec.block),
                                certificate_from_wire(wire),
                            ));
                        }
                        Ok(out)
                    })
                    .await?;
                reply("GetDecidedValues", tx, out);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply: tx,
            } => {
                let out = match decode_block(&value_bytes) {
                    Ok(block) => {
                        let validity = self.validate(ch, height, &block).await?;
                        let bytes = Some(value_bytes.to_vec());
                        let pv = self.core.accept(
                            height,
                            round,
                            Round::Nil,
                            proposer,
                            block,
                            bytes,
                            validity,
                            &mut fx,
                        )?;
                        self.perform(ch, fx).await?;
                        SyncedValueOutcome::Verdict(pv)
                    }
                    Err(e) => {
                        tracing::debug!(height = height.0, error = %e, "synced value does not decode");
                        SyncedValueOutcome::PeerFault
                    }
                };
                reply("ProcessSyncedValue", tx, out);
            }
            AppMsg::ExtendVote { reply: tx, .. } => reply("ExtendVote", tx, None),
            AppMsg::VerifyVoteExtensions {
                extensions,
                reply: tx,
                ..
            } => reply(
                "VerifyVoteExtensions",
                tx,
                extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect(),
            ),
        }
        Ok(())
    }

    /// [`Core::decide`]; a divergence is reported before it stops the app.
    fn decide(
        &mut self,
        height: Height,
        round: Round,
        value_id: ValueId,
    ) -> Result<Decide, AppError> {
        let out = self.core.decide(height, round, value_id);
        if let Err(AppError::StateDiverged(d)) = &out {
            self.report_diverged(*d, true);
        }
        out
    }

    /// `Decided`: execute the block the app holds (read back from the
    /// store only when it is not held, e.g. after a restart), on a blocking
    /// thread, then commit it and tell the subscribers.
    async fn decided(
        &mut self,
        ch: &Channels<StepContext>,
        cert: CommitCertificate<StepContext>,
        extensions: malachitebft_app_channel::app::types::core::VoteExtensions<StepContext>,
    ) -> Result<(), AppError> {
        let (height, round, value_id) = (cert.height, cert.round, cert.value_id);
        let job = match self.decide(height, round, value_id)? {
            Decide::Done => return Ok(()),
            Decide::Execute(job) => job,
            Decide::NeedStored => {
                let stored = self
                    .store("read undecided", move |s| s.undecided(height.0))
                    .await?;
                self.core.hold_stored(height, value_id, stored)?;
                match self.decide(height, round, value_id)? {
                    Decide::Execute(job) => job,
                    Decide::Done => return Ok(()),
                    Decide::NeedStored => {
                        return Err(AppError::MissingDecidedValue {
                            height: height.0,
                            value_id,
                        })
                    }
                }
            }
        };
        let ext =
            ExtendedCommitCertificate::from_commit_certificate_and_extensions(cert, extensions);
        let certificate =
            borsh::to_vec(&certificate_to_wire(&ext)).map_err(|e| AppError::Encode {
                what: "certificate",
                reason: e.to_string(),
            })?;
        let state = self.state.clone();
        let limits = self.core.cfg().verifier.limits;
        let (job, outcome, accepted_total) = tokio::task::spawn_blocking(move || {
            let mut st = state.write();
            let outcome = st.apply_block(&limits, job.height, job.value_id, &job.batches);
            let total = st.accepted_total;
            (job, outcome, total)
        })
        .await
        .map_err(task_error("execute block"))?;
        let outcome = outcome.map_err(|source| AppError::StateRead {
            height: height.0,
            source,
        })?;
        let mut fx = Vec::new();
        self.core.executed(
            job,
            outcome,
            accepted_total,
            certificate,
            Instant::now(),
            &mut fx,
        );
        self.perform(ch, fx).await
    }
}

/// The local wall clock in unix milliseconds: the decision time the store
/// records beside each height (local, not agreed, never hashed).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Hands one proposal part to the network; false if its channel is closed.
async fn publish(ch: &Channels<StepContext>, part: StreamMessage<ProposalPart>) -> bool {
    let sent = ch.network.send(NetworkMsg::PublishProposalPart(part)).await;
    sent.is_ok()
}

mod verify;

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
