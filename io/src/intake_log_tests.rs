//! The intake log's rules: durable before completion, replay, torn tail,
//! bound, forgetting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::sync::mpsc as std_mpsc;
use step_engine::signing;

/// A fresh directory, removed when the guard drops.
fn dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("step-intake-{name}-"))
        .tempdir()
        .unwrap()
}

fn settings(dir: &Path) -> LogSettings {
    LogSettings {
        dir: dir.to_path_buf(),
        max_records: 100,
        group_commit: Duration::from_millis(1),
        segment_bytes: 1 << 20,
    }
}

fn proofs(n: u64) -> Vec<Proof> {
    let t = signing::root_triangle();
    (0..n)
        .map(|k| {
            let key = signing::key("intake-log", k);
            let body = signing::simple_body(&key, &t, &format!("n{k}"));
            step_engine::proof::parse(&body).unwrap()
        })
        .collect()
}

type Done = std_mpsc::Sender<(u64, bool)>;

/// Opens the log with a completion that reports `(tag, ok)` on a channel.
fn open(s: &LogSettings) -> (IntakeLog<u64>, Replay, std_mpsc::Receiver<(u64, bool)>) {
    let (tx, rx) = std_mpsc::channel();
    let done: Mutex<Done> = Mutex::new(tx);
    let (log, replay) = IntakeLog::open(s, move |tag, r: Result<(), &IntakeLogError>| {
        lock(&done).send((tag, r.is_ok())).unwrap();
    })
    .unwrap();
    (log, replay, rx)
}

fn append_all(log: &IntakeLog<u64>, rx: &std_mpsc::Receiver<(u64, bool)>, ps: &[Proof]) {
    for (k, p) in ps.iter().enumerate() {
        log.reserve().unwrap();
        assert!(log.append(p, k as u64).is_ok(), "the writer runs");
    }
    for _ in ps {
        let (_, ok) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(ok);
    }
}

/// Completed appends are read back after a restart, each once, in order.
/// A forget is not written down: a decided proof whose segment still holds
/// undecided ones is read back too (the ledger's replay finds it decided),
/// and a segment whose proofs are all decided is gone.
#[test]
fn completed_appends_are_replayed_and_forgotten_ones_are_not() {
    let d = dir("replay");
    let s = settings(d.path());
    let ps = proofs(5);
    let (log, replay, rx) = open(&s);
    assert!(replay.proofs.is_empty());
    append_all(&log, &rx, &ps);
    assert_eq!(log.records(), 5);
    log.forget(vec![ProofId::of_proof(&ps[1]).unwrap()]);
    log.close(); // the writer has applied the forget
    assert_eq!(log.records(), 4);
    assert_eq!(log.stats().appended.load(Ordering::Relaxed), 5);
    let (log2, replay, _rx) = open(&s);
    let ids = |v: &[Proof]| {
        v.iter()
            .map(|p| ProofId::of_proof(p).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&replay.proofs), ids(&ps));
    assert_eq!(replay.proofs[0], ps[0], "the proof round-trips exactly");
    assert_eq!(log2.records(), 5, "replayed proofs keep their places");
    assert!(replay.truncated.is_none());
    log2.forget(ids(&ps));
    log2.close();
    let (_log3, replay, _rx) = open(&s);
    assert!(
        replay.proofs.is_empty(),
        "every segment's proofs were decided"
    );
}

/// A record cut short by a crash (written, never synced nor acknowledged)
/// is cut off at open, with the intact records before it kept; garbage in
/// a segment that is not the last is a named error.
#[test]
fn a_torn_tail_is_truncated_and_earlier_corruption_is_an_error() {
    let d = dir("torn");
    let s = settings(d.path());
    let ps = proofs(3);
    let (log, _, rx) = open(&s);
    append_all(&log, &rx, &ps[..2]);
    log.close();
    let seg = segments(d.path())
        .unwrap()
        .into_values()
        .next_back()
        .unwrap();
    let whole = std::fs::metadata(&seg).unwrap().len();
    // Half of a third record, as a SIGKILL mid-write leaves it.
    let mut rec = Vec::new();
    encode_record(&ps[2], &mut rec).unwrap();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&rec[..rec.len() / 2]).unwrap();
    drop(f);
    let (log, replay, _rx) = open(&s);
    assert_eq!(replay.proofs.len(), 2);
    let t = replay.truncated.clone().expect("truncated");
    assert_eq!((t.offset, t.reason), (whole, "truncated payload"));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), whole);
    log.close();
    drop(log);
    // A flipped byte in the first record of a segment that is not the last.
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[HEADER_BYTES + 3] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    std::fs::write(segment_path(d.path(), 999), b"").unwrap();
    let (tx, _rx) = std_mpsc::channel::<u64>();
    let tx = Mutex::new(tx);
    let e = IntakeLog::open(&s, move |t: u64, _| lock(&tx).send(t).unwrap()).unwrap_err();
    assert!(
        matches!(
            &e,
            IntakeLogError::Corrupt {
                reason: "checksum mismatch",
                offset: 0,
                ..
            }
        ),
        "{e}"
    );
}

/// At `max_records` the next reservation is refused with `Full`; a
/// release or a forget gives a place back.
#[test]
fn a_full_log_refuses_with_a_named_error() {
    let d = dir("full");
    let mut s = settings(d.path());
    s.max_records = 2;
    let ps = proofs(2);
    let (log, _, rx) = open(&s);
    append_all(&log, &rx, &ps);
    let e = log.reserve().unwrap_err();
    assert!(
        matches!(
            e,
            IntakeLogError::Full {
                records: 2,
                max: 2,
                ..
            }
        ),
        "{e}"
    );
    log.forget(vec![ProofId::of_proof(&ps[0]).unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.records() != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    log.reserve().unwrap();
    log.release();
    assert_eq!(log.records(), 1);
}

/// Appends that arrive together share one fsync; a segment whose proofs
/// are all decided is deleted once a newer one is active.
#[test]
fn appends_share_fsyncs_and_decided_segments_are_deleted() {
    let d = dir("groups");
    let mut s = settings(d.path());
    s.group_commit = Duration::from_millis(50);
    s.segment_bytes = 1; // a new segment after every group
    s.max_records = 1_000;
    let ps = proofs(40);
    let (log, _, rx) = open(&s);
    append_all(&log, &rx, &ps);
    let fsyncs = log.stats().fsyncs.load(Ordering::Relaxed);
    assert!(fsyncs < 40, "{fsyncs} fsyncs for 40 appends sent together");
    log.forget(ps.iter().map(|p| ProofId::of_proof(p).unwrap()).collect());
    log.close();
    assert_eq!(log.records(), 0);
    let deleted = log.stats().segments_deleted.load(Ordering::Relaxed);
    assert_eq!(deleted, fsyncs, "each group's segment, once decided");
    assert_eq!(
        segments(d.path()).unwrap().len(),
        1,
        "only the active segment is left"
    );
}

/// Only signed proofs are logged: an unsigned one is a named error and
/// leaves the buffer as it was.
#[test]
fn an_unsigned_proof_is_not_encoded() {
    let mut p = proofs(1).remove(0);
    p.signature = Err(step_engine::error::SignatureError::RecoveryFailed);
    let mut buf = vec![1, 2, 3];
    assert_eq!(encode_record(&p, &mut buf), Err(EncodeError::Unsigned));
    assert_eq!(buf, [1, 2, 3]);
}
