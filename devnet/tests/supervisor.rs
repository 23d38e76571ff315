//! The supervisor's stop and start-up rules, on stand-in validators (shell
//! scripts in place of `step node`): SIGTERM, SIGKILL after the grace
//! period, SIGKILL at once when told to hurry, and an early exit reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use step_devnet::{Devnet, DevnetError, Options, Stopped};

/// A fresh directory with an executable stand-in for `step` running `script`.
fn setup(test: &str, script: &str) -> (PathBuf, Options) {
    let dir = std::env::temp_dir().join(format!("step-devnet-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("fake-step");
    std::fs::write(&exe, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Options {
        exe,
        validators: 2,
        // Never listened on: the stand-ins serve no HTTP.
        base_port: 29_400,
        data_dir: dir.join("data"),
        sets: Vec::new(),
        initial_state: None,
    };
    (dir, o)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts two stand-ins running `script`, lets them settle (a shell's trap
/// is in place), then stops them with `grace`, hurried after `hurry_after`
/// if given: what the stop reported and how long it took.
fn start_and_stop(
    test: &str,
    script: &str,
    grace: Duration,
    hurry_after: Option<Duration>,
) -> (Stopped, Duration) {
    let (dir, o) = setup(test, script);
    let out = runtime().block_on(async {
        let mut d = Devnet::start(&o).await.unwrap();
        assert!(d.validators().iter().all(|v| v.pid > 0));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        let hurry = async {
            match hurry_after {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        let s = d.stop(grace, hurry).await;
        (s, t.elapsed())
    });
    let _ = std::fs::remove_dir_all(dir);
    out
}

#[test]
fn stop_terms_and_the_validators_exit() {
    let (s, took) = start_and_stop("term", "exec sleep 60", Duration::from_secs(30), None);
    assert!(s.clean(), "{s:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// A validator that ignores SIGTERM is killed: after the grace period, or
/// at once on a second Ctrl-C (200 ms into a 60 s grace period).
#[test]
fn a_validator_ignoring_sigterm_is_killed_after_the_grace_or_when_hurried() {
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    for (name, grace, hurry, took_min, took_max) in [
        ("grace", ms(500), None, ms(500), secs(10)),
        ("hurry", secs(60), Some(ms(200)), Duration::ZERO, secs(5)),
    ] {
        let (stopped, took) = start_and_stop(name, "trap '' TERM\nexec sleep 60", grace, hurry);
        assert_eq!(stopped.killed, vec![0, 1], "{name}");
        assert!(took >= took_min, "{name}: {took:?}");
        assert!(took < took_max, "{name}: {took:?}");
    }
}

#[test]
fn an_exit_during_start_up_is_reported_with_the_log() {
    let (dir, o) = setup("early-exit", "echo 'cannot open the store' >&2\nexit 3");
    runtime().block_on(async {
        let mut d = Devnet::start(&o).await.unwrap();
        match d.wait_ready(Duration::from_secs(30)).await {
            Err(DevnetError::ExitedDuringStartup { status, tail, .. }) => {
                assert_eq!(status.code(), Some(3));
                assert!(tail.contains("cannot open the store"), "{tail}");
            }
            other => panic!("expected ExitedDuringStartup, got {other:?}"),
        }
        d.stop(Duration::from_secs(5), std::future::pending()).await;
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn validators_are_told_who_their_supervisor_is() {
    let (dir, o) = setup(
        "env",
        "echo \"supervisor=$STEP_SUPERVISOR_PID\"\nexec sleep 60",
    );
    runtime().block_on(async {
        let mut d = Devnet::start(&o).await.unwrap();
        let log = d.validators()[0].log.clone();
        let want = format!("supervisor={}", std::process::id());
        let t = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&want)
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{want} not in the log"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d.stop(Duration::from_secs(5), std::future::pending()).await;
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_options_are_named() {
    let (dir, mut o) = setup("options", "exit 0");
    o.validators = 51;
    let e = runtime().block_on(Devnet::start(&o)).unwrap_err();
    assert!(
        matches!(e, DevnetError::ValidatorCount { given: 51, max: 50 }),
        "{e}"
    );
    o.validators = 2;
    o.base_port = 65_500;
    let e = runtime().block_on(Devnet::start(&o)).unwrap_err();
    assert!(matches!(e, DevnetError::BasePortTooHigh { .. }), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
