//! The registry's rules, one test per rule and per bad input.

use super::slash::{double_sign_id, OffenceKind};
use super::*;
use crate::context::PrivateKey;
use step_engine::signing::{key, sign_digest, Key};

const CHAIN: [u8; 32] = [9; 32];
const T0: u64 = 1_000_000;

fn params() -> RegistryParams {
    RegistryParams {
        epoch_length_proofs: 10,
        unbonding_ms: 1_000,
        jail_ms: 500,
        offline_window_ms: 2_000,
        reward_per_proof_micro: 1_000,
        slash_destination: Operator([0xd5; 20]),
        ..RegistryParams::default()
    }
}

fn cold(k: u64) -> Key {
    key("registry-test", k)
}

fn op(k: u64) -> Operator {
    Operator(cold(k).address.0)
}

fn hot(k: u8) -> PublicKey {
    PublicKey(PrivateKey::from([k; 32]).verification_key().to_bytes())
}

const PEER: &str = "12D3KooWLRPJAA5o6Z6iNqNZWtd1oUwRPLBzpgb4xPMaeBVGWkS3";
const MIN: u64 = 100_000 * MICRO;

/// Four genesis validators (operators 0–3, hot keys 1–4) of the minimum stake.
fn four() -> Registry {
    let set: Vec<GenesisEntry> = (0..4)
        .map(|i| GenesisEntry {
            operator: op(i),
            consensus_key: hot(i as u8 + 1),
            p2p_id: PEER.into(),
            stake_micro: MIN,
        })
        .collect();
    Registry::genesis(params(), &set, T0).unwrap()
}

fn signed(k: u64, nonce: u64, kind: TxKind) -> ValidatorTx {
    let mut tx = ValidatorTx {
        operator: op(k),
        nonce,
        kind,
        signature: [0; 65],
    };
    tx.signature = sign_digest(&cold(k), tx.digest(&CHAIN));
    tx
}

fn add(k: u64, nonce: u64, amount_micro: u64) -> ValidatorTx {
    signed(k, nonce, TxKind::AddStake { amount_micro })
}

fn register(k: u64, nonce: u64, hot_key: u8, stake: u64) -> ValidatorTx {
    signed(
        k,
        nonce,
        TxKind::Register {
            consensus_key: hot(hot_key),
            p2p_id: PEER.into(),
            stake_micro: stake,
        },
    )
}

type Accounts = std::collections::BTreeMap<step_engine::Address, u64>;

fn funded(k: u64, micro: u64) -> Accounts {
    let mut a = Accounts::new();
    a.set_balance(op(k).0, micro);
    a
}

fn code(r: Result<TxOutcome, TxError>) -> &'static str {
    r.expect_err("refused").code()
}

#[test]
fn genesis_refuses_a_bad_initial_set() {
    let e = |stake, p2p: &str, ops: &[u64]| {
        let set: Vec<GenesisEntry> = ops
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisEntry {
                operator: op(*k),
                consensus_key: hot(i as u8 + 1),
                p2p_id: p2p.into(),
                stake_micro: stake,
            })
            .collect();
        Registry::genesis(params(), &set, T0)
    };
    assert!(matches!(
        e(MIN - 1, PEER, &[0]),
        Err(GenesisSetError::BelowMinimum { .. })
    ));
    assert!(matches!(
        e(MIN, PEER, &[0, 0]),
        Err(GenesisSetError::DuplicateOperator { .. })
    ));
    assert!(matches!(
        e(MIN, "0OIl", &[0]),
        Err(GenesisSetError::BadP2pId { .. })
    ));
    assert_eq!(e(MIN, PEER, &[]), Err(GenesisSetError::Empty));
    let many: Vec<u64> = (0..51).collect();
    assert!(matches!(
        e(MIN, PEER, &many),
        Err(GenesisSetError::TooMany { count: 51, max: 50 })
    ));
    let r = four();
    assert_eq!(r.current_set().set.len(), 4);
    assert_eq!(r.current_set().set[0].power, 100_000);
    assert_eq!(r.current_set().start_height, 1);
}

#[test]
fn register_bonds_from_the_balance_and_joins_at_the_next_epoch() {
    let mut r = four();
    let mut acc = funded(9, MIN + 5);
    let out = r
        .apply_tx(&CHAIN, &register(9, 0, 10, MIN), T0, &mut acc)
        .unwrap();
    assert_eq!(out.debited_micro, MIN);
    assert_eq!(acc.balance(&op(9).0), 5);
    assert_eq!(r.get(&op(9)).unwrap().status, Status::Active);
    assert_eq!(r.next_nonce(&op(9)), 1);
    // Not in the set before the boundary.
    assert_eq!(r.close_block(7, 9), EpochStep::Within { proofs: 9 });
    assert!(r.current_set().operator_of(&hot(10)).is_none());
    assert_eq!(
        r.close_block(8, 1),
        EpochStep::Boundary {
            number: 1,
            start_height: 9,
            changed: true
        }
    );
    assert_eq!(r.current_set().operator_of(&hot(10)), Some(op(9)));
    // Old heights keep their own epoch's set.
    assert_eq!(r.set_at(8).unwrap().set.len(), 4);
    assert_eq!(r.set_at(9).unwrap().set.len(), 5);
    assert!(r.set_at(0).is_none());
    // The next boundary without changes adds no record.
    r.close_block(20, 10);
    assert_eq!(r.epochs.len(), 2);
    assert_eq!(r.epoch(), 2);
}

#[test]
fn a_bad_signature_is_refused_and_changes_nothing() {
    let mut r = four();
    let before = r.root();
    let mut acc = funded(9, MIN);
    // Signed by another key.
    let mut tx = register(9, 0, 10, MIN);
    tx.signature = sign_digest(&cold(8), tx.digest(&CHAIN));
    assert_eq!(
        code(r.apply_tx(&CHAIN, &tx, T0, &mut acc)),
        "VALIDATOR_BAD_SIGNATURE"
    );
    // A field changed after signing.
    let mut tx = register(9, 0, 10, MIN);
    if let TxKind::Register { stake_micro, .. } = &mut tx.kind {
        *stake_micro += 1;
    }
    assert_eq!(
        code(r.apply_tx(&CHAIN, &tx, T0, &mut acc)),
        "VALIDATOR_BAD_SIGNATURE"
    );
    // Another chain's transaction.
    let tx = register(9, 0, 10, MIN);
    assert_eq!(
        code(r.apply_tx(&[1; 32], &tx, T0, &mut acc)),
        "VALIDATOR_BAD_SIGNATURE"
    );
    // v outside 27/28 (the engine's policy).
    let mut tx = register(9, 0, 10, MIN);
    tx.signature[64] = 1;
    assert_eq!(
        code(r.apply_tx(&CHAIN, &tx, T0, &mut acc)),
        "VALIDATOR_BAD_SIGNATURE"
    );
    assert_eq!(r.root(), before);
    assert_eq!(acc.balance(&op(9).0), MIN);
}

#[test]
fn a_replay_and_a_skipped_nonce_are_named() {
    let mut r = four();
    let mut acc = funded(9, 3 * MIN);
    let tx = register(9, 0, 10, MIN);
    r.apply_tx(&CHAIN, &tx, T0, &mut acc).unwrap();
    assert_eq!(
        code(r.apply_tx(&CHAIN, &tx, T0, &mut acc)),
        "VALIDATOR_TX_REPLAY"
    );
    let skip = add(9, 5, 1);
    assert_eq!(
        r.apply_tx(&CHAIN, &skip, T0, &mut acc),
        Err(TxError::WrongNonce {
            operator: op(9),
            expected: 1,
            got: 5
        })
    );
    assert_eq!(acc.balance(&op(9).0), 2 * MIN);
}

#[test]
fn every_kind_refuses_an_unknown_validator() {
    let mut r = four();
    let mut acc = funded(9, MIN);
    for kind in [
        TxKind::AddStake { amount_micro: 1 },
        TxKind::Unbond { amount_micro: 1 },
        TxKind::RotateKey {
            consensus_key: hot(50),
        },
        TxKind::Withdraw,
        TxKind::Unjail,
    ] {
        let name = kind.name();
        let got = code(r.apply_tx(&CHAIN, &signed(9, 0, kind), T0, &mut acc));
        assert_eq!(got, "VALIDATOR_UNKNOWN", "{name}");
    }
}

/// 32 bytes that do not decode to a curve point.
fn not_a_point() -> PublicKey {
    (2u8..=255)
        .map(|b| {
            let mut k = [0u8; 32];
            k[0] = b;
            PublicKey(k)
        })
        .find(|k| ed25519_consensus::VerificationKey::try_from(k.0).is_err())
        .expect("some y has no x")
}

#[test]
fn register_refuses_impossible_registrations() {
    let mut r = four();
    let mut acc = funded(9, 10 * MIN);
    let c = |r: &mut Registry, acc: &mut Accounts, tx| code(r.apply_tx(&CHAIN, &tx, T0, acc));
    assert_eq!(
        c(&mut r, &mut acc, register(9, 0, 10, MIN - 1)),
        "VALIDATOR_BELOW_MINIMUM_STAKE"
    );
    assert_eq!(
        c(&mut r, &mut acc, register(9, 0, 1, MIN)),
        "VALIDATOR_KEY_IN_USE"
    );
    assert_eq!(
        c(&mut r, &mut acc, register(0, 0, 10, MIN)),
        "VALIDATOR_ALREADY_REGISTERED"
    );
    let bad_peer = signed(
        9,
        0,
        TxKind::Register {
            consensus_key: hot(10),
            p2p_id: "not/a/peer".into(),
            stake_micro: MIN,
        },
    );
    assert_eq!(c(&mut r, &mut acc, bad_peer), "VALIDATOR_BAD_P2P_ID");
    let bad_key = signed(
        9,
        0,
        TxKind::Register {
            consensus_key: not_a_point(),
            p2p_id: PEER.into(),
            stake_micro: MIN,
        },
    );
    assert_eq!(c(&mut r, &mut acc, bad_key), "VALIDATOR_BAD_CONSENSUS_KEY");
    let mut poor = funded(9, MIN - 1);
    assert_eq!(
        code(r.apply_tx(&CHAIN, &register(9, 0, 10, MIN), T0, &mut poor)),
        "VALIDATOR_INSUFFICIENT_BALANCE"
    );
    r.params.max_validators = 4;
    assert_eq!(
        c(&mut r, &mut acc, register(9, 0, 10, MIN)),
        "VALIDATOR_SET_FULL"
    );
    assert_eq!(r.next_nonce(&op(9)), 0, "refusals use no nonce");
}

#[test]
fn add_stake_raises_power_at_the_next_epoch() {
    let mut r = four();
    let mut acc = funded(0, 50 * MICRO);
    let zero = add(0, 0, 0);
    assert_eq!(
        code(r.apply_tx(&CHAIN, &zero, T0, &mut acc)),
        "VALIDATOR_ZERO_AMOUNT"
    );
    let too_much = add(0, 0, 51 * MICRO);
    assert_eq!(
        code(r.apply_tx(&CHAIN, &too_much, T0, &mut acc)),
        "VALIDATOR_INSUFFICIENT_BALANCE"
    );
    let tx = add(0, 0, 50 * MICRO);
    r.apply_tx(&CHAIN, &tx, T0, &mut acc).unwrap();
    assert_eq!(
        r.current_set()
            .set
            .iter()
            .find(|v| v.operator == op(0))
            .unwrap()
            .power,
        100_000
    );
    r.close_block(1, 10);
    assert_eq!(
        r.current_set().set[0].operator,
        op(0),
        "highest power first"
    );
    assert_eq!(r.current_set().set[0].power, 100_050);
}

#[test]
fn unbond_withdraw_and_exit() {
    let mut r = four();
    let mut acc = Accounts::new();
    let u = |n, amount_micro| signed(3, n, TxKind::Unbond { amount_micro });
    let c = |r: &mut Registry, acc: &mut Accounts, tx, t| code(r.apply_tx(&CHAIN, &tx, t, acc));
    assert_eq!(
        c(&mut r, &mut acc, u(0, MIN + 1), T0),
        "VALIDATOR_UNBOND_MORE_THAN_BONDED"
    );
    assert_eq!(
        c(&mut r, &mut acc, u(0, 1), T0),
        "VALIDATOR_BELOW_MINIMUM_STAKE"
    );
    assert_eq!(c(&mut r, &mut acc, u(0, 0), T0), "VALIDATOR_ZERO_AMOUNT");
    r.apply_tx(&CHAIN, &u(0, MIN), T0, &mut acc).unwrap();
    assert_eq!(r.get(&op(3)).unwrap().status, Status::Unbonding);
    assert_eq!(c(&mut r, &mut acc, u(1, 1), T0), "VALIDATOR_NOT_BONDED");
    // Still in this epoch's set; gone from the next.
    assert!(r.current_set().operator_of(&hot(4)).is_some());
    r.close_block(5, 10);
    assert!(r.current_set().operator_of(&hot(4)).is_none());
    let w = |n| signed(3, n, TxKind::Withdraw);
    assert_eq!(
        r.apply_tx(&CHAIN, &w(1), T0 + 999, &mut acc),
        Err(TxError::StillUnbonding {
            operator: op(3),
            release_ms: T0 + 1_000,
            now_ms: T0 + 999
        })
    );
    let out = r.apply_tx(&CHAIN, &w(1), T0 + 1_000, &mut acc).unwrap();
    assert_eq!(out.credited_micro, MIN);
    assert_eq!(acc.balance(&op(3).0), MIN);
    assert_eq!(r.get(&op(3)).unwrap().status, Status::Exited);
    assert_eq!(
        c(&mut r, &mut acc, w(2), T0 + 2_000),
        "VALIDATOR_NOTHING_TO_WITHDRAW"
    );
    assert_eq!(acc.balance(&op(3).0), MIN, "withdrawn once");
    // An exited operator may register again, with its next nonce.
    r.apply_tx(&CHAIN, &register(3, 2, 30, MIN), T0 + 2_000, &mut acc)
        .unwrap();
}

#[test]
fn rotate_key_takes_effect_at_the_boundary() {
    let mut r = four();
    let mut acc = Accounts::new();
    let rot = |n, k| {
        signed(
            1,
            n,
            TxKind::RotateKey {
                consensus_key: hot(k),
            },
        )
    };
    assert_eq!(
        code(r.apply_tx(&CHAIN, &rot(0, 1), T0, &mut acc)),
        "VALIDATOR_KEY_IN_USE"
    );
    r.apply_tx(&CHAIN, &rot(0, 20), T0, &mut acc).unwrap();
    assert_eq!(r.current_set().operator_of(&hot(2)), Some(op(1)));
    // The rotated-to key is reserved meanwhile.
    assert_eq!(
        code(r.apply_tx(&CHAIN, &register(9, 0, 20, MIN), T0, &mut funded(9, MIN))),
        "VALIDATOR_KEY_IN_USE"
    );
    r.close_block(3, 10);
    assert_eq!(r.current_set().operator_of(&hot(20)), Some(op(1)));
    assert!(r.current_set().operator_of(&hot(2)).is_none());
    assert_eq!(r.get(&op(1)).unwrap().consensus_key, hot(20));
    // Height 3 was decided by the old key.
    assert_eq!(r.set_at(3).unwrap().operator_of(&hot(2)), Some(op(1)));
}

/// Slashing, rewards, the root and the transaction forms.
#[path = "economics_tests.rs"]
mod economics;
