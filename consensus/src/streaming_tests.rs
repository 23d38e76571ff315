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

/// A part's batches, about 1 MiB (four of 1,000 proofs), and how many such
/// parts fit in one stream's byte bound.
fn big_part() -> (Vec<Arc<WireBatch>>, usize) {
    let big: Vec<_> = (0..4).map(|k| batch(k, 1_000)).collect();
    let per_part = part_bytes(&ProposalPart::Batches(big.clone()));
    (big, MAX_STREAM_BYTES / per_part)
}

#[test]
fn a_stream_over_its_byte_bound_is_dropped_with_its_size() {
    let mut r = Reassembler::default();
    // The stream bound is reached well before the part-count bound.
    let (big, fits) = big_part();
    let mut err = None;
    for seq in 1..=(fits as u64 + 1) {
        match r.try_insert(peer(), data(1, seq, ProposalPart::Batches(big.clone()))) {
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
            r.try_insert(peer(), data(h, seq, ProposalPart::Batches(big.clone())))
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
        r.try_insert(peer(), data(1, 5, ProposalPart::Batches(vec![]))),
        Err(StreamError::PastEnd {
            sequence: 5,
            end: 2
        })
    );
    // A stream of Batches then Fin, with no Init.
    let mut r = Reassembler::default();
    r.try_insert(peer(), data(1, 0, ProposalPart::Batches(vec![batch(1, 1)])))
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
            data(1, MAX_PARTS_PER_STREAM, ProposalPart::Batches(vec![]))
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
        1,
    );
    let mut r = Reassembler::default();
    let mut out = None;
    for m in msgs {
        out = r.try_insert(peer(), m).expect("part").or(out);
    }
    let a = out.expect("complete");
    assert_eq!(a.block.prev_root(), [9; 32]);
    assert_eq!(a.block.id(), block.id());
    assert_eq!(a.announced_id, block.id());
}
