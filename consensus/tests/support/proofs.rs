//! Freshly signed STEP proofs (secp256k1) and pre-validated batches made by
//! the engine's own pipeline (the proofs come from `step-testkit`).

use step_consensus::WireBatch;
use step_engine::pipeline::{Clock, Pipeline, PipelineConfig};
use step_engine::Verifier;

/// Fresh proofs, one account each: `step-testkit`.
pub use step_testkit::{one_per_account as bodies, T0};

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

/// `n` fresh proofs signed under `tag`, in batches of `size`.
pub fn signed_batches(tag: &str, n: usize, size: usize) -> Vec<WireBatch> {
    batches(&bodies(tag, n), size)
}
