//! The open-loop arrival schedule: request `j` is due at `j / rate` seconds
//! after the start, whatever happened to earlier requests.
//!
//! This is a pure function of the request index and the rate. The sender asks
//! [`Schedule::due_by`] for every arrival due at the current elapsed time and
//! hands each one to a connection or counts it as dropped; it never waits for
//! a response before the next arrival, so a slow server cannot slow the
//! offered load down (the "coordinated omission" of closed-loop clients).

/// Which part of a run a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before the measured window, at the same rate; reported apart.
    Warmup,
    /// The measured window (`--duration`/`--burst`).
    Measured,
    /// After it, at `--cooldown-rate`: does throughput come back?
    Cooldown,
}

/// Constant-rate arrivals of `total` requests.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Requests per second (proofs/s ÷ proofs per request).
    rate_per_s: f64,
    total: u64,
    /// The next request not yet handed out by [`Schedule::due_by`].
    next: u64,
}

impl Schedule {
    /// `rate_per_s` must be positive and finite (checked by the caller's options).
    pub fn new(rate_per_s: f64, total: u64) -> Schedule {
        Schedule {
            rate_per_s,
            total,
            next: 0,
        }
    }

    /// When request `j` is due, in nanoseconds after the start.
    pub fn due_ns(&self, j: u64) -> u64 {
        due_ns(j, self.rate_per_s)
    }

    /// Total number of requests.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Every request due at or before `elapsed_ns` that was not handed out
    /// yet: all of them, however late the caller is (none are skipped and
    /// the later ones are not pushed back).
    pub fn due_by(&mut self, elapsed_ns: u64) -> std::ops::Range<u64> {
        let start = self.next;
        while self.next < self.total && self.due_ns(self.next) <= elapsed_ns {
            self.next += 1;
        }
        start..self.next
    }

    /// When the next request is due (`None` once all were handed out).
    pub fn next_due_ns(&self) -> Option<u64> {
        (self.next < self.total).then(|| self.due_ns(self.next))
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.total
    }
}

/// `j / rate` seconds in nanoseconds (exact for integer rates up to 10⁹/s).
pub fn due_ns(j: u64, rate_per_s: f64) -> u64 {
    if rate_per_s.fract() == 0.0 && (1.0..1e12).contains(&rate_per_s) {
        let r = rate_per_s as u128;
        (u128::from(j) * 1_000_000_000 / r) as u64
    } else {
        (j as f64 * 1e9 / rate_per_s) as u64
    }
}

/// Requests needed for `seconds` at `rate_per_s` (rounded up).
pub fn requests_for(seconds: f64, rate_per_s: f64) -> u64 {
    (seconds * rate_per_s).ceil().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_evenly_spaced() {
        let s = Schedule::new(1000.0, 10);
        assert_eq!(s.due_ns(0), 0);
        assert_eq!(s.due_ns(1), 1_000_000);
        assert_eq!(s.due_ns(7), 7_000_000);
        assert_eq!(due_ns(3, 3.0), 1_000_000_000);
        assert_eq!(due_ns(1, 2.5), 400_000_000);
    }

    /// Simulates a sender whose calls are delayed by response times: a
    /// closed-loop client would send fewer requests; the open-loop schedule
    /// hands out exactly the same arrivals, at the same due times, whatever
    /// the delays are.
    #[test]
    fn send_times_do_not_depend_on_response_times() {
        let rate = 500.0;
        let total = 1000; // 2 s
        let run = |response_ns: &dyn Fn(u64) -> u64| {
            let mut s = Schedule::new(rate, total);
            let mut now = 0u64;
            let mut handed: Vec<(u64, u64)> = Vec::new();
            while !s.is_done() {
                for j in s.due_by(now) {
                    handed.push((j, s.due_ns(j)));
                }
                // The caller is busy for a response time, then sleeps to
                // the next due time at most.
                let busy = response_ns(now);
                let next = s.next_due_ns().unwrap_or(now);
                now = (now + busy).max(next);
            }
            handed
        };
        let fast = run(&|_| 10_000);
        // A server that stalls 700 ms at t = 0.5 s, and is slow after it.
        let stalled = run(&|t| {
            if (500_000_000..510_000_000).contains(&t) {
                700_000_000
            } else if t > 1_200_000_000 {
                5_000_000
            } else {
                10_000
            }
        });
        assert_eq!(fast.len(), 1000);
        assert_eq!(fast, stalled, "arrivals and due times must not change");
        // Due times are j / rate, not shifted by the stall.
        assert_eq!(stalled[999].1, 1_998_000_000);
    }

    #[test]
    fn a_late_caller_gets_every_missed_arrival_at_once() {
        let mut s = Schedule::new(100.0, 1000);
        assert_eq!(s.due_by(0), 0..1);
        // One second late: 100 arrivals due, none skipped.
        assert_eq!(s.due_by(1_000_000_000), 1..101);
        assert_eq!(s.due_by(1_000_000_000), 101..101);
        assert_eq!(s.next_due_ns(), Some(1_010_000_000));
        assert_eq!(s.due_by(u64::MAX), 101..1000);
        assert!(s.is_done());
        assert_eq!(s.next_due_ns(), None);
    }

    #[test]
    fn request_counts() {
        assert_eq!(requests_for(2.0, 500.0), 1000);
        assert_eq!(requests_for(0.5, 3.0), 2);
        assert_eq!(requests_for(0.0, 3.0), 0);
    }
}
