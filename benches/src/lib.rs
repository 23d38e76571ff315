//! Inputs shared by the benches: the shared sample proofs, parsed and checked.

pub use step_testkit::shared_dir;

/// The 100 valid sample bodies.
pub fn sample_bodies() -> Vec<Vec<u8>> {
    step_testkit::shared_lines("sample-valid.jsonl")
        .into_iter()
        .map(String::into_bytes)
        .collect()
}

/// Bare libsecp256k1 work for one proof: recover from a precomputed digest and
/// compact signature, hash the key, compare the address. The ceiling the engine
/// is measured against.
pub fn bare_recover_and_compare(
    digest: &[u8; 32],
    rs: &[u8; 64],
    recid: u8,
    account: &[u8; 20],
) -> bool {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    let Ok(sig) = RecoverableSignature::from_compact(rs, RecoveryId::from_u8_masked(recid)) else {
        return false;
    };
    let Ok(pk) = sig.recover_ecdsa(secp256k1::Message::from_digest(*digest)) else {
        return false;
    };
    let full = pk.serialize_uncompressed();
    let h = step_engine::message::keccak256(&full[1..]);
    h[12..] == account[..]
}
