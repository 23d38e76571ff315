//! A chain's initial state (height 0, imported from Phase 2): its checks,
//! its root, and execution on top of it.

use step_consensus::context::{Height, ValueId};
use step_consensus::execution::{ChainState, ExecCode};
use step_consensus::initial::{
    InitialAccount, InitialLast, InitialStateError, InitialStateFile, InitialTriangle,
    INITIAL_STATE_FORMAT,
};
use step_engine::pipeline::Batch;
use step_engine::proof::{Nonce, Proof, Timestamp};
use step_engine::{Address, Limits, TriangleId};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn account(b: u8) -> String {
    Address([b; 20]).to_string()
}

fn file() -> InitialStateFile {
    let t = TriangleId::new(2, &[1]).expect("triangle");
    let (lat, lon) = step_engine::mesh::centroid_lat_lon(&t);
    InitialStateFile {
        format: INITIAL_STATE_FORMAT.into(),
        accounts: vec![
            InitialAccount {
                address: account(0x11),
                balance_micro: 1_500_000,
                last: Some(InitialLast {
                    unix_ms: T0,
                    lat,
                    lon,
                }),
                nonces: vec!["a".into(), "b".into()],
            },
            InitialAccount {
                address: account(0x22),
                balance_micro: 7,
                last: None,
                nonces: vec![],
            },
        ],
        triangles: vec![InitialTriangle {
            id: t.to_string(),
            clicks: 3,
            subdivided: false,
        }],
    }
}

fn proof(account: u8, t: TriangleId, ms: i64, nonce: &str) -> Proof {
    let (lat, lon) = step_engine::mesh::centroid_lat_lon(&t);
    Proof {
        account: Address([account; 20]),
        triangle: t,
        lat,
        lon,
        accuracy_m: 5.0,
        timestamp: Timestamp::from_unix_ms(ms).expect("timestamp"),
        nonce: Nonce::parse(nonce).expect("nonce"),
        signature: Ok([0; 65]),
    }
}

fn apply(state: &mut ChainState, proofs: Vec<Proof>) -> Vec<Result<u64, ExecCode>> {
    let n = proofs.len();
    let batch = Batch {
        proofs,
        pubkeys: vec![[0; 64]; n],
        digest: [1; 32],
    };
    state
        .apply_block(&Limits::default(), Height(1), ValueId([1; 32]), &[batch])
        .expect("in-memory state")
        .results
        .into_iter()
        .map(|r| r.map(|e| e.balance_micro))
        .collect()
}

#[test]
fn the_initial_state_holds_balances_nonces_last_proofs_and_triangles() {
    let s = ChainState::from_initial(&file()).expect("state");
    let a = Address([0x11; 20]);
    assert_eq!(s.height, 0);
    assert_ne!(s.root, [0; 32], "an imported state has a root of its own");
    let row = s.account(&a).expect("read").expect("account");
    assert_eq!(row.balance_micro, 1_500_000);
    assert_eq!(balance(&s, 0x22), 7);
    assert_eq!(row.proofs, 2);
    assert_eq!(s.accepted_total, 2);
    assert_eq!(row.last.map(|l| l.unix_ms), Some(T0));
    let t = TriangleId::new(2, &[1]).expect("triangle");
    assert_eq!(s.triangle(&t).expect("read").clicks, 3);
}

#[test]
fn the_root_is_a_function_of_every_field() {
    let base = ChainState::from_initial(&file()).expect("state").root;
    let again = ChainState::from_initial(&file()).expect("state").root;
    assert_eq!(base, again);
    let mut f = file();
    f.accounts[1].balance_micro += 1;
    assert_ne!(ChainState::from_initial(&f).expect("state").root, base);
    let mut f = file();
    f.accounts[0].nonces[1] = "c".into();
    assert_ne!(ChainState::from_initial(&f).expect("state").root, base);
    let mut f = file();
    f.triangles[0].clicks = 4;
    assert_ne!(ChainState::from_initial(&f).expect("state").root, base);
    let mut f = file();
    if let Some(l) = f.accounts[0].last.as_mut() {
        l.unix_ms += 1;
    }
    assert_ne!(ChainState::from_initial(&f).expect("state").root, base);
}

#[test]
fn the_file_round_trips_through_json_to_the_same_root() {
    let f = file();
    let bytes = f.to_json().expect("json");
    let back = InitialStateFile::from_json(&bytes).expect("parse");
    assert_eq!(back, f);
    assert_eq!(
        ChainState::from_initial(&back).expect("state").root,
        ChainState::from_initial(&f).expect("state").root
    );
}

#[test]
fn a_state_execution_could_not_reach_is_refused() {
    let mut f = file();
    f.accounts.swap(0, 1);
    assert!(matches!(
        ChainState::from_initial(&f),
        Err(InitialStateError::AccountOrder { index: 1, .. })
    ));
    let mut f = file();
    f.accounts[0].address = account(0xab).to_uppercase().replace("0X", "0x");
    assert!(matches!(
        ChainState::from_initial(&f),
        Err(InitialStateError::Address { index: 0, .. })
    ));
    let mut f = file();
    f.accounts[0].nonces = vec!["b".into(), "a".into()];
    assert!(matches!(
        ChainState::from_initial(&f),
        Err(InitialStateError::NonceOrder { index: 0, .. })
    ));
    let mut f = file();
    f.triangles[0].clicks = 12;
    assert!(matches!(
        ChainState::from_initial(&f),
        Err(InitialStateError::TriangleState { index: 0, .. })
    ));
    let mut f = file();
    f.triangles[0].id = "STEP-TRI-v1:C1-00000000000000000000-AAA".into();
    assert!(matches!(
        ChainState::from_initial(&f),
        Err(InitialStateError::Triangle { index: 0, .. })
    ));
    let mut f = file();
    f.format = "other".into();
    assert!(matches!(
        ChainState::from_initial(&f),
        Err(InitialStateError::Format { .. })
    ));
}

#[test]
fn an_imported_nonce_is_a_replay_and_the_imported_last_proof_gates_speed() {
    let t = TriangleId::new(2, &[1]).expect("triangle");
    let mut s = ChainState::from_initial(&file()).expect("state");
    let results = apply(
        &mut s,
        vec![
            proof(0x11, t, T0 + 60_000, "a"),
            proof(0x11, t, T0 + 1_000, "new-1"),
            proof(0x11, t, T0 + 60_000, "new-2"),
        ],
    );
    assert_eq!(results[0], Err(ExecCode::NonceReplay));
    assert_eq!(results[1], Err(ExecCode::Moratorium));
    // level 2 pays 0.5 STEP on top of the imported 1.5 STEP
    assert_eq!(results[2], Ok(2_000_000));
    assert_eq!(s.triangle(&t).expect("read").clicks, 4);
}

#[test]
fn the_store_is_seeded_with_the_initial_state_and_opens_at_its_head() {
    use step_consensus::store::{BlockRows, DecidedRecord, StoreError};
    use step_consensus::{RedbStore, Store};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    let t = TriangleId::new(2, &[1]).expect("triangle");
    let initial = ChainState::from_initial(&file()).expect("state");
    let mut mem = initial.clone();
    {
        let mut store = RedbStore::open(&path).expect("open");
        // An empty store is seeded with the initial state at height 0.
        let mut s = store.load_state(initial.clone()).expect("seed");
        assert_eq!((s.height, s.root), (0, initial.root));
        assert_eq!(balance(&s, 0x11), 1_500_000);
        let batch = Batch {
            proofs: vec![
                proof(0x22, t, T0, "fresh"),
                proof(0x11, t, T0 + 60_000, "a"),
            ],
            pubkeys: vec![[0; 64]; 2],
            digest: [1; 32],
        };
        let batches = std::slice::from_ref(&batch);
        let out = s
            .apply_block(&Limits::default(), Height(1), ValueId([1; 32]), batches)
            .expect("execute");
        let want = mem
            .apply_block(&Limits::default(), Height(1), ValueId([1; 32]), batches)
            .expect("execute in memory");
        assert_eq!(out, want, "one execution, memory or store");
        // The imported nonce is a replay on the store too.
        assert_eq!(out.results[1], Err(ExecCode::NonceReplay));
        store
            .commit_decided(
                &DecidedRecord {
                    height: 1,
                    block: vec![1],
                    certificate: vec![],
                    changes: out.changes.clone(),
                    root: out.root,
                },
                &BlockRows {
                    writes: out.writes,
                    proofs: vec![],
                },
                T0,
            )
            .expect("commit");
    }
    let store = RedbStore::open(&path).expect("reopen");
    let loaded = store.load_state(initial).expect("load");
    assert_eq!(loaded, mem);
    // The imported account untouched by block 1 is still there.
    assert_eq!(balance(&loaded, 0x11), 1_500_000);
    assert_eq!(balance(&loaded, 0x22), 500_007);
    // A store of this chain opened with another chain's initial state (here
    // the empty one) is refused with the named error.
    let other = store.load_state(ChainState::default());
    assert!(
        matches!(other, Err(StoreError::InitialStateMismatch { .. })),
        "{other:?}"
    );
}

fn balance(s: &ChainState, b: u8) -> u64 {
    let a = s.account(&Address([b; 20])).expect("read");
    a.expect("account").balance_micro
}
