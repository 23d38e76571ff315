//! Configuration: TOML, environment and flag overrides, validation, and the
//! guide documenting every key.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use step_engine::Limits;
use step_io::config::{env_name, ConfigError};
use step_io::Config;

#[test]
fn defaults_are_phase_2_limits_and_valid() {
    let c = Config::default();
    assert_eq!(c.limits.to_limits(), Limits::default());
    c.validate().unwrap();
    assert_eq!(c.http.listen, "127.0.0.1:8080");
    assert!(c.redis.url.is_empty(), "Redis is off by default");
}

#[test]
fn toml_file_overrides_defaults_and_rejects_unknown_keys() {
    let c = Config::from_toml(
        r#"
        [http]
        listen = "0.0.0.0:9000"
        [limits]
        speed_gate = false
        moratorium_ms = 5000
        [log]
        format = "json"
        "#,
    )
    .unwrap();
    assert_eq!(c.http.listen, "0.0.0.0:9000");
    assert_eq!(c.limits.to_limits().speed_mps_max, None);
    assert_eq!(c.limits.to_limits().moratorium_ms, Some(5000));
    assert_eq!(c.log.format, "json");
    assert_eq!(c.pipeline, Config::default().pipeline);
    c.validate().unwrap();

    for bad in [
        "[http]\nlisten_addr = \"x\"",
        "[nope]\na = 1",
        "[http]\nlisten = 5",
    ] {
        assert!(
            matches!(Config::from_toml(bad), Err(ConfigError::Toml { .. })),
            "{bad}"
        );
    }
}

#[test]
fn set_reads_text_by_the_key_type() {
    let mut c = Config::default();
    c.set("redis.url", "redis://127.0.0.1:6379/0").unwrap();
    c.set("limits.speed_gate", "off").unwrap();
    c.set("limits.accuracy_m_max", "30").unwrap();
    c.set("pipeline.capacity", "4_096").unwrap();
    c.set("http.listen", "127.0.0.1:1").unwrap();
    assert_eq!(c.redis.url, "redis://127.0.0.1:6379/0");
    assert!(!c.limits.speed_gate);
    assert_eq!(c.limits.accuracy_m_max, 30.0);
    assert_eq!(c.pipeline.capacity, 4096);
    assert_eq!(c.http.listen, "127.0.0.1:1");

    for (key, value) in [("http.nope", "1"), ("http", "1")] {
        assert!(
            matches!(c.set(key, value), Err(ConfigError::UnknownKey { .. })),
            "{key}={value}"
        );
    }
    for (key, value) in [
        ("pipeline.capacity", "-1"),
        ("limits.speed_gate", "maybe"),
        ("limits.accuracy_m_max", "x"),
    ] {
        assert!(
            matches!(c.set(key, value), Err(ConfigError::BadValue { .. })),
            "{key}={value}"
        );
    }
}

#[test]
fn every_key_has_an_environment_variable() {
    let keys = Config::keys();
    assert!(keys.len() >= 30, "{keys:?}");
    assert_eq!(env_name("http.listen"), "STEP_HTTP_LISTEN");
    assert_eq!(env_name("rate_limit.per_ip"), "STEP_RATE_LIMIT_PER_IP");
    let env: HashMap<&str, &str> = [
        ("STEP_HTTP_LISTEN", "127.0.0.1:7000"),
        ("STEP_LIMITS_MORATORIUM", "false"),
        ("STEP_REDIS_URL", "redis://h:1/"),
        ("STEP_RATE_LIMIT_PER_ACCOUNT", "3"),
        ("STEP_SHARED_DIR", "/not/a/config/key"),
    ]
    .into();
    let mut c = Config::default();
    c.apply_env(|k| env.get(k).map(|v| (*v).to_owned()))
        .unwrap();
    assert_eq!(c.http.listen, "127.0.0.1:7000");
    assert!(!c.limits.moratorium);
    assert_eq!(c.redis.url, "redis://h:1/");
    assert_eq!(c.rate_limit.per_account, 3);

    let mut c = Config::default();
    let bad = c.apply_env(|k| (k == "STEP_PIPELINE_WORKERS").then(|| "many".to_owned()));
    assert!(matches!(bad, Err(ConfigError::BadValue { .. })));
}

#[test]
fn validation_rejects_nonsense() {
    for (key, value) in [
        ("http.listen", "localhost"),
        ("limits.accuracy_m_max", "0"),
        ("rate_limit.window_ms", "0"),
        ("log.format", "xml"),
        ("http.batch_max_proofs", "0"),
    ] {
        let mut c = Config::default();
        c.set(key, value).unwrap();
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { .. })),
            "{key}={value}"
        );
    }
}

/// The kinds are read into types: a name that is not one is refused when
/// it is read, naming the key and the known names.
#[test]
fn kinds_are_typed_and_unknown_names_are_refused() {
    let mut c = Config::default();
    let err = c.set("pipeline.recovery", "openssl").unwrap_err();
    assert!(matches!(err, ConfigError::Toml { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("openssl") && text.contains("secp256k1"),
        "{text}"
    );
    assert!(Config::from_toml("[node]\nledger = \"mongo\"\n").is_err());
    c.set("node.ledger", "local").unwrap();
    assert_eq!(c.node.ledger, step_io::config::LedgerKind::Local);
}

/// `node.backend` and `pipeline.backend` were renamed `node.ledger` and
/// `pipeline.recovery`: the old names still work from a file, the
/// environment and a flag, and the new environment name wins over the old.
#[test]
fn renamed_keys_are_still_read() {
    use step_io::config::LedgerKind;
    let c = Config::from_toml("[node]\nbackend = \"local\"\n[pipeline]\nbackend = \"secp256k1\"\n")
        .unwrap();
    assert_eq!(c.node.ledger, LedgerKind::Local);
    let mut c = Config::default();
    c.apply_env(|k| (k == "STEP_NODE_BACKEND").then(|| "local".to_owned()))
        .unwrap();
    assert_eq!(c.node.ledger, LedgerKind::Local);
    let mut c = Config::default();
    c.apply_env(|k| match k {
        "STEP_NODE_BACKEND" => Some("local".to_owned()),
        "STEP_NODE_LEDGER" => Some("consensus".to_owned()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.node.ledger, LedgerKind::Consensus);
    let mut c = Config::default();
    c.set("node.backend", "local").unwrap();
    assert_eq!(c.node.ledger, LedgerKind::Local);
    let keys: Vec<String> = Config::keys().into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&"node.ledger".to_owned()));
    assert!(!keys.contains(&"node.backend".to_owned()));
}

/// A writer into shared memory, for capturing log lines.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut c = Config::default();
    c.set("log.format", "json").unwrap();
    let out = Captured::default();
    let w = out.clone();
    let sub = step_io::node::log_subscriber(&c.log, move || w.clone());
    tracing::subscriber::with_default(sub, || {
        tracing::info!(height = 3u64, "block finalized");
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["fields"]["message"], "block finalized");
    assert_eq!(v["fields"]["height"], 3);

    // Text format: not JSON.
    let out = Captured::default();
    let w = out.clone();
    let sub = step_io::node::log_subscriber(&Config::default().log, move || w.clone());
    tracing::subscriber::with_default(sub, || tracing::info!("hello"));
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("hello") && serde_json::from_str::<serde_json::Value>(text.trim()).is_err()
    );
}

/// The store's page cache comes from `consensus.store_cache_mb` (64 MiB by
/// default, not redb's 1 GiB) and reaches the consensus app's settings.
#[test]
fn store_cache_is_configured_in_mib() {
    let mut c = Config::default();
    let app = step_io::validator::app_config(&c, Default::default(), Default::default());
    assert_eq!(app.store_cache_bytes, 64 << 20);
    c.set("consensus.store_cache_mb", "16").unwrap();
    let app = step_io::validator::app_config(&c, Default::default(), Default::default());
    assert_eq!(app.store_cache_bytes, 16 << 20);
    let mut e = Config::default();
    e.apply_env(|k| (k == "STEP_CONSENSUS_STORE_CACHE_MB").then(|| "8".to_string()))
        .unwrap();
    assert_eq!(e.consensus.store_cache_mb, 8);
}
