//! Helpers for the pipeline tests: the shared samples, freshly signed proofs,
//! and running bodies through the pipeline or the single-proof engine.
#![allow(dead_code)]

use secp256k1::ecdsa::RecoverableSignature;
use secp256k1::{Message, PublicKey, SecretKey};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;
use step_engine::jsnum::JsNumBuf;
use step_engine::message::{eip191_digest, MessageBuf};
use step_engine::pipeline::{Batch, Clock, Hook, Pipeline, PipelineConfig, Verdict};
use step_engine::proof::{Nonce, Proof, Timestamp};
use step_engine::{Accepted, Address, MemoryState, Reject, TriangleId, Verifier};

/// 2026-01-01T00:00:00.000Z
pub const T0: i64 = 1_767_225_600_000;

/// The shared samples, valid lines first: the replay cases among the
/// invalid lines copy valid lines and must come after them.
pub fn sample_bodies(common_read: impl Fn(&str) -> String) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for name in ["sample-valid.jsonl", "sample-invalid.jsonl"] {
        out.extend(
            common_read(name)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.as_bytes().to_vec()),
        );
    }
    out
}

/// A signing account derived from `seed` and `k`.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    pub sk: SecretKey,
    pub address: Address,
    pub pubkey: [u8; 64],
}

pub fn account(seed: &str, k: u64) -> Account {
    let mut h: [u8; 32] = Sha256::digest(format!("{seed}|key|{k}")).into();
    let sk = loop {
        match SecretKey::from_secret_bytes(h) {
            Ok(sk) => break sk,
            Err(_) => h = Sha256::digest(h).into(),
        }
    };
    let full = PublicKey::from_secret_key(&sk).serialize_uncompressed();
    let mut pubkey = [0u8; 64];
    pubkey.copy_from_slice(&full[1..]);
    Account {
        sk,
        address: Address::from_public_key(&pubkey),
        pubkey,
    }
}

/// A triangle chosen by `i`: every face and level 1..=21.
pub fn triangle(i: u64) -> TriangleId {
    let level = (i % 21) as usize + 1;
    let face = ((i / 21) % 20) as u8;
    let digits: Vec<u8> = (0..level - 1)
        .map(|d| ((i >> (d % 16)) as u8 ^ d as u8) & 3)
        .collect();
    TriangleId::new(face, &digits).expect("valid triangle")
}

/// The triangle's centroid rounded to 6 decimals when that stays inside.
pub fn point(t: &TriangleId) -> (f64, f64) {
    let (lat, lon) = step_engine::mesh::centroid_lat_lon(t);
    let r = |x: f64| (x * 1e6).round() / 1e6;
    if step_engine::mesh::contains(t, r(lat), r(lon)) {
        (r(lat), r(lon))
    } else {
        (lat, lon)
    }
}

fn hex(bytes: &[u8], out: &mut String) {
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
}

/// A signed body for `acct` at (`t`, its centroid), time `ms`, nonce `nonce`.
pub fn signed_body(acct: &Account, t: &TriangleId, ms: i64, nonce: &str) -> Vec<u8> {
    let (lat, lon) = point(t);
    let accuracy = 3.0 + (ms % 3700) as f64 / 100.0;
    let proof = Proof {
        account: acct.address,
        triangle: *t,
        lat,
        lon,
        accuracy_m: accuracy,
        timestamp: Timestamp::from_unix_ms(ms).expect("timestamp"),
        nonce: Nonce::parse(nonce).expect("nonce"),
        signature: Ok([0; 65]),
    };
    let mut msg = MessageBuf::default();
    msg.build(&proof);
    let digest = eip191_digest(msg.as_bytes());
    let sig = RecoverableSignature::sign_ecdsa_recoverable(Message::from_digest(digest), &acct.sk);
    let (recid, rs) = sig.serialize_compact();
    let mut sig_hex = String::from("0x");
    hex(&rs, &mut sig_hex);
    hex(&[u8::from(recid) + 27], &mut sig_hex);
    let mut num = JsNumBuf::new();
    let mut s = String::new();
    s.push_str(r#"{"payload":{"version":"STEP-PROOF-v1","account":""#);
    s.push_str(&acct.address.to_string());
    s.push_str(r#"","triangleId":""#);
    s.push_str(&t.to_string());
    s.push_str(r#"","lat":"#);
    s.push_str(num.format(lat));
    s.push_str(r#","lon":"#);
    s.push_str(num.format(lon));
    s.push_str(r#","accuracy":"#);
    s.push_str(num.format(accuracy));
    s.push_str(r#","timestamp":""#);
    s.push_str(proof.timestamp.as_str());
    s.push_str(r#"","nonce":""#);
    s.push_str(nonce);
    s.push_str(r#""},"signature":""#);
    s.push_str(&sig_hex);
    s.push_str(r#""}"#);
    s.into_bytes()
}

/// `n` valid proofs over `accounts` accounts, round-robin, each account's
/// proofs 11 s apart at the same place (they pass the speed gate and the
/// moratorium when submitted in this order).
pub fn fresh_valid(seed: &str, n: usize, accounts: usize) -> Vec<Vec<u8>> {
    let accts: Vec<Account> = (0..accounts as u64).map(|k| account(seed, k)).collect();
    (0..n)
        .map(|i| {
            let a = i % accounts;
            let round = (i / accounts) as i64;
            let t = triangle(a as u64 * 7 + 3);
            signed_body(
                &accts[a],
                &t,
                T0 + round * 11_000 + a as i64,
                &format!("{seed}-{i}"),
            )
        })
        .collect()
}

/// The single-proof engine's verdicts, in order, against one fresh state.
pub fn reference(
    verifier: &Verifier,
    bodies: &[Vec<u8>],
    now_ms: i64,
) -> Vec<Result<Accepted, Reject>> {
    let mut state = MemoryState::new();
    bodies
        .iter()
        .map(|b| verifier.verify(b, now_ms, &mut state))
        .collect()
}

/// What a pipeline run produced.
#[derive(Debug)]
pub struct Run {
    /// Verdicts indexed by tag (= index in the input).
    pub verdicts: Vec<Result<Accepted, Reject>>,
    /// Verdict tags in the order the callback saw them.
    pub order: Vec<u64>,
    pub batches: Vec<Batch>,
}

/// Submits every body (retrying on OVERLOADED), then finishes.
pub fn run_pipeline(config: PipelineConfig, bodies: &[Vec<u8>]) -> Run {
    let seen: Arc<Mutex<Vec<Verdict>>> = Arc::new(Mutex::new(Vec::with_capacity(bodies.len())));
    let sink = Arc::clone(&seen);
    let p = Pipeline::with_memory_state(config, move |v: &Verdict| {
        sink.lock().expect("lock").push(v.clone())
    });
    let mut batches = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        loop {
            match p.submit(b, i as u64) {
                Ok(_) => break,
                Err(Reject::Overloaded) => {
                    while let Some(batch) = p.try_next_batch() {
                        batches.push(batch);
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("submit refused with {e}"),
            }
        }
    }
    let finished = p.finish();
    batches.extend(finished.batches);
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(seen.len(), bodies.len(), "one verdict per body");
    let mut verdicts: Vec<Option<Result<Accepted, Reject>>> = vec![None; bodies.len()];
    let mut order = Vec::with_capacity(seen.len());
    for (expect_seq, v) in seen.into_iter().enumerate() {
        assert_eq!(
            v.seq, expect_seq as u64,
            "verdicts arrive in sequence order"
        );
        order.push(v.tag);
        verdicts[v.tag as usize] = Some(v.result);
    }
    Run {
        verdicts: verdicts
            .into_iter()
            .map(|v| v.expect("verdict for every tag"))
            .collect(),
        order,
        batches,
    }
}

pub fn config(verifier: Verifier, workers: usize) -> PipelineConfig {
    let mut c = PipelineConfig::new(verifier, Clock::fixed(T0));
    c.workers = workers;
    c.pin_workers = false;
    c
}

/// The accepted proofs of a run in commit order.
pub fn accepted_in_order(run: &Run) -> Vec<Proof> {
    run.order
        .iter()
        .filter_map(|&t| run.verdicts[t as usize].as_ref().ok().map(|a| a.proof))
        .collect()
}

/// Holds the workers (through a [`Hook`]) until opened. Opens when dropped, so
/// that a failing assertion does not leave a pipeline's drop waiting forever:
/// bind it after the pipeline so that it is dropped first.
#[derive(Debug)]
pub struct Gate(Arc<GateInner>);

#[derive(Debug, Default)]
pub struct GateInner {
    open: Mutex<bool>,
    cv: Condvar,
    entered: AtomicUsize,
}

impl Gate {
    pub fn new() -> (Hook, Gate) {
        let g = Arc::new(GateInner::default());
        let g2 = Arc::clone(&g);
        let hook: Hook = Arc::new(move |_seq| {
            g2.entered.fetch_add(1, Ordering::SeqCst);
            let mut open = g2.open.lock().unwrap_or_else(PoisonError::into_inner);
            while !*open {
                open = g2.cv.wait(open).unwrap_or_else(PoisonError::into_inner);
            }
        });
        (hook, Gate(g))
    }

    /// Waits until `n` proofs have reached the hook (their workers are held).
    pub fn wait_entered(&self, n: usize) {
        let t = std::time::Instant::now();
        while self.0.entered.load(Ordering::SeqCst) < n {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "workers never reached the gate"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn open(&self) {
        *self.0.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.cv.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}
