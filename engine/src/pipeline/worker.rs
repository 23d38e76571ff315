//! Stateless workers: one thread per core, optionally pinned. Each takes a
//! micro-batch of jobs from the ingest queue and runs the stateless checks on
//! it in two stages: per proof, parse, accuracy, age, signature policy,
//! digest, recovery and address; then point-in-triangle over the whole
//! micro-batch at once ([`ContainsBatch`], structure-of-arrays). It then hands
//! the results to the stateful stage in one lock acquisition.

use super::commit::Done;
use super::Shared;
use crate::crypto::CheckedSignature;
use crate::error::Reject;
use crate::heuristics::ProofState;
use crate::mesh::{ContainsBatch, LANES};
use crate::proof::{Proof, BODY_MAX_BYTES};
use crate::verify::{Checked, Verifier};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// One submitted body, with the sequence number that fixes its place in the
/// stateful stage's order and the clock reading taken at submission.
#[derive(Debug)]
pub(crate) struct Job {
    pub seq: u64,
    pub tag: u64,
    pub now_ms: i64,
    /// The body's real length; the body was not copied when it exceeds
    /// `BODY_MAX_BYTES` (its verdict is `BodyTooLarge`).
    pub len: usize,
    pub buf: Vec<u8>,
    /// A proof the caller already parsed ([`super::Pipeline::submit_parsed`]):
    /// checked as it is, `buf` is then only the admission slot.
    pub parsed: Option<Proof>,
}

/// The stateless verdict of one job except point in triangle: the same as
/// `Verifier::check_except_geometry` on the submitted bytes (or
/// `Verifier::check_parsed_except_geometry` on the submitted proof).
fn check(verifier: &Verifier, job: &Job) -> Result<Checked, Reject> {
    if let Some(proof) = &job.parsed {
        return verifier.check_parsed_except_geometry(proof, job.now_ms);
    }
    if job.len > BODY_MAX_BYTES {
        return Err(Reject::BodyTooLarge {
            len: job.len,
            max: BODY_MAX_BYTES,
        });
    }
    verifier.check_except_geometry(&job.buf, job.now_ms)
}

/// The point-in-triangle stage over a micro-batch: every result that passed
/// the other stateless checks goes through [`ContainsBatch`], [`LANES`] at a
/// time, and becomes `OUT_OF_BOUNDS` if its point is outside its triangle.
/// Geometry is the last stateless check, so this gives each proof exactly
/// the verdict of `Verifier::check_stateless`.
fn geometry_stage(done: &mut [Done], batch: &mut ContainsBatch) {
    let mut lanes = [0usize; LANES];
    let mut from = 0;
    while from < done.len() {
        batch.clear();
        let mut i = from;
        while i < done.len() && !batch.is_full() {
            if let Ok(c) = &done[i].result {
                lanes[batch.push(&c.proof.triangle, c.proof.lat, c.proof.lon)] = i;
            }
            i += 1;
        }
        let inside = batch.run();
        for (lane, &at) in lanes.iter().enumerate().take(batch.len()) {
            if inside & (1 << lane) == 0 {
                done[at].result = Err(Reject::OutOfBounds);
            }
        }
        from = i;
    }
}

/// Touches what a first recovery would initialise lazily on this thread
/// (libsecp256k1's thread-local context), so that the hot path does not.
fn warm_up(verifier: &Verifier) {
    let sig = CheckedSignature {
        rs: [1; 64],
        recid: 0,
    };
    let _ = verifier.backend.recover(&[1; 32], &sig);
}

/// Pins the calling thread to `core`; best effort, never fails the pipeline.
fn pin(core: Option<core_affinity::CoreId>) -> bool {
    core.is_some_and(core_affinity::set_for_current)
}

pub(crate) fn run<S: ProofState>(
    shared: Arc<Shared<S>>,
    rx: Receiver<Job>,
    core: Option<core_affinity::CoreId>,
) {
    if pin(core) {
        shared.pinned.fetch_add(1, Ordering::Relaxed);
    }
    let ctx = &shared.ctx;
    warm_up(&ctx.verifier);
    let mut jobs: Vec<Job> = Vec::with_capacity(shared.worker_batch);
    let mut done: Vec<Done> = Vec::with_capacity(shared.worker_batch);
    let mut geometry = ContainsBatch::default();
    let mut deadline: Option<Instant> = None;
    loop {
        let first = match deadline {
            Some(d) => match rx.recv_deadline(d) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
        };
        if let Some(job) = first {
            jobs.push(job);
            while jobs.len() < shared.worker_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        for job in jobs.drain(..) {
            if let Some(hook) = &shared.before_check {
                hook(job.seq);
            }
            let result = check(&ctx.verifier, &job);
            done.push(Done {
                seq: job.seq,
                tag: job.tag,
                result,
                buf: job.buf,
            });
        }
        geometry_stage(&mut done, &mut geometry);
        let Ok(mut stage) = shared.stage.lock() else {
            break;
        };
        for d in done.drain(..) {
            stage.insert(d);
        }
        stage.drain(ctx);
        deadline = stage.deadline(ctx);
    }
    // The last worker out commits what is left and flushes the partial batch.
    if shared.live_workers.fetch_sub(1, Ordering::AcqRel) == 1 {
        if let Ok(mut stage) = shared.stage.lock() {
            stage.drain(ctx);
            stage.flush(ctx);
        }
    }
}
