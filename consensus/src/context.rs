//! The STEP [`Context`](mc::Context) for malachite: heights, addresses,
//! validators (voting power = stake), the value (a block of batch digests),
//! votes, proposals, proposal parts and the round-robin proposer.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use malachitebft_core_types as mc;
use mc::{NilOrVal, Round, SignedExtension, VoteType};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use crate::attest::Attestation;
use crate::block::{
    read_attestations, read_batches, write_batches, WireBatch, WireError, MAX_BATCHES_PER_BLOCK,
};

/// Domain separator of a block's value id.
pub const BLOCK_DOMAIN: &[u8] = b"STEP-BLOCK-v2\n";

pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// A block height. Height 1 is the first block.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);
    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }
    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: the first 20 bytes of SHA-256 of its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct ValidatorAddress(pub [u8; 20]);

impl ValidatorAddress {
    pub fn from_public_key(pk: &PublicKey) -> Self {
        let h = Sha256::digest(pk.0);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[..20]);
        ValidatorAddress(a)
    }
}

impl fmt::Display for ValidatorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for ValidatorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex(&self.0[..4]))
    }
}

impl mc::Address for ValidatorAddress {}

/// The signing scheme: ed25519 (`docs/adr/0020-malachite.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

/// An ed25519 signature (R ‖ s).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

/// An ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 private key.
pub type PrivateKey = ed25519_consensus::SigningKey;

/// Why a signature or public key could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} bytes, got {got}")]
pub struct KeyLengthError {
    pub expected: usize,
    pub got: usize,
}

/// Exactly `N` bytes, or how many there were.
fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], KeyLengthError> {
    bytes.try_into().map_err(|_| KeyLengthError {
        expected: N,
        got: bytes.len(),
    })
}

impl mc::SigningScheme for Ed25519 {
    type DecodingError = KeyLengthError;
    type Signature = Signature;
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, KeyLengthError> {
        fixed(bytes).map(Signature)
    }
    fn encode_signature(s: &Signature) -> Vec<u8> {
        s.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, KeyLengthError> {
        fixed(bytes).map(PublicKey)
    }
    fn encode_public_key(pk: &PublicKey) -> Vec<u8> {
        pk.0.to_vec()
    }
}

/// A validator; its voting power is its stake.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    pub address: ValidatorAddress,
    pub public_key: PublicKey,
    pub stake: u64,
}

impl Validator {
    pub fn new(public_key: PublicKey, stake: u64) -> Self {
        Validator {
            address: ValidatorAddress::from_public_key(&public_key),
            public_key,
            stake,
        }
    }
}

impl mc::Validator<StepContext> for Validator {
    fn address(&self) -> &ValidatorAddress {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.stake
    }
}

/// The validator set, sorted by address (the proposer order).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// Sorts by address. Panics on an empty set (a programmer error).
    pub fn new(mut validators: Vec<Validator>) -> Self {
        assert!(!validators.is_empty(), "a validator set needs a validator");
        validators.sort_by_key(|v| v.address);
        validators.dedup_by_key(|v| v.address);
        ValidatorSet { validators }
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The proposer of `(height, round)`: index `(height + round) mod n`.
    /// A nil round counts as 0.
    pub fn proposer(&self, height: Height, round: Round) -> &Validator {
        let r = round.as_u32().map_or(0, u64::from);
        let n = self.validators.len() as u64;
        let i = (height.0 % n + r % n) % n;
        &self.validators[i as usize]
    }
}

impl mc::ValidatorSet<StepContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.validators.iter().map(|v| v.stake).sum()
    }
    fn get_by_address(&self, a: &ValidatorAddress) -> Option<&Validator> {
        self.validators.iter().find(|v| &v.address == a)
    }
    fn get_by_index(&self, i: usize) -> Option<&Validator> {
        self.validators.get(i)
    }
}

/// The value consensus decides: an ordered list of batch digests and the
/// state root its proposer computed for the previous height (CometBFT's app
/// hash; `docs/CONSENSUS_SPEC.md`, "State root in the block"). The batches
/// themselves travel in the proposal parts and are kept by the app
/// (`crate::app`), which re-verifies them and compares the root with its own
/// before the value is marked valid. Decoding refuses more than
/// [`MAX_BATCHES_PER_BLOCK`] digests before allocating.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, BorshSerialize)]
pub struct Value {
    pub batch_digests: Vec<[u8; 32]>,
    /// The state root after height `h - 1` for a block of height `h` (all
    /// zeros, the empty state's root, at height 1).
    pub prev_root: [u8; 32],
}

impl BorshDeserialize for Value {
    fn deserialize_reader<R: std::io::Read>(r: &mut R) -> std::io::Result<Self> {
        let n = u32::deserialize_reader(r)? as usize;
        if n > MAX_BATCHES_PER_BLOCK {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                WireError::TooManyBatches {
                    what: "value",
                    batches: n,
                    max: MAX_BATCHES_PER_BLOCK,
                },
            ));
        }
        let mut batch_digests = Vec::with_capacity(n);
        for _ in 0..n {
            batch_digests.push(<[u8; 32]>::deserialize_reader(r)?);
        }
        let prev_root = <[u8; 32]>::deserialize_reader(r)?;
        Ok(Value {
            batch_digests,
            prev_root,
        })
    }
}

/// SHA-256 of `BLOCK_DOMAIN ‖ u32_be(n) ‖ digest₀ ‖ … ‖ digestₙ₋₁ ‖ prev_root`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct ValueId(pub [u8; 32]);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0[..8]))
    }
}

impl mc::Value for Value {
    type Id = ValueId;
    fn id(&self) -> ValueId {
        let mut h = Sha256::new();
        h.update(BLOCK_DOMAIN);
        h.update((self.batch_digests.len() as u32).to_be_bytes());
        for d in &self.batch_digests {
            h.update(d);
        }
        h.update(self.prev_root);
        ValueId(h.finalize().into())
    }
}

/// A proposal (signed by the proposer; see `crate::signing`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: Value,
    pub pol_round: Round,
    pub validator_address: ValidatorAddress,
}

impl mc::Proposal<StepContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &Value {
        &self.value
    }
    fn take_value(self) -> Value {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &ValidatorAddress {
        &self.validator_address
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub vote_type: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<ValueId>,
    pub validator_address: ValidatorAddress,
    pub extension: Option<SignedExtension<StepContext>>,
}

impl Vote {
    /// A vote of `vote_type` by `address`, without an extension.
    pub fn unsigned(
        vote_type: VoteType,
        height: Height,
        round: Round,
        value: NilOrVal<ValueId>,
        address: ValidatorAddress,
    ) -> Self {
        Self {
            vote_type,
            height,
            round,
            value,
            validator_address: address,
            extension: None,
        }
    }
}

impl mc::Vote<StepContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<ValueId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<ValueId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &ValidatorAddress {
        &self.validator_address
    }
    fn extension(&self) -> Option<&SignedExtension<StepContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<StepContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<StepContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// One part of a streamed proposal: `Init`, then `Batches` parts, then `Fin`.
/// `Gossip` is not part of a proposal: it carries one pre-validated batch to
/// every validator ahead of proposals, on the same authenticated channel
/// (`docs/P2P_PROTOCOL.md`, "Batch gossip"). Batches are shared with the
/// block they belong to. Borsh by hand (tags 0–5), so that a
/// `Batches` part is bounded like a block.
///
/// The decoder is strict: what decodes re-encodes byte for byte. The
/// network codec ([`crate::codec`]) turns a gossip message whose batch does
/// not decode into `GossipUndecodable`, so that the app still learns who
/// published it and strikes that publisher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalPart {
    Init {
        height: Height,
        round: Round,
        valid_round: Round,
        proposer: ValidatorAddress,
        /// The block's [`Value::prev_root`].
        prev_root: [u8; 32],
    },
    Batches(Vec<Arc<WireBatch>>),
    Fin {
        value_id: ValueId,
    },
    /// A batch and its ingester's attestation (the ingester is the
    /// attestation's validator).
    Gossip(Arc<WireBatch>, Attestation),
    /// A validator's attestation of a gossiped batch (`crate::attest`).
    Attest(Attestation),
    /// The attestations of a proposal's batches (after its `Batches`
    /// parts, before `Fin`).
    Attestations(Vec<Attestation>),
    /// Never sent, never decoded by borsh: what the network codec delivers
    /// for a `Gossip` part whose batch bytes are not a batch, with the
    /// decoder's error.
    GossipUndecodable(WireError),
}

impl BorshSerialize for ProposalPart {
    fn serialize<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        match self {
            ProposalPart::Init {
                height,
                round,
                valid_round,
                proposer,
                prev_root,
            } => {
                0u8.serialize(w)?;
                (height, round, valid_round, proposer, prev_root).serialize(w)
            }
            ProposalPart::Batches(b) => {
                1u8.serialize(w)?;
                write_batches(w, b)
            }
            ProposalPart::Fin { value_id } => {
                2u8.serialize(w)?;
                value_id.serialize(w)
            }
            ProposalPart::Gossip(b, a) => {
                3u8.serialize(w)?;
                b.serialize(w)?;
                a.serialize(w)
            }
            ProposalPart::Attest(a) => {
                4u8.serialize(w)?;
                a.serialize(w)
            }
            ProposalPart::Attestations(v) => {
                5u8.serialize(w)?;
                v.serialize(w)
            }
            ProposalPart::GossipUndecodable(e) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("an undecodable gossip part is never sent ({e})"),
            )),
        }
    }
}

impl BorshDeserialize for ProposalPart {
    fn deserialize_reader<R: std::io::Read>(r: &mut R) -> std::io::Result<Self> {
        Ok(match u8::deserialize_reader(r)? {
            0 => {
                let (height, round, valid_round, proposer, prev_root) =
                    <(Height, Round, Round, ValidatorAddress, [u8; 32])>::deserialize_reader(r)?;
                ProposalPart::Init {
                    height,
                    round,
                    valid_round,
                    proposer,
                    prev_root,
                }
            }
            1 => ProposalPart::Batches(read_batches(r, "proposal part")?),
            2 => ProposalPart::Fin {
                value_id: ValueId::deserialize_reader(r)?,
            },
            3 => ProposalPart::Gossip(
                Arc::new(WireBatch::deserialize_reader(r)?),
                Attestation::deserialize_reader(r)?,
            ),
            4 => ProposalPart::Attest(Attestation::deserialize_reader(r)?),
            5 => ProposalPart::Attestations(read_attestations(r, "proposal part")?),
            tag => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    WireError::Malformed {
                        what: "proposal part",
                        reason: format!("unknown tag {tag}"),
                    },
                ))
            }
        })
    }
}

impl mc::ProposalPart<StepContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. })
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin { .. })
    }
}

/// The STEP context. Stateless: the proposer rule lives in [`ValidatorSet::proposer`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StepContext;

impl mc::Context for StepContext {
    type Address = ValidatorAddress;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = mc::LinearTimeouts;
    type Value = Value;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        vs: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        vs.proposer(height, round)
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: Value,
        pol_round: Round,
        address: ValidatorAddress,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            validator_address: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<ValueId>,
        address: ValidatorAddress,
    ) -> Vote {
        Vote::unsigned(VoteType::Prevote, height, round, value, address)
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<ValueId>,
        address: ValidatorAddress,
    ) -> Vote {
        Vote::unsigned(VoteType::Precommit, height, round, value, address)
    }
}
