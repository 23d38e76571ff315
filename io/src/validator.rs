//! Opening the ledger a configuration names: what `step node --config FILE`
//! runs before it serves the HTTP API.
//!
//! `node.ledger = "consensus"` (the default) reads the consensus key, the
//! P2P key and the genesis files, checks that the key is one of the genesis
//! validators, and starts a
//! [`ConsensusLedger`]; `"local"` starts a [`LocalLedger`] (one process, not
//! fault tolerant).

use crate::config::Config;
use crate::genesis::{load_key, public_key, Genesis, GenesisError};
use crate::ledger::{pipeline_config, ConsensusLedger, ConsensusLedgerError, Ledger, LocalLedger};
use crate::metrics::Metrics;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use step_consensus::attest::ValidityMode;
use step_consensus::{AppConfig, ChainId, NodeSettings, Timeouts, ValidatorAddress};
use step_engine::pipeline::Clock;

/// Why a validator could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Genesis {
        #[from]
        source: GenesisError,
    },
    #[error(
        "the key in {key_file} (validator {address}) is not in the validator set of {genesis_file}"
    )]
    NotAValidator {
        key_file: PathBuf,
        genesis_file: PathBuf,
        address: String,
    },
    /// A home made before validators had a P2P key of their own.
    #[error(
        "no P2P key at {p2p_key_file}: this home has only a consensus key ({key_file}), from before the P2P identity became a key of its own. Create one with `step keys p2p --out {p2p_key_file}` (mode 0600) and start again; the node's libp2p peer id changes"
    )]
    NoP2pKey {
        key_file: PathBuf,
        p2p_key_file: PathBuf,
    },
    #[error("{p2p_key_file}: {source}")]
    P2pKey {
        p2p_key_file: PathBuf,
        source: step_consensus::ConsensusNodeError,
    },
    /// The genesis' registry names another P2P id for this validator.
    #[error(
        "the P2P key in {p2p_key_file} has peer id {derived}, but {genesis_file} names {named} for this validator"
    )]
    P2pIdMismatch {
        p2p_key_file: PathBuf,
        genesis_file: PathBuf,
        named: String,
        derived: String,
    },
    #[error("cannot create the data directory {path}: {source}")]
    Home {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Consensus {
        #[from]
        source: ConsensusLedgerError,
    },
    /// The configuration sets a consensus-critical key the genesis sets
    /// otherwise ([`crate::genesis_params`]).
    #[error("{genesis_file}: {source}")]
    Params {
        genesis_file: PathBuf,
        source: crate::config::ConfigError,
    },
}

/// `path` as given if absolute, else relative to `base` (the configuration
/// file's directory).
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// The consensus application settings from the configuration, for the
/// chain of the genesis ([`Genesis::chain`]).
pub fn app_config(config: &Config, verifier: step_engine::Verifier, chain: ChainId) -> AppConfig {
    let c = &config.consensus;
    AppConfig {
        chain,
        verifier,
        timeouts: Timeouts {
            propose_ms: c.propose_timeout_ms,
            prevote_ms: c.prevote_timeout_ms,
            precommit_ms: c.precommit_timeout_ms,
            rebroadcast_ms: c.rebroadcast_ms,
        },
        max_batches_per_block: c.max_batches_per_block,
        batches_per_part: c.batches_per_part,
        propose_wait: Duration::from_millis(c.propose_wait_ms),
        store_cache_bytes: usize::try_from(c.store_cache_mb.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        state_cache_bytes: usize::try_from(c.state_cache_mb.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        retain_heights: c.retain_heights,
        max_idle_block_interval: Duration::from_millis(c.max_idle_block_interval_ms),
        // `Config::validate` admits "attested" and "all" only.
        validity: if c.validity == "all" {
            ValidityMode::All
        } else {
            ValidityMode::Attested
        },
        attest_sample_ppm: c.attest_sample_ppm,
        attest_fallback: Duration::from_millis(c.attest_fallback_ms),
    }
}

/// Starts the ledger `config` names. `base` resolves relative paths.
pub async fn open_ledger(
    config: &Config,
    base: &Path,
    clock: Clock,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn Ledger>, OpenError> {
    open_ledger_with(config, base, clock, metrics, |_| {}).await
}

/// How a byzantine test validator misbehaves (`step node --byzantine`).
#[cfg(feature = "byzantine")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// A second, conflicting signed vote for every vote (malachite's proxy).
    Equivocate,
    /// Forged batches whose proofs' signatures do not verify.
    BadSignatures,
    /// Forged batches of correctly signed proofs outside their triangle.
    GpsSpoof,
}

/// [`open_ledger`] for a consensus validator that misbehaves as `b` says.
#[cfg(feature = "byzantine")]
pub async fn open_byzantine_ledger(
    config: &Config,
    base: &Path,
    clock: Clock,
    metrics: Arc<Metrics>,
    b: Byzantine,
) -> Result<Arc<dyn Ledger>, OpenError> {
    use step_consensus::{BatchFault, ByzantineConfig, Trigger};
    tracing::warn!(behaviour = ?b, "BYZANTINE validator: misbehaving on purpose (test build)");
    open_ledger_with(config, base, clock, metrics, move |s| match b {
        Byzantine::Equivocate => {
            s.byzantine = Some(ByzantineConfig {
                equivocate_votes: Trigger::Always,
                ..ByzantineConfig::default()
            });
        }
        Byzantine::BadSignatures => s.forge_batches = Some(BatchFault::BadSignatures),
        Byzantine::GpsSpoof => s.forge_batches = Some(BatchFault::OutsideTriangle),
    })
    .await
}

async fn open_ledger_with(
    config: &Config,
    base: &Path,
    clock: Clock,
    metrics: Arc<Metrics>,
    tweak: impl FnOnce(&mut NodeSettings),
) -> Result<Arc<dyn Ledger>, OpenError> {
    if config.node.ledger == crate::config::LedgerKind::Local {
        tracing::warn!("node.ledger = \"local\": one process, in memory, NOT fault tolerant");
        return Ok(Arc::new(LocalLedger::start(config, clock, metrics)));
    }
    let n = &config.node;
    let home = resolve(base, &n.home);
    std::fs::create_dir_all(&home).map_err(|source| OpenError::Home {
        path: home.clone(),
        source,
    })?;
    let key_file = if n.key_file.is_empty() {
        home.join("validator_key.toml")
    } else {
        resolve(base, &n.key_file)
    };
    let genesis_file = if n.genesis_file.is_empty() {
        home.join("genesis.toml")
    } else {
        resolve(base, &n.genesis_file)
    };
    let p2p_key_file = if n.p2p_key_file.is_empty() {
        home.join(crate::keyfile::P2P_KEY_FILE)
    } else {
        resolve(base, &n.p2p_key_file)
    };
    let key = load_key(&key_file)?;
    if !p2p_key_file.exists() {
        return Err(OpenError::NoP2pKey {
            key_file,
            p2p_key_file,
        });
    }
    let p2p_key = crate::keyfile::load_p2p_key(&p2p_key_file)?;
    let genesis = Genesis::load(&genesis_file)?;
    let validators = genesis.validator_set(&genesis_file)?;
    // Consensus-critical parameters come from the genesis only.
    let config = &genesis
        .params
        .apply(config)
        .map_err(|source| OpenError::Params {
            genesis_file: genesis_file.clone(),
            source,
        })?;
    let chain = genesis.chain(&genesis_file)?;
    let me = ValidatorAddress::from_public_key(&public_key(&key));
    if !validators.validators().iter().any(|v| v.address == me) {
        return Err(OpenError::NotAValidator {
            key_file,
            genesis_file,
            address: crate::ledger::hex(&me.0),
        });
    }
    // Under a registry the genesis names each validator's P2P id: this
    // node's P2P key must be the one it names.
    if let Some(registry) = genesis.registry(&genesis_file)? {
        let mine = p2p_key.peer_id().map_err(|source| OpenError::P2pKey {
            p2p_key_file: p2p_key_file.clone(),
            source,
        })?;
        let pk = public_key(&key);
        let named = registry
            .validators
            .values()
            .find(|v| v.consensus_key == pk)
            .map(|v| v.p2p_id.clone());
        if let Some(named) = named.filter(|n| *n != mine) {
            return Err(OpenError::P2pIdMismatch {
                p2p_key_file,
                genesis_file,
                named,
                derived: mine,
            });
        }
        tracing::info!(
            validators = registry.validators.len(),
            epoch_length_proofs = registry.params.epoch_length_proofs,
            min_stake_micro = registry.params.min_stake_micro,
            "genesis registry"
        );
    }
    let peers = if n.peers.trim().is_empty() {
        genesis.peers_of(&me)
    } else {
        n.peers
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let moniker = if n.moniker.is_empty() {
        me.to_string()
    } else {
        n.moniker.clone()
    };
    let pc = pipeline_config(config, clock);
    let initial = genesis.initial_state(&genesis_file)?;
    let app = app_config(config, pc.verifier, chain);
    let mut settings = NodeSettings::new(
        moniker,
        home,
        n.p2p_listen.clone(),
        peers,
        key,
        validators,
        app,
    )
    .with_p2p_key(p2p_key);
    if let Some(state) = initial {
        if let Some(rows) = state.memory() {
            tracing::info!(
                file = %genesis.initial_state,
                root = %genesis.initial_state_root,
                accounts = rows.accounts.len(),
                triangles = rows.triangles.len(),
                nonces = rows.nonces.len(),
                "starting from the genesis' initial state"
            );
        }
        settings.initial = Some(Arc::new(state));
    }
    tweak(&mut settings);
    tracing::info!(
        validator = %me,
        chain_id = %crate::genesis_params::chain_id_text(&genesis.chain_id, &chain),
        moratorium_ms = config.limits.moratorium.then_some(config.limits.moratorium_ms),
        validators = genesis.validators.len(),
        p2p = %n.p2p_listen,
        "starting consensus"
    );
    Ok(Arc::new(
        ConsensusLedger::start(config, settings, pc, metrics).await?,
    ))
}
