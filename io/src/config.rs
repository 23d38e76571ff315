//! Node configuration: a TOML file, every key overridable by environment
//! variable (`STEP_<SECTION>_<KEY>`, e.g. `STEP_HTTP_LISTEN`) and by
//! [`Config::set`] (what the CLI's flags call, e.g. `--redis-url` →
//! `redis.url`). Defaults and the full reference: `docs/VALIDATOR_GUIDE.md`.
//!
//! Precedence, lowest first: built-in defaults → file → environment → flags.
//! There are no optional keys: a switch is a `bool` or a `0 = off` value, so
//! every key exists in the defaults and can be overridden the same way.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use step_engine::{AgeWindow, Backend, Limits};

mod choice;
pub use choice::{LedgerKind, RENAMED};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration: {source}")]
    Toml { source: toml::de::Error },
    #[error("unknown configuration key `{key}`")]
    UnknownKey { key: String },
    #[error("value {value:?} for `{key}` is not a valid {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("`{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// A consensus-critical key set locally to another value than the
    /// genesis' (`io::genesis_params`).
    #[error(
        "`{key}` is {configured} in the configuration or environment ({env}), but the genesis \
         sets {genesis}: consensus-critical parameters come from the genesis file only. Remove \
         the key (or set it to the genesis value)"
    )]
    ConsensusParam {
        key: &'static str,
        env: String,
        configured: String,
        genesis: String,
    },
}

/// The whole node configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpConfig,
    pub limits: LimitsConfig,
    pub pipeline: PipelineSettings,
    pub rate_limit: RateLimitConfig,
    pub redis: RedisConfig,
    pub log: LogConfig,
    pub node: NodeConfig,
    pub consensus: ConsensusConfig,
    pub intake: IntakeConfig,
    pub health: HealthConfig,
}

/// The intake log (`io::intake_log`, docs/adr/0032-intake-log.md): every
/// proof answered 202 is on disk first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Log accepted proofs before answering (consensus backend). Off: a 202
    /// is lost if this validator crashes before its batch is gossiped.
    pub log: bool,
    /// Most proofs logged and not yet decided; the next one is OVERLOADED.
    pub max_records: usize,
    /// How long a group of appends waits for more before its one fsync.
    pub group_commit_ms: u64,
    /// A segment file this large is closed and a new one started.
    pub segment_mb: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            log: true,
            max_records: 262_144,
            group_commit_ms: 2,
            segment_mb: 16,
        }
    }
}

/// When `/health/ready` says the node can make progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Not ready when no new height was finalized for this long (well above
    /// `consensus.max_idle_block_interval_ms`: an idle network decides one
    /// block per interval). 0: rule off.
    pub ready_height_age_ms_max: u64,
    /// A validator counts as heard when a signed vote or proposal of it
    /// arrived within this window; not ready when fewer than a quorum
    /// (2f+1 of 3f+1, this node included) were heard. 0: rule off.
    pub ready_peer_window_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ready_height_age_ms_max: 60_000,
            ready_peer_window_ms: 30_000,
        }
    }
}

/// The validator: identity, data directory, peers (`step node`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// "consensus" (BFT, the default) or "local" (one process, in memory,
    /// not fault tolerant: for development only). Was `node.backend`.
    #[serde(alias = "backend")]
    pub ledger: LedgerKind,
    /// Data directory: the consensus WAL and the redb store. Relative paths
    /// are taken from the configuration file's directory.
    pub home: String,
    /// The validator's consensus key (`step keys generate`); empty =
    /// `<home>/validator_key.toml`.
    pub key_file: String,
    /// The validator's libp2p identity key, separate from the consensus key
    /// (`step keys generate` writes both); empty = `<home>/p2p_key.toml`.
    pub p2p_key_file: String,
    /// The genesis / validator-set file; empty = `<home>/genesis.toml`.
    pub genesis_file: String,
    /// Name in logs; empty = the validator address.
    pub moniker: String,
    /// libp2p listen address.
    pub p2p_listen: String,
    /// Bootstrap peers, comma-separated multiaddrs; empty = every other
    /// validator's `p2p` address from the genesis file.
    pub peers: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            ledger: LedgerKind::Consensus,
            home: "step-home".into(),
            key_file: String::new(),
            p2p_key_file: String::new(),
            genesis_file: String::new(),
            moniker: String::new(),
            p2p_listen: "/ip4/127.0.0.1/tcp/27100".into(),
            peers: String::new(),
        }
    }
}

/// Consensus timeouts and block shape (`step_consensus::AppConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusConfig {
    pub propose_timeout_ms: u64,
    pub prevote_timeout_ms: u64,
    pub precommit_timeout_ms: u64,
    pub rebroadcast_ms: u64,
    /// Most pre-validated batches in one block.
    pub max_batches_per_block: usize,
    /// Batches per proposal part.
    pub batches_per_part: usize,
    /// How long a proposer waits for a full block before proposing what it has.
    pub propose_wait_ms: u64,
    /// Finalized proofs kept in memory in front of the store for
    /// `GET /proof/{id}` (oldest forgotten first; 0: the store answers all).
    pub proof_index_max: usize,
    /// The embedded store's page cache, in MiB.
    pub store_cache_mb: u64,
    /// The caches of state rows (accounts, triangles, used nonces) in front
    /// of the store, in MiB in all.
    pub state_cache_mb: u64,
    /// Heights whose blocks, certificates and per-proof results the store
    /// keeps below its head (0: all; the state is always kept).
    pub retain_heights: u64,
    /// An idle network decides at most one block per this interval (0: no wait).
    pub max_idle_block_interval_ms: u64,
    /// What makes a batch valid in a block: `"attested"` (f+1 validators
    /// verify it and sign attestations; the others check those and a
    /// sample) or `"all"` (every validator verifies every proof).
    pub validity: String,
    /// Attested proofs each validator re-verifies, per million.
    pub attest_sample_ppm: u32,
    /// A validator beyond the designated attesters verifies a batch still
    /// short of attestations after (rank − f) × this.
    pub attest_fallback_ms: u64,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        let t = step_consensus::Timeouts::default();
        let a = step_consensus::AppConfig::default();
        ConsensusConfig {
            propose_timeout_ms: t.propose_ms,
            prevote_timeout_ms: t.prevote_ms,
            precommit_timeout_ms: t.precommit_ms,
            rebroadcast_ms: t.rebroadcast_ms,
            max_batches_per_block: a.max_batches_per_block,
            batches_per_part: a.batches_per_part,
            propose_wait_ms: u64::try_from(a.propose_wait.as_millis()).unwrap_or(u64::MAX),
            proof_index_max: 0,
            store_cache_mb: (a.store_cache_bytes >> 20) as u64,
            state_cache_mb: (a.state_cache_bytes >> 20) as u64,
            retain_heights: a.retain_heights,
            max_idle_block_interval_ms: u64::try_from(a.max_idle_block_interval.as_millis())
                .unwrap_or(u64::MAX),
            validity: "all".into(),
            attest_sample_ppm: a.attest_sample_ppm,
            attest_fallback_ms: u64::try_from(a.attest_fallback.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
    /// Most bytes in a `POST /proofs` body.
    pub batch_body_max_bytes: usize,
    /// Most proofs in one `POST /proofs` body.
    pub batch_max_proofs: usize,
    /// Most `POST /proofs` requests handled at once (bounds their memory to
    /// about this × `batch_body_max_bytes`); beyond it, 503 OVERLOADED.
    pub batch_concurrency: usize,
    /// A request body must arrive within this time (408 otherwise).
    pub body_timeout_ms: u64,
    /// A request's headers must arrive within this time, and an idle
    /// keep-alive connection is closed after it.
    pub header_timeout_ms: u64,
    /// Most open connections; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// `POST /proof/submit` (waiting) answers 202 "pending" after this long.
    pub finality_timeout_ms: u64,
    /// Take the client IP from the first `X-Forwarded-For` entry (behind a
    /// trusted gateway only).
    pub trust_forwarded_for: bool,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace_ms: u64,
    /// Finalized blocks buffered per `/events` subscriber before it lags.
    pub events_buffer: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            batch_body_max_bytes: 4 * 1024 * 1024,
            batch_max_proofs: 1000,
            batch_concurrency: 8,
            body_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            max_connections: 10_000,
            finality_timeout_ms: 10_000,
            trust_forwarded_for: false,
            shutdown_grace_ms: 10_000,
            events_buffer: 1024,
        }
    }
}

/// Verification limits (Phase 2's, each switchable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// GPS_MAX_ACCURACY_M.
    pub accuracy_m_max: f64,
    pub speed_gate: bool,
    /// PROOF_SPEED_LIMIT_MPS.
    pub speed_mps_max: f64,
    pub moratorium: bool,
    /// PROOF_MORATORIUM_MS.
    pub moratorium_ms: u64,
    /// Reject proofs whose timestamp is outside [now − max_age, now + max_future].
    pub age_window: bool,
    pub max_age_ms: u64,
    pub max_future_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            accuracy_m_max: l.accuracy_m_max,
            speed_gate: l.speed_mps_max.is_some(),
            speed_mps_max: l.speed_mps_max.unwrap_or(15.0),
            moratorium: l.moratorium_ms.is_some(),
            moratorium_ms: l.moratorium_ms.unwrap_or(10_000),
            age_window: false,
            max_age_ms: 24 * 3600 * 1000,
            max_future_ms: 60_000,
        }
    }
}

impl LimitsConfig {
    /// The engine's limits.
    pub fn to_limits(&self) -> Limits {
        Limits {
            accuracy_m_max: self.accuracy_m_max,
            speed_mps_max: self.speed_gate.then_some(self.speed_mps_max),
            moratorium_ms: self.moratorium.then_some(self.moratorium_ms),
            age_window: self.age_window.then_some(AgeWindow {
                max_age_ms: self.max_age_ms,
                max_future_ms: self.max_future_ms,
            }),
        }
    }
}

/// The engine pipeline (see `step_engine::pipeline::PipelineConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Recovery backend: "secp256k1" or "k256" (if compiled in). Was
    /// `pipeline.backend`.
    #[serde(alias = "backend", with = "choice::recovery")]
    pub recovery: Backend,
    /// Stateless workers; 0 = one per core.
    pub workers: usize,
    /// Most proofs between submission and verdict; beyond it, OVERLOADED.
    pub capacity: usize,
    /// Proofs per batch (LocalLedger: per block).
    pub batch_size: usize,
    /// A partial batch is closed this long after its first proof.
    pub flush_after_ms: u64,
    /// Closed batches waiting to be committed.
    pub batch_queue: usize,
    pub pin_workers: bool,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            recovery: Backend::default(),
            workers: 0,
            capacity: 1024,
            batch_size: 100,
            flush_after_ms: 20,
            batch_queue: 64,
            pin_workers: true,
        }
    }
}

/// Fixed-window rate limits. `0` switches a limit off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub window_ms: u64,
    /// Requests per window per client IP (a `POST /proofs` costs one per proof).
    pub per_ip: u64,
    /// Proofs per window per account (any letter case).
    pub per_account: u64,
    /// Most keys the in-memory limiter tracks per window (bounds its memory).
    pub max_keys: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            window_ms: 1000,
            per_ip: 1000,
            per_account: 10,
            max_keys: 100_000,
        }
    }
}

/// Optional Redis: shared replay pre-check and rate-limit store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`; empty = no Redis.
    pub url: String,
    /// Prefix of every key this node writes.
    pub key_prefix: String,
    /// How long an (account, nonce) claim lives.
    pub replay_ttl_ms: u64,
    /// Per-command timeout; on timeout or error the node goes on without Redis.
    pub timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: String::new(),
            key_prefix: "step:".into(),
            replay_ttl_ms: 10 * 60 * 1000,
            timeout_ms: 200,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// "text" or "json".
    pub format: String,
    /// A `tracing` filter, e.g. "info" or "step_io=debug,info".
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Config {
    /// Parses TOML text (missing keys take their defaults; unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        choice::warn_renamed_in(text);
        toml::from_str(text).map_err(|source| ConfigError::Toml { source })
    }

    /// Reads a file, then applies the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut c = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Config::from_toml(&text)?
            }
            None => Config::default(),
        };
        c.apply_env(|k| std::env::var(k).ok())?;
        c.validate()?;
        Ok(c)
    }

    /// Every key as (`section.key`, env var name).
    pub fn keys() -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok(toml::Value::Table(t)) = toml::Value::try_from(Config::default()) {
            for (section, v) in &t {
                if let toml::Value::Table(inner) = v {
                    for key in inner.keys() {
                        let path = format!("{section}.{key}");
                        let env = env_name(&path);
                        out.push((path, env));
                    }
                }
            }
        }
        out
    }

    /// Applies `STEP_<SECTION>_<KEY>` variables read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (old, new) in RENAMED {
            let (old_env, new_env) = (env_name(old), env_name(new));
            if let (Some(v), None) = (get(&old_env), get(&new_env)) {
                tracing::warn!("{old_env} is now {new_env}: rename it");
                self.set(new, &v)?;
            }
        }
        for (path, env) in Config::keys() {
            if let Some(v) = get(&env) {
                self.set(&path, &v)?;
            }
        }
        Ok(())
    }

    /// Sets one key from text, as a flag or environment variable gives it:
    /// `set("redis.url", "redis://127.0.0.1:6379")`, `set("limits.speed_gate", "false")`.
    /// The text is read according to the key's type.
    pub fn set(&mut self, path: &str, value: &str) -> Result<(), ConfigError> {
        if let Some(new) = choice::renamed(path) {
            tracing::warn!("configuration key `{path}` is now `{new}`: rename it");
            return self.set(new, value);
        }
        let unknown = || ConfigError::UnknownKey { key: path.into() };
        let mut tree = toml::Value::try_from(&*self).map_err(|_| unknown())?;
        let (section, key) = path.split_once('.').ok_or_else(unknown)?;
        let slot = tree
            .get_mut(section)
            .and_then(|s| s.get_mut(key))
            .ok_or_else(unknown)?;
        let bad = |expected| ConfigError::BadValue {
            key: path.into(),
            value: value.into(),
            expected,
        };
        let v = value.trim();
        *slot = match slot {
            toml::Value::String(_) => toml::Value::String(value.to_string()),
            toml::Value::Integer(_) => toml::Value::Integer(
                v.replace('_', "")
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| bad("non-negative integer"))?,
            ),
            toml::Value::Float(_) => toml::Value::Float(v.parse().map_err(|_| bad("number"))?),
            toml::Value::Boolean(_) => toml::Value::Boolean(match v {
                "true" | "1" | "on" | "yes" => true,
                "false" | "0" | "off" | "no" => false,
                _ => return Err(bad("boolean (true/false)")),
            }),
            _ => return Err(unknown()),
        };
        *self = tree
            .try_into()
            .map_err(|source| ConfigError::Toml { source })?;
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid("http.listen", "must be an IP:port socket address");
        }
        if self.limits.accuracy_m_max.is_nan() || self.limits.accuracy_m_max <= 0.0 {
            return invalid("limits.accuracy_m_max", "must be > 0");
        }
        if self.limits.speed_gate
            && (self.limits.speed_mps_max.is_nan() || self.limits.speed_mps_max <= 0.0)
        {
            return invalid("limits.speed_mps_max", "must be > 0");
        }
        if self.rate_limit.window_ms == 0 {
            return invalid("rate_limit.window_ms", "must be > 0");
        }
        if self.consensus.max_batches_per_block == 0 || self.consensus.batches_per_part == 0 {
            return invalid(
                "consensus",
                "max_batches_per_block and batches_per_part must be > 0",
            );
        }
        if !matches!(self.consensus.validity.as_str(), "attested" | "all") {
            return invalid("consensus.validity", "must be \"attested\" or \"all\"");
        }
        if self.consensus.attest_sample_ppm > 1_000_000 {
            return invalid("consensus.attest_sample_ppm", "must be ≤ 1,000,000");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return invalid("log.format", "must be \"text\" or \"json\"");
        }
        if self.http.batch_max_proofs == 0
            || self.http.events_buffer == 0
            || self.http.batch_concurrency == 0
            || self.http.max_connections == 0
            || self.http.header_timeout_ms == 0
        {
            return invalid(
                "http",
                "batch_max_proofs, batch_concurrency, events_buffer, max_connections and header_timeout_ms must be > 0",
            );
        }
        Ok(())
    }

    /// The recovery backend `pipeline.recovery` names.
    pub fn recovery_backend(&self) -> Backend {
        self.pipeline.recovery
    }

    pub fn finality_timeout(&self) -> Duration {
        Duration::from_millis(self.http.finality_timeout_ms)
    }
}

/// `http.listen` → `STEP_HTTP_LISTEN`.
pub fn env_name(path: &str) -> String {
    format!("STEP_{}", path.replace('.', "_").to_ascii_uppercase())
}
