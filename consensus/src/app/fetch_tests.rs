//! The digest-only tables' rules: bounds, completion, retries, cooldown.

use super::*;
use crate::block::WireProof;
use crate::context::{Height, ValidatorAddress, Value, ValueId};
use malachitebft_core_types::Round;

fn batch(tag: u8) -> Arc<WireBatch> {
    Arc::new(WireBatch {
        proofs: Vec::new(),
        pubkeys: Vec::new(),
        digest: [tag; 32],
    })
}

fn proposal(height: u64, round: u32, digests: &[u8]) -> Assembled {
    Assembled {
        height: Height(height),
        round: Round::new(round),
        valid_round: Round::Nil,
        proposer: ValidatorAddress([0; 20]),
        announced_id: ValueId([round as u8; 32]),
        value: Value {
            batch_digests: digests.iter().map(|t| [*t; 32]).collect(),
            prev_root: [0; 32],
        },
        attestations: Vec::new(),
    }
}

fn set(tags: &[u8]) -> HashSet<[u8; 32]> {
    tags.iter().map(|t| [*t; 32]).collect()
}

#[test]
fn seen_batches_are_bounded_in_count_oldest_first() {
    let mut s = SeenBatches::default();
    for i in 0..SEEN_BATCHES_MAX + 3 {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&(i as u64).to_be_bytes());
        s.insert(&Arc::new(WireBatch {
            proofs: Vec::new(),
            pubkeys: Vec::new(),
            digest: d,
        }));
    }
    assert_eq!(s.len(), SEEN_BATCHES_MAX);
    let first = [0u8; 32];
    assert!(s.get(&first).is_none(), "the oldest went first");
}

#[test]
fn seen_batches_are_bounded_in_bytes() {
    let proof = WireProof {
        account: [7; 20],
        triangle: step_engine::TriangleId::new(3, &[1, 2, 3]).expect("triangle"),
        lat_bits: 1.5f64.to_bits(),
        lon_bits: 2.5f64.to_bits(),
        accuracy_m_bits: 5.0f64.to_bits(),
        timestamp: step_engine::proof::Timestamp::from_unix_ms(1_767_225_600_000)
            .expect("timestamp"),
        nonce: step_engine::proof::Nonce::parse("nonce-1").expect("nonce"),
        signature: [1; 65],
    };
    let digest = |i: usize| {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&(i as u64).to_be_bytes());
        d
    };
    let big = |i: usize| {
        Arc::new(WireBatch {
            proofs: vec![proof; crate::block::MAX_PROOFS_PER_BATCH],
            pubkeys: vec![[0; 64]; crate::block::MAX_PROOFS_PER_BATCH],
            digest: digest(i),
        })
    };
    let size = big(0).encoded_len();
    let fits = SEEN_BYTES_MAX / size;
    let mut s = SeenBatches::default();
    for i in 0..fits + 2 {
        s.insert(&big(i));
    }
    assert!(s.bytes() <= SEEN_BYTES_MAX, "{} bytes kept", s.bytes());
    assert_eq!(s.len(), fits);
    assert!(s.get(&digest(1)).is_none() && s.get(&digest(2)).is_some());
    s.remove(&[digest(fits + 1)]);
    assert_eq!(s.len(), fits - 1, "a decided batch leaves");
    assert_eq!(s.bytes(), (fits - 1) * size, "and its bytes with it");
}

#[test]
fn a_waiting_proposal_completes_when_its_last_batch_arrives() {
    let now = Instant::now();
    let mut w = Waiting::default();
    w.add(proposal(1, 0, &[1, 2, 3]), set(&[1, 3]), now);
    w.add(proposal(1, 0, &[1, 2, 3]), set(&[1, 3]), now);
    assert_eq!(w.len(), 1, "the same proposal waits once");
    assert!(w.wants(&[3; 32]) && !w.wants(&[2; 32]));
    assert!(w.arrived(&[3; 32]).is_empty(), "one still missing");
    let done = w.arrived(&[1; 32]);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].height, Height(1));
    assert!(w.is_empty());
}

#[test]
fn waiting_is_bounded_and_dropped_at_execution() {
    let now = Instant::now();
    let mut w = Waiting::default();
    for r in 0..(WAITING_MAX + 2) as u32 {
        w.add(proposal(2, r, &[9]), set(&[9]), now);
    }
    assert_eq!(w.len(), WAITING_MAX, "the oldest dropped");
    w.add(proposal(5, 0, &[9]), set(&[9]), now);
    w.executed(4);
    assert_eq!(w.len(), 1, "heights up to the executed one are gone");
}

#[test]
fn waiting_asks_again_every_retry_and_gives_up_at_last() {
    let t0 = Instant::now();
    let mut w = Waiting::default();
    w.add(proposal(1, 0, &[1, 2]), set(&[1, 2]), t0);
    w.add(proposal(1, 1, &[2]), set(&[2]), t0);
    assert_eq!(w.deadline(), Some(t0 + FETCH_RETRY));
    assert_eq!(w.due(t0 + FETCH_RETRY / 2), Due::default(), "not yet");
    let due = w.due(t0 + FETCH_RETRY);
    assert_eq!(due.want, vec![[1; 32], [2; 32]], "each digest once");
    assert!(due.given_up.is_empty());
    assert_eq!(w.deadline(), Some(t0 + 2 * FETCH_RETRY));
    let due = w.due(t0 + FETCH_GIVE_UP);
    assert_eq!(due.given_up, vec![(1, 0), (1, 1)]);
    assert!(due.want.is_empty() && w.is_empty() && w.deadline().is_none());
}

#[test]
fn a_digest_is_supplied_once_per_cooldown_and_only_when_held() {
    let t0 = Instant::now();
    let mut s = Supplies::default();
    let held = [batch(1), batch(2)];
    let find = |d: &[u8; 32]| held.iter().find(|b| b.digest == *d);
    let digests = |v: Vec<Arc<WireBatch>>| v.iter().map(|b| b.digest[0]).collect::<Vec<_>>();
    let wanted = [[1; 32], [7; 32], [2; 32]];
    assert_eq!(digests(s.answer(&wanted, t0, find)), [1, 2], "not held: 7");
    assert!(
        s.answer(&wanted, t0 + SUPPLY_COOLDOWN / 2, find).is_empty(),
        "asked again within the cooldown: nothing resent"
    );
    assert_eq!(
        digests(s.answer(&wanted, t0 + SUPPLY_COOLDOWN, find)),
        [1, 2]
    );
    let many = vec![[1; 32]; SUPPLY_PER_WANT_MAX + 10];
    let t = t0 + 4 * SUPPLY_COOLDOWN;
    assert_eq!(s.answer(&many, t, find).len(), 1, "a repeated digest once");
}
