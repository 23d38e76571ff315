//! Signature policy and public-key recovery, with two interchangeable backends.
//!
//! Policy (checked before any curve arithmetic, identically for both backends):
//! * exactly 65 bytes `r ‖ s ‖ v`;
//! * **v ∈ {27, 28} only.** `0`/`1` (accepted by Phase 2, defect 2) and EIP-155
//!   values are rejected: `personal_sign` always produces 27/28;
//! * 0 < r < n and 0 < s ≤ n/2 (**low s**; the high-s twin of a valid
//!   signature is rejected, Phase 2 defect 1).

use crate::error::SignatureError;

/// secp256k1 group order n, big-endian.
const N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41,
];
/// n / 2 (floor), big-endian.
const HALF_N: [u8; 32] = [
    0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4, 0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0,
];

/// A signature that passed the policy: compact `r ‖ s` and recovery id 0/1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedSignature {
    pub rs: [u8; 64],
    pub recid: u8,
}

/// Applies the signature policy to decoded bytes.
pub fn check_policy(sig: &[u8; 65]) -> Result<CheckedSignature, SignatureError> {
    let v = sig[64];
    let recid = match v {
        27 | 28 => v - 27,
        _ => return Err(SignatureError::BadV { v }),
    };
    let (r, s) = (&sig[..32], &sig[32..64]);
    let zero = [0u8; 32];
    if r == zero || s == zero || r >= &N[..] {
        return Err(SignatureError::ScalarOutOfRange);
    }
    if s > &HALF_N[..] {
        return Err(SignatureError::HighS);
    }
    let mut rs = [0u8; 64];
    rs.copy_from_slice(&sig[..64]);
    Ok(CheckedSignature { rs, recid })
}

/// Which implementation recovers public keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// libsecp256k1 through the `secp256k1` crate (C; the default).
    #[cfg(feature = "secp256k1")]
    #[cfg_attr(feature = "secp256k1", default)]
    Secp256k1,
    /// Pure-Rust `k256` (RustCrypto).
    #[cfg(feature = "k256")]
    #[cfg_attr(not(feature = "secp256k1"), default)]
    K256,
}

impl Backend {
    /// Every backend compiled in.
    pub fn all() -> &'static [Backend] {
        &[
            #[cfg(feature = "secp256k1")]
            Backend::Secp256k1,
            #[cfg(feature = "k256")]
            Backend::K256,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "secp256k1")]
            Backend::Secp256k1 => "secp256k1",
            #[cfg(feature = "k256")]
            Backend::K256 => "k256",
        }
    }

    pub fn from_name(s: &str) -> Option<Backend> {
        Backend::all().iter().copied().find(|b| b.name() == s)
    }

    /// Recovers the uncompressed public key body (x ‖ y, 64 bytes).
    pub fn recover(
        self,
        digest: &[u8; 32],
        sig: &CheckedSignature,
    ) -> Result<[u8; 64], SignatureError> {
        match self {
            #[cfg(feature = "secp256k1")]
            Backend::Secp256k1 => recover_secp256k1(digest, sig),
            #[cfg(feature = "k256")]
            Backend::K256 => recover_k256(digest, sig),
        }
    }

    /// Verifies `sig` over `digest` against a known public key (x ‖ y), without
    /// recovery. Used to re-verify batches that carry their public keys.
    pub fn verify_known_key(
        self,
        digest: &[u8; 32],
        sig: &CheckedSignature,
        pubkey: &[u8; 64],
    ) -> Result<(), SignatureError> {
        match self {
            #[cfg(feature = "secp256k1")]
            Backend::Secp256k1 => verify_secp256k1(digest, sig, pubkey),
            #[cfg(feature = "k256")]
            Backend::K256 => verify_k256(digest, sig, pubkey),
        }
    }
}

#[cfg(feature = "secp256k1")]
fn recover_secp256k1(
    digest: &[u8; 32],
    sig: &CheckedSignature,
) -> Result<[u8; 64], SignatureError> {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    let recid = RecoveryId::from_u8_masked(sig.recid);
    let rsig = RecoverableSignature::from_compact(&sig.rs, recid)
        .map_err(|_| SignatureError::ScalarOutOfRange)?;
    let pk = rsig
        .recover_ecdsa(secp256k1::Message::from_digest(*digest))
        .map_err(|_| SignatureError::RecoveryFailed)?;
    let full = pk.serialize_uncompressed();
    let mut out = [0u8; 64];
    out.copy_from_slice(&full[1..]);
    Ok(out)
}

/// The SEC1 uncompressed encoding (`04 ‖ x ‖ y`) of a 64-byte public key.
#[cfg(any(feature = "secp256k1", feature = "k256"))]
fn sec1_uncompressed(pubkey: &[u8; 64]) -> [u8; 65] {
    let mut full = [0u8; 65];
    full[0] = 4;
    full[1..].copy_from_slice(pubkey);
    full
}

#[cfg(feature = "secp256k1")]
fn verify_secp256k1(
    digest: &[u8; 32],
    sig: &CheckedSignature,
    pubkey: &[u8; 64],
) -> Result<(), SignatureError> {
    let pk = secp256k1::PublicKey::from_slice(&sec1_uncompressed(pubkey))
        .map_err(|_| SignatureError::RecoveryFailed)?;
    let s = secp256k1::ecdsa::Signature::from_compact(&sig.rs)
        .map_err(|_| SignatureError::ScalarOutOfRange)?;
    secp256k1::ecdsa::verify(&s, secp256k1::Message::from_digest(*digest), &pk)
        .map_err(|_| SignatureError::RecoveryFailed)
}

#[cfg(feature = "k256")]
fn recover_k256(digest: &[u8; 32], sig: &CheckedSignature) -> Result<[u8; 64], SignatureError> {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    let s = Signature::from_slice(&sig.rs).map_err(|_| SignatureError::ScalarOutOfRange)?;
    let recid = RecoveryId::from_byte(sig.recid).ok_or(SignatureError::RecoveryFailed)?;
    let vk = VerifyingKey::recover_from_prehash(digest, &s, recid)
        .map_err(|_| SignatureError::RecoveryFailed)?;
    let point = vk.to_sec1_point(false);
    let bytes = point.as_bytes();
    let mut out = [0u8; 64];
    out.copy_from_slice(bytes.get(1..65).ok_or(SignatureError::RecoveryFailed)?);
    Ok(out)
}

#[cfg(feature = "k256")]
fn verify_k256(
    digest: &[u8; 32],
    sig: &CheckedSignature,
    pubkey: &[u8; 64],
) -> Result<(), SignatureError> {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    use k256::ecdsa::{Signature, VerifyingKey};
    let vk = VerifyingKey::from_sec1_bytes(&sec1_uncompressed(pubkey))
        .map_err(|_| SignatureError::RecoveryFailed)?;
    let s = Signature::from_slice(&sig.rs).map_err(|_| SignatureError::ScalarOutOfRange)?;
    vk.verify_prehash(digest, &s)
        .map_err(|_| SignatureError::RecoveryFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_n_is_n_over_two() {
        // HALF_N * 2 + 1 == N
        let mut carry = 1u16;
        let mut out = [0u8; 32];
        for i in (0..32).rev() {
            let v = u16::from(HALF_N[i]) * 2 + carry;
            out[i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(out, N);
    }

    #[test]
    fn policy() {
        let mut sig = [1u8; 65];
        sig[64] = 27;
        assert!(check_policy(&sig).is_ok());
        sig[64] = 0;
        assert_eq!(check_policy(&sig), Err(SignatureError::BadV { v: 0 }));
        sig[64] = 28;
        sig[32] = 0x80;
        assert_eq!(check_policy(&sig), Err(SignatureError::HighS));
        sig[32..64].copy_from_slice(&HALF_N);
        assert!(check_policy(&sig).is_ok());
        sig[..32].copy_from_slice(&N);
        assert_eq!(check_policy(&sig), Err(SignatureError::ScalarOutOfRange));
    }
}
