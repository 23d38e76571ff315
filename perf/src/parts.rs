//! Items signed by several threads, kept in the parts the threads made (no
//! merge copy): item `i` is item `i % chunk` of part `i / chunk`. The engine
//! corpus and the load generator's prepared proofs are both such parts.

/// `len` items over `parts` of `chunk` items each (the last may be shorter).
#[derive(Debug, Default)]
pub struct Parts<P> {
    pub(crate) parts: Vec<P>,
    pub(crate) chunk: usize,
    pub(crate) len: usize,
}

impl<P> Parts<P> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part holding item `i`, and its index there.
    pub(crate) fn locate(&self, i: usize) -> (&P, usize) {
        (&self.parts[i / self.chunk], i % self.chunk)
    }
}

/// Item `i`'s bytes in a buffer of items back to back, item `k` ending at `ends[k]`.
pub(crate) fn span(ends: &[usize], i: usize) -> std::ops::Range<usize> {
    (if i == 0 { 0 } else { ends[i - 1] })..ends[i]
}

/// Makes `n` items with `threads` threads: each builds, with `make`, the part
/// for one chunk of the item range `0..n`.
pub(crate) fn build<P: Send>(
    n: usize,
    threads: usize,
    make: impl Fn(std::ops::Range<usize>) -> P + Sync,
) -> Parts<P> {
    let chunk = n.div_ceil(threads).max(1);
    let make = &make;
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * chunk).min(n)..((t + 1) * chunk).min(n);
                s.spawn(move || make(range))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    Parts {
        parts,
        chunk,
        len: n,
    }
}
