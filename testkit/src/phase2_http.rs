//! The [`Phase2`] stand-in behind HTTP/1.1 on loopback: `POST /proof/submit`
//! and `GET /proof/config` with Phase 2's shapes, one connection at a time
//! (`Connection: close`), in a thread of its own. A test fixture.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use crate::phase2::{
    Answer, Phase2, GPS_MAX_ACCURACY_M, PROOF_MORATORIUM_MS, PROOF_SPEED_LIMIT_MPS,
};

/// Phase 2's body limit for this stand-in.
const BODY_MAX_BYTES: usize = 64 * 1024;

/// A running stand-in; its state is shared with the test.
#[derive(Debug)]
pub struct Phase2Server {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Phase2>>,
}

fn answer(s: &mut TcpStream, a: &Answer) -> std::io::Result<()> {
    let body = a.body.to_string();
    let reason = if a.status < 300 { "OK" } else { "Error" };
    write!(
        s,
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        a.status,
        body.len()
    )
}

fn serve(mut s: TcpStream, state: &Mutex<Phase2>) -> std::io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(usize::MAX);
            }
        }
    }
    let bad = |code: u16, what: &str| Answer {
        status: code,
        body: json!({"ok": false, "code": "INVALID_PAYLOAD", "message": what}),
    };
    if length > BODY_MAX_BYTES {
        return answer(&mut s, &bad(413, "body too large"));
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let a = match (method.as_str(), path.as_str()) {
        ("POST", "/proof/submit") => state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .submit(&body),
        ("GET", "/proof/config") => Answer {
            status: 200,
            body: json!({"GPS_MAX_ACCURACY_M": GPS_MAX_ACCURACY_M,
                         "PROOF_SPEED_LIMIT_MPS": PROOF_SPEED_LIMIT_MPS,
                         "PROOF_MORATORIUM_MS": PROOF_MORATORIUM_MS}),
        },
        _ => bad(404, "no such route"),
    };
    answer(&mut s, &a)
}

impl Phase2Server {
    /// Listens on a free loopback port.
    ///
    /// # Panics
    /// If no port can be bound.
    pub fn start() -> Phase2Server {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the Phase 2 stand-in");
        let addr = l.local_addr().expect("its address");
        let state = Arc::new(Mutex::new(Phase2::new()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let result = conn.and_then(|c| serve(c, &shared));
                if let Err(e) = result {
                    eprintln!("phase 2 stand-in: {e}");
                }
            }
        });
        Phase2Server { addr, state }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::http::{get, post_json};

    /// The documented defects over HTTP: a letter-case replay passes, a
    /// high-s twin passes, v = 0/1 passes, a bad triangle id gets a mock
    /// triangle, and the 3 meridian samples are OUT_OF_BOUNDS (planar).
    #[test]
    fn the_stand_in_answers_with_phase2s_shapes_and_defects() {
        let srv = Phase2Server::start();
        let c = get(srv.addr, "/proof/config").json();
        assert_eq!(c["PROOF_MORATORIUM_MS"], 10_000);
        let lines: Vec<String> = crate::shared_lines("sample-valid.jsonl")
            .iter()
            .map(|l| crate::cluster::strip_expectations(l))
            .collect();
        let mut codes = std::collections::BTreeMap::new();
        for l in &lines {
            let r = post_json(srv.addr, "/proof/submit", l.as_bytes());
            let v = r.json();
            let code = if r.status == 200 {
                assert_eq!(v["ok"], true, "{v}");
                assert!(v["balance"].is_string() && v["reward"].is_string(), "{v}");
                "OK".to_owned()
            } else {
                assert_eq!(v["ok"], false, "{v}");
                v["code"].as_str().unwrap().to_owned()
            };
            *codes.entry(code).or_insert(0) += 1;
        }
        // The samples are 1 s apart: Phase 2's speed gate and moratorium
        // refuse most; its planar check refuses the 3 across the meridian.
        assert_eq!(codes.get("OUT_OF_BOUNDS"), Some(&3), "{codes:?}");
        assert!(codes.get("OK").is_some_and(|n| *n >= 10), "{codes:?}");
        let known = ["OK", "OUT_OF_BOUNDS", "TOO_FAST", "MORATORIUM"];
        assert!(
            codes.keys().all(|c| known.contains(&c.as_str())),
            "{codes:?}"
        );
        // Replay: same text refused, other letter case accepted (defect 5).
        post_json(srv.addr, "/proof/submit", lines[0].as_bytes()).assert_error(
            409,
            "NONCE_REPLAY",
            "replay",
        );
        let mut v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        let acct = v["payload"]["account"].as_str().unwrap().to_owned();
        v["payload"]["account"] = format!("0x{}", acct[2..].to_ascii_uppercase()).into();
        let r = post_json(srv.addr, "/proof/submit", v.to_string().as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        // High-s twin and v = 0/1 of sample 2, each with a fresh nonce would
        // need a new signature; on a fresh stand-in the same proof is new.
        let fresh = Phase2Server::start();
        let mut v: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
        let sig = v["signature"].as_str().unwrap().to_owned();
        let raw = hex::decode(&sig[2..]).unwrap();
        let mut low_v = raw.clone();
        low_v[64] -= 27;
        v["signature"] = format!("0x{}", hex::encode(&low_v)).into();
        let r = post_json(fresh.addr, "/proof/submit", v.to_string().as_bytes());
        assert_eq!(r.status, 200, "v = 0/1 accepted (defect 2): {}", r.text());
        let other = Phase2Server::start();
        v["signature"] = high_s_twin(&raw).into();
        let r = post_json(other.addr, "/proof/submit", v.to_string().as_bytes());
        assert_eq!(r.status, 200, "high s accepted (defect 1): {}", r.text());
        // A bad checksum: a mock triangle, saved (defect 3).
        let mock = crate::phase2_history::signed_raw(
            "stand-in",
            crate::phase2_history::MOCK_TRIANGLE,
            1.0,
            2.0,
            "2026-01-01T00:00:00.000Z",
            "m",
        );
        let r = post_json(srv.addr, "/proof/submit", mock.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        let held = srv.state.lock().unwrap();
        assert!(held
            .clicks()
            .iter()
            .any(|(id, c)| id == crate::phase2_history::MOCK_TRIANGLE && *c == 1));
    }

    /// (r, n − s, v ^ 1): the malleated twin.
    fn high_s_twin(raw: &[u8]) -> String {
        const N: [u8; 32] = [
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFE, 0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C,
            0xD0, 0x36, 0x41, 0x41,
        ];
        let mut out = raw.to_vec();
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = i16::from(N[i]) - i16::from(raw[32 + i]) - borrow;
            borrow = i16::from(d < 0);
            out[32 + i] = d.rem_euclid(256) as u8;
        }
        out[64] = if raw[64] == 27 { 28 } else { 27 };
        format!("0x{}", hex::encode(out))
    }
}
