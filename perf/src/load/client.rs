//! HTTP/1.1 keep-alive connections to the targets: each connection worker
//! owns one TCP connection and writes the requests it takes from its
//! target's bounded queue, several at once when several wait (pipelined),
//! with the lean encoding and parsing of [`super::wire`]. A target's pool
//! is its `--connections` workers. `GET /events` and the probes at the end
//! use hyper's client ([`connect`]): they are not per request.

use super::finality::Tracker;
use super::latency::Latencies;
use super::prepare::{Kind, Params, Prepared};
use super::schedule::Phase;
use super::wire::{outcomes, parse_head, Codes, ErrorKind, Head, Outcome, RequestWriter};
use super::LoadError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

impl Job {
    /// Its proofs' numbers in the prepared set.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.first as usize..(self.first + u64::from(self.count)) as usize
    }
}

/// Counters the progress bar reads while the run goes on (all proofs,
/// warm-up included).
#[derive(Debug, Default)]
pub struct Live {
    /// Requests written (every phase).
    pub requests: AtomicU64,
    /// Proofs the schedule made due (sent, queued or dropped).
    pub scheduled: AtomicU64,
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
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
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
            *self.errors_by_kind.entry(*k).or_default() += v;
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

/// Whether `outcome` is what a proof of `kind` should get.
fn expected(kind: Kind, outcome: Outcome, codes: &Codes) -> bool {
    match outcome {
        Outcome::Error(_) => true,
        Outcome::Accepted => kind == Kind::Valid,
        Outcome::Rejected(c) => match codes.name(c) {
            "OVERLOADED" | "RATE_LIMITED" => true,
            c => kind.expected().is_some_and(|e| e.as_str() == c),
        },
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
    /// Most requests written on a connection before its answers are read.
    pub pipeline: usize,
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

/// A keep-alive connection's state: the stream and its buffers (reused
/// for every request).
struct Conn {
    stream: Option<TcpStream>,
    /// Requests to write.
    out: Vec<u8>,
    /// Bytes read and not yet consumed.
    input: Vec<u8>,
}

impl Conn {
    /// Connects if not connected, then writes `out`.
    async fn write(&mut self, t: &Target) -> Result<(), ErrorKind> {
        self.connect(t).await?;
        let Some(stream) = self.stream.as_mut() else {
            unreachable!("connected above")
        };
        stream
            .write_all(&self.out)
            .await
            .map_err(|e| ErrorKind::Write(e.kind()))
    }

    async fn connect(&mut self, t: &Target) -> Result<(), ErrorKind> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&t.authority)
                .await
                .map_err(|e| ErrorKind::Connect(e.kind()))?;
            // Latency, not throughput: small requests go out at once.
            stream
                .set_nodelay(true)
                .map_err(|e| ErrorKind::Connect(e.kind()))?;
            self.input.clear();
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// Reads the next response: its head (the body is
    /// `input[head_len..head_len + body_len]`; [`Conn::consume`] it after).
    async fn response(&mut self) -> Result<Head, ErrorKind> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(ErrorKind::ConnectionClosed);
        };
        loop {
            if let Some(h) = parse_head(&self.input)? {
                if self.input.len() >= h.head_len + h.body_len {
                    return Ok(h);
                }
            }
            if self.input.capacity() - self.input.len() < 4096 {
                self.input.reserve(16 * 1024);
            }
            let n = stream
                .read_buf(&mut self.input)
                .await
                .map_err(|e| ErrorKind::Read(e.kind()))?;
            if n == 0 {
                return Err(ErrorKind::ConnectionClosed);
            }
        }
    }

    fn consume(&mut self, h: &Head) {
        self.input.drain(..h.head_len + h.body_len);
    }
}

/// A connection worker: takes jobs until the queue is closed and empty.
/// When no other connection of its target is idle and jobs wait, it writes
/// up to `pipeline` of them at once (HTTP/1.1 pipelining: the node answers
/// them in order). While a connection is idle, jobs go one per connection,
/// in queue order: one account's proofs are not held behind other requests
/// while a later one of the same account overtakes them.
pub async fn worker(
    target: Arc<Target>,
    jobs: async_channel::Receiver<Job>,
    idle: Arc<AtomicUsize>,
    s: Arc<Shared>,
) -> Tally {
    let mut tally = Tally::default();
    let writer = RequestWriter::new(
        if s.batch {
            "/proofs"
        } else {
            "/proof/submit?wait=false"
        },
        &target.authority,
    );
    let mut conn = Conn {
        stream: None,
        out: Vec::with_capacity(16 * 1024),
        input: Vec::with_capacity(16 * 1024),
    };
    let depth = s.pipeline.max(1);
    let mut inflight: Vec<Job> = Vec::with_capacity(depth);
    let mut outs: Vec<Outcome> = Vec::new();
    let mut codes = Codes::default();
    loop {
        idle.fetch_add(1, Ordering::Relaxed);
        let job = jobs.recv().await;
        idle.fetch_sub(1, Ordering::Relaxed);
        let Ok(job) = job else { break };
        inflight.clear();
        inflight.push(job);
        while inflight.len() < depth && idle.load(Ordering::Relaxed) == 0 {
            match jobs.try_recv() {
                Ok(j) => inflight.push(j),
                Err(_) => break,
            }
        }
        conn.out.clear();
        let mut proofs = 0u64;
        for job in &inflight {
            let range = job.range();
            if s.batch {
                writer.batch(&mut conn.out, range.clone().map(|i| s.prepared.body(i)));
            } else {
                writer.single(&mut conn.out, s.prepared.body(range.start));
            }
            s.tracker.sent_many(
                range.map(|i| (s.prepared.id(i), i as u64)),
                job.scheduled_ns,
                job.phase,
            );
            proofs += u64::from(job.count);
        }
        s.live.sent.fetch_add(proofs, Ordering::Relaxed);
        s.live
            .requests
            .fetch_add(inflight.len() as u64, Ordering::Relaxed);
        let sent_ns = s.now_ns();
        let written = match tokio::time::timeout(s.request_timeout, conn.write(&target)).await {
            Ok(r) => r,
            Err(_) => Err(ErrorKind::Timeout),
        };
        let mut failed = written.err();
        for job in &inflight {
            let count = job.count as usize;
            if failed.is_none() {
                match tokio::time::timeout(s.request_timeout, conn.response()).await {
                    Ok(Ok(h)) => {
                        let body = &conn.input[h.head_len..h.head_len + h.body_len];
                        outcomes(s.batch, h.status, body, count, &mut codes, &mut outs);
                        conn.consume(&h);
                        if h.close {
                            // Answered; the requests after it are not.
                            failed = Some(ErrorKind::ConnectionClosed);
                            conn.stream = None;
                        }
                    }
                    Ok(Err(e)) => failed = Some(e),
                    Err(_) => failed = Some(ErrorKind::Timeout),
                }
                if failed.is_some() && conn.stream.is_some() {
                    conn.stream = None;
                    outs.clear();
                }
            } else {
                outs.clear();
            }
            if outs.is_empty() {
                let e = failed.unwrap_or(ErrorKind::ConnectionClosed);
                outs.resize(count, Outcome::Error(e));
            }
            let done_ns = s.now_ns();
            tally.record(&s, job, &outs, &codes, (sent_ns, done_ns));
            outs.clear();
        }
    }
    tally
}

impl Tally {
    /// Counts the answer to `job`: one outcome per proof.
    fn record(
        &mut self,
        s: &Shared,
        job: &Job,
        outs: &[Outcome],
        codes: &Codes,
        (sent_ns, done_ns): (u64, u64),
    ) {
        let count = outs.len() as u64;
        let range = job.range();
        s.tracker.verdicts(
            range
                .clone()
                .zip(outs)
                .map(|(i, o)| (s.prepared.id(i), i as u64, *o == Outcome::Accepted)),
        );
        let side = match job.phase {
            Phase::Measured => {
                self.requests += 1;
                self.sent += count;
                self.send_lag.record_corrected(job.scheduled_ns, sent_ns);
                self.submit.record_corrected(job.scheduled_ns, done_ns);
                None
            }
            Phase::Warmup => Some(&mut self.warmup),
            Phase::Cooldown => Some(&mut self.cooldown),
        };
        if let Some(t) = side {
            t.sent += count;
            t.submit.record_corrected(job.scheduled_ns, done_ns);
        }
        for (i, &o) in range.zip(outs) {
            let live = match o {
                Outcome::Accepted => &s.live.accepted,
                Outcome::Rejected(_) => &s.live.rejected,
                Outcome::Error(_) => &s.live.errors,
            };
            live.fetch_add(1, Ordering::Relaxed);
            let side = match job.phase {
                Phase::Measured => None,
                Phase::Warmup => Some(&mut self.warmup),
                Phase::Cooldown => Some(&mut self.cooldown),
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
                Outcome::Accepted => {
                    self.accepted += 1;
                    s.accepted.set(i as u64);
                }
                Outcome::Rejected(c) => {
                    let name = codes.name(c);
                    match self.rejected_by_code.get_mut(name) {
                        Some(n) => *n += 1,
                        None => {
                            self.rejected_by_code.insert(name.to_owned(), 1);
                        }
                    }
                }
                Outcome::Error(e) => *self.errors_by_kind.entry(e).or_default() += 1,
            }
            let kind = s.prepared.kind(i);
            // A replay or moratorium proof is rightly accepted if the proof
            // it refers to was not (dropped, refused, or not answered).
            let referred_accepted = || {
                s.params
                    .slot(i as u64)
                    .refers_to
                    .is_none_or(|v| s.accepted.get(s.params.slot_of_valid(v)))
            };
            let excused = o == Outcome::Accepted
                && matches!(kind, Kind::Replay | Kind::Moratorium)
                && !referred_accepted();
            if !excused && !expected(kind, o, codes) {
                self.unexpected += 1;
                if self.unexpected_examples.len() < 10 {
                    let what = match o {
                        Outcome::Accepted => "accepted".to_owned(),
                        Outcome::Rejected(c) => codes.name(c).to_owned(),
                        Outcome::Error(e) => e.to_string(),
                    };
                    self.unexpected_examples
                        .push(format!("proof {i} {kind:?}: {what}"));
                }
            }
        }
    }
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
    fn expected_verdicts() {
        let mut codes = Codes::default();
        let mut rej = |c: &str| Outcome::Rejected(codes.id(c));
        let (too_fast, over, replay) = (rej("TOO_FAST"), rej("OVERLOADED"), rej("NONCE_REPLAY"));
        assert!(expected(Kind::Valid, Outcome::Accepted, &codes));
        assert!(!expected(Kind::Valid, too_fast, &codes));
        assert!(expected(Kind::Valid, over, &codes));
        assert!(expected(Kind::Replay, replay, &codes));
        assert!(!expected(Kind::Replay, Outcome::Accepted, &codes));
    }
}
