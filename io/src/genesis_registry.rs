//! The genesis' validator registry (issue 15): the `[registry]` table (the
//! parameters) and, per `[[validators]]` entry, `operator` (the Ethereum
//! address of its cold key), `stake_micro` and `p2p_id`. Without a
//! `[registry]` table the chain has none (its set is the entries' `power`,
//! as before) and its chain id is unchanged; with one, every entry must
//! name its operator, stake and P2P id, its `power` must be its stake in
//! whole STEP, and the chain id commits to the registry's root.

use serde::{Deserialize, Serialize};
use std::path::Path;
use step_consensus::registry::{
    GenesisEntry, Operator, Registry, RegistryParams, SlashFractions, MICRO,
};
use step_consensus::PublicKey;

use crate::genesis::{Genesis, GenesisError};

/// The `[registry]` table. Times are in seconds of block time; a missing
/// key takes the plan's value ([`RegistryParams::default`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesisRegistry {
    pub min_stake_micro: u64,
    pub unbonding_s: u64,
    pub epoch_length_proofs: u64,
    pub max_validators: u32,
    /// `[registry.slash]`.
    pub slash: SlashFractions,
    pub jail_s: u64,
    pub offline_window_s: u64,
    pub reward_per_proof_micro: u64,
    /// Receives slashed stake (0x + 40 hex).
    pub slash_destination: String,
    /// Block time of height 0 (ms since the Unix epoch): the offline
    /// window of the genesis validators starts here.
    pub genesis_time_ms: u64,
}

impl Default for GenesisRegistry {
    fn default() -> Self {
        let p = RegistryParams::default();
        GenesisRegistry {
            min_stake_micro: p.min_stake_micro,
            unbonding_s: p.unbonding_ms / 1_000,
            epoch_length_proofs: p.epoch_length_proofs,
            max_validators: p.max_validators,
            slash: p.slash,
            jail_s: p.jail_ms / 1_000,
            offline_window_s: p.offline_window_ms / 1_000,
            reward_per_proof_micro: p.reward_per_proof_micro,
            slash_destination: format!("0x{}", hex::encode(p.slash_destination.0)),
            genesis_time_ms: 0,
        }
    }
}

fn operator(s: &str) -> Option<Operator> {
    crate::genesis::unhex::<20>(s).map(Operator)
}

impl GenesisRegistry {
    fn params(&self, path: &Path) -> Result<RegistryParams, GenesisError> {
        let bad = |field: &str, expected| GenesisError::BadField {
            path: path.to_owned(),
            field: format!("registry.{field}"),
            expected,
        };
        if self.epoch_length_proofs == 0 {
            return Err(bad("epoch_length_proofs", "> 0"));
        }
        if self.max_validators == 0 {
            return Err(bad("max_validators", "> 0"));
        }
        for (field, ppm) in [
            ("slash.double_sign_ppm", self.slash.double_sign_ppm),
            (
                "slash.invalid_attestation_ppm",
                self.slash.invalid_attestation_ppm,
            ),
            ("slash.offline_ppm", self.slash.offline_ppm),
            ("slash.collusion_ppm", self.slash.collusion_ppm),
        ] {
            if ppm > 1_000_000 {
                return Err(bad(field, "at most 1000000 (all of the stake)"));
            }
        }
        let ms = |field, s: u64| {
            s.checked_mul(1_000)
                .ok_or_else(|| bad(field, "a time that fits"))
        };
        Ok(RegistryParams {
            min_stake_micro: self.min_stake_micro,
            unbonding_ms: ms("unbonding_s", self.unbonding_s)?,
            epoch_length_proofs: self.epoch_length_proofs,
            max_validators: self.max_validators,
            slash: self.slash,
            jail_ms: ms("jail_s", self.jail_s)?,
            offline_window_ms: ms("offline_window_s", self.offline_window_s)?,
            reward_per_proof_micro: self.reward_per_proof_micro,
            slash_destination: operator(&self.slash_destination)
                .ok_or_else(|| bad("slash_destination", "0x and 40 hex digits"))?,
        })
    }
}

impl Genesis {
    /// The registry at height 0, or `None` for a genesis without a
    /// `[registry]` table. `path` names the file in errors.
    pub fn registry(&self, path: &Path) -> Result<Option<Registry>, GenesisError> {
        let Some(table) = &self.registry else {
            return Ok(None);
        };
        let params = table.params(path)?;
        let mut set = Vec::with_capacity(self.validators.len());
        for (i, v) in self.validators.iter().enumerate() {
            let bad = |field: &str, expected| GenesisError::BadField {
                path: path.to_owned(),
                field: format!("validators[{i}].{field}"),
                expected,
            };
            let consensus_key = PublicKey(
                crate::genesis::unhex(&v.public_key)
                    .ok_or_else(|| bad("public_key", "64 hex digits"))?,
            );
            let operator = operator(&v.operator)
                .ok_or_else(|| bad("operator", "0x and 40 hex digits (the operator's address)"))?;
            if v.power != v.stake_micro / MICRO {
                return Err(bad(
                    "power",
                    "the stake in whole STEP (stake_micro / 1000000) under a [registry]",
                ));
            }
            set.push(GenesisEntry {
                operator,
                consensus_key,
                p2p_id: v.p2p_id.clone(),
                stake_micro: v.stake_micro,
            });
        }
        Registry::genesis(params, &set, table.genesis_time_ms)
            .map(Some)
            .map_err(|source| GenesisError::Registry {
                path: path.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{generate_key, public_key, GenesisValidator};

    const PEER: &str = "12D3KooWLRPJAA5o6Z6iNqNZWtd1oUwRPLBzpgb4xPMaeBVGWkS3";

    fn genesis(stake_micro: u64, power: u64) -> Genesis {
        let validators = (0..4u8)
            .map(|i| {
                let mut v = GenesisValidator::new(
                    &format!("v{i}"),
                    &public_key(&generate_key().unwrap()),
                    power,
                    "",
                    "",
                );
                v.operator = format!("0x{}", hex::encode([i + 1; 20]));
                v.stake_micro = stake_micro;
                v.p2p_id = PEER.into();
                v
            })
            .collect();
        Genesis {
            chain_id: "reg".into(),
            initial_state: String::new(),
            initial_state_root: String::new(),
            validators,
            params: Default::default(),
            registry: Some(GenesisRegistry::default()),
        }
    }

    #[test]
    fn the_genesis_registry_holds_the_set_and_the_chain_commits_to_it() {
        let p = Path::new("genesis.toml");
        let g = genesis(100_000 * MICRO, 100_000);
        let r = g.registry(p).unwrap().unwrap();
        assert_eq!(r.current_set().set.len(), 4);
        assert_eq!(r.params.min_stake_micro, 100_000 * MICRO);
        assert_eq!(r.params.unbonding_ms, 7 * 24 * 3_600_000);
        // The TOML round trip keeps it.
        let back: Genesis = toml::from_str(&toml::to_string(&g).unwrap()).unwrap();
        assert_eq!(back, g);
        let mut other = g.clone();
        other.validators[0].stake_micro += MICRO;
        other.validators[0].power += 1;
        assert_ne!(g.chain(p).unwrap(), other.chain(p).unwrap());
        let mut none = g.clone();
        none.registry = None;
        assert!(none.registry(p).unwrap().is_none());
        assert_ne!(none.chain(p).unwrap(), g.chain(p).unwrap());
    }

    #[test]
    fn a_bad_genesis_registry_is_refused_by_name() {
        let p = Path::new("genesis.toml");
        let e = genesis(100_000 * MICRO - 1, 99_999)
            .registry(p)
            .unwrap_err();
        assert!(matches!(e, GenesisError::Registry { .. }), "{e}");
        assert!(e.to_string().contains("below the minimum"), "{e}");
        let e = genesis(100_000 * MICRO, 1).registry(p).unwrap_err();
        assert!(e.to_string().contains("validators[0].power"), "{e}");
        let mut g = genesis(100_000 * MICRO, 100_000);
        g.validators[2].operator = "nope".into();
        let e = g.registry(p).unwrap_err();
        assert!(e.to_string().contains("validators[2].operator"), "{e}");
        let mut g = genesis(100_000 * MICRO, 100_000);
        g.registry.as_mut().unwrap().slash.offline_ppm = 1_000_001;
        let e = g.registry(p).unwrap_err();
        assert!(e.to_string().contains("registry.slash.offline_ppm"), "{e}");
    }
}
