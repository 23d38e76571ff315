//! `step verify [FILE|-]...`: JSONL proofs in, one verdict per line out.

use anyhow::Context;
use clap::ValueEnum;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use step_engine::heuristics::AgeWindow;
use step_engine::proof::BODY_MAX_BYTES;
use step_engine::reward::MicroStep;
use step_engine::{Backend, Code, Limits, MemoryState, Reject, Verifier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input files, read in order as one stream (`-` or nothing: standard input).
    files: Vec<PathBuf>,
    /// Speed gate between an account's consecutive accepted proofs.
    #[arg(long, value_enum, default_value = "on")]
    speed_gate: OnOff,
    /// Moratorium between an account's consecutive accepted proofs.
    #[arg(long, value_enum, default_value = "on")]
    moratorium: OnOff,
    /// Reject proofs older than this many seconds (against the clock, see --now). Off unless given.
    #[arg(long, value_name = "SECONDS")]
    max_age: Option<u64>,
    /// Reject proofs more than this many seconds in the future (with --max-age).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    max_future: u64,
    /// The clock for the age window, as an ISO timestamp (default: the system clock).
    #[arg(long, value_name = "ISO")]
    now: Option<String>,
    /// Compare each verdict with the line's `expect`/`expect_any` (none: must be ok);
    /// print `N passed, N failed` and exit non-zero on any failure.
    #[arg(long)]
    expect: bool,
    /// Signature recovery backend.
    #[arg(long, default_value = "secp256k1", value_parser = parse_backend)]
    backend: Backend,
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    Backend::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Backend::all().iter().map(|b| b.name()).collect();
        format!(
            "unknown or not compiled-in backend `{s}` (available: {})",
            names.join(", ")
        )
    })
}

/// A line read with a length bound: at most `BODY_MAX_BYTES + 1` bytes are
/// kept, the rest of an overlong line is counted and discarded.
struct Line {
    bytes: Vec<u8>,
    len: usize,
}

fn read_bounded_line(r: &mut impl BufRead, line: &mut Line) -> std::io::Result<bool> {
    line.bytes.clear();
    line.len = 0;
    let mut any = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(any);
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        line.len += chunk.len();
        let room = (BODY_MAX_BYTES + 1).saturating_sub(line.bytes.len());
        line.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = done.unwrap_or(chunk.len());
        r.consume(consumed);
        if done.is_some() {
            return Ok(true);
        }
    }
}

/// What a line's `expect`/`expect_any` fields ask for.
fn expected_codes(line: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let mut codes = Vec::new();
    if let Some(e) = v.get("expect").and_then(|e| e.as_str()) {
        codes.push(e.to_owned());
    }
    if let Some(list) = v.get("expect_any").and_then(|e| e.as_array()) {
        codes.extend(list.iter().filter_map(|c| c.as_str().map(str::to_owned)));
    }
    (!codes.is_empty()).then_some(codes)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now_ms = match &args.now {
        Some(s) => step_engine::proof::Timestamp::parse(s)
            .with_context(|| format!("--now must look like 2026-01-01T00:00:00.000Z, got `{s}`"))?
            .unix_ms(),
        None => {
            let ms = step_engine::pipeline::unix_now_ms();
            anyhow::ensure!(ms > 0, "system clock before 1970");
            ms
        }
    };
    let limits = Limits {
        speed_mps_max: (args.speed_gate == OnOff::On)
            .then_some(Limits::default().speed_mps_max)
            .flatten(),
        moratorium_ms: (args.moratorium == OnOff::On)
            .then_some(Limits::default().moratorium_ms)
            .flatten(),
        age_window: args.max_age.map(|s| AgeWindow {
            max_age_ms: s * 1000,
            max_future_ms: args.max_future * 1000,
        }),
        ..Limits::default()
    };
    let verifier = Verifier::new(limits, args.backend);
    let mut state = MemoryState::new();

    let inputs: Vec<Box<dyn Read>> = if args.files.is_empty() {
        vec![Box::new(std::io::stdin().lock())]
    } else {
        args.files
            .iter()
            .map(|p| -> anyhow::Result<Box<dyn Read>> {
                if p.as_os_str() == "-" {
                    Ok(Box::new(std::io::stdin().lock()))
                } else {
                    Ok(Box::new(
                        std::fs::File::open(p)
                            .with_context(|| format!("cannot open {}", p.display()))?,
                    ))
                }
            })
            .collect::<anyhow::Result<_>>()?
    };

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut line = Line {
        bytes: Vec::with_capacity(BODY_MAX_BYTES + 1),
        len: 0,
    };
    let (mut n, mut passed, mut failed) = (0usize, 0usize, 0usize);
    for input in inputs {
        let mut r = BufReader::with_capacity(1 << 16, input);
        while read_bounded_line(&mut r, &mut line).context("reading input")? {
            n += 1;
            if line.bytes.last() == Some(&b'\r') {
                line.bytes.pop();
                line.len -= 1;
            }
            if line.bytes.iter().all(u8::is_ascii_whitespace) && line.len == line.bytes.len() {
                continue;
            }
            let verdict = if line.len > BODY_MAX_BYTES {
                Err(Reject::BodyTooLarge {
                    len: line.len,
                    max: BODY_MAX_BYTES,
                })
            } else {
                verifier.verify(&line.bytes, now_ms, &mut state)
            };
            let (ok, code, reward) = match &verdict {
                Ok(a) => (true, None, Some(MicroStep(a.reward_micro))),
                Err(r) => (false, Some(r.code()), None),
            };
            write!(out, "{{\"line\":{n},\"ok\":{ok},\"code\":")?;
            match code {
                Some(c) => write!(out, "\"{c}\"")?,
                None => write!(out, "null")?,
            }
            match reward {
                Some(r) => writeln!(out, ",\"reward\":\"{r}\"}}")?,
                None => writeln!(out, ",\"reward\":null}}")?,
            }
            if args.expect {
                let expected = if line.len > BODY_MAX_BYTES {
                    None
                } else {
                    expected_codes(&line.bytes)
                };
                let good = match (&expected, code) {
                    (None, None) => true,
                    (Some(list), Some(c)) => list.iter().any(|e| e == c.as_str()),
                    _ => false,
                };
                if good {
                    passed += 1;
                } else {
                    failed += 1;
                    let why = match &verdict {
                        Ok(_) => "accepted".to_owned(),
                        Err(r) => r.to_string(),
                    };
                    eprintln!(
                        "line {n}: expected {}, got {} ({why})",
                        expected.map_or("ok".to_owned(), |l| l.join("|")),
                        code.map_or("ok", Code::as_str),
                    );
                }
            }
        }
    }
    if args.expect {
        writeln!(out, "{passed} passed, {failed} failed")?;
    }
    out.flush()?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
