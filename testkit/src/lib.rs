//! Helpers shared by the workspace's tests (a dev-dependency only, never
//! linked into `step`): signing test proofs with seed-derived keys
//! (`step_engine::signing`, which this crate turns on), corpora of fresh
//! proofs, the shared sample files, a blocking server-sent-events reader,
//! and the consistency checks of a load report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod cluster;
pub mod http;
pub mod phase2;
pub mod phase2_history;
pub mod phase2_http;
pub mod report;
pub mod sse;

use std::path::{Path, PathBuf};
use std::process::Command;
use step_engine::TriangleId;

/// Signing accounts (key, address, public key) and the signing helpers.
pub use step_engine::signing::{
    key as account, point_in as point, sign, signed_body as signed_body_at, write_body,
    Key as Account,
};

/// 2026-01-01T00:00:00.000Z in unix ms (the reference generators' start).
pub const T0: i64 = 1_767_225_600_000;

/// `../shared/step-proof-v1` beside the repository, or `$STEP_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("STEP_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/step-proof-v1"),
        PathBuf::from,
    )
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

/// The non-empty lines of a shared file.
pub fn shared_lines(name: &str) -> Vec<String> {
    read_shared(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A triangle chosen by `i`: every face and level 1..=21.
pub fn triangle(i: u64) -> TriangleId {
    let level = (i % 21) as usize + 1;
    let face = ((i / 21) % 20) as u8;
    let digits: Vec<u8> = (0..level - 1)
        .map(|d| ((i >> (d % 16)) as u8 ^ d as u8) & 3)
        .collect();
    TriangleId::new(face, &digits).expect("valid triangle")
}

/// A signed body for `acct` at `t`'s centroid, time `ms`, nonce `nonce`
/// (accuracy 3–40 m, from `ms`).
pub fn signed_body(acct: &Account, t: &TriangleId, ms: i64, nonce: &str) -> Vec<u8> {
    let accuracy_m = 3.0 + (ms % 3700) as f64 / 100.0;
    signed_body_at(acct, t, point(t), accuracy_m, ms, nonce)
}

/// `n` valid proofs over `accounts` accounts, round-robin, each account's
/// proofs 11 s apart at the same place (they pass the speed gate and the
/// moratorium when submitted in this order).
pub fn fresh_valid(seed: &str, n: usize, accounts: usize) -> Vec<Vec<u8>> {
    let accts: Vec<Account> = (0..accounts as u64).map(|k| account(seed, k)).collect();
    (0..n)
        .map(|i| {
            let a = i % accounts;
            let round = (i / accounts) as i64;
            let t = triangle(a as u64 * 7 + 3);
            signed_body(
                &accts[a],
                &t,
                T0 + round * 11_000 + a as i64,
                &format!("{seed}-{i}"),
            )
        })
        .collect()
}

/// `n` valid proofs, one account each (so every proof passes the stateful
/// checks in any order), tagged by `seed`.
pub fn one_per_account(seed: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let acct = account(seed, i as u64);
            let t = triangle(i as u64 * 7 + 3);
            signed_body(&acct, &t, T0 + i as i64, &format!("{seed}-{i}"))
        })
        .collect()
}

/// `n` fresh valid proof lines over `accounts` keys: from the shared Python
/// generator if `STEP_GEN_DIR` is set (its output file goes to `dir`), else
/// signed with `step_engine::signing` (not under `CI=true`: there the
/// generator is required). Proof i is signed by key
/// i mod `accounts` (the generator needs 2 or more), 1 s after proof i − 1.
pub fn fresh_proofs(seed: &str, n: usize, accounts: usize, dir: &Path) -> Vec<String> {
    assert!(
        n >= 1 && accounts >= 2,
        "gen_step_proofs.py needs --n >= 1 --accounts >= 2"
    );
    if let Some(gen) = std::env::var_os("STEP_GEN_DIR") {
        let gen = PathBuf::from(gen);
        let out = dir.join(format!("{seed}.jsonl"));
        let status = Command::new(gen.join(".venv/bin/python"))
            .arg(gen.join("gen_step_proofs.py"))
            .args(["--n", &n.to_string(), "--accounts", &accounts.to_string()])
            .args(["--seed", seed])
            .arg("--valid-out")
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("running the generator in {}: {e}", gen.display()));
        assert!(status.success(), "gen_step_proofs.py: {status}");
        eprintln!(
            "proofs: {n} signed by the shared Python generator ({}), seed {seed}",
            gen.display()
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), n);
        return lines;
    }
    // CI must check the proofs of the reference generator, not only our own.
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but STEP_GEN_DIR is not set: the shared Python generator must sign these proofs (scripts/test installs it)"
    );
    eprintln!("proofs: {n} signed with step_engine::signing (STEP_GEN_DIR not set), seed {seed}");
    let keys: Vec<_> = (0..accounts as u64).map(|k| account(seed, k)).collect();
    (0..n)
        .map(|i| {
            let level_digits: Vec<u8> = (0..i % 21).map(|d| ((i + d) % 4) as u8).collect();
            let t = TriangleId::new((i * 7 % 20) as u8, &level_digits).unwrap();
            let body = signed_body_at(
                &keys[i % accounts],
                &t,
                point(&t),
                12.5,
                T0 + 1000 * i as i64,
                &format!("e2e-{seed}-{i:06}"),
            );
            String::from_utf8(body).unwrap()
        })
        .collect()
}

/// `promtool check rules RULES` and `promtool test rules TESTS` in `dir`,
/// asserting both pass. Without promtool on PATH it says so and returns,
/// except under `CI=true`, where it fails: CI must run the rules' tests.
pub fn promtool_rules(dir: &Path, rules: &str, tests: &str) {
    let run = |args: &[&str]| {
        Command::new("promtool")
            .args(args)
            .current_dir(dir)
            .output()
    };
    match run(&["check", "rules", rules]) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI=true and promtool is not on PATH: the alert rules' unit tests cannot run (apt-get install prometheus)"
            );
            eprintln!(
                "promtool not on PATH: skipping `promtool test rules` (apt-get install prometheus)"
            );
        }
        Err(e) => panic!("promtool: {e}"),
        Ok(out) => {
            assert!(
                out.status.success(),
                "promtool check rules {rules}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            let out = run(&["test", "rules", tests]).unwrap();
            assert!(
                out.status.success(),
                "promtool test rules {tests}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_valid_proofs_verify_in_order() {
        let v = step_engine::Verifier::default();
        let mut state = step_engine::MemoryState::new();
        for b in fresh_valid("testkit", 40, 7) {
            v.verify(&b, T0, &mut state).expect("accepted");
        }
    }

    #[test]
    fn triangles_cover_every_level() {
        let levels: std::collections::BTreeSet<u8> = (0..21).map(|i| triangle(i).level()).collect();
        assert_eq!(levels.len(), 21);
    }
}
