//! Shared helpers for the engine's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/step-proof-v1` beside the repository, or `$STEP_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    if let Ok(d) = std::env::var("STEP_SHARED_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/step-proof-v1")
}

/// Reads a shared file; a missing file fails the test with a clear message.
pub fn read_shared(name: &str) -> String {
    let p = shared_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); set STEP_SHARED_DIR or put shared/ beside the repo",
            p.display()
        )
    })
}

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
