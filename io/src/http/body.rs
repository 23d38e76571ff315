//! Bounded body reading and content-type checks. Every failure is a JSON 4xx.
//!
//! A body over the limit is answered 413, but first the rest of it is read
//! and thrown away (up to [`DRAIN_MAX_BYTES`]): closing a socket with unread
//! data makes the kernel send a reset, and the client would then lose the
//! 413 it was sent. A declared `Content-Length` above the drain bound is
//! answered at once.

use super::error::{ApiError, HttpCode};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;
use std::time::Duration;
use step_engine::Code;

/// Most bytes read (and discarded) from an oversized body before answering 413.
pub const DRAIN_MAX_BYTES: usize = 1024 * 1024;

/// Reads at most `limit` bytes within `timeout`.
pub async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = |len: String| {
        ApiError::engine(
            Code::PayloadTooLarge,
            format!("body is {len} bytes; the limit is {limit}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        if n > (limit.max(DRAIN_MAX_BYTES)) as u64 {
            return Err(too_large(n.to_string()));
        }
    }
    match tokio::time::timeout(timeout, collect(body, limit)).await {
        Err(_) => Err(ApiError::new(
            HttpCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        )),
        Ok(Err(Collect::Incomplete)) => Err(ApiError::invalid(
            "the request body ended before its declared length",
        )),
        Ok(Err(Collect::TooLarge { seen, complete })) => Err(too_large(if complete {
            seen.to_string()
        } else {
            format!("more than {seen}")
        })),
        Ok(Ok(b)) => Ok(b),
    }
}

/// Reads and discards a body (up to [`DRAIN_MAX_BYTES`], within `timeout`)
/// before an early refusal, so that the refusal is not lost to a reset.
pub async fn drain(body: Body, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, collect(body, 0)).await;
}

enum Collect {
    Incomplete,
    TooLarge { seen: usize, complete: bool },
}

async fn collect(mut body: Body, limit: usize) -> Result<Bytes, Collect> {
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Collect::Incomplete)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen > limit {
            if seen > limit.max(DRAIN_MAX_BYTES) {
                return Err(Collect::TooLarge {
                    seen,
                    complete: false,
                });
            }
            buf = Vec::new();
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if seen > limit {
        return Err(Collect::TooLarge {
            seen,
            complete: true,
        });
    }
    Ok(Bytes::from(buf))
}

/// The media type (lowercase, parameters dropped), if any.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

fn is_json(m: &str) -> bool {
    m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
}

/// `POST /proof/submit`: `application/json` (any parameters) or `application/*+json`.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(m) if is_json(&m) => Ok(()),
        Some(m) => Err(ApiError::new(
            HttpCode::UnsupportedMediaType,
            format!("Content-Type {m} is not accepted; send application/json"),
        )),
        None => Err(ApiError::new(
            HttpCode::UnsupportedMediaType,
            "missing Content-Type; send application/json",
        )),
    }
}

/// `POST /proofs`: JSON (an array) or JSON Lines.
pub fn require_json_or_lines(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(m)
            if is_json(&m)
                || matches!(
                    m.as_str(),
                    "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines"
                ) =>
        {
            Ok(())
        }
        _ => Err(ApiError::new(
            HttpCode::UnsupportedMediaType,
            "send application/json (an array of proofs) or application/x-ndjson (one proof per line)",
        )),
    }
}
