//! Validators: keys (`step keys generate`), one genesis, one configuration
//! per validator, and `step node` processes started inside their namespaces
//! (optionally under libfaketime for a skewed wall clock).
#![allow(unsafe_code)] // kill(2) on the validators' pids

use crate::net::{node_ip, Net};
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const HTTP_PORT: u16 = 8080;
pub const P2P_PORT: u16 = 27100;
/// Debian's libfaketime (package `faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The `step` binary: `$STEP_BIN`, else `target/<profile>/step` beside this crate's build.
pub fn step_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("STEP_BIN") {
        return Ok(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("step");
        if p.exists() {
            return Ok(p);
        }
    }
    bail!(
        "no step binary under {}: run `cargo build -p step` or set STEP_BIN",
        target.display()
    )
}

pub fn http_addr(i: usize) -> SocketAddr {
    SocketAddr::from((node_ip(i), HTTP_PORT))
}

fn p2p_addr(i: usize) -> String {
    format!("/ip4/{}/tcp/{P2P_PORT}", node_ip(i))
}

#[derive(Debug)]
pub struct Validator {
    pub index: usize,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    pub paused: bool,
    /// `FAKETIME` for the next start (e.g. `+2s`), if any.
    pub faketime: Option<String>,
    pub starts: u32,
    /// The validator's address (40 hex), from its genesis entry.
    pub address: String,
    /// `--byzantine KIND` for every start, if any.
    pub byzantine: Option<String>,
}

#[derive(Debug)]
pub struct Cluster {
    pub step: PathBuf,
    pub dir: PathBuf,
    pub validators: Vec<Validator>,
    pub sets: Vec<String>,
}

impl Cluster {
    /// Keys, genesis and configurations for `n` validators under `dir`.
    pub fn prepare(dir: &Path, n: usize, sets: &[String]) -> anyhow::Result<Cluster> {
        let step = step_bin()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut genesis = format!(
            "chain_id = \"step-e2e-{}\"\n",
            step_engine::pipeline::unix_now_ms()
        );
        let mut validators = Vec::new();
        for i in 0..n {
            let d = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&d)?;
            let key = d.join("validator_key.toml");
            let out = Command::new(&step)
                .args(["keys", "generate", "--name", &format!("node-{i}"), "--p2p"])
                .arg(p2p_addr(i))
                .arg("--out")
                .arg(&key)
                .output()
                .context("step keys generate")?;
            if !out.status.success() {
                bail!(
                    "step keys generate: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let entry = String::from_utf8_lossy(&out.stdout).into_owned();
            let address = entry
                .lines()
                .find_map(|l| l.strip_prefix("address = "))
                .map(|a| a.trim_matches('"').to_owned())
                .with_context(|| format!("no address in {entry}"))?;
            genesis.push('\n');
            genesis.push_str(&entry);
            let peers: Vec<String> = (0..n).filter(|j| *j != i).map(p2p_addr).collect();
            let config = format!(
                "[http]\nlisten = \"{}\"\n\n[rate_limit]\nper_ip = 0\n\n[pipeline]\npin_workers = false\nworkers = 1\n\n\
                 [node]\nhome = \".\"\nkey_file = \"validator_key.toml\"\ngenesis_file = \"../genesis.toml\"\n\
                 moniker = \"node-{i}\"\np2p_listen = \"{}\"\npeers = \"{}\"\n\n[log]\nformat = \"text\"\n",
                http_addr(i),
                p2p_addr(i),
                peers.join(",")
            );
            let config_path = d.join("config.toml");
            std::fs::write(&config_path, config)?;
            validators.push(Validator {
                index: i,
                log: d.join("node.log"),
                dir: d,
                config: config_path,
                child: None,
                paused: false,
                faketime: None,
                starts: 0,
                address,
                byzantine: None,
            });
        }
        std::fs::write(dir.join("genesis.toml"), genesis)?;
        Ok(Cluster {
            step,
            dir: dir.to_owned(),
            validators,
            sets: sets.to_owned(),
        })
    }

    /// The index of the proposer of (`height`, `round`): position
    /// `(height + round) mod n` in the set sorted by address.
    pub fn proposer(&self, height: u64, round: u64) -> usize {
        let mut by_addr: Vec<(&str, usize)> = self
            .validators
            .iter()
            .map(|v| (v.address.as_str(), v.index))
            .collect();
        by_addr.sort();
        by_addr[((height + round) % by_addr.len() as u64) as usize].1
    }

    /// Starts validator `i` inside its namespace.
    pub fn start(&mut self, net: &Net, i: usize) -> anyhow::Result<()> {
        let v = &mut self.validators[i];
        if v.child.is_some() {
            bail!("validator {i} is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&v.log)?;
        let err = log.try_clone()?;
        let pre = net.exec_prefix(i);
        let mut cmd = Command::new(&pre[0]);
        cmd.args(&pre[1..]);
        if let Some(ft) = &v.faketime {
            if !Path::new(LIBFAKETIME).exists() {
                bail!("{LIBFAKETIME} missing: apt-get install faketime");
            }
            // Only the wall clock: tokio's timers stay on the true monotonic clock.
            cmd.args([
                "env",
                &format!("LD_PRELOAD={LIBFAKETIME}"),
                &format!("FAKETIME={ft}"),
                "FAKETIME_DONT_FAKE_MONOTONIC=1",
                "FAKETIME_NO_CACHE=1",
            ]);
        }
        cmd.arg(&self.step)
            .arg("node")
            .arg("--config")
            .arg(&v.config);
        for s in &self.sets {
            cmd.arg("--set").arg(s);
        }
        if let Some(kind) = &v.byzantine {
            cmd.arg("--byzantine").arg(kind);
        }
        use std::os::unix::process::CommandExt;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting validator {i}"))?;
        v.child = Some(child);
        v.paused = false;
        v.starts += 1;
        Ok(())
    }

    fn signal(&mut self, i: usize, sig: libc::c_int) -> anyhow::Result<()> {
        let Some(c) = &self.validators[i].child else {
            bail!("validator {i} is not running");
        };
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        if unsafe { libc::kill(c.id() as i32, sig) } != 0 {
            bail!(
                "kill({}, {sig}): {}",
                c.id(),
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if self.validators[i].paused {
            self.signal(i, libc::SIGCONT)?;
        }
        self.signal(i, libc::SIGKILL)?;
        if let Some(mut c) = self.validators[i].child.take() {
            let _ = c.wait();
        }
        self.validators[i].paused = false;
        Ok(())
    }

    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, libc::SIGSTOP)?;
        self.validators[i].paused = true;
        Ok(())
    }

    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, libc::SIGCONT)?;
        self.validators[i].paused = false;
        Ok(())
    }

    /// Whether validator `i`'s process has exited by itself.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.validators[i]
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn running(&self, i: usize) -> bool {
        self.validators[i].child.is_some()
    }

    /// Waits until every running validator answers `GET /health/live`.
    pub fn wait_live(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let n = self.validators.len();
        let mut live = vec![false; n];
        loop {
            for (i, l) in live.iter_mut().enumerate() {
                if !self.running(i) {
                    *l = true;
                    continue;
                }
                if let Some(st) = self.exited(i) {
                    bail!(
                        "validator {i} exited ({st}); log:\n{}",
                        tail(&self.validators[i].log, 30)
                    );
                }
                if !*l {
                    *l = crate::http::get(http_addr(i), "/health/live")
                        .is_ok_and(|r| r.status == 200);
                }
            }
            if live.iter().all(|l| *l) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("validators not live after {timeout:?}: {live:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs every validator (the namespaces' removal would too).
    pub fn kill_all(&mut self) {
        for i in 0..self.validators.len() {
            if self.running(i) {
                let _ = self.kill(i);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
