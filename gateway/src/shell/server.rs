//! The gateway's routes.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /proof/submit` | to both systems; the account's side answers ([`submit`]) |
//! | `GET /gateway/report` | counts, window, rollback, recorded discrepancies |
//! | `POST /gateway/share` | `{"share": P}` with `Authorization: Bearer <token>` |
//! | `GET /metrics` | the gateway's own metrics |
//! | anything else | proxied to Phase 2, or to Phase 3 at a 100% share |

use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use super::chain::Link;
use super::client::{Answer, ForwardError};
use super::metrics::{ByLabel, ComparisonLabels, ReasonLabel};
use super::{lock, Gateway, Phase3Error};
use crate::classify::Outcome;
use crate::route::{Share, Side};
use crate::state::Ticket;
use crate::verdict::{Facts, Verdict};

/// Phase 2's body limit (64 KiB); a larger body is refused before either system sees it.
pub const BODY_MAX_BYTES: usize = 64 * 1024;

pub fn router(g: Arc<Gateway>) -> Router {
    Router::new()
        .route("/proof/submit", post(submit))
        .route("/gateway/report", get(report))
        .route("/gateway/share", post(set_share))
        .route("/metrics", get(metrics))
        .fallback(proxy)
        .with_state(g)
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let ts = step_engine::proof::Timestamp::from_unix_ms(step_engine::pipeline::unix_now_ms())
        .map_or_else(String::new, |t| t.as_str().to_owned());
    (
        status,
        axum::Json(
            json!({"ok": false, "code": code, "message": message.to_string(), "timestamp": ts}),
        ),
    )
        .into_response()
}

fn relay(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = (status, a.body).into_response();
    if let Some(ct) = a.content_type {
        res.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    res
}

async fn body_of(body: Body) -> Result<Bytes, Response> {
    to_bytes(body, BODY_MAX_BYTES).await.map_err(|e| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the body could not be read within {BODY_MAX_BYTES} bytes: {e}"),
        )
    })
}

/// `POST /proof/submit`: sent to both systems at once; the client gets the
/// answer of the account's side (Phase 2's if Phase 3 has none). The pair is
/// compared when both have answered.
async fn submit(State(g): State<Arc<Gateway>>, req: Request) -> Response {
    let Ok(permit) = Arc::clone(&g.in_flight).try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "OVERLOADED",
            "too many proofs in flight at the gateway",
        );
    };
    let body = match body_of(req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let facts = Facts::of_body(&body);
    let (side, ticket, links) = {
        let account = facts.account.as_deref();
        let mut core = g.core();
        let mut chains = lock(&g.chains);
        let links = (chains.0.link(account), chains.1.link(account));
        (core.side(account), core.begin(account), links)
    };
    let (tx2, rx2) = oneshot::channel();
    let (tx3, rx3) = oneshot::channel();
    let worker = Arc::clone(&g);
    tokio::spawn(async move {
        worker.both(body, facts, ticket, links, tx2, tx3).await;
        drop(permit);
    });
    let answer = match side {
        Side::Phase2 => rx2.await.ok().and_then(Result::ok).map(|a| ("phase2", a)),
        Side::Phase3 => match rx3.await.ok().and_then(Result::ok) {
            Some(a) => Some(("phase3", a)),
            None => rx2
                .await
                .ok()
                .and_then(Result::ok)
                .map(|a| ("phase2_fallback", a)),
        },
    };
    let by = answer.as_ref().map_or("none", |(by, _)| *by);
    g.core().answered(by);
    g.metrics.answers.get_or_create(&ByLabel { by }).inc();
    match answer {
        Some((_, a)) => relay(a),
        None => error(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_UNAVAILABLE",
            "neither system answered",
        ),
    }
}

impl Gateway {
    /// Both systems, then the comparison.
    async fn both(
        &self,
        body: Bytes,
        facts: Facts,
        ticket: Ticket,
        (mut link2, mut link3): (Link, Link),
        tx2: oneshot::Sender<Result<Answer, ForwardError>>,
        tx3: oneshot::Sender<Result<Answer, Phase3Error>>,
    ) {
        let p2 = async {
            link2.turn().await;
            let r = self
                .phase2(Method::POST, "/proof/submit", body.clone())
                .await;
            lock(&self.chains).0.finish(&mut link2);
            if tx2.send(r.clone()).is_err() {
                tracing::debug!("the client left before Phase 2 answered");
            }
            r
        };
        let p3 = async {
            link3.turn().await;
            // One budget for the whole failover, so a stuck network costs
            // one timeout, not one per validator.
            let submit = self.phase3(
                Method::POST,
                "/proof/submit?wait=true",
                body.clone(),
                Some(&facts),
            );
            let r = tokio::time::timeout(self.phase3_timeout(), submit)
                .await
                .unwrap_or_else(|_| {
                    Err(Phase3Error::Timeout {
                        ms: self.cfg.phase3_timeout_ms,
                    })
                });
            lock(&self.chains).1.finish(&mut link3);
            if tx3.send(r.clone()).is_err() {
                tracing::debug!("the client left before Phase 3 answered");
            }
            r
        };
        let (r2, r3) = tokio::join!(p2, p3);
        let v2 = match r2 {
            Ok(a) => Verdict::parse(a.status, &a.body)
                .map_err(|e| self.not_compared("phase2_not_a_verdict", &e))
                .ok(),
            Err(e) => {
                self.not_compared("phase2_no_answer", &e);
                None
            }
        };
        let v3 = match r3 {
            Ok(a) => Verdict::parse(a.status, &a.body)
                .map_err(|e| tracing::warn!(error = %e, "Phase 3's answer is not a verdict"))
                .ok(),
            Err(e) => {
                tracing::warn!(error = %e, "Phase 3 gave no answer");
                None
            }
        };
        let now = self.now_ms();
        let account = facts.account.clone();
        let (recorded, w) = {
            let mut core = self.core();
            let recorded = core.complete(now, ticket, facts, v2.map(|v2| (v2, v3)));
            (recorded, core.window(now))
        };
        for (outcome, fired) in recorded {
            let kind = match outcome {
                Outcome::Match => "match",
                Outcome::Intended(_) => "intended",
                Outcome::Unexpected(_) => "unexpected",
            };
            if kind != "match" {
                tracing::info!(kind, class = outcome.class(), account = ?account, "discrepancy");
            }
            let class = outcome.class();
            self.metrics
                .comparisons
                .get_or_create(&ComparisonLabels { kind, class })
                .inc();
            if let Some(r) = fired {
                self.rolled_back(r);
            }
        }
        self.metrics.window_compared.set(w.compared as i64);
        self.metrics.window_unexpected.set(w.unexpected as i64);
    }

    fn not_compared(&self, reason: &'static str, e: &dyn std::fmt::Display) {
        tracing::warn!(error = %e, reason, "Phase 2 gave no verdict; not compared");
        self.metrics
            .not_compared
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}

async fn report(State(g): State<Arc<Gateway>>) -> Response {
    let now = g.now_ms();
    let r = g.core().report(now);
    (StatusCode::OK, axum::Json(r)).into_response()
}

async fn metrics(State(g): State<Arc<Gateway>>) -> Response {
    match g.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            format!("encoding the metrics: {e}"),
        ),
    }
}

/// Compares digests, in constant time whatever the lengths.
fn token_matches(given: &[u8], want: &[u8]) -> bool {
    Sha256::digest(given).ct_eq(&Sha256::digest(want)).into()
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)?
        .as_bytes()
        .strip_prefix(b"Bearer ")
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    share: u64,
}

/// `POST /gateway/share` `{"share": P}`: the operator's cutover step (or
/// the way back after a rollback). Needs the admin token.
async fn set_share(State(g): State<Arc<Gateway>>, req: Request) -> Response {
    let Some(want) = &g.cfg.admin_token else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no admin token configured: the share is fixed",
        );
    };
    if !bearer(req.headers()).is_some_and(|t| token_matches(t, want)) {
        tracing::warn!("refused a share change: missing or wrong admin token");
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Authorization: Bearer <admin token> required",
        );
    }
    let body = match body_of(req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let share = match serde_json::from_slice::<ShareBody>(&body) {
        Ok(b) => match Share::new(b.share) {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, "INVALID_SHARE", e),
        },
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_SHARE",
                format!("the body must be {{\"share\": P}}: {e}"),
            )
        }
    };
    let now = g.now_ms();
    let before = {
        let mut core = g.core();
        let before = (core.share(), core.rolled_back());
        core.set_share(now, share);
        before
    };
    g.metrics.share.set(i64::from(share.percent()));
    g.metrics.rolled_back.set(0);
    tracing::warn!(
        from = before.0.percent(),
        to = share.percent(),
        cleared_rollback = before.1.is_some(),
        "Phase 3 share changed by an operator"
    );
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "share_percent": share.percent(), "previous_percent": before.0.percent(), "cleared_rollback": before.1})),
    )
        .into_response()
}

/// Any other request: to Phase 2 while it is authoritative for anyone, to
/// Phase 3 at a 100% share.
async fn proxy(State(g): State<Arc<Gateway>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let body = match body_of(req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if g.core().share().percent() == 100 {
        match g.phase3(method, &path, body, None).await {
            Ok(a) => relay(a),
            Err(e) => error(StatusCode::BAD_GATEWAY, "UPSTREAM_UNAVAILABLE", e),
        }
    } else {
        match g.phase2(method, &path, body).await {
            Ok(a) => relay(a),
            Err(e) => error(StatusCode::BAD_GATEWAY, "UPSTREAM_UNAVAILABLE", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole_and_only_whole() {
        let want = b"0123456789abcdef-secret";
        assert!(token_matches(want, want));
        assert!(!token_matches(b"0123456789abcdef-secreT", want));
        assert!(
            !token_matches(b"0123456789abcdef", want),
            "a prefix is not the token"
        );
        assert!(!token_matches(b"", want));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
