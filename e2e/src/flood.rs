//! An HTTP flood from many source addresses: `sources` clients, each bound
//! to its own address `10.77.0.(129 + j)` (a local route for 10.77.0.128/25
//! on the harness's TUN, [`crate::net`]), send `POST /proof/submit` as fast
//! as `rate` (requests/s, all sources together) allows. Every body is a
//! well-formed proof signed by the wrong key, so what a validator admits
//! costs it one signature recovery and a 4xx; what the per-IP limit refuses
//! costs it nothing past the limiter. The honest load (`crate::load`) comes
//! from [`LOAD_IP`], the harness's observers from 10.77.0.1.

use crate::http::{connect_from, exchange};
use crate::node::http_addr;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use step_engine::signing::{key, point_in, sign, unsigned_proof, write_body};
use step_engine::TriangleId;

/// Flood sources: at most this many addresses (10.77.0.129–10.77.0.254).
pub const MAX_SOURCES: usize = 126;

/// The honest load's address (`crate::load`): not 10.77.0.1, whose `/status`
/// polls and `/events` count against the same per-IP limit.
pub const LOAD_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 128);

/// Source `j`'s address.
pub fn source_ip(j: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 129 + j as u8)
}

/// A proof for one account signed by another's key (BAD_SIGNATURE, 401).
pub fn forged_body(k: u64) -> Vec<u8> {
    let owner = key("flood-owner", k);
    let signer = key("flood-signer", k);
    let t = TriangleId::new((k % 20) as u8, &[1, 2]).unwrap_or_else(|| unreachable!("digits 0-3"));
    let p = unsigned_proof(
        owner.address,
        &t,
        point_in(&t),
        10.0,
        1_767_225_600_000 + k as i64,
        &format!("flood-{k}"),
    );
    let mut out = Vec::with_capacity(400);
    write_body(
        &mut out,
        &p,
        &sign(&signer, &p),
        &mut step_engine::jsnum::JsNumBuf::new(),
    );
    out
}

#[derive(Debug, Clone)]
pub struct FloodSpec {
    pub rate: f64,
    pub sources: usize,
    pub start: Duration,
    pub stop: Duration,
    pub targets: Vec<usize>,
}

/// What the flood's requests got: (HTTP status or 0, error `code`) → count,
/// and each answer's latency in ms.
#[derive(Debug, Default)]
pub struct FloodResult {
    pub by_answer: BTreeMap<(u16, String), u64>,
    pub latency_ms: Vec<f64>,
    /// Requests not refused by the per-IP limit, per (source, unix second of
    /// the answer): what the limit let through per window.
    pub admitted_per_second: BTreeMap<(usize, i64), u64>,
    /// Requests still due when the flood's time was over (the senders fell behind).
    pub not_sent: u64,
    /// Sender threads that panicked.
    pub panicked: usize,
}

#[derive(Debug)]
pub struct Flood {
    result: Arc<Mutex<FloodResult>>,
    threads: Vec<JoinHandle<()>>,
}

/// One request from `src`; the status and the JSON body's `code`.
fn send(src: Ipv4Addr, to: SocketAddr, body: &[u8]) -> std::io::Result<(u16, String)> {
    let s = connect_from(src, to, Duration::from_secs(2))?;
    let r = exchange(
        s,
        ("POST", "/proof/submit?wait=false", body),
        Duration::from_secs(3),
    )?;
    let v = r.json();
    let mut code = v
        .as_ref()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    // Which limit refused it: "too many requests for this ip|account; …".
    if let Some(scope) = v.as_ref().and_then(|v| {
        v["message"]
            .as_str()?
            .strip_prefix("too many requests for this ")?
            .split(';')
            .next()
            .map(str::to_owned)
    }) {
        code = format!("{code} ({scope})");
    }
    Ok((r.status, code))
}

impl Flood {
    /// Request `i` of the whole flood is due at `t0 + start + i / rate`, sent
    /// by the next free sender; each sender belongs to one source address.
    pub fn start(spec: &FloodSpec, t0: Instant) -> anyhow::Result<Flood> {
        anyhow::ensure!(
            (1..=MAX_SOURCES).contains(&spec.sources),
            "flood.sources = {} (1..={MAX_SOURCES})",
            spec.sources
        );
        anyhow::ensure!(spec.rate > 0.0, "flood.rate must be > 0");
        let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..64).map(forged_body).collect());
        let total = (spec.stop.saturating_sub(spec.start).as_secs_f64() * spec.rate) as u64;
        let next = Arc::new(AtomicU64::new(0));
        let result = Arc::new(Mutex::new(FloodResult::default()));
        // Enough senders per source to keep its rate at 500 ms per answer.
        let per_source = ((spec.rate / spec.sources as f64) * 0.5).ceil() as usize;
        let mut threads = Vec::new();
        for t in 0..spec.sources * per_source.clamp(1, 4) {
            let j = t % spec.sources;
            let (bodies, next, result, spec) = (
                Arc::clone(&bodies),
                Arc::clone(&next),
                Arc::clone(&result),
                spec.clone(),
            );
            threads.push(std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let due = t0 + spec.start + Duration::from_secs_f64(i as f64 / spec.rate);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                } else if t0.elapsed() > spec.stop {
                    // Behind schedule past the flood's end: not sent.
                    let mut r = result.lock().unwrap_or_else(|e| e.into_inner());
                    r.not_sent += 1;
                    continue;
                }
                let to = http_addr(spec.targets[(i as usize / spec.sources) % spec.targets.len()]);
                let start = Instant::now();
                let (status, code) = match send(source_ip(j), to, &bodies[i as usize % 64]) {
                    Ok(a) => a,
                    Err(e) => (0, format!("{:?}", e.kind())),
                };
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                let mut r = result.lock().unwrap_or_else(|e| e.into_inner());
                if status != 429 && status != 0 {
                    let sec = step_engine::pipeline::unix_now_ms() / 1000;
                    *r.admitted_per_second.entry((j, sec)).or_default() += 1;
                }
                *r.by_answer.entry((status, code)).or_default() += 1;
                r.latency_ms.push(ms);
            }));
        }
        Ok(Flood { result, threads })
    }

    pub fn join(self) -> FloodResult {
        let panicked = crate::hostile::join_all(self.threads);
        let mut r = std::mem::take(&mut *self.result.lock().unwrap_or_else(|e| e.into_inner()));
        r.panicked = panicked;
        r
    }
}

#[cfg(test)]
mod tests {
    /// The flood's bodies are well-formed proofs whose signature recovers to
    /// another account: refused as BAD_SIGNATURE, never accepted.
    #[test]
    fn forged_bodies_are_refused_for_their_signature() {
        let v = step_engine::Verifier::default();
        for k in 0..4 {
            let e = v
                .verify(
                    &super::forged_body(k),
                    0,
                    &mut step_engine::MemoryState::new(),
                )
                .expect_err("a forged proof was accepted");
            assert_eq!(e.code(), step_engine::Code::BadSignature, "{e:?}");
        }
    }

    #[test]
    fn sources_have_distinct_addresses_outside_the_validators() {
        assert_eq!(super::source_ip(0).octets(), [10, 77, 0, 129]);
        assert_ne!(super::source_ip(0), super::LOAD_IP);
        assert_eq!(
            super::source_ip(super::MAX_SOURCES - 1).octets(),
            [10, 77, 0, 254]
        );
    }
}
