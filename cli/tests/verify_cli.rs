//! `step verify` as a user runs it: real process, real files, exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn shared(name: &str) -> PathBuf {
    step_testkit::shared_dir().join(name)
}

fn step(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_step"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn step");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

/// `step verify <extra> --speed-gate off --moratorium off` on both sample files.
fn verify_samples(extra: &[&str]) -> (i32, String, String) {
    let valid = shared("sample-valid.jsonl");
    let invalid = shared("sample-invalid.jsonl");
    let mut args = vec!["verify"];
    args.extend_from_slice(extra);
    args.extend([
        "--speed-gate",
        "off",
        "--moratorium",
        "off",
        valid.to_str().expect("UTF-8 path"),
        invalid.to_str().expect("UTF-8 path"),
    ]);
    step(&args, b"")
}

#[test]
fn samples_pass_with_expect() {
    let (code, out, err) = verify_samples(&["--expect"]);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last(), Some(&"133 passed, 0 failed"));
    assert_eq!(
        lines[0],
        r#"{"line":1,"ok":true,"code":null,"reward":"1.000000"}"#
    );
    assert_eq!(
        lines[1],
        r#"{"line":2,"ok":true,"code":null,"reward":"0.500000"}"#
    );
    for l in &lines[..133] {
        let v: serde_json::Value = serde_json::from_str(l).expect("verdict is JSON");
        assert!(v["line"].is_u64() && v["ok"].is_boolean());
    }
}

#[test]
fn heuristics_are_on_by_default() {
    // The samples jump across the globe every second: with the speed gate and
    // moratorium on, an account's second proof is rejected.
    let text = std::fs::read_to_string(shared("sample-valid.jsonl")).expect("samples");
    let (code, out, _) = step(&["verify", "-"], text.as_bytes());
    assert_eq!(code, 0);
    let line11: serde_json::Value = serde_json::from_str(out.lines().nth(10).unwrap()).unwrap();
    assert_eq!(line11["ok"], false);
    assert_eq!(line11["code"], "TOO_FAST");
}

#[test]
fn malformed_lines_get_verdicts_and_never_stop_the_run() {
    let first = std::fs::read_to_string(shared("sample-valid.jsonl")).expect("samples");
    let first = first.lines().next().unwrap();
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(20_000));
    let input = format!("not json\n\n[1,2]\n{big}\n\u{fffd}\n{first}\n{first}\n");
    let (code, out, _) = step(&["verify"], input.as_bytes());
    assert_eq!(code, 0);
    let codes: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| serde_json::json!([v["line"], v["code"]]))
        .collect();
    assert_eq!(
        codes,
        vec![
            serde_json::json!([1, "INVALID_PAYLOAD"]),
            serde_json::json!([3, "INVALID_PAYLOAD"]),
            serde_json::json!([4, "PAYLOAD_TOO_LARGE"]),
            serde_json::json!([5, "INVALID_PAYLOAD"]),
            serde_json::json!([6, null]),
            serde_json::json!([7, "NONCE_REPLAY"]),
        ]
    );
}

#[test]
fn expect_failure_exits_one_and_says_why() {
    let first = std::fs::read_to_string(shared("sample-valid.jsonl")).expect("samples");
    let first = first.lines().next().unwrap();
    // A valid proof labelled as expecting a rejection.
    let labelled = first.trim_end_matches('}').to_owned() + r#","expect":"BAD_SIGNATURE"}"#;
    let (code, out, err) = step(&["verify", "--expect"], format!("{labelled}\n").as_bytes());
    assert_eq!(code, 1);
    assert!(out.ends_with("0 passed, 1 failed\n"), "{out}");
    assert!(
        err.contains("line 1: expected BAD_SIGNATURE, got ok"),
        "{err}"
    );
}

#[test]
fn k256_backend_gives_the_same_verdicts() {
    let run = |backend: &str| verify_samples(&["--backend", backend]).1;
    assert_eq!(run("secp256k1"), run("k256"));
}

#[test]
fn usage_errors_exit_two() {
    let (code, _, err) = step(&["verify", "/nonexistent/file.jsonl"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("cannot open /nonexistent/file.jsonl"), "{err}");
    let (code, _, _) = step(&["verify", "--backend", "nope"], b"");
    assert_eq!(code, 2);
}
