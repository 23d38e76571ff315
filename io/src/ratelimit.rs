//! Per-IP and per-account rate limits: fixed windows of `window_ms`, counted
//! in Redis when it is configured (shared by every validator and the gateway
//! that use the same Redis and key prefix), in memory otherwise or when Redis
//! fails.
//!
//! A window is `now_ms / window_ms`, so validators with synchronised clocks
//! share windows. The in-memory limiter tracks at most `max_keys` keys per
//! window; a key first seen when the table is full is not limited in that
//! window (it is still under the per-IP limit), which keeps memory bounded
//! under a flood of made-up accounts.

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
    Ip(IpAddr),
    Account(Address),
}

impl LimitKey {
    fn scope(&self) -> &'static str {
        match self {
            LimitKey::Ip(_) => "ip",
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
            LimitKey::Ip(_) => self.cfg.per_ip,
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
        if !w.counts.contains_key(&key) && w.counts.len() >= self.cfg.max_keys {
            return 0;
        }
        let c = w.counts.entry(key).or_insert(0);
        *c = c.saturating_add(cost);
        *c
    }
}

fn redis_key(key: &LimitKey, index: u64) -> String {
    match key {
        LimitKey::Ip(ip) => format!("ip:{ip}:{index}"),
        LimitKey::Account(a) => format!("account:{a}:{index}"),
    }
}
