//! The registry's slashing, rewards, root and transaction forms (the
//! fixtures are the parent test module's).

use super::*;

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
