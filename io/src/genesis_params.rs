//! The consensus-critical parameters of a chain, in its genesis file
//! (`[params]`), and the chain id that commits to them
//! (`docs/CONSENSUS_SPEC.md`, "Chain id"; `docs/VALIDATOR_GUIDE.md`,
//! "Genesis parameters").
//!
//! Every validator must execute with the same limits, or their state roots
//! part ([`step_consensus::StateDiverged`]). So these values come from the
//! genesis only: a node's configuration or environment may leave each key at
//! its built-in default or repeat the genesis value; any other value is
//! refused at start with [`ConfigError::ConsensusParam`], naming the key.
//! The proof-age window (`limits.age_window`, …) is not among them: it is
//! checked on admission only, against each node's clock, never on
//! re-verification or execution.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use step_consensus::block::MAX_BATCHES_PER_BLOCK;
use step_consensus::execution::{CLICKS_MAX, SUBDIVIDE_AT_CLICK};
use step_consensus::{ChainId, PublicKey};

use crate::config::{env_name, Config, ConfigError};

/// Domain separator of the genesis' canonical bytes.
pub const GENESIS_DOMAIN: &[u8] = b"STEP-GENESIS-v1\n";

/// The `[params]` table of a genesis file. A missing table or key takes the
/// built-in default, which the chain id then commits to like any other value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesisParams {
    /// GPS_MAX_ACCURACY_M: a proof's accuracy must be in (0, this].
    pub accuracy_m_max: f64,
    pub speed_gate: bool,
    /// PROOF_SPEED_LIMIT_MPS (when `speed_gate`).
    pub speed_mps_max: f64,
    pub moratorium: bool,
    /// PROOF_MORATORIUM_MS (when `moratorium`).
    pub moratorium_ms: u64,
    /// Most batches in one block; a block with more is invalid.
    pub max_batches_per_block: usize,
    /// Reward at level 1 in micro-STEP (level L: this / 2^(L−1)). Only
    /// this binary's rule (1,000,000) is accepted.
    pub reward_micro_level1: u64,
    /// The click that subdivides a triangle. Only this binary's rule (11).
    pub subdivide_at_click: u8,
    /// Clicks a level-21 triangle takes. Only this binary's rule (28).
    pub clicks_max: u8,
}

impl Default for GenesisParams {
    fn default() -> Self {
        GenesisParams::from_config(&Config::default())
    }
}

/// A rule this binary implements, with the only value it accepts.
fn fixed_rule(field: &'static str, given: u64, supported: u64) -> Result<(), ParamError> {
    if given == supported {
        Ok(())
    } else {
        Err(ParamError {
            field,
            reason: format!("is {given}; this binary implements only {supported}"),
        })
    }
}

/// A `[params]` value that no chain can run with, or that this binary does
/// not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`params.{field}` {reason}")]
pub struct ParamError {
    pub field: &'static str,
    pub reason: String,
}

impl GenesisParams {
    /// The consensus-critical values of `config`: what `step devnet` writes
    /// into a new genesis from its `--set` overrides.
    pub fn from_config(config: &Config) -> GenesisParams {
        let l = &config.limits;
        GenesisParams {
            accuracy_m_max: l.accuracy_m_max,
            speed_gate: l.speed_gate,
            speed_mps_max: l.speed_mps_max,
            moratorium: l.moratorium,
            moratorium_ms: l.moratorium_ms,
            max_batches_per_block: config.consensus.max_batches_per_block,
            reward_micro_level1: step_engine::reward::reward_micro(1),
            subdivide_at_click: SUBDIVIDE_AT_CLICK,
            clicks_max: CLICKS_MAX,
        }
    }

    /// Values no chain can run with, and rules this binary does not
    /// implement, are refused.
    pub fn check(&self) -> Result<(), ParamError> {
        let bad = |field, reason: &str| {
            Err(ParamError {
                field,
                reason: reason.into(),
            })
        };
        if !(self.accuracy_m_max.is_finite() && self.accuracy_m_max > 0.0) {
            return bad("accuracy_m_max", "must be a number > 0");
        }
        if self.speed_gate && !(self.speed_mps_max.is_finite() && self.speed_mps_max > 0.0) {
            return bad("speed_mps_max", "must be a number > 0");
        }
        if self.max_batches_per_block == 0 || self.max_batches_per_block > MAX_BATCHES_PER_BLOCK {
            return bad(
                "max_batches_per_block",
                &format!("must be in 1..={MAX_BATCHES_PER_BLOCK}"),
            );
        }
        fixed_rule(
            "reward_micro_level1",
            self.reward_micro_level1,
            step_engine::reward::reward_micro(1),
        )?;
        fixed_rule(
            "subdivide_at_click",
            u64::from(self.subdivide_at_click),
            u64::from(SUBDIVIDE_AT_CLICK),
        )?;
        fixed_rule(
            "clicks_max",
            u64::from(self.clicks_max),
            u64::from(CLICKS_MAX),
        )
    }

    /// `config` with these values, or the first consensus-critical key it
    /// sets to something else (neither the built-in default nor this
    /// value): [`ConfigError::ConsensusParam`].
    pub fn apply(&self, config: &Config) -> Result<Config, ConfigError> {
        let d = Config::default();
        let (c, l) = (&config.limits, &d.limits);
        conflict(
            "limits.accuracy_m_max",
            c.accuracy_m_max,
            l.accuracy_m_max,
            self.accuracy_m_max,
        )?;
        conflict(
            "limits.speed_gate",
            c.speed_gate,
            l.speed_gate,
            self.speed_gate,
        )?;
        conflict(
            "limits.speed_mps_max",
            c.speed_mps_max,
            l.speed_mps_max,
            self.speed_mps_max,
        )?;
        conflict(
            "limits.moratorium",
            c.moratorium,
            l.moratorium,
            self.moratorium,
        )?;
        conflict(
            "limits.moratorium_ms",
            c.moratorium_ms,
            l.moratorium_ms,
            self.moratorium_ms,
        )?;
        conflict(
            "consensus.max_batches_per_block",
            config.consensus.max_batches_per_block,
            d.consensus.max_batches_per_block,
            self.max_batches_per_block,
        )?;
        let mut out = config.clone();
        out.limits.accuracy_m_max = self.accuracy_m_max;
        out.limits.speed_gate = self.speed_gate;
        out.limits.speed_mps_max = self.speed_mps_max;
        out.limits.moratorium = self.moratorium;
        out.limits.moratorium_ms = self.moratorium_ms;
        out.consensus.max_batches_per_block = self.max_batches_per_block;
        Ok(out)
    }

    /// The canonical bytes of these values (fixed order, little-endian,
    /// floats as IEEE-754 bits).
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.accuracy_m_max.to_bits().to_le_bytes());
        out.push(u8::from(self.speed_gate));
        out.extend_from_slice(&self.speed_mps_max.to_bits().to_le_bytes());
        out.push(u8::from(self.moratorium));
        out.extend_from_slice(&self.moratorium_ms.to_le_bytes());
        out.extend_from_slice(&(self.max_batches_per_block as u64).to_le_bytes());
        out.extend_from_slice(&self.reward_micro_level1.to_le_bytes());
        out.push(self.subdivide_at_click);
        out.push(self.clicks_max);
    }
}

/// Refuses a configured value that is neither the default nor the genesis'.
fn conflict<T: PartialEq + std::fmt::Display>(
    key: &'static str,
    configured: T,
    default: T,
    genesis: T,
) -> Result<(), ConfigError> {
    if configured == default || configured == genesis {
        return Ok(());
    }
    Err(ConfigError::ConsensusParam {
        key,
        env: env_name(key),
        configured: configured.to_string(),
        genesis: genesis.to_string(),
    })
}

/// The genesis' canonical bytes: `GENESIS_DOMAIN ‖ u32_le(len) ‖ name ‖
/// u32_le(n) ‖ (public key ‖ u64_le power)…` (validators sorted by public
/// key) `‖ params`. Names, `p2p` and `http` addresses are not in it: they
/// are operational and may change without forking the chain.
pub fn canonical_bytes(
    name: &str,
    validators: &[(PublicKey, u64)],
    params: &GenesisParams,
) -> Vec<u8> {
    let mut vs: Vec<_> = validators.to_vec();
    vs.sort_by_key(|(pk, _)| pk.0);
    let mut out = GENESIS_DOMAIN.to_vec();
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(vs.len() as u32).to_le_bytes());
    for (pk, power) in &vs {
        out.extend_from_slice(&pk.0);
        out.extend_from_slice(&power.to_le_bytes());
    }
    params.write(&mut out);
    out
}

/// SHA-256 of [`canonical_bytes`]: what every vote and proposal signs over.
pub fn chain_of(canonical: &[u8]) -> ChainId {
    ChainId(Sha256::digest(canonical).into())
}

/// The chain id operators see: `<name>-<first 8 bytes of the chain, hex>`.
pub fn chain_id_text(name: &str, chain: &ChainId) -> String {
    format!("{name}-{}", &chain.to_string()[..16])
}

#[cfg(test)]
#[path = "genesis_params_tests.rs"]
mod tests;
