//! Which system answers an account: a stable bucket per account, compared
//! with the share of accounts given to Phase 3.
//!
//! The bucket is the first 8 bytes of SHA-256 over the account in lower
//! case, modulo 10,000. Lower case: Phase 3 has one account per address
//! (Phase 2's letter-case variants are one account there), so every spelling
//! of an address goes the same way. A larger share only adds accounts
//! (bucket < share × 100), so an account moved to Phase 3 at 10% stays there
//! at 50% and 90%.

use sha2::{Digest, Sha256};

/// Buckets per account space (a share is counted in 1/100 of a percent).
pub const BUCKETS: u64 = 10_000;

/// The system that answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Phase2,
    Phase3,
}

impl Side {
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Phase2 => "phase2",
            Side::Phase3 => "phase3",
        }
    }
}

/// A share of accounts in whole percent, 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share(u8);

/// A share outside 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a Phase 3 share is a whole percent from 0 to 100, not {percent}")]
pub struct ShareOutOfRange {
    pub percent: u64,
}

impl Share {
    pub const ZERO: Share = Share(0);

    pub fn new(percent: u64) -> Result<Share, ShareOutOfRange> {
        u8::try_from(percent)
            .ok()
            .filter(|p| *p <= 100)
            .map(Share)
            .ok_or(ShareOutOfRange { percent })
    }

    pub const fn percent(self) -> u8 {
        self.0
    }
}

/// The account's bucket, 0..[`BUCKETS`].
pub fn bucket(account: &str) -> u64 {
    let mut h = Sha256::new();
    for b in account.bytes() {
        h.update([b.to_ascii_lowercase()]);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

/// Who answers `account` at `share`.
pub fn side(account: &str, share: Share) -> Side {
    if bucket(account) < u64::from(share.0) * (BUCKETS / 100) {
        Side::Phase3
    } else {
        Side::Phase2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(n: u64) -> Vec<String> {
        (0..n)
            .map(|i| {
                format!(
                    "0x{}",
                    hex::encode(Sha256::digest(i.to_be_bytes()))[..40].to_owned()
                )
            })
            .collect()
    }

    #[test]
    fn a_share_sends_about_that_fraction_of_accounts_and_only_adds_accounts() {
        let all = accounts(20_000);
        let mut previous: Vec<bool> = vec![false; all.len()];
        for pct in [0u64, 10, 50, 90, 100] {
            let share = Share::new(pct).unwrap();
            let now: Vec<bool> = all.iter().map(|a| side(a, share) == Side::Phase3).collect();
            let n = now.iter().filter(|p| **p).count() as f64;
            let frac = n / all.len() as f64;
            assert!((frac - pct as f64 / 100.0).abs() < 0.01, "{pct}%: {frac}");
            // Monotone: nobody on Phase 3 goes back when the share grows.
            assert!(previous.iter().zip(&now).all(|(p, n)| !p || *n), "{pct}%");
            previous = now;
        }
    }

    #[test]
    fn every_spelling_of_an_address_goes_the_same_way() {
        for a in accounts(500) {
            let upper = format!("0x{}", a[2..].to_ascii_uppercase());
            assert_eq!(bucket(&a), bucket(&upper), "{a}");
        }
    }

    #[test]
    fn a_share_is_0_to_100() {
        assert_eq!(Share::new(100).unwrap().percent(), 100);
        assert_eq!(Share::new(101), Err(ShareOutOfRange { percent: 101 }));
        assert_eq!(Share::new(300), Err(ShareOutOfRange { percent: 300 }));
    }
}
