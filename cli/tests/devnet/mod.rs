//! Harness of the `step devnet` tests: `step devnet` started and parsed per
//! its output contract (the validator lines, `devnet ready`), on the
//! cluster helpers of `step-testkit` (blocking HTTP client, `/events`,
//! process guards, convergence checks) and its fresh proofs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
pub use step_testkit::cluster::*;
pub use step_testkit::http::*;

pub const STEP: &str = env!("CARGO_BIN_EXE_step");
/// Until `devnet ready` (CI: a debug build on 2 cores).
pub const READY_TIMEOUT: Duration = Duration::from_secs(150);
/// Any wait on consensus (finality, catch-up, convergence): generous, since
/// a loaded 2-core CI machine can be 10× slower than a quiet one. It bounds
/// a failing run, not a passing one.
pub const CONSENSUS_WAIT: Duration = Duration::from_secs(180);
/// Node configuration for every test devnet: the sample files jump across the
/// globe every second (as `step verify --speed-gate off --moratorium off`);
/// one test client sends many proofs per account; and a slow CI machine may
/// take far longer than the default 10 s to finalize, where `POST /proof/submit`
/// would answer 202 "pending" instead of the final verdict these tests check.
pub const SETS: [&str; 4] = [
    "limits.speed_gate=false",
    "limits.moratorium=false",
    "rate_limit.per_account=0",
    "http.finality_timeout_ms=120000",
];

/// One `validator <i> ...` line of `step devnet`.
#[derive(Debug, Clone)]
pub struct ValidatorLine {
    pub http: SocketAddr,
    p2p_port: u16,
    pub address: String,
    pub pid: u32,
    pub log: PathBuf,
}

pub fn parse_validator_line(line: &str) -> Option<(usize, ValidatorLine)> {
    let mut it = line.split_whitespace();
    if it.next()? != "validator" {
        return None;
    }
    let index = it.next()?.parse().ok()?;
    let fields: HashMap<&str, &str> = it.filter_map(|f| f.split_once('=')).collect();
    let http = fields.get("http")?.strip_prefix("http://")?.parse().ok()?;
    let p2p_port = fields
        .get("p2p")?
        .strip_prefix("/ip4/127.0.0.1/tcp/")?
        .parse()
        .ok()?;
    Some((
        index,
        ValidatorLine {
            http,
            p2p_port,
            address: (*fields.get("address")?).to_owned(),
            pid: fields.get("pid")?.parse().ok()?,
            log: PathBuf::from(fields.get("log")?),
        },
    ))
}

/// A running `step devnet`.
pub struct Devnet {
    pub proc: Option<Proc>,
    pub dir: PathBuf,
    pub stdout: Receiver<String>,
    pub stdout_seen: Vec<String>,
    pub validators: Vec<ValidatorLine>,
    /// Validators restarted by the test with `step node`.
    pub restarted: Vec<Proc>,
    /// Validator process groups to kill on drop (the devnet's own children).
    pub groups: Vec<u32>,
    /// Keep the data dir on drop (a later run resumes from it).
    pub keep_dir: bool,
}

impl Devnet {
    pub fn data_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("step-e2e-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Starts `step devnet` and waits for `devnet ready`.
    pub fn start(dir: &Path, n: usize, base: u16) -> Devnet {
        Devnet::start_with(dir, n, base, &[])
    }

    /// [`Devnet::start`] with more `step devnet` arguments.
    pub fn start_with(dir: &Path, n: usize, base: u16, extra: &[&str]) -> Devnet {
        let t0 = Instant::now();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("devnet.stderr"))
            .unwrap();
        let mut cmd = Command::new(STEP);
        cmd.args(["devnet", "--validators", &n.to_string()])
            .args(["--base-port", &base.to_string()])
            .arg("--data-dir")
            .arg(dir.join("net"));
        for s in SETS {
            cmd.args(["--set", s]);
        }
        cmd.args(extra);
        cmd.stdout(Stdio::piped()).stderr(stderr);
        let mut proc = Proc::spawn("step devnet", &mut cmd);
        let out = proc.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Devnet {
            proc: Some(proc),
            dir: dir.to_owned(),
            stdout: rx,
            stdout_seen: Vec::new(),
            validators: Vec::new(),
            restarted: Vec::new(),
            groups: Vec::new(),
            // STEP_E2E_KEEP=1 keeps data dirs and logs of passing tests too.
            keep_dir: std::env::var_os("STEP_E2E_KEEP").is_some(),
        };
        let mut found: BTreeMap<usize, ValidatorLine> = BTreeMap::new();
        loop {
            let line = d.next_line(READY_TIMEOUT.saturating_sub(t0.elapsed()), "devnet ready");
            if let Some((i, v)) = parse_validator_line(&line) {
                d.groups.push(v.pid);
                found.insert(i, v);
            } else if line == "devnet ready" {
                break;
            }
        }
        assert_eq!(
            found.keys().copied().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>(),
            "one `validator <i>` line per validator before `devnet ready`: {:?}",
            d.stdout_seen
        );
        for (i, v) in &found {
            let i = *i as u16;
            assert_eq!(v.http.port(), base + i, "validator {i}: HTTP port");
            assert_eq!(v.p2p_port, base + 100 + i, "validator {i}: P2P port");
            assert!(
                v.address.len() == 40 && v.address.bytes().all(|b| b.is_ascii_hexdigit()),
                "validator {i}: address={} is not 40 hex digits",
                v.address
            );
            assert!(v.pid > 0, "validator {i}: pid");
            assert!(
                healthy(v.http),
                "validator {i} not healthy after `devnet ready`"
            );
        }
        d.validators = found.into_values().collect();
        eprintln!(
            "devnet of {n} up on base port {base} in {:.1} s ({})",
            t0.elapsed().as_secs_f64(),
            dir.display()
        );
        d
    }

    /// The next stdout line, or a panic naming `what` it waited for.
    pub fn next_line(&mut self, timeout: Duration, what: &str) -> String {
        match self.stdout.recv_timeout(timeout) {
            Ok(line) => {
                self.stdout_seen.push(line.clone());
                line
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "no `{what}` from step devnet within {timeout:?}; stdout so far: {:?}",
                self.stdout_seen
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self
                    .proc
                    .as_mut()
                    .and_then(|p| p.wait_exit(Duration::from_secs(5)));
                panic!(
                    "step devnet closed stdout before `{what}` (exit {status:?}); stdout: {:?}\nstderr: {}",
                    self.stdout_seen,
                    tail(&self.dir.join("devnet.stderr"), 30)
                )
            }
        }
    }

    pub fn http(&self) -> Vec<SocketAddr> {
        self.validators.iter().map(|v| v.http).collect()
    }

    pub fn config_path(&self, i: usize) -> PathBuf {
        self.dir
            .join("net")
            .join(format!("node-{i}"))
            .join("config.toml")
    }

    /// `step node --config net/node-<i>/config.toml`, as an operator restarts one.
    pub fn restart(&mut self, i: usize) -> u32 {
        let log = std::fs::File::create(self.dir.join(format!("restart-{i}.log"))).unwrap();
        let err = log.try_clone().unwrap();
        let cfg = self.config_path(i);
        assert!(cfg.exists(), "{} missing", cfg.display());
        let p = Proc::spawn(
            &format!("step node (validator {i})"),
            Command::new(STEP)
                .arg("node")
                .arg("--config")
                .arg(&cfg)
                .stdout(log)
                .stderr(err),
        );
        let pid = p.pid();
        self.restarted.push(p);
        pid
    }

    /// `signal` (`INT` or `TERM`), then `devnet stopped` and a clean exit.
    pub fn stop(&mut self, signal: &str) {
        let mut p = self.proc.take().expect("devnet running");
        assert!(signal_pid(p.pid(), signal), "kill -{signal} step devnet");
        loop {
            if self.next_line(Duration::from_secs(90), "devnet stopped") == "devnet stopped" {
                break;
            }
        }
        let status = p
            .wait_exit(Duration::from_secs(30))
            .expect("devnet exits after `devnet stopped`");
        assert!(status.success(), "step devnet exited with {status}");
        // Its validators are gone too.
        for v in &self.validators {
            assert!(
                !healthy(v.http),
                "{} still answers after `devnet stopped`",
                v.http
            );
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for g in &self.groups {
            signal_group(*g, "KILL");
        }
        self.restarted.clear();
        self.proc = None;
        if panicking {
            eprintln!("--- devnet in {} (kept) ---", self.dir.display());
            eprintln!("stdout: {:?}", self.stdout_seen);
            eprintln!(
                "devnet.stderr:\n{}",
                tail(&self.dir.join("devnet.stderr"), 20)
            );
            for (i, v) in self.validators.iter().enumerate() {
                eprintln!(
                    "--- validator {i}: {} ---\n{}",
                    v.log.display(),
                    tail(&v.log, 25)
                );
                let r = self.dir.join(format!("restart-{i}.log"));
                if r.exists() {
                    eprintln!("--- {} ---\n{}", r.display(), tail(&r, 25));
                }
            }
        } else if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// -------------------------------------------------------------- proofs ----

/// The shared samples and fresh proofs (the shared Python generator, or
/// `step_engine::signing`): `step-testkit`.
pub use step_testkit::{fresh_proofs, shared_lines};
