//! Batches on the wire and blocks in the store: one wire form, decoded with
//! bounds.
//!
//! [`WireBatch`] mirrors the engine pipeline's [`Batch`]: every field of
//! every proof, the recovered public keys and the batch digest. Its proofs
//! carry the engine's typed fields ([`TriangleId`], [`Timestamp`],
//! [`Nonce`]); the text forms exist only in the bytes
//! (`docs/P2P_PROTOCOL.md`, "Encoding"), so a proof is parsed once, when its
//! bytes arrive. Decoding never trusts the carried digest: the receiver
//! re-verifies the batch with [`step_engine::pipeline::reverify_batch`].
//!
//! Decoding is bounded: every count and string length is checked against
//! its limit before anything is allocated for it ([`MAX_PROOFS_PER_BATCH`],
//! [`MAX_BATCHES_PER_BLOCK`], the engine's field lengths), and
//! [`decode_batch`] / [`decode_block`] refuse trailing bytes. Every refusal
//! is a [`WireError`] with its data.

use std::io::{Read, Write};
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use malachitebft_core_types::Value as _;
use step_engine::pipeline::Batch;
use step_engine::proof::{Nonce, Proof, Timestamp, NONCE_MAX_LEN};
use step_engine::triangle::ID_MAX_LEN;
use step_engine::{Address, TriangleId};

use crate::attest::{Attestation, MAX_ATTESTATIONS_PER_BLOCK};
use crate::context::{Value, ValueId};

/// Most proofs one batch may carry on the wire.
pub const MAX_PROOFS_PER_BATCH: usize = 1_000;
/// Most batches one block, one proposal part or one value may name on the
/// wire. A proposer never builds more (`AppConfig::max_batches_per_block`
/// is capped by it).
pub const MAX_BATCHES_PER_BLOCK: usize = 16_384;
/// Longest timestamp text (`Timestamp`'s buffer).
pub const TIMESTAMP_MAX_LEN: usize = 24;

/// One proof: every field the canonical message commits to, plus its
/// signature, in the engine's typed form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireProof {
    pub account: [u8; 20],
    /// On the wire: the `STEP-TRI-v1:…` text form.
    pub triangle: TriangleId,
    /// IEEE-754 bits, so the value round-trips exactly.
    pub lat_bits: u64,
    pub lon_bits: u64,
    pub accuracy_m_bits: u64,
    /// On the wire: the timestamp text exactly as signed.
    pub timestamp: Timestamp,
    /// On the wire: the nonce text.
    pub nonce: Nonce,
    pub signature: [u8; 65],
}

/// A pre-validated batch on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireBatch {
    pub proofs: Vec<WireProof>,
    pub pubkeys: Vec<[u8; 64]>,
    pub digest: [u8; 32],
}

/// Why bytes are not a batch or a block, or a batch not an engine batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("batch carries {proofs} proofs, more than the limit of {max}")]
    TooManyProofs { proofs: usize, max: usize },
    #[error("batch carries {pubkeys} public keys, more than the limit of {max}")]
    TooManyPubkeys { pubkeys: usize, max: usize },
    #[error("{what} names {batches} batches, more than the limit of {max}")]
    TooManyBatches {
        what: &'static str,
        batches: usize,
        max: usize,
    },
    #[error("proof {index}: {field} is {len} bytes, more than the limit of {max}")]
    FieldTooLong {
        index: usize,
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("proof {index}: {field} does not parse")]
    Field { index: usize, field: &'static str },
    #[error("proof {index} has no valid signature and cannot be in a batch")]
    MissingSignature { index: usize },
    #[error("{what} carries {attestations} attestations, more than the limit of {max}")]
    TooManyAttestations {
        what: &'static str,
        attestations: usize,
        max: usize,
    },
    #[error("{what}: {left} bytes left over after the value")]
    TrailingBytes { what: &'static str, left: usize },
    #[error("{what}: malformed bytes: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} does not encode: {reason}")]
    Encode { what: &'static str, reason: String },
}

impl WireError {
    fn io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }

    /// The named error inside a borsh error, or `Malformed`.
    fn from_io(what: &'static str, e: std::io::Error) -> WireError {
        match e.get_ref().and_then(|i| i.downcast_ref::<WireError>()) {
            Some(w) => w.clone(),
            None => WireError::Malformed {
                what,
                reason: e.to_string(),
            },
        }
    }
}

/// Reads a borsh `u32` count and checks it against `max` before anything
/// is allocated for it.
fn read_count<R: Read>(
    r: &mut R,
    max: usize,
    err: impl FnOnce(usize) -> WireError,
) -> std::io::Result<usize> {
    let n = u32::deserialize_reader(r)? as usize;
    if n > max {
        return Err(err(n).io());
    }
    Ok(n)
}

/// Writes a borsh string (u32 length, bytes).
fn write_str<W: Write>(w: &mut W, s: &[u8]) -> std::io::Result<()> {
    (s.len() as u32).serialize(w)?;
    w.write_all(s)
}

/// Reads a borsh string of at most `N` bytes into a stack buffer and parses it.
fn read_field<R: Read, T, const N: usize>(
    r: &mut R,
    index: usize,
    field: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> std::io::Result<T> {
    let len = u32::deserialize_reader(r)? as usize;
    if len > N {
        return Err(WireError::FieldTooLong {
            index,
            field,
            len,
            max: N,
        }
        .io());
    }
    let mut buf = [0u8; N];
    r.read_exact(&mut buf[..len])?;
    std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(parse)
        .ok_or_else(|| WireError::Field { index, field }.io())
}

impl WireProof {
    /// The wire form of one accepted proof; `None` without a decoded
    /// signature (such a proof is never accepted).
    pub fn of_proof(p: &Proof) -> Option<WireProof> {
        let signature = p.signature.ok()?;
        Some(WireProof {
            account: p.account.0,
            triangle: p.triangle,
            lat_bits: p.lat.to_bits(),
            lon_bits: p.lon.to_bits(),
            accuracy_m_bits: p.accuracy_m.to_bits(),
            timestamp: p.timestamp,
            nonce: p.nonce,
            signature,
        })
    }

    /// The engine's typed proof (a copy; nothing is parsed).
    pub fn to_proof(&self) -> Proof {
        Proof {
            account: Address(self.account),
            triangle: self.triangle,
            lat: f64::from_bits(self.lat_bits),
            lon: f64::from_bits(self.lon_bits),
            accuracy_m: f64::from_bits(self.accuracy_m_bits),
            timestamp: self.timestamp,
            nonce: self.nonce,
            signature: Ok(self.signature),
        }
    }

    /// Writes this proof's wire bytes (as inside a [`WireBatch`]).
    pub fn write<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.account)?;
        let mut t = [0u8; ID_MAX_LEN];
        let n = self.triangle.write(&mut t);
        write_str(w, &t[..n])?;
        self.lat_bits.serialize(w)?;
        self.lon_bits.serialize(w)?;
        self.accuracy_m_bits.serialize(w)?;
        write_str(w, self.timestamp.as_bytes())?;
        write_str(w, self.nonce.as_bytes())?;
        w.write_all(&self.signature)
    }

    /// Reads one proof's wire bytes, every field bounded ([`WireError`]
    /// inside the I/O error); `index` names it in errors.
    pub fn read<R: Read>(r: &mut R, index: usize) -> std::io::Result<WireProof> {
        let account = <[u8; 20]>::deserialize_reader(r)?;
        let triangle =
            read_field::<_, _, ID_MAX_LEN>(r, index, "triangle", |s| TriangleId::parse(s).ok())?;
        let lat_bits = u64::deserialize_reader(r)?;
        let lon_bits = u64::deserialize_reader(r)?;
        let accuracy_m_bits = u64::deserialize_reader(r)?;
        let timestamp =
            read_field::<_, _, TIMESTAMP_MAX_LEN>(r, index, "timestamp", Timestamp::parse)?;
        let nonce = read_field::<_, _, NONCE_MAX_LEN>(r, index, "nonce", Nonce::parse)?;
        let mut signature = [0u8; 65];
        r.read_exact(&mut signature)?;
        Ok(WireProof {
            account,
            triangle,
            lat_bits,
            lon_bits,
            accuracy_m_bits,
            timestamp,
            nonce,
            signature,
        })
    }

    /// Bytes of this proof on the wire.
    fn encoded_len(&self) -> usize {
        let mut t = [0u8; ID_MAX_LEN];
        20 + 4
            + self.triangle.write(&mut t)
            + 24
            + 4
            + self.timestamp.as_bytes().len()
            + 4
            + self.nonce.as_bytes().len()
            + 65
    }
}

impl BorshSerialize for WireBatch {
    fn serialize<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        (self.proofs.len() as u32).serialize(w)?;
        for p in &self.proofs {
            p.write(w)?;
        }
        self.pubkeys.serialize(w)?;
        self.digest.serialize(w)
    }
}

impl BorshDeserialize for WireBatch {
    fn deserialize_reader<R: Read>(r: &mut R) -> std::io::Result<Self> {
        let n = read_count(r, MAX_PROOFS_PER_BATCH, |proofs| WireError::TooManyProofs {
            proofs,
            max: MAX_PROOFS_PER_BATCH,
        })?;
        let mut proofs = Vec::with_capacity(n);
        for index in 0..n {
            proofs.push(WireProof::read(r, index)?);
        }
        let k = read_count(r, MAX_PROOFS_PER_BATCH, |pubkeys| {
            WireError::TooManyPubkeys {
                pubkeys,
                max: MAX_PROOFS_PER_BATCH,
            }
        })?;
        let mut pubkeys = Vec::with_capacity(k);
        for _ in 0..k {
            pubkeys.push(<[u8; 64]>::deserialize_reader(r)?);
        }
        let digest = <[u8; 32]>::deserialize_reader(r)?;
        Ok(WireBatch {
            proofs,
            pubkeys,
            digest,
        })
    }
}

impl WireBatch {
    /// The wire form of an engine batch. Fails only for a proof without a
    /// signature, which the pipeline never puts in a batch.
    pub fn from_batch(batch: &Batch) -> Result<WireBatch, WireError> {
        let proofs = batch
            .proofs
            .iter()
            .enumerate()
            .map(|(index, p)| WireProof::of_proof(p).ok_or(WireError::MissingSignature { index }))
            .collect::<Result<_, _>>()?;
        Ok(WireBatch {
            proofs,
            pubkeys: batch.pubkeys.clone(),
            digest: batch.digest,
        })
    }

    /// The engine batch (a copy of the typed fields; nothing is parsed).
    /// Its digest is the carried one: re-verify before trusting it.
    pub fn to_batch(&self) -> Result<Batch, WireError> {
        if self.proofs.len() > MAX_PROOFS_PER_BATCH {
            return Err(WireError::TooManyProofs {
                proofs: self.proofs.len(),
                max: MAX_PROOFS_PER_BATCH,
            });
        }
        let proofs = self
            .proofs
            .iter()
            .map(|w| Proof {
                account: Address(w.account),
                triangle: w.triangle,
                lat: f64::from_bits(w.lat_bits),
                lon: f64::from_bits(w.lon_bits),
                accuracy_m: f64::from_bits(w.accuracy_m_bits),
                timestamp: w.timestamp,
                nonce: w.nonce,
                signature: Ok(w.signature),
            })
            .collect();
        Ok(Batch {
            proofs,
            pubkeys: self.pubkeys.clone(),
            digest: self.digest,
        })
    }

    pub fn len(&self) -> usize {
        self.proofs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proofs.is_empty()
    }

    /// Bytes of this batch on the wire (without encoding it).
    pub fn encoded_len(&self) -> usize {
        4 + self
            .proofs
            .iter()
            .map(WireProof::encoded_len)
            .sum::<usize>()
            + 4
            + 64 * self.pubkeys.len()
            + 32
    }
}

/// A block as stored and as served to syncing peers: the value and the
/// batches its digests name, in the same order. Batches are shared
/// (`Arc`): the mempool, the proposal parts and the block hold one copy.
/// The value id is computed once, when the block is made or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockData {
    pub value: Value,
    pub batches: Vec<Arc<WireBatch>>,
    /// The batches' validity attestations (`consensus.validity =
    /// "attested"`; empty under `"all"`). Not part of the value id: any
    /// quorum of valid attestations makes the same batches valid.
    pub attestations: Vec<Attestation>,
    id: ValueId,
}

impl BlockData {
    /// A block on the empty state's root (all zeros): a first block, or a
    /// test's. A proposer builds with [`BlockData::on_root`].
    pub fn new<B: Into<Arc<WireBatch>>>(batches: impl IntoIterator<Item = B>) -> BlockData {
        BlockData::on_root([0; 32], batches)
    }

    /// A block whose proposer's state root for the previous height is
    /// `prev_root` ([`Value::prev_root`]).
    pub fn on_root<B: Into<Arc<WireBatch>>>(
        prev_root: [u8; 32],
        batches: impl IntoIterator<Item = B>,
    ) -> BlockData {
        let batches: Vec<Arc<WireBatch>> = batches.into_iter().map(Into::into).collect();
        let value = Value {
            batch_digests: batches.iter().map(|b| b.digest).collect(),
            prev_root,
        };
        BlockData::with_value(value, batches, Vec::new())
    }

    /// A block of `batches` on the empty state's root with their
    /// attestations (tests; a proposer uses [`BlockData::with_attestations`]).
    pub fn attested<B: Into<Arc<WireBatch>>>(
        batches: impl IntoIterator<Item = B>,
        attestations: Vec<Attestation>,
    ) -> BlockData {
        BlockData::new(batches).with_attestations(attestations)
    }

    /// This block carrying `attestations` (they are not part of the id).
    pub fn with_attestations(mut self, attestations: Vec<Attestation>) -> BlockData {
        self.attestations = attestations;
        self
    }

    /// The state root its proposer computed for the previous height.
    pub fn prev_root(&self) -> [u8; 32] {
        self.value.prev_root
    }

    fn with_value(
        value: Value,
        batches: Vec<Arc<WireBatch>>,
        attestations: Vec<Attestation>,
    ) -> BlockData {
        let id = value.id();
        BlockData {
            value,
            batches,
            attestations,
            id,
        }
    }

    /// The value id (hashed once).
    pub fn id(&self) -> ValueId {
        self.id
    }

    /// True when the batches' carried digests are the value's, in order.
    pub fn is_consistent(&self) -> bool {
        self.value.batch_digests.len() == self.batches.len()
            && self
                .value
                .batch_digests
                .iter()
                .zip(&self.batches)
                .all(|(d, b)| *d == b.digest)
    }

    pub fn proof_count(&self) -> usize {
        self.batches.iter().map(|b| b.len()).sum()
    }

    /// The stored / synced bytes of this block.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        borsh::to_vec(self).map_err(|e| WireError::Encode {
            what: "block",
            reason: e.to_string(),
        })
    }
}

/// Writes a list of shared batches as a borsh vector.
pub(crate) fn write_batches<W: Write>(
    w: &mut W,
    batches: &[Arc<WireBatch>],
) -> std::io::Result<()> {
    (batches.len() as u32).serialize(w)?;
    for b in batches {
        b.serialize(w)?;
    }
    Ok(())
}

/// Reads a borsh vector of at most [`MAX_BATCHES_PER_BLOCK`] batches.
pub(crate) fn read_batches<R: Read>(
    r: &mut R,
    what: &'static str,
) -> std::io::Result<Vec<Arc<WireBatch>>> {
    let n = read_count(r, MAX_BATCHES_PER_BLOCK, |batches| {
        WireError::TooManyBatches {
            what,
            batches,
            max: MAX_BATCHES_PER_BLOCK,
        }
    })?;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        out.push(Arc::new(WireBatch::deserialize_reader(r)?));
    }
    Ok(out)
}

/// Reads a borsh vector of at most [`MAX_ATTESTATIONS_PER_BLOCK`]
/// attestations (fixed size each), checked before allocating.
pub(crate) fn read_attestations<R: Read>(
    r: &mut R,
    what: &'static str,
) -> std::io::Result<Vec<Attestation>> {
    let n = read_count(r, MAX_ATTESTATIONS_PER_BLOCK, |attestations| {
        WireError::TooManyAttestations {
            what,
            attestations,
            max: MAX_ATTESTATIONS_PER_BLOCK,
        }
    })?;
    let mut out = Vec::with_capacity(n.min(1_024));
    for _ in 0..n {
        out.push(Attestation::deserialize_reader(r)?);
    }
    Ok(out)
}

impl BorshSerialize for BlockData {
    fn serialize<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        self.value.serialize(w)?;
        write_batches(w, &self.batches)?;
        self.attestations.serialize(w)
    }
}

impl BorshDeserialize for BlockData {
    fn deserialize_reader<R: Read>(r: &mut R) -> std::io::Result<Self> {
        let value = Value::deserialize_reader(r)?;
        let batches = read_batches(r, "block")?;
        let attestations = read_attestations(r, "block")?;
        Ok(BlockData::with_value(value, batches, attestations))
    }
}

/// Decodes `bytes` as one `T`, all of them.
fn decode_all<T: BorshDeserialize>(what: &'static str, bytes: &[u8]) -> Result<T, WireError> {
    let mut r = bytes;
    let v = T::deserialize_reader(&mut r).map_err(|e| WireError::from_io(what, e))?;
    if !r.is_empty() {
        return Err(WireError::TrailingBytes {
            what,
            left: r.len(),
        });
    }
    Ok(v)
}

/// A batch from its wire bytes, all of them.
pub fn decode_batch(bytes: &[u8]) -> Result<WireBatch, WireError> {
    decode_all("batch", bytes)
}

/// A block from its stored or synced bytes, all of them.
pub fn decode_block(bytes: &[u8]) -> Result<BlockData, WireError> {
    decode_all("block", bytes)
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
