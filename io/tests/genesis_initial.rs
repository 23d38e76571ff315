//! A genesis that names an initial state: the state is loaded and its root
//! checked; a wrong root, a missing file or half the fields stop the node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use step_consensus::execution::ChainState;
use step_consensus::initial::{InitialAccount, InitialStateFile, INITIAL_STATE_FORMAT};
use step_io::genesis::{Genesis, GenesisError};

fn write_state(dir: &Path) -> [u8; 32] {
    let f = InitialStateFile {
        format: INITIAL_STATE_FORMAT.into(),
        accounts: vec![InitialAccount {
            address: format!("0x{}", "ab".repeat(20)),
            balance_micro: 42,
            last: None,
            nonces: vec![],
        }],
        triangles: vec![],
    };
    std::fs::write(dir.join("initial_state.json"), f.to_json().unwrap()).unwrap();
    ChainState::from_initial(&f).unwrap().root
}

fn genesis(state: &str, root: &str) -> Genesis {
    Genesis {
        chain_id: "t".into(),
        initial_state: state.into(),
        initial_state_root: root.into(),
        validators: vec![],
        params: Default::default(),
        registry: None,
    }
}

#[test]
fn the_genesis_initial_state_is_loaded_and_its_root_checked() {
    let dir = std::env::temp_dir().join(format!("step-genesis-initial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = write_state(&dir);
    let path = dir.join("genesis.toml");

    let s = genesis("initial_state.json", &hex::encode(root))
        .initial_state(&path)
        .unwrap()
        .expect("a state");
    assert_eq!(s.root, root);
    let rows = s.memory().expect("an initial state is in memory");
    let total: u64 = rows.accounts.values().map(|a| a.balance_micro).sum();
    assert_eq!(total, 42);

    assert!(genesis("", "").initial_state(&path).unwrap().is_none());
    let wrong = genesis("initial_state.json", &"00".repeat(32)).initial_state(&path);
    assert!(
        matches!(wrong, Err(GenesisError::InitialRootMismatch { .. })),
        "{wrong:?}"
    );
    let half = genesis("initial_state.json", "").initial_state(&path);
    assert!(
        matches!(half, Err(GenesisError::InitialStateHalf { .. })),
        "{half:?}"
    );
    let missing = genesis("nope.json", &hex::encode(root)).initial_state(&path);
    assert!(
        matches!(missing, Err(GenesisError::Read { .. })),
        "{missing:?}"
    );

    // The fields round-trip through TOML, and an older genesis without them still loads.
    let g = genesis("initial_state.json", &hex::encode(root));
    let text = toml::to_string(&g).unwrap();
    assert_eq!(toml::from_str::<Genesis>(&text).unwrap(), g);
    let old: Genesis = toml::from_str("chain_id = \"x\"\nvalidators = []\n").unwrap();
    assert!(old.initial_state.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
