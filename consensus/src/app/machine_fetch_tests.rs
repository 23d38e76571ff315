//! Digest-only proposals in the core (`machine/fetch.rs`): a proposal whose
//! batch is missing asks for it, completes when a peer supplies it, refuses
//! a supply that is not its digest's, gives up a peer that never answers,
//! and answers others' `Want`s from what it holds, once per cooldown.

use super::attested::{core_of, key, peer, real_batches};
use super::*;
use crate::app::fetch::{FETCH_GIVE_UP, FETCH_RETRY, SUPPLY_COOLDOWN};
use crate::streaming::{supply, wanted};

fn wants(fx: &[Effect]) -> Vec<Vec<[u8; 32]>> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Gossip(m) => wanted(m).map(<[_]>::to_vec),
            _ => None,
        })
        .collect()
}

fn supplies(fx: &[Effect]) -> Vec<[u8; 32]> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Gossip(m) => crate::streaming::supplied(m).map(|b| b.digest),
            _ => None,
        })
        .collect()
}

/// A block of `batch` attested by validators 1 and 3 (a quorum of 4).
fn attested_block(batch: &WireBatch) -> BlockData {
    BlockData::attested(
        [batch.clone()],
        [1, 3]
            .iter()
            .map(|i| Attestation::sign(&key(*i), batch.digest))
            .collect(),
    )
}

/// Feeds the proposal of `block` (height 1, round 0) to `c`.
fn feed_proposal(
    c: &mut Core,
    block: &BlockData,
    now: Instant,
    fx: &mut Vec<Effect>,
) -> Option<Received> {
    let mut out = None;
    for m in split(
        Height(1),
        Round::new(0),
        Round::Nil,
        super::attested::addr(1),
        block,
    ) {
        out = c.received_part(peer(1), None, m, now, fx).or(out);
    }
    out
}

#[test]
fn a_missing_batch_is_asked_for_and_the_proposal_completes_when_it_is_supplied() {
    let bs = real_batches("fetch-supply", 1, 8);
    let block = attested_block(&bs[0]);
    let mut c = core_of(2, 0);
    let now = Instant::now();
    let mut fx = Vec::new();
    assert!(
        feed_proposal(&mut c, &block, now, &mut fx).is_none(),
        "a batch is missing"
    );
    assert_eq!(wants(&fx), vec![vec![bs[0].digest]], "{fx:?}");
    assert_eq!(c.waiting_proposals(), 1);
    fx.clear();
    // A batch whose contents are not its digest's: refused, a strike.
    let mut forged = bs[0].clone();
    forged.proofs[2].lon_bits ^= 1;
    let out = c.received_part(peer(3), None, supply(&Arc::new(forged)), now, &mut fx);
    assert!(
        out.is_none() && c.seen_batches().is_empty(),
        "forged supply kept"
    );
    // The real one completes the proposal, with the proposal's attestations.
    let out = c.received_part(
        peer(4),
        None,
        supply(&Arc::new(bs[0].clone())),
        now,
        &mut fx,
    );
    let r = out.expect("complete once supplied");
    assert_eq!((r.height, r.round), (Height(1), Round::new(0)));
    assert_eq!(r.block, block);
    assert_eq!(c.waiting_proposals(), 0);
    assert!(fx.is_empty(), "{fx:?}");
    assert!(matches!(
        c.check_block(Height(1), &r.block),
        BlockCheck::Sample(_)
    ));
    // Found valid, its batch joins the mempool with its attestations: the
    // next proposer offers it again if this round fails.
    c.adopt(&r.block, &mut fx);
    assert!(c.mempool().contains(&bs[0].digest) && c.has_quorum(&bs[0].digest));
    let mut fx = Vec::new();
    c.get_value(
        Height(1),
        Round::new(1),
        Duration::from_secs(5),
        now,
        &[],
        &mut fx,
    )
    .expect("get value");
    c.timer(now + Duration::from_secs(5), &mut fx)
        .expect("timer");
    let proposed = super::published(&fx).expect("proposed");
    assert_eq!(proposed.value.batch_digests, [bs[0].digest]);
}

#[test]
fn a_gossiped_batch_completes_a_waiting_proposal_too() {
    let bs = real_batches("fetch-gossip", 1, 4);
    let block = attested_block(&bs[0]);
    let mut c = core_of(2, 0);
    let now = Instant::now();
    let mut fx = Vec::new();
    assert!(feed_proposal(&mut c, &block, now, &mut fx).is_none());
    let g = crate::streaming::gossip(
        &Arc::new(bs[0].clone()),
        Attestation::sign(&key(1), bs[0].digest),
    );
    let out = c.received_part(peer(1), None, g, now, &mut fx);
    assert_eq!(out.expect("complete").block, block);
}

#[test]
fn a_peer_that_never_supplies_cannot_hold_the_proposal_forever() {
    let bs = real_batches("fetch-silent", 1, 4);
    let mut c = core_of(2, 0);
    let t0 = Instant::now();
    let mut fx = Vec::new();
    feed_proposal(&mut c, &attested_block(&bs[0]), t0, &mut fx);
    fx.clear();
    assert!(c.deadline().is_some_and(|d| d <= t0 + FETCH_RETRY));
    c.timer(t0 + FETCH_RETRY, &mut fx).expect("timer");
    assert_eq!(wants(&fx), vec![vec![bs[0].digest]], "asked again");
    fx.clear();
    c.timer(t0 + FETCH_GIVE_UP, &mut fx).expect("timer");
    assert_eq!(c.waiting_proposals(), 0, "given up: consensus times it out");
    assert!(wants(&fx).is_empty());
    // A late supply nobody asked for is not kept (no unbounded memory for
    // unsolicited batches).
    let out = c.received_part(
        peer(3),
        None,
        supply(&Arc::new(bs[0].clone())),
        t0 + FETCH_GIVE_UP,
        &mut fx,
    );
    assert!(out.is_none() && c.seen_batches().is_empty());
}

#[test]
fn a_want_is_answered_from_held_batches_once_per_cooldown() {
    let bs = real_batches("fetch-want", 2, 4);
    let mut c = core_of(2, 0);
    let t0 = Instant::now();
    let mut fx = Vec::new();
    c.local_batch(bs[0].clone(), t0, &mut fx)
        .expect("own batch");
    let g = crate::streaming::gossip(
        &Arc::new(bs[1].clone()),
        Attestation::sign(&key(1), bs[1].digest),
    );
    c.received_part(peer(1), None, g, t0, &mut fx);
    fx.clear();
    let w = crate::streaming::want(vec![bs[0].digest, [7; 32], bs[1].digest]);
    c.received_part(peer(3), None, w.clone(), t0, &mut fx);
    let mut got = supplies(&fx);
    got.sort_unstable();
    let mut exp = vec![bs[0].digest, bs[1].digest];
    exp.sort_unstable();
    assert_eq!(
        got, exp,
        "own and seen batches supplied; the unknown one not"
    );
    fx.clear();
    c.received_part(peer(4), None, w.clone(), t0 + SUPPLY_COOLDOWN / 2, &mut fx);
    assert!(
        supplies(&fx).is_empty(),
        "asked again at once: nothing resent"
    );
    c.received_part(peer(4), None, w, t0 + SUPPLY_COOLDOWN, &mut fx);
    assert_eq!(supplies(&fx).len(), 2);
}

#[test]
fn a_proposal_naming_more_batches_than_a_block_may_hold_is_never_fetched() {
    let mut c = core_of(2, 0);
    let now = Instant::now();
    let batches: Vec<WireBatch> = (0..11u8)
        .map(|t| WireBatch {
            proofs: Vec::new(),
            pubkeys: Vec::new(),
            digest: [t; 32],
        })
        .collect();
    let mut fx = Vec::new();
    assert!(feed_proposal(&mut c, &BlockData::new(batches), now, &mut fx).is_none());
    assert!(
        wants(&fx).is_empty() && c.waiting_proposals() == 0,
        "{fx:?}"
    );
}
