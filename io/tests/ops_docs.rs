//! `docs/ops/`: the Grafana dashboard and the Prometheus alert rules parse,
//! have the shape their tools need, and query only metrics that the node's
//! real `GET /metrics` renders (a renamed metric or label value fails here).
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use step_io::ledger::{QueueView, StatusView};
use step_io::Metrics;
use support::{test_config, valid_lines, Server};

fn ops_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/ops")
        .join(name)
}

fn ops(name: &str) -> String {
    let p = ops_path(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What a scrape holds: the names a query may use (from `# TYPE` lines,
/// with the OpenMetrics sample suffixes of each type), and every sample's
/// labels by sample name.
#[derive(Debug, Default)]
struct Exposition {
    names: BTreeSet<String>,
    samples: HashMap<String, Vec<BTreeMap<String, String>>>,
}

fn parse_exposition(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            for s in suffixes {
                e.names.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap();
            let name = &line[..end];
            let mut labels = BTreeMap::new();
            if line[end..].starts_with('{') {
                let close = line.find('}').unwrap();
                for pair in line[end + 1..close].split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap();
                    labels.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
            e.samples.entry(name.to_owned()).or_default().push(labels);
        }
    }
    e
}

/// One metric selector of a PromQL expression: its name and its
/// equality matchers (`label="value"`; `=~`, `!=` and `!~` are left out).
#[derive(Debug)]
struct Selector {
    name: String,
    equal: Vec<(String, String)>,
}

/// The `step_*` and `process_*` metric selectors of a PromQL expression.
fn selectors(expr: &str) -> Vec<Selector> {
    let bytes = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b'$')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let name = &expr[start..i];
        if !(name.starts_with("step_") || name.starts_with("process_")) {
            continue;
        }
        let mut equal = Vec::new();
        if bytes.get(i) == Some(&b'{') {
            let close = expr[i..].find('}').unwrap() + i;
            for m in expr[i + 1..close].split(',') {
                let m = m.trim();
                let Some(eq) = m.find('=') else { continue };
                let (k, rest) = (m[..eq].trim(), &m[eq + 1..]);
                if k.ends_with('!') || rest.starts_with('~') {
                    continue;
                }
                equal.push((k.to_owned(), rest.trim().trim_matches('"').to_owned()));
            }
            i = close + 1;
        }
        out.push(Selector {
            name: name.to_owned(),
            equal,
        });
    }
    out
}

/// The text of `GET /metrics` from a real node after some traffic: one
/// accepted proof, one replay, a health check.
async fn scrape() -> String {
    let server = Server::start(test_config()).await;
    let valid = valid_lines();
    let r = server.post_json("/proof/submit", valid[0].as_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    server
        .post_json("/proof/submit", valid[0].as_bytes())
        .await
        .assert_error(409, "NONCE_REPLAY");
    assert_eq!(server.get("/health").await.status, 200);
    let r = server.get("/metrics").await;
    assert_eq!(r.status, 200);
    server.shutdown().await;
    String::from_utf8(r.body).unwrap()
}

/// Every PromQL expression of the dashboard (panel targets, also inside
/// rows, and the template variables' queries).
fn dashboard_exprs(dash: &Value) -> Vec<String> {
    fn panels(list: &Value, out: &mut Vec<String>) {
        for p in list.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(t["expr"].as_str().unwrap().to_owned());
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            out.push(q.to_owned());
        }
    }
    out
}

fn dashboard() -> Value {
    serde_json::from_str(&ops("grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("docs/ops/grafana-dashboard.json is not JSON: {e}"))
}

fn alerts() -> serde_norway::Value {
    serde_norway::from_str(&ops("alerts.yml"))
        .unwrap_or_else(|e| panic!("docs/ops/alerts.yml is not YAML: {e}"))
}

/// `(alert name, expr)` of every rule.
fn alert_rules(doc: &serde_norway::Value) -> Vec<(String, String)> {
    let groups = doc["groups"].as_sequence().expect("alerts.yml: groups");
    assert!(!groups.is_empty());
    let mut out = Vec::new();
    for g in groups {
        assert!(g["name"].as_str().is_some_and(|n| !n.is_empty()), "{g:?}");
        for r in g["rules"].as_sequence().expect("a group's rules") {
            let name = r["alert"].as_str().expect("every rule is an alert");
            let expr = r["expr"].as_str().expect("an alert's expr");
            assert!(
                ["critical", "warning"].contains(&r["labels"]["severity"].as_str().unwrap_or("")),
                "{name}: labels.severity must be critical or warning"
            );
            assert!(
                r["annotations"]["summary"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: no annotations.summary"
            );
            if let Some(f) = r.get("for") {
                let f = f.as_str().unwrap();
                let (n, unit) = f.split_at(f.len() - 1);
                assert!(
                    n.parse::<u32>().is_ok() && ["s", "m", "h"].contains(&unit),
                    "{name}: for: {f:?}"
                );
            }
            out.push((name.to_owned(), expr.to_owned()));
        }
    }
    out
}

/// Every `step_*`/`process_*` name the dashboard and the alerts query is in
/// the scrape, and every `label="value"` they match on occurs there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_query_only_rendered_metrics() {
    let scraped = scrape().await;
    let exp = parse_exposition(&scraped);
    let mut exprs: Vec<(String, String)> = dashboard_exprs(&dashboard())
        .into_iter()
        .map(|e| ("grafana-dashboard.json".to_owned(), e))
        .collect();
    exprs.extend(
        alert_rules(&alerts())
            .into_iter()
            .map(|(name, e)| (format!("alerts.yml {name}"), e)),
    );
    let mut used = BTreeSet::new();
    for (whence, expr) in &exprs {
        for s in selectors(expr) {
            assert!(
                exp.names.contains(&s.name),
                "{whence}: `{expr}` queries {}, which GET /metrics does not render:\n{scraped}",
                s.name
            );
            for (k, v) in &s.equal {
                let found = exp.samples.get(&s.name).is_some_and(|samples| {
                    samples.iter().any(|l| l.get(k).is_some_and(|x| x == v))
                });
                assert!(
                    found,
                    "{whence}: `{expr}` matches {}{{{k}=\"{v}\"}}, which GET /metrics never renders:\n{scraped}",
                    s.name
                );
            }
            used.insert(s.name);
        }
    }
    // What operators were promised is on the dashboard or in an alert.
    for name in [
        "step_proofs_total",
        "step_proofs_finalized_total",
        "step_queue_depth",
        "step_queue_capacity",
        "step_batch_proofs_bucket",
        "step_block_proofs_bucket",
        "step_finality_seconds_bucket",
        "step_height",
        "step_round",
        "step_peers",
        "step_validators",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(name), "docs/ops never queries {name}");
    }
}

#[test]
fn the_dashboard_imports() {
    let d = dashboard();
    for key in ["title", "uid"] {
        assert!(d[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
    }
    assert!(d["schemaVersion"].as_u64().is_some());
    // Panels use the datasource template variable, so that import asks for none.
    let vars: Vec<&Value> = d["templating"]["list"].as_array().unwrap().iter().collect();
    let ds = vars.iter().find(|v| v["type"] == "datasource").unwrap();
    assert_eq!(ds["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        let id = p["id"].as_u64().unwrap();
        assert!(ids.insert(id), "panel id {id} twice");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24 && g["h"].as_u64().unwrap() > 0, "{p}");
        let title = p["title"].as_str().unwrap();
        titles.insert(title.to_owned());
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: refId twice"
            );
        }
    }
    for want in [
        "Finalized proofs/s",
        "Proofs by result code",
        "Finality latency p50 / p99",
        "Height by validator",
        "Round by validator",
        "Peers vs quorum",
        "Queue depth vs capacity",
        "Batch size (proofs)",
        "Block size (proofs)",
        "Process RSS",
    ] {
        assert!(titles.contains(want), "no panel {want:?}");
    }
    // Finality quantiles come from the histogram.
    let exprs = dashboard_exprs(&d).join("\n");
    for q in ["0.5", "0.99"] {
        let want = format!(
            "histogram_quantile({q}, sum by (instance, le) (rate(step_finality_seconds_bucket"
        );
        assert!(exprs.contains(&want), "no {want}");
    }
}

#[test]
fn the_alerts_cover_what_operators_need() {
    let rules: BTreeMap<String, String> = alert_rules(&alerts()).into_iter().collect();
    for want in [
        "StepNoHeightProgress",
        "StepPeersBelowQuorum",
        "StepQueueSaturated",
        "StepFinalityP99High",
        "StepHighRejectionRate",
        "StepStateDiverged",
        "StepEquivocationEvidence",
    ] {
        assert!(rules.contains_key(want), "alerts.yml lacks {want}");
    }
    let has = |alert: &str, frag: &str| {
        assert!(
            rules[alert].contains(frag),
            "{alert}: {:?} lacks {frag:?}",
            rules[alert]
        );
    };
    has("StepNoHeightProgress", "step_height[30s]");
    // Quorum of n = 3f+1 equal validators is 2f+1 = floor(2n/3)+1.
    has(
        "StepPeersBelowQuorum",
        "(step_peers + 1) < (floor(2 * step_validators / 3) + 1)",
    );
    has("StepQueueSaturated", "> 0.9");
    has("StepFinalityP99High", "histogram_quantile(0.99,");
    has("StepFinalityP99High", "> 3");
    // Any refused block, proposal or decided, within 10 minutes.
    has(
        "StepStateDiverged",
        "increase(step_state_diverged_total[10m])",
    );
}

/// `promtool test rules docs/ops/alerts_test.yml`: every alert fires on
/// made-up series exactly when it should (the quorum math for n = 4, 5, 7
/// included). Needs Prometheus's promtool on PATH (Debian: `prometheus`,
/// which `scripts/test` installs); without it the test says so and passes,
/// except under `CI=true`, where it fails: CI must run the rules' tests.
#[test]
fn alert_rules_pass_promtool_unit_tests() {
    step_testkit::promtool_rules(&ops_path(""), "alerts.yml", "alerts_test.yml");
}

/// The status setters a backend calls render under the documented names.
#[test]
fn status_setters_render() {
    let m = Metrics::new();
    m.observe_status(&StatusView {
        backend: "test",
        height: 42,
        round: 3,
        state_root: [0; 32],
        validators: 7,
        peers: 5,
        ready: true,
        queue: QueueView {
            ingest: 11,
            in_flight: 12,
            capacity: 13,
        },
        precheck_pending: 14,
        gossip_batches: 15,
    });
    let text = m.encode();
    for want in [
        "step_height 42",
        "step_round 3",
        "step_validators 7",
        "step_peers 5",
        "step_queue_depth{queue=\"ingest\"} 11",
        "step_queue_depth{queue=\"in_flight\"} 12",
        "step_queue_capacity 13",
        "step_precheck_pending 14",
        "step_gossip_batches 15",
    ] {
        assert!(text.lines().any(|l| l == want), "no {want:?} in\n{text}");
    }
    m.set_height(43);
    m.set_peers(6);
    assert!(text_has(&m, "step_height 43") && text_has(&m, "step_peers 6"));
    // Both StateDiverged series exist at 0 from the start.
    assert!(text_has(
        &m,
        "step_state_diverged_total{block=\"proposal\"} 0"
    ));
    m.state_diverged(true);
    assert!(text_has(
        &m,
        "step_state_diverged_total{block=\"decided\"} 1"
    ));
    assert!(text_has(
        &m,
        "step_state_diverged_total{block=\"proposal\"} 0"
    ));
    if cfg!(target_os = "linux") {
        let rss = m
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .map(|v| v.parse::<u64>().unwrap())
            .expect("process_resident_memory_bytes");
        assert!(rss > 1 << 20, "rss {rss}");
    }
}

fn text_has(m: &Metrics, line: &str) -> bool {
    m.encode().lines().any(|l| l == line)
}

#[test]
fn selectors_parse_names_and_equality_matchers() {
    let s = selectors(
        r#"sum by (x) (rate(step_proofs_total{code!="ACCEPTED",instance=~"$instance"}[1m])) / ignoring(queue) step_queue_depth{queue="in_flight"} + $step_var + up"#,
    );
    let got: Vec<(&str, &[(String, String)])> = s
        .iter()
        .map(|s| (s.name.as_str(), s.equal.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("step_proofs_total", &[][..]),
            (
                "step_queue_depth",
                &[("queue".to_owned(), "in_flight".to_owned())][..]
            ),
        ]
    );
}
