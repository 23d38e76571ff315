//! The executed state on disk (`docs/adr/0013-state-on-disk.md`): a restart
//! opens at the head row without replaying history, the state tables are
//! checked on open, the schema version is recorded, a schema-1 store is
//! migrated, a newer one refused, and the state's memory is bounded by its
//! caches whatever the chain's length. Single-process, no network.

use redb::ReadableTable;
use step_consensus::context::{Height, ValueId};
use step_consensus::execution::{BlockOutcome, CacheBytes, ChainState};
use step_consensus::store::{BlockRows, DecidedRecord, StoreError, SCHEMA_VERSION};
use step_consensus::{RedbStore, Store};
use step_engine::pipeline::Batch;
use step_engine::proof::{Nonce, Proof, Timestamp};
use step_engine::{Address, Limits, TriangleId};

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000;

/// Execution's limits without the speed gate and the moratorium, so one
/// account may click many triangles at one time.
fn limits() -> Limits {
    Limits {
        speed_mps_max: None,
        moratorium_ms: None,
        ..Limits::default()
    }
}

/// The `i`-th of a fixed set of level-21 triangles (28 clicks each at most,
/// never subdivided: the state's size does not grow with the clicks).
fn triangle(i: usize) -> TriangleId {
    let mut digits = [0u8; 20];
    let mut n = i / 20;
    for d in digits.iter_mut().rev() {
        *d = (n % 4) as u8;
        n /= 4;
    }
    TriangleId::new((i % 20) as u8, &digits).expect("level-21 triangle")
}

fn proof(account: usize, t: TriangleId, nonce: usize) -> Proof {
    let (lat, lon) = step_engine::mesh::centroid_lat_lon(&t);
    let mut sig = [0u8; 65];
    sig[..8].copy_from_slice(&(nonce as u64).to_le_bytes());
    sig[8] = account as u8;
    Proof {
        account: Address([account as u8 + 1; 20]),
        triangle: t,
        lat,
        lon,
        accuracy_m: 5.0,
        timestamp: Timestamp::from_unix_ms(T0).expect("timestamp"),
        nonce: Nonce::parse(&format!("n{nonce}")).expect("nonce"),
        signature: Ok(sig),
    }
}

/// A chain of `proofs` proofs by `accounts` accounts over `triangles`
/// triangles, `per_block` proofs a block, executed and committed to a new
/// store at `path`. Returns the state as execution left it (in memory).
fn build(
    path: &std::path::Path,
    proofs: usize,
    accounts: usize,
    triangles: usize,
    per_block: usize,
) -> ChainState {
    let mut mem = ChainState::default();
    let mut store = RedbStore::open(path).expect("open");
    let mut on_store = store.load_state(ChainState::default()).expect("load");
    let mut k = 0;
    while k < proofs {
        let n = per_block.min(proofs - k);
        let batch = Batch {
            proofs: (k..k + n)
                .map(|i| proof(i % accounts, triangle(i % triangles), i))
                .collect(),
            pubkeys: vec![[0; 64]; n],
            digest: [0; 32],
        };
        k += n;
        let h = Height(mem.height + 1);
        let id = ValueId([h.0 as u8; 32]);
        let batches = std::slice::from_ref(&batch);
        let out = mem.apply_block(&limits(), h, id, batches).expect("execute");
        // The same block through the store-backed state: the same result.
        let stored = on_store
            .apply_block(&limits(), h, id, batches)
            .expect("execute on the store");
        assert_eq!(
            stored, out,
            "height {}: one execution, memory or store",
            h.0
        );
        commit(&mut store, stored, &batch);
        on_store.committed(h.0);
    }
    assert_eq!(on_store, mem);
    mem
}

fn commit(store: &mut RedbStore, out: BlockOutcome, batch: &Batch) {
    let proofs = batch
        .proofs
        .iter()
        .zip(&out.results)
        .filter_map(|(p, r)| {
            step_consensus::store::StoredProof::of_accepted(out.changes.height, p, r)
        })
        .collect();
    store
        .commit_decided(
            &DecidedRecord {
                height: out.changes.height,
                block: step_consensus::BlockData::new([step_consensus::WireBatch::from_batch(
                    batch,
                )
                .expect("wire")])
                .encode()
                .expect("block encodes"),
                certificate: vec![],
                changes: out.changes,
                root: out.root,
            },
            &BlockRows {
                writes: out.writes,
                proofs,
            },
            T0 + 1,
        )
        .expect("commit");
}

/// Every account's and triangle's row of `a` equals `b`'s.
fn same_rows(a: &ChainState, b: &ChainState, accounts: usize, triangles: usize) {
    for i in 0..accounts {
        let addr = Address([i as u8 + 1; 20]);
        assert_eq!(a.account(&addr).expect("a"), b.account(&addr).expect("b"));
    }
    for i in 0..triangles {
        let t = triangle(i);
        assert_eq!(
            a.triangle_row(&t).expect("a"),
            b.triangle_row(&t).expect("b")
        );
    }
}

#[test]
fn a_restart_opens_at_the_head_without_replay_and_reads_the_same_state() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    let mem = build(&path, 600, 20, 40, 50);
    let store = RedbStore::open(&path).expect("reopen");
    let report = store.open_report();
    assert_eq!(report.schema_found, SCHEMA_VERSION);
    assert_eq!(report.migrated_heights, 0, "no replay");
    assert_eq!(report.head.height, 12);
    // The head row, the last decided row, 20 accounts and 40 triangles.
    assert_eq!(report.rows_read, 2 + 20 + 40);
    let state = store.load_state(ChainState::default()).expect("load");
    assert_eq!(state, mem);
    assert_eq!(state.pending_heights(), 0);
    same_rows(&state, &mem, 20, 40);
    // A used nonce is still used after the restart: replays are refused.
    let p = proof(3, triangle(3), 3);
    assert!(state.nonce_used(&p.account, &p.nonce).expect("read"));
    // Every finalized proof is on disk, with its result and decision time.
    let reader = store.reader();
    let id: [u8; 32] = sha2_of(&p.signature.expect("signature"));
    let (stored, time_ms) = reader.proof(&id).expect("read").expect("stored");
    assert_eq!((stored.height, stored.clicks, time_ms), (1, 1, T0 + 1));
    assert_eq!(
        state
            .triangle_row(&triangle(3))
            .expect("read")
            .last_click_ms,
        Some(T0),
        "lastClickAt: the last accepted proof's own time"
    );
}

fn sha2_of(sig: &[u8; 65]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(sig).into()
}

/// Rewrites one byte of the first row of `table` straight in the redb file,
/// as a disk or a bug would, bypassing the store.
fn flip_a_byte(path: &std::path::Path, table: &str) {
    let db = redb::Database::open(path).expect("raw open");
    let tx = db.begin_write().expect("tx");
    {
        let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(table);
        let mut t = tx.open_table(def).expect("table");
        let (k, mut v) = {
            let (k, v) = t.first().expect("read").expect("a row");
            (k.value().to_vec(), v.value().to_vec())
        };
        v[0] ^= 0x01;
        t.insert(k.as_slice(), v.as_slice()).expect("write");
    }
    tx.commit().expect("commit");
}

#[test]
fn a_flipped_byte_in_a_state_table_refuses_start_with_a_named_error() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    build(&path, 100, 5, 10, 25);
    RedbStore::open(&path).expect("intact store opens");
    flip_a_byte(&path, "accounts");
    let err = RedbStore::open(&path).expect_err("a corrupt account row is refused");
    assert!(
        matches!(err, StoreError::StateChecksum { height: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("restore a backup"), "{err}");
}

/// Writes a schema-1 store (decided rows and the nonce index, no state
/// tables, no schema row) of the blocks `build` would execute.
fn write_schema_1(path: &std::path::Path, proofs: usize, per_block: usize) -> ChainState {
    let decided: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("decided");
    let nonces: redb::TableDefinition<&[u8], u64> = redb::TableDefinition::new("nonces");
    let db = redb::Database::create(path).expect("create");
    let mut mem = ChainState::default();
    let mut k = 0;
    while k < proofs {
        let n = per_block.min(proofs - k);
        let batch = Batch {
            proofs: (k..k + n)
                .map(|i| proof(i % 7, triangle(i % 9), i))
                .collect(),
            pubkeys: vec![[0; 64]; n],
            digest: [0; 32],
        };
        k += n;
        let h = Height(mem.height + 1);
        let out = mem
            .apply_block(&limits(), h, ValueId([1; 32]), &[batch])
            .expect("execute");
        let rec = DecidedRecord {
            height: h.0,
            block: vec![],
            certificate: vec![],
            changes: out.changes,
            root: out.root,
        };
        let tx = db.begin_write().expect("tx");
        {
            let mut t = tx.open_table(nonces).expect("nonces");
            for u in rec.changes.nonces.iter() {
                let mut key = u.account.to_vec();
                key.extend_from_slice(u.nonce.as_bytes());
                t.insert(key.as_slice(), h.0).expect("nonce");
            }
            tx.open_table(decided)
                .expect("decided")
                .insert(h.0, borsh::to_vec(&rec).expect("encode").as_slice())
                .expect("decided row");
        }
        tx.commit().expect("commit");
    }
    mem
}

#[test]
fn a_schema_1_store_is_migrated_once_to_the_same_state() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    let mem = write_schema_1(&path, 300, 40);
    let store = RedbStore::open(&path).expect("a schema-1 store opens");
    let report = store.open_report();
    assert_eq!((report.schema_found, report.migrated_heights), (1, 8));
    let state = store.load_state(ChainState::default()).expect("load");
    assert_eq!(state, mem);
    for i in 0..7 {
        let addr = Address([i as u8 + 1; 20]);
        assert_eq!(
            state.account(&addr).expect("s"),
            mem.account(&addr).expect("m")
        );
    }
    for i in 0..9 {
        let (s, m) = (
            state.triangle(&triangle(i)).expect("s"),
            mem.triangle(&triangle(i)).expect("m"),
        );
        assert_eq!(
            s, m,
            "schema 1 kept no click times, the clicks are the same"
        );
    }
    drop((state, store));
    let again = RedbStore::open(&path).expect("reopen");
    assert_eq!(
        (
            again.open_report().schema_found,
            again.open_report().migrated_heights
        ),
        (SCHEMA_VERSION, 0),
        "migrated once"
    );
}

#[test]
fn a_schema_1_store_whose_roots_do_not_chain_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    write_schema_1(&path, 100, 40);
    {
        let decided: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("decided");
        let db = redb::Database::open(&path).expect("raw open");
        let tx = db.begin_write().expect("tx");
        {
            let mut t = tx.open_table(decided).expect("decided");
            let bytes = t.get(2).expect("read").expect("row").value().to_vec();
            let mut rec: DecidedRecord = borsh::from_slice(&bytes).expect("decode");
            rec.changes.balances[0].balance_micro += 1;
            t.insert(2, borsh::to_vec(&rec).expect("encode").as_slice())
                .expect("write");
        }
        tx.commit().expect("commit");
    }
    let err = RedbStore::open(&path).expect_err("a change set that is not its root");
    assert!(
        matches!(err, StoreError::RootMismatch { height: 2, .. }),
        "{err}"
    );
}

#[test]
fn a_store_of_a_newer_schema_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    build(&path, 10, 2, 2, 5);
    {
        let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        let db = redb::Database::open(&path).expect("raw open");
        let tx = db.begin_write().expect("tx");
        tx.open_table(meta)
            .expect("meta")
            .insert("schema", (SCHEMA_VERSION + 1).to_le_bytes().as_slice())
            .expect("write");
        tx.commit().expect("commit");
    }
    let err = RedbStore::open(&path).expect_err("newer schema");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("Run a step release that supports schema"),
        "{msg}"
    );
}

/// The small version of the long-chain test: a chain 10× longer, over the
/// same accounts and triangles, opens reading exactly the same rows (the
/// state's, not the chain's), replays nothing, and its caches stay within
/// their byte bound after every row was read. (The 100,000 vs 1,000,000
/// comparison, with time and RSS, is `docs/PERFORMANCE.md`'s benchmark.)
#[test]
fn opening_a_10x_longer_chain_reads_the_same_rows_within_the_cache_bound() {
    let dir = tempfile::tempdir().expect("dir");
    let mut reports = Vec::new();
    for proofs in [2_000, 20_000] {
        let path = dir.path().join(format!("store-{proofs}.redb"));
        build(&path, proofs, 100, 800, 500);
        let bound = CacheBytes::split(32 << 10);
        let store = RedbStore::open_with_cache(&path, 1 << 20, bound).expect("reopen");
        let state = store.load_state(ChainState::default()).expect("load");
        for i in 0..100 {
            state.account(&Address([i as u8 + 1; 20])).expect("read");
        }
        for i in 0..800 {
            state.triangle(&triangle(i)).expect("read");
        }
        assert!(
            state.cached_bytes() <= bound.total(),
            "{} cached bytes > bound {}",
            state.cached_bytes(),
            bound.total()
        );
        reports.push((store.open_report(), state.accepted_total));
    }
    let (short, long) = (reports[0], reports[1]);
    assert_eq!((short.1, long.1), (2_000, 20_000));
    assert_eq!((short.0.head.height, long.0.head.height), (4, 40));
    assert_eq!(short.0.migrated_heights + long.0.migrated_heights, 0);
    assert_eq!(short.0.rows_read, 2 + 100 + 800);
    assert_eq!(long.0.rows_read, short.0.rows_read, "rows read at open");
}

/// [`build`], through a store that keeps only `retain` heights below its head.
fn build_retaining(
    path: &std::path::Path,
    proofs: usize,
    per_block: usize,
    retain: u64,
) -> ChainState {
    let mut store = RedbStore::open(path).expect("open").retaining(retain);
    let mut state = store.load_state(ChainState::default()).expect("load");
    let mut k = 0;
    while k < proofs {
        let n = per_block.min(proofs - k);
        let batch = Batch {
            proofs: (k..k + n)
                .map(|i| proof(i % 5, triangle(i % 20), i))
                .collect(),
            pubkeys: vec![[0; 64]; n],
            digest: [0; 32],
        };
        k += n;
        let h = Height(state.height + 1);
        let out = state
            .apply_block(
                &limits(),
                h,
                ValueId([h.0 as u8; 32]),
                std::slice::from_ref(&batch),
            )
            .expect("execute");
        commit(&mut store, out, &batch);
        state.committed(h.0);
    }
    state
}

#[test]
fn a_snapshot_restores_the_state_at_the_head_and_no_history() {
    use step_consensus::store::{restore, SnapshotError};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    let mem = build(&path, 300, 10, 20, 25);
    let snap = dir.path().join("state.snapshot");
    {
        let store = RedbStore::open(&path).expect("open");
        let err = store.snapshot(Some(5), &snap).expect_err("not the head");
        assert!(
            matches!(
                err,
                SnapshotError::Height {
                    asked: 5,
                    head: 12,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!snap.exists(), "nothing written");
        let info = store.snapshot(Some(12), &snap).expect("snapshot");
        assert_eq!((info.height, info.root), (12, mem.root));
        assert_eq!((info.accounts, info.triangles, info.nonces), (10, 20, 300));
        let again = store.snapshot(None, &snap).expect_err("never overwrites");
        assert!(matches!(again, SnapshotError::Exists { .. }), "{again}");
    }
    let restored = dir.path().join("restored.redb");
    let info = restore(&snap, &restored).expect("restore");
    assert_eq!(
        (info.height, info.root, info.accepted_total),
        (12, mem.root, 300)
    );
    let over = restore(&snap, &restored).expect_err("never over a store");
    assert!(matches!(over, SnapshotError::Exists { .. }), "{over}");
    let mut store = RedbStore::open(&restored).expect("open the restored store");
    let mut state = store.load_state(ChainState::default()).expect("load");
    assert_eq!(state, mem);
    same_rows(&state, &mem, 10, 20);
    let p = proof(3, triangle(3), 3);
    assert!(state.nonce_used(&p.account, &p.nonce).expect("read"));
    // No block or per-proof result before the snapshot's next height.
    assert_eq!(store.decided_range().expect("range"), None);
    let reader = store.reader();
    assert_eq!(reader.history_from().expect("read"), 13);
    let id = sha2_of(&p.signature.expect("signature"));
    assert_eq!(reader.proof(&id).expect("read"), None);
    // The chain goes on from it: height 13 executes and commits.
    let batch = Batch {
        proofs: vec![proof(0, triangle(0), 10_000)],
        pubkeys: vec![[0; 64]],
        digest: [0; 32],
    };
    let out = state
        .apply_block(
            &limits(),
            Height(13),
            ValueId([13; 32]),
            std::slice::from_ref(&batch),
        )
        .expect("execute");
    assert!(out.results[0].is_ok());
    commit(&mut store, out, &batch);
    assert_eq!(store.decided_range().expect("range"), Some((13, 13)));
}

#[test]
fn a_corrupt_snapshot_is_refused_and_leaves_no_store() {
    use step_consensus::store::{restore, SnapshotError};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    build(&path, 100, 5, 10, 25);
    let snap = dir.path().join("state.snapshot");
    RedbStore::open(&path)
        .expect("open")
        .snapshot(None, &snap)
        .expect("snapshot");
    flip_a_byte(&snap, "accounts");
    let restored = dir.path().join("restored.redb");
    let err = restore(&snap, &restored).expect_err("corrupt");
    assert!(
        matches!(err, SnapshotError::Store(StoreError::StateChecksum { .. })),
        "{err}"
    );
    assert!(!restored.exists());
    assert!(!dir.path().join("restored.redb.partial").exists());
}

#[test]
fn pruning_keeps_the_state_and_the_last_heights_only() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    // 12 heights of 25 proofs, 3 kept below the head.
    let state = build_retaining(&path, 300, 25, 3);
    let mut mem = ChainState::default();
    for h in 1..=12u64 {
        let k = (h as usize - 1) * 25;
        let batch = Batch {
            proofs: (k..k + 25)
                .map(|i| proof(i % 5, triangle(i % 20), i))
                .collect(),
            pubkeys: vec![[0; 64]; 25],
            digest: [0; 32],
        };
        mem.apply_block(&limits(), Height(h), ValueId([h as u8; 32]), &[batch])
            .expect("execute");
    }
    assert_eq!(state, mem);
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(store.decided_range().expect("range"), Some((10, 12)));
    let reader = store.reader();
    assert_eq!(reader.history_from().expect("read"), 10);
    // A proof of height 1 is gone; one of height 12 is there.
    let old = sha2_of(&proof(0, triangle(0), 0).signature.expect("sig"));
    assert_eq!(reader.proof(&old).expect("read"), None);
    let new = sha2_of(
        &proof(299 % 5, triangle(299 % 20), 299)
            .signature
            .expect("sig"),
    );
    assert_eq!(
        reader.proof(&new).expect("read").expect("kept").0.height,
        12
    );
    // The state is whole: every used nonce still refuses a replay.
    let loaded = store.load_state(ChainState::default()).expect("load");
    assert_eq!(loaded, mem);
    let p = proof(0, triangle(0), 0);
    assert!(loaded.nonce_used(&p.account, &p.nonce).expect("read"));
}
