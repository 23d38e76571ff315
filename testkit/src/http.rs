//! A blocking HTTP/1.1 client over `TcpStream` for tests against running
//! nodes (`Connection: close`, chunked bodies decoded), and a `GET /events`
//! subscription read with [`crate::sse`].

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// One HTTP exchange; `POST /proof/submit` waits for finality within it.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------- HTTP ----

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        json_body(self.status, &self.body)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a JSON error with this status and code.
    pub fn assert_error(&self, status: u16, code: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.text());
        let v = self.json();
        assert_eq!(v["ok"], false, "{what}: {v}");
        assert_eq!(v["code"], code, "{what}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: no message: {v}"
        );
    }
}

/// A response body as JSON; panics with the status and the body if it is not.
pub fn json_body(status: u16, body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "status {status}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })
}

/// One request on a fresh connection (`Connection: close`), read to EOF.
pub fn exchange(addr: SocketAddr, raw: &[u8], timeout: Duration) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // The server may answer (413, 415) before it has read the whole body and
    // close; what it answered is still there to read.
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        if out.is_empty() {
            return Err(e);
        }
    }
    parse_response(&out)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Resp> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            bad(&format!(
                "no header end in {:?}",
                String::from_utf8_lossy(raw)
            ))
        })?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(head))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")
        })
    });
    let mut body = raw[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Resp { status, body })
}

pub fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if method == "POST" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    exchange(addr, &raw, HTTP_TIMEOUT)
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, None, b"").unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"))
}

pub fn post_json(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    request(addr, "POST", path, Some("application/json"), body)
        .unwrap_or_else(|e| panic!("POST {addr}{path}: {e}"))
}

/// `POST /proof/submit` of every line at once (a thread each); the answers
/// in line order.
pub fn submit_all(addr: SocketAddr, lines: &[String]) -> Vec<Resp> {
    std::thread::scope(|s| {
        let hs: Vec<_> = lines
            .iter()
            .map(|l| s.spawn(move || post_json(addr, "/proof/submit", l.as_bytes())))
            .collect();
        hs.into_iter().map(|h| h.join().expect("submit")).collect()
    })
}

/// A `GET /events` subscription: every `event: block` JSON, in order, from
/// a reader thread (it ends when the node closes the stream).
#[derive(Debug)]
pub struct Events {
    rx: Receiver<Value>,
    /// Blocks received so far, by height.
    pub blocks: BTreeMap<u64, Value>,
}

impl Events {
    pub fn subscribe(addr: SocketAddr) -> Events {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("GET {addr}/events: {e}"));
        let req =
            format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        // The head, byte by byte (nothing of the body is read with it).
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                s.read(&mut byte).unwrap(),
                1,
                "GET /events: closed in the head"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "GET /events: {head}");
        assert!(
            head.contains("content-type: text/event-stream"),
            "GET /events: {head}"
        );
        let chunked = head.contains("transfer-encoding: chunked");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let body = BodyPieces {
                s,
                chunked,
                raw: Vec::new(),
            };
            for ev in crate::sse::events(body) {
                let Ok(ev) = ev else { return };
                if ev.event == "block" {
                    let v: Value = serde_json::from_str(&ev.data)
                        .unwrap_or_else(|e| panic!("/events data is not JSON ({e}): {}", ev.data));
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Events {
            rx,
            blocks: BTreeMap::new(),
        }
    }

    /// Takes what has arrived; waits until `done(&blocks)` or the timeout.
    pub fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&BTreeMap<u64, Value>) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(&self.blocks) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(b) => {
                    let h = b["height"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("block without height: {b}"));
                    assert!(
                        self.blocks.insert(h, b).is_none(),
                        "/events sent height {h} twice"
                    );
                }
                Err(e) => panic!(
                    "/events: {what}: {e:?} after {timeout:?}; heights seen: {:?}",
                    self.blocks.keys().collect::<Vec<_>>()
                ),
            }
        }
    }
}

/// An HTTP/1.1 response body as it is read, de-chunked if `chunked`: the
/// pieces the SSE parser takes. Ends at EOF or on a malformed chunk.
struct BodyPieces {
    s: TcpStream,
    chunked: bool,
    /// Bytes read and not yet de-chunked.
    raw: Vec<u8>,
}

impl Iterator for BodyPieces {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = [0u8; 8192];
        loop {
            if self.chunked {
                // A complete chunk at the front of `raw`?
                if let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") {
                    let size = std::str::from_utf8(&self.raw[..eol]).ok().and_then(|l| {
                        usize::from_str_radix(l.split(';').next()?.trim(), 16).ok()
                    })?;
                    if size == 0 {
                        return None;
                    }
                    if self.raw.len() >= eol + 2 + size + 2 {
                        let piece = self.raw[eol + 2..eol + 2 + size].to_vec();
                        self.raw.drain(..eol + 2 + size + 2);
                        return Some(Ok(piece));
                    }
                }
            } else if !self.raw.is_empty() {
                return Some(Ok(std::mem::take(&mut self.raw)));
            }
            match self.s.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            }
        }
    }
}

pub fn healthy(addr: SocketAddr) -> bool {
    request(addr, "GET", "/health", None, b"").is_ok_and(|r| r.status == 200)
}
