//! The pipeline gives the single-proof engine's verdicts, for any worker
//! count, on the shared samples and on freshly signed proofs; its batches
//! hold exactly the accepted proofs, in commit order.

mod common;
mod pipeline_support;

use pipeline_support as sup;
use std::time::Duration;
use step_engine::pipeline::reverify_batch;
use step_engine::{Backend, Code, Limits, Verifier};

fn no_travel() -> Limits {
    Limits {
        speed_mps_max: None,
        moratorium_ms: None,
        ..Limits::default()
    }
}

fn check(
    verifier: Verifier,
    bodies: &[Vec<u8>],
    workers: usize,
    flush_after: Duration,
) -> sup::Run {
    let batch_size = 100;
    let want = sup::reference(&verifier, bodies, sup::T0);
    let mut c = sup::config(verifier, workers);
    c.flush_after = flush_after;
    c.capacity = 64;
    let run = sup::run_pipeline(c, bodies);
    for (i, (got, want)) in run.verdicts.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "body {i}, {workers} workers");
    }
    let in_batches: Vec<_> = run
        .batches
        .iter()
        .flat_map(|b| b.proofs.iter().copied())
        .collect();
    assert_eq!(
        in_batches,
        sup::accepted_in_order(&run),
        "batches hold the accepted proofs in order"
    );
    for b in &run.batches {
        assert!(!b.is_empty() && b.len() <= batch_size);
        assert_eq!(reverify_batch(&verifier, b), Ok(()));
    }
    run
}

#[test]
fn shared_samples_same_verdicts_for_1_2_4_workers() {
    let bodies = sup::sample_bodies(common::read_shared);
    for &backend in Backend::all() {
        for limits in [no_travel(), Limits::default()] {
            for workers in [1, 2, 4] {
                let run = check(
                    Verifier::new(limits, backend),
                    &bodies,
                    workers,
                    Duration::from_millis(20),
                );
                let accepted = run.verdicts.iter().filter(|v| v.is_ok()).count();
                if limits == no_travel() {
                    // Sanity: every valid line passes, every negative line fails.
                    assert_eq!(accepted, 100);
                    let codes: Vec<Code> = run.verdicts[100..]
                        .iter()
                        .map(|v| v.as_ref().expect_err("negative").code())
                        .collect();
                    assert!(
                        codes.contains(&Code::NonceReplay) && codes.contains(&Code::BadSignature)
                    );
                    // Signed correctly but outside their triangle: these go
                    // through the workers' batched point-in-triangle stage.
                    assert!(
                        codes.iter().filter(|&&c| c == Code::OutOfBounds).count() >= 6,
                        "{codes:?}"
                    );
                } else {
                    // The samples travel too fast: the speed gate rejects many.
                    assert!(accepted < 100);
                }
            }
        }
    }
}

#[test]
fn fresh_proofs_same_verdicts_and_full_batches() {
    let mut bodies = sup::fresh_valid("equivalence", 450, 13);
    // Replays and an oversize body, after their originals.
    bodies.push(bodies[5].clone());
    bodies.push(bodies[300].clone());
    bodies.push(vec![b' '; step_engine::proof::BODY_MAX_BYTES + 1]);
    bodies.push(b"{\"payload\":".to_vec());
    let verifier = Verifier::default();
    for workers in [1, 2, 4] {
        // No deadline flush: batch boundaries depend on counts only.
        let run = check(verifier, &bodies, workers, Duration::from_secs(3600));
        assert_eq!(run.verdicts.iter().filter(|v| v.is_ok()).count(), 450);
        let n = bodies.len();
        assert_eq!(
            run.verdicts[n - 4].as_ref().map_err(|e| e.code()),
            Err(Code::NonceReplay)
        );
        assert_eq!(
            run.verdicts[n - 2].as_ref().map_err(|e| e.code()),
            Err(Code::PayloadTooLarge)
        );
        let sizes: Vec<usize> = run.batches.iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [100, 100, 100, 100, 50]);
    }
}

#[test]
fn parsed_submissions_get_the_same_verdicts_as_bodies() {
    let mut bodies = sup::sample_bodies(common::read_shared);
    bodies.extend(sup::fresh_valid("parsed", 120, 7));
    let verifier = Verifier::new(no_travel(), Backend::default());
    let want = sup::reference(&verifier, &bodies, sup::T0);
    for workers in [1, 2] {
        let mut c = sup::config(verifier, workers);
        c.capacity = 64;
        let run = sup::run_pipeline_as(c, &bodies, true);
        for (i, (got, want)) in run.verdicts.iter().zip(&want).enumerate() {
            assert_eq!(got, want, "body {i}, {workers} workers, submitted parsed");
        }
        assert_eq!(
            run.verdicts.iter().filter(|v| v.is_ok()).count(),
            want.iter().filter(|v| v.is_ok()).count()
        );
        assert!(run.verdicts.iter().filter(|v| v.is_ok()).count() >= 220);
    }
}
