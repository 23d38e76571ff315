//! One of four validators signs two different prevotes (and precommits) in
//! every round, through malachite's byzantine network proxy. Runs with the
//! `byzantine` feature (`cargo test --all-features`).

mod support;

use std::time::Duration;

use step_consensus::evidence::EvidenceRecord;
use step_consensus::NodeSettings;
use step_consensus::{ByzantineConfig, RedbStore, Store, Trigger, Withhold};
use support::{proofs, Cluster};

/// Starts validators 0–2 honest and validator 3 with `byzantine` applied
/// to its settings.
async fn start_with_byzantine_node3(c: &mut Cluster, byzantine: impl FnOnce(&mut NodeSettings)) {
    for i in 0..3 {
        c.start(i).await.expect("honest node starts");
    }
    let mut s = c.settings(3);
    byzantine(&mut s);
    c.start_with(3, s).await.expect("byzantine node starts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocating_validator_is_recorded_and_safety_holds() {
    let (_serial, seed, mut c) = support::cluster("byzantine", 4).await;
    start_with_byzantine_node3(&mut c, |s| {
        s.byzantine = Some(ByzantineConfig {
            equivocate_votes: Trigger::Always,
            ..ByzantineConfig::default()
        })
    })
    .await;
    let bs = proofs::batches(&proofs::bodies(&format!("byz-{seed}"), 120), 10);
    let total: u64 = bs.iter().map(|b| b.len() as u64).sum();
    for (k, b) in bs.into_iter().enumerate() {
        c.submit(k % 3, b).await;
    }
    let deadline = Duration::from_secs(90);
    c.wait("every proof accepted on the honest nodes", deadline, |c| {
        (0..3).all(|i| c.accepted_total(i) == total)
    })
    .await;
    c.wait("evidence on an honest node", deadline, |c| {
        c.log
            .lock()
            .expect("log")
            .evidence
            .iter()
            .any(|(i, _)| *i < 3)
    })
    .await;
    c.wait_height(&[0, 1, 2], 4, deadline).await;
    c.assert_agreement();

    let byz = step_consensus::ValidatorAddress::from_public_key(&step_consensus::PublicKey(
        c.keys[3].verification_key().to_bytes(),
    ));
    let heights: Vec<(usize, u64)> = {
        let log = c.log.lock().expect("log");
        for (i, e) in log.evidence.iter().filter(|(i, _)| *i < 3) {
            assert_eq!(
                e.vote_offenders(),
                vec![byz],
                "seed {seed}: node{i} accused the wrong validator"
            );
            assert!(
                e.verify(&c.app.chain, &c.validators),
                "seed {seed}: node{i} kept evidence whose signatures do not verify"
            );
        }
        log.evidence
            .iter()
            .filter(|(i, _)| *i < 3)
            .map(|(i, e)| (*i, e.height))
            .collect()
    };
    c.stop_all().await;
    // The evidence is in each node's store, with the height it was seen at.
    for (i, h) in heights {
        let store = RedbStore::open(&c.settings(i).store_path()).expect("store");
        let bytes = store.evidence(h).expect("read").expect("evidence stored");
        let rec: EvidenceRecord = borsh::from_slice(&bytes).expect("decode");
        assert_eq!(rec.vote_offenders(), vec![byz]);
    }
}

/// Digest-only proposals: a validator that never gossips its batches
/// proposes them by digest only, so the others must fetch every one of them
/// (`Want` → `Supply`) before they can prevote; all its proofs finalize.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_a_proposer_never_gossiped_are_fetched_and_finalized() {
    let (_serial, seed, mut c) = support::cluster("withhold_gossip", 4).await;
    start_with_byzantine_node3(&mut c, |s| s.withhold = Some(Withhold::Gossip)).await;
    c.wait_height(&[0, 1, 2, 3], 1, Duration::from_secs(60))
        .await;
    let bs = proofs::batches(&proofs::bodies(&format!("withhold-{seed}"), 80), 10);
    let total: u64 = bs.iter().map(|b| b.len() as u64).sum();
    for b in bs {
        c.submit(3, b).await;
    }
    c.wait(
        "node3's proofs accepted everywhere",
        Duration::from_secs(90),
        |c| (0..4).all(|i| c.accepted_total(i) == total),
    )
    .await;
    c.assert_agreement();
    let fetched: Vec<u64> = (0..3).map(|i| c.fetched_batches(i)).collect();
    let gossiped: Vec<u64> = c.gossip_batches_now(&[0, 1, 2]);
    assert_eq!(gossiped, [0, 0, 0], "seed {seed}: node3 gossiped a batch");
    assert!(
        fetched.iter().all(|f| *f >= 1) && fetched.iter().sum::<u64>() >= 8,
        "seed {seed}: the 8 batches reached the others only by fetch: fetched {fetched:?}"
    );
    c.stop_all().await;
}

/// A proposer whose batches nobody can get (never gossiped, never supplied)
/// cannot stall a height: the others time its proposal out, prevote nil,
/// and the next round's proposer decides the height with honest batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposer_that_never_supplies_its_batches_cannot_stall_the_chain() {
    let (_serial, seed, mut c) = support::cluster("withhold_batches", 4).await;
    start_with_byzantine_node3(&mut c, |s| s.withhold = Some(Withhold::Batches)).await;
    c.wait_height(&[0, 1, 2, 3], 1, Duration::from_secs(60))
        .await;
    // node3 always holds batches to propose; the honest nodes get theirs
    // in a few at a time.
    let hidden = proofs::batches(&proofs::bodies(&format!("hidden-{seed}"), 200), 10);
    for b in hidden {
        c.submit(3, b).await;
    }
    let honest = proofs::batches(&proofs::bodies(&format!("honest-{seed}"), 120), 10);
    let total: u64 = honest.iter().map(|b| b.len() as u64).sum();
    for (k, b) in honest.into_iter().enumerate() {
        c.submit(k % 3, b).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let deadline = Duration::from_secs(120);
    c.wait(
        "the honest proofs accepted on the honest nodes",
        deadline,
        |c| (0..3).all(|i| c.accepted_total(i) == total),
    )
    .await;
    let start = c.height(0);
    c.wait_height(&[0, 1, 2], start + 4, deadline).await;
    c.assert_agreement();
    // Every height node3 proposed in round 0 was decided in a later round,
    // by another proposer, without node3's batches.
    let decided: Vec<_> = {
        let log = c.log.lock().expect("log");
        log.decided
            .iter()
            .filter(|((i, _), _)| *i == 0)
            .map(|(k, d)| (*k, d.clone()))
            .collect()
    };
    let mut its_turns = 0;
    for ((i, h), d) in &decided {
        let p = c
            .validators
            .proposer(step_consensus::Height(*h), step_consensus::Round::new(0));
        if c.index_of(&p.address) == 3 && *h > 1 {
            its_turns += 1;
            assert!(
                d.round >= 1,
                "seed {seed}: node{i} decided height {h} of node3 in round 0 ({} batches, {} proofs)",
                d.batch_digests.len(),
                d.proofs
            );
        }
    }
    assert!(its_turns >= 1, "seed {seed}: node3 never had a turn");
    assert!(
        (0..3).all(|i| c.accepted_total(i) == total),
        "seed {seed}: a hidden batch was finalized"
    );
    c.stop_all().await;
}
