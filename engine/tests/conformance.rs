//! Conformance on the shared samples: every verdict, every canonical message,
//! for every compiled-in backend. `STEP_FRESH_DIR` adds freshly generated files
//! (`valid.jsonl`, `invalid.jsonl`, `messages.txt`), as `scripts/test` makes them.

mod common;

use step_engine::message::{eip191_digest, MessageBuf};
use step_engine::{Backend, Limits, MemoryState, Verifier};

fn no_travel_limits() -> Limits {
    // The sample files jump across the globe every second.
    Limits {
        speed_mps_max: None,
        moratorium_ms: None,
        ..Limits::default()
    }
}

fn check_files(valid: &str, invalid: &str, messages: &str) {
    let valid = common::lines(valid);
    let invalid = common::lines(invalid);
    let messages = common::lines(messages);
    assert!(!valid.is_empty());
    assert_eq!(
        messages.len(),
        valid.len() + invalid.len(),
        "one message per line"
    );

    // Canonical messages are rebuilt byte for byte from the parsed payloads.
    for (i, (line, want)) in valid
        .iter()
        .chain(invalid.iter())
        .zip(&messages)
        .enumerate()
    {
        match step_engine::proof::parse(line.as_bytes()) {
            Ok(p) => {
                let mut m = MessageBuf::default();
                m.build(&p);
                assert_eq!(m.as_str(), *want, "message of line {}", i + 1);
            }
            // Only the bad-checksum case cannot be parsed into a proof.
            Err(e) => assert!(
                line.contains("bad_checksum"),
                "line {} does not parse: {e}",
                i + 1
            ),
        }
    }

    for &backend in Backend::all() {
        let v = Verifier::new(no_travel_limits(), backend);
        let mut state = MemoryState::new();
        let mut total_micro = 0u64;
        for (i, line) in valid.iter().enumerate() {
            match v.verify(line.as_bytes(), 0, &mut state) {
                Ok(a) => total_micro += a.reward_micro,
                Err(e) => panic!(
                    "[{}] valid line {} rejected: {e} ({})",
                    backend.name(),
                    i + 1,
                    e.code()
                ),
            }
        }
        assert!(total_micro > 0);
        for (i, line) in invalid.iter().enumerate() {
            let want = common::expected_codes(line);
            match v.verify(line.as_bytes(), 0, &mut state) {
                Ok(_) => panic!(
                    "[{}] invalid line {} accepted, expected {want:?}",
                    backend.name(),
                    i + 1
                ),
                Err(e) => assert!(
                    want.iter().any(|w| w == e.code().as_str()),
                    "[{}] invalid line {}: got {} ({e}), expected {want:?}",
                    backend.name(),
                    i + 1,
                    e.code()
                ),
            }
        }
    }
}

#[test]
fn shared_samples_conform() {
    check_files(
        &common::read_shared("sample-valid.jsonl"),
        &common::read_shared("sample-invalid.jsonl"),
        &common::read_shared("sample-messages.txt"),
    );
}

#[test]
fn fresh_generated_proofs_conform() {
    let Ok(dir) = std::env::var("STEP_FRESH_DIR") else {
        eprintln!("STEP_FRESH_DIR not set: fresh proofs are checked by scripts/test");
        return;
    };
    let read =
        |n: &str| std::fs::read_to_string(std::path::Path::new(&dir).join(n)).expect("fresh file");
    check_files(
        &read("valid.jsonl"),
        &read("invalid.jsonl"),
        &read("messages.txt"),
    );
}

#[test]
fn first_sample_digest_and_signer() {
    let valid = common::read_shared("sample-valid.jsonl");
    let first = common::lines(&valid)[0];
    let p = step_engine::proof::parse(first.as_bytes()).expect("parses");
    let mut m = MessageBuf::default();
    m.build(&p);
    let d = eip191_digest(m.as_bytes());
    let sig = step_engine::crypto::check_policy(&p.signature.expect("decodes")).expect("policy");
    for &b in Backend::all() {
        let pk = b.recover(&d, &sig).expect("recovers");
        assert_eq!(
            step_engine::Address::from_public_key(&pk).to_string(),
            "0x6e929cdbaaf7a414b1bbe16a6275159fb93ceb53",
            "README known-answer key 0 address via {}",
            b.name()
        );
        b.verify_known_key(&d, &sig, &pk).expect("known-key verify");
    }
}

#[test]
fn high_s_twin_recovers_the_signer_but_is_rejected() {
    let invalid = common::read_shared("sample-invalid.jsonl");
    let line = common::lines(&invalid)
        .into_iter()
        .find(|l| l.contains("\"sig_high_s\""))
        .expect("case present");
    let p = step_engine::proof::parse(line.as_bytes()).expect("parses");
    let raw = p.signature.expect("decodes");
    assert_eq!(
        step_engine::crypto::check_policy(&raw),
        Err(step_engine::error::SignatureError::HighS)
    );
}
