//! `step devnet --validators N`: a whole local network in one command.
//!
//! First run: a key per validator, one genesis, one configuration file per
//! validator under `--data-dir`. Every run: the configurations are rewritten
//! (ports and `--set` overrides may change), N `step node` processes start on
//! loopback, and once every one answers `GET /health` the devnet prints
//! `devnet ready`. SIGINT or SIGTERM stops them all (SIGTERM, then SIGKILL
//! after a grace period). A second run with the same data dir resumes the
//! chain: keys, genesis, WAL and store are kept.
//!
//! Output contract (scripts and `step bench --devnet` parse it), one line
//! per validator, then `devnet ready`:
//!
//! ```text
//! validator <i> http=http://127.0.0.1:<P+i> p2p=/ip4/127.0.0.1/tcp/<P+100+i> address=<40 hex> pid=<pid> log=<path>
//! ```

use crate::node::apply_sets;
use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use step_io::genesis::{generate_key, load_key, public_key, save_key, Genesis, GenesisValidator};
use step_io::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Most validators a devnet starts (the plan's network is 4–50).
pub const MAX_VALIDATORS: usize = 50;
/// How long a validator gets to stop after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(40);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Validators to run (1–50).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Validator i listens for HTTP on P+i and for P2P on P+100+i.
    #[arg(long, default_value_t = 27000)]
    base_port: u16,
    /// Keys, genesis, configurations, WALs, stores and logs.
    #[arg(long, default_value = "devnet")]
    data_dir: PathBuf,
    /// Override a configuration key on every validator, e.g.
    /// `--set limits.speed_gate=false` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Give up if the validators are not all healthy within this many seconds.
    #[arg(long, default_value_t = 120)]
    ready_timeout: u64,
}

struct Validator {
    index: usize,
    http_port: u16,
    p2p: String,
    address: String,
    config: PathBuf,
    log: PathBuf,
}

fn p2p_addr(port: u16) -> String {
    format!("/ip4/127.0.0.1/tcp/{port}")
}

fn node_dir(data: &Path, i: usize) -> PathBuf {
    data.join(format!("node-{i}"))
}

/// Creates keys and the genesis on the first run; checks them on later ones.
fn genesis(args: &Args) -> anyhow::Result<Genesis> {
    let path = args.data_dir.join("genesis.toml");
    if path.exists() {
        let g = Genesis::load(&path)?;
        if g.validators.len() != args.validators {
            bail!(
                "{} holds a devnet of {} validators; run with --validators {} or use another --data-dir",
                args.data_dir.display(),
                g.validators.len(),
                g.validators.len()
            );
        }
        return Ok(g);
    }
    let mut validators = Vec::with_capacity(args.validators);
    for i in 0..args.validators {
        let dir = node_dir(&args.data_dir, i);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let key_path = dir.join("validator_key.toml");
        let key = if key_path.exists() {
            load_key(&key_path)?
        } else {
            let k = generate_key()?;
            save_key(&key_path, &k)?;
            k
        };
        let (http, p2p) = ports(args.base_port, i);
        validators.push(GenesisValidator::new(
            &format!("node-{i}"),
            &public_key(&key),
            1,
            &p2p_addr(p2p),
            &format!("http://127.0.0.1:{http}"),
        ));
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let g = Genesis {
        chain_id: format!("step-devnet-{secs}"),
        validators,
    };
    g.save(&path)?;
    Ok(g)
}

fn ports(base: u16, i: usize) -> (u16, u16) {
    let i = i as u16; // i < MAX_VALIDATORS
    (base + i, base + 100 + i)
}

/// Writes `node-<i>/config.toml` for this run.
fn write_config(args: &Args, g: &Genesis, i: usize) -> anyhow::Result<Validator> {
    let dir = node_dir(&args.data_dir, i);
    let (http, p2p) = ports(args.base_port, i);
    let mut c = Config::default();
    c.http.listen = format!("127.0.0.1:{http}");
    c.node.home = ".".into();
    c.node.key_file = "validator_key.toml".into();
    c.node.genesis_file = "../genesis.toml".into();
    c.node.moniker = format!("node-{i}");
    c.node.p2p_listen = p2p_addr(p2p);
    c.node.peers = (0..args.validators)
        .filter(|j| *j != i)
        .map(|j| p2p_addr(ports(args.base_port, j).1))
        .collect::<Vec<_>>()
        .join(",");
    // N processes share this machine's cores: no pinning, and workers split
    // the cores between them.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    c.pipeline.pin_workers = false;
    c.pipeline.workers = (cores / args.validators).max(1);
    // Every devnet client comes from 127.0.0.1: a per-IP limit would limit
    // them all together. Per-account limits stay on.
    c.rate_limit.per_ip = 0;
    apply_sets(&mut c, &args.set)?;
    c.validate()?;
    let text = toml::to_string(&c).context("serialising the configuration")?;
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "# Written by `step devnet` on every start; edit with --set instead.\n# Run this validator alone: step node --config {}\n{text}",
            path.display()
        ),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(Validator {
        index: i,
        http_port: http,
        p2p: c.node.p2p_listen,
        address: g.validators[i].address.clone(),
        config: path,
        log: dir.join("node.log"),
    })
}

fn spawn(v: &Validator) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the step binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&v.log)
        .with_context(|| format!("opening {}", v.log.display()))?;
    let err = log.try_clone().context("duplicating the log handle")?;
    Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(&v.config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        // Own process group: a terminal's Ctrl-C reaches the devnet only,
        // which then stops the validators in order.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting validator {}", v.index))
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

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

async fn stop_all(children: &mut [Option<Child>]) {
    for c in children.iter().flatten() {
        if let Some(pid) = c.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for c in children.iter_mut().flatten() {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, c.wait()).await.is_err() {
            eprintln!("step devnet: a validator ignored SIGTERM; killing it");
            let _ = c.kill().await;
        }
    }
}

/// SIGINT and SIGTERM, registered at once (before any validator starts), so
/// that neither can kill the devnet and orphan its validators.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {},
            _ = self.term.recv() => {},
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.validators == 0 || args.validators > MAX_VALIDATORS {
        bail!("--validators must be 1–{MAX_VALIDATORS}");
    }
    if u32::from(args.base_port) + 100 + args.validators as u32 > 65_535 {
        bail!("--base-port too high: ports up to base+100+N must fit in 65535");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let g = genesis(&args)?;
    let validators = (0..args.validators)
        .map(|i| write_config(&args, &g, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(supervise(&args, &g, validators))
}

async fn supervise(args: &Args, g: &Genesis, vs: Vec<Validator>) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut signals = Signals::install()?;
    let mut children: Vec<Option<Child>> = Vec::with_capacity(vs.len());
    for v in &vs {
        match spawn(v) {
            Ok(c) => {
                println!(
                    "validator {} http=http://127.0.0.1:{} p2p={} address={} pid={} log={}",
                    v.index,
                    v.http_port,
                    v.p2p,
                    v.address,
                    c.id().unwrap_or(0),
                    v.log.display()
                );
                children.push(Some(c));
            }
            Err(e) => {
                stop_all(&mut children).await;
                return Err(e);
            }
        }
    }
    let _ = std::io::stdout().flush();
    eprintln!(
        "step devnet: chain {} in {}; waiting for {} validators",
        g.chain_id,
        args.data_dir.display(),
        vs.len()
    );

    // Readiness, or an early exit with the validator's log.
    let deadline = Instant::now() + Duration::from_secs(args.ready_timeout);
    let mut ready = vec![false; vs.len()];
    while !ready.iter().all(|r| *r) {
        for (i, v) in vs.iter().enumerate() {
            if let Some(Some(c)) = children.get_mut(i) {
                if let Ok(Some(status)) = c.try_wait() {
                    stop_all(&mut children).await;
                    bail!(
                        "validator {i} exited during start-up ({status}); last lines of {}:\n{}",
                        v.log.display(),
                        log_tail(&v.log)
                    );
                }
            }
            if !ready[i] {
                ready[i] = healthy(v.http_port).await;
            }
        }
        if Instant::now() > deadline {
            stop_all(&mut children).await;
            bail!(
                "validators not healthy after {} s; logs are in {}",
                args.ready_timeout,
                args.data_dir.display()
            );
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {},
            () = signals.recv() => {
                stop_all(&mut children).await;
                println!("devnet stopped");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    println!("devnet ready");
    let _ = std::io::stdout().flush();

    // Run until a signal; report validators that exit on their own (an
    // operator or a test may kill and restart one by hand).
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                for (i, slot) in children.iter_mut().enumerate() {
                    let exited = match slot {
                        Some(c) => c.try_wait().ok().flatten(),
                        None => None,
                    };
                    if let Some(status) = exited {
                        eprintln!(
                            "step devnet: validator {i} exited ({status}); restart it with: step node --config {}",
                            vs[i].config.display()
                        );
                        *slot = None;
                    }
                }
            }
        }
    }
    eprintln!("step devnet: stopping validators");
    stop_all(&mut children).await;
    println!("devnet stopped");
    Ok(ExitCode::SUCCESS)
}
