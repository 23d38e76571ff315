//! `cargo bench -p step-benches --bench engine`
//!
//! Every bench cycles over the 100 shared valid samples, so the per-proof
//! figures are comparable: `engine::verify_stateless` does everything
//! `engine::recover/backend=secp256k1` does plus parsing, the message, the
//! digest and the geometry.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use step_engine::crypto::check_policy;
use step_engine::message::{eip191_digest, MessageBuf};
use step_engine::{mesh, proof, Backend, Limits, MemoryState, Verifier};

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
        g.bench_with_input(
            BenchmarkId::new("recover", format!("backend={}", backend.name())),
            &backend,
            |b, be| {
                b.iter(|| {
                    i = (i + 1) % n;
                    black_box(be.recover(&digests[i], &sigs[i]))
                })
            },
        );
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
        g.bench_with_input(
            BenchmarkId::new("verify_stateless", format!("backend={}", backend.name())),
            &v,
            |b, v| {
                b.iter(|| {
                    i = (i + 1) % n;
                    black_box(v.check_stateless(black_box(&bodies[i]), 0).is_ok())
                })
            },
        );
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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
