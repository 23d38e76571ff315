//! HTTP/1.1 keep-alive connections to the targets (hyper's client
//! connection, no pooling layer): each connection worker owns one
//! connection and sends one request at a time; a target's pool is its
//! `--connections` workers, which take jobs from its bounded queue.

use super::finality::Tracker;
use super::latency::Latencies;
use super::prepare::{Kind, Params, Prepared};
use super::schedule::Phase;
use super::LoadError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A target node: `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, for connecting and the Host header.
    pub authority: String,
    /// The URL as given, without a trailing slash.
    pub url: String,
}

impl Target {
    /// Parses `http://host[:port][/]` (port 80 by default).
    pub fn parse(url: &str) -> Result<Target, LoadError> {
        let bad = || LoadError::BadTarget {
            url: url.to_owned(),
        };
        let trimmed = url.trim().trim_end_matches('/');
        let rest = trimmed.strip_prefix("http://").ok_or_else(bad)?;
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad());
        }
        let authority = if rest
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            rest.to_owned()
        } else if rest.contains(':') {
            return Err(bad());
        } else {
            format!("{rest}:80")
        };
        Ok(Target {
            authority,
            url: trimmed.to_owned(),
        })
    }
}

/// One request to send: proofs `first .. first + count` of the prepared set.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub first: u64,
    pub count: u32,
    /// When the schedule said to send it (ns after the start).
    pub scheduled_ns: u64,
    pub phase: Phase,
}

/// Counters the progress bar reads while the run goes on (all proofs,
/// warm-up included).
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
}

/// Counts of a warm-up or cool-down phase.
#[derive(Debug, Default, Clone)]
pub struct PhaseTally {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub errors: u64,
    /// Submit → response per request, from the scheduled send time.
    pub submit: Latencies,
}

impl PhaseTally {
    fn add(&mut self, o: &PhaseTally) {
        self.sent += o.sent;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.errors += o.errors;
        self.submit.add(&o.submit);
    }
}

/// What one connection worker counted (measured window, plus the warm-up
/// and cool-down totals).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub requests: u64,
    pub sent: u64,
    pub accepted: u64,
    pub rejected_by_code: BTreeMap<String, u64>,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Verdicts other than the proof's kind should get (OVERLOADED and
    /// RATE_LIMITED, which depend on load, are not counted here).
    pub unexpected: u64,
    /// A few of them, for the report (`kind → code`).
    pub unexpected_examples: Vec<String>,
    /// Submit → response per request, from the scheduled send time.
    pub submit: Latencies,
    /// Actual send − scheduled send per request (how late the generator was).
    pub send_lag: Latencies,
    pub warmup: PhaseTally,
    pub cooldown: PhaseTally,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.sent += o.sent;
        self.accepted += o.accepted;
        for (k, v) in &o.rejected_by_code {
            *self.rejected_by_code.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.errors_by_kind {
            *self.errors_by_kind.entry(k.clone()).or_default() += v;
        }
        self.unexpected += o.unexpected;
        for e in &o.unexpected_examples {
            if self.unexpected_examples.len() < 10 {
                self.unexpected_examples.push(e.clone());
            }
        }
        self.submit.add(&o.submit);
        self.send_lag.add(&o.send_lag);
        self.warmup.add(&o.warmup);
        self.cooldown.add(&o.cooldown);
    }

    pub fn rejected(&self) -> u64 {
        self.rejected_by_code.values().sum()
    }

    pub fn errors(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }
}

/// What a proof's submission came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected(String),
    /// No verdict: a transport error, a timeout, or an answer that is not
    /// the API's JSON.
    Error(String),
}

/// The outcome of each of `count` proofs from one response.
pub fn outcomes(batch: bool, status: u16, body: &[u8], count: usize) -> Vec<Outcome> {
    let all = |o: Outcome| vec![o; count];
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return all(Outcome::Error(format!("http_{status}_not_json")));
    };
    if v["ok"] == false {
        return match v["code"].as_str() {
            Some(code) => all(Outcome::Rejected(code.to_owned())),
            None => all(Outcome::Error(format!("http_{status}_no_code"))),
        };
    }
    if !batch {
        return if v["ok"] == true && (200..300).contains(&status) {
            all(Outcome::Accepted)
        } else {
            all(Outcome::Error(format!("http_{status}_unexpected")))
        };
    }
    let Some(results) = v["results"].as_array().filter(|r| r.len() == count) else {
        return all(Outcome::Error(format!("http_{status}_bad_results")));
    };
    results
        .iter()
        .map(|r| match (r["ok"].as_bool(), r["code"].as_str()) {
            (Some(true), _) => Outcome::Accepted,
            (Some(false), Some(code)) => Outcome::Rejected(code.to_owned()),
            _ => Outcome::Error("bad_result_item".into()),
        })
        .collect()
}

/// Whether `outcome` is what a proof of `kind` should get.
fn expected(kind: Kind, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Error(_) => true,
        Outcome::Rejected(c) if c == "OVERLOADED" || c == "RATE_LIMITED" => true,
        Outcome::Accepted => kind == Kind::Valid,
        Outcome::Rejected(c) => kind.expected().is_some_and(|e| e.as_str() == c),
    }
}

/// One bit per prepared proof: accepted at submission.
#[derive(Debug)]
pub struct AcceptedSet(Vec<AtomicU64>);

impl AcceptedSet {
    pub fn new(n: usize) -> AcceptedSet {
        AcceptedSet((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    pub fn set(&self, i: u64) {
        if let Some(w) = self.0.get((i / 64) as usize) {
            w.fetch_or(1 << (i % 64), Ordering::Relaxed);
        }
    }

    pub fn get(&self, i: u64) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (i % 64)) != 0)
    }
}

/// What every worker shares.
#[derive(Debug)]
pub struct Shared {
    pub prepared: Arc<Prepared>,
    /// What the prepared set was made from (to find what a replay refers to).
    pub params: Params,
    /// Which proofs were accepted (one bit per proof).
    pub accepted: AcceptedSet,
    pub tracker: Arc<Tracker>,
    pub live: Arc<Live>,
    /// Every time in the run is in ns after this.
    pub epoch: Instant,
    pub batch: bool,
    pub request_timeout: Duration,
}

impl Shared {
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

pub(super) async fn connect(t: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(&t.authority)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| "handshake".to_owned())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on `conn` (connecting first if needed): the status and body.
async fn exchange(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    t: &Target,
    path: &str,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    if conn.as_ref().is_none_or(SendRequest::is_closed) {
        *conn = Some(connect(t).await?);
    }
    let Some(sender) = conn.as_mut() else {
        unreachable!("connected above")
    };
    sender
        .ready()
        .await
        .map_err(|_| "connection closed".to_owned())?;
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, &t.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|_| "request".to_owned())?;
    let resp = sender.send_request(req).await.map_err(|e| {
        if e.is_closed() || e.is_incomplete_message() {
            "connection closed".to_owned()
        } else {
            "send".to_owned()
        }
    })?;
    let status = resp.status().as_u16();
    Ok((status, read_body(resp).await?))
}

/// The whole body of `resp`.
pub(super) async fn read_body(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<Bytes, String> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|_| "response body".to_owned())?
        .to_bytes())
}

/// A connection worker: takes jobs until the queue is closed and empty.
pub async fn worker(
    target: Arc<Target>,
    jobs: async_channel::Receiver<Job>,
    s: Arc<Shared>,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn = None;
    let path = if s.batch {
        "/proofs"
    } else {
        "/proof/submit?wait=false"
    };
    let mut outcomes_buf;
    while let Ok(job) = jobs.recv().await {
        let range = job.first as usize..(job.first + u64::from(job.count)) as usize;
        let body = if s.batch {
            let mut b = Vec::with_capacity(range.len() * 470 + 2);
            b.push(b'[');
            for (n, i) in range.clone().enumerate() {
                if n > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(s.prepared.body(i));
            }
            b.push(b']');
            Bytes::from(b)
        } else {
            Bytes::copy_from_slice(s.prepared.body(range.start))
        };
        for i in range.clone() {
            s.tracker
                .sent(s.prepared.id(i), i as u64, job.scheduled_ns, job.phase);
        }
        let sent_ns = s.now_ns();
        let count = range.len();
        s.live.sent.fetch_add(count as u64, Ordering::Relaxed);
        let result =
            tokio::time::timeout(s.request_timeout, exchange(&mut conn, &target, path, body)).await;
        let done_ns = s.now_ns();
        outcomes_buf = match result {
            Ok(Ok((status, bytes))) => outcomes(s.batch, status, &bytes, count),
            Ok(Err(kind)) => {
                conn = None;
                vec![Outcome::Error(kind); count]
            }
            Err(_) => {
                conn = None;
                vec![Outcome::Error("timeout".into()); count]
            }
        };
        let side = match job.phase {
            Phase::Measured => {
                tally.requests += 1;
                tally.sent += count as u64;
                tally.send_lag.record_corrected(job.scheduled_ns, sent_ns);
                tally.submit.record_corrected(job.scheduled_ns, done_ns);
                None
            }
            Phase::Warmup => Some(&mut tally.warmup),
            Phase::Cooldown => Some(&mut tally.cooldown),
        };
        if let Some(t) = side {
            t.sent += count as u64;
            t.submit.record_corrected(job.scheduled_ns, done_ns);
        }
        for (i, o) in range.zip(&outcomes_buf) {
            let kind = s.prepared.kind(i);
            s.tracker
                .verdict(s.prepared.id(i), i as u64, *o == Outcome::Accepted);
            let live = match o {
                Outcome::Accepted => &s.live.accepted,
                Outcome::Rejected(_) => &s.live.rejected,
                Outcome::Error(_) => &s.live.errors,
            };
            live.fetch_add(1, Ordering::Relaxed);
            let side = match job.phase {
                Phase::Measured => None,
                Phase::Warmup => Some(&mut tally.warmup),
                Phase::Cooldown => Some(&mut tally.cooldown),
            };
            if let Some(t) = side {
                match o {
                    Outcome::Accepted => t.accepted += 1,
                    Outcome::Rejected(_) => t.rejected += 1,
                    Outcome::Error(_) => t.errors += 1,
                }
                continue;
            }
            match o {
                Outcome::Accepted => tally.accepted += 1,
                Outcome::Rejected(c) => *tally.rejected_by_code.entry(c.clone()).or_default() += 1,
                Outcome::Error(e) => *tally.errors_by_kind.entry(e.clone()).or_default() += 1,
            }
            if *o == Outcome::Accepted {
                s.accepted.set(i as u64);
            }
            // A replay or moratorium proof is rightly accepted if the proof
            // it refers to was not (dropped, refused, or not answered).
            let referred_accepted = || {
                s.params
                    .slot(i as u64)
                    .refers_to
                    .is_none_or(|v| s.accepted.get(s.params.slot_of_valid(v)))
            };
            let excused = *o == Outcome::Accepted
                && matches!(kind, Kind::Replay | Kind::Moratorium)
                && !referred_accepted();
            if !excused && !expected(kind, o) {
                tally.unexpected += 1;
                if tally.unexpected_examples.len() < 10 {
                    tally
                        .unexpected_examples
                        .push(format!("proof {i} {kind:?}: {o:?}"));
                }
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:27000/").ok();
        assert_eq!(t.map(|t| t.authority), Some("127.0.0.1:27000".into()));
        assert_eq!(
            Target::parse("http://node").ok().map(|t| t.authority),
            Some("node:80".into())
        );
        assert!(Target::parse("https://x:1").is_err());
        assert!(Target::parse("http://x:1/api").is_err());
        assert!(Target::parse("http://x:notaport").is_err());
    }

    #[test]
    fn single_and_batch_responses() {
        let ok = br#"{"ok":true,"status":"pending","proofId":"ab"}"#;
        assert_eq!(outcomes(false, 202, ok, 1), vec![Outcome::Accepted]);
        let rej = br#"{"ok":false,"code":"BAD_SIGNATURE","message":"m"}"#;
        assert_eq!(
            outcomes(false, 401, rej, 1),
            vec![Outcome::Rejected("BAD_SIGNATURE".into())]
        );
        assert_eq!(
            outcomes(false, 502, b"<html>", 1),
            vec![Outcome::Error("http_502_not_json".into())]
        );
        let batch = br#"{"ok":true,"accepted":1,"rejected":1,"results":[
            {"index":0,"ok":true,"proofId":"x"},{"index":1,"ok":false,"code":"OUT_OF_BOUNDS"}]}"#;
        assert_eq!(
            outcomes(true, 200, batch, 2),
            vec![Outcome::Accepted, Outcome::Rejected("OUT_OF_BOUNDS".into())]
        );
        // A whole-batch refusal applies to every proof in it.
        let over = br#"{"ok":false,"code":"OVERLOADED","message":"m"}"#;
        assert_eq!(outcomes(true, 503, over, 3).len(), 3);
        assert_eq!(
            outcomes(true, 200, batch, 3)[0],
            Outcome::Error("http_200_bad_results".into())
        );
    }

    #[test]
    fn expected_verdicts() {
        assert!(expected(Kind::Valid, &Outcome::Accepted));
        assert!(!expected(
            Kind::Valid,
            &Outcome::Rejected("TOO_FAST".into())
        ));
        assert!(expected(
            Kind::Valid,
            &Outcome::Rejected("OVERLOADED".into())
        ));
        assert!(expected(
            Kind::Replay,
            &Outcome::Rejected("NONCE_REPLAY".into())
        ));
        assert!(!expected(Kind::Replay, &Outcome::Accepted));
    }
}
