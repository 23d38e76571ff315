//! End to end: the load generator against the real HTTP server over a
//! `LocalLedger` on a loopback port, with the node's default verification
//! limits (speed gate and moratorium on) and no per-IP rate limit.
//! The report's counts must add up, and agree with what the server itself
//! finalized.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use step_io::ledger::{system_clock, LocalLedger};
use step_io::{Config, Ledger, Metrics};
use step_perf::load::{self, prepare::Kind, Options};

/// A server on its own runtime thread; `stop` shuts it down.
struct Server {
    addr: SocketAddr,
    /// Every proof id the ledger finalized (its own block stream).
    finalized: Arc<Mutex<HashSet<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let mut config = Config::default();
        config.rate_limit.per_ip = 0;
        config.pipeline.workers = 2;
        config.pipeline.pin_workers = false;
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let finalized = Arc::new(Mutex::new(HashSet::new()));
        let seen = Arc::clone(&finalized);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let metrics = Arc::new(Metrics::new());
                let ledger = LocalLedger::start(&config, system_clock(), Arc::clone(&metrics));
                let mut blocks = ledger.subscribe();
                tokio::spawn(async move {
                    while let Ok(b) = blocks.recv().await {
                        let mut s = seen.lock().unwrap();
                        s.extend(b.proof_ids.iter().map(ToString::to_string));
                    }
                });
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                step_io::node::serve(
                    listener,
                    config,
                    Arc::new(ledger),
                    metrics,
                    system_clock(),
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        Server {
            addr,
            finalized,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn finalized(&self) -> usize {
        self.finalized.lock().unwrap().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn options(url: String, rate: f64, batch: usize, seed: &str) -> Options {
    let mut o = Options::new(vec![url], rate, Duration::from_secs(3));
    o.warmup = Duration::from_millis(500);
    o.batch = batch;
    o.connections = 16;
    // A queue that does not fill: on a starved machine the generator waits
    // (its latency shows it) instead of dropping, so the counts below are exact.
    o.queue = 100_000;
    o.invalid_ratio = 0.2;
    // 60 accounts at 160 valid proofs/s: one account's proofs are sent
    // ≈ 0.4 s apart (and 11 s apart in proof time).
    o.accounts = Some(60);
    o.seed = seed.into();
    o.finality_timeout = Duration::from_secs(20);
    // The calibration takes a second; one test below runs it.
    o.calibrate = false;
    o
}

fn cool_sent(j: &serde_json::Value) -> u64 {
    j["cooldown"]["sent"].as_u64().unwrap_or(0)
}

fn check_counts(o: &Options, r: &load::report::Report, server_finalized: usize) {
    let j = r.to_json();
    let t = &r.tally;
    let n = |k: &str| j[k].as_u64().unwrap_or_else(|| panic!("{k} in {j}"));
    // What was due: rate × duration (the schedule is exact).
    assert_eq!(
        n("scheduled"),
        (o.rate * o.duration.as_secs_f64()) as u64,
        "{j}"
    );
    step_testkit::report::assert_consistent(&j);
    // A low rate on a quiet server: nothing dropped, no errors, every
    // verdict the one the proof's kind should get, all accepted proofs final.
    assert_eq!(n("dropped_by_generator"), 0, "{j}");
    assert_eq!(n("errors"), 0, "{j}");
    assert_eq!(n("unexpected_verdicts"), 0, "{j}");
    assert_eq!(n("finalized"), n("accepted"), "{j}");
    assert_eq!(n("unfinalized"), 0, "{j}");
    assert_eq!(n("rejected_at_execution"), 0, "{j}");
    assert_eq!(
        n("finalized") + n("rejected_at_execution") + n("unfinalized"),
        n("accepted"),
        "{j}"
    );
    assert_eq!(j["unfinalized_probe"], serde_json::json!({}), "{j}");
    assert_eq!(j["events_errors"], serde_json::json!([]), "{j}");
    assert!(
        j["generator_cpu_s"].as_f64().is_some_and(|c| c > 0.0),
        "{j}"
    );
    // Every request of every phase is counted once, and priced.
    let requests =
        (n("sent") + j["warmup"]["sent"].as_u64().unwrap() + cool_sent(&j)) / o.batch as u64;
    assert_eq!(n("generator_requests"), requests, "{j}");
    assert!(
        j["generator_cpu_us_per_request"]
            .as_f64()
            .is_some_and(|u| u > 0.0),
        "{j}"
    );
    // No validators started here: no CPU per proof.
    assert!(j["validator_cpu_us_per_proof"].is_null(), "{j}");
    // The bad proofs: every kind was sent and rejected with its own code;
    // together they are the invalid slots of the measured window.
    let params = o.params();
    let per = o.batch as u64;
    let warm = (o.rate * o.warmup.as_secs_f64() / per as f64).ceil() as u64 * per;
    let mut want = std::collections::BTreeMap::<String, u64>::new();
    for i in warm..warm + n("sent") {
        if let Some(code) = params.slot(i).kind.expected() {
            *want.entry(code.as_str().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(want.len(), Kind::INVALID.len(), "{want:?}");
    assert_eq!(t.rejected_by_code, want, "{j}");
    // The cool-down, if any, adds up too.
    let cool = &j["cooldown"];
    let c = |k: &str| cool[k].as_u64().unwrap_or(0);
    if o.cooldown > Duration::ZERO {
        let rate = o.cooldown_rate.unwrap();
        assert_eq!(
            c("sent") + c("dropped_by_generator"),
            (rate * o.cooldown.as_secs_f64()) as u64,
            "{j}"
        );
        assert_eq!(
            c("accepted") + c("rejected") + c("errors"),
            c("sent"),
            "{j}"
        );
        assert_eq!((c("errors"), c("dropped_by_generator")), (0, 0), "{j}");
        assert!(c("accepted") > 0, "{j}");
        assert_eq!(c("finalized"), c("accepted"), "{j}");
        assert_eq!(
            cool["finality_ms"]["count"].as_u64(),
            Some(c("finalized")),
            "{j}"
        );
    } else {
        assert!(cool.is_null(), "{j}");
    }
    // The server finalized exactly the accepted proofs (warm-up and
    // cool-down included), and the generator saw every one of them final.
    assert_eq!(
        server_finalized as u64,
        n("accepted") + j["warmup"]["accepted"].as_u64().unwrap() + c("accepted"),
        "{j}"
    );
    assert_eq!(
        n("finalized") + j["warmup"]["finalized"].as_u64().unwrap() + c("finalized"),
        server_finalized as u64,
        "{j}"
    );
    // The timeline covers every proof sent.
    let tl_sent: u64 = j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(
        tl_sent,
        n("sent") + j["warmup"]["sent"].as_u64().unwrap() + c("sent"),
        "{j}"
    );
    // Latencies: one submit sample per request, one finality sample per
    // finalized proof; finality comes after the response.
    assert_eq!(j["submit_ms"]["count"].as_u64(), Some(n("requests")), "{j}");
    assert_eq!(
        j["finality_ms"]["count"].as_u64(),
        Some(n("finalized")),
        "{j}"
    );
    let f50 = j["finality_ms"]["p50"].as_f64().unwrap();
    let s50 = j["submit_ms"]["p50"].as_f64().unwrap();
    assert!(f50 >= s50 && f50 > 0.0, "{j}");
    for k in ["p50", "p99", "p999", "max"] {
        assert!(
            j["submit_ms"][k].is_number() && j["finality_ms"][k].is_number(),
            "{j}"
        );
    }
    assert!(j["finalized_per_sec"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["offered_rate"].as_f64() == Some(o.rate), "{j}");
    assert!(j.get("validator_peak_rss_bytes").is_some(), "{j}");
}

#[test]
fn single_proofs_counts_add_up() {
    let server = Server::start();
    let o = options(server.url(), 200.0, 1, "e2e-single");
    let r = load::run(&o).unwrap();
    // Give the server's own subscriber a moment to see the last block.
    std::thread::sleep(Duration::from_millis(300));
    check_counts(&o, &r, server.finalized());
    let text = r.to_text();
    assert!(text.contains("600 due, 600 sent"), "{text}");
    assert!(!text.contains("cool-down"), "{text}");
}

/// One connection takes every request: when several wait it pipelines
/// them, and the server's in-order answers still go to the right proofs.
#[test]
fn pipelined_requests_get_their_own_verdicts() {
    let server = Server::start();
    let mut o = options(server.url(), 200.0, 1, "e2e-pipeline");
    o.connections = 1;
    o.pipeline = 16;
    o.calibrate = true;
    let r = load::run(&o).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    check_counts(&o, &r, server.finalized());
    // The calibration ran: a recovery takes microseconds.
    let us = r.recovery.map(|c| c.cpu_us_per_recovery()).unwrap();
    assert!((1.0..5000.0).contains(&us), "{us}");
}

#[test]
fn batches_counts_add_up() {
    let server = Server::start();
    let mut o = options(server.url(), 300.0, 10, "e2e-batch");
    o.cooldown = Duration::from_secs(1);
    o.cooldown_rate = Some(100.0);
    let r = load::run(&o).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    check_counts(&o, &r, server.finalized());
    assert_eq!(r.tally.requests * 10, r.tally.sent);
    let text = r.to_text();
    assert!(
        text.contains("cool-down, 100 proofs/s for 1.0 s: 100 sent"),
        "{text}"
    );
    assert!(text.contains("10 proofs per request"), "{text}");
}

/// The cache: a second run with the same parameters loads the proofs.
#[test]
fn second_run_uses_the_cache() {
    let server = Server::start();
    let dir = std::env::temp_dir().join(format!("step-load-e2e-cache-{}", std::process::id()));
    let mut o = options(server.url(), 100.0, 1, "e2e-cache");
    o.duration = Duration::from_secs(1);
    o.warmup = Duration::ZERO;
    o.invalid_ratio = 0.0;
    o.cache_dir = Some(dir.clone());
    let first = load::run(&o).unwrap();
    assert!(!first.prepared_from_cache);
    // A new seed would sign new proofs; the same one replays the cached
    // set, which this server has seen: all replays.
    let second = load::run(&o).unwrap();
    assert!(second.prepared_from_cache);
    assert_eq!(second.tally.accepted, 0);
    assert_eq!(
        second.tally.rejected_by_code.get("NONCE_REPLAY"),
        Some(&100)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A target that does not answer: every proof is an error, none dropped
/// silently, and the counts still add up.
#[test]
fn unreachable_target_counts_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut o = Options::new(vec![format!("http://{addr}")], 50.0, Duration::from_secs(1));
    o.connections = 2;
    let r = load::run(&o).unwrap();
    let j = r.to_json();
    assert_eq!(j["finality_tracked"], false, "{j}");
    assert_eq!(
        j["sent"].as_u64().unwrap() + j["dropped_by_generator"].as_u64().unwrap(),
        50
    );
    assert_eq!(j["errors"], j["sent"], "{j}");
    assert_eq!(j["accepted"], 0);
}
