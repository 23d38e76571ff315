//! `POST /proof/submit` and `POST /proofs`.
//!
//! Admission of one proof, in order: parse (the engine's strict parser; a
//! parse failure is the verdict the pipeline would give) → per-account rate
//! limit → Redis replay pre-check (if configured) → [`Ledger::submit`]
//! (OVERLOADED at once if the pipeline is full) → the pipeline verdict. With
//! waiting, then [`Ledger::wait_final`].

use super::body::{drain, read_limited, require_json, require_json_or_lines};
use super::error::{iso, ApiError, HttpCode};
use super::schema::*;
use super::{parse_wait, AppState, ClientIp};
use crate::ledger::{Final, FinalityError, Pending, ProofId, Submission};
use crate::ratelimit::LimitKey;
use crate::redis_store::Claim;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;
use step_engine::proof::{Nonce, BODY_MAX_BYTES};
use step_engine::reward::MicroStep;
use step_engine::{Address, Code, Reject};

/// A claim to release if the proof is rejected.
struct Held {
    account: Address,
    nonce: Nonce,
    id: ProofId,
}

/// A proof queued in the pipeline.
struct Queued {
    submission: Submission,
    held: Option<Held>,
}

/// What both submit routes read before the body: `wait` from the query
/// (`WAIT` when it is absent), the client's address and the headers.
pub struct Upload<const WAIT: bool>(AppState, ClientIp, HeaderMap, bool);

impl<const WAIT: bool> FromRequestParts<AppState> for Upload<WAIT> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let wait = parse_wait(parts.uri.query(), WAIT)?;
        let Ok(ip) = ClientIp::from_request_parts(parts, s).await;
        Ok(Upload(s.clone(), ip, parts.headers.clone(), wait))
    }
}

impl<const WAIT: bool> std::fmt::Debug for Upload<WAIT> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("ip", &(self.1).0)
            .field("wait", &self.3)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Everything before the pipeline verdict; see the module documentation.
    async fn enqueue(&self, body: &[u8]) -> Result<Queued, ApiError> {
        let proof = match step_engine::proof::parse(body) {
            Ok(p) => p,
            Err(r) => return Err(self.rejected(r)),
        };
        if let Err(e) = self.limit(LimitKey::Account(proof.account), 1).await {
            self.metrics.proof("RATE_LIMITED");
            return Err(e);
        }
        let mut held = None;
        if let (Some(redis), Some(id)) = (&self.redis, ProofId::of_proof(&proof)) {
            match redis.claim_nonce(&proof.account, &proof.nonce, &id).await {
                Claim::Taken => {
                    self.metrics.proof(Code::NonceReplay.as_str());
                    return Err(ApiError::engine(
                        Code::NonceReplay,
                        "(account, nonce) already submitted to the network (shared pre-check)",
                    ));
                }
                Claim::Claimed => {
                    held = Some(Held {
                        account: proof.account,
                        nonce: proof.nonce,
                        id,
                    });
                }
                Claim::Unavailable => {}
            }
        }
        match self.ledger.submit(&proof) {
            Ok(submission) => Ok(Queued { submission, held }),
            Err(r) => {
                self.release(held).await;
                Err(self.rejected(r))
            }
        }
    }

    /// Waits for the pipeline verdict of a queued proof.
    async fn verdict(&self, q: Queued) -> Result<Pending, ApiError> {
        match q.submission.verdict().await {
            Ok(p) => {
                self.metrics.proof("ACCEPTED");
                Ok(p)
            }
            Err(r) => {
                self.release(q.held).await;
                Err(self.rejected(r))
            }
        }
    }

    async fn release(&self, held: Option<Held>) {
        if let (Some(redis), Some(h)) = (&self.redis, held) {
            redis.release_nonce(&h.account, &h.nonce, &h.id).await;
        }
    }

    fn rejected(&self, r: Reject) -> ApiError {
        self.metrics.proof(r.code().as_str());
        r.into()
    }

    /// Waits for finality at most `http.finality_timeout_ms`; `None` on timeout.
    async fn finality(&self, id: ProofId) -> Option<Result<Final, FinalityError>> {
        tokio::time::timeout(self.config.finality_timeout(), self.ledger.wait_final(id))
            .await
            .ok()
    }
}

fn pending_json(p: &Pending) -> Value {
    json!(PendingBody {
        ok: true,
        status: PendingStatus::Pending,
        proof_id: p.id.to_string(),
        reward: MicroStep(p.reward_micro).to_string(),
        unit: "STEP".to_owned(),
        triangle_id: p.triangle.to_string(),
        level: p.triangle.level(),
    })
}

/// Phase 2's success body, plus `proofId`, `status` and `height`.
pub fn final_json(f: &Final) -> Value {
    json!(FinalBody {
        ok: true,
        status: FinalStatus::Final,
        proof_id: f.id.to_string(),
        reward: MicroStep(f.reward_micro).to_string(),
        unit: "STEP".to_owned(),
        triangle_id: f.triangle.to_string(),
        level: f.triangle.level(),
        clicks: f.clicks,
        balance: f.balance_micro.to_string(),
        height: f.height,
        processed_at: iso(f.time_ms),
    })
}

/// What waiting for finality gives, as a response body and status.
fn finality_result(p: &Pending, r: Option<Result<Final, FinalityError>>) -> (StatusCode, Value) {
    match r {
        Some(Ok(f)) => (StatusCode::OK, final_json(&f)),
        Some(Err(FinalityError::Rejected { height, reason })) => {
            let e = ApiError::new(
                HttpCode::of_execution(reason),
                format!("rejected when its block (height {height}) executed: {reason}"),
            );
            (
                StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::CONFLICT),
                e.body(),
            )
        }
        // Timed out, the ledger is closing, or the outcome is not known
        // here: the proof was accepted; the client can poll GET /proof/{id}.
        Some(Err(
            FinalityError::Unknown
            | FinalityError::Closed
            | FinalityError::NotForwarded { .. }
            | FinalityError::Unrecovered { .. }
            | FinalityError::Unreadable(_),
        ))
        | None => (StatusCode::ACCEPTED, pending_json(p)),
    }
}

#[utoipa::path(post, path = "/proof/submit", tag = "proofs",
    params(("wait" = Option<bool>, Query, description = "wait for finality (default true)")),
    request_body = ProofRequest,
    responses(
        (status = 200, description = "final (Phase 2's success body plus status, proofId, height)", body = FinalBody),
        (status = 202, description = "accepted, not final yet", body = PendingBody),
        (status = 401, description = "BAD_SIGNATURE", body = ErrorBody),
        (status = 409, description = "NONCE_REPLAY", body = ErrorBody),
        (status = 422, description = "LOW_GPS_ACCURACY, OUT_OF_BOUNDS, TOO_FAST, MORATORIUM, STALE_PROOF, TRIANGLE_SUBDIVIDED, TRIANGLE_EXHAUSTED", body = ErrorBody),
        (status = 400, description = "INVALID_PAYLOAD", body = ErrorBody), (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = ErrorBody), (status = 429, description = "RATE_LIMITED", body = ErrorBody), (status = 503, description = "OVERLOADED or NOT_READY", body = ErrorBody)
    ))]
/// `POST /proof/submit[?wait=false]`.
pub async fn submit_one(
    Upload(s, ip, headers, wait): Upload<true>,
    body: Body,
) -> Result<Response, ApiError> {
    s.limit(LimitKey::client(ip.0), 1).await?;
    require_json(&headers)?;
    let timeout = Duration::from_millis(s.config.http.body_timeout_ms);
    let bytes = read_limited(body, &headers, BODY_MAX_BYTES, timeout).await?;
    let queued = s.enqueue(&bytes).await?;
    let pending = s.verdict(queued).await?;
    if !wait {
        return Ok((StatusCode::ACCEPTED, Json(pending_json(&pending))).into_response());
    }
    let (status, body) = finality_result(&pending, s.finality(pending.id).await);
    Ok((status, Json(body)).into_response())
}

/// Splits a `POST /proofs` body into proof bodies: a JSON array, or JSON
/// Lines (blank lines skipped).
fn split(bytes: &[u8]) -> Result<Vec<&[u8]>, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(bytes).map_err(|e| {
                ApiError::invalid(format!(
                    "malformed JSON array at line {}, column {}",
                    e.line(),
                    e.column()
                ))
            })?;
        Ok(items.into_iter().map(|r| r.get().as_bytes()).collect())
    } else {
        Ok(bytes
            .split(|&b| b == b'\n')
            .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
            .collect())
    }
}

fn item_error(index: usize, e: &ApiError) -> Value {
    json!({"index": index, "ok": false, "code": e.code.as_str(), "message": e.message})
}

#[utoipa::path(post, path = "/proofs", tag = "proofs",
    params(("wait" = Option<bool>, Query, description = "wait for finality (default false)")),
    request_body(content = Vec<ProofRequest>, description = "a JSON array, or JSON Lines (application/x-ndjson)"),
    responses((status = 200, description = "one result per proof, in body order", body = BatchBody), (status = 400, description = "INVALID_PAYLOAD", body = ErrorBody), (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = ErrorBody), (status = 429, description = "RATE_LIMITED", body = ErrorBody), (status = 503, description = "OVERLOADED or NOT_READY", body = ErrorBody)))]
/// `POST /proofs[?wait=true]`: one verdict per proof, in body order.
pub async fn submit_many(
    Upload(s, ip, headers, wait): Upload<false>,
    body: Body,
) -> Result<Response, ApiError> {
    require_json_or_lines(&headers)?;
    let timeout = Duration::from_millis(s.config.http.body_timeout_ms);
    let Ok(_slot) = s.batch_slots.try_acquire() else {
        drain(body, timeout).await;
        return Err(ApiError::from(Reject::Overloaded));
    };
    let bytes = read_limited(body, &headers, s.config.http.batch_body_max_bytes, timeout).await?;
    let items = split(&bytes)?;
    let max = s.config.http.batch_max_proofs;
    if items.len() > max {
        return Err(ApiError::engine(
            Code::PayloadTooLarge,
            format!("{} proofs in one request; the limit is {max}", items.len()),
        ));
    }
    if items.is_empty() {
        return Err(ApiError::invalid("the body holds no proofs"));
    }
    s.limit(LimitKey::client(ip.0), items.len() as u64).await?;
    // Queue in body order first (sequence numbers follow the body), then
    // collect the verdicts concurrently.
    let mut queued = Vec::with_capacity(items.len());
    for item in &items {
        queued.push(s.enqueue(item).await);
    }
    let verdicts = futures_util::future::join_all(queued.into_iter().map(|q| {
        let s = s.clone();
        async move {
            let pending = s.verdict(q?).await?;
            if !wait {
                return Ok::<_, ApiError>((pending, None));
            }
            let fin = s.finality(pending.id).await;
            Ok((pending, Some(fin)))
        }
    }))
    .await;
    let mut accepted = 0usize;
    let results: Vec<Value> = verdicts
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let mut item = match v {
                Err(e) => return item_error(index, e),
                Ok((p, None)) => pending_json(p),
                Ok((p, Some(fin))) => finality_result(p, fin.clone()).1,
            };
            if item["ok"] == true {
                accepted += 1;
            }
            item["index"] = json!(index);
            item
        })
        .collect();
    Ok(Json(json!({
        "ok": true,
        "accepted": accepted,
        "rejected": results.len() - accepted,
        "results": results,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_array_and_lines() {
        let a = split(br#" [ {"a":1} , {"b":[2]} ]"#).unwrap();
        assert_eq!(a, vec![&br#"{"a":1}"#[..], &br#"{"b":[2]}"#[..]]);
        let l = split(b"{\"a\":1}\n\n  \n{\"b\":2}\n").unwrap();
        assert_eq!(l, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        assert!(split(b"[{\"a\":1},").is_err());
    }
}
