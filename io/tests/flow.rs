//! Backpressure (OVERLOADED), rate limits, server-sent events and graceful
//! shutdown. Proofs are held inside the pipeline with its `before_check`
//! hook, so every scenario is deterministic: no sleeps.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{mpsc, Arc, Condvar, Mutex};
use step_engine::pipeline::Hook;
use step_io::ledger::{pipeline_config, system_clock};
use step_io::Ledger;
use support::{request, test_config, valid_lines, Server, IO_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Holds every proof in the worker until opened; reports each proof entering.
struct Gate {
    open: Arc<(Mutex<bool>, Condvar)>,
    entered: Mutex<mpsc::Receiver<u64>>,
}

impl Gate {
    fn new() -> (Gate, Hook) {
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let o = Arc::clone(&open);
        let hook: Hook = Arc::new(move |seq| {
            let _ = tx.lock().unwrap().send(seq);
            let (m, cv) = &*o;
            let mut g = m.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
        });
        (
            Gate {
                open,
                entered: Mutex::new(rx),
            },
            hook,
        )
    }

    /// Waits (on the channel, off the async workers) until a proof is held
    /// in a worker.
    async fn entered(self: &Arc<Self>) -> u64 {
        let g = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            g.entered.lock().unwrap().recv_timeout(IO_TIMEOUT).unwrap()
        })
        .await
        .unwrap()
    }

    fn open(&self) {
        let (m, cv) = &*self.open;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
}

async fn gated_server(capacity: usize) -> (Server, Arc<Gate>) {
    let mut c = test_config();
    c.pipeline.capacity = capacity;
    c.http.batch_concurrency = 1;
    let (gate, hook) = Gate::new();
    let mut pc = pipeline_config(&c, system_clock());
    pc.before_check = Some(hook);
    (Server::start_with(c, pc).await, Arc::new(gate))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pipeline_answers_overloaded() {
    let (server, gate) = gated_server(1).await;
    let valid = valid_lines();
    let addr = server.addr;
    let first = valid[0].clone();
    let held = support::spawn_post_json(addr, "/proof/submit?wait=false", first);
    gate.entered().await;

    // The one buffer is taken: refused at once with 503 and Retry-After.
    let r = server.submit(&valid[1]).await;
    r.assert_error(503, "OVERLOADED");
    assert_eq!(r.header("retry-after"), Some("1"));
    let body = format!("[{},{}]", valid[1], valid[2]);
    let v = server.post_json("/proofs", body.as_bytes()).await.json();
    for item in v["results"].as_array().unwrap() {
        assert_eq!(item["code"], "OVERLOADED", "{item}");
    }
    let status = server.get("/status").await.json();
    assert_eq!(status["queue"]["in_flight"], 1);
    assert_eq!(status["queue"]["capacity"], 1);

    // Released: the held proof is accepted, and the refused one now goes through.
    gate.open();
    let held = held.await.unwrap();
    assert_eq!(held.status, 202);
    // Its buffer returns to the pool right after its verdict; once it is
    // final, the buffer is certainly back.
    let id = step_io::ProofId::parse(held.json()["proofId"].as_str().unwrap()).unwrap();
    server.ledger.wait_final(id).await.unwrap();
    let r = server.submit(&valid[1]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    server
        .assert_metric("step_proofs_total{code=\"OVERLOADED\"} 3")
        .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batch_requests_are_bounded() {
    let (server, gate) = gated_server(16).await;
    let valid = valid_lines();
    let addr = server.addr;
    let first = valid[0].clone();
    let ndjson = [("Content-Type", "application/x-ndjson")];
    let held =
        tokio::spawn(
            async move { request(addr, "POST", "/proofs", &ndjson, first.as_bytes()).await },
        );
    gate.entered().await;
    // The one /proofs slot is taken (its proof is held in the pipeline).
    let r = request(addr, "POST", "/proofs", &ndjson, valid[1].as_bytes()).await;
    r.assert_error(503, "OVERLOADED");
    // Single submissions do not use the slot.
    let single = support::spawn_post_json(addr, "/proof/submit?wait=false", valid[2].clone());
    gate.open();
    assert_eq!(single.await.unwrap().status, 202);
    let v = held.await.unwrap().json();
    assert_eq!(v["accepted"], 1);
    // The slot is free again.
    let r = request(addr, "POST", "/proofs", &ndjson, valid[1].as_bytes()).await;
    assert_eq!(r.json()["accepted"], 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_rate_limit() {
    let mut c = test_config();
    c.rate_limit.window_ms = 60_000;
    c.rate_limit.per_ip = 3;
    // Fixed clock: 30 s into a window.
    let server = Server::start_at(c, 1_000_000 * 60_000 + 30_000).await;
    for _ in 0..3 {
        assert_eq!(server.get("/status").await.status, 200);
    }
    let r = server.get("/status").await;
    r.assert_error(429, "RATE_LIMITED");
    assert_eq!(r.header("retry-after"), Some("30"));
    server
        .submit(&valid_lines()[0])
        .await
        .assert_error(429, "RATE_LIMITED");
    // Health and metrics are never limited.
    assert_eq!(server.get("/health").await.status, 200);
    server
        .assert_metric("step_rate_limited_total{scope=\"ip\"} 2")
        .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_account_rate_limit_any_letter_case() {
    let mut c = test_config();
    c.rate_limit.window_ms = 60_000;
    c.rate_limit.per_account = 1;
    let server = Server::start_at(c, 1_000_000 * 60_000).await;
    let valid = valid_lines();
    // Proof i is signed by key i mod 10.
    assert_eq!(server.submit(&valid[0]).await.status, 200);
    server
        .submit(&valid[10])
        .await
        .assert_error(429, "RATE_LIMITED");
    // The same account in upper case is the same account.
    let v: serde_json::Value = serde_json::from_str(&valid[20]).unwrap();
    let account = v["payload"]["account"].as_str().unwrap();
    let upper = format!("0x{}", account[2..].to_ascii_uppercase());
    let body = valid[20].replace(account, &upper);
    assert_ne!(body, valid[20]);
    server.submit(&body).await.assert_error(429, "RATE_LIMITED");
    // Another account is not affected.
    assert_eq!(server.submit(&valid[1]).await.status, 200);
    server.shutdown().await;
}

/// Reads from an SSE socket until `pred` holds for what has arrived.
async fn read_until(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, pred: impl Fn(&str) -> bool) {
    tokio::time::timeout(IO_TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        while !pred(&String::from_utf8_lossy(buf)) {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "stream ended early: {}",
                String::from_utf8_lossy(buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("expected SSE data did not arrive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_finalized_blocks_and_end_on_shutdown() {
    let server = Server::start(test_config()).await;
    let mut sse = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    sse.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut sse, &mut buf, |t| t.contains("\r\n\r\n")).await;
    let head = String::from_utf8_lossy(&buf).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );

    let line = &valid_lines()[5];
    let r = server.submit(line).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let id = v["proofId"].as_str().unwrap().to_owned();
    let height = v["height"].as_u64().unwrap();
    read_until(&mut sse, &mut buf, |t| t.contains(&id)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let data = text
        .lines()
        .find(|l| l.starts_with("data:") && l.contains(&id))
        .unwrap();
    let block: serde_json::Value =
        serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(block["height"], height);
    assert_eq!(block["proofIds"], serde_json::json!([id]));
    assert_eq!(block["rejected"], serde_json::json!([]));
    assert_eq!(block["state_root"].as_str().unwrap().len(), 64);
    assert!(text.contains("event: block"), "{text}");
    assert!(text.contains(&format!("id: {height}")), "{text}");

    // Shutdown ends the stream (so the server can stop).
    server.shutdown().await;
    let mut rest = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, sse.read_to_end(&mut rest))
        .await
        .expect("SSE stream did not end on shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_in_flight_requests() {
    let (mut server, gate) = gated_server(16).await;
    let addr = server.addr;
    let line = valid_lines()[7].clone();
    let in_flight = support::spawn_post_json(addr, "/proof/submit", line);
    gate.entered().await;
    // Shutdown begins while the proof is inside the pipeline.
    server.begin_shutdown();
    gate.open();
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "final");
    let ledger = server.ledger.clone();
    server.shutdown().await;
    // The ledger was closed after the server: it no longer takes proofs.
    assert_eq!(ledger.status().height, 1);
    assert!(!ledger.status().ready);
    assert!(ledger.submit_body(valid_lines()[8].as_bytes()).is_err());
}
