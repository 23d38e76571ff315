//! Phase 2 → Phase 3 end to end with real processes: Phase 2's history (the
//! shared samples through the Phase 2 stand-in, a letter-case replay, a mock
//! triangle) exported, `step migrate import`ed, and a 4-validator
//! `step devnet --initial-state` started from it: every validator answers
//! each account's balance and each triangle's clicks as Phase 2 had them,
//! starts from the import's root, and refuses a proof Phase 2 accepted with
//! NONCE_REPLAY.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unused_imports)]
mod devnet;

use std::collections::BTreeMap;
use std::process::Command;

use devnet::*;
use step_engine::Address;
use step_testkit::phase2_history::{sample_history, write_export, MOCK_TRIANGLE};

#[test]
fn a_devnet_started_from_an_imported_phase2_state_has_its_balances_clicks_and_nonces() {
    let dir = Devnet::data_dir("migrate");
    let h = sample_history();
    let export = dir.join("export");
    write_export(&h.phase2, &export);
    let state = dir.join("state.json");

    // Without --reject-file the mock triangle fails the import, by name.
    let out = Command::new(STEP)
        .args(["migrate", "import", "--export-dir"])
        .arg(&export)
        .arg("--out")
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(MOCK_TRIANGLE), "{stderr}");
    assert!(!state.exists());

    let out = Command::new(STEP)
        .args(["migrate", "import", "--export-dir"])
        .arg(&export)
        .arg("--out")
        .arg(&state)
        .arg("--reject-file")
        .arg(dir.join("rejects.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let root = stdout
        .split("state root at height 0: ")
        .nth(1)
        .map(|s| s[..64].to_owned())
        .unwrap_or_else(|| panic!("no root in {stdout}"));

    let base = free_base(4);
    let net = Devnet::start_with(&dir, 4, base, &["--initial-state", state.to_str().unwrap()]);
    let nodes = net.http();
    let genesis = std::fs::read_to_string(dir.join("net/genesis.toml")).unwrap();
    assert!(
        genesis.contains(&format!("initial_state_root = \"{root}\"")),
        "{genesis}"
    );

    // Phase 2's balances, letter-case variants added; its clicks.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (name, docs) in h.phase2.export() {
        if name == "accounts" {
            for d in docs {
                let a = Address::parse(d["_id"].as_str().unwrap()).unwrap();
                *want.entry(a.to_string()).or_default() +=
                    d["balance"].as_str().unwrap().parse::<u64>().unwrap();
            }
        }
    }
    let merged = want[&h.case_merged];
    assert!(merged > 0);
    for a in &nodes {
        for (account, b) in &want {
            assert_eq!(balance(*a, account), *b, "{account} on {a}");
        }
        // Either letter case reads the one merged balance.
        assert_eq!(balance_any_case(*a, &h.case_variant), merged);
        for (id, clicks) in h.phase2.clicks() {
            if id == MOCK_TRIANGLE {
                continue;
            }
            let v = get(*a, &format!("/triangle/{id}")).json();
            assert_eq!(v["clicks"], clicks, "{id} on {a}: {v}");
        }
        let s = status(*a).unwrap();
        if s.height == 0 {
            assert_eq!(s.state_root, root, "height 0 on {a}");
        }
    }

    // Every validator refuses a proof Phase 2 accepted, as a replay.
    for (i, a) in nodes.iter().enumerate() {
        post_json(*a, "/proof/submit", h.accepted[i].as_bytes()).assert_error(
            409,
            "NONCE_REPLAY",
            &format!("Phase 2's proof {i} to validator {i}"),
        );
    }
    let (height, r) = converge(&nodes, 1, CONSENSUS_WAIT);
    eprintln!("all 4 validators at height {height}, state_root {r}");
}

fn balance_any_case(addr: std::net::SocketAddr, account: &str) -> u64 {
    let v = get(addr, &format!("/account/{account}")).json();
    v["balance"].as_str().unwrap().parse().unwrap()
}
