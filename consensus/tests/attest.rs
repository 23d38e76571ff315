//! Validity attestations on four validators (`consensus.validity =
//! "attested"`; ADR 0046): a byzantine validator that attests
//! a forged batch is named in evidence and the batch is never finalized;
//! with f = 1 validator crashed the network stays live (the fallback
//! attesters stand in for it).

mod support;

use std::time::Duration;

use step_consensus::attest::ValidityMode;
use support::proofs::signed_batches as batches;

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_attester_of_a_forged_batch_is_named_and_the_batch_never_finalized() {
    let (_serial, seed, mut c) = support::cluster("byzantine_attester", 4).await;
    c.app.validity = ValidityMode::Attested;
    c.start_all().await;
    c.wait_height(&[0, 1, 2, 3], 1, DEADLINE).await;
    // Validator `bad` ingests a batch whose proof 4 was altered after
    // signing and attests it (its own pipeline is bypassed): f = 1 of 4.
    let mut bad_batch = batches(&format!("forged-{seed}"), 10, 10).remove(0);
    bad_batch.proofs[4].lat_bits = (f64::from_bits(bad_batch.proofs[4].lat_bits) + 1e-5).to_bits();
    let bad = c.index_of(&c.validators.validators()[0].address);
    c.submit(bad, bad_batch.clone()).await;
    let good = batches(&format!("good-{seed}"), 60, 10);
    let total: u64 = good.iter().map(|b| b.len() as u64).sum();
    let others: Vec<usize> = (0..4).filter(|i| *i != bad).collect();
    for (k, b) in good.into_iter().enumerate() {
        c.submit(others[k % 3], b).await;
    }
    c.wait("the good proofs accepted everywhere", DEADLINE, |c| {
        (0..4).all(|i| c.accepted_total(i) == total)
    })
    .await;
    // Every honest validator verifies the forged batch once (its designated
    // attester at once, the others at their fallback) and names `bad`.
    c.wait("evidence against the byzantine attester", DEADLINE, |c| {
        let log = c.log.lock().expect("log");
        others.iter().any(|i| {
            log.attest_evidence
                .iter()
                .any(|(n, e)| n == i && e.digest == bad_batch.digest)
        })
    })
    .await;
    c.assert_agreement();
    {
        let log = c.log.lock().expect("log");
        let bad_addr = c.validators.validators()[0].address;
        for (n, e) in &log.attest_evidence {
            assert!(others.contains(n), "seed {seed}: evidence from node{n}");
            assert_eq!(
                e.offenders(),
                [bad_addr],
                "seed {seed}: only the attester of the forged batch"
            );
            assert_eq!(e.proof_index, Some(4), "seed {seed}: {e:?}");
        }
        let with_bad = log
            .decided
            .values()
            .filter(|d| d.batch_digests.contains(&bad_batch.digest))
            .count();
        assert_eq!(with_bad, 0, "seed {seed}: the forged batch was decided");
    }
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_validator_crashed_attested_batches_are_still_finalized() {
    let (_serial, seed, mut c) = support::cluster("attest_crashed", 4).await;
    c.app.validity = ValidityMode::Attested;
    c.start_all().await;
    c.wait_height(&[0, 1, 2, 3], 1, DEADLINE).await;
    // The crashed validator is rank 1 (the designated attester) for about
    // a third of the batches: those need the fallback attester.
    c.stop(3).await;
    let bs = batches(&format!("crashed-{seed}"), 300, 10);
    let total: u64 = bs.iter().map(|b| b.len() as u64).sum();
    for (k, b) in bs.into_iter().enumerate() {
        c.submit(k % 3, b).await;
    }
    c.wait(
        "every proof accepted on the three live validators",
        DEADLINE,
        |c| (0..3).all(|i| c.accepted_total(i) == total),
    )
    .await;
    c.assert_agreement();
    assert!(
        c.log.lock().expect("log").attest_evidence.is_empty(),
        "seed {seed}: honest validators accused"
    );
    c.stop_all().await;
}
