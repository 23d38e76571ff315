//! Reassembly of streamed proposals. Pure: parts in, whole proposals out.
//!
//! A proposal is one stream (`StreamId` = height ‖ round): `Data(Init)`,
//! `Data(Batches)`…, `Data(Fin)`, then the stream's own `Fin`. Parts may
//! arrive out of order; a stream is complete when every sequence number up
//! to the stream `Fin` has arrived. At most [`MAX_OPEN_STREAMS`] streams are
//! kept, each of at most [`MAX_PARTS_PER_STREAM`] parts and
//! [`MAX_STREAM_BYTES`] bytes, all of them together at most
//! [`MAX_REASSEMBLY_BYTES`]; the oldest is dropped first. Streams are keyed by the *publisher*
//! (`published_by`), not by the neighbour that relayed a part: GossipSub may
//! deliver the parts of one stream through different peers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use malachitebft_engine::util::streaming::{StreamContent, StreamId, StreamMessage};
pub use malachitebft_peer::PeerId;

use crate::attest::{Attestation, ATTESTATION_LEN, MAX_ATTESTATIONS_PER_BLOCK};
use crate::block::{BlockData, WireBatch, WireError};
use crate::context::{Height, ProposalPart, ValidatorAddress, ValueId};
use malachitebft_core_types::Round;

/// Open streams kept at once.
pub const MAX_OPEN_STREAMS: usize = 64;
/// Parts one stream may have.
pub const MAX_PARTS_PER_STREAM: u64 = 4_096;
/// Bytes one stream may hold (its batches as encoded): a block larger than
/// a sync response could never be served to a syncing peer.
pub const MAX_STREAM_BYTES: usize = crate::node::RPC_MAX_BYTES;
/// Bytes all open streams may hold together; the oldest streams are
/// dropped to make room.
pub const MAX_REASSEMBLY_BYTES: usize = 4 * MAX_STREAM_BYTES;
/// Attestations per proposal part (about 464 KiB).
pub const ATTESTATIONS_PER_PART: usize = 4_096;
/// Bytes counted for a part without batches (`Init`, `Fin`).
const SMALL_PART_BYTES: usize = 64;

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

/// Why a stream was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("part {sequence} is past the limit of {max} parts per stream")]
    TooManyParts { sequence: u64, max: u64 },
    #[error("the stream would hold {bytes} bytes, more than the limit of {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("part {sequence} arrived for a stream that ends at {end}")]
    PastEnd { sequence: u64, end: u64 },
    #[error("the stream's first part is not Init")]
    NoInit,
    #[error("the stream's last data part is not Fin")]
    NoFin,
    #[error("part {sequence} of a proposal is a {kind} part")]
    UnexpectedPart { sequence: u64, kind: &'static str },
}

#[derive(Debug, Default)]
struct Partial {
    parts: BTreeMap<u64, (ProposalPart, usize)>,
    end: Option<u64>,
    bytes: usize,
}

/// Streams being reassembled, keyed by (publisher, stream id).
#[derive(Debug, Default)]
pub struct Reassembler {
    open: HashMap<(PeerId, StreamId), Partial>,
    order: VecDeque<(PeerId, StreamId)>,
    bytes: usize,
}

/// The stream id of the proposal for (height, round).
pub fn stream_id(height: Height, round: Round) -> StreamId {
    let mut b = height.0.to_be_bytes().to_vec();
    b.extend_from_slice(&round.as_i64().to_be_bytes());
    StreamId::new(bytes::Bytes::from(b))
}

/// The one-message stream that gossips `batch`: stream id `G` ‖ digest
/// (33 bytes; proposal stream ids are 16), sequence 0, no stream `Fin`.
pub fn gossip(batch: &Arc<WireBatch>, attestation: Attestation) -> StreamMessage<ProposalPart> {
    let mut b = Vec::with_capacity(33);
    b.push(b'G');
    b.extend_from_slice(&batch.digest);
    StreamMessage::new(
        StreamId::new(bytes::Bytes::from(b)),
        0,
        StreamContent::Data(ProposalPart::Gossip(Arc::clone(batch), attestation)),
    )
}

/// The one-message stream that gossips an attestation: stream id `A` ‖
/// digest ‖ validator (53 bytes), sequence 0.
pub fn gossip_attestation(att: Attestation) -> StreamMessage<ProposalPart> {
    let mut b = Vec::with_capacity(53);
    b.push(b'A');
    b.extend_from_slice(&att.digest);
    b.extend_from_slice(&att.validator.0);
    StreamMessage::new(
        StreamId::new(bytes::Bytes::from(b)),
        0,
        StreamContent::Data(ProposalPart::Attest(att)),
    )
}

/// The batch and ingester attestation of a gossip message; `None` for
/// proposal parts.
pub fn gossiped(msg: &StreamMessage<ProposalPart>) -> Option<(&Arc<WireBatch>, &Attestation)> {
    match &msg.content {
        StreamContent::Data(ProposalPart::Gossip(b, a)) => Some((b, a)),
        _ => None,
    }
}

/// The attestation of an attestation message; `None` for anything else.
pub fn attestation(msg: &StreamMessage<ProposalPart>) -> Option<&Attestation> {
    match &msg.content {
        StreamContent::Data(ProposalPart::Attest(a)) => Some(a),
        _ => None,
    }
}

/// Why a gossip message's batch did not decode; `None` for any other
/// message.
pub fn undecodable_gossip(msg: &StreamMessage<ProposalPart>) -> Option<&WireError> {
    match &msg.content {
        StreamContent::Data(ProposalPart::GossipUndecodable(e)) => Some(e),
        _ => None,
    }
}

/// The stream messages of a proposal, in order. The parts share the
/// block's batches.
pub fn split(
    height: Height,
    round: Round,
    valid_round: Round,
    proposer: ValidatorAddress,
    block: &BlockData,
    batches_per_part: usize,
) -> Vec<StreamMessage<ProposalPart>> {
    let id = stream_id(height, round);
    let mut parts = vec![ProposalPart::Init {
        height,
        round,
        valid_round,
        proposer,
        prev_root: block.value.prev_root,
    }];
    for chunk in block.batches.chunks(batches_per_part.max(1)) {
        parts.push(ProposalPart::Batches(chunk.to_vec()));
    }
    for chunk in block.attestations.chunks(ATTESTATIONS_PER_PART) {
        parts.push(ProposalPart::Attestations(chunk.to_vec()));
    }
    parts.push(ProposalPart::Fin {
        value_id: block.id(),
    });
    let mut out: Vec<_> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| StreamMessage::new(id.clone(), i as u64, StreamContent::Data(p)))
        .collect();
    out.push(StreamMessage::new(id, out.len() as u64, StreamContent::Fin));
    out
}

fn part_bytes(p: &ProposalPart) -> usize {
    match p {
        ProposalPart::Batches(b) => b.iter().map(|b| b.encoded_len()).sum::<usize>() + 5,
        ProposalPart::Gossip(b, _) => b.encoded_len() + 1 + ATTESTATION_LEN,
        ProposalPart::Attestations(v) => v.len() * ATTESTATION_LEN + 5,
        ProposalPart::Attest(_) => ATTESTATION_LEN + 1,
        ProposalPart::Init { .. }
        | ProposalPart::Fin { .. }
        | ProposalPart::GossipUndecodable(_) => SMALL_PART_BYTES,
    }
}

impl Reassembler {
    /// Adds one message; returns the proposal when its stream is complete.
    /// Malformed or oversized streams are dropped ([`Reassembler::try_insert`]
    /// says why).
    pub fn insert(&mut self, peer: PeerId, msg: StreamMessage<ProposalPart>) -> Option<Assembled> {
        self.try_insert(peer, msg).ok().flatten()
    }

    /// Bytes held by open streams.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Open streams.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn drop_stream(&mut self, key: &(PeerId, StreamId)) {
        if let Some(p) = self.open.remove(key) {
            self.bytes -= p.bytes;
        }
        self.order.retain(|k| k != key);
    }

    /// [`Reassembler::insert`], with the reason a stream was dropped.
    pub fn try_insert(
        &mut self,
        peer: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<Assembled>, StreamError> {
        let key = (peer, msg.stream_id.clone());
        if msg.sequence >= MAX_PARTS_PER_STREAM {
            self.drop_stream(&key);
            return Err(StreamError::TooManyParts {
                sequence: msg.sequence,
                max: MAX_PARTS_PER_STREAM,
            });
        }
        let size = match &msg.content {
            StreamContent::Data(p) => part_bytes(p),
            StreamContent::Fin => 0,
        };
        let held = self.open.get(&key).map_or(0, |p| p.bytes);
        if held + size > MAX_STREAM_BYTES {
            self.drop_stream(&key);
            return Err(StreamError::TooLarge {
                bytes: held + size,
                max: MAX_STREAM_BYTES,
            });
        }
        if !self.open.contains_key(&key) {
            if self.order.len() >= MAX_OPEN_STREAMS {
                if let Some(old) = self.order.front().cloned() {
                    self.drop_stream(&old);
                }
            }
            self.order.push_back(key.clone());
            self.open.insert(key.clone(), Partial::default());
        }
        // Room for this part: drop the oldest other streams.
        while self.bytes + size > MAX_REASSEMBLY_BYTES {
            let Some(old) = self.order.iter().find(|k| **k != key).cloned() else {
                break;
            };
            self.drop_stream(&old);
        }
        let result = self.add(&key, msg, size);
        match result {
            Ok(None) => Ok(None),
            Ok(Some(parts)) => {
                self.drop_stream(&key);
                assemble(parts).map(Some)
            }
            Err(e) => {
                self.drop_stream(&key);
                Err(e)
            }
        }
    }

    /// Records one message of an open stream; the stream's parts once it
    /// is complete.
    fn add(
        &mut self,
        key: &(PeerId, StreamId),
        msg: StreamMessage<ProposalPart>,
        size: usize,
    ) -> Result<Option<Vec<ProposalPart>>, StreamError> {
        let Some(partial) = self.open.get_mut(key) else {
            return Ok(None);
        };
        match msg.content {
            StreamContent::Data(p) => {
                if let Some(end) = partial.end.filter(|e| msg.sequence >= *e) {
                    return Err(StreamError::PastEnd {
                        sequence: msg.sequence,
                        end,
                    });
                }
                if let Some((_, old)) = partial.parts.insert(msg.sequence, (p, size)) {
                    partial.bytes -= old;
                    self.bytes -= old;
                }
                partial.bytes += size;
                self.bytes += size;
            }
            StreamContent::Fin => {
                if let Some(last) = partial
                    .parts
                    .keys()
                    .next_back()
                    .filter(|s| **s >= msg.sequence)
                {
                    return Err(StreamError::PastEnd {
                        sequence: *last,
                        end: msg.sequence,
                    });
                }
                partial.end = Some(msg.sequence);
            }
        }
        let Some(end) = partial.end else {
            return Ok(None);
        };
        if partial.parts.len() as u64 != end {
            return Ok(None);
        }
        let parts = std::mem::take(&mut partial.parts);
        Ok(Some(parts.into_values().map(|(p, _)| p).collect()))
    }
}

fn assemble(parts: Vec<ProposalPart>) -> Result<Assembled, StreamError> {
    let mut it = parts.into_iter().enumerate();
    let Some((
        _,
        ProposalPart::Init {
            height,
            round,
            valid_round,
            proposer,
            prev_root,
        },
    )) = it.next()
    else {
        return Err(StreamError::NoInit);
    };
    let mut batches: Vec<Arc<WireBatch>> = Vec::new();
    let mut attestations: Vec<Attestation> = Vec::new();
    let mut announced = None;
    for (i, p) in it {
        let sequence = i as u64;
        match p {
            _ if announced.is_some() => {
                return Err(StreamError::UnexpectedPart {
                    sequence,
                    kind: "post-Fin",
                })
            }
            ProposalPart::Batches(b) => batches.extend(b),
            ProposalPart::Attestations(a) => {
                if attestations.len() + a.len() > MAX_ATTESTATIONS_PER_BLOCK {
                    return Err(StreamError::UnexpectedPart {
                        sequence,
                        kind: "Attestations past the block's limit",
                    });
                }
                attestations.extend(a)
            }
            ProposalPart::Fin { value_id } => announced = Some(value_id),
            ProposalPart::Init { .. } => {
                return Err(StreamError::UnexpectedPart {
                    sequence,
                    kind: "Init",
                })
            }
            ProposalPart::Gossip(..)
            | ProposalPart::Attest(_)
            | ProposalPart::GossipUndecodable(_) => {
                return Err(StreamError::UnexpectedPart {
                    sequence,
                    kind: "Gossip",
                })
            }
        }
    }
    let announced_id = announced.ok_or(StreamError::NoFin)?;
    Ok(Assembled {
        height,
        round,
        valid_round,
        proposer,
        announced_id,
        block: BlockData::on_root(prev_root, batches).with_attestations(attestations),
    })
}

#[cfg(test)]
#[path = "streaming_tests.rs"]
mod tests;
