//! The change set (what one block changed, the state root's input) and the
//! stable numeric codes of rejections. See the parent module.

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};
use step_engine::Reject;

use super::{StateRoot, STATE_DOMAIN};

/// Why execution rejected a proof: a **stable number** (see
/// [`ExecCode::number`]), part of the state root. The text ([`ExecCode::as_str`])
/// is for people and HTTP only: renaming it cannot fork the chain; changing a
/// number can, so numbers are never reused or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExecCode {
    /// `NONCE_REPLAY`: the (account, nonce) was used by an earlier proof.
    NonceReplay = 1,
    /// `TOO_FAST`: faster than the speed gate from the account's last proof,
    /// or not after it.
    TooFast = 2,
    /// `MORATORIUM`: inside the moratorium after the account's last proof.
    Moratorium = 3,
    /// `TRIANGLE_SUBDIVIDED`: the triangle was subdivided; mine a child.
    TriangleSubdivided = 4,
    /// `TRIANGLE_EXHAUSTED`: a level-21 triangle with 28 clicks.
    TriangleExhausted = 5,
    /// A stateful check failed with a code this table has no number for
    /// (none today: a new engine check gets a number of its own here).
    StatefulOther = 15,
}

impl ExecCode {
    /// Every code, by number.
    pub const ALL: [ExecCode; 6] = [
        ExecCode::NonceReplay,
        ExecCode::TooFast,
        ExecCode::Moratorium,
        ExecCode::TriangleSubdivided,
        ExecCode::TriangleExhausted,
        ExecCode::StatefulOther,
    ];

    /// The stable number the change set (and so the state root) records.
    pub const fn number(self) -> u8 {
        self as u8
    }

    pub fn from_number(n: u8) -> Option<ExecCode> {
        ExecCode::ALL.into_iter().find(|c| c.number() == n)
    }

    /// The wire text (`docs/ERROR_CODES.md`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecCode::NonceReplay => "NONCE_REPLAY",
            ExecCode::TooFast => "TOO_FAST",
            ExecCode::Moratorium => "MORATORIUM",
            ExecCode::TriangleSubdivided => "TRIANGLE_SUBDIVIDED",
            ExecCode::TriangleExhausted => "TRIANGLE_EXHAUSTED",
            ExecCode::StatefulOther => "INTERNAL_ERROR",
        }
    }

    /// The engine's code for a stateful rejection; `None` for the
    /// execution-only triangle codes.
    pub const fn engine_code(self) -> Option<step_engine::Code> {
        use step_engine::Code;
        match self {
            ExecCode::NonceReplay => Some(Code::NonceReplay),
            ExecCode::TooFast => Some(Code::TooFast),
            ExecCode::Moratorium => Some(Code::Moratorium),
            ExecCode::StatefulOther => Some(Code::InternalError),
            ExecCode::TriangleSubdivided | ExecCode::TriangleExhausted => None,
        }
    }

    /// The code of a failed [`check_stateful`].
    pub fn of_stateful(r: &Reject) -> ExecCode {
        match r {
            Reject::NonceReplay => ExecCode::NonceReplay,
            Reject::TooFast { .. } | Reject::NotAfterPrevious { .. } => ExecCode::TooFast,
            Reject::Moratorium { .. } => ExecCode::Moratorium,
            _ => ExecCode::StatefulOther,
        }
    }
}

impl BorshSerialize for ExecCode {
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(&[self.number()])
    }
}

impl BorshDeserialize for ExecCode {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let n = u8::deserialize_reader(reader)?;
        ExecCode::from_number(n).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown execution code {n}"),
            )
        })
    }
}

/// An (account, nonce) a block used.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct NonceUse {
    pub account: [u8; 20],
    pub nonce: String,
}

/// The (account, nonce) pairs a block used, in application order.
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct NonceUses(pub Vec<NonceUse>);

impl NonceUses {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, NonceUse> {
        self.0.iter()
    }
}

/// `for (account, nonce) in &changes.nonces`: the store's unique
/// (account, nonce) index reads the pairs this way.
impl<'a> IntoIterator for &'a NonceUses {
    type Item = (&'a [u8; 20], &'a String);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, NonceUse>, fn(&'a NonceUse) -> Self::Item>;
    fn into_iter(self) -> Self::IntoIter {
        fn pair(u: &NonceUse) -> (&[u8; 20], &String) {
            (&u.account, &u.nonce)
        }
        self.0.iter().map(pair)
    }
}

/// An account's last accepted proof after a block.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct LastChange {
    pub account: [u8; 20],
    pub unix_ms: i64,
    /// IEEE-754 bits of the latitude.
    pub lat_bits: u64,
    /// IEEE-754 bits of the longitude.
    pub lon_bits: u64,
}

/// An account's balance after a block, micro-STEP.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BalanceChange {
    pub account: [u8; 20],
    pub balance_micro: u64,
}

/// A triangle's state after a block.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TriangleChange {
    /// The canonical `STEP-TRI-v1:…` id.
    pub triangle: String,
    pub clicks: u8,
    pub subdivided: bool,
}

/// A proof of the block that execution rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Rejection {
    /// Index of its batch in the block.
    pub batch: u32,
    /// Index of the proof in its batch.
    pub proof: u32,
    /// Recorded as its stable number.
    pub code: ExecCode,
}

/// What one block changed: the canonical input of the state root, and what
/// the store writes. Keys are sorted; values are the values after the block.
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChangeSet {
    pub height: u64,
    pub value_id: [u8; 32],
    /// (account, nonce) recorded, in application order.
    pub nonces: NonceUses,
    pub last: Vec<LastChange>,
    pub balances: Vec<BalanceChange>,
    /// Every touched triangle, children created by a subdivision included.
    pub triangles: Vec<TriangleChange>,
    pub rejected: Vec<Rejection>,
    pub accepted: u64,
}

/// Writes borsh's encoding straight into the hasher: nothing is allocated
/// and nothing can fail (see [`ChangeSet::root`]).
struct RootHasher(Sha256);

impl RootHasher {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(b);
    }
    fn u8(&mut self, v: u8) {
        self.0.update([v]);
    }
    fn u32(&mut self, v: u32) {
        self.0.update(v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.update(v.to_le_bytes());
    }
    /// A list's length, as borsh writes it (u32). A block's lists are far
    /// shorter than 2^32 (the wire form bounds a block); a longer one would
    /// saturate alike on every validator.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }
}

impl ChangeSet {
    /// `SHA-256(STATE_DOMAIN ‖ previous root ‖ borsh(self))`, with borsh's
    /// bytes written into the hasher field by field (equal to
    /// `borsh::to_vec(self)`: `change_set_root_is_borsh_of_the_change_set`).
    pub fn root(&self, previous: &StateRoot) -> StateRoot {
        let mut h = RootHasher(Sha256::new());
        h.bytes(STATE_DOMAIN);
        h.bytes(previous);
        h.u64(self.height);
        h.bytes(&self.value_id);
        h.len(self.nonces.len());
        for n in self.nonces.iter() {
            h.bytes(&n.account);
            h.str(&n.nonce);
        }
        h.len(self.last.len());
        for l in &self.last {
            h.bytes(&l.account);
            h.u64(l.unix_ms as u64);
            h.u64(l.lat_bits);
            h.u64(l.lon_bits);
        }
        h.len(self.balances.len());
        for b in &self.balances {
            h.bytes(&b.account);
            h.u64(b.balance_micro);
        }
        h.len(self.triangles.len());
        for t in &self.triangles {
            h.str(&t.triangle);
            h.u8(t.clicks);
            h.u8(u8::from(t.subdivided));
        }
        h.len(self.rejected.len());
        for r in &self.rejected {
            h.u32(r.batch);
            h.u32(r.proof);
            h.u8(r.code.number());
        }
        h.u64(self.accepted);
        h.0.finalize().into()
    }
}
