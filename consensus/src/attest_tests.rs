//! Attestations: signatures, quorums, the rotation, the sampler.

use super::*;
use crate::context::Validator;

fn key(i: u8) -> PrivateKey {
    PrivateKey::from([i; 32])
}

fn set(n: u8) -> ValidatorSet {
    ValidatorSet::new(
        (1..=n)
            .map(|i| Validator::new(PublicKey(key(i).verification_key().to_bytes()), 10))
            .collect(),
    )
}

#[test]
fn an_attestation_verifies_only_for_its_digest_and_its_signer_in_the_set() {
    let vs = set(4);
    let a = Attestation::sign(&key(1), [7; 32]);
    assert_eq!(a.check(&vs), Ok(10));
    let mut other = a.clone();
    other.digest = [8; 32];
    assert_eq!(
        other.check(&vs),
        Err(AttestError::BadSignature {
            validator: a.validator
        })
    );
    let outsider = Attestation::sign(&key(9), [7; 32]);
    assert_eq!(
        outsider.check(&vs),
        Err(AttestError::OutsideSet {
            validator: outsider.validator
        })
    );
}

#[test]
fn a_quorum_is_more_than_a_third_of_the_power_counted_once_per_validator() {
    let vs = set(4);
    let d = [[5; 32]];
    let one = vec![Attestation::sign(&key(1), d[0])];
    assert!(matches!(
        check_quorums(&d, &one, &vs),
        Err(AttestFault::Short {
            power: 10,
            total: 40,
            ..
        })
    ));
    let dup = vec![one[0].clone(), one[0].clone()];
    assert!(
        matches!(
            check_quorums(&d, &dup, &vs),
            Err(AttestFault::Short { power: 10, .. })
        ),
        "a duplicate counts once"
    );
    let two = vec![one[0].clone(), Attestation::sign(&key(2), d[0])];
    assert_eq!(check_quorums(&d, &two, &vs), Ok(()));
    let stray = vec![Attestation::sign(&key(3), [6; 32])];
    assert_eq!(
        check_quorums(&d, &[two.clone(), stray].concat(), &vs),
        Err(AttestFault::Stray { digest: [6; 32] })
    );
    assert_eq!(max_faulty(&vs), 1);
    assert_eq!(max_faulty(&set(7)), 2);
}

#[test]
fn the_rotation_ranks_every_other_validator_once_and_spreads_rank_one() {
    let vs = set(4);
    let addrs: Vec<ValidatorAddress> = vs.validators().iter().map(|v| v.address).collect();
    let ingester = addrs[0];
    let mut first = std::collections::HashMap::new();
    for t in 0..=255u8 {
        let mut d = [0u8; 32];
        d[7] = t;
        let mut ranks: Vec<usize> = addrs
            .iter()
            .map(|a| rank(&vs, &d, &ingester, a).expect("in the set"))
            .collect();
        let r1 = addrs[ranks.iter().position(|r| *r == 1).expect("a rank 1")];
        *first.entry(r1).or_insert(0) += 1;
        ranks.sort_unstable();
        assert_eq!(ranks, [0, 1, 2, 3]);
    }
    assert_eq!(
        first.len(),
        3,
        "each other validator is rank 1 for some batches"
    );
    assert!(first.values().all(|n| *n >= 80), "{first:?}");
    let outsider = ValidatorAddress([0; 20]);
    assert_eq!(rank(&vs, &[0; 32], &ingester, &outsider), None);
}

#[test]
fn the_sampler_is_deterministic_per_seed_and_near_its_rate() {
    let batch = WireBatch {
        proofs: vec![
            crate::block::WireProof {
                account: [0; 20],
                triangle: step_engine::TriangleId::new(3, &[1, 2, 3]).expect("triangle"),
                lat_bits: 0,
                lon_bits: 0,
                accuracy_m_bits: 0,
                timestamp: step_engine::proof::Timestamp::from_unix_ms(1_767_225_600_000)
                    .expect("timestamp"),
                nonce: step_engine::proof::Nonce::parse("n").expect("nonce"),
                signature: [0; 65],
            };
            1_000
        ],
        pubkeys: vec![[0; 64]; 1_000],
        digest: [3; 32],
    };
    let s = Sampler::new([1; 32], 30_000);
    assert_eq!(s.pick(&batch), s.pick(&batch));
    let n = s.pick(&batch).len();
    assert!((10..=60).contains(&n), "{n} of 1,000 at 3 %");
    assert_ne!(s.pick(&batch), Sampler::new([2; 32], 30_000).pick(&batch));
    assert_eq!(Sampler::new([1; 32], 1_000_000).pick(&batch).len(), 1_000);
    assert!(Sampler::new([1; 32], 0).pick(&batch).is_empty());
}
