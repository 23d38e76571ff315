//! The core's rules, without libp2p, tasks or files.

use super::*;
use crate::context::{PublicKey, Validator};
use crate::execution::ChainState;
use crate::streaming::split;

const T: Duration = Duration::from_secs(5);

fn my_key() -> PrivateKey {
    PrivateKey::from([1; 32])
}

fn me() -> ValidatorAddress {
    ValidatorAddress::from_public_key(&PublicKey(my_key().verification_key().to_bytes()))
}

/// Any attestation: under `"all"` a gossip's attestation is not checked.
fn any_att(tag: u8) -> Attestation {
    Attestation::sign(&my_key(), [tag; 32])
}

fn bad(reason: &str) -> Result<(), VerifyFault> {
    Err(VerifyFault {
        index: None,
        reason: reason.into(),
    })
}

fn peer(k: u8) -> PeerId {
    let mut bytes = vec![0x00, 0x20]; // identity multihash, 32 bytes
    bytes.extend_from_slice(&[k; 32]);
    PeerId::from_bytes(&bytes).expect("peer id")
}

fn core(max_batches: usize) -> Core {
    let cfg = AppConfig {
        max_batches_per_block: max_batches,
        propose_wait: Duration::from_millis(200),
        // These are the rules of `"all"`; `machine_attest_tests.rs` has
        // the attested ones.
        validity: crate::attest::ValidityMode::All,
        ..AppConfig::default()
    };
    let validators = ValidatorSet::new(vec![Validator::new(PublicKey([3; 32]), 1)]);
    Core::new(cfg, my_key(), validators, 0, [0; 32])
}

/// A batch with no proofs whose carried digest is `[tag; 32]` (it fails
/// re-verification: the digest of no proofs is another).
fn batch(tag: u8) -> WireBatch {
    WireBatch {
        proofs: Vec::new(),
        pubkeys: Vec::new(),
        digest: [tag; 32],
    }
}

fn tags(block: &BlockData) -> Vec<u8> {
    block.batches.iter().map(|b| b.digest[0]).collect()
}

/// The block of the `Publish` effect, reassembled.
fn published(fx: &[Effect]) -> Option<BlockData> {
    let msgs = fx.iter().find_map(|e| match e {
        Effect::Publish(m) => Some(m.clone()),
        _ => None,
    })?;
    let mut r = Reassembler::default();
    msgs.into_iter()
        .filter_map(|m| r.insert(peer(0), m))
        .next()
        .map(|a| a.block)
}

fn proposed(fx: &[Effect]) -> Option<(Height, Round, ValueId)> {
    use malachitebft_app_channel::app::types::core::Value as _;
    fx.iter().find_map(|e| match e {
        Effect::Propose {
            height,
            round,
            value,
        } => Some((*height, *round, value.value.id())),
        _ => None,
    })
}

fn local(c: &mut Core, tags: impl IntoIterator<Item = u8>) -> Vec<Effect> {
    let mut fx = Vec::new();
    for t in tags {
        c.local_batch(batch(t), Instant::now(), &mut fx)
            .expect("local batch");
    }
    fx
}

#[test]
fn a_local_batch_is_gossiped_queued_and_counts_as_verified() {
    let mut c = core(10);
    let fx = local(&mut c, [4]);
    assert!(matches!(fx.as_slice(), [Effect::Gossip(_)]), "{fx:?}");
    assert!(c.mempool().contains(&[4; 32]));
    let block = BlockData::new(vec![batch(4)]);
    assert_eq!(
        c.check_block(Height(1), &block),
        BlockCheck::Valid,
        "ours: no re-verification"
    );
}

#[test]
fn a_full_mempool_answers_get_value_at_once_with_at_most_max_batches_oldest_first() {
    let mut c = core(3);
    local(&mut c, [5, 1, 4, 2, 3]);
    let now = Instant::now();
    let mut fx = Vec::new();
    c.get_value(Height(1), Round::new(0), T, now, &[], &mut fx)
        .expect("get value");
    let block = published(&fx).expect("published at once");
    assert_eq!(tags(&block), [5, 1, 4], "the max, in arrival order");
    assert_eq!(
        proposed(&fx),
        Some((Height(1), Round::new(0), block.id())),
        "the answer names the published block"
    );
    assert!(
        matches!(fx.first(), Some(Effect::PutUndecided(r)) if r.value_id == block.id().0),
        "stored before it is answered: {fx:?}"
    );
    assert_eq!(c.deadline(), None, "nothing pending");
}

#[test]
fn a_partial_block_waits_for_the_propose_deadline() {
    let mut c = core(3);
    local(&mut c, [7]);
    let now = Instant::now();
    let mut fx = Vec::new();
    c.get_value(Height(1), Round::new(0), T, now, &[], &mut fx)
        .expect("get value");
    assert!(fx.is_empty(), "waits: {fx:?}");
    let deadline = now + Duration::from_millis(200);
    assert_eq!(c.deadline(), Some(deadline));
    c.timer(deadline - Duration::from_millis(1), &mut fx)
        .expect("timer");
    assert!(fx.is_empty(), "not before the deadline");
    c.timer(deadline, &mut fx).expect("timer");
    assert_eq!(tags(&published(&fx).expect("proposed")), [7]);
    // The wait is at most half the propose timeout.
    let mut c = core(3);
    c.get_value(
        Height(1),
        Round::new(0),
        Duration::from_millis(100),
        now,
        &[],
        &mut fx,
    )
    .expect("get value");
    assert_eq!(c.deadline(), Some(now + Duration::from_millis(50)));
}

#[test]
fn a_batch_that_fills_the_block_answers_the_pending_get_value() {
    let mut c = core(2);
    let now = Instant::now();
    let mut fx = Vec::new();
    c.get_value(Height(1), Round::new(0), T, now, &[], &mut fx)
        .expect("get value");
    let fx = local(&mut c, [1, 2]);
    assert_eq!(tags(&published(&fx).expect("proposed")), [1, 2]);
}

fn stored_proposal(round: i64, proposer: ValidatorAddress, block: &BlockData) -> UndecidedRecord {
    let pv: ProposedValue<StepContext> = ProposedValue {
        height: Height(1),
        round: Round::new(round as u32),
        valid_round: Round::Nil,
        proposer,
        value: block.value.clone(),
        validity: Validity::Valid,
    };
    UndecidedRecord {
        height: 1,
        round,
        value_id: block.id().0,
        proposed: borsh::to_vec(&pv).expect("encode"),
        block: block.encode().expect("encode"),
    }
}

#[test]
fn after_a_restart_our_stored_proposal_for_the_round_is_proposed_again() {
    let ours = BlockData::new(vec![batch(8), batch(9)]);
    let theirs = BlockData::new(vec![batch(6)]);
    let stored = vec![
        stored_proposal(0, ValidatorAddress([2; 20]), &theirs),
        stored_proposal(1, me(), &theirs),
        stored_proposal(0, me(), &ours),
    ];
    let mut c = core(3);
    local(&mut c, [1]);
    let now = Instant::now();
    let mut fx = Vec::new();
    c.get_value(Height(1), Round::new(0), T, now, &stored, &mut fx)
        .expect("get value");
    c.timer(now + T, &mut fx).expect("timer");
    let block = published(&fx).expect("proposed");
    assert_eq!(
        block, ours,
        "the stored proposal of round 0, not the mempool's"
    );
    // Another round, or none of ours stored: the mempool's block.
    let mut fx = Vec::new();
    let stored = vec![stored_proposal(0, ValidatorAddress([2; 20]), &theirs)];
    c.get_value(Height(1), Round::new(0), T, now, &stored, &mut fx)
        .expect("get value");
    c.timer(now + T, &mut fx).expect("timer");
    assert_eq!(tags(&published(&fx).expect("proposed")), [1]);
}

#[test]
fn block_checks_come_before_signatures_and_skip_verified_batches() {
    let mut c = core(3);
    local(&mut c, [1]);
    let mut inconsistent = BlockData::new(vec![batch(1), batch(2)]);
    inconsistent.value.batch_digests.swap(0, 1);
    assert_eq!(
        c.check_block(Height(1), &inconsistent),
        BlockCheck::Invalid(BlockFault::Inconsistent)
    );
    let big = BlockData::new((1..=4).map(batch).collect::<Vec<_>>());
    assert_eq!(
        c.check_block(Height(1), &big),
        BlockCheck::Invalid(BlockFault::TooManyBatches { batches: 4, max: 3 })
    );
    let dup = BlockData::new(vec![batch(2), batch(2)]);
    assert_eq!(
        c.check_block(Height(1), &dup),
        BlockCheck::Invalid(BlockFault::DuplicateBatches)
    );
    let block = BlockData::new(vec![batch(1), batch(2), batch(3)]);
    let BlockCheck::Verify(todo) = c.check_block(Height(1), &block) else {
        panic!("batches 2 and 3 were never verified");
    };
    assert_eq!(todo.iter().map(|b| b.digest[0]).collect::<Vec<_>>(), [2, 3]);
    assert!(
        !verify_batches(&c.cfg().verifier, &todo),
        "their digests are wrong"
    );
    c.batches_verified(&todo);
    assert_eq!(
        c.check_block(Height(1), &block),
        BlockCheck::Valid,
        "verified once"
    );
}

#[test]
fn gossip_is_verified_off_the_loop_and_only_valid_batches_enter_the_mempool() {
    let mut c = core(3);
    let now = Instant::now();
    let mut fx = Vec::new();
    c.gossip_batch(Arc::new(batch(1)), &any_att(1), peer(1), now, &mut fx);
    c.gossip_batch(Arc::new(batch(2)), &any_att(2), peer(1), now, &mut fx);
    assert!(
        matches!(fx.as_slice(), [Effect::VerifyGossip { batch, .. }] if batch.digest == [1; 32]),
        "one in flight per publisher: {fx:?}"
    );
    let mut fx = Vec::new();
    c.gossip_verdict(Arc::new(batch(1)), peer(1), bad("test"), now, &mut fx)
        .expect("verdict");
    assert!(!c.mempool().contains(&[1; 32]), "invalid: dropped");
    assert!(
        matches!(fx.as_slice(), [Effect::VerifyGossip { batch, .. }] if batch.digest == [2; 32]),
        "the next one starts: {fx:?}"
    );
    c.gossip_verdict(Arc::new(batch(2)), peer(1), Ok(()), now, &mut fx)
        .expect("verdict");
    assert!(c.mempool().contains(&[2; 32]), "valid: queued");
    assert_eq!(
        c.gossip_counter()
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let mut fx = Vec::new();
    c.gossip_batch(Arc::new(batch(2)), &any_att(2), peer(2), now, &mut fx);
    assert!(fx.is_empty(), "already in the mempool");
}

#[test]
fn gossip_is_dropped_when_the_mempool_is_full() {
    let mut c = core(8);
    let max = c.mempool_max() as u8;
    local(&mut c, 0..max);
    assert!(!c.has_room());
    let mut fx = Vec::new();
    c.gossip_batch(
        Arc::new(batch(250)),
        &any_att(250),
        peer(1),
        Instant::now(),
        &mut fx,
    );
    assert!(fx.is_empty(), "{fx:?}");
}

#[test]
fn a_received_proposal_completes_once_and_only_above_the_executed_height() {
    let mut c = core(3);
    let block = BlockData::new(vec![batch(1), batch(2)]);
    let now = Instant::now();
    let mut fx = Vec::new();
    let msgs = split(Height(1), Round::new(0), Round::Nil, me(), &block, 1);
    let mut out = None;
    for m in msgs {
        assert!(out.is_none());
        out = c.received_part(peer(2), Some(peer(3)), m, now, &mut fx);
    }
    assert_eq!(out.expect("complete").block, block);
    // A stream whose announced id is not its block's is ignored.
    let mut msgs = split(Height(1), Round::new(1), Round::Nil, me(), &block, 1);
    let other = BlockData::new(vec![batch(1)]);
    let n = msgs.len();
    msgs[n - 2] = StreamMessage::new(
        crate::streaming::stream_id(Height(1), Round::new(1)),
        (n - 2) as u64,
        malachitebft_engine::util::streaming::StreamContent::Data(ProposalPart::Fin {
            value_id: other.id(),
        }),
    );
    assert!(msgs
        .into_iter()
        .all(|m| c.received_part(peer(2), None, m, now, &mut fx).is_none()));
    assert!(fx.is_empty());
}

fn execute(c: &mut Core, state: &mut ChainState, job: ExecJob) -> Vec<Effect> {
    let outcome = state
        .apply_block(
            &c.cfg().verifier.limits,
            job.height,
            job.value_id,
            &job.batches,
        )
        .expect("in-memory state reads cannot fail");
    let mut fx = Vec::new();
    c.executed(
        job,
        outcome,
        state.accepted_total,
        vec![9],
        Instant::now(),
        &mut fx,
    );
    fx
}

#[test]
fn the_decided_block_executes_from_the_held_block_and_its_stored_bytes() {
    let mut c = core(3);
    let mut state = ChainState::default();
    local(&mut c, [1, 2]);
    let block = BlockData::new(vec![batch(1), batch(2)]);
    let mut fx = Vec::new();
    let pv = c
        .accept(
            Height(1),
            Round::new(0),
            Round::Nil,
            me(),
            block.clone(),
            None,
            Validity::Valid,
            &mut fx,
        )
        .expect("accept");
    let Some(Effect::PutUndecided(stored)) = fx.pop() else {
        panic!("stored");
    };
    assert_eq!(pv.value, block.value);
    assert!(c.held(Height(1), block.id()).is_some());
    let Decide::Execute(job) = c
        .decide(Height(1), Round::new(0), block.id())
        .expect("decide")
    else {
        panic!("held");
    };
    assert_eq!(*job.held.block, block);
    let fx = execute(&mut c, &mut state, job);
    let [Effect::Commit(rec, rows), Effect::Emit(NodeEvent::Decided(d))] = fx.as_slice() else {
        panic!("{fx:?}");
    };
    assert_eq!(
        rec.block, stored.block,
        "the stored bytes, not a re-encoding"
    );
    assert_eq!(rec.certificate, [9]);
    assert_eq!(
        rows.proofs.len() as u64,
        rec.changes.accepted,
        "every accepted proof is stored with its block"
    );
    assert_eq!(rows.writes.nonces.len(), rec.changes.nonces.len());
    assert_eq!(
        (d.height, d.value_id, d.batch_digests.len()),
        (1, block.id(), 2)
    );
    assert!(c.mempool().is_empty(), "decided batches leave the mempool");
    assert_eq!(c.height(), 1);
    assert!(c.held(Height(1), block.id()).is_none(), "no longer held");
    assert!(matches!(
        c.decide(Height(1), Round::new(0), block.id()),
        Ok(Decide::Done)
    ));
    // A late gossip of a decided batch is not verified.
    let mut fx = Vec::new();
    c.gossip_batch(
        Arc::new(batch(1)),
        &any_att(1),
        peer(1),
        Instant::now(),
        &mut fx,
    );
    assert!(fx.is_empty());
}

#[test]
fn a_decided_block_not_held_is_read_back_from_the_store() {
    let mut c = core(3);
    let block = BlockData::new(vec![batch(5)]);
    let id = block.id();
    assert!(matches!(
        c.decide(Height(1), Round::new(0), id),
        Ok(Decide::NeedStored)
    ));
    let rec = stored_proposal(0, ValidatorAddress([2; 20]), &block);
    c.hold_stored(Height(1), id, vec![rec]).expect("decodes");
    assert!(matches!(
        c.decide(Height(1), Round::new(0), id),
        Ok(Decide::Execute(job)) if *job.held.block == block
    ));
    let mut bad = stored_proposal(0, ValidatorAddress([2; 20]), &block);
    bad.block.truncate(3);
    assert!(matches!(
        c.hold_stored(Height(1), id, vec![bad]),
        Err(AppError::StoredBlock { height: 1, .. })
    ));
}

/// A real proof-shaped batch, encoded: its triangle text is a proof field
/// the decoder parses.
fn wire_gossip_with_bad_triangle() -> bytes::Bytes {
    use malachitebft_codec::Codec as _;
    use step_engine::proof::{Nonce, Timestamp};
    let proof = crate::block::WireProof {
        account: [7; 20],
        triangle: step_engine::TriangleId::new(3, &[1, 2, 3]).expect("triangle"),
        lat_bits: 1.5f64.to_bits(),
        lon_bits: 2.5f64.to_bits(),
        accuracy_m_bits: 5.0f64.to_bits(),
        timestamp: Timestamp::from_unix_ms(1_767_225_600_000).expect("timestamp"),
        nonce: Nonce::parse("nonce-1").expect("nonce"),
        signature: [7; 65],
    };
    let good = WireBatch {
        proofs: vec![proof],
        pubkeys: vec![[7; 64]],
        digest: [7; 32],
    };
    let msg = crate::streaming::gossip(&Arc::new(good), any_att(7));
    let mut bytes = crate::codec::BorshCodec
        .encode(&msg)
        .expect("encode")
        .to_vec();
    // The triangle text starts with "STEP-TRI-v1:"; break its prefix.
    let at = bytes
        .windows(8)
        .position(|w| w == b"STEP-TRI")
        .expect("triangle text on the wire");
    bytes[at] = b'X';
    bytes.into()
}

#[test]
fn gossip_whose_proof_field_does_not_parse_still_decodes_as_a_fault_of_its_publisher() {
    use malachitebft_codec::Codec as _;
    let msg: StreamMessage<ProposalPart> = crate::codec::BorshCodec
        .decode(wire_gossip_with_bad_triangle())
        .expect("the message decodes: its batch is the fault");
    assert_eq!(
        crate::streaming::undecodable_gossip(&msg),
        Some(&WireError::Field {
            index: 0,
            field: "triangle"
        })
    );
    assert!(
        borsh::to_vec(&msg).is_err(),
        "an undecodable part is never sent"
    );
    assert!(
        borsh::from_slice::<StreamMessage<ProposalPart>>(&wire_gossip_with_bad_triangle()).is_err(),
        "borsh stays strict: only the network codec delivers the fault"
    );
    // Any other message that does not decode is still refused.
    let proposal_part: Result<StreamMessage<ProposalPart>, _> =
        crate::codec::BorshCodec.decode(bytes::Bytes::from(vec![0u8; 3]));
    assert!(proposal_part.is_err(), "not a gossip message: refused");
}

#[test]
fn undecodable_gossip_is_a_strike_against_its_publisher() {
    use malachitebft_codec::Codec as _;
    let mut c = core(3);
    let now = Instant::now();
    let mut fx = Vec::new();
    for _ in 0..GOSSIP_STRIKES {
        let msg: StreamMessage<ProposalPart> = crate::codec::BorshCodec
            .decode(wire_gossip_with_bad_triangle())
            .expect("decodes as a fault");
        // Relayed by peer 2, published by peer 3: the publisher is struck.
        assert!(c
            .received_part(peer(2), Some(peer(3)), msg, now, &mut fx)
            .is_none());
    }
    assert!(fx.is_empty(), "nothing to verify: {fx:?}");
    let good = crate::streaming::gossip(&Arc::new(batch(9)), any_att(0));
    c.received_part(peer(2), Some(peer(3)), good.clone(), now, &mut fx);
    assert!(fx.is_empty(), "the publisher is muted: {fx:?}");
    c.received_part(peer(3), Some(peer(2)), good, now, &mut fx);
    assert!(
        matches!(fx.as_slice(), [Effect::VerifyGossip { batch, .. }] if batch.digest == [9; 32]),
        "the relay is not: {fx:?}"
    );
}

#[path = "machine_idle_tests.rs"]
mod idle;

#[path = "machine_attest_tests.rs"]
mod attested;

#[path = "machine_root_tests.rs"]
mod root;
