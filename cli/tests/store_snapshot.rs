//! Backup and restore with real processes (issue 13, item 4;
//! `docs/VALIDATOR_GUIDE.md`, "Backup and restore"): a 4-validator devnet
//! finalizes proofs; one validator is stopped, `step store snapshot` backs up
//! its state and it rejoins; another is killed and wiped, `step store restore`
//! gives it the snapshot, and it syncs the later heights from its peers to
//! the same state root and balances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unused_imports)]
mod devnet;

use devnet::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Submits `line` and returns its proof id once final.
fn submit_final(node: std::net::SocketAddr, line: &str) -> String {
    let r = post_json(node, "/proof/submit", line.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "final", "{v}");
    v["proofId"].as_str().expect("proofId").to_owned()
}

fn kill(net: &Devnet, i: usize) {
    let pid = net.validators[i].pid;
    assert!(signal_pid(pid, "KILL"), "kill -KILL {pid}");
    let a = net.http()[i];
    wait_until(
        "the killed validator stops answering",
        Duration::from_secs(20),
        || !healthy(a),
    );
}

/// `step store ARGS`: its stdout line's `key=value` fields.
fn store_cmd(args: &[&str], home: &Path, file: &Path) -> std::collections::HashMap<String, String> {
    let out = Command::new(STEP)
        .arg("store")
        .args(args)
        .arg("--home")
        .arg(home)
        .arg(if args[0] == "snapshot" {
            "--out"
        } else {
            "--snapshot"
        })
        .arg(file)
        .output()
        .expect("run step store");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "step store {args:?}: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn a_wiped_validator_restored_from_a_snapshot_catches_up_to_the_same_state_root() {
    let dir = Devnet::data_dir("snapshot");
    let base = free_base(4);
    let mut net = Devnet::start(&dir, 4, base);
    let nodes = net.http();
    let proofs = fresh_proofs("e2e-snapshot", 12, 4, &dir);
    let early: Vec<String> = proofs[..4]
        .iter()
        .map(|p| submit_final(nodes[0], p))
        .collect();

    // Back up validator 1: stop it, snapshot its store, start it again.
    let home1 = dir.join("net").join("node-1");
    kill(&net, 1);
    let snap = dir.join("node-1.snapshot");
    let taken = store_cmd(&["snapshot"], &home1, &snap);
    let height: u64 = taken["height"].parse().unwrap();
    assert!(height >= 1, "{taken:?}");
    // A snapshot never overwrites a file.
    let again = Command::new(STEP)
        .args(["store", "snapshot", "--home"])
        .arg(&home1)
        .arg("--out")
        .arg(&snap)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    net.restart(1);
    wait_until("validator 1 is back", CONSENSUS_WAIT, || healthy(nodes[1]));

    // Wipe validator 3 (store and WAL), restore the snapshot into its home.
    kill(&net, 3);
    let home3 = dir.join("net").join("node-3");
    std::fs::remove_file(home3.join("store.redb")).unwrap();
    std::fs::remove_dir_all(home3.join("wal")).unwrap();
    let restored = store_cmd(&["restore"], &home3, &snap);
    assert_eq!(restored["height"], taken["height"]);
    assert_eq!(restored["state_root"], taken["state_root"]);
    // A restore never replaces a store.
    let over = Command::new(STEP)
        .args(["store", "restore", "--home"])
        .arg(&home3)
        .arg("--snapshot")
        .arg(&snap)
        .output()
        .unwrap();
    assert!(!over.status.success());

    // The chain moves on while validator 3 is down.
    for p in &proofs[4..8] {
        let _id = submit_final(nodes[0], p);
    }
    let ahead = status(nodes[0]).unwrap().height;
    assert!(ahead > height);
    net.restart(3);
    wait_until("validator 3 is back", CONSENSUS_WAIT, || healthy(nodes[3]));
    let opened = status(nodes[3]).unwrap().height;
    assert!(
        opened >= height,
        "opened at {opened}, below the snapshot's {height}"
    );
    // It opened at the snapshot's height (no replay) and syncs the rest.
    for p in &proofs[8..] {
        let _id = submit_final(nodes[1], p);
    }
    let now = status(nodes[0]).unwrap().height;
    let (h, root) = converge(&nodes, now, CONSENSUS_WAIT);
    eprintln!("snapshot at height {height}; all 4 at height {h}, state_root {root}");
    for p in &proofs {
        let a = account_of(p);
        assert_eq!(balance(nodes[3], &a), balance(nodes[0], &a), "{a}");
    }
    // A proof finalized before the snapshot: the restored validator does
    // not hold it, and says so by name; validator 0 still does.
    let path = format!("/proof/{}", early[0]);
    get(nodes[3], &path).assert_error(
        404,
        "PROOF_PRUNED_OR_UNKNOWN",
        "a proof before the snapshot",
    );
    assert_eq!(get(nodes[0], &path).status, 200);
}
