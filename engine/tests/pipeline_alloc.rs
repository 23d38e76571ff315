//! After warm-up the pipeline's hot path allocates nothing per proof: a
//! counting global allocator (this test binary only) sees zero allocations
//! while hundreds of proofs go from bytes to verdicts and batches, and while
//! thousands of submissions are refused.
//!
//! One `#[test]` only: the counter is process-wide, and tests in one binary
//! run in parallel.

mod pipeline_support;

use pipeline_support as sup;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use step_engine::pipeline::Pipeline;
use step_engine::{MemoryState, Reject, Verifier};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// The one `unsafe` in the workspace's tests: a global allocator must be an
// `unsafe impl`. It forwards to the system allocator and counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn wait_until(p: &Pipeline<MemoryState>, done: &AtomicU64, n: u64) {
    let t = Instant::now();
    while done.load(Ordering::Relaxed) < n {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "verdicts did not arrive"
        );
        while let Some(b) = p.try_next_batch() {
            p.recycle(b);
        }
        std::thread::yield_now();
    }
    while let Some(b) = p.try_next_batch() {
        p.recycle(b);
    }
}

#[test]
fn no_allocation_per_proof_after_warm_up() {
    const WARM: usize = 400;
    const MEASURED: usize = 800;
    let bodies = sup::fresh_valid("alloc", WARM + MEASURED, 97);
    // An invalid-signature body and a replay are on the hot path too.
    let mut tampered = bodies[WARM + 1].clone();
    let at = tampered
        .windows(6)
        .position(|w| w == b"\"lat\":")
        .expect("lat")
        + 7;
    tampered[at] = if tampered[at] == b'1' { b'2' } else { b'1' };

    for workers in [1, 2] {
        // Tables sized up front, so that recording a proof does not grow
        // them (the pipeline is what is measured, not the store).
        let state = MemoryState::with_capacity(4096);
        let done = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let (d2, a2) = (Arc::clone(&done), Arc::clone(&accepted));
        let mut c = sup::config(Verifier::default(), workers);
        c.capacity = 256;
        let p = Pipeline::new(c, vec![state], move |v| {
            d2.fetch_add(1, Ordering::Relaxed);
            if v.result.is_ok() {
                a2.fetch_add(1, Ordering::Relaxed);
            }
        });
        let submit_all = |bodies: &[Vec<u8>], first: usize| {
            let mut i = 0;
            while i < bodies.len() {
                i += p.submit_slice(&bodies[i..], (first + i) as u64);
                while let Some(b) = p.try_next_batch() {
                    p.recycle(b);
                }
            }
        };

        // Warm-up: the state's first entries, the workers' first waits.
        submit_all(&bodies[..WARM], 0);
        wait_until(&p, &done, WARM as u64);
        // Let every worker go idle once: a thread's first wait on a channel
        // allocates its wait context and the channel's waiter list.
        std::thread::sleep(Duration::from_millis(500));
        let before = ALLOCS.load(Ordering::Relaxed);
        submit_all(&bodies[WARM..], WARM);
        wait_until(&p, &done, (WARM + MEASURED) as u64);
        let hot = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(accepted.load(Ordering::Relaxed), (WARM + MEASURED) as u64);
        assert_eq!(
            hot, 0,
            "{workers} workers: {hot} allocations for {MEASURED} proofs after warm-up"
        );

        // Rejections on the hot path: a bad signature and a replay.
        let rejects = [tampered.clone(), bodies[WARM + 2].clone()];
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..50 {
            submit_all(&rejects, 0);
        }
        wait_until(&p, &done, (WARM + MEASURED + 100) as u64);
        let hot = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(accepted.load(Ordering::Relaxed), (WARM + MEASURED) as u64);
        assert_eq!(
            hot, 0,
            "{workers} workers: {hot} allocations for 100 rejected proofs"
        );
        drop(p.finish());
    }

    // Refusals: a held pipeline refuses 10,000 submissions without allocating.
    let (hook, gate) = sup::Gate::new();
    let mut c = sup::config(Verifier::default(), 1);
    c.capacity = 4;
    c.before_check = Some(hook);
    let p = Pipeline::with_memory_state(c, |_| {});
    let gate = gate; // dropped (opened) before the pipeline
    assert_eq!(p.submit_slice(&bodies[..4], 0), 4);
    // The worker has started (its start-up allocations are done) and is held.
    gate.wait_entered(1);
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 0..10_000 {
        assert_eq!(p.submit(&bodies[4 + i % 100], 0), Err(Reject::Overloaded));
    }
    let refused = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(refused, 0, "{refused} allocations for 10,000 refusals");
    gate.open();
    assert_eq!(p.finish().stats.accepted, 4);
}
