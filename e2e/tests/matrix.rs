//! The short fault matrix: one test per manifest in `e2e/manifests/`, one at
//! a time (the harness holds a machine-wide lock too). Without root, `ip` or
//! `/dev/net/tun` a test says why and passes, except under `CI=true`, where
//! it fails: CI must run the matrix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn scenario(name: &str) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = step_e2e::net::preflight() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and the e2e harness cannot run: {e:#}");
        }
        eprintln!("skipping scenario {name}: {e:#}");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("manifests/{name}.toml"));
    let m = step_e2e::Manifest::load(&path).unwrap();
    let report =
        step_e2e::run(&m).unwrap_or_else(|e| panic!("scenario {name}: harness error: {e:#}"));
    println!("{report}");
    assert!(report.passed(), "{report}");
}

#[test]
fn smoke() {
    scenario("smoke");
}

#[test]
#[ignore = "issue #17, not yet 3 of 3: with the harness at nice -10 and 1 s prevote/precommit timeouts (ADR 0025) \
            the chain resumed 1.9-8.2 s after the heal in 5 of 6 runs at load average 12-25 (14-21 s in the sixth), \
            but the chain then crawled and proofs were final only after the 30 s settle; see docs/RELIABILITY.md"]
fn partition_2_2() {
    scenario("partition-2-2");
}

/// Needs the patched libp2p-gossipsub (docs/adr/0022-gossipsub-patch.md; without it, 59 of the
/// isolated validator's accepted proofs stayed pending with 2/2/2/3 peers) and, with the idle rule,
/// the re-gossip of own batches left undecided (`REGOSSIP_AFTER_HEIGHTS`; without it 54 of 280
/// stayed pending 30 s after the heal). See docs/RELIABILITY.md.
#[test]
fn partition_3_1() {
    scenario("partition-3-1");
}

#[test]
fn partition_3_1_short() {
    scenario("partition-3-1-short");
}

#[test]
fn delay_loss() {
    scenario("delay-loss");
}

#[test]
#[ignore = "flaky (issue #17): the 3 running validators finalized 1 height (needs 2) while the proposer was paused 10 s in the CI run of 2026-12-01 20:59 (load average 3), and 1 of 5 runs failed earlier at load average 12-17; passed 1 of 2 on 2026-12-02 (la 15-17, nice -10; the other resumed 29.7-32.9 s after SIGCONT, 30 s allowed); see docs/RELIABILITY.md"]
fn pause_proposer() {
    scenario("pause-proposer");
}

/// Every 202 is durable (the intake log, docs/adr/0032-intake-log.md); before it, 2 and 4 of ~330
/// proofs answered 202 by a SIGKILLed validator were never finalized.
#[test]
fn kill_each() {
    scenario("kill-each");
}

#[test]
fn clock_skew() {
    scenario("clock-skew");
}

/// Every 202 is durable (the intake log, replayed at restart); before it, a SIGKILL right after 150
/// 202s at 60/s lost 21 and 2 proofs.
#[test]
fn kill_after_accept() {
    scenario("kill-after-accept");
}

/// Needs `step` built with the `byzantine` feature (`--all-features`).
#[test]
fn byzantine_equivocation() {
    scenario("byzantine-equivocation");
}

#[test]
fn byzantine_bad_signatures() {
    scenario("byzantine-bad-signatures");
}

#[test]
fn byzantine_gps_spoof() {
    scenario("byzantine-gps-spoof");
}

/// A raw-TCP peer outside the set sends junk (garbage, an oversized multistream frame, a bad noise
/// frame, nothing) on every validator's P2P port: each connection is dropped, the chain goes on.
#[test]
fn hostile_peer() {
    scenario("hostile-peer");
}

#[test]
#[ignore = "issue #17, not yet passing on the shared machine (load average 15-19): the per-IP limit refuses \
            the flood, but the honest client's bursts (its senders starved) exceed the fixed 1 s window too, and \
            validator 0 answered p99 3 s; see docs/RELIABILITY.md"]
fn http_flood() {
    scenario("http-flood");
}

#[test]
fn alert_no_progress() {
    scenario("alert-no-progress");
}

/// The checks can fail: a healthy 4-validator chain given a `halt` window
/// fails it, and the run leaves no namespace, TUN device or validator behind.
#[test]
fn a_false_expectation_fails_and_everything_is_cleaned_up() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = step_e2e::net::preflight() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true and the e2e harness cannot run: {e:#}"
        );
        eprintln!("skipping: {e:#}");
        return;
    }
    let m = step_e2e::Manifest::parse(
        // Under load: an idle chain paces its blocks (one per
        // `consensus.max_idle_block_interval_ms`), which is not a halt to
        // catch but would pass an 8 s halt window.
        "name = \"false-halt\"\nvalidators = 4\nduration_s = 8\nsettle_s = 10\n\
         [load]\nrate = 10\nstart_s = 0\nstop_s = 8\n\
         [expect]\nhalt = { from_s = 1, to_s = 8 }\n",
    )
    .unwrap();
    let report = step_e2e::run(&m).unwrap();
    println!("{report}");
    assert!(
        !report.passed(),
        "a healthy chain passed a halt check:\n{report}"
    );
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("during the halt window")),
        "{report}"
    );
    let netns = step_e2e::net::sh(&["ip", "netns", "list"]).unwrap();
    assert!(
        !netns.lines().any(|l| l.starts_with(step_e2e::net::PREFIX)),
        "namespaces left: {netns}"
    );
    let links = step_e2e::net::sh(&["ip", "-br", "link"]).unwrap();
    let tag = format!("st{}", std::process::id() % 100_000);
    assert!(
        !links.lines().any(|l| l.starts_with(&tag)),
        "TUN left: {links}"
    );
    let ps = step_e2e::net::sh(&["ps", "-eo", "args"]).unwrap();
    let dir = report.dir.display().to_string();
    assert!(
        !ps.lines().any(|l| l.contains(&dir)),
        "validators left:\n{ps}"
    );
}
