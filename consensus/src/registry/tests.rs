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

#[test]
fn double_sign_slashes_half_jails_and_counts_once() {
    let mut r = four();
    let mut acc = Accounts::new();
    let ev = Offence::DoubleSign {
        validator: hot(2),
        evidence_id: double_sign_id(&hot(2), 7, 0),
    };
    let out = r.apply_offence(&ev, T0, &mut acc).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, OffenceKind::DoubleSign);
    assert_eq!(out[0].slashed_micro, MIN / 2);
    assert_eq!(r.get(&op(1)).unwrap().stake_micro, MIN / 2);
    assert_eq!(
        r.get(&op(1)).unwrap().status,
        Status::Jailed { until_ms: T0 + 500 }
    );
    assert_eq!(acc.balance(&params().slash_destination.0), MIN / 2);
    let again = r.apply_offence(&ev, T0, &mut acc).unwrap_err();
    assert_eq!(again.code(), "EVIDENCE_ALREADY_COUNTED");
    assert_eq!(acc.balance(&params().slash_destination.0), MIN / 2);
    // Out at the next epoch; unjail needs the time and the minimum stake.
    r.close_block(9, 10);
    assert!(r.current_set().operator_of(&hot(2)).is_none());
    let unjail = |n| signed(1, n, TxKind::Unjail);
    assert_eq!(
        code(r.apply_tx(&CHAIN, &unjail(0), T0 + 499, &mut acc)),
        "VALIDATOR_STILL_JAILED"
    );
    assert_eq!(
        code(r.apply_tx(&CHAIN, &unjail(0), T0 + 500, &mut acc)),
        "VALIDATOR_BELOW_MINIMUM_STAKE"
    );
    let mut acc = funded(1, MIN / 2);
    r.apply_tx(&CHAIN, &add(1, 0, MIN / 2), T0, &mut acc)
        .unwrap();
    r.apply_tx(&CHAIN, &unjail(1), T0 + 500, &mut acc).unwrap();
    assert_eq!(
        code(r.apply_tx(&CHAIN, &unjail(2), T0 + 500, &mut acc)),
        "VALIDATOR_NOT_JAILED"
    );
    r.close_block(20, 10);
    assert!(r.current_set().operator_of(&hot(2)).is_some());
}

#[test]
fn unbonding_stake_is_still_slashed() {
    let mut r = four();
    let mut acc = Accounts::new();
    r.apply_tx(
        &CHAIN,
        &signed(2, 0, TxKind::Unbond { amount_micro: MIN }),
        T0,
        &mut acc,
    )
    .unwrap();
    let ev = Offence::DoubleSign {
        validator: hot(3),
        evidence_id: double_sign_id(&hot(3), 1, 0),
    };
    assert_eq!(
        r.apply_offence(&ev, T0, &mut acc).unwrap()[0].slashed_micro,
        MIN / 2
    );
    assert_eq!(r.get(&op(2)).unwrap().unbonding[0].amount_micro, MIN / 2);
}

#[test]
fn one_attester_of_an_invalid_batch_loses_30_percent_and_more_than_a_third_collude() {
    let mut r = four();
    let mut acc = Accounts::new();
    let one = Offence::InvalidBatch {
        attesters: vec![hot(1)],
        evidence_id: [1; 32],
    };
    let out = r.apply_offence(&one, T0, &mut acc).unwrap();
    assert_eq!(out[0].kind, OffenceKind::InvalidAttestation);
    assert_eq!(out[0].slashed_micro, MIN * 3 / 10);
    assert_eq!(out[0].status, Status::Active);
    // Two of four equal validators: more than a third of the power.
    let two = Offence::InvalidBatch {
        attesters: vec![hot(3), hot(4), hot(3)],
        evidence_id: [2; 32],
    };
    let out = r.apply_offence(&two, T0, &mut acc).unwrap();
    assert_eq!(out.len(), 2, "each attester once");
    for o in &out {
        assert_eq!(o.kind, OffenceKind::Collusion);
        assert_eq!(o.slashed_micro, MIN);
        assert_eq!(o.status, Status::Banned);
    }
    assert_eq!(
        acc.balance(&params().slash_destination.0),
        MIN * 3 / 10 + 2 * MIN
    );
    let c = code(r.apply_tx(&CHAIN, &register(2, 0, 40, MIN), T0, &mut funded(2, MIN)));
    assert_eq!(c, "VALIDATOR_BANNED");
    let unknown = Offence::InvalidBatch {
        attesters: vec![hot(99)],
        evidence_id: [3; 32],
    };
    assert_eq!(
        r.apply_offence(&unknown, T0, &mut acc).unwrap_err().code(),
        "EVIDENCE_UNKNOWN_VALIDATOR"
    );
    let none = Offence::InvalidBatch {
        attesters: vec![],
        evidence_id: [4; 32],
    };
    assert_eq!(
        r.apply_offence(&none, T0, &mut acc).unwrap_err().code(),
        "EVIDENCE_NO_ATTESTERS"
    );
}

#[test]
fn a_validator_without_commit_signatures_past_the_window_is_slashed_once() {
    let mut r = four();
    let mut acc = Accounts::new();
    let all_but_4 = [hot(1), hot(2), hot(3)];
    assert!(
        r.record_commit(&all_but_4, 0, T0 + 2_000, &mut acc)
            .is_empty(),
        "at the window"
    );
    let out = r.record_commit(&all_but_4, 0, T0 + 2_001, &mut acc);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].operator, op(3));
    assert_eq!(out[0].kind, OffenceKind::Offline);
    assert_eq!(out[0].slashed_micro, MIN / 10);
    assert_eq!(
        out[0].status,
        Status::Jailed {
            until_ms: T0 + 2_501
        }
    );
    assert!(
        r.record_commit(&all_but_4, 0, T0 + 9_000, &mut acc)
            .is_empty(),
        "counted once"
    );
}

#[test]
fn rewards_split_by_stake_among_the_signers_and_carry_the_remainder() {
    let mut r = four();
    r.validators.get_mut(&op(0)).unwrap().stake_micro = 2 * MIN;
    let mut acc = Accounts::new();
    // 1 proof = 1,000 micro among stakes 2:1:1 (hot 4 did not sign).
    r.record_commit(&[hot(1), hot(2), hot(3)], 1, T0, &mut acc);
    assert_eq!(r.get(&op(0)).unwrap().rewards_micro, 500);
    assert_eq!(r.get(&op(1)).unwrap().rewards_micro, 250);
    assert_eq!(r.get(&op(3)).unwrap().rewards_micro, 0);
    assert_eq!(r.reward_carry_micro, 0);
    // 1,000 among three equal stakes: 333 each, 1 carried.
    r.validators.get_mut(&op(0)).unwrap().stake_micro = MIN;
    r.record_commit(&[hot(1), hot(2), hot(3)], 1, T0, &mut acc);
    assert_eq!(r.get(&op(1)).unwrap().rewards_micro, 250 + 333);
    assert_eq!(r.reward_carry_micro, 1);
    // Withdraw pays the rewards to the operator; twice is refused.
    let out = r
        .apply_tx(&CHAIN, &signed(1, 0, TxKind::Withdraw), T0, &mut acc)
        .unwrap();
    assert_eq!(out.credited_micro, 583);
    assert_eq!(acc.balance(&op(1).0), 583);
    assert_eq!(
        code(r.apply_tx(&CHAIN, &signed(1, 1, TxKind::Withdraw), T0, &mut acc)),
        "VALIDATOR_NOTHING_TO_WITHDRAW"
    );
}

#[test]
fn the_same_blocks_give_the_same_root() {
    let run = || {
        let mut r = four();
        let mut acc = funded(9, 2 * MIN);
        r.apply_tx(&CHAIN, &register(9, 0, 10, MIN), T0, &mut acc)
            .unwrap();
        r.record_commit(&[hot(1), hot(2), hot(3)], 7, T0 + 10, &mut acc);
        r.close_block(1, 7);
        r.apply_offence(
            &Offence::DoubleSign {
                validator: hot(1),
                evidence_id: [5; 32],
            },
            T0 + 20,
            &mut acc,
        )
        .unwrap();
        r.close_block(2, 3);
        (r.root(), r)
    };
    let (a, ra) = run();
    let (b, _) = run();
    assert_eq!(a, b);
    assert_ne!(a, four().root());
    assert_eq!(ra.epoch(), 1);
}

#[test]
fn the_signed_text_is_readable() {
    let tx = register(9, 3, 10, MIN);
    let text = tx::signed_text(&CHAIN, &tx.operator, tx.nonce, &tx.kind);
    assert!(text.starts_with("STEP validator transaction v1\nchain: 0909"));
    assert!(text.contains(&format!(
        "\noperator: {}\nnonce: 3\nkind: register\n",
        op(9)
    )));
    assert!(text.ends_with(&format!("p2p_id: {PEER}\nstake_micro: {MIN}")));
}

#[test]
fn the_json_form_round_trips_every_kind_and_refuses_bad_input() {
    for tx in [
        register(9, 0, 10, MIN),
        add(9, 1, 5),
        signed(9, 2, TxKind::Unbond { amount_micro: 7 }),
        signed(
            9,
            3,
            TxKind::RotateKey {
                consensus_key: hot(11),
            },
        ),
        signed(9, 4, TxKind::Withdraw),
        signed(9, 5, TxKind::Unjail),
    ] {
        let json = tx.to_json();
        assert_eq!(
            ValidatorTx::from_json(json.as_bytes()).unwrap(),
            tx,
            "{json}"
        );
        tx.verify_signature(&CHAIN).unwrap();
    }
    let ok = add(9, 1, 5).to_json();
    let bad = |from: &str, to: &str| {
        let j = ok.replace(from, to);
        assert_ne!(j, ok, "{from}");
        ValidatorTx::from_json(j.as_bytes()).unwrap_err()
    };
    assert!(matches!(
        bad("\"5\"", "\"-5\""),
        wire::TxWireError::BadField {
            field: "amount_micro",
            ..
        }
    ));
    assert!(matches!(
        bad("\"5\"", "\"99999999999999999999\""),
        wire::TxWireError::BadField { .. }
    ));
    assert!(matches!(
        bad("\"stake\"", "\"mint\""),
        wire::TxWireError::UnknownKind { .. }
    ));
    assert!(matches!(
        bad("\"nonce\"", "\"nonse\""),
        wire::TxWireError::Json { .. }
    ));
    assert!(matches!(
        bad("\"signature\":\"0x", "\"signature\":\"0xzz"),
        wire::TxWireError::BadField {
            field: "signature",
            ..
        }
    ));
    let big = vec![b' '; wire::TX_JSON_MAX_BYTES + 1];
    assert_eq!(
        ValidatorTx::from_json(&big).unwrap_err().code(),
        "PAYLOAD_TOO_LARGE"
    );
    let no_amount = ok.replace(",\"amount_micro\":\"5\"", "");
    assert!(matches!(
        ValidatorTx::from_json(no_amount.as_bytes()),
        Err(wire::TxWireError::BadField {
            field: "amount_micro",
            ..
        })
    ));
}
