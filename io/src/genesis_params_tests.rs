//! Genesis parameters: the chain id commits to each of them; a local
//! configuration cannot change them.

use super::*;
use crate::genesis::{Genesis, GenesisValidator};
use std::path::Path;

fn genesis(params: GenesisParams) -> Genesis {
    let keys: Vec<PublicKey> = (1..=4u8)
        .map(|k| crate::genesis::public_key(&step_consensus::PrivateKey::from([k; 32])))
        .collect();
    Genesis {
        chain_id: "step-test".into(),
        initial_state: String::new(),
        initial_state_root: String::new(),
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisValidator::new(&format!("v{i}"), k, 1, "", ""))
            .collect(),
        params,
        registry: None,
    }
}

fn chain(g: &Genesis) -> ChainId {
    g.chain(Path::new("genesis.toml")).expect("chain")
}

#[test]
fn two_genesis_files_differing_in_one_parameter_have_different_chain_ids() {
    let base = genesis(GenesisParams::default());
    let a = chain(&base);
    assert_eq!(
        a,
        chain(&genesis(GenesisParams::default())),
        "deterministic"
    );
    let variants = [
        GenesisParams {
            moratorium_ms: 10_001,
            ..GenesisParams::default()
        },
        GenesisParams {
            moratorium: false,
            ..GenesisParams::default()
        },
        GenesisParams {
            accuracy_m_max: 49.5,
            ..GenesisParams::default()
        },
        GenesisParams {
            speed_gate: false,
            ..GenesisParams::default()
        },
        GenesisParams {
            speed_mps_max: 16.0,
            ..GenesisParams::default()
        },
        GenesisParams {
            max_batches_per_block: 99,
            ..GenesisParams::default()
        },
    ];
    for p in variants {
        assert_ne!(a, chain(&genesis(p.clone())), "{p:?}");
    }
    // The name and the validators' keys and powers are in it too.
    let mut renamed = base.clone();
    renamed.chain_id = "step-other".into();
    assert_ne!(a, chain(&renamed));
    let mut heavier = base.clone();
    heavier.validators[0].power = 2;
    assert_ne!(a, chain(&heavier));
    // Addresses and names are operational: not in it; nor is the order.
    let mut moved = base.clone();
    moved.validators[1].p2p = "/ip4/10.0.0.2/tcp/27100".into();
    moved.validators[1].http = "http://10.0.0.2:8080".into();
    moved.validators[1].name = "renamed".into();
    moved.validators.reverse();
    assert_eq!(a, chain(&moved));
    let text = chain_id_text(&base.chain_id, &a);
    assert!(
        text.starts_with("step-test-") && text.len() == "step-test-".len() + 16,
        "{text}"
    );
}

#[test]
fn a_genesis_without_params_takes_the_defaults_and_round_trips() {
    let g = genesis(GenesisParams::default());
    let text = toml::to_string(&g).expect("toml");
    assert!(
        text.contains("[params]") && text.contains("moratorium_ms = 10000"),
        "{text}"
    );
    let back: Genesis = toml::from_str(&text).expect("parse");
    assert_eq!(back, g);
    let before: String = text
        .split("[params]")
        .next()
        .expect("validators part")
        .into();
    let old: Genesis = toml::from_str(&before).expect("a genesis without [params]");
    assert_eq!(old.params, GenesisParams::default());
    assert!(toml::from_str::<Genesis>(&format!("{text}\nunknown = 1\n")).is_err());
}

#[test]
fn a_config_that_sets_another_moratorium_is_refused_naming_the_key() {
    let p = GenesisParams::default();
    let mut c = Config::default();
    c.limits.moratorium_ms = 12_000;
    let err = p.apply(&c).expect_err("refused");
    let ConfigError::ConsensusParam {
        key,
        env,
        configured,
        genesis,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(
        (*key, env.as_str(), configured.as_str(), genesis.as_str()),
        (
            "limits.moratorium_ms",
            "STEP_LIMITS_MORATORIUM_MS",
            "12000",
            "10000"
        )
    );
    assert!(err.to_string().contains("limits.moratorium_ms"), "{err}");
    // Switching a check off, or another block limit, too.
    let mut c = Config::default();
    c.limits.speed_gate = false;
    assert!(matches!(
        p.apply(&c),
        Err(ConfigError::ConsensusParam {
            key: "limits.speed_gate",
            ..
        })
    ));
    let mut c = Config::default();
    c.consensus.max_batches_per_block = 7;
    assert!(matches!(
        p.apply(&c),
        Err(ConfigError::ConsensusParam {
            key: "consensus.max_batches_per_block",
            ..
        })
    ));
    // Local-only keys stay local: the age window is not consensus-critical.
    let mut c = Config::default();
    c.limits.age_window = true;
    assert!(p.apply(&c).expect("local key").limits.age_window);
}

#[test]
fn the_genesis_values_replace_the_defaults_and_a_repeated_value_is_accepted() {
    let p = GenesisParams {
        moratorium_ms: 5_000,
        speed_gate: false,
        max_batches_per_block: 40,
        ..GenesisParams::default()
    };
    let applied = p.apply(&Config::default()).expect("defaults");
    assert_eq!(applied.limits.moratorium_ms, 5_000);
    assert!(!applied.limits.speed_gate);
    assert_eq!(applied.consensus.max_batches_per_block, 40);
    assert_eq!(applied.limits.to_limits().moratorium_ms, Some(5_000));
    let mut same = Config::default();
    same.limits.moratorium_ms = 5_000;
    assert_eq!(p.apply(&same).expect("the genesis value"), applied);
}

#[test]
fn rules_this_binary_does_not_implement_are_refused() {
    assert_eq!(GenesisParams::default().check(), Ok(()));
    let p = GenesisParams {
        reward_micro_level1: 2_000_000,
        ..GenesisParams::default()
    };
    assert_eq!(p.check().map_err(|e| e.field), Err("reward_micro_level1"));
    let p = GenesisParams {
        subdivide_at_click: 12,
        ..GenesisParams::default()
    };
    assert_eq!(p.check().map_err(|e| e.field), Err("subdivide_at_click"));
    let p = GenesisParams {
        max_batches_per_block: 0,
        ..GenesisParams::default()
    };
    assert_eq!(p.check().map_err(|e| e.field), Err("max_batches_per_block"));
    let p = GenesisParams {
        accuracy_m_max: f64::NAN,
        ..GenesisParams::default()
    };
    assert_eq!(p.check().map_err(|e| e.field), Err("accuracy_m_max"));
}
