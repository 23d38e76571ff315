//! Batches: digest, deadline flush, and re-verification of a peer's batch with
//! the public keys it carries: one bad signature, key, address or field makes
//! the whole batch fail, naming the bad proof.

mod pipeline_support;

use pipeline_support as sup;
use sha2::{Digest, Sha256};
use std::time::Duration;
use step_engine::error::SignatureError;
use step_engine::pipeline::{
    reverify_batch, write_canonical, Batch, BatchError, Pipeline, ENTRY_LEN,
};
use step_engine::{Code, Reject, Verifier};

/// Two full batches of fresh proofs from a pipeline with 2 workers.
fn batches() -> Vec<Batch> {
    let bodies = sup::fresh_valid("batch", 200, 9);
    let mut c = sup::config(Verifier::default(), 2);
    c.flush_after = Duration::from_secs(3600);
    let run = sup::run_pipeline(c, &bodies);
    assert!(run.verdicts.iter().all(Result::is_ok));
    assert_eq!(run.batches.len(), 2);
    run.batches
}

/// The proof a default verifier names when it re-verifies `b`.
fn bad_index(b: &Batch) -> (usize, Reject) {
    match reverify_batch(&Verifier::default(), b) {
        Err(BatchError::Proof { index, reason }) => (index, reason),
        other => panic!("expected a named bad proof, got {other:?}"),
    }
}

#[test]
fn good_batches_reverify_and_digest_is_sha256_of_the_encoding() {
    let v = Verifier::default();
    for b in batches() {
        assert_eq!(reverify_batch(&v, &b), Ok(()));
        let mut enc = Vec::new();
        write_canonical(&b, &mut enc).expect("encode");
        assert_eq!(enc.len(), 14 + 100 * ENTRY_LEN + 4);
        let d: [u8; 32] = Sha256::digest(&enc).into();
        assert_eq!(d, b.digest);
    }
}

#[test]
fn one_bad_signature_is_named() {
    let mut b = batches().remove(0);
    let mut sig = b.proofs[37].signature.expect("signed");
    sig[10] ^= 0x01;
    b.proofs[37].signature = Ok(sig);
    let (index, reason) = bad_index(&b);
    assert_eq!(index, 37);
    assert_eq!(reason.code(), Code::BadSignature);

    // Another proof's signature by the same account (a real signature, over
    // another message).
    let mut b = batches().remove(0);
    let same = (0..100)
        .find(|&j| j != 20 && b.proofs[j].account == b.proofs[20].account)
        .expect("same account");
    b.proofs[20].signature = b.proofs[same].signature;
    assert_eq!(bad_index(&b).0, 20);

    // The high-s twin of a valid signature (s' = n − s, v flipped) verifies
    // against the key but breaks the low-s policy.
    let mut b = batches().remove(0);
    let mut sig = b.proofs[3].signature.expect("signed");
    let n: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFE, 0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36,
        0x41, 0x41,
    ];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = d.rem_euclid(256) as u8;
    }
    sig[64] = 55 - sig[64]; // 27 <-> 28
    b.proofs[3].signature = Ok(sig);
    assert_eq!(bad_index(&b), (3, Reject::Signature(SignatureError::HighS)));
}

#[test]
fn one_bad_key_or_address_is_named() {
    let mut b = batches().remove(1);
    // A real key of another account: its address is not the proof's account.
    let other = (0..100)
        .find(|&j| b.proofs[j].account != b.proofs[64].account)
        .expect("other account");
    b.pubkeys[64] = b.pubkeys[other];
    let (index, reason) = bad_index(&b);
    assert_eq!(index, 64);
    assert!(
        matches!(reason, Reject::SignerMismatch { .. }),
        "{reason:?}"
    );

    // The proof claims the other account, and carries its key: address and key
    // agree, but the signature was made by the original account's key.
    let mut b = batches().remove(1);
    b.proofs[64].account = b.proofs[other].account;
    b.pubkeys[64] = b.pubkeys[other];
    let (index, reason) = bad_index(&b);
    assert_eq!(index, 64);
    assert_eq!(reason.code(), Code::BadSignature);

    // A key that is not a curve point.
    let mut b = batches().remove(1);
    b.pubkeys[99] = [7; 64];
    assert_eq!(bad_index(&b).0, 99);

    // A payload field changed after signing.
    let mut b = batches().remove(1);
    b.proofs[0].accuracy_m += 0.5;
    assert_eq!(
        bad_index(&b),
        (0, Reject::Signature(SignatureError::RecoveryFailed))
    );
}

#[test]
fn digest_and_shape_are_checked() {
    let v = Verifier::default();
    let mut all = batches();
    let mut b = all.remove(0);
    b.digest[0] ^= 1;
    assert!(matches!(
        reverify_batch(&v, &b),
        Err(BatchError::Digest { .. })
    ));

    // Two proofs (and keys) swapped: every proof is fine, the digest is not.
    let mut b = all.remove(0);
    b.proofs.swap(1, 2);
    b.pubkeys.swap(1, 2);
    assert!(matches!(
        reverify_batch(&v, &b),
        Err(BatchError::Digest { .. })
    ));

    let mut b = batches().remove(0);
    b.pubkeys.pop();
    assert_eq!(
        reverify_batch(&v, &b),
        Err(BatchError::Shape {
            proofs: 100,
            pubkeys: 99
        })
    );
}

#[test]
fn partial_batch_is_flushed_after_the_deadline() {
    let bodies = sup::fresh_valid("deadline", 5, 5);
    let mut c = sup::config(Verifier::default(), 2);
    c.flush_after = Duration::from_millis(20);
    let p = Pipeline::with_memory_state(c, |_| {});
    assert_eq!(p.submit_slice(&bodies, 0), 5);
    // No finish, no flush call: only the deadline can emit these 5 proofs.
    let b = p
        .next_batch(Duration::from_secs(30))
        .expect("partial batch after the deadline");
    assert_eq!(b.len(), 5);
    assert_eq!(p.reverify_batch(&b), Ok(()));
    assert_eq!(p.stats().batches, 1);
    let fin = p.finish();
    assert!(fin.batches.is_empty());
    assert_eq!(fin.stats.accepted, 5);
}
