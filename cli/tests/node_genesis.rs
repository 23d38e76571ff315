//! `step node` and the genesis: the consensus-critical parameters (a
//! configuration or environment that sets another moratorium is refused at
//! start, naming the key; one that repeats the genesis value starts), the
//! key files (P2P key, permissions), the genesis registry's P2P ids, and
//! `step validator`'s signed transactions over the genesis' chain.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::process::Command;
use std::time::Duration;
use step_consensus::registry::{TxKind, ValidatorTx};
use step_io::genesis::Genesis;

use step_testkit::cluster::{tail, wait_until, Proc};

const STEP: &str = env!("CARGO_BIN_EXE_step");

/// A one-validator chain in `dir`: key, genesis (with `params`), config
/// (with `limits`). Returns the config path.
fn chain(dir: &Path, params: &str, limits: &str) -> std::path::PathBuf {
    let out = Command::new(STEP)
        .args(["keys", "generate", "--name", "v0", "--out"])
        .arg(dir.join("validator_key.toml"))
        .output()
        .expect("step keys generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entry = String::from_utf8(out.stdout).expect("utf-8");
    let genesis = format!("chain_id = \"step-param-test\"\n\n{entry}\n[params]\n{params}\n");
    std::fs::write(dir.join("genesis.toml"), genesis).expect("genesis");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[node]\nhome = \".\"\np2p_listen = \"/ip4/127.0.0.1/tcp/{port}\"\n[limits]\n{limits}\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).expect("config");
    path
}

/// A fresh directory for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("node-genesis-{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear test dir");
    }
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// Runs `step node` until it exits (at most 60 s: a node that starts
/// instead of refusing fails the test, it does not hang it). Returns
/// whether it succeeded and its output.
fn node(dir: &Path, config: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let log = dir.join("node.log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(STEP);
    cmd.arg("node")
        .arg("--config")
        .arg(config)
        .stdout(file.try_clone().expect("log"))
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn("step node", &mut cmd);
    let status = p.wait_exit(Duration::from_secs(60));
    let text = std::fs::read_to_string(&log).expect("read log");
    let status = status.unwrap_or_else(|| panic!("step node did not refuse to start:\n{text}"));
    (status.success(), text)
}

#[test]
fn a_config_that_sets_another_moratorium_is_refused_at_start() {
    let dir = test_dir("moratorium");
    let config = chain(&dir, "moratorium_ms = 10000", "moratorium_ms = 12000");
    let (ok, stderr) = node(&dir, &config, &[]);
    assert!(!ok, "started: {stderr}");
    for want in [
        "`limits.moratorium_ms` is 12000",
        "STEP_LIMITS_MORATORIUM_MS",
        "the genesis sets 10000",
        "genesis.toml",
    ] {
        assert!(stderr.contains(want), "no {want:?} in: {stderr}");
    }
}

#[test]
fn an_environment_that_switches_the_speed_gate_off_is_refused_at_start() {
    let dir = test_dir("speed-gate");
    let config = chain(&dir, "", "");
    let (ok, stderr) = node(&dir, &config, &[("STEP_LIMITS_SPEED_GATE", "false")]);
    assert!(!ok, "started: {stderr}");
    assert!(
        stderr.contains("`limits.speed_gate` is false"),
        "stderr: {stderr}"
    );
}

/// The control: the genesis' own value in the configuration starts the node,
/// which logs the chain id and the genesis' moratorium.
#[test]
fn a_config_that_repeats_the_genesis_value_starts() {
    let dir = test_dir("repeat");
    let config = chain(&dir, "moratorium_ms = 12000", "moratorium_ms = 12000");
    let log = dir.join("node.log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(STEP);
    cmd.arg("node")
        .arg("--config")
        .arg(&config)
        .stdout(file.try_clone().expect("log"))
        .stderr(file);
    let mut p = Proc::spawn("step node", &mut cmd);
    wait_until("the node starts consensus", Duration::from_secs(60), || {
        assert!(
            p.child.try_wait().expect("try_wait").is_none(),
            "step node exited:\n{}",
            tail(&log, 20)
        );
        tail(&log, 50).contains("starting consensus")
    });
    let text = tail(&log, 50);
    assert!(text.contains("chain_id=step-param-test-"), "{text}");
    assert!(text.contains("moratorium_ms=12000"), "{text}");
}

/// `step keys generate` writes a P2P key beside the consensus key; a home
/// made before that (only `validator_key.toml`) is refused, saying what to do.
#[test]
fn a_home_without_a_p2p_key_is_refused_with_what_to_do() {
    let dir = test_dir("no-p2p-key");
    let config = chain(&dir, "", "");
    assert!(
        dir.join("p2p_key.toml").exists(),
        "keys generate wrote no P2P key"
    );
    std::fs::remove_file(dir.join("p2p_key.toml")).expect("remove the P2P key");
    let (ok, stderr) = node(&dir, &config, &[]);
    assert!(!ok, "started: {stderr}");
    for want in ["no P2P key at", "p2p_key.toml", "step keys p2p --out"] {
        assert!(stderr.contains(want), "no {want:?} in: {stderr}");
    }
}

/// A key file the group or others may read is refused at start, naming the
/// file and the fix.
#[cfg(unix)]
#[test]
fn a_key_file_readable_by_others_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    for file in ["validator_key.toml", "p2p_key.toml"] {
        let dir = test_dir(&format!("mode-{file}"));
        let config = chain(&dir, "", "");
        let key = dir.join(file);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let (ok, stderr) = node(&dir, &config, &[]);
        assert!(!ok, "started: {stderr}");
        for want in [
            format!("{file} may be read by group or others (mode 644)"),
            format!("run `chmod 600 {}", dir.display()),
            format!("/{file}`"),
        ] {
            assert!(stderr.contains(&want), "no {want:?} in: {stderr}");
        }
    }
}

/// Under a `[registry]` the genesis names each validator's P2P id; a node
/// whose P2P key has another is refused, naming both.
#[test]
fn a_p2p_key_other_than_the_genesis_registry_names_is_refused() {
    let dir = test_dir("registry-p2p-id");
    let config = chain(&dir, "", "");
    let path = dir.join("genesis.toml");
    let text = std::fs::read_to_string(&path).expect("genesis");
    let (head, params) = text.split_once("[params]").expect("params table");
    let mine = head
        .lines()
        .find_map(|l| l.strip_prefix("p2p_id = "))
        .expect("keys generate prints p2p_id")
        .trim_matches('"')
        .to_owned();
    let other = "12D3KooWLRPJAA5o6Z6iNqNZWtd1oUwRPLBzpgb4xPMaeBVGWkS3";
    let head = head
        .replace(&mine, other)
        .replace("power = 1", "power = 1\noperator = \"0x1111111111111111111111111111111111111111\"\nstake_micro = 1000000");
    let registry = "[registry]\nmin_stake_micro = 1000000\nslash_destination = \"0x2222222222222222222222222222222222222222\"\n";
    std::fs::write(&path, format!("{head}{registry}\n[params]{params}")).expect("genesis");
    let (ok, stderr) = node(&dir, &config, &[]);
    assert!(!ok, "started: {stderr}");
    for want in [mine.as_str(), other, "names", "p2p_key.toml"] {
        assert!(stderr.contains(want), "no {want:?} in: {stderr}");
    }
}

// `step validator`: builds and signs validator transactions with the
// operator's key (file or stdin); what it prints reads back, verifies
// against the genesis' chain and names the operator.

/// An operator secret and its address (engine's test key 0 of this seed).
fn operator() -> step_engine::signing::Key {
    step_engine::signing::key("validator-cli", 0)
}

fn step_validator(dir: &Path, key: &str, stdin: &str, rest: &[&str]) -> std::process::Output {
    let mut child = Command::new(STEP)
        .args(["validator", "--operator-key", key, "--genesis"])
        .arg(dir.join("genesis.toml"))
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("step validator");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("step validator output")
}

#[test]
fn register_and_unbond_are_signed_by_the_operator_over_the_chain() {
    let dir = test_dir("validator-sign");
    chain(&dir, "", "");
    let secret = hex::encode(operator().sk.to_secret_bytes());
    let key_file = dir.join("operator.key");
    std::fs::write(&key_file, &secret).expect("operator key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let consensus = dir.join("validator_key.toml");
    let p2p = dir.join("p2p_key.toml");
    let out = step_validator(
        &dir,
        key_file.to_str().expect("utf-8 path"),
        "",
        &[
            "--nonce",
            "0",
            "register",
            "--consensus-key-file",
            consensus.to_str().expect("utf-8"),
            "--p2p-key-file",
            p2p.to_str().expect("utf-8"),
            "--stake-micro",
            "100000000000",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tx = ValidatorTx::from_json(out.stdout.trim_ascii()).expect("the printed JSON reads back");
    let genesis_path = dir.join("genesis.toml");
    let chain = Genesis::load(&genesis_path)
        .unwrap()
        .chain(&genesis_path)
        .unwrap();
    tx.verify_signature(&chain.0)
        .expect("signed by the operator over this chain");
    assert_eq!(tx.operator.0, operator().address.0);
    let peer = step_io::keyfile::load_p2p_key(&p2p)
        .unwrap()
        .peer_id()
        .unwrap();
    assert!(
        matches!(&tx.kind, TxKind::Register { p2p_id, stake_micro: 100_000_000_000, .. } if *p2p_id == peer)
    );
    assert!(
        tx.verify_signature(&[0; 32]).is_err(),
        "another chain's signature"
    );

    // The key from stdin.
    let out = step_validator(
        &dir,
        "-",
        &format!("0x{secret}\n"),
        &["--nonce", "1", "unbond", "--amount-micro", "5"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tx = ValidatorTx::from_json(out.stdout.trim_ascii()).unwrap();
    assert_eq!(
        (tx.nonce, &tx.kind),
        (1, &TxKind::Unbond { amount_micro: 5 })
    );
    tx.verify_signature(&chain.0).unwrap();
}

#[cfg(unix)]
#[test]
fn an_operator_key_others_may_read_or_not_a_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = test_dir("validator-refuse");
    chain(&dir, "", "");
    let key_file = dir.join("operator.key");
    std::fs::write(&key_file, hex::encode(operator().sk.to_secret_bytes())).expect("operator key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = step_validator(
        &dir,
        key_file.to_str().unwrap(),
        "",
        &["--nonce", "0", "withdraw"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    let out = step_validator(&dir, "-", "not hex", &["--nonce", "0", "withdraw"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("64 hex digits"), "{stderr}");
}
