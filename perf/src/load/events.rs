//! Following a node's `GET /events` (finalized blocks, with the proofs
//! they finalized and those execution rejected), and asking `GET
//! /proof/{id}` about a proof never seen final.

use super::client::{Shared, Target};
use super::finality::{parse_id, take_events};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Follows `GET /events` on `target`, feeding finalized blocks to the
/// tracker. Sends `Ok` on `ready` once subscribed (or the error), then runs
/// until the stream ends (returning why) or the task is aborted.
pub async fn follow_events(
    target: Arc<Target>,
    s: Arc<Shared>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) -> Option<String> {
    let resp = async {
        let stream = TcpStream::connect(&target.authority)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "handshake".to_owned())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get("/events")
            .header(hyper::header::HOST, &target.authority)
            .header(hyper::header::ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::new()))
            .map_err(|_| "request".to_owned())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| "send".to_owned())?;
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
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut ids = Vec::new();
    let mut rejected: Vec<([u8; 32], String)> = Vec::new();
    loop {
        let frame = match body.frame().await {
            None => {
                break Some(format!(
                    "stream ended by the server after {:.1} s",
                    s.now_ns() as f64 / 1e9
                ))
            }
            Some(Err(_)) => {
                break Some(format!(
                    "stream broken after {:.1} s",
                    s.now_ns() as f64 / 1e9
                ))
            }
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        for ev in take_events(&mut buf) {
            match ev.name.as_str() {
                "block" => {
                    let now = s.now_ns();
                    ids.clear();
                    rejected.clear();
                    if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                        if let Some(a) = v["proofIds"].as_array() {
                            ids.extend(a.iter().filter_map(|x| x.as_str().and_then(parse_id)));
                        }
                        // Proofs execution rejected (nodes that list them).
                        if let Some(a) = v["rejected"].as_array() {
                            rejected.extend(a.iter().filter_map(|r| {
                                let id = r["proofId"].as_str().and_then(parse_id)?;
                                Some((id, r["code"].as_str().unwrap_or("UNKNOWN").to_owned()))
                            }));
                        }
                    }
                    s.tracker.block(
                        ids.iter(),
                        rejected.iter().map(|(id, c)| (id, c.as_str())),
                        now,
                    );
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
}

/// What `GET /proof/{id}` says of a proof: its `status` (`final`,
/// `pending`), its error `code` (e.g. `NOT_FOUND`), or why there is no answer.
pub async fn probe(target: &Target, id: &[u8; 32]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let get = async {
        let stream = TcpStream::connect(&target.authority)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "handshake".to_owned())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get(format!("/proof/{hex}"))
            .header(hyper::header::HOST, &target.authority)
            .body(Full::new(Bytes::new()))
            .map_err(|_| "request".to_owned())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| "send".to_owned())?;
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| "response body".to_owned())?
            .to_bytes();
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
