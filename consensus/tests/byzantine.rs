//! One of four validators signs two different prevotes (and precommits) in
//! every round, through malachite's byzantine network proxy. Runs with the
//! `byzantine` feature (`cargo test --all-features`).

mod support;

use std::time::Duration;

use step_consensus::evidence::EvidenceRecord;
use step_consensus::{ByzantineConfig, RedbStore, Store, Trigger};
use support::proofs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocating_validator_is_recorded_and_safety_holds() {
    let (_serial, seed, mut c) = support::cluster("byzantine", 4).await;
    for i in 0..3 {
        c.start(i).await.expect("honest node starts");
    }
    let mut s = c.settings(3);
    s.byzantine = Some(ByzantineConfig {
        equivocate_votes: Trigger::Always,
        ..ByzantineConfig::default()
    });
    c.start_with(3, s).await.expect("byzantine node starts");
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
