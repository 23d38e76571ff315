//! The load generator: proofs signed with `step_engine::signing` (one fresh
//! account per proof, so no two proofs race on a nonce, the speed gate or the
//! moratorium), sent at a fixed rate with `POST /proof/submit?wait=false`
//! round-robin over the target validators, from its own address
//! ([`crate::flood::LOAD_IP`]); every answer recorded.

use crate::http::{connect_from, exchange};
use crate::node::http_addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use step_engine::signing::{key, point_in, signed_body};
use step_engine::TriangleId;

/// 2026-01-01T00:00:00.000Z in unix ms (the age window is off by default).
const T0_MS: i64 = 1_767_225_600_000;

/// Proof `k` of a run seeded `seed`.
pub fn proof(seed: &str, k: u64) -> Vec<u8> {
    let acct = key(seed, k);
    let face = (k % 20) as u8;
    let digits: Vec<u8> = (0..(k / 20) % 6).map(|d| ((k >> d) & 3) as u8).collect();
    let t = TriangleId::new(face, &digits).unwrap_or_else(|| unreachable!("digits 0-3, level ≤ 6"));
    signed_body(
        &acct,
        &t,
        point_in(&t),
        5.0 + (k % 40) as f64,
        T0_MS + k as i64,
        &format!("e2e-{k}"),
    )
}

/// Sender threads for `rate` proofs/s: rate × the 5 s request timeout,
/// at least 4, at most 512.
pub fn load_workers(rate: f64) -> usize {
    ((rate * 5.0).ceil() as usize).clamp(4, 512)
}

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sent {
    pub k: u64,
    pub node: usize,
    pub start: Instant,
    pub end: Instant,
    /// HTTP status, or 0 when the request failed (refused, timed out).
    pub status: u16,
    pub proof_id: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub rate: f64,
    pub start: Duration,
    pub stop: Duration,
    pub targets: Vec<usize>,
    pub seed: String,
}

/// Sender threads; `results` fills as answers arrive.
#[derive(Debug)]
pub struct Load {
    pub results: Arc<Mutex<Vec<Sent>>>,
    threads: Vec<JoinHandle<()>>,
    pub total: u64,
}

impl Load {
    /// Signs every proof first (so signing never delays sending), then sends
    /// proof `k` at `t0 + start + k / rate`.
    pub fn start(spec: &LoadSpec, t0: Instant) -> Load {
        let total = ((spec.stop.saturating_sub(spec.start)).as_secs_f64() * spec.rate) as u64;
        let bodies: Arc<Vec<Vec<u8>>> =
            Arc::new((0..total).map(|k| proof(&spec.seed, k)).collect());
        let results = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
        let next = Arc::new(AtomicUsize::new(0));
        // Enough senders to keep the rate while every request waits out its
        // 5 s timeout (a paused or cut-off target answers nothing), bounded.
        // With rate × 0.5 (5 at 10/s) the requests to a SIGSTOPped validator
        // held every sender, and the live ones got proofs only in bursts
        // every 5 s (see docs/RELIABILITY.md, pause-proposer).
        let workers = load_workers(spec.rate);
        let mut threads = Vec::new();
        for _ in 0..workers {
            let (bodies, results, next) =
                (Arc::clone(&bodies), Arc::clone(&results), Arc::clone(&next));
            let spec = spec.clone();
            threads.push(std::thread::spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= bodies.len() {
                    return;
                }
                let due = t0 + spec.start + Duration::from_secs_f64(k as f64 / spec.rate);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let node = spec.targets[k % spec.targets.len()];
                let start = Instant::now();
                let r = connect_from(
                    crate::flood::LOAD_IP,
                    http_addr(node),
                    Duration::from_secs(3),
                )
                .and_then(|s| {
                    exchange(
                        s,
                        ("POST", "/proof/submit?wait=false", &bodies[k]),
                        Duration::from_secs(5),
                    )
                });
                let end = Instant::now();
                let (status, proof_id, error) = match r {
                    Ok(r) => {
                        let id = r
                            .json()
                            .and_then(|v| v["proofId"].as_str().map(str::to_owned));
                        let err = (r.status != 202)
                            .then(|| String::from_utf8_lossy(&r.body).into_owned());
                        (r.status, id, err)
                    }
                    Err(e) => (0, None, Some(e.to_string())),
                };
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Sent {
                        k: k as u64,
                        node,
                        start,
                        end,
                        status,
                        proof_id,
                        error,
                    });
            }));
        }
        Load {
            results,
            threads,
            total,
        }
    }

    /// Waits for every sender (each request is bounded by its timeout).
    pub fn join(mut self) -> Vec<Sent> {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut v = std::mem::take(&mut *self.results.lock().unwrap_or_else(|e| e.into_inner()));
        v.sort_by_key(|s| s.k);
        v
    }

    /// 202s so far from validator `node`.
    pub fn accepted_by(&self, node: usize) -> usize {
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.node == node && s.status == 202)
            .count()
    }
}

#[cfg(test)]
mod tests {
    /// A target that answers nothing holds a sender for the whole 5 s
    /// timeout: at 10/s over 4 targets, 12.5 senders are held by the silent
    /// one; the rest must still keep the live targets at their rate.
    #[test]
    fn senders_outlast_a_silent_target() {
        for rate in [10.0, 30.0, 60.0] {
            let held_by_silent = rate / 4.0 * 5.0;
            assert!(
                super::load_workers(rate) as f64 >= held_by_silent + rate,
                "{rate}"
            );
        }
    }
}
