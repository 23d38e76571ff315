//! Test harness: a LocalLedger behind the real HTTP server on a loopback
//! port, the shared sample proofs, and a minimal HTTP/1.1 client over a raw
//! socket (so tests can also send what no HTTP library would).
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use step_engine::pipeline::{Clock, PipelineConfig};
use step_io::ledger::{pipeline_config, system_clock, LocalLedger};
use step_io::{Config, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Every test's I/O has this bound, so that a hang fails instead of blocking CI.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub fn valid_lines() -> Vec<String> {
    step_testkit::shared_lines("sample-valid.jsonl")
}

pub fn invalid_lines() -> Vec<String> {
    step_testkit::shared_lines("sample-invalid.jsonl")
}

/// The codes an invalid sample line may get (`expect` and `expect_any`).
pub fn expected_codes(line: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(line).unwrap();
    let mut out = vec![v["expect"].as_str().unwrap().to_owned()];
    if let Some(a) = v["expect_any"].as_array() {
        out.extend(a.iter().map(|c| c.as_str().unwrap().to_owned()));
    }
    out
}

/// The sample files jump across the globe every second: speed gate and
/// moratorium off (as `step verify --speed-gate off --moratorium off`), no
/// rate limits, two unpinned workers, short batch deadline.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.limits.speed_gate = false;
    c.limits.moratorium = false;
    c.pipeline.workers = 2;
    c.pipeline.pin_workers = false;
    c.pipeline.flush_after_ms = 5;
    c.rate_limit.per_ip = 0;
    c.rate_limit.per_account = 0;
    c.http.shutdown_grace_ms = 5_000;
    c
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub ledger: LocalLedger,
    pub metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), step_io::node::RunError>>>,
}

impl Server {
    pub async fn start(config: Config) -> Server {
        let pc = pipeline_config(&config, system_clock());
        Server::start_with(config, pc).await
    }

    /// [`test_config`] changed by `edit`, on the system clock.
    pub async fn configured(edit: impl FnOnce(&mut Config)) -> Server {
        let mut config = test_config();
        edit(&mut config);
        Server::start(config).await
    }

    /// With a fixed clock (deterministic rate-limit windows).
    pub async fn start_at(config: Config, now_ms: i64) -> Server {
        let pc = pipeline_config(&config, Clock::fixed(now_ms));
        Server::start_with(config, pc).await
    }

    pub async fn start_with(config: Config, pc: PipelineConfig) -> Server {
        let metrics = Arc::new(Metrics::new());
        let clock = pc.clock.clone();
        let ledger =
            LocalLedger::start_with_pipeline(pc, config.http.events_buffer, Arc::clone(&metrics));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(step_io::node::serve(
            listener,
            config,
            Arc::new(ledger.clone()),
            Arc::clone(&metrics),
            clock,
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            ledger,
            metrics,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Begins a graceful shutdown.
    pub fn begin_shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Shuts down gracefully and waits until the server has stopped.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        let h = self.handle.take().unwrap();
        tokio::time::timeout(IO_TIMEOUT, h)
            .await
            .expect("server did not stop")
            .unwrap()
            .unwrap();
    }

    pub async fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], b"").await
    }

    /// `GET /metrics` as text.
    pub async fn metrics_text(&self) -> String {
        String::from_utf8(self.get("/metrics").await.body).unwrap()
    }

    /// Asserts that `GET /metrics` holds `line`.
    pub async fn assert_metric(&self, line: &str) {
        let text = self.metrics_text().await;
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    /// `POST /proof/submit` with one JSON body.
    pub async fn submit(&self, body: &str) -> Resp {
        self.post_json("/proof/submit", body.as_bytes()).await
    }

    /// Submits `body` twice: accepted (200), then refused as a replay (409).
    pub async fn submit_then_replay(&self, body: &str) {
        let r = self.submit(body).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        self.submit(body).await.assert_error(409, "NONCE_REPLAY");
    }

    /// A JSON Lines body.
    pub async fn post_ndjson(&self, path: &str, body: &[u8]) -> Resp {
        request(
            self.addr,
            "POST",
            path,
            &[("Content-Type", "application/x-ndjson")],
            body,
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &[u8]) -> Resp {
        request(
            self.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body,
        )
        .await
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes after this response (a pipelined next response).
    pub rest: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        step_testkit::http::json_body(self.status, &self.body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an error body with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["code"], code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        let ts = v["timestamp"].as_str().unwrap();
        assert!(
            step_engine::proof::Timestamp::parse(ts).is_some(),
            "timestamp {ts:?}"
        );
    }
}

/// One request on a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw_exchange(addr, &raw, false).await
}

/// `POST path` with a JSON body, on a task of its own (a request that is
/// held up while the test goes on).
pub fn spawn_post_json(addr: SocketAddr, path: &'static str, body: String) -> JoinHandle<Resp> {
    tokio::spawn(async move {
        request(
            addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    })
}

/// A connection that has sent `raw` (it may send more).
pub async fn connect_and_send(addr: SocketAddr, raw: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    s
}

/// Reads `s` until the server closes it; panics if that takes longer than
/// [`IO_TIMEOUT`] (`what` names the connection).
pub async fn read_to_close(s: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, s.read_to_end(&mut out))
        .await
        .unwrap_or_else(|_| panic!("{what} was not closed"))
        .unwrap();
    out
}

/// Writes `raw` bytes, optionally half-closes, and reads the response to EOF.
pub async fn raw_exchange(addr: SocketAddr, raw: &[u8], half_close: bool) -> Resp {
    tokio::time::timeout(IO_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        if half_close {
            s.shutdown().await.unwrap();
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        parse_response(&out)
    })
    .await
    .expect("no response in time")
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let mut rest = Vec::new();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if chunked {
        body = dechunk(&body);
    } else if let Some(n) = length {
        rest = body.split_off(n.min(body.len()));
    }
    Resp {
        status,
        headers,
        body,
        rest,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = std::str::from_utf8(&b[..nl]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
}
