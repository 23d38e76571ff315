//! Following a node's `GET /events` (finalized blocks, with the proofs
//! they finalized and those execution rejected), and asking `GET
//! /proof/{id}` about a proof never seen final. The event stream is
//! parsed by `eventsource-stream`.

use super::client::{connect, read_body, Shared, Target};
use super::finality::parse_id;
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// A finalized block on `/events` (the fields the tracker needs).
#[derive(serde::Deserialize)]
struct Block<'a> {
    #[serde(borrow, default, rename = "proofIds")]
    proof_ids: Vec<&'a str>,
    #[serde(borrow, default)]
    rejected: Vec<RejectedItem<'a>>,
}

#[derive(serde::Deserialize)]
struct RejectedItem<'a> {
    #[serde(borrow, rename = "proofId")]
    proof_id: Option<&'a str>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

/// `GET path` on a fresh connection to `target`: the response, its body
/// not yet read.
async fn get(
    target: &Target,
    path: &str,
    accept: &str,
) -> Result<hyper::Response<Incoming>, String> {
    let mut sender = connect(target).await?;
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, &target.authority)
        .header(hyper::header::ACCEPT, accept)
        .body(Full::new(Bytes::new()))
        .map_err(|_| "request".to_owned())?;
    sender
        .send_request(req)
        .await
        .map_err(|_| "send".to_owned())
}

/// Follows `GET /events` on `target`, feeding finalized blocks to the
/// tracker. Sends `Ok` on `ready` once subscribed (or the error), then runs
/// until the stream ends (returning why) or the task is aborted.
pub async fn follow_events(
    target: Arc<Target>,
    s: Arc<Shared>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) -> Option<String> {
    let resp = async {
        let resp = get(&target, "/events", "text/event-stream").await?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(format!("GET /events answered {}", resp.status()));
        }
        Ok(resp)
    };
    let resp = match tokio::time::timeout(Duration::from_secs(10), resp).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let _ = ready.send(Err(e));
            return None;
        }
        Err(_) => {
            let _ = ready.send(Err("GET /events: no answer in 10 s".into()));
            return None;
        }
    };
    let _ = ready.send(Ok(()));
    let mut events = resp.into_body().into_data_stream().eventsource();
    let mut ids = Vec::new();
    loop {
        let ev = match events.next().await {
            None => {
                break Some(format!(
                    "stream ended by the server after {:.1} s",
                    s.now_ns() as f64 / 1e9
                ))
            }
            Some(Err(e)) => {
                break Some(format!(
                    "stream broken after {:.1} s ({e})",
                    s.now_ns() as f64 / 1e9
                ))
            }
            Some(Ok(ev)) => ev,
        };
        match ev.event.as_str() {
            "block" => {
                let now = s.now_ns();
                ids.clear();
                let mut rejected: Vec<([u8; 32], Cow<'_, str>)> = Vec::new();
                // Borrowed from the event's text: no string per proof id.
                if let Ok(b) = serde_json::from_str::<Block<'_>>(&ev.data) {
                    ids.extend(b.proof_ids.iter().filter_map(|x| parse_id(x)));
                    // Proofs execution rejected (nodes that list them).
                    rejected.extend(b.rejected.into_iter().filter_map(|r| {
                        let code = r.code.unwrap_or(Cow::Borrowed("UNKNOWN"));
                        Some((parse_id(r.proof_id?)?, code))
                    }));
                }
                s.tracker
                    .block(ids.iter(), rejected.iter().map(|(id, c)| (id, &**c)), now);
            }
            "lagged" => {
                let n = serde_json::from_str::<Value>(&ev.data)
                    .ok()
                    .and_then(|v| v["skipped"].as_u64())
                    .unwrap_or(0);
                s.tracker.lagged(n);
            }
            _ => {}
        }
    }
}

/// What `GET /proof/{id}` says of a proof: its `status` (`final`,
/// `pending`), its error `code` (e.g. `NOT_FOUND`), or why there is no answer.
pub async fn probe(target: &Target, id: &[u8; 32]) -> String {
    let get = async {
        let resp = get(
            target,
            &format!("/proof/{}", hex::encode(id)),
            "application/json",
        )
        .await?;
        let body = read_body(resp).await?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| "not JSON".to_owned())?;
        let word = v["status"].as_str().or_else(|| v["code"].as_str());
        Ok::<_, String>(word.unwrap_or("unknown").to_owned())
    };
    match tokio::time::timeout(Duration::from_secs(5), get).await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => e,
        Err(_) => "timeout".into(),
    }
}

#[cfg(test)]
mod tests {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;

    /// Events split across reads, a comment and an id line: what the
    /// follower relies on from the parser.
    #[tokio::test]
    async fn events_across_chunks() {
        let chunks: Vec<Result<&[u8], std::convert::Infallible>> = vec![
            Ok(b"event: block\nid: 7\ndata: {\"height\":7}\n\n: keep-alive\n\nevent: lagged\ndata: {\"sk"),
            Ok(b"ipped\":3}\n\n"),
        ];
        let evs: Vec<_> = futures_util::stream::iter(chunks)
            .eventsource()
            .map(|e| e.expect("event"))
            .collect()
            .await;
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert_eq!(
            (evs[0].event.as_str(), evs[0].data.as_str()),
            ("block", "{\"height\":7}")
        );
        assert_eq!(
            (evs[1].event.as_str(), evs[1].data.as_str()),
            ("lagged", "{\"skipped\":3}")
        );
    }
}
