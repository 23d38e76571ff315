//! The bench's corpus is valid for the single-proof engine in corpus order,
//! the pipeline agrees with it for any worker count, and a short bench run
//! reports what it measured.

use std::sync::{Arc, Mutex};
use step_engine::pipeline::{Clock, Pipeline, PipelineConfig, Verdict};
use step_engine::{Accepted, MemoryState, Reject, Verifier};
use step_perf::{corpus, engine};

fn pipeline_verdicts(c: &corpus::Corpus, workers: usize) -> Vec<Result<Accepted, Reject>> {
    let mut config = PipelineConfig::new(Verifier::default(), Clock::fixed(corpus::T0_MS));
    config.workers = workers;
    config.pin_workers = false;
    config.capacity = 32;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let p = Pipeline::with_memory_state(config, move |v: &Verdict| {
        sink.lock().expect("lock").push(v.clone())
    });
    for (i, b) in c.bodies().iter().enumerate() {
        while p.submit(b, i as u64).is_err() {
            while p.try_next_batch().is_some() {}
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
    drop(p.finish());
    let mut seen = std::mem::take(&mut *seen.lock().expect("lock"));
    seen.sort_by_key(|v| v.tag);
    seen.into_iter().map(|v| v.result).collect()
}

#[test]
fn corpus_passes_the_engine_and_the_pipeline_agrees() {
    let c = corpus::sign("perf-test", 600, 37, 2, &|_| {});
    assert_eq!(c.len(), 600);
    let v = Verifier::default();
    let mut state = MemoryState::new();
    let want: Vec<_> = (0..c.len())
        .map(|i| v.verify(c.body(i), corpus::T0_MS, &mut state))
        .collect();
    for (i, r) in want.iter().enumerate() {
        assert!(r.is_ok(), "corpus proof {i} rejected: {r:?}");
    }
    for workers in [1, 2, 3] {
        assert_eq!(pipeline_verdicts(&c, workers), want, "{workers} workers");
    }
    // Out of order the heuristics bite: the corpus really exercises them.
    // Proofs 0, 37, 74 are account 0's first three, 11 s apart.
    let mut state = MemoryState::new();
    assert!(v.verify(c.body(37), corpus::T0_MS, &mut state).is_ok());
    let earlier = v.verify(c.body(0), corpus::T0_MS, &mut state);
    assert_eq!(
        earlier.map_err(|e| e.code()),
        Err(step_engine::Code::TooFast)
    );
    assert!(v.verify(c.body(74), corpus::T0_MS, &mut state).is_ok());
    let replay = v.verify(c.body(37), corpus::T0_MS, &mut state);
    assert_eq!(
        replay.map_err(|e| e.code()),
        Err(step_engine::Code::NonceReplay)
    );
}

#[test]
fn short_bench_run_reports_its_figures() {
    let c = corpus::sign("perf-smoke", 3000, 50, 2, &|_| {});
    let opts = engine::Options {
        workers: 2,
        seconds: 0.4,
        capacity: 256,
        pin: false,
        ceiling: true,
        rate: None,
        known_key: true,
    };
    let r = engine::run(&c, &opts);
    assert!(r.proofs > 0);
    assert_eq!(r.rejected, 0);
    assert_eq!(r.accepted, r.proofs);
    assert!(r.proofs_per_sec > 0.0);
    let (ceiling, ratio) = (
        r.ceiling_proofs_per_sec.expect("ceiling"),
        r.ratio.expect("ratio"),
    );
    assert!(ceiling > 0.0 && ratio > 0.0);
    assert!(r.known_key_proofs_per_sec.is_some_and(|k| k > 0.0));
    assert!(r.known_key_proofs_per_sec.is_some_and(|k| k > 0.0));
    assert!(r.batches >= r.proofs / 100);
    assert!(r.memory_bound_bytes > 256 * 16 * 1024);
}
