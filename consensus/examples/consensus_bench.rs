//! Consensus benchmark: 4 validators in this process on loopback TCP, each
//! fed by its own engine pipeline, with the production timeouts.
//! Reports finalized proofs/s and p50/p99 ingest → finality.
//!
//! ```text
//! cargo run --release -p step-consensus --example consensus_bench -- [proofs] [offered_per_s]
//! ```
//! Defaults: 40,000 proofs offered at 10,000/s. Ingest = submission to the
//! ingesting validator's pipeline; finality = node0's `Decided` event for the
//! block that carries the proof. `STEP_BENCH_VERBOSE=1` prints every height.

#[path = "../tests/support/proofs.rs"]
#[allow(dead_code)]
mod proofs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use step_consensus::{
    AppConfig, Node, NodeEvent, NodeSettings, PrivateKey, PublicKey, Validator, ValidatorSet,
    WireBatch,
};
use step_engine::pipeline::{Clock, Pipeline, PipelineConfig};
use step_engine::Verifier;

const NODES: usize = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(40_000);
    let rate: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000.0);
    let verbose = std::env::var_os("STEP_BENCH_VERBOSE").is_some();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();

    eprintln!("signing {total} proofs…");
    let bodies = proofs::bodies("bench", total);

    let dir = tempfile::tempdir().expect("temp dir");
    let keys: Vec<PrivateKey> = (0..NODES)
        .map(|i| PrivateKey::from([i as u8 + 1; 32]))
        .collect();
    let validators = ValidatorSet::new(
        keys.iter()
            .map(|k| Validator::new(PublicKey(k.verification_key().to_bytes()), 10))
            .collect(),
    );
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let addr = |p: u16| format!("/ip4/127.0.0.1/tcp/{p}");
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let s = NodeSettings {
            moniker: format!("node{i}"),
            home: dir.path().join(format!("node{i}")),
            listen: addr(ports[i]),
            peers: (0..NODES)
                .filter(|j| *j != i)
                .map(|j| addr(ports[j]))
                .collect(),
            key: keys[i].clone(),
            p2p_key: step_consensus::P2pKey::derived_from(&keys[i]),
            validators: validators.clone(),
            app: AppConfig::default(),
            initial: None,
            #[cfg(feature = "byzantine")]
            byzantine: None,
            #[cfg(feature = "byzantine")]
            forge_batches: None,
        };
        nodes.push(Node::start(s).await.expect("node starts"));
    }
    let mut events = nodes[0].subscribe();
    // Warm up: wait for height 2 (peers connected).
    loop {
        let ev = events.recv().await;
        if let Ok(NodeEvent::Decided(d)) = ev {
            if d.height >= 2 {
                break;
            }
        }
    }

    // digest → submission instants of the batch's proofs
    let sent: Arc<Mutex<HashMap<[u8; 32], Vec<Instant>>>> = Arc::default();
    let start = Instant::now();
    let mut feeders = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let tx = node.submitter();
        let mine: Vec<Vec<u8>> = bodies.iter().skip(i).step_by(NODES).cloned().collect();
        let sent = Arc::clone(&sent);
        let per_node_rate = rate / NODES as f64;
        feeders.push(std::thread::spawn(move || {
            let mut cfg = PipelineConfig::new(Verifier::default(), Clock::fixed(proofs::T0));
            cfg.workers = 1;
            cfg.pin_workers = false;
            let pipeline = Pipeline::with_memory_state(cfg, |_| {});
            let mut at: Vec<Instant> = Vec::with_capacity(mine.len());
            let mut taken = 0usize;
            let forward =
                |pipeline: &Pipeline, at: &[Instant], taken: &mut usize, wait: Duration| {
                    while let Some(b) = pipeline.next_batch(wait) {
                        let w = WireBatch::from_batch(&b).expect("wire");
                        sent.lock()
                            .expect("sent")
                            .insert(w.digest, at[*taken..*taken + b.len()].to_vec());
                        *taken += b.len();
                        let _ = tx.blocking_send(w);
                        pipeline.recycle(b);
                    }
                };
            for (k, body) in mine.iter().enumerate() {
                let due = start + Duration::from_secs_f64(k as f64 / per_node_rate);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                at.push(Instant::now());
                while pipeline.submit(body, k as u64).is_err() {
                    forward(&pipeline, &at, &mut taken, Duration::from_millis(1));
                }
                if k % 64 == 0 {
                    forward(&pipeline, &at, &mut taken, Duration::ZERO);
                }
            }
            pipeline.flush();
            while taken < mine.len() {
                forward(&pipeline, &at, &mut taken, Duration::from_millis(50));
            }
        }));
    }

    let mut latencies_s: Vec<f64> = Vec::with_capacity(total);
    let mut heights = 0u64;
    let mut last = start;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while latencies_s.len() < total {
        let ev = tokio::time::timeout_at(deadline, events.recv()).await;
        let Ok(Ok(ev)) = ev else {
            eprintln!(
                "stopped waiting: {} of {total} finalized",
                latencies_s.len()
            );
            break;
        };
        if let NodeEvent::Decided(d) = ev {
            heights += 1;
            if verbose {
                eprintln!(
                    "{:>8.3} s  height {} round {}  batches {}  proofs {}",
                    start.elapsed().as_secs_f64(),
                    d.height,
                    d.round,
                    d.batch_digests.len(),
                    d.proofs
                );
            }
            let sent = sent.lock().expect("sent");
            for digest in &d.batch_digests {
                if let Some(ts) = sent.get(digest) {
                    latencies_s.extend(ts.iter().map(|t| d.at.duration_since(*t).as_secs_f64()));
                }
            }
            last = d.at;
        }
    }
    for f in feeders {
        let _ = f.join();
    }
    let span_s = last.duration_since(start).as_secs_f64();
    latencies_s.sort_by(f64::total_cmp);
    println!(
        "consensus_bench: {} proofs finalized in {span_s:.2} s over {heights} heights: {:.0} proofs/s; ingest→finality p50 {:.3} s, p99 {:.3} s (offered {rate:.0}/s, 4 validators, 1 process)",
        latencies_s.len(),
        latencies_s.len() as f64 / span_s,
        percentile(&latencies_s, 0.5),
        percentile(&latencies_s, 0.99),
    );
    for n in nodes {
        n.stop().await;
    }
}
