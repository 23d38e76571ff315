//! The plan's rollback triggers, as a pure rule over the window's counts
//! and the last time Phase 3's finalized height moved.

use crate::window::WindowStats;

/// Why the gateway rolled back.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "trigger", rename_all = "snake_case")]
pub enum Trigger {
    /// More than `rate_max` unexpected discrepancies over the window.
    UnexpectedRate {
        unexpected: u64,
        compared: u64,
        window_ms: u64,
    },
    /// No new finalized height for longer than `stall_ms`.
    NoNewHeight {
        height: Option<u64>,
        stalled_ms: u64,
    },
}

impl Trigger {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Trigger::UnexpectedRate { .. } => "unexpected_rate",
            Trigger::NoNewHeight { .. } => "no_new_height",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::UnexpectedRate {
                unexpected,
                compared,
                window_ms,
            } => write!(
                f,
                "{unexpected} unexpected discrepancies in {compared} comparisons over the last {} s ({:.1}%)",
                window_ms / 1000,
                *unexpected as f64 * 100.0 / (*compared).max(1) as f64
            ),
            Trigger::NoNewHeight { height, stalled_ms } => match height {
                Some(h) => write!(f, "no new finalized height for {} s (last {h})", stalled_ms / 1000),
                None => write!(f, "no finalized height seen for {} s", stalled_ms / 1000),
            },
        }
    }
}

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Unexpected / compared above this rolls back (the plan: 0.05).
    pub rate_max: f64,
    /// Fewer comparisons than this in the window never roll back on rate
    /// (one discrepancy in two comparisons is not 50% of anything).
    pub min_compared: u64,
    /// No new height for longer than this rolls back (the plan: 5 min).
    pub stall_ms: u64,
}

impl Rule {
    pub const PLAN: Rule = Rule {
        rate_max: 0.05,
        min_compared: 20,
        stall_ms: 300_000,
    };

    /// The first trigger that holds, if any.
    pub fn check(
        &self,
        now_ms: u64,
        w: WindowStats,
        window_ms: u64,
        h: &HeightWatch,
    ) -> Option<Trigger> {
        if w.compared >= self.min_compared && w.unexpected_ratio() > self.rate_max {
            return Some(Trigger::UnexpectedRate {
                unexpected: w.unexpected,
                compared: w.compared,
                window_ms,
            });
        }
        let stalled_ms = now_ms.saturating_sub(h.changed_ms);
        (stalled_ms > self.stall_ms).then_some(Trigger::NoNewHeight {
            height: h.height,
            stalled_ms,
        })
    }
}

/// The highest finalized height seen and when it last grew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeightWatch {
    pub height: Option<u64>,
    pub changed_ms: u64,
}

impl HeightWatch {
    /// Starts the stall clock at `now_ms` (no height seen yet).
    pub const fn new(now_ms: u64) -> HeightWatch {
        HeightWatch {
            height: None,
            changed_ms: now_ms,
        }
    }

    pub fn observe(&mut self, now_ms: u64, height: u64) {
        if self.height.is_none_or(|h| height > h) {
            self.height = Some(height);
            self.changed_ms = now_ms;
        }
    }

    /// Restarts the stall clock (after an operator clears a rollback).
    pub fn restart(&mut self, now_ms: u64) {
        self.changed_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(compared: u64, unexpected: u64) -> WindowStats {
        WindowStats {
            compared,
            intended: 0,
            unexpected,
        }
    }

    #[test]
    fn more_than_5_percent_unexpected_rolls_back_exactly_above_the_line() {
        let r = Rule::PLAN;
        let h = HeightWatch::new(0);
        assert_eq!(
            r.check(1, stats(100, 5), 60_000, &h),
            None,
            "5% is not more than 5%"
        );
        assert_eq!(
            r.check(1, stats(100, 6), 60_000, &h),
            Some(Trigger::UnexpectedRate {
                unexpected: 6,
                compared: 100,
                window_ms: 60_000
            })
        );
        assert_eq!(
            r.check(1, stats(19, 19), 60_000, &h),
            None,
            "below min_compared"
        );
    }

    #[test]
    fn no_new_height_for_more_than_5_minutes_rolls_back() {
        let r = Rule::PLAN;
        let mut h = HeightWatch::new(0);
        h.observe(1_000, 7);
        h.observe(2_000, 7); // the same height does not restart the clock
        h.observe(3_000, 6); // nor a lower one (a lagging validator)
        assert_eq!(r.check(301_000, stats(0, 0), 1, &h), None);
        assert_eq!(
            r.check(301_001, stats(0, 0), 1, &h),
            Some(Trigger::NoNewHeight {
                height: Some(7),
                stalled_ms: 300_001
            })
        );
        h.observe(301_002, 8);
        assert_eq!(r.check(500_000, stats(0, 0), 1, &h), None);
        // Never any height: the clock runs from the start.
        let never = HeightWatch::new(10);
        assert!(matches!(
            r.check(300_011, stats(0, 0), 1, &never),
            Some(Trigger::NoNewHeight { height: None, .. })
        ));
    }
}
