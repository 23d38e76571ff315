//! Signing proofs with local keys: for tests and load generators, never for
//! validation (behind the non-default `signing` feature; tests get it through
//! `step-testkit`, `step bench` through `step-perf`). Keys derive from a seed
//! like the reference generators' (`sha256("{seed}|key|{k}")`, rehashed
//! until valid).

use crate::address::Address;
use crate::jsnum::JsNumBuf;
use crate::message::{eip191_digest, MessageBuf};
use crate::proof::{Nonce, Proof, Timestamp};
use crate::triangle::{TriangleId, ID_MAX_LEN};
use secp256k1::ecdsa::RecoverableSignature;
use secp256k1::{Message, PublicKey, SecretKey};
use sha2::{Digest, Sha256};

/// A signing key with its address and public key (x ‖ y).
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub sk: SecretKey,
    pub address: Address,
    pub pubkey: [u8; 64],
}

impl Key {
    /// The key of a 32-byte secret (an operator's Ethereum key); `None`
    /// when the bytes are not a valid secp256k1 secret.
    pub fn from_secret(secret: [u8; 32]) -> Option<Key> {
        let sk = SecretKey::from_secret_bytes(secret).ok()?;
        let full = PublicKey::from_secret_key(&sk).serialize_uncompressed();
        let mut pubkey = [0u8; 64];
        pubkey.copy_from_slice(&full[1..]);
        Some(Key {
            sk,
            address: Address::from_public_key(&pubkey),
            pubkey,
        })
    }
}

/// Key `k` of `seed`.
pub fn key(seed: &str, k: u64) -> Key {
    let mut h: [u8; 32] = Sha256::digest(format!("{seed}|key|{k}")).into();
    loop {
        match Key::from_secret(h) {
            Some(k) => break k,
            None => h = Sha256::digest(h).into(),
        }
    }
}

/// The triangle's centroid, rounded to 6 decimals where that stays inside.
pub fn point_in(t: &TriangleId) -> (f64, f64) {
    let (lat, lon) = crate::mesh::centroid_lat_lon(t);
    let r = |x: f64| (x * 1e6).round() / 1e6;
    if crate::mesh::contains(t, r(lat), r(lon)) {
        (r(lat), r(lon))
    } else {
        (lat, lon)
    }
}

/// The 65 signature bytes (r ‖ s ‖ v, v = 27/28, low s) of an EIP-191
/// `digest` by `key`.
pub fn sign_digest(key: &Key, digest: [u8; 32]) -> [u8; 65] {
    let sig = RecoverableSignature::sign_ecdsa_recoverable(Message::from_digest(digest), &key.sk);
    let (recid, rs) = sig.serialize_compact();
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&rs);
    out[64] = u8::from(recid) + 27;
    out
}

/// The 65 signature bytes (r ‖ s ‖ v, v = 27/28, low s) of `proof` by `key`.
pub fn sign(key: &Key, proof: &Proof) -> [u8; 65] {
    let mut msg = MessageBuf::default();
    msg.build(proof);
    sign_digest(key, eip191_digest(msg.as_bytes()))
}

/// An unsigned proof (`signature: Ok([0; 65])`) by `account`.
///
/// # Panics
/// If `ms` is outside years 0000–9999 or `nonce` is not a valid nonce
/// (1–64 bytes, no control characters): callers pass their own constants.
pub fn unsigned_proof(
    account: Address,
    t: &TriangleId,
    (lat, lon): (f64, f64),
    accuracy_m: f64,
    ms: i64,
    nonce: &str,
) -> Proof {
    Proof {
        account,
        triangle: *t,
        lat,
        lon,
        accuracy_m,
        timestamp: Timestamp::from_unix_ms(ms).expect("timestamp in years 0000-9999"),
        nonce: Nonce::parse(nonce).expect("valid nonce"),
        signature: Ok([0; 65]),
    }
}

/// Appends the `{payload, signature}` body of `proof` with signature `sig`
/// to `out`: the one writer of proof bodies (numbers as JavaScript's
/// `String(number)`, the account in lowercase hex). The nonce is written
/// as it is: callers use nonces that need no JSON escaping.
pub fn write_body(out: &mut Vec<u8>, proof: &Proof, sig: &[u8; 65], num: &mut JsNumBuf) {
    let mut acct = [0u8; 42];
    let mut tri = [0u8; ID_MAX_LEN];
    let mut sig_hex = [0u8; 130];
    out.extend_from_slice(br#"{"payload":{"version":"STEP-PROOF-v1","account":""#);
    proof.account.write_lower(&mut acct);
    out.extend_from_slice(&acct);
    out.extend_from_slice(br#"","triangleId":""#);
    let n = proof.triangle.write(&mut tri);
    out.extend_from_slice(&tri[..n]);
    out.extend_from_slice(br#"","lat":"#);
    out.extend_from_slice(num.format(proof.lat).as_bytes());
    out.extend_from_slice(br#","lon":"#);
    out.extend_from_slice(num.format(proof.lon).as_bytes());
    out.extend_from_slice(br#","accuracy":"#);
    out.extend_from_slice(num.format(proof.accuracy_m).as_bytes());
    out.extend_from_slice(br#","timestamp":""#);
    out.extend_from_slice(proof.timestamp.as_bytes());
    out.extend_from_slice(br#"","nonce":""#);
    out.extend_from_slice(proof.nonce.as_bytes());
    out.extend_from_slice(br#""},"signature":"0x"#);
    // 65 bytes always fit 130 digits.
    if hex::encode_to_slice(sig, &mut sig_hex).is_ok() {
        out.extend_from_slice(&sig_hex);
    }
    out.extend_from_slice(br#""}"#);
}

/// A signed `{payload, signature}` body for `key` at (`lat`, `lon`) in `t`.
///
/// # Panics
/// As [`unsigned_proof`].
pub fn signed_body(
    key: &Key,
    t: &TriangleId,
    place: (f64, f64),
    accuracy_m: f64,
    ms: i64,
    nonce: &str,
) -> Vec<u8> {
    let proof = unsigned_proof(key.address, t, place, accuracy_m, ms, nonce);
    let sig = sign(key, &proof);
    let mut out = Vec::with_capacity(400);
    write_body(&mut out, &proof, &sig, &mut JsNumBuf::new());
    out
}

/// 2026-01-01T00:00:00Z in milliseconds: the time of [`simple_body`].
pub const SIMPLE_MS: i64 = 1_767_225_600_000;

/// The root triangle `M1-…-Z27` that tests and examples put proofs in.
///
/// # Panics
/// Never: the id is a constant that parses.
pub fn root_triangle() -> TriangleId {
    TriangleId::parse("STEP-TRI-v1:M1-00000000000000000000-Z27").expect("a valid triangle id")
}

/// A signed body for `key` at `t`'s centroid ([`point_in`]), 5 m accuracy,
/// at [`SIMPLE_MS`], with `nonce`: the proof tests need when only its
/// identity matters.
pub fn simple_body(key: &Key, t: &TriangleId, nonce: &str) -> Vec<u8> {
    signed_body(key, t, point_in(t), 5.0, SIMPLE_MS, nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_body_verifies() {
        let k = key("signing-test", 0);
        let t = TriangleId::new(3, &[1, 2, 0]).unwrap();
        let body = signed_body(&k, &t, point_in(&t), 12.5, 1_767_225_600_000, "n-1");
        let v = crate::Verifier::default();
        let a = v
            .verify(&body, 0, &mut crate::MemoryState::new())
            .expect("accepted");
        assert_eq!(a.proof.account, k.address);
    }

    #[test]
    fn body_is_the_json_of_the_proof() {
        let k = key("signing-test", 1);
        let t = TriangleId::new(7, &[0, 3]).unwrap();
        let body = signed_body(&k, &t, (1.5, -20.25), 7.0, 1_767_225_600_123, "n-2");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["payload"]["account"], k.address.to_string());
        assert_eq!(v["payload"]["triangleId"], t.to_string());
        assert_eq!(v["payload"]["lat"], 1.5);
        assert_eq!(v["payload"]["lon"], -20.25);
        assert_eq!(v["payload"]["accuracy"], 7.0);
        assert_eq!(v["payload"]["timestamp"], "2026-01-01T00:00:00.123Z");
        assert_eq!(v["payload"]["nonce"], "n-2");
        let sig = v["signature"].as_str().expect("signature");
        assert_eq!(sig.len(), 132);
        assert!(sig.starts_with("0x"));
    }
}
