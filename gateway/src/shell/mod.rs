//! The thin shell: configuration, the axum server ([`server`]), the hyper
//! client ([`client`]), the health checks and the metrics. Decisions are
//! made by [`crate::state::Core`]; this module only moves bytes and reads
//! the clock.

pub mod chain;
pub mod client;
pub mod metrics;
pub mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::Method;
use client::{Answer, ForwardError, Upstream};
use metrics::{Metrics, TriggerLabel, ValidatorLabel};
use tokio::sync::Semaphore;

use crate::pool::Pool;
use crate::rollback::Rule;
use crate::route::Share;
use crate::state::{Core, RolledBack};
use crate::verdict::Facts;

/// `step gateway`'s settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Phase 2, `host:port`.
    pub phase2: String,
    /// The Phase 3 validators' HTTP addresses, `host:port`.
    pub phase3: Vec<String>,
    pub share: Share,
    /// The admin token (`--admin-token-file`); no admin endpoint without one.
    pub admin_token: Option<Vec<u8>>,
    pub rule: Rule,
    pub window_ms: u64,
    /// One Phase 3 `POST /proof/submit?wait=true`, finality included.
    pub phase3_timeout_ms: u64,
    pub phase2_timeout_ms: u64,
    pub health_interval_ms: u64,
    /// Proofs in flight at once; more are refused with OVERLOADED.
    pub in_flight_max: usize,
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read the admin token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin token file {path} holds fewer than 16 bytes")]
    TokenShort { path: PathBuf },
    #[error("no Phase 3 validator given")]
    NoValidators,
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server stopped: {source}")]
    Serve { source: std::io::Error },
}

/// Reads an admin token file (surrounding whitespace trimmed; 16 bytes at least).
pub fn read_token(path: &Path) -> Result<Vec<u8>, StartError> {
    let raw = std::fs::read(path).map_err(|source| StartError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let t = raw.trim_ascii().to_vec();
    if t.len() < 16 {
        return Err(StartError::TokenShort {
            path: path.to_owned(),
        });
    }
    Ok(t)
}

/// Why Phase 3 gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Phase3Error {
    #[error("no validator answered ({tried} tried; last: {last})")]
    NoValidator { tried: usize, last: String },
    #[error(
        "{validator} took the request but gave no answer in time (not retried elsewhere): {reason}"
    )]
    Slow { validator: String, reason: String },
    #[error("no verdict within {ms} ms (failover included)")]
    Timeout { ms: u64 },
}

/// The running gateway.
#[derive(Debug)]
pub struct Gateway {
    pub cfg: Config,
    core: Mutex<Core>,
    pool: Mutex<Pool>,
    upstream: Upstream,
    pub metrics: Metrics,
    started: Instant,
    in_flight: Arc<Semaphore>,
    /// Per-account order of the requests to Phase 2 and to Phase 3.
    pub(crate) chains: Mutex<(chain::Chains, chain::Chains)>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gateway {
    pub fn new(cfg: Config) -> Result<Arc<Gateway>, StartError> {
        if cfg.phase3.is_empty() {
            return Err(StartError::NoValidators);
        }
        let core = Core::new(0, cfg.share, cfg.rule, cfg.window_ms);
        let g = Gateway {
            pool: Mutex::new(Pool::new(&cfg.phase3)),
            core: Mutex::new(core),
            upstream: Upstream::new(),
            metrics: Metrics::new(),
            started: Instant::now(),
            in_flight: Arc::new(Semaphore::new(cfg.in_flight_max.max(1))),
            chains: Mutex::new(Default::default()),
            cfg,
        };
        g.metrics.share.set(i64::from(g.cfg.share.percent()));
        Ok(Arc::new(g))
    }

    /// Milliseconds since start (the core's clock).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn core(&self) -> MutexGuard<'_, Core> {
        lock(&self.core)
    }

    pub(crate) fn phase3_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.phase3_timeout_ms)
    }

    /// Phase 2's answer to this request.
    pub async fn phase2(
        &self,
        method: Method,
        path: &str,
        body: axum::body::Bytes,
    ) -> Result<Answer, ForwardError> {
        let t = Duration::from_millis(self.cfg.phase2_timeout_ms);
        self.upstream
            .call(&self.cfg.phase2, method, path, body, t)
            .await
    }

    /// A Phase 3 request on the healthy validators in turn: a validator that
    /// refuses the connection or breaks it is marked down and the next one
    /// is tried. One that is slow (a timeout) is not: the proof is probably
    /// pending there, and sending it elsewhere would take it twice.
    ///
    /// After a try that broke once the request was sent, the proof may be
    /// known already: before each retry, and when a retry is refused, it is
    /// looked up by its id, and a record of it is the answer.
    pub async fn phase3(
        &self,
        method: Method,
        path: &str,
        body: axum::body::Bytes,
        facts: Option<&Facts>,
    ) -> Result<Answer, Phase3Error> {
        let bucket = facts
            .and_then(|f| f.account.as_deref())
            .map(crate::route::bucket);
        let order = lock(&self.pool).order(bucket);
        let tried = order.len();
        let mut maybe_sent = false;
        let mut last = String::from("no validator");
        for i in order {
            let addr = self.cfg.phase3[i].clone();
            if maybe_sent {
                if let Some(found) = self.lookup(&addr, facts).await {
                    return Ok(found);
                }
            }
            let t = self.phase3_timeout();
            match self
                .upstream
                .call(&addr, method.clone(), path, body.clone(), t)
                .await
            {
                Ok(a) if a.status == 503 && is_code(&a, "NOT_READY") => {
                    self.node_failed(i);
                    last = format!("{addr}: NOT_READY");
                }
                Ok(a) => {
                    self.node_answered(i, None);
                    if maybe_sent && a.status >= 400 {
                        if let Some(found) = self.lookup(&addr, facts).await {
                            return Ok(found);
                        }
                    }
                    return Ok(a);
                }
                Err(e @ ForwardError::Timeout { .. }) => {
                    return Err(Phase3Error::Slow {
                        validator: addr,
                        reason: e.to_string(),
                    })
                }
                Err(e) => {
                    tracing::warn!(validator = %addr, error = %e, "Phase 3 request failed; trying the next validator");
                    self.node_failed(i);
                    self.metrics.failovers.inc();
                    maybe_sent |= e.maybe_sent();
                    last = e.to_string();
                }
            }
        }
        Err(Phase3Error::NoValidator { tried, last })
    }

    async fn lookup(&self, addr: &str, facts: Option<&Facts>) -> Option<Answer> {
        let id = facts?.proof_id()?;
        let path = format!("/proof/{id}");
        match self
            .upstream
            .call(
                addr,
                Method::GET,
                &path,
                axum::body::Bytes::new(),
                self.phase3_timeout(),
            )
            .await
        {
            Ok(a) if a.status == 200 => Some(a),
            Ok(a) => {
                tracing::warn!(validator = %addr, proof = %id, status = a.status, "a retried proof is a replay but not on record");
                None
            }
            Err(e) => {
                tracing::warn!(validator = %addr, proof = %id, error = %e, "looking up a retried proof failed");
                None
            }
        }
    }

    fn node_answered(&self, i: usize, height: Option<u64>) {
        lock(&self.pool).answered(i, height);
        self.metrics
            .validator_up
            .get_or_create(&ValidatorLabel {
                validator: self.cfg.phase3[i].clone(),
            })
            .set(1);
    }

    fn node_failed(&self, i: usize) {
        lock(&self.pool).failed(i);
        self.metrics
            .validator_up
            .get_or_create(&ValidatorLabel {
                validator: self.cfg.phase3[i].clone(),
            })
            .set(0);
    }

    /// Logs, alerts (metrics) and counts a rollback.
    pub fn rolled_back(&self, r: RolledBack) {
        tracing::error!(
            trigger = r.trigger.as_str(),
            share_before = r.share_before,
            why = %r.trigger,
            "ROLLBACK: all traffic goes to Phase 2 until an operator sets a share again"
        );
        self.metrics.rolled_back.set(1);
        self.metrics.share.set(0);
        self.metrics
            .rollbacks
            .get_or_create(&TriggerLabel {
                trigger: r.trigger.as_str(),
            })
            .inc();
    }

    /// One round of health checks: `GET /status` on every validator (up if it
    /// answers 200 with `"ready": true`), the highest height to the core,
    /// and the rollback rule.
    pub async fn health_round(&self) {
        let t = Duration::from_millis(self.cfg.health_interval_ms.clamp(200, 5_000));
        for (i, addr) in self.cfg.phase3.iter().enumerate() {
            let r = self
                .upstream
                .call(addr, Method::GET, "/status", axum::body::Bytes::new(), t)
                .await;
            let seen = r.ok().filter(|a| a.status == 200).and_then(|a| {
                let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
                let ready = v["ready"].as_bool()?;
                ready.then(|| v["height"].as_u64()).flatten()
            });
            match seen {
                Some(h) => self.node_answered(i, Some(h)),
                None => self.node_failed(i),
            }
        }
        let now = self.now_ms();
        let height = lock(&self.pool).height();
        let fired = {
            let mut core = self.core();
            if let Some(h) = height {
                core.observe_height(now, h);
            }
            let fired = core.check(now);
            let w = core.window(now);
            self.metrics.window_compared.set(w.compared as i64);
            self.metrics.window_unexpected.set(w.unexpected as i64);
            if let Some(h) = core.height() {
                self.metrics.height.set(h as i64);
            }
            fired
        };
        if let Some(r) = fired {
            self.rolled_back(r);
        }
        let age_ms = now.saturating_sub(self.core_height_changed_ms(now));
        self.metrics.height_age_seconds.set((age_ms / 1000) as i64);
    }

    fn core_height_changed_ms(&self, now: u64) -> u64 {
        self.core().height_changed_ms().unwrap_or(now)
    }

    /// Runs the server and the health checks until the listener fails.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
    ) -> Result<(), StartError> {
        let g = Arc::clone(&self);
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_millis(g.cfg.health_interval_ms.max(50)));
            loop {
                tick.tick().await;
                g.health_round().await;
            }
        });
        axum::serve(
            listener,
            server::router(self).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .map_err(|source| StartError::Serve { source })
    }
}

fn is_code(a: &Answer, code: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(&a.body)
        .ok()
        .is_some_and(|v| v["code"] == code)
}

/// Binds and serves (for `step gateway`).
pub async fn run(cfg: Config) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let g = Gateway::new(cfg)?;
    println!(
        "gateway listening on http://{addr} phase2={} phase3={} share={}%",
        g.cfg.phase2,
        g.cfg.phase3.join(","),
        g.cfg.share.percent()
    );
    g.serve(listener).await
}
