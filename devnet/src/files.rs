//! The devnet's files: a key per validator and one genesis on the first
//! run (checked on later ones), and every run one configuration per
//! validator (`node-<i>/config.toml`), so that ports and `--set` overrides
//! may change between runs while keys, genesis, WAL and store are kept.

use crate::{DevnetError, Options, Validator, MAX_VALIDATORS};
use std::path::{Path, PathBuf};
use step_consensus::execution::ChainState;
use step_consensus::InitialStateFile;
use step_io::genesis::{
    generate_key, load_key, public_key, save_key, Genesis, GenesisParams, GenesisValidator,
};
use step_io::keyfile::{generate_p2p_key, save_p2p_key, P2P_KEY_FILE};
use step_io::Config;

/// Applies `KEY=VALUE` overrides in order.
pub fn apply_sets(config: &mut Config, sets: &[String]) -> Result<(), DevnetError> {
    for kv in sets {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| DevnetError::BadSet { given: kv.clone() })?;
        config.set(k.trim(), v)?;
    }
    Ok(())
}

/// Checks the options, then writes (or checks) the genesis and writes every
/// configuration. The validators come back with `pid` 0.
pub fn prepare(o: &Options) -> Result<(Genesis, Vec<Validator>), DevnetError> {
    if o.validators == 0 || o.validators > MAX_VALIDATORS {
        return Err(DevnetError::ValidatorCount {
            given: o.validators,
            max: MAX_VALIDATORS,
        });
    }
    if u32::from(o.base_port) + 100 + o.validators as u32 > 65_535 {
        return Err(DevnetError::BasePortTooHigh {
            base_port: o.base_port,
            validators: o.validators,
        });
    }
    create_dir(&o.data_dir)?;
    let g = genesis(o)?;
    let validators = (0..o.validators)
        .map(|i| write_config(o, &g, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((g, validators))
}

/// The last `n` lines of a log (empty if unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn create_dir(dir: &Path) -> Result<(), DevnetError> {
    std::fs::create_dir_all(dir).map_err(|source| DevnetError::Io {
        what: "creating",
        path: dir.to_owned(),
        source,
    })
}

fn p2p_addr(port: u16) -> String {
    format!("/ip4/127.0.0.1/tcp/{port}")
}

fn node_dir(data: &Path, i: usize) -> PathBuf {
    data.join(format!("node-{i}"))
}

/// Validator i's (HTTP, P2P) ports; `prepare` checked that they fit.
fn ports(base: u16, i: usize) -> (u16, u16) {
    let i = i as u16; // i < MAX_VALIDATORS
    (base + i, base + 100 + i)
}

/// Creates keys and the genesis on the first run; checks them on later ones.
fn genesis(o: &Options) -> Result<Genesis, DevnetError> {
    let path = o.data_dir.join("genesis.toml");
    if path.exists() {
        let g = Genesis::load(&path)?;
        if g.validators.len() != o.validators {
            return Err(DevnetError::GenesisMismatch {
                data_dir: o.data_dir.clone(),
                holds: g.validators.len(),
                asked: o.validators,
            });
        }
        if let Some(given) = &o.initial_state {
            let (_, root) = initial_state(given)?;
            if root != g.initial_state_root {
                return Err(DevnetError::InitialStateMismatch {
                    data_dir: o.data_dir.clone(),
                    given: given.clone(),
                });
            }
        }
        return Ok(g);
    }
    let mut validators = Vec::with_capacity(o.validators);
    for i in 0..o.validators {
        let dir = node_dir(&o.data_dir, i);
        create_dir(&dir)?;
        let key_path = dir.join("validator_key.toml");
        let key = if key_path.exists() {
            load_key(&key_path)?
        } else {
            let k = generate_key()?;
            save_key(&key_path, &k)?;
            k
        };
        let (http, p2p) = ports(o.base_port, i);
        validators.push(GenesisValidator::new(
            &format!("node-{i}"),
            &public_key(&key),
            1,
            &p2p_addr(p2p),
            &format!("http://127.0.0.1:{http}"),
        ));
    }
    let (initial_state, initial_state_root) = match &o.initial_state {
        Some(given) => {
            let (bytes, root) = initial_state(given)?;
            let copy = o.data_dir.join(INITIAL_STATE_FILE);
            std::fs::write(&copy, bytes).map_err(|source| DevnetError::Io {
                what: "writing",
                path: copy,
                source,
            })?;
            (INITIAL_STATE_FILE.to_owned(), root)
        }
        None => (String::new(), String::new()),
    };
    let secs = step_engine::pipeline::unix_now_ms() / 1000;
    // The consensus-critical `--set` overrides go into the genesis (a node
    // refuses them in its own configuration otherwise).
    let mut c = Config::default();
    apply_sets(&mut c, &o.sets)?;
    let g = Genesis {
        chain_id: format!("step-devnet-{secs}"),
        initial_state,
        initial_state_root,
        validators,
        params: GenesisParams::from_config(&c),
        registry: None,
    };
    g.save(&path)?;
    Ok(g)
}

/// The initial state's copy in the data dir, as the genesis names it.
pub const INITIAL_STATE_FILE: &str = "initial_state.json";

/// An initial-state file's bytes and its root at height 0 (64 hex).
fn initial_state(path: &Path) -> Result<(Vec<u8>, String), DevnetError> {
    let bytes = std::fs::read(path).map_err(|source| DevnetError::Io {
        what: "reading",
        path: path.to_owned(),
        source,
    })?;
    let bad = |source| DevnetError::InitialState {
        path: path.to_owned(),
        source,
    };
    let file = InitialStateFile::from_json(&bytes).map_err(bad)?;
    let state = ChainState::from_initial(&file).map_err(bad)?;
    Ok((bytes, hex::encode(state.root)))
}

/// Writes `node-<i>/config.toml` for this run.
fn write_config(o: &Options, g: &Genesis, i: usize) -> Result<Validator, DevnetError> {
    let dir = node_dir(&o.data_dir, i);
    create_dir(&dir)?;
    let (http, p2p) = ports(o.base_port, i);
    // Every validator has a P2P key of its own; a data dir from before
    // that gets one here (its peer id changes once).
    let p2p_key = dir.join(P2P_KEY_FILE);
    if !p2p_key.exists() {
        save_p2p_key(&p2p_key, &generate_p2p_key()?)?;
    }
    let mut c = Config::default();
    c.http.listen = format!("127.0.0.1:{http}");
    c.node.home = ".".into();
    c.node.key_file = "validator_key.toml".into();
    c.node.p2p_key_file = P2P_KEY_FILE.into();
    c.node.genesis_file = "../genesis.toml".into();
    c.node.moniker = format!("node-{i}");
    c.node.p2p_listen = p2p_addr(p2p);
    c.node.peers = (0..o.validators)
        .filter(|j| *j != i)
        .map(|j| p2p_addr(ports(o.base_port, j).1))
        .collect::<Vec<_>>()
        .join(",");
    // N processes share this machine's cores: no pinning, and workers split
    // the cores between them.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    c.pipeline.pin_workers = false;
    c.pipeline.workers = (cores / o.validators).max(1);
    // Every devnet client comes from 127.0.0.1: a per-IP limit would limit
    // them all together. Per-account limits stay on.
    c.rate_limit.per_ip = 0;
    apply_sets(&mut c, &o.sets)?;
    c.validate()?;
    // A kept genesis with other parameters than this run's `--set`: refused
    // here, before any validator starts, naming the key.
    g.params.apply(&c)?;
    let text = toml::to_string(&c).map_err(|source| DevnetError::Serialise { index: i, source })?;
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "# Written by `step devnet` on every start; edit with --set instead.\n# Run this validator alone: step node --config {}\n{text}",
            path.display()
        ),
    )
    .map_err(|source| DevnetError::Io {
        what: "writing",
        path: path.clone(),
        source,
    })?;
    Ok(Validator {
        index: i,
        http_port: http,
        http: format!("http://127.0.0.1:{http}"),
        p2p: c.node.p2p_listen,
        address: g.validators[i].address.clone(),
        config: path,
        log: dir.join("node.log"),
        pid: 0,
    })
}
