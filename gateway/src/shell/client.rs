//! The gateway's HTTP/1.1 client (hyper-util's pooled client), with a
//! timeout per exchange and a bound on the answer's size.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The largest answer the gateway reads from either system.
pub const ANSWER_MAX_BYTES: usize = 1024 * 1024;

/// One upstream answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// Why an exchange with an upstream failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    #[error("{addr}: {path} is not a valid request target")]
    BadTarget { addr: String, path: String },
    #[error("{addr}: cannot connect: {reason}")]
    Connect { addr: String, reason: String },
    /// The request may have reached it (the connection broke afterwards).
    #[error("{addr}: the exchange failed after the request was sent: {reason}")]
    Broken { addr: String, reason: String },
    #[error("{addr}: no answer within {ms} ms")]
    Timeout { addr: String, ms: u64 },
    #[error(
        "{addr}: the answer could not be read (over {ANSWER_MAX_BYTES} bytes, or cut): {reason}"
    )]
    Body { addr: String, reason: String },
}

impl ForwardError {
    /// Whether the upstream may have received the request.
    pub const fn maybe_sent(&self) -> bool {
        !matches!(
            self,
            ForwardError::Connect { .. } | ForwardError::BadTarget { .. }
        )
    }
}

/// A pooled HTTP/1.1 client.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::new()
    }
}

impl Upstream {
    pub fn new() -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        Upstream {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    /// `method addr path` with `body` (JSON when non-empty), within `timeout`.
    pub async fn call(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, ForwardError> {
        let bad = || ForwardError::BadTarget {
            addr: addr.to_owned(),
            path: path.to_owned(),
        };
        let uri: Uri = format!("http://{addr}{path}").parse().map_err(|_| bad())?;
        let mut req = Request::builder().method(method).uri(uri);
        if !body.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body)).map_err(|_| bad())?;
        let ms = timeout.as_millis() as u64;
        let exchange = async {
            let res = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    ForwardError::Connect {
                        addr: addr.to_owned(),
                        reason: e.to_string(),
                    }
                } else {
                    ForwardError::Broken {
                        addr: addr.to_owned(),
                        reason: e.to_string(),
                    }
                }
            })?;
            let status = res.status().as_u16();
            let content_type = res.headers().get(header::CONTENT_TYPE).cloned();
            let body = Limited::new(res.into_body(), ANSWER_MAX_BYTES)
                .collect()
                .await
                .map_err(|e| ForwardError::Body {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok(Answer {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout {
                addr: addr.to_owned(),
                ms,
            })?
    }
}
