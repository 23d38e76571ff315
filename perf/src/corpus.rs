//! Signs a corpus of valid STEP-PROOF-v1 bodies with libsecp256k1.
//!
//! Proof `i` belongs to account `i mod accounts` and is that account's
//! `i / accounts`-th proof. An account always proves the same place (the
//! centroid of its own triangle, levels 1–21 over the 20 faces) and its proofs
//! are 11 s apart: in corpus order every proof passes the speed gate (0 m/s)
//! and the 10 s moratorium with the default limits. Timestamps start at
//! 2026-01-01; the age window must be off (it is by default).

use crate::parts::{span, Parts};
use step_engine::crypto::CheckedSignature;
use step_engine::jsnum::JsNumBuf;
use step_engine::message::{eip191_digest, MessageBuf};
use step_engine::proof::{Nonce, Proof, Timestamp};
use step_engine::{Address, TriangleId};

/// 2026-01-01T00:00:00.000Z in unix ms.
pub const T0_MS: i64 = 1_767_225_600_000;
/// Time between two proofs of one account.
pub const SPACING_MS: i64 = 11_000;

/// One signing thread's share: bodies back to back, plus what the ceiling needs.
#[derive(Debug, Default)]
pub struct Part {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Canonical messages, back to back (for the ceiling's hash).
    messages: Vec<u8>,
    message_ends: Vec<usize>,
    signatures: Vec<CheckedSignature>,
    accounts: Vec<Address>,
    /// The signers' public keys (x ‖ y), for the known-key measurement.
    pubkeys: Vec<[u8; 64]>,
}

impl Part {
    fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.messages.capacity()
            + (self.ends.capacity() + self.message_ends.capacity()) * 8
            + self.signatures.capacity() * std::mem::size_of::<CheckedSignature>()
            + self.accounts.capacity() * 20
            + self.pubkeys.capacity() * 64
    }
}

/// The signed corpus, in the parts the signing threads made.
pub type Corpus = Parts<Part>;

impl Parts<Part> {
    /// The `i`-th body.
    pub fn body(&self, i: usize) -> &[u8] {
        let (p, j) = self.locate(i);
        &p.bytes[span(&p.ends, j)]
    }

    /// Every body, in order.
    pub fn bodies(&self) -> Vec<&[u8]> {
        (0..self.len).map(|i| self.body(i)).collect()
    }

    /// The `i`-th canonical message, signature and signer.
    pub fn ceiling_item(&self, i: usize) -> (&[u8], &CheckedSignature, &Address) {
        let (p, j) = self.locate(i);
        (
            &p.messages[span(&p.message_ends, j)],
            &p.signatures[j],
            &p.accounts[j],
        )
    }

    /// The `i`-th signer's public key (x ‖ y).
    pub fn pubkey(&self, i: usize) -> &[u8; 64] {
        let (p, j) = self.locate(i);
        &p.pubkeys[j]
    }

    /// Total bytes held (bodies, messages, signatures, addresses, keys).
    pub fn heap_bytes(&self) -> usize {
        self.parts.iter().map(Part::heap_bytes).sum()
    }
}

/// Signing keys (key, address, public key) come from `step_engine::signing`.
pub use step_engine::signing::{key, Key};
use step_engine::signing::{sign_digest, write_body};

/// Account `a`'s triangle: faces and levels 1..=21 in turn.
pub fn triangle(a: u64) -> TriangleId {
    let level = (a % 21) as usize + 1;
    let face = ((a / 21) % 20) as u8;
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let digits: Vec<u8> = (0..level - 1)
        .map(|_| {
            x = x.rotate_left(2);
            (x & 3) as u8
        })
        .collect();
    // Every digit 0-3 and level 1-21 is valid: `new` cannot fail here.
    TriangleId::new(face, &digits).unwrap_or_else(|| unreachable!("valid triangle"))
}

/// The triangle's centroid, rounded to 6 decimals where that stays inside.
pub use step_engine::signing::point_in as place;

/// Signs proofs `range` of a corpus over `keys` into `out`.
fn sign_range(keys: &[Key], range: std::ops::Range<usize>, out: &mut Part, tick: &dyn Fn(u64)) {
    let mut msg = MessageBuf::default();
    let mut num = JsNumBuf::new();
    let mut since_tick = 0;
    for i in range {
        let a = i % keys.len();
        let round = (i / keys.len()) as i64;
        let key = &keys[a];
        let t = triangle(a as u64);
        let (lat, lon) = place(&t);
        let accuracy = 3.0 + (i % 3700) as f64 / 100.0;
        let ms = T0_MS + round * SPACING_MS + (a % 1000) as i64;
        let nonce_text = format!("bench-{i:x}");
        let (Some(timestamp), Some(nonce)) =
            (Timestamp::from_unix_ms(ms), Nonce::parse(&nonce_text))
        else {
            unreachable!("in-range timestamp and short nonce")
        };
        let proof = Proof {
            account: key.address,
            triangle: t,
            lat,
            lon,
            accuracy_m: accuracy,
            timestamp,
            nonce,
            signature: Ok([0; 65]),
        };
        msg.build(&proof);
        let sig = sign_digest(key, eip191_digest(msg.as_bytes()));
        let (mut rs, v) = ([0u8; 64], sig[64]);
        rs.copy_from_slice(&sig[..64]);
        write_body(&mut out.bytes, &proof, &sig, &mut num);
        out.ends.push(out.bytes.len());

        out.messages.extend_from_slice(msg.as_bytes());
        out.message_ends.push(out.messages.len());
        out.signatures.push(CheckedSignature { rs, recid: v - 27 });
        out.accounts.push(key.address);
        out.pubkeys.push(key.pubkey);
        since_tick += 1;
        if since_tick == 1000 {
            tick(since_tick);
            since_tick = 0;
        }
    }
    tick(since_tick);
}

/// Signs `n` proofs over `accounts` accounts with `threads` threads, calling
/// `tick(k)` as every `k` proofs are done (for a progress bar).
pub fn sign(
    seed: &str,
    n: usize,
    accounts: usize,
    threads: usize,
    tick: &(dyn Fn(u64) + Sync),
) -> Corpus {
    let accounts = accounts.max(1);
    let keys: Vec<Key> = (0..accounts as u64).map(|k| key(seed, k)).collect();
    let threads = threads.clamp(1, n.max(1));
    crate::parts::build(n, threads, |range| {
        let mut p = Part::default();
        p.bytes.reserve(range.len() * 480);
        p.messages.reserve(range.len() * 240);
        sign_range(&keys, range, &mut p, tick);
        p
    })
}
