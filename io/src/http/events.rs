//! `GET /events`: server-sent events of finalized blocks.
//!
//! ```text
//! event: block
//! id: 7
//! data: {"height":7,"time":"…","state_root":"…","batches":["…"],"proofIds":["…",…],"rejected":[{"proofId":"…","code":"NONCE_REPLAY"},…]}
//! ```
//!
//! A subscriber that falls more than `http.events_buffer` blocks behind gets
//! `event: lagged` with `{"skipped":n}` and continues from the oldest block
//! still buffered. The stream ends when the server shuts down. A comment is
//! sent every 15 s to keep proxies from closing an idle stream.

use super::error::{iso, ApiError};
use super::{AppState, ClientIp};
use crate::ledger::{hex, FinalizedBlock};
use crate::ratelimit::LimitKey;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

/// The JSON of one finalized block.
pub fn block_json(b: &FinalizedBlock) -> serde_json::Value {
    json!({
        "height": b.height,
        "time": iso(b.time_ms),
        "state_root": hex(&b.state_root),
        "batches": b.batches.iter().map(|d| hex(d)).collect::<Vec<_>>(),
        "proofIds": b.proof_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "rejected": b
            .rejected
            .iter()
            .map(|r| json!({ "proofId": r.id.to_string(), "code": r.reason.as_str() }))
            .collect::<Vec<_>>(),
    })
}

fn event(item: Result<Arc<FinalizedBlock>, BroadcastStreamRecvError>) -> Event {
    match item {
        Ok(b) => Event::default()
            .event("block")
            .id(b.height.to_string())
            .data(block_json(&b).to_string()),
        Err(BroadcastStreamRecvError::Lagged(n)) => Event::default()
            .event("lagged")
            .data(json!({ "skipped": n }).to_string()),
    }
}

#[utoipa::path(get, path = "/events", tag = "queries", responses((status = 200, description = "server-sent events: one event per finalized proof", content_type = "text/event-stream")))]
pub async fn events(
    State(s): State<AppState>,
    ip: ClientIp,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    s.limit(LimitKey::client(ip.0), 1).await?;
    let blocks = BroadcastStream::new(s.ledger.subscribe());
    let stop = WatchStream::new(s.shutdown.clone())
        .filter(|down| futures_util::future::ready(*down))
        .into_future();
    let stream = blocks
        .map(|item| Ok::<_, Infallible>(event(item)))
        .take_until(stop);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
