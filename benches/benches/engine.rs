//! `cargo bench -p step-benches --bench engine`
//!
//! Every bench cycles over the 100 shared valid samples, so the per-proof
//! figures are comparable: `engine::verify_stateless` does everything
//! `engine::recover/backend=secp256k1` does plus parsing, the message, the
//! digest and the geometry.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use step_engine::crypto::check_policy;
use step_engine::heuristics::ProofState;
use step_engine::message::{eip191_digest, MessageBuf};
use step_engine::{mesh, proof, Backend, Limits, MemoryState, Verifier};

/// `engine::<name>/backend=<backend>` (the bench naming rule).
fn per_backend(name: &str, backend: Backend) -> BenchmarkId {
    BenchmarkId::new(name, format!("backend={}", backend.name()))
}

fn bench(c: &mut Criterion) {
    let bodies = step_benches::sample_bodies();
    let proofs: Vec<_> = bodies
        .iter()
        .map(|b| proof::parse(b).expect("sample parses"))
        .collect();
    let messages: Vec<MessageBuf> = proofs
        .iter()
        .map(|p| {
            let mut m = MessageBuf::default();
            m.build(p);
            m
        })
        .collect();
    let digests: Vec<[u8; 32]> = messages
        .iter()
        .map(|m| eip191_digest(m.as_bytes()))
        .collect();
    let sigs: Vec<_> = proofs
        .iter()
        .map(|p| check_policy(&p.signature.expect("decodes")).expect("policy"))
        .collect();
    let n = bodies.len();

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));

    let mut i = 0;
    g.bench_function("parse", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(proof::parse(black_box(&bodies[i])))
        })
    });
    g.bench_function("message", |b| {
        let mut m = MessageBuf::default();
        b.iter(|| {
            i = (i + 1) % n;
            m.build(black_box(&proofs[i]));
            black_box(m.as_bytes().len())
        })
    });
    g.bench_function("digest", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(eip191_digest(black_box(messages[i].as_bytes())))
        })
    });
    for &backend in Backend::all() {
        g.bench_with_input(per_backend("recover", backend), &backend, |b, be| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(be.recover(&digests[i], &sigs[i]))
            })
        });
    }
    g.bench_function("recover_compare_bare/backend=libsecp256k1", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(step_benches::bare_recover_and_compare(
                &digests[i],
                &sigs[i].rs,
                sigs[i].recid,
                &proofs[i].account.0,
            ))
        })
    });
    g.bench_function("point_in_triangle", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            let p = &proofs[i];
            black_box(mesh::contains(&p.triangle, p.lat, p.lon))
        })
    });
    for &backend in Backend::all() {
        let v = Verifier::new(Limits::default(), backend);
        g.bench_with_input(per_backend("verify_stateless", backend), &v, |b, v| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(v.check_stateless(black_box(&bodies[i]), 0).is_ok())
            })
        });
    }
    // The whole single-proof verdict, stateful stage included: each iteration
    // verifies one sample against a state that has not seen it.
    let v = Verifier::new(
        Limits {
            speed_mps_max: None,
            moratorium_ms: None,
            ..Limits::default()
        },
        Backend::default(),
    );
    g.bench_function("verify/backend=secp256k1", |b| {
        let mut state = MemoryState::new();
        b.iter(|| {
            i = (i + 1) % n;
            if i == 0 {
                state = MemoryState::new();
            }
            black_box(v.verify(black_box(&bodies[i]), 0, &mut state).is_ok())
        })
    });
    // The stateful stage alone: the nonce, speed and moratorium checks and
    // the record, against a state that grows to 100,000 proofs of 1,000
    // accounts (then starts over, outside the timing).
    g.bench_function("commit/state=memory", |b| {
        const POOL: usize = 100_000;
        let limits = Limits {
            speed_mps_max: None,
            moratorium_ms: None,
            ..Limits::default()
        };
        let pool: Vec<proof::Proof> = (0..POOL)
            .map(|k| {
                let mut p = proofs[k % n];
                p.account.0[..4].copy_from_slice(&((k % 1000) as u32).to_le_bytes());
                p.nonce = proof::Nonce::parse(&format!("{k:08}-a3c3-42a0-8605-cefc2bdb61e1"))
                    .expect("nonce");
                p
            })
            .collect();
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let run = left.min(POOL);
                let mut state = MemoryState::new();
                let start = std::time::Instant::now();
                for p in &pool[..run] {
                    if step_engine::heuristics::check_stateful(&limits, p, &state).is_ok() {
                        state.record(
                            p.account,
                            p.nonce,
                            step_engine::heuristics::LastProof::of(p),
                        );
                    }
                }
                total += start.elapsed();
                black_box(&state);
                left -= run;
            }
            total
        })
    });
    g.finish();
    // The pipeline's batched form: 16 pairs per call, reported per pair.
    {
        let mut g16 = c.benchmark_group("engine");
        g16.throughput(Throughput::Elements(mesh::LANES as u64));
        g16.bench_function("point_in_triangle_batch/lanes=16", |b| {
            let mut batch = mesh::ContainsBatch::default();
            b.iter(|| {
                batch.clear();
                for _ in 0..mesh::LANES {
                    i = (i + 1) % n;
                    let p = &proofs[i];
                    batch.push(&p.triangle, p.lat, p.lon);
                }
                black_box(batch.run())
            })
        });
        g16.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
