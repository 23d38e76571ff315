//! The Phase 2-compatible HTTP API (axum). Routes, shapes and codes are
//! documented in `docs/VALIDATOR_GUIDE.md`; the decisions in
//! `docs/adr/0030-http-api.md`.
//!
//! | route | handler |
//! | --- | --- |
//! | `POST /proof/submit` | [`proofs::submit_one`] |
//! | `POST /proofs` | [`proofs::submit_many`] |
//! | `GET /proof/config`, `/proof/{id}`, `/account/{address}`, `/triangle/{id}`, `/status` | [`query`] |
//! | `GET /health`, `/health/live`, `/health/ready`, `/metrics` | [`query`] |
//! | `GET /events` | [`events::events`] |
//! | `GET /openapi.json` | [`openapi::openapi_json`]: the OpenAPI description, from the body types of [`schema`] |
//!
//! Anything else gets a JSON 404 or 405. Bodies are read by
//! [`body::read_limited`], never by axum's extractors, so that every
//! rejection is a JSON error with a code.

pub mod body;
pub mod error;
pub mod events;
pub mod openapi;
pub mod proofs;
pub mod query;
pub mod schema;

use crate::config::Config;
use crate::ledger::Ledger;
use crate::metrics::{Metrics, RouteLabels};
use crate::ratelimit::{LimitKey, RateLimiter};
use crate::redis_store::{RedisStore, RedisUrlError};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use error::{ApiError, HttpCode};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use step_engine::pipeline::Clock;
use tokio::sync::{watch, Semaphore};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Arc<dyn Ledger>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<RateLimiter>,
    pub redis: Option<Arc<RedisStore>>,
    pub clock: Clock,
    /// Becomes `true` when the server starts shutting down (ends `/events`).
    pub shutdown: watch::Receiver<bool>,
    /// Permits for concurrent `POST /proofs` requests.
    pub batch_slots: Arc<Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state; connects to Redis lazily if `redis.url` is set.
    pub fn new(
        config: Arc<Config>,
        ledger: Arc<dyn Ledger>,
        metrics: Arc<Metrics>,
        clock: Clock,
        shutdown: watch::Receiver<bool>,
    ) -> Result<AppState, RedisUrlError> {
        let redis = if config.redis.url.is_empty() {
            None
        } else {
            Some(Arc::new(RedisStore::new(
                &config.redis,
                Arc::clone(&metrics),
            )?))
        };
        let limiter = Arc::new(RateLimiter::new(
            config.rate_limit.clone(),
            redis.clone(),
            Arc::clone(&metrics),
        ));
        let batch_slots = Arc::new(Semaphore::new(config.http.batch_concurrency.max(1)));
        Ok(AppState {
            batch_slots,
            ledger,
            config,
            metrics,
            limiter,
            redis,
            clock,
            shutdown,
        })
    }

    /// Charges `cost` to a rate-limit key; a 429 if over the limit.
    pub async fn limit(&self, key: LimitKey, cost: u64) -> Result<(), ApiError> {
        self.limiter
            .check(key, cost, self.clock.now_ms())
            .await
            .map_err(|l| {
                ApiError::new(
                    HttpCode::RateLimited,
                    format!(
                        "too many requests for this {}; retry in {} ms",
                        l.scope, l.retry_after_ms
                    ),
                )
                .with_retry_after_ms(l.retry_after_ms)
            })
    }
}

/// The client's IP: the socket peer, or the first `X-Forwarded-For` entry
/// when `http.trust_forwarded_for` is set.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config.http.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if let Some(ip) = forwarded {
                return Ok(ClientIp(ip));
            }
        }
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientIp(ip))
    }
}

/// Reads `wait` from a query string: absent → `default`; `true|1` / `false|0`.
pub fn parse_wait(query: Option<&str>, default: bool) -> Result<bool, ApiError> {
    let Some(q) = query else {
        return Ok(default);
    };
    let mut wait = default;
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (k, v) {
            ("wait", "true" | "1") => wait = true,
            ("wait", "false" | "0") => wait = false,
            ("wait", other) => {
                return Err(ApiError::invalid(format!(
                    "query parameter wait={other:?} must be true or false"
                )))
            }
            _ => {}
        }
    }
    Ok(wait)
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/proof/submit", post(proofs::submit_one))
        .route("/proofs", post(proofs::submit_many))
        .route("/proof/config", get(query::proof_config))
        .route("/proof/{id}", get(query::proof))
        .route("/account/{address}", get(query::account))
        .route("/triangle/{id}", get(query::triangle))
        .route("/status", get(query::status))
        .route("/health", get(query::health))
        .route("/health/live", get(query::live))
        .route("/health/ready", get(query::ready))
        .route("/metrics", get(query::metrics))
        .route("/events", get(events::events))
        .route("/evidence", get(query::evidence))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        HttpCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Counts `step_http_requests_total{route,status}`.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let res = next.run(req).await;
    state
        .metrics
        .http_requests
        .get_or_create(&RouteLabels {
            route,
            status: res.status().as_u16(),
        })
        .inc();
    res.into_response()
}
