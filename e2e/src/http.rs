//! A blocking HTTP/1.1 client over `TcpStream` (one request per
//! connection), and the `/events` (SSE) and `/status` recorders.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

fn bad(m: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Resp> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad(format!("no header end ({} bytes)", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(head.clone()))?;
    let mut body = raw[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = step_testkit::http::dechunk(&body).ok_or_else(|| bad("bad chunked body".into()))?;
    }
    Ok(Resp { status, body })
}

/// One request on a fresh connection, read to EOF, within `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Resp> {
    let s = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(3)))?;
    exchange(s, (method, path, body), timeout)
}

/// A connection to `to` from the local address `src` (the harness's own
/// addresses: 10.77.0.1, and 10.77.0.128/25 routed to it, `crate::net`).
pub fn connect_from(
    src: std::net::Ipv4Addr,
    to: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((src, 0)).into())?;
    sock.connect_timeout(&to.into(), timeout)?;
    Ok(sock.into())
}

/// One request (`method`, `path`, `body`) on the connected stream `s`, read
/// to EOF, within `timeout`.
pub fn exchange(
    mut s: TcpStream,
    (method, path, body): (&str, &str, &[u8]),
    timeout: Duration,
) -> std::io::Result<Resp> {
    let addr = s.peer_addr()?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if method == "POST" {
        raw.push_str("Content-Type: application/json\r\n");
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    s.write_all(&raw)?;
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        if out.is_empty() {
            return Err(e);
        }
    }
    parse_response(&out)
}

pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Resp> {
    request(addr, "GET", path, b"", Duration::from_secs(3))
}

/// One finalized block as a validator's `/events` reported it.
#[derive(Debug, Clone)]
pub struct BlockSeen {
    pub node: usize,
    pub height: u64,
    pub root: String,
    pub proof_ids: Vec<String>,
    pub rejected: Vec<String>,
    /// When the harness received it.
    pub at: Instant,
}

/// One `/status` sample.
#[derive(Debug, Clone)]
pub struct StatusSeen {
    pub node: usize,
    pub height: u64,
    pub round: i64,
    pub root: String,
    pub peers: u64,
    pub ready: bool,
    pub at: Instant,
}

/// Everything the recorders saw.
#[derive(Debug, Default)]
pub struct Record {
    pub blocks: Vec<BlockSeen>,
    pub status: Vec<StatusSeen>,
    /// `event: lagged` notices (blocks skipped), per node.
    pub lagged: Vec<(usize, u64)>,
}

/// Background threads that subscribe to every node's `/events` (resubscribing
/// after a restart) and poll its `/status`, until dropped.
#[derive(Debug)]
pub struct Recorders {
    pub record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Recorders {
    pub fn start(nodes: &[SocketAddr], status_every: Duration) -> Recorders {
        let record = Arc::new(Mutex::new(Record::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, addr) in nodes.iter().copied().enumerate() {
            let (rec, st) = (Arc::clone(&record), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    subscribe(i, addr, &rec, &st);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }));
            let (rec, st) = (Arc::clone(&record), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    if let Some(s) = status(i, addr) {
                        rec.lock().unwrap_or_else(|e| e.into_inner()).status.push(s);
                    }
                    std::thread::sleep(status_every);
                }
            }));
        }
        Recorders {
            record,
            stop,
            threads,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Recorders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `GET /status` of node `i`, parsed.
pub fn status(i: usize, addr: SocketAddr) -> Option<StatusSeen> {
    let r = request(addr, "GET", "/status", b"", Duration::from_secs(2)).ok()?;
    let v = r.json()?;
    Some(StatusSeen {
        node: i,
        height: v["height"].as_u64()?,
        round: v["round"].as_i64().unwrap_or(-1),
        root: v["state_root"].as_str()?.to_owned(),
        peers: v["peers"].as_u64().unwrap_or(0),
        ready: v["ready"].as_bool().unwrap_or(false),
        at: Instant::now(),
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| {
            x.as_str()
                .map(str::to_owned)
                .or_else(|| x["proofId"].as_str().map(str::to_owned))
        })
        .collect()
}

/// One `/events` subscription until the stream ends, fails, or `stop`.
fn subscribe(i: usize, addr: SocketAddr, rec: &Mutex<Record>, stop: &AtomicBool) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let req = format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return;
    }
    let mut raw = Vec::new();
    let mut head: Option<bool> = None; // Some(chunked) once the head is read
    let mut text = Vec::new();
    let mut event = String::new();
    let mut buf = [0u8; 16_384];
    let mut idle_since = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let n = match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // A paused or cut-off node: reconnect after a while.
                if idle_since.elapsed() > Duration::from_secs(30) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        idle_since = Instant::now();
        raw.extend_from_slice(&buf[..n]);
        if head.is_none() {
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let h = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            if !h.starts_with("http/1.1 200") {
                return;
            }
            head = Some(h.contains("transfer-encoding: chunked"));
            raw.drain(..end + 4);
        }
        if head == Some(true) {
            while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
                let size = std::str::from_utf8(&raw[..eol])
                    .ok()
                    .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok());
                let Some(size) = size else { return };
                if raw.len() < eol + 2 + size + 2 {
                    break;
                }
                text.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
                raw.drain(..eol + 2 + size + 2);
            }
        } else {
            text.append(&mut raw);
        }
        while let Some(nl) = text.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&text[..nl]).trim_end().to_owned();
            text.drain(..=nl);
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                let Ok(v) = serde_json::from_str::<Value>(d.trim()) else {
                    continue;
                };
                let mut r = rec.lock().unwrap_or_else(|e| e.into_inner());
                if event == "block" {
                    r.blocks.push(BlockSeen {
                        node: i,
                        height: v["height"].as_u64().unwrap_or(0),
                        root: v["state_root"].as_str().unwrap_or("").to_owned(),
                        proof_ids: strings(&v["proofIds"]),
                        rejected: strings(&v["rejected"]),
                        at: Instant::now(),
                    });
                } else if event == "lagged" {
                    r.lagged.push((i, v["skipped"].as_u64().unwrap_or(0)));
                }
            } else if line.is_empty() {
                event.clear();
            }
        }
    }
}
