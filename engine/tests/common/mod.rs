//! Shared helpers for the engine's integration tests.
#![allow(dead_code, unused_imports)]

pub use step_testkit::{read_shared, shared_dir};

/// Non-empty lines of a JSONL text.
pub fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// The `expect` and `expect_any` codes of a negative line (empty for a valid line).
pub fn expected_codes(line: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(line).expect("sample line is JSON");
    let mut out: Vec<String> = v
        .get("expect")
        .and_then(|e| e.as_str())
        .map(str::to_owned)
        .into_iter()
        .collect();
    if let Some(list) = v.get("expect_any").and_then(|e| e.as_array()) {
        out.extend(list.iter().filter_map(|c| c.as_str().map(str::to_owned)));
    }
    out
}

/// A body built from JSON text, with the signature field left as given.
pub fn body(payload: &serde_json::Value, signature: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"payload": payload, "signature": signature}))
        .expect("serialise")
}
