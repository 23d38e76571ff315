//! Read-only routes: proofs, accounts, triangles, config, status, health, metrics.

use super::error::{iso, ApiError, HttpCode};
use super::proofs::final_json;
use super::schema::*;
use super::{AppState, ClientIp};
use crate::ledger::{hex, NotReady, ProofId, ProofStatus};
use crate::ratelimit::LimitKey;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use step_engine::mesh::{centroid_lat_lon, triangle_vertices};
use step_engine::reward::MicroStep;
use step_engine::{Address, Code, TriangleId};

/// A lookup route's request: the client's rate limit is charged first, then
/// its one path parameter is read.
pub struct Lookup {
    s: AppState,
    raw: String,
}

impl FromRequestParts<AppState> for Lookup {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let Ok(ip) = ClientIp::from_request_parts(parts, s).await;
        s.limit(LimitKey::client(ip.0), 1).await?;
        let raw = Path::<String>::from_request_parts(parts, s)
            .await
            .map(|Path(raw)| raw)
            .map_err(|e: PathRejection| ApiError::invalid(format!("bad path parameter: {e}")))?;
        Ok(Lookup { s: s.clone(), raw })
    }
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

#[utoipa::path(get, path = "/proof/config", tag = "queries", responses((status = 200, description = "Phase 2's limits", body = ConfigBody), (status = 429, body = ErrorBody)))]
/// `GET /proof/config`: the limits in Phase 2's shape (`null` for a check
/// that is switched off).
pub async fn proof_config(State(s): State<AppState>, ip: ClientIp) -> Result<Response, ApiError> {
    s.limit(LimitKey::client(ip.0), 1).await?;
    let l = s.ledger.limits();
    // Written by hand to keep Phase 2's key order.
    let body = format!(
        r#"{{"GPS_MAX_ACCURACY_M":{},"PROOF_SPEED_LIMIT_MPS":{},"PROOF_MORATORIUM_MS":{}}}"#,
        js_number(l.accuracy_m_max),
        l.speed_mps_max.map_or(Value::Null, js_number),
        l.moratorium_ms.map_or(Value::Null, |m| json!(m)),
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A number as JavaScript prints it: `50`, not `50.0`.
pub fn js_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// A state or store read failed: 500 INTERNAL_ERROR with the reason.
fn unreadable(e: crate::ledger::LedgerReadError) -> ApiError {
    ApiError::engine(Code::InternalError, e.to_string())
}

#[utoipa::path(get, path = "/proof/{id}", tag = "queries", params(("id" = String, Path, description = "64 hex digits: SHA-256 of the 65 signature bytes")),
    responses((status = 200, body = ProofRecordBody), (status = 400, body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody), (status = 429, body = ErrorBody)))]
/// `GET /proof/{id}`.
pub async fn proof(Lookup { s, raw }: Lookup) -> Result<Json<Value>, ApiError> {
    let id =
        ProofId::parse(&raw).ok_or_else(|| ApiError::invalid("a proof id is 64 hex characters"))?;
    let Some(rec) = s.ledger.proof(&id).map_err(unreadable)? else {
        let from = s.ledger.proofs_kept_from().map_err(unreadable)?;
        return Err(if from > 1 {
            ApiError::new(
                HttpCode::ProofPrunedOrUnknown,
                format!(
                    "no proof {id} here: this validator keeps finalized proofs from height {from} on \
                     (consensus.retain_heights, or a restored snapshot); a validator that keeps \
                     older heights may know it"
                ),
            )
        } else {
            ApiError::not_found(format!("no accepted proof {id}"))
        });
    };
    let mut body = match rec.status {
        ProofStatus::Final(f) => final_json(&f),
        ProofStatus::Pending => json!({
            "ok": true,
            "status": "pending",
            "proofId": id.to_string(),
            "reward": MicroStep(rec.reward_micro).to_string(),
            "unit": "STEP",
            "triangleId": rec.proof.triangle.to_string(),
            "level": rec.proof.triangle.level(),
        }),
    };
    let p = &rec.proof;
    body["account"] = json!(p.account.to_string());
    body["nonce"] = json!(p.nonce.as_str());
    body["timestamp"] = json!(p.timestamp.as_str());
    body["lat"] = js_number(p.lat);
    body["lon"] = js_number(p.lon);
    body["accuracy"] = js_number(p.accuracy_m);
    Ok(Json(body))
}

#[utoipa::path(get, path = "/account/{address}", tag = "queries", params(("address" = String, Path, description = "0x + 40 hex digits, any letter case")),
    responses((status = 200, body = AccountBody), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
/// `GET /account/{address}` (any letter case).
pub async fn account(Lookup { s, raw }: Lookup) -> Result<Json<AccountBody>, ApiError> {
    let address = Address::parse(&raw)
        .ok_or_else(|| ApiError::invalid("an account is 0x followed by 40 hex characters"))?;
    let a = s.ledger.account(&address).map_err(unreadable)?;
    Ok(Json(AccountBody {
        ok: true,
        account: a.address.to_string(),
        balance: a.balance_micro.to_string(),
        balance_step: MicroStep(a.balance_micro).to_string(),
        unit: "STEP".to_owned(),
        nonces: a.proofs,
        last_proof_at: a.last_proof_ms.and_then(iso),
    }))
}

#[utoipa::path(get, path = "/triangle/{id}", tag = "queries", params(("id" = String, Path, description = "a canonical STEP-TRI-v1 id")),
    responses((status = 200, body = TriangleBody), (status = 404, description = "TRIANGLE_NOT_FOUND", body = ErrorBody), (status = 429, body = ErrorBody)))]
/// `GET /triangle/{id}`. An id that is not a canonical `STEP-TRI-v1` id names
/// no triangle: 404 `TRIANGLE_NOT_FOUND`.
pub async fn triangle(Lookup { s, raw }: Lookup) -> Result<Json<TriangleBody>, ApiError> {
    let id = TriangleId::parse(&raw).map_err(|e| {
        ApiError::engine(Code::TriangleNotFound, format!("no triangle {raw:?}: {e}"))
    })?;
    let t = s.ledger.triangle(&id).map_err(unreadable)?;
    let (lat, lon) = centroid_lat_lon(&id);
    let polygon: Vec<[f64; 2]> = triangle_vertices(&id)
        .iter()
        .map(|v| {
            let (lat, lon) = v.to_lat_lon();
            [lat, lon]
        })
        .collect();
    Ok(Json(TriangleBody {
        ok: true,
        triangle_id: id.to_string(),
        level: id.level(),
        clicks: t.clicks,
        state: t.state().to_owned(),
        last_click_at: t.last_click_ms.and_then(iso),
        centroid: LatLon { lat, lon },
        polygon,
    }))
}

#[utoipa::path(get, path = "/status", tag = "queries", responses((status = 200, body = StatusBody), (status = 429, body = ErrorBody)))]
/// `GET /status`.
pub async fn status(State(s): State<AppState>, ip: ClientIp) -> Result<Json<StatusBody>, ApiError> {
    s.limit(LimitKey::client(ip.0), 1).await?;
    let st = s.ledger.status();
    Ok(Json(StatusBody {
        ok: true,
        backend: st.backend.to_owned(),
        height: st.height,
        round: st.round,
        state_root: hex(&st.state_root),
        validators: st.validators,
        peers: st.peers,
        ready: st.ready,
        queue: QueueBody {
            ingest: st.queue.ingest,
            in_flight: st.queue.in_flight,
            capacity: st.queue.capacity,
        },
    }))
}

async fn redis_state(s: &AppState) -> &'static str {
    match &s.redis {
        None => "off",
        Some(r) if r.ping().await => "ok",
        Some(_) => "down",
    }
}

#[utoipa::path(get, path = "/evidence", tag = "queries", responses((status = 200, body = EvidenceBody), (status = 429, body = ErrorBody)))]
/// `GET /evidence`: the double-sign evidence this node saw since it started
/// (the newest `EVIDENCE_KEPT`), oldest first. Read-only.
pub async fn evidence(State(s): State<AppState>, ip: ClientIp) -> Result<Json<Value>, ApiError> {
    s.limit(LimitKey::client(ip.0), 1).await?;
    let pairs = |list: &[([u8; 20], usize)]| -> Vec<Value> {
        list.iter()
            .map(|(a, n)| json!({ "validator": hex(a), "pairs": n }))
            .collect()
    };
    let records: Vec<Value> = s
        .ledger
        .evidence()
        .iter()
        .map(|e| {
            json!({
                "height": e.height,
                "doubleVotes": pairs(&e.double_votes),
                "doubleProposals": pairs(&e.double_proposals),
            })
        })
        .collect();
    Ok(Json(json!({ "ok": true, "evidence": records })))
}

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = HealthBody), (status = 503, description = "NOT_READY", body = NotReadyBody)))]
/// `GET /health`: liveness and readiness in one answer; 200 when ready,
/// 503 `NOT_READY` otherwise (with `reason`). Redis being down does not
/// make a node unready.
pub async fn health(State(s): State<AppState>) -> Response {
    let st = s.ledger.status();
    let redis = redis_state(&s).await;
    match s.ledger.readiness() {
        Ok(()) => Json(json!({
            "ok": true, "live": true, "ready": true, "height": st.height, "redis": redis,
        }))
        .into_response(),
        Err(why) => {
            let mut body = not_ready(why).body();
            body["live"] = json!(true);
            body["ready"] = json!(false);
            body["reason"] = json!(why.as_str());
            body["height"] = json!(st.height);
            body["redis"] = json!(redis);
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

fn not_ready(why: NotReady) -> ApiError {
    ApiError::new(HttpCode::NotReady, format!("not ready: {why}"))
}

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = LiveBody)))]
/// `GET /health/live`: 200 while the process serves HTTP.
pub async fn live() -> Json<Value> {
    Json(json!({"ok": true, "live": true}))
}

#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = ReadyBody), (status = 503, description = "NOT_READY", body = NotReadyBody)))]
/// `GET /health/ready`: 200 when the node takes proofs and can get them
/// finalized ([`crate::ledger::readiness`]: a quorum of validators heard,
/// a new height lately), else 503 `NOT_READY` with `reason`.
pub async fn ready(State(s): State<AppState>) -> Response {
    match s.ledger.readiness() {
        Ok(()) => Json(json!({"ok": true, "ready": true})).into_response(),
        Err(why) => {
            let mut body = not_ready(why).body();
            body["ready"] = json!(false);
            body["reason"] = json!(why.as_str());
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus (OpenMetrics) text; the metrics: io/src/metrics.rs", content_type = "application/openmetrics-text")))]
/// `GET /metrics`: Prometheus (OpenMetrics) text.
pub async fn metrics(State(s): State<AppState>) -> Response {
    let st = s.ledger.status();
    let m = &s.metrics;
    m.observe_status(&st);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}
