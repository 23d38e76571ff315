//! Helpers for the pipeline tests: the shared samples, freshly signed proofs,
//! and running bodies through the pipeline or the single-proof engine.
#![allow(dead_code, unused_imports)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;
use step_engine::pipeline::{Batch, Clock, Hook, Pipeline, PipelineConfig, Verdict};
use step_engine::proof::Proof;
use step_engine::{Accepted, MemoryState, Reject, Verifier};

/// Signing accounts, triangles and fresh proofs: `step-testkit`.
pub use step_testkit::{account, fresh_valid, point, signed_body, triangle, Account, T0};

/// The shared samples, valid lines first: the replay cases among the
/// invalid lines copy valid lines and must come after them.
pub fn sample_bodies(common_read: impl Fn(&str) -> String) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for name in ["sample-valid.jsonl", "sample-invalid.jsonl"] {
        out.extend(
            common_read(name)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.as_bytes().to_vec()),
        );
    }
    out
}

/// The single-proof engine's verdicts, in order, against one fresh state.
pub fn reference(
    verifier: &Verifier,
    bodies: &[Vec<u8>],
    now_ms: i64,
) -> Vec<Result<Accepted, Reject>> {
    let mut state = MemoryState::new();
    bodies
        .iter()
        .map(|b| verifier.verify(b, now_ms, &mut state))
        .collect()
}

/// What a pipeline run produced.
#[derive(Debug)]
pub struct Run {
    /// Verdicts indexed by tag (= index in the input).
    pub verdicts: Vec<Result<Accepted, Reject>>,
    /// Verdict tags in the order the callback saw them.
    pub order: Vec<u64>,
    pub batches: Vec<Batch>,
}

/// Submits every body (retrying on OVERLOADED), then finishes.
pub fn run_pipeline(config: PipelineConfig, bodies: &[Vec<u8>]) -> Run {
    run_pipeline_as(config, bodies, false)
}

/// [`run_pipeline`]; with `parse_first`, each body that parses is parsed
/// here and submitted as a proof ([`Pipeline::submit_parsed`], as the HTTP
/// layer does), the others as bytes.
pub fn run_pipeline_as(config: PipelineConfig, bodies: &[Vec<u8>], parse_first: bool) -> Run {
    let seen: Arc<Mutex<Vec<Verdict>>> = Arc::new(Mutex::new(Vec::with_capacity(bodies.len())));
    let sink = Arc::clone(&seen);
    let p = Pipeline::with_memory_state(config, move |v: &Verdict| {
        sink.lock().expect("lock").push(v.clone())
    });
    let mut batches = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        loop {
            let parsed = if parse_first {
                step_engine::proof::parse(b).ok()
            } else {
                None
            };
            let queued = match &parsed {
                Some(proof) => p.submit_parsed(proof, i as u64),
                None => p.submit(b, i as u64),
            };
            match queued {
                Ok(_) => break,
                Err(Reject::Overloaded) => {
                    while let Some(batch) = p.try_next_batch() {
                        batches.push(batch);
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("submit refused with {e}"),
            }
        }
    }
    let finished = p.finish();
    batches.extend(finished.batches);
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(seen.len(), bodies.len(), "one verdict per body");
    let mut verdicts: Vec<Option<Result<Accepted, Reject>>> = vec![None; bodies.len()];
    let mut order = Vec::with_capacity(seen.len());
    for (expect_seq, v) in seen.into_iter().enumerate() {
        assert_eq!(
            v.seq, expect_seq as u64,
            "verdicts arrive in sequence order"
        );
        order.push(v.tag);
        verdicts[v.tag as usize] = Some(v.result);
    }
    Run {
        verdicts: verdicts
            .into_iter()
            .map(|v| v.expect("verdict for every tag"))
            .collect(),
        order,
        batches,
    }
}

pub fn config(verifier: Verifier, workers: usize) -> PipelineConfig {
    let mut c = PipelineConfig::new(verifier, Clock::fixed(T0));
    c.workers = workers;
    c.pin_workers = false;
    c
}

/// The accepted proofs of a run in commit order.
pub fn accepted_in_order(run: &Run) -> Vec<Proof> {
    run.order
        .iter()
        .filter_map(|&t| run.verdicts[t as usize].as_ref().ok().map(|a| a.proof))
        .collect()
}

/// Holds the workers (through a [`Hook`]) until opened. Opens when dropped, so
/// that a failing assertion does not leave a pipeline's drop waiting forever:
/// bind it after the pipeline so that it is dropped first.
#[derive(Debug)]
pub struct Gate(Arc<GateInner>);

#[derive(Debug, Default)]
pub struct GateInner {
    open: Mutex<bool>,
    cv: Condvar,
    entered: AtomicUsize,
}

impl Gate {
    pub fn new() -> (Hook, Gate) {
        let g = Arc::new(GateInner::default());
        let g2 = Arc::clone(&g);
        let hook: Hook = Arc::new(move |_seq| {
            g2.entered.fetch_add(1, Ordering::SeqCst);
            let mut open = g2.open.lock().unwrap_or_else(PoisonError::into_inner);
            while !*open {
                open = g2.cv.wait(open).unwrap_or_else(PoisonError::into_inner);
            }
        });
        (hook, Gate(g))
    }

    /// Waits until `n` proofs have reached the hook (their workers are held).
    pub fn wait_entered(&self, n: usize) {
        let t = std::time::Instant::now();
        while self.0.entered.load(Ordering::SeqCst) < n {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "workers never reached the gate"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn open(&self) {
        *self.0.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.cv.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}
