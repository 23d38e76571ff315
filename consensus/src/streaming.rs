//! Reassembly of streamed proposals. Pure: parts in, whole proposals out.
//!
//! A proposal is one stream (`StreamId` = height ‖ round): `Data(Init)`,
//! `Data(Batches)`…, `Data(Fin)`, then the stream's own `Fin`. Parts may
//! arrive out of order; a stream is complete when every sequence number up
//! to the stream `Fin` has arrived. At most [`MAX_OPEN_STREAMS`] streams are
//! kept; the oldest is dropped first. Streams are keyed by the *publisher*
//! (`published_by`), not by the neighbour that relayed a part: GossipSub may
//! deliver the parts of one stream through different peers.

use std::collections::{BTreeMap, HashMap, VecDeque};

use malachitebft_engine::util::streaming::{StreamContent, StreamId, StreamMessage};
pub use malachitebft_peer::PeerId;

use crate::block::{BlockData, WireBatch};
use crate::context::{Height, ProposalPart, ValidatorAddress, ValueId};
use malachitebft_core_types::Round;

/// Open streams kept at once.
pub const MAX_OPEN_STREAMS: usize = 64;
/// Parts one stream may have.
pub const MAX_PARTS_PER_STREAM: u64 = 4_096;

/// A complete proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    pub height: Height,
    pub round: Round,
    pub valid_round: Round,
    pub proposer: ValidatorAddress,
    /// The value id the proposer announced in `Fin`.
    pub announced_id: ValueId,
    pub block: BlockData,
}

#[derive(Debug, Default)]
struct Partial {
    parts: BTreeMap<u64, ProposalPart>,
    end: Option<u64>,
}

/// Streams being reassembled, keyed by (publisher, stream id).
#[derive(Debug, Default)]
pub struct Reassembler {
    open: HashMap<(PeerId, StreamId), Partial>,
    order: VecDeque<(PeerId, StreamId)>,
}

/// The stream id of the proposal for (height, round).
pub fn stream_id(height: Height, round: Round) -> StreamId {
    let mut b = height.0.to_be_bytes().to_vec();
    b.extend_from_slice(&round.as_i64().to_be_bytes());
    StreamId::new(bytes::Bytes::from(b))
}

/// The one-message stream that gossips `batch`: stream id `G` ‖ digest
/// (33 bytes; proposal stream ids are 16), sequence 0, no stream `Fin`.
pub fn gossip(batch: &WireBatch) -> StreamMessage<ProposalPart> {
    let mut b = Vec::with_capacity(33);
    b.push(b'G');
    b.extend_from_slice(&batch.digest);
    StreamMessage::new(
        StreamId::new(bytes::Bytes::from(b)),
        0,
        StreamContent::Data(ProposalPart::Gossip(batch.clone())),
    )
}

/// The batch of a gossip message; `None` for proposal parts.
pub fn gossiped(msg: &StreamMessage<ProposalPart>) -> Option<&WireBatch> {
    match &msg.content {
        StreamContent::Data(ProposalPart::Gossip(b)) => Some(b),
        _ => None,
    }
}

/// The stream messages of a proposal, in order.
pub fn split(
    height: Height,
    round: Round,
    valid_round: Round,
    proposer: ValidatorAddress,
    block: &BlockData,
    batches_per_part: usize,
) -> Vec<StreamMessage<ProposalPart>> {
    use malachitebft_core_types::Value as _;
    let id = stream_id(height, round);
    let mut parts = vec![ProposalPart::Init {
        height,
        round,
        valid_round,
        proposer,
    }];
    for chunk in block.batches.chunks(batches_per_part.max(1)) {
        parts.push(ProposalPart::Batches(chunk.to_vec()));
    }
    parts.push(ProposalPart::Fin {
        value_id: block.value.id(),
    });
    let mut out: Vec<_> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| StreamMessage::new(id.clone(), i as u64, StreamContent::Data(p)))
        .collect();
    out.push(StreamMessage::new(id, out.len() as u64, StreamContent::Fin));
    out
}

impl Reassembler {
    /// Adds one message; returns the proposal when its stream is complete.
    /// Malformed streams (no `Init` first, no `Fin` last, too many parts)
    /// are dropped.
    pub fn insert(&mut self, peer: PeerId, msg: StreamMessage<ProposalPart>) -> Option<Assembled> {
        if msg.sequence >= MAX_PARTS_PER_STREAM {
            return None;
        }
        let key = (peer, msg.stream_id.clone());
        if !self.open.contains_key(&key) {
            if self.order.len() >= MAX_OPEN_STREAMS {
                if let Some(old) = self.order.pop_front() {
                    self.open.remove(&old);
                }
            }
            self.order.push_back(key.clone());
        }
        let partial = self.open.entry(key.clone()).or_default();
        match msg.content {
            StreamContent::Data(p) => {
                partial.parts.insert(msg.sequence, p);
            }
            StreamContent::Fin => partial.end = Some(msg.sequence),
        }
        let end = partial.end?;
        if partial.parts.len() as u64 != end {
            return None;
        }
        let partial = self.open.remove(&key)?;
        self.order.retain(|k| k != &key);
        assemble(partial.parts.into_values().collect())
    }
}

fn assemble(parts: Vec<ProposalPart>) -> Option<Assembled> {
    let (first, rest) = parts.split_first()?;
    let (last, middle) = rest.split_last()?;
    let ProposalPart::Init {
        height,
        round,
        valid_round,
        proposer,
    } = first.clone()
    else {
        return None;
    };
    let ProposalPart::Fin { value_id } = last else {
        return None;
    };
    let mut batches: Vec<WireBatch> = Vec::new();
    for p in middle {
        match p {
            ProposalPart::Batches(b) => batches.extend(b.iter().cloned()),
            _ => return None,
        }
    }
    Some(Assembled {
        height,
        round,
        valid_round,
        proposer,
        announced_id: *value_id,
        block: BlockData::new(batches),
    })
}
