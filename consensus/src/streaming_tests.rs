//! Reassembly bounds and malformed streams, with their named errors.

use super::*;
use crate::block::WireProof;
use step_engine::proof::{Nonce, Timestamp};
use step_engine::TriangleId;

fn peer() -> PeerId {
    let mut bytes = vec![0x00, 0x20];
    bytes.extend_from_slice(&[9; 32]);
    PeerId::from_bytes(&bytes).expect("peer id")
}

fn batch(tag: u8, proofs: usize) -> Arc<WireBatch> {
    let p = WireProof {
        account: [tag; 20],
        triangle: TriangleId::new(1, &[0, 1]).expect("triangle"),
        lat_bits: 0,
        lon_bits: 0,
        accuracy_m_bits: 0,
        timestamp: Timestamp::from_unix_ms(1_767_225_600_000).expect("timestamp"),
        nonce: Nonce::parse("n").expect("nonce"),
        signature: [0; 65],
    };
    Arc::new(WireBatch {
        proofs: vec![p; proofs],
        pubkeys: vec![[0; 64]; proofs],
        digest: [tag; 32],
    })
}

fn data(h: u64, seq: u64, p: ProposalPart) -> StreamMessage<ProposalPart> {
    StreamMessage::new(
        stream_id(Height(h), Round::new(0)),
        seq,
        StreamContent::Data(p),
    )
}

/// A part of the most digests a part decodes (512 KiB), and how many such
/// parts fit in one stream's byte bound.
fn big_part() -> (Vec<[u8; 32]>, usize) {
    let big: Vec<[u8; 32]> = (0..MAX_BATCHES_PER_BLOCK as u32)
        .map(|i| {
            let mut d = [0; 32];
            d[..4].copy_from_slice(&i.to_be_bytes());
            d
        })
        .collect();
    let per_part = part_bytes(&ProposalPart::Digests(big.clone()));
    (big, MAX_STREAM_BYTES / per_part)
}

#[test]
fn a_stream_over_its_byte_bound_is_dropped_with_its_size() {
    let mut r = Reassembler::default();
    // The stream bound is reached well before the part-count bound.
    let (big, fits) = big_part();
    let mut err = None;
    for seq in 1..=(fits as u64 + 1) {
        match r.try_insert(peer(), data(1, seq, ProposalPart::Digests(big.clone()))) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("incomplete stream completed"),
            Err(e) => {
                err = Some((seq, e));
                break;
            }
        }
    }
    let (seq, e) = err.expect("refused");
    assert_eq!(seq, fits as u64 + 1);
    assert!(
        matches!(
            e,
            StreamError::TooLarge {
                max: MAX_STREAM_BYTES,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        (r.len(), r.bytes()),
        (0, 0),
        "the stream and its bytes are gone"
    );
}

#[test]
fn all_streams_together_stay_under_the_total_bound() {
    let mut r = Reassembler::default();
    let (big, per_stream) = big_part();
    for h in 1..=8u64 {
        for seq in 1..=per_stream as u64 {
            r.try_insert(peer(), data(h, seq, ProposalPart::Digests(big.clone())))
                .expect("within the stream bound");
            assert!(r.bytes() <= MAX_REASSEMBLY_BYTES);
        }
    }
    assert!(r.len() < 8, "the oldest streams were dropped");
}

#[test]
fn parts_past_the_end_or_out_of_place_are_named() {
    let mut r = Reassembler::default();
    let id = stream_id(Height(1), Round::new(0));
    r.try_insert(
        peer(),
        StreamMessage::new(id.clone(), 2, StreamContent::Fin),
    )
    .expect("fin");
    assert_eq!(
        r.try_insert(peer(), data(1, 5, ProposalPart::Digests(vec![]))),
        Err(StreamError::PastEnd {
            sequence: 5,
            end: 2
        })
    );
    // A stream of Digests then Fin, with no Init.
    let mut r = Reassembler::default();
    r.try_insert(peer(), data(1, 0, ProposalPart::Digests(vec![[1; 32]])))
        .expect("part");
    r.try_insert(
        peer(),
        data(
            1,
            1,
            ProposalPart::Fin {
                value_id: ValueId([0; 32]),
            },
        ),
    )
    .expect("part");
    assert_eq!(
        r.try_insert(
            peer(),
            StreamMessage::new(id.clone(), 2, StreamContent::Fin)
        ),
        Err(StreamError::NoInit)
    );
    // A gossip part inside a proposal.
    let mut r = Reassembler::default();
    let init = ProposalPart::Init {
        height: Height(1),
        round: Round::new(0),
        valid_round: Round::Nil,
        proposer: ValidatorAddress([1; 20]),
        prev_root: [0; 32],
    };
    r.try_insert(peer(), data(1, 0, init)).expect("init");
    r.try_insert(
        peer(),
        data(
            1,
            1,
            ProposalPart::Gossip(
                batch(1, 1),
                crate::attest::Attestation::sign(
                    &crate::context::PrivateKey::from([1; 32]),
                    [1; 32],
                ),
            ),
        ),
    )
    .expect("part");
    assert_eq!(
        r.try_insert(peer(), StreamMessage::new(id, 2, StreamContent::Fin)),
        Err(StreamError::UnexpectedPart {
            sequence: 1,
            kind: "Gossip"
        })
    );
    assert_eq!(
        r.try_insert(
            peer(),
            data(1, MAX_PARTS_PER_STREAM, ProposalPart::Digests(vec![]))
        ),
        Err(StreamError::TooManyParts {
            sequence: MAX_PARTS_PER_STREAM,
            max: MAX_PARTS_PER_STREAM
        })
    );
}

/// The proposer's previous root travels in `Init`: the reassembled block is
/// the proposer's, id included.
#[test]
fn the_previous_root_survives_split_and_reassembly() {
    let block = BlockData::on_root([9; 32], vec![batch(1, 2), batch(2, 1)]);
    let msgs = split(
        Height(3),
        Round::new(0),
        Round::Nil,
        ValidatorAddress([1; 20]),
        &block,
    );
    let mut r = Reassembler::default();
    let mut out = None;
    for m in msgs {
        out = r.try_insert(peer(), m).expect("part").or(out);
    }
    let a = out.expect("complete");
    assert_eq!(a.value.prev_root, [9; 32]);
    assert_eq!(a.value, block.value);
    assert_eq!(a.announced_id, block.id());
}

/// Every batch crosses the network once: a proposal's messages carry its
/// digests, never a batch, so a block of 50 batches of 100 proofs (about
/// 1.3 MB of batches) is proposed in under 2 KiB.
#[test]
fn a_proposal_carries_digests_not_batches() {
    let batches: Vec<_> = (0..50).map(|k| batch(k, 100)).collect();
    let bytes_of_batches: usize = batches.iter().map(|b| b.encoded_len()).sum();
    let block = BlockData::on_root([3; 32], batches);
    let msgs = split(
        Height(2),
        Round::new(0),
        Round::Nil,
        ValidatorAddress([1; 20]),
        &block,
    );
    let mut sent = 0;
    for m in &msgs {
        if let StreamContent::Data(p) = &m.content {
            assert!(
                !matches!(p, ProposalPart::Gossip(..) | ProposalPart::Supply(_)),
                "a proposal part carries a batch: {p:?}"
            );
        }
        sent += borsh::to_vec(m).expect("encodes").len();
    }
    assert!(bytes_of_batches > 1_000_000, "{bytes_of_batches}");
    assert!(sent < 2_048, "the proposal is {sent} bytes");
}

/// `Want` and `Supply` round-trip through the wire form, and a `Want` is
/// bounded like a block's digests.
#[test]
fn want_and_supply_round_trip_and_a_want_is_bounded() {
    let w = want(vec![[1; 32], [2; 32]]);
    let back: StreamMessage<ProposalPart> =
        borsh::from_slice(&borsh::to_vec(&w).expect("encodes")).expect("decodes");
    assert_eq!(wanted(&back), Some(&[[1; 32], [2; 32]][..]));
    let b = batch(4, 3);
    let s = supply(&b);
    let back: StreamMessage<ProposalPart> =
        borsh::from_slice(&borsh::to_vec(&s).expect("encodes")).expect("decodes");
    assert_eq!(supplied(&back).map(|x| x.as_ref()), Some(b.as_ref()));
    // A Want of one digest past the limit: its count is refused before
    // anything is allocated.
    let mut bytes = borsh::to_vec(&want(vec![])).expect("encodes");
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&(MAX_BATCHES_PER_BLOCK as u32 + 1).to_le_bytes());
    let err = borsh::from_slice::<StreamMessage<ProposalPart>>(&bytes).expect_err("refused");
    assert!(err.to_string().contains("more than the limit"), "{err}");
}
