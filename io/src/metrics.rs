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
//! | `step_peers` | gauge | | connected peers |
//! | `step_redis_errors_total` | counter | | Redis commands that failed or timed out (the node went on without Redis) |
//! | `step_http_requests_total` | counter | `route`, `status` | HTTP responses |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
    pub redis_errors: Counter,
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
            redis_errors: Counter::default(),
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
        r.register("step_peers", "Connected peers", m.peers.clone());
        r.register(
            "step_redis_errors",
            "Redis commands that failed or timed out",
            m.redis_errors.clone(),
        );
        r.register(
            "step_http_requests",
            "HTTP responses by route and status",
            m.http_requests.clone(),
        );
        m
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
