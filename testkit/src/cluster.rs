//! Helpers for tests that run a cluster of validator processes: waiting,
//! phases, process groups killed on drop, free port ranges, log tails, and
//! the node API's status, balances and state-root convergence.

use crate::http::{get, request};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use step_engine::reward::reward_micro;
use step_engine::TriangleId;

/// Prints how long each phase of a test took (CI logs show where time goes).
#[derive(Debug)]
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
#[derive(Debug)]
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

pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

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
