//! The devnet supervisor, as a library: `step devnet` and `step bench
//! --devnet` both call it, so no command parses another's output.
//!
//! [`Devnet::start`] writes (first run) a key per validator and one genesis,
//! and (every run) one configuration file per validator under the data
//! directory ([`files`]), then starts N `step node` processes on loopback.
//! [`Devnet::wait_ready`] waits until each answers `GET /health`;
//! [`Devnet::stop`] sends SIGTERM and, after a grace period or as soon as
//! the caller says hurry (a second Ctrl-C), SIGKILL.
//!
//! The validators die with the supervisor even when it is SIGKILLed: each
//! is started with [`SUPERVISOR_PID_ENV`] set to the supervisor's pid, and
//! `step node` then calls [`die_with_supervisor`] first thing, which asks
//! Linux for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`). Linux sends
//! it when the *thread* that spawned the child ends, so the supervisor
//! must spawn from a thread that lives as long as the devnet: both callers
//! run it on a current-thread runtime on the main thread.

pub mod files;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

pub use files::apply_sets;

/// Most validators a devnet starts (the plan's network is 4–50).
pub const MAX_VALIDATORS: usize = 50;
/// How long a validator gets to stop after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(40);
/// Set by the supervisor on every validator it starts, to its own pid:
/// `step node` then dies with it ([`die_with_supervisor`]).
pub const SUPERVISOR_PID_ENV: &str = "STEP_SUPERVISOR_PID";

/// Why a devnet could not be set up, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("--validators must be 1–{max}, got {given}")]
    ValidatorCount { given: usize, max: usize },
    #[error("--base-port {base_port} too high for {validators} validators: ports up to base+100+N must fit in 65535")]
    BasePortTooHigh { base_port: u16, validators: usize },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Genesis(#[from] step_io::genesis::GenesisError),
    #[error(transparent)]
    Config(#[from] step_io::config::ConfigError),
    #[error("--set {given:?}: expected KEY=VALUE")]
    BadSet { given: String },
    #[error("serialising the configuration of validator {index}: {source}")]
    Serialise {
        index: usize,
        source: toml::ser::Error,
    },
    #[error("{data_dir} holds a devnet of {holds} validators; run with --validators {holds} or use another --data-dir (asked for {asked})")]
    GenesisMismatch {
        data_dir: PathBuf,
        holds: usize,
        asked: usize,
    },
    #[error("{data_dir} holds a chain started from another initial state than {given}; use another --data-dir")]
    InitialStateMismatch { data_dir: PathBuf, given: PathBuf },
    #[error("initial state {path}: {source}")]
    InitialState {
        path: PathBuf,
        source: step_consensus::InitialStateError,
    },
    #[error("starting validator {index} ({exe}): {source}")]
    Spawn {
        index: usize,
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("validator {index} exited during start-up ({status}); last lines of {log}:\n{tail}")]
    ExitedDuringStartup {
        index: usize,
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("validators {unready:?} not healthy after {after_s} s; logs are in {data_dir}")]
    NotReady {
        unready: Vec<usize>,
        after_s: u64,
        data_dir: PathBuf,
    },
    #[error("validator stopped with the supervisor: its parent is pid {parent}, not the supervisor {supervisor} (the supervisor died before the validator asked to die with it)")]
    SupervisorGone { supervisor: i32, parent: i32 },
    #[error("{SUPERVISOR_PID_ENV}={given:?} is not a pid")]
    BadSupervisorPid { given: String },
    #[error("asking Linux to end this validator with its supervisor (PR_SET_PDEATHSIG): {source}")]
    DeathSignal { source: std::io::Error },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `step` binary (its `node` subcommand runs each validator).
    pub exe: PathBuf,
    /// 1..=[`MAX_VALIDATORS`].
    pub validators: usize,
    /// Validator i listens for HTTP on base+i and for P2P on base+100+i.
    pub base_port: u16,
    /// Keys, genesis, configurations, WALs, stores and logs.
    pub data_dir: PathBuf,
    /// `KEY=VALUE` configuration overrides for every validator.
    pub sets: Vec<String>,
    /// Start the chain from this initial state (`step migrate import`): on
    /// the first run it is copied into the data dir and named by the genesis.
    pub initial_state: Option<PathBuf>,
}

/// One validator of the devnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    pub index: usize,
    pub http_port: u16,
    /// `http://127.0.0.1:<http_port>`.
    pub http: String,
    /// Its P2P multiaddr.
    pub p2p: String,
    /// Its consensus address (40 hex digits).
    pub address: String,
    /// Its configuration file (`step node --config` restarts it alone).
    pub config: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Its process id as started (0 if the OS gave none).
    pub pid: u32,
}

/// How [`Devnet::stop`] went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Validators that had to be SIGKILLed (ignored SIGTERM for the grace
    /// period, or the caller hurried).
    pub killed: Vec<usize>,
}

impl Stopped {
    /// Every validator stopped on SIGTERM.
    pub fn clean(&self) -> bool {
        self.killed.is_empty()
    }
}

/// A running devnet. Dropping it SIGKILLs the validators still running.
#[derive(Debug)]
pub struct Devnet {
    validators: Vec<Validator>,
    children: Vec<Option<Child>>,
    chain_id: String,
    data_dir: PathBuf,
}

impl Devnet {
    /// Writes the files and starts every validator (not yet healthy: see
    /// [`Devnet::wait_ready`]). Needs a tokio runtime with I/O and time;
    /// spawn from a thread that outlives the devnet (see the crate docs).
    pub async fn start(o: &Options) -> Result<Devnet, DevnetError> {
        let (genesis, validators) = files::prepare(o)?;
        let mut devnet = Devnet {
            validators,
            children: Vec::with_capacity(o.validators),
            chain_id: genesis.chain_id,
            data_dir: o.data_dir.clone(),
        };
        for i in 0..devnet.validators.len() {
            match spawn(&o.exe, &devnet.validators[i]) {
                Ok(c) => {
                    devnet.validators[i].pid = c.id().unwrap_or(0);
                    devnet.children.push(Some(c));
                }
                Err(e) => {
                    devnet.stop(STOP_GRACE, std::future::pending()).await;
                    return Err(e);
                }
            }
        }
        Ok(devnet)
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Waits until every validator answers `GET /health` with 200. A
    /// validator that exits first, or the timeout, is an error (the caller
    /// then stops the devnet). Cancel-safe: it only polls.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), DevnetError> {
        let deadline = Instant::now() + timeout;
        let mut ready = vec![false; self.validators.len()];
        loop {
            for (i, v) in self.validators.iter().enumerate() {
                if let Some(Some(c)) = self.children.get_mut(i) {
                    if let Ok(Some(status)) = c.try_wait() {
                        return Err(DevnetError::ExitedDuringStartup {
                            index: i,
                            status,
                            log: v.log.clone(),
                            tail: files::tail(&v.log, 20),
                        });
                    }
                }
                if !ready[i] {
                    ready[i] = healthy(v.http_port).await;
                }
            }
            if ready.iter().all(|r| *r) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DevnetError::NotReady {
                    unready: (0..ready.len()).filter(|i| !ready[*i]).collect(),
                    after_s: timeout.as_secs(),
                    data_dir: self.data_dir.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Validators that exited on their own since the last call (an operator
    /// or a test may kill and restart one by hand), with their status.
    pub fn reap(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut out = Vec::new();
        for (i, slot) in self.children.iter_mut().enumerate() {
            let exited = slot.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                out.push((i, status));
                *slot = None;
            }
        }
        out
    }

    /// SIGTERM to every validator still running, then waits for them; one
    /// still running after `grace`, or once `hurry` resolves (a second
    /// Ctrl-C), gets SIGKILL at once.
    pub async fn stop(
        &mut self,
        grace: Duration,
        hurry: impl std::future::Future<Output = ()>,
    ) -> Stopped {
        for c in self.children.iter().flatten() {
            let pid = c.id().and_then(|p| i32::try_from(p).ok());
            if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
                // ESRCH only if it has been reaped: nothing to stop.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut stopped = Stopped::default();
        tokio::pin!(hurry);
        let mut hurried = false;
        for (i, slot) in self.children.iter_mut().enumerate() {
            let Some(c) = slot else { continue };
            let mut exited = matches!(c.try_wait(), Ok(Some(_)));
            if !exited && !hurried {
                tokio::select! {
                    r = c.wait() => exited = r.is_ok(),
                    () = tokio::time::sleep_until(deadline) => {}
                    () = &mut hurry => hurried = true,
                }
            }
            if !exited && !matches!(c.try_wait(), Ok(Some(_))) {
                // Ignored SIGTERM for the grace period, or told to hurry.
                let _ = c.kill().await;
                stopped.killed.push(i);
            }
            *slot = None;
        }
        stopped
    }
}

fn spawn(exe: &Path, v: &Validator) -> Result<Child, DevnetError> {
    let io = |what, source| DevnetError::Io {
        what,
        path: v.log.clone(),
        source,
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&v.log)
        .map_err(|e| io("opening", e))?;
    let err = log
        .try_clone()
        .map_err(|e| io("duplicating the handle of", e))?;
    Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(&v.config)
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        // Own process group: a terminal's Ctrl-C reaches the supervisor
        // only, which then stops the validators in order.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| DevnetError::Spawn {
            index: v.index,
            exe: exe.to_owned(),
            source,
        })
}

/// `GET /health` answered 200.
async fn healthy(port: u16) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await,
        Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 200")
    )
}

/// Called by `step node` first thing: when a supervisor started it (it set
/// [`SUPERVISOR_PID_ENV`]), asks Linux to send this process SIGTERM when
/// its parent dies, so that a SIGKILLed supervisor leaves no validator
/// behind. SIGTERM, not SIGKILL: the validator shuts down as on Ctrl-C and
/// its WAL and store stay whole for the next run. If the supervisor died
/// before the request took effect (the parent is no longer it), returns
/// [`DevnetError::SupervisorGone`] and the node does not start. Without the
/// variable, does nothing.
pub fn die_with_supervisor() -> Result<(), DevnetError> {
    let Some(given) = std::env::var_os(SUPERVISOR_PID_ENV) else {
        return Ok(());
    };
    let given = given.to_string_lossy().into_owned();
    let supervisor: i32 = given
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or(DevnetError::BadSupervisorPid { given })?;
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        .map_err(|e| DevnetError::DeathSignal { source: e.into() })?;
    // The race: the supervisor may have died between fork and the call
    // above; then no signal will come, and the parent is now another.
    let parent = rustix::process::Pid::as_raw(rustix::process::getppid());
    if parent != supervisor {
        return Err(DevnetError::SupervisorGone { supervisor, parent });
    }
    Ok(())
}
