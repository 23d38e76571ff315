//! The generator's own HTTP/1.1 client against a scripted server that
//! answers only once several requests have arrived (so the one connection
//! must pipeline), splits its answers into 7-byte writes, and names each
//! answer after the proof it answers: every proof gets exactly its own
//! answer, none lost, none taken twice.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;
use step_perf::load::{self, Options};

/// The nonce of a prepared proof's body (unique per proof).
fn nonce(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["payload"]["nonce"].as_str().unwrap().to_owned()
}

#[test]
fn pipelined_answers_go_to_their_own_proofs() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (mut buf, mut most_waiting, mut answered) = (Vec::new(), 0usize, 0usize);
        let mut chunk = [0u8; 65536];
        loop {
            // Parse every complete request in the buffer.
            let mut bodies = Vec::new();
            loop {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut req = httparse::Request::new(&mut headers);
                let Ok(httparse::Status::Complete(n)) = req.parse(&buf) else {
                    break;
                };
                let len: usize = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap();
                if buf.len() < n + len {
                    break;
                }
                bodies.push(buf[n..n + len].to_vec());
                buf.drain(..n + len);
            }
            most_waiting = most_waiting.max(bodies.len());
            for body in bodies {
                let json = format!(r#"{{"ok":false,"code":"{}"}}"#, nonce(&body));
                let resp = format!(
                    "HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                    json.len()
                );
                for piece in resp.as_bytes().chunks(7) {
                    s.write_all(piece).unwrap();
                }
                answered += 1;
            }
            // Wait for several requests before answering (or for the end).
            let mut waited = 0;
            loop {
                match s.read(&mut chunk) {
                    Ok(0) => return (most_waiting, answered),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => {}
                }
                waited += 1;
                let pending = buf.windows(4).filter(|w| w == b"POST").count();
                if pending >= 4 || (pending > 0 && waited > 3) {
                    break;
                }
            }
        }
    });
    let mut o = Options::new(
        vec![format!("http://{addr}")],
        400.0,
        Duration::from_millis(500),
    );
    o.connections = 1;
    o.pipeline = 8;
    o.queue = 10_000;
    o.track_finality = false;
    o.calibrate = false;
    o.seed = "pipelining-test".into();
    o.request_timeout = Duration::from_secs(3);
    let r = load::run(&o).unwrap();
    let (most_waiting, answered) = server.join().unwrap();
    assert_eq!(answered, 200);
    assert!(most_waiting > 1, "the client never pipelined");
    let j = r.to_json();
    assert_eq!(j["errors"], 0, "{j}");
    assert_eq!(j["sent"], 200, "{j}");
    // Each proof's own nonce came back as its code, once.
    let (prepared, _) = load::prepare_proofs(&o.params(), 200, None, 1, false).unwrap();
    let want: std::collections::BTreeMap<String, u64> =
        (0..200).map(|i| (nonce(prepared.body(i)), 1)).collect();
    assert_eq!(r.tally.rejected_by_code, want);
    // And proof by proof, for the ten the report quotes ("proof I Valid: CODE").
    assert_eq!(r.tally.unexpected_examples.len(), 10);
    for e in &r.tally.unexpected_examples {
        let (i, code) = e
            .strip_prefix("proof ")
            .and_then(|e| e.split_once(" Valid: "))
            .unwrap();
        assert_eq!(code, nonce(prepared.body(i.parse().unwrap())), "{e}");
    }
}
