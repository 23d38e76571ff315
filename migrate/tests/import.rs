//! `step migrate import` from a mongoexport directory: Phase 2's history
//! (the shared samples through the Phase 2 stand-in, plus a letter-case
//! replay and a mock triangle) to a Phase 3 initial state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use step_consensus::context::{Height, ValueId};
use step_consensus::execution::{ChainState, ExecCode};
use step_consensus::InitialStateFile;
use step_engine::pipeline::Batch;
use step_engine::proof::parse;
use step_engine::{Address, Limits, TriangleId};
use step_migrate::{run, Collection, Input, RunError, RunOptions, Summary};
use step_testkit::phase2_history::{sample_history, write_export, History, MOCK_TRIANGLE};

fn import(dir: &Path, out: &Path, reject: Option<PathBuf>) -> Result<Summary, RunError> {
    let opts = RunOptions {
        input: Input::ExportDir(dir.to_owned()),
        out: out.to_owned(),
        reject_file: reject,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&opts, &|_, _| {}))
}

fn state_of(path: &Path) -> ChainState {
    let f = InitialStateFile::from_json(&std::fs::read(path).unwrap()).unwrap();
    ChainState::from_initial(&f).unwrap()
}

fn exported(tmp: &Path) -> (History, PathBuf) {
    let h = sample_history();
    let dir = tmp.join("export");
    write_export(&h.phase2, &dir);
    (h, dir)
}

/// Every account's Phase 3 balance is the sum of Phase 2's documents for
/// its address in any letter case; every non-mock triangle keeps its clicks.
fn check_against_phase2(h: &History, s: &ChainState) {
    let mut want: std::collections::BTreeMap<Address, u64> = Default::default();
    for (name, docs) in h.phase2.export() {
        if name != "accounts" {
            continue;
        }
        for d in docs {
            let a = Address::parse(d["_id"].as_str().unwrap()).unwrap();
            *want.entry(a).or_default() += d["balance"].as_str().unwrap().parse::<u64>().unwrap();
        }
    }
    assert!(!want.is_empty());
    for (a, b) in &want {
        let row = s.account(a).expect("read").expect("account");
        assert_eq!(row.balance_micro, *b, "balance of {a}");
    }
    let mut triangles = 0;
    for (id, clicks) in h.phase2.clicks() {
        if id == MOCK_TRIANGLE {
            continue;
        }
        let t = TriangleId::parse(&id).unwrap();
        assert_eq!(
            u32::from(s.triangle(&t).expect("read").clicks),
            clicks,
            "clicks of {id}"
        );
        triangles += 1;
    }
    assert!(triangles > 90, "{triangles} triangles");
}

#[test]
fn a_mongoexport_imports_balances_clicks_and_nonces_and_refuses_the_mock_triangle() {
    let tmp = tempfile::tempdir().unwrap();
    let (h, dir) = exported(tmp.path());
    let out = tmp.path().join("state.json");
    let rejects = tmp.path().join("rejects.jsonl");
    let summary = import(&dir, &out, Some(rejects.clone())).expect("import");
    let s = state_of(&out);
    assert_eq!(summary.root, s.root, "the summary names the file's root");
    check_against_phase2(&h, &s);

    // The mock triangle is refused, with its reason, and nothing else.
    let text = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["collection"], "triangles");
    assert_eq!(lines[0]["id"], MOCK_TRIANGLE);
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a STEP-TRI-v1 id"),
        "{text}"
    );
    assert_eq!(lines[0]["document"]["_id"], MOCK_TRIANGLE);

    // The letter-case variants are one account, and the report says so.
    let r = &summary.report;
    assert_eq!(r.merges.len(), 1, "{r}");
    assert_eq!(r.merges[0].address, h.case_merged);
    assert!(r.merges[0]
        .variants
        .iter()
        .any(|(id, _)| *id == h.case_variant));
    assert_eq!(
        r.merged_uses.len(),
        1,
        "the replayed proof is one nonce use: {r}"
    );
    let accounts = r.counts[&Collection::Accounts];
    assert_eq!(accounts.merged, 1);
    assert_eq!(accounts.read, accounts.imported + accounts.refused);
    assert_eq!(r.counts[&Collection::Triangles].refused, 1);
    assert!(r.balances_agree(), "{r}");
    assert_eq!(r.balance_refused_micro, 0);
    // The mock's click keeps its nonce (the proof was accepted by Phase 2).
    let miner = Address::parse(&h.mock_miner).unwrap();
    let row = s.account(&miner).expect("read").expect("account");
    assert_eq!(row.proofs, 1);
    let nonces = &s.memory().expect("an initial state is in memory").nonces;
    assert_eq!(r.nonces_in_state, nonces.len() as u64);
    assert_eq!(nonces.len(), h.accepted.len() - 1, "one accepted twice");
    let printed = r.to_string();
    assert!(printed.contains("merged account"), "{printed}");
    assert!(printed.contains("before = after + refused"), "{printed}");
}

#[test]
fn without_a_reject_file_the_mock_triangle_fails_the_import_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dir) = exported(tmp.path());
    let out = tmp.path().join("state.json");
    let e = import(&dir, &out, None).expect_err("a refusal fails the import");
    let text = e.to_string();
    assert!(matches!(e, RunError::Refused { count: 1, .. }), "{text}");
    assert!(text.contains(MOCK_TRIANGLE), "{text}");
    assert!(text.contains("--reject-file"), "{text}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn every_proof_phase2_accepted_is_a_nonce_replay_on_the_imported_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (h, dir) = exported(tmp.path());
    let out = tmp.path().join("state.json");
    import(&dir, &out, Some(tmp.path().join("r.jsonl"))).unwrap();
    let mut s = state_of(&out);
    let proofs: Vec<_> = h
        .accepted
        .iter()
        .filter_map(|b| parse(b.as_bytes()).ok())
        .collect();
    assert_eq!(proofs.len(), h.accepted.len() - 1, "all but the mock parse");
    assert!(proofs
        .iter()
        .all(|p| s.nonce_used(&p.account, &p.nonce).expect("read")));
    let subdivided: Vec<bool> = proofs
        .iter()
        .map(|p| s.triangle(&p.triangle).expect("read").subdivided)
        .collect();
    assert!(subdivided.iter().any(|x| *x) && subdivided.iter().any(|x| !*x));
    let n = proofs.len();
    let batch = Batch {
        proofs,
        pubkeys: vec![[0; 64]; n],
        digest: [1; 32],
    };
    let out = s
        .apply_block(&Limits::default(), Height(1), ValueId([1; 32]), &[batch])
        .expect("in-memory state");
    // Execution's triangle gate comes before the nonce check: a proof on a
    // triangle Phase 2 subdivided since is refused as TRIANGLE_SUBDIVIDED.
    for (r, sub) in out.results.iter().zip(&subdivided) {
        let want = if *sub {
            ExecCode::TriangleSubdivided
        } else {
            ExecCode::NonceReplay
        };
        assert_eq!(*r, Err(want));
    }
}

/// Re-encodes every export file in canonical Extended JSON, as one array.
fn canonical_arrays(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for c in Collection::ALL {
        let name = format!("{}.json", c.name());
        let text = std::fs::read_to_string(from.join(&name)).unwrap();
        let docs: Vec<Value> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                bson::Bson::try_from(v).unwrap().into_canonical_extjson()
            })
            .collect();
        std::fs::write(to.join(&name), serde_json::to_string_pretty(&docs).unwrap()).unwrap();
    }
}

#[test]
fn canonical_extended_json_in_arrays_imports_to_the_same_state_as_relaxed_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dir) = exported(tmp.path());
    let canonical = tmp.path().join("canonical");
    canonical_arrays(&dir, &canonical);
    let sample = std::fs::read_to_string(canonical.join("triangle_events.json")).unwrap();
    assert!(
        sample.contains("$numberLong") && sample.starts_with('['),
        "canonical arrays"
    );
    let (a, b) = (tmp.path().join("a.json"), tmp.path().join("b.json"));
    import(&dir, &a, Some(tmp.path().join("ra"))).unwrap();
    import(&canonical, &b, Some(tmp.path().join("rb"))).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn bad_records_are_refused_with_their_reasons_and_nothing_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dir) = exported(tmp.path());
    let extra = [
        (
            "accounts",
            r#"{"_id":"0x1111111111111111111111111111111111111111","balance":"1.5"}"#,
        ),
        ("accounts", r#"{"_id":"alice","balance":"7"}"#),
        ("accounts", "not json"),
        (
            "triangle_events",
            r#"{"_id":{"$oid":"0000000000000000000000ff"},"triangleId":"STEP-TRI-v1:nowhere","eventType":"click","account":"0x2222222222222222222222222222222222222222","nonce":"n","timestamp":{"$date":"2026-01-01T00:00:00Z"},"payload":{"lat":1,"lon":2}}"#,
        ),
    ];
    for (name, line) in extra {
        let p = dir.join(format!("{name}.json"));
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str(line);
        text.push('\n');
        std::fs::write(p, text).unwrap();
    }
    let rejects = tmp.path().join("rejects.jsonl");
    let summary = import(&dir, &tmp.path().join("s.json"), Some(rejects.clone())).unwrap();
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    for want in [
        "is not an integer of micro-STEP",
        "is not 0x and 40 hex digits",
        "not JSON",
        "which is not in the triangles collection",
        "not a STEP-TRI-v1 id",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    let r = &summary.report;
    assert_eq!(r.counts[&Collection::Accounts].refused, 3);
    assert_eq!(r.balances_not_integer, 1);
    assert_eq!(
        r.balance_refused_micro, 7,
        "alice's 7 is refused, and counted"
    );
    assert!(r.balances_agree(), "{r}");
}
