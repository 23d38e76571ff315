//! A real Prometheus (Debian's `prometheus`) scraping every validator with
//! the shipped rules (`docs/ops/alerts.yml`), and a poller of its
//! `/api/v1/alerts` that records which alerts fire when.

use crate::http::get;
use crate::node::http_addr;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One poll of the active alerts: (alert name, instance, state) with state
/// `pending` or `firing`.
#[derive(Debug, Clone)]
pub struct AlertsSeen {
    pub at: Instant,
    pub alerts: Vec<(String, String, String)>,
}

#[derive(Debug)]
pub struct Prometheus {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<AlertsSeen>>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ops/alerts.yml")
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping and evaluating
    /// every `interval_s` seconds, with its data under `dir`.
    pub fn start(dir: &Path, validators: usize, interval_s: u32) -> anyhow::Result<Prometheus> {
        let rules = rules_file().canonicalize().context("docs/ops/alerts.yml")?;
        std::fs::create_dir_all(dir)?;
        let targets: Vec<String> = (0..validators)
            .map(|i| format!("\"{}\"", http_addr(i)))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: {interval_s}s\n  evaluation_interval: {interval_s}s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: step\n    scrape_timeout: {interval_s}s\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        );
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config)?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting prometheus (apt-get install prometheus)")?;
        let mut p = Prometheus {
            child: Some(child),
            addr,
            seen: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            poller: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !get(addr, "/-/ready").is_ok_and(|r| r.status == 200) {
            if Instant::now() > deadline {
                bail!(
                    "prometheus not ready after 30 s; log:\n{}",
                    crate::node::tail(&dir.join("prometheus.log"), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let (seen, stop) = (Arc::clone(&p.seen), Arc::clone(&p.stop));
        p.poller = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(alerts) = alerts(addr) {
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(AlertsSeen {
                            at: Instant::now(),
                            alerts,
                        });
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }));
        Ok(p)
    }
}

/// `GET /api/v1/alerts`: (name, instance, state) of each active alert.
fn alerts(addr: SocketAddr) -> Option<Vec<(String, String, String)>> {
    let v = get(addr, "/api/v1/alerts").ok()?.json()?;
    Some(
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"]["instance"].as_str().unwrap_or("").to_owned(),
                    a["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
    )
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.poller.take() {
            let _ = t.join();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
