//! The proofs a load run sends, signed beforehand on all cores and cached on
//! disk.
//!
//! Slot `i` of the sequence is either a valid proof or, at the rate
//! `--invalid-ratio`, a bad one; the bad kinds take turns (see [`Kind`]).
//! Valid proof `v` belongs to account `v mod accounts` and is its
//! `r = v / accounts`-th proof. Each account has its own level-18 triangle
//! (unique per account) and its `r`-th proof is in the level-21 triangle
//! `r mod 64` inside it: consecutive proofs are at most ~55 m apart and 11 s
//! apart in proof time, so the speed gate (15 m/s) and the 10 s moratorium
//! pass them when they arrive in order. Level-21 triangles never subdivide
//! and each takes 28 clicks, so execution (which rejects a subdivided or
//! exhausted triangle) accepts up to 64 × 28 proofs per account; proving
//! one triangle over and over would be rejected after its 11th click. With `accounts` ≥ 2 × the rate (the default), two
//! proofs of one account are sent ≥ 2 s apart, so they are not reordered in
//! flight. Timestamps start at 2026-01-01: a node's age window must be off
//! (its default).
//!
//! Slot `i`'s proof depends only on (seed, accounts, invalid ratio, `i`),
//! not on how many are prepared: a cached set serves any run that needs as
//! many proofs or fewer.

use crate::parts::{span, Parts};
use sha2::{Digest, Sha256};
use step_engine::jsnum::JsNumBuf;
use step_engine::proof::Proof;
use step_engine::signing::{key, point_in, sign, unsigned_proof, write_body, Key};
use step_engine::{Code, TriangleId};

/// 2026-01-01T00:00:00.000Z in unix ms.
pub const T0_MS: i64 = crate::corpus::T0_MS;
/// Proof time between two valid proofs of one account.
pub const SPACING_MS: i64 = 11_000;

/// What a prepared proof is, and so what the network should answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Valid = 0,
    /// A valid proof whose signature's `r` was altered after signing.
    BadSignature = 1,
    /// Validly signed; the point is the centroid of another face's triangle.
    OutOfBounds = 2,
    /// Validly signed with accuracy 80 m (the limit is 50 m).
    LowAccuracy = 3,
    /// A byte-identical copy of a valid proof sent earlier.
    Replay = 4,
    /// The triangle id's checksum altered (the body does not parse).
    BadPayload = 5,
    /// A fresh proof of an account 1 s (proof time) after its previous one.
    Moratorium = 6,
}

impl Kind {
    /// The bad kinds, in the order they take turns.
    pub const INVALID: [Kind; 6] = [
        Kind::BadSignature,
        Kind::OutOfBounds,
        Kind::LowAccuracy,
        Kind::Replay,
        Kind::BadPayload,
        Kind::Moratorium,
    ];

    pub(super) fn from_u8(b: u8) -> Option<Kind> {
        [Kind::Valid]
            .into_iter()
            .chain(Kind::INVALID)
            .find(|k| *k as u8 == b)
    }

    /// The verdict code this kind should get; `None` for a valid proof.
    pub fn expected(self) -> Option<Code> {
        match self {
            Kind::Valid => None,
            Kind::BadSignature => Some(Code::BadSignature),
            Kind::OutOfBounds => Some(Code::OutOfBounds),
            Kind::LowAccuracy => Some(Code::LowGpsAccuracy),
            Kind::Replay => Some(Code::NonceReplay),
            Kind::BadPayload => Some(Code::InvalidPayload),
            Kind::Moratorium => Some(Code::Moratorium),
        }
    }
}

/// What the prepared set depends on (besides its length).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub seed: String,
    pub accounts: u64,
    /// Bad proofs per million.
    pub invalid_ppm: u64,
}

/// One slot of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub kind: Kind,
    /// Valid proofs before this slot (this slot's valid index if valid).
    pub valid_index: u64,
    /// For replay and moratorium: the earlier valid proof they refer to.
    pub refers_to: Option<u64>,
}

impl Params {
    fn invalid_before(&self, i: u64) -> u64 {
        (u128::from(i) * u128::from(self.invalid_ppm) / 1_000_000) as u64
    }

    /// What slot `i` holds: O(1), no state.
    pub fn slot(&self, i: u64) -> Slot {
        let before = self.invalid_before(i);
        let valid_index = i - before;
        if self.invalid_before(i + 1) == before {
            return Slot {
                kind: Kind::Valid,
                valid_index,
                refers_to: None,
            };
        }
        let kind = Kind::INVALID[(before % Kind::INVALID.len() as u64) as usize];
        // Refer to a valid proof sent about half an account cycle earlier
        // (long since answered); too early in the run, sign a bad
        // signature instead.
        let lag = (self.accounts / 2).max(1);
        match kind {
            Kind::Replay | Kind::Moratorium if valid_index < lag => Slot {
                kind: Kind::BadSignature,
                valid_index,
                refers_to: None,
            },
            Kind::Replay | Kind::Moratorium => Slot {
                kind,
                valid_index,
                refers_to: Some(valid_index - lag),
            },
            _ => Slot {
                kind,
                valid_index,
                refers_to: None,
            },
        }
    }

    /// The slot of valid proof `v` (the inverse of [`Params::slot`]'s
    /// `valid_index` on valid slots).
    pub fn slot_of_valid(&self, v: u64) -> u64 {
        // The least i with i − invalid_before(i) = v, by fixed-point
        // iteration (monotone, slope < 1), then the first valid slot there.
        let mut i = v;
        for _ in 0..100_000 {
            let j = v + self.invalid_before(i);
            if j == i {
                break;
            }
            i = j;
        }
        while self.slot(i).kind != Kind::Valid && self.invalid_ppm < 1_000_000 {
            i += 1;
        }
        i
    }

    /// The cache file name for these parameters.
    pub fn cache_key(&self) -> String {
        let h = Sha256::digest(format!(
            "step-load-v2|{}|{}|{}|{}",
            self.seed, self.accounts, self.invalid_ppm, SPACING_MS
        ));
        h[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The prepared proofs: bodies back to back, their ids (SHA-256 of the 65
/// signature bytes, as the node computes them) and kinds.
pub type Prepared = Parts<Part>;

/// One signing thread's share (or a whole cache file).
#[derive(Debug, Default)]
pub struct Part {
    pub(super) bytes: Vec<u8>,
    pub(super) ends: Vec<usize>,
    pub(super) ids: Vec<[u8; 32]>,
    pub(super) kinds: Vec<Kind>,
}

impl Parts<Part> {
    pub fn body(&self, i: usize) -> &[u8] {
        let (p, j) = self.locate(i);
        &p.bytes[span(&p.ends, j)]
    }

    pub fn id(&self, i: usize) -> &[u8; 32] {
        let (p, j) = self.locate(i);
        &p.ids[j]
    }

    pub fn kind(&self, i: usize) -> Kind {
        let (p, j) = self.locate(i);
        p.kinds[j]
    }

    /// Bytes of bodies held.
    pub fn body_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.bytes.len()).sum()
    }
}

/// Everything one signing thread needs.
struct Signer<'a> {
    params: &'a Params,
    keys: &'a [Key],
    num: JsNumBuf,
}

impl Signer<'_> {
    fn account_key(&self, a: u64) -> &Key {
        &self.keys[(a % self.keys.len() as u64) as usize]
    }

    /// Valid proof `v`: (key, proof without signature).
    fn valid(&self, v: u64) -> (Key, Proof) {
        let accounts = self.params.accounts.max(1);
        let a = v % accounts;
        let round = (v / accounts) as i64;
        let t = valid_triangle(a, round as u64);
        let ms = T0_MS + round * SPACING_MS + (a % 1000) as i64;
        let accuracy_m = 3.0 + (v % 3700) as f64 / 100.0;
        let key = *self.account_key(a);
        let nonce = format!("ld-{v:x}");
        (key, proof(&key, t, point_in(&t), accuracy_m, ms, &nonce))
    }

    fn push(&mut self, i: u64, out: &mut Part) {
        let slot = self.params.slot(i);
        let (key, mut p) = match (slot.kind, slot.refers_to) {
            (Kind::Valid, _) => self.valid(slot.valid_index),
            (Kind::Replay, Some(r)) => self.valid(r),
            (Kind::Moratorium, Some(r)) => {
                let (key, earlier) = self.valid(r);
                let nonce = format!("ldm-{i:x}");
                let ms = earlier.timestamp.unix_ms() + 1000;
                let p = proof(
                    &key,
                    earlier.triangle,
                    (earlier.lat, earlier.lon),
                    10.0,
                    ms,
                    &nonce,
                );
                (key, p)
            }
            (kind, _) => {
                // Bad proofs use the valid accounts' keys: rejections
                // change no account state.
                let k = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
                let key = *self.account_key(k);
                let t = crate::corpus::triangle(k);
                let nonce = format!("ldx-{i:x}");
                let ms = T0_MS + (i % 1_000_000) as i64;
                let (place, accuracy_m) = match kind {
                    Kind::OutOfBounds => {
                        // The same path on the face 10 faces away: far outside.
                        let digits: Vec<u8> = t.digits().collect();
                        let other = TriangleId::new((t.face() + 10) % 20, &digits)
                            .unwrap_or_else(|| unreachable!("same level and digits"));
                        (point_in(&other), 10.0)
                    }
                    Kind::LowAccuracy => (point_in(&t), 80.0),
                    _ => (point_in(&t), 10.0),
                };
                (key, proof(&key, t, place, accuracy_m, ms, &nonce))
            }
        };
        let mut sig = sign(&key, &p);
        if slot.kind == Kind::BadSignature {
            // Flip bits of r: a different (or no) signer is recovered.
            sig[5] ^= 0x5a;
        }
        p.signature = Ok(sig);
        let body_start = out.bytes.len();
        write_body(&mut out.bytes, &p, &sig, &mut self.num);
        if slot.kind == Kind::BadPayload {
            corrupt_checksum(&mut out.bytes[body_start..]);
        }
        out.ends.push(out.bytes.len());
        out.ids.push(Sha256::digest(sig).into());
        out.kinds.push(slot.kind);
    }
}

/// Account `a`'s `round`-th triangle: level 21, under the account's own
/// level-18 triangle (face `a mod 20`, then the base-4 digits of `a / 20`:
/// unique for up to 20 × 4¹⁷ accounts), at path `round mod 64`.
pub fn valid_triangle(a: u64, round: u64) -> TriangleId {
    let q = a / 20;
    let r = round % 64;
    let mut digits = [0u8; 20];
    for (i, d) in digits.iter_mut().take(17).enumerate() {
        *d = ((q >> (2 * i)) & 3) as u8;
    }
    digits[17] = ((r >> 4) & 3) as u8;
    digits[18] = ((r >> 2) & 3) as u8;
    digits[19] = (r & 3) as u8;
    TriangleId::new((a % 20) as u8, &digits)
        .unwrap_or_else(|| unreachable!("20 digits 0-3 make a level-21 triangle"))
}

/// An unsigned proof by `key` (timestamps near 2026 and short nonces are valid).
fn proof(
    key: &Key,
    t: TriangleId,
    place: (f64, f64),
    accuracy_m: f64,
    ms: i64,
    nonce: &str,
) -> Proof {
    unsigned_proof(key.address, &t, place, accuracy_m, ms, nonce)
}

/// Changes the last checksum character of the body's triangle id.
fn corrupt_checksum(body: &mut [u8]) {
    let key = br#""triangleId":""#;
    if let Some(at) = body.windows(key.len()).position(|w| w == key) {
        let start = at + key.len();
        if let Some(len) = body[start..].iter().position(|&c| c == b'"') {
            let last = &mut body[start + len - 1];
            *last = if *last == b'A' { b'B' } else { b'A' };
        }
    }
}

/// Signs slots `0..n` with `threads` threads, calling `tick(k)` as every `k`
/// proofs are done.
pub fn sign_all(
    params: &Params,
    n: usize,
    threads: usize,
    tick: &(dyn Fn(u64) + Sync),
) -> Prepared {
    let accounts = params.accounts.clamp(1, n.max(1) as u64);
    let threads = threads.clamp(1, n.max(1));
    // Keys in parallel too (≈ 30 µs each).
    let seed = &params.seed;
    let keys: Vec<Key> = crate::parts::build(accounts as usize, threads, |range| {
        range.map(|k| key(seed, k as u64)).collect::<Vec<Key>>()
    })
    .parts
    .into_iter()
    .flatten()
    .collect();
    let params = Params {
        accounts,
        ..params.clone()
    };
    crate::parts::build(n, threads, |range| {
        let mut signer = Signer {
            params: &params,
            keys: &keys,
            num: JsNumBuf::new(),
        };
        let mut part = Part {
            bytes: Vec::with_capacity(range.len() * 460),
            ends: Vec::with_capacity(range.len()),
            ids: Vec::with_capacity(range.len()),
            kinds: Vec::with_capacity(range.len()),
        };
        let mut since = 0;
        for i in range {
            signer.push(i as u64, &mut part);
            since += 1;
            if since == 1000 {
                tick(since);
                since = 0;
            }
        }
        tick(since);
        part
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use step_engine::{MemoryState, Verifier};

    fn params(ppm: u64) -> Params {
        Params {
            seed: "prepare-test".into(),
            accounts: 8,
            invalid_ppm: ppm,
        }
    }

    #[test]
    fn the_ratio_of_bad_slots_and_their_turns() {
        let p = params(250_000);
        let kinds: Vec<Kind> = (0..400).map(|i| p.slot(i).kind).collect();
        let bad = kinds.iter().filter(|k| **k != Kind::Valid).count();
        assert_eq!(bad, 100);
        for k in Kind::INVALID {
            assert!(kinds.contains(&k), "{k:?} never appears");
        }
        assert!(params(0).slot(5).kind == Kind::Valid);
        assert!((0..100).all(|i| params(1_000_000).slot(i).kind != Kind::Valid));
    }

    /// Every prepared proof gets its intended verdict from the engine with
    /// the default limits (speed gate and moratorium on), in send order.
    #[test]
    fn verdicts_match_the_kinds_in_order() {
        let p = params(200_000);
        let set = sign_all(&p, 300, 2, &|_| {});
        assert_eq!(set.len(), 300);
        let v = Verifier::default();
        let mut state = MemoryState::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..set.len() {
            let got = v.verify(set.body(i), 0, &mut state).map_err(|r| r.code());
            let kind = set.kind(i);
            seen.insert(kind);
            match kind.expected() {
                None => assert!(got.is_ok(), "slot {i} {kind:?}: {got:?}"),
                Some(code) => assert_eq!(got.err(), Some(code), "slot {i} {kind:?}"),
            }
        }
        assert_eq!(seen.len(), 7, "{seen:?}");
    }

    /// An account's triangles stay within walking distance (the speed
    /// gate), are level 21 (no subdivision), and no two accounts share one.
    #[test]
    fn valid_triangles_are_near_deep_and_unshared() {
        let mut seen = std::collections::HashSet::new();
        for a in 0..500u64 {
            let mut prev = point_in(&valid_triangle(a, 0));
            for r in 0..64u64 {
                let t = valid_triangle(a, r);
                assert_eq!(t.level(), 21);
                assert!(seen.insert(t), "account {a} round {r}: {t} reused");
                let here = point_in(&t);
                let d = step_engine::mesh::haversine_m(prev.0, prev.1, here.0, here.1);
                assert!(d / 11.0 < 15.0, "{d} m in 11 s");
                prev = here;
            }
            assert_eq!(valid_triangle(a, 64), valid_triangle(a, 0));
        }
    }

    #[test]
    fn slot_of_valid_inverts_slot() {
        for ppm in [0, 1_000, 100_000, 500_000, 900_000] {
            let p = params(ppm);
            for i in 0..3000u64 {
                let s = p.slot(i);
                if s.kind == Kind::Valid {
                    assert_eq!(p.slot_of_valid(s.valid_index), i, "ppm {ppm}");
                }
                if let Some(r) = s.refers_to {
                    assert!(p.slot_of_valid(r) < i);
                }
            }
        }
    }

    #[test]
    fn ids_are_the_sha256_of_the_signature() {
        let set = sign_all(&params(0), 3, 1, &|_| {});
        let parsed = step_engine::proof::parse(set.body(1)).ok();
        let sig = parsed.and_then(|p| p.signature.ok()).unwrap_or([0; 65]);
        let want: [u8; 32] = Sha256::digest(sig).into();
        assert_eq!(set.id(1), &want);
    }
}
