//! Every route's happy path against a LocalLedger, with the shared samples,
//! and every Phase 2 error case with its code and status.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use std::collections::HashMap;
use step_engine::reward::{reward_micro, MicroStep};
use step_engine::TriangleId;
use step_io::ledger::{Ledger, ProofId};
use support::{expected_codes, invalid_lines, test_config, valid_lines, Server};

fn payload(line: &str) -> Value {
    serde_json::from_str::<Value>(line).unwrap()["payload"].clone()
}

fn proof_id(line: &str) -> String {
    let p = step_engine::proof::parse(line.as_bytes()).unwrap();
    ProofId::of_proof(&p).unwrap().to_string()
}

fn status_of(code: &str) -> u16 {
    step_engine::Code::from_str_code(code)
        .unwrap()
        .http_status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_submit_query_and_error_codes() {
    let server = Server::start(test_config()).await;
    let valid = valid_lines();
    assert_eq!(valid.len(), 100);

    // Every valid sample is final with Phase 2's body; balances accumulate.
    let mut balances: HashMap<String, u64> = HashMap::new();
    let mut clicks: HashMap<String, u64> = HashMap::new();
    let mut height = 0u64;
    for line in &valid {
        let r = server.submit(line).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        let p = payload(line);
        let account = p["account"].as_str().unwrap().to_ascii_lowercase();
        let tri = p["triangleId"].as_str().unwrap();
        let level = TriangleId::parse(tri).unwrap().level();
        let reward = reward_micro(level);
        let balance = balances.entry(account.clone()).or_default();
        *balance += reward;
        let c = clicks.entry(tri.to_owned()).or_default();
        *c += 1;
        assert_eq!(v["ok"], true);
        assert_eq!(v["status"], "final");
        assert_eq!(v["reward"], MicroStep(reward).to_string());
        assert_eq!(v["unit"], "STEP");
        assert_eq!(v["triangleId"], tri);
        assert_eq!(v["level"], u64::from(level));
        assert_eq!(v["clicks"], *c);
        assert_eq!(v["balance"], balance.to_string());
        assert_eq!(v["proofId"], proof_id(line));
        let processed = v["processedAt"].as_str().unwrap();
        assert!(step_engine::proof::Timestamp::parse(processed).is_some());
        let h = v["height"].as_u64().unwrap();
        assert!(h >= height && h >= 1, "heights never go back");
        height = h;
    }

    // GET /proof/{id}
    let line = &valid[0];
    let id = proof_id(line);
    let v = server.get(&format!("/proof/{id}")).await.json();
    let p = payload(line);
    assert_eq!(v["status"], "final");
    assert_eq!(v["proofId"], id);
    assert_eq!(
        v["account"],
        p["account"].as_str().unwrap().to_ascii_lowercase()
    );
    assert_eq!(v["nonce"], p["nonce"]);
    assert_eq!(v["timestamp"], p["timestamp"]);
    assert_eq!(v["lat"], p["lat"]);
    assert_eq!(v["lon"], p["lon"]);
    assert_eq!(v["accuracy"], p["accuracy"]);
    // The id is case-insensitive hex.
    let upper = server
        .get(&format!("/proof/{}", id.to_ascii_uppercase()))
        .await;
    assert_eq!(upper.status, 200);
    server
        .get(&format!("/proof/{}", "0".repeat(64)))
        .await
        .assert_error(404, "NOT_FOUND");

    // GET /account/{address}, in any letter case.
    let (account, balance) = balances.iter().next().unwrap();
    for spelling in [
        account.clone(),
        format!("0x{}", account[2..].to_ascii_uppercase()),
    ] {
        let r = server.get(&format!("/account/{spelling}")).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["account"], account.as_str());
        assert_eq!(v["balance"], balance.to_string());
        assert_eq!(v["balanceStep"], MicroStep(*balance).to_string());
        assert_eq!(v["nonces"], 10, "10 accounts sign 100 proofs in turn");
        assert!(v["lastProofAt"].is_string());
    }
    let fresh = server
        .get("/account/0x0000000000000000000000000000000000000001")
        .await
        .json();
    assert_eq!(fresh["balance"], "0");
    assert_eq!(fresh["nonces"], 0);
    assert!(fresh["lastProofAt"].is_null());

    // GET /triangle/{id}
    let tri = p["triangleId"].as_str().unwrap();
    let v = server.get(&format!("/triangle/{tri}")).await.json();
    assert_eq!(v["triangleId"], tri);
    assert_eq!(v["clicks"], clicks[tri]);
    assert_eq!(v["state"], "active");
    assert_eq!(v["level"], 1);
    assert_eq!(v["polygon"].as_array().unwrap().len(), 3);
    assert!(v["centroid"]["lat"].is_f64());
    let unclicked = server
        .get("/triangle/STEP-TRI-v1:A10-00000000000000000000-UPB")
        .await
        .json();
    assert_eq!(unclicked["clicks"], 0);
    assert_eq!(unclicked["state"], "pending");

    // GET /status
    let v = server.get("/status").await.json();
    assert_eq!(v["backend"], "local");
    assert_eq!(v["height"], height);
    assert_eq!(v["round"], 0);
    assert_eq!(v["validators"], 1);
    assert_eq!(v["peers"], 0);
    assert_eq!(v["ready"], true);
    assert_eq!(v["state_root"].as_str().unwrap().len(), 64);
    assert_ne!(v["state_root"], "0".repeat(64));

    // GET /evidence: read-only; a local backend has no consensus, so none.
    let v = server.get("/evidence").await.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["evidence"], serde_json::json!([]));

    // Every negative sample gets its code and Phase 2 status (the replay
    // cases need their valid line accepted first: done above).
    for (i, line) in invalid_lines().iter().enumerate() {
        let r = server.submit(line).await;
        let v = r.json();
        let want = expected_codes(line);
        let code = v["code"]
            .as_str()
            .unwrap_or_else(|| panic!("line {i}: {v}"));
        assert!(
            want.iter().any(|w| w == code),
            "line {i}: got {code}, want {want:?}"
        );
        r.assert_error(status_of(code), code);
    }
    // No rejected proof changed any state.
    let v = server.get("/status").await.json();
    assert_eq!(v["height"], height);
    let sum: u64 = balances.values().sum();
    let mut total = 0;
    for a in balances.keys() {
        let v = server.get(&format!("/account/{a}")).await.json();
        total += v["balance"].as_str().unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(total, sum);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_config_reports_the_actual_limits() {
    let server = Server::configured(|c| c.limits = Default::default()).await;
    let r = server.get("/proof/config").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        r#"{"GPS_MAX_ACCURACY_M":50,"PROOF_SPEED_LIMIT_MPS":15,"PROOF_MORATORIUM_MS":10000}"#
    );
    server.shutdown().await;

    // Switched-off checks are null; a changed limit is reported as changed.
    let server = Server::configured(|c| c.limits.accuracy_m_max = 25.5).await;
    let v = server.get("/proof/config").await.json();
    assert_eq!(v["GPS_MAX_ACCURACY_M"], 25.5);
    assert!(v["PROOF_SPEED_LIMIT_MPS"].is_null());
    assert!(v["PROOF_MORATORIUM_MS"].is_null());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_false_answers_202_then_the_proof_becomes_final() {
    let server = Server::start(test_config()).await;
    let line = &valid_lines()[3];
    let r = server
        .post_json("/proof/submit?wait=false", line.as_bytes())
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["status"], "pending");
    let id = v["proofId"].as_str().unwrap().to_owned();
    assert_eq!(id, proof_id(line));
    // Wait on the ledger's own notification, not a sleep.
    let fin = server
        .ledger
        .wait_final(ProofId::parse(&id).unwrap())
        .await
        .unwrap();
    let v = server.get(&format!("/proof/{id}")).await.json();
    assert_eq!(v["status"], "final");
    assert_eq!(v["height"], fin.height);
    assert_eq!(v["balance"], fin.balance_micro.to_string());
    // Resubmitting is a replay.
    server.submit(line).await.assert_error(409, "NONCE_REPLAY");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_endpoint_takes_arrays_and_json_lines() {
    let server = Server::start(test_config()).await;
    let valid = valid_lines();
    let invalid = invalid_lines();

    // A JSON array: 10 valid proofs and one bad one; one verdict each, in order.
    let mut items: Vec<&str> = valid[..10].iter().map(String::as_str).collect();
    items.insert(4, &invalid[0]);
    let body = format!("[{}]", items.join(","));
    let r = server.post_json("/proofs", body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["accepted"], 10);
    assert_eq!(v["rejected"], 1);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 11);
    for (i, item) in results.iter().enumerate() {
        assert_eq!(item["index"], i);
        if i == 4 {
            assert_eq!(item["ok"], false);
            assert!(expected_codes(&invalid[0])
                .iter()
                .any(|c| item["code"] == c.as_str()));
        } else {
            assert_eq!(item["ok"], true, "{item}");
            assert_eq!(item["status"], "pending");
            assert_eq!(item["proofId"], proof_id(items[i]));
        }
    }

    // JSON Lines, waiting for finality; blank lines are skipped.
    let body = format!("{}\n\n{}\n", valid[10], valid[11]);
    let r = server
        .post_ndjson("/proofs?wait=true", body.as_bytes())
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["accepted"], 2);
    for item in v["results"].as_array().unwrap() {
        assert_eq!(item["status"], "final", "{item}");
        assert!(item["height"].as_u64().unwrap() >= 1);
        assert!(item["balance"].is_string());
    }
    // The same again: every one a replay.
    let r = server.post_ndjson("/proofs", body.as_bytes()).await;
    let v = r.json();
    assert_eq!(v["accepted"], 0);
    for item in v["results"].as_array().unwrap() {
        assert_eq!(item["code"], "NONCE_REPLAY");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_endpoint_bounds_count_and_size() {
    let server = Server::configured(|c| {
        c.http.batch_max_proofs = 3;
        c.http.batch_body_max_bytes = 4096;
    })
    .await;
    let valid = valid_lines();
    let body = format!("[{}]", valid[..4].join(","));
    assert!(body.len() < 4096);
    server
        .post_json("/proofs", body.as_bytes())
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");
    let body = format!("[{}]", valid[..12].join(","));
    assert!(body.len() > 4096);
    server
        .post_json("/proofs", body.as_bytes())
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");
    server
        .post_json("/proofs", b"[]")
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    server
        .post_json("/proofs", b"[{\"payload\":1},")
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // Nothing was accepted by the refused requests.
    assert_eq!(server.get("/status").await.json()["height"], 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let server = Server::start(test_config()).await;
    for path in ["/health", "/health/live", "/health/ready"] {
        let r = server.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["ok"], true);
    }
    assert_eq!(server.get("/health").await.json()["redis"], "off");
    server.submit_then_replay(&valid_lines()[0]).await;
    let r = server.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(r.body).unwrap();
    for want in [
        "step_proofs_total{code=\"ACCEPTED\"} 1",
        "step_proofs_total{code=\"NONCE_REPLAY\"} 1",
        "step_proofs_finalized_total 1",
        "step_finality_seconds_count 1",
        "step_batch_proofs_count 1",
        "step_height 1",
        "step_round 0",
        "step_peers 0",
        "step_validators 1",
        "step_queue_depth{queue=\"ingest\"} 0",
        "step_queue_capacity 1024",
        "step_http_requests_total{route=\"/proof/submit\",status=\"200\"} 1",
        "step_http_requests_total{route=\"/proof/submit\",status=\"409\"} 1",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    server.shutdown().await;
}

/// Submits a proof on `t` signed by a fresh account `k`; the response.
async fn click(server: &Server, t: &TriangleId, k: u64) -> support::Resp {
    let key = step_engine::signing::key("triangle-state", k);
    let body = step_engine::signing::signed_body(
        &key,
        t,
        step_engine::signing::point_in(t),
        5.0,
        1_767_225_600_000 + k as i64,
        &format!("click-{k}"),
    );
    server.post_json("/proof/submit", &body).await
}

/// `GET /triangle/{id}` reports execution's state, not a guess from the
/// click count: a level-21 triangle never subdivides, so with 11–27 clicks
/// it is `active` (it was reported `subdivided`), at 28 it is `exhausted`
/// and the 29th proof is refused with TRIANGLE_EXHAUSTED; a level-20
/// triangle is `subdivided` at its 11th click and refuses the 12th.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triangle_state_comes_from_execution() {
    let server = Server::start(test_config()).await;
    let deep = TriangleId::new(5, &[1u8; 20]).unwrap();
    assert_eq!(deep.level(), 21);
    let url = format!("/triangle/{deep}");
    for k in 1..=28u64 {
        let r = click(&server, &deep, k).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["clicks"], k);
        let v = server.get(&url).await.json();
        assert_eq!(v["clicks"], k);
        let want = if k < 28 { "active" } else { "exhausted" };
        assert_eq!(v["state"], want, "level 21 after {k} clicks");
    }
    click(&server, &deep, 29)
        .await
        .assert_error(422, "TRIANGLE_EXHAUSTED");
    assert_eq!(server.get(&url).await.json()["clicks"], 28);

    let parent = TriangleId::new(6, &[2u8; 19]).unwrap();
    assert_eq!(parent.level(), 20);
    let url = format!("/triangle/{parent}");
    for k in 100..110u64 {
        assert_eq!(click(&server, &parent, k).await.status, 200);
    }
    assert_eq!(server.get(&url).await.json()["state"], "active");
    assert_eq!(click(&server, &parent, 110).await.status, 200);
    let v = server.get(&url).await.json();
    assert_eq!(
        (v["clicks"].as_u64(), v["state"].as_str()),
        (Some(11), Some("subdivided"))
    );
    click(&server, &parent, 111)
        .await
        .assert_error(422, "TRIANGLE_SUBDIVIDED");
    let child = parent.child(1).unwrap();
    let v = server.get(&format!("/triangle/{child}")).await.json();
    assert_eq!(
        (v["clicks"].as_u64(), v["state"].as_str()),
        (Some(0), Some("pending"))
    );
    assert_eq!(click(&server, &child, 112).await.status, 200);
    server.shutdown().await;
}
