use super::super::intake::PendingEntry;
use super::super::recovery::DecidedSource;
use super::super::Final;
use super::*;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use step_consensus::context::{Height, ValueId};
use step_consensus::execution::{ChainState, ResultJournal};
use step_consensus::store::DecidedRecord;
use step_consensus::BlockData;
use step_engine::heuristics::LastProof;
use step_engine::proof::{Nonce, Proof, Timestamp};
use step_engine::signing::unsigned_proof;
use step_engine::{Address, Limits, ProofState};

fn shared() -> Arc<Shared> {
    let (events, _) = broadcast::channel(16);
    Arc::new(Shared {
        intake: Intake::default(),
        precheck: PrecheckShards::with_recent(2, 1_000),
        finality: Mutex::new(Finality::default()),
        index: Mutex::new(ProofIndex::new(1_000)),
        last: Mutex::new(Last::default()),
        settled: Notify::new(),
        events,
        metrics: Arc::new(Metrics::new()),
        clock: Clock::new(|| 1_767_225_600_000),
        alive: AtomicBool::new(true),
        evidence: Mutex::default(),
    })
}

fn proof(k: u8) -> Proof {
    let t = step_engine::signing::root_triangle();
    let centroid = step_engine::mesh::centroid_lat_lon(&t);
    let nonce = format!("n{k}");
    Proof {
        signature: Ok([k; 65]),
        ..unsigned_proof(
            Address([k; 20]),
            &t,
            centroid,
            5.0,
            1_767_225_600_000,
            &nonce,
        )
    }
}

/// The store's decided records, by height (a stand-in for the node's store).
#[derive(Default)]
struct Stored(Mutex<HashMap<u64, DecidedRecord>>);

impl DecidedSource for Stored {
    fn decided(&self, h: u64) -> BoxFuture<'static, Result<Option<DecidedRecord>, String>> {
        let r = lock(&self.0).get(&h).cloned();
        Box::pin(async move { Ok(r) })
    }
    fn nonce_height(&self, p: &Proof) -> BoxFuture<'static, Result<Option<u64>, String>> {
        let sig = p.signature;
        let h = lock(&self.0).values().find_map(|r| {
            let b = step_consensus::block::decode_block(&r.block).ok()?;
            let hit = b.batches.iter().flat_map(|b| b.proofs.iter());
            hit.into_iter()
                .any(|w| Ok(w.signature) == sig)
                .then_some(r.height)
        });
        Box::pin(async move { Ok(h) })
    }
}

/// Executes one block per proof (heights 1..), each also written to
/// `stored` as the app writes it, and returns the decisions.
fn execute_stored(state: &mut ChainState, proofs: &[Proof], stored: &Stored) -> Vec<Decision> {
    proofs
        .iter()
        .map(|p| {
            let h = state.height + 1;
            let batch = Batch {
                proofs: vec![*p],
                pubkeys: vec![[0; 64]],
                digest: [h as u8; 32],
            };
            let out = state
                .apply_block(
                    &Limits::default(),
                    Height(h),
                    ValueId([h as u8; 32]),
                    std::slice::from_ref(&batch),
                )
                .expect("in-memory state");
            let wire = WireBatch::from_batch(&batch).expect("wire");
            lock(&stored.0).insert(
                h,
                DecidedRecord {
                    height: h,
                    block: BlockData::new([wire]).encode().expect("block encodes"),
                    certificate: Vec::new(),
                    changes: out.changes.clone(),
                    root: out.root,
                },
            );
            Decision {
                height: h,
                round: 0,
                value_id: ValueId([h as u8; 32]),
                root: out.root,
                batch_digests: vec![batch.digest],
                proofs: 1,
                accepted: out.changes.accepted,
                accepted_total: state.accepted_total,
                at: Instant::now(),
                batches: vec![batch].into(),
                results: out.results.into(),
            }
        })
        .collect()
}

/// Registers each proof as accepted here and waits for it.
fn wait_for(
    shared: &Shared,
    proofs: &[Proof],
) -> Vec<BoxFuture<'static, Result<Final, FinalityError>>> {
    let mut finality = lock(&shared.finality);
    proofs
        .iter()
        .map(|p| {
            let id = ProofId::of_proof(p).expect("id");
            finality.pending.insert(
                id,
                PendingEntry {
                    proof: *p,
                    reward_micro: 1,
                    submitted: Instant::now(),
                },
            );
            shared.precheck.states()[0].record(p.account, p.nonce, LastProof::of(p));
            finality.wait(id)
        })
        .collect()
}

/// Executes one block per proof on `chain`, waits for every proof here,
/// and sends the decisions into a stream that holds only one, so the
/// decision task lags past all but the last. Each proof's outcome.
async fn lag_past(
    shared: &Arc<Shared>,
    mut chain: ChainState,
    proofs: &[Proof],
    store_kept: bool,
) -> Vec<Result<Final, FinalityError>> {
    let stored = Arc::new(Stored::default());
    let decisions = execute_stored(&mut chain, proofs, &stored);
    let stored: Arc<dyn DecidedSource> = if store_kept {
        stored
    } else {
        Arc::new(Forgetful)
    };
    let waits = wait_for(shared, proofs);
    let (tx, rx) = broadcast::channel(1);
    for d in decisions {
        tx.send(NodeEvent::Decided(d)).expect("a receiver");
    }
    let task = tokio::spawn(decision_loop(
        Arc::clone(shared),
        rx,
        SharedState::new(chain),
        stored,
    ));
    let mut out = Vec::new();
    for w in waits {
        let r = tokio::time::timeout(Duration::from_secs(5), w).await;
        out.push(r.expect("settled, not left pending"));
    }
    drop(tx);
    task.await.expect("the task ends when the stream closes");
    out
}

/// The decision task lags past heights 1 and 2, reads them back from
/// the journal and settles their proofs (before, their waiters waited
/// forever).
#[tokio::test]
async fn a_lagged_decision_stream_is_recovered_from_the_journal() {
    let shared = shared();
    let proofs: Vec<Proof> = (1..=3).map(proof).collect();
    let results = lag_past(&shared, ChainState::default(), &proofs, true).await;
    for (k, r) in results.into_iter().enumerate() {
        let f = r.expect("final");
        assert_eq!((f.height, f.clicks), (k as u64 + 1, k as u32 + 1));
    }
    assert_eq!(lock(&shared.last).height, 3);
    assert!(lock(&shared.finality).pending.is_empty());
    assert_eq!(shared.precheck.pending(), 0, "the pre-check forgot them");
    assert_eq!(lock(&shared.index).by_id.len(), 3);
}

/// A journal that holds only the last height: the decision task lags
/// past heights 1 and 2, reads them back from the store, and their
/// proofs end final with the same balance and clicks as the journal
/// would give (before, they ended `Unrecovered`).
#[tokio::test]
async fn heights_beyond_the_journal_are_recovered_from_the_store() {
    let shared = shared();
    let proofs: Vec<Proof> = (1..=3).map(proof).collect();
    let chain = ChainState::with_journal(ResultJournal::with_capacity(1));
    let results = lag_past(&shared, chain, &proofs, true).await;
    for (k, r) in results.iter().enumerate() {
        let f = r.as_ref().expect("final, not Unrecovered");
        assert_eq!((f.height, f.clicks), (k as u64 + 1, k as u32 + 1));
        assert_eq!(f.balance_micro, f.reward_micro, "one proof per account");
    }
    assert!(lock(&shared.finality).pending.is_empty());
    assert_eq!(lock(&shared.index).by_id.len(), 3);
    // Without the store's heights, the two beyond the journal end with
    // the named error (not pending forever).
    let shared = shared_fresh();
    let chain = ChainState::with_journal(ResultJournal::with_capacity(1));
    let results = lag_past(&shared, chain, &proofs, false).await;
    for r in &results[..2] {
        assert!(
            matches!(r, Err(FinalityError::Unrecovered { after: 0, .. })),
            "{r:?}"
        );
    }
    assert_eq!(results[2].as_ref().map(|f| f.height), Ok(3));
}

/// A store that lost every record.
struct Forgetful;

impl DecidedSource for Forgetful {
    fn decided(&self, _: u64) -> BoxFuture<'static, Result<Option<DecidedRecord>, String>> {
        Box::pin(async { Ok(None) })
    }
    fn nonce_height(&self, _: &Proof) -> BoxFuture<'static, Result<Option<u64>, String>> {
        Box::pin(async { Ok(None) })
    }
}

fn shared_fresh() -> Arc<Shared> {
    shared()
}

/// Several proofs in one stored block: each accepted proof's balance and
/// clicks are the values right after it, as execution reported them.
#[test]
fn a_stored_block_gives_each_proof_its_own_result() {
    let mut chain = ChainState::default();
    let mut a = proof(1);
    let mut b = proof(1);
    b.nonce = Nonce::parse("second").expect("nonce");
    b.timestamp = Timestamp::from_unix_ms(1_767_225_700_000).expect("time");
    b.signature = Ok([9; 65]);
    a.signature = Ok([8; 65]);
    let c = proof(2);
    let batch = Batch {
        proofs: vec![a, b, a, c],
        pubkeys: vec![[0; 64]; 4],
        digest: [1; 32],
    };
    let out = chain
        .apply_block(
            &Limits::default(),
            Height(1),
            ValueId([1; 32]),
            std::slice::from_ref(&batch),
        )
        .expect("in-memory state");
    let rec = DecidedRecord {
        height: 1,
        block: BlockData::new([WireBatch::from_batch(&batch).expect("wire")])
            .encode()
            .expect("encodes"),
        certificate: Vec::new(),
        changes: out.changes,
        root: out.root,
    };
    let from_store = super::super::recovery::journal_block(&rec).expect("decodes");
    let from_journal = chain.journal.after(0).next().expect("journal").clone();
    assert_eq!(from_store, from_journal);
    assert!(
        from_store.entries[2].result.is_err(),
        "the replay is rejected"
    );
}

/// The node's batch queue is gone: the forwarder fails the proofs of
/// every batch it cannot hand over (they used to stay pending).
#[test]
fn a_batch_that_cannot_be_forwarded_fails_its_proofs() {
    let shared = shared();
    let config = crate::config::Config::default();
    let clock = Clock::new(|| 1_767_225_600_000);
    let mut pc = super::super::local::pipeline_config(&config, clock);
    pc.workers = 1;
    pc.pin_workers = false;
    let shards = shared.precheck.states();
    let sink = Arc::clone(&shared);
    let pipeline = Arc::new(Pipeline::new(pc, shards, move |v| {
        sink.intake.deliver(v, &sink.finality);
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let t = step_engine::signing::root_triangle();
    let waits: Vec<_> = (0..2u64)
        .map(|k| {
            let key = step_engine::signing::key("forward", k);
            let body = step_engine::signing::simple_body(&key, &t, "n");
            let submission = shared
                .intake
                .submit(
                    &pipeline,
                    &step_engine::proof::parse(&body).expect("parses"),
                )
                .expect("queued");
            let pending = rt
                .block_on(submission.verdict())
                .expect("accepted by the pipeline");
            lock(&shared.finality).wait(pending.id)
        })
        .collect();
    assert_eq!(shared.precheck.pending(), 2);
    pipeline.flush();
    // The node's batch queue is gone before the forwarder starts.
    let (submit, batches) = tokio::sync::mpsc::channel(1);
    drop(batches);
    let fwd = {
        let (pipeline, shared) = (Arc::clone(&pipeline), Arc::clone(&shared));
        std::thread::spawn(move || forward(&pipeline, &shared, &submit))
    };
    for wait in waits {
        let r = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), wait).await })
            .expect("settled, not left pending");
        assert!(
            matches!(&r, Err(FinalityError::NotForwarded { reason }) if reason.contains("stopped")),
            "{r:?}"
        );
    }
    assert_eq!(shared.precheck.pending(), 0, "the pre-check forgot them");
    assert!(!shared.alive.load(Ordering::Acquire));
    // The forwarder holds the pipeline and ends with it (at process exit
    // here), as in `ConsensusLedger::close`, which does not join it.
    assert!(!fwd.is_finished(), "it keeps failing later batches");
}
