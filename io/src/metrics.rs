//! Typed Prometheus metrics. Every metric is a field here, registered once
//! with its help text; `GET /metrics` encodes the registry (OpenMetrics text,
//! which Prometheus scrapes natively).
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `step_proofs_total` | counter | `code` | first verdict of every proof: `ACCEPTED` (pipeline accepted, pending finality) or the rejection code (incl. `OVERLOADED`, `RATE_LIMITED`) |
//! | `step_proofs_finalized_total` | counter | | proofs included in a finalized block |
//! | `step_rate_limited_total` | counter | `scope` (`ip`, `account`) | requests or proofs refused by a rate limit |
//! | `step_queue_depth` | gauge | `queue` (`ingest`, `in_flight`) | pipeline occupancy, read at scrape time |
//! | `step_queue_capacity` | gauge | | the pipeline's capacity (most proofs in flight) |
//! | `step_batch_proofs` | histogram | | proofs per committed batch |
//! | `step_block_proofs` | histogram | | proofs per finalized block |
//! | `step_finality_seconds` | histogram | | from submission to finality, per proof |
//! | `step_height` | gauge | | last finalized height |
//! | `step_round` | gauge | | consensus round of the last decision |
//! | `step_peers` | gauge | | connected peers (other validators; this node not counted) |
//! | `step_validators` | gauge | | validators in the current set (this node included) |
//! | `step_precheck_pending` | gauge | | proofs this validator accepted that no decided block holds yet: its pre-check's local entries (consensus backend) |
//! | `step_gossip_batches` | gauge | | peers' gossiped batches this validator verified and took into its mempool since it started (consensus backend) |
//! | `step_redis_errors_total` | counter | | Redis commands that failed or timed out (the node went on without Redis) |
//! | `step_evidence_total` | counter | | misbehaviour evidence records (double votes / proposals, one per height) this validator saw since it started (`GET /evidence`) |
//! | `step_http_requests_total` | counter | `route`, `status` | HTTP responses |
//! | `process_resident_memory_bytes` | gauge | | resident set size, read from `/proc/self/status` at scrape time (Linux only) |
//! | `process_threads` | gauge | | OS threads of the process (Linux only) |
//! | `process_open_fds` | gauge | | open file descriptors (Linux only) |
//!
//! Gauges that a backend owns (height, round, peers, validators, queues,
//! pre-check pending, gossiped batches) have
//! setters ([`Metrics::set_height`], …, or [`Metrics::observe_status`] for
//! everything a [`StatusView`] holds), so that a backend never reaches into
//! the registry. `docs/ops/` (Grafana dashboard, Prometheus alerts) queries
//! these names; `io/tests/ops_docs.rs` fails if one of them disappears.

use crate::ledger::StatusView;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    pub scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

/// `step_state_diverged_total{block=…}`: "proposal" (a proposal refused)
/// or "decided" (a decided block refuted this node's state; it stopped).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DivergedLabel {
    pub block: &'static str,
}

/// Every metric of the node.
#[derive(Debug)]
pub struct Metrics {
    pub proofs: Family<CodeLabel, Counter>,
    pub finalized: Counter,
    pub rate_limited: Family<ScopeLabel, Counter>,
    pub queue_depth: Family<QueueLabel, Gauge>,
    pub queue_capacity: Gauge,
    pub batch_proofs: Histogram,
    pub block_proofs: Histogram,
    pub finality_seconds: Histogram,
    pub height: Gauge,
    pub round: Gauge,
    pub peers: Gauge,
    pub validators: Gauge,
    pub precheck_pending: Gauge,
    pub gossip_batches: Gauge,
    pub redis_errors: Counter,
    pub evidence: Counter,
    pub state_diverged: Family<DivergedLabel, Counter>,
    pub http_requests: Family<RouteLabels, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            proofs: Family::default(),
            finalized: Counter::default(),
            rate_limited: Family::default(),
            queue_depth: Family::default(),
            queue_capacity: Gauge::default(),
            // 1, 2, 4, … 1024 proofs.
            batch_proofs: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            block_proofs: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            // 1 ms … ~33 s.
            finality_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            height: Gauge::default(),
            round: Gauge::default(),
            peers: Gauge::default(),
            validators: Gauge::default(),
            precheck_pending: Gauge::default(),
            gossip_batches: Gauge::default(),
            redis_errors: Counter::default(),
            evidence: Counter::default(),
            state_diverged: Family::default(),
            http_requests: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut m.registry;
        r.register(
            "step_proofs",
            "First verdict of every proof, by code (ACCEPTED = pending finality)",
            m.proofs.clone(),
        );
        r.register(
            "step_proofs_finalized",
            "Proofs included in a finalized block",
            m.finalized.clone(),
        );
        r.register(
            "step_rate_limited",
            "Requests or proofs refused by a rate limit, by scope",
            m.rate_limited.clone(),
        );
        r.register(
            "step_queue_depth",
            "Pipeline occupancy: ingest queue and proofs in flight",
            m.queue_depth.clone(),
        );
        r.register(
            "step_queue_capacity",
            "Most proofs the pipeline holds in flight",
            m.queue_capacity.clone(),
        );
        r.register(
            "step_precheck_pending",
            "Proofs this validator accepted that no decided block holds yet",
            m.precheck_pending.clone(),
        );
        r.register(
            "step_gossip_batches",
            "Peers' gossiped batches verified and taken into the mempool since start",
            m.gossip_batches.clone(),
        );
        r.register(
            "step_batch_proofs",
            "Proofs per committed batch",
            m.batch_proofs.clone(),
        );
        r.register(
            "step_block_proofs",
            "Proofs per finalized block",
            m.block_proofs.clone(),
        );
        r.register(
            "step_finality_seconds",
            "Time from submission to finality, per proof",
            m.finality_seconds.clone(),
        );
        r.register("step_height", "Last finalized height", m.height.clone());
        r.register(
            "step_round",
            "Consensus round of the last decision",
            m.round.clone(),
        );
        r.register(
            "step_peers",
            "Connected peers (other validators; this node not counted)",
            m.peers.clone(),
        );
        r.register(
            "step_validators",
            "Validators in the current set (this node included)",
            m.validators.clone(),
        );
        r.register(
            "step_redis_errors",
            "Redis commands that failed or timed out",
            m.redis_errors.clone(),
        );
        r.register(
            "step_evidence",
            "Misbehaviour evidence records seen (double votes or proposals, one per height)",
            m.evidence.clone(),
        );
        r.register(
            "step_state_diverged",
            "Blocks that carried another state root than this validator's: \
             block=\"proposal\" refused (prevoted nil), block=\"decided\" stopped the node",
            m.state_diverged.clone(),
        );
        r.register(
            "step_http_requests",
            "HTTP responses by route and status",
            m.http_requests.clone(),
        );
        r.register_collector(Box::new(ProcessCollector));
        // Present at 0 from the start, so that a rule sees the series.
        for block in ["proposal", "decided"] {
            m.state_diverged
                .get_or_create(&DivergedLabel { block })
                .inc_by(0);
        }
        m
    }

    /// Counts one [`step_consensus::StateDiverged`] report.
    pub fn state_diverged(&self, decided: bool) {
        let block = if decided { "decided" } else { "proposal" };
        self.state_diverged
            .get_or_create(&DivergedLabel { block })
            .inc();
    }

    /// Sets `step_height`, the last finalized height.
    pub fn set_height(&self, height: u64) {
        self.height.set(saturating_i64(height));
    }

    /// Sets `step_round`, the consensus round of the last decision.
    pub fn set_round(&self, round: i64) {
        self.round.set(round);
    }

    /// Sets `step_peers`, the connected peers (this node not counted).
    pub fn set_peers(&self, peers: usize) {
        self.peers.set(saturating_i64(peers));
    }

    /// Sets `step_validators`, the size of the current validator set.
    pub fn set_validators(&self, validators: usize) {
        self.validators.set(saturating_i64(validators));
    }

    /// Sets `step_queue_depth{queue="ingest"|"in_flight"}` and `step_queue_capacity`.
    pub fn set_queue(&self, ingest: usize, in_flight: usize, capacity: usize) {
        self.queue_depth
            .get_or_create(&QueueLabel { queue: "ingest" })
            .set(saturating_i64(ingest));
        self.queue_depth
            .get_or_create(&QueueLabel { queue: "in_flight" })
            .set(saturating_i64(in_flight));
        self.queue_capacity.set(saturating_i64(capacity));
    }

    /// Sets every gauge a backend's status holds: height, round, peers,
    /// validators, the queues, the pre-check's pending proofs and the
    /// gossiped batches. Call it at scrape time (`GET /metrics`).
    pub fn observe_status(&self, st: &StatusView) {
        self.set_height(st.height);
        self.set_round(st.round);
        self.set_peers(st.peers);
        self.set_validators(st.validators);
        self.set_queue(st.queue.ingest, st.queue.in_flight, st.queue.capacity);
        self.precheck_pending
            .set(saturating_i64(st.precheck_pending));
        self.gossip_batches.set(saturating_i64(st.gossip_batches));
    }

    /// Counts one proof verdict.
    pub fn proof(&self, code: &'static str) {
        self.proofs.get_or_create(&CodeLabel { code }).inc();
    }

    /// The registry in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn saturating_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// `process_*` gauges read from `/proc/self` at scrape time (Linux). Elsewhere,
/// or if `/proc` cannot be read, they are left out of the scrape.
#[derive(Debug)]
struct ProcessCollector;

impl ProcessCollector {
    /// `VmRSS` (bytes) and `Threads` from `/proc/self/status`.
    fn status() -> (Option<i64>, Option<i64>) {
        let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
            return (None, None);
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<i64>().ok())
        };
        (
            field("VmRSS:").map(|kib| kib.saturating_mul(1024)),
            field("Threads:"),
        )
    }

    fn open_fds() -> Option<i64> {
        let dir = std::fs::read_dir("/proc/self/fd").ok()?;
        Some(saturating_i64(dir.count()))
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (rss_bytes, threads) = Self::status();
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                rss_bytes,
            ),
            ("process_threads", "OS threads of the process", threads),
            (
                "process_open_fds",
                "Open file descriptors",
                Self::open_fds(),
            ),
        ];
        for (name, help, value) in gauges {
            let Some(v) = value else { continue };
            let g = ConstGauge::new(v);
            let metric = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(metric)?;
        }
        Ok(())
    }
}
