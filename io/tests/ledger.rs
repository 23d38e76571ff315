//! The `Ledger` trait through `LocalLedger`, without HTTP.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use step_engine::reward::reward_micro;
use step_engine::Reject;
use step_io::ledger::{FinalityError, Ledger, LocalLedger, Pending, ProofId, ProofStatus};
use step_io::Metrics;
use support::{test_config, valid_lines};

fn ledger() -> LocalLedger {
    LocalLedger::start(
        &test_config(),
        step_io::ledger::system_clock(),
        Arc::new(Metrics::new()),
    )
}

/// Submits one body and waits for its pipeline verdict.
async fn verdict(l: &LocalLedger, line: &str) -> Result<Pending, Reject> {
    l.submit_body(line.as_bytes()).unwrap().verdict().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_then_finality_then_queries() {
    let l = ledger();
    let line = &valid_lines()[2];
    let pending = verdict(&l, line).await.unwrap();
    let p = step_engine::proof::parse(line.as_bytes()).unwrap();
    assert_eq!(pending.id, ProofId::of_proof(&p).unwrap());
    assert_eq!(pending.reward_micro, reward_micro(p.triangle.level()));
    let fin = l.wait_final(pending.id).await.unwrap();
    assert_eq!(fin.balance_micro, pending.reward_micro);
    assert_eq!(fin.clicks, 1);
    assert_eq!(fin.height, 1);
    // Already final: resolves at once.
    assert_eq!(l.wait_final(pending.id).await.unwrap(), fin);
    assert!(
        matches!(l.proof(&pending.id).expect("read").expect("known").status, ProofStatus::Final(f) if f == fin)
    );
    assert_eq!(
        l.account(&p.account).expect("read").balance_micro,
        fin.balance_micro
    );
    assert_eq!(l.account(&p.account).expect("read").proofs, 1);
    assert_eq!(l.triangle(&p.triangle).expect("read").clicks, 1);
    assert_eq!(
        l.wait_final(ProofId([7; 32])).await,
        Err(FinalityError::Unknown)
    );
    // A rejected proof has a Reject, not an id.
    let err = verdict(&l, line).await.unwrap_err();
    assert_eq!(err.code().as_str(), "NONCE_REPLAY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_broadcast_in_height_order() {
    let l = ledger();
    let mut events = l.subscribe();
    let valid = valid_lines();
    let mut ids = Vec::new();
    for line in &valid[..30] {
        let p = verdict(&l, line).await.unwrap();
        ids.push(p.id);
    }
    let mut seen = Vec::new();
    let mut height = 0;
    while seen.len() < ids.len() {
        let b = tokio::time::timeout(support::IO_TIMEOUT, events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.height, height + 1, "no gaps, no repeats");
        height = b.height;
        seen.extend(b.proof_ids.iter().copied());
    }
    assert_eq!(seen, ids, "finalized in submission order");
    assert_eq!(l.status().height, height);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finalizes_everything_accepted() {
    let mut c = test_config();
    // A long batch deadline: without close's flush, the tail would wait.
    c.pipeline.flush_after_ms = 60_000;
    c.pipeline.batch_size = 7;
    let l = LocalLedger::start(
        &c,
        step_io::ledger::system_clock(),
        Arc::new(Metrics::new()),
    );
    let valid = valid_lines();
    let subs: Vec<_> = valid[..20]
        .iter()
        .map(|line| l.submit_body(line.as_bytes()).unwrap())
        .collect();
    let closing = tokio::spawn({
        let l = l.clone();
        async move { l.close().await }
    });
    let mut ids = Vec::new();
    for s in subs {
        ids.push(s.verdict().await.unwrap().id);
    }
    tokio::time::timeout(support::IO_TIMEOUT, closing)
        .await
        .expect("close did not finish")
        .unwrap();
    for id in &ids {
        assert!(
            matches!(
                l.proof(id).expect("read").expect("known").status,
                ProofStatus::Final(_)
            ),
            "{id} not final after close"
        );
    }
    // 20 proofs in blocks of at most 7: 2 full and the flushed tail.
    assert_eq!(l.status().height, 3);
    assert!(!l.status().ready);
    assert_eq!(
        l.submit_body(valid[20].as_bytes())
            .unwrap_err()
            .code()
            .as_str(),
        "OVERLOADED"
    );
}
