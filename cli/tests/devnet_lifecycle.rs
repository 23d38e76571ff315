//! `step devnet`'s life cycle as a process: its validators die with it even
//! when it is SIGKILLed (it cannot stop them itself then; `step node` asked
//! Linux for a parent-death signal at start). The harness is in
//! `tests/devnet/mod.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unused_imports)]
mod devnet;

use devnet::*;
use std::time::Duration;

/// The process has exited: no `/proc/<pid>`, or a zombie waiting for a
/// reaper (state `Z` or `X`).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "<pid> (<comm>) <state> ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s == "Z" || s == "X"),
    }
}

#[test]
fn sigkilled_devnet_takes_its_validators_with_it() {
    let dir = Devnet::data_dir("sigkill");
    let base = free_base(2);
    let mut d = Devnet::start(&dir, 2, base);
    let pids: Vec<u32> = d.validators.iter().map(|v| v.pid).collect();
    assert!(
        pids.iter().all(|p| !exited(*p)),
        "validators running: {pids:?}"
    );
    let mut supervisor = d.proc.take().expect("devnet running");
    assert!(
        signal_pid(supervisor.pid(), "KILL"),
        "kill -KILL step devnet"
    );
    supervisor
        .wait_exit(Duration::from_secs(30))
        .expect("step devnet exits on SIGKILL");
    // The validators get SIGTERM from Linux and shut down as on Ctrl-C.
    wait_until(
        "every validator exits after its devnet was SIGKILLed",
        Duration::from_secs(90),
        || pids.iter().all(|p| exited(*p)),
    );
    for v in &d.validators {
        assert!(!healthy(v.http), "{} still answers", v.http);
    }
}
