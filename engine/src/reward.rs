//! Rewards in integer micro-STEP (10⁻⁶ STEP).
//!
//! A proof at level L earns 1 / 2^(L−1) STEP, rounded to the nearest micro-STEP
//! with ties up (what Phase 2's `toFixed(6)` printed): level 1 → 1.000000,
//! level 8 → 0.007813, level 21 → 0.000001.

use std::fmt;

pub const MICRO_PER_STEP: u64 = 1_000_000;

/// The reward for a proof at `level` (1–21), in micro-STEP.
pub fn reward_micro(level: u8) -> u64 {
    let level = level.clamp(1, 21);
    let d = 1u64 << (level - 1);
    (2 * MICRO_PER_STEP + d) / (2 * d)
}

/// An amount of micro-STEP that prints as STEP with 6 decimals (`0.500000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct MicroStep(pub u64);

impl fmt::Display for MicroStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}",
            self.0 / MICRO_PER_STEP,
            self.0 % MICRO_PER_STEP
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_to_fixed_6() {
        // Independent oracle: exact 1/2^(L-1) in decimal, rounded half up.
        for level in 1..=21u8 {
            let exact = 1.0f64 / f64::from(1u32 << (level - 1)); // exact in binary
            let scaled = exact * 1e6; // exact: 1e6 * 2^-k has few significant bits
            let want = (scaled + 0.5).floor() as u64;
            assert_eq!(reward_micro(level), want, "level {level}");
        }
        assert_eq!(MicroStep(reward_micro(1)).to_string(), "1.000000");
        assert_eq!(MicroStep(reward_micro(2)).to_string(), "0.500000");
        assert_eq!(MicroStep(reward_micro(8)).to_string(), "0.007813");
        assert_eq!(MicroStep(reward_micro(21)).to_string(), "0.000001");
    }
}
