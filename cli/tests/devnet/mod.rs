//! Harness of `tests/devnet_e2e.rs`: a blocking HTTP/1.1 client over
//! `TcpStream`, process guards that kill whole process groups on drop,
//! `step devnet` started and parsed per its output contract, fresh proofs
//! (`step_testkit::fresh_proofs`), and state-root
//! convergence checks across validators.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use step_engine::reward::reward_micro;
use step_engine::TriangleId;
pub const STEP: &str = env!("CARGO_BIN_EXE_step");
/// Until `devnet ready` (CI: a debug build on 2 cores).
pub const READY_TIMEOUT: Duration = Duration::from_secs(150);
/// One HTTP exchange; `POST /proof/submit` waits for finality within it.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(150);
/// Any wait on consensus (finality, catch-up, convergence): generous, since
/// a loaded 2-core CI machine can be 10× slower than a quiet one. It bounds
/// a failing run, not a passing one.
pub const CONSENSUS_WAIT: Duration = Duration::from_secs(180);
/// Node configuration for every test devnet: the sample files jump across the
/// globe every second (as `step verify --speed-gate off --moratorium off`);
/// one test client sends many proofs per account; and a slow CI machine may
/// take far longer than the default 10 s to finalize, where `POST /proof/submit`
/// would answer 202 "pending" instead of the final verdict these tests check.
pub const SETS: [&str; 4] = [
    "limits.speed_gate=false",
    "limits.moratorium=false",
    "rate_limit.per_account=0",
    "http.finality_timeout_ms=120000",
];

// ---------------------------------------------------------------- HTTP ----

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
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
            for ev in step_testkit::sse::events(body) {
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

/// Prints how long each phase of a test took (CI logs show where time goes).
pub struct Phases(Instant);

impl Phases {
    pub fn start() -> Phases {
        Phases(Instant::now())
    }

    pub fn done(&mut self, what: &str) {
        eprintln!("[{:6.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ----------------------------------------------------------- processes ----

/// Sends `signal` to process group `pgid` (ignored if it is gone).
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

pub fn signal_pid(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A child in its own process group, killed (the whole group) on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(self.child.id(), "KILL");
            let _ = self.child.wait();
            eprintln!("killed {} (pid {})", self.name, self.child.id());
        }
    }
}

/// One `validator <i> ...` line of `step devnet`.
#[derive(Debug, Clone)]
pub struct ValidatorLine {
    pub http: SocketAddr,
    p2p_port: u16,
    pub address: String,
    pub pid: u32,
    pub log: PathBuf,
}

pub fn parse_validator_line(line: &str) -> Option<(usize, ValidatorLine)> {
    let mut it = line.split_whitespace();
    if it.next()? != "validator" {
        return None;
    }
    let index = it.next()?.parse().ok()?;
    let fields: HashMap<&str, &str> = it.filter_map(|f| f.split_once('=')).collect();
    let http = fields.get("http")?.strip_prefix("http://")?.parse().ok()?;
    let p2p_port = fields
        .get("p2p")?
        .strip_prefix("/ip4/127.0.0.1/tcp/")?
        .parse()
        .ok()?;
    Some((
        index,
        ValidatorLine {
            http,
            p2p_port,
            address: (*fields.get("address")?).to_owned(),
            pid: fields.get("pid")?.parse().ok()?,
            log: PathBuf::from(fields.get("log")?),
        },
    ))
}

/// Port bases handed out in this process, so that parallel tests never pick
/// the same one even before their devnets bind.
pub static NEXT_BASE: Mutex<u16> = Mutex::new(0);

/// A base port P such that P..P+n and P+100..P+100+n are free now.
pub fn free_base(n: u16) -> u16 {
    let mut next = NEXT_BASE.lock().unwrap_or_else(|e| e.into_inner());
    // Slots of 200 ports in 20000–31999: below Linux's ephemeral range
    // (32768–60999), so that no client connection takes a validator's port
    // between this check and its bind, or between two runs on one data dir.
    // Concurrent test processes start at different slots.
    const FIRST: u16 = 20_000;
    const SLOTS: u16 = 60;
    if *next == 0 {
        *next = FIRST + (std::process::id() % u32::from(SLOTS)) as u16 * 200;
    }
    for _ in 0..SLOTS {
        let base = *next;
        *next = if base + 200 >= FIRST + SLOTS * 200 {
            FIRST
        } else {
            base + 200
        };
        let free = (0..n)
            .flat_map(|i| [base + i, base + 100 + i])
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free port range");
}

/// A running `step devnet`.
pub struct Devnet {
    pub proc: Option<Proc>,
    pub dir: PathBuf,
    pub stdout: Receiver<String>,
    pub stdout_seen: Vec<String>,
    pub validators: Vec<ValidatorLine>,
    /// Validators restarted by the test with `step node`.
    pub restarted: Vec<Proc>,
    /// Validator process groups to kill on drop (the devnet's own children).
    pub groups: Vec<u32>,
    /// Keep the data dir on drop (a later run resumes from it).
    pub keep_dir: bool,
}

impl Devnet {
    pub fn data_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("step-e2e-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Starts `step devnet` and waits for `devnet ready`.
    pub fn start(dir: &Path, n: usize, base: u16) -> Devnet {
        let t0 = Instant::now();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("devnet.stderr"))
            .unwrap();
        let mut cmd = Command::new(STEP);
        cmd.args(["devnet", "--validators", &n.to_string()])
            .args(["--base-port", &base.to_string()])
            .arg("--data-dir")
            .arg(dir.join("net"));
        for s in SETS {
            cmd.args(["--set", s]);
        }
        cmd.stdout(Stdio::piped()).stderr(stderr);
        let mut proc = Proc::spawn("step devnet", &mut cmd);
        let out = proc.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Devnet {
            proc: Some(proc),
            dir: dir.to_owned(),
            stdout: rx,
            stdout_seen: Vec::new(),
            validators: Vec::new(),
            restarted: Vec::new(),
            groups: Vec::new(),
            // STEP_E2E_KEEP=1 keeps data dirs and logs of passing tests too.
            keep_dir: std::env::var_os("STEP_E2E_KEEP").is_some(),
        };
        let mut found: BTreeMap<usize, ValidatorLine> = BTreeMap::new();
        loop {
            let line = d.next_line(READY_TIMEOUT.saturating_sub(t0.elapsed()), "devnet ready");
            if let Some((i, v)) = parse_validator_line(&line) {
                d.groups.push(v.pid);
                found.insert(i, v);
            } else if line == "devnet ready" {
                break;
            }
        }
        assert_eq!(
            found.keys().copied().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>(),
            "one `validator <i>` line per validator before `devnet ready`: {:?}",
            d.stdout_seen
        );
        for (i, v) in &found {
            let i = *i as u16;
            assert_eq!(v.http.port(), base + i, "validator {i}: HTTP port");
            assert_eq!(v.p2p_port, base + 100 + i, "validator {i}: P2P port");
            assert!(
                v.address.len() == 40 && v.address.bytes().all(|b| b.is_ascii_hexdigit()),
                "validator {i}: address={} is not 40 hex digits",
                v.address
            );
            assert!(v.pid > 0, "validator {i}: pid");
            assert!(
                healthy(v.http),
                "validator {i} not healthy after `devnet ready`"
            );
        }
        d.validators = found.into_values().collect();
        eprintln!(
            "devnet of {n} up on base port {base} in {:.1} s ({})",
            t0.elapsed().as_secs_f64(),
            dir.display()
        );
        d
    }

    /// The next stdout line, or a panic naming `what` it waited for.
    pub fn next_line(&mut self, timeout: Duration, what: &str) -> String {
        match self.stdout.recv_timeout(timeout) {
            Ok(line) => {
                self.stdout_seen.push(line.clone());
                line
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "no `{what}` from step devnet within {timeout:?}; stdout so far: {:?}",
                self.stdout_seen
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self
                    .proc
                    .as_mut()
                    .and_then(|p| p.wait_exit(Duration::from_secs(5)));
                panic!(
                    "step devnet closed stdout before `{what}` (exit {status:?}); stdout: {:?}\nstderr: {}",
                    self.stdout_seen,
                    tail(&self.dir.join("devnet.stderr"), 30)
                )
            }
        }
    }

    pub fn http(&self) -> Vec<SocketAddr> {
        self.validators.iter().map(|v| v.http).collect()
    }

    pub fn config_path(&self, i: usize) -> PathBuf {
        self.dir
            .join("net")
            .join(format!("node-{i}"))
            .join("config.toml")
    }

    /// `step node --config net/node-<i>/config.toml`, as an operator restarts one.
    pub fn restart(&mut self, i: usize) -> u32 {
        let log = std::fs::File::create(self.dir.join(format!("restart-{i}.log"))).unwrap();
        let err = log.try_clone().unwrap();
        let cfg = self.config_path(i);
        assert!(cfg.exists(), "{} missing", cfg.display());
        let p = Proc::spawn(
            &format!("step node (validator {i})"),
            Command::new(STEP)
                .arg("node")
                .arg("--config")
                .arg(&cfg)
                .stdout(log)
                .stderr(err),
        );
        let pid = p.pid();
        self.restarted.push(p);
        pid
    }

    /// `signal` (`INT` or `TERM`), then `devnet stopped` and a clean exit.
    pub fn stop(&mut self, signal: &str) {
        let mut p = self.proc.take().expect("devnet running");
        assert!(signal_pid(p.pid(), signal), "kill -{signal} step devnet");
        loop {
            if self.next_line(Duration::from_secs(90), "devnet stopped") == "devnet stopped" {
                break;
            }
        }
        let status = p
            .wait_exit(Duration::from_secs(30))
            .expect("devnet exits after `devnet stopped`");
        assert!(status.success(), "step devnet exited with {status}");
        // Its validators are gone too.
        for v in &self.validators {
            assert!(
                !healthy(v.http),
                "{} still answers after `devnet stopped`",
                v.http
            );
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for g in &self.groups {
            signal_group(*g, "KILL");
        }
        self.restarted.clear();
        self.proc = None;
        if panicking {
            eprintln!("--- devnet in {} (kept) ---", self.dir.display());
            eprintln!("stdout: {:?}", self.stdout_seen);
            eprintln!(
                "devnet.stderr:\n{}",
                tail(&self.dir.join("devnet.stderr"), 20)
            );
            for (i, v) in self.validators.iter().enumerate() {
                eprintln!(
                    "--- validator {i}: {} ---\n{}",
                    v.log.display(),
                    tail(&v.log, 25)
                );
                let r = self.dir.join(format!("restart-{i}.log"));
                if r.exists() {
                    eprintln!("--- {} ---\n{}", r.display(), tail(&r, 25));
                }
            }
        } else if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// -------------------------------------------------------------- proofs ----

/// The shared samples and fresh proofs (the shared Python generator, or
/// `step_engine::signing`): `step-testkit`.
pub use step_testkit::{fresh_proofs, shared_lines};

pub fn payload(line: &str) -> Value {
    serde_json::from_str::<Value>(line).unwrap()["payload"].clone()
}

pub fn account_of(line: &str) -> String {
    payload(line)["account"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase()
}

pub fn reward_of(line: &str) -> u64 {
    let tri = payload(line)["triangleId"].as_str().unwrap().to_owned();
    reward_micro(TriangleId::parse(&tri).unwrap().level())
}

/// The sample line without its test-only fields (`case`, `expect`, ...).
pub fn strip_expectations(line: &str) -> String {
    let mut v: Value = serde_json::from_str(line).unwrap();
    let o = v.as_object_mut().unwrap();
    o.retain(|k, _| k == "payload" || k == "signature");
    v.to_string()
}

// -------------------------------------------------------------- status ----

#[derive(Debug)]
pub struct Status {
    pub height: u64,
    pub state_root: String,
    pub peers: u64,
    pub validators: u64,
}

pub fn status(addr: SocketAddr) -> std::io::Result<Status> {
    let r = request(addr, "GET", "/status", None, b"")?;
    let v = r.json();
    assert_eq!(r.status, 200, "GET /status: {v}");
    let root = v["state_root"]
        .as_str()
        .unwrap_or_else(|| panic!("state_root: {v}"));
    assert_eq!(root.len(), 64, "state_root {root:?}");
    Ok(Status {
        height: v["height"]
            .as_u64()
            .unwrap_or_else(|| panic!("height: {v}")),
        state_root: root.to_owned(),
        peers: v["peers"].as_u64().unwrap_or_else(|| panic!("peers: {v}")),
        validators: v["validators"]
            .as_u64()
            .unwrap_or_else(|| panic!("validators: {v}")),
    })
}

/// Polls `/status` of every node until all have reported one same height
/// at or above `min_height`; every height that two nodes reported must have
/// the same `state_root`. Returns that height and root.
pub fn converge(nodes: &[SocketAddr], min_height: u64, timeout: Duration) -> (u64, String) {
    let mut seen: Vec<BTreeMap<u64, String>> = vec![BTreeMap::new(); nodes.len()];
    let deadline = Instant::now() + timeout;
    loop {
        for (i, a) in nodes.iter().enumerate() {
            if let Ok(s) = status(*a) {
                seen[i].insert(s.height, s.state_root);
            }
        }
        // Same height → same root, across all pairs.
        for (h, root) in &seen[0] {
            for (i, m) in seen.iter().enumerate().skip(1) {
                if let Some(r) = m.get(h) {
                    assert_eq!(
                        r, root,
                        "height {h}: node 0 and node {i} ({}) disagree on state_root",
                        nodes[i]
                    );
                }
            }
        }
        for i in 1..seen.len() {
            for (h, root) in &seen[i] {
                for (j, m) in seen.iter().enumerate().skip(i + 1) {
                    if let Some(r) = m.get(h) {
                        assert_eq!(
                            r, root,
                            "height {h}: node {i} and node {j} disagree on state_root"
                        );
                    }
                }
            }
        }
        let common = seen[0]
            .iter()
            .rev()
            .find(|(h, _)| **h >= min_height && seen.iter().all(|m| m.contains_key(h)));
        if let Some((h, r)) = common {
            return (*h, r.clone());
        }
        assert!(
            Instant::now() < deadline,
            "nodes never at one height ≥ {min_height} within {timeout:?}; last heights: {:?}",
            seen.iter()
                .map(|m| m.keys().next_back().copied())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn balance(addr: SocketAddr, account: &str) -> u64 {
    let r = get(addr, &format!("/account/{account}"));
    let v = r.json();
    assert_eq!(r.status, 200, "GET /account/{account}: {v}");
    assert_eq!(v["account"], account, "{v}");
    v["balance"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .parse()
        .unwrap()
}
