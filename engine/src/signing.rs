//! Signing proofs with local keys: for tests and load generators, never for
//! validation. Keys derive from a seed like the reference generators'
//! (`sha256("{seed}|key|{k}")`, rehashed until valid).

use crate::address::{encode_hex_lower, Address};
use crate::jsnum::JsNumBuf;
use crate::message::{eip191_digest, MessageBuf};
use crate::proof::{Nonce, Proof, Timestamp};
use crate::triangle::TriangleId;
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

/// Key `k` of `seed`.
pub fn key(seed: &str, k: u64) -> Key {
    let mut h: [u8; 32] = Sha256::digest(format!("{seed}|key|{k}")).into();
    let sk = loop {
        match SecretKey::from_secret_bytes(h) {
            Ok(sk) => break sk,
            Err(_) => h = Sha256::digest(h).into(),
        }
    };
    let full = PublicKey::from_secret_key(&sk).serialize_uncompressed();
    let mut pubkey = [0u8; 64];
    pubkey.copy_from_slice(&full[1..]);
    Key {
        sk,
        address: Address::from_public_key(&pubkey),
        pubkey,
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

/// The 65 signature bytes (r ‖ s ‖ v, v = 27/28, low s) of `proof` by `key`.
pub fn sign(key: &Key, proof: &Proof) -> [u8; 65] {
    let mut msg = MessageBuf::default();
    msg.build(proof);
    let digest = eip191_digest(msg.as_bytes());
    let sig = RecoverableSignature::sign_ecdsa_recoverable(Message::from_digest(digest), &key.sk);
    let (recid, rs) = sig.serialize_compact();
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&rs);
    out[64] = u8::from(recid) + 27;
    out
}

/// A signed `{payload, signature}` body for `key` at (`lat`, `lon`) in `t`.
///
/// # Panics
/// If `ms` is outside years 0000–9999 or `nonce` is not a valid nonce
/// (1–64 bytes, no control characters): callers pass their own constants.
pub fn signed_body(
    key: &Key,
    t: &TriangleId,
    (lat, lon): (f64, f64),
    accuracy_m: f64,
    ms: i64,
    nonce: &str,
) -> Vec<u8> {
    let proof = Proof {
        account: key.address,
        triangle: *t,
        lat,
        lon,
        accuracy_m,
        timestamp: Timestamp::from_unix_ms(ms).expect("timestamp in years 0000-9999"),
        nonce: Nonce::parse(nonce).expect("valid nonce"),
        signature: Ok([0; 65]),
    };
    let sig = sign(key, &proof);
    let mut sig_hex = [0u8; 130];
    encode_hex_lower(&sig, &mut sig_hex);
    let mut num = JsNumBuf::new();
    let mut s = String::with_capacity(400);
    s.push_str(r#"{"payload":{"version":"STEP-PROOF-v1","account":""#);
    s.push_str(&key.address.to_string());
    s.push_str(r#"","triangleId":""#);
    s.push_str(&t.to_string());
    s.push_str(r#"","lat":"#);
    s.push_str(num.format(lat));
    s.push_str(r#","lon":"#);
    s.push_str(num.format(lon));
    s.push_str(r#","accuracy":"#);
    s.push_str(num.format(accuracy_m));
    s.push_str(r#","timestamp":""#);
    s.push_str(proof.timestamp.as_str());
    s.push_str(r#"","nonce":""#);
    s.push_str(nonce);
    s.push_str(r#""},"signature":"0x"#);
    s.push_str(std::str::from_utf8(&sig_hex).unwrap_or(""));
    s.push_str(r#""}"#);
    s.into_bytes()
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
}
