//! `step gateway` end to end with real processes: the Phase 2 stand-in
//! (`step_testkit::phase2_http`, with its documented defects) and a
//! 4-validator `step devnet` behind it.
//!
//! 1. Shadow (share 0): the shared valid and invalid samples plus the defect
//!    cases; exactly the defect cases (and what follows from them for the
//!    same account) are classed as intended, 0 unexpected.
//! 2. Cutover: the share set to 10% through the admin endpoint (a wrong
//!    token is refused); about 10% (±3%) of 300 fresh accounts are answered
//!    by Phase 3.
//! 3. Failover: at 100%, the validator an account's proofs go to is killed
//!    while they are in flight; every proof is answered and final on the
//!    other validators.
//! 4. Fault: the remaining validators are killed (Phase 3 down); the unexpected
//!    rate passes 5% and the gateway rolls back to Phase 2 (share 0, alert
//!    metric, report names the trigger), and clients still get answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unused_imports)]
mod devnet;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use devnet::*;
use serde_json::Value;
use step_testkit::phase2_http::Phase2Server;

const TOKEN: &str = "test-admin-token-0123456789";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn report(gw: SocketAddr) -> Value {
    let r = get(gw, "/gateway/report");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until the gateway has compared `n` pairs in all.
fn compared(gw: SocketAddr, n: u64) -> Value {
    let mut last = Value::Null;
    wait_until(&format!("{n} comparisons"), CONSENSUS_WAIT, || {
        last = report(gw);
        last["compared"].as_u64().unwrap() >= n
    });
    last
}

fn set_share(gw: SocketAddr, token: &str, share: u64) -> Resp {
    let body = format!("{{\"share\":{share}}}");
    let raw = format!(
        "POST /gateway/share HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(gw, raw.as_bytes(), HTTP_TIMEOUT).unwrap()
}

/// Submits every body from `threads` threads; the answers in body order.
fn submit_parallel(gw: SocketAddr, bodies: &[Vec<u8>], threads: usize) -> Vec<Resp> {
    let chunks: Vec<Vec<(usize, Vec<u8>)>> = (0..threads)
        .map(|t| {
            bodies
                .iter()
                .cloned()
                .enumerate()
                .skip(t)
                .step_by(threads)
                .collect()
        })
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                c.into_iter()
                    .map(|(i, b)| (i, post_json(gw, "/proof/submit", &b)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut out: Vec<(usize, Resp)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

fn with_v(body: &[u8], v: u8) -> Vec<u8> {
    let mut j: Value = serde_json::from_slice(body).unwrap();
    let sig = j["signature"].as_str().unwrap();
    let mut raw = hex::decode(&sig[2..]).unwrap();
    raw[64] = v;
    j["signature"] = format!("0x{}", hex::encode(raw)).into();
    j.to_string().into_bytes()
}

#[test]
fn the_gateway_shadows_cuts_over_fails_over_and_rolls_back() {
    let mut ph = Phases::start();
    let dir = Devnet::data_dir("gateway");
    let phase2 = Phase2Server::start();
    let base = free_base(4);
    // Phase 3 with Phase 2's speed gate and moratorium (the devnet tests'
    // SETS turn them off; a later --set wins).
    let net = Devnet::start_with(
        &dir,
        4,
        base,
        &[
            "--set",
            "limits.speed_gate=true",
            "--set",
            "limits.moratorium=true",
            // A node answers 202 "pending" before the gateway gives up on it.
            "--set",
            "http.finality_timeout_ms=40000",
        ],
    );
    let nodes = net.http();
    // A loaded machine can take tens of seconds to decide the first
    // height: one proof final before the comparison starts.
    let warm = &step_testkit::one_per_account("gw-warm", 1)[0];
    let r = post_json(nodes[0], "/proof/submit", warm);
    assert!(r.status == 200 || r.status == 202, "warm-up: {}", r.text());
    let id = r.json()["proofId"].as_str().unwrap().to_owned();
    wait_until("the warm-up proof final", CONSENSUS_WAIT, || {
        get(nodes[0], &format!("/proof/{id}")).json()["status"] == "final"
    });
    ph.done("devnet up, first proof final");

    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let gw: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let phase3: Vec<String> = nodes.iter().map(ToString::to_string).collect();
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let _gateway = Proc::spawn(
        "step gateway",
        Command::new(STEP)
            .args(["gateway", "--listen", &gw.to_string()])
            .args(["--phase2", &phase2.addr.to_string()])
            .args(["--phase3", &phase3.join(",")])
            .arg("--admin-token-file")
            .arg(dir.join("token"))
            .args(["--window-s", "3600", "--phase3-timeout-ms", "60000"])
            .args(["--health-interval-ms", "300"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null()),
    );
    wait_until("the gateway answers", READY_TIMEOUT, || {
        exchange(
            gw,
            b"GET /gateway/report HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n",
            Duration::from_secs(2),
        )
        .is_ok_and(|r| r.status == 200)
    });

    // ---- 1. shadow -------------------------------------------------------
    let valid: Vec<String> = step_testkit::shared_lines("sample-valid.jsonl")
        .iter()
        .map(|l| strip_expectations(l))
        .collect();
    let invalid = step_testkit::shared_lines("sample-invalid.jsonl");
    // (body, the class the test expects it to be, if a defect case).
    let mut cases: Vec<(Vec<u8>, Option<&str>)> = Vec::new();
    for l in &valid {
        cases.push((l.clone().into_bytes(), None));
    }
    for l in &invalid {
        let case = serde_json::from_str::<Value>(l).unwrap()["case"]
            .as_str()
            .unwrap()
            .to_owned();
        let class = match case.as_str() {
            "sig_high_s" => Some("high_s"),
            "bad_checksum" => Some("unchecked_triangle_id"),
            _ => None,
        };
        cases.push((strip_expectations(l).into_bytes(), class));
    }
    // v = 0/1 (defect 2), on fresh accounts.
    for b in &step_testkit::one_per_account("gw-v", 2) {
        let v: Value = serde_json::from_slice(b).unwrap();
        let sig = hex::decode(&v["signature"].as_str().unwrap()[2..]).unwrap();
        cases.push((with_v(b, sig[64] - 27), Some("v_zero_one")));
    }
    // A letter-case replay of sample 1, which both systems accepted (defect 5).
    let mut upper: Value = serde_json::from_str(&valid[0]).unwrap();
    let a = upper["payload"]["account"].as_str().unwrap().to_owned();
    upper["payload"]["account"] = format!("0x{}", a[2..].to_ascii_uppercase()).into();
    cases.push((upper.to_string().into_bytes(), Some("letter_case")));
    // A mock triangle (defect 3).
    cases.push((
        step_testkit::phase2_history::signed_raw(
            "gw-mock",
            step_testkit::phase2_history::MOCK_TRIANGLE,
            1.0,
            2.0,
            "2026-01-01T00:00:00.000Z",
            "gw-mock-1",
        )
        .into_bytes(),
        Some("unchecked_triangle_id"),
    ));
    let mut planar = 0;
    for (body, _) in &cases {
        let r = post_json(gw, "/proof/submit", body);
        let v = r.json();
        assert!(v.get("proofId").is_none(), "shadow: Phase 2 answers: {v}");
        if v["code"] == "OUT_OF_BOUNDS" {
            planar += 1;
        }
    }
    let rep = compared(gw, cases.len() as u64);
    ph.done(&format!("shadow: {} proofs compared", cases.len()));
    eprintln!(
        "shadow report: {}",
        serde_json::to_string_pretty(&rep["counts"]).unwrap()
    );
    assert_eq!(
        rep["unexpected"],
        0,
        "{}",
        serde_json::to_string_pretty(&rep).unwrap()
    );
    // The defect cases, one by one: each is a discrepancy of its class.
    let discrepancies = rep["discrepancies"].as_array().unwrap();
    let mut want: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, class) in &cases {
        if let Some(c) = class {
            *want.entry(c).or_default() += 1;
        }
    }
    // Planar geometry: the valid samples Phase 2 refuses as OUT_OF_BOUNDS
    // (the 3 across the meridian) less the invalid ones both refuse.
    let got = |c: &str| rep["counts"][c].as_u64().unwrap_or(0);
    for (class, n) in &want {
        assert_eq!(
            got(class),
            *n,
            "class {class}: {}",
            serde_json::to_string_pretty(&rep["counts"]).unwrap()
        );
    }
    assert_eq!(
        got("planar_geometry"),
        3,
        "the 3 meridian samples ({planar} OUT_OF_BOUNDS answers)"
    );
    // What follows from an intended difference is only ever a later proof of
    // an account whose earlier proof one system alone accepted.
    for d in discrepancies {
        assert_eq!(d["intended"], true, "{d}");
        if d["class"] == "after_intended" {
            let acct = d["account"].as_str().unwrap().to_ascii_lowercase();
            let earlier = discrepancies.iter().take_while(|e| *e != d).any(|e| {
                e["account"]
                    .as_str()
                    .is_some_and(|a| a.to_ascii_lowercase() == acct)
                    && e["class"] != "after_intended"
                    && e["phase2"]["ok"] != e["phase3"]["ok"]
            });
            assert!(earlier, "after_intended without an earlier divergence: {d}");
        }
    }
    let intended_classes: u64 = want.values().sum::<u64>() + 3;
    assert_eq!(
        rep["intended"].as_u64().unwrap() - got("after_intended"),
        intended_classes,
        "{}",
        serde_json::to_string_pretty(&rep["counts"]).unwrap()
    );

    // ---- 2. cutover at 10% -----------------------------------------------
    set_share(gw, "wrong-token-0123456789", 10).assert_error(401, "UNAUTHORIZED", "wrong token");
    set_share(gw, TOKEN, 101).assert_error(400, "INVALID_SHARE", "101%");
    let r = set_share(gw, TOKEN, 10);
    assert_eq!(r.status, 200, "{}", r.text());
    let bodies = step_testkit::one_per_account("gw-share", 300);
    let answers = submit_parallel(gw, &bodies, 32);
    let by_phase3 = answers
        .iter()
        .filter(|r| {
            // Phase 2 refuses the few whose point its planar test puts
            // outside (defect 4); Phase 3 accepts every one.
            let v = r.json();
            assert!(v["ok"].is_boolean(), "{v}");
            let phase3 = v.get("proofId").is_some();
            assert!(!phase3 || v["ok"] == true, "{v}");
            phase3
        })
        .count();
    let frac = by_phase3 as f64 / bodies.len() as f64;
    ph.done(&format!(
        "10% share: {by_phase3} of {} accounts answered by Phase 3",
        bodies.len()
    ));
    assert!(
        (0.07..=0.13).contains(&frac),
        "{by_phase3} of {}",
        bodies.len()
    );
    let before = compared(gw, (cases.len() + bodies.len()) as u64);
    assert_eq!(
        before["unexpected"],
        0,
        "{}",
        serde_json::to_string_pretty(&before["counts"]).unwrap()
    );

    // ---- 3. failover: kill a validator mid-flight --------------------------
    assert_eq!(set_share(gw, TOKEN, 100).status, 200);
    let bodies = step_testkit::one_per_account("gw-kill", 40);
    let killer = {
        let pid = net.validators[0].pid;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            signal_group(pid, "KILL");
        })
    };
    let answers = submit_parallel(gw, &bodies, 4);
    killer.join().unwrap();
    for (r, b) in answers.iter().zip(&bodies) {
        let v = r.json();
        assert_eq!(v["ok"], true, "{v}");
        let account = step_testkit::cluster::account_of(std::str::from_utf8(b).unwrap());
        let reward = step_testkit::cluster::reward_of(std::str::from_utf8(b).unwrap());
        wait_until(
            &format!("{account} final on validator 1"),
            CONSENSUS_WAIT,
            || balance(nodes[1], &account) == reward,
        );
    }
    ph.done("failover: 40 proofs answered and final with validator 0 killed");

    // ---- 4. fault: Phase 3 goes down -> rollback --------------------------
    for v in &net.validators[1..] {
        signal_group(v.pid, "KILL");
    }
    let bodies = step_testkit::one_per_account("gw-fault", 40);
    let answers = submit_parallel(gw, &bodies, 8);
    for r in &answers {
        let v = r.json();
        assert!(
            v["ok"].is_boolean() && v.get("proofId").is_none(),
            "answered by Phase 2 while Phase 3 is down: {v}"
        );
    }
    let rep = report(gw);
    ph.done("fault: Phase 3 down for 40 proofs");
    assert_eq!(
        rep["share_percent"],
        0,
        "{}",
        serde_json::to_string_pretty(&rep).unwrap()
    );
    assert_eq!(
        rep["rolled_back"]["trigger"], "unexpected_rate",
        "{}",
        rep["rolled_back"]
    );
    assert_eq!(rep["rolled_back"]["share_before"], 100);
    let m = get(gw, "/metrics").text();
    assert!(m.contains("step_gateway_rolled_back 1"), "{m}");
    assert!(
        m.contains("step_gateway_rollbacks_total{trigger=\"unexpected_rate\"} 1"),
        "{m}"
    );
    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap();
    assert!(log.contains("ROLLBACK"), "the rollback is logged: {log}");
}
