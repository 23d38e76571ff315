//! `step bench --rate R ...` through the binary: argument handling, and a
//! short `--devnet 1` run whose JSON report must add up.
//!
//! The devnet run needs `step devnet`; where the binary has none (`step
//! devnet --help` fails) it prints why and returns. The same counts are
//! checked against an in-process server, whatever the binary has, by
//! `perf/tests/load_e2e.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::net::TcpListener;
use std::process::{Command, Output};

const STEP: &str = env!("CARGO_BIN_EXE_step");

fn step(args: &[&str]) -> Output {
    Command::new(STEP).args(args).output().expect("run step")
}

fn last_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "last line is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn load_mode_needs_a_rate_and_targets() {
    let out = step(&["bench"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate"));
    let out = step(&["bench", "--rate", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
    let out = step(&["bench", "--rate", "10", "--target", "ftp://x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = step(&[
        "bench",
        "--rate",
        "10",
        "--target",
        "http://127.0.0.1:1",
        "--duration",
        "soon",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // The engine subcommand still parses, and does not mix with load flags.
    assert!(step(&["bench", "engine", "--help"]).status.success());
    assert!(!step(&["bench", "--rate", "5", "engine"]).status.success());
}

/// Nothing listens: every proof is an error, counted, and the report adds up.
#[test]
fn unreachable_target_reports_errors() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = step(&[
        "bench",
        "--rate",
        "40",
        "--duration",
        "500ms",
        "--target",
        &url,
        "--no-cache",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = last_json(&out);
    assert_eq!(j["scheduled"], 20, "{j}");
    assert_eq!(j["errors"], j["sent"], "{j}");
    assert_eq!(j["finality_tracked"], false, "{j}");
}

/// A port P with P and P + 100 free (HTTP and P2P of validator 0).
fn free_base_port() -> u16 {
    for _ in 0..200 {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p < 60000
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 100)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port pair");
}

#[test]
fn devnet_1_report_adds_up() {
    let help = step(&["devnet", "--help"]);
    if !help.status.success() {
        eprintln!("SKIPPED devnet_1_report_adds_up: `step devnet --help` failed (no devnet in this binary)");
        return;
    }
    let port = free_base_port().to_string();
    let cache = std::env::temp_dir().join(format!("step-bench-load-test-{}", std::process::id()));
    let out = step(&[
        "bench",
        "--devnet",
        "1",
        "--base-port",
        &port,
        "--rate",
        "50",
        "--duration",
        "5s",
        "--warmup",
        "1s",
        "--invalid-ratio",
        "0.1",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--connections",
        "8",
        "--queue",
        "100000",
        // 20 accounts: each sends 15 proofs (0.4 s apart), more than the 11
        // clicks that subdivide a triangle (execution must accept them all).
        "--accounts",
        "20",
        "--finality-timeout",
        "60s",
        "--json",
    ]);
    let _ = std::fs::remove_dir_all(&cache);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let j = last_json(&out);
    let n = |k: &str| j[k].as_u64().unwrap_or_else(|| panic!("{k}: {j}"));
    assert_eq!(n("scheduled"), 250, "{j}");
    assert_eq!(n("dropped_by_generator"), 0, "{j}");
    step_testkit::report::assert_consistent(&j);
    // 50 proofs/s on one validator: all answered, all accepted ones final.
    assert_eq!(n("errors"), 0, "{j}");
    assert_eq!(n("unexpected_verdicts"), 0, "{j}");
    assert!(n("accepted") > 0, "{j}");
    assert_eq!(n("finalized"), n("accepted"), "{j}");
    assert_eq!(n("rejected_at_execution"), 0, "{j}");
    assert_eq!(j["finality_tracked"], true, "{j}");
    assert!(j["finality_ms"]["p99"].as_f64().unwrap() > 0.0, "{j}");
    assert!(n("validator_peak_rss_bytes") > 0, "{j}");
    assert_eq!(j["validators"][0]["alive"], true, "{j}");
    assert_eq!(j["devnet_stopped_cleanly"], true, "{j}");
}
