//! The gateway's Prometheus metrics (`GET /metrics`), typed and registered
//! once. `docs/ops/` queries these names; `io/tests/ops_docs.rs` checks
//! they exist.
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `step_gateway_answers_total` | counter | `by` (`phase2`, `phase3`, `phase2_fallback`, `none`) | client answers of `POST /proof/submit`, by the system that gave them |
//! | `step_gateway_comparisons_total` | counter | `kind` (`match`, `intended`, `unexpected`), `class` | compared verdict pairs |
//! | `step_gateway_not_compared_total` | counter | `reason` | proofs whose Phase 2 verdict was missing (nothing to compare with) |
//! | `step_gateway_window_compared` | gauge | | comparisons in the sliding window |
//! | `step_gateway_window_unexpected` | gauge | | unexpected discrepancies in the window |
//! | `step_gateway_phase3_share_percent` | gauge | | share of accounts Phase 3 answers |
//! | `step_gateway_rolled_back` | gauge | | 1 after a rollback until an operator sets a share again |
//! | `step_gateway_rollbacks_total` | counter | `trigger` (`unexpected_rate`, `no_new_height`) | rollbacks |
//! | `step_gateway_failovers_total` | counter | | Phase 3 requests retried on another validator |
//! | `step_gateway_validator_up` | gauge | `validator` | 1 if the last health check or request of this validator succeeded |
//! | `step_gateway_phase3_height` | gauge | | highest finalized height the validators report |
//! | `step_gateway_height_age_seconds` | gauge | | seconds since that height last grew |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByLabel {
    pub by: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComparisonLabels {
    pub kind: &'static str,
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabel {
    pub trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidatorLabel {
    pub validator: String,
}

/// Every gateway metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub answers: Family<ByLabel, Counter>,
    pub comparisons: Family<ComparisonLabels, Counter>,
    pub not_compared: Family<ReasonLabel, Counter>,
    pub window_compared: Gauge,
    pub window_unexpected: Gauge,
    pub share: Gauge,
    pub rolled_back: Gauge,
    pub rollbacks: Family<TriggerLabel, Counter>,
    pub failovers: Counter,
    pub validator_up: Family<ValidatorLabel, Gauge>,
    pub height: Gauge,
    pub height_age_seconds: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            answers: Family::default(),
            comparisons: Family::default(),
            not_compared: Family::default(),
            window_compared: Gauge::default(),
            window_unexpected: Gauge::default(),
            share: Gauge::default(),
            rolled_back: Gauge::default(),
            rollbacks: Family::default(),
            failovers: Counter::default(),
            validator_up: Family::default(),
            height: Gauge::default(),
            height_age_seconds: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "step_gateway_answers",
            "Client answers of POST /proof/submit, by the system that gave them",
            m.answers.clone(),
        );
        r.register(
            "step_gateway_comparisons",
            "Compared Phase 2 / Phase 3 verdict pairs",
            m.comparisons.clone(),
        );
        r.register(
            "step_gateway_not_compared",
            "Proofs without a Phase 2 verdict to compare with",
            m.not_compared.clone(),
        );
        r.register(
            "step_gateway_window_compared",
            "Comparisons in the sliding window",
            m.window_compared.clone(),
        );
        r.register(
            "step_gateway_window_unexpected",
            "Unexpected discrepancies in the sliding window",
            m.window_unexpected.clone(),
        );
        r.register(
            "step_gateway_phase3_share_percent",
            "Share of accounts Phase 3 answers",
            m.share.clone(),
        );
        r.register(
            "step_gateway_rolled_back",
            "1 after a rollback until an operator sets a share again",
            m.rolled_back.clone(),
        );
        r.register(
            "step_gateway_rollbacks",
            "Rollbacks, by trigger",
            m.rollbacks.clone(),
        );
        r.register(
            "step_gateway_failovers",
            "Phase 3 requests retried on another validator",
            m.failovers.clone(),
        );
        r.register(
            "step_gateway_validator_up",
            "1 if this validator answered its last health check or request",
            m.validator_up.clone(),
        );
        r.register(
            "step_gateway_phase3_height",
            "Highest finalized height the validators report",
            m.height.clone(),
        );
        r.register(
            "step_gateway_height_age_seconds",
            "Seconds since the finalized height last grew",
            m.height_age_seconds.clone(),
        );
        m
    }

    /// The registry in OpenMetrics text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
