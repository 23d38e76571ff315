//! Error responses: `{"ok":false,"code":…,"message":…,"timestamp":…}`.
//!
//! Proof verdict codes come from `step_engine::Code` (its `as_str` and
//! `http_status` are the single source). The HTTP layer adds a few codes
//! that concern requests, not proofs ([`HttpCode`]); they are listed in
//! `docs/ERROR_CODES.md` as HTTP-only additions.

use crate::ledger::ExecutionReject;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use step_engine::{Code, Reject};

/// A wire code: a proof verdict code, or an HTTP-only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpCode {
    Engine(Code),
    /// 429: a per-IP or per-account rate limit (Retry-After says when to retry).
    RateLimited,
    /// 404: no route, proof or resource with this name.
    NotFound,
    /// 404: `GET /proof/{id}` of a proof this validator does not hold, where
    /// it keeps finalized proofs from some height on only (pruned, or
    /// restored from a snapshot): the proof may be older, or unknown.
    ProofPrunedOrUnknown,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 415: the body's Content-Type is not accepted by this route.
    UnsupportedMediaType,
    /// 408: the request body did not arrive within `http.body_timeout_ms`.
    RequestTimeout,
    /// 503: the node is not ready (starting or shutting down).
    NotReady,
    /// 422: execution-time code `TRIANGLE_SUBDIVIDED` (consensus).
    TriangleSubdivided,
    /// 422: execution-time code `TRIANGLE_EXHAUSTED` (consensus).
    TriangleExhausted,
}

impl HttpCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpCode::Engine(c) => c.as_str(),
            HttpCode::RateLimited => "RATE_LIMITED",
            HttpCode::NotFound => "NOT_FOUND",
            HttpCode::ProofPrunedOrUnknown => "PROOF_PRUNED_OR_UNKNOWN",
            HttpCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            HttpCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            HttpCode::RequestTimeout => "REQUEST_TIMEOUT",
            HttpCode::NotReady => "NOT_READY",
            HttpCode::TriangleSubdivided => "TRIANGLE_SUBDIVIDED",
            HttpCode::TriangleExhausted => "TRIANGLE_EXHAUSTED",
        }
    }

    pub const fn http_status(self) -> u16 {
        match self {
            HttpCode::Engine(c) => c.http_status(),
            HttpCode::RateLimited => 429,
            HttpCode::NotFound | HttpCode::ProofPrunedOrUnknown => 404,
            HttpCode::MethodNotAllowed => 405,
            HttpCode::UnsupportedMediaType => 415,
            HttpCode::RequestTimeout => 408,
            HttpCode::NotReady => 503,
            HttpCode::TriangleSubdivided | HttpCode::TriangleExhausted => 422,
        }
    }

    /// The wire code of a proof rejected when its block executed.
    pub const fn of_execution(r: ExecutionReject) -> HttpCode {
        match r {
            ExecutionReject::NonceReplay => HttpCode::Engine(Code::NonceReplay),
            ExecutionReject::TooFast => HttpCode::Engine(Code::TooFast),
            ExecutionReject::Moratorium => HttpCode::Engine(Code::Moratorium),
            ExecutionReject::Internal => HttpCode::Engine(Code::InternalError),
            ExecutionReject::TriangleSubdivided => HttpCode::TriangleSubdivided,
            ExecutionReject::TriangleExhausted => HttpCode::TriangleExhausted,
        }
    }

    /// Every HTTP-only code (the engine's are `Code::ALL`; the execution-time
    /// ones come from [`ExecutionReject`]).
    pub const HTTP_ONLY: [HttpCode; 7] = [
        HttpCode::RateLimited,
        HttpCode::NotFound,
        HttpCode::ProofPrunedOrUnknown,
        HttpCode::MethodNotAllowed,
        HttpCode::UnsupportedMediaType,
        HttpCode::RequestTimeout,
        HttpCode::NotReady,
    ];
}

/// An error answer. Its timestamp is taken when it is rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: HttpCode,
    pub message: String,
    /// Adds `Retry-After` (seconds, rounded up).
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(code: HttpCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn engine(code: Code, message: impl Into<String>) -> ApiError {
        ApiError::new(HttpCode::Engine(code), message)
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::engine(Code::InvalidPayload, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(HttpCode::NotFound, message)
    }

    pub fn with_retry_after_ms(mut self, ms: u64) -> ApiError {
        self.retry_after_ms = Some(ms);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!(super::schema::ErrorBody {
            ok: false,
            code: self.code.as_str().to_owned(),
            message: self.message.clone(),
            timestamp: now_iso(),
        })
    }
}

impl From<Reject> for ApiError {
    fn from(r: Reject) -> ApiError {
        let e = ApiError::engine(r.code(), r.to_string());
        if r.code() == Code::Overloaded {
            e.with_retry_after_ms(1000)
        } else {
            e
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, axum::Json(self.body())).into_response();
        if let Some(ms) = self.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

/// Unix ms as `YYYY-MM-DDTHH:MM:SS.sssZ`; `null` for a time outside the
/// years 0000–9999 (none that a clock or a decided block gives), never a
/// made-up value.
pub fn iso(unix_ms: i64) -> Option<String> {
    step_engine::proof::Timestamp::from_unix_ms(unix_ms).map(|t| t.as_str().to_owned())
}

/// The system time as ISO-8601 (error timestamps are wall-clock facts, not
/// verdict inputs, so they read the system clock directly).
pub fn now_iso() -> Option<String> {
    iso(step_engine::pipeline::unix_now_ms())
}
