//! `docs/ops/gateway-*`: the alert rules pass their promtool unit tests,
//! and the dashboard and the rules query only metrics the gateway renders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use step_gateway::shell::metrics::{
    ByLabel, ComparisonLabels, Metrics, ReasonLabel, TriggerLabel, ValidatorLabel,
};

fn ops(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/ops")
        .join(name)
}

/// Every `step_gateway_*` word of a text.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("step_gateway_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn dashboard_and_alerts_query_only_rendered_metrics() {
    let m = Metrics::new();
    m.answers.get_or_create(&ByLabel { by: "phase2" }).inc();
    m.comparisons
        .get_or_create(&ComparisonLabels {
            kind: "match",
            class: "match",
        })
        .inc();
    m.not_compared
        .get_or_create(&ReasonLabel {
            reason: "phase2_no_answer",
        })
        .inc();
    m.rollbacks
        .get_or_create(&TriggerLabel {
            trigger: "unexpected_rate",
        })
        .inc();
    m.validator_up
        .get_or_create(&ValidatorLabel {
            validator: "127.0.0.1:27000".to_owned(),
        })
        .set(1);
    let rendered = names(&m.encode().unwrap());
    for file in ["gateway-dashboard.json", "gateway-alerts.yml"] {
        let text = std::fs::read_to_string(ops(file)).unwrap();
        let used = names(&text);
        assert!(!used.is_empty(), "{file} queries no gateway metric");
        for n in &used {
            assert!(
                rendered.contains(n),
                "{file} queries {n}, which the gateway does not render: {rendered:?}"
            );
        }
    }
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ops("gateway-dashboard.json")).unwrap())
            .unwrap();
    assert_eq!(dash["uid"], "step-gateway");
}

/// `promtool test rules docs/ops/gateway-alerts_test.yml` (fails under
/// `CI=true` without promtool).
#[test]
fn gateway_alert_rules_pass_promtool_unit_tests() {
    step_testkit::promtool_rules(&ops(""), "gateway-alerts.yml", "gateway-alerts_test.yml");
}
