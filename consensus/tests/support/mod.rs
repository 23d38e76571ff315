//! An in-process cluster of STEP validators on loopback TCP, for the
//! scenario tests. Every cluster prints its seed; a failure names it.
#![allow(dead_code)]

pub mod proofs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use step_consensus::evidence::EvidenceRecord;
use step_consensus::{
    AppConfig, ConsensusNodeError, Decision, Node, NodeEvent, NodeSettings, PrivateKey, PublicKey,
    StateDiverged, Timeouts, Validator, ValidatorSet, WireBatch,
};

/// Short timeouts for tests (the defaults are 5 s / 3 s / 2 s).
pub fn test_timeouts() -> Timeouts {
    Timeouts {
        propose_ms: 1_500,
        prevote_ms: 700,
        precommit_ms: 700,
        rebroadcast_ms: 1_000,
    }
}

/// A seed from the environment (`STEP_SEED`) or the clock; printed.
pub fn seed(test: &str) -> u64 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let seed = std::env::var("STEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: seed {seed} (reproduce with STEP_SEED={seed})");
    seed
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What every node reported, shared with the test.
#[derive(Default)]
pub struct Log {
    /// (node, height) → decision
    pub decided: BTreeMap<(usize, u64), Decision>,
    pub evidence: Vec<(usize, EvidenceRecord)>,
    pub attest_evidence: Vec<(usize, step_consensus::attest::AttestEvidence)>,
    pub fatal: Vec<(usize, String)>,
    /// (node, error, decided): blocks refused for another state root.
    pub diverged: Vec<(usize, StateDiverged, bool)>,
}

pub struct Cluster {
    pub seed: u64,
    pub dir: tempfile::TempDir,
    pub keys: Vec<PrivateKey>,
    pub validators: ValidatorSet,
    pub ports: Vec<u16>,
    pub nodes: Vec<Option<Node>>,
    pub log: Arc<Mutex<Log>>,
    pub app: AppConfig,
}

impl Cluster {
    pub fn new(n: usize, seed: u64) -> Cluster {
        let keys: Vec<PrivateKey> = (0..n)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&seed.to_be_bytes());
                b[8] = i as u8;
                PrivateKey::from(b)
            })
            .collect();
        let validators = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(PublicKey(k.verification_key().to_bytes()), 10))
                .collect(),
        );
        let app = AppConfig {
            timeouts: test_timeouts(),
            propose_wait: Duration::from_millis(50),
            // The idle rule is on in every scenario, short.
            max_idle_block_interval: Duration::from_millis(250),
            ..AppConfig::default()
        };
        Cluster {
            seed,
            dir: tempfile::tempdir().expect("temp dir"),
            keys,
            validators,
            ports: (0..n).map(|_| free_port()).collect(),
            nodes: (0..n).map(|_| None).collect(),
            log: Arc::default(),
            app,
        }
    }

    pub fn home(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    pub fn settings(&self, i: usize) -> NodeSettings {
        let addr = |p: u16| format!("/ip4/127.0.0.1/tcp/{p}");
        NodeSettings {
            moniker: format!("node{i}"),
            home: self.home(i),
            listen: addr(self.ports[i]),
            peers: (0..self.ports.len())
                .filter(|j| *j != i)
                .map(|j| addr(self.ports[j]))
                .collect(),
            key: self.keys[i].clone(),
            p2p_key: step_consensus::P2pKey::derived_from(&self.keys[i]),
            validators: self.validators.clone(),
            app: self.app,
            initial: None,
            #[cfg(feature = "byzantine")]
            byzantine: None,
            #[cfg(feature = "byzantine")]
            forge_batches: None,
        }
    }

    /// The index of the node with this validator address.
    pub fn index_of(&self, address: &step_consensus::ValidatorAddress) -> usize {
        self.keys
            .iter()
            .position(|k| {
                step_consensus::ValidatorAddress::from_public_key(&PublicKey(
                    k.verification_key().to_bytes(),
                )) == *address
            })
            .expect("a validator of the cluster")
    }

    pub async fn start_with(
        &mut self,
        i: usize,
        s: NodeSettings,
    ) -> Result<(), ConsensusNodeError> {
        let node = Node::start(s).await?;
        let mut rx = node.subscribe();
        let log = Arc::clone(&self.log);
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                let mut log = log.lock().expect("log");
                match ev {
                    NodeEvent::Decided(d) => {
                        log.decided.insert((i, d.height), d);
                    }
                    NodeEvent::Evidence(e) => log.evidence.push((i, e)),
                    NodeEvent::AttestEvidence(e) => log.attest_evidence.push((i, e)),
                    NodeEvent::Fatal(f) => log.fatal.push((i, f)),
                    NodeEvent::StateDiverged { error, decided } => {
                        log.diverged.push((i, error, decided))
                    }
                }
            }
        });
        self.nodes[i] = Some(node);
        Ok(())
    }

    pub async fn start(&mut self, i: usize) -> Result<(), ConsensusNodeError> {
        let s = self.settings(i);
        self.start_with(i, s).await
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i).await.expect("node starts");
        }
    }

    pub async fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.stop().await;
        }
    }

    pub async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    pub async fn submit(&self, i: usize, b: WireBatch) {
        if let Some(n) = &self.nodes[i] {
            n.submit_batch(b).await.expect("submit");
        }
    }

    /// Peers' batches node `i` took into its mempool by gossip (0 if down).
    pub fn gossip_batches(&self, i: usize) -> u64 {
        self.nodes[i]
            .as_ref()
            .map_or(0, |n| n.live().gossip_batches)
    }

    /// [`Cluster::gossip_batches`] of each node in `nodes`.
    pub fn gossip_batches_now(&self, nodes: &[usize]) -> Vec<u64> {
        nodes.iter().map(|&i| self.gossip_batches(i)).collect()
    }

    /// Highest height node `i` decided.
    pub fn height(&self, i: usize) -> u64 {
        let log = self.log.lock().expect("log");
        log.decided
            .keys()
            .filter(|(n, _)| *n == i)
            .map(|(_, h)| *h)
            .max()
            .unwrap_or(0)
    }

    pub fn decision(&self, i: usize, h: u64) -> Option<Decision> {
        self.log.lock().expect("log").decided.get(&(i, h)).cloned()
    }

    /// Waits until `cond` holds, checking every 50 ms; panics with the seed
    /// after `deadline`.
    pub async fn wait(&self, what: &str, deadline: Duration, cond: impl Fn(&Cluster) -> bool) {
        self.wait_failing(what, deadline, &[], cond).await
    }

    /// [`Cluster::wait`], where the nodes in `may_fail` may stop.
    pub async fn wait_failing(
        &self,
        what: &str,
        deadline: Duration,
        may_fail: &[usize],
        cond: impl Fn(&Cluster) -> bool,
    ) {
        let start = Instant::now();
        while !cond(self) {
            assert!(
                self.log
                    .lock()
                    .expect("log")
                    .fatal
                    .iter()
                    .all(|(i, _)| may_fail.contains(i)),
                "seed {}: a node failed: {:?}",
                self.seed,
                self.log.lock().expect("log").fatal
            );
            assert!(
                start.elapsed() < deadline,
                "seed {}: timed out after {deadline:?} waiting for {what}; heights {:?}",
                self.seed,
                (0..self.nodes.len())
                    .map(|i| self.height(i))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every node in `nodes` has decided `h`.
    pub async fn wait_height(&self, nodes: &[usize], h: u64, deadline: Duration) {
        let nodes = nodes.to_vec();
        self.wait(&format!("height {h} on {nodes:?}"), deadline, move |c| {
            nodes.iter().all(|i| c.height(*i) >= h)
        })
        .await;
    }

    /// Safety: at every height, every node that decided it reports the
    /// same value and the same state root. Returns the heights checked.
    pub fn assert_agreement(&self) -> u64 {
        let log = self.log.lock().expect("log");
        let mut by_height: BTreeMap<u64, Vec<(usize, &Decision)>> = BTreeMap::new();
        for ((i, h), d) in &log.decided {
            by_height.entry(*h).or_default().push((*i, d));
        }
        for (h, ds) in &by_height {
            let (i0, d0) = ds[0];
            for (i, d) in ds {
                assert_eq!(
                    (d.value_id, d.root),
                    (d0.value_id, d0.root),
                    "seed {}: fork at height {h}: node{i} vs node{i0}",
                    self.seed
                );
            }
        }
        by_height.len() as u64
    }

    /// Proofs node `i` has accepted over all heights (its latest decision).
    pub fn accepted_total(&self, i: usize) -> u64 {
        let h = self.height(i);
        self.decision(i, h).map_or(0, |d| d.accepted_total)
    }
}

/// Tests in one binary share the machine's two cores: run clusters one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A cluster test's start: the [`SERIAL`] guard (hold it to the end), the
/// test's [`seed`], and a cluster of `n` validators, not yet started.
pub async fn cluster(test: &str, n: usize) -> (tokio::sync::MutexGuard<'static, ()>, u64, Cluster) {
    let serial = SERIAL.lock().await;
    let seed = seed(test);
    (serial, seed, Cluster::new(n, seed))
}
