//! `--devnet N`: runs `step devnet` as a child process for the length of a
//! load run, and reads its validators' memory and CPU from `/proc`.
//!
//! The devnet's stdout contract: one line per validator,
//! `validator <i> http=<url> p2p=<multiaddr> address=<hex> pid=<pid> log=<path>`,
//! then `devnet ready` once every validator answers `GET /health`. On
//! SIGTERM it stops its validators and prints `devnet stopped`.

use super::LoadError;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A validator as the devnet announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    pub index: usize,
    pub http: String,
    pub pid: u32,
}

/// Parses a `validator <i> http=… pid=… …` line.
pub fn parse_validator_line(line: &str) -> Option<Validator> {
    let mut words = line.split_whitespace();
    if words.next()? != "validator" {
        return None;
    }
    let index = words.next()?.parse().ok()?;
    let (mut http, mut pid) = (None, None);
    for w in words {
        if let Some(v) = w.strip_prefix("http=") {
            http = Some(v.to_owned());
        } else if let Some(v) = w.strip_prefix("pid=") {
            pid = v.parse().ok();
        }
    }
    Some(Validator {
        index,
        http: http?,
        pid: pid?,
    })
}

/// What to start.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// The `step` binary.
    pub exe: PathBuf,
    pub validators: usize,
    pub base_port: u16,
    /// Kept after the run if given; otherwise a fresh temporary directory,
    /// removed after the run.
    pub data_dir: Option<PathBuf>,
    /// `--set key=value` for every validator.
    pub sets: Vec<String>,
    pub ready_timeout: Duration,
}

/// A running devnet.
#[derive(Debug)]
pub struct Devnet {
    child: Child,
    pub validators: Vec<Validator>,
    pub data_dir: PathBuf,
    remove_dir: bool,
    lines: mpsc::Receiver<String>,
}

impl Devnet {
    /// Starts `step devnet` and waits for `devnet ready`.
    pub fn start(o: &DevnetOptions) -> Result<Devnet, LoadError> {
        let (data_dir, remove_dir) = match &o.data_dir {
            Some(d) => (d.clone(), false),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let d = std::env::temp_dir()
                    .join(format!("step-bench-devnet-{}-{nanos}", std::process::id()));
                (d, true)
            }
        };
        std::fs::create_dir_all(&data_dir).map_err(|source| LoadError::Devnet {
            reason: format!("cannot create {}: {source}", data_dir.display()),
        })?;
        let stderr = std::fs::File::create(data_dir.join("devnet.stderr")).map_err(|source| {
            LoadError::Devnet {
                reason: format!("cannot create the devnet's stderr file: {source}"),
            }
        })?;
        let mut cmd = Command::new(&o.exe);
        cmd.arg("devnet")
            .arg("--validators")
            .arg(o.validators.to_string())
            .arg("--base-port")
            .arg(o.base_port.to_string())
            .arg("--data-dir")
            .arg(&data_dir);
        for s in &o.sets {
            cmd.arg("--set").arg(s);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|source| LoadError::Devnet {
                reason: format!("cannot run {} devnet: {source}", o.exe.display()),
            })?;
        let Some(stdout) = child.stdout.take() else {
            unreachable!("stdout is piped")
        };
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name("devnet-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|source| LoadError::Devnet {
                reason: format!("cannot start a thread: {source}"),
            })?;
        let mut devnet = Devnet {
            child,
            validators: Vec::new(),
            data_dir,
            remove_dir,
            lines,
        };
        let deadline = Instant::now() + o.ready_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match devnet.lines.recv_timeout(left) {
                Ok(line) if line.trim() == "devnet ready" => break,
                Ok(line) => {
                    if let Some(v) = parse_validator_line(&line) {
                        devnet.validators.push(v);
                    }
                }
                Err(e) => {
                    let why = match e {
                        mpsc::RecvTimeoutError::Timeout => {
                            format!("not ready within {} s", o.ready_timeout.as_secs())
                        }
                        mpsc::RecvTimeoutError::Disconnected => {
                            "exited before `devnet ready`".to_owned()
                        }
                    };
                    let log = devnet.data_dir.join("devnet.stderr");
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: String = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                    let _ = devnet.stop();
                    return Err(LoadError::Devnet {
                        reason: format!("{why} (stderr, last lines reversed: {tail})"),
                    });
                }
            }
        }
        if devnet.validators.len() != o.validators {
            let n = devnet.validators.len();
            let _ = devnet.stop();
            return Err(LoadError::Devnet {
                reason: format!("announced {n} validators, expected {}", o.validators),
            });
        }
        devnet.validators.sort_by_key(|v| v.index);
        Ok(devnet)
    }

    /// The validators' HTTP URLs.
    pub fn targets(&self) -> Vec<String> {
        self.validators.iter().map(|v| v.http.clone()).collect()
    }

    /// SIGTERM, then waits up to 30 s (SIGKILL to the devnet and its
    /// validators after that). Removes a temporary data directory.
    pub fn stop(mut self) -> Result<bool, LoadError> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut clean = false;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => {
                    clean = true;
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        // The validators must be gone too, whatever the devnet did.
        for v in &self.validators {
            if let Ok(p) = i32::try_from(v.pid) {
                if Path::new(&format!("/proc/{p}")).exists() {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                    clean = false;
                }
            }
        }
        let stopped_line = self.lines.try_iter().any(|l| l.trim() == "devnet stopped");
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        Ok(clean && stopped_line)
    }
}

/// Memory and CPU of a process from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// `VmHWM`: peak resident set.
    pub peak_rss_bytes: Option<u64>,
    /// `VmRSS`.
    pub rss_bytes: Option<u64>,
    /// utime + stime, in seconds (10 ms resolution).
    pub cpu_s: Option<f64>,
}

impl ProcSample {
    pub fn of(pid: u32) -> ProcSample {
        ProcSample {
            peak_rss_bytes: crate::proc_status_bytes_of(&pid.to_string(), "VmHWM"),
            rss_bytes: crate::proc_status_bytes_of(&pid.to_string(), "VmRSS"),
            cpu_s: crate::process_cpu_seconds_of(&pid.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_lines() {
        let l = "validator 2 http=http://127.0.0.1:27002 p2p=/ip4/127.0.0.1/tcp/27102 \
                 address=0123456789abcdef0123456789abcdef01234567 pid=4242 log=/tmp/d/v2.log";
        assert_eq!(
            parse_validator_line(l),
            Some(Validator {
                index: 2,
                http: "http://127.0.0.1:27002".into(),
                pid: 4242
            })
        );
        assert_eq!(parse_validator_line("devnet ready"), None);
        assert_eq!(parse_validator_line("validator x http=a pid=1"), None);
    }

    #[test]
    fn own_process_sample() {
        let s = ProcSample::of(std::process::id());
        if Path::new("/proc/self/status").exists() {
            assert!(s.peak_rss_bytes.unwrap_or(0) > 0);
            assert!(s.cpu_s.is_some());
        }
    }
}
