//! Strict parsing: every malformed body gets a named rejection and a clear code.

mod common;

use serde_json::{json, Value};
use step_engine::error::{Field, Reject, SignatureError};
use step_engine::proof::{parse, BODY_MAX_BYTES};
use step_engine::{Code, Limits, MemoryState, Verifier};

fn sample() -> Value {
    let text = common::read_shared("sample-valid.jsonl");
    serde_json::from_str(common::lines(&text)[0]).expect("json")
}

fn code_of(body: &[u8]) -> Code {
    let v = Verifier::new(Limits::default(), Default::default());
    match v.verify(body, 0, &mut MemoryState::new()) {
        Ok(_) => panic!("accepted: {}", String::from_utf8_lossy(body)),
        Err(e) => e.code(),
    }
}

#[test]
fn sample_parses() {
    let s = sample();
    let p = parse(serde_json::to_string(&s).unwrap().as_bytes()).expect("parses");
    assert_eq!(p.lat, -20.905157);
    assert_eq!(p.lon, -90.0);
    assert_eq!(p.accuracy_m, 31.23);
    assert_eq!(p.timestamp.as_str(), "2026-01-01T00:00:00.117Z");
    assert_eq!(p.nonce.as_str(), "3ae9b00f-a3c3-42a0-8605-cefc2bdb61e1");
}

#[test]
fn missing_fields_are_named() {
    let s = sample();
    for field in [
        "version",
        "account",
        "triangleId",
        "lat",
        "lon",
        "accuracy",
        "timestamp",
        "nonce",
    ] {
        let mut p = s["payload"].clone();
        p.as_object_mut().unwrap().remove(field);
        let err = parse(&common::body(&p, s["signature"].as_str().unwrap())).unwrap_err();
        assert!(
            matches!(err, Reject::MissingField { field: f } if f.name() == field),
            "{field}: {err:?}"
        );
        assert_eq!(err.code(), Code::InvalidPayload);
    }
    let no_sig = serde_json::to_vec(&json!({"payload": s["payload"]})).unwrap();
    assert_eq!(
        parse(&no_sig).unwrap_err(),
        Reject::MissingField {
            field: Field::Signature
        }
    );
    let no_payload = serde_json::to_vec(&json!({"signature": s["signature"]})).unwrap();
    assert_eq!(
        parse(&no_payload).unwrap_err(),
        Reject::MissingField {
            field: Field::Payload
        }
    );
}

#[test]
fn wrong_types_are_invalid_payload() {
    let s = sample();
    let cases = [
        ("lat", json!("-20.905157")),
        ("lon", json!(null)),
        ("accuracy", json!([1])),
        ("account", json!(12)),
        ("nonce", json!({"a": 1})),
        ("timestamp", json!(1767225600117u64)),
        ("lat", json!(90.000001)),
        ("lon", json!(-180.5)),
        ("timestamp", json!("2026-01-01T00:00:00Z")),
        ("timestamp", json!("2026-02-30T00:00:00.000Z")),
        (
            "account",
            json!("0x6e929cdbaaf7a414b1bbe16a6275159fb93ceb5"),
        ),
        ("nonce", json!("")),
        ("nonce", json!("x".repeat(65))),
        ("nonce", json!("a\u{7}b")),
        ("version", json!("STEP-PROOF-v2")),
        (
            "triangleId",
            json!("STEP-TRI-v1:M1-00000000000000000000-Z28"),
        ),
    ];
    for (field, value) in cases {
        let mut p = s["payload"].clone();
        p[field] = value.clone();
        let b = common::body(&p, s["signature"].as_str().unwrap());
        assert_eq!(code_of(&b), Code::InvalidPayload, "{field} = {value}");
    }
}

#[test]
fn structural_errors() {
    assert!(matches!(parse(b"{"), Err(Reject::MalformedJson { .. })));
    assert!(matches!(parse(b""), Err(Reject::MalformedJson { .. })));
    assert!(matches!(
        parse(b"\xff\xfe"),
        Err(Reject::MalformedJson { .. })
    ));
    assert_eq!(parse(b"[1,2]"), Err(Reject::NotAnObject));
    assert_eq!(parse(b"\"x\""), Err(Reject::NotAnObject));
    assert_eq!(parse(b"null"), Err(Reject::NotAnObject));
    assert_eq!(
        parse(br#"{"payload":[],"signature":"0x"}"#),
        Err(Reject::InvalidField {
            field: Field::Payload
        })
    );
    assert_eq!(
        parse(br#"{"payload":{},"signature":5}"#),
        Err(Reject::InvalidField {
            field: Field::Signature
        })
    );
    assert!(matches!(
        parse(br#"{"payload":{}} trailing"#),
        Err(Reject::MalformedJson { .. })
    ));
    assert!(matches!(
        parse(br#"{"payload":{"lat":1e400}}"#),
        Err(Reject::MalformedJson { .. })
    ));
    for b in [&b"{"[..], b"[]", b"{\"payload\":1}"] {
        assert_eq!(code_of(b), Code::InvalidPayload);
    }
}

#[test]
fn duplicate_keys_are_rejected() {
    let s = sample();
    let text = serde_json::to_string(&s).unwrap();
    // Duplicate a payload key: the first copy would win in one parser, the last in another.
    let dup_lat = text.replacen("\"lat\":", "\"lat\":10,\"lat\":", 1);
    assert_eq!(
        parse(dup_lat.as_bytes()),
        Err(Reject::DuplicateKey { field: Field::Lat })
    );
    let dup_sig = text.replacen("\"signature\":", "\"signature\":\"0x00\",\"signature\":", 1);
    assert_eq!(
        parse(dup_sig.as_bytes()),
        Err(Reject::DuplicateKey {
            field: Field::Signature
        })
    );
    let dup_payload = format!("{{\"payload\":{{}},{}", &text[1..]);
    assert_eq!(
        parse(dup_payload.as_bytes()),
        Err(Reject::DuplicateKey {
            field: Field::Payload
        })
    );
}

/// Every string field escaped at once: each is unescaped into its own slot,
/// so none may overwrite another. Also the duplicate of an escaped field.
#[test]
fn every_string_field_escaped_at_once_parses_like_the_plain_body() {
    let s = sample();
    let plain = serde_json::to_string(&s).unwrap();
    let mut text = plain.clone();
    for key in [
        "version",
        "account",
        "triangleId",
        "timestamp",
        "nonce",
        "signature",
    ] {
        let from = format!("\"{key}\":\"");
        let at = text.find(&from).expect("field present") + from.len();
        let c = text.as_bytes()[at];
        text.replace_range(at..at + 1, &format!("\\u{:04x}", c));
    }
    assert_ne!(text, plain);
    assert_eq!(parse(text.as_bytes()), parse(plain.as_bytes()));
    let v = Verifier::new(Limits::default(), Default::default());
    v.verify(text.as_bytes(), 0, &mut MemoryState::new())
        .expect("accepted");
    let dup = text.replacen("\"nonce\":", "\"nonce\":\"\\u0041\",\"nonce\":", 1);
    assert_eq!(
        parse(dup.as_bytes()),
        Err(Reject::DuplicateKey {
            field: Field::Nonce
        })
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let mut s = sample();
    s["extra"] = json!({"nested": [1, 2, {"x": "y"}]});
    s["payload"]["appVersion"] = json!("1.2.3");
    let v = Verifier::new(Limits::default(), Default::default());
    v.verify(&serde_json::to_vec(&s).unwrap(), 0, &mut MemoryState::new())
        .expect("accepted");
}

#[test]
fn oversized_body_is_payload_too_large() {
    let mut s = sample();
    s["padding"] = json!("x".repeat(BODY_MAX_BYTES));
    let b = serde_json::to_vec(&s).unwrap();
    assert!(matches!(parse(&b), Err(Reject::BodyTooLarge { .. })));
    assert_eq!(code_of(&b), Code::PayloadTooLarge);
    assert_eq!(Code::PayloadTooLarge.http_status(), 413);
}

#[test]
fn malformed_signatures_are_bad_signature() {
    let s = sample();
    let sig = s["signature"].as_str().unwrap().to_owned();
    let cases = [
        (sig[2..].to_owned(), SignatureError::MissingPrefix),
        (
            format!("{sig}00"),
            SignatureError::WrongLength { hex_len: 132 },
        ),
        (
            sig[..sig.len() - 2].to_owned(),
            SignatureError::WrongLength { hex_len: 128 },
        ),
        (
            format!("{}zz", &sig[..sig.len() - 2]),
            SignatureError::NotHex,
        ),
        (
            format!("{}00", &sig[..sig.len() - 2]),
            SignatureError::BadV { v: 0 },
        ),
        (
            format!("{}01", &sig[..sig.len() - 2]),
            SignatureError::BadV { v: 1 },
        ),
        (
            format!("0x{}", "00".repeat(65)),
            SignatureError::BadV { v: 0 },
        ),
        (
            format!("0x{}1b", "00".repeat(64)),
            SignatureError::ScalarOutOfRange,
        ),
        (
            "0x".to_owned() + &"ab".repeat(200),
            SignatureError::WrongLength { hex_len: 400 },
        ),
    ];
    let v = Verifier::new(Limits::default(), Default::default());
    for (bad, why) in cases {
        let b = common::body(&s["payload"], &bad);
        let err = v.verify(&b, 0, &mut MemoryState::new()).unwrap_err();
        assert_eq!(err, Reject::Signature(why), "{bad}");
        assert_eq!(err.code(), Code::BadSignature);
        assert_eq!(err.code().http_status(), 401);
    }
}

#[test]
fn accuracy_comes_before_signature() {
    // Phase 2 order: a low-accuracy proof with a broken signature reports LOW_GPS_ACCURACY.
    let s = sample();
    for acc in [json!(0), json!(-1), json!(50.000001), json!(80)] {
        let mut p = s["payload"].clone();
        p["accuracy"] = acc;
        assert_eq!(code_of(&common::body(&p, "0xdead")), Code::LowGpsAccuracy);
    }
}

#[test]
fn escaped_strings_are_read_like_json_parse() {
    // "\u0030x" is "0x": a JSON.parse-based server sees the same account.
    let s = sample();
    let text = serde_json::to_string(&s).unwrap().replacen(
        "\"account\":\"0x",
        "\"account\":\"\\u0030x",
        1,
    );
    let v = Verifier::new(Limits::default(), Default::default());
    v.verify(text.as_bytes(), 0, &mut MemoryState::new())
        .expect("accepted");
}
