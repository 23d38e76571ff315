//! The comparison window: counts of comparisons over the last `span_ms`,
//! in one-second buckets (a bounded ring; time is given, never read).

use std::collections::VecDeque;

use crate::classify::Outcome;

const BUCKET_MS: u64 = 1_000;

/// Counts over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowStats {
    pub compared: u64,
    pub intended: u64,
    pub unexpected: u64,
}

impl WindowStats {
    fn add(&mut self, o: Outcome) {
        self.compared += 1;
        match o {
            Outcome::Match => {}
            Outcome::Intended(_) => self.intended += 1,
            Outcome::Unexpected(_) => self.unexpected += 1,
        }
    }

    /// Unexpected / compared (0 when nothing was compared).
    pub fn unexpected_ratio(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.unexpected as f64 / self.compared as f64
        }
    }
}

/// A sliding window of outcomes.
#[derive(Debug, Clone)]
pub struct Window {
    span_ms: u64,
    /// (bucket start, counts), oldest first.
    buckets: VecDeque<(u64, WindowStats)>,
}

impl Window {
    pub fn new(span_ms: u64) -> Window {
        let span_ms = span_ms.max(BUCKET_MS);
        Window {
            span_ms,
            buckets: VecDeque::with_capacity((span_ms / BUCKET_MS) as usize + 1),
        }
    }

    pub const fn span_ms(&self) -> u64 {
        self.span_ms
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((start, _)) = self.buckets.front() {
            if start + self.span_ms <= now_ms {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn record(&mut self, now_ms: u64, o: Outcome) {
        self.expire(now_ms);
        let start = now_ms - now_ms % BUCKET_MS;
        match self.buckets.back_mut() {
            Some((s, c)) if *s >= start => c.add(o),
            _ => {
                let mut c = WindowStats::default();
                c.add(o);
                self.buckets.push_back((start, c));
            }
        }
    }

    /// Counts of the buckets that started within the last `span_ms`.
    pub fn stats(&mut self, now_ms: u64) -> WindowStats {
        self.expire(now_ms);
        let mut s = WindowStats::default();
        for (_, c) in &self.buckets {
            s.compared += c.compared;
            s.intended += c.intended;
            s.unexpected += c.unexpected;
        }
        s
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Intended, Unexpected};

    #[test]
    fn old_outcomes_leave_the_window() {
        let mut w = Window::new(60_000);
        for t in 0..30u64 {
            w.record(t * 1_000, Outcome::Unexpected(Unexpected::Verdict));
            w.record(t * 1_000 + 500, Outcome::Match);
        }
        w.record(30_000, Outcome::Intended(Intended::HighS));
        let s = w.stats(30_000);
        assert_eq!((s.compared, s.unexpected, s.intended), (61, 30, 1));
        // 60 s after the first bucket it is gone; after 90 s everything is.
        assert_eq!(w.stats(60_000).unexpected, 29);
        assert_eq!(w.stats(91_000), WindowStats::default());
        assert!(w.buckets.is_empty());
    }

    #[test]
    fn the_ring_stays_bounded() {
        let mut w = Window::new(10_000);
        for t in 0..100_000u64 {
            w.record(t * 10, Outcome::Match);
        }
        assert!(w.buckets.len() <= 11, "{}", w.buckets.len());
        assert_eq!(w.stats(999_990).compared, 1_000);
    }
}
