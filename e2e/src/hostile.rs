//! A hostile peer on the validators' P2P port (raw TCP, from the harness's
//! address, outside the validator set): each connection sends one kind of
//! [`Junk`] and then waits for the validator to close it. What is measured
//! is whether and how fast each validator drops such a connection while the
//! chain goes on (the scenario's progress and finality checks).
//!
//! Not covered here: a peer that completes the libp2p handshake (noise, yamux)
//! and then floods gossip or sends wrongly signed votes; that needs a libp2p
//! client of malachite's protocols (docs/RELIABILITY.md, "Not done").

use crate::node::P2P_PORT;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a hostile connection sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Junk {
    /// 64 KiB of pseudo-random bytes.
    Garbage,
    /// multistream-select's header, then a protocol name announced as 1 GiB.
    Oversized,
    /// A correct `/noise` negotiation, then a 64 KiB noise frame of junk.
    BadNoise,
    /// Connects and sends nothing (a slow-loris peer).
    Silent,
}

pub const ALL: [Junk; 4] = [Junk::Garbage, Junk::Oversized, Junk::BadNoise, Junk::Silent];

/// An unsigned LEB128 varint, as multistream-select frames its messages.
fn varint(mut x: u64, out: &mut Vec<u8>) {
    loop {
        let b = (x & 0x7f) as u8;
        x >>= 7;
        if x == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn ms_line(s: &str, out: &mut Vec<u8>) {
    varint(s.len() as u64 + 1, out);
    out.extend_from_slice(s.as_bytes());
    out.push(b'\n');
}

/// The bytes of one junk kind (`seed` varies the garbage).
pub fn bytes(kind: Junk, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut x = seed | 1;
    let mut noise = |n: usize, out: &mut Vec<u8>| {
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(x as u8);
        }
    };
    match kind {
        Junk::Garbage => noise(65_536, &mut out),
        Junk::Oversized => {
            ms_line("/multistream/1.0.0", &mut out);
            varint(1 << 30, &mut out);
            noise(4096, &mut out);
        }
        Junk::BadNoise => {
            ms_line("/multistream/1.0.0", &mut out);
            ms_line("/noise", &mut out);
            out.extend_from_slice(&u16::MAX.to_be_bytes());
            noise(usize::from(u16::MAX), &mut out);
        }
        Junk::Silent => {}
    }
    out
}

/// One connection's outcome.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub node: usize,
    pub kind: Junk,
    /// Connect → the validator closed it (EOF or reset); `None`: still open
    /// when the harness gave up (`give_up`).
    pub closed_after: Option<Duration>,
    /// The connect itself failed (refused, timed out).
    pub connect_error: Option<String>,
}

#[derive(Debug)]
pub struct Hostile {
    results: Arc<Mutex<Vec<Attempt>>>,
    threads: Vec<JoinHandle<()>>,
}

/// Connects, sends `kind`, reads until the peer closes or `give_up`.
fn attempt(node: usize, addr: SocketAddr, kind: Junk, seed: u64, give_up: Duration) -> Attempt {
    let t = Instant::now();
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => {
            return Attempt {
                node,
                kind,
                closed_after: None,
                connect_error: Some(e.to_string()),
            }
        }
    };
    // A write that fails has met a closed connection: the read below sees it.
    if let Err(e) = s.write_all(&bytes(kind, seed)) {
        if !matches!(
            e.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ) {
            eprintln!("step-e2e hostile: write to {addr}: {e}");
        }
    }
    let mut buf = [0u8; 4096];
    let closed_after = loop {
        let left = give_up.saturating_sub(t.elapsed());
        if left.is_zero() {
            break None;
        }
        if s.set_read_timeout(Some(left)).is_err() {
            break Some(t.elapsed());
        }
        match s.read(&mut buf) {
            Ok(0) => break Some(t.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break None
            }
            Err(_) => break Some(t.elapsed()),
        }
    };
    Attempt {
        node,
        kind,
        closed_after,
        connect_error: None,
    }
}

impl Hostile {
    /// `connections` threads per target, each cycling through [`ALL`] from
    /// `t0 + start` until `t0 + stop`.
    pub fn start(
        targets: &[usize],
        connections: usize,
        start: Duration,
        stop: Duration,
        give_up: Duration,
        t0: Instant,
    ) -> Hostile {
        let results = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for &node in targets {
            let addr = SocketAddr::from((crate::net::node_ip(node), P2P_PORT));
            for c in 0..connections {
                let results = Arc::clone(&results);
                threads.push(std::thread::spawn(move || {
                    if let Some(w) = (t0 + start).checked_duration_since(Instant::now()) {
                        std::thread::sleep(w);
                    }
                    let mut i = c;
                    while t0.elapsed() < stop {
                        let kind = ALL[i % ALL.len()];
                        let a = attempt(node, addr, kind, (node * 1000 + i) as u64, give_up);
                        // A steady stream, not a busy loop: every byte also
                        // crosses the harness's userspace router.
                        std::thread::sleep(Duration::from_millis(if a.connect_error.is_some() {
                            200
                        } else {
                            50
                        }));
                        results.lock().unwrap_or_else(|e| e.into_inner()).push(a);
                        i += 1;
                    }
                }));
            }
        }
        Hostile { results, threads }
    }

    /// Every attempt, and how many sender threads panicked.
    pub fn join(self) -> (Vec<Attempt>, usize) {
        let panicked = join_all(self.threads);
        let a = std::mem::take(&mut *self.results.lock().unwrap_or_else(|e| e.into_inner()));
        (a, panicked)
    }
}

/// Joins attack threads; how many panicked (the scenario fails on any).
pub fn join_all(threads: Vec<JoinHandle<()>>) -> usize {
    threads
        .into_iter()
        .map(JoinHandle::join)
        .filter(Result::is_err)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistream_frames_are_length_prefixed_varints() {
        let mut v = Vec::new();
        varint(300, &mut v);
        assert_eq!(v, [0xac, 0x02]);
        let o = bytes(Junk::Oversized, 1);
        // 0x13 = 19 = "/multistream/1.0.0\n", then 2^30 as a varint.
        assert_eq!(o[0], 19);
        assert_eq!(&o[1..20], b"/multistream/1.0.0\n");
        assert_eq!(&o[20..25], &[0x80, 0x80, 0x80, 0x80, 0x04]);
        assert_eq!(bytes(Junk::Garbage, 7).len(), 65_536);
        assert_ne!(bytes(Junk::Garbage, 7), bytes(Junk::Garbage, 8));
        assert!(bytes(Junk::Silent, 1).is_empty());
    }
}
