//! `GET /openapi.json` against live answers: every route is described, and
//! the answers of a running node (success and error, every route) are
//! valid against the response schema the description gives for their
//! status, checked with the `jsonschema` crate.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use support::{invalid_lines, test_config, valid_lines, Server};

/// Every route of `step_io::http::router`.
const ROUTES: [(&str, &str); 14] = [
    ("post", "/proof/submit"),
    ("post", "/proofs"),
    ("get", "/proof/config"),
    ("get", "/proof/{id}"),
    ("get", "/account/{address}"),
    ("get", "/triangle/{id}"),
    ("get", "/status"),
    ("get", "/health"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
    ("get", "/events"),
    ("get", "/evidence"),
    ("get", "/openapi.json"),
];

/// The errors of `body` against the schema of `method path` at `status`.
fn errors(doc: &Value, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path}: no JSON schema for status {status} (answer: {body})"
    );
    let root = json!({"components": doc["components"], "allOf": [schema]});
    let v = jsonschema::validator_for(&root).unwrap();
    v.iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}

fn check(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let e = errors(doc, method, path, status, body);
    assert!(e.is_empty(), "{method} {path} {status}: {body}\n{e:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_answers_are_valid_against_the_openapi_description() {
    let server = Server::start(test_config()).await;
    let r = server.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    for (method, path) in ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    let paths = doc["paths"].as_object().unwrap().len();
    assert_eq!(paths, ROUTES.len(), "a described path that is not a route");

    // Submissions: final, replay, every invalid sample's error.
    let valid = valid_lines();
    let r = server.submit(&valid[0]).await;
    assert_eq!(r.status, 200);
    let fin = r.json();
    check(&doc, "post", "/proof/submit", 200, &fin);
    let r = server.submit(&valid[0]).await;
    check(&doc, "post", "/proof/submit", r.status, &r.json());
    for l in invalid_lines() {
        let r = server.submit(&l).await;
        check(&doc, "post", "/proof/submit", r.status, &r.json());
    }
    let fresh = step_testkit::one_per_account("openapi", 2);
    let r = server
        .post_json("/proof/submit?wait=false", &fresh[0])
        .await;
    assert_eq!(r.status, 202);
    check(&doc, "post", "/proof/submit", 202, &r.json());
    let batch = format!("[{},{}]", String::from_utf8_lossy(&fresh[1]), valid[0]);
    let r = server
        .post_json("/proofs?wait=true", batch.as_bytes())
        .await;
    check(&doc, "post", "/proofs", r.status, &r.json());
    let r = server.post_json("/proofs", b"[").await;
    check(&doc, "post", "/proofs", r.status, &r.json());

    // Queries, found and not.
    let id = fin["proofId"].as_str().unwrap();
    let account = serde_json::from_str::<Value>(&valid[0]).unwrap()["payload"]["account"]
        .as_str()
        .unwrap()
        .to_owned();
    let tri = fin["triangleId"].as_str().unwrap().to_owned();
    for (path, uri) in [
        ("/proof/{id}", format!("/proof/{id}")),
        ("/proof/{id}", format!("/proof/{}", "0".repeat(64))),
        ("/proof/{id}", "/proof/xyz".to_owned()),
        ("/account/{address}", format!("/account/{account}")),
        ("/account/{address}", "/account/0x12".to_owned()),
        ("/triangle/{id}", format!("/triangle/{tri}")),
        ("/triangle/{id}", "/triangle/STEP-TRI-v1:nope".to_owned()),
        ("/proof/config", "/proof/config".to_owned()),
        ("/status", "/status".to_owned()),
        ("/health", "/health".to_owned()),
        ("/health/live", "/health/live".to_owned()),
        ("/health/ready", "/health/ready".to_owned()),
        ("/evidence", "/evidence".to_owned()),
    ] {
        let r = server.get(&uri).await;
        check(&doc, "get", path, r.status, &r.json());
    }

    // The check can fail: a final answer without its reward, or with a
    // wrong type, is not valid.
    let mut broken = fin.clone();
    broken.as_object_mut().unwrap().remove("reward");
    assert!(!errors(&doc, "post", "/proof/submit", 200, &broken).is_empty());
    let mut broken = fin.clone();
    broken["height"] = json!("seven");
    assert!(!errors(&doc, "post", "/proof/submit", 200, &broken).is_empty());
    let mut extra = server.get("/status").await.json();
    extra["surprise"] = json!(1);
    assert!(
        !errors(&doc, "get", "/status", 200, &extra).is_empty(),
        "a field the description does not have"
    );
    server.shutdown().await;
}
