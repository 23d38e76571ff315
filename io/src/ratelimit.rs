//! Per-IP and per-account rate limits: fixed windows of `window_ms`, counted
//! in Redis when it is configured (shared by every validator and the gateway
//! that use the same Redis and key prefix), in memory otherwise or when Redis
//! fails.
//!
//! A window is `now_ms / window_ms`, so validators with synchronised clocks
//! share windows. A client is its IPv4 address or its IPv6 /64 (one
//! subscriber's allocation: an IPv6 client must not get 2^64 budgets; an
//! IPv4-mapped IPv6 address is its IPv4 address), see [`LimitKey::client`].
//! The in-memory limiter tracks at most `max_keys` keys per window (bounded
//! memory): when the table is full, a client first seen in that window
//! shares one overflow budget of `per_ip` with every other such client (a
//! flood from more addresses than `max_keys` is still limited), and an
//! account first seen is not limited in that window (it is still under the
//! per-IP limit), so a flood of made-up accounts cannot grow the table.

use crate::config::RateLimitConfig;
use crate::metrics::{Metrics, ScopeLabel};
use crate::redis_store::RedisStore;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use step_engine::Address;

/// What a limit is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// A client: build it with [`LimitKey::client`].
    Ip(IpAddr),
    Account(Address),
    /// The clients first seen in a window when the table was full.
    IpOverflow,
}

impl LimitKey {
    /// The key of a client address: IPv4 as is, IPv6 cut to its /64.
    pub fn client(ip: IpAddr) -> LimitKey {
        match ip {
            IpAddr::V4(_) => LimitKey::Ip(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => LimitKey::Ip(IpAddr::V4(v4)),
                None => {
                    let p = u128::from(v6) & !((1u128 << 64) - 1);
                    LimitKey::Ip(IpAddr::V6(std::net::Ipv6Addr::from(p)))
                }
            },
        }
    }

    fn scope(&self) -> &'static str {
        match self {
            LimitKey::Ip(_) | LimitKey::IpOverflow => "ip",
            LimitKey::Account(_) => "account",
        }
    }
}

/// A refusal, with when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: &'static str,
    pub retry_after_ms: u64,
}

#[derive(Debug, Default)]
struct Window {
    index: u64,
    counts: HashMap<LimitKey, u64>,
}

/// The limiter. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RateLimiter {
    cfg: RateLimitConfig,
    local: Mutex<Window>,
    redis: Option<Arc<RedisStore>>,
    metrics: Arc<Metrics>,
}

impl RateLimiter {
    pub fn new(
        cfg: RateLimitConfig,
        redis: Option<Arc<RedisStore>>,
        metrics: Arc<Metrics>,
    ) -> RateLimiter {
        RateLimiter {
            cfg,
            local: Mutex::new(Window::default()),
            redis,
            metrics,
        }
    }

    fn max_for(&self, key: &LimitKey) -> u64 {
        match key {
            LimitKey::Ip(_) | LimitKey::IpOverflow => self.cfg.per_ip,
            LimitKey::Account(_) => self.cfg.per_account,
        }
    }

    /// Charges `cost` to `key` at `now_ms`; `Err` if that exceeds the limit.
    pub async fn check(&self, key: LimitKey, cost: u64, now_ms: i64) -> Result<(), Limited> {
        let max = self.max_for(&key);
        if max == 0 {
            return Ok(());
        }
        let window_ms = self.cfg.window_ms.max(1);
        let now = u64::try_from(now_ms).unwrap_or(0);
        let index = now / window_ms;
        let count = match &self.redis {
            Some(r) => match r
                .incr_window(&redis_key(&key, index), cost, window_ms)
                .await
            {
                Some(n) => n,
                None => self.local_count(key, cost, index),
            },
            None => self.local_count(key, cost, index),
        };
        if count > max {
            let scope = key.scope();
            self.metrics
                .rate_limited
                .get_or_create(&ScopeLabel { scope })
                .inc();
            return Err(Limited {
                scope,
                retry_after_ms: (index + 1) * window_ms - now,
            });
        }
        Ok(())
    }

    fn local_count(&self, key: LimitKey, cost: u64, index: u64) -> u64 {
        let mut w = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if w.index != index {
            w.index = index;
            w.counts.clear();
        }
        let key = if !w.counts.contains_key(&key) && w.counts.len() >= self.cfg.max_keys {
            match key {
                LimitKey::Account(_) => return 0,
                LimitKey::Ip(_) | LimitKey::IpOverflow => LimitKey::IpOverflow,
            }
        } else {
            key
        };
        let c = w.counts.entry(key).or_insert(0);
        *c = c.saturating_add(cost);
        *c
    }
}

fn redis_key(key: &LimitKey, index: u64) -> String {
    match key {
        LimitKey::Ip(ip) => format!("ip:{ip}:{index}"),
        LimitKey::Account(a) => format!("account:{a}:{index}"),
        LimitKey::IpOverflow => format!("ip-overflow:{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_ip: u64, max_keys: usize) -> RateLimiter {
        RateLimiter::new(
            RateLimitConfig {
                window_ms: 1000,
                per_ip,
                per_account: 0,
                max_keys,
            },
            None,
            Arc::new(Metrics::new()),
        )
    }

    fn ip(s: &str) -> LimitKey {
        LimitKey::client(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[tokio::test]
    async fn an_ipv6_client_is_its_slash_64() {
        let l = limiter(2, 100);
        assert!(l.check(ip("2001:db8:1:2::1"), 1, 5).await.is_ok());
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), 1, 5).await.is_ok());
        let refused = l.check(ip("2001:db8:1:2:abcd::"), 1, 5).await;
        assert_eq!(refused.map_err(|e| e.scope), Err("ip"), "same /64");
        assert!(
            l.check(ip("2001:db8:1:3::1"), 1, 5).await.is_ok(),
            "next /64"
        );
        assert_eq!(ip("::ffff:10.0.0.7"), ip("10.0.0.7"));
    }

    /// Before the overflow budget a full table let every new address through
    /// unlimited: a flood from more addresses than `max_keys` had no limit.
    #[tokio::test]
    async fn clients_beyond_max_keys_share_one_budget() {
        let l = limiter(3, 4);
        for i in 0..4 {
            assert!(l.check(ip(&format!("10.0.0.{i}")), 1, 5).await.is_ok());
        }
        let mut ok = 0;
        for i in 10..40 {
            if l.check(ip(&format!("10.0.0.{i}")), 1, 5).await.is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 3, "30 new addresses in a full window share per_ip");
        // The next window starts empty.
        assert!(l.check(ip("10.0.0.99"), 1, 1005).await.is_ok());
    }
}
