//! End to end with real processes on loopback: `step devnet` starts the
//! validators, this test talks to them over plain HTTP/1.1, kills one with
//! SIGKILL and restarts it with `step node --config`.
//!
//! Every test takes its own port range (free at the time it is picked) and
//! data directory, so tests run in parallel. Every process it starts is
//! killed on drop, panics included: the devnet and each validator run in
//! their own process group, and the guard kills each group.
//!
//! Fresh proofs come from the shared Python generator when `STEP_GEN_DIR`
//! names its install (`scripts/test` sets it to `.ci-cache/gen`, with
//! `.venv/` inside); otherwise they are signed here with
//! `step_engine::signing`. The test prints which. The harness is in
//! `tests/devnet/mod.rs`; `STEP_E2E_KEEP=1` keeps data dirs and logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod devnet;

use devnet::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use step_engine::reward::MicroStep;
use step_engine::TriangleId;

/// `step devnet --validators 4` comes up; fresh proofs submitted to
/// validator 0 are final with the right reward and balance; every validator
/// then shows the same balances and the same state root; a replay gets
/// NONCE_REPLAY on any validator; every Phase 2 error case gets its code.
#[test]
fn devnet_finalizes_proofs_identically_on_all_validators() {
    let dir = Devnet::data_dir("finality");
    let base = free_base(4);
    let net = Devnet::start(&dir, 4, base);
    let nodes = net.http();
    let v0 = nodes[0];

    let mut t = Phases::start();
    // Every validator knows the set and, soon, its 3 peers.
    wait_until(
        "every validator connected to its 3 peers",
        CONSENSUS_WAIT,
        || {
            nodes
                .iter()
                .all(|a| status(*a).is_ok_and(|s| s.validators == 4 && s.peers == 3))
        },
    );

    t.done("peers connected");
    // Validator 3 streams its finalized blocks meanwhile.
    let mut events = Events::subscribe(nodes[3]);
    let mut proof_ids: Vec<(String, u64)> = Vec::new();

    // Fresh proofs to validator 0, each final on return: two rounds of one
    // proof per account, the proofs of a round sent at once.
    const ACCOUNTS: usize = 4;
    let proofs = fresh_proofs("e2e-finality", 2 * ACCOUNTS, ACCOUNTS, &dir);
    let mut balances: BTreeMap<String, u64> = BTreeMap::new();
    let mut clicks: BTreeMap<String, u64> = BTreeMap::new();
    let mut height = 0;
    for round in proofs.chunks(ACCOUNTS) {
        let answers = submit_all(v0, round);
        let round_start = height;
        for (line, r) in round.iter().zip(answers) {
            let v = r.json();
            assert_eq!(r.status, 200, "{v}");
            let tri = payload(line)["triangleId"].as_str().unwrap().to_owned();
            let reward = reward_of(line);
            let bal = balances.entry(account_of(line)).or_default();
            *bal += reward;
            *clicks.entry(tri.clone()).or_default() += 1;
            assert_eq!(v["ok"], true, "{v}");
            assert_eq!(v["status"], "final", "{v}");
            assert_eq!(v["reward"], MicroStep(reward).to_string(), "{v}");
            // One proof per account per round: the balance is exact.
            assert_eq!(v["balance"], bal.to_string(), "{v}");
            assert!(v["clicks"].as_u64().is_some_and(|c| c >= 1), "{v}");
            assert_eq!(
                v["level"],
                u64::from(TriangleId::parse(&tri).unwrap().level()),
                "{v}"
            );
            let h = v["height"]
                .as_u64()
                .unwrap_or_else(|| panic!("height: {v}"));
            assert!(
                h > round_start,
                "a proof of a later round final at height {h}, not after {round_start}"
            );
            height = height.max(h);
            let id = v["proofId"]
                .as_str()
                .unwrap_or_else(|| panic!("proofId: {v}"));
            proof_ids.push((id.to_owned(), h));
        }
    }
    t.done("8 fresh proofs final on validator 0");
    // The same state everywhere once every validator is past that height.
    let (h, root) = converge(&nodes, height, CONSENSUS_WAIT);
    eprintln!("all 4 validators at height {h}, state_root {root}");
    for a in &nodes {
        for (account, want) in &balances {
            assert_eq!(balance(*a, account), *want, "{account} on {a}");
        }
        for (tri, want) in &clicks {
            let v = get(*a, &format!("/triangle/{tri}")).json();
            assert_eq!(v["clicks"], *want, "{tri} on {a}: {v}");
        }
    }
    t.done("same balances, clicks and state root on all 4");

    // Validator 3's /events carried each of those proofs in the block of
    // the height validator 0 reported, and the state root all 4 agree on.
    let in_block = |blocks: &BTreeMap<u64, Value>, id: &str, h: u64| {
        blocks.get(&h).is_some_and(|b| {
            b["proofIds"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|x| x == id))
        })
    };
    events.wait("the blocks of the proofs", CONSENSUS_WAIT, |blocks| {
        blocks.contains_key(&h) && proof_ids.iter().all(|(id, ph)| in_block(blocks, id, *ph))
    });
    assert_eq!(
        events.blocks[&h]["state_root"],
        root.as_str(),
        "/events at height {h}"
    );
    t.done("/events of validator 3 carried every proof");
    // A replay is refused by any validator, not only the one that took it.
    for (i, a) in nodes.iter().enumerate() {
        post_json(*a, "/proof/submit", proofs[i].as_bytes()).assert_error(
            409,
            "NONCE_REPLAY",
            &format!("replay to validator {i}"),
        );
    }

    t.done("replays refused by every validator");
    // `?wait=false` on validator 1: 202 with an id, which validator 2 then
    // reports final.
    let extra = fresh_proofs("e2e-finality-nowait", 1, 2, &dir).remove(0);
    let r = post_json(nodes[1], "/proof/submit?wait=false", extra.as_bytes());
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["proofId"]
        .as_str()
        .unwrap_or_else(|| panic!("no proofId: {}", r.text()))
        .to_owned();
    wait_until(
        "the wait=false proof is final on validator 2",
        CONSENSUS_WAIT,
        || {
            let r = get(nodes[2], &format!("/proof/{id}"));
            r.status == 200 && r.json()["status"] == "final"
        },
    );
    let v = get(nodes[2], &format!("/proof/{id}")).json();
    assert_eq!(v["account"], account_of(&extra), "{v}");
    assert_eq!(v["nonce"], payload(&extra)["nonce"], "{v}");
    *balances.entry(account_of(&extra)).or_default() += reward_of(&extra);

    t.done("wait=false proof final on another validator");
    // Phase 2 error cases. The replay cases need sample-valid lines 1–3
    // accepted first.
    let valid = shared_lines("sample-valid.jsonl");
    for r in submit_all(v0, &valid[..3]) {
        assert_eq!(r.status, 200, "sample-valid: {}", r.text());
        assert_eq!(r.json()["status"], "final");
    }
    t.done("sample-valid lines 1-3 final");
    let invalid = shared_lines("sample-invalid.jsonl");
    assert!(!invalid.is_empty());
    for (k, line) in invalid.iter().enumerate() {
        let sample: Value = serde_json::from_str(line).unwrap();
        let case = sample["case"].as_str().unwrap();
        let mut want = vec![sample["expect"].as_str().unwrap().to_owned()];
        if let Some(a) = sample["expect_any"].as_array() {
            want.extend(a.iter().map(|c| c.as_str().unwrap().to_owned()));
        }
        // Alternate validators: every one applies the same rules.
        let a = nodes[k % nodes.len()];
        let r = post_json(a, "/proof/submit", strip_expectations(line).as_bytes());
        let v = r.json();
        let code = v["code"]
            .as_str()
            .unwrap_or_else(|| panic!("line {} ({case}): no code: {v}", k + 1));
        assert!(
            want.iter().any(|w| w == code),
            "line {} ({case}): got {code}, want one of {want:?}",
            k + 1
        );
        let status = step_engine::Code::from_str_code(code).map_or(0, |c| c.http_status());
        r.assert_error(status, code, &format!("line {} ({case})", k + 1));
    }
    t.done("every Phase 2 error case got its code");
    // Rejected proofs changed nothing: same balances everywhere (the
    // wait=false proof included) once all are at the highest height now.
    let top = nodes
        .iter()
        .map(|a| status(*a).map_or(0, |s| s.height))
        .max()
        .unwrap_or(0);
    assert!(top >= h);
    converge(&nodes, top, CONSENSUS_WAIT);
    for a in &nodes {
        for (account, want) in &balances {
            assert_eq!(
                balance(*a, account),
                *want,
                "{account} on {a} after the error cases"
            );
        }
    }
    t.done("state unchanged by the rejected proofs");

    // What docs/ops' dashboard and alerts read, from a real validator.
    let metric_in = |text: &str, sample: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in GET /metrics:\n{text}"))
    };
    // Peers come and go on a loaded machine; the gauge follows.
    wait_until("step_peers 3 in GET /metrics", CONSENSUS_WAIT, || {
        metric_in(&get(v0, "/metrics").text(), "step_peers") == 3.0
    });
    let text = get(v0, "/metrics").text();
    let metric = |sample: &str| metric_in(&text, sample);
    assert!(metric("step_height") >= h as f64);
    let accepted = 2 * ACCOUNTS + 3; // the fresh proofs and sample lines 1–3
    assert!(metric("step_proofs_finalized_total") >= accepted as f64);
    assert!(metric("step_finality_seconds_count") >= accepted as f64);
    assert!(metric("step_proofs_total{code=\"ACCEPTED\"}") >= accepted as f64);
    assert!(metric("step_proofs_total{code=\"NONCE_REPLAY\"}") >= 1.0);
    assert!(metric("step_block_proofs_count") >= 1.0);
}

/// SIGKILL one validator while proofs flow: the other three keep finalizing;
/// `step node --config` restarts it and it catches up to the same state
/// root. Then SIGINT stops the devnet, a second run on the same data dir
/// resumes the chain, and SIGTERM stops that one.
#[test]
fn killed_validator_restarts_and_catches_up() {
    let dir = Devnet::data_dir("restart");
    let base = free_base(4);
    let mut net = Devnet::start(&dir, 4, base);
    let nodes = net.http();
    let victim = 3;
    let survivors: Vec<SocketAddr> = nodes[..victim].to_vec();

    let mut t = Phases::start();
    // Proofs flow to validators 0–2 from FLOW_THREADS clients, each proof
    // awaited to finality.
    const FLOW_THREADS: usize = 6;
    let proofs = fresh_proofs("e2e-restart", 400, 8, &dir);
    let final_count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flow: Vec<_> = (0..FLOW_THREADS)
        .map(|t| {
            let (final_count, stop, survivors, proofs) = (
                final_count.clone(),
                stop.clone(),
                survivors.clone(),
                proofs.clone(),
            );
            std::thread::spawn(move || {
                let mut done = Vec::new();
                // The last proof is kept for after the resume.
                let mine = (t..proofs.len() - 1).step_by(FLOW_THREADS);
                for (k, i) in mine.enumerate() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let a = survivors[(t + k) % survivors.len()];
                    let line = proofs[i].as_bytes();
                    match request(a, "POST", "/proof/submit", Some("application/json"), line) {
                        Ok(r) if r.status == 200 && r.json()["status"] == "final" => {
                            done.push(i);
                            final_count.fetch_add(1, Ordering::AcqRel);
                        }
                        Ok(r) => panic!("proof {i} to {a}: {} {}", r.status, r.text()),
                        Err(e) => panic!("proof {i} to {a}: {e}"),
                    }
                }
                done
            })
        })
        .collect();
    let finals = || final_count.load(Ordering::Acquire);
    wait_until("3 proofs final before the kill", CONSENSUS_WAIT, || {
        finals() >= 3
    });

    t.done("3 proofs final");
    // SIGKILL, as a crash.
    let pid = net.validators[victim].pid;
    assert!(signal_pid(pid, "KILL"), "kill -KILL {pid}");
    wait_until(
        "the killed validator stops answering",
        Duration::from_secs(10),
        || !healthy(nodes[victim]),
    );
    let heights = |ns: &[SocketAddr]| -> Vec<u64> {
        ns.iter()
            .map(|a| status(*a).map_or(0, |s| s.height))
            .collect()
    };
    let before = heights(&survivors);
    let f0 = finals();
    eprintln!("killed validator {victim} at heights {before:?}, {f0} proofs final");
    wait_until(
        "the other three keep finalizing (height +3, 5 more proofs final)",
        CONSENSUS_WAIT,
        || {
            finals() >= f0 + 5
                && heights(&survivors)
                    .iter()
                    .zip(&before)
                    .all(|(now, then)| *now >= then + 3)
        },
    );
    assert!(
        flow.iter().all(|f| !f.is_finished()),
        "the proof flow ended early"
    );
    let at_restart = heights(&survivors).into_iter().max().unwrap();

    t.done("the other three kept finalizing");
    // Restart it alone from its config; it catches up while proofs still flow.
    let new_pid = net.restart(victim);
    wait_until("the restarted validator is healthy", CONSENSUS_WAIT, || {
        healthy(nodes[victim])
    });
    eprintln!("validator {victim} restarted (pid {new_pid}), others at height {at_restart}");
    wait_until(
        "the restarted validator passes the height it crashed behind",
        CONSENSUS_WAIT,
        || status(nodes[victim]).is_ok_and(|s| s.height >= at_restart),
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Release);
    let done: Vec<usize> = flow
        .into_iter()
        .flat_map(|f| f.join().expect("proof flow"))
        .collect();
    let last_height = heights(&survivors).into_iter().max().unwrap();
    let (h, root) = converge(&nodes, last_height, CONSENSUS_WAIT);
    eprintln!(
        "{} proofs final; all 4 at height {h}, state_root {root}",
        done.len()
    );

    t.done("restarted validator caught up");
    // Balances of every account that got proofs, on all 4.
    let mut balances: BTreeMap<String, u64> = BTreeMap::new();
    for i in &done {
        *balances.entry(account_of(&proofs[*i])).or_default() += reward_of(&proofs[*i]);
    }
    for a in &nodes {
        for (account, want) in &balances {
            assert_eq!(balance(*a, account), *want, "{account} on {a}");
        }
    }

    // Stop: the restarted validator by SIGTERM (it is not the devnet's child
    // any more), then the devnet by SIGINT.
    let mut restarted = net.restarted.pop().unwrap();
    signal_group(restarted.pid(), "TERM");
    let st = restarted
        .wait_exit(Duration::from_secs(60))
        .expect("step node exits on SIGTERM");
    assert!(st.success(), "step node exited with {st} on SIGTERM");
    drop(restarted);
    net.stop("INT");
    net.keep_dir = true;
    drop(net);

    t.done("stopped (SIGTERM, SIGINT)");
    // A second run on the same data dir resumes the chain.
    let mut net = Devnet::start(&dir, 4, base);
    let nodes = net.http();
    let s = status(nodes[0]).unwrap();
    assert!(s.height >= h, "resumed at height {} < {h}", s.height);
    for (account, want) in balances.iter().take(3) {
        assert_eq!(balance(nodes[1], account), *want, "{account} after resume");
    }
    // And it still finalizes.
    let more = &proofs[proofs.len() - 1];
    let r = post_json(nodes[0], "/proof/submit", more.as_bytes());
    assert_eq!(r.status, 200, "after resume: {}", r.text());
    assert_eq!(r.json()["status"], "final");
    t.done("resumed, and still finalizing");
    net.stop("TERM");
    t.done("stopped by SIGTERM");
}

/// (name, path, content type, body, status, code)
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

/// Every kind of malformed request gets a 4xx with a code from a real
/// validator process, which stays up and still takes proofs.
#[test]
fn malformed_requests_get_4xx_and_the_node_stays_up() {
    let dir = Devnet::data_dir("malformed");
    let base = free_base(1);
    let net = Devnet::start(&dir, 1, base);
    let a = net.http()[0];
    let pid = net.validators[0].pid;
    let valid = fresh_proofs("e2e-malformed", 2, 2, &dir);
    let ok = &valid[0];
    let json = Some("application/json");
    let post = |path: &str, ct: Option<&str>, body: &[u8]| {
        request(a, "POST", path, ct, body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    };
    let cases: Vec<Case> = vec![
        (
            "oversized body",
            "/proof/submit",
            json,
            vec![b' '; 17 * 1024],
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "text/plain",
            "/proof/submit",
            Some("text/plain"),
            ok.as_bytes().to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "form",
            "/proof/submit",
            Some("application/x-www-form-urlencoded"),
            ok.as_bytes().to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "no content type",
            "/proof/submit",
            None,
            ok.as_bytes().to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "not JSON",
            "/proof/submit",
            json,
            b"hello".to_vec(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "truncated JSON",
            "/proof/submit",
            json,
            ok.as_bytes()[..ok.len() / 2].to_vec(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "empty body",
            "/proof/submit",
            json,
            Vec::new(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "invalid UTF-8",
            "/proof/submit",
            json,
            b"{\"payload\":\"\xff\xfe\"}".to_vec(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "lat a string",
            "/proof/submit",
            json,
            ok.replace("\"lat\":", "\"lat\":\"1\",\"x\":").into_bytes(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "payload a number",
            "/proof/submit",
            json,
            br#"{"payload":5,"signature":"0x00"}"#.to_vec(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "array body",
            "/proof/submit",
            json,
            b"[1,2]".to_vec(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "deep nesting",
            "/proof/submit",
            json,
            format!("{}{}", "[".repeat(8_000), "]".repeat(8_000)).into_bytes(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "batch: malformed array",
            "/proofs",
            json,
            b"[{\"payload\":".to_vec(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "batch: text/plain",
            "/proofs",
            Some("text/plain"),
            ok.as_bytes().to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "bad wait parameter",
            "/proof/submit?wait=maybe",
            json,
            ok.as_bytes().to_vec(),
            400,
            "INVALID_PAYLOAD",
        ),
    ];
    for (name, path, ct, body, status, code) in &cases {
        post(path, *ct, body).assert_error(*status, code, name);
        assert!(healthy(a), "{name}: the node stopped answering");
    }
    get(a, "/nope").assert_error(404, "NOT_FOUND", "unknown route");
    get(a, "/proof/xyz").assert_error(400, "INVALID_PAYLOAD", "bad proof id");
    get(a, "/account/0x123").assert_error(400, "INVALID_PAYLOAD", "bad address");
    request(a, "DELETE", "/proof/submit", None, b"")
        .unwrap()
        .assert_error(405, "METHOD_NOT_ALLOWED", "DELETE");
    // Not HTTP at all: an error status or a closed connection, never a crash.
    if let Ok(r) = exchange(
        a,
        b"\x16\x03\x01\x00\xa5garbage\r\n\r\n",
        Duration::from_secs(10),
    ) {
        assert!((400..500).contains(&r.status), "garbage: {}", r.status);
    }

    // Same process, still healthy, still taking proofs.
    assert!(signal_pid(pid, "0"), "validator process {pid} is gone");
    assert!(healthy(a));
    let r = post_json(a, "/proof/submit", ok.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "final");
    assert_eq!(balance(a, &account_of(ok)), reward_of(ok));
}
