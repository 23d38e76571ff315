//! Backpressure: a full pipeline refuses at once with OVERLOADED (HTTP 503),
//! never blocks the submitter, and never holds more than its capacity.

mod common;
mod pipeline_support;

use pipeline_support as sup;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use step_engine::pipeline::Pipeline;
use step_engine::{Code, Reject, Verifier};

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn full_queue_refuses_with_overloaded_and_does_not_grow() {
    let bodies = sup::fresh_valid("backpressure", 30, 30);
    let (hook, gate) = sup::Gate::new();
    let mut c = sup::config(Verifier::default(), 2);
    c.capacity = 8;
    c.before_check = Some(hook);
    let verdicts = Arc::new(AtomicU64::new(0));
    let v2 = Arc::clone(&verdicts);
    let p = Pipeline::with_memory_state(c, move |_| {
        v2.fetch_add(1, Ordering::Relaxed);
    });
    let gate = gate; // dropped (opened) before the pipeline
    for (i, b) in bodies[..8].iter().enumerate() {
        assert_eq!(p.submit(b, i as u64), Ok(i as u64));
    }
    gate.wait_entered(1);
    let t = Instant::now();
    for i in 0..10_000u64 {
        let r = p.submit(&bodies[8 + (i % 22) as usize], 100 + i);
        assert_eq!(r, Err(Reject::Overloaded));
        let s = p.stats();
        assert!(s.in_flight <= 8 && s.queued <= 8, "{s:?}");
    }
    // Refusing is immediate: 10,000 refusals, not 10,000 waits.
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "refusals took {:?}",
        t.elapsed()
    );
    assert_eq!(Reject::Overloaded.code(), Code::Overloaded);
    assert_eq!(Code::Overloaded.http_status(), 503);
    assert_eq!(p.submit_slice(&bodies[8..28], 0), 0);
    let s = p.stats();
    assert_eq!(
        (s.submitted, s.refused, s.in_flight, s.committed),
        (8, 10_020, 8, 0)
    );

    gate.open();
    wait_for("8 verdicts", || verdicts.load(Ordering::Relaxed) == 8);
    assert_eq!(p.stats().in_flight, 0);
    // Capacity is back: the refused bodies can be submitted again, 8 at a time.
    let mut done = 8;
    while done < 28 {
        done += p.submit_slice(&bodies[done..28], done as u64);
        std::thread::sleep(Duration::from_millis(1));
    }
    let fin = p.finish();
    assert_eq!(verdicts.load(Ordering::Relaxed), 28);
    assert_eq!(fin.stats.accepted, 28);
    assert_eq!(fin.batches.iter().map(|b| b.len()).sum::<usize>(), 28);
}

#[test]
fn sustained_overload_stays_within_capacity() {
    // Three producers flood slowed workers for a while; the pipeline never
    // holds more than its capacity and every accepted submission gets a verdict.
    let bodies = Arc::new(sup::sample_bodies(|n| {
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/step-proof-v1")
            .join(n);
        let p = std::env::var("STEP_SHARED_DIR")
            .map(|d| std::path::PathBuf::from(d).join(n))
            .unwrap_or(p);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
    }));
    let mut c = sup::config(Verifier::default(), 2);
    c.capacity = 32;
    c.before_check = Some(Arc::new(|_| std::thread::sleep(Duration::from_micros(200))));
    let verdicts = Arc::new(AtomicU64::new(0));
    let v2 = Arc::clone(&verdicts);
    let p = Arc::new(Pipeline::with_memory_state(c, move |_| {
        v2.fetch_add(1, Ordering::Relaxed);
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..3)
        .map(|k| {
            let (p, stop, bodies) = (Arc::clone(&p), Arc::clone(&stop), Arc::clone(&bodies));
            std::thread::spawn(move || {
                let (mut ok, mut refused) = (0u64, 0u64);
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    match p.submit(&bodies[i % bodies.len()], i as u64) {
                        Ok(_) => ok += 1,
                        Err(Reject::Overloaded) => refused += 1,
                        Err(e) => panic!("unexpected {e}"),
                    }
                    i += 3;
                }
                (ok, refused)
            })
        })
        .collect();
    let t = Instant::now();
    let mut max_in_flight = 0;
    while t.elapsed() < Duration::from_millis(400) {
        let s = p.stats();
        assert!(s.in_flight <= 32 && s.queued <= 32, "{s:?}");
        max_in_flight = max_in_flight.max(s.in_flight);
        while let Some(b) = p.try_next_batch() {
            p.recycle(b);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, refused) = producers
        .into_iter()
        .map(|h| h.join().expect("producer"))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(refused > 0, "the flood was never refused");
    assert!(
        max_in_flight >= 16,
        "the pipeline never filled up ({max_in_flight})"
    );
    let p = Arc::into_inner(p).expect("sole owner");
    let fin = p.finish();
    assert_eq!(fin.stats.submitted, ok);
    assert_eq!(fin.stats.refused, refused);
    assert_eq!(verdicts.load(Ordering::Relaxed), ok);
}

#[test]
fn a_consumer_that_stops_taking_batches_stalls_intake_not_memory() {
    let bodies = sup::fresh_valid("stall", 120, 120);
    let mut c = sup::config(Verifier::default(), 2);
    c.capacity = 16;
    c.batch_size = 1;
    c.batch_queue = 2;
    let p = Pipeline::with_memory_state(c, |_| {});
    let mut submitted = 0;
    let t = Instant::now();
    while submitted < bodies.len() && t.elapsed() < Duration::from_secs(60) {
        match p.submit(&bodies[submitted], submitted as u64) {
            Ok(_) => submitted += 1,
            Err(Reject::Overloaded) if p.stats().in_flight == 16 => break,
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    // 2 batches queued, 1 held by a worker waiting to queue it, 16 in flight.
    assert!(
        submitted <= 2 + 1 + 16 + 1,
        "accepted {submitted} with nobody taking batches"
    );
    assert_eq!(p.submit(&bodies[submitted], 0), Err(Reject::Overloaded));
    // Taking batches frees the pipeline.
    let mut taken = 0;
    while submitted < bodies.len() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the pipeline did not resume"
        );
        while let Some(b) = p.try_next_batch() {
            taken += b.len();
        }
        if p.submit(&bodies[submitted], submitted as u64).is_ok() {
            submitted += 1;
        }
    }
    let fin = p.finish();
    taken += fin.batches.iter().map(|b| b.len()).sum::<usize>();
    assert_eq!(taken, 120);
}
