//! The stateful stage commits in sequence order whatever the workers' timing:
//! the same input gives the same verdicts (and the same batch contents) for
//! any worker count, micro-batch size, capacity and random per-proof delays.

mod common;
mod pipeline_support;

use pipeline_support as sup;
use std::sync::Arc;
use std::time::Duration;
use step_engine::{Code, Verifier};

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Moves each element at most `window` places forward or so: mostly in
/// order, locally shuffled.
fn perturb<T>(v: &mut [T], seed: u64, window: u64) {
    for i in 0..v.len() {
        let j = (i + (splitmix(seed ^ i as u64) % window) as usize).min(v.len() - 1);
        v.swap(i, j);
    }
}

fn shuffle<T>(v: &mut [T], seed: u64) {
    for i in (1..v.len()).rev() {
        let j = (splitmix(seed ^ i as u64) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// An order-sensitive stream: few accounts, proofs 11 s apart and some 5 s
/// apart, locally shuffled (TOO_FAST, MORATORIUM), replays (NONCE_REPLAY),
/// and the shared samples.
fn stream(seed: u64) -> Vec<Vec<u8>> {
    let name = format!("determinism-{seed}");
    let mut v = sup::fresh_valid(&name, 240, 4);
    // Proofs 5 s after the regular ones, at the same place: MORATORIUM when
    // they follow one of those.
    for a in 0..4u64 {
        let acct = sup::account(&name, a);
        let t = sup::triangle(a * 7 + 3);
        for j in 0..10i64 {
            v.push(sup::signed_body(
                &acct,
                &t,
                sup::T0 + j * 11_000 + a as i64 + 5_000,
                &format!("m-{a}-{j}"),
            ));
        }
    }
    v.extend(sup::sample_bodies(common::read_shared));
    let dups: Vec<Vec<u8>> = (0..40)
        .map(|i| v[(splitmix(seed + i) % 240) as usize].clone())
        .collect();
    v.extend(dups);
    // In timestamp order per account (as fresh_valid makes them, with the
    // 5 s proofs slotted in), then locally shuffled.
    let extra: Vec<Vec<u8>> = v.drain(240..280).collect();
    for (k, b) in extra.into_iter().enumerate() {
        let (a, j) = (k / 10, k % 10);
        v.insert((j * 4 + a) * 2 + 1, b);
    }
    perturb(&mut v, seed, 6);
    v
}

#[test]
fn same_verdicts_whatever_the_interleaving() {
    let verifier = Verifier::default();
    for seed in [1u64, 2, 3] {
        let bodies = stream(seed);
        let want = sup::reference(&verifier, &bodies, sup::T0);

        // The stream really is order-sensitive: the same bodies in another
        // order get other verdicts, so a pipeline that committed out of order
        // would be caught.
        let mut perm: Vec<usize> = (0..bodies.len()).collect();
        shuffle(&mut perm, seed ^ 0xDEAD);
        let other: Vec<Vec<u8>> = perm.iter().map(|&i| bodies[i].clone()).collect();
        let other_verdicts = sup::reference(&verifier, &other, sup::T0);
        let differ = perm
            .iter()
            .enumerate()
            .filter(|&(k, &i)| other_verdicts[k] != want[i])
            .count();
        assert!(
            differ > 20,
            "seed {seed}: only {differ} verdicts depend on order"
        );
        let codes: Vec<Code> = want
            .iter()
            .filter_map(|v| v.as_ref().err().map(|e| e.code()))
            .collect();
        for c in [
            Code::NonceReplay,
            Code::TooFast,
            Code::Moratorium,
            Code::BadSignature,
        ] {
            assert!(codes.contains(&c), "seed {seed}: no {c} in the stream");
        }

        let mut batch_contents = None;
        for (workers, worker_batch, capacity) in
            [(1, 1, 7), (2, 16, 64), (3, 5, 7), (4, 16, 64), (8, 1, 13)]
        {
            let mut c = sup::config(verifier, workers);
            c.worker_batch = worker_batch;
            c.capacity = capacity;
            c.flush_after = Duration::from_secs(3600);
            c.batch_size = 10;
            let salt = seed * 1000 + workers as u64;
            c.before_check = Some(Arc::new(move |seq| {
                let r = splitmix(salt ^ seq.wrapping_mul(0x1234_5678_9ABC));
                if r.is_multiple_of(3) {
                    std::thread::sleep(Duration::from_micros(r % 400));
                }
            }));
            let run = sup::run_pipeline(c, &bodies);
            for (i, (got, want)) in run.verdicts.iter().zip(&want).enumerate() {
                assert_eq!(got, want, "seed {seed}, {workers} workers: body {i}");
            }
            let contents: Vec<_> = run
                .batches
                .iter()
                .map(|b| (b.proofs.clone(), b.digest))
                .collect();
            match &batch_contents {
                None => batch_contents = Some(contents),
                Some(first) => assert!(
                    first == &contents,
                    "seed {seed}, {workers} workers: batches differ"
                ),
            }
        }
    }
}
