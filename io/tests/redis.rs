//! Redis-backed behaviour against a real `redis-server` (scripts/test starts
//! one and exports STEP_TEST_REDIS_URL). With CI=true a missing server is a
//! failure, not a skip.
#![allow(clippy::unwrap_used)]

mod support;

use step_io::Config;
use support::{test_config, valid_lines, Server};

fn redis_url() -> Option<String> {
    match std::env::var("STEP_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but STEP_TEST_REDIS_URL is not set: scripts/test starts redis-server and sets it"
            );
            eprintln!("SKIPPED: STEP_TEST_REDIS_URL is not set (run scripts/test, or start redis-server and set it)");
            None
        }
    }
}

/// A configuration using Redis with a key prefix of its own.
fn redis_config(url: &str, test: &str) -> Config {
    let mut c = test_config();
    c.redis.url = url.to_owned();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    c.redis.key_prefix = format!("steptest:{test}:{}:{nanos}:", std::process::id());
    c.redis.timeout_ms = 2_000;
    c
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_replay_precheck_across_validators() {
    let Some(url) = redis_url() else { return };
    let c = redis_config(&url, "replay");
    let a = Server::start(c.clone()).await;
    let b = Server::start(c.clone()).await;
    assert_eq!(b.get("/health").await.json()["redis"], "ok");
    let line = &valid_lines()[0];
    assert_eq!(a.submit(line).await.status, 200);

    // The claim is in Redis, with the configured TTL.
    let p = step_engine::proof::parse(line.as_bytes()).unwrap();
    let key = format!(
        "{}nonce:{}:{}",
        c.redis.key_prefix,
        &p.account.to_string()[2..],
        p.nonce.as_str()
    );
    let mut conn = redis_conn(&url).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= c.redis.replay_ttl_ms as i64, "PTTL {ttl}");
    let held: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held, step_io::ProofId::of_proof(&p).unwrap().to_string());

    // Validator B's own engine never saw the proof, yet refuses it: the
    // refusal comes from the shared pre-check.
    let r = b.submit(line).await;
    r.assert_error(409, "NONCE_REPLAY");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("shared pre-check"));
    assert_eq!(b.get("/status").await.json()["height"], 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_proof_releases_its_claim() {
    let Some(url) = redis_url() else { return };
    let c = redis_config(&url, "release");
    let a = Server::start(c.clone()).await;
    let b = Server::start(c).await;
    let line = &valid_lines()[1];
    // Same account and nonce, one hex digit of r changed: BAD_SIGNATURE.
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let sig = v["signature"].as_str().unwrap();
    let flipped = if sig.as_bytes()[2] == b'1' { '2' } else { '1' };
    let forged_sig = format!("0x{flipped}{}", &sig[3..]);
    let forged = line.replace(sig, &forged_sig);
    a.submit(&forged).await.assert_error(401, "BAD_SIGNATURE");
    // The forged proof's claim was released, so the genuine one is accepted
    // on the other validator.
    let r = b.submit(line).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_shared_through_redis() {
    let Some(url) = redis_url() else { return };
    let mut c = redis_config(&url, "ratelimit");
    c.rate_limit.per_ip = 2;
    c.rate_limit.window_ms = 60_000;
    let now = 2_000_000 * 60_000 + 1_000;
    let a = Server::start_at(c.clone(), now).await;
    let b = Server::start_at(c, now).await;
    assert_eq!(a.get("/status").await.status, 200);
    assert_eq!(b.get("/status").await.status, 200);
    // The third request from this IP in the window, whichever validator gets it.
    a.get("/status").await.assert_error(429, "RATE_LIMITED");
    b.get("/status").await.assert_error(429, "RATE_LIMITED");
    a.shutdown().await;
    b.shutdown().await;
}

/// No server needed: Redis configured but unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_not_needed() {
    let mut c = test_config();
    // Port 1 on loopback: nothing listens there.
    c.redis.url = "redis://127.0.0.1:1/".into();
    c.redis.timeout_ms = 200;
    c.rate_limit.per_ip = 100;
    let server = Server::start(c).await;
    // The engine's own replay check still holds.
    server.submit_then_replay(&valid_lines()[0]).await;
    let h = server.get("/health").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["redis"], "down");
    let text = server.metrics_text().await;
    let errors: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("step_redis_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(errors >= 1, "{text}");
    server.shutdown().await;
}
