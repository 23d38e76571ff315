//! The core's validity attestations (`"attested"`, ADR 0046) on four
//! validators with real keys: the quorum rule of a received block, the
//! designated attesters and the fallback, the attested block a proposer
//! builds, and the evidence of a forged proof.

use super::*;
use crate::attest::{AttestError, AttestFault, Attestation};
use crate::context::{PublicKey, Validator};
use step_engine::pipeline::{Clock, Pipeline, PipelineConfig};
use step_engine::Verifier;

fn key(i: u8) -> PrivateKey {
    PrivateKey::from([i; 32])
}

fn addr(i: u8) -> ValidatorAddress {
    ValidatorAddress::from_public_key(&PublicKey(key(i).verification_key().to_bytes()))
}

fn set() -> ValidatorSet {
    ValidatorSet::new(
        (1..=4)
            .map(|i| Validator::new(PublicKey(key(i).verification_key().to_bytes()), 10))
            .collect(),
    )
}

fn peer(k: u8) -> PeerId {
    let mut bytes = vec![0x00, 0x20];
    bytes.extend_from_slice(&[k; 32]);
    PeerId::from_bytes(&bytes).expect("peer id")
}

/// Validator `me` (1–4) of the set, attested mode, sampling `ppm`.
fn core_of(me: u8, ppm: u32) -> Core {
    let cfg = AppConfig {
        max_batches_per_block: 10,
        propose_wait: Duration::from_millis(200),
        attest_sample_ppm: ppm,
        attest_fallback: Duration::from_millis(300),
        validity: crate::attest::ValidityMode::Attested,
        ..AppConfig::default()
    };
    Core::new(cfg, key(me), set(), 0, [0; 32])
}

/// Real batches of `n` fresh proofs each, made by the engine's pipeline.
fn real_batches(tag: &str, batches: usize, n: usize) -> Vec<WireBatch> {
    let bodies = step_testkit::one_per_account(tag, batches * n);
    let mut cfg = PipelineConfig::new(Verifier::default(), Clock::fixed(step_testkit::T0));
    cfg.workers = 1;
    cfg.pin_workers = false;
    cfg.batch_size = n;
    cfg.capacity = bodies.len();
    cfg.batch_queue = batches + 2;
    let p = Pipeline::with_memory_state(cfg, |v| assert!(v.result.is_ok(), "{v:?}"));
    assert_eq!(p.submit_slice(&bodies, 0), bodies.len());
    p.finish()
        .batches
        .iter()
        .map(|b| WireBatch::from_batch(b).expect("wire batch"))
        .collect()
}

/// `batch` with proof 3's latitude moved after signing: its signature no
/// longer matches, and neither does the carried digest.
fn forged(mut batch: WireBatch) -> WireBatch {
    batch.proofs[3].lat_bits = (f64::from_bits(batch.proofs[3].lat_bits) + 1e-5).to_bits();
    batch
}

fn atts(digest: [u8; 32], by: &[u8]) -> Vec<Attestation> {
    by.iter()
        .map(|i| Attestation::sign(&key(*i), digest))
        .collect()
}

fn block(batch: &WireBatch, by: &[u8]) -> BlockData {
    BlockData::attested([batch.clone()], atts(batch.digest, by))
}

fn fault(c: &Core, b: &BlockData) -> Option<AttestFault> {
    match c.check_block(Height(1), b) {
        BlockCheck::Invalid(BlockFault::Attestation(f)) => Some(f),
        _ => None,
    }
}

#[test]
fn a_block_needs_f_plus_one_distinct_attestations_from_the_set() {
    let c = core_of(1, 0);
    let b = real_batches("quorum", 1, 5).remove(0);
    // f = 1 of 4: one attestation is short, two make the quorum.
    assert!(matches!(
        fault(&c, &block(&b, &[2])),
        Some(AttestFault::Short {
            power: 10,
            total: 40,
            ..
        })
    ));
    assert!(
        matches!(c.check_block(Height(1), &block(&b, &[2, 3])), BlockCheck::Sample(ref t) if t.len() == 1),
        "f+1 attestations: only the digest and a sample are checked"
    );
    // One validator twice counts once.
    assert!(matches!(
        fault(&c, &block(&b, &[2, 2])),
        Some(AttestFault::Short { power: 10, .. })
    ));
    // An attester outside the set makes the block invalid.
    assert_eq!(
        fault(&c, &block(&b, &[2, 3, 9])),
        Some(AttestFault::Attestation(AttestError::OutsideSet {
            validator: addr(9)
        }))
    );
    // A signature over another digest does not count.
    let mut wrong = block(&b, &[2, 3]);
    wrong.attestations[1] = Attestation {
        digest: b.digest,
        ..Attestation::sign(&key(3), [0; 32])
    };
    assert_eq!(
        fault(&c, &wrong),
        Some(AttestFault::Attestation(AttestError::BadSignature {
            validator: addr(3)
        }))
    );
    // A batch without attestations, under "all", would be verified instead.
    assert!(matches!(
        fault(&c, &BlockData::new([b.clone()])),
        Some(AttestFault::Short { power: 0, .. })
    ));
}

#[test]
fn sample_re_verification_catches_a_forged_proof_and_names_the_attesters() {
    let verifier = Verifier::default();
    let b = forged(real_batches("forged", 1, 8).remove(0));
    // Two byzantine validators attest the forged batch: a quorum.
    let blk = block(&b, &[2, 3]);
    // Every proof sampled: the forged one is found by index.
    let mut c = core_of(1, 1_000_000);
    let BlockCheck::Sample(todo) = c.check_block(Height(1), &blk) else {
        panic!("attested: sample")
    };
    let (bad, why) = sample_batches(&verifier, &todo).expect_err("forged proof found");
    assert_eq!(why.index, Some(3), "{why:?}");
    let mut fx = Vec::new();
    c.sample_failed(&blk, &bad, &why, &mut fx);
    let evidence: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::PutAttestEvidence(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].offenders(), [addr(2), addr(3)]);
    assert_eq!(evidence[0].proof_index, Some(3));
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Emit(NodeEvent::AttestEvidence(_)))));
    assert_eq!(c.attest_evidence().count(), 1, "kept");
    // Nothing sampled: the content no longer hashes to the attested digest.
    let c = core_of(1, 0);
    let BlockCheck::Sample(todo) = c.check_block(Height(1), &blk) else {
        panic!("attested: sample")
    };
    assert!(todo[0].1.is_empty(), "no proof sampled");
    let (_, why) = sample_batches(&verifier, &todo).expect_err("digest mismatch");
    assert!(why.reason.contains("digest"), "{why:?}");
    // The honest batch passes both.
    let good = real_batches("honest", 1, 8).remove(0);
    let c = core_of(1, 1_000_000);
    let BlockCheck::Sample(todo) = c.check_block(Height(1), &block(&good, &[2, 3])) else {
        panic!("attested: sample")
    };
    assert_eq!(sample_batches(&verifier, &todo), Ok(()));
}

/// (digest tag at byte 7) → the validators ranked 1 and 2 for ingester 1.
fn ranked(digest: &[u8; 32]) -> Vec<ValidatorAddress> {
    let vs = set();
    let mut others: Vec<(usize, ValidatorAddress)> = (2..=4)
        .map(|i| {
            let a = addr(i);
            (
                crate::attest::rank(&vs, digest, &addr(1), &a).expect("rank"),
                a,
            )
        })
        .collect();
    others.sort();
    others.into_iter().map(|(_, a)| a).collect()
}

fn index_of(a: ValidatorAddress) -> u8 {
    (1..=4).find(|i| addr(*i) == a).expect("in the set")
}

#[test]
fn only_the_designated_attester_verifies_and_the_next_one_falls_back() {
    let b = Arc::new(real_batches("designated", 1, 4).remove(0));
    let order = ranked(&b.digest);
    let ingester_att = Attestation::sign(&key(1), b.digest);
    let now = Instant::now();
    // Rank 1 verifies at once, then attests and gossips its attestation.
    let mut first = core_of(index_of(order[0]), 0);
    let mut fx = Vec::new();
    first.gossip_batch(Arc::clone(&b), &ingester_att, peer(1), now, &mut fx);
    assert!(
        matches!(fx.as_slice(), [Effect::VerifyGossip { .. }]),
        "{fx:?}"
    );
    let mut fx = Vec::new();
    first
        .gossip_verdict(Arc::clone(&b), peer(1), Ok(()), now, &mut fx)
        .expect("verdict");
    let att = fx.iter().find_map(|e| match e {
        Effect::Gossip(m) => crate::streaming::attestation(m).cloned(),
        _ => None,
    });
    assert_eq!(att.as_ref().map(|a| a.validator), Some(order[0]));
    assert!(first.has_quorum(&b.digest), "ingester + rank 1");
    // Rank 2 keeps it unverified; no attestation comes: it verifies it
    // itself after (2 − f) × the fallback, not before.
    let mut second = core_of(index_of(order[1]), 0);
    let mut fx = Vec::new();
    second.gossip_batch(Arc::clone(&b), &ingester_att, peer(1), now, &mut fx);
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::VerifyGossip { .. })),
        "{fx:?}"
    );
    assert!(second.mempool().contains(&b.digest));
    assert_eq!(second.deadline(), Some(now + Duration::from_millis(300)));
    let mut fx = Vec::new();
    second
        .timer(now + Duration::from_millis(299), &mut fx)
        .expect("timer");
    assert!(fx.is_empty(), "{fx:?}");
    second
        .timer(now + Duration::from_millis(300), &mut fx)
        .expect("timer");
    assert!(
        matches!(fx.as_slice(), [Effect::VerifyGossip { .. }]),
        "{fx:?}"
    );
    // Had rank 1's attestation come in time, rank 2 would not verify.
    let mut third = core_of(index_of(order[1]), 0);
    let mut fx = Vec::new();
    third.gossip_batch(Arc::clone(&b), &ingester_att, peer(1), now, &mut fx);
    third.attestation_received(att.expect("attestation"), peer(2), now);
    third
        .timer(now + Duration::from_secs(5), &mut fx)
        .expect("timer");
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::VerifyGossip { .. })),
        "{fx:?}"
    );
}

#[test]
fn a_proposer_includes_only_attested_batches_with_their_attestations() {
    let mut c = core_of(1, 0);
    let bs = real_batches("proposer", 2, 3);
    let mut fx = Vec::new();
    for b in &bs {
        c.local_batch(b.clone(), Instant::now(), &mut fx)
            .expect("local");
    }
    // Another validator attests the second batch only.
    c.attestation_received(
        Attestation::sign(&key(2), bs[1].digest),
        peer(2),
        Instant::now(),
    );
    let now = Instant::now();
    let mut fx = Vec::new();
    c.get_value(Height(1), Round::new(0), T, now, &[], &mut fx)
        .expect("get value");
    c.timer(now + T, &mut fx).expect("timer");
    let block = fx
        .iter()
        .find_map(|e| match e {
            Effect::Publish(m) => {
                let mut r = Reassembler::default();
                m.iter().cloned().find_map(|m| r.insert(peer(0), m))
            }
            _ => None,
        })
        .expect("published")
        .block;
    assert_eq!(block.value.batch_digests, [bs[1].digest]);
    assert_eq!(block.attestations.len(), 2);
    let other = core_of(3, 0);
    assert!(matches!(
        other.check_block(Height(1), &block),
        BlockCheck::Sample(_)
    ));
}

#[test]
fn an_attester_that_finds_a_forged_proof_records_evidence_against_the_ingester() {
    let b = Arc::new(forged(real_batches("ingester", 1, 4).remove(0)));
    let order = ranked(&b.digest);
    let mut c = core_of(index_of(order[0]), 0);
    let now = Instant::now();
    let mut fx = Vec::new();
    c.gossip_batch(
        Arc::clone(&b),
        &Attestation::sign(&key(1), b.digest),
        peer(1),
        now,
        &mut fx,
    );
    let result = verify_batch(&Verifier::default(), &b);
    assert!(result.is_err());
    let mut fx = Vec::new();
    c.gossip_verdict(Arc::clone(&b), peer(1), result, now, &mut fx)
        .expect("verdict");
    let e = c.attest_evidence().next().expect("evidence");
    assert_eq!(e.offenders(), [addr(1)]);
    assert_eq!(e.proof_index, Some(3));
    assert!(!c.mempool().contains(&b.digest));
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Gossip(_))),
        "no attestation of it"
    );
}

#[test]
fn a_proposer_waits_for_attestations_rather_than_propose_an_empty_block() {
    let mut c = core_of(1, 0);
    let b = real_batches("wait", 1, 3).remove(0);
    let now = Instant::now();
    let mut fx = Vec::new();
    c.local_batch(b.clone(), now, &mut fx).expect("local");
    let mut fx = Vec::new();
    c.get_value(Height(1), Round::new(0), T, now, &[], &mut fx)
        .expect("get value");
    // propose_wait (200 ms) is over, the batch is not attested yet: wait
    // (up to half the timeout); meanwhile the batch is gossiped again.
    c.timer(now + Duration::from_millis(200), &mut fx)
        .expect("timer");
    assert!(proposed(&fx).is_none(), "{fx:?}");
    let mut fx = Vec::new();
    c.timer(now + Duration::from_millis(2_000), &mut fx)
        .expect("timer");
    assert!(proposed(&fx).is_none(), "{fx:?}");
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Gossip(m) if crate::streaming::gossiped(m).is_some())),
        "short of a quorum after 4 × the fallback: gossiped again: {fx:?}"
    );
    // Its quorum forms: the proposal goes at once, with the batch.
    c.attestation_received(Attestation::sign(&key(2), b.digest), peer(2), now);
    assert_eq!(c.deadline(), Some(now + Duration::from_millis(200)));
    c.timer(now + Duration::from_millis(2_001), &mut fx)
        .expect("timer");
    assert!(proposed(&fx).is_some(), "{fx:?}");
}

fn proposed(fx: &[Effect]) -> Option<()> {
    fx.iter()
        .find_map(|e| matches!(e, Effect::Propose { .. }).then_some(()))
}
