//! One borsh codec for malachite's network, sync and WAL messages.
//!
//! Upstream 0.8.2 derives borsh for every type but two: `ValidatorProof` and
//! `sync::Response` (its `ExtendedCommitCertificate` has no impl). Those two
//! are encoded here by hand, through tuples of types that do have it.
//! Decoding is bounded twice: libp2p refuses messages over
//! `pubsub_max_size` / `rpc_max_size` before they reach the codec, and the
//! STEP types' decoders ([`crate::block`], `Value`, `ProposalPart`) check
//! every count and length against its limit before allocating; a message
//! must be consumed whole (`borsh::from_slice`).

use bytes::Bytes;
use malachitebft_codec::{Codec, HasEncodedLen};
use malachitebft_core_consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use malachitebft_core_types::{
    ExtendedCommitCertificate, ExtendedCommitSignature, PolkaCertificate, Round, SignedExtension,
    ValidatorProof,
};
use malachitebft_engine::util::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_sync as sync;

use crate::block::decode_batch;
use crate::context::{
    Height, ProposalPart, Signature, StepContext, ValidatorAddress, Value, ValueId,
};

/// The STEP codec: borsh everywhere (`docs/P2P_PROTOCOL.md`).
#[derive(Clone, Copy, Debug, Default)]
pub struct BorshCodec;

macro_rules! borsh_codec {
    ($($t:ty),* $(,)?) => {$(
        impl Codec<$t> for BorshCodec {
            type Error = std::io::Error;
            fn decode(&self, bytes: Bytes) -> Result<$t, Self::Error> {
                borsh::from_slice(&bytes)
            }
            fn encode(&self, msg: &$t) -> Result<Bytes, Self::Error> {
                borsh::to_vec(msg).map(Bytes::from)
            }
        }
    )*};
}

borsh_codec!(
    Value,
    ProposalPart,
    SignedConsensusMsg<StepContext>,
    LivenessMsg<StepContext>,
    sync::Status<StepContext>,
    sync::Request<StepContext>,
    ProposedValue<StepContext>,
    PolkaCertificate<StepContext>,
);

/// Stream messages: borsh, except that a gossip message whose batch does
/// not decode is delivered as `ProposalPart::GossipUndecodable` (with the
/// decoder's error) instead of being dropped by the network layer, so that
/// the app strikes its authenticated publisher (`docs/P2P_PROTOCOL.md`,
/// *Limits*).
impl Codec<StreamMessage<ProposalPart>> for BorshCodec {
    type Error = std::io::Error;
    fn decode(&self, bytes: Bytes) -> Result<StreamMessage<ProposalPart>, Self::Error> {
        borsh::from_slice(&bytes).or_else(|e| undecodable_gossip(&bytes).ok_or(e))
    }
    fn encode(&self, msg: &StreamMessage<ProposalPart>) -> Result<Bytes, Self::Error> {
        borsh::to_vec(msg).map(Bytes::from)
    }
}

/// `bytes` as a gossip message (stream id, sequence, `Data`, `Gossip`)
/// whose batch, the rest of the bytes, does not decode.
fn undecodable_gossip(bytes: &[u8]) -> Option<StreamMessage<ProposalPart>> {
    use borsh::BorshDeserialize;
    let mut r = bytes;
    let stream_id = StreamId::deserialize_reader(&mut r).ok()?;
    let sequence = u64::deserialize_reader(&mut r).ok()?;
    // Tags: `StreamContent::Data` is 0, `ProposalPart::Gossip` is 3.
    let tags = <(u8, u8)>::deserialize_reader(&mut r).ok()?;
    if tags != (0, 3) {
        return None;
    }
    let error = decode_batch(r).err()?;
    Some(StreamMessage::new(
        stream_id,
        sequence,
        StreamContent::Data(ProposalPart::GossipUndecodable(error)),
    ))
}

impl Codec<ValidatorProof<StepContext>> for BorshCodec {
    type Error = std::io::Error;
    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<StepContext>, Self::Error> {
        let (pk, peer, sig): (Vec<u8>, Vec<u8>, Signature) = borsh::from_slice(&bytes)?;
        Ok(ValidatorProof::new(pk, peer, sig))
    }
    fn encode(&self, p: &ValidatorProof<StepContext>) -> Result<Bytes, Self::Error> {
        borsh::to_vec(&(&p.public_key, &p.peer_id, &p.signature)).map(Bytes::from)
    }
}

type WireCommitSig = (
    ValidatorAddress,
    Signature,
    Option<SignedExtension<StepContext>>,
);
/// (value bytes, height, round, value id, commit signatures)
type WireDecided = (Vec<u8>, Height, Round, ValueId, Vec<WireCommitSig>);

/// Encodes a commit certificate (with extensions) through borsh-able parts.
pub fn certificate_to_wire(
    c: &ExtendedCommitCertificate<StepContext>,
) -> (Height, Round, ValueId, Vec<WireCommitSig>) {
    let sigs = c
        .commit_signatures
        .iter()
        .map(|s| (s.address, s.signature.clone(), s.extension.clone()))
        .collect();
    (c.height, c.round, c.value_id, sigs)
}

/// The inverse of [`certificate_to_wire`].
pub fn certificate_from_wire(
    (height, round, value_id, sigs): (Height, Round, ValueId, Vec<WireCommitSig>),
) -> ExtendedCommitCertificate<StepContext> {
    let commit_signatures = sigs
        .into_iter()
        .map(|(address, signature, extension)| ExtendedCommitSignature {
            address,
            signature,
            extension,
        })
        .collect();
    ExtendedCommitCertificate {
        height,
        round,
        value_id,
        commit_signatures,
    }
}

fn response_to_wire(r: &sync::Response<StepContext>) -> (Height, Vec<WireDecided>) {
    let sync::Response::ValueResponse(vr) = r;
    let values = vr
        .values
        .iter()
        .map(|v| {
            let (h, r, id, sigs) = certificate_to_wire(&v.certificate);
            (v.value_bytes.to_vec(), h, r, id, sigs)
        })
        .collect();
    (vr.start_height, values)
}

impl Codec<sync::Response<StepContext>> for BorshCodec {
    type Error = std::io::Error;
    fn decode(&self, bytes: Bytes) -> Result<sync::Response<StepContext>, Self::Error> {
        let (start_height, values): (Height, Vec<WireDecided>) = borsh::from_slice(&bytes)?;
        let values = values
            .into_iter()
            .map(|(vb, h, r, id, sigs)| {
                sync::RawDecidedValue::new(Bytes::from(vb), certificate_from_wire((h, r, id, sigs)))
            })
            .collect();
        Ok(sync::Response::ValueResponse(sync::ValueResponse::new(
            start_height,
            values,
        )))
    }
    fn encode(&self, r: &sync::Response<StepContext>) -> Result<Bytes, Self::Error> {
        borsh::to_vec(&response_to_wire(r)).map(Bytes::from)
    }
}

impl HasEncodedLen<sync::Response<StepContext>> for BorshCodec {
    fn encoded_len(&self, r: &sync::Response<StepContext>) -> Result<usize, std::io::Error> {
        borsh::object_length(&response_to_wire(r))
    }
}
