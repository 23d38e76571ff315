//! A Phase 2 history for the migration tests: the shared valid samples
//! submitted to the [`Phase2`] stand-in, plus the defect cases an import
//! must handle, and its collections written as a `mongoexport` directory.

use std::path::Path;

use serde_json::{json, Value};
use step_engine::jsnum::js_string;
use step_engine::message::eip191_digest;
use step_engine::signing::{key, sign_digest};

use crate::phase2::Phase2;

/// A bad-checksum triangle id: Phase 2 saves a mock triangle for it.
pub const MOCK_TRIANGLE: &str = "STEP-TRI-v1:A1-00000000000000000000-AAA";

/// What the history holds.
#[derive(Debug)]
pub struct History {
    pub phase2: Phase2,
    /// Bodies Phase 2 answered 200, in order.
    pub accepted: Vec<String>,
    /// The account (lower case) that Phase 2 also holds in upper case.
    pub case_merged: String,
    /// Its upper-case `_id`.
    pub case_variant: String,
    /// The account that mined the mock triangle.
    pub mock_miner: String,
}

/// A body signed by `seed`'s key 0 over any triangle text (no checksum).
pub fn signed_raw(seed: &str, tri: &str, lat: f64, lon: f64, ts: &str, nonce: &str) -> String {
    let k = key(seed, 0);
    let account = k.address.to_string();
    let acc = 5.0;
    let msg = format!(
        "STEP-PROOF-v1|account:{account}|triangle:{tri}|lat:{}|lon:{}|acc:{}|ts:{ts}|nonce:{nonce}",
        js_string(lat),
        js_string(lon),
        js_string(acc)
    );
    let sig = sign_digest(&k, eip191_digest(msg.as_bytes()));
    json!({"payload": {"version": "STEP-PROOF-v1", "account": account, "triangleId": tri,
                       "lat": lat, "lon": lon, "accuracy": acc, "timestamp": ts, "nonce": nonce},
           "signature": format!("0x{}", hex::encode(sig))})
    .to_string()
}

/// The shared valid samples (Phase 2's speed gate and moratorium refuse most
/// of them: they are 1 s apart), 220 fresh proofs of 20 accounts 11 s apart
/// (11 clicks on each account's triangle: it subdivides), one sample
/// resubmitted with its account in upper case (accepted again: defect 5),
/// and one proof on a mock triangle (defect 3).
///
/// # Panics
/// If Phase 2's stand-in does not accept the defect cases.
pub fn sample_history() -> History {
    let mut phase2 = Phase2::new();
    let mut accepted = Vec::new();
    for line in crate::shared_lines("sample-valid.jsonl") {
        let body = crate::cluster::strip_expectations(&line);
        if phase2.submit(body.as_bytes()).status == 200 {
            accepted.push(body);
        }
    }
    let before = accepted.len();
    for body in crate::fresh_valid("migrate-history", 220, 20) {
        // Phase 2's planar check refuses the triangles it gets wrong.
        if phase2.submit(&body).status == 200 {
            accepted.push(String::from_utf8(body).expect("utf-8"));
        }
    }
    assert!(accepted.len() - before >= 150, "fresh proofs Phase 2 took");
    let first = accepted
        .first()
        .cloned()
        .expect("a sample Phase 2 accepted");
    let mut v: Value = serde_json::from_str(&first).expect("json");
    let lower = v["payload"]["account"]
        .as_str()
        .expect("account")
        .to_owned();
    let upper = format!("0x{}", lower[2..].to_ascii_uppercase());
    v["payload"]["account"] = Value::String(upper.clone());
    let variant = v.to_string();
    let a = phase2.submit(variant.as_bytes());
    assert_eq!(
        a.status, 200,
        "Phase 2 takes the letter-case replay: {:?}",
        a.body
    );
    accepted.push(variant);
    let mock = signed_raw(
        "migrate-mock",
        MOCK_TRIANGLE,
        10.5,
        20.25,
        "2026-01-01T01:00:00.000Z",
        "mock-1",
    );
    let a = phase2.submit(mock.as_bytes());
    assert_eq!(a.status, 200, "Phase 2 takes a mock triangle: {:?}", a.body);
    accepted.push(mock);
    History {
        phase2,
        accepted,
        case_merged: lower,
        case_variant: upper,
        mock_miner: key("migrate-mock", 0).address.to_string(),
    }
}

/// Writes `accounts.json`, `triangles.json`, `triangle_events.json` into
/// `dir`, one relaxed Extended JSON document per line (mongoexport's form).
///
/// # Panics
/// If a file cannot be written.
pub fn write_export(phase2: &Phase2, dir: &Path) {
    std::fs::create_dir_all(dir).expect("export dir");
    for (name, docs) in phase2.export() {
        let mut text = String::new();
        for d in docs {
            text.push_str(&d.to_string());
            text.push('\n');
        }
        std::fs::write(dir.join(format!("{name}.json")), text).expect("write export");
    }
}
