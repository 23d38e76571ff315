//! Deterministic execution, the store, proposal streaming and the wire
//! form of batches: pure or single-process tests, no network.

mod support;

use step_consensus::block::{BlockData, WireBatch};
use step_consensus::context::{Height, ValueId};
use step_consensus::execution::{
    BlockOutcome, ChainState, ChangeSet, ExecCode, NonceUse, NonceUses, Rejection, CLICKS_MAX,
    STATE_DOMAIN, SUBDIVIDE_AT_CLICK,
};
use step_consensus::store::{BlockRows, DecidedRecord, UndecidedRecord};
use step_consensus::{RedbStore, Store};
use step_engine::pipeline::{reverify_batch, Batch};
use step_engine::proof::Proof;
use step_engine::reward::reward_micro;
use step_engine::signing::unsigned_proof;
use step_engine::{Address, Limits, TriangleId, Verifier};
use support::proofs;

/// An unsigned proof at `t`'s centroid, 5 m accuracy.
fn proof(account: u8, t: TriangleId, ms: i64, nonce: &str) -> Proof {
    let centroid = step_engine::mesh::centroid_lat_lon(&t);
    unsigned_proof(Address([account; 20]), &t, centroid, 5.0, ms, nonce)
}

fn batch(proofs: Vec<Proof>) -> Batch {
    let n = proofs.len();
    Batch {
        proofs,
        pubkeys: vec![[0; 64]; n],
        digest: [n as u8; 32],
    }
}

fn apply(state: &mut ChainState, batches: &[Batch]) -> ChangeSet {
    let h = Height(state.height + 1);
    state
        .apply_block(&Limits::default(), h, ValueId([h.0 as u8; 32]), batches)
        .expect("execute")
        .changes
}

/// Commits an executed block to `store` as its height.
fn commit(store: &mut RedbStore, out: BlockOutcome, block: Vec<u8>) {
    store
        .commit_decided(
            &DecidedRecord {
                height: out.changes.height,
                block,
                certificate: vec![],
                changes: out.changes,
                root: out.root,
            },
            &BlockRows {
                writes: out.writes,
                proofs: vec![],
            },
            0,
        )
        .expect("commit");
}

fn balance(s: &ChainState, a: &Address) -> u64 {
    s.account(a)
        .expect("read")
        .map_or(0, |acc| acc.balance_micro)
}

fn rejection(batch: u32, proof: u32, code: ExecCode) -> Rejection {
    Rejection { batch, proof, code }
}

fn tri(s: &str) -> TriangleId {
    TriangleId::new(
        s.as_bytes()[0] - b'a',
        &s.as_bytes()[1..]
            .iter()
            .map(|d| d - b'0')
            .collect::<Vec<_>>(),
    )
    .expect("triangle")
}

#[test]
fn eleventh_click_subdivides_and_later_proofs_are_rejected() {
    let parent = tri("c");
    let mut s = ChainState::default();
    let clicks: Vec<Proof> = (0..SUBDIVIDE_AT_CLICK)
        .map(|k| proof(k + 1, parent, proofs::T0, &format!("n{k}")))
        .collect();
    let c = apply(&mut s, &[batch(clicks)]);
    assert_eq!(c.accepted, u64::from(SUBDIVIDE_AT_CLICK));
    let st = s.triangle(&parent).expect("read");
    assert_eq!((st.clicks, st.subdivided), (SUBDIVIDE_AT_CLICK, true));
    for k in 0..4 {
        let child = parent.child(k).expect("child");
        assert_eq!(
            s.triangle(&child).expect("read").clicks,
            0,
            "child {k} active with 0 clicks"
        );
        assert!(!s.triangle(&child).expect("read").subdivided);
    }
    // The 12th proof on the parent is rejected; one on a child earns level 2.
    let child = parent.child(2).expect("child");
    let c = apply(
        &mut s,
        &[batch(vec![
            proof(100, parent, proofs::T0, "late"),
            proof(101, child, proofs::T0, "child"),
        ])],
    );
    assert_eq!(
        c.rejected,
        vec![rejection(0, 0, ExecCode::TriangleSubdivided)]
    );
    assert!(s.account(&Address([100; 20])).expect("read").is_none());
    assert_eq!(balance(&s, &Address([101; 20])), reward_micro(2));
    assert_eq!(balance(&s, &Address([1; 20])), reward_micro(1));
}

#[test]
fn level_21_triangle_is_capped_at_28_clicks() {
    let digits = [1u8; 20];
    let t = TriangleId::new(5, &digits).expect("level 21");
    assert_eq!(t.level(), 21);
    let mut s = ChainState::default();
    let ps: Vec<Proof> = (0..=CLICKS_MAX)
        .map(|k| proof(k + 1, t, proofs::T0, &format!("x{k}")))
        .collect();
    let c = apply(&mut s, &[batch(ps)]);
    assert_eq!(c.accepted, u64::from(CLICKS_MAX));
    assert_eq!(
        c.rejected,
        vec![rejection(
            0,
            u32::from(CLICKS_MAX),
            ExecCode::TriangleExhausted
        )]
    );
    assert!(!s.triangle(&t).expect("read").subdivided);
    assert!(s.triangle(&t).expect("read").is_exhausted());
    assert_eq!(balance(&s, &Address([1; 20])), reward_micro(21));
}

#[test]
fn stateful_checks_run_in_block_order() {
    let t = tri("a1");
    let mut s = ChainState::default();
    let c = apply(
        &mut s,
        &[
            batch(vec![proof(1, t, proofs::T0, "a")]),
            batch(vec![
                proof(1, t, proofs::T0 + 20_000, "a"), // same nonce
                proof(1, t, proofs::T0 + 5_000, "b"),  // inside the moratorium
                proof(1, t, proofs::T0 + 11_000, "c"), // fine
            ]),
        ],
    );
    assert_eq!(c.accepted, 2);
    assert_eq!(
        c.rejected,
        vec![
            rejection(1, 0, ExecCode::NonceReplay),
            rejection(1, 1, ExecCode::Moratorium)
        ]
    );
    assert_eq!(balance(&s, &Address([1; 20])), 2 * reward_micro(2));
}

#[test]
fn same_blocks_same_roots_and_order_matters() {
    let t = tri("b");
    let b1 = batch(vec![
        proof(1, t, proofs::T0, "p"),
        proof(2, t, proofs::T0, "q"),
    ]);
    let b2 = batch(vec![proof(1, t, proofs::T0 + 1_000, "r")]);
    let mut x = ChainState::default();
    let mut y = ChainState::default();
    for blocks in [vec![b1.clone()], vec![b2.clone()]] {
        apply(&mut x, &blocks);
        apply(&mut y, &blocks);
        assert_eq!(x.root, y.root);
    }
    assert_eq!(x, y);
    let mut z = ChainState::default();
    apply(&mut z, &[b2]);
    apply(&mut z, &[b1]);
    assert_ne!(x.root, z.root, "a different order is a different state");
    assert_ne!(x.root, [0; 32]);
}

#[test]
fn store_survives_reopen_and_rebuilds_the_state() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    let t = tri("d");
    let mut s = ChainState::default();
    {
        let mut store = RedbStore::open(&path).expect("open");
        for h in 1..=3u8 {
            let ps = (0..4)
                .map(|k| proof(k + 10 * h, t, proofs::T0, &format!("h{h}k{k}")))
                .collect();
            let out = s
                .apply_block(
                    &Limits::default(),
                    Height(u64::from(h)),
                    ValueId([h; 32]),
                    &[batch(ps)],
                )
                .expect("execute");
            commit(&mut store, out, vec![h]);
        }
        store.put_evidence(2, b"pairs").expect("evidence");
        for (h, r) in [(4, 0), (4, 1), (5, 0)] {
            store
                .put_undecided(&UndecidedRecord {
                    height: h,
                    round: r,
                    value_id: [r as u8; 32],
                    proposed: vec![],
                    block: vec![],
                })
                .expect("undecided");
        }
    }
    let mut store = RedbStore::open(&path).expect("reopen");
    assert_eq!(store.load_state(ChainState::default()).expect("load"), s);
    assert_eq!(store.decided_range().expect("range"), Some((1, 3)));
    assert_eq!(
        store.decided(2).expect("read").map(|r| r.block),
        Some(vec![2])
    );
    assert_eq!(store.evidence(2).expect("read"), Some(b"pairs".to_vec()));
    assert_eq!(store.undecided(4).expect("read").len(), 2);
    store.prune_undecided(4).expect("prune");
    assert!(store.undecided(4).expect("read").is_empty());
    assert_eq!(store.undecided(5).expect("read").len(), 1);
}

#[test]
fn wire_batches_round_trip_and_tampering_is_caught() {
    let wire = proofs::batches(&proofs::bodies("wire", 30), 10);
    let verifier = Verifier::default();
    for w in &wire {
        let bytes = borsh::to_vec(w).expect("encode");
        let back: WireBatch = borsh::from_slice(&bytes).expect("decode");
        assert_eq!(&back, w);
        reverify_batch(&verifier, &back.to_batch().expect("batch")).expect("re-verifies");
    }
    let mut bad = wire[0].clone();
    bad.proofs[3].lat_bits = (f64::from_bits(bad.proofs[3].lat_bits) + 1e-6).to_bits();
    let err = reverify_batch(&verifier, &bad.to_batch().expect("batch")).expect_err("tampered");
    assert_eq!(err.index(), Some(3));
    let mut bad = wire[1].clone();
    bad.digest[0] ^= 1;
    assert!(reverify_batch(&verifier, &bad.to_batch().expect("batch")).is_err());
}

#[test]
fn proposals_reassemble_from_parts_in_any_order() {
    use step_consensus::streaming::{split, Reassembler};
    use step_consensus::Round;
    let block = BlockData::new(proofs::batches(&proofs::bodies("parts", 50), 5));
    let proposer = step_consensus::ValidatorAddress([7; 20]);
    let mut msgs = split(Height(3), Round::new(1), Round::Nil, proposer, &block, 3);
    assert_eq!(
        msgs.len(),
        1 + 4 + 1 + 1,
        "init, 4 parts of ≤3 batches, fin, stream fin"
    );
    let peer = malachitebft_peer_id();
    let mut r = Reassembler::default();
    msgs.reverse();
    let last = msgs.pop().expect("init");
    for m in msgs {
        assert!(r.insert(peer, m).is_none(), "incomplete without Init");
    }
    let a = r.insert(peer, last).expect("complete");
    assert_eq!(a.block, block);
    assert_eq!(
        (a.height, a.round, a.proposer),
        (Height(3), Round::new(1), proposer)
    );
    // A stream missing a part never completes.
    let mut msgs = split(Height(4), Round::new(0), Round::Nil, proposer, &block, 3);
    msgs.remove(2);
    let mut r = Reassembler::default();
    assert!(msgs.into_iter().all(|m| r.insert(peer, m).is_none()));
}

fn malachitebft_peer_id() -> step_consensus::streaming::PeerId {
    let mut bytes = vec![0x00, 0x20]; // identity multihash, 32 bytes
    bytes.extend_from_slice(&[9; 32]);
    step_consensus::streaming::PeerId::from_bytes(&bytes).expect("peer id")
}

#[test]
fn per_proof_results_follow_block_order_with_the_state_after_each_proof() {
    let t = tri("c0");
    let mut s = ChainState::default();
    let a = proof(1, t, proofs::T0, "a");
    let b = proof(2, t, proofs::T0, "b");
    let replay = proof(1, t, proofs::T0 + 60_000, "a");
    let a2 = proof(1, t, proofs::T0 + 120_000, "a2");
    let out = s
        .apply_block(
            &Limits::default(),
            Height(1),
            ValueId([1; 32]),
            &[batch(vec![a, b]), batch(vec![replay, a2])],
        )
        .expect("execute");
    assert_eq!(out.results.len(), 4, "one result per proof");
    let reward = reward_micro(t.level());
    let ok = |i: usize| out.results[i].expect("accepted");
    assert_eq!((ok(0).balance_micro, ok(0).clicks), (reward, 1));
    assert_eq!((ok(1).balance_micro, ok(1).clicks), (reward, 2));
    assert_eq!(out.results[2], Err(ExecCode::NonceReplay));
    assert_eq!((ok(3).balance_micro, ok(3).clicks), (2 * reward, 3));
    assert_eq!(ok(3).reward_micro, reward);
    // The results agree with the state and the change set.
    assert_eq!(balance(&s, &Address([1; 20])), 2 * reward);
    assert_eq!(
        s.account(&Address([1; 20]))
            .expect("read")
            .expect("account")
            .proofs,
        2
    );
    assert_eq!(out.changes.accepted, 3);
    assert_eq!(
        out.changes.rejected,
        vec![rejection(1, 0, ExecCode::NonceReplay)]
    );
    // A restart reads the per-account counts from the store's rows.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    {
        let mut store = RedbStore::open(&path).expect("open");
        commit(&mut store, out, vec![]);
    }
    let store = RedbStore::open(&path).expect("reopen");
    let r = store.load_state(ChainState::default()).expect("load");
    assert_eq!(r, s);
    assert_eq!(
        r.account(&Address([1; 20])).expect("read"),
        s.account(&Address([1; 20])).expect("read")
    );
}

#[test]
fn the_store_keeps_a_unique_account_nonce_index() {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = RedbStore::open(&dir.path().join("store.redb")).expect("open");
    let record = |height: u64, nonce: &str| DecidedRecord {
        height,
        block: vec![],
        certificate: vec![],
        changes: ChangeSet {
            height,
            nonces: NonceUses(vec![NonceUse {
                account: [7; 20],
                nonce: nonce.to_owned(),
            }]),
            accepted: 1,
            ..ChangeSet::default()
        },
        root: [height as u8; 32],
    };
    store
        .commit_decided(&record(1, "n-1"), &BlockRows::default(), 0)
        .expect("first use");
    // Re-committing the same height (a replayed decision) is idempotent.
    store
        .commit_decided(&record(1, "n-1"), &BlockRows::default(), 0)
        .expect("same height again");
    assert_eq!(store.nonce_height(&[7; 20], "n-1").expect("read"), Some(1));
    assert_eq!(store.nonce_height(&[8; 20], "n-1").expect("read"), None);
    let err = store
        .commit_decided(&record(2, "n-1"), &BlockRows::default(), 0)
        .expect_err("a second height may not reuse the nonce");
    assert!(
        matches!(
            err,
            step_consensus::store::StoreError::NonceReused {
                first: 1,
                height: 2,
                ..
            }
        ),
        "{err}"
    );
    // Nothing of the refused height was written.
    assert_eq!(store.decided(2).expect("read"), None);
    assert_eq!(store.nonce_height(&[7; 20], "n-1").expect("read"), Some(1));
}

/// The root hashes borsh's bytes of the change set (written into the hasher,
/// never through a buffer that could silently be empty).
#[test]
fn change_set_root_is_borsh_of_the_change_set() {
    use sha2::{Digest, Sha256};
    let t = tri("e12");
    let mut s = ChainState::default();
    let ps: Vec<Proof> = (0..=SUBDIVIDE_AT_CLICK)
        .map(|k| proof(k + 1, t, proofs::T0, &format!("r{k}")))
        .collect();
    let previous = s.root;
    let out = s
        .apply_block(
            &Limits::default(),
            Height(1),
            ValueId([1; 32]),
            &[batch(ps)],
        )
        .expect("execute");
    assert_eq!(out.changes.rejected.len(), 1, "the 12th click is rejected");
    assert!(!out.changes.last.is_empty() && !out.changes.triangles.is_empty());
    let mut h = Sha256::new();
    h.update(STATE_DOMAIN);
    h.update(previous);
    h.update(borsh::to_vec(&out.changes).expect("borsh"));
    let expected: [u8; 32] = h.finalize().into();
    assert_eq!(out.root, expected);
    assert_eq!(out.changes.root(&previous), expected);
    let back: ChangeSet =
        borsh::from_slice(&borsh::to_vec(&out.changes).expect("borsh")).expect("decode");
    assert_eq!(back, out.changes);
}

/// Rejections are recorded by number: the numbers are pinned here (changing
/// one forks the chain), the text is not part of the change set.
#[test]
fn rejection_codes_are_stable_numbers() {
    let pinned = [
        (ExecCode::NonceReplay, 1, "NONCE_REPLAY"),
        (ExecCode::TooFast, 2, "TOO_FAST"),
        (ExecCode::Moratorium, 3, "MORATORIUM"),
        (ExecCode::TriangleSubdivided, 4, "TRIANGLE_SUBDIVIDED"),
        (ExecCode::TriangleExhausted, 5, "TRIANGLE_EXHAUSTED"),
        (ExecCode::StatefulOther, 15, "INTERNAL_ERROR"),
    ];
    assert_eq!(pinned.len(), ExecCode::ALL.len());
    for (code, n, text) in pinned {
        assert_eq!(code.number(), n);
        assert_eq!(ExecCode::from_number(n), Some(code));
        assert_eq!(code.as_str(), text);
        assert_eq!(borsh::to_vec(&code).expect("borsh"), vec![n]);
    }
    assert!(borsh::from_slice::<ExecCode>(&[0]).is_err());
    assert!(borsh::from_slice::<ExecCode>(&[6]).is_err());
    let r = rejection(2, 7, ExecCode::TriangleExhausted);
    assert_eq!(
        borsh::to_vec(&r).expect("borsh"),
        [2u32.to_le_bytes().as_slice(), &7u32.to_le_bytes(), &[5]].concat()
    );
}

/// Each executed height's per-proof results stay in the journal (keyed by
/// signature) until more than its bound are kept; it is not part of the
/// state's equality.
#[test]
fn the_journal_keeps_the_latest_results_by_signature() {
    use step_consensus::execution::ResultJournal;
    let t = tri("f3");
    let mut s = ChainState::with_journal(ResultJournal::with_capacity(3));
    let signed = |account: u8, nonce: &str, sig: u8| {
        let mut p = proof(account, t, proofs::T0, nonce);
        p.signature = Ok([sig; 65]);
        p
    };
    apply(&mut s, &[batch(vec![signed(1, "a", 1), signed(2, "b", 2)])]);
    apply(&mut s, &[batch(vec![signed(1, "a", 3)])]);
    let kept: Vec<_> = s.journal.after(0).collect();
    assert_eq!(kept.len(), 2);
    assert_eq!((kept[0].height, kept[0].entries.len()), (1, 2));
    assert_eq!(kept[0].entries[1].signature, [2; 65]);
    assert_eq!(kept[0].entries[1].result.map(|e| e.clicks), Ok(2));
    assert_eq!(kept[1].entries[0].result, Err(ExecCode::NonceReplay));
    apply(&mut s, &[batch(vec![signed(3, "c", 4), signed(4, "d", 5)])]);
    assert_eq!(s.journal.first_height(), Some(2), "height 1 went first");
    assert_eq!(s.journal.after(2).count(), 1);
    let mut without = s.clone();
    without.journal = ResultJournal::with_capacity(0);
    assert_eq!(without, s, "the journal is not state");
}
