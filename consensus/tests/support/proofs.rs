//! Freshly signed STEP proofs (secp256k1) and pre-validated batches made by
//! the engine's own pipeline. Adapted from `engine/tests/pipeline_support`.

use step_consensus::WireBatch;
use step_engine::pipeline::{Clock, Pipeline, PipelineConfig};
use step_engine::{TriangleId, Verifier};

/// 2026-01-01T00:00:00.000Z
pub const T0: i64 = 1_767_225_600_000;

/// A signing account (key, address, public key): `step_engine::signing`.
pub use step_engine::signing::{key as account, point_in as point, Key as Account};

/// A triangle chosen by `i`: every face, levels 1..=21.
pub fn triangle(i: u64) -> TriangleId {
    let level = (i % 21) as usize + 1;
    let face = ((i / 21) % 20) as u8;
    let digits: Vec<u8> = (0..level - 1)
        .map(|d| ((i >> (d % 16)) as u8 ^ d as u8) & 3)
        .collect();
    TriangleId::new(face, &digits).expect("valid triangle")
}

/// A signed body for `acct` at `t`'s centroid, time `ms`, nonce `nonce`.
pub fn signed_body(acct: &Account, t: &TriangleId, ms: i64, nonce: &str) -> Vec<u8> {
    let accuracy_m = 3.0 + (ms % 3700) as f64 / 100.0;
    step_engine::signing::signed_body(acct, t, point(t), accuracy_m, ms, nonce)
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
