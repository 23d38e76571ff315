//! Stateful heuristics, with an injected clock and hand-built state.

mod common;

use serde_json::{json, Value};
use step_engine::heuristics::{check_stateful, AgeWindow, LastProof};
use step_engine::proof::{parse, Proof, Timestamp};
use step_engine::{Code, Limits, MemoryState, ProofState, Reject, Verifier};

fn sample_line(i: usize) -> String {
    common::lines(&common::read_shared("sample-valid.jsonl"))[i].to_owned()
}

/// A parsed proof from sample 0 with some payload fields replaced (the
/// signature no longer matters: these tests drive the stateful stage directly).
fn proof_with(changes: Value) -> Proof {
    let mut v: Value = serde_json::from_str(&sample_line(0)).expect("json");
    for (k, x) in changes.as_object().expect("object") {
        v["payload"][k] = x.clone();
    }
    parse(&serde_json::to_vec(&v).expect("ser")).expect("parses")
}

fn ts(ms: i64) -> String {
    Timestamp::from_unix_ms(ms)
        .expect("in range")
        .as_str()
        .to_owned()
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00.000Z

/// The default limits with only the named gates on.
fn gates(speed: bool, moratorium: bool) -> Limits {
    let d = Limits::default();
    Limits {
        speed_mps_max: d.speed_mps_max.filter(|_| speed),
        moratorium_ms: d.moratorium_ms.filter(|_| moratorium),
        ..d
    }
}

#[test]
fn timestamp_round_trip() {
    assert_eq!(ts(T0), "2026-01-01T00:00:00.000Z");
    assert_eq!(
        Timestamp::parse("2026-01-01T00:00:00.117Z")
            .unwrap()
            .unix_ms(),
        T0 + 117
    );
    assert_eq!(
        Timestamp::parse("2024-02-29T23:59:59.999Z")
            .unwrap()
            .as_str(),
        "2024-02-29T23:59:59.999Z"
    );
    assert!(Timestamp::parse("2023-02-29T00:00:00.000Z").is_none());
    assert_eq!(
        Timestamp::parse("1970-01-01T00:00:00.000Z")
            .unwrap()
            .unix_ms(),
        0
    );
    for ms in [0, 951_782_400_000, T0 + 86_399_999, 4_102_444_800_000] {
        assert_eq!(Timestamp::parse(&ts(ms)).unwrap().unix_ms(), ms);
    }
}

fn seed_state(lat: f64, lon: f64, at_ms: i64) -> MemoryState {
    let mut s = MemoryState::new();
    let prev = proof_with(json!({"nonce": "prev"}));
    s.record(
        prev.account,
        prev.nonce,
        LastProof {
            unix_ms: at_ms,
            lat,
            lon,
        },
    );
    s
}

#[test]
fn speed_gate() {
    let limits = gates(true, false);
    // 0.001° of latitude ≈ 111.2 m. In 10 s that is 11.1 m/s: allowed. In 5 s, 22 m/s: too fast.
    let state = seed_state(10.0, 20.0, T0);
    let ok =
        proof_with(json!({"lat": 10.001, "lon": 20.0, "timestamp": ts(T0 + 10_000), "nonce": "a"}));
    assert_eq!(check_stateful(&limits, &ok, &state), Ok(()));
    let fast =
        proof_with(json!({"lat": 10.001, "lon": 20.0, "timestamp": ts(T0 + 5_000), "nonce": "b"}));
    let err = check_stateful(&limits, &fast, &state).unwrap_err();
    assert!(
        matches!(err, Reject::TooFast { speed_mps, .. } if (speed_mps - 22.24).abs() < 0.01),
        "{err:?}"
    );
    assert_eq!(err.code(), Code::TooFast);
    // Zero and negative deltas are TOO_FAST, as in Phase 2.
    for dt in [0, -1, -200_000] {
        let p =
            proof_with(json!({"lat": 10.0, "lon": 20.0, "timestamp": ts(T0 + dt), "nonce": "c"}));
        assert_eq!(
            check_stateful(&limits, &p, &state).unwrap_err().code(),
            Code::TooFast,
            "dt {dt}"
        );
    }
    // Across the antimeridian the distance is short, not half the planet.
    let state = seed_state(0.0, 179.9999, T0);
    let p = proof_with(
        json!({"lat": 0.0, "lon": -179.9999, "timestamp": ts(T0 + 10_000), "nonce": "d"}),
    );
    assert_eq!(check_stateful(&limits, &p, &state), Ok(()));
}

#[test]
fn moratorium() {
    let limits = gates(false, true);
    let state = seed_state(10.0, 20.0, T0);
    for (dt, ok) in [
        (9_999, false),
        (10_000, true),
        (-1, false),
        (-130_000, false),
        (60_000, true),
    ] {
        let p = proof_with(json!({"timestamp": ts(T0 + dt), "nonce": format!("m{dt}")}));
        let r = check_stateful(&limits, &p, &state);
        assert_eq!(r.is_ok(), ok, "dt {dt}: {r:?}");
        if let Err(e) = r {
            assert_eq!(e.code(), Code::Moratorium);
        }
    }
}

#[test]
fn nonce_replay_is_keyed_by_address_not_spelling() {
    let limits = gates(false, false);
    let state = seed_state(10.0, 20.0, T0);
    let lower = proof_with(json!({"nonce": "prev", "timestamp": ts(T0 + 60_000)}));
    let upper = proof_with(
        json!({"nonce": "prev", "account": "0x6E929CDBAAF7A414B1BBE16A6275159FB93CEB53"}),
    );
    assert_eq!(
        check_stateful(&limits, &lower, &state),
        Err(Reject::NonceReplay)
    );
    assert_eq!(
        check_stateful(&limits, &upper, &state),
        Err(Reject::NonceReplay)
    );
}

#[test]
fn resubmission_in_another_letter_case_is_a_replay() {
    // Phase 2 defect 5: the same signed proof with the account in upper case.
    let v = Verifier::new(Limits::default(), Default::default());
    let mut state = MemoryState::new();
    let line = sample_line(0);
    let mut upper: Value = serde_json::from_str(&line).expect("json");
    let acct = upper["payload"]["account"]
        .as_str()
        .unwrap()
        .to_ascii_uppercase()
        .replacen("0X", "0x", 1);
    upper["payload"]["account"] = json!(acct);
    let upper = serde_json::to_vec(&upper).expect("ser");
    v.verify(&upper, 0, &mut state)
        .expect("mixed case verifies: the message uses lowercase");
    assert_eq!(
        v.verify(line.as_bytes(), 0, &mut state).unwrap_err(),
        Reject::NonceReplay
    );
}

#[test]
fn age_window_uses_the_injected_clock() {
    let limits = Limits {
        age_window: Some(AgeWindow {
            max_age_ms: 60_000,
            max_future_ms: 5_000,
        }),
        ..Limits::default()
    };
    let v = Verifier::new(limits, Default::default());
    let line = sample_line(0); // 2026-01-01T00:00:00.117Z
    let at = T0 + 117;
    for (now, ok) in [
        (at, true),
        (at + 60_000, true),
        (at + 60_001, false),
        (at - 5_000, true),
        (at - 5_001, false),
    ] {
        let r = v.verify(line.as_bytes(), now, &mut MemoryState::new());
        assert_eq!(r.is_ok(), ok, "now {now}: {r:?}");
        if let Err(e) = r {
            assert_eq!(e.code(), Code::StaleProof);
        }
    }
    // Off by default: a proof signed years ago still verifies.
    let v = Verifier::default();
    v.verify(line.as_bytes(), i64::MAX / 2, &mut MemoryState::new())
        .expect("no window by default");
}

#[test]
fn limits_are_configurable() {
    let strict = Limits {
        accuracy_m_max: 10.0,
        ..Limits::default()
    };
    let p = proof_with(json!({"accuracy": 31.23}));
    assert_eq!(
        strict.check_accuracy(p.accuracy_m).unwrap_err().code(),
        Code::LowGpsAccuracy
    );
    assert!(Limits::default().check_accuracy(p.accuracy_m).is_ok());
}

/// `forget` drops a proof's nonce, and the account's last proof unless a
/// newer one was recorded since.
#[test]
fn forget_drops_the_nonce_and_a_last_proof_that_is_not_newer() {
    let a = proof_with(json!({"timestamp": ts(T0), "nonce": "a"}));
    let b = proof_with(json!({"timestamp": ts(T0 + 20_000), "nonce": "b"}));
    let mut s = MemoryState::new();
    s.record(a.account, a.nonce, LastProof::of(&a));
    s.record(b.account, b.nonce, LastProof::of(&b));
    assert_eq!((s.nonces(), s.accounts()), (2, 1));

    // `a` decided: its nonce goes, the newer `b` stays the last proof.
    s.forget(&a.account, &a.nonce, T0);
    assert!(!s.nonce_used(&a.account, &a.nonce));
    assert!(s.nonce_used(&b.account, &b.nonce));
    assert_eq!(s.last_proof(&b.account), Some(LastProof::of(&b)));

    // `b` decided: nothing is left.
    s.forget(&b.account, &b.nonce, T0 + 20_000);
    assert_eq!((s.nonces(), s.accounts()), (0, 0));
    // Forgetting what is not there is a no-op.
    s.forget(&b.account, &b.nonce, T0 + 20_000);
    assert_eq!((s.nonces(), s.accounts()), (0, 0));
}
