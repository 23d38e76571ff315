//! The network: one Linux network namespace per validator, each with a TUN
//! device whose other end is this process. A userspace router moves every
//! IPv4 packet between the TUNs and applies the links' faults: blocked
//! (partition, disconnect), delay ± jitter, loss.
//!
//! Why not veth + `tc netem`: the kernels this runs on (the CI's and this
//! project's VMs) are built without `sch_netem`, `sch_prio` and `act_gact`,
//! so neither delay nor a drop filter exists there; TUN does (`CONFIG_TUN`).
//! The harness itself has a TUN in the root namespace (10.77.0.1) for its
//! HTTP clients; its links are never impaired, so what it measures is the
//! validators' network, not its own.
//!
//! Cleanup: every namespace is named `ste2e-<pid>-<i>`; [`Net`]'s `Drop`
//! kills what runs in them and deletes them (the TUNs vanish with their fds
//! and namespaces); [`cleanup_stale`] removes those of harness processes
//! that no longer exist.
#![allow(unsafe_code)] // TUNSETIFF ioctl and poll(2) on the TUN fds

use anyhow::{bail, Context};
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Namespace names start with this, then `<pid>-<index>`.
pub const PREFIX: &str = "ste2e-";
/// The harness's own address (root namespace).
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// Validator `i`'s address.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 10 + i as u8)
}

/// Runs a command; fails with its stderr.
pub fn sh(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Root, `ip`, and `/dev/net/tun`: what the harness needs. `Err` says which is missing.
pub fn preflight() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the e2e harness needs root (network namespaces, TUN devices)");
    }
    sh(&["ip", "-V"]).context("iproute2's `ip` is needed")?;
    if !std::path::Path::new("/dev/net/tun").exists() {
        bail!("/dev/net/tun is missing (kernel without CONFIG_TUN?)");
    }
    Ok(())
}

fn pid_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills the processes inside a namespace and deletes it.
fn remove_ns(name: &str) {
    if let Ok(pids) = sh(&["ip", "netns", "pids", name]) {
        for p in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill has no memory preconditions; p is a process inside
            // a namespace this harness created.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    let _ = sh(&["ip", "netns", "del", name]);
}

/// Deletes namespaces (and their processes) left by harness runs that died.
pub fn cleanup_stale() {
    let Ok(list) = sh(&["ip", "netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| p != std::process::id() as i32 && !pid_alive(p)) {
            eprintln!("step-e2e: removing stale namespace {name}");
            remove_ns(name);
        }
    }
}

/// Opens a new TUN device named `name` (IFF_TUN | IFF_NO_PI).
fn open_tun(name: &str) -> anyhow::Result<File> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    if name.len() >= 16 {
        bail!("interface name {name} too long");
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("opening /dev/net/tun")?;
    // struct ifreq: 16 bytes of name, then the flags (a short), padded to 40.
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: ifr is a valid, writable 40-byte ifreq for the duration of the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, ifr.as_mut_ptr()) };
    if rc < 0 {
        bail!("TUNSETIFF {name}: {}", std::io::Error::last_os_error());
    }
    Ok(f)
}

/// Waits up to `ms` for `f` to be readable.
fn readable(f: &File, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut p, 1, ms) };
    rc > 0 && p.revents & libc::POLLIN != 0
}

/// What happens to packets from one endpoint to another.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Link {
    pub blocked: bool,
    pub delay_ms: f64,
    pub jitter_ms: f64,
    /// 0..1
    pub loss: f64,
}

/// Endpoint 0 is the harness, endpoint `i + 1` validator `i`.
#[derive(Debug)]
struct Rules {
    n: usize,
    links: Vec<Link>,
}

impl Rules {
    fn get(&self, from: usize, to: usize) -> Link {
        self.links[from * self.n + to]
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Due {
    at: Instant,
    seq: u64,
    to: usize,
    packet: Vec<u8>,
}

impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Min-heap on (at, seq).
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// Counters of the router, for reports.
#[derive(Debug, Default)]
pub struct Counters {
    pub forwarded: AtomicU64,
    pub blocked: AtomicU64,
    pub lost: AtomicU64,
    pub delayed: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    rules: Mutex<Rules>,
    /// Last scheduled delivery per link: delayed packets of one link keep
    /// their order (jitter does not reorder, unlike netem's default).
    last: Mutex<HashMap<(usize, usize), Instant>>,
    queue: Mutex<BinaryHeap<Due>>,
    wake: Condvar,
    stop: AtomicBool,
    seq: AtomicU64,
    rng: Mutex<u64>,
    counters: Counters,
}

impl Shared {
    fn random(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        // xorshift64*
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        let x = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The namespaces, TUNs and router of one run.
#[derive(Debug)]
pub struct Net {
    pub namespaces: Vec<String>,
    tuns: Arc<Vec<File>>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

fn endpoint_of(ip: [u8; 4], n: usize) -> Option<usize> {
    if ip[..3] != [10, 77, 0] {
        return None;
    }
    match ip[3] {
        // The harness, and the flood sources' addresses on its TUN.
        1 | 128..=254 => Some(0),
        x if x >= 10 && usize::from(x - 10) < n - 1 => Some(usize::from(x - 10) + 1),
        _ => None,
    }
}

impl Net {
    /// `n` validators' namespaces, addressed `node_ip(i)`, all linked.
    pub fn create(n: usize, seed: u64) -> anyhow::Result<Net> {
        preflight()?;
        cleanup_stale();
        let pid = std::process::id();
        // A second harness process (another `cargo test` binary) would use
        // the same addresses: refuse rather than mix networks.
        if let Ok(list) = sh(&["ip", "netns", "list"]) {
            if let Some(other) = list.lines().find(|l| l.starts_with(PREFIX)) {
                bail!("another harness's namespace exists: {other} (runs must not overlap)");
            }
        }
        let mut net = Net {
            namespaces: Vec::new(),
            tuns: Arc::new(Vec::new()),
            shared: Arc::new(Shared {
                rules: Mutex::new(Rules {
                    n: n + 1,
                    links: vec![Link::default(); (n + 1) * (n + 1)],
                }),
                last: Mutex::new(HashMap::new()),
                queue: Mutex::new(BinaryHeap::new()),
                wake: Condvar::new(),
                stop: AtomicBool::new(false),
                seq: AtomicU64::new(0),
                rng: Mutex::new(seed | 1),
                counters: Counters::default(),
            }),
            threads: Vec::new(),
        };
        let tag = pid % 100_000;
        let mut tuns = Vec::new();
        // The host side.
        let host = format!("st{tag}h");
        tuns.push(open_tun(&host)?);
        sh(&["ip", "addr", "add", &format!("{HOST_IP}/24"), "dev", &host])?;
        sh(&["ip", "link", "set", &host, "up"])?;
        // 10.77.0.128/25 is local too: the load and the HTTP flood's sources
        // bind to addresses of their own (crate::flood), and the validators'
        // answers come back.
        sh(&[
            "ip",
            "route",
            "add",
            "local",
            "10.77.0.128/25",
            "dev",
            &host,
            "table",
            "local",
        ])?;
        for i in 0..n {
            let ns = format!("{PREFIX}{pid}-{i}");
            sh(&["ip", "netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            let dev = format!("st{tag}n{i}");
            tuns.push(open_tun(&dev)?);
            sh(&["ip", "link", "set", &dev, "netns", &ns])?;
            let x = |a: &[&str]| {
                let mut v = vec!["ip", "netns", "exec", &ns];
                v.extend_from_slice(a);
                sh(&v)
            };
            x(&["ip", "link", "set", "lo", "up"])?;
            x(&["ip", "link", "set", &dev, "name", "eth0"])?;
            x(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", node_ip(i)),
                "dev",
                "eth0",
            ])?;
            x(&["ip", "link", "set", "eth0", "up"])?;
        }
        net.tuns = Arc::new(tuns);
        net.start_router(n + 1);
        Ok(net)
    }

    fn start_router(&mut self, endpoints: usize) {
        for from in 0..endpoints {
            let tuns = Arc::clone(&self.tuns);
            let sh = Arc::clone(&self.shared);
            self.threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut f = &tuns[from];
                while !sh.stop.load(Ordering::Relaxed) {
                    if !readable(f, 100) {
                        continue;
                    }
                    let Ok(len) = f.read(&mut buf) else { continue };
                    let p = &buf[..len];
                    if len < 20 || p[0] >> 4 != 4 {
                        continue; // IPv6 router solicitations and the like
                    }
                    let Some(to) = endpoint_of([p[16], p[17], p[18], p[19]], endpoints) else {
                        continue;
                    };
                    let link = sh
                        .rules
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(from, to);
                    if link.blocked {
                        sh.counters.blocked.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if link.loss > 0.0 && sh.random() < link.loss {
                        sh.counters.lost.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if link.delay_ms <= 0.0 && link.jitter_ms <= 0.0 {
                        let _ = (&tuns[to]).write(p);
                        sh.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let ms = (link.delay_ms + link.jitter_ms * (2.0 * sh.random() - 1.0)).max(0.0);
                    let mut at = Instant::now() + Duration::from_micros((ms * 1000.0) as u64);
                    {
                        let mut last = sh.last.lock().unwrap_or_else(|e| e.into_inner());
                        let l = last.entry((from, to)).or_insert(at);
                        at = at.max(*l);
                        *l = at;
                    }
                    let seq = sh.seq.fetch_add(1, Ordering::Relaxed);
                    sh.queue
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Due {
                            at,
                            seq,
                            to,
                            packet: p.to_vec(),
                        });
                    sh.counters.delayed.fetch_add(1, Ordering::Relaxed);
                    sh.wake.notify_one();
                }
            }));
        }
        // The delivery thread for delayed packets.
        let tuns = Arc::clone(&self.tuns);
        let sh = Arc::clone(&self.shared);
        self.threads.push(std::thread::spawn(move || {
            let mut q = sh.queue.lock().unwrap_or_else(|e| e.into_inner());
            while !sh.stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                match q.peek() {
                    Some(d) if d.at <= now => {
                        if let Some(d) = q.pop() {
                            let _ = (&tuns[d.to]).write(&d.packet);
                            sh.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(d) => {
                        let wait = d.at - now;
                        q = sh
                            .wake
                            .wait_timeout(q, wait)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    None => {
                        q = sh
                            .wake
                            .wait_timeout(q, Duration::from_millis(100))
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        }));
    }

    /// Sets the link between validators `a` and `b`, both directions.
    pub fn set_pair(&self, a: usize, b: usize, f: impl Fn(&mut Link)) {
        let mut r = self.shared.rules.lock().unwrap_or_else(|e| e.into_inner());
        let n = r.n;
        f(&mut r.links[(a + 1) * n + b + 1]);
        f(&mut r.links[(b + 1) * n + a + 1]);
    }

    /// Applies `f` to every validator-to-validator link.
    pub fn set_all(&self, validators: usize, f: impl Fn(&mut Link)) {
        for a in 0..validators {
            for b in 0..validators {
                if a != b {
                    let mut r = self.shared.rules.lock().unwrap_or_else(|e| e.into_inner());
                    let n = r.n;
                    f(&mut r.links[(a + 1) * n + b + 1]);
                }
            }
        }
    }

    /// The current link from validator `a` to validator `b`.
    pub fn link(&self, a: usize, b: usize) -> Link {
        self.shared
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(a + 1, b + 1)
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// `ip netns exec <ns>` prefix for validator `i`.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.namespaces[i].clone(),
        ]
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            remove_ns(ns);
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The TUN fds close with the last Arc (the threads have ended).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_to_endpoints() {
        // 4 validators: endpoints 0 (harness) and 1..=4.
        assert_eq!(endpoint_of([10, 77, 0, 1], 5), Some(0));
        assert_eq!(endpoint_of([10, 77, 0, 10], 5), Some(1));
        assert_eq!(endpoint_of([10, 77, 0, 13], 5), Some(4));
        assert_eq!(endpoint_of([10, 77, 0, 14], 5), None);
        assert_eq!(endpoint_of([10, 77, 0, 2], 5), None);
        assert_eq!(endpoint_of([10, 77, 0, 128], 5), Some(0), "flood sources");
        assert_eq!(endpoint_of([10, 77, 0, 254], 5), Some(0));
        assert_eq!(endpoint_of([10, 77, 1, 10], 5), None);
        assert_eq!(node_ip(3), Ipv4Addr::new(10, 77, 0, 13));
    }

    #[test]
    fn due_packets_pop_earliest_first() {
        let now = Instant::now();
        let mut h = BinaryHeap::new();
        for (i, ms) in [30u64, 10, 20].into_iter().enumerate() {
            h.push(Due {
                at: now + Duration::from_millis(ms),
                seq: i as u64,
                to: 0,
                packet: vec![],
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| h.pop().map(|d| d.seq)).collect();
        assert_eq!(order, vec![1, 2, 0]);
    }
}
