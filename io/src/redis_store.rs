//! Optional Redis, shared by validators and the gateway: an advisory replay
//! pre-check and a shared rate-limit store.
//!
//! * **Replay pre-check.** Before a proof enters the pipeline the node claims
//!   `{prefix}nonce:{account hex}:{nonce}` with `SET NX PX replay_ttl_ms`,
//!   the value being the proof id. If another validator (or this one) already
//!   holds the claim the proof is refused with `NONCE_REPLAY` at once. A claim
//!   is released (compare-and-delete on the proof id) when the proof is
//!   rejected, so a bad proof cannot block a good one with the same nonce.
//!   This is advisory: the authoritative replay check stays in the engine's
//!   stateful stage and in consensus execution.
//! * **Rate limits.** Fixed windows: `INCRBY {prefix}rl:{scope}:{key}:{window}`
//!   with a `PEXPIRE` of two windows.
//!
//! Redis is never required. Every command has a timeout; on any error the
//! node goes on without Redis (no pre-check; local rate limits), counts
//! `step_redis_errors_total` and logs a warning. A lost connection is retried
//! at most once a second.

use crate::config::RedisConfig;
use crate::ledger::{hex, ProofId};
use crate::metrics::Metrics;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use step_engine::proof::Nonce;
use step_engine::Address;

/// Deletes the key only if it still holds this proof's id.
const RELEASE_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// A result of a nonce claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This proof now holds the claim.
    Claimed,
    /// Someone already holds it: an (account, nonce) replay.
    Taken,
    /// Redis is not reachable; no pre-check was made.
    Unavailable,
}

/// Why a Redis URL is unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid redis url: {source}")]
pub struct RedisUrlError {
    source: redis::RedisError,
}

/// The connection and the key layout.
pub struct RedisStore {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    last_attempt: std::sync::Mutex<Option<Instant>>,
    cfg: RedisConfig,
    metrics: Arc<Metrics>,
    release: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.cfg.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Checks the URL; connects lazily, on first use.
    pub fn new(cfg: &RedisConfig, metrics: Arc<Metrics>) -> Result<RedisStore, RedisUrlError> {
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|source| RedisUrlError { source })?;
        Ok(RedisStore {
            client,
            conn: tokio::sync::Mutex::new(None),
            last_attempt: std::sync::Mutex::new(None),
            cfg: cfg.clone(),
            metrics,
            release: redis::Script::new(RELEASE_SCRIPT),
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms.max(1))
    }

    fn failed(&self, what: &str, err: &dyn std::fmt::Display) {
        self.metrics.redis_errors.inc();
        tracing::warn!(op = what, error = %err, "redis unavailable; going on without it");
    }

    /// The shared connection, connecting if needed (at most one attempt a second).
    async fn conn(&self) -> Option<ConnectionManager> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Some(c.clone());
        }
        {
            let mut last = self
                .last_attempt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout())
            .set_response_timeout(self.timeout())
            .set_number_of_retries(1);
        let connect = self.client.get_connection_manager_with_config(config);
        let c = self.bounded("connect", 2, connect).await?;
        *guard = Some(c.clone());
        Some(c)
    }

    /// `op` within `timeout_factor` × the configured timeout; a failure or
    /// a timeout is counted and logged as `what` ([`Self::failed`]) and
    /// gives `None`.
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        what: &str,
        timeout_factor: u32,
        op: impl std::future::Future<Output = Result<T, E>>,
    ) -> Option<T> {
        match tokio::time::timeout(self.timeout() * timeout_factor, op).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(what, &e);
                None
            }
            Err(_) => {
                self.failed(what, &"timed out");
                None
            }
        }
    }

    /// Runs one command with the timeout; `None` on any failure.
    async fn run<T: redis::FromRedisValue>(&self, what: &str, cmd: redis::Cmd) -> Option<T> {
        let mut c = self.conn().await?;
        self.bounded(what, 1, cmd.query_async::<T>(&mut c)).await
    }

    fn nonce_key(&self, account: &Address, nonce: &Nonce) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.cfg.key_prefix.len() + 48 + nonce.as_bytes().len());
        k.extend_from_slice(self.cfg.key_prefix.as_bytes());
        k.extend_from_slice(b"nonce:");
        k.extend_from_slice(hex(&account.0).as_bytes());
        k.push(b':');
        k.extend_from_slice(nonce.as_bytes());
        k
    }

    /// Claims (account, nonce) for proof `id`.
    pub async fn claim_nonce(&self, account: &Address, nonce: &Nonce, id: &ProofId) -> Claim {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.nonce_key(account, nonce))
            .arg(id.to_string())
            .arg("NX")
            .arg("PX")
            .arg(self.cfg.replay_ttl_ms.max(1));
        match self.run::<Option<String>>("claim_nonce", cmd).await {
            Some(Some(_)) => Claim::Claimed,
            Some(None) => Claim::Taken,
            None => Claim::Unavailable,
        }
    }

    /// Releases a claim this proof holds (after a rejection).
    pub async fn release_nonce(&self, account: &Address, nonce: &Nonce, id: &ProofId) {
        let Some(mut c) = self.conn().await else {
            return;
        };
        let key = self.nonce_key(account, nonce);
        let mut inv = self.release.key(key);
        inv.arg(id.to_string());
        // A failure is counted and logged by `bounded`; the claim then
        // expires with its TTL.
        let released = inv.invoke_async::<i64>(&mut c);
        self.bounded("release_nonce", 1, released).await;
    }

    /// Adds `cost` to a fixed-window counter and returns the new count.
    pub async fn incr_window(&self, key: &str, cost: u64, window_ms: u64) -> Option<u64> {
        let full = format!("{}rl:{key}", self.cfg.key_prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("INCRBY")
            .arg(&full)
            .arg(cost)
            .cmd("PEXPIRE")
            .arg(&full)
            .arg(window_ms.saturating_mul(2))
            .ignore();
        let mut c = self.conn().await?;
        let counted = pipe.query_async::<(u64,)>(&mut c);
        self.bounded("rate_limit", 1, counted).await.map(|(n,)| n)
    }

    /// `PING`; true if Redis answered.
    pub async fn ping(&self) -> bool {
        self.run::<String>("ping", redis::cmd("PING"))
            .await
            .is_some()
    }
}
