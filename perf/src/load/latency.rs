//! Latency histograms (HDR, microsecond resolution, 3 significant digits)
//! with coordinated-omission correction.
//!
//! The correction is the one wrk2 makes: a latency is measured from when the
//! request was *due* by the open-loop schedule, not from when the generator
//! managed to send it. If the server stalls and requests queue up in the
//! generator (or in its connection pool), the time they wait counts: a
//! closed-loop measurement would hide it.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Most latency recorded: 1 hour (larger values are clamped to it).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

/// The corrected latency: completion time minus the *scheduled* send time
/// (both in ns after the run's start), in µs. `None` if it completed
/// before it was due (a clock error; never counted).
pub fn corrected_us(scheduled_ns: u64, completed_ns: u64) -> Option<u64> {
    completed_ns.checked_sub(scheduled_ns).map(|d| d / 1000)
}

/// An HDR histogram of latencies in µs.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        // 1 µs .. 1 h at 3 significant digits: bounds are constants, so
        // this cannot fail.
        let hist = Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
            .unwrap_or_else(|_| unreachable!("constant HDR bounds are valid"));
        Latencies { hist }
    }

    /// Records a latency in µs (clamped to 1 µs .. [`LATENCY_US_MAX`]).
    pub fn record_us(&mut self, us: u64) {
        // Saturating: within the bounds, so recording cannot fail.
        self.hist.saturating_record(us.clamp(1, LATENCY_US_MAX));
    }

    /// Records the coordinated-omission-corrected latency of a request due
    /// at `scheduled_ns` that completed at `completed_ns`.
    pub fn record_corrected(&mut self, scheduled_ns: u64, completed_ns: u64) {
        if let Some(us) = corrected_us(scheduled_ns, completed_ns) {
            self.record_us(us);
        }
    }

    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0..=1) in ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    pub fn mean_ms(&self) -> f64 {
        self.hist.mean() / 1000.0
    }

    /// `{p50, p90, p99, p999, max, mean, count}` in ms; nulls when empty.
    pub fn summary_json(&self) -> Value {
        if self.count() == 0 {
            return json!({"p50": null, "p90": null, "p99": null, "p999": null,
                          "max": null, "mean": null, "count": 0});
        }
        json!({
            "p50": round3(self.quantile_ms(0.5)),
            "p90": round3(self.quantile_ms(0.9)),
            "p99": round3(self.quantile_ms(0.99)),
            "p999": round3(self.quantile_ms(0.999)),
            "max": round3(self.max_ms()),
            "mean": round3(self.mean_ms()),
            "count": self.count(),
        })
    }

    /// `p50 … p90 … p99 … p99.9 … max …` for the human report.
    pub fn summary_text(&self) -> String {
        if self.count() == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {} p90 {} p99 {} p99.9 {} max {} ({} samples)",
            fmt_ms(self.quantile_ms(0.5)),
            fmt_ms(self.quantile_ms(0.9)),
            fmt_ms(self.quantile_ms(0.99)),
            fmt_ms(self.quantile_ms(0.999)),
            fmt_ms(self.max_ms()),
            self.count()
        )
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.2}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrected_latency_is_from_the_scheduled_time() {
        assert_eq!(corrected_us(1_000_000, 3_500_000), Some(2_500));
        assert_eq!(corrected_us(5, 4), None);
    }

    /// An open-loop generator at 100 requests/s over one connection, against
    /// a server that answers in 1 ms but stalls for 1 s at t = 1 s. The
    /// requests due during the stall wait in the generator; measured from
    /// their actual send time they look fast (the coordinated omission), and
    /// measured from their due time they show the stall.
    #[test]
    fn correction_shows_a_stall_the_naive_measure_hides() {
        let rate = 100u64;
        let total = 300u64; // 3 s
        let service_ns = 1_000_000u64;
        let mut conn_free_ns = 0u64;
        let mut corrected = Latencies::new();
        let mut naive = Latencies::new();
        for j in 0..total {
            let due = crate::load::schedule::due_ns(j, rate as f64);
            let send = due.max(conn_free_ns);
            let service = if (1_000_000_000..1_010_000_000).contains(&send) {
                1_000_000_000
            } else {
                service_ns
            };
            let done = send + service;
            conn_free_ns = done;
            corrected.record_corrected(due, done);
            naive.record_us((done - send) / 1000);
        }
        assert_eq!(corrected.count(), 300);
        // Naive: one slow request out of 300; p99 stays at the service time.
        assert!(naive.quantile_ms(0.99) < 1.1, "{}", naive.summary_text());
        assert!(naive.max_ms() >= 999.0);
        // Corrected: the 100 requests due during the stall waited 0..1 s,
        // so about a third of all requests are slower than ~10 ms, and the
        // median of those due in the stall is around 500 ms.
        assert!(
            corrected.quantile_ms(0.99) > 900.0,
            "{}",
            corrected.summary_text()
        );
        assert!(
            corrected.quantile_ms(0.9) > 300.0,
            "{}",
            corrected.summary_text()
        );
        assert!(
            corrected.quantile_ms(0.5) < 2.0,
            "{}",
            corrected.summary_text()
        );
    }

    #[test]
    fn summary_in_ms() {
        let mut l = Latencies::new();
        for us in 1..=1000u64 {
            l.record_us(us * 1000);
        }
        let v = l.summary_json();
        let p50 = v["p50"].as_f64().unwrap_or_default();
        assert!((p50 - 500.0).abs() < 1.0, "{v}");
        let max = v["max"].as_f64().unwrap_or_default();
        assert!((max - 1000.0).abs() < 1.0, "{v}");
        assert_eq!(v["count"], 1000);
        assert!(Latencies::new().summary_json()["p99"].is_null());
    }
}
