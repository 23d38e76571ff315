//! Freshly signed STEP proofs (secp256k1) and pre-validated batches made by
//! the engine's own pipeline. Adapted from `engine/tests/pipeline_support`.

use secp256k1::ecdsa::RecoverableSignature;
use secp256k1::{Message, PublicKey, SecretKey};
use sha2::{Digest, Sha256};
use step_consensus::WireBatch;
use step_engine::jsnum::JsNumBuf;
use step_engine::message::{eip191_digest, MessageBuf};
use step_engine::pipeline::{Clock, Pipeline, PipelineConfig};
use step_engine::proof::{Nonce, Proof, Timestamp};
use step_engine::{Address, TriangleId, Verifier};

/// 2026-01-01T00:00:00.000Z
pub const T0: i64 = 1_767_225_600_000;

pub struct Account {
    pub sk: SecretKey,
    pub address: Address,
}

pub fn account(seed: &str, k: u64) -> Account {
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
    Account {
        sk,
        address: Address::from_public_key(&pubkey),
    }
}

/// A triangle chosen by `i`: every face, levels 1..=21.
pub fn triangle(i: u64) -> TriangleId {
    let level = (i % 21) as usize + 1;
    let face = ((i / 21) % 20) as u8;
    let digits: Vec<u8> = (0..level - 1)
        .map(|d| ((i >> (d % 16)) as u8 ^ d as u8) & 3)
        .collect();
    TriangleId::new(face, &digits).expect("valid triangle")
}

fn point(t: &TriangleId) -> (f64, f64) {
    let (lat, lon) = step_engine::mesh::centroid_lat_lon(t);
    let r = |x: f64| (x * 1e6).round() / 1e6;
    if step_engine::mesh::contains(t, r(lat), r(lon)) {
        (r(lat), r(lon))
    } else {
        (lat, lon)
    }
}

/// A signed body for `acct` at `t`'s centroid, time `ms`, nonce `nonce`.
pub fn signed_body(acct: &Account, t: &TriangleId, ms: i64, nonce: &str) -> Vec<u8> {
    let (lat, lon) = point(t);
    let accuracy = 3.0 + (ms % 3700) as f64 / 100.0;
    let proof = Proof {
        account: acct.address,
        triangle: *t,
        lat,
        lon,
        accuracy_m: accuracy,
        timestamp: Timestamp::from_unix_ms(ms).expect("timestamp"),
        nonce: Nonce::parse(nonce).expect("nonce"),
        signature: Ok([0; 65]),
    };
    let mut msg = MessageBuf::default();
    msg.build(&proof);
    let digest = eip191_digest(msg.as_bytes());
    let sig = RecoverableSignature::sign_ecdsa_recoverable(Message::from_digest(digest), &acct.sk);
    let (recid, rs) = sig.serialize_compact();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let v = u8::from(recid) + 27;
    let mut num = JsNumBuf::new();
    let mut s = String::new();
    s.push_str(r#"{"payload":{"version":"STEP-PROOF-v1","account":""#);
    s.push_str(&acct.address.to_string());
    s.push_str(r#"","triangleId":""#);
    s.push_str(&t.to_string());
    s.push_str(r#"","lat":"#);
    s.push_str(num.format(lat));
    s.push_str(r#","lon":"#);
    s.push_str(num.format(lon));
    s.push_str(r#","accuracy":"#);
    s.push_str(num.format(accuracy));
    s.push_str(r#","timestamp":""#);
    s.push_str(proof.timestamp.as_str());
    s.push_str(r#"","nonce":""#);
    s.push_str(nonce);
    s.push_str(r#""},"signature":"0x"#);
    s.push_str(&hex(&rs));
    s.push_str(&hex(&[v]));
    s.push_str(r#""}"#);
    s.into_bytes()
}

/// `n` valid proofs, one account each (so every proof passes the stateful
/// checks in any block order), tagged by `seed`.
pub fn bodies(seed: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let acct = account(seed, i as u64);
            let t = triangle(i as u64 * 7 + 3);
            signed_body(&acct, &t, T0 + i as i64, &format!("{seed}-{i}"))
        })
        .collect()
}

/// Runs `bodies` through the engine pipeline; returns its batches (all accepted).
pub fn batches(bodies: &[Vec<u8>], batch_size: usize) -> Vec<WireBatch> {
    let mut cfg = PipelineConfig::new(Verifier::default(), Clock::fixed(T0));
    cfg.workers = 1;
    cfg.pin_workers = false;
    cfg.batch_size = batch_size;
    cfg.capacity = bodies.len().max(1);
    cfg.batch_queue = bodies.len() / batch_size.max(1) + 2;
    let p = Pipeline::with_memory_state(cfg, |v| assert!(v.result.is_ok(), "{v:?}"));
    assert_eq!(p.submit_slice(bodies, 0), bodies.len());
    let done = p.finish();
    done.batches
        .iter()
        .map(|b| WireBatch::from_batch(b).expect("wire batch"))
        .collect()
}
