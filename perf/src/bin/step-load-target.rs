//! The load generator alone, against validators that are already running
//! (`step devnet` of any build), with their pids so that the report has
//! their CPU per finalized proof: a small binary that builds without the
//! node's crates, for comparing generators against the same validators.
//!
//! ```sh
//! cargo run --release -p step-perf --bin step-load-target -- \
//!   RATE DURATION_S BATCH http://127.0.0.1:27000=PID0 http://127.0.0.1:27001=PID1 ...
//! ```

use std::process::ExitCode;
use std::time::Duration;
use step_perf::load::{self, procs::Validator, Options};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        eprintln!("usage: step-load-target RATE DURATION_S BATCH URL=PID...");
        ExitCode::from(2)
    };
    let (Some(rate), Some(secs), Some(batch)) = (
        args.first().and_then(|a| a.parse::<f64>().ok()),
        args.get(1).and_then(|a| a.parse::<f64>().ok()),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        return usage();
    };
    let mut validators = Vec::new();
    for (index, a) in args.iter().skip(3).enumerate() {
        let Some((http, pid)) = a.split_once('=') else {
            return usage();
        };
        let Ok(pid) = pid.parse() else {
            return usage();
        };
        validators.push(Validator {
            index,
            http: http.to_owned(),
            pid,
        });
    }
    let mut o = Options::new(
        validators.iter().map(|v| v.http.clone()).collect(),
        rate,
        Duration::from_secs_f64(secs),
    );
    o.batch = batch;
    o.validators = validators;
    o.seed = format!("load-target-{}", std::process::id());
    o.progress = true;
    match load::run(&o) {
        Ok(r) => {
            print!("{}", r.to_text());
            println!("{}", r.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
