//! The shell with fake channels: no libp2p, a real or a failing store.

use std::time::Duration;

use malachitebft_app_channel::app::engine::util::events::TxEvent;
use malachitebft_app_channel::app::types::core::Value as _;
use tokio::sync::oneshot;

use super::*;
use crate::context::{PublicKey, Validator};
use crate::execution::ChainState;
use crate::store::{DecidedRecord, RedbStore, UndecidedRecord};

struct Fake {
    consensus: mpsc::Sender<AppMsg<StepContext>>,
    network: mpsc::Receiver<NetworkMsg<StepContext>>,
    batches: mpsc::Sender<WireBatch>,
}

fn channels() -> (Channels<StepContext>, mpsc::Receiver<WireBatch>, Fake) {
    let (consensus_tx, consensus) = mpsc::channel(16);
    let (network, network_rx) = mpsc::channel(64);
    let (requests, _) = mpsc::channel(1);
    let (net_requests, _) = mpsc::channel(1);
    let (batches_tx, batches) = mpsc::channel(16);
    let ch = Channels {
        consensus,
        network,
        events: TxEvent::new(),
        requests,
        net_requests,
    };
    let fake = Fake {
        consensus: consensus_tx,
        network: network_rx,
        batches: batches_tx,
    };
    (ch, batches, fake)
}

async fn open<S: Store>(store: S) -> App<S> {
    // One validator, this one: its own attestation is a quorum.
    let key = PrivateKey::from([1; 32]);
    let pk = PublicKey(key.verification_key().to_bytes());
    let validators = ValidatorSet::new(vec![Validator::new(pk, 1)]);
    let (events, _) = broadcast::channel(16);
    App::open(
        AppConfig::default(),
        key,
        validators,
        store,
        events,
        ChainState::default(),
    )
    .await
    .expect("open")
}

fn get_value(
    timeout: Duration,
) -> (
    AppMsg<StepContext>,
    oneshot::Receiver<LocallyProposedValue<StepContext>>,
) {
    let (tx, rx) = oneshot::channel();
    let msg = AppMsg::GetValue {
        height: Height(1),
        round: Round::new(0),
        timeout,
        reply: tx,
    };
    (msg, rx)
}

/// `op`'s `Ok` value; panics (saying `what` did not happen) if it takes more
/// than 5 s or fails.
async fn within_5s<T, E: std::fmt::Debug>(
    op: impl std::future::Future<Output = Result<T, E>>,
    what: &str,
) -> T {
    tokio::time::timeout(Duration::from_secs(5), op)
        .await
        .unwrap_or_else(|_| panic!("not within 5 s: {what}"))
        .unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

fn batch(tag: u8) -> WireBatch {
    WireBatch {
        proofs: Vec::new(),
        pubkeys: Vec::new(),
        digest: [tag; 32],
    }
}

#[tokio::test]
async fn a_get_value_is_stored_answered_and_published() {
    let dir = tempfile::tempdir().expect("dir");
    let app = open(RedbStore::open(&dir.path().join("store.redb")).expect("store")).await;
    let store = app.store_handle();
    let (ch, batches, mut fake) = channels();
    let run = tokio::spawn(app.run(ch, batches));
    fake.batches.send(batch(7)).await.expect("submit");
    let gossip = fake.network.recv().await.expect("gossiped");
    let NetworkMsg::PublishProposalPart(m) = gossip;
    assert!(crate::streaming::gossiped(&m)
        .is_some_and(|(b, a)| b.digest == [7; 32] && a.digest == [7; 32]));
    let (msg, answer) = get_value(Duration::from_secs(5));
    fake.consensus.send(msg).await.expect("send");
    let value = within_5s(answer, "answered within the propose wait").await;
    assert_eq!(value.value.batch_digests, [[7; 32]]);
    let stored = store.lock().expect("store").undecided(1).expect("read");
    assert_eq!(stored.len(), 1, "stored before it was answered");
    assert_eq!(stored[0].value_id, value.value.id().0);
    let mut parts = 0;
    while let Ok(Some(_)) =
        tokio::time::timeout(Duration::from_millis(200), fake.network.recv()).await
    {
        parts += 1;
    }
    assert_eq!(parts, 4, "init, one batches part, fin, stream fin");
    drop(fake);
    assert!(
        matches!(run.await, Ok(Ok(()))),
        "the app ends when consensus closes"
    );
}

/// A store whose writes fail.
struct BrokenStore;

fn broken() -> StoreError {
    StoreError::Backend {
        path: "broken".into(),
        operation: "put undecided",
        reason: "disk gone".into(),
    }
}

impl Store for BrokenStore {
    fn commit_decided(
        &mut self,
        _: &DecidedRecord,
        _: &crate::store::BlockRows,
        _: i64,
    ) -> Result<(), StoreError> {
        Err(broken())
    }
    fn decided(&self, _: u64) -> Result<Option<DecidedRecord>, StoreError> {
        Ok(None)
    }
    fn nonce_height(&self, _: &[u8; 20], _: &str) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    fn decided_range(&self) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(None)
    }
    fn load_state(&self, base: ChainState) -> Result<ChainState, StoreError> {
        Ok(base)
    }
    fn put_evidence(&mut self, _: u64, _: &[u8]) -> Result<(), StoreError> {
        Err(broken())
    }
    fn evidence(&self, _: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    fn put_attest_evidence(&mut self, _: &[u8; 32], _: &[u8]) -> Result<(), StoreError> {
        Err(broken())
    }
    fn attest_evidence(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(Vec::new())
    }
    fn put_undecided(&mut self, _: &UndecidedRecord) -> Result<(), StoreError> {
        Err(broken())
    }
    fn undecided(&self, _: u64) -> Result<Vec<UndecidedRecord>, StoreError> {
        Ok(Vec::new())
    }
    fn prune_undecided(&mut self, _: u64) -> Result<(), StoreError> {
        Err(broken())
    }
}

#[tokio::test]
async fn a_store_failure_ends_the_app_with_the_named_error() {
    let app = open(BrokenStore).await;
    let (ch, batches, fake) = channels();
    let run = tokio::spawn(app.run(ch, batches));
    let (msg, answer) = get_value(Duration::from_millis(20));
    fake.consensus.send(msg).await.expect("send");
    let out = within_5s(run, "the app stops").await;
    assert!(
        matches!(
            &out,
            Err(AppError::Store(StoreError::Backend {
                operation: "put undecided",
                ..
            }))
        ),
        "{out:?}"
    );
    assert!(
        answer.await.is_err(),
        "never answered with an unstored proposal"
    );
}

fn finalized(height: u64) -> (AppMsg<StepContext>, oneshot::Receiver<Next<StepContext>>) {
    let (tx, rx) = oneshot::channel();
    let msg = AppMsg::Finalized {
        certificate: CommitCertificate::new(
            Height(height),
            Round::new(0),
            ValueId([0; 32]),
            vec![],
        ),
        extensions: Default::default(),
        evidence: malachitebft_core_consensus::MisbehaviorEvidence {
            proposals: Default::default(),
            votes: Default::default(),
        },
        reply: tx,
    };
    (msg, rx)
}

#[tokio::test]
async fn finalized_is_answered_when_the_idle_wait_ends_or_at_once_when_a_batch_arrives() {
    let dir = tempfile::tempdir().expect("dir");
    let interval = Duration::from_millis(400);
    let validators = ValidatorSet::new(vec![Validator::new(PublicKey([3; 32]), 1)]);
    let (events, _) = broadcast::channel(16);
    let app = App::open(
        AppConfig {
            max_idle_block_interval: interval,
            ..AppConfig::default()
        },
        PrivateKey::from([1; 32]),
        validators,
        RedbStore::open(&dir.path().join("store.redb")).expect("store"),
        events,
        ChainState::default(),
    )
    .await
    .expect("open");
    let (ch, batches, fake) = channels();
    let run = tokio::spawn(app.run(ch, batches));
    // Idle: the next height starts at the interval, not before.
    let t0 = Instant::now();
    let (msg, answer) = finalized(1);
    fake.consensus.send(msg).await.expect("send");
    let next = within_5s(answer, "answered").await;
    let waited = t0.elapsed();
    assert!(waited >= interval, "answered after {waited:?}");
    assert!(matches!(next, Next::Start(Height(2), _)));
    // A batch ends the wait at once.
    let (msg, mut answer) = finalized(2);
    fake.consensus.send(msg).await.expect("send");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut answer)
            .await
            .is_err(),
        "held back while idle"
    );
    let t1 = Instant::now();
    fake.batches.send(batch(7)).await.expect("submit");
    let next = within_5s(answer, "answered").await;
    assert!(
        t1.elapsed() < interval / 2,
        "a batch starts the height at once, not after {:?}",
        t1.elapsed()
    );
    assert!(matches!(next, Next::Start(Height(3), _)));
    drop(fake);
    assert!(matches!(run.await, Ok(Ok(()))));
}
