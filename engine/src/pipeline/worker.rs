//! Stateless workers: one thread per core, optionally pinned. Each takes a
//! micro-batch of jobs from the ingest queue, runs every stateless check on
//! them (parse, accuracy, age, signature policy, digest, recovery, address,
//! point-in-triangle), then hands the results to the stateful stage in one
//! lock acquisition.

use super::commit::Done;
use super::Shared;
use crate::crypto::CheckedSignature;
use crate::error::Reject;
use crate::heuristics::ProofState;
use crate::proof::BODY_MAX_BYTES;
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
}

/// The stateless verdict of one job: the same as `Verifier::check_stateless`
/// on the submitted bytes.
fn check(verifier: &Verifier, job: &Job) -> Result<Checked, Reject> {
    if job.len > BODY_MAX_BYTES {
        return Err(Reject::BodyTooLarge {
            len: job.len,
            max: BODY_MAX_BYTES,
        });
    }
    verifier.check_stateless(&job.buf, job.now_ms)
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
