//! Validator keys and the genesis (validator-set) file, as `step keys
//! generate`, `step devnet` and `step node` read and write them. Formats:
//! `docs/VALIDATOR_GUIDE.md`, "Keys and genesis".
//!
//! * Key file (TOML, mode 0600): `secret_key = "<64 hex>"` — an ed25519
//!   consensus key. The libp2p identity key is a second file
//!   ([`crate::keyfile`]).
//! * Genesis file (TOML): `chain_id`, then one `[[validators]]` table per
//!   validator with `name`, `public_key` (64 hex), `address` (40 hex, derived
//!   from the key and checked), `power`, `p2p` (multiaddr, may be empty) and
//!   `http` (informational, may be empty).
//! * Optionally `initial_state` (a file `step migrate import` wrote, relative
//!   to the genesis file) and `initial_state_root` (its root at height 0, 64
//!   hex): the chain starts from that state; a validator whose file gives
//!   another root refuses to start.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use step_consensus::execution::ChainState;
use step_consensus::{
    ChainId, InitialStateFile, PrivateKey, PublicKey, Validator, ValidatorAddress, ValidatorSet,
};

pub use crate::genesis_params::GenesisParams;

/// Why a key or genesis file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: `{field}` must be {expected}")]
    BadField {
        path: PathBuf,
        field: String,
        expected: &'static str,
    },
    #[error("{path}: validator {name:?} has address {stated}, but its key gives {derived}")]
    AddressMismatch {
        path: PathBuf,
        name: String,
        stated: String,
        derived: String,
    },
    #[error("{path}: no validators")]
    Empty { path: PathBuf },
    #[error("{path}: validator {address} appears twice")]
    Duplicate { path: PathBuf, address: String },
    #[error("{path} may be read by group or others (mode {mode:o}); a key file must be private: run `chmod 600 {path}`")]
    KeyReadableByOthers { path: PathBuf, mode: u32 },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("{path}: `initial_state` and `initial_state_root` go together")]
    InitialStateHalf { path: PathBuf },
    #[error("initial state {path}: {source}")]
    InitialState {
        path: PathBuf,
        source: step_consensus::InitialStateError,
    },
    #[error("initial state {path} has root {derived}, but the genesis names {stated}")]
    InitialRootMismatch {
        path: PathBuf,
        stated: String,
        derived: String,
    },
    #[error("{path}: registry: {source}")]
    Registry {
        path: PathBuf,
        source: step_consensus::registry::GenesisSetError,
    },
    #[error("{path}: {source}")]
    Params {
        path: PathBuf,
        source: crate::genesis_params::ParamError,
    },
}

/// A validator's secret consensus key on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub secret_key: String,
}

/// A fresh key from the operating system's random source.
pub fn generate_key() -> Result<PrivateKey, GenesisError> {
    Ok(PrivateKey::from(crate::keyfile::random_32()?))
}

/// The public key of `key`.
pub fn public_key(key: &PrivateKey) -> PublicKey {
    PublicKey(key.verification_key().to_bytes())
}

/// Writes `key` to a new file `path` (mode 0600; never overwrites).
pub fn save_key(path: &Path, key: &PrivateKey) -> Result<(), GenesisError> {
    crate::keyfile::write_secret(
        path,
        &format!(
            "# STEP validator consensus key (ed25519). Keep it secret; back it up.\nsecret_key = \"{}\"\n",
            crate::ledger::hex(key.as_bytes())
        ),
    )
}

fn read(path: &Path) -> Result<String, GenesisError> {
    std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
        path: path.to_owned(),
        source,
    })
}

/// [`crate::ledger::unhex`], allowing a `0x` prefix.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    crate::ledger::unhex(s.strip_prefix("0x").unwrap_or(s))
}

/// Reads a key file.
pub fn load_key(path: &Path) -> Result<PrivateKey, GenesisError> {
    let kf: KeyFile = toml::from_str(&crate::keyfile::read_secret(path)?).map_err(|source| {
        GenesisError::Toml {
            path: path.to_owned(),
            source,
        }
    })?;
    let b: [u8; 32] = unhex(&kf.secret_key).ok_or_else(|| GenesisError::BadField {
        path: path.to_owned(),
        field: "secret_key".into(),
        expected: "64 hex digits",
    })?;
    Ok(PrivateKey::from(b))
}

/// One validator of the genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    pub name: String,
    pub public_key: String,
    pub address: String,
    pub power: u64,
    #[serde(default)]
    pub p2p: String,
    #[serde(default)]
    pub http: String,
    /// Under a `[registry]`: the operator's Ethereum address (0x + 40 hex).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operator: String,
    /// Under a `[registry]`: the bonded stake in micro-STEP.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stake_micro: u64,
    /// Under a `[registry]`: the node's libp2p peer id (`step keys`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub p2p_id: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl GenesisValidator {
    pub fn new(name: &str, key: &PublicKey, power: u64, p2p: &str, http: &str) -> Self {
        GenesisValidator {
            name: name.into(),
            public_key: crate::ledger::hex(&key.0),
            address: crate::ledger::hex(&ValidatorAddress::from_public_key(key).0),
            power,
            p2p: p2p.into(),
            http: http.into(),
            operator: String::new(),
            stake_micro: 0,
            p2p_id: String::new(),
        }
    }
}

/// The genesis file: the chain's name, its validator set and its
/// consensus-critical parameters (`[params]`, [`GenesisParams`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: String,
    /// The chain's state at height 0 (`step migrate import`), relative to
    /// the genesis file; empty: the chain starts empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initial_state: String,
    /// That state's root at height 0 (64 hex).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initial_state_root: String,
    pub validators: Vec<GenesisValidator>,
    #[serde(default)]
    pub params: GenesisParams,
    /// The validator registry's parameters; `None`: no registry
    /// ([`crate::genesis_registry`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<crate::genesis_registry::GenesisRegistry>,
}

impl Genesis {
    /// Reads and checks a genesis file ([`Genesis::validator_set`] must succeed).
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let g: Genesis = toml::from_str(&read(path)?).map_err(|source| GenesisError::Toml {
            path: path.to_owned(),
            source,
        })?;
        g.validator_set(path)?;
        g.registry(path)?;
        g.params.check().map_err(|source| GenesisError::Params {
            path: path.to_owned(),
            source,
        })?;
        Ok(g)
    }

    /// The chain every vote and proposal signs over: SHA-256 of the
    /// genesis' canonical bytes ([`crate::genesis_params::canonical_bytes`]).
    /// `path` names the file in errors.
    pub fn chain(&self, path: &Path) -> Result<ChainId, GenesisError> {
        let vs: Vec<(PublicKey, u64)> = self
            .validator_set(path)?
            .validators()
            .iter()
            .map(|v| (v.public_key, v.stake))
            .collect();
        let mut bytes = crate::genesis_params::canonical_bytes(&self.chain_id, &vs, &self.params);
        // A registry commits by its root; a genesis without one keeps the
        // chain id it had before registries existed.
        if let Some(registry) = self.registry(path)? {
            bytes.extend_from_slice(b"registry");
            bytes.extend_from_slice(&registry.root());
        }
        Ok(crate::genesis_params::chain_of(&bytes))
    }

    pub fn save(&self, path: &Path) -> Result<(), GenesisError> {
        let text = toml::to_string_pretty(self).map_err(|e| GenesisError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(path, text).map_err(|source| GenesisError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// The validator set; `path` names the file in errors.
    pub fn validator_set(&self, path: &Path) -> Result<ValidatorSet, GenesisError> {
        if self.validators.is_empty() {
            return Err(GenesisError::Empty {
                path: path.to_owned(),
            });
        }
        let mut out = Vec::with_capacity(self.validators.len());
        let mut seen = std::collections::HashSet::new();
        for (i, v) in self.validators.iter().enumerate() {
            let bad = |field: &str, expected| GenesisError::BadField {
                path: path.to_owned(),
                field: format!("validators[{i}].{field}"),
                expected,
            };
            let pk =
                PublicKey(unhex(&v.public_key).ok_or_else(|| bad("public_key", "64 hex digits"))?);
            if ed25519_key_is_invalid(&pk) {
                return Err(bad("public_key", "a valid ed25519 public key"));
            }
            if v.power == 0 {
                return Err(bad("power", "> 0"));
            }
            let derived = ValidatorAddress::from_public_key(&pk);
            let stated: [u8; 20] =
                unhex(&v.address).ok_or_else(|| bad("address", "40 hex digits"))?;
            if stated != derived.0 {
                return Err(GenesisError::AddressMismatch {
                    path: path.to_owned(),
                    name: v.name.clone(),
                    stated: v.address.clone(),
                    derived: crate::ledger::hex(&derived.0),
                });
            }
            if !seen.insert(derived) {
                return Err(GenesisError::Duplicate {
                    path: path.to_owned(),
                    address: v.address.clone(),
                });
            }
            out.push(Validator::new(pk, v.power));
        }
        Ok(ValidatorSet::new(out))
    }

    /// The chain's initial state, checked against `initial_state_root`;
    /// `None` when the genesis names none. `path` is the genesis file's.
    pub fn initial_state(&self, path: &Path) -> Result<Option<ChainState>, GenesisError> {
        match (
            self.initial_state.is_empty(),
            self.initial_state_root.is_empty(),
        ) {
            (true, true) => return Ok(None),
            (false, false) => {}
            _ => {
                return Err(GenesisError::InitialStateHalf {
                    path: path.to_owned(),
                })
            }
        }
        let file =
            crate::validator::resolve(path.parent().unwrap_or(Path::new(".")), &self.initial_state);
        let bytes = std::fs::read(&file).map_err(|source| GenesisError::Read {
            path: file.clone(),
            source,
        })?;
        let ierr = |source| GenesisError::InitialState {
            path: file.clone(),
            source,
        };
        let state = ChainState::from_initial(&InitialStateFile::from_json(&bytes).map_err(ierr)?)
            .map_err(ierr)?;
        let derived = crate::ledger::hex(&state.root);
        if !derived.eq_ignore_ascii_case(self.initial_state_root.trim_start_matches("0x")) {
            return Err(GenesisError::InitialRootMismatch {
                path: file,
                stated: self.initial_state_root.clone(),
                derived,
            });
        }
        Ok(Some(state))
    }

    /// Every other validator's non-empty `p2p` address.
    pub fn peers_of(&self, me: &ValidatorAddress) -> Vec<String> {
        let me = crate::ledger::hex(&me.0);
        self.validators
            .iter()
            .filter(|v| !v.address.eq_ignore_ascii_case(&me) && !v.p2p.is_empty())
            .map(|v| v.p2p.clone())
            .collect()
    }
}

fn ed25519_key_is_invalid(pk: &PublicKey) -> bool {
    ed25519_consensus::VerificationKey::try_from(pk.0).is_err()
}
